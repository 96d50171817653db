//! The planner of `apctl apply`: from the live host, the stored definitions
//! and a desired state to an ordered list of steps that never trips the
//! kernel, validated before anything is written.
//!
//! What a desired state means:
//! - **Matching.** A file mdev with a UUID is the stored definition with
//!   that UUID; one without a UUID is the stored definition with its name;
//!   if there is none it gets a new random UUID, which the plan shows.
//! - **Definitions.** The file describes definitions: a file mdev that is
//!   not stored is defined, one that differs is redefined.
//! - **Live mdevs.** An active mdev the file names follows its definition
//!   (its live matrix is made equal to the file's, whether autostart or
//!   not). An autostart mdev that is not active is started (created, then
//!   assigned). A manual mdev that is not active stays stopped.
//! - **Not in the file.** Definitions the file does not name are left
//!   alone, unless `prune`: then they are stopped (if active) and
//!   undefined. Active mdevs that are not defined (made by another tool)
//!   and not named by the file are always left alone, `prune` or not.
//! - **Masks.** `[masks]` (each mask optional) are applied live and stored
//!   as the persistent masks; a mask the file does not give is left alone.
//!
//! The order (kernel spec §2 and §5): pruned mdevs are stopped and
//! undefined first; then definitions are written; then every unassign (so
//! an APQN leaves one mdev before another takes it); then mask bits are
//! cleared (queues given to vfio_ap before they are assigned); then mdevs
//! are created and assigned; last, mask bits are set (queues taken back for
//! the host once no mdev holds them).
//!
//! Every step is simulated on a copy of the host model and checked as the
//! kernel would check it (an assign by [`validate::check_assign`], each mask
//! write by [`validate::check_mask_change_named`] against the other mask's
//! value at that moment), and the end state's definitions by
//! [`validate::check_definitions`]. Any error means `Err(findings)`: the
//! plan is not returned, so nothing can be written.

mod commands;
mod step;

pub use commands::{assignment, configure_adapter, masks, start, stop};
pub use step::{Step, WireStep};

use crate::definition::Definition;
use crate::desired::DesiredState;
use crate::host::{host_owns, paths, Host, Mdev};
use crate::mask::ApMask;
use crate::validate::{self, Asker, AssignKind, Finding, FindingKind, Severity};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// An ordered, validated list of steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The steps, in the order they run. Empty when the host already is in
    /// the desired state.
    pub steps: Vec<Step>,
    /// Warnings about the end state (errors refuse the plan). Errors in
    /// definitions the plan does not touch that already exist before it
    /// (the same finding against the current host) are reported here too.
    pub warnings: Vec<Finding>,
    /// The stored definitions once the plan has run, sorted by UUID.
    pub definitions: Vec<Definition>,
    /// The host model as predicted after the plan.
    pub end: Host,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The steps in wire form.
    pub fn to_wire(&self) -> Vec<WireStep> {
        self.steps.iter().map(Step::to_wire).collect()
    }
}

/// A file mdev resolved to its definition.
struct Resolved<'a> {
    /// What the file wants stored.
    def: Definition,
    /// What is stored now under that UUID, if anything.
    stored: Option<&'a Definition>,
}

fn error(kind: FindingKind, mdevs: Vec<(Uuid, Option<String>)>, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        kind,
        apqns: Vec::new(),
        mdevs,
        reason: message.clone(),
        message,
        remedy: None,
    }
}

/// A UUID that no stored definition, live mdev or file mdev uses.
fn fresh_uuid(taken: &BTreeSet<Uuid>) -> Uuid {
    loop {
        let u = Uuid::new_v4();
        if !taken.contains(&u) {
            return u;
        }
    }
}

