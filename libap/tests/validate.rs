//! Verdicts predicted from the host model, checked against the rules of
//! kernel spec §2, §5 and §6.

mod common;

use common::{m, seed_with_guests, HostSpec, G1, G2};
use libap::validate::{
    check_assign, check_definitions, check_mask_change, check_mask_change_named, check_matrix,
    check_matrix_named, has_errors, AssignKind, AssignVerdict, FindingKind, Remedy, Severity,
};
use libap::{ApMask, Apqn, Definition, Host};
use std::collections::HashMap;
use uuid::Uuid;

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("uuid")
}

fn names() -> HashMap<Uuid, String> {
    HashMap::from([
        (uuid(G1), "guest1".to_string()),
        (uuid(G2), "guest2".to_string()),
    ])
}

fn seed_host() -> Host {
    Host::read(&seed_with_guests().fake()).expect("read")
}

#[test]
fn design_example_message() {
    // guest1 holds 05.0047; assigning domain 0x47 to guest2 (adapter 5) collides.
    let mut spec = HostSpec::seed();
    spec.mdevs
        .push((G1.into(), m(&[5, 6]), m(&[4, 0x47, 0xab]), ApMask::empty()));
    spec.mdevs
        .push((G2.into(), m(&[5]), m(&[0xff]), ApMask::empty()));
    let host = Host::read(&spec.fake()).expect("read");
    let n = names();
    let lookup = |u: Uuid| n.get(&u).cloned();
    let f = check_assign(&host, &lookup, uuid(G2), AssignKind::Domain, 0x47).expect_err("in use");
    assert_eq!(f.kind, FindingKind::InUse);
    assert_eq!(f.kind, FindingKind::AssignedElsewhere);
    assert_eq!(f.kind.errno(), Some(libc::EADDRINUSE));
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.apqns, vec![Apqn::new(5, 0x47)]);
    assert_eq!(f.mdevs, vec![(uuid(G1), Some("guest1".to_string()))]);
    assert_eq!(
        f.message,
        "cannot assign domain 0x47 to guest2: queue 05.0047 is already assigned to guest1 (62177883-f1bb-47f0-914d-32a22e3a8804)"
    );
}

#[test]
fn kernel_order_for_assign() {
    let host = seed_host();
    let none = |_: Uuid| None;
    // Already assigned: no-op, even though nothing else is checked.
    assert_eq!(
        check_assign(&host, &none, uuid(G1), AssignKind::Adapter, 5),
        Ok(AssignVerdict::NoOp)
    );
    // Adapter 5 into guest2 is already there; adapter 6 into guest2 collides
    // with nothing (guest1 has 6 but domains 4,0xab; guest2 0x47,0xff).
    assert_eq!(
        check_assign(&host, &none, uuid(G2), AssignKind::Adapter, 6),
        Ok(AssignVerdict::Ok)
    );
    // Domain 4 into guest2 collides with guest1's 05.0004.
    let f = check_assign(&host, &none, uuid(G2), AssignKind::Domain, 4).expect_err("in use");
    assert_eq!(f.kind, FindingKind::InUse);
    assert!(
        f.message.starts_with(&format!(
            "cannot assign domain 0x04 to {G2}: queue 05.0004 is already assigned to {G1}"
        )),
        "{}",
        f.message
    );

    // Out of range beats "already assigned".
    let mut small = host.clone();
    small.max_domain_id = 15;
    let f = check_assign(&small, &none, uuid(G1), AssignKind::Domain, 0xab).expect_err("range");
    assert_eq!(f.kind, FindingKind::OutOfRange);
    assert_eq!(f.kind.errno(), Some(libc::ENODEV));
    assert!(f.message.contains("0x0f"), "{}", f.message);
    let f =
        check_assign(&small, &none, uuid(G1), AssignKind::ControlDomain, 16).expect_err("range");
    assert_eq!(f.kind, FindingKind::OutOfRange);
    assert_eq!(
        check_assign(&small, &none, uuid(G1), AssignKind::ControlDomain, 15),
        Ok(AssignVerdict::Ok)
    );
}

