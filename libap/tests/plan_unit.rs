//! The planner on hand-built host models: the seed documents' two-guest
//! setup from nothing, moving a domain, refused mask changes, pruning,
//! matching and idempotence.

use libap::desired::{DesiredMasks, DesiredState, MaskForm, MdevSpec};
use libap::host::{Card, CardMode, HostConfig, Queue};
use libap::plan::{plan, Plan, Step};
use libap::validate::{AssignKind, FindingKind, Severity};
use libap::{ApMask, Apqn, Definition, Host, Matrix, Mdev};
use uuid::Uuid;

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2: &str = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e";
const G3: &str = "11111111-2222-4333-8444-555555555555";
const FOREIGN: &str = "99999999-8888-4777-8666-555555555555";

fn u(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("uuid")
}

fn ids(v: &[u8]) -> ApMask {
    ApMask::from_ids(v.iter().copied())
}

fn all_but(v: &[u8]) -> ApMask {
    ApMask::full().difference(ids(v))
}

/// The seed LPAR: adapters 1-7, usage and control domains 0,4,0x47,0xab,0xff,
/// default masks (all ones), vfio_ap loaded, no mdevs.
fn seed_host() -> Host {
    let domains = ids(&[0, 4, 0x47, 0xab, 0xff]);
    let mut host = Host {
        max_adapter_id: 255,
        max_domain_id: 255,
        config: HostConfig {
            adapters: ids(&[1, 2, 3, 4, 5, 6, 7]),
            usage_domains: domains,
            control_domains: domains,
            known: true,
        },
        apmask: ApMask::full(),
        aqmask: ApMask::full(),
        vfio_ap_loaded: true,
        ..Host::default()
    };
    for a in 1..=7u8 {
        host.cards_mut().insert(
            a,
            Card {
                id: a,
                type_name: "CEX7C".into(),
                mode: Some(CardMode::Cca),
                config: true,
                online: true,
                chkstop: false,
            },
        );
        for d in domains.iter() {
            let apqn = Apqn::new(a, d);
            host.queues_mut().insert(
                apqn,
                Queue {
                    apqn,
                    driver: Some("cex4queue".into()),
                },
            );
        }
    }
    host
}

fn def(uuid: &str, name: &str, autostart: bool, a: &[u8], d: &[u8]) -> Definition {
    Definition {
        uuid: u(uuid),
        name: Some(name.into()),
        autostart,
        adapters: ids(a),
        domains: ids(d),
        control_domains: ApMask::empty(),
    }
}

fn guest1() -> Definition {
    def(G1, "guest1", true, &[5, 6], &[4, 0xab])
}

fn guest2() -> Definition {
    def(G2, "guest2", true, &[5], &[0x47, 0xff])
}

fn seed_masks() -> (ApMask, ApMask) {
    (all_but(&[5, 6]), all_but(&[4, 0x47, 0xab, 0xff]))
}

fn state(masks: Option<(ApMask, ApMask)>, defs: &[Definition]) -> DesiredState {
    DesiredState::from_parts(masks, defs)
}

/// The host after the seed setup: masks set, both guests active.
fn seed_guests_host() -> Host {
    let mut host = seed_host();
    (host.apmask, host.aqmask) = seed_masks();
    for d in [guest1(), guest2()] {
        host.mdevs.insert(
            d.uuid,
            Mdev {
                uuid: d.uuid,
                matrix: d.matrix(),
                guest_matrix: None,
                in_use: false,
            },
        );
    }
    host
}

fn persistent() -> (Option<ApMask>, Option<ApMask>) {
    let (a, q) = seed_masks();
    (Some(a), Some(q))
}

/// (action, target) of each step.
fn actions(p: &Plan) -> Vec<(String, String)> {
    p.steps
        .iter()
        .map(|s| (s.action().to_string(), s.target()))
        .collect()
}