/// Resolve every file mdev to a definition (matching by UUID, else name).
fn resolve<'a>(
    host: &Host,
    stored: &'a [Definition],
    desired: &DesiredState,
    errors: &mut Vec<Finding>,
) -> Vec<Resolved<'a>> {
    let mut taken: BTreeSet<Uuid> = stored.iter().map(|d| d.uuid).collect();
    taken.extend(host.mdevs.keys().copied());
    taken.extend(desired.mdevs.iter().filter_map(|m| m.uuid));
    let mut out: Vec<Resolved<'a>> = Vec::with_capacity(desired.mdevs.len());
    for (i, spec) in desired.mdevs.iter().enumerate() {
        let found = match (spec.uuid, &spec.name) {
            (Some(u), _) => stored.iter().find(|d| d.uuid == u),
            (None, Some(n)) => stored.iter().find(|d| d.name.as_deref() == Some(n)),
            (None, None) => {
                errors.push(error(
                    FindingKind::InvalidName,
                    Vec::new(),
                    format!(
                        "[[mdev]] #{} has neither a name nor a uuid, so apply cannot match it; give it a name",
                        i + 1
                    ),
                ));
                continue;
            }
        };
        let uuid = match (spec.uuid, found) {
            (Some(u), _) => u,
            (None, Some(d)) => d.uuid,
            (None, None) => {
                let u = fresh_uuid(&taken);
                taken.insert(u);
                u
            }
        };
        let def = spec.to_definition(uuid);
        if let Some(first) = out.iter().find(|r| r.def.uuid == uuid) {
            errors.push(error(
                FindingKind::DuplicateUuid,
                vec![(uuid, def.name.clone())],
                format!(
                    "{} and {} in the file are the same mdev {}; keep one [[mdev]] table for it",
                    spec.label(),
                    first.def.label(),
                    uuid.hyphenated()
                ),
            ));
            continue;
        }
        out.push(Resolved { def, stored: found });
    }
    out
}

/// The planner's working copy of the host: each step is checked as the
/// kernel would check it, then applied.
struct Simulation<'n> {
    host: Host,
    names: &'n BTreeMap<Uuid, Option<String>>,
    steps: Vec<Step>,
    /// Refusals, with the mdev of the step refused (None for mask writes).
    errors: Vec<(Option<Uuid>, Finding)>,
}

