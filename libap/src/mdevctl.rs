//! mdevctl's JSON definitions for vfio_ap, read and written.
//!
//! mdevctl keeps `/etc/mdevctl.d/<parent>/<uuid>`; for vfio_ap the parent is
//! the matrix device, so files live in `/etc/mdevctl.d/matrix/<uuid>`:
//! ```json
//! {
//!   "mdev_type": "vfio_ap-passthrough",
//!   "start": "auto",
//!   "attrs": [
//!     {
//!       "assign_adapter": "5"
//!     },
//!     {
//!       "assign_domain": "0x47"
//!     }
//!   ]
//! }
//! ```
//! Attributes are written to sysfs in order, so values are parsed as the
//! kernel parses them (`kstrtoul` base 0: decimal, `0x` hex, leading `0`
//! octal). We write adapters in decimal and domains and control domains
//! as `0x` hex, the convention of mdevctl's own vfio_ap example and of the
//! s390 documentation (`assign_adapter 5`, `assign_domain 0x47`), matching
//! how lszcrypt shows them (adapter decimal, domain as the hex part of an
//! APQN).

use crate::definition::Definition;
use crate::mask::ApMask;
use crate::store::{write_atomic, StoreError};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The mdev type of vfio_ap.
pub const MDEV_TYPE: &str = "vfio_ap-passthrough";
/// The parent device name (the directory under `/etc/mdevctl.d`).
pub const PARENT: &str = "matrix";
/// mdevctl's default directory for vfio_ap definitions.
pub const DEFAULT_DIR: &str = "/etc/mdevctl.d/matrix";

/// An mdevctl file that cannot be imported, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdevctlError {
    /// Cannot read the file or directory.
    #[error("cannot read {}: {message}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The file name is not a UUID.
    #[error("{}: mdevctl names definition files by UUID", path.display())]
    BadFileName {
        /// The file.
        path: PathBuf,
    },
    /// Not the JSON we expect.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (naming the key, attribute or value).
        message: String,
    },
    /// Writing failed.
    #[error("{0}")]
    Write(#[from] StoreError),
}

impl MdevctlError {
    /// The file (or directory) the problem is in; None for a failed write,
    /// whose error names its own file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            MdevctlError::Io { path, .. }
            | MdevctlError::BadFileName { path }
            | MdevctlError::Invalid { path, .. } => Some(path),
            MdevctlError::Write(_) => None,
        }
    }

    /// The problem without the file name (the reason a file is skipped).
    pub fn reason(&self) -> String {
        match self {
            MdevctlError::Io { message, .. } => format!("cannot read it: {message}"),
            MdevctlError::BadFileName { .. } => {
                "its name is not a UUID (mdevctl names definition files by UUID)".to_string()
            }
            MdevctlError::Invalid { message, .. } => message.clone(),
            MdevctlError::Write(e) => e.to_string(),
        }
    }
}

/// The file that holds the definition of `uuid` in `dir` (mdevctl's
/// `<dir>/<uuid>`, UUID in lowercase).
pub fn file_in(dir: &Path, uuid: Uuid) -> PathBuf {
    dir.join(uuid.hyphenated().to_string())
}

