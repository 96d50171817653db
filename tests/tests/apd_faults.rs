//! Kernel faults at every write of every changing command: the simulator
//! fails the next write to one attribute (`.apsim/inject`) with EBUSY, EIO,
//! ENODEV or ENXIO; the command must be refused with the kernel's reason
//! and leave the host and the definitions exactly as before (whole sysfs
//! and configuration snapshots). Every attribute a command could write is
//! tried; one it does not write lets it succeed, and the command is then
//! undone. A rollback that fails too is reported as such, naming the mdev
//! left behind; slow writes only make a command slow.

mod apctl_support;

use apctl_support::*;
use e2e::{assert_unchanged, describe, snapshot, Host};

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
const ERRNOS: [(&str, &str); 4] = [
    ("EBUSY", "Device or resource busy"),
    ("EIO", "Input/output error"),
    ("ENODEV", "No such device"),
    ("ENXIO", "No such device or address"),
];

fn attr(name: &str) -> String {
    format!("devices/vfio_ap/matrix/{G1}/{name}")
}

/// Every attribute an mdev command could write.
fn mdev_attrs() -> Vec<String> {
    let mut v: Vec<String> = [
        "assign_adapter",
        "assign_domain",
        "assign_control_domain",
        "unassign_adapter",
        "unassign_domain",
        "unassign_control_domain",
        "ap_config",
        "remove",
    ]
    .iter()
    .map(|a| attr(a))
    .collect();
    v.push(CREATE.to_string());
    v
}

/// A command, the attributes it may write, and how to undo it when a fault
/// on one of them did not touch it.
struct Case {
    what: &'static str,
    run: Vec<&'static str>,
    undo: Vec<Vec<&'static str>>,
    paths: Vec<String>,
}

fn cases() -> Vec<Case> {
    let masks = vec!["bus/ap/apmask".to_string(), "bus/ap/aqmask".to_string()];
    vec![
        Case {
            what: "start guest1",
            run: vec!["start", "guest1"],
            undo: vec![vec!["stop", "guest1"]],
            paths: mdev_attrs(),
        },
        Case {
            what: "assign a domain to the running guest1",
            run: vec!["assign", "guest1", "-d", "0x47"],
            undo: vec![vec!["unassign", "guest1", "-d", "0x47"]],
            paths: mdev_attrs(),
        },
        Case {
            what: "unassign an adapter from the running guest1",
            run: vec!["unassign", "guest1", "-a", "6"],
            undo: vec![vec!["assign", "guest1", "-a", "6"]],
            paths: mdev_attrs(),
        },
        Case {
            what: "assign a control domain to the running guest1",
            run: vec!["assign", "guest1", "-c", "0xff"],
            undo: vec![vec!["unassign", "guest1", "-c", "0xff"]],
            paths: mdev_attrs(),
        },
        Case {
            what: "stop guest1",
            run: vec!["stop", "guest1"],
            undo: vec![vec!["start", "guest1"]],
            paths: mdev_attrs(),
        },
        Case {
            what: "change both masks",
            run: vec!["masks", "--apmask", "-7", "--aqmask", "-0"],
            undo: vec![vec!["masks", "--apmask", "+7", "--aqmask", "+0"]],
            paths: masks,
        },
        Case {
            what: "configure adapter 6 off",
            run: vec!["config", "6", "off"],
            undo: vec![vec!["config", "6", "on"]],
            paths: vec!["devices/ap/card06/config".to_string()],
        },
    ]
}

/// The seed host with the masks set, guest1 defined and running, guest2
/// defined.
fn setup() -> Option<Host> {
    let host = seed_host()?;
    host.apctl_ok(&[
        "masks",
        "--apmask",
        "-5,-6",
        "--aqmask",
        "-4,-0x47,-0xab,-0xff",
    ]);
    host.apctl_ok(&[
        "define", "--uuid", G1, "--name", "guest1", "--manual", "-a", "5,6", "-d", "4,0xab",
    ]);
    host.apctl_ok(&["define", "--name", "guest2", "-a", "5", "-d", "0xff"]);
    host.apctl_ok(&["start", "guest1"]);
    Some(host)
}

/// Brings the state a case needs (guest1 stopped for the start case).
fn prepare(host: &Host, case: &Case) {
    if case.run[0] == "start" {
        host.apctl_ok(&["stop", "guest1"]);
    }
}

