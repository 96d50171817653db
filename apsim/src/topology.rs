//! The host topology file: the LPAR's AP configuration the simulator boots
//! with (design.md, "Host topology file").

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bits::Bits;
use crate::parse;

/// Why a topology file was refused; every variant names the culprit.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read topology file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("topology is not valid TOML or has an unknown key: {0}")]
    Toml(String),
    #[error("topology key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> TopologyError {
    TopologyError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// What an adapter does: the letter of its type (`CEX7C`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `A`: accelerator.
    Accel,
    /// `C`: CCA coprocessor.
    Cca,
    /// `P`: EP11 coprocessor.
    Ep11,
}

impl Mode {
    /// The `MODE=` uevent value.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Accel => "accel",
            Mode::Cca => "cca",
            Mode::Ep11 => "ep11",
        }
    }

    fn letter(self) -> char {
        match self {
            Mode::Accel => 'A',
            Mode::Cca => 'C',
            Mode::Ep11 => 'P',
        }
    }
}

/// An adapter type such as `CEX7C`: generation 2..=8 and mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CardType {
    pub generation: u8,
    pub mode: Mode,
}

impl CardType {
    /// Parses `CEX<gen><A|C|P>`; CEX2 and CEX3 have no EP11 mode.
    pub fn parse(text: &str) -> Option<CardType> {
        let rest = text.strip_prefix("CEX")?;
        let mut chars = rest.chars();
        let generation = u8::try_from(chars.next()?.to_digit(10)?).ok()?;
        let mode = match chars.next()? {
            'A' => Mode::Accel,
            'C' => Mode::Cca,
            'P' => Mode::Ep11,
            _ => return None,
        };
        if chars.next().is_some() || !(2..=8).contains(&generation) {
            return None;
        }
        if generation < 4 && mode == Mode::Ep11 {
            return None;
        }
        Some(CardType { generation, mode })
    }

    /// `hwtype`: CEX2A=6 ... CEX4=10 ... CEX8=14.
    pub fn hwtype(self) -> u8 {
        match (self.generation, self.mode) {
            (2, Mode::Accel) => 6,
            (2, _) => 7,
            (3, Mode::Accel) => 8,
            (3, _) => 9,
            (g, _) => g + 6,
        }
    }

    /// The kernel makes card devices for CEX4 and newer only.
    pub fn has_card(self) -> bool {
        self.generation >= 4
    }
}

impl fmt::Display for CardType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CEX{}{}", self.generation, self.mode.letter())
    }
}

/// One adapter of the LPAR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSpec {
    pub id: u8,
    pub card_type: CardType,
    /// false: the adapter is in standby (card `config` 0).
    pub config: bool,
    /// true: the adapter is check-stopped.
    pub chkstop: bool,
}

/// A parsed, validated topology.
#[derive(Clone, Debug)]
pub struct Topology {
    pub(crate) max_adapter_id: u8,
    pub(crate) max_domain_id: u8,
    pub(crate) usage_domains: Bits,
    pub(crate) control_domains: Bits,
    pub(crate) apmask: Bits,
    pub(crate) aqmask: Bits,
    pub(crate) vfio_ap_loaded: bool,
    pub(crate) adapters: Vec<AdapterSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    max_adapter_id: Option<i64>,
    max_domain_id: Option<i64>,
    #[serde(default)]
    usage_domains: Vec<i64>,
    #[serde(default)]
    control_domains: Vec<i64>,
    apmask: Option<String>,
    aqmask: Option<String>,
    vfio_ap_loaded: Option<bool>,
    #[serde(default)]
    adapter: Vec<RawAdapter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdapter {
    id: i64,
    #[serde(rename = "type")]
    card_type: String,
    config: Option<bool>,
    chkstop: Option<bool>,
}

fn id_in_range(key: &str, value: i64, max: u8) -> Result<u8, TopologyError> {
    u8::try_from(value)
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| invalid(key, format!("{value} is outside 0..={max}")))
}

fn id_list(key: &str, values: &[i64], max: u8) -> Result<Bits, TopologyError> {
    let mut bits = Bits::empty();
    for v in values {
        bits.set(id_in_range(key, *v, max)?);
    }
    Ok(bits)
}

fn boot_mask(key: &str, text: Option<&str>) -> Result<Bits, TopologyError> {
    match text {
        None => Ok(Bits::full()),
        // The boot parameter syntax: §2, starting from all zeros.
        Some(t) => parse::mask_str(t.as_bytes(), Bits::empty()).map_err(|_| {
            invalid(
                key,
                format!("{t:?} is not a mask in the kernel's apmask/aqmask syntax"),
            )
        }),
    }
}