/// C `kstrtoul(s, 0)` as a sysfs store sees it: up to the first NUL,
/// optional `+`, base from the prefix, digits only, one trailing newline;
/// None on anything else or overflow.
pub fn kstrtoul(s: &str) -> Option<u64> {
    // The store sees a C string: an embedded NUL ends it.
    let s = s.split('\0').next().unwrap_or(s);
    let s = s.strip_suffix('\n').unwrap_or(s);
    let s = s.strip_prefix('+').unwrap_or(s);
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn invalid(path: &Path, message: String) -> MdevctlError {
    MdevctlError::Invalid {
        path: path.to_path_buf(),
        message,
    }
}

/// Parse one mdevctl JSON document for the mdev `uuid`; `path` names it in
/// errors. The result has no name (mdevctl has none).
pub fn from_json(uuid: Uuid, text: &str, path: &Path) -> Result<Definition, MdevctlError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(path, format!("not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(path, "expected a JSON object".to_string()))?;
    match obj.get("mdev_type").and_then(|v| v.as_str()) {
        Some(MDEV_TYPE) => {}
        Some(other) => {
            return Err(invalid(
                path,
                format!("mdev_type is {other:?}, not {MDEV_TYPE:?} (not a vfio_ap mdev)"),
            ))
        }
        None => return Err(invalid(path, "mdev_type is missing".to_string())),
    }
    let autostart = match obj.get("start").map(|v| v.as_str()) {
        None => false,
        Some(Some("auto")) => true,
        Some(Some("manual")) => false,
        Some(other) => {
            return Err(invalid(
                path,
                format!(
                    "start must be \"auto\" or \"manual\", not {}",
                    other.map_or_else(|| obj["start"].to_string(), |s| format!("{s:?}"))
                ),
            ))
        }
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "mdev_type" | "start" | "attrs" | "parent") {
            tracing::warn!(path = %path.display(), key, "ignoring an unknown mdevctl key");
        }
    }
    let mut def = Definition::new(uuid);
    def.autostart = autostart;
    let attrs = match obj.get("attrs") {
        None => return Ok(def),
        Some(serde_json::Value::Array(a)) => a,
        Some(_) => return Err(invalid(path, "attrs must be an array".to_string())),
    };
    for (i, attr) in attrs.iter().enumerate() {
        apply_attr(&mut def, i, attr, path)?;
    }
    Ok(def)
}

/// One entry of `attrs` (an object with one attribute, as mdevctl writes
/// them, applied in order) onto `def`.
fn apply_attr(
    def: &mut Definition,
    i: usize,
    attr: &serde_json::Value,
    path: &Path,
) -> Result<(), MdevctlError> {
    let map = attr.as_object().filter(|m| m.len() == 1).ok_or_else(|| {
        invalid(
            path,
            format!("attrs[{i}] must be an object with one attribute"),
        )
    })?;
    for (name, value) in map {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(invalid(
                    path,
                    format!("attribute {name} has value {other}, expected a string such as \"5\" or \"0x47\""),
                ))
            }
        };
        let (mask, add): (&mut ApMask, bool) = match name.as_str() {
            "assign_adapter" => (&mut def.adapters, true),
            "unassign_adapter" => (&mut def.adapters, false),
            "assign_domain" => (&mut def.domains, true),
            "unassign_domain" => (&mut def.domains, false),
            "assign_control_domain" => (&mut def.control_domains, true),
            "unassign_control_domain" => (&mut def.control_domains, false),
            other => {
                return Err(invalid(
                    path,
                    format!("unknown attribute {other:?} (vfio_ap knows assign_adapter, assign_domain, assign_control_domain and their unassign_ forms)"),
                ))
            }
        };
        let id = kstrtoul(&text)
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(|| {
                invalid(
                    path,
                    format!("attribute {name} has value {text:?}, not an id from 0 to 255"),
                )
            })?;
        mask.set(id, add);
    }
    Ok(())
}

/// The mdevctl JSON for a definition (pretty, as mdevctl writes it, with a
/// trailing newline). The name is not representable and is dropped.
pub fn to_json(def: &Definition) -> String {
    let mut attrs = Vec::new();
    for a in def.adapters.iter() {
        attrs.push(serde_json::json!({ "assign_adapter": a.to_string() }));
    }
    for d in def.domains.iter() {
        attrs.push(serde_json::json!({ "assign_domain": format!("0x{d:x}") }));
    }
    for c in def.control_domains.iter() {
        attrs.push(serde_json::json!({ "assign_control_domain": format!("0x{c:x}") }));
    }
    // serde_json keeps insertion order only with preserve_order; build the
    // object by hand to keep mdevctl's key order.
    let attrs = serde_json::Value::Array(attrs);
    let attrs_text = serde_json::to_string_pretty(&attrs).unwrap_or_else(|_| "[]".to_string());
    let attrs_text = attrs_text.replace('\n', "\n  ");
    format!(
        "{{\n  \"mdev_type\": \"{MDEV_TYPE}\",\n  \"start\": \"{}\",\n  \"attrs\": {attrs_text}\n}}\n",
        if def.autostart { "auto" } else { "manual" }
    )
}

