//! One step of a plan: a typed change, a sentence for people, and the
//! wire form the D-Bus layer sends (`action`, `target`, `uuid`, `detail`).

use crate::definition::{label, Definition};
use crate::host::Matrix;
use crate::ids::{format_ids, IdStyle};
use crate::mask::ApMask;
use crate::validate::AssignKind;
use std::fmt;
use uuid::Uuid;

/// One change, in the order a plan runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write the live masks: `apmask` first, then `aqmask` (each only when
    /// it changes). A plan never mixes directions in one step: either it
    /// only clears bits (gives queues to vfio_ap) or it only sets bits
    /// (takes queues back for the host).
    SetMasks {
        /// The apmask to write.
        apmask: ApMask,
        /// The aqmask to write.
        aqmask: ApMask,
        /// The apmask before the step (for the sentence and for rollback).
        old_apmask: ApMask,
        /// The aqmask before the step.
        old_aqmask: ApMask,
    },
    /// Store the persistent masks (`CFG/apd.toml`) applied at boot: the
    /// values after the step (None = no persistent mask of that kind).
    StoreMasks {
        /// The persistent apmask.
        apmask: Option<ApMask>,
        /// The persistent aqmask.
        aqmask: Option<ApMask>,
    },
    /// Store a new definition.
    Define(Definition),
    /// Replace a stored definition.
    Redefine {
        /// As stored now.
        old: Definition,
        /// As the file wants it.
        new: Definition,
    },
    /// Forget a stored definition (`--prune`).
    Undefine(Definition),
    /// Create the mdev (empty; its assignments follow as separate steps).
    Create {
        /// Its UUID.
        uuid: Uuid,
        /// Its name, for people.
        name: Option<String>,
    },
    /// `assign_<kind>` on a live mdev.
    Assign {
        /// The mdev.
        uuid: Uuid,
        /// Its name, for people.
        name: Option<String>,
        /// Adapter, domain or control domain.
        kind: AssignKind,
        /// The id.
        id: u8,
    },
    /// `unassign_<kind>` on a live mdev.
    Unassign {
        /// The mdev.
        uuid: Uuid,
        /// Its name, for people.
        name: Option<String>,
        /// Adapter, domain or control domain.
        kind: AssignKind,
        /// The id.
        id: u8,
    },
    /// Remove the live mdev (`--prune`).
    Remove {
        /// The mdev.
        uuid: Uuid,
        /// Its name, for people.
        name: Option<String>,
        /// Its live assignment when planned (rollback re-reads it).
        matrix: Matrix,
    },
    /// Configure an adapter on or off (the card's `config`; apd's
    /// `ConfigureAdapter`, never part of an apply plan).
    ConfigureAdapter {
        /// The adapter.
        adapter: u8,
        /// On (1) or off (0, standby).
        on: bool,
    },
}

/// The wire form of a step (`apbus::PlanStep` has the same four fields).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WireStep {
    /// Stable kebab-case verb: `set-masks`, `store-masks`, `define`,
    /// `redefine`, `undefine`, `start`, `stop`, `assign-adapter`,
    /// `assign-domain`, `assign-control-domain`, `unassign-adapter`,
    /// `unassign-domain`, `unassign-control-domain`.
    pub action: String,
    /// `host`, or the mdev's name, or its UUID when it has no name.
    pub target: String,
    /// The mdev's UUID; empty for host steps.
    pub uuid: String,
    /// One sentence for people ([`Step::describe`]).
    pub detail: String,
}

fn decimal(m: &ApMask) -> String {
    format_ids(m, IdStyle::Decimal)
}