fn restore(host: &Host, case: &Case) {
    if case.run[0] == "start" {
        host.apctl_ok(&["start", "guest1"]);
    }
}

#[test]
fn a_fault_at_any_write_is_refused_with_its_reason_and_changes_nothing() {
    let Some(host) = setup() else { return };
    let mut refused = 0;
    let mut untouched = 0;
    for case in cases() {
        prepare(&host, &case);
        for path in &case.paths {
            for (errno, text) in ERRNOS {
                let before = snapshot(&host);
                host.control("inject", &format!("{path} {errno}"));
                let out = host.apctl(&case.run);
                host.control("inject", "clear");
                match out.status.code() {
                    Some(1) => {
                        refused += 1;
                        let err = stderr(&out);
                        // The attribute, by its file name or in words
                        // (`assign_adapter`: "assign adapter 5").
                        let file = path.rsplit('/').next().unwrap_or(path);
                        let names_it = err.contains(file) || err.contains(&file.replace('_', " "));
                        assert!(
                            err.contains(&format!("{text} ({errno})")) && names_it,
                            "{}: a fault on {path} ({errno}) must be named: {err}",
                            case.what
                        );
                        assert!(
                            err.starts_with("apctl: ") && err.trim_end().lines().count() == 1,
                            "one sentence: {err}"
                        );
                        assert_unchanged(
                            &before,
                            &snapshot(&host),
                            &format!("{} with {errno} on {path}", case.what),
                        );
                    }
                    Some(0) => {
                        // The command does not write there: it went
                        // through; undo it for the next fault.
                        untouched += 1;
                        for undo in &case.undo {
                            host.apctl_ok(undo);
                        }
                        assert_unchanged(
                            &before,
                            &snapshot(&host),
                            &format!("{} then its undo", case.what),
                        );
                        // The other errnos would not be met either.
                        break;
                    }
                    _ => panic!("{}: {}", case.what, describe(&out)),
                }
            }
        }
        restore(&host, &case);
    }
    eprintln!(
        "e2e: {refused} faults refused and rolled back; {untouched} attributes the commands do not write"
    );
    // Each command met at least one fault on a write it makes.
    assert!(refused >= cases().len() * ERRNOS.len(), "{refused}");
}

#[test]
fn a_rollback_that_fails_too_is_reported_naming_what_is_left() {
    let Some(host) = setup() else { return };
    host.apctl_ok(&["stop", "guest1"]);
    // The start fails on its domains; the undo of the create (a remove)
    // fails too: the mdev is left, and the sentence must say so.
    host.control("inject", &format!("{} EIO", attr("assign_domain")));
    host.control("inject", &format!("{} EIO", attr("ap_config")));
    host.control("inject", &format!("{} EBUSY", attr("remove")));
    let out = host.apctl(&["start", "guest1"]);
    host.control("inject", "clear");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Input/output error (EIO)"),
        "the first fault is named: {err}"
    );
    assert!(
        (err.contains("rollback was incomplete")
            || err.contains("undoing the earlier writes failed"))
            && err.contains(G1)
            && err.contains("(EBUSY)"),
        "the failed rollback is reported, naming the mdev left: {err}"
    );
    // What is left is shown as it is, never hidden: the mdev exists.
    assert!(host
        .sysfs()
        .join(format!("devices/vfio_ap/matrix/{G1}"))
        .exists());
    // And it can be cleaned up by the admin.
    host.apctl_ok(&["stop", "guest1"]);
    host.apctl_ok(&["start", "guest1"]);
}

#[test]
fn slow_writes_make_a_command_slow_not_wrong() {
    let Some(host) = setup() else { return };
    host.apctl_ok(&["stop", "guest1"]);
    for a in ["assign_adapter", "assign_domain", "ap_config"] {
        host.control("delay", &format!("{} 150", attr(a)));
    }
    host.apctl_ok(&["start", "guest1"]);
    for a in ["assign_adapter", "assign_domain", "ap_config"] {
        host.control("delay", &format!("{} 0", attr(a)));
    }
    let m = host.read(&format!("devices/vfio_ap/matrix/{G1}/matrix"));
    assert_eq!(m, "05.0004\n05.00ab\n06.0004\n06.00ab\n");
}
