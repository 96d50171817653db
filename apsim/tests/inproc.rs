//! The state machine through the in-process API, against kernel.md.

use apsim::{NodeKind, Sim, Topology};

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2: &str = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e";

fn seed() -> Sim {
    let text = include_str!("../examples/seed.toml");
    Sim::new(Topology::from_toml_str(text).expect("seed topology"))
}

fn read(sim: &Sim, path: &str) -> String {
    String::from_utf8(
        sim.read(path)
            .unwrap_or_else(|e| panic!("read {path}: errno {e}")),
    )
    .expect("utf-8")
}

fn write(sim: &Sim, path: &str, data: &str) -> Result<usize, i32> {
    sim.write(path, data.as_bytes())
}

fn ok(sim: &Sim, path: &str, data: &str) {
    assert_eq!(
        write(sim, path, data),
        Ok(data.len()),
        "write {data:?} to {path}"
    );
}

fn mdev(uuid: &str, attr: &str) -> String {
    format!("devices/vfio_ap/matrix/{uuid}/{attr}")
}

const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";

/// The seed documents' setup: masks, Guest1 and Guest2.
fn seed_guests() -> Sim {
    let sim = seed();
    ok(&sim, "bus/ap/apmask", "-5,-6\n");
    ok(&sim, "bus/ap/aqmask", "-4,-0x47,-0xab,-0xff\n");
    ok(&sim, CREATE, &format!("{G1}\n"));
    for (attr, v) in [
        ("assign_adapter", "5"),
        ("assign_adapter", "6"),
        ("assign_domain", "4"),
        ("assign_domain", "0xab"),
    ] {
        ok(&sim, &mdev(G1, attr), &format!("{v}\n"));
    }
    ok(&sim, CREATE, G2);
    for (attr, v) in [
        ("assign_adapter", "5"),
        ("assign_domain", "0x47"),
        ("assign_domain", "0xff"),
    ] {
        ok(&sim, &mdev(G2, attr), &format!("{v}\n"));
    }
    sim
}

#[test]
fn boot_state() {
    let sim = seed();
    assert_eq!(read(&sim, "bus/ap/ap_max_adapter_id"), "255\n");
    assert_eq!(
        read(&sim, "bus/ap/apmask"),
        format!("0x{}\n", "f".repeat(64))
    );
    assert_eq!(
        read(&sim, "bus/ap/ap_adapter_mask"),
        "0x7f00000000000000000000000000000000000000000000000000000000000000\n"
    );
    assert_eq!(read(&sim, "bus/ap/bindings"), "35/35 (complete)\n");
    assert_eq!(read(&sim, "bus/ap/devices/card05/type"), "CEX7C\n");
    assert_eq!(read(&sim, "bus/ap/devices/card05/hwtype"), "13\n");
    assert_eq!(read(&sim, "devices/ap/card05/05.0047/online"), "1\n");
    assert_eq!(
        sim.readlink("bus/ap/devices/card05"),
        Ok("../../../devices/ap/card05".into())
    );
    assert_eq!(
        sim.readlink("devices/ap/card05/05.0004/driver"),
        Ok("../../../../bus/ap/drivers/cex4queue".into())
    );
    assert_eq!(
        sim.stat("bus/ap/devices/05.0004").map(|n| n.kind),
        Ok(NodeKind::Symlink)
    );
    assert_eq!(
        sim.stat("devices/ap/card05/config")
            .map(|n| (n.mode, n.size)),
        Ok((0o644, 4096))
    );
    assert_eq!(sim.stat(CREATE).map(|n| n.mode), Ok(0o200));
    assert_eq!(sim.read(CREATE), Err(libc::EACCES));
    assert_eq!(
        read(&sim, "devices/vfio_ap/matrix/features"),
        "guest_matrix hotplug ap_config\n"
    );
    assert_eq!(
        read(
            &sim,
            "class/mdev_bus/matrix/mdev_supported_types/vfio_ap-passthrough/name"
        ),
        "VFIO AP Passthrough Device\n"
    );
}

