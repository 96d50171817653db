//! The desired-state file of `apctl apply`, `apctl check FILE` and
//! `apctl export --format toml`:
//!
//! ```toml
//! [masks]                       # optional; absent = leave the masks alone
//! apmask = "0xf9ff...ff"        # absolute kernel syntax only
//! aqmask = "0xf7ff...fe"
//! # or: vfio_adapters = [5, 6] / vfio_domains = [4, 0x47, 0xab, 0xff]
//!
//! [[mdev]]                      # the definition format, one table per mdev
//! uuid = "62177883-f1bb-47f0-914d-32a22e3a8804"   # optional: matched by name
//! name = "guest1"
//! autostart = true
//! adapters = [5, 6]
//! domains = [4, 0xab]
//! control_domains = []
//! ```
//! [`DesiredState::to_toml`] writes exactly this format, so export followed
//! by apply changes nothing. Unknown keys are errors naming the key.

use crate::definition::{
    ids_to_mask, one_line, parse_uuid, toml_ids_decimal, toml_ids_hex, Definition, DefinitionError,
};
use crate::mask::ApMask;
use std::collections::HashMap;
use std::fmt::Write as _;
use uuid::Uuid;

/// How the masks were (or will be) written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaskForm {
    /// `apmask = "0x..."`, `aqmask = "0x..."`.
    #[default]
    Hex,
    /// `vfio_adapters = [...]`, `vfio_domains = [...]`: these bits clear,
    /// all others set.
    Vfio,
}

/// The `[masks]` table: each mask is None when not given (left alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DesiredMasks {
    /// The whole apmask.
    pub apmask: Option<ApMask>,
    /// The whole aqmask.
    pub aqmask: Option<ApMask>,
    /// The form it is written in.
    pub form: MaskForm,
}

/// One `[[mdev]]` table: a definition whose UUID may be left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdevSpec {
    /// The UUID; None = match an existing definition by name (or make one).
    pub uuid: Option<Uuid>,
    /// The name.
    pub name: Option<String>,
    /// Start at boot; `apply` also starts it.
    pub autostart: bool,
    /// Adapters.
    pub adapters: ApMask,
    /// Usage domains.
    pub domains: ApMask,
    /// Control domains.
    pub control_domains: ApMask,
}

impl MdevSpec {
    /// The spec of a definition (UUID kept).
    pub fn from_definition(d: &Definition) -> Self {
        Self {
            uuid: Some(d.uuid),
            name: d.name.clone(),
            autostart: d.autostart,
            adapters: d.adapters,
            domains: d.domains,
            control_domains: d.control_domains,
        }
    }

    /// The definition this spec describes, with `uuid` (the spec's own when
    /// it has one).
    pub fn to_definition(&self, uuid: Uuid) -> Definition {
        Definition {
            uuid: self.uuid.unwrap_or(uuid),
            name: self.name.clone(),
            autostart: self.autostart,
            adapters: self.adapters,
            domains: self.domains,
            control_domains: self.control_domains,
        }
    }

    /// `name (uuid)`, the name, or the UUID.
    pub fn label(&self) -> String {
        match (&self.name, &self.uuid) {
            (Some(n), Some(u)) => format!("{n} ({})", u.hyphenated()),
            (Some(n), None) => n.clone(),
            (None, Some(u)) => u.hyphenated().to_string(),
            (None, None) => "an unnamed mdev".to_string(),
        }
    }
}

/// A whole desired state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredState {
    /// `[masks]`; None = leave the masks alone.
    pub masks: Option<DesiredMasks>,
    /// `[[mdev]]` tables, in file order.
    pub mdevs: Vec<MdevSpec>,
}

