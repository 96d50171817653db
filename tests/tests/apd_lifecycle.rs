//! apd end to end (apsim mounted over FUSE, a private bus, apd as a real
//! process): the seed documents' guests defined and started through D-Bus,
//! the kernel's refusals surfacing as named errors, all-or-nothing starts,
//! reboots and a late vfio_ap module.

mod apd_support;

use apbus::ErrorKind;
use apd_support::*;
use e2e::{Host, HostOptions, Mode, SEED_HOST};

fn seed_masks(c: &Client) {
    let (ap, aq) = c
        .run(c.manager().set_masks(SEED_APMASK, SEED_AQMASK, true))
        .expect("the seed's masks");
    assert_eq!(ap, format!("0xf9{}", "f".repeat(62)));
    assert_eq!(
        aq,
        "0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe"
    );
}

#[test]
fn seed_guests_start_and_the_kernels_refusals_are_named_errors() {
    need_fuse!();
    let host = Host::start(SEED_HOST);
    let c = Client::new(&host);
    let m = c.manager();

    assert_eq!(
        c.run(m.define(&guest1(true))).expect("define guest1"),
        GUEST1_UUID
    );
    assert_eq!(
        c.run(m.define(&guest2(true))).expect("define guest2"),
        GUEST2_UUID
    );

    // Before the masks give the queues to vfio_ap, the host owns them.
    let e = c.run(m.start("guest1")).expect_err("host-owned queues");
    assert_eq!(e.kind(), ErrorKind::HostOwned, "{e}");
    assert!(e.sentence().starts_with("cannot start guest1: "), "{e}");
    assert!(e.sentence().contains("05.0004"), "{e}");
    assert!(
        !mdev_exists(&host, GUEST1_UUID),
        "a refused start leaves no mdev"
    );

    seed_masks(&c);
    c.run(m.start("guest1")).expect("start guest1");
    c.run(m.start(GUEST2_UUID)).expect("start guest2 by UUID");
    assert!(mdev_exists(&host, GUEST1_UUID));
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{GUEST1_UUID}/matrix")),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );
    let g1 = c.mdev(GUEST1_UUID);
    assert_eq!(
        c.run(g1.guest_matrix()).expect("GuestMatrix"),
        vec!["05.0004", "05.00ab", "06.0004", "06.00ab"]
    );
    assert!(c.run(g1.active()).expect("Active"));
    // Starting what runs is a success that writes nothing.
    c.run(m.start("guest1")).expect("idempotent start");

    // The design's example refusal, word for word.
    let e = c
        .run(m.assign("guest1", &ids(&[], &[0x47], &[]), ""))
        .expect_err("05.0047 belongs to guest2");
    assert_eq!(e.kind(), ErrorKind::InUse);
    assert_eq!(
        e.sentence(),
        format!(
            "cannot assign domain 0x47 to guest1: queue 05.0047 is already assigned to guest2 ({GUEST2_UUID})"
        )
    );
    // Nothing changed: not the live mdev, not the definition.
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{GUEST1_UUID}/matrix")),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );
    let (info, apqns) = c.run(m.get_mdev("guest1")).expect("GetMdev");
    assert_eq!(info.persistent.domains, vec![4, 0xab]);
    assert_eq!(apqns.len(), 4);
    assert!(apqns.iter().all(|a| a.usable), "{apqns:?}");

    // Taking 05.0004 back for the host while guest1 holds it: refused.
    let before = host.read("bus/ap/apmask");
    let e = c
        .run(m.set_masks("+5", "+4", false))
        .expect_err("05.0004 is assigned");
    assert!(
        matches!(e.kind(), ErrorKind::Busy | ErrorKind::InUse),
        "{e}"
    );
    assert!(e.sentence().contains("05.0004"), "{e}");
    assert_eq!(host.read("bus/ap/apmask"), before);

    // Out of range and unknown: named errors.
    let e = c
        .run(m.assign("guest2", &ids(&[256], &[], &[]), ""))
        .expect_err("256");
    assert_eq!(e.kind(), ErrorKind::OutOfRange, "{e}");
    let e = c.run(m.start("guest9")).expect_err("unknown");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // Live and persistent assignment, then unassignment.
    c.run(m.assign("guest2", &ids(&[], &[], &[0x47]), ""))
        .expect("a control domain");
    assert_eq!(
        host.read(&format!(
            "devices/vfio_ap/matrix/{GUEST2_UUID}/control_domains"
        )),
        "0047\n"
    );
    let (info, _) = c.run(m.get_mdev("guest2")).expect("GetMdev");
    assert_eq!(info.persistent.control_domains, vec![0x47]);
    c.run(m.unassign("guest2", &ids(&[], &[], &[0x47]), "live"))
        .expect("live only");
    let (info, _) = c.run(m.get_mdev("guest2")).expect("GetMdev");
    assert!(info.ids.control_domains.is_empty());
    assert_eq!(info.persistent.control_domains, vec![0x47]);
    assert!(info.differs);

    c.run(m.stop("guest2")).expect("stop guest2");
    assert!(!mdev_exists(&host, GUEST2_UUID));
    c.run(m.stop("guest2"))
        .expect("stopping a stopped mdev is a no-op");
    let status = c.run(m.get_status()).expect("GetStatus");
    assert_eq!(status.defined, 2);
    assert_eq!(status.active, 1);
}