/// Read one file (named by its UUID).
pub fn import_file(path: &Path) -> Result<Definition, MdevctlError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let uuid = Uuid::try_parse(&name)
        .ok()
        .filter(|_| name.len() == 36)
        .ok_or_else(|| MdevctlError::BadFileName {
            path: path.to_path_buf(),
        })?;
    let text = std::fs::read_to_string(path).map_err(|e| MdevctlError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    from_json(uuid, &text, path)
}

/// A definition read from mdevctl's directory, with the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// `<dir>/<uuid>` as found (the UUID may be spelled in upper case).
    pub path: PathBuf,
    /// What it defines.
    pub definition: Definition,
}

/// Read every definition in `dir` (the directory playing
/// `/etc/mdevctl.d/matrix`): the good ones, sorted by UUID, and one error per
/// bad file, in file name order (one bad file never hides the good ones).
/// Hidden files are skipped. A single error and nothing else when `dir`
/// itself cannot be read.
pub fn read_dir(dir: &Path) -> (Vec<SourceFile>, Vec<MdevctlError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(MdevctlError::Io {
                path: dir.to_path_buf(),
                message: e.to_string(),
            });
            return (files, errors);
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| {
            e.file_type()
                .map(|t| t.is_file() || t.is_symlink())
                .unwrap_or(false)
        })
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        match import_file(&path) {
            Ok(definition) => files.push(SourceFile { path, definition }),
            Err(e) => errors.push(e),
        }
    }
    files.sort_by_key(|f| f.definition.uuid);
    (files, errors)
}

/// [`read_dir`] without the file names.
pub fn import_dir(dir: &Path) -> (Vec<Definition>, Vec<MdevctlError>) {
    let (files, errors) = read_dir(dir);
    (files.into_iter().map(|f| f.definition).collect(), errors)
}

