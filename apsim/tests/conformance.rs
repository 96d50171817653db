//! Conformance: every numbered rule of shared/spec/kernel.md, through the
//! FUSE mount of the real `apsim` binary, with `cat`, shell `echo` and
//! std::fs. Skipped (with a reason) where /dev/fuse or root is missing.

mod common;

use common::{wait_for, Mount, Uevent};

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2: &str = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e";
const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
const TYPE_DIR: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough";

fn mdev(uuid: &str, attr: &str) -> String {
    format!("devices/vfio_ap/matrix/{uuid}/{attr}")
}

/// `0x` + 64 hex digits + `\n` with exactly these ids set (ID 0 leftmost).
fn mask(ids: &[u8]) -> String {
    let mut bytes = [0u8; 32];
    for id in ids {
        bytes[usize::from(*id / 8)] |= 0x80 >> (id % 8);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{hex}\n")
}

/// A mask with every id set except these.
fn mask_without(ids: &[u8]) -> String {
    let all: Vec<u8> = (0..=255u8).filter(|i| !ids.contains(i)).collect();
    mask(&all)
}

/// The seed documents' setup: masks, then Guest1 (adapters 5,6 x domains
/// 4,0xab) and Guest2 (adapter 5 x domains 0x47,0xff).
fn seed_guests(m: &Mount) {
    m.ok("bus/ap/apmask", "-5,-6");
    m.ok("bus/ap/aqmask", "-4,-0x47,-0xab,-0xff");
    m.ok(CREATE, G1);
    m.ok(&mdev(G1, "assign_adapter"), "5");
    m.ok(&mdev(G1, "assign_adapter"), "6");
    m.ok(&mdev(G1, "assign_domain"), "4");
    m.ok(&mdev(G1, "assign_domain"), "0xab");
    m.ok(CREATE, G2);
    m.ok(&mdev(G2, "assign_adapter"), "5");
    m.ok(&mdev(G2, "assign_domain"), "0x47");
    m.ok(&mdev(G2, "assign_domain"), "0xff");
}

fn lines(v: &[&str]) -> String {
    v.iter().map(|l| format!("{l}\n")).collect()
}

// ---- §1 Objects ---------------------------------------------------------------

#[test]
fn s1_objects_and_host_configuration() {
    require_fuse!();
    let m = Mount::seed();
    let cards: Vec<String> = (1..=7).map(|a| format!("card{a:02x}")).collect();
    let mut expect = cards.clone();
    expect.push("uevent".into());
    assert_eq!(m.ls("devices/ap"), expect);
    let devs = m.ls("bus/ap/devices");
    assert_eq!(devs.len(), 7 + 7 * 5, "{devs:?}");
    assert_eq!(
        m.readlink("bus/ap/devices/card05"),
        "../../../devices/ap/card05"
    );
    assert_eq!(
        m.readlink("bus/ap/devices/05.0047"),
        "../../../devices/ap/card05/05.0047"
    );
    // Through the links, as tools walk them.
    assert_eq!(m.read("bus/ap/devices/05.0047/config"), "1\n");
    let queues: Vec<String> = m
        .ls("devices/ap/card05")
        .into_iter()
        .filter(|n| n.starts_with("05."))
        .collect();
    assert_eq!(
        queues,
        vec!["05.0000", "05.0004", "05.0047", "05.00ab", "05.00ff"]
    );
    assert_eq!(m.read("bus/ap/ap_max_adapter_id"), "255\n");
    assert_eq!(m.read("bus/ap/ap_max_domain_id"), "255\n");
    assert_eq!(
        m.read("bus/ap/ap_adapter_mask"),
        mask(&[1, 2, 3, 4, 5, 6, 7])
    );
    assert_eq!(
        m.read("bus/ap/ap_adapter_mask"),
        "0x7f00000000000000000000000000000000000000000000000000000000000000\n"
    );
    assert_eq!(
        m.read("bus/ap/ap_usage_domain_mask"),
        mask(&[0, 4, 0x47, 0xab, 0xff])
    );
    assert_eq!(
        m.read("bus/ap/ap_control_domain_mask"),
        mask(&[0, 4, 0x47, 0xab, 0xff])
    );
}

#[test]
fn s1_standby_checkstop_max_ids_and_old_cards() {
    require_fuse!();
    let m = Mount::example("deconfigured.toml");
    assert_eq!(m.read("devices/ap/card06/config"), "0\n");
    assert_eq!(m.read("devices/ap/card06/06.0004/config"), "0\n");
    assert_eq!(m.read("devices/ap/card06/online"), "0\n");
    assert_eq!(m.read("devices/ap/card07/chkstop"), "1\n");
    assert_eq!(m.read("devices/ap/card07/07.00ab/chkstop"), "1\n");
    assert_eq!(m.read("devices/ap/card05/chkstop"), "0\n");
    drop(m);

    let m = Mount::with_topology(
        "max_adapter_id = 63\nmax_domain_id = 15\nusage_domains = [1]\ncontrol_domains = [1, 2]\n\
         [[adapter]]\nid = 2\ntype = \"CEX3C\"\n[[adapter]]\nid = 3\ntype = \"CEX4A\"\n",
    );
    assert_eq!(m.read("bus/ap/ap_max_adapter_id"), "63\n");
    assert_eq!(m.read("bus/ap/ap_max_domain_id"), "15\n");
    // CEX3 is in the configuration but gets no card device.
    assert_eq!(m.read("bus/ap/ap_adapter_mask"), mask(&[2, 3]));
    assert!(!m.exists("devices/ap/card02"));
    assert!(m.exists("devices/ap/card03/03.0001"));
    assert_eq!(m.read("bus/ap/ap_control_domain_mask"), mask(&[1, 2]));
}

// ---- §2 Masks ------------------------------------------------------------------

#[test]
fn s2_mask_read_and_write_syntax() {
    require_fuse!();
    let m = Mount::seed();
    assert_eq!(m.read("bus/ap/apmask"), format!("0x{}\n", "f".repeat(64)));
    m.ok("bus/ap/apmask", "-5,-6");
    assert_eq!(m.read("bus/ap/apmask"), mask_without(&[5, 6]));
    m.ok("bus/ap/aqmask", "-4,-0x47,-0xab,-0xff");
    assert_eq!(
        m.read("bus/ap/aqmask"),
        mask_without(&[4, 0x47, 0xab, 0xff])
    );
    // Absolute: left-aligned, either case, optional 0x or x.
    m.ok("bus/ap/apmask", "0x7d");
    assert_eq!(m.read("bus/ap/apmask"), mask(&[1, 2, 3, 4, 5, 7]));
    m.ok("bus/ap/apmask", "x80");
    assert_eq!(m.read("bus/ap/apmask"), mask(&[0]));
    m.ok("bus/ap/apmask", "0xFF");
    assert_eq!(m.read("bus/ap/apmask"), mask(&[0, 1, 2, 3, 4, 5, 6, 7]));
    m.ok("bus/ap/apmask", "");
    assert_eq!(m.read("bus/ap/apmask"), mask(&[]));
    m.ok("bus/ap/apmask", &format!("0x{}", "f".repeat(64)));
    m.ok("bus/ap/apmask", "0x");
    assert_eq!(m.read("bus/ap/apmask"), mask(&[]));
    // Relative: ranges, terms without separators, octal and hex numbers.
    m.ok("bus/ap/apmask", "+1-4,+7");
    assert_eq!(m.read("bus/ap/apmask"), mask(&[1, 2, 3, 4, 7]));
    m.ok("bus/ap/apmask", "+8+9,,-1-2");
    assert_eq!(m.read("bus/ap/apmask"), mask(&[3, 4, 7, 8, 9]));
    // Any number of separators after the last term, in one write.
    assert_eq!(m.write_raw("bus/ap/apmask", b"-9,\n,\n\n"), Ok(7));
    assert_eq!(m.read("bus/ap/apmask"), mask(&[3, 4, 7, 8]));
    m.ok("bus/ap/apmask", "+9");
    m.ok("bus/ap/apmask", "+010,+0X20");
    assert_eq!(m.read("bus/ap/apmask"), mask(&[3, 4, 7, 8, 9, 0x20]));
    m.ok("bus/ap/apmask", "-0-255,+255");
    assert_eq!(m.read("bus/ap/apmask"), mask(&[255]));

    // EINVAL: nothing changes.
    let before = m.read("bus/ap/apmask");
    m.fails("bus/ap/apmask", "0X1", libc::EINVAL);
    for bad in [
        &b"0X1"[..],
        b"0x1 ",
        b"0x1,",
        b" 0x1",
        b"0x1\n\n",
        b"+1,2",
        b"+4-2",
        b"+256",
        b"+1-256",
        b"+",
        b"-",
        b"+ 1",
        b"+1 ",
        b"+x",
        b"+0x",
        b"+08",
        b"+-1",
    ] {
        assert_eq!(
            m.write_raw("bus/ap/apmask", bad),
            Err(libc::EINVAL),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = format!("0x{}", "0".repeat(65));
    assert_eq!(
        m.write_raw("bus/ap/apmask", long.as_bytes()),
        Err(libc::EINVAL)
    );
    assert_eq!(m.read("bus/ap/apmask"), before);
    // A zero-length write takes nothing and does nothing.
    assert_eq!(m.write_raw("bus/ap/apmask", b""), Ok(0));
    assert_eq!(m.read("bus/ap/apmask"), before);
    // One write = one atomic update: the whole count is taken.
    assert_eq!(m.write_raw("bus/ap/aqmask", b"+4\n"), Ok(3));
    // simple_strtoul wraps around 2^64 (the kernel only flags the
    // overflow, and simple_strtoul ignores the flag): 0x7 followed by 39
    // hex zeros is 7 * 2^156, which wraps to 0; 2^64 + 5 wraps to 5.
    m.ok("bus/ap/apmask", "0x0");
    m.ok("bus/ap/apmask", &format!("+0x7{}", "0".repeat(39)));
    assert_eq!(m.read("bus/ap/apmask"), format!("0x8{}\n", "0".repeat(63)));
    m.ok("bus/ap/apmask", "+18446744073709551621");
    assert_eq!(m.read("bus/ap/apmask"), format!("0x84{}\n", "0".repeat(62)));
    // The write ends at its first NUL (the store sees a C string): a write
    // that starts with one is an empty absolute mask.
    assert_eq!(m.write_raw("bus/ap/apmask", b"\0+1"), Ok(3));
    assert_eq!(m.read("bus/ap/apmask"), format!("0x{}\n", "0".repeat(64)));
}

#[test]
fn s2_rebinding_and_mask_uevents() {
    require_fuse!();
    let m = Mount::seed();
    let ev = m.uevents();
    m.ok("bus/ap/apmask", "-5");
    let got = ev.until(|e| e.get("APMASK").is_some());
    let shorts: Vec<String> = got.iter().map(Uevent::short).collect();
    let mut expect = Vec::new();
    for d in ["0000", "0004", "0047", "00ab", "00ff"] {
        expect.push(format!("unbind@/devices/ap/card05/05.{d}"));
        expect.push(format!("bind@/devices/ap/card05/05.{d}"));
    }
    expect.push("change@/devices/ap".into());
    assert_eq!(shorts, expect);
    assert_eq!(got[0].get("DRIVER"), Some("cex4queue"));
    assert_eq!(got[1].get("DRIVER"), Some("vfio_ap"));
    let change = got.last().expect("mask change");
    assert_eq!(change.get("SUBSYSTEM"), Some("ap"));
    assert_eq!(change.get("APMASK"), Some(mask_without(&[5]).as_str()));
    assert_eq!(
        m.readlink("devices/ap/card05/05.0004/driver"),
        "../../../../bus/ap/drivers/vfio_ap"
    );
    assert_eq!(
        m.readlink("devices/ap/card04/04.0004/driver"),
        "../../../../bus/ap/drivers/cex4queue"
    );

    // aqmask: queues of domain 4 on every host adapter move.
    m.ok("bus/ap/aqmask", "-4");
    let got = ev.until(|e| e.get("AQMASK").is_some());
    let moved: Vec<String> = got
        .iter()
        .filter(|e| e.action() == "bind")
        .map(|e| e.devpath().to_string())
        .collect();
    assert_eq!(
        moved,
        [1, 2, 3, 4, 6, 7]
            .iter()
            .map(|a| format!("/devices/ap/card{a:02x}/{a:02x}.0004"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        got.last().and_then(|e| e.get("AQMASK")),
        Some(mask_without(&[4]).as_str())
    );

    // Writing the value the mask already has: no rebinding, no uevent. The
    // next event is the marker written after it.
    m.ok("bus/ap/apmask", "-5");
    m.ok("bus/ap/aqmask", mask_without(&[4]).trim());
    m.ok("devices/ap/card01/uevent", "change");
    let next = ev.next();
    assert_eq!(next.short(), "change@/devices/ap/card01");
}

#[test]
fn s2_taking_back_assigned_queues_is_ebusy() {
    require_fuse!();
    let m = Mount::seed();
    m.ok("bus/ap/apmask", "-5");
    m.ok(CREATE, G1);
    m.ok(&mdev(G1, "assign_adapter"), "5");
    m.ok(&mdev(G1, "assign_domain"), "0");
    m.ok(CREATE, G2);
    m.ok(&mdev(G2, "assign_adapter"), "5");
    m.ok(&mdev(G2, "assign_domain"), "4");
    m.ok(&mdev(G2, "assign_domain"), "0x47");
    let before = m.read("bus/ap/apmask");
    m.fails("bus/ap/apmask", "+5", libc::EBUSY);
    assert_eq!(m.read("bus/ap/apmask"), before);
    // One line per APQN of the first (newest) mdev with a conflict.
    let log = m.log();
    assert!(log.contains(&format!(
        "vfio_ap_mdev {G2}: Can not reserve queue 05.0004 for host driver: in use by mdev"
    )));
    assert!(log.contains(&format!(
        "vfio_ap_mdev {G2}: Can not reserve queue 05.0047 for host driver: in use by mdev"
    )));
    assert!(!log.iter().any(|l| l.contains(G1)), "{log:?}");
    // Whether or not the queue exists: adapter 0x30 and domain 0x20 are
    // not in the LPAR; 30.0020 is free while aqmask bit 0x20 is clear.
    let g3 = "00000000-0000-0000-0000-000000000003";
    m.ok("bus/ap/aqmask", "-0x20");
    m.ok(CREATE, g3);
    m.ok(&mdev(g3, "assign_adapter"), "0x30");
    m.ok(&mdev(g3, "assign_domain"), "0x20");
    m.fails("bus/ap/aqmask", "+0x20", libc::EBUSY);
    assert!(m.log().contains(&format!(
        "vfio_ap_mdev {g3}: Can not reserve queue 30.0020 for host driver: in use by mdev"
    )));
    // Giving queues away never fails.
    m.ok("bus/ap/aqmask", "-0-255");
    assert_eq!(m.read("bus/ap/aqmask"), mask(&[]));
    // With vfio_ap unloaded there is nothing to check.
    m.ok(".apsim/vfio_ap", "0");
    m.ok("bus/ap/apmask", "+0-255");
    m.ok("bus/ap/aqmask", "+0-255");
}

// ---- §3 Drivers and bindings -------------------------------------------------------

#[test]
fn s3_bind_unbind_probe_bindings_scans_status() {
    require_fuse!();
    let m = Mount::seed();
    assert_eq!(
        m.ls("bus/ap/drivers"),
        vec!["cex4card", "cex4queue", "vfio_ap"]
    );
    assert_eq!(
        m.readlink("devices/ap/card05/driver"),
        "../../../bus/ap/drivers/cex4card"
    );
    assert_eq!(m.readlink("devices/ap/card05/subsystem"), "../../../bus/ap");
    assert_eq!(
        m.readlink("bus/ap/drivers/cex4queue/05.0004"),
        "../../../../devices/ap/card05/05.0004"
    );
    assert_eq!(m.read("bus/ap/bindings"), "35/35 (complete)\n");

    m.fails("bus/ap/drivers/vfio_ap/unbind", "05.0004", libc::ENODEV);
    m.fails("bus/ap/drivers/cex4queue/unbind", "05.0005", libc::ENODEV);
    m.ok("bus/ap/drivers/cex4queue/unbind", "05.0004");
    assert!(!m.exists("devices/ap/card05/05.0004/driver"));
    assert!(!m.exists("bus/ap/drivers/cex4queue/05.0004"));
    assert_eq!(m.read("bus/ap/bindings"), "34/35\n");
    // The masks give it to the host: vfio_ap may not have it.
    m.fails("bus/ap/drivers/vfio_ap/bind", "05.0004", libc::ENODEV);
    m.fails("bus/ap/drivers/cex4queue/bind", "05.0005", libc::ENODEV);
    m.fails("bus/ap/drivers/cex4queue/bind", "card05", libc::ENODEV);
    m.ok("bus/ap/drivers/cex4queue/bind", "05.0004");
    m.fails("bus/ap/drivers/cex4queue/bind", "05.0004", libc::EBUSY);
    m.fails("bus/ap/drivers/vfio_ap/bind", "05.0004", libc::EBUSY);
    m.ok("bus/ap/drivers/cex4queue/unbind", "05.0004");
    m.ok("bus/ap/drivers_probe", "05.0004");
    assert_eq!(
        m.readlink("devices/ap/card05/05.0004/driver"),
        "../../../../bus/ap/drivers/cex4queue"
    );
    m.fails("bus/ap/drivers_probe", "05.0005", libc::ENODEV);
    assert_eq!(m.read("bus/ap/bindings"), "35/35 (complete)\n");
    assert_eq!(m.write_raw("bus/ap/drivers_probe", b"05.0004"), Ok(7));

    // scans: a write forces a rescan.
    let scans: u64 = m.read("bus/ap/scans").trim().parse().expect("decimal");
    m.ok("bus/ap/scans", "1");
    assert_eq!(m.read("bus/ap/scans"), format!("{}\n", scans + 1));

    // status exists only on vfio_ap queues, online only on cex4queue ones.
    m.ok("bus/ap/apmask", "-5");
    assert_eq!(m.read("devices/ap/card05/05.0004/status"), "unassigned\n");
    assert!(!m.exists("devices/ap/card05/05.0004/online"));
    assert!(!m.exists("devices/ap/card04/04.0004/status"));
    assert_eq!(m.read("devices/ap/card04/04.0004/online"), "1\n");
    m.ok(CREATE, G1);
    m.ok(&mdev(G1, "assign_adapter"), "5");
    m.ok(&mdev(G1, "assign_domain"), "4");
    assert_eq!(m.read("devices/ap/card05/05.0004/status"), "assigned\n");
    m.ok(".apsim/in_use", &format!("{G1} 1"));
    assert_eq!(m.read("devices/ap/card05/05.0004/status"), "in use\n");
    assert_eq!(m.read("devices/ap/card05/05.0000/status"), "unassigned\n");
    m.ok(".apsim/in_use", &format!("{G1} 0"));
    assert_eq!(m.read("devices/ap/card05/05.0004/status"), "assigned\n");
}

// ---- §4 The matrix device and mdev type ---------------------------------------------------

#[test]
fn s4_matrix_device_type_and_create() {
    require_fuse!();
    let m = Mount::seed();
    assert_eq!(
        m.read(&format!("{TYPE_DIR}/name")),
        "VFIO AP Passthrough Device\n"
    );
    assert_eq!(m.read(&format!("{TYPE_DIR}/device_api")), "vfio-ap\n");
    assert_eq!(
        m.read(&format!("{TYPE_DIR}/available_instances")),
        "65536\n"
    );
    assert!(!m.exists(&format!("{TYPE_DIR}/description")));
    assert_eq!(
        m.read("devices/vfio_ap/matrix/features"),
        "guest_matrix hotplug ap_config\n"
    );
    assert_eq!(
        m.readlink("class/mdev_bus/matrix"),
        "../../devices/vfio_ap/matrix"
    );
    assert_eq!(
        m.readlink("bus/matrix/devices/matrix"),
        "../../../devices/vfio_ap/matrix"
    );
    assert!(m.exists("bus/matrix/drivers/vfio_ap"));
    assert!(m.exists("bus/mdev/drivers/vfio_ap_mdev"));
    // create is write-only.
    let e = m.cat(CREATE).expect_err("create is not readable");
    assert!(e.contains("Permission denied"), "{e}");

    let ev = m.uevents();
    // Length: 36 or 37 bytes exactly.
    assert_eq!(m.write_raw(CREATE, &G1.as_bytes()[..35]), Err(libc::EINVAL));
    assert_eq!(
        m.write_raw(CREATE, format!("{G1}\n\n").as_bytes()),
        Err(libc::EINVAL)
    );
    assert_eq!(
        m.write_raw(CREATE, b"62177883-f1bb-47f0-914d+32a22e3a8804"),
        Err(libc::EINVAL)
    );
    assert_eq!(
        m.write_raw(CREATE, b"g2177883-f1bb-47f0-914d-32a22e3a8804"),
        Err(libc::EINVAL)
    );
    // The 37th byte is not checked; hex of either case; named in lowercase.
    let upper = G1.to_uppercase();
    assert_eq!(m.write_raw(CREATE, format!("{upper}X").as_bytes()), Ok(37));
    let got = ev.until(|e| e.action() == "bind");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].short(), format!("add@/devices/vfio_ap/matrix/{G1}"));
    assert_eq!(got[0].get("SUBSYSTEM"), Some("mdev"));
    assert_eq!(got[0].get("DRIVER"), None);
    assert_eq!(got[1].get("DRIVER"), Some("vfio_ap_mdev"));
    m.fails(CREATE, G1, libc::EEXIST);
    m.fails(CREATE, &upper, libc::EEXIST);
    assert_eq!(
        m.read(&format!("{TYPE_DIR}/available_instances")),
        "65535\n"
    );
    assert_eq!(
        m.readlink(&format!("bus/mdev/devices/{G1}")),
        format!("../../../devices/vfio_ap/matrix/{G1}")
    );
    assert_eq!(
        m.readlink(&format!("{TYPE_DIR}/devices/{G1}")),
        format!("../../../{G1}")
    );
    let entries = m.ls(&format!("devices/vfio_ap/matrix/{G1}"));
    for name in [
        "assign_adapter",
        "unassign_adapter",
        "assign_domain",
        "unassign_domain",
        "assign_control_domain",
        "unassign_control_domain",
        "matrix",
        "guest_matrix",
        "control_domains",
        "ap_config",
        "remove",
        "driver",
        "subsystem",
        "uevent",
        "iommu_group",
        "mdev_type",
    ] {
        assert!(
            entries.contains(&name.to_string()),
            "{name} missing from {entries:?}"
        );
    }
    assert_eq!(
        m.readlink(&mdev(G1, "mdev_type")),
        "../mdev_supported_types/vfio_ap-passthrough"
    );
    assert_eq!(
        m.readlink(&mdev(G1, "driver")),
        "../../../../bus/mdev/drivers/vfio_ap_mdev"
    );
    assert!(m
        .readlink(&mdev(G1, "iommu_group"))
        .starts_with("../../../../kernel/iommu_groups/"));
    assert!(std::fs::metadata(m.p(&mdev(G1, "iommu_group"))).is_ok_and(|md| md.is_dir()));
    // mdevctl's view: the parent and type through the links.
    let real =
        std::fs::canonicalize(m.p(&format!("bus/mdev/devices/{G1}"))).expect("canonical mdev");
    assert_eq!(
        real.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str()),
        Some("matrix")
    );
    // A new mdev is empty.
    assert_eq!(m.read(&mdev(G1, "matrix")), "");
    assert_eq!(m.read(&mdev(G1, "guest_matrix")), "");
    assert_eq!(m.read(&mdev(G1, "control_domains")), "");
    assert_eq!(
        m.read(&mdev(G1, "ap_config")),
        format!("{},{},{}", mask(&[]).trim(), mask(&[]).trim(), mask(&[]))
    );
    for wo in ["assign_adapter", "remove"] {
        assert_eq!(m.read_fs(&mdev(G1, wo)), Err(libc::EACCES));
    }
}

#[test]
fn s4_remove() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    let ev = m.uevents();
    m.fails(&mdev(G2, "remove"), "yes", libc::EINVAL);
    m.fails(&mdev(G2, "remove"), "-1", libc::EINVAL);
    m.ok(&mdev(G2, "remove"), "0");
    assert!(m.exists(&mdev(G2, "matrix")));
    assert_eq!(m.read("devices/ap/card05/05.0047/status"), "assigned\n");
    m.ok(&mdev(G2, "remove"), "1");
    assert!(!m.exists(&format!("devices/vfio_ap/matrix/{G2}")));
    assert!(!m.exists(&format!("bus/mdev/devices/{G2}")));
    let got = ev.until(|e| e.action() == "remove");
    let shorts: Vec<String> = got.iter().map(Uevent::short).collect();
    assert_eq!(
        shorts,
        vec![
            format!("unbind@/devices/vfio_ap/matrix/{G2}"),
            format!("remove@/devices/vfio_ap/matrix/{G2}")
        ]
    );
    assert_eq!(got[0].get("DRIVER"), Some("vfio_ap_mdev"));
    assert_eq!(got[1].get("SUBSYSTEM"), Some("mdev"));
    assert_eq!(m.read("devices/ap/card05/05.0047/status"), "unassigned\n");
    assert_eq!(
        m.read(&format!("{TYPE_DIR}/available_instances")),
        "65535\n"
    );
}

#[test]
fn s4_remove_blocks_while_a_guest_uses_the_mdev() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    m.ok(".apsim/in_use", &format!("{G1} 1"));
    assert_eq!(m.read("devices/ap/card06/06.00ab/status"), "in use\n");
    let path = m.p(&mdev(G1, "remove"));
    let remover = std::thread::spawn(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(r#"echo 1 > "$1""#)
            .arg("bash")
            .arg(path)
            .status()
            .expect("run bash")
    });
    let relay = format!("vfio_ap_mdev {G1}: Relaying device request to user (#0)");
    wait_for("the device request log line", || m.log().contains(&relay));
    // The mount keeps serving while the remove waits; the mdev is still there.
    assert_eq!(
        m.read(&mdev(G1, "matrix")),
        lines(&["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
    m.ok(&mdev(G2, "assign_domain"), "0");
    assert!(!remover.is_finished());
    // Unloading vfio_ap is refused while a guest holds an mdev.
    m.fails(".apsim/vfio_ap", "0", libc::EBUSY);
    m.ok(".apsim/in_use", &format!("{G1} 0"));
    assert!(remover.join().expect("remover thread").success());
    assert!(!m.exists(&format!("devices/vfio_ap/matrix/{G1}")));
    assert_eq!(m.read("devices/ap/card06/06.00ab/status"), "unassigned\n");
}

#[test]
fn sigterm_ends_a_mount_with_a_remove_still_waiting() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    m.ok(".apsim/in_use", &format!("{G1} 1"));
    let path = m.p(&mdev(G1, "remove"));
    let remover = std::thread::spawn(move || {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(r#"echo 1 > "$1""#)
            .arg("bash")
            .arg(path)
            .status()
            .expect("run bash")
    });
    let relay = format!("vfio_ap_mdev {G1}: Relaying device request to user (#0)");
    wait_for("the device request log line", || m.log().contains(&relay));
    let root = m.root.clone();
    m.stop_keep_dir(|| {});
    assert!(!root.join("bus").exists(), "still mounted after SIGTERM");
    // The waiting writer is let go with an error, not left hanging.
    assert!(!remover.join().expect("remover thread").success());
}

#[test]
fn s4_vfio_ap_unload_and_load() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    assert_eq!(m.read(".apsim/vfio_ap"), "1\n");
    let ev = m.uevents();
    m.ok(".apsim/vfio_ap", "0");
    let got = ev.until(|e| e.action() == "remove" && e.devpath() == "/devices/vfio_ap/matrix");
    let pos = |pred: &dyn Fn(&Uevent) -> bool| got.iter().position(pred).expect("event present");
    let removed_g1 = pos(&|e| e.short() == format!("remove@/devices/vfio_ap/matrix/{G1}"));
    let removed_g2 = pos(&|e| e.short() == format!("remove@/devices/vfio_ap/matrix/{G2}"));
    let unregistered = pos(&|e| e.get("MDEV_STATE") == Some("unregistered"));
    let queue_unbind = pos(&|e| e.short() == "unbind@/devices/ap/card05/05.0004");
    assert!(removed_g1 < unregistered && removed_g2 < unregistered && unregistered < queue_unbind);
    assert_eq!(got[unregistered].get("SUBSYSTEM"), Some("matrix"));
    assert_eq!(got[unregistered].get("DRIVER"), Some("vfio_ap"));
    assert_eq!(got[queue_unbind].get("DRIVER"), Some("vfio_ap"));
    assert!(!got.iter().any(|e| e.action() == "bind"));
    assert_eq!(m.read(".apsim/vfio_ap"), "0\n");
    assert!(!m.exists("devices/vfio_ap"));
    assert!(!m.exists("class/mdev_bus/matrix"));
    assert!(!m.exists("bus/ap/drivers/vfio_ap"));
    assert!(!m.exists("devices/ap/card05/05.0004/driver"));
    // The host keeps adapters 1-4,7 x domain 0; the other 30 wait for vfio_ap.
    assert_eq!(m.read("bus/ap/bindings"), "5/35\n");
    assert_eq!(m.ls("bus/mdev/devices"), Vec::<String>::new());

    m.ok(".apsim/vfio_ap", "1");
    let got = ev.until(|e| e.get("MDEV_STATE").is_some());
    let binds = got
        .iter()
        .filter(|e| {
            e.action() == "bind"
                && e.get("DRIVER") == Some("vfio_ap")
                && e.devpath().starts_with("/devices/ap/")
        })
        .count();
    assert_eq!(binds, 30);
    let last = got.last().expect("registered");
    assert_eq!(last.short(), "change@/devices/vfio_ap/matrix");
    assert_eq!(last.get("MDEV_STATE"), Some("registered"));
    assert!(got.iter().any(|e| e.get("BINDINGS") == Some("complete")));
    assert_eq!(m.read("bus/ap/bindings"), "35/35 (complete)\n");
    assert_eq!(m.read("devices/ap/card05/05.0004/status"), "unassigned\n");
    // Mdevs do not come back by themselves.
    assert_eq!(m.ls("bus/mdev/devices"), Vec::<String>::new());
}

#[test]
fn s4_module_loaded_later() {
    require_fuse!();
    let m = Mount::example("no-vfio.toml");
    assert_eq!(m.read(".apsim/vfio_ap"), "0\n");
    assert!(!m.exists("devices/vfio_ap/matrix"));
    assert_eq!(m.ls("class/mdev_bus"), Vec::<String>::new());
    m.ok("bus/ap/apmask", "-5");
    assert!(!m.exists("devices/ap/card05/05.0004/driver"));
    let ev = m.uevents();
    m.ok(".apsim/vfio_ap", "1");
    let got = ev.until(|e| e.get("MDEV_STATE") == Some("registered"));
    assert!(got
        .iter()
        .any(|e| e.short() == "bind@/devices/ap/card05/05.0004"));
    assert_eq!(
        m.readlink("devices/ap/card05/05.0004/driver"),
        "../../../../bus/ap/drivers/vfio_ap"
    );
    m.ok(CREATE, G1);
}

// ---- §5 Assigning ------------------------------------------------------------------

#[test]
fn s5_assign_parsing_and_check_order() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    let a = mdev(G2, "assign_adapter");
    // kstrtoul base 0: +, one trailing newline, 0x, octal.
    m.ok(&a, "+0x20");
    m.ok(&a, "010");
    assert_eq!(m.write_raw(&a, b"0x21\n"), Ok(5));
    assert_eq!(
        m.read(&mdev(G2, "matrix")),
        lines(&[
            "05.0047", "05.00ff", "08.0047", "08.00ff", "20.0047", "20.00ff", "21.0047", "21.00ff"
        ])
    );
    for bad in [
        &b"5\n\n"[..],
        b" 5",
        b"5 ",
        b"-5",
        b"0x",
        b"08",
        b"five",
        b"\n",
        b"++5",
    ] {
        assert_eq!(
            m.write_raw(&a, bad),
            Err(libc::EINVAL),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(m.write_raw(&a, b"18446744073709551616"), Err(libc::ERANGE));
    m.fails(&a, "99999999999999999999", libc::ERANGE);
    // Above the maximum id: ENODEV, checked before "already assigned".
    m.fails(&a, "256", libc::ENODEV);
    m.fails(&mdev(G2, "assign_domain"), "0x100", libc::ENODEV);
    m.fails(&mdev(G2, "assign_control_domain"), "256", libc::ENODEV);
    assert_eq!(m.write_raw(&a, b""), Ok(0));

    // Host-owned: adapter 1 with G2's domains is free (aqmask bits clear),
    // domain 0 then makes 01.0000 (the host's) part of the matrix.
    m.ok(&a, "1");
    let before = m.read(&mdev(G2, "matrix"));
    m.fails(&mdev(G2, "assign_domain"), "0", libc::EADDRNOTAVAIL);
    assert_eq!(m.read(&mdev(G2, "matrix")), before);
    // With the other dimension empty there is no APQN: any adapter goes.
    m.ok(CREATE, "00000000-0000-0000-0000-000000000001");
    let e = "00000000-0000-0000-0000-000000000001";
    m.ok(&mdev(e, "assign_adapter"), "1");
    m.ok(&mdev(e, "assign_adapter"), "2");
    assert_eq!(m.read(&mdev(e, "matrix")), lines(&["01.", "02."]));
    m.fails(&mdev(e, "assign_domain"), "0", libc::EADDRNOTAVAIL);
    assert_eq!(m.read(&mdev(e, "matrix")), lines(&["01.", "02."]));

    // Shared with another mdev: EADDRINUSE, one line per shared APQN.
    m.fails(&mdev(G2, "assign_domain"), "4", libc::EADDRINUSE);
    let log = m.log();
    assert!(
        log.contains(&format!(
            "vfio_ap_mdev {G2}: Userspace may not assign queue 05.0004 to mdev: already assigned to {G1}"
        )),
        "{log:?}"
    );
    assert!(!m.read(&mdev(G2, "matrix")).contains(".0004"));
    m.ok(CREATE, "00000000-0000-0000-0000-000000000002");
    let f = "00000000-0000-0000-0000-000000000002";
    m.ok(&mdev(f, "assign_domain"), "4");
    m.ok(&mdev(f, "assign_domain"), "0xab");
    m.fails(&mdev(f, "assign_adapter"), "6", libc::EADDRINUSE);
    let log = m.log();
    for q in ["06.0004", "06.00ab"] {
        assert!(
            log.contains(&format!(
            "vfio_ap_mdev {f}: Userspace may not assign queue {q} to mdev: already assigned to {G1}"
        )),
            "{q}: {log:?}"
        );
    }
    assert_eq!(m.read(&mdev(f, "matrix")), lines(&[".0004", ".00ab"]));

    // Control domains: only the maximum is checked; they may be shared.
    m.ok(&mdev(G1, "assign_control_domain"), "4");
    m.ok(&mdev(G2, "assign_control_domain"), "4");
    m.ok(&mdev(G2, "assign_control_domain"), "0x99");
    assert_eq!(
        m.read(&mdev(G2, "control_domains")),
        lines(&["0004", "0099"])
    );

    // unassign: same parsing, ENODEV above the maximum, no-op when absent.
    m.fails(&mdev(G2, "unassign_adapter"), "256", libc::ENODEV);
    m.fails(&mdev(G2, "unassign_adapter"), "x", libc::EINVAL);
    m.ok(&mdev(G2, "unassign_adapter"), "0x30");
    m.ok(&mdev(G2, "unassign_domain"), "4");
    m.ok(&mdev(G2, "unassign_control_domain"), "0x99");
    assert_eq!(m.read(&mdev(G2, "control_domains")), lines(&["0004"]));
    m.ok(&mdev(G2, "unassign_adapter"), "1");
    m.ok(&mdev(G2, "unassign_adapter"), "8");
    m.ok(&mdev(G2, "unassign_adapter"), "0x20");
    m.ok(&mdev(G2, "unassign_adapter"), "0x21");
    assert_eq!(m.read(&mdev(G2, "matrix")), lines(&["05.0047", "05.00ff"]));
}

#[test]
fn s5_already_assigned_does_not_refilter() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    m.ok("bus/ap/drivers/vfio_ap/unbind", "05.0004");
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["06.0004", "06.00ab"])
    );
    m.ok("bus/ap/drivers/vfio_ap/bind", "05.0004");
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
    m.ok("bus/ap/drivers/vfio_ap/unbind", "05.0004");
    m.ok(&mdev(G1, "assign_adapter"), "5");
    m.ok(&mdev(G1, "assign_domain"), "4");
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["06.0004", "06.00ab"])
    );
    // Over-provisioning: adapter 0x20 is outside the LPAR.
    m.ok(&mdev(G1, "assign_adapter"), "0x20");
    assert!(m.read(&mdev(G1, "matrix")).contains("20.0004"));
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["06.0004", "06.00ab"])
    );
}

