//! Between the bus types (apbus) and the model (libap): checked input
//! conversion (bad input becomes a named error, never a panic) and the
//! shapes apctl reads.

use crate::remedy;
use apbus::{AdapterInfo, Error, ErrorKind, IdLists};
use libap::apply::ApplyError;
use libap::host::{Card, Matrix};
use libap::plan::Step;
use libap::validate::{Finding, FindingKind, Refusal, Severity};
use libap::{ApMask, Apqn};

/// More ids than any list can meaningfully hold (256 distinct ids), with
/// room for duplicates; beyond it the input is refused, not processed.
pub const MAX_IDS: usize = 4096;

/// Which id list an id belongs to: libap's kind of assignment.
pub use libap::validate::AssignKind as IdKind;

/// One id list from the bus as a mask: ids above `max` (the host's
/// maximum) are `OutOfRange`, a list longer than [`MAX_IDS`] is `Invalid`.
pub fn mask_from_ids(ids: &[u32], kind: IdKind, max: u8, action: &str) -> Result<ApMask, Error> {
    if ids.len() > MAX_IDS {
        return Err(Error::Invalid(format!(
            "cannot {action}: {} ids in one list is too many (at most {MAX_IDS}; there are only 256 ids)",
            ids.len()
        )));
    }
    libap::validate::ids_within(ids, kind, max, action)
        .map_err(|f| Error::new(finding_error_kind(f.kind), remedy::message(&f)))
}

/// The three lists of `ids` as a matrix, checked against the maxima.
pub fn matrix_from_ids(
    ids: &IdLists,
    max_adapter: u8,
    max_domain: u8,
    action: &str,
) -> Result<Matrix, Error> {
    Ok(Matrix::new(
        mask_from_ids(&ids.adapters, IdKind::Adapter, max_adapter, action)?,
        mask_from_ids(&ids.domains, IdKind::Domain, max_domain, action)?,
        mask_from_ids(
            &ids.control_domains,
            IdKind::ControlDomain,
            max_domain,
            action,
        )?,
    ))
}

/// Ascending ids of a mask.
pub fn ids_of(m: &ApMask) -> Vec<u32> {
    m.iter().map(u32::from).collect()
}

/// The bus form of a matrix.
pub fn id_lists(m: &Matrix) -> IdLists {
    IdLists {
        adapters: ids_of(&m.adapters),
        domains: ids_of(&m.domains),
        control_domains: ids_of(&m.control_domains),
    }
}

/// A UUID argument: any case, hyphenated; `None` when it is not one.
pub use libap::definition::parse_hyphenated_uuid as parse_uuid;

/// `"05.0004"` strings.
pub fn apqn_strings(apqns: &[Apqn]) -> Vec<String> {
    apqns.iter().map(Apqn::to_string).collect()
}

/// The bus form of a card.
pub fn adapter_info(c: &Card) -> AdapterInfo {
    AdapterInfo {
        id: u32::from(c.id),
        card_type: c.type_name.clone(),
        mode: c.mode.map(|m| m.as_str().to_string()).unwrap_or_default(),
        config: c.config,
        online: c.online,
        chkstop: c.chkstop,
    }
}

/// The kebab-case name of a finding kind (stable: scripts branch on it).
pub fn finding_kind_name(k: FindingKind) -> &'static str {
    match k {
        FindingKind::OutOfRange => "out-of-range",
        FindingKind::HostOwned => "host-owned",
        FindingKind::InUse => "in-use",
        FindingKind::MaskBusy => "mask-busy",
        FindingKind::SharedAutostart => "shared-autostart",
        FindingKind::SharedManual => "shared-manual",
        FindingKind::ControlDomainNotInHost => "control-domain-not-in-host",
        FindingKind::ControlWithoutUsage => "control-without-usage",
        FindingKind::AdaptersWithoutDomains => "adapters-without-domains",
        FindingKind::DomainsWithoutAdapters => "domains-without-adapters",
        FindingKind::OutsideHostConfig => "outside-host-config",
        FindingKind::DuplicateName => "duplicate-name",
        FindingKind::DuplicateUuid => "duplicate-uuid",
        FindingKind::InvalidName => "invalid-name",
        FindingKind::VfioApNotLoaded => "vfio-ap-not-loaded",
    }
}