#[test]
fn host_owned_only_with_both_dimensions() {
    let mut spec = HostSpec::seed();
    // An mdev with no domains yet; adapter 8 is set in apmask.
    spec.mdevs
        .push((G1.into(), ApMask::empty(), ApMask::empty(), ApMask::empty()));
    let host = Host::read(&spec.fake()).expect("read");
    let none = |_: Uuid| None;
    assert_eq!(
        check_assign(&host, &none, uuid(G1), AssignKind::Adapter, 8),
        Ok(AssignVerdict::Ok)
    );
    let mut h = host.clone();
    if let Some(md) = h.mdevs.get_mut(&uuid(G1)) {
        md.matrix.adapters.insert(8);
    }
    // Domain 5 is set in aqmask: 08.0005 belongs to the host.
    let f = check_assign(&h, &none, uuid(G1), AssignKind::Domain, 5).expect_err("host owned");
    assert_eq!(f.kind, FindingKind::HostOwned);
    assert_eq!(f.kind.errno(), Some(libc::EADDRNOTAVAIL));
    assert_eq!(f.apqns, vec![Apqn::new(8, 5)]);
    assert!(
        f.message.contains("queue 08.0005 belongs to the host"),
        "{}",
        f.message
    );
    // The fix is a mask change; the front end names the command.
    assert_eq!(
        f.remedy.as_deref(),
        Some(&Remedy::GiveToVfioAp {
            adapters: ApMask::from_ids([8]),
            domains: ApMask::from_ids([5]),
        })
    );
    assert!(!f.message.contains("apctl"), "{}", f.message);
    // Domain 4 is cleared in aqmask: fine.
    assert_eq!(
        check_assign(&h, &none, uuid(G1), AssignKind::Domain, 4),
        Ok(AssignVerdict::Ok)
    );
}

#[test]
fn control_domains_may_be_shared() {
    let mut spec = seed_with_guests();
    spec.mdevs[0].3 = m(&[4]);
    let host = Host::read(&spec.fake()).expect("read");
    let none = |_: Uuid| None;
    assert_eq!(
        check_assign(&host, &none, uuid(G2), AssignKind::ControlDomain, 4),
        Ok(AssignVerdict::Ok)
    );
    assert_eq!(
        check_assign(&host, &none, uuid(G1), AssignKind::ControlDomain, 4),
        Ok(AssignVerdict::NoOp)
    );
}

#[test]
fn whole_matrix_uses_ap_config_order() {
    let mut host = seed_host();
    host.max_adapter_id = 63;
    let fresh = Uuid::from_u128(7);
    // In use and out of range: EADDRINUSE comes first for ap_config.
    let f = check_matrix(&host, fresh, m(&[5, 70]), m(&[4]), ApMask::empty()).expect_err("in use");
    assert_eq!(f.kind, FindingKind::InUse);
    let f = check_matrix(&host, fresh, m(&[7, 70]), m(&[4]), ApMask::empty()).expect_err("range");
    assert_eq!(f.kind, FindingKind::OutOfRange);
    assert!(f.message.contains("adapter 70"), "{}", f.message);
    assert_eq!(
        check_matrix(&host, fresh, m(&[7]), m(&[4, 0x47]), m(&[4])),
        Ok(())
    );
    // Its own matrix does not collide with itself.
    let n = names();
    let lookup = |u: Uuid| n.get(&u).cloned();
    assert_eq!(
        check_matrix_named(
            &host,
            &lookup,
            uuid(G1),
            m(&[5, 6]),
            m(&[4, 0xab]),
            ApMask::empty()
        ),
        Ok(())
    );
    let f = check_matrix_named(
        &host,
        &lookup,
        uuid(G1),
        m(&[5, 6]),
        m(&[4, 0x47, 0xab, 0xff]),
        ApMask::empty(),
    )
    .expect_err("guest2 holds 05.0047 and 05.00ff");
    assert_eq!(f.apqns, vec![Apqn::new(5, 0x47), Apqn::new(5, 0xff)]);
    assert_eq!(
        f.message,
        format!("cannot set the matrix of guest1: queues 05.0047 and 05.00ff are already assigned to guest2 ({G2})")
    );
}

#[test]
fn mask_change_busy() {
    let host = seed_host();
    // Setting apmask bits 5,6 alone is fine: their domains stay cleared in
    // aqmask, so no APQN becomes host-owned.
    assert_eq!(
        check_mask_change(&host, ApMask::full(), host.aqmask),
        Ok(())
    );
    // Both masks full: every assigned APQN returns to the host.
    let f = check_mask_change(&host, ApMask::full(), ApMask::full()).expect_err("busy");
    assert_eq!(f.kind, FindingKind::MaskBusy);
    assert_eq!(f.kind.errno(), Some(libc::EBUSY));
    assert_eq!(f.apqns.len(), 4 + 2);
    assert_eq!(f.mdevs.len(), 2);
    // Taking back only adapter 7 (in no mdev) is fine.
    let mut ap = host.apmask;
    ap.insert(7);
    assert_eq!(check_mask_change(&host, ap, host.aqmask), Ok(()));
    // Taking back domain 4 collides with guest1 only.
    let n = names();
    let lookup = |u: Uuid| n.get(&u).cloned();
    let aq = host.aqmask.apply_write("+4").expect("valid");
    let apm = host.apmask.apply_write("+5").expect("valid");
    let f = check_mask_change_named(&host, &lookup, apm, aq).expect_err("busy");
    assert_eq!(f.mdevs, vec![(uuid(G1), Some("guest1".into()))]);
    assert_eq!(f.apqns, vec![Apqn::new(5, 4)]);
    assert_eq!(
        f.message,
        format!("cannot change the masks: queue 05.0004 is assigned to guest1 ({G1}) and would return to the host; unassign it from the mdev first, or keep the masks from giving it to the host")
    );
    assert!(
        f.message.starts_with("cannot change the masks: "),
        "{}",
        f.message
    );
    assert!(f.message.contains("guest1"), "{}", f.message);
    // Giving queues away never fails.
    assert_eq!(
        check_mask_change(&host, ApMask::empty(), ApMask::empty()),
        Ok(())
    );
    // Only while vfio_ap is loaded.
    let mut unloaded = host.clone();
    unloaded.vfio_ap_loaded = false;
    assert_eq!(
        check_mask_change(&unloaded, ApMask::full(), ApMask::full()),
        Ok(())
    );
}

