//! The mount lets the kernel cache names and attributes (fuse::names);
//! whatever goes must never be seen again through the mount, read by read:
//! read, change, read again, with the paths walked just before the change
//! so that the kernel holds them.

mod common;

use common::*;

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";

/// Walk each path (stat, and readlink for links) so the kernel caches it.
fn warm(m: &Mount, paths: &[String]) {
    for p in paths {
        assert!(m.exists(p), "{p} must exist before the change");
        if std::fs::symlink_metadata(m.p(p))
            .expect("stat")
            .file_type()
            .is_symlink()
        {
            let _ = m.readlink(p);
        }
    }
}

fn gone(m: &Mount, paths: &[String]) {
    for p in paths {
        assert!(!m.exists(p), "{p} is gone, but the mount still shows it");
        assert_eq!(
            m.read_fs(p).expect_err("gone"),
            libc::ENOENT,
            "{p}: open after removal"
        );
    }
}

fn mdev_paths() -> Vec<String> {
    vec![
        format!("devices/vfio_ap/matrix/{G1}"),
        format!("devices/vfio_ap/matrix/{G1}/matrix"),
        format!("devices/vfio_ap/matrix/{G1}/assign_adapter"),
        format!("bus/mdev/devices/{G1}"),
        format!("bus/mdev/devices/{G1}/guest_matrix"),
        format!("devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/devices/{G1}"),
    ]
}

#[test]
fn a_removed_mdev_is_gone_at_once_and_comes_back_when_created() {
    require_fuse!();
    let m = Mount::seed();
    for round in 0..5 {
        m.ok(CREATE, G1);
        warm(&m, &mdev_paths());
        assert_eq!(m.read(&format!("bus/mdev/devices/{G1}/matrix")), "");
        m.ok(&format!("devices/vfio_ap/matrix/{G1}/remove"), "1");
        gone(&m, &mdev_paths());
        assert!(
            !m.ls("devices/vfio_ap/matrix").contains(&G1.to_string()),
            "round {round}"
        );
    }
}

#[test]
fn a_rebound_queue_shows_its_new_driver_and_loses_status_at_once() {
    require_fuse!();
    let m = Mount::seed();
    let q = "devices/ap/card05/05.0004";
    let status = format!("{q}/status");
    for _ in 0..5 {
        warm(
            &m,
            &[
                format!("{q}/driver"),
                "bus/ap/drivers/cex4queue/05.0004".to_string(),
            ],
        );
        assert!(m.readlink(&format!("{q}/driver")).ends_with("/cex4queue"));
        assert!(!m.exists(&status));
        m.ok("bus/ap/apmask", "-5");
        assert!(m.readlink(&format!("{q}/driver")).ends_with("/vfio_ap"));
        gone(&m, &["bus/ap/drivers/cex4queue/05.0004".to_string()]);
        warm(
            &m,
            &[status.clone(), "bus/ap/drivers/vfio_ap/05.0004".to_string()],
        );
        assert_eq!(m.read(&status), "unassigned\n");
        m.ok("bus/ap/apmask", "+5");
        assert!(m.readlink(&format!("{q}/driver")).ends_with("/cex4queue"));
        gone(
            &m,
            &[status.clone(), "bus/ap/drivers/vfio_ap/05.0004".to_string()],
        );
    }
}

#[test]
fn an_adapter_leaving_the_lpar_and_an_unloaded_module_are_gone_at_once() {
    require_fuse!();
    let m = Mount::seed();
    let card = vec![
        "devices/ap/card06".to_string(),
        "devices/ap/card06/config".to_string(),
        "devices/ap/card06/06.0004".to_string(),
        "devices/ap/card06/06.0004/online".to_string(),
        "bus/ap/devices/card06".to_string(),
        "bus/ap/devices/06.0004".to_string(),
    ];
    let matrix = vec![
        "devices/vfio_ap/matrix".to_string(),
        "devices/vfio_ap/matrix/features".to_string(),
        CREATE.to_string(),
        "bus/matrix/devices/matrix".to_string(),
    ];
    for _ in 0..3 {
        warm(&m, &card);
        m.ok(".apsim/lpar", "remove adapter 6");
        gone(&m, &card);
        m.ok(".apsim/lpar", "add adapter 6");
        warm(&m, &card);
        warm(&m, &matrix);
        m.ok(".apsim/vfio_ap", "0");
        gone(&m, &matrix);
        m.ok(".apsim/vfio_ap", "1");
        warm(&m, &matrix);
    }
}

