//! Verdicts before anything is written: the kernel's own (kernel spec §2,
//! §5, §6), predicted from the host model, and ours (definitions that
//! cannot all start, ids the LPAR lacks, ...). Each finding is a typed value
//! with a severity and one sentence naming the APQNs, the mdevs (name and
//! UUID) and what to do.

use crate::apqn::Apqn;
use crate::definition::label;
use crate::host::{apqns_of, Host, Matrix};
use crate::ids::{format_ids, IdStyle};
use crate::mask::ApMask;
use uuid::Uuid;

mod definitions;
mod finding;
mod refusals;

pub use definitions::check_definitions;
pub use finding::{Finding, FindingKind, Refusal, Remedy, Severity};
pub use refusals::{check_remove, check_vfio_ap, ids_within, Asker};

/// Which attribute an assignment writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssignKind {
    /// `assign_adapter`.
    Adapter,
    /// `assign_domain`.
    Domain,
    /// `assign_control_domain`.
    ControlDomain,
}

impl AssignKind {
    /// `adapter 5`, `domain 0x47`, `control domain 0x04`.
    pub fn describe(&self, id: u8) -> String {
        match self {
            AssignKind::Adapter => format!("adapter {id}"),
            AssignKind::Domain => format!("domain 0x{id:02x}"),
            AssignKind::ControlDomain => format!("control domain 0x{id:02x}"),
        }
    }

    /// The sysfs attribute suffix: `adapter`, `domain`, `control_domain`.
    pub fn attr(&self) -> &'static str {
        match self {
            AssignKind::Adapter => "adapter",
            AssignKind::Domain => "domain",
            AssignKind::ControlDomain => "control_domain",
        }
    }
}

/// A valid assignment: already there, or a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignVerdict {
    /// Already assigned: the kernel succeeds and changes nothing.
    NoOp,
    /// The kernel will accept it.
    Ok,
}

/// Names for UUIDs, for messages.
pub type Names<'a> = &'a dyn Fn(Uuid) -> Option<String>;

/// No names known: messages use UUIDs.
pub fn no_names(_: Uuid) -> Option<String> {
    None
}

fn target_label(names: Names<'_>, uuid: Uuid) -> String {
    names(uuid).unwrap_or_else(|| uuid.hyphenated().to_string())
}

const MAX_LISTED: usize = 8;

/// `05.0004`, `05.0004 and 06.0004`, `05.0004, 05.00ab and 3 more`.
fn list_apqns(apqns: &[Apqn]) -> String {
    let shown: Vec<String> = apqns.iter().take(MAX_LISTED).map(Apqn::to_string).collect();
    let rest = apqns.len().saturating_sub(MAX_LISTED);
    match (shown.len(), rest) {
        (0, _) => String::new(),
        (1, _) => shown[0].clone(),
        (_, 0) => {
            let (last, init) = shown
                .split_last()
                .map(|(l, i)| (l.clone(), i.join(", ")))
                .unwrap_or_default();
            format!("{init} and {last}")
        }
        (_, r) => format!("{} and {r} more", shown.join(", ")),
    }
}

fn queues_word(n: usize) -> (&'static str, &'static str) {
    if n == 1 {
        ("queue", "is")
    } else {
        ("queues", "are")
    }
}

/// "queue 05.0004 is already assigned to guest1 (uuid)" for each holder.
fn assigned_elsewhere_reason(groups: &[(Uuid, Option<String>, Vec<Apqn>)]) -> String {
    assigned_reason(groups, "already assigned")
}

fn assigned_reason(groups: &[(Uuid, Option<String>, Vec<Apqn>)], verb: &str) -> String {
    let mut parts = Vec::new();
    for (i, (uuid, name, apqns)) in groups.iter().enumerate() {
        let (q, is) = queues_word(apqns.len());
        let who = label(*uuid, name.as_deref());
        if i == 0 {
            parts.push(format!("{q} {} {is} {verb} to {who}", list_apqns(apqns)));
        } else {
            parts.push(format!("{q} {} to {who}", list_apqns(apqns)));
        }
    }
    match parts.len() {
        0 => String::new(),
        1 => parts.remove(0),
        _ => {
            let last = parts.pop().unwrap_or_default();
            format!("{} and {last}", parts.join(", "))
        }
    }
}