/// A warning of `check`: the mdev is defined by mdevctl too.
pub fn defined_twice(d: &libap::coexist::DefinedTwice) -> apbus::Finding {
    apbus::Finding {
        severity: "warning".to_string(),
        kind: DEFINED_BY_MDEVCTL.to_string(),
        message: remedy::defined_twice(d),
        apqns: Vec::new(),
        mdevs: vec![d.uuid.hyphenated().to_string()],
    }
}

/// The kind of [`defined_twice`] findings.
pub const DEFINED_BY_MDEVCTL: &str = "defined-by-mdevctl";

/// The bus form of a finding.
pub fn finding(f: &Finding) -> apbus::Finding {
    apbus::Finding {
        severity: match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
        .to_string(),
        kind: finding_kind_name(f.kind).to_string(),
        message: remedy::message(f),
        apqns: apqn_strings(&f.apqns),
        mdevs: f
            .mdevs
            .iter()
            .map(|(u, _)| u.hyphenated().to_string())
            .collect(),
    }
}

/// The named error kind of a finding (libap's mapping, so that apctl's
/// local verdicts and apd's agree).
pub fn finding_error_kind(k: FindingKind) -> ErrorKind {
    match k.refusal() {
        Refusal::OutOfRange => ErrorKind::OutOfRange,
        Refusal::HostOwned => ErrorKind::HostOwned,
        Refusal::InUse => ErrorKind::InUse,
        Refusal::Busy => ErrorKind::Busy,
        Refusal::Conflict => ErrorKind::Conflict,
        Refusal::Invalid => ErrorKind::Invalid,
        Refusal::Failed => ErrorKind::Failed,
    }
}

/// The named error of a failed run of libap's executor: the kernel's
/// errno, read in the light of the step that got it (kernel spec §2, §4,
/// §5, §8); Failed without an errno.
pub fn failure_kind(e: &ApplyError) -> ErrorKind {
    match e.cause.errno() {
        Some(errno) => kind_for_errno(errno, &e.failed_step),
        None => ErrorKind::Failed,
    }
}

/// The named error for a kernel errno a step got.
fn kind_for_errno(errno: i32, step: &Step) -> ErrorKind {
    match errno {
        libc::EADDRNOTAVAIL => ErrorKind::HostOwned,
        libc::EADDRINUSE => ErrorKind::InUse,
        libc::ENODEV => match step {
            Step::Assign { .. } | Step::Unassign { .. } => ErrorKind::OutOfRange,
            // A card or the matrix device went away meanwhile.
            _ => ErrorKind::NotFound,
        },
        // A remove on 5.x kernels while a guest uses the mdev: the guest
        // holds it. A mask write that would take queues from an mdev is
        // Busy, as libap names the same refusal predicted (MaskBusy).
        libc::EBUSY => match step {
            Step::Remove { .. } => ErrorKind::InUse,
            _ => ErrorKind::Busy,
        },
        libc::EAGAIN => ErrorKind::Busy,
        libc::EEXIST => ErrorKind::Exists,
        libc::EINVAL | libc::ERANGE => ErrorKind::Invalid,
        libc::ENOENT => ErrorKind::NotFound,
        _ => ErrorKind::Failed,
    }
}