impl Simulation<'_> {
    fn name_of(&self, uuid: Uuid) -> Option<String> {
        self.names.get(&uuid).cloned().flatten()
    }

    fn push(&mut self, step: Step) {
        let names_map = self.names;
        let names = move |u: Uuid| names_map.get(&u).cloned().flatten();
        match &step {
            Step::SetMasks { apmask, aqmask, .. } => self.set_masks(*apmask, *aqmask),
            Step::Create { uuid, name } => {
                if let Err(f) =
                    validate::check_vfio_ap(&self.host, *uuid, name.as_deref(), Asker::Apply)
                {
                    self.errors.push((Some(*uuid), f));
                }
                self.host.mdevs.insert(
                    *uuid,
                    Mdev {
                        uuid: *uuid,
                        matrix: Default::default(),
                        guest_matrix: None,
                        in_use: false,
                    },
                );
            }
            Step::Assign { uuid, kind, id, .. } => {
                if let Err(f) = validate::check_assign(&self.host, &names, *uuid, *kind, *id) {
                    self.errors.push((step.uuid(), f));
                }
                self.set_id(*uuid, *kind, *id, true);
            }
            Step::Unassign { uuid, kind, id, .. } => self.set_id(*uuid, *kind, *id, false),
            Step::Remove { uuid, name, .. } => {
                if let Err(f) =
                    validate::check_remove(&self.host, *uuid, name.as_deref(), Asker::Apply)
                {
                    self.errors.push((Some(*uuid), f));
                }
                self.host.mdevs.remove(uuid);
            }
            Step::ConfigureAdapter { adapter, on } => {
                if let Some(card) = self.host.cards_mut().get_mut(adapter) {
                    card.config = *on;
                }
            }
            Step::StoreMasks { .. }
            | Step::Define(_)
            | Step::Redefine { .. }
            | Step::Undefine(_) => {}
        }
        self.steps.push(step);
    }

    /// Two writes, apmask first: the kernel checks each against the other
    /// mask's value at that moment (kernel spec §2).
    fn set_masks(&mut self, apmask: ApMask, aqmask: ApMask) {
        let names_map = self.names;
        let names = move |u: Uuid| names_map.get(&u).cloned().flatten();
        if apmask != self.host.apmask {
            if let Err(f) =
                validate::check_mask_change_named(&self.host, &names, apmask, self.host.aqmask)
            {
                self.errors.push((None, f));
            }
            self.host.apmask = apmask;
        }
        if aqmask != self.host.aqmask {
            if let Err(f) =
                validate::check_mask_change_named(&self.host, &names, self.host.apmask, aqmask)
            {
                self.errors.push((None, f));
            }
            self.host.aqmask = aqmask;
        }
        self.rebind();
    }

    /// Assigns (or unassigns) one id in the working copy; the kernel
    /// recomputes the guest matrix, predicted with the full filter.
    fn set_id(&mut self, uuid: Uuid, kind: AssignKind, id: u8, assigned: bool) {
        if let Some(m) = self.host.mdevs.get_mut(&uuid) {
            let set = match kind {
                AssignKind::Adapter => &mut m.matrix.adapters,
                AssignKind::Domain => &mut m.matrix.domains,
                AssignKind::ControlDomain => &mut m.matrix.control_domains,
            };
            if assigned {
                set.insert(id);
            } else {
                set.remove(id);
            }
            m.guest_matrix = None;
        }
    }

    /// Queue bindings after a mask change (kernel spec §3): host-owned
    /// queues go to cex4queue, the others to vfio_ap while it is loaded.
    fn rebind(&mut self) {
        let (apmask, aqmask, loaded) =
            (self.host.apmask, self.host.aqmask, self.host.vfio_ap_loaded);
        let (cex4queue, vfio_ap): (std::sync::Arc<str>, std::sync::Arc<str>) =
            ("cex4queue".into(), paths::VFIO_AP_DRIVER.into());
        for q in self.host.queues_mut().values_mut() {
            let driver = if host_owns(apmask, aqmask, q.apqn) {
                Some(cex4queue.clone())
            } else if loaded {
                Some(vfio_ap.clone())
            } else {
                None
            };
            q.driver = driver;
        }
    }

    /// Unassign what `live` has and `want` lacks.
    fn unassign_extra(&mut self, uuid: Uuid, live: &crate::host::Matrix, want: &Definition) {
        let name = self.name_of(uuid);
        for (kind, have, keep) in [
            (AssignKind::Adapter, live.adapters, want.adapters),
            (AssignKind::Domain, live.domains, want.domains),
            (
                AssignKind::ControlDomain,
                live.control_domains,
                want.control_domains,
            ),
        ] {
            for id in have.difference(keep).iter() {
                self.push(Step::Unassign {
                    uuid,
                    name: name.clone(),
                    kind,
                    id,
                });
            }
        }
    }

    /// Assign what `want` has and the live mdev lacks.
    fn assign_missing(&mut self, uuid: Uuid, want: &Definition) {
        let name = self.name_of(uuid);
        let live = self
            .host
            .mdevs
            .get(&uuid)
            .map(|m| m.matrix)
            .unwrap_or_default();
        for (kind, have, need) in [
            (AssignKind::Adapter, live.adapters, want.adapters),
            (AssignKind::Domain, live.domains, want.domains),
            (
                AssignKind::ControlDomain,
                live.control_domains,
                want.control_domains,
            ),
        ] {
            for id in need.difference(have).iter() {
                self.push(Step::Assign {
                    uuid,
                    name: name.clone(),
                    kind,
                    id,
                });
            }
        }
    }
}

/// Whether a finding names any of `touched`.
fn touches(f: &Finding, touched: &BTreeSet<Uuid>) -> bool {
    f.mdevs.iter().any(|(u, _)| touched.contains(u))
}

