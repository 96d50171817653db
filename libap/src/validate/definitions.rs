//! Verdicts on a set of definitions, against each other and, when
//! known, the host: [`check_definitions`].

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::{
    assigned_elsewhere, assigned_elsewhere_reason, give_to_vfio_ap, host_owned_apqns,
    host_owned_reason, list_apqns, no_names, queues_word, Finding, FindingKind, Remedy, Severity,
};
use crate::apqn::Apqn;
use crate::definition::{validate_name, Definition};
use crate::host::{apqns_of, Host};
use crate::ids::{format_ids, IdStyle};
use crate::mask::ApMask;

fn def_finding(
    severity: Severity,
    kind: FindingKind,
    apqns: Vec<Apqn>,
    defs: &[&Definition],
    message: String,
) -> Finding {
    Finding {
        severity,
        kind,
        apqns,
        mdevs: defs.iter().map(|d| (d.uuid, d.name.clone())).collect(),
        reason: message.clone(),
        message,
        remedy: None,
    }
}

/// Check definitions against each other and, when known, the host:
/// errors for duplicate names or UUIDs, invalid names, two autostart
/// definitions sharing an APQN, host-owned APQNs and ids above the maximum;
/// warnings for ids outside the LPAR's configuration (over-provisioning is
/// legal), control domains outside its ADM, control domains without usage
/// domains, adapters without domains (or the reverse), manual definitions
/// sharing APQNs, and autostart definitions whose APQNs a live mdev holds.
pub fn check_definitions(host: Option<&Host>, defs: &[Definition]) -> Vec<Finding> {
    let mut out = Vec::new();
    duplicates(defs, &mut out);
    for d in defs {
        shape(d, &mut out);
        let Some(host) = host else { continue };
        against_host(host, d, &mut out);
        if host.config.known {
            outside_config(host, d, &mut out);
        }
        if d.autostart {
            held_by_live_mdevs(host, defs, d, &mut out);
        }
    }
    shared_pairs(defs, &mut out);
    out
}

/// Names or UUIDs used by more than one definition.
fn duplicates(defs: &[Definition], out: &mut Vec<Finding>) {
    let mut by_name: BTreeMap<&str, Vec<&Definition>> = BTreeMap::new();
    let mut by_uuid: HashMap<Uuid, Vec<&Definition>> = HashMap::new();
    for d in defs {
        if let Some(n) = &d.name {
            by_name.entry(n.as_str()).or_default().push(d);
        }
        by_uuid.entry(d.uuid).or_default().push(d);
    }
    for (name, group) in &by_name {
        if group.len() > 1 {
            let who: Vec<String> = group
                .iter()
                .map(|d| d.uuid.hyphenated().to_string())
                .collect();
            out.push(def_finding(
                Severity::Error,
                FindingKind::DuplicateName,
                Vec::new(),
                group,
                format!(
                    "the name {name} is used by {} definitions ({}); rename all but one",
                    group.len(),
                    who.join(", ")
                ),
            ));
        }
    }
    let mut dup_uuids: Vec<_> = by_uuid.iter().filter(|(_, g)| g.len() > 1).collect();
    dup_uuids.sort_by_key(|(u, _)| **u);
    for (uuid, group) in dup_uuids {
        out.push(def_finding(
            Severity::Error,
            FindingKind::DuplicateUuid,
            Vec::new(),
            group,
            format!(
                "the UUID {} is defined {} times; keep one definition",
                uuid.hyphenated(),
                group.len()
            ),
        ));
    }
}

/// A definition on its own: its name, and a matrix with no queue.
fn shape(d: &Definition, out: &mut Vec<Finding>) {
    let who = d.label();
    if let Some(n) = &d.name {
        if let Err(e) = validate_name(n) {
            out.push(def_finding(
                Severity::Error,
                FindingKind::InvalidName,
                Vec::new(),
                &[d],
                format!("definition {}: {e}", d.uuid.hyphenated()),
            ));
        }
    }
    if d.adapters.is_empty() != d.domains.is_empty() {
        // The mdev as the admin names it, for the remedy's command.
        let named = d
            .name
            .clone()
            .unwrap_or_else(|| d.uuid.hyphenated().to_string());
        let (kind, text, remedy) = if d.domains.is_empty() {
            (
                FindingKind::AdaptersWithoutDomains,
                format!("{who} has adapters but no domains, so no queue"),
                Remedy::AssignDomains(named),
            )
        } else {
            (
                FindingKind::DomainsWithoutAdapters,
                format!("{who} has domains but no adapters, so no queue"),
                Remedy::AssignAdapters(named),
            )
        };
        out.push(def_finding(Severity::Warning, kind, Vec::new(), &[d], text).with_remedy(remedy));
    }
    if !d.control_domains.is_empty() && d.domains.is_empty() {
        out.push(def_finding(
            Severity::Warning,
            FindingKind::ControlWithoutUsage,
            Vec::new(),
            &[d],
            format!("{who} has control domains but no usage domain; the guest can administer domains but not use any"),
        ));
    }
}