#[test]
fn seed_scenario_guest_matrices() {
    let sim = seed_guests();
    assert_eq!(
        read(&sim, &mdev(G1, "matrix")),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );
    assert_eq!(
        read(&sim, &mdev(G1, "guest_matrix")),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );
    assert_eq!(read(&sim, &mdev(G2, "guest_matrix")), "05.0047\n05.00ff\n");
    assert_eq!(read(&sim, "devices/ap/card05/05.0004/status"), "assigned\n");
    assert_eq!(
        read(&sim, "devices/ap/card06/06.0047/status"),
        "unassigned\n"
    );
    assert_eq!(
        sim.read("devices/ap/card05/05.0004/online"),
        Err(libc::ENOENT)
    );
    assert_eq!(
        sim.readlink(&format!("bus/mdev/devices/{G1}")),
        Ok(format!("../../../devices/vfio_ap/matrix/{G1}"))
    );
    assert_eq!(
        read(
            &sim,
            "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/available_instances"
        ),
        "65534\n"
    );
}

#[test]
fn host_owned_and_shared_queues() {
    let sim = seed_guests();
    // Queues 01.0047 and 01.00ff are free for vfio (aqmask bits clear).
    ok(&sim, &mdev(G2, "assign_adapter"), "1");
    assert_eq!(
        read(&sim, &mdev(G2, "guest_matrix")),
        "01.0047\n01.00ff\n05.0047\n05.00ff\n"
    );
    // 01.0000 is the host's.
    assert_eq!(
        write(&sim, &mdev(G2, "assign_domain"), "0"),
        Err(libc::EADDRNOTAVAIL)
    );
    ok(&sim, &mdev(G2, "unassign_adapter"), "1");
    assert_eq!(read(&sim, &mdev(G2, "matrix")), "05.0047\n05.00ff\n");
    // 05.0004 belongs to Guest1.
    assert_eq!(
        write(&sim, &mdev(G2, "assign_domain"), "4"),
        Err(libc::EADDRINUSE)
    );
    assert!(sim.log().contains(&format!(
        "vfio_ap_mdev {G2}: Userspace may not assign queue 05.0004 to mdev: already assigned to {G1}"
    )));
    assert_eq!(
        write(&sim, &mdev(G2, "assign_domain"), "256"),
        Err(libc::ENODEV)
    );
    assert_eq!(
        write(&sim, &mdev(G2, "assign_domain"), "0x"),
        Err(libc::EINVAL)
    );
    assert_eq!(
        write(&sim, &mdev(G2, "assign_domain"), "99999999999999999999"),
        Err(libc::ERANGE)
    );
    // 05.0000 is free while apmask bit 5 is clear; setting it takes the
    // queue back from Guest2.
    ok(&sim, &mdev(G2, "assign_domain"), "0");
    assert_eq!(write(&sim, "bus/ap/apmask", "+5"), Err(libc::EBUSY));
    assert!(sim.log().contains(&format!(
        "vfio_ap_mdev {G2}: Can not reserve queue 05.0000 for host driver: in use by mdev"
    )));
    assert_eq!(
        read(&sim, "bus/ap/apmask"),
        format!("0xf9{}\n", "f".repeat(62))
    );
}

#[test]
fn uevents_of_a_mask_change() {
    let sim = seed();
    let rx = sim.subscribe();
    ok(&sim, "bus/ap/apmask", "-5");
    let events: Vec<String> = rx
        .try_iter()
        .map(|e| String::from_utf8(e).expect("utf-8"))
        .collect();
    assert_eq!(events.len(), 11, "{events:#?}");
    assert!(events[0].starts_with("unbind@/devices/ap/card05/05.0000\0ACTION=unbind\0DEVPATH=/devices/ap/card05/05.0000\0SUBSYSTEM=ap\0DEVTYPE=ap_queue\0DRIVER=cex4queue\0MODE=cca\0SEQNUM="));
    assert!(events[1].contains("DRIVER=vfio_ap\0"));
    assert!(events[10].contains("APMASK=0xfbff"));
    // Unchanged: no event.
    ok(&sim, "bus/ap/apmask", "-5");
    assert_eq!(rx.try_iter().count(), 0);
    assert_eq!(write(&sim, "bus/ap/apmask", ""), Ok(0));
}

#[test]
fn remove_blocks_while_in_use() {
    let sim = seed_guests();
    ok(&sim, ".apsim/in_use", &format!("{G1} 1\n"));
    assert_eq!(read(&sim, "devices/ap/card05/05.0004/status"), "in use\n");
    let s2 = sim.clone();
    let t = std::thread::spawn(move || {
        s2.write(&format!("devices/vfio_ap/matrix/{G1}/remove"), b"1\n")
    });
    // The write waits; the log line says so.
    while !sim
        .log()
        .iter()
        .any(|l| l.contains("Relaying device request to user (#0)"))
    {
        std::thread::yield_now();
    }
    assert!(sim.stat(&format!("devices/vfio_ap/matrix/{G1}")).is_ok());
    ok(&sim, ".apsim/in_use", &format!("{G1} 0"));
    assert_eq!(t.join().expect("remove thread"), Ok(2));
    assert_eq!(
        sim.stat(&format!("devices/vfio_ap/matrix/{G1}")),
        Err(libc::ENOENT)
    );
}