// ---- §6 What the mdev shows ------------------------------------------------------------

#[test]
fn s6_guest_matrix_full_filter_and_incremental_updates() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    let all = lines(&["05.0004", "05.00ab", "06.0004", "06.00ab"]);
    assert_eq!(m.read(&mdev(G1, "matrix")), all);
    assert_eq!(m.read(&mdev(G1, "guest_matrix")), all);
    assert_eq!(
        m.read(&mdev(G2, "guest_matrix")),
        lines(&["05.0047", "05.00ff"])
    );
    // A vfio_ap queue in the guest matrix unbound: its whole adapter goes.
    m.ok("bus/ap/drivers/vfio_ap/unbind", "06.00ab");
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["05.0004", "05.00ab"])
    );
    // Unassigning the domain removes only that domain: adapter 6 stays out.
    m.ok(&mdev(G1, "unassign_domain"), "0xab");
    assert_eq!(m.read(&mdev(G1, "guest_matrix")), lines(&["05.0004"]));
    assert_eq!(m.read(&mdev(G1, "matrix")), lines(&["05.0004", "06.0004"]));
    // The next full filter (an assign of a new id) brings it back.
    m.ok(&mdev(G1, "assign_domain"), "0x20");
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["05.0004", "06.0004"])
    );
    // An unassign of an adapter removes just it.
    m.ok(&mdev(G1, "unassign_adapter"), "5");
    assert_eq!(m.read(&mdev(G1, "guest_matrix")), lines(&["06.0004"]));
    // Dropping every adapter leaves the domains; no domains shows adapters.
    m.ok("bus/ap/drivers/vfio_ap/unbind", "06.0004");
    assert_eq!(m.read(&mdev(G1, "guest_matrix")), lines(&[".0004"]));
    m.ok(&mdev(G1, "unassign_domain"), "4");
    m.ok(&mdev(G1, "unassign_domain"), "0x20");
    assert_eq!(m.read(&mdev(G1, "matrix")), lines(&["06."]));
    m.ok("bus/ap/drivers/vfio_ap/bind", "06.0004");
    m.ok(&mdev(G1, "assign_adapter"), "5");
    assert_eq!(m.read(&mdev(G1, "guest_matrix")), lines(&["05.", "06."]));
}