/// A refusal built from a finding, logged with the mdevs and APQNs
/// concerned as structured fields.
pub fn refused(f: &Finding, message: String) -> Error {
    let uuids: Vec<String> = f
        .mdevs
        .iter()
        .map(|(u, _)| u.hyphenated().to_string())
        .collect();
    tracing::info!(
        uuid = %uuids.join(","),
        apqn = %apqn_strings(&f.apqns).join(","),
        kind = finding_kind_name(f.kind),
        "refused: {message}"
    );
    Error::new(finding_error_kind(f.kind), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_above_the_maximum_are_out_of_range() {
        let e = mask_from_ids(&[5, 0x60], IdKind::Domain, 0x54, "assign to guest1")
            .expect_err("0x60 > 0x54");
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert_eq!(
            e.sentence(),
            "cannot assign to guest1: domain 0x60 is out of range; the host's highest domain id is 0x54 (ap_max_domain_id)"
        );
        let e = mask_from_ids(&[u32::MAX], IdKind::Adapter, 255, "x").expect_err("huge");
        assert_eq!(e.kind(), ErrorKind::OutOfRange);
        assert!(e.sentence().contains("adapter 4294967295"));
    }

    #[test]
    fn huge_lists_are_invalid_and_duplicates_collapse() {
        let e = mask_from_ids(&vec![1; MAX_IDS + 1], IdKind::Adapter, 255, "x").expect_err("long");
        assert_eq!(e.kind(), ErrorKind::Invalid);
        let m = mask_from_ids(&[6, 5, 5, 6], IdKind::Adapter, 255, "x").expect("ok");
        assert_eq!(ids_of(&m), vec![5, 6]);
    }

    #[test]
    fn uuids_are_strict() {
        assert!(parse_uuid("62177883-F1BB-47f0-914d-32a22e3a8804").is_some());
        assert!(parse_uuid("62177883f1bb47f0914d32a22e3a8804").is_none());
        assert!(parse_uuid("guest1").is_none());
        assert!(parse_uuid("").is_none());
    }

    #[test]
    fn finding_kinds_map_to_named_errors() {
        assert_eq!(
            finding_error_kind(FindingKind::HostOwned),
            ErrorKind::HostOwned
        );
        assert_eq!(finding_error_kind(FindingKind::InUse), ErrorKind::InUse);
        assert_eq!(
            finding_error_kind(FindingKind::OutOfRange),
            ErrorKind::OutOfRange
        );
        assert_eq!(
            finding_error_kind(FindingKind::SharedAutostart),
            ErrorKind::Conflict
        );
        assert_eq!(
            finding_error_kind(FindingKind::InvalidName),
            ErrorKind::Invalid
        );
        assert_eq!(
            finding_error_kind(FindingKind::VfioApNotLoaded),
            ErrorKind::Failed
        );
    }

    #[test]
    fn errno_names_follow_the_design() {
        use libap::validate::AssignKind;
        use ErrorKind::*;
        let u = uuid::Uuid::nil();
        let assign = Step::Assign {
            uuid: u,
            name: None,
            kind: AssignKind::Domain,
            id: 4,
        };
        let create = Step::Create {
            uuid: u,
            name: None,
        };
        let remove = Step::Remove {
            uuid: u,
            name: None,
            matrix: Matrix::default(),
        };
        let mask = Step::SetMasks {
            apmask: ApMask::full(),
            aqmask: ApMask::full(),
            old_apmask: ApMask::empty(),
            old_aqmask: ApMask::empty(),
        };
        let card = Step::ConfigureAdapter {
            adapter: 5,
            on: false,
        };
        assert_eq!(kind_for_errno(libc::EADDRNOTAVAIL, &assign), HostOwned);
        assert_eq!(kind_for_errno(libc::EADDRINUSE, &assign), InUse);
        assert_eq!(kind_for_errno(libc::ENODEV, &assign), OutOfRange);
        assert_eq!(kind_for_errno(libc::ENODEV, &card), NotFound);
        assert_eq!(kind_for_errno(libc::EBUSY, &mask), Busy);
        assert_eq!(kind_for_errno(libc::EBUSY, &remove), InUse);
        assert_eq!(kind_for_errno(libc::EBUSY, &card), Busy);
        assert_eq!(kind_for_errno(libc::EEXIST, &create), Exists);
        assert_eq!(kind_for_errno(libc::EINVAL, &mask), Invalid);
        assert_eq!(kind_for_errno(libc::EUSERS, &create), Failed);
        assert_eq!(kind_for_errno(libc::EIO, &assign), Failed);
    }
}
