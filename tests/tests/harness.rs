//! The harness itself: buses, hosts and their teardown.

use std::path::Path;

use e2e::{fuse_available, is_mounted, Bus, BusPolicy, Host, HostOptions, Mode, APD_BUS_NAME};

fn process_exists(pid: u32) -> bool {
    // A reaped child leaves no /proc entry; a zombie would show state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn a_private_bus_answers_and_stops_on_drop() {
    let bus = Bus::start(BusPolicy::Permissive);
    assert!(bus.address().starts_with("unix:path="), "{}", bus.address());
    assert_eq!(bus.name_has_owner("org.freedesktop.DBus"), Ok(true));
    assert_eq!(bus.name_has_owner(APD_BUS_NAME), Ok(false));
    let pid = bus.pid();
    assert!(process_exists(pid));
    drop(bus);
    assert!(!process_exists(pid), "dbus-daemon {pid} outlived its Bus");
}

#[test]
fn the_shipped_policy_loads_into_dbus_daemon() {
    // dbus-daemon refuses to start on a policy file it cannot parse.
    let bus = Bus::start(BusPolicy::Shipped);
    assert_eq!(bus.name_has_owner("org.freedesktop.DBus"), Ok(true));
}

#[test]
fn a_fuse_host_without_apd_mounts_the_simulator_and_cleans_up() {
    if !fuse_available() {
        eprintln!("skipped: FUSE is not available here (/dev/fuse, root or fusermount3)");
        return;
    }
    let host = Host::start_with(HostOptions {
        start_apd: false,
        ..HostOptions::default()
    });
    let sysfs = host.sysfs().to_path_buf();
    let dir = host.dir().to_path_buf();
    assert!(is_mounted(&sysfs));
    // The seed host boots with every bit set (the default boot masks).
    assert_eq!(
        host.read("bus/ap/apmask"),
        format!("0x{}\n", "f".repeat(64))
    );
    // Queues exist for every adapter x usage domain.
    assert!(sysfs.join("bus/ap/devices/05.00ab").exists());
    assert!(sysfs.join("bus/ap/devices/07.00ff").exists());
    // The control surface takes a command and refuses a bad one.
    host.control("inject", "clear");
    let err = host
        .try_control("inject", "no such command at all")
        .expect_err("a bad control command is EINVAL");
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    // An echo-like write that the simulated kernel refuses carries its errno.
    let err = host
        .write("bus/ap/apmask", "0x12 34\n")
        .expect_err("a space in an absolute mask is EINVAL");
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));

    let pids = host.pids();
    assert_eq!(pids.len(), 2, "bus and apsim: {pids:?}");
    drop(host);
    for pid in pids {
        assert!(!process_exists(pid), "process {pid} outlived its Host");
    }
    assert!(!is_mounted(&sysfs), "{} is still mounted", sysfs.display());
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

#[test]
fn a_fuse_host_serves_apd_and_survives_a_reboot() {
    if !fuse_available() {
        eprintln!("skipped: FUSE is not available here (/dev/fuse, root or fusermount3)");
        return;
    }
    let mut host = Host::start(e2e::SEED_HOST);
    assert_eq!(host.bus().name_has_owner(APD_BUS_NAME), Ok(true));
    let status = host.apctl(&["status"]);
    assert!(status.status.success(), "{}", e2e::describe(&status));

    // A kernel change made behind apd's back is gone after the reboot.
    host.write("bus/ap/apmask", "-1\n").expect("apmask -1");
    // Bit 0 is the leftmost: clearing adapter 1 gives 0xbf...
    assert!(host.read("bus/ap/apmask").starts_with("0xbf"));
    host.reboot();
    assert!(host.read("bus/ap/apmask").starts_with("0xff"));
    assert_eq!(host.bus().name_has_owner(APD_BUS_NAME), Ok(true));

    host.stop_apd();
    assert_eq!(host.bus().name_has_owner(APD_BUS_NAME), Ok(false));
    assert!(!host.apd_running());
    host.start_apd();
    assert!(host.apd_running());
    assert!(host.apd_log().contains("===== e2e: apd start #3 ====="));
}

#[test]
fn an_in_process_host_needs_no_fuse_and_cleans_up() {
    let mut host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        ..HostOptions::default()
    });
    let out = host.apctl(&["status"]);
    assert!(out.status.success(), "{}", e2e::describe(&out));
    host.restart_apd();
    let out = host.apctl(&["status"]);
    assert!(out.status.success(), "{}", e2e::describe(&out));

    let pids = host.pids();
    let dir = host.dir().to_path_buf();
    assert_eq!(pids.len(), 2, "bus and apd: {pids:?}");
    drop(host);
    for pid in pids {
        assert!(!process_exists(pid), "process {pid} outlived its Host");
    }
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

#[test]
fn a_given_config_dir_is_used_and_kept() {
    let config = tempfile::tempdir().expect("temp dir");
    let host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        config_dir: Some(config.path().to_path_buf()),
        start_apd: false,
        ..HostOptions::default()
    });
    assert_eq!(host.config_dir(), config.path());
    drop(host);
    assert!(Path::new(config.path()).is_dir());
}

#[test]
#[should_panic(expected = "run `cargo build --workspace --bins` first")]
fn a_missing_binary_names_the_build_command() {
    e2e::bin("no-such-binary-in-this-workspace");
}