fn hex(m: &ApMask) -> String {
    format_ids(m, IdStyle::Hex)
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `adapters 5,6 and domains 0x04,0xab` (parts that are empty are left out).
fn ids_phrase(adapters: &ApMask, domains: &ApMask) -> String {
    let mut parts = Vec::new();
    if !adapters.is_empty() {
        parts.push(format!(
            "{} {}",
            plural(adapters.len(), "adapter", "adapters"),
            decimal(adapters)
        ));
    }
    if !domains.is_empty() {
        parts.push(format!(
            "{} {}",
            plural(domains.len(), "domain", "domains"),
            hex(domains)
        ));
    }
    parts.join(" and ")
}

/// `adapters 5,6, domains 0x04,0xab, no control domains`.
fn matrix_phrase(m: &Matrix) -> String {
    let list = |mask: &ApMask, what: &str, style: IdStyle| {
        if mask.is_empty() {
            format!("no {what}")
        } else {
            format!("{what} {}", format_ids(mask, style))
        }
    };
    format!(
        "{}, {}, {}",
        list(&m.adapters, "adapters", IdStyle::Decimal),
        list(&m.domains, "domains", IdStyle::Hex),
        list(&m.control_domains, "control domains", IdStyle::Hex)
    )
}

fn empty_dash(s: String) -> String {
    if s.is_empty() {
        "none".to_string()
    } else {
        s
    }
}

/// What changes between two definitions, e.g. `domains 0x04,0xab → 0x04,0x47,0xab`.
fn definition_changes(old: &Definition, new: &Definition) -> String {
    let mut parts = Vec::new();
    if old.name != new.name {
        parts.push(format!(
            "name {} → {}",
            old.name.as_deref().unwrap_or("(none)"),
            new.name.as_deref().unwrap_or("(none)")
        ));
    }
    if old.autostart != new.autostart {
        parts.push(if new.autostart {
            "manual → autostart".to_string()
        } else {
            "autostart → manual".to_string()
        });
    }
    for (what, o, n, style) in [
        ("adapters", &old.adapters, &new.adapters, IdStyle::Decimal),
        ("domains", &old.domains, &new.domains, IdStyle::Hex),
        (
            "control domains",
            &old.control_domains,
            &new.control_domains,
            IdStyle::Hex,
        ),
    ] {
        if o != n {
            parts.push(format!(
                "{what} {} → {}",
                empty_dash(format_ids(o, style)),
                empty_dash(format_ids(n, style))
            ));
        }
    }
    if parts.is_empty() {
        "nothing changes".to_string()
    } else {
        parts.join(", ")
    }
}

fn mask_moves(old_ap: &ApMask, new_ap: &ApMask, old_aq: &ApMask, new_aq: &ApMask) -> String {
    let given = ids_phrase(&old_ap.difference(new_ap), &old_aq.difference(new_aq));
    let taken = ids_phrase(&new_ap.difference(old_ap), &new_aq.difference(old_aq));
    match (given.is_empty(), taken.is_empty()) {
        (false, true) => format!("give {given} to vfio_ap"),
        (true, false) => format!("take {taken} back for the host"),
        (false, false) => format!("give {given} to vfio_ap and take {taken} back for the host"),
        (true, true) => "leave them as they are".to_string(),
    }
}

impl Step {
    /// The UUID of the mdev acted on; None for host steps.
    pub fn uuid(&self) -> Option<Uuid> {
        match self {
            Step::SetMasks { .. } | Step::StoreMasks { .. } | Step::ConfigureAdapter { .. } => None,
            Step::Define(d) | Step::Undefine(d) => Some(d.uuid),
            Step::Redefine { new, .. } => Some(new.uuid),
            Step::Create { uuid, .. }
            | Step::Assign { uuid, .. }
            | Step::Unassign { uuid, .. }
            | Step::Remove { uuid, .. } => Some(*uuid),
        }
    }

    /// The mdev's name, when the step acts on a named mdev.
    pub fn name(&self) -> Option<&str> {
        match self {
            Step::SetMasks { .. } | Step::StoreMasks { .. } | Step::ConfigureAdapter { .. } => None,
            Step::Define(d) | Step::Undefine(d) => d.name.as_deref(),
            Step::Redefine { new, .. } => new.name.as_deref(),
            Step::Create { name, .. }
            | Step::Assign { name, .. }
            | Step::Unassign { name, .. }
            | Step::Remove { name, .. } => name.as_deref(),
        }
    }

    /// `host`, the mdev's name, or its UUID.
    pub fn target(&self) -> String {
        match (self.uuid(), self.name()) {
            (None, _) => "host".to_string(),
            (Some(_), Some(n)) => n.to_string(),
            (Some(u), None) => u.hyphenated().to_string(),
        }
    }

    /// The stable kebab-case verb of the wire form.
    pub fn action(&self) -> &'static str {
        match self {
            Step::SetMasks { .. } => "set-masks",
            Step::StoreMasks { .. } => "store-masks",
            Step::Define(_) => "define",
            Step::Redefine { .. } => "redefine",
            Step::Undefine(_) => "undefine",
            Step::Create { .. } => "start",
            Step::Remove { .. } => "stop",
            Step::ConfigureAdapter { .. } => "configure-adapter",
            Step::Assign { kind, .. } => match kind {
                AssignKind::Adapter => "assign-adapter",
                AssignKind::Domain => "assign-domain",
                AssignKind::ControlDomain => "assign-control-domain",
            },
            Step::Unassign { kind, .. } => match kind {
                AssignKind::Adapter => "unassign-adapter",
                AssignKind::Domain => "unassign-domain",
                AssignKind::ControlDomain => "unassign-control-domain",
            },
        }
    }

    /// What running or undoing the step may change in a host model.
    pub fn stale(&self) -> crate::resync::Stale {
        use crate::resync::Stale;
        match self {
            // The kernel rebinds the queues whose bits flip.
            Step::SetMasks { .. } => Stale::masks(),
            Step::Create { uuid, .. }
            | Step::Assign { uuid, .. }
            | Step::Unassign { uuid, .. }
            | Step::Remove { uuid, .. } => Stale::mdev(*uuid),
            Step::ConfigureAdapter { adapter, .. } => Stale::card(*adapter),
            Step::StoreMasks { .. }
            | Step::Define(_)
            | Step::Redefine { .. }
            | Step::Undefine(_) => Stale::none(),
        }
    }

    /// Whether the step writes to sysfs (else it writes the store).
    pub fn is_live(&self) -> bool {
        !matches!(
            self,
            Step::StoreMasks { .. } | Step::Define(_) | Step::Redefine { .. } | Step::Undefine(_)
        )
    }

    /// One sentence for people, e.g. `assign domain 0x47 to guest1 (62177883-...)`.
    pub fn describe(&self) -> String {
        match self {
            Step::SetMasks {
                apmask,
                aqmask,
                old_apmask,
                old_aqmask,
            } => format!(
                "change the live host masks: {}",
                mask_moves(old_apmask, apmask, old_aqmask, aqmask)
            ),
            Step::StoreMasks { apmask, aqmask } => {
                let show = |what: &str, m: &Option<ApMask>| match m {
                    Some(m) => format!("{what} {m}"),
                    None => format!("no {what}"),
                };
                format!(
                    "store {} and {} as the persistent masks applied at boot",
                    show("apmask", apmask),
                    show("aqmask", aqmask)
                )
            }
            Step::Define(d) => format!(
                "define {} ({}): {}",
                d.label(),
                if d.autostart { "autostart" } else { "manual" },
                matrix_phrase(&d.matrix())
            ),
            Step::Redefine { old, new } => format!(
                "change the definition of {}: {}",
                new.label(),
                definition_changes(old, new)
            ),
            Step::Undefine(d) => format!(
                "undefine {} (the file does not name it and --prune was given)",
                d.label()
            ),
            Step::Create { uuid, name } => format!(
                "start {}: create the mdev (its assignments follow)",
                label(*uuid, name.as_deref())
            ),
            Step::Assign {
                uuid,
                name,
                kind,
                id,
            } => format!(
                "assign {} to {}",
                kind.describe(*id),
                label(*uuid, name.as_deref())
            ),
            Step::Unassign {
                uuid,
                name,
                kind,
                id,
            } => format!(
                "unassign {} from {}",
                kind.describe(*id),
                label(*uuid, name.as_deref())
            ),
            Step::Remove { uuid, name, matrix } => format!(
                "stop {}: remove the mdev ({}; the file does not name it and --prune was given)",
                label(*uuid, name.as_deref()),
                matrix_phrase(matrix)
            ),
            Step::ConfigureAdapter { adapter, on } => format!(
                "configure adapter {adapter} {}",
                if *on { "on" } else { "off" }
            ),
        }
    }

    /// The wire form for the D-Bus layer.
    pub fn to_wire(&self) -> WireStep {
        WireStep {
            action: self.action().to_string(),
            target: self.target(),
            uuid: self
                .uuid()
                .map(|u| u.hyphenated().to_string())
                .unwrap_or_default(),
            detail: self.describe(),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";

    fn uuid() -> Uuid {
        Uuid::parse_str(G1).expect("uuid")
    }

    fn guest1() -> Definition {
        Definition {
            uuid: uuid(),
            name: Some("guest1".into()),
            autostart: true,
            adapters: ApMask::from_ids([5, 6]),
            domains: ApMask::from_ids([4, 0xab]),
            control_domains: ApMask::empty(),
        }
    }

    #[test]
    fn sentences() {
        let s = Step::Assign {
            uuid: uuid(),
            name: Some("guest1".into()),
            kind: AssignKind::Domain,
            id: 0x47,
        };
        assert_eq!(s.describe(), format!("assign domain 0x47 to guest1 ({G1})"));
        assert_eq!(s.action(), "assign-domain");
        assert_eq!(s.target(), "guest1");
        let w = s.to_wire();
        assert_eq!(w.uuid, G1);
        assert_eq!(w.detail, s.describe());

        let s = Step::Unassign {
            uuid: uuid(),
            name: None,
            kind: AssignKind::ControlDomain,
            id: 4,
        };
        assert_eq!(
            s.describe(),
            format!("unassign control domain 0x04 from {G1}")
        );
        assert_eq!(s.target(), G1);
        assert_eq!(s.action(), "unassign-control-domain");

        assert_eq!(
            Step::Define(guest1()).describe(),
            format!(
                "define guest1 ({G1}) (autostart): adapters 5,6, domains 0x04,0xab, no control domains"
            )
        );
        let mut new = guest1();
        new.domains.insert(0x47);
        new.autostart = false;
        assert_eq!(
            Step::Redefine {
                old: guest1(),
                new
            }
            .describe(),
            format!(
                "change the definition of guest1 ({G1}): autostart → manual, domains 0x04,0xab → 0x04,0x47,0xab"
            )
        );
    }

    #[test]
    fn mask_sentences() {
        let full = ApMask::full();
        let s = Step::SetMasks {
            apmask: full.difference(ApMask::from_ids([5, 6])),
            aqmask: full.difference(ApMask::from_ids([4])),
            old_apmask: full,
            old_aqmask: full,
        };
        assert_eq!(
            s.describe(),
            "change the live host masks: give adapters 5,6 and domain 0x04 to vfio_ap"
        );
        assert_eq!(s.target(), "host");
        assert_eq!(s.to_wire().uuid, "");
        assert!(s.is_live());
        let back = Step::SetMasks {
            apmask: full,
            aqmask: full,
            old_apmask: full.difference(ApMask::from_ids([5])),
            old_aqmask: full,
        };
        assert_eq!(
            back.describe(),
            "change the live host masks: take adapter 5 back for the host"
        );
        let st = Step::StoreMasks {
            apmask: Some(full),
            aqmask: None,
        };
        assert_eq!(
            st.describe(),
            format!("store apmask {full} and no aqmask as the persistent masks applied at boot")
        );
        assert_eq!(st.action(), "store-masks");
        assert!(!st.is_live());
    }
}