#[test]
fn a_start_the_kernel_refuses_leaves_no_mdev_behind() {
    need_fuse!();
    let host = Host::start(SEED_HOST);
    let c = Client::new(&host);
    let m = c.manager();
    seed_masks(&c);
    let uuid = "9a4dd1a1-5b0c-4a8f-8a3e-6d2f1c0b7e55";
    c.run(m.define(&def(uuid, "guest3", false, &[6], &[0x47], &[])))
        .expect("define guest3");
    // The kernel refuses whatever write assigns the matrix (ap_config on
    // kernels that have it, assign_domain on older ones).
    let dir = format!("devices/vfio_ap/matrix/{uuid}");
    host.control("inject", &format!("{dir}/ap_config EADDRINUSE"));
    host.control("inject", &format!("{dir}/assign_domain EADDRINUSE"));
    let e = c.run(m.start("guest3")).expect_err("injected refusal");
    host.control("inject", "clear");
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    assert!(e.sentence().starts_with("cannot start guest3: "), "{e}");
    assert!(e.sentence().contains("EADDRINUSE"), "{e}");
    assert!(
        !mdev_exists(&host, uuid),
        "the created mdev was removed again"
    );
    let (info, _) = c.run(m.get_mdev("guest3")).expect("still defined");
    assert!(info.defined && !info.active);
    // And it starts once the kernel agrees.
    c.run(m.start("guest3")).expect("start guest3");
    assert_eq!(host.read(&format!("{dir}/matrix")), "06.0047\n");
}

