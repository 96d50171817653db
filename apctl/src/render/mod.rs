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
    match serde_json::to_string_pretty(value) {
        Ok(mut s) => {
            s.push('\n');
            s
        }
        // Our JSON types hold only strings, numbers, booleans and lists.
        Err(e) => format!("{{\"error\": {:?}}}\n", e.to_string()),
    }
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
    if s.is_empty() {
        "-".to_string()
    } else {
        s.to_string()
    }
}
