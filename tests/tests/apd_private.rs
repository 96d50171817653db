//! apd's private socket end to end: root's apctl with no bus named reaches
//! apd on `RUNTIME_DIR/private` (the D-Bus protocol without the bus
//! daemon) and sees what the bus shows; the socket is root's alone, and
//! apd refuses a change from anyone else on it even when its mode is
//! opened; peers come and go without using up apd's places; a stopped
//! apd removes the socket and a killed one's socket is replaced.

mod apd_support;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::process::Output;

use e2e::{command_exists, describe, Host, SEED_HOST};

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", describe(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn roots_apctl_uses_the_private_socket_and_sees_what_the_bus_shows() {
    need_fuse!();
    let mut host = Host::start(SEED_HOST);
    let socket = host.private_socket();
    let meta = std::fs::symlink_metadata(&socket).expect("apd listens on its private socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o600, "root's alone");
    assert_eq!(meta.uid(), 0);

    // The seed's Guest1, set up and started over the private socket only.
    // The system bus has no apd here: each success came through the socket.
    let root = |host: &Host, args: &[&str]| host.apctl_unnamed(None, args);
    ok(&root(
        &host,
        &["masks", "--apmask", "-5,-6", "--aqmask", "-4,-0xab"],
    ));
    ok(&root(
        &host,
        &["define", "--name", "guest1", "-a", "5,6", "-d", "4,0xab"],
    ));
    ok(&root(&host, &["start", "guest1"]));
    // Reads through either door agree: the Host properties the publisher
    // keeps are shared by the bus's object and the peers'.
    for args in [
        ["--json", "status"].as_slice(),
        ["--json", "list"].as_slice(),
        ["--json", "queues"].as_slice(),
    ] {
        assert_eq!(
            ok(&root(&host, args)),
            host.apctl_ok(args),
            "apctl {args:?}"
        );
    }
    let listed = host.apctl_json(&["list"]);
    assert_eq!(listed[0]["active"], true, "{listed}");
    // A refusal keeps apd's sentence and exit status.
    let o = root(&host, &["define", "--name", "guest1", "-a", "7", "-d", "4"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("guest1"),
        "{}",
        describe(&o)
    );

    // Peers close and give their place back: more apctl runs than apd
    // keeps places for, one after the other, all on the socket.
    for _ in 0..70 {
        ok(&root(&host, &["status"]));
    }

    // A stopped apd takes its socket with it; root's apctl then tries the
    // bus (the system bus: no apd there) and says so.
    host.stop_apd();
    assert!(!socket.exists(), "the socket outlived apd");
    let o = root(&host, &["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("system bus"),
        "{}",
        describe(&o)
    );

    // A killed apd leaves its socket behind; the next one replaces it.
    host.start_apd();
    host.kill_apd();
    assert!(socket.exists(), "kill -9 leaves the socket");
    host.start_apd();
    assert!(ok(&root(&host, &["list"])).contains("guest1"));
}

#[test]
fn a_caller_that_is_not_root_changes_nothing_through_the_private_socket() {
    need_fuse!();
    if !command_exists("setpriv") {
        eprintln!("skipped: setpriv is not installed");
        return;
    }
    let host = Host::start(SEED_HOST);
    host.apctl_ok(&["masks", "--apmask", "-5,-6", "--aqmask", "-4,-0xab"]);
    host.apctl_ok(&["define", "--name", "guest1", "-a", "5,6", "-d", "4,0xab"]);
    // The socket's mode keeps others out; nobody falls back to the system
    // bus (no apd there).
    let o = host.apctl_unnamed(Some(65534), &["start", "guest1"]);
    assert_ne!(o.status.code(), Some(0), "{}", describe(&o));
    // With the mode opened, apd itself refuses from the peer's uid.
    let socket = host.private_socket();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let o = host.apctl_unnamed(Some(65534), &["start", "guest1"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("uid 65534 may not start mdev guest1") && err.contains("private socket"),
        "{}",
        describe(&o)
    );
    // Reading stays open to the peer; nothing was started.
    let listed = ok(&host.apctl_unnamed(Some(65534), &["--json", "list"]));
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed[0]["active"], false, "{listed}");
    assert!(!host
        .sysfs()
        .join("devices/vfio_ap/matrix")
        .read_dir()
        .expect("matrix dir")
        .filter_map(Result::ok)
        .any(|e| e.file_name().len() == 36));
}