/// A removal that no write of the reader's own returns from: the remove of
/// an mdev a guest holds ends when the guest lets go, in the writer's
/// thread. A client that hears the `remove` uevent must not find the name.
#[test]
fn a_client_that_hears_remove_finds_the_name_gone() {
    require_fuse!();
    let m = Mount::seed();
    m.ok(CREATE, G1);
    m.ok(".apsim/in_use", &format!("{G1} 1"));
    let events = m.uevents();
    let remove = m.p(&format!("devices/vfio_ap/matrix/{G1}/remove"));
    let writer = std::thread::spawn(move || std::fs::write(remove, "1"));
    warm(&m, &mdev_paths());
    m.ok(".apsim/in_use", &format!("{G1} 0"));
    events.until(|e| e.action() == "remove" && e.devpath().ends_with(G1));
    gone(&m, &mdev_paths());
    writer.join().expect("writer").expect("remove");
}

/// Read a value (so the kernel holds its name and attributes), change it,
/// read it again: a value is never served from a cache (issue 17: no stale
/// read observable through the mount), nor is a directory's listing.
#[test]
fn a_changed_value_reads_changed_at_once() {
    require_fuse!();
    let m = Mount::seed();
    let q = "devices/ap/card05/05.0004";
    let mdev = format!("devices/vfio_ap/matrix/{G1}");
    for round in 0..3 {
        // A mask, and the listings of the drivers that rebind.
        let before = m.read("bus/ap/apmask");
        warm(&m, &["bus/ap/apmask".to_string(), format!("{q}/online")]);
        assert!(m.ls("bus/ap/drivers/cex4queue").contains(&"05.0004".into()));
        assert!(!m.ls("bus/ap/drivers/vfio_ap").contains(&"05.0004".into()));
        m.ok("bus/ap/apmask", "-5");
        assert_ne!(m.read("bus/ap/apmask"), before, "round {round}");
        assert!(m.ls("bus/ap/drivers/vfio_ap").contains(&"05.0004".into()));
        assert!(!m.ls("bus/ap/drivers/cex4queue").contains(&"05.0004".into()));

        // An mdev's matrix and a queue's status.
        m.ok(CREATE, G1);
        let matrix = format!("{mdev}/matrix");
        let status = format!("{q}/status");
        warm(&m, &[matrix.clone(), status.clone()]);
        assert_eq!(m.read(&matrix), "");
        assert_eq!(m.read(&status), "unassigned\n");
        m.ok(&format!("{mdev}/assign_adapter"), "5");
        m.ok(&format!("{mdev}/assign_domain"), "4");
        assert_eq!(m.read(&matrix), "05.0004\n");
        assert_eq!(m.read(&status), "assigned\n");

        // A card's config, and its queue's that follows.
        let (card_config, queue_config) = (
            "devices/ap/card06/config",
            "devices/ap/card06/06.0004/config",
        );
        assert_eq!(m.read(card_config), "1\n");
        assert_eq!(m.read(queue_config), "1\n");
        m.ok(card_config, "0");
        assert_eq!(m.read(card_config), "0\n");
        assert_eq!(m.read(queue_config), "0\n");
        m.ok(card_config, "1");
        assert_eq!(m.read(queue_config), "1\n");

        // Back to the start for the next round.
        m.ok(&format!("{mdev}/remove"), "1");
        assert_eq!(m.read(&status), "unassigned\n");
        m.ok("bus/ap/apmask", "+5");
        assert_eq!(m.read("bus/ap/apmask"), before);
    }
}

/// `.apsim/requests` counts the FUSE requests the mount served: it only
/// grows, each `cat` costs at least its open and read, and it is
/// read-only.
#[test]
fn the_mount_counts_the_requests_it_serves() {
    require_fuse!();
    let m = Mount::seed();
    let count = |m: &Mount| -> u64 {
        m.read(".apsim/requests")
            .trim()
            .parse()
            .expect("a decimal count")
    };
    let before = count(&m);
    for _ in 0..10 {
        m.read("bus/ap/apmask");
    }
    let after = count(&m);
    assert!(
        after >= before + 20,
        "10 reads of apmask: {before} -> {after} requests"
    );
    assert!(count(&m) > after, "reading the count is a request too");
    assert_eq!(
        m.write_raw(".apsim/requests", b"0\n")
            .expect_err("read-only"),
        libc::EACCES
    );
}