/// Write `<dir>/<uuid>` for each definition, atomically.
pub fn export_dir(dir: &Path, defs: &[Definition]) -> Result<(), MdevctlError> {
    for d in defs {
        write_atomic(dir, &d.uuid.hyphenated().to_string(), to_json(d).as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";

    fn p() -> PathBuf {
        PathBuf::from(format!("/etc/mdevctl.d/matrix/{G1}"))
    }

    fn uuid() -> Uuid {
        Uuid::parse_str(G1).expect("uuid")
    }

    #[test]
    fn reads_mdevctl_json() {
        let text = r#"{
  "mdev_type": "vfio_ap-passthrough",
  "start": "auto",
  "attrs": [
    {"assign_adapter": "5"},
    {"assign_adapter": "0x6"},
    {"assign_domain": "0x47"},
    {"assign_domain": "255"},
    {"assign_control_domain": "010"},
    {"assign_domain": "4"},
    {"unassign_domain": "4"}
  ]
}"#;
        let d = from_json(uuid(), text, &p()).expect("valid");
        assert!(d.autostart);
        assert_eq!(d.adapters, ApMask::from_ids([5, 6]));
        assert_eq!(d.domains, ApMask::from_ids([0x47, 0xff]));
        assert_eq!(d.control_domains, ApMask::from_ids([8]));
        assert_eq!(d.name, None);
    }

    #[test]
    fn round_trip() {
        let mut d = Definition::new(uuid());
        d.adapters = ApMask::from_ids([5, 6]);
        d.domains = ApMask::from_ids([4, 0xab]);
        d.control_domains = ApMask::from_ids([4]);
        d.autostart = true;
        let json = to_json(&d);
        assert!(json.contains("\"assign_adapter\": \"5\""), "{json}");
        assert!(json.contains("\"assign_domain\": \"0xab\""), "{json}");
        assert!(json.starts_with("{\n  \"mdev_type\": \"vfio_ap-passthrough\",\n  \"start\": \"auto\",\n  \"attrs\": [\n    {\n      \"assign_adapter\": \"5\"\n    },"), "{json}");
        assert_eq!(from_json(uuid(), &json, &p()), Ok(d.clone()));
        d.autostart = false;
        d.adapters = ApMask::empty();
        d.domains = ApMask::empty();
        d.control_domains = ApMask::empty();
        let json = to_json(&d);
        assert_eq!(from_json(uuid(), &json, &p()), Ok(d));
        let _: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    }

    #[test]
    fn bad_documents_name_the_culprit() {
        let cases = [
            (
                r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"assign_cpu":"5"}]}"#,
                "assign_cpu",
            ),
            (r#"{"mdev_type":"vfio_ccw-io"}"#, "vfio_ccw-io"),
            (r#"{"start":"auto"}"#, "mdev_type"),
            (
                r#"{"mdev_type":"vfio_ap-passthrough","start":"later"}"#,
                "later",
            ),
            (
                r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"assign_domain":"300"}]}"#,
                "300",
            ),
            (
                r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"assign_domain":"0x"}]}"#,
                "0x",
            ),
            (
                r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"assign_domain":"08"}]}"#,
                "08",
            ),
            (
                r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"assign_domain":true}]}"#,
                "assign_domain",
            ),
            (
                r#"{"mdev_type":"vfio_ap-passthrough","attrs":{"assign_domain":"1"}}"#,
                "attrs",
            ),
            (
                r#"{"mdev_type":"vfio_ap-passthrough","attrs":[{"assign_domain":"1","assign_adapter":"2"}]}"#,
                "attrs[0]",
            ),
            ("[1,2]", "object"),
            ("{", "JSON"),
        ];
        for (text, needle) in cases {
            let e = from_json(uuid(), text, &p()).expect_err(text);
            let msg = e.to_string();
            assert!(msg.contains(needle), "{text}: {msg}");
            assert!(msg.contains(G1), "{msg}");
        }
    }

    #[test]
    fn kstrtoul_rules() {
        assert_eq!(kstrtoul("5"), Some(5));
        assert_eq!(kstrtoul("+5\n"), Some(5));
        assert_eq!(kstrtoul("0x47"), Some(0x47));
        assert_eq!(kstrtoul("0X47"), Some(0x47));
        assert_eq!(kstrtoul("010"), Some(8));
        assert_eq!(kstrtoul("0"), Some(0));
        // Found by the id_write fuzz target: the store sees a C string.
        assert_eq!(kstrtoul("2\0junk"), Some(2));
        assert_eq!(kstrtoul("\0"), None);
        for bad in ["", "0x", "-1", " 5", "5 ", "5\n\n", "08", "abc", "++5"] {
            assert_eq!(kstrtoul(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dir_import_and_export() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Definition::new(uuid());
        d.adapters = ApMask::from_ids([5]);
        d.domains = ApMask::from_ids([0x47]);
        export_dir(dir.path(), std::slice::from_ref(&d)).expect("export");
        std::fs::write(dir.path().join("not-a-uuid"), "{}").expect("write");
        let other = Uuid::from_u128(3).hyphenated().to_string();
        std::fs::write(dir.path().join(&other), "{\"mdev_type\":\"x\"}").expect("write");
        let (defs, errors) = import_dir(dir.path());
        assert_eq!(defs, vec![d]);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors
            .iter()
            .any(|e| matches!(e, MdevctlError::BadFileName { .. })));
        let (defs, errors) = import_dir(&dir.path().join("missing"));
        assert!(defs.is_empty());
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn a_truncated_file_does_not_hide_the_good_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut good = Vec::new();
        for i in [1u128, 3] {
            let mut d = Definition::new(Uuid::from_u128(i));
            d.adapters = ApMask::from_ids([5]);
            good.push(d);
        }
        export_dir(dir.path(), &good).expect("export");
        let full = to_json(&good[0]);
        let cut = file_in(dir.path(), Uuid::from_u128(2));
        std::fs::write(&cut, &full[..full.len() / 2]).expect("write");
        std::fs::write(dir.path().join("README"), "notes").expect("write");
        let (defs, errors) = import_dir(dir.path());
        assert_eq!(defs, good);
        let named: Vec<(Option<&Path>, String)> =
            errors.iter().map(|e| (e.path(), e.reason())).collect();
        assert_eq!(named.len(), 2, "{named:?}");
        // File name order: "0000..." before "README".
        assert_eq!(named[0].0, Some(cut.as_path()));
        assert!(named[0].1.starts_with("not valid JSON"), "{named:?}");
        assert!(!named[0].1.contains(&cut.display().to_string()));
        assert_eq!(named[1].0, Some(dir.path().join("README").as_path()));
        assert!(named[1].1.contains("not a UUID"), "{named:?}");
    }
}
