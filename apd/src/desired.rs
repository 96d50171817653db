//! Desired states on the bus: `Export` (the current state, so that
//! `apctl export > f && apctl apply f` changes nothing) and `CheckState`
//! (libap's planner validates without writing).

use apbus::Error;
use libap::desired::{DesiredMasks, DesiredState, MaskForm, MdevSpec};
use libap::ApMask;

use crate::convert::{self, mask_from_ids, IdKind};
use crate::engine::Engine;

/// A bus desired state as libap's: masks absolute, ids 0..=255 (the host's
/// maxima are the planner's verdict, with the culprit named).
pub fn from_bus(s: &apbus::DesiredState) -> Result<DesiredState, Error> {
    let masks = if s.has_masks {
        let parse = |name: &str, text: &str| -> Result<Option<ApMask>, Error> {
            if text.is_empty() {
                return Ok(None);
            }
            if text.len() > 4096 {
                return Err(Error::Invalid(format!(
                    "desired state: the {name} is {} bytes long; give 0x and 64 hex digits",
                    text.len()
                )));
            }
            ApMask::parse_absolute(text)
                .map(Some)
                .map_err(|e| Error::Invalid(format!("desired state: {name}: {e}")))
        };
        Some(DesiredMasks {
            apmask: parse("apmask", &s.apmask)?,
            aqmask: parse("aqmask", &s.aqmask)?,
            form: MaskForm::Hex,
        })
    } else {
        None
    };
    if s.mdevs.len() > 65536 {
        return Err(Error::Invalid(format!(
            "desired state: {} mdevs is more than the kernel's 65536",
            s.mdevs.len()
        )));
    }
    let mut mdevs = Vec::with_capacity(s.mdevs.len());
    for (i, d) in s.mdevs.iter().enumerate() {
        let who = match (d.name.as_str(), d.uuid.as_str()) {
            ("", "") => format!("mdev #{}", i + 1),
            ("", u) => u.to_string(),
            (n, _) => n.to_string(),
        };
        let uuid = if d.uuid.is_empty() {
            None
        } else {
            Some(convert::parse_uuid(&d.uuid).ok_or_else(|| {
                Error::Invalid(format!("desired state: {who}: {:?} is not a UUID", d.uuid))
            })?)
        };
        let name = if d.name.is_empty() {
            None
        } else {
            libap::definition::validate_name(&d.name)
                .map_err(|e| Error::Invalid(format!("desired state: {who}: {e}")))?;
            Some(d.name.clone())
        };
        let action = format!("use the desired state: {who}");
        mdevs.push(MdevSpec {
            uuid,
            name,
            autostart: d.autostart,
            adapters: mask_from_ids(&d.ids.adapters, IdKind::Adapter, 255, &action)?,
            domains: mask_from_ids(&d.ids.domains, IdKind::Domain, 255, &action)?,
            control_domains: mask_from_ids(
                &d.ids.control_domains,
                IdKind::ControlDomain,
                255,
                &action,
            )?,
        });
    }
    Ok(DesiredState { masks, mdevs })
}

impl Engine {
    /// `Export`: the persistent masks (the live ones where none is stored)
    /// and every definition, sorted by UUID.
    pub async fn export(&self) -> Result<apbus::DesiredState, Error> {
        let host = self.read_host().await?;
        let s = self.state();
        let ap = s.persistent_masks.0.unwrap_or(host.apmask);
        let aq = s.persistent_masks.1.unwrap_or(host.aqmask);
        Ok(apbus::DesiredState {
            has_masks: true,
            apmask: ap.to_string(),
            aqmask: aq.to_string(),
            mdevs: s.defs.values().map(crate::ops::definition_to_bus).collect(),
        })
    }

    /// `CheckState`: the planner's verdict on reaching `state` (errors that
    /// would refuse `apply`, or the warnings of the end state).
    pub async fn check_state(
        &self,
        state: apbus::DesiredState,
    ) -> Result<Vec<apbus::Finding>, Error> {
        let desired = from_bus(&state)?;
        let host = self.read_host().await?;
        let (stored, persistent) = {
            let s = self.state();
            (
                s.defs.values().cloned().collect::<Vec<_>>(),
                s.persistent_masks,
            )
        };
        let findings = match libap::plan::plan(&host, &stored, persistent, &desired, false) {
            Ok(plan) => plan.warnings,
            Err(findings) => findings,
        };
        Ok(findings.iter().map(convert::finding).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apbus::{Definition, IdLists};

    fn state() -> apbus::DesiredState {
        apbus::DesiredState {
            has_masks: true,
            apmask: format!("0x{}", "f".repeat(64)),
            aqmask: String::new(),
            mdevs: vec![Definition {
                uuid: String::new(),
                name: "guest1".into(),
                autostart: true,
                ids: IdLists {
                    adapters: vec![5, 6],
                    domains: vec![4, 0xab],
                    control_domains: vec![],
                },
            }],
        }
    }

    #[test]
    fn converts_a_good_state() {
        let d = from_bus(&state()).expect("valid");
        let m = d.masks.expect("masks");
        assert!(m.apmask.is_some_and(|a| a.is_full()));
        assert!(m.aqmask.is_none());
        assert_eq!(d.mdevs[0].name.as_deref(), Some("guest1"));
        assert!(d.mdevs[0].uuid.is_none());
        assert!(d.mdevs[0].domains.contains(0xab));
    }

    #[test]
    fn refuses_bad_input_with_named_errors() {
        let mut s = state();
        s.apmask = "-5".into();
        assert_eq!(
            from_bus(&s).expect_err("relative").kind(),
            apbus::ErrorKind::Invalid
        );
        let mut s = state();
        s.mdevs[0].uuid = "nope".into();
        assert_eq!(
            from_bus(&s).expect_err("uuid").kind(),
            apbus::ErrorKind::Invalid
        );
        let mut s = state();
        s.mdevs[0].ids.domains.push(256);
        assert_eq!(
            from_bus(&s).expect_err("id").kind(),
            apbus::ErrorKind::OutOfRange
        );
        let mut s = state();
        s.mdevs[0].name = "a/b".into();
        assert_eq!(
            from_bus(&s).expect_err("name").kind(),
            apbus::ErrorKind::Invalid
        );
    }
}
