//! A persistent mdev definition and its TOML form (`CFG/mdevs/<uuid>.toml`):
//!
//! ```toml
//! uuid = "62177883-f1bb-47f0-914d-32a22e3a8804"
//! name = "guest1"
//! autostart = true
//! adapters = [5, 6]
//! domains = [4, 0xab]
//! control_domains = []
//! ```
//! Ids are integer arrays, ascending. Adapters are written in decimal,
//! domains and control domains in hex from 10 up (`4`, `0xab`), as people
//! name them; both forms read back as the same integers.

use crate::config_file::{Document, FileError, Problem};
use crate::host::Matrix;
use crate::mask::ApMask;
use std::fmt::Write as _;
use uuid::Uuid;

/// The keys of a definition file.
const KEYS: [&str; 6] = [
    "uuid",
    "name",
    "autostart",
    "adapters",
    "domains",
    "control_domains",
];

/// Longest accepted name.
pub const MAX_NAME_LEN: usize = 64;

/// What an mdev should be: kept by apd, restored at boot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Definition {
    /// The mdev's UUID.
    pub uuid: Uuid,
    /// A unique name people use instead of the UUID.
    pub name: Option<String>,
    /// Start at boot (and on `apply`).
    pub autostart: bool,
    /// Assigned adapters.
    pub adapters: ApMask,
    /// Assigned usage domains.
    pub domains: ApMask,
    /// Assigned control domains.
    pub control_domains: ApMask,
}

/// A name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {name:?}: {reason}")]
pub struct NameError {
    /// The name.
    pub name: String,
    /// Why, and what to use instead.
    pub reason: &'static str,
}

/// Check a name: non-empty, at most 64 characters, no whitespace, control
/// characters or `/`, and not UUID-like (names and UUIDs share one argument).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let e = |reason| {
        Err(NameError {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return e("a name cannot be empty");
    }
    if name.chars().count() > MAX_NAME_LEN {
        return e("a name has at most 64 characters");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return e("a name cannot contain spaces or control characters");
    }
    if name.contains('/') {
        return e("a name cannot contain '/'");
    }
    if looks_like_uuid(name) {
        return e("a name cannot look like a UUID (it would be taken for one)");
    }
    Ok(())
}

/// Whether `s` parses as a UUID in any form the uuid crate accepts
/// (hyphenated, simple, braced, urn).
pub fn looks_like_uuid(s: &str) -> bool {
    Uuid::try_parse(s).is_ok()
}

/// A bad value in the desired-state file (the user's own file,
/// read by apctl: its values may be quoted). Definition files, read by apd
/// as root, report by position only ([`crate::config_file::FileError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// `uuid` not a UUID.
    #[error("uuid {0:?} is not a UUID")]
    BadUuid(String),
    /// An id outside 0..=255.
    #[error("{key} holds {value}, outside 0..=255")]
    IdOutOfRange {
        /// `adapters`, `domains` or `control_domains`.
        key: &'static str,
        /// The value.
        value: i64,
    },
}

/// Ids from a TOML integer array, refusing anything outside 0..=255.
pub(crate) fn ids_to_mask(key: &'static str, ids: &[i64]) -> Result<ApMask, DefinitionError> {
    let mut m = ApMask::empty();
    for &value in ids {
        let id = u8::try_from(value).map_err(|_| DefinitionError::IdOutOfRange { key, value })?;
        m.insert(id);
    }
    Ok(m)
}

/// A UUID in the hyphenated form (any case): the only form sysfs, file
/// names and apd's API use; `None` for anything else, including the simple,
/// braced and urn forms the uuid crate would take.
pub fn parse_hyphenated_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

pub(crate) fn parse_uuid(s: &str) -> Result<Uuid, DefinitionError> {
    parse_hyphenated_uuid(s).ok_or_else(|| DefinitionError::BadUuid(s.to_string()))
}