fn host_owned_reason(apqns: &[Apqn]) -> String {
    let (adapters, domains) = mask_bits(apqns);
    let (q, is) = queues_word(apqns.len());
    let belong = if is == "is" { "belongs" } else { "belong" };
    let (aw, dw) = (
        if adapters.len() == 1 {
            "adapter"
        } else {
            "adapters"
        },
        if domains.len() == 1 {
            "domain"
        } else {
            "domains"
        },
    );
    format!(
        "{q} {} {belong} to the host ({aw} {} set in apmask, {dw} {} in aqmask)",
        list_apqns(apqns),
        format_ids(&adapters, IdStyle::Decimal),
        format_ids(&domains, IdStyle::Hex),
    )
}

/// The adapters and domains of `apqns`: the apmask and aqmask bits that
/// give them to the host.
fn mask_bits(apqns: &[Apqn]) -> (ApMask, ApMask) {
    (
        ApMask::from_ids(apqns.iter().map(|q| q.adapter)),
        ApMask::from_ids(apqns.iter().map(|q| q.domain)),
    )
}

/// Clearing the bits that give `apqns` to the host.
fn give_to_vfio_ap(apqns: &[Apqn]) -> Remedy {
    let (adapters, domains) = mask_bits(apqns);
    Remedy::GiveToVfioAp { adapters, domains }
}

fn finding(
    severity: Severity,
    kind: FindingKind,
    apqns: Vec<Apqn>,
    mdevs: Vec<(Uuid, Option<String>)>,
    action: &str,
    reason: String,
) -> Finding {
    let message = if action.is_empty() {
        reason.clone()
    } else {
        format!("cannot {action}: {reason}")
    };
    Finding {
        severity,
        kind,
        apqns,
        mdevs,
        message,
        reason,
        remedy: None,
    }
}

/// APQNs of adapters × domains that the masks give to the host.
pub fn host_owned_apqns(host: &Host, adapters: &ApMask, domains: &ApMask) -> Vec<Apqn> {
    let a = adapters.intersection(host.apmask);
    let d = domains.intersection(host.aqmask);
    if a.is_empty() || d.is_empty() {
        return Vec::new();
    }
    apqns_of(&a, &d)
}

/// For each live mdev other than `target` whose matrix shares APQNs with
/// adapters × domains: (uuid, name, shared APQNs).
pub fn assigned_elsewhere(
    host: &Host,
    names: Names<'_>,
    target: Uuid,
    adapters: &ApMask,
    domains: &ApMask,
) -> Vec<(Uuid, Option<String>, Vec<Apqn>)> {
    let mut out = Vec::new();
    for m in host.mdevs.values() {
        if m.uuid == target {
            continue;
        }
        // Fast path first: most mdevs share no adapter.
        if !m.matrix.adapters.intersects(adapters) || !m.matrix.domains.intersects(domains) {
            continue;
        }
        let shared = apqns_of(
            &m.matrix.adapters.intersection(adapters),
            &m.matrix.domains.intersection(domains),
        );
        out.push((m.uuid, names(m.uuid), shared));
    }
    out
}

fn max_for(host: &Host, kind: AssignKind) -> u8 {
    match kind {
        AssignKind::Adapter => host.max_adapter_id,
        AssignKind::Domain | AssignKind::ControlDomain => host.max_domain_id,
    }
}

fn out_of_range_reason(host: &Host, kind: AssignKind) -> String {
    match kind {
        AssignKind::Adapter => format!(
            "the host's highest adapter id is {} (ap_max_adapter_id); use an adapter from 0 to {}",
            host.max_adapter_id, host.max_adapter_id
        ),
        AssignKind::Domain | AssignKind::ControlDomain => format!(
            "the host's highest domain id is 0x{:02x} (ap_max_domain_id); use a domain from 0x00 to 0x{:02x}",
            host.max_domain_id, host.max_domain_id
        ),
    }
}