// ---- Invariants under random operation sequences ------------------------------------

use proptest::prelude::*;
use std::collections::BTreeSet;

const UUIDS: [&str; 3] = [G1, G2, "00000000-0000-0000-0000-0000000000aa"];
const IDS: [u8; 10] = [0, 1, 4, 5, 6, 7, 0x20, 0x47, 0xab, 0xff];

fn op_strategy() -> impl Strategy<Value = (String, String)> {
    let id = proptest::sample::select(IDS.to_vec());
    let uuid = proptest::sample::select(UUIDS.to_vec());
    let attr = proptest::sample::select(vec![
        "assign_adapter",
        "unassign_adapter",
        "assign_domain",
        "unassign_domain",
        "assign_control_domain",
        "unassign_control_domain",
    ]);
    prop_oneof![
        (
            any::<bool>(),
            proptest::sample::select(vec!["apmask", "aqmask"]),
            id.clone()
        )
            .prop_map(|(plus, m, id)| (
                format!("bus/ap/{m}"),
                format!("{}{id}", if plus { '+' } else { '-' })
            )),
        uuid.clone()
            .prop_map(|u| (CREATE.to_string(), u.to_string())),
        (uuid.clone(), attr, id.clone()).prop_map(|(u, a, id)| (mdev(u, a), id.to_string())),
        uuid.clone()
            .prop_map(|u| (mdev(u, "remove"), "1".to_string())),
        (uuid, id.clone(), id.clone()).prop_map(|(u, a, d)| {
            (
                mdev(u, "ap_config"),
                format!("{},{},{}\n", one_id_mask(a), one_id_mask(d), one_id_mask(d)),
            )
        }),
        (
            proptest::sample::select(vec!["vfio_ap", "cex4queue"]),
            proptest::sample::select(vec!["bind", "unbind"]),
            id.clone(),
            id.clone()
        )
            .prop_map(|(drv, what, a, d)| (
                format!("bus/ap/drivers/{drv}/{what}"),
                format!("{a:02x}.{d:04x}")
            )),
        (id.clone(), id.clone()).prop_map(|(a, d)| (
            "bus/ap/drivers_probe".to_string(),
            format!("{a:02x}.{d:04x}")
        )),
        (
            any::<bool>(),
            proptest::sample::select(vec!["adapter", "domain", "control"]),
            id.clone()
        )
            .prop_map(|(add, k, id)| (
                ".apsim/lpar".to_string(),
                format!("{} {k} {id}", if add { "add" } else { "remove" })
            )),
        (id, any::<bool>()).prop_map(|(a, on)| (
            format!("devices/ap/card{a:02x}/config"),
            u8::from(on).to_string()
        )),
        any::<bool>().prop_map(|on| (".apsim/vfio_ap".to_string(), u8::from(on).to_string())),
        Just(("bus/ap/scans".to_string(), "1".to_string())),
    ]
}

/// `0x` + 64 hex digits with only id `i` set.
fn one_id_mask(i: u8) -> String {
    let mut digits = vec!['0'; 64];
    let d = usize::from(i / 4);
    digits[d] = char::from_digit(8 >> (i % 4), 16).expect("hex digit");
    format!("0x{}", digits.into_iter().collect::<String>())
}

/// Parses matrix text into (adapters, domains, apqns).
fn parse_matrix(text: &str) -> (BTreeSet<u8>, BTreeSet<u8>, BTreeSet<(u8, u8)>) {
    let (mut a, mut d, mut q) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for line in text.lines() {
        let (x, y) = line.split_once('.').expect("a matrix line has a dot");
        let x = (!x.is_empty()).then(|| u8::from_str_radix(x, 16).expect("adapter hex"));
        let y = (!y.is_empty()).then(|| u16::from_str_radix(y, 16).expect("domain hex"));
        let y = y.map(|v| u8::try_from(v).expect("domain id"));
        if let Some(x) = x {
            a.insert(x);
        }
        if let Some(y) = y {
            d.insert(y);
        }
        if let (Some(x), Some(y)) = (x, y) {
            q.insert((x, y));
        }
    }
    (a, d, q)
}