#[test]
fn s6_guest_matrix_restored_by_a_full_filter_after_rebinding() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    m.ok("bus/ap/drivers/vfio_ap/unbind", "05.00ab");
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["06.0004", "06.00ab"])
    );
    // Guest2 shares adapter 5 but not domain 0xab: untouched.
    assert_eq!(
        m.read(&mdev(G2, "guest_matrix")),
        lines(&["05.0047", "05.00ff"])
    );
    m.ok("bus/ap/drivers_probe", "05.00ab");
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
}

#[test]
fn s6_ap_config() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    let cfg = mdev(G2, "ap_config");
    assert_eq!(
        m.read(&cfg),
        format!(
            "{},{},{}",
            mask(&[5]).trim(),
            mask(&[0x47, 0xff]).trim(),
            mask(&[])
        )
    );
    // Replace all three at once.
    // Short masks are left-aligned: 0x04 is adapter 5, digit 17 = 1 is domain 0x47.
    m.ok(&cfg, &format!("0x04,0x{}1,0x1", "0".repeat(17)));
    assert_eq!(m.read(&mdev(G2, "matrix")), lines(&["05.0047"]));
    assert_eq!(m.read(&mdev(G2, "control_domains")), lines(&["0003"]));
    assert_eq!(m.read(&mdev(G2, "guest_matrix")), lines(&["05.0047"]));
    // Empty fields mean no ids; newline separates too; text after the third is ignored.
    m.ok(&cfg, ",,");
    assert_eq!(m.read(&mdev(G2, "matrix")), "");
    let text = format!("0x04\n{},x\nrest", mask(&[0x47, 0xff]).trim());
    assert_eq!(m.write_raw(&cfg, text.as_bytes()), Ok(text.len()));
    assert_eq!(m.read(&mdev(G2, "matrix")), lines(&["05.0047", "05.00ff"]));
    assert_eq!(m.read(&mdev(G2, "control_domains")), "");
    // EINVAL: fewer than three fields, bad hex. (echo's newline splits
    // too: "a,b\n" has an empty third field.)
    assert_eq!(m.write_raw(&cfg, b"0x04,0x01"), Err(libc::EINVAL));
    assert_eq!(m.write_raw(&cfg, b"0x04"), Err(libc::EINVAL));
    m.ok(&cfg, "0x04,0x01");
    assert_eq!(m.read(&mdev(G2, "matrix")), lines(&["05.0007"]));
    m.fails(&cfg, "0x04,0X01,", libc::EINVAL);
    // A 201-byte read limit: "\n" + junk past it is never seen.
    let full = format!(
        "0x{},0x{},0x{}",
        "0".repeat(64),
        "0".repeat(64),
        "0".repeat(64)
    );
    assert_eq!(full.len(), 200);
    assert_eq!(m.write_raw(&cfg, format!("{full}\nG").as_bytes()), Ok(202));
    // Error order: EINVAL, EADDRNOTAVAIL, EADDRINUSE, ENODEV.
    let small = Mount::with_topology(
        "max_adapter_id = 15\nmax_domain_id = 15\nusage_domains = [1, 2]\ncontrol_domains = [1, 2]\n\
         apmask = \"0x4000\"\naqmask = \"0x2000\"\n\
         [[adapter]]\nid = 1\ntype = \"CEX7C\"\n[[adapter]]\nid = 2\ntype = \"CEX7C\"\n",
    );
    // Host owns 01.0002 only.
    small.ok(CREATE, G1);
    small.ok(CREATE, G2);
    small.ok(&mdev(G1, "ap_config"), "0x20,0x20,");
    assert_eq!(small.read(&mdev(G1, "matrix")), lines(&["02.0002"]));
    let c2 = mdev(G2, "ap_config");
    // host-owned 01.0002 + adapter 16 above the maximum: EADDRNOTAVAIL first.
    small.fails(&c2, "0x40008,0x20,", libc::EADDRNOTAVAIL);
    // shared 02.0002 + adapter 16: EADDRINUSE first, logged like assign.
    small.fails(&c2, "0x20008,0x20,", libc::EADDRINUSE);
    assert!(small.log().contains(&format!(
        "vfio_ap_mdev {G2}: Userspace may not assign queue 02.0002 to mdev: already assigned to {G1}"
    )));
    small.fails(&c2, "0x00008,0x20,", libc::ENODEV);
    small.fails(&c2, ",,0x00008", libc::ENODEV);
    // Above the maximum but bad syntax too: EINVAL first.
    small.fails(&c2, "0x00008,0X1,", libc::EINVAL);
    assert_eq!(small.read(&mdev(G2, "matrix")), "");
    // Control domains are not checked for ownership or sharing.
    small.ok(&c2, ",,0x60");
    assert_eq!(
        small.read(&mdev(G2, "control_domains")),
        lines(&["0001", "0002"])
    );
}