fn def(u: u128, name: &str, auto: bool, a: &[u8], d: &[u8], c: &[u8]) -> Definition {
    Definition {
        uuid: Uuid::from_u128(u),
        name: Some(name.to_string()),
        autostart: auto,
        adapters: m(a),
        domains: m(d),
        control_domains: m(c),
    }
}

#[test]
fn definitions_seed_scenario_is_clean() {
    let defs = vec![
        def(1, "guest1", true, &[5, 6], &[4, 0xab], &[]),
        def(2, "guest2", true, &[5], &[0x47, 0xff], &[]),
    ];
    let mut spec = HostSpec::seed();
    spec.mdevs.clear();
    let host = Host::read(&spec.fake()).expect("read");
    let findings = check_definitions(Some(&host), &defs);
    assert!(findings.is_empty(), "{findings:?}");
    assert!(check_definitions(None, &defs).is_empty());
}

#[test]
fn definitions_errors_and_warnings() {
    let host = Host::read(&HostSpec::seed().fake()).expect("read");
    let defs = vec![
        def(1, "guest1", true, &[5, 6], &[4, 0xab], &[]),
        def(2, "guest3", true, &[6], &[0xab], &[]), // shares 06.00ab with guest1
        def(3, "guest3", false, &[9], &[0x47], &[0x10]), // dup name; outside config
        def(4, "hostq", false, &[8], &[5], &[]),    // host-owned 08.0005
        def(5, "lonely", false, &[7], &[], &[4]),   // no domains; control w/o usage
    ];
    let f = check_definitions(Some(&host), &defs);
    let kinds: Vec<(FindingKind, Severity)> = f.iter().map(|x| (x.kind, x.severity)).collect();
    for expected in [
        (FindingKind::SharedAutostart, Severity::Error),
        (FindingKind::DuplicateName, Severity::Error),
        (FindingKind::HostOwned, Severity::Error),
        (FindingKind::OutsideHostConfig, Severity::Warning),
        (FindingKind::ControlDomainNotInHost, Severity::Warning),
        (FindingKind::AdaptersWithoutDomains, Severity::Warning),
        (FindingKind::ControlWithoutUsage, Severity::Warning),
    ] {
        assert!(
            kinds.contains(&expected),
            "{expected:?} missing from {kinds:?}"
        );
    }
    assert!(has_errors(&f));
    let shared = f
        .iter()
        .find(|x| x.kind == FindingKind::SharedAutostart)
        .expect("shared");
    assert_eq!(shared.apqns, vec![Apqn::new(6, 0xab)]);
    assert!(
        shared
            .message
            .contains("guest1 (00000000-0000-0000-0000-000000000001)"),
        "{}",
        shared.message
    );
    // Over the maximum: error.
    let mut small = host.clone();
    small.max_adapter_id = 7;
    let f = check_definitions(Some(&small), &[def(9, "big", false, &[8], &[4], &[])]);
    assert!(f
        .iter()
        .any(|x| x.kind == FindingKind::OutOfRange && x.severity == Severity::Error));
    // Without a host only the host-independent checks run.
    let f = check_definitions(None, &defs);
    assert!(!f.iter().any(|x| x.kind == FindingKind::HostOwned));
    assert!(f.iter().any(|x| x.kind == FindingKind::DuplicateName));
    // Warnings only: not errors.
    let f = check_definitions(None, &[def(1, "a", false, &[1], &[], &[])]);
    assert!(!f.is_empty() && !has_errors(&f));
}

#[test]
fn autostart_blocked_by_a_live_foreign_mdev() {
    let host = seed_host();
    // guest1 and guest2 are live but not defined; a definition wants 05.0004.
    let f = check_definitions(Some(&host), &[def(9, "newbie", true, &[5], &[4], &[])]);
    let inuse = f
        .iter()
        .find(|x| x.kind == FindingKind::InUse)
        .expect("in use");
    assert_eq!(inuse.severity, Severity::Warning);
    assert!(inuse.message.contains(G1), "{}", inuse.message);
}
