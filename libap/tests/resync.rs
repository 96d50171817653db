//! A model kept current by partial re-reads equals a whole read: for random
//! writes on the simulator (accepted or refused by it), re-reading only what
//! `Stale::after_write` names gives the same `Host` as `Host::read`.

mod common;

use apsim::{Sim, Topology};
use common::Counting;
use libap::host::paths;
use libap::resync::Stale;
use libap::sysfs::{SimSysfs, Sysfs};
use libap::{Apqn, Host};
use proptest::prelude::*;
use uuid::Uuid;

const SEED: &str = include_str!("../../apsim/examples/seed.toml");
const UUIDS: [&str; 3] = [
    "62177883-f1bb-47f0-914d-32a22e3a8804",
    "4b0818b1-0b6c-4a6a-b0c2-6ef3c8ac9b43",
    "0c7e2a3f-1d5b-4e7c-9f0a-2b3c4d5e6f70",
];

fn seed() -> SimSysfs {
    SimSysfs(Sim::new(
        Topology::from_toml_str(SEED).expect("seed topology"),
    ))
}

/// One write: (path, data).
fn write_op() -> impl Strategy<Value = (String, String)> {
    let uuid = (0..UUIDS.len()).prop_map(|i| UUIDS[i].to_string());
    let id = prop_oneof![
        Just(4u8),
        Just(5),
        Just(6),
        Just(7),
        Just(0x47),
        Just(0xab),
        Just(0xff),
        any::<u8>()
    ];
    let sign = prop_oneof![Just('+'), Just('-')];
    prop_oneof![
        // Give adapters 5-7 and domains 4, 0x47, 0xab to vfio_ap often, so
        // that assigns succeed.
        3 => Just((paths::APMASK.to_string(), "-5-7\n".to_string())),
        3 => Just((paths::AQMASK.to_string(), "-4,-0x47,-0xab\n".to_string())),
        1 => (sign.clone(), id.clone())
            .prop_map(|(s, i)| (paths::APMASK.to_string(), format!("{s}{i}\n"))),
        1 => (sign, id.clone())
            .prop_map(|(s, i)| (paths::AQMASK.to_string(), format!("{s}{i}\n"))),
        2 => uuid.clone()
            .prop_map(|u| (paths::MDEV_CREATE.to_string(), format!("{u}\n"))),
        1 => uuid.clone().prop_map(|u| (
            format!("devices/vfio_ap/matrix/{u}/remove"),
            "1\n".to_string()
        )),
        4 => (
            uuid,
            prop_oneof![
                Just("assign_adapter"),
                Just("assign_domain"),
                Just("assign_control_domain"),
                Just("unassign_adapter"),
                Just("unassign_domain"),
                Just("unassign_control_domain"),
            ],
            id.clone()
        )
            .prop_map(|(u, attr, i)| (
                format!("devices/vfio_ap/matrix/{u}/{attr}"),
                format!("{i}\n")
            )),
        1 => (1u8..=7, any::<bool>()).prop_map(|(a, on)| (
            format!("devices/ap/card{a:02x}/config"),
            if on { "1\n" } else { "0\n" }.to_string()
        )),
        1 => (id, any::<bool>()).prop_map(|(a, on)| (
            format!("devices/ap/card{a:02x}/online"),
            if on { "1\n" } else { "0\n" }.to_string()
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn partial_re_reads_keep_the_model_whole(ops in proptest::collection::vec(write_op(), 1..40)) {
        let fs = seed();
        let mut model = Host::read(&fs).expect("read");
        for (path, data) in &ops {
            // Accepted or refused: either way the model must follow.
            let _ = fs.write(path, data.as_bytes());
            let before = model.clone();
            let changed = model.refresh(&fs, &Stale::after_write(path, data)).expect("re-read");
            prop_assert_eq!(changed, before != model, "the change flag after writing to {}", path);
            let whole = Host::read(&fs).expect("read");
            prop_assert_eq!(&model, &whole, "after writing {:?} to {}", data, path);
        }
    }
}

#[test]
fn a_guest_opening_an_mdev_is_seen_by_re_reading_the_mdev() {
    let fs = seed();
    let u = Uuid::parse_str(UUIDS[0]).expect("uuid");
    for (path, data) in [
        (paths::APMASK.to_string(), "-5\n".to_string()),
        (paths::AQMASK.to_string(), "-4\n".to_string()),
        (paths::MDEV_CREATE.to_string(), format!("{}\n", UUIDS[0])),
        (paths::mdev_attr(&u, "assign_adapter"), "5\n".to_string()),
        (paths::mdev_attr(&u, "assign_domain"), "4\n".to_string()),
    ] {
        fs.write(&path, data.as_bytes()).expect("write");
    }
    let mut model = Host::read(&fs).expect("read");
    assert!(!model.mdevs[&u].in_use);
    // No uevent, no write of ours: only a re-read of the mdev shows it.
    fs.write(".apsim/in_use", format!("{} 1\n", UUIDS[0]).as_bytes())
        .expect("guest opens the mdev");
    assert!(model.refresh(&fs, &Stale::mdev(u)).expect("re-read"));
    assert!(model.mdevs[&u].in_use);
    assert_eq!(model, Host::read(&fs).expect("read"));
    fs.write(".apsim/in_use", format!("{} 0\n", UUIDS[0]).as_bytes())
        .expect("guest releases the mdev");
    assert!(model.refresh(&fs, &Stale::mdev(u)).expect("re-read"));
    assert!(!model.mdevs[&u].in_use);
    assert!(model.queues.contains_key(&Apqn::new(5, 4)));
}

#[test]
fn a_removed_adapter_leaves_the_model_with_its_card_and_the_guest() {
    let fs = seed();
    let u = Uuid::parse_str(UUIDS[1]).expect("uuid");
    for (path, data) in [
        (paths::APMASK.to_string(), "-5-7\n".to_string()),
        (paths::AQMASK.to_string(), "-4\n".to_string()),
        (paths::MDEV_CREATE.to_string(), format!("{}\n", UUIDS[1])),
        (paths::mdev_attr(&u, "assign_adapter"), "7\n".to_string()),
        (paths::mdev_attr(&u, "assign_domain"), "4\n".to_string()),
    ] {
        fs.write(&path, data.as_bytes()).expect("write");
    }
    let mut model = Host::read(&fs).expect("read");
    assert!(model
        .guest_matrix_of(&u)
        .expect("active")
        .contains(Apqn::new(7, 4)));
    fs.write(".apsim/lpar", b"remove adapter 7\n")
        .expect("lpar");
    let stale = Stale::card(7).and(Stale::config());
    assert!(model.refresh(&fs, &stale).expect("re-read"));
    assert!(!model.cards.contains_key(&7));
    assert!(model.queues.keys().all(|q| q.adapter != 7));
    assert!(
        model
            .guest_matrix_of(&u)
            .expect("active")
            .adapters
            .is_empty(),
        "the kernel unplugs the adapter from the guest"
    );
    assert_eq!(model, Host::read(&fs).expect("read"));
    assert!(
        !model.refresh(&fs, &stale).expect("re-read"),
        "a second re-read changes nothing"
    );
}

/// A 16 x 16 LPAR: a mask write moves up to 256 queues, enough for the
/// re-read to list the drivers instead of reading each queue's link.
fn grid16() -> SimSysfs {
    let ids: Vec<String> = (0..16).map(|i| i.to_string()).collect();
    let mut toml = format!(
        "max_adapter_id = 255\nmax_domain_id = 255\nusage_domains = [{l}]\ncontrol_domains = [{l}]\n",
        l = ids.join(", ")
    );
    for id in &ids {
        toml.push_str(&format!("\n[[adapter]]\nid = {id}\ntype = \"CEX8C\"\n"));
    }
    SimSysfs(Sim::new(
        Topology::from_toml_str(&toml).expect("grid topology"),
    ))
}

/// Giving many queues to vfio_ap re-reads their drivers from vfio_ap's
/// listing alone (a queue the masks give to vfio_ap can be bound to no
/// other driver, kernel spec §3), and taking them back from the host
/// drivers' listings alone.
#[test]
fn moved_queues_are_read_from_the_drivers_of_their_side() {
    let fs = grid16();
    let mut model = Host::read(&fs).expect("read");
    for (data, listed, skipped) in [
        ("-0-7\n", "vfio_ap", "cex4queue"),
        ("+0-7\n", "cex4queue", "vfio_ap"),
    ] {
        fs.write(paths::AQMASK, data.as_bytes())
            .expect("mask write");
        let counting = Counting::new(&fs);
        assert!(model
            .refresh(&counting, &Stale::after_write(paths::AQMASK, data))
            .expect("re-read"));
        assert_eq!(model, Host::read(&fs).expect("read"), "after {data:?}");
        let accessed = counting.paths();
        let dir = |d: &str| format!("{}/{d}", paths::AP_DRIVERS);
        assert!(accessed.contains(&dir(listed)), "{data:?}: {accessed:?}");
        assert!(!accessed.contains(&dir(skipped)), "{data:?}: {accessed:?}");
    }
}

/// A write on the 16 x 16 host: mostly a mask write of a range of ids
/// given to or taken from the host (one write moves 16 to 256 queues),
/// else an assign or unassign on one of three mdevs.
fn grid_write() -> impl Strategy<Value = (String, String)> {
    let path = prop_oneof![Just(paths::APMASK), Just(paths::AQMASK)];
    let mask = (path, any::<bool>(), 0u8..16, 0u8..16).prop_map(|(p, give, a, b)| {
        let (lo, hi) = (a.min(b), a.max(b));
        let sign = if give { '-' } else { '+' };
        (p.to_string(), format!("{sign}{lo}-{hi}\n"))
    });
    let attr = prop_oneof![
        Just("assign_adapter"),
        Just("assign_domain"),
        Just("unassign_adapter"),
        Just("unassign_domain"),
    ];
    let assign = (0..UUIDS.len(), attr, 0u8..16).prop_map(|(i, attr, id)| {
        (
            format!("devices/vfio_ap/matrix/{}/{attr}", UUIDS[i]),
            format!("{id}\n"),
        )
    });
    prop_oneof![3 => mask, 2 => assign]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn mask_writes_moving_many_queues_keep_the_model_whole(
        ops in proptest::collection::vec(grid_write(), 1..16)
    ) {
        let fs = grid16();
        for u in UUIDS {
            fs.write(paths::MDEV_CREATE, format!("{u}\n").as_bytes()).expect("create");
        }
        let mut model = Host::read(&fs).expect("read");
        for (path, data) in &ops {
            let _ = fs.write(path, data.as_bytes());
            model.refresh(&fs, &Stale::after_write(path, data)).expect("re-read");
            let whole = Host::read(&fs).expect("read");
            prop_assert_eq!(&model, &whole, "after writing {:?} to {}", data, path);
        }
    }

    /// What libap predicts for an mdev it has just created and assigned
    /// is what the kernel shows: the writer need not read it back.
    #[test]
    fn a_started_mdev_is_as_predicted(
        // 1 and 0 are the host's (refused), 9 and 0x10 outside the LPAR (assigned,
        // but not in the guest matrix).
        adapters in proptest::collection::vec(prop_oneof![Just(5u8), Just(6), Just(7), Just(1), Just(9)], 0..4),
        domains in proptest::collection::vec(prop_oneof![Just(4u8), Just(0x47), Just(0xab), Just(0), Just(0x10)], 0..4),
        controls in proptest::collection::vec(prop_oneof![Just(4u8), Just(0xff)], 0..2),
        ap_offline in any::<bool>(),
    ) {
        let fs = seed();
        fs.write(paths::APMASK, b"-5-7\n").expect("apmask");
        fs.write(paths::AQMASK, b"-4,-0x47,-0xab\n").expect("aqmask");
        if ap_offline {
            // An adapter configured off keeps its queues bound to vfio_ap.
            fs.write("devices/ap/card06/config", b"0\n").expect("config");
        }
        let host = Host::read(&fs).expect("read");
        let u = Uuid::parse_str(UUIDS[0]).expect("uuid");
        fs.write(paths::MDEV_CREATE, format!("{}\n", UUIDS[0]).as_bytes()).expect("create");
        let mut written = libap::Matrix::default();
        for (attr, ids, mask) in [
            ("assign_adapter", &adapters, &mut written.adapters),
            ("assign_domain", &domains, &mut written.domains),
            ("assign_control_domain", &controls, &mut written.control_domains),
        ] {
            for id in ids {
                // Ids the host keeps are refused (EADDRNOTAVAIL): not assigned.
                if fs.write(&paths::mdev_attr(&u, attr), format!("{id}\n").as_bytes()).is_ok() {
                    mask.insert(*id);
                }
            }
        }
        let mut predicted = host.clone();
        predicted.put(
            libap::resync::Delta::started(&host, u, written).expect("the seed kernel has features"),
        );
        prop_assert_eq!(&predicted, &Host::read(&fs).expect("read"));
    }
}