/// Predict the kernel's verdict on `assign_<kind> id` for the live mdev
/// `target` (its matrix as in `host`; an mdev not in `host` counts as
/// empty), in the kernel's order (§5): ENODEV above the maximum, no-op when
/// already assigned, EADDRNOTAVAIL when the new matrix holds a host-owned
/// APQN, EADDRINUSE when it shares an APQN with another mdev's matrix.
/// Control domains are only checked against the maximum.
pub fn check_assign(
    host: &Host,
    names: Names<'_>,
    target: Uuid,
    kind: AssignKind,
    id: u8,
) -> Result<AssignVerdict, Finding> {
    let current = host
        .mdevs
        .get(&target)
        .map(|m| m.matrix)
        .unwrap_or_default();
    check_assign_to(host, names, target, &current, kind, id)
}

/// [`check_assign`] for a given current matrix (e.g. a definition's, for a
/// persistent-only change checked against the live picture).
pub fn check_assign_to(
    host: &Host,
    names: Names<'_>,
    target: Uuid,
    current: &Matrix,
    kind: AssignKind,
    id: u8,
) -> Result<AssignVerdict, Finding> {
    let action = || {
        format!(
            "assign {} to {}",
            kind.describe(id),
            target_label(names, target)
        )
    };
    if id > max_for(host, kind) {
        return Err(finding(
            Severity::Error,
            FindingKind::OutOfRange,
            Vec::new(),
            Vec::new(),
            &action(),
            out_of_range_reason(host, kind),
        ));
    }
    let (mut adapters, mut domains) = (current.adapters, current.domains);
    match kind {
        AssignKind::ControlDomain => {
            return Ok(if current.control_domains.contains(id) {
                AssignVerdict::NoOp
            } else {
                AssignVerdict::Ok
            });
        }
        AssignKind::Adapter => {
            if !adapters.insert(id) {
                return Ok(AssignVerdict::NoOp);
            }
        }
        AssignKind::Domain => {
            if !domains.insert(id) {
                return Ok(AssignVerdict::NoOp);
            }
        }
    }
    check_new_matrix(host, names, target, &adapters, &domains, &action)?;
    Ok(AssignVerdict::Ok)
}

/// Host-owned, then in use (the order both §5 and §6 use).
fn check_new_matrix(
    host: &Host,
    names: Names<'_>,
    target: Uuid,
    adapters: &ApMask,
    domains: &ApMask,
    action: &dyn Fn() -> String,
) -> Result<(), Finding> {
    let owned = host_owned_apqns(host, adapters, domains);
    if !owned.is_empty() {
        return Err(finding(
            Severity::Error,
            FindingKind::HostOwned,
            owned.clone(),
            Vec::new(),
            &action(),
            host_owned_reason(&owned),
        )
        .with_remedy(give_to_vfio_ap(&owned)));
    }
    let elsewhere = assigned_elsewhere(host, names, target, adapters, domains);
    if !elsewhere.is_empty() {
        let mut apqns: Vec<Apqn> = elsewhere.iter().flat_map(|g| g.2.iter().copied()).collect();
        apqns.sort();
        let mdevs = elsewhere.iter().map(|g| (g.0, g.1.clone())).collect();
        return Err(finding(
            Severity::Error,
            FindingKind::InUse,
            apqns,
            mdevs,
            &action(),
            assigned_elsewhere_reason(&elsewhere),
        ));
    }
    Ok(())
}

/// Predict the kernel's verdict on replacing the whole matrix of `target`
/// (an `ap_config` write, or starting an mdev), in `ap_config`'s order
/// (§6): EADDRNOTAVAIL, then EADDRINUSE, then ENODEV. Messages name
/// `target` by UUID; see [`check_matrix_named`].
pub fn check_matrix(
    host: &Host,
    target: Uuid,
    adapters: ApMask,
    domains: ApMask,
    control_domains: ApMask,
) -> Result<(), Finding> {
    check_matrix_named(host, &no_names, target, adapters, domains, control_domains)
}

