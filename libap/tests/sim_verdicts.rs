//! libap's predictions against the simulator's verdicts: the host model read
//! from apsim's tree, and check_assign / check_mask_change against the errno
//! apsim returns for the same write (apsim implements kernel spec
//! independently of libap).

use apsim::{Sim, Topology};
use libap::apqn::Apqn;
use libap::host::{paths, Owner};
use libap::sysfs::{SimSysfs, Sysfs, SysfsError};
use libap::validate::{check_assign, check_mask_change, AssignKind, AssignVerdict};
use libap::{ApMask, Host};
use proptest::prelude::*;
use uuid::Uuid;

const SEED: &str = include_str!("../../apsim/examples/seed.toml");
const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2: &str = "4b0818b1-0b6c-4a6a-b0c2-6ef3c8ac9b43";

fn seed() -> SimSysfs {
    SimSysfs(Sim::new(
        Topology::from_toml_str(SEED).expect("seed topology"),
    ))
}

fn create(fs: &SimSysfs, uuid: &str) {
    fs.write(paths::MDEV_CREATE, format!("{uuid}\n").as_bytes())
        .expect("create");
}

fn assign(fs: &SimSysfs, uuid: &str, attr: &str, v: &str) -> Result<(), SysfsError> {
    fs.write(
        &format!("devices/vfio_ap/matrix/{uuid}/assign_{attr}"),
        format!("{v}\n").as_bytes(),
    )
}

#[test]
fn seed_walkthrough_reads_back() {
    let fs = seed();
    fs.write(paths::APMASK, b"-5,-6\n").expect("apmask");
    fs.write(paths::AQMASK, b"-4,-0x47,-0xab,-0xff\n")
        .expect("aqmask");
    create(&fs, G1);
    create(&fs, G2);
    for (u, attr, v) in [
        (G1, "adapter", "5"),
        (G1, "adapter", "6"),
        (G1, "domain", "4"),
        (G1, "domain", "0xab"),
        (G2, "adapter", "5"),
        (G2, "domain", "0x47"),
        (G2, "domain", "0xff"),
    ] {
        assign(&fs, u, attr, v).expect("assign");
    }
    let host = Host::read(&fs).expect("read the simulated host");
    let g1 = Uuid::parse_str(G1).expect("uuid");
    let g2 = Uuid::parse_str(G2).expect("uuid");
    assert_eq!(host.config.adapters, ApMask::from_ids(1..=7));
    assert_eq!(
        host.apmask,
        ApMask::full().apply_write("-5,-6").expect("ok")
    );
    assert!(host.vfio_ap_loaded);
    assert_eq!(host.mdevs.len(), 2);
    let m1 = &host.mdevs[&g1];
    assert_eq!(m1.matrix.adapters, ApMask::from_ids([5, 6]));
    assert_eq!(m1.matrix.domains, ApMask::from_ids([4, 0xab]));
    let gm = m1.guest_matrix.expect("guest_matrix file");
    assert_eq!(
        (gm.adapters, gm.domains),
        (ApMask::from_ids([5, 6]), ApMask::from_ids([4, 0xab]))
    );
    assert_eq!(host.owner(Apqn::new(5, 0x47)), Owner::Mdev { uuid: g2 });
    assert_eq!(host.owner(Apqn::new(7, 0x47)), Owner::Free);
    assert!(matches!(host.owner(Apqn::new(1, 0)), Owner::Host { .. }));
    assert_eq!(
        host.queues[&Apqn::new(5, 4)].driver.as_deref(),
        Some("vfio_ap")
    );
    assert_eq!(
        host.queues[&Apqn::new(1, 0)].driver.as_deref(),
        Some("cex4queue")
    );
    assert_eq!(host.cards[&3].mode.map(|m| m.as_str()), Some("ep11"));
    // The full filter agrees with the kernel's file right after assigns.
    let (a, d) = libap::guest::guest_matrix(&host, m1.matrix.adapters, m1.matrix.domains);
    assert_eq!((a, d), (gm.adapters, gm.domains));
    // The design's refusal, predicted and then confirmed by the simulator.
    let names = |u: Uuid| {
        if u == g1 {
            Some("guest1".to_string())
        } else if u == g2 {
            Some("guest2".to_string())
        } else {
            None
        }
    };
    let f = check_assign(&host, &names, g1, AssignKind::Domain, 0x47).expect_err("in use");
    assert_eq!(
        f.message,
        format!("cannot assign domain 0x47 to guest1: queue 05.0047 is already assigned to guest2 ({G2})")
    );
    let e = assign(&fs, G1, "domain", "0x47").expect_err("kernel refuses");
    assert_eq!(Some(e.errno), f.kind.errno());
    // Partial refreshes after changes give what a full read gives.
    let mut partial = host.clone();
    fs.write("devices/ap/card06/config", b"0\n")
        .expect("config off");
    partial.refresh_card(&fs, 6).expect("refresh card");
    fs.write("bus/ap/drivers/vfio_ap/unbind", b"05.0004\n")
        .expect("unbind");
    partial
        .refresh_queue(&fs, Apqn::new(5, 4))
        .expect("refresh queue");
    partial.refresh_vfio(&fs).expect("refresh vfio");
    partial.refresh_masks(&fs).expect("refresh masks");
    partial.refresh_config(&fs).expect("refresh config");
    let full = Host::read(&fs).expect("read");
    assert_eq!(partial, full);
    assert!(!full.cards[&6].config);
    assert_eq!(full.queues[&Apqn::new(5, 4)].driver, None);
    let (in_g, usable, why) = full.usability(&fs, g1, Apqn::new(6, 4));
    assert!(!usable, "{in_g} {why:?}");
    assert!(why.is_some());
    // Reading one mdev again gives the same as the full read.
    assert_eq!(
        Host::read_mdev(&fs, g1).expect("read").as_ref(),
        full.mdevs.get(&g1)
    );
}