fn mask_ids(sim: &Sim, path: &str) -> BTreeSet<u8> {
    let text = read(sim, path);
    let hex = text.trim().trim_start_matches("0x");
    let mut ids = BTreeSet::new();
    for (i, c) in hex.chars().enumerate() {
        let v = c.to_digit(16).expect("hex digit");
        for bit in 0..4 {
            if v & (8 >> bit) != 0 {
                ids.insert(u8::try_from(i * 4 + bit).expect("id"));
            }
        }
    }
    ids
}

fn check_invariants(sim: &Sim) {
    let apmask = mask_ids(sim, "bus/ap/apmask");
    let aqmask = mask_ids(sim, "bus/ap/aqmask");
    let host_apm = mask_ids(sim, "bus/ap/ap_adapter_mask");
    let host_aqm = mask_ids(sim, "bus/ap/ap_usage_domain_mask");
    let loaded = read(sim, ".apsim/vfio_ap") == "1\n";
    let mdevs: Vec<String> = sim
        .list("bus/mdev/devices")
        .expect("bus/mdev/devices")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(loaded || mdevs.is_empty(), "mdevs without vfio_ap");
    let mut owner: std::collections::BTreeMap<(u8, u8), String> = Default::default();
    for u in &mdevs {
        let (_, _, matrix) = parse_matrix(&read(sim, &mdev(u, "matrix")));
        for q in &matrix {
            if let Some(other) = owner.insert(*q, u.clone()) {
                panic!("APQN {q:?} in {u} and {other}");
            }
            assert!(
                !(apmask.contains(&q.0) && aqmask.contains(&q.1)),
                "host owns {q:?} of {u}"
            );
        }
        let (ma, md, _) = parse_matrix(&read(sim, &mdev(u, "matrix")));
        let (ga, gd, gq) = parse_matrix(&read(sim, &mdev(u, "guest_matrix")));
        assert!(
            ga.is_subset(&ma) && ga.is_subset(&host_apm),
            "{u}: guest adapters {ga:?}"
        );
        assert!(
            gd.is_subset(&md) && gd.is_subset(&host_aqm),
            "{u}: guest domains {gd:?}"
        );
        for (a, d) in gq {
            let link = sim.readlink(&format!("devices/ap/card{a:02x}/{a:02x}.{d:04x}/driver"));
            assert_eq!(
                link.as_deref(),
                Ok("../../../../bus/ap/drivers/vfio_ap"),
                "{u}: guest queue {a:02x}.{d:04x}"
            );
        }
    }
    let bindings = read(sim, "bus/ap/bindings");
    let (n, rest) = bindings.split_once('/').expect("N/M");
    let m: usize = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|s| s.parse().ok())
        .expect("M");
    let n: usize = n.parse().expect("N");
    assert!(n <= m);
    assert_eq!(bindings.contains("(complete)"), n == m);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_any_sequence(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        let sim = seed();
        for (path, data) in &ops {
            let _ = sim.write(path, data.as_bytes());
            check_invariants(&sim);
        }
    }
}

#[test]
fn sim_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<Sim>();
    let sim = seed();
    let other = sim.clone();
    ok(&other, "bus/ap/apmask", "-7");
    assert_eq!(
        read(&sim, "bus/ap/apmask"),
        format!("0xfe{}\n", "f".repeat(62))
    );
}

#[test]
fn paths_resolve_like_sysfs() {
    let sim = seed();
    // Leading slashes, dots, links in the middle and `..` after a link.
    assert_eq!(read(&sim, "/bus/ap/./devices/05.0004/config"), "1\n");
    assert_eq!(
        read(&sim, "bus/ap/devices/card05/../card06/type"),
        "CEX7C\n"
    );
    assert_eq!(sim.read("bus/ap/devices"), Err(libc::EISDIR));
    assert_eq!(sim.read("bus/ap/apmask/x"), Err(libc::ENOTDIR));
    assert_eq!(sim.list("bus/ap/apmask"), Err(libc::ENOTDIR));
    assert_eq!(sim.readlink("bus/ap/apmask"), Err(libc::EINVAL));
    assert_eq!(
        sim.write("bus/ap/ap_adapter_mask", b"0x1"),
        Err(libc::EACCES)
    );
    assert_eq!(sim.write("bus/ap", b"0x1"), Err(libc::EISDIR));
    assert_eq!(sim.write("bus/ap/nothing", b"0x1"), Err(libc::ENOENT));
    let names: Vec<String> = sim
        .list("bus/ap/devices/card05")
        .expect("list through a link")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.contains(&"05.00ff".to_string()) && names.contains(&"driver".to_string()));
}