/// `[5, 6]`: decimal ids.
pub(crate) fn toml_ids_decimal(m: &ApMask) -> String {
    let v: Vec<String> = m.iter().map(|i| i.to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// `[4, 0xab]`: hex from 10 up (below 10 both read the same).
pub(crate) fn toml_ids_hex(m: &ApMask) -> String {
    let v: Vec<String> = m
        .iter()
        .map(|i| {
            if i < 10 {
                i.to_string()
            } else {
                format!("0x{i:x}")
            }
        })
        .collect();
    format!("[{}]", v.join(", "))
}

pub(crate) fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Definition {
    /// An empty, manual definition.
    pub fn new(uuid: Uuid) -> Self {
        Self {
            uuid,
            name: None,
            autostart: false,
            adapters: ApMask::empty(),
            domains: ApMask::empty(),
            control_domains: ApMask::empty(),
        }
    }

    /// Its three masks.
    pub fn matrix(&self) -> Matrix {
        Matrix::new(self.adapters, self.domains, self.control_domains)
    }

    /// Replace its three masks.
    pub fn set_matrix(&mut self, m: &Matrix) {
        self.adapters = m.adapters;
        self.domains = m.domains;
        self.control_domains = m.control_domains;
    }

    /// `name (uuid)` when named, else the UUID: how messages name an mdev.
    pub fn label(&self) -> String {
        label(self.uuid, self.name.as_deref())
    }

    /// Parse the file format. A problem is reported by its position and a
    /// fixed description, never with the file's text: apd reads these files
    /// as root and its reports are open to every uid.
    pub fn from_toml(text: &str) -> Result<Definition, FileError> {
        let doc = Document::parse(text)?;
        doc.only_keys(&KEYS)?;
        let uuid = match doc.string("uuid")? {
            None => {
                return Err(FileError {
                    problem: Problem::MissingKey("uuid"),
                    at: None,
                })
            }
            Some((s, at)) => {
                parse_hyphenated_uuid(s).ok_or_else(|| doc.error(Problem::NotAUuid, at))?
            }
        };
        let name = match doc.string("name")? {
            None => None,
            Some((n, at)) => {
                validate_name(n).map_err(|e| doc.error(Problem::BadName(e.reason), at))?;
                Some(n.to_string())
            }
        };
        Ok(Definition {
            uuid,
            name,
            autostart: doc.boolean("autostart")?.unwrap_or(false),
            adapters: ApMask::from_ids(doc.ids("adapters")?),
            domains: ApMask::from_ids(doc.ids("domains")?),
            control_domains: ApMask::from_ids(doc.ids("control_domains")?),
        })
    }

    /// The file format; `name` is omitted when None.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        self.write_toml_body(&mut out, true);
        out
    }

    /// The key lines shared with the desired-state `[[mdev]]` tables.
    pub(crate) fn write_toml_body(&self, out: &mut String, with_uuid: bool) {
        if with_uuid {
            let _ = writeln!(out, "uuid = \"{}\"", self.uuid.hyphenated());
        }
        if let Some(n) = &self.name {
            let _ = writeln!(out, "name = {}", toml_string(n));
        }
        let _ = writeln!(out, "autostart = {}", self.autostart);
        let _ = writeln!(out, "adapters = {}", toml_ids_decimal(&self.adapters));
        let _ = writeln!(out, "domains = {}", toml_ids_hex(&self.domains));
        let _ = writeln!(
            out,
            "control_domains = {}",
            toml_ids_hex(&self.control_domains)
        );
    }
}

/// `name (uuid)` when a name is known, else the UUID.
pub fn label(uuid: Uuid, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{n} ({})", uuid.hyphenated()),
        None => uuid.hyphenated().to_string(),
    }
}

/// toml errors span several lines (a source excerpt); keep one line.
pub(crate) fn one_line(s: &str) -> String {
    let parts: Vec<&str> = s
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^' || c == ' ')
        })
        .collect();
    parts.join(": ")
}