// ---- §7 Hot plug and unplug ------------------------------------------------------

#[test]
fn s7_lpar_changes_hot_unplug_and_plug() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    m.ok(".apsim/in_use", &format!("{G1} 1"));
    let ev = m.uevents();
    m.ok(".apsim/lpar", "remove adapter 6");
    let got = ev.until(|e| e.short() == "remove@/devices/ap/card06");
    assert!(got
        .iter()
        .any(|e| e.short() == "unbind@/devices/ap/card06/06.0004"
            && e.get("DRIVER") == Some("vfio_ap")));
    assert!(got
        .iter()
        .any(|e| e.short() == "remove@/devices/ap/card06/06.00ab"));
    assert!(!m.exists("devices/ap/card06"));
    assert!(!m.exists("bus/ap/devices/06.0004"));
    assert_eq!(m.read("bus/ap/ap_adapter_mask"), mask(&[1, 2, 3, 4, 5, 7]));
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["05.0004", "05.00ab"])
    );
    // matrix and ap_config keep the assignment.
    assert_eq!(
        m.read(&mdev(G1, "matrix")),
        lines(&["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
    m.fails(".apsim/lpar", "remove adapter 6", libc::ENOENT);

    m.ok(".apsim/lpar", "add adapter 6");
    let got = ev.until(|e| e.short() == "bind@/devices/ap/card06/06.00ff");
    assert!(got.iter().any(|e| e.short() == "add@/devices/ap/card06"));
    assert_eq!(m.read("devices/ap/card06/type"), "CEX7C\n");
    assert_eq!(
        m.readlink("devices/ap/card06/06.00ab/driver"),
        "../../../../bus/ap/drivers/vfio_ap"
    );
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
    assert_eq!(m.read("devices/ap/card06/06.00ab/status"), "in use\n");

    // A usage domain leaves and comes back.
    m.ok(".apsim/lpar", "remove domain 0xab");
    assert!(!m.exists("devices/ap/card05/05.00ab"));
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["05.0004", "06.0004"])
    );
    m.ok(".apsim/lpar", "add domain 0xab");
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
    // A new adapter of a given type gets the LPAR's domains, host-owned.
    m.ok(".apsim/lpar", "add adapter 0x10 CEX8A");
    assert_eq!(m.read("devices/ap/card10/type"), "CEX8A\n");
    assert_eq!(m.read("devices/ap/card10/hwtype"), "14\n");
    let queues: Vec<String> = m
        .ls("devices/ap/card10")
        .into_iter()
        .filter(|n| n.starts_with("10."))
        .collect();
    assert_eq!(
        queues,
        vec!["10.0000", "10.0004", "10.0047", "10.00ab", "10.00ff"]
    );
    assert_eq!(
        m.readlink("devices/ap/card10/10.0000/driver"),
        "../../../../bus/ap/drivers/cex4queue"
    );
    // Control domains.
    m.ok(".apsim/lpar", "add control 0x30");
    assert_eq!(
        m.read("bus/ap/ap_control_domain_mask"),
        mask(&[0, 4, 0x30, 0x47, 0xab, 0xff])
    );
    m.ok(".apsim/lpar", "remove control 0x30");
    for bad in [
        "add",
        "add adapter",
        "add adapter 256",
        "add bus 1",
        "flip adapter 1",
        "add domain 1 CEX7C",
        "add adapter 9 CEX9Z",
    ] {
        m.fails(".apsim/lpar", bad, libc::EINVAL);
    }
    m.fails(".apsim/lpar", "add adapter 5", libc::EEXIST);
}