#[test]
fn an_mdev_made_by_another_tool_is_shown_and_its_queues_are_respected() {
    need_fuse!();
    let host = Host::start(SEED_HOST);
    let c = Client::new(&host);
    let m = c.manager();
    seed_masks(&c);
    let objects = c.record_objects();
    let foreign = "0c7e2a3f-1d5b-4e7c-9f0a-2b3c4d5e6f70";
    let path = apbus::mdev_path(foreign);
    // mdevctl (or a script) creates and assigns an mdev behind apd's back.
    host.write(
        "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
        &format!("{foreign}\n"),
    )
    .expect("create");
    host.wait_for("InterfacesAdded of the foreign mdev", || {
        objects.any(|o| o == format!("+{path}"))
    });
    host.write(
        &format!("devices/vfio_ap/matrix/{foreign}/assign_adapter"),
        "6\n",
    )
    .expect("assign adapter");
    host.write(
        &format!("devices/vfio_ap/matrix/{foreign}/assign_domain"),
        "0x47\n",
    )
    .expect("assign domain");
    // No uevent for assignments: the property read re-reads the live matrix.
    let fm = c.mdev(foreign);
    assert_eq!(c.run(fm.adapters()).expect("Adapters"), vec![6]);
    assert_eq!(c.run(fm.domains()).expect("Domains"), vec![0x47]);
    assert!(!c.run(fm.defined()).expect("Defined"));
    let list = c.run(m.list_mdevs()).expect("ListMdevs");
    let f = list.iter().find(|i| i.uuid == foreign).expect("listed");
    assert!(f.active && !f.defined && f.name.is_empty());
    assert_eq!(f.ids.domains, vec![0x47]);

    // A definition needing 06.0047 cannot start: the foreign mdev holds it.
    c.run(m.define(&def(
        "9a4dd1a1-5b0c-4a8f-8a3e-6d2f1c0b7e55",
        "guest3",
        false,
        &[6],
        &[0x47],
        &[],
    )))
    .expect("define guest3");
    let e = c.run(m.start("guest3")).expect_err("06.0047 is taken");
    assert_eq!(e.kind(), ErrorKind::InUse);
    assert!(e.sentence().contains(foreign), "{e}");
    assert!(e.sentence().contains("06.0047"), "{e}");

    // Foreign assignments are kept when apd changes the mdev.
    host.write(
        &format!("devices/vfio_ap/matrix/{foreign}/assign_control_domain"),
        "4\n",
    )
    .expect("foreign control domain");
    c.run(m.assign(foreign, &ids(&[], &[], &[0xab]), ""))
        .expect("apd adds a control domain live");
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{foreign}/control_domains")),
        "0004\n00ab\n"
    );
    // Removed by the other tool: the object goes away.
    host.write(&format!("devices/vfio_ap/matrix/{foreign}/remove"), "1\n")
        .expect("remove");
    host.wait_for("InterfacesRemoved of the foreign mdev", || {
        objects.any(|o| o == format!("-{path}"))
    });
    // Now guest3 can start.
    c.run(m.start("guest3")).expect("start guest3");
}

#[test]
fn reboot_restores_autostart_mdevs_and_leaves_manual_ones_down() {
    need_fuse!();
    let mut host = Host::start(SEED_HOST);
    {
        let c = Client::new(&host);
        let m = c.manager();
        c.run(m.define(&guest1(true))).expect("define guest1");
        c.run(m.define(&guest2(false))).expect("define guest2");
        seed_masks(&c);
        c.run(m.start("guest1")).expect("start guest1");
        c.run(m.start("guest2")).expect("start guest2");
    }
    host.reboot();
    // READY=1 came after the restore: no waiting needed.
    assert_eq!(
        host.read("bus/ap/apmask"),
        format!("0xf9{}\n", "f".repeat(62)),
        "the persistent apmask is applied at boot"
    );
    assert!(
        mdev_exists(&host, GUEST1_UUID),
        "autostart guest1 is restored"
    );
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{GUEST1_UUID}/matrix")),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );
    assert!(!mdev_exists(&host, GUEST2_UUID), "manual guest2 stays down");
    let c = Client::new(&host);
    let status = c.run(c.manager().get_status()).expect("GetStatus");
    assert!(
        status.start_failures.is_empty(),
        "{:?}",
        status.start_failures
    );
    assert_eq!(status.active, 1);
    assert_eq!(status.persistent_apmask, format!("0xf9{}", "f".repeat(62)));
    // The start by hand logged each write; the restore logs one line per
    // mdev (its event), its writes only at debug level.
    if std::env::var_os("RUST_LOG").is_none() {
        let log = host.apd_log();
        let write = format!("assign adapter 5 to guest1 ({GUEST1_UUID})");
        let started = format!("mdev guest1 ({GUEST1_UUID}) was started");
        assert_eq!(log.matches(&write).count(), 1, "{log}");
        assert_eq!(log.matches(&started).count(), 2, "{log}");
    }
    // A restart without reboot changes nothing.
    host.restart_apd();
    assert!(mdev_exists(&host, GUEST1_UUID));
    assert!(!mdev_exists(&host, GUEST2_UUID));
}