impl serde::Serialize for Definition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Definition", 6)?;
        st.serialize_field("uuid", &self.uuid.hyphenated().to_string())?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("autostart", &self.autostart)?;
        st.serialize_field("adapters", &self.adapters)?;
        st.serialize_field("domains", &self.domains)?;
        st.serialize_field("control_domains", &self.control_domains)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";

    fn guest1() -> Definition {
        Definition {
            uuid: Uuid::parse_str(G1).expect("uuid"),
            name: Some("guest1".into()),
            autostart: true,
            adapters: ApMask::from_ids([5, 6]),
            domains: ApMask::from_ids([4, 0xab]),
            control_domains: ApMask::empty(),
        }
    }

    #[test]
    fn design_example_round_trip() {
        let text = "uuid = \"62177883-f1bb-47f0-914d-32a22e3a8804\"\nname = \"guest1\"\nautostart = true\nadapters = [5, 6]\ndomains = [4, 0xab]\ncontrol_domains = []\n";
        assert_eq!(Definition::from_toml(text), Ok(guest1()));
        assert_eq!(guest1().to_toml(), text);
        let mut unnamed = guest1();
        unnamed.name = None;
        assert!(!unnamed.to_toml().contains("name"));
        assert_eq!(Definition::from_toml(&unnamed.to_toml()), Ok(unnamed));
    }

    #[test]
    fn uuids_only_in_the_hyphenated_form() {
        let u = Uuid::parse_str(G1).expect("uuid");
        assert_eq!(parse_hyphenated_uuid(G1), Some(u));
        assert_eq!(
            parse_hyphenated_uuid("62177883-F1BB-47F0-914D-32A22E3A8804"),
            Some(u)
        );
        for bad in [
            "62177883f1bb47f0914d32a22e3a8804",
            "{62177883-f1bb-47f0-914d-32a22e3a8804}",
            "urn:uuid:62177883-f1bb-47f0-914d-32a22e3a8804",
            "62177883-f1bb-47f0-914d-32a22e3a880g",
            "guest1",
            "",
        ] {
            assert_eq!(parse_hyphenated_uuid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_files() {
        let base = guest1().to_toml();
        let e =
            Definition::from_toml(&format!("{base}color = \"red\"\n")).expect_err("unknown key");
        assert_eq!(e.to_string(), "line 7, column 1: unknown key");
        let e = Definition::from_toml(&base.replace("[5, 6]", "[5, 300]")).expect_err("range");
        assert_eq!(
            e.to_string(),
            "line 4, column 16: adapters holds an id outside 0..=255"
        );
        assert!(Definition::from_toml(&base.replace("[5, 6]", "[-1]")).is_err());
        let e = Definition::from_toml(&base.replace("62177883-", "x")).expect_err("uuid");
        assert_eq!(e.problem, Problem::NotAUuid);
        let e = Definition::from_toml(&base.replace("\"guest1\"", "\"a b\"")).expect_err("name");
        assert!(matches!(e.problem, Problem::BadName(_)), "{e}");
        assert!(!e.to_string().contains("a b"), "{e}");
        assert!(Definition::from_toml("not toml at all").is_err());
        assert_eq!(
            Definition::from_toml("").expect_err("empty").problem,
            Problem::MissingKey("uuid")
        );
        let e = Definition::from_toml(&base.replace("true", "\"yes\"")).expect_err("type");
        assert_eq!(
            e.problem,
            Problem::WrongType {
                key: "autostart",
                expected: "true or false"
            }
        );
        let simple = base.replace(G1, &G1.replace('-', ""));
        assert!(Definition::from_toml(&simple).is_err());
        let e = Definition::from_toml(&format!("{base}[table]\nx = 1\n")).expect_err("table");
        assert_eq!(e.problem, Problem::UnknownKey);
    }

    #[test]
    fn no_problem_quotes_the_file() {
        const SECRET: &str = "root:$6$SECRETMARKER";
        let base = guest1().to_toml();
        for text in [
            format!("{SECRET}\n"),
            format!("uuid = \"{SECRET}\"\n"),
            base.replace("\"guest1\"", &format!("\"{SECRET} x\"")),
            base.replace("true", &format!("\"{SECRET}\"")),
            format!("{base}\"{SECRET}\" = 1\n"),
            base.replace("[5, 6]", &format!("[\"{SECRET}\"]")),
            format!("{base}[{SECRET}]\n"),
        ] {
            let e = Definition::from_toml(&text).expect_err(&text);
            assert!(!e.to_string().contains("SECRETMARKER"), "{e}");
            assert!(!format!("{e:?}").contains("SECRETMARKER"), "{e:?}");
        }
    }

    #[test]
    fn names() {
        assert!(validate_name("guest1").is_ok());
        assert!(validate_name("web-01.prod_x").is_ok());
        assert!(validate_name(&"x".repeat(64)).is_ok());
        for bad in [
            "",
            "a b",
            "a\tb",
            "a/b",
            "a\u{7}",
            G1,
            "62177883f1bb47f0914d32a22e3a8804",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(guest1().label(), format!("guest1 ({G1})"));
        let mut d = guest1();
        d.name = None;
        assert_eq!(d.label(), G1);
    }
}