impl Topology {
    /// Parses and validates a topology file's text.
    pub fn from_toml_str(text: &str) -> Result<Topology, TopologyError> {
        let raw: RawTopology =
            toml::from_str(text).map_err(|e| TopologyError::Toml(e.to_string()))?;
        let max_adapter_id = id_in_range("max_adapter_id", raw.max_adapter_id.unwrap_or(255), 255)?;
        let max_domain_id = id_in_range("max_domain_id", raw.max_domain_id.unwrap_or(255), 255)?;
        let usage_domains = id_list("usage_domains", &raw.usage_domains, max_domain_id)?;
        let control_domains = id_list("control_domains", &raw.control_domains, max_domain_id)?;
        let apmask = boot_mask("apmask", raw.apmask.as_deref())?;
        let aqmask = boot_mask("aqmask", raw.aqmask.as_deref())?;
        let mut seen = BTreeSet::new();
        let mut adapters = Vec::with_capacity(raw.adapter.len());
        for (n, a) in raw.adapter.iter().enumerate() {
            let key = format!("adapter[{n}].id");
            let id = id_in_range(&key, a.id, max_adapter_id)?;
            if !seen.insert(id) {
                return Err(invalid(key, format!("adapter {id} is listed twice")));
            }
            let card_type = CardType::parse(&a.card_type).ok_or_else(|| {
                invalid(
                    format!("adapter[{n}].type"),
                    format!(
                        "{:?} is not an adapter type like CEX7C, CEX8A or CEX6P (CEX2..CEX8, A/C/P)",
                        a.card_type
                    ),
                )
            })?;
            adapters.push(AdapterSpec {
                id,
                card_type,
                config: a.config.unwrap_or(true),
                chkstop: a.chkstop.unwrap_or(false),
            });
        }
        adapters.sort_by_key(|a| a.id);
        Ok(Topology {
            max_adapter_id,
            max_domain_id,
            usage_domains,
            control_domains,
            apmask,
            aqmask,
            vfio_ap_loaded: raw.vfio_ap_loaded.unwrap_or(true),
            adapters,
        })
    }

    /// Reads and parses a topology file.
    pub fn from_file(path: &Path) -> Result<Topology, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Topology::from_toml_str(&text)
    }

    /// The LPAR's adapters, ascending by id.
    pub fn adapters(&self) -> &[AdapterSpec] {
        &self.adapters
    }

    /// `ap_max_adapter_id`.
    pub fn max_adapter_id(&self) -> u8 {
        self.max_adapter_id
    }

    /// `ap_max_domain_id`.
    pub fn max_domain_id(&self) -> u8 {
        self.max_domain_id
    }

    /// The LPAR's usage domains (AQM), ascending.
    pub fn usage_domains(&self) -> Vec<u8> {
        self.usage_domains.iter().collect()
    }

    /// The LPAR's control domains (ADM), ascending.
    pub fn control_domains(&self) -> Vec<u8> {
        self.control_domains.iter().collect()
    }

    /// Whether the vfio_ap module is loaded at boot.
    pub fn vfio_ap_loaded(&self) -> bool {
        self.vfio_ap_loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
usage_domains = [0, 4, 0x47, 0xab, 0xff]
control_domains = [0, 4, 0x47, 0xab, 0xff]
[[adapter]]
id = 5
type = "CEX7C"
[[adapter]]
id = 6
type = "CEX8P"
config = false
"#;

    #[test]
    fn parses_the_design_example() {
        let t = Topology::from_toml_str(SEED).expect("valid topology");
        assert_eq!(t.max_adapter_id(), 255);
        assert_eq!(t.usage_domains(), vec![0, 4, 0x47, 0xab, 0xff]);
        assert_eq!(t.adapters().len(), 2);
        assert_eq!(t.adapters()[0].card_type.to_string(), "CEX7C");
        assert_eq!(t.adapters()[0].card_type.hwtype(), 13);
        assert!(!t.adapters()[1].config);
        assert!(t.vfio_ap_loaded());
        assert_eq!(t.apmask, Bits::full());
    }

    fn err(text: &str) -> String {
        Topology::from_toml_str(text)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err("max_adapter_id = 256").contains("max_adapter_id"));
        assert!(err("max_domain_id = 15\nusage_domains = [16]").contains("usage_domains"));
        assert!(err("control_domains = [-1]").contains("control_domains"));
        assert!(err("[[adapter]]\nid = 5\ntype = \"CEX9C\"").contains("adapter[0].type"));
        assert!(err("[[adapter]]\nid = 5\ntype = \"CEX3P\"").contains("CEX3P"));
        assert!(err("[[adapter]]\nid = 300\ntype = \"CEX7C\"").contains("adapter[0].id"));
        assert!(err(
            "[[adapter]]\nid = 5\ntype = \"CEX7C\"\n[[adapter]]\nid = 5\ntype = \"CEX7A\""
        )
        .contains("twice"));
        assert!(err("apmask = \"0X1\"").contains("apmask"));
        assert!(err("colour = 1").contains("colour"));
        assert!(err("usage_domains = \"4\"").contains("usage_domains"));
    }

    #[test]
    fn boot_masks_start_from_zero() {
        let t = Topology::from_toml_str("apmask = \"+1-3\"\naqmask = \"0x8\"").expect("valid");
        assert_eq!(t.apmask.iter().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(t.aqmask.iter().collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn card_types() {
        for (text, hw) in [
            ("CEX4A", 10),
            ("CEX5C", 11),
            ("CEX6P", 12),
            ("CEX7C", 13),
            ("CEX8A", 14),
            ("CEX3C", 9),
        ] {
            let t = CardType::parse(text).expect("valid type");
            assert_eq!(t.hwtype(), hw);
            assert_eq!(t.to_string(), text);
        }
        for bad in [
            "", "CEX", "CEX7", "CEX7X", "CEX77C", "cex7c", "CEX1C", "CEX7CC",
        ] {
            assert!(CardType::parse(bad).is_none(), "{bad}");
        }
    }
}