fn pos(p: &Plan, f: impl Fn(&Step) -> bool) -> usize {
    p.steps.iter().position(f).expect("step present")
}

#[test]
fn empty_host_to_two_guest_setup() {
    let host = seed_host();
    let desired = state(Some(seed_masks()), &[guest1(), guest2()]);
    let p = plan(&host, &[], (None, None), &desired, false).expect("valid plan");
    let got = actions(&p);
    let s = |a: &str, t: &str| (a.to_string(), t.to_string());
    // from_parts sorts by UUID: guest2 (4b7d...) comes before guest1 (6217...).
    assert_eq!(
        got,
        vec![
            s("define", "guest2"),
            s("define", "guest1"),
            s("store-masks", "host"),
            s("set-masks", "host"),
            s("start", "guest2"),
            s("assign-adapter", "guest2"),
            s("assign-domain", "guest2"),
            s("assign-domain", "guest2"),
            s("start", "guest1"),
            s("assign-adapter", "guest1"),
            s("assign-adapter", "guest1"),
            s("assign-domain", "guest1"),
            s("assign-domain", "guest1"),
        ],
        "{:#?}",
        p.steps
    );
    // Only one mask step: the masks only clear bits here.
    assert_eq!(
        p.steps[3],
        Step::SetMasks {
            apmask: seed_masks().0,
            aqmask: seed_masks().1,
            old_apmask: ApMask::full(),
            old_aqmask: ApMask::full(),
        }
    );
    assert_eq!(
        p.steps[3].describe(),
        "change the live host masks: give adapters 5,6 and domains 0x04,0x47,0xab,0xff to vfio_ap"
    );
    assert_eq!(
        p.steps[12],
        Step::Assign {
            uuid: u(G1),
            name: Some("guest1".into()),
            kind: AssignKind::Domain,
            id: 0xab
        }
    );
    // The predicted end host has both guests with their matrices.
    assert_eq!(p.end.mdevs[&u(G1)].matrix, guest1().matrix());
    assert_eq!(p.end.mdevs[&u(G2)].matrix, guest2().matrix());
    assert_eq!((p.end.apmask, p.end.aqmask), seed_masks());
    assert!(p.end.is_vfio_bound(Apqn::new(5, 4)));
    assert!(p.end.is_vfio_bound(Apqn::new(1, 4)));
    assert!(!p.end.is_vfio_bound(Apqn::new(1, 0)));
    assert_eq!(p.definitions, vec![guest2(), guest1()]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    // Applying the same state to the end host is a no-op.
    let again = plan(&p.end, &p.definitions, persistent(), &desired, false).expect("valid");
    assert!(again.is_empty(), "{:#?}", again.steps);
}

#[test]
fn vfio_shorthand_masks_plan_the_same() {
    let host = seed_host();
    let mut desired = state(None, &[guest1(), guest2()]);
    desired.masks = Some(DesiredMasks {
        apmask: Some(all_but(&[5, 6])),
        aqmask: Some(all_but(&[4, 0x47, 0xab, 0xff])),
        form: MaskForm::Vfio,
    });
    let p = plan(&host, &[], (None, None), &desired, false).expect("valid plan");
    assert_eq!((p.end.apmask, p.end.aqmask), seed_masks());
}

#[test]
fn current_state_plans_nothing() {
    let host = seed_guests_host();
    let stored = vec![guest1(), guest2()];
    for prune in [false, true] {
        let p = plan(
            &host,
            &stored,
            persistent(),
            &state(Some(seed_masks()), &stored),
            prune,
        )
        .expect("valid");
        assert!(p.is_empty(), "{:#?}", p.steps);
        assert_eq!(p.end, host);
    }
    // Without [masks] the masks are left alone, live and persistent.
    let p = plan(&host, &stored, (None, None), &state(None, &stored), false).expect("valid");
    assert!(p.is_empty(), "{:#?}", p.steps);
}

#[test]
fn moving_a_domain_unassigns_before_it_assigns() {
    let host = seed_guests_host();
    let stored = vec![guest1(), guest2()];
    let g1 = def(G1, "guest1", true, &[5, 6], &[4, 0x47, 0xab]);
    let g2 = def(G2, "guest2", true, &[5], &[0xff]);
    let p = plan(
        &host,
        &stored,
        persistent(),
        &state(Some(seed_masks()), &[g1.clone(), g2.clone()]),
        false,
    )
    .expect("valid plan");
    let unassign = pos(
        &p,
        |s| matches!(s, Step::Unassign { uuid, kind: AssignKind::Domain, id: 0x47, .. } if *uuid == u(G2)),
    );
    let assign = pos(
        &p,
        |s| matches!(s, Step::Assign { uuid, kind: AssignKind::Domain, id: 0x47, .. } if *uuid == u(G1)),
    );
    assert!(unassign < assign, "{:#?}", p.steps);
    assert_eq!(p.steps.len(), 4, "{:#?}", p.steps);
    assert!(matches!(&p.steps[0], Step::Redefine { new, .. } if *new == g2));
    assert!(matches!(&p.steps[1], Step::Redefine { new, .. } if *new == g1));
    assert_eq!(
        p.steps[0].describe(),
        format!("change the definition of guest2 ({G2}): domains 0x47,0xff → 0xff")
    );
    assert_eq!(p.end.mdevs[&u(G1)].matrix, g1.matrix());
    assert_eq!(p.end.mdevs[&u(G2)].matrix, g2.matrix());
}

#[test]
fn taking_a_domain_another_mdev_keeps_is_refused() {
    // guest2 is not in the file and keeps 0x47: guest1 cannot have it.
    let host = seed_guests_host();
    let stored = vec![guest1(), guest2()];
    let g1 = def(G1, "guest1", true, &[5, 6], &[4, 0x47, 0xab]);
    let findings =
        plan(&host, &stored, persistent(), &state(None, &[g1]), false).expect_err("refused");
    let f = findings
        .iter()
        .find(|f| f.kind == FindingKind::InUse && f.severity == Severity::Error)
        .unwrap_or_else(|| panic!("no InUse error in {findings:#?}"));
    assert_eq!(
        f.message,
        format!(
            "cannot assign domain 0x47 to guest1: queue 05.0047 is already assigned to guest2 ({G2})"
        )
    );
    assert!(findings
        .iter()
        .any(|f| f.kind == FindingKind::SharedAutostart));
}

#[test]
fn mask_change_needing_a_queue_in_use_is_refused() {
    let host = seed_guests_host();
    let stored = vec![guest1(), guest2()];
    // Take adapter 5 and domain 4 back for the host while guest1 holds 05.0004.
    let masks = (all_but(&[6]), all_but(&[0x47, 0xab, 0xff]));
    for desired in [
        state(Some(masks), &stored),
        // guest1 not in the file: its live matrix still holds the queues.
        state(Some(masks), &[guest2()]),
    ] {
        let findings = plan(&host, &stored, persistent(), &desired, false).expect_err("refused");
        let busy = findings
            .iter()
            .find(|f| f.kind == FindingKind::MaskBusy)
            .unwrap_or_else(|| panic!("no MaskBusy in {findings:#?}"));
        assert_eq!(busy.severity, Severity::Error);
        assert_eq!(busy.apqns, vec![Apqn::new(5, 4)]);
        assert!(busy.message.contains("guest1"), "{}", busy.message);
        assert_eq!(busy.mdevs, vec![(u(G1), Some("guest1".to_string()))]);
    }
}

#[test]
fn giving_and_taking_mask_bits_in_one_apply() {
    // guest1 moves from adapter 6 to adapter 7; adapter 6 returns to the host.
    let host = seed_guests_host();
    let stored = vec![guest1(), guest2()];
    let g1 = def(G1, "guest1", true, &[5, 7], &[4, 0xab]);
    let masks = (all_but(&[5, 7]), seed_masks().1);
    let p = plan(
        &host,
        &stored,
        persistent(),
        &state(Some(masks), &[g1.clone(), guest2()]),
        false,
    )
    .expect("valid plan");
    let s = |a: &str, t: &str| (a.to_string(), t.to_string());
    assert_eq!(
        actions(&p),
        vec![
            s("redefine", "guest1"),
            s("store-masks", "host"),
            s("unassign-adapter", "guest1"),
            s("set-masks", "host"),
            s("assign-adapter", "guest1"),
            s("set-masks", "host"),
        ]
    );
    assert_eq!(
        p.steps[3].describe(),
        "change the live host masks: give adapter 7 to vfio_ap"
    );
    assert_eq!(
        p.steps[5].describe(),
        "change the live host masks: take adapter 6 back for the host"
    );
    assert_eq!((p.end.apmask, p.end.aqmask), masks);
    assert_eq!(p.end.mdevs[&u(G1)].matrix, g1.matrix());
}

#[test]
fn prune_stops_and_undefines_first_and_leaves_foreign_mdevs() {
    let mut host = seed_guests_host();
    let g3 = def(G3, "guest3", false, &[6], &[0xff]);
    let foreign = Matrix::new(ids(&[6]), ids(&[0x47]), ApMask::empty());
    for (uuid, matrix) in [(u(G3), g3.matrix()), (u(FOREIGN), foreign)] {
        host.mdevs.insert(
            uuid,
            Mdev {
                uuid,
                matrix,
                guest_matrix: None,
                in_use: false,
            },
        );
    }
    let stored = vec![guest1(), guest2(), g3.clone()];
    let desired = state(Some(seed_masks()), &[guest1(), guest2()]);

    // Without prune: nothing to do.
    let p = plan(&host, &stored, persistent(), &desired, false).expect("valid");
    assert!(p.is_empty(), "{:#?}", p.steps);

    let p = plan(&host, &stored, persistent(), &desired, true).expect("valid");
    assert_eq!(
        p.steps,
        vec![
            Step::Remove {
                uuid: u(G3),
                name: Some("guest3".into()),
                matrix: g3.matrix()
            },
            Step::Undefine(g3.clone()),
        ]
    );
    assert_eq!(p.steps[0].action(), "stop");
    assert!(p.end.mdevs.contains_key(&u(FOREIGN)));
    assert!(!p.end.mdevs.contains_key(&u(G3)));
    assert_eq!(p.definitions, vec![guest2(), guest1()]);

    // A pruned mdev a guest is using would block: refused.
    host.mdevs.get_mut(&u(G3)).expect("g3").in_use = true;
    let findings = plan(&host, &stored, persistent(), &desired, true).expect_err("in use");
    assert!(findings
        .iter()
        .any(|f| f.kind == FindingKind::InUse && f.message.contains("guest3")));
}

#[test]
fn matching_by_name_and_new_uuids() {
    let host = seed_guests_host();
    let stored = vec![guest1(), guest2()];
    let mut desired = state(None, &[guest1(), guest2()]);
    // guest1 without its UUID: matched by name; guest4 is new.
    for m in &mut desired.mdevs {
        if m.name.as_deref() == Some("guest1") {
            m.uuid = None;
            m.domains.remove(0xab);
        }
    }
    desired.mdevs.push(MdevSpec {
        uuid: None,
        name: Some("guest4".into()),
        autostart: false,
        adapters: ids(&[7]),
        domains: ids(&[4]),
        control_domains: ids(&[4]),
    });
    let p = plan(&host, &stored, (None, None), &desired, false).expect("valid");
    assert!(
        matches!(&p.steps[0], Step::Redefine { old, new } if *old == guest1() && new.uuid == u(G1))
    );
    let Step::Define(g4) = &p.steps[1] else {
        panic!("expected a define: {:#?}", p.steps)
    };
    assert_eq!(g4.name.as_deref(), Some("guest4"));
    assert!(![u(G1), u(G2)].contains(&g4.uuid));
    assert!(p.steps[1]
        .describe()
        .contains(&g4.uuid.hyphenated().to_string()));
    // guest4 is manual and not active: defined, not started.
    assert!(!p.steps.iter().any(|s| matches!(s, Step::Create { .. })));
    assert_eq!(
        p.steps[2],
        Step::Unassign {
            uuid: u(G1),
            name: Some("guest1".into()),
            kind: AssignKind::Domain,
            id: 0xab
        }
    );
    assert_eq!(p.steps.len(), 3, "{:#?}", p.steps);
}

#[test]
fn active_manual_mdev_follows_its_definition() {
    let mut host = seed_guests_host();
    // Someone wrote to guest2's attributes directly: live differs.
    host.mdevs.get_mut(&u(G2)).expect("g2").matrix.domains = ids(&[0x47]);
    let g2 = def(G2, "guest2", false, &[5], &[0x47, 0xff]);
    let p = plan(
        &host,
        &[guest2()],
        (None, None),
        &state(None, std::slice::from_ref(&g2)),
        false,
    )
    .expect("valid");
    assert_eq!(
        actions(&p),
        vec![
            ("redefine".to_string(), "guest2".to_string()),
            ("assign-domain".to_string(), "guest2".to_string())
        ]
    );
    assert_eq!(p.end.mdevs[&u(G2)].matrix, g2.matrix());
}

#[test]
fn adopting_a_foreign_mdev_by_uuid() {
    let mut host = seed_guests_host();
    let m = Matrix::new(ids(&[6]), ids(&[0x47]), ApMask::empty());
    host.mdevs.insert(
        u(FOREIGN),
        Mdev {
            uuid: u(FOREIGN),
            matrix: m,
            guest_matrix: None,
            in_use: false,
        },
    );
    let adopted = def(FOREIGN, "adopted", false, &[6], &[0x47, 0xff]);
    let p = plan(
        &host,
        &[],
        (None, None),
        &state(None, std::slice::from_ref(&adopted)),
        false,
    )
    .expect("valid");
    assert_eq!(p.steps[0], Step::Define(adopted));
    assert!(matches!(
        p.steps[1],
        Step::Assign {
            kind: AssignKind::Domain,
            id: 0xff,
            ..
        }
    ));
}

#[test]
fn vfio_ap_not_loaded_refuses_starting() {
    let mut host = seed_host();
    (host.apmask, host.aqmask) = seed_masks();
    host.vfio_ap_loaded = false;
    let findings =
        plan(&host, &[], (None, None), &state(None, &[guest1()]), false).expect_err("cannot start");
    assert!(findings
        .iter()
        .any(|f| f.kind == FindingKind::VfioApNotLoaded && f.message.contains("guest1")));
    // A manual definition needs no live change: fine.
    let manual = def(G1, "guest1", false, &[5, 6], &[4, 0xab]);
    let p = plan(
        &host,
        &[],
        (None, None),
        &state(None, std::slice::from_ref(&manual)),
        false,
    )
    .expect("valid");
    assert_eq!(p.steps, vec![Step::Define(manual)]);
}

#[test]
fn errors_of_the_file_refuse_errors_elsewhere_warn() {
    let host = seed_guests_host();
    // Two stored autostart definitions sharing 05.0047, neither in the file.
    let clash = def(G3, "clash", true, &[5], &[0x47]);
    let stored = vec![guest1(), guest2(), clash.clone()];
    let new = def(FOREIGN, "other", false, &[7], &[0]);
    let masks = (all_but(&[5, 6, 7]), all_but(&[0, 4, 0x47, 0xab, 0xff]));
    let p = plan(
        &host,
        &stored,
        (None, None),
        &state(Some(masks), &[new]),
        false,
    )
    .expect("the clash exists already");
    assert!(p
        .warnings
        .iter()
        .any(|f| f.kind == FindingKind::SharedAutostart));
    // Naming the clashing definition in the file makes it the file's error.
    let findings =
        plan(&host, &stored, (None, None), &state(None, &[clash]), false).expect_err("refused");
    assert!(findings
        .iter()
        .any(|f| f.kind == FindingKind::SharedAutostart && f.severity == Severity::Error));
    // Errors come first.
    assert_eq!(findings[0].severity, Severity::Error);
}

#[test]
fn out_of_range_and_host_owned_definitions_are_refused() {
    let mut host = seed_host();
    host.max_domain_id = 0x0f;
    let big = def(G1, "big", true, &[5], &[0x47]);
    let findings = plan(&host, &[], (None, None), &state(None, &[big]), false).expect_err("range");
    assert!(findings.iter().any(|f| f.kind == FindingKind::OutOfRange));
    // Default masks: every queue is the host's.
    let host = seed_host();
    let findings =
        plan(&host, &[], (None, None), &state(None, &[guest1()]), false).expect_err("host");
    assert!(findings.iter().any(|f| f.kind == FindingKind::HostOwned));
}

#[test]
fn the_same_mdev_twice_is_refused() {
    let host = seed_guests_host();
    let mut desired = state(None, &[guest1()]);
    let mut again = MdevSpec::from_definition(&guest1());
    again.uuid = None; // matched by name to the same definition
    again.name = Some("guest1".into());
    desired.mdevs.push(again);
    let findings = plan(&host, &[guest1()], (None, None), &desired, false).expect_err("duplicate");
    assert!(findings
        .iter()
        .any(|f| f.kind == FindingKind::DuplicateUuid));
}

#[test]
fn only_persistent_masks_differ() {
    let host = seed_guests_host();
    let stored = vec![guest1(), guest2()];
    let p = plan(
        &host,
        &stored,
        (None, None),
        &state(Some(seed_masks()), &stored),
        false,
    )
    .expect("valid");
    assert_eq!(
        p.steps,
        vec![Step::StoreMasks {
            apmask: Some(seed_masks().0),
            aqmask: Some(seed_masks().1)
        }]
    );
}

#[test]
fn wire_form_of_a_plan() {
    let host = seed_host();
    let p = plan(
        &host,
        &[],
        (None, None),
        &state(Some(seed_masks()), &[guest1()]),
        false,
    )
    .expect("valid");
    let wire = p.to_wire();
    assert_eq!(wire.len(), p.steps.len());
    assert_eq!(wire[0].action, "define");
    assert_eq!(wire[0].target, "guest1");
    assert_eq!(wire[0].uuid, G1);
    assert_eq!(wire[2].action, "set-masks");
    assert_eq!(wire[2].uuid, "");
    assert!(wire.iter().all(|w| !w.detail.is_empty()));
    let json = serde_json::to_value(&wire).expect("json");
    assert_eq!(json[3]["action"], "start");
}

#[test]
fn a_name_another_definition_keeps_is_refused() {
    let host = seed_guests_host();
    let stored = vec![guest1(), guest2()];
    // guest2 renamed to guest1 while guest1 (not in the file) keeps its name.
    let renamed = def(G2, "guest1", true, &[5], &[0x47, 0xff]);
    let findings = plan(
        &host,
        &stored,
        (None, None),
        &state(None, std::slice::from_ref(&renamed)),
        false,
    )
    .expect_err("two definitions named guest1");
    assert!(findings
        .iter()
        .any(|f| f.kind == FindingKind::DuplicateName && f.severity == Severity::Error));
    // With --prune the old guest1 goes away, so the name is free.
    let p = plan(&host, &stored, (None, None), &state(None, &[renamed]), true).expect("valid");
    assert_eq!(p.steps[0].action(), "stop");
    assert_eq!(p.steps[1].action(), "undefine");
    assert_eq!(p.steps[2].action(), "redefine");
}