/// The bus sees a boot restore as its end state: each mdev object is
/// added once, already started (not added stopped, then changed), and each
/// start is still told as an `mdev-started` event.
#[test]
fn a_boot_restore_adds_each_mdev_object_once_as_started() {
    need_fuse!();
    let mut host = Host::start(SEED_HOST);
    {
        let c = Client::new(&host);
        let m = c.manager();
        c.run(m.define(&guest1(true))).expect("define guest1");
        c.run(m.define(&guest2(true))).expect("define guest2");
        seed_masks(&c);
    }
    host.stop_apd();
    host.restart_apsim();
    // Listening from before apd's start, as a client on the bus at boot.
    let c = Client::new(&host);
    let objects = c.record_objects();
    let events = c.record_events();
    let changes: Vec<_> = [GUEST1_UUID, GUEST2_UUID]
        .iter()
        .map(|u| c.record_properties(&apbus::mdev_path(u), "org.apctl.Apd1.Mdev"))
        .collect();
    host.start_apd();
    host.wait_for("both mdev-started events", || {
        [GUEST1_UUID, GUEST2_UUID]
            .iter()
            .all(|u| events.any(|e| e.starts_with(&format!("mdev-started {u}"))))
    });
    // The restore's own uevents come back after READY: they change nothing.
    let status = c.run(c.manager().get_status()).expect("GetStatus");
    assert_eq!(status.active, 2, "{status:?}");
    let mut added = objects.items();
    added.sort();
    let mut want: Vec<String> = [GUEST1_UUID, GUEST2_UUID]
        .iter()
        .map(|u| format!("+{}", apbus::mdev_path(u)))
        .collect();
    want.sort();
    assert_eq!(added, want, "each object added once, none removed");
    for (uuid, changed) in [GUEST1_UUID, GUEST2_UUID].iter().zip(&changes) {
        assert_eq!(
            changed.items(),
            Vec::<String>::new(),
            "{uuid}: added as started, so no property of it changed"
        );
        assert!(c.run(c.mdev(uuid).active()).expect("Active"));
    }
}

#[test]
fn apd_started_before_vfio_ap_restores_when_the_module_loads() {
    need_fuse!();
    let mut host = Host::start(SEED_HOST);
    {
        let c = Client::new(&host);
        let m = c.manager();
        c.run(m.define(&guest1(true))).expect("define guest1");
        seed_masks(&c);
    }
    // Reboot into a kernel whose vfio_ap is not loaded yet.
    host.stop_apd();
    host.control("vfio_ap", "0");
    host.start_apd();
    let c = Client::new(&host);
    let m = c.manager();
    assert!(!c.run(c.host().vfio_ap_loaded()).expect("VfioApLoaded"));
    let g1 = c.mdev(GUEST1_UUID);
    let why = c.run(g1.start_error()).expect("StartError");
    assert!(why.contains("vfio_ap"), "{why}");
    let status = c.run(m.get_status()).expect("GetStatus");
    assert_eq!(
        status.start_failures.len(),
        1,
        "{:?}",
        status.start_failures
    );
    assert_eq!(status.start_failures[0].0, GUEST1_UUID);

    let events = c.record_events();
    host.control("vfio_ap", "1");
    host.wait_for("guest1 to be restored after MDEV_STATE=registered", || {
        mdev_exists(&host, GUEST1_UUID) && c.run(g1.active()).unwrap_or(false)
    });
    host.wait_for("the mdev-started event", || {
        events.any(|e| e.starts_with(&format!("mdev-started {GUEST1_UUID}")))
    });
    assert!(events.any(|e| e.starts_with("vfio-ap ")));
    assert_eq!(c.run(g1.start_error()).expect("StartError"), "");
    assert_eq!(
        c.run(g1.guest_matrix()).expect("GuestMatrix"),
        vec!["05.0004", "05.00ab", "06.0004", "06.00ab"]
    );
    let status = c.run(m.get_status()).expect("GetStatus");
    assert!(
        status.start_failures.is_empty(),
        "{:?}",
        status.start_failures
    );
}

