//! Desired states on the bus: `Export` (the current state, so that
//! `apctl export > f && apctl apply f` changes nothing) and `CheckState`
//! (libap's planner validates without writing).

use apbus::Error;
use libap::apply::{Known, StepLog};
use libap::desired::{DesiredMasks, DesiredState, MaskForm, MdevSpec};
use libap::resync::Stale;
use libap::{ApMask, Host};

use crate::convert::{self, mask_from_ids, IdKind};
use crate::engine::Engine;
use crate::remedy;
use libap::plan::Plan;
use libap::validate::{Finding, Severity};

/// The refusal of a plan: the first error (the sentence names the
/// culprit), and how many more there are.
fn plan_refusal(findings: &[Finding]) -> Error {
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let Some(first) = errors.first() else {
        return Error::Failed("cannot apply the desired state: the planner refused it".into());
    };
    let more = match errors.len() - 1 {
        0 => String::new(),
        1 => " (and 1 more problem; `apctl check FILE` lists all)".to_string(),
        n => format!(" (and {n} more problems; `apctl check FILE` lists all)"),
    };
    Error::new(
        convert::finding_error_kind(first.kind),
        format!(
            "cannot apply the desired state: {}{more}",
            remedy::reason(first)
        ),
    )
}

fn wire(plan: &Plan) -> Vec<apbus::PlanStep> {
    plan.to_wire()
        .into_iter()
        .map(|w| apbus::PlanStep {
            action: w.action,
            target: w.target,
            uuid: w.uuid,
            detail: w.detail,
        })
        .collect()
}

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
        let s = self.state();
        let host = s.host.clone();
        let ap = s.persistent_masks.0.unwrap_or(host.apmask);
        let aq = s.persistent_masks.1.unwrap_or(host.aqmask);
        Ok(apbus::DesiredState {
            has_masks: true,
            apmask: ap.to_string(),
            aqmask: aq.to_string(),
            mdevs: s.defs.values().map(crate::ops::definition_to_bus).collect(),
        })
    }

    /// Plans the way to `state` from `host`.
    fn make_plan(
        &self,
        host: &Host,
        state: &apbus::DesiredState,
        prune: bool,
    ) -> Result<Plan, Error> {
        let desired = from_bus(state)?;
        let (stored, persistent) = {
            let s = self.state();
            (
                s.defs.values().cloned().collect::<Vec<_>>(),
                s.persistent_masks,
            )
        };
        libap::plan::plan(host, &stored, persistent, &desired, prune).map_err(|f| plan_refusal(&f))
    }

    /// `Plan`: the steps `Apply` would run, in order; writes nothing.
    pub async fn plan(
        &self,
        state: apbus::DesiredState,
        prune: bool,
    ) -> Result<Vec<apbus::PlanStep>, Error> {
        let host = self.peek_host(Stale::unannounced()).await?;
        let plan = self.make_plan(&host, &state, prune)?;
        Ok(wire(&plan))
    }

    /// `Apply`: runs the plan under the writer and the s390 configuration
    /// lock; on failure every completed step is undone (libap's executor).
    pub async fn apply(
        &self,
        state: apbus::DesiredState,
        prune: bool,
    ) -> Result<Vec<apbus::PlanStep>, Error> {
        let w = self.change().await?;
        let host = self
            .sync(Stale::before_change().and(Stale::all_mdevs()))
            .await?;
        let plan = self.make_plan(&host, &state, prune)?;
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        let steps = wire(&plan);
        let touched = crate::engine::touched(&plan.steps);
        let known = Known::from_host(&host, &plan.steps);
        let result = self
            .execute_logged(w.held(), plan.steps, StepLog::Info, known)
            .await;
        // The store changed (or was rolled back): read it again.
        crate::restore::load(self).await;
        self.refresh(touched).await;
        match result? {
            Ok(report) => {
                tracing::info!(
                    steps = report.steps.len(),
                    changed = report.changed(),
                    "desired state applied"
                );
                Ok(steps)
            }
            Err(e) => Err(Error::new(
                convert::failure_kind(&e),
                format!("cannot apply the desired state: {e}"),
            )),
        }
    }

    /// `CheckState`: the planner's verdict on reaching `state` (errors that
    /// would refuse `apply`, or the warnings of the end state).
    pub async fn check_state(
        &self,
        state: apbus::DesiredState,
    ) -> Result<Vec<apbus::Finding>, Error> {
        let desired = from_bus(&state)?;
        let host = self.peek_host(Stale::unannounced()).await?;
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