#[test]
fn s7_config_off_keeps_the_guest_matrix() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    let ev = m.uevents();
    m.ok("devices/ap/card06/config", "0");
    let got =
        ev.until(|e| e.short() == "change@/devices/ap/card06/06.00ab" && e.get("CONFIG").is_some());
    assert_eq!(got[0].short(), "change@/devices/ap/card06");
    assert_eq!(got[0].get("CONFIG"), Some("0"));
    let queue_events = got
        .iter()
        .filter(|e| e.devpath().starts_with("/devices/ap/card06/") && e.get("CONFIG") == Some("0"))
        .count();
    assert_eq!(
        queue_events, 4,
        "06.0000, 06.0004, 06.0047 and 06.00ab, up to the one awaited: {got:?}"
    );
    let _ = ev.until(|e| e.short() == "change@/devices/ap/card06/06.00ff");
    assert_eq!(m.read("devices/ap/card06/config"), "0\n");
    assert_eq!(m.read("devices/ap/card06/06.0004/config"), "0\n");
    assert!(m.exists("devices/ap/card06/06.0004"));
    // Still bound to vfio_ap and in the guest.
    assert_eq!(
        m.readlink("devices/ap/card06/06.0004/driver"),
        "../../../../bus/ap/drivers/vfio_ap"
    );
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
    assert_eq!(
        m.read("bus/ap/ap_adapter_mask"),
        mask(&[1, 2, 3, 4, 5, 6, 7])
    );
    // CONFIG= on the card after every successful write, even unchanged.
    m.ok("devices/ap/card06/config", "0");
    let got = ev.until(|e| e.devpath() == "/devices/ap/card06");
    let e = got.last().expect("card event");
    assert_eq!((e.action(), e.get("CONFIG")), ("change", Some("0")));
    // Only a BINDINGS=complete of the scan that ended the first write may come between.
    assert!(
        got[..got.len() - 1]
            .iter()
            .all(|e| e.get("BINDINGS") == Some("complete")),
        "{got:?}"
    );
    m.fails("devices/ap/card06/config", "2", libc::EINVAL);
    m.fails("devices/ap/card06/config", "on", libc::EINVAL);
    m.ok("devices/ap/card06/config", "1");
    assert_eq!(m.read("devices/ap/card06/06.00ab/config"), "1\n");
    assert_eq!(
        m.read(&mdev(G1, "guest_matrix")),
        lines(&["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
    // Mask writes never unplug: taking back a guest's queue is refused.
    m.ok(&mdev(G2, "assign_domain"), "0");
    m.fails("bus/ap/apmask", "+5", libc::EBUSY);
    assert_eq!(
        m.read(&mdev(G2, "guest_matrix")),
        lines(&["05.0000", "05.0047", "05.00ff"])
    );
}

// ---- §8 Attributes ------------------------------------------------------------------

#[test]
fn s8_card_and_queue_attributes() {
    require_fuse!();
    let m = Mount::seed();
    for (a, ty, hw, mode_bit) in [
        (1, "CEX7C", 13, 0x1000_0000u32),
        (2, "CEX7A", 13, 0x0800_0000),
        (3, "CEX7P", 13, 0x0400_0000),
        (4, "CEX6C", 12, 0x1000_0000),
        (7, "CEX8P", 14, 0x0400_0000),
    ] {
        let card = format!("devices/ap/card{a:02x}");
        assert_eq!(m.read(&format!("{card}/type")), format!("{ty}\n"));
        assert_eq!(m.read(&format!("{card}/hwtype")), format!("{hw}\n"));
        assert_eq!(m.read(&format!("{card}/raw_hwtype")), format!("{hw}\n"));
        assert_eq!(
            m.read(&format!("{card}/modalias")),
            format!("ap:t{hw:02X}\n")
        );
        let f = m.read(&format!("{card}/ap_functions"));
        assert!(f.starts_with("0x") && f.len() == 11, "{f:?}");
        let bits =
            u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).expect("hex functions");
        assert_eq!(bits & 0x1C00_0000, mode_bit, "{ty}: {f}");
        assert_eq!(f.trim(), f.trim().to_uppercase().replace("0X", "0x"));
        for attr in [
            "depth",
            "request_count",
            "requestq_count",
            "pendingq_count",
            "max_msg_size",
            "load",
            "chkstop",
            "config",
            "online",
        ] {
            let v = m.read(&format!("{card}/{attr}"));
            assert!(
                v.ends_with('\n') && v.trim().parse::<u64>().is_ok(),
                "{card}/{attr} = {v:?}"
            );
        }
        assert_eq!(
            m.exists(&format!("{card}/serialnr")),
            !ty.ends_with('A'),
            "{ty} serialnr"
        );
        let q = format!("{card}/{a:02x}.0047");
        for attr in [
            "request_count",
            "requestq_count",
            "pendingq_count",
            "config",
            "chkstop",
            "load",
            "online",
        ] {
            let v = m.read(&format!("{q}/{attr}"));
            assert!(v.trim().parse::<u64>().is_ok(), "{q}/{attr} = {v:?}");
        }
        assert_eq!(m.read(&format!("{q}/ap_functions")), f);
        assert!(m.read(&format!("{q}/reset")).ends_with(".\n"));
        assert!(m.read(&format!("{q}/interrupt")).starts_with("Interrupts"));
    }
    // online: 0/1 only; 1 needs config and no checkstop; ONLINE= uevents.
    let ev = m.uevents();
    m.fails("devices/ap/card05/online", "2", libc::EINVAL);
    m.ok("devices/ap/card05/online", "0");
    let got = ev.until(|e| e.short() == "change@/devices/ap/card05/05.00ff");
    assert_eq!(got[0].short(), "change@/devices/ap/card05");
    assert_eq!(got[0].get("ONLINE"), Some("0"));
    assert_eq!(got.len(), 6);
    assert_eq!(m.read("devices/ap/card05/online"), "0\n");
    m.ok("devices/ap/card05/online", "1");
    let _ = ev.until(|e| e.short() == "change@/devices/ap/card05/05.00ff");
    m.ok("devices/ap/card05/config", "0");
    assert_eq!(m.read("devices/ap/card05/online"), "0\n");
    m.fails("devices/ap/card05/online", "1", libc::ENODEV);
    m.fails("devices/ap/card05/05.0004/online", "1", libc::ENODEV);
    m.ok("devices/ap/card05/online", "0");
    m.ok("devices/ap/card05/05.0004/online", "0");
    m.ok("devices/ap/card05/config", "1");
    m.ok("devices/ap/card05/online", "1");
    assert_eq!(m.read("devices/ap/card05/online"), "1\n");
    drop(ev);
    let m2 = Mount::example("deconfigured.toml");
    m2.fails("devices/ap/card07/online", "1", libc::ENODEV);
    assert_eq!(m2.read("devices/ap/card07/online"), "0\n");
    // Read-only attributes refuse writes.
    m.fails("devices/ap/card05/hwtype", "1", libc::EACCES);
    m.fails("devices/ap/card05/05.0004/config", "1", libc::EACCES);
}

#[test]
fn s8_bus_attributes() {
    require_fuse!();
    let m = Mount::seed();
    assert_eq!(m.read("bus/ap/ap_domain"), "0\n");
    assert_eq!(m.read("bus/ap/ap_interrupts"), "1\n");
    assert_eq!(m.read("bus/ap/config_time"), "30\n");
    assert_eq!(m.read("bus/ap/poll_thread"), "0\n");
    assert!(m.read("bus/ap/poll_timeout").trim().parse::<u64>().is_ok());
    let features = m.read("bus/ap/features");
    assert!(features.ends_with('\n'));
    for f in features.split_whitespace() {
        assert!(["APSC", "APXA", "QACT", "RC8A", "APSB"].contains(&f), "{f}");
    }
    m.fails("bus/ap/config_time", "4", libc::EINVAL);
    m.fails("bus/ap/config_time", "121", libc::EINVAL);
    m.ok("bus/ap/config_time", "60");
    assert_eq!(m.read("bus/ap/config_time"), "60\n");
    m.ok("bus/ap/ap_domain", "0x47");
    assert_eq!(m.read("bus/ap/ap_domain"), "71\n");
    m.fails("bus/ap/ap_domain", "256", libc::EINVAL);
    m.ok("bus/ap/poll_thread", "1");
    assert_eq!(m.read("bus/ap/poll_thread"), "1\n");
    m.fails("bus/ap/poll_thread", "maybe", libc::EINVAL);
    m.fails("bus/ap/poll_timeout", "0", libc::EINVAL);
    m.fails("bus/ap/ap_adapter_mask", "0x1", libc::EACCES);
    let e = m.cat("bus/ap/drivers_probe").expect_err("write-only");
    assert!(e.contains("Permission denied"), "{e}");
}

// ---- §9 Uevents ----------------------------------------------------------------------

#[test]
fn s9_uevent_keys_seqnum_bindings_and_synthetic_events() {
    require_fuse!();
    let m = Mount::seed();
    let ev = m.uevents();
    // A synthetic event: no CONFIG/ONLINE keys, the device keys in order.
    m.ok("devices/ap/card05/uevent", "change");
    let e = ev.next();
    let keys: Vec<&str> = e.keys.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "ACTION",
            "DEVPATH",
            "SUBSYSTEM",
            "SYNTH_UUID",
            "DEVTYPE",
            "DRIVER",
            "DEV_TYPE",
            "MODALIAS",
            "MODE",
            "SEQNUM"
        ]
    );
    assert_eq!(e.get("SUBSYSTEM"), Some("ap"));
    assert_eq!(e.get("DEVTYPE"), Some("ap_card"));
    assert_eq!(e.get("DRIVER"), Some("cex4card"));
    assert_eq!(e.get("DEV_TYPE"), Some("000D"));
    assert_eq!(e.get("MODALIAS"), Some("ap:t0D"));
    assert_eq!(e.get("MODE"), Some("cca"));
    assert_eq!(
        m.read("devices/ap/card05/uevent"),
        lines(&[
            "DEVTYPE=ap_card",
            "DRIVER=cex4card",
            "DEV_TYPE=000D",
            "MODALIAS=ap:t0D",
            "MODE=cca"
        ])
    );
    m.ok("devices/ap/card03/03.0004/uevent", "change");
    let q = ev.next();
    assert_eq!(q.get("DEVTYPE"), Some("ap_queue"));
    assert_eq!(q.get("MODE"), Some("ep11"));
    assert_eq!(q.get("DRIVER"), Some("cex4queue"));
    assert!(q.seqnum() > e.seqnum());
    m.fails("devices/ap/card05/uevent", "explode", libc::EINVAL);
    m.ok("devices/vfio_ap/matrix/uevent", "change");
    let mx = ev.next();
    assert_eq!(
        (mx.get("SUBSYSTEM"), mx.get("DRIVER")),
        (Some("matrix"), Some("vfio_ap"))
    );

    // BINDINGS=complete comes at the next scan after a mask change.
    m.ok("bus/ap/apmask", "-5");
    let got = ev.until(|e| e.get("APMASK").is_some());
    assert!(!got.iter().any(|e| e.get("BINDINGS").is_some()));
    let mut last = got.last().expect("event").seqnum();
    for e in &got {
        assert!(e.seqnum() <= last);
    }
    m.ok("bus/ap/scans", "1");
    let b = ev.next();
    assert_eq!(b.short(), "change@/devices/ap");
    assert_eq!(b.get("BINDINGS"), Some("complete"));
    let count: u64 = b
        .get("COMPLETECOUNT")
        .and_then(|c| c.parse().ok())
        .expect("COMPLETECOUNT");
    assert!(count >= 2, "the boot scan sent the first");
    assert!(b.seqnum() > last);
    last = b.seqnum();
    // No probe since: the next scan sends nothing; a marker shows it.
    m.ok("bus/ap/scans", "1");
    m.ok("devices/ap/card01/uevent", "change");
    let marker = ev.next();
    assert_eq!(marker.short(), "change@/devices/ap/card01");
    assert!(marker.seqnum() > last);
    // mdev events carry the mdev subsystem.
    m.ok(CREATE, G1);
    let add = ev.next();
    assert_eq!((add.action(), add.get("SUBSYSTEM")), ("add", Some("mdev")));
    m.ok(&mdev(G1, "assign_adapter"), "5");
    m.ok(&mdev(G1, "uevent"), "change");
    // Assignments send nothing: the next event after bind is the marker.
    let bind = ev.next();
    assert_eq!(bind.action(), "bind");
    let change = ev.next();
    assert_eq!(
        change.short(),
        format!("change@/devices/vfio_ap/matrix/{G1}")
    );
}