/// Ids above the host's maxima, and queues the host owns.
fn against_host(host: &Host, d: &Definition, out: &mut Vec<Finding>) {
    let who = d.label();
    let over_a: ApMask = d
        .adapters
        .iter()
        .filter(|i| *i > host.max_adapter_id)
        .collect();
    let over_d: ApMask = d
        .domains
        .union(d.control_domains)
        .iter()
        .filter(|i| *i > host.max_domain_id)
        .collect();
    if !over_a.is_empty() || !over_d.is_empty() {
        let mut parts = Vec::new();
        if !over_a.is_empty() {
            parts.push(format!(
                "adapters {} are above the host's highest adapter id {}",
                format_ids(&over_a, IdStyle::Decimal),
                host.max_adapter_id
            ));
        }
        if !over_d.is_empty() {
            parts.push(format!(
                "domains {} are above the host's highest domain id 0x{:02x}",
                format_ids(&over_d, IdStyle::Hex),
                host.max_domain_id
            ));
        }
        out.push(def_finding(
            Severity::Error,
            FindingKind::OutOfRange,
            Vec::new(),
            &[d],
            format!("{who}: {}; the kernel refuses them", parts.join(" and ")),
        ));
    }
    let owned = host_owned_apqns(host, &d.adapters, &d.domains);
    if !owned.is_empty() {
        out.push(
            def_finding(
                Severity::Error,
                FindingKind::HostOwned,
                owned.clone(),
                &[d],
                format!("{who} cannot start: {}", host_owned_reason(&owned)),
            )
            .with_remedy(give_to_vfio_ap(&owned)),
        );
    }
}

/// Ids outside the LPAR's configuration (kernel spec §1, §7).
fn outside_config(host: &Host, d: &Definition, out: &mut Vec<Finding>) {
    let who = d.label();
    let out_a = d.adapters.difference(host.config.adapters);
    let out_d = d.domains.difference(host.config.usage_domains);
    if !out_a.is_empty() || !out_d.is_empty() {
        let mut parts = Vec::new();
        if !out_a.is_empty() {
            parts.push(format!("adapters {}", format_ids(&out_a, IdStyle::Decimal)));
        }
        if !out_d.is_empty() {
            parts.push(format!("domains {}", format_ids(&out_d, IdStyle::Hex)));
        }
        out.push(def_finding(
            Severity::Warning,
            FindingKind::OutsideHostConfig,
            Vec::new(),
            &[d],
            format!(
                "{who}: {} are not in the LPAR's configuration; the guest gets them only once they are added",
                parts.join(" and ")
            ),
        ));
    }
    let out_c = d.control_domains.difference(host.config.control_domains);
    if !out_c.is_empty() {
        out.push(def_finding(
            Severity::Warning,
            FindingKind::ControlDomainNotInHost,
            Vec::new(),
            &[d],
            format!(
                "{who}: control domains {} are not in the LPAR's control domains (ap_control_domain_mask); the guest will not get them",
                format_ids(&out_c, IdStyle::Hex)
            ),
        ));
    }
}

/// An autostart definition whose queues a live mdev (not itself an
/// autostart definition) holds.
fn held_by_live_mdevs(host: &Host, defs: &[Definition], d: &Definition, out: &mut Vec<Finding>) {
    let who = d.label();
    let groups = assigned_elsewhere(host, &no_names, d.uuid, &d.adapters, &d.domains);
    // A live mdev that is itself an autostart definition is reported
    // by the pair check below.
    let foreign: Vec<_> = groups
        .into_iter()
        .filter(|g| !defs.iter().any(|o| o.uuid == g.0 && o.autostart))
        .map(|(u, _, q)| {
            let name = defs
                .iter()
                .find(|o| o.uuid == u)
                .and_then(|o| o.name.clone());
            (u, name, q)
        })
        .collect();
    if !foreign.is_empty() {
        let mut apqns: Vec<Apqn> = foreign.iter().flat_map(|g| g.2.iter().copied()).collect();
        apqns.sort();
        let mut f = def_finding(
            Severity::Warning,
            FindingKind::InUse,
            apqns,
            &[d],
            format!(
                "{who} cannot start now: {}",
                assigned_elsewhere_reason(&foreign)
            ),
        );
        f.mdevs.extend(foreign.iter().map(|g| (g.0, g.1.clone())));
        out.push(f);
    }
}

/// Pairs of definitions sharing APQNs.
fn shared_pairs(defs: &[Definition], out: &mut Vec<Finding>) {
    // Pairs sharing APQNs.
    for (i, a) in defs.iter().enumerate() {
        for b in &defs[i + 1..] {
            if a.uuid == b.uuid || !a.matrix().overlaps(&b.matrix()) {
                continue;
            }
            let shared = apqns_of(
                &a.adapters.intersection(b.adapters),
                &a.domains.intersection(b.domains),
            );
            let (q, _) = queues_word(shared.len());
            if a.autostart && b.autostart {
                out.push(def_finding(
                    Severity::Error,
                    FindingKind::SharedAutostart,
                    shared.clone(),
                    &[a, b],
                    format!(
                        "{} and {} both start automatically and share {q} {}; only one can start: make one manual or remove the shared ids",
                        a.label(),
                        b.label(),
                        list_apqns(&shared)
                    ),
                ));
            } else {
                out.push(def_finding(
                    Severity::Warning,
                    FindingKind::SharedManual,
                    shared.clone(),
                    &[a, b],
                    format!(
                        "{} and {} share {q} {}; they cannot be active at the same time",
                        a.label(),
                        b.label(),
                        list_apqns(&shared)
                    ),
                ));
            }
        }
    }
}