/// [`check_matrix`] with names for messages ("cannot set the matrix of
/// guest1: ...").
pub fn check_matrix_named(
    host: &Host,
    names: Names<'_>,
    target: Uuid,
    adapters: ApMask,
    domains: ApMask,
    control_domains: ApMask,
) -> Result<(), Finding> {
    let action = || format!("set the matrix of {}", target_label(names, target));
    check_new_matrix(host, names, target, &adapters, &domains, &action)?;
    let too_big = |m: &ApMask, max: u8| m.last().is_some_and(|l| l > max);
    for (mask, kind) in [
        (adapters, AssignKind::Adapter),
        (domains, AssignKind::Domain),
        (control_domains, AssignKind::ControlDomain),
    ] {
        let max = max_for(host, kind);
        if too_big(&mask, max) {
            let bad: Vec<String> = mask
                .iter()
                .filter(|i| *i > max)
                .map(|i| kind.describe(i))
                .collect();
            return Err(finding(
                Severity::Error,
                FindingKind::OutOfRange,
                Vec::new(),
                Vec::new(),
                &action(),
                format!("{} {}", bad.join(", "), out_of_range_tail(host, kind)),
            ));
        }
    }
    Ok(())
}

fn out_of_range_tail(host: &Host, kind: AssignKind) -> String {
    match kind {
        AssignKind::Adapter => format!(
            "is above the host's highest adapter id {} (ap_max_adapter_id)",
            host.max_adapter_id
        ),
        _ => format!(
            "is above the host's highest domain id 0x{:02x} (ap_max_domain_id)",
            host.max_domain_id
        ),
    }
}

/// Predict the kernel's verdict on changing the masks to `new_apmask` and
/// `new_aqmask` (§2): EBUSY if an APQN that becomes host-owned lies in any
/// mdev's matrix. Checks the final state; a sequence of writes must clear
/// bits before it sets them (the kernel checks each write against the other
/// mask's current value), which a planner orders. Only while vfio_ap is
/// loaded. Messages name mdevs by UUID; see [`check_mask_change_named`].
pub fn check_mask_change(
    host: &Host,
    new_apmask: ApMask,
    new_aqmask: ApMask,
) -> Result<(), Finding> {
    check_mask_change_named(host, &no_names, new_apmask, new_aqmask)
}

/// [`check_mask_change`] with names for messages.
pub fn check_mask_change_named(
    host: &Host,
    names: Names<'_>,
    new_apmask: ApMask,
    new_aqmask: ApMask,
) -> Result<(), Finding> {
    if !host.vfio_ap_loaded {
        return Ok(());
    }
    let mut groups = Vec::new();
    for m in host.mdevs.values() {
        let a = m.matrix.adapters.intersection(new_apmask);
        let d = m.matrix.domains.intersection(new_aqmask);
        if a.is_empty() || d.is_empty() {
            continue;
        }
        let newly: Vec<Apqn> = apqns_of(&a, &d)
            .into_iter()
            .filter(|q| !host.is_host_owned(*q))
            .collect();
        if !newly.is_empty() {
            groups.push((m.uuid, names(m.uuid), newly));
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    let mut apqns: Vec<Apqn> = groups.iter().flat_map(|g| g.2.iter().copied()).collect();
    apqns.sort();
    let mdevs = groups.iter().map(|g| (g.0, g.1.clone())).collect();
    let it = if apqns.len() == 1 { "it" } else { "them" };
    let reason = format!(
        "{} and would return to the host; unassign {it} from the mdev first, or keep the masks from giving {it} to the host",
        assigned_reason(&groups, "assigned"),
    );
    Err(finding(
        Severity::Error,
        FindingKind::MaskBusy,
        apqns,
        mdevs,
        "change the masks",
        reason,
    ))
}

/// Whether any finding is an error.
#[cfg(any(test, feature = "testing"))]
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}
