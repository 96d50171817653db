//! Everything apctl prints: tables and views for people, JSON for scripts.
//! Renderers are pure functions of apbus values, so golden files test them.

pub mod events;
pub mod happenings;
pub mod host;
pub mod ids;
pub mod json;
pub mod libvirt;
pub mod matrix;
pub mod mdevs;
pub mod state;
pub mod style;
pub mod table;

pub use style::Style;

/// Serializes a JSON value for stdout: pretty, with a final newline.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    match write_json(&mut out, value) {
        // serde_json writes UTF-8 only.
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        // Our JSON types hold only strings, numbers, booleans and lists.
        Err(e) => format!("{{\"error\": {:?}}}\n", e.to_string()),
    }
}

/// Writes what [`to_json`] makes to `out`, without the String.
pub fn write_json<T: serde::Serialize, W: std::io::Write + ?Sized>(
    out: &mut W,
    value: &T,
) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")
}

/// `yes` or `no`.
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `-` for an empty cell.
pub fn or_dash(s: &str) -> String {
    dash_if_empty(s).to_string()
}

/// [`or_dash`] borrowed, for rows written as they are made.
pub fn dash_if_empty(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}