/// Plan the way from the live `host`, the `stored` definitions and the
/// persistent masks to `desired` (see the module documentation for what a
/// desired state means). With `prune`, stored definitions the file does
/// not name are stopped and undefined.
///
/// Returns the validated plan, or every finding (errors first) when any
/// step or the end state would be refused.
pub fn plan(
    host: &Host,
    stored: &[Definition],
    persistent_masks: (Option<ApMask>, Option<ApMask>),
    desired: &DesiredState,
    prune: bool,
) -> Result<Plan, Vec<Finding>> {
    let mut errors = Vec::new();
    let resolved = resolve(host, stored, desired, &mut errors);
    let named: BTreeSet<Uuid> = resolved.iter().map(|r| r.def.uuid).collect();
    let unnamed: Vec<&Definition> = stored.iter().filter(|d| !named.contains(&d.uuid)).collect();
    let pruned: Vec<&Definition> = if prune { unnamed.clone() } else { Vec::new() };

    let mut end_defs: Vec<Definition> = resolved.iter().map(|r| r.def.clone()).collect();
    if !prune {
        end_defs.extend(unnamed.iter().map(|d| (*d).clone()));
    }
    end_defs.sort_by_key(|d| d.uuid);

    // Names for messages: the file's, else the stored ones.
    let mut names: BTreeMap<Uuid, Option<String>> =
        stored.iter().map(|d| (d.uuid, d.name.clone())).collect();
    names.extend(resolved.iter().map(|r| (r.def.uuid, r.def.name.clone())));

    let mut sim = Simulation {
        host: host.clone(),
        names: &names,
        steps: Vec::new(),
        errors: errors.into_iter().map(|f| (None, f)).collect(),
    };

    store_steps(
        &mut sim,
        host,
        &resolved,
        &pruned,
        desired,
        persistent_masks,
    );
    live_steps(&mut sim, host, &resolved, desired);

    // The end state's definitions, against the end host.
    let touched: BTreeSet<Uuid> = named
        .iter()
        .chain(pruned.iter().map(|d| &d.uuid))
        .copied()
        .collect();
    let (def_errors, warnings) = end_state_findings(host, stored, &sim.host, &end_defs, &touched);

    let Simulation {
        host: end,
        steps,
        errors,
        ..
    } = sim;
    if !errors.is_empty() || !def_errors.is_empty() {
        return Err(refusals(errors, def_errors, warnings));
    }
    Ok(Plan {
        steps,
        warnings: dedup(warnings),
        definitions: end_defs,
        end,
    })
}

/// The end state's definitions checked against the end host: (errors,
/// warnings). An error that was already there before, in definitions the
/// plan does not touch, is only a warning: reported, but not a reason to
/// refuse the file.
fn end_state_findings(
    host: &Host,
    stored: &[Definition],
    end_host: &Host,
    end_defs: &[Definition],
    touched: &BTreeSet<Uuid>,
) -> (Vec<Finding>, Vec<Finding>) {
    // Same order as end_defs, so the same problem gives the same sentence.
    let mut stored_sorted = stored.to_vec();
    stored_sorted.sort_by_key(|d| d.uuid);
    let before: BTreeSet<String> = validate::check_definitions(Some(host), &stored_sorted)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.message)
        .collect();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for mut f in validate::check_definitions(Some(end_host), end_defs) {
        if f.severity == Severity::Error && !touches(&f, touched) && before.contains(&f.message) {
            f.severity = Severity::Warning;
        }
        match f.severity {
            Severity::Error => errors.push(f),
            Severity::Warning => warnings.push(f),
        }
    }
    (errors, warnings)
}

