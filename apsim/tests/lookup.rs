//! Path lookup agrees with directory listings: every name a directory that
//! holds mdevs lists resolves (stat, read, readlink) to what the listing
//! says, links point where kernel.md says, and names it does not list are
//! ENOENT. The simulator looks such names up directly instead of listing,
//! so the two must not drift apart.

use apsim::{DirEntry, NodeKind, Sim, Topology};

const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
const MATRIX: &str = "devices/vfio_ap/matrix";
const TYPE_DEVICES: &str =
    "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/devices";
const BUS_DEVICES: &str = "bus/mdev/devices";
const DRIVER: &str = "bus/mdev/drivers/vfio_ap_mdev";
const GROUPS: &str = "kernel/iommu_groups";

/// Created in this order; `REMOVED` goes again, from the middle.
const UUIDS: [&str; 5] = [
    "62177883-f1bb-47f0-914d-32a22e3a8804",
    "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e",
    "00000000-0000-4000-8000-000000000001",
    "ffffffff-ffff-4fff-bfff-ffffffffffff",
    "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d",
];
const REMOVED: &str = "00000000-0000-4000-8000-000000000001";
const NEVER: &str = "12345678-1234-4234-8234-123456789abc";

/// The seed host with the seed documents' masks and the mdevs of `UUIDS`
/// (one created in upper case), two with assignments, `REMOVED` removed.
fn sim_with_mdevs() -> Sim {
    let sim = Sim::new(
        Topology::from_toml_str(include_str!("../examples/seed.toml")).expect("seed topology"),
    );
    ok(&sim, "bus/ap/apmask", "-5,-6\n");
    ok(&sim, "bus/ap/aqmask", "-4,-0x47,-0xab,-0xff\n");
    for (i, u) in UUIDS.iter().enumerate() {
        // The kernel names an mdev in lowercase whatever case create got.
        let text = if i == 3 {
            u.to_ascii_uppercase()
        } else {
            format!("{u}\n")
        };
        ok(&sim, CREATE, &text);
    }
    for (u, attr, v) in [
        (UUIDS[0], "assign_adapter", "5"),
        (UUIDS[0], "assign_domain", "4"),
        (UUIDS[4], "assign_adapter", "6"),
        (UUIDS[4], "assign_domain", "0xab"),
        (UUIDS[4], "assign_control_domain", "0xab"),
    ] {
        ok(&sim, &format!("{MATRIX}/{u}/{attr}"), &format!("{v}\n"));
    }
    ok(&sim, &format!("{MATRIX}/{REMOVED}/remove"), "1\n");
    sim
}

fn ok(sim: &Sim, path: &str, data: &str) {
    assert_eq!(
        sim.write(path, data.as_bytes()),
        Ok(data.len()),
        "write {data:?} to {path}"
    );
}

fn live() -> Vec<&'static str> {
    UUIDS.iter().copied().filter(|u| *u != REMOVED).collect()
}

fn list(sim: &Sim, path: &str) -> Vec<DirEntry> {
    sim.list(path)
        .unwrap_or_else(|e| panic!("list {path}: errno {e}"))
}