#[test]
fn s9_every_client_gets_every_event_and_a_dead_client_is_dropped() {
    require_fuse!();
    let m = Mount::seed();
    let a = m.uevents();
    let dead = m.uevents();
    drop(dead);
    let b = m.uevents();
    m.ok("devices/ap/card01/uevent", "change");
    m.ok("devices/ap/card02/uevent", "change");
    for c in [&a, &b] {
        assert_eq!(c.next().short(), "change@/devices/ap/card01");
        assert_eq!(c.next().short(), "change@/devices/ap/card02");
    }
}

// ---- The seed documents, start to end --------------------------------------------------

#[test]
fn seed_walkthrough() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    assert_eq!(m.read("bus/ap/apmask"), mask_without(&[5, 6]));
    assert_eq!(
        m.read("bus/ap/aqmask"),
        mask_without(&[4, 0x47, 0xab, 0xff])
    );
    assert_eq!(
        m.read(&mdev(G1, "matrix")),
        lines(&["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
    assert_eq!(m.read(&mdev(G2, "matrix")), lines(&["05.0047", "05.00ff"]));
    for q in [
        "05.0004", "05.00ab", "06.0004", "06.00ab", "05.0047", "05.00ff",
    ] {
        let a = &q[..2];
        assert_eq!(
            m.read(&format!("devices/ap/card{a}/{q}/status")),
            "assigned\n"
        );
    }
    assert_eq!(m.read("devices/ap/card06/06.0047/status"), "unassigned\n");
    // Guest2 may not take Guest1's queue.
    m.fails(&mdev(G2, "assign_domain"), "0xab", libc::EADDRINUSE);
    // The host may not take its adapters back while assigned... but bits
    // of unassigned ids can return.
    m.ok("bus/ap/apmask", "+6");
    m.ok("bus/ap/apmask", "-6");
    // Tear down: remove both, give everything back to the host.
    m.ok(&mdev(G1, "remove"), "1");
    m.ok(&mdev(G2, "remove"), "1");
    m.ok("bus/ap/apmask", "+5,+6");
    m.ok("bus/ap/aqmask", "+4,+0x47,+0xab,+0xff");
    assert_eq!(m.read("bus/ap/bindings"), "35/35 (complete)\n");
    assert_eq!(
        m.readlink("devices/ap/card05/05.0004/driver"),
        "../../../../bus/ap/drivers/cex4queue"
    );
}

// ---- What lszcrypt and mdevctl read ----------------------------------------------------------

#[test]
fn files_lszcrypt_and_mdevctl_read() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    for attr in [
        "ap_domain",
        "ap_max_domain_id",
        "config_time",
        "poll_timeout",
        "poll_thread",
        "ap_interrupts",
        "ap_control_domain_mask",
        "ap_usage_domain_mask",
    ] {
        assert!(
            !m.read(&format!("bus/ap/{attr}")).is_empty(),
            "bus/ap/{attr}"
        );
    }
    for card in m
        .ls("devices/ap")
        .into_iter()
        .filter(|c| c.starts_with("card"))
    {
        let dir = format!("devices/ap/{card}");
        for attr in [
            "type",
            "online",
            "config",
            "ap_functions",
            "request_count",
            "hwtype",
            "depth",
            "pendingq_count",
            "requestq_count",
        ] {
            assert!(!m.read(&format!("{dir}/{attr}")).is_empty(), "{dir}/{attr}");
        }
        assert!(m.readlink(&format!("{dir}/driver")).ends_with("/cex4card"));
        let queues: Vec<String> = m
            .ls(&dir)
            .into_iter()
            .filter(|n| n.len() == 7 && n.as_bytes()[2] == b'.')
            .collect();
        assert!(
            !queues.is_empty(),
            "lszcrypt fails on a card without queues"
        );
        for q in queues {
            let qd = format!("{dir}/{q}");
            for attr in [
                "config",
                "request_count",
                "pendingq_count",
                "requestq_count",
            ] {
                assert!(!m.read(&format!("{qd}/{attr}")).is_empty(), "{qd}/{attr}");
            }
            let drv = m.readlink(&format!("{qd}/driver"));
            let drv = drv.rsplit('/').next().expect("driver name");
            assert_eq!(
                m.exists(&format!("{qd}/online")),
                drv == "cex4queue",
                "{qd}"
            );
        }
    }
    // mdevctl: parents and types via class/mdev_bus, mdevs via bus/mdev.
    for parent in m.ls("class/mdev_bus") {
        for t in m.ls(&format!("class/mdev_bus/{parent}/mdev_supported_types")) {
            let td = format!("class/mdev_bus/{parent}/mdev_supported_types/{t}");
            for attr in ["name", "device_api", "available_instances"] {
                assert!(!m.read(&format!("{td}/{attr}")).is_empty());
            }
            assert_eq!(m.ls(&format!("{td}/devices")), {
                let mut v = vec![G1.to_string(), G2.to_string()];
                v.sort();
                v
            });
        }
    }
    for dev in m.ls("bus/mdev/devices") {
        let t = m.readlink(&format!("bus/mdev/devices/{dev}/mdev_type"));
        assert_eq!(t.rsplit('/').next(), Some("vfio_ap-passthrough"));
    }
}

/// Decimal, as `%d\n` prints it (what lszcrypt reads with strtol base 10).
fn is_decimal_line(s: &str) -> bool {
    s.strip_suffix('\n').is_some_and(|d| {
        let d = d.strip_prefix('-').unwrap_or(d);
        !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
    })
}

/// `0x` and exactly `n` hex digits of one case, then `\n`.
fn is_hex_line(s: &str, n: usize, upper: bool) -> bool {
    s.strip_suffix('\n')
        .and_then(|l| l.strip_prefix("0x"))
        .is_some_and(|h| {
            h.len() == n
                && h.bytes().all(|b| {
                    b.is_ascii_digit()
                        || if upper {
                            (b'A'..=b'F').contains(&b)
                        } else {
                            (b'a'..=b'f').contains(&b)
                        }
                })
        })
}

/// Every file lszcrypt (default, `-V`, `-b`, `-d`, `-c`, `-s`) reads, in the
/// format the kernel prints it (kernel spec §8), on cards and queues of
/// every driver, configured on and off.
#[test]
fn lszcrypt_reads_the_kernels_formats() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    m.ok("devices/ap/card07/config", "0");
    let bus = |a: &str| m.read(&format!("bus/ap/{a}"));
    for attr in [
        "ap_domain",
        "ap_max_domain_id",
        "config_time",
        "poll_timeout",
        "poll_thread",
        "ap_interrupts",
    ] {
        assert!(
            is_decimal_line(&bus(attr)),
            "bus/ap/{attr}: {:?}",
            bus(attr)
        );
    }
    for attr in ["poll_thread", "ap_interrupts"] {
        assert!(matches!(bus(attr).as_str(), "0\n" | "1\n"), "bus/ap/{attr}");
    }
    for attr in ["ap_control_domain_mask", "ap_usage_domain_mask"] {
        assert!(
            is_hex_line(&bus(attr), 64, false),
            "bus/ap/{attr}: {:?}",
            bus(attr)
        );
    }
    // `features` decides whether `-V` shows the SESTAT column (APSB).
    let features = bus("features");
    assert!(
        features.strip_suffix('\n').is_some_and(|f| f
            .split(' ')
            .all(|w| ["APSC", "APXA", "QACT", "RC8A", "APSB"].contains(&w))),
        "bus/ap/features: {features:?}"
    );
    let cards: Vec<String> = m
        .ls("devices/ap")
        .into_iter()
        .filter(|c| c.starts_with("card"))
        .collect();
    assert!(!cards.is_empty());
    for card in cards {
        let id = &card[4..];
        assert!(
            id.len() == 2
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{card}"
        );
        let dir = format!("devices/ap/{card}");
        let read = |a: &str| m.read(&format!("{dir}/{a}"));
        let ty = read("type");
        let t = ty.trim_end_matches('\n').as_bytes();
        assert!(
            ty.ends_with('\n')
                && t.len() == 5
                && t.starts_with(b"CEX")
                && t[3].is_ascii_digit()
                && matches!(t[4], b'A' | b'C' | b'P'),
            "{dir}/type: {ty:?}"
        );
        assert!(
            is_hex_line(&read("ap_functions"), 8, true),
            "{dir}/ap_functions: {:?}",
            read("ap_functions")
        );
        for attr in [
            "hwtype",
            "depth",
            "request_count",
            "pendingq_count",
            "requestq_count",
            "config",
            "online",
        ] {
            assert!(
                is_decimal_line(&read(attr)),
                "{dir}/{attr}: {:?}",
                read(attr)
            );
        }
        for attr in ["config", "online", "chkstop"] {
            assert!(matches!(read(attr).as_str(), "0\n" | "1\n"), "{dir}/{attr}");
        }
        // `-c`: the message size limit; `-s`: serialnr on CCA and EP11 only.
        assert!(is_decimal_line(&read("max_msg_size")), "{dir}/max_msg_size");
        let serial = m.exists(&format!("{dir}/serialnr"));
        assert_eq!(serial, t[4] != b'A', "{dir}/serialnr");
        if serial {
            let s = read("serialnr");
            assert!(s.ends_with('\n') && s.len() > 1, "{dir}/serialnr: {s:?}");
        }
        assert_eq!(
            m.readlink(&format!("{dir}/driver")).rsplit('/').next(),
            Some("cex4card"),
            "{dir}"
        );
        // lszcrypt's pattern for a card's queues: two characters, a dot,
        // four characters; the card's own id in front.
        let queues: Vec<String> = m
            .ls(&dir)
            .into_iter()
            .filter(|n| n.len() == 7 && n.as_bytes()[2] == b'.')
            .collect();
        assert!(
            !queues.is_empty(),
            "{dir}: lszcrypt fails on a card without queues"
        );
        for q in queues {
            assert!(q.starts_with(id), "{dir}/{q}");
            assert!(
                q[3..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{dir}/{q}"
            );
            let qd = format!("{dir}/{q}");
            for attr in [
                "config",
                "request_count",
                "pendingq_count",
                "requestq_count",
            ] {
                let v = m.read(&format!("{qd}/{attr}"));
                assert!(is_decimal_line(&v), "{qd}/{attr}: {v:?}");
            }
            assert_eq!(
                m.read(&format!("{qd}/config")),
                read("config"),
                "{qd}: follows its card"
            );
            let v = m.read(&format!("{qd}/chkstop"));
            assert!(matches!(v.as_str(), "0\n" | "1\n"), "{qd}/chkstop: {v:?}");
            // `-V` SESTAT: the queue's own ap_functions, never 0 ("invalid").
            let v = m.read(&format!("{qd}/ap_functions"));
            assert!(
                is_hex_line(&v, 8, true) && v != "0x00000000\n",
                "{qd}/ap_functions: {v:?}"
            );
            // Outside a Secure Execution guest there is no SE binding state.
            for se in ["se_bind", "se_associate"] {
                assert!(!m.exists(&format!("{qd}/{se}")), "{qd}/{se}");
            }
            let driver = m.readlink(&format!("{qd}/driver"));
            match driver.rsplit('/').next() {
                Some("cex4queue") => {
                    let v = m.read(&format!("{qd}/online"));
                    assert!(matches!(v.as_str(), "0\n" | "1\n"), "{qd}/online: {v:?}");
                    assert!(!m.exists(&format!("{qd}/status")), "{qd}/status");
                }
                Some("vfio_ap") => {
                    assert!(!m.exists(&format!("{qd}/online")), "{qd}");
                    // STATUS column of a queue without `online`.
                    let v = m.read(&format!("{qd}/status"));
                    assert!(
                        matches!(v.as_str(), "in use\n" | "assigned\n" | "unassigned\n"),
                        "{qd}/status: {v:?}"
                    );
                }
                other => panic!("{qd}: driver {other:?}"),
            }
        }
    }
}

/// The real mdevctl (installed by `.ci/run`) reads the mount as its `/sys`
/// (`MDEVCTL_ENV_ROOT` with `<root>/sys` linked to the mount): parents,
/// types and active mdevs as on a real host.
#[test]
fn mdevctl_reads_the_mount() {
    require_fuse!();
    let m = Mount::seed();
    seed_guests(&m);
    let root = m.tmp.path().join("mdevctl-root");
    let mdevctl = match testkit::mdevctl::Mdevctl::in_root(&root, Some(&m.root)) {
        Ok(x) => x,
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    let list = mdevctl.ok(&["list"]);
    let mut expect = vec![
        format!("{G1} matrix vfio_ap-passthrough manual"),
        format!("{G2} matrix vfio_ap-passthrough manual"),
    ];
    expect.sort();
    let mut got: Vec<&str> = list.lines().collect();
    got.sort_unstable();
    assert_eq!(got, expect, "{list}");
    let types = mdevctl.ok(&["types"]);
    assert!(
        types.starts_with("matrix\n  vfio_ap-passthrough\n"),
        "{types}"
    );
    assert!(types.contains("Available instances: 65534"), "{types}");
    assert!(types.contains("Device API: vfio-ap"), "{types}");
    assert!(
        types.contains("Name: VFIO AP Passthrough Device"),
        "{types}"
    );
}

// ---- The control surface ----------------------------------------------------------------

#[test]
fn control_inject_delay_and_bad_commands() {
    require_fuse!();
    let m = Mount::seed();
    m.ok("bus/ap/apmask", "-5");
    // The mdev does not exist yet; the injection waits for it.
    m.ok(
        ".apsim/inject",
        &format!("{} EBUSY 2", mdev(G1, "assign_adapter")),
    );
    m.ok(".apsim/inject", "bus/ap/devices/card05/config 5");
    m.ok(CREATE, G1);
    m.fails(&mdev(G1, "assign_adapter"), "5", libc::EBUSY);
    // Through the bus/mdev link it is the same attribute.
    m.fails(
        &format!("bus/mdev/devices/{G1}/assign_adapter"),
        "5",
        libc::EBUSY,
    );
    assert_eq!(m.read(&mdev(G1, "matrix")), "");
    m.ok(&mdev(G1, "assign_adapter"), "5");
    assert_eq!(m.read(&mdev(G1, "matrix")), lines(&["05."]));
    m.fails("devices/ap/card05/config", "0", libc::EIO);
    assert_eq!(m.read("devices/ap/card05/config"), "1\n");
    m.ok(".apsim/inject", "devices/ap/card05/config EINVAL 9");
    m.ok(".apsim/inject", "clear");
    m.ok("devices/ap/card05/config", "1");
    // A slow attribute still works; 0 ends the delay.
    m.ok(".apsim/delay", "bus/ap/aqmask 20");
    m.ok("bus/ap/aqmask", "-4");
    m.ok(".apsim/delay", "bus/ap/aqmask 0");
    assert_eq!(m.read("bus/ap/aqmask"), mask_without(&[4]));
    for (ctl, bad) in [
        ("inject", ""),
        ("inject", "bus/ap/apmask"),
        ("inject", "bus/ap/apmask ENOPE"),
        ("inject", "bus/ap/apmask EBUSY 0"),
        ("inject", "bus/ap/apmask EBUSY x"),
        ("delay", "bus/ap/apmask"),
        ("delay", "bus/ap/apmask soon"),
        ("in_use", G1),
        ("in_use", &format!("{G1} 2")),
        ("vfio_ap", "2"),
        ("vfio_ap", "1 1"),
    ] {
        m.fails(&format!(".apsim/{ctl}"), bad, libc::EINVAL);
    }
    m.fails(".apsim/in_use", &format!("{G2} 1"), libc::ENODEV);
    assert!(m.cat(".apsim/inject").is_err());
    m.fails(".apsim/log", "x", libc::EACCES);
}

// ---- The mount itself ------------------------------------------------------------------

#[test]
fn mount_unmounts_on_sigterm_and_clears_a_stale_mount() {
    require_fuse!();
    let m = Mount::seed();
    let root = m.root.clone();
    let sock = m.sock.clone();
    assert!(root.join("bus/ap/apmask").exists());
    // O_TRUNC opens (the shell's `>`) and setattr are accepted, changing nothing.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(root.join("bus/ap/apmask"))
        .expect("O_TRUNC open");
    assert_eq!(m.read("bus/ap/apmask"), format!("0x{}\n", "f".repeat(64)));
    // Creating files is refused.
    assert!(std::fs::write(root.join("bus/ap/newfile"), "x").is_err());
    let tmp_keep = tempfile::tempdir().expect("temp dir");
    let host = tmp_keep.path().join("host.toml");
    std::fs::write(&host, include_str!("../examples/seed.toml")).expect("topology");
    m.stop_keep_dir(|| {});
    assert!(!root.join("bus").exists(), "still mounted after SIGTERM");
    assert!(!sock.exists(), "socket file left behind");

    // A killed run leaves a dead mount (ENOTCONN); the next run clears it.
    let (sock2, dir2) = (tmp_keep.path().join("s"), tmp_keep.path().join("sys"));
    let mut child = common::start_apsim(&host, &sock2, &dir2);
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let err = std::fs::metadata(tmp_keep.path().join("sys")).expect_err("dead mount");
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    let mut again = common::start_apsim(&host, &sock2, &dir2);
    assert!(tmp_keep.path().join("sys/bus/ap/apmask").exists());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(again.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    assert!(again.wait().expect("wait").success());
    assert!(!tmp_keep.path().join("sys/bus").exists());
}