/// A desired-state file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    /// Not TOML, a wrong type, or an unknown key (named).
    #[error("{0}")]
    Toml(String),
    /// A problem in `[masks]`.
    #[error("[masks]: {0}")]
    Masks(String),
    /// A problem in the n-th `[[mdev]]` table (1-based).
    #[error("[[mdev]] #{index} ({label}): {message}")]
    Mdev {
        /// 1-based position in the file.
        index: usize,
        /// Its name or UUID.
        label: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    masks: Option<RawMasks>,
    #[serde(default)]
    mdev: Vec<RawMdev>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMasks {
    apmask: Option<String>,
    aqmask: Option<String>,
    vfio_adapters: Option<Vec<i64>>,
    vfio_domains: Option<Vec<i64>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMdev {
    uuid: Option<String>,
    name: Option<String>,
    #[serde(default)]
    autostart: bool,
    #[serde(default)]
    adapters: Vec<i64>,
    #[serde(default)]
    domains: Vec<i64>,
    #[serde(default)]
    control_domains: Vec<i64>,
}

fn absolute(key: &str, s: &str) -> Result<ApMask, DesiredError> {
    if ApMask::is_relative(s) {
        return Err(DesiredError::Masks(format!(
            "{key} = {s:?} is relative, but a desired state is absolute: give the whole mask (0x and 64 hex digits) or use vfio_adapters/vfio_domains"
        )));
    }
    ApMask::parse_absolute(s).map_err(|e| DesiredError::Masks(format!("{key}: {e}")))
}

fn def_err(e: DefinitionError) -> String {
    e.to_string()
}

impl DesiredState {
    /// Parse the file format.
    pub fn from_toml(text: &str) -> Result<DesiredState, DesiredError> {
        let raw: RawState =
            toml::from_str(text).map_err(|e| DesiredError::Toml(one_line(&e.to_string())))?;
        let masks = raw.masks.map(masks_of).transpose()?.flatten();
        let mut mdevs = Vec::with_capacity(raw.mdev.len());
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut uuids: HashMap<Uuid, usize> = HashMap::new();
        for (i, r) in raw.mdev.into_iter().enumerate() {
            let index = i + 1;
            let label = r
                .name
                .clone()
                .or_else(|| r.uuid.clone())
                .unwrap_or_else(|| "no name, no uuid".to_string());
            let err = |message: String| DesiredError::Mdev {
                index,
                label: label.clone(),
                message,
            };
            let uuid = r
                .uuid
                .as_deref()
                .map(parse_uuid)
                .transpose()
                .map_err(|e| err(def_err(e)))?;
            if uuid.is_none() && r.name.is_none() {
                return Err(err(
                    "give a name or a uuid, or both, so the mdev can be matched".to_string(),
                ));
            }
            if let Some(n) = &r.name {
                crate::definition::validate_name(n).map_err(|e| err(e.to_string()))?;
                if let Some(first) = names.insert(n.clone(), index) {
                    return Err(err(format!(
                        "the name {n} is already used by [[mdev]] #{first}"
                    )));
                }
            }
            if let Some(u) = uuid {
                if let Some(first) = uuids.insert(u, index) {
                    return Err(err(format!(
                        "the uuid {} is already used by [[mdev]] #{first}",
                        u.hyphenated()
                    )));
                }
            }
            mdevs.push(MdevSpec {
                uuid,
                name: r.name,
                autostart: r.autostart,
                adapters: ids_to_mask("adapters", &r.adapters).map_err(|e| err(def_err(e)))?,
                domains: ids_to_mask("domains", &r.domains).map_err(|e| err(def_err(e)))?,
                control_domains: ids_to_mask("control_domains", &r.control_domains)
                    .map_err(|e| err(def_err(e)))?,
            });
        }
        Ok(DesiredState { masks, mdevs })
    }

    /// The current state as a desired state: masks in hex form (if given)
    /// and every definition (sorted by UUID for a stable file).
    #[cfg(any(test, feature = "testing"))]
    pub fn from_parts(masks: Option<(ApMask, ApMask)>, defs: &[Definition]) -> Self {
        let mut defs: Vec<&Definition> = defs.iter().collect();
        defs.sort_by_key(|d| d.uuid);
        DesiredState {
            masks: masks.map(|(ap, aq)| DesiredMasks {
                apmask: Some(ap),
                aqmask: Some(aq),
                form: MaskForm::Hex,
            }),
            mdevs: defs.into_iter().map(MdevSpec::from_definition).collect(),
        }
    }

    /// The file format (parses back to an equal value).
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        if let Some(m) = &self.masks {
            if m.apmask.is_some() || m.aqmask.is_some() {
                out.push_str("[masks]\n");
                match m.form {
                    MaskForm::Hex => {
                        if let Some(a) = m.apmask {
                            let _ = writeln!(out, "apmask = \"{a}\"");
                        }
                        if let Some(q) = m.aqmask {
                            let _ = writeln!(out, "aqmask = \"{q}\"");
                        }
                    }
                    MaskForm::Vfio => {
                        if let Some(a) = m.apmask {
                            let _ = writeln!(
                                out,
                                "vfio_adapters = {}",
                                toml_ids_decimal(&a.complement())
                            );
                        }
                        if let Some(q) = m.aqmask {
                            let _ =
                                writeln!(out, "vfio_domains = {}", toml_ids_hex(&q.complement()));
                        }
                    }
                }
            }
        }
        for spec in &self.mdevs {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str("[[mdev]]\n");
            let def = spec.to_definition(Uuid::nil());
            def.write_toml_body(&mut out, false);
            if let Some(u) = spec.uuid {
                // uuid first, as in the definition files.
                let body = out.split_off(out.len() - body_len(&def));
                let _ = writeln!(out, "uuid = \"{}\"", u.hyphenated());
                out.push_str(&body);
            }
        }
        out
    }
}

fn body_len(def: &Definition) -> usize {
    let mut s = String::new();
    def.write_toml_body(&mut s, false);
    s.len()
}

/// The `[masks]` table: hex masks or the ids vfio_ap gets, never both;
/// None when it names neither.
fn masks_of(m: RawMasks) -> Result<Option<DesiredMasks>, DesiredError> {
    let hex = m.apmask.is_some() || m.aqmask.is_some();
    let vfio = m.vfio_adapters.is_some() || m.vfio_domains.is_some();
    if hex && vfio {
        return Err(DesiredError::Masks(
            "give the masks either as apmask/aqmask or as vfio_adapters/vfio_domains, not both"
                .to_string(),
        ));
    }
    Ok(if vfio {
        let clear = |key: &'static str, ids: Option<Vec<i64>>| {
            ids.map(|v| {
                ids_to_mask(key, &v)
                    .map(|m| m.complement())
                    .map_err(|e| DesiredError::Masks(def_err(e)))
            })
            .transpose()
        };
        Some(DesiredMasks {
            apmask: clear("vfio_adapters", m.vfio_adapters)?,
            aqmask: clear("vfio_domains", m.vfio_domains)?,
            form: MaskForm::Vfio,
        })
    } else if hex {
        Some(DesiredMasks {
            apmask: m.apmask.map(|s| absolute("apmask", &s)).transpose()?,
            aqmask: m.aqmask.map(|s| absolute("aqmask", &s)).transpose()?,
            form: MaskForm::Hex,
        })
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIGN: &str = r#"[masks]                       # optional; absent = leave the masks alone
apmask = "0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
aqmask = "0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe"

[[mdev]]                      # the definition format, one table per mdev
uuid = "62177883-f1bb-47f0-914d-32a22e3a8804"   # optional: matched by name
name = "guest1"
autostart = true              # autostart mdevs are also started by apply
adapters = [5, 6]
domains = [4, 0xab]
control_domains = []
"#;

    #[test]
    fn design_example() {
        let s = DesiredState::from_toml(DESIGN).expect("valid");
        let m = s.masks.expect("masks");
        assert_eq!(
            m.apmask,
            Some(ApMask::full().apply_write("-5,-6").expect("ok"))
        );
        assert_eq!(
            m.aqmask,
            Some(
                ApMask::full()
                    .apply_write("-4,-0x47,-0xab,-0xff")
                    .expect("ok")
            )
        );
        assert_eq!(s.mdevs.len(), 1);
        assert_eq!(s.mdevs[0].name.as_deref(), Some("guest1"));
        assert_eq!(s.mdevs[0].domains, ApMask::from_ids([4, 0xab]));
        let text = s.to_toml();
        assert_eq!(DesiredState::from_toml(&text), Ok(s));
        assert!(
            text.contains(
                "[[mdev]]\nuuid = \"62177883-f1bb-47f0-914d-32a22e3a8804\"\nname = \"guest1\"\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn vfio_shorthand_is_the_same_masks() {
        let s = DesiredState::from_toml(
            "[masks]\nvfio_adapters = [5, 6]\nvfio_domains = [4, 0x47, 0xab, 0xff]\n",
        )
        .expect("valid");
        let m = s.masks.expect("masks");
        assert_eq!(m.form, MaskForm::Vfio);
        let hex = DesiredState::from_toml(DESIGN)
            .expect("valid")
            .masks
            .expect("m");
        assert_eq!((m.apmask, m.aqmask), (hex.apmask, hex.aqmask));
        assert_eq!(
            s.to_toml(),
            "[masks]\nvfio_adapters = [5, 6]\nvfio_domains = [4, 0x47, 0xab, 0xff]\n"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("[masks]\napmask = \"-5,-6\"\n", "absolute"),
            ("[masks]\napmask = \"0xff\"\nvfio_domains = [4]\n", "not both"),
            ("[masks]\napmask = \"0X1\"\n", "apmask"),
            ("[masks]\nvfio_adapters = [256]\n", "256"),
            ("[masks]\ncolour = 1\n", "colour"),
            ("[extra]\n", "extra"),
            ("[[mdev]]\nname = \"a\"\nbogus = 1\n", "bogus"),
            ("[[mdev]]\nautostart = true\n", "name or a uuid"),
            ("[[mdev]]\nname = \"a\"\n[[mdev]]\nname = \"a\"\n", "already used"),
            ("[[mdev]]\nuuid = \"62177883-f1bb-47f0-914d-32a22e3a8804\"\n[[mdev]]\nuuid = \"62177883-f1bb-47f0-914d-32a22e3a8804\"\n", "already used"),
            ("[[mdev]]\nname = \"a b\"\n", "a b"),
            ("[[mdev]]\nuuid = \"nope\"\n", "nope"),
            ("[[mdev]]\nname = \"a\"\ndomains = [4, 300]\n", "300"),
            ("not = toml = at all", ""),
        ];
        for (text, needle) in cases {
            let e = DesiredState::from_toml(text).expect_err(text);
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn empty_and_export() {
        assert_eq!(DesiredState::from_toml(""), Ok(DesiredState::default()));
        assert_eq!(DesiredState::default().to_toml(), "");
        let mut d = Definition::new(Uuid::from_u128(2));
        d.domains = ApMask::from_ids([0x10]);
        let mut e = Definition::new(Uuid::from_u128(1));
        e.name = Some("first".into());
        e.autostart = true;
        let s = DesiredState::from_parts(Some((ApMask::full(), ApMask::empty())), &[d, e]);
        assert_eq!(s.mdevs[0].name.as_deref(), Some("first"));
        let text = s.to_toml();
        assert_eq!(DesiredState::from_toml(&text), Ok(s));
        let no_masks = DesiredState::from_parts(None, &[]);
        assert_eq!(no_masks.to_toml(), "");
        // Name-only specs round trip too.
        let spec = MdevSpec {
            uuid: None,
            name: Some("byname".into()),
            autostart: false,
            adapters: ApMask::from_ids([1]),
            domains: ApMask::empty(),
            control_domains: ApMask::empty(),
        };
        let s = DesiredState {
            masks: None,
            mdevs: vec![spec],
        };
        assert_eq!(DesiredState::from_toml(&s.to_toml()), Ok(s));
    }
}
