//! Authorization end to end: a bus with the system bus defaults plus the
//! shipped `systemd/org.apctl.Apd1.conf`; a caller that is not root may
//! read everything, every change is refused by apd with AccessDenied (the
//! daemon checks the caller's uid itself) and nothing changes.

mod apd_support;

use std::process::{Command, Output};

use apd_support::*;
use e2e::{command_exists, describe, BusPolicy, Host, HostOptions, SEED_HOST};

const NOBODY: &str = "65534";

fn as_nobody(program: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} as nobody: {e}"))
}

#[test]
fn a_caller_that_is_not_root_reads_but_cannot_change_anything() {
    need_fuse!();
    for tool in ["setpriv", "busctl", "gdbus"] {
        if !command_exists(tool) {
            eprintln!("skipped: {tool} is not installed");
            return;
        }
    }
    let host = Host::start_with(HostOptions {
        policy: BusPolicy::Shipped,
        ..HostOptions::new(SEED_HOST)
    });
    let addr = host.bus_address().to_string();
    // Root (this test) sets the scene through the shipped policy.
    let c = Client::new(&host);
    let m = c.manager();
    c.run(m.define(&guest1(true))).expect("root may define");
    c.run(m.set_masks(SEED_APMASK, SEED_AQMASK, true))
        .expect("root may set masks");
    c.run(m.start("guest1")).expect("root may start");
    // Defined, not started: a refused Start must not create it (apd takes
    // the lock and reads the mdev while the bus tells who called).
    c.run(m.define(&guest2(false))).expect("root may define");
    let apmask = host.read("bus/ap/apmask");
    let defs_before = std::fs::read_dir(host.config_dir().join("mdevs"))
        .expect("mdevs dir")
        .count();

    // Reads are open to everyone.
    let busctl = |args: &[&str]| {
        let mut all = vec!["--address", addr.as_str()];
        all.extend_from_slice(args);
        as_nobody("busctl", &all)
    };
    let o = busctl(&[
        "call",
        apbus::BUS_NAME,
        apbus::ROOT_PATH,
        apbus::MANAGER_INTERFACE,
        "GetStatus",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = busctl(&[
        "call",
        apbus::BUS_NAME,
        apbus::ROOT_PATH,
        apbus::MANAGER_INTERFACE,
        "ListMdevs",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(GUEST1_UUID),
        "{}",
        describe(&o)
    );
    let o = busctl(&[
        "get-property",
        apbus::BUS_NAME,
        apbus::ROOT_PATH,
        apbus::HOST_INTERFACE,
        "ApMask",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let path = apbus::mdev_path(GUEST1_UUID);
    let o = busctl(&[
        "get-property",
        apbus::BUS_NAME,
        &path,
        apbus::MDEV_INTERFACE,
        "GuestMatrix",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("05.0004"),
        "{}",
        describe(&o)
    );

    // Every change is refused by apd, naming the uid and what to do.
    let gdbus = |method: &str, args: &[&str]| {
        let dest = format!("{}.{method}", apbus::MANAGER_INTERFACE);
        let mut all = vec![
            "call",
            "--address",
            addr.as_str(),
            "--dest",
            apbus::BUS_NAME,
            "--object-path",
            apbus::ROOT_PATH,
            "--method",
            dest.as_str(),
        ];
        all.extend_from_slice(args);
        as_nobody("gdbus", &all)
    };
    let changes: &[(&str, &[&str])] = &[
        ("Stop", &["guest1"]),
        ("Start", &["guest1"]),
        ("Start", &["guest2"]),
        // Refused as such, not answered with what exists.
        ("Start", &["no-such-mdev"]),
        ("Undefine", &["guest1"]),
        ("Define", &["('', 'evil', false, (@au [], @au [], @au []))"]),
        ("Assign", &["guest1", "(@au [], @au [], [uint32 4])", ""]),
        ("Unassign", &["guest1", "([uint32 6], @au [], @au [])", ""]),
        ("SetMasks", &["--", "+5", "", "true"]),
        ("ConfigureAdapter", &["uint32 5", "false"]),
        ("Import", &["@a(ssb(auauau)) []"]),
        ("Apply", &["(false, '', '', @a(ssb(auauau)) [])", "true"]),
    ];
    for (method, args) in changes {
        let o = gdbus(method, args);
        let all = describe(&o);
        assert!(!o.status.success(), "{method} must be refused: {all}");
        assert!(
            all.contains("org.apctl.Apd1.Error.AccessDenied"),
            "{method}: {all}"
        );
        assert!(all.contains("uid 65534 may not"), "{method}: {all}");
        assert!(all.contains("run the command as root"), "{method}: {all}");
    }

    // Nothing changed.
    assert!(mdev_exists(&host, GUEST1_UUID));
    assert!(!mdev_exists(&host, GUEST2_UUID), "guest2 was not started");
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{GUEST1_UUID}/matrix")),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );
    assert_eq!(host.read("bus/ap/apmask"), apmask);
    assert_eq!(host.read("devices/ap/card05/config"), "1\n");
    assert_eq!(
        std::fs::read_dir(host.config_dir().join("mdevs"))
            .expect("mdevs dir")
            .count(),
        defs_before
    );

    // Only root may own the name (bus policy).
    let o = busctl(&[
        "call",
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "RequestName",
        "su",
        apbus::BUS_NAME,
        "4",
    ]);
    assert!(
        !o.status.success(),
        "nobody must not own the name: {}",
        describe(&o)
    );
    // apd keeps serving.
    c.run(m.get_status()).expect("still serving");
}