#[test]
fn a_definition_that_cannot_start_at_boot_is_reported_and_retried() {
    need_fuse!();
    let mut host = Host::start(SEED_HOST);
    {
        let c = Client::new(&host);
        let m = c.manager();
        c.run(m.define(&guest1(true))).expect("define guest1");
        seed_masks(&c);
    }
    host.stop_apd();
    // The queues are given back to the host behind apd's back (and a
    // reboot would do the same without persistent masks).
    host.write("bus/ap/apmask", &format!("0x{}\n", "f".repeat(64)))
        .expect("apmask");
    host.write("bus/ap/aqmask", &format!("0x{}\n", "f".repeat(64)))
        .expect("aqmask");
    // apd applies the persistent masks first, so break that too: remove
    // the persistent masks file.
    std::fs::remove_file(host.config_dir().join("apd.toml")).expect("remove apd.toml");
    host.start_apd();
    let c = Client::new(&host);
    let g1 = c.mdev(GUEST1_UUID);
    let why = c.run(g1.start_error()).expect("StartError");
    assert!(why.contains("belong to the host"), "{why}");
    assert!(!mdev_exists(&host, GUEST1_UUID));
    let events = c.record_events();
    // Half of what guest1 needs: adapter 6's queues still belong to the
    // host. The retry fails again, for a new reason, and says so.
    host.write("bus/ap/apmask", "-5\n").expect("apmask");
    host.wait_for("a start-failed event naming adapter 6's queues", || {
        events
            .any(|e| e.starts_with(&format!("start-failed {GUEST1_UUID}")) && e.contains("06.0004"))
    });
    assert!(!mdev_exists(&host, GUEST1_UUID));
    // The rest: the mask uevent retries the start, which now works.
    host.write("bus/ap/apmask", "-6\n").expect("apmask");
    host.wait_for("guest1 to start after the masks changed", || {
        mdev_exists(&host, GUEST1_UUID)
    });
    host.wait_for("StartError to clear", || {
        c.run(g1.start_error()).is_ok_and(|s| s.is_empty())
    });
    assert!(events.any(|e| e.starts_with("masks-changed")));
}

#[test]
fn bad_definition_files_are_reported_skipped_and_never_rewritten() {
    let mut host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        ..HostOptions::new(SEED_HOST)
    });
    {
        let c = Client::new(&host);
        c.run(c.manager().define(&guest2(false)))
            .expect("define guest2");
    }
    host.stop_apd();
    let mdevs = host.config_dir().join("mdevs");
    let bad = mdevs.join(format!("{GUEST1_UUID}.toml"));
    let garbage = "uuid = \"62177883-f1bb-47f0-914d-32a22e3a8804\"\nadapters = [5, 6\n";
    std::fs::write(&bad, garbage).expect("write a broken definition");
    let masks = host.config_dir().join("apd.toml");
    std::fs::write(&masks, "apmask = \"0xff\n").expect("write broken masks");
    host.start_apd();
    let c = Client::new(&host);
    let m = c.manager();
    let errors = c.run(c.host().load_errors()).expect("LoadErrors");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|(p, _)| p.ends_with(&format!("{GUEST1_UUID}.toml"))),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|(p, s)| p.ends_with("apd.toml") && s.contains("not applied")),
        "{errors:?}"
    );
    let status = c.run(m.get_status()).expect("GetStatus");
    assert_eq!(status.load_errors, errors);
    assert_eq!(status.defined, 1, "the good definition loads");
    let findings = c.run(m.check()).expect("Check");
    assert!(
        findings
            .iter()
            .any(|f| f.kind == "load-error" && f.severity == "error"),
        "{findings:?}"
    );
    // Persistent masks cannot be stored over a file that does not parse.
    let e = c
        .run(m.set_masks(SEED_APMASK, SEED_AQMASK, true))
        .expect_err("apd.toml is broken");
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(e.sentence().contains("apd.toml"), "{e}");
    // Restarts leave both files as they were.
    host.restart_apd();
    assert_eq!(std::fs::read_to_string(&bad).expect("bad file"), garbage);
    assert_eq!(
        std::fs::read_to_string(&masks).expect("masks file"),
        "apmask = \"0xff\n"
    );
}
