//! The commands a sentence tells the admin to type. libap states each rule
//! and each fact, with a typed [`Remedy`] where the fix is a change of
//! ours; which command makes the change is the front end's to say, and apd
//! speaks for apctl (the D-Bus API carries one sentence). One place, so a
//! renamed command or flag changes here only.

use libap::coexist::DefinedTwice;
use libap::usable::Unusable;
use libap::validate::{Finding, Remedy};

/// A finding's whole sentence, with its remedy.
pub fn message(f: &Finding) -> String {
    with_command(&f.message, f)
}

/// The part of a finding after "cannot ...:", with its remedy, for
/// sentences a caller composes ("cannot start guest1: {reason}").
pub fn reason(f: &Finding) -> String {
    with_command(&f.reason, f)
}

fn with_command(text: &str, f: &Finding) -> String {
    match f.remedy.as_deref() {
        None => text.to_string(),
        Some(r) => format!("{text}; {}", command(r, f.apqns.len())),
    }
}

/// The remedy as what to type; `queues` is how many queues it frees.
fn command(r: &Remedy, queues: usize) -> String {
    match r {
        Remedy::GiveToVfioAp { adapters, domains } => {
            let rel_a: Vec<String> = adapters.iter().map(|i| format!("-{i}")).collect();
            let rel_d: Vec<String> = domains.iter().map(|i| format!("-0x{i:02x}")).collect();
            format!(
                "give {} to vfio_ap with `apctl masks --apmask {}` or `apctl masks --aqmask {}`",
                if queues == 1 { "it" } else { "them" },
                rel_a.join(","),
                rel_d.join(","),
            )
        }
        Remedy::AssignDomains(mdev) => format!("add domains with `apctl assign {mdev} -d LIST`"),
        Remedy::AssignAdapters(mdev) => format!("add adapters with `apctl assign {mdev} -a LIST`"),
    }
}

/// libap's reason why a guest cannot use an APQN, with the command that
/// fixes it where there is one.
pub fn unusable(why: &Unusable) -> String {
    match why {
        Unusable::ConfiguredOff(a) => format!("{why}; configure it on with `apctl config {a} on`"),
        other => other.to_string(),
    }
}

/// The command that starts `mdev` (its name, else its UUID).
pub fn start(mdev: &str) -> String {
    format!("`apctl start {mdev}`")
}

/// The command that frees host-owned queues, without the ids (the reason
/// before it names them).
pub const GIVE_TO_VFIO_AP: &str = "give it to vfio_ap with `apctl masks`";

/// An mdev defined by both apd and mdevctl: which command leaves it to
/// which.
pub fn defined_twice(d: &DefinedTwice) -> String {
    let uuid = d.uuid.hyphenated();
    format!(
        "{}: `mdevctl undefine --uuid {uuid}` (or removing {}) leaves it to apd, \
         `apctl undefine {uuid}` leaves it to mdevctl",
        d.problem(),
        d.mdevctl_file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use libap::validate::{check_definitions, FindingKind, Severity};
    use libap::{ApMask, Apqn, Definition};
    use std::path::PathBuf;
    use uuid::Uuid;

    #[test]
    fn a_defined_twice_sentence_names_both_ways_out() {
        let d = DefinedTwice {
            uuid: Uuid::from_u128(1),
            name: Some("guest1".into()),
            apd_file: PathBuf::from("/etc/apd/mdevs/x.toml"),
            mdevctl_file: PathBuf::from("/etc/mdevctl.d/matrix/x"),
        };
        let s = defined_twice(&d);
        assert!(s.starts_with(&d.problem()), "{s}");
        assert!(
            s.contains("mdevctl undefine --uuid 00000000-0000-0000-0000-000000000001"),
            "{s}"
        );
        assert!(s.contains("(or removing /etc/mdevctl.d/matrix/x)"), "{s}");
        assert!(
            s.contains("apctl undefine 00000000-0000-0000-0000-000000000001"),
            "{s}"
        );
    }

    #[test]
    fn a_definition_without_domains_is_told_how_to_add_them() {
        let mut d = Definition::new(Uuid::from_u128(2));
        d.name = Some("guest2".into());
        d.adapters = ApMask::from_ids([5]);
        let f = check_definitions(None, &[d])
            .into_iter()
            .find(|f| f.remedy.is_some())
            .expect("a finding with a remedy");
        assert!(
            message(&f).ends_with("; add domains with `apctl assign guest2 -d LIST`"),
            "{}",
            message(&f)
        );
        assert!(!f.message.contains("apctl"), "libap names no command");
    }

    #[test]
    fn host_owned_queues_are_told_which_bits_to_clear() {
        let f = Finding {
            severity: Severity::Error,
            kind: FindingKind::HostOwned,
            apqns: vec![Apqn::new(8, 5)],
            mdevs: Vec::new(),
            message: "cannot assign domain 0x05 to guest1: queue 08.0005 belongs to the host \
                      (adapter 8 set in apmask, domain 0x05 in aqmask)"
                .into(),
            reason:
                "queue 08.0005 belongs to the host (adapter 8 set in apmask, domain 0x05 in aqmask)"
                    .into(),
            remedy: Some(Box::new(Remedy::GiveToVfioAp {
                adapters: ApMask::from_ids([8]),
                domains: ApMask::from_ids([5]),
            })),
        };
        let told =
            "; give it to vfio_ap with `apctl masks --apmask -8` or `apctl masks --aqmask -0x05`";
        assert_eq!(message(&f), format!("{}{told}", f.message));
        assert_eq!(reason(&f), format!("{}{told}", f.reason));
        let two = Finding {
            apqns: vec![Apqn::new(8, 5), Apqn::new(9, 5)],
            remedy: Some(Box::new(Remedy::GiveToVfioAp {
                adapters: ApMask::from_ids([8, 9]),
                domains: ApMask::from_ids([5]),
            })),
            ..f
        };
        assert!(
            message(&two).ends_with(
                "; give them to vfio_ap with `apctl masks --apmask -8,-9` or `apctl masks --aqmask -0x05`"
            ),
            "{}",
            message(&two)
        );
    }
}