fn names(entries: &[DirEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

/// `dir/target` with `..` applied, as the kernel resolves a relative link.
fn normalize(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                assert!(parts.pop().is_some(), "{target} climbs above the root");
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Looks up every entry `dir` lists by its path and checks it is what the
/// listing says; returns the entries.
fn check_listing(sim: &Sim, dir: &str) -> Vec<DirEntry> {
    let entries = list(sim, dir);
    for e in &entries {
        let path = format!("{dir}/{}", e.name);
        let node = sim
            .stat(&path)
            .unwrap_or_else(|errno| panic!("{path} is listed but stat gives errno {errno}"));
        assert_eq!(node.kind, e.kind, "{path}: stat and listing disagree");
        match e.kind {
            NodeKind::Dir => {
                assert_eq!(node.mode, 0o755, "{path}");
                assert!(sim.list(&path).is_ok(), "{path}: a listed dir lists");
                assert_eq!(sim.read(&path), Err(libc::EISDIR), "{path}");
                assert_eq!(sim.readlink(&path), Err(libc::EINVAL), "{path}");
            }
            NodeKind::File => {
                assert_eq!(node.size, 4096, "{path}");
                let read = sim.read(&path);
                if node.mode & 0o444 == 0 {
                    assert_eq!(read, Err(libc::EACCES), "{path} is write-only");
                } else {
                    assert!(read.is_ok(), "{path}: readable, read gave {read:?}");
                }
                assert_eq!(sim.list(&path), Err(libc::ENOTDIR), "{path}");
                assert_eq!(sim.readlink(&path), Err(libc::EINVAL), "{path}");
            }
            NodeKind::Symlink => {
                let target = sim
                    .readlink(&path)
                    .unwrap_or_else(|errno| panic!("readlink {path}: errno {errno}"));
                assert_eq!(node.size, target.len() as u64, "{path}");
                assert_eq!(node.mode, 0o777, "{path}");
                // Every link here points at a directory: following it lists
                // the same thing as its target.
                let physical = normalize(dir, &target);
                assert_eq!(
                    sim.list(&path),
                    sim.list(&physical),
                    "{path} -> {target} ({physical})"
                );
            }
        }
    }
    entries
}

/// Names `dir` must not have.
fn check_absent(sim: &Sim, dir: &str, absent: &[&str]) {
    for name in absent {
        let path = format!("{dir}/{name}");
        assert_eq!(sim.stat(&path), Err(libc::ENOENT), "stat {path}");
        assert_eq!(sim.read(&path), Err(libc::ENOENT), "read {path}");
        assert_eq!(sim.readlink(&path), Err(libc::ENOENT), "readlink {path}");
        assert_eq!(sim.list(&path), Err(libc::ENOENT), "list {path}");
        assert_eq!(
            sim.stat(&format!("{path}/uevent")),
            Err(libc::ENOENT),
            "stat {path}/uevent"
        );
    }
}

/// Names that are no mdev of a directory listing mdevs by UUID.
fn not_mdevs() -> Vec<String> {
    let mut v: Vec<String> = [REMOVED, NEVER, "no-such", "..."]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // sysfs names are case-sensitive; the kernel names mdevs in lowercase.
    v.push(UUIDS[4].to_ascii_uppercase());
    // A UUID with one character short or extra.
    v.push(UUIDS[0][..35].to_string());
    v.push(format!("{}0", UUIDS[0]));
    v
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn directories_listing_mdevs_by_uuid_resolve_each_listed_name() {
    let sim = sim_with_mdevs();
    let live = live();
    for dir in [BUS_DEVICES, DRIVER, TYPE_DEVICES] {
        let entries = check_listing(&sim, dir);
        // Listed in creation order.
        assert_eq!(names(&entries), live, "{dir}");
        for e in &entries {
            assert_eq!(e.kind, NodeKind::Symlink, "{dir}/{}", e.name);
            let target = sim
                .readlink(&format!("{dir}/{}", e.name))
                .expect("listed link");
            assert_eq!(
                normalize(dir, &target),
                format!("{MATRIX}/{}", e.name),
                "{dir}/{} links to the mdev",
                e.name
            );
        }
        check_absent(&sim, dir, &as_strs(&not_mdevs()));
        // The matrix device's own entries are no mdevs.
        check_absent(&sim, dir, &["uevent", "features", "driver", "subsystem"]);
    }
}

#[test]
fn matrix_device_resolves_its_entries_and_mdevs() {
    let sim = sim_with_mdevs();
    let entries = check_listing(&sim, MATRIX);
    let fixed = [
        ("uevent", NodeKind::File),
        ("features", NodeKind::File),
        ("mdev_supported_types", NodeKind::Dir),
        ("driver", NodeKind::Symlink),
        ("subsystem", NodeKind::Symlink),
    ];
    for (name, kind) in fixed {
        let e = entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{MATRIX} lists no {name}"));
        assert_eq!(e.kind, kind, "{MATRIX}/{name}");
    }
    let mdevs: Vec<&str> = entries
        .iter()
        .filter(|e| !fixed.iter().any(|(n, _)| *n == e.name))
        .inspect(|e| assert_eq!(e.kind, NodeKind::Dir, "{MATRIX}/{}", e.name))
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(mdevs, live(), "mdevs in creation order");
    assert_eq!(
        sim.readlink(&format!("{MATRIX}/driver")),
        Ok("../../../bus/matrix/drivers/vfio_ap".to_string())
    );
    assert_eq!(
        sim.readlink(&format!("{MATRIX}/subsystem")),
        Ok("../../../bus/matrix".to_string())
    );
    let mut absent = not_mdevs();
    absent.extend(["Uevent", "feature", "mdev_supported_type"].map(String::from));
    check_absent(&sim, MATRIX, &as_strs(&absent));
}

#[test]
fn mdev_directories_resolve_their_entries() {
    let sim = sim_with_mdevs();
    for u in live() {
        let dir = format!("{MATRIX}/{u}");
        let entries = check_listing(&sim, &dir);
        // kernel.md: §5/§6 attributes, remove, driver, subsystem, uevent,
        // iommu_group and mdev_type.
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
            "uevent",
            "driver",
            "subsystem",
            "iommu_group",
            "mdev_type",
        ] {
            assert!(entries.iter().any(|e| e.name == name), "{dir} lacks {name}");
        }
        assert_eq!(
            sim.readlink(&format!("{dir}/mdev_type")),
            Ok("../mdev_supported_types/vfio_ap-passthrough".to_string())
        );
        assert_eq!(
            sim.readlink(&format!("{dir}/driver"))
                .map(|t| normalize(&dir, &t)),
            Ok(DRIVER.to_string())
        );
        assert_eq!(
            sim.readlink(&format!("{dir}/subsystem"))
                .map(|t| normalize(&dir, &t)),
            Ok("bus/mdev".to_string())
        );
        // The same attribute through every alias of the mdev.
        let matrix = sim.read(&format!("{dir}/matrix")).expect("matrix");
        for alias in [BUS_DEVICES, DRIVER, TYPE_DEVICES] {
            assert_eq!(
                sim.read(&format!("{alias}/{u}/matrix")).as_ref(),
                Ok(&matrix),
                "{alias}/{u}/matrix"
            );
        }
        check_absent(
            &sim,
            &dir,
            &["no-such", "Matrix", "matrix ", "iommu_groups", "devices"],
        );
    }
    // The assignments went to the right mdevs (the index did not shift
    // them when REMOVED left the middle of the list).
    assert_eq!(
        sim.read(&format!("{MATRIX}/{}/matrix", UUIDS[0])),
        Ok(b"05.0004\n".to_vec())
    );
    assert_eq!(
        sim.read(&format!("{MATRIX}/{}/matrix", UUIDS[4])),
        Ok(b"06.00ab\n".to_vec())
    );
    assert_eq!(
        sim.read(&format!("{MATRIX}/{}/control_domains", UUIDS[4])),
        Ok(b"00ab\n".to_vec())
    );
    assert_eq!(
        sim.read(&format!("{MATRIX}/{}/matrix", UUIDS[3])),
        Ok(Vec::new())
    );
}

#[test]
fn iommu_groups_resolve_each_listed_group() {
    let sim = sim_with_mdevs();
    let live = live();
    let groups = check_listing(&sim, GROUPS);
    assert_eq!(groups.len(), live.len(), "one group per mdev");
    let mut seen = Vec::new();
    for u in &live {
        let link = format!("{MATRIX}/{u}/iommu_group");
        let target = sim.readlink(&link).expect("iommu_group link");
        let group_dir = normalize(&format!("{MATRIX}/{u}"), &target);
        let g = group_dir
            .strip_prefix(&format!("{GROUPS}/"))
            .unwrap_or_else(|| panic!("{link} -> {target}: not in {GROUPS}"))
            .to_string();
        let e = groups
            .iter()
            .find(|e| e.name == g)
            .unwrap_or_else(|| panic!("{GROUPS} does not list {g} of {u}"));
        assert_eq!(e.kind, NodeKind::Dir);
        assert_eq!(names(&check_listing(&sim, &group_dir)), ["devices"]);
        let devices = format!("{group_dir}/devices");
        let members = check_listing(&sim, &devices);
        assert_eq!(names(&members), [*u], "{devices}");
        let target = sim
            .readlink(&format!("{devices}/{u}"))
            .expect("group member link");
        assert_eq!(normalize(&devices, &target), format!("{MATRIX}/{u}"));
        // Another group's mdev is no member of this one.
        let others: Vec<&str> = live.iter().copied().filter(|o| o != u).collect();
        check_absent(&sim, &devices, &others);
        check_absent(&sim, &devices, &as_strs(&not_mdevs()));
        seen.push(g);
    }
    // Group names are decimal as the kernel prints them: no sign, no
    // leading zero; a removed mdev's group is gone.
    let mut absent: Vec<String> = ["-1", "x", "4294967296"].map(String::from).to_vec();
    for g in &seen {
        absent.push(format!("+{g}"));
        absent.push(format!("0{g}"));
        absent.push(format!("{g} "));
    }
    let removed_group = (0..=seen.len() as u32)
        .map(|g| g.to_string())
        .find(|g| !seen.contains(g))
        .expect("a group number no live mdev has");
    absent.push(removed_group);
    check_absent(&sim, GROUPS, &as_strs(&absent));
}

#[test]
fn no_mdevs_lists_and_resolves_nothing() {
    let sim = Sim::new(
        Topology::from_toml_str(include_str!("../examples/seed.toml")).expect("seed topology"),
    );
    for dir in [BUS_DEVICES, DRIVER, TYPE_DEVICES, GROUPS] {
        assert_eq!(check_listing(&sim, dir), Vec::new(), "{dir}");
        check_absent(&sim, dir, &[UUIDS[0], "0"]);
    }
    check_absent(&sim, MATRIX, &[UUIDS[0]]);
}
