//! Between libap's file formats (desired state, mdevctl) and the typed
//! values that travel on the bus.

use crate::error::CliError;
use libap::desired::{DesiredMasks, DesiredState, MaskForm, MdevSpec};
use libap::{ApMask, Definition};
use uuid::Uuid;

fn ids(mask: &ApMask) -> Vec<u32> {
    mask.iter().map(u32::from).collect()
}

fn mask_of(what: &str, who: &str, ids: &[u32]) -> Result<ApMask, CliError> {
    let mut m = ApMask::empty();
    for &id in ids {
        let id = u8::try_from(id).map_err(|_| {
            CliError::failed(format!(
                "apd sent {what} {id} for {who}, outside 0..=255; are apctl and apd the same version?"
            ))
        })?;
        m.insert(id);
    }
    Ok(m)
}

fn lists(a: &ApMask, d: &ApMask, c: &ApMask) -> apbus::IdLists {
    apbus::IdLists {
        adapters: ids(a),
        domains: ids(d),
        control_domains: ids(c),
    }
}

/// A parsed desired-state file as `CheckState`/`Plan`/`Apply` take it.
pub fn state_to_bus(s: &DesiredState) -> apbus::DesiredState {
    let (has_masks, apmask, aqmask) = match &s.masks {
        Some(m) => (
            true,
            m.apmask.map(|a| a.to_string()).unwrap_or_default(),
            m.aqmask.map(|q| q.to_string()).unwrap_or_default(),
        ),
        None => (false, String::new(), String::new()),
    };
    apbus::DesiredState {
        has_masks,
        apmask,
        aqmask,
        mdevs: s
            .mdevs
            .iter()
            .map(|m| apbus::Definition {
                uuid: m
                    .uuid
                    .map(|u| u.hyphenated().to_string())
                    .unwrap_or_default(),
                name: m.name.clone().unwrap_or_default(),
                autostart: m.autostart,
                ids: lists(&m.adapters, &m.domains, &m.control_domains),
            })
            .collect(),
    }
}

/// A definition of libap (from mdevctl files) as `Import` takes it.
pub fn definition_to_bus(d: &Definition) -> apbus::Definition {
    apbus::Definition {
        uuid: d.uuid.hyphenated().to_string(),
        name: d.name.clone().unwrap_or_default(),
        autostart: d.autostart,
        ids: lists(&d.adapters, &d.domains, &d.control_domains),
    }
}

/// A definition from apd (export), for the file writers of libap.
pub fn definition_from_bus(d: &apbus::Definition) -> Result<Definition, CliError> {
    let who = if d.name.is_empty() {
        d.uuid.as_str()
    } else {
        d.name.as_str()
    };
    let uuid = Uuid::try_parse(&d.uuid).map_err(|_| {
        CliError::failed(format!(
            "apd sent a definition with the UUID {:?}, which is not a UUID",
            d.uuid
        ))
    })?;
    Ok(Definition {
        uuid,
        name: if d.name.is_empty() {
            None
        } else {
            Some(d.name.clone())
        },
        autostart: d.autostart,
        adapters: mask_of("adapter", who, &d.ids.adapters)?,
        domains: mask_of("domain", who, &d.ids.domains)?,
        control_domains: mask_of("control domain", who, &d.ids.control_domains)?,
    })
}

/// The state apd exports, as libap's desired state (mdevs in apd's order).
pub fn state_from_bus(s: &apbus::DesiredState) -> Result<DesiredState, CliError> {
    let mask = |which: &str, text: &str| -> Result<Option<ApMask>, CliError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        ApMask::parse_absolute(text).map(Some).map_err(|e| {
            CliError::failed(format!("apd exported an {which} apctl cannot read: {e}"))
        })
    };
    let masks = if s.has_masks {
        Some(DesiredMasks {
            apmask: mask("apmask", &s.apmask)?,
            aqmask: mask("aqmask", &s.aqmask)?,
            form: MaskForm::Hex,
        })
    } else {
        None
    };
    let mdevs = s
        .mdevs
        .iter()
        .map(|d| definition_from_bus(d).map(|d| MdevSpec::from_definition(&d)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DesiredState { masks, mdevs })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
[masks]
vfio_adapters = [5, 6]
vfio_domains = [4, 0x47, 0xab, 0xff]

[[mdev]]
uuid = "62177883-f1bb-47f0-914d-32a22e3a8804"
name = "guest1"
autostart = true
adapters = [5, 6]
domains = [4, 0xab]
control_domains = []

[[mdev]]
name = "guest2"
adapters = [5]
domains = [0x47, 0xff]
"#;

    #[test]
    fn desired_state_reaches_the_bus_typed() {
        let s = DesiredState::from_toml(SEED).expect("seed state parses");
        let b = state_to_bus(&s);
        assert!(b.has_masks);
        let ap = ApMask::parse_absolute(&b.apmask).expect("absolute apmask");
        assert!(!ap.contains(5) && !ap.contains(6) && ap.contains(4));
        let aq = ApMask::parse_absolute(&b.aqmask).expect("absolute aqmask");
        assert!(!aq.contains(0x47) && aq.contains(0x48));
        assert_eq!(b.mdevs.len(), 2);
        assert_eq!(b.mdevs[0].uuid, "62177883-f1bb-47f0-914d-32a22e3a8804");
        assert_eq!(b.mdevs[0].ids.domains, vec![4, 0xab]);
        assert!(b.mdevs[0].autostart);
        assert_eq!(b.mdevs[1].uuid, "");
        assert_eq!(b.mdevs[1].name, "guest2");
        assert!(!b.mdevs[1].autostart);
    }

    #[test]
    fn export_round_trips_through_the_file_format() {
        let s = DesiredState::from_toml(SEED).expect("seed state parses");
        let mut b = state_to_bus(&s);
        b.mdevs[1].uuid = "9d0e6f8a-4a43-4f4d-a1d1-3c1c3d1b2a10".into();
        let back = state_from_bus(&b).expect("from bus");
        let text = back.to_toml();
        let again = state_to_bus(&DesiredState::from_toml(&text).expect("exported file parses"));
        assert_eq!(again, b);
    }

    #[test]
    fn bad_values_from_apd_are_refused_not_panicked() {
        let d = apbus::Definition {
            uuid: "not-a-uuid".into(),
            ..Default::default()
        };
        assert!(definition_from_bus(&d).is_err());
        let d = apbus::Definition {
            uuid: "62177883-f1bb-47f0-914d-32a22e3a8804".into(),
            ids: apbus::IdLists {
                adapters: vec![300],
                ..Default::default()
            },
            ..Default::default()
        };
        let e = definition_from_bus(&d).expect_err("300");
        assert!(e.sentence.contains("300"), "{e}");
    }
}