/// Every finding of a refused plan, errors first, each said once: the
/// steps' errors (`(mdev, finding)`), the end state's errors, then the
/// warnings.
fn refusals(
    step_errors: Vec<(Option<Uuid>, Finding)>,
    def_errors: Vec<Finding>,
    warnings: Vec<Finding>,
) -> Vec<Finding> {
    // A definition that is host-owned or out of range also fails at each
    // of its assigns; its definition's finding says it once.
    let said_by_definition = |uuid: &Option<Uuid>, f: &Finding| {
        matches!(f.kind, FindingKind::HostOwned | FindingKind::OutOfRange)
            && def_errors
                .iter()
                .any(|d| d.kind == f.kind && d.mdevs.iter().any(|(u, _)| Some(*u) == *uuid))
    };
    let mut all: Vec<Finding> = step_errors
        .into_iter()
        .filter(|(uuid, f)| !said_by_definition(uuid, f))
        .map(|(_, f)| f)
        .collect();
    all.extend(def_errors);
    let mut all = dedup(all);
    all.extend(dedup(warnings));
    all
}

/// Steps 1–3 of a plan: stop and forget pruned mdevs, write definitions,
/// store the persistent masks.
fn store_steps(
    sim: &mut Simulation<'_>,
    host: &Host,
    resolved: &[Resolved<'_>],
    pruned: &[&Definition],
    desired: &DesiredState,
    persistent_masks: (Option<ApMask>, Option<ApMask>),
) {
    // 1. Stop and forget pruned mdevs: their APQNs are free from now on.
    for d in pruned {
        if let Some(m) = host.mdevs.get(&d.uuid) {
            sim.push(Step::Remove {
                uuid: d.uuid,
                name: d.name.clone(),
                matrix: m.matrix,
            });
        }
        sim.push(Step::Undefine((*d).clone()));
    }

    // 2. Definitions.
    for r in resolved {
        match r.stored {
            None => sim.push(Step::Define(r.def.clone())),
            Some(old) if *old != r.def => sim.push(Step::Redefine {
                old: old.clone(),
                new: r.def.clone(),
            }),
            Some(_) => {}
        }
    }

    // 3. Persistent masks.
    let desired_masks = desired.masks.unwrap_or_default();
    if desired.masks.is_some() {
        let new = (
            desired_masks.apmask.or(persistent_masks.0),
            desired_masks.aqmask.or(persistent_masks.1),
        );
        if new != persistent_masks {
            sim.push(Step::StoreMasks {
                apmask: new.0,
                aqmask: new.1,
            });
        }
    }
}

/// Steps 4–7 of a plan: unassign, give queues to vfio_ap, start and
/// assign, take queues back for the host.
fn live_steps(
    sim: &mut Simulation<'_>,
    host: &Host,
    resolved: &[Resolved<'_>],
    desired: &DesiredState,
) {
    let desired_masks = desired.masks.unwrap_or_default();
    // 4. Every unassign before any assign: an APQN moving between mdevs
    // leaves the first one before the second one takes it.
    for r in resolved {
        if let Some(m) = host.mdevs.get(&r.def.uuid) {
            let live = m.matrix;
            sim.unassign_extra(r.def.uuid, &live, &r.def);
        }
    }

    // 5. Give queues to vfio_ap (clear mask bits) before assigning them.
    let target_ap = desired_masks.apmask.unwrap_or(host.apmask);
    let target_aq = desired_masks.aqmask.unwrap_or(host.aqmask);
    let (clear, set) = commands::mask_halves(host.apmask, host.aqmask, target_ap, target_aq);
    if let Some(step) = clear {
        sim.push(step);
    }

    // 6. Start autostart mdevs that are not active; assign what is missing.
    for r in resolved {
        let uuid = r.def.uuid;
        let active = host.mdevs.contains_key(&uuid);
        if !active && !r.def.autostart {
            continue;
        }
        if !active {
            sim.push(Step::Create {
                uuid,
                name: r.def.name.clone(),
            });
        }
        sim.assign_missing(uuid, &r.def);
    }

    // 7. Take queues back for the host (set mask bits) once no mdev holds them.
    if let Some(step) = set {
        sim.push(step);
    }
}

/// Drop findings whose sentence was already given.
fn dedup(findings: Vec<Finding>) -> Vec<Finding> {
    let mut seen = BTreeSet::new();
    findings
        .into_iter()
        .filter(|f| seen.insert(f.message.clone()))
        .collect()
}