#[derive(Debug, Clone)]
enum Op {
    Assign { mdev: usize, kind: u8, id: u8 },
    Mask { aq: bool, plus: bool, id: u8 },
    Create { mdev: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let ids = prop_oneof![
        Just(0u8),
        Just(4),
        Just(5),
        Just(6),
        Just(7),
        Just(0x47),
        Just(0xab),
        Just(0xff),
        0u8..10
    ];
    prop_oneof![
        4 => (0usize..3, 0u8..3, ids.clone()).prop_map(|(mdev, kind, id)| Op::Assign { mdev, kind, id }),
        2 => (any::<bool>(), any::<bool>(), ids).prop_map(|(aq, plus, id)| Op::Mask { aq, plus, id }),
        1 => (0usize..3).prop_map(|mdev| Op::Create { mdev }),
    ]
}

const POOL: [&str; 3] = [G1, G2, "0b7f8c3e-0000-4000-8000-00000000abcd"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn predictions_match_the_simulator(ops in proptest::collection::vec(op(), 1..25)) {
        let fs = seed();
        // Start from the seed's masks so that assignments can succeed.
        fs.write(paths::APMASK, b"-5,-6,-7\n").expect("apmask");
        fs.write(paths::AQMASK, b"-4,-0x47,-0xab,-0xff\n").expect("aqmask");
        create(&fs, G1);
        create(&fs, G2);
        for op in ops {
            let host = Host::read(&fs).expect("read");
            match op {
                Op::Create { mdev } => {
                    let u = POOL[mdev];
                    let r = fs.write(paths::MDEV_CREATE, u.as_bytes());
                    let exists = host.mdevs.contains_key(&Uuid::parse_str(u).expect("uuid"));
                    prop_assert_eq!(r.is_err(), exists);
                }
                Op::Assign { mdev, kind, id } => {
                    let uuid = Uuid::parse_str(POOL[mdev]).expect("uuid");
                    if !host.mdevs.contains_key(&uuid) {
                        continue;
                    }
                    let (k, attr) = match kind {
                        0 => (AssignKind::Adapter, "adapter"),
                        1 => (AssignKind::Domain, "domain"),
                        _ => (AssignKind::ControlDomain, "control_domain"),
                    };
                    let predicted = check_assign(&host, &|_| None, uuid, k, id);
                    let actual = assign(&fs, POOL[mdev], attr, &format!("{id:#x}"));
                    match (&predicted, &actual) {
                        (Ok(_), Ok(())) => {}
                        (Err(f), Err(e)) => prop_assert_eq!(f.kind.errno(), Some(e.errno), "{}", f.message),
                        _ => prop_assert!(false, "predicted {:?}, simulator {:?}", predicted, actual),
                    }
                    if predicted == Ok(AssignVerdict::Ok) && k != AssignKind::ControlDomain {
                        // A new id runs the full filter: the file equals ours.
                        let after = Host::read(&fs).expect("read");
                        let m = &after.mdevs[&uuid];
                        let gm = m.guest_matrix.expect("guest_matrix");
                        let full = libap::guest::guest_matrix(&after, m.matrix.adapters, m.matrix.domains);
                        prop_assert_eq!((gm.adapters, gm.domains), full);
                    }
                }
                Op::Mask { aq, plus, id } => {
                    let (path, cur) = if aq { (paths::AQMASK, host.aqmask) } else { (paths::APMASK, host.apmask) };
                    let text = format!("{}{id}", if plus { '+' } else { '-' });
                    let new = cur.apply_write(&text).expect("valid relative write");
                    let (ap, aqm) = if aq { (host.apmask, new) } else { (new, host.aqmask) };
                    let predicted = check_mask_change(&host, ap, aqm);
                    let actual = fs.write(path, text.as_bytes());
                    match (&predicted, &actual) {
                        (Ok(()), Ok(())) => {}
                        (Err(f), Err(e)) => prop_assert_eq!(f.kind.errno(), Some(e.errno), "{}", f.message),
                        _ => prop_assert!(false, "{} {}: predicted {:?}, simulator {:?}", path, text, predicted, actual),
                    }
                    let after = Host::read(&fs).expect("read");
                    let expect = if actual.is_ok() { new } else { cur };
                    prop_assert_eq!(if aq { after.aqmask } else { after.apmask }, expect);
                }
            }
        }
    }
}
