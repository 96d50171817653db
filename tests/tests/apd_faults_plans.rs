//! Kernel faults in the middle of the two long write sequences: an `apply`
//! and a boot restore (the single commands are in apd_faults.rs).
//!
//! apply: every attribute its plan writes fails once with EBUSY, EIO,
//! ENODEV or ENXIO (`.apsim/inject`): the apply is refused in one sentence
//! naming the step, the attribute and the kernel's reason, and the whole
//! sysfs tree and the configuration directory are exactly as before; a
//! rollback that fails too is reported as such, naming what is left.
//!
//! Boot restore: every attribute one autostart mdev's start writes fails
//! once at boot: that mdev is reported (status) with the kernel's reason
//! and rolled back, the others start; a failed rollback names the mdev
//! left behind.

mod apctl_support;

use apctl_support::*;
use e2e::{assert_unchanged, describe, snapshot, Host, SEED_TWO_GUESTS};
use serde_json::Value;

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2: &str = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e";
const G3: &str = "33333333-1c2f-4a8b-9d6e-0f1a2b3c4d5e";
const CREATE: &str = "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
const ERRNOS: [(&str, &str); 4] = [
    ("EBUSY", "Device or resource busy"),
    ("EIO", "Input/output error"),
    ("ENODEV", "No such device"),
    ("ENXIO", "No such device or address"),
];

/// Adapter 7 for vfio_ap, domain 0x47 moves from guest2 to guest1, guest2
/// gets a control domain, guest3 is new (created and assigned).
const AFTER: &str = r#"
[masks]
vfio_adapters = [5, 6, 7]
vfio_domains = [4, 0x47, 0xab, 0xff]

[[mdev]]
uuid = "62177883-f1bb-47f0-914d-32a22e3a8804"
name = "guest1"
autostart = true
adapters = [5, 6]
domains = [4, 0x47, 0xab]
control_domains = []

[[mdev]]
uuid = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e"
name = "guest2"
autostart = true
adapters = [5]
domains = [0xff]
control_domains = [0xff]

[[mdev]]
uuid = "33333333-1c2f-4a8b-9d6e-0f1a2b3c4d5e"
name = "guest3"
autostart = true
adapters = [7]
domains = [0x47]
control_domains = [4]
"#;

/// The injections that make the kernel refuse writes to `path` with
/// `errno`, `count` times: for an assignment, the same mdev's `ap_config`
/// too, which apd writes for an mdev it has just created (its ids then go
/// one at a time, and meet the refusal at `path`).
fn refusing(path: &str, errno: &str, count: u32) -> Vec<String> {
    let mut faults = vec![format!("{path} {errno} {count}")];
    if let Some((dir, attr)) = path.rsplit_once('/') {
        if attr.starts_with("assign_") {
            faults.push(format!("{dir}/ap_config {errno} {count}"));
        }
    }
    faults
}

fn inject(host: &Host, faults: &[String]) {
    for f in faults {
        host.control("inject", f);
    }
}

fn write_state(host: &Host, name: &str, text: &str) -> String {
    let path = host.dir().join(name);
    std::fs::write(&path, text).expect("write the desired-state file");
    path.display().to_string()
}

/// The attribute one step of `apply --json --dry-run` writes (None: a
/// file step). A mask step writes apmask here (only adapters change).
fn attribute(step: &Value) -> Option<String> {
    let action = step["action"].as_str().unwrap_or_default();
    let uuid = step["uuid"].as_str().unwrap_or_default();
    match action {
        "set-masks" => Some("bus/ap/apmask".to_string()),
        "start" => Some(CREATE.to_string()),
        "stop" => Some(format!("devices/vfio_ap/matrix/{uuid}/remove")),
        a if a.starts_with("assign-") || a.starts_with("unassign-") => {
            let (verb, kind) = a.split_once('-').unwrap_or_default();
            Some(format!(
                "devices/vfio_ap/matrix/{uuid}/{verb}_{}",
                kind.replace('-', "_")
            ))
        }
        _ => None,
    }
}

#[test]
fn a_fault_at_every_write_of_an_apply_is_refused_with_its_reason_and_rolled_back() {
    let Some(host) = seed_host() else { return };
    host.apctl_ok(&["apply", &write_state(&host, "before.toml", SEED_TWO_GUESTS)]);
    let file = write_state(&host, "after.toml", AFTER);
    let plan = host.apctl_json(&["apply", "--dry-run", &file]);
    let steps = plan["steps"].as_array().expect("steps").clone();
    // Each attribute once: a fault fails its first write in the plan.
    let mut targets: Vec<(usize, String)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if let Some(a) = attribute(s) {
            if !targets.iter().any(|(_, t)| *t == a) {
                targets.push((i + 1, a));
            }
        }
    }
    assert!(targets.len() >= 8, "{targets:?}");
    let mut refused = 0;
    for (index, path) in &targets {
        for (errno, text) in ERRNOS {
            let before = snapshot(&host);
            inject(&host, &refusing(path, errno, 1));
            let out = host.apctl(&["apply", &file]);
            host.control("inject", "clear");
            assert_eq!(
                out.status.code(),
                Some(1),
                "{path} {errno}: {}",
                describe(&out)
            );
            let err = stderr(&out);
            assert!(
                err.starts_with("apctl: ")
                    && err.contains(&format!("step {index} of {} failed (", steps.len()))
                    && err.contains(&format!("{path}: {text} ({errno})"))
                    && (err.contains("rolled back") || err.contains("first step"))
                    && err.trim_end().lines().count() == 1,
                "a fault on {path} ({errno}) at step {index}: {err}"
            );
            assert_unchanged(&before, &snapshot(&host), &format!("{errno} on {path}"));
            refused += 1;
        }
    }
    // The faults used up, the same file applies.
    host.apctl_ok(&["apply", &file]);
    let again = host.apctl_json(&["apply", "--dry-run", &file]);
    assert_eq!(again["steps"], Value::Array(Vec::new()), "{again:#}");
    eprintln!(
        "e2e: {refused} faults at {} attributes of a {}-step apply, each refused and rolled back",
        targets.len(),
        steps.len()
    );
}

#[test]
fn an_apply_whose_rollback_fails_too_says_what_is_left() {
    let Some(host) = seed_host() else { return };
    host.apctl_ok(&["apply", &write_state(&host, "before.toml", SEED_TWO_GUESTS)]);
    let file = write_state(&host, "after.toml", AFTER);
    // guest3's domain fails; undoing its create (a remove) fails too.
    inject(
        &host,
        &refusing(
            &format!("devices/vfio_ap/matrix/{G3}/assign_domain"),
            "EIO",
            1,
        ),
    );
    inject(
        &host,
        &refusing(&format!("devices/vfio_ap/matrix/{G3}/remove"), "EBUSY", 1),
    );
    let out = host.apctl(&["apply", &file]);
    host.control("inject", "clear");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Input/output error (EIO)")
            && err.contains("the rollback was incomplete")
            && err.contains(&format!("could not remove the created mdev {G3}"))
            && err.contains("(EBUSY)"),
        "{err}"
    );
    // What is left is there to see, and the admin can stop it.
    let list = host.apctl_json(&["list"]);
    let left = list
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["uuid"] == G3)
        .unwrap_or_else(|| panic!("guest3 is left and listed: {list:#}"));
    assert_eq!(left["active"], true, "{left:#}");
    host.apctl_ok(&["stop", G3]);
    // Everything else was undone: guest2 keeps 0x47, guest1 does not have it.
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{G2}/matrix")),
        "05.0047\n05.00ff\n"
    );
}

/// guest1, guest2 and guest3 autostart on the seed host, then a reboot
/// with `faults` injected before apd starts; returns apd's status.
fn reboot_with(host: &mut Host, faults: &[String]) -> Value {
    host.stop_apd();
    host.restart_apsim();
    // A fresh kernel has no injections left.
    inject(host, faults);
    host.start_apd();
    host.apctl_json(&["status"])
}

fn restore_host() -> Option<Host> {
    let host = seed_host()?;
    host.apctl_ok(&["apply", &write_state(&host, "before.toml", SEED_TWO_GUESTS)]);
    host.apctl_ok(&[
        "define", "--uuid", G3, "--name", "guest3", "--auto", "-a", "7", "-d", "4", "-c", "0x47",
    ]);
    host.apctl_ok(&["masks", "--apmask", "-7", "--persistent"]);
    host.apctl_ok(&["start", "guest3"]);
    Some(host)
}

fn matrix(host: &Host, uuid: &str) -> Option<String> {
    std::fs::read_to_string(
        host.sysfs()
            .join(format!("devices/vfio_ap/matrix/{uuid}/ap_config")),
    )
    .ok()
}

#[test]
fn a_fault_in_a_boot_restore_fails_that_mdev_only_with_the_kernels_reason() {
    let Some(mut host) = restore_host() else {
        return;
    };
    let want: Vec<Option<String>> = [G1, G2, G3].iter().map(|u| matrix(&host, u)).collect();
    let mut reported = 0;
    for attr in ["assign_adapter", "assign_domain", "assign_control_domain"] {
        for (errno, text) in ERRNOS {
            let path = format!("devices/vfio_ap/matrix/{G3}/{attr}");
            // Every attempt fails: the boot's, and the retries that the
            // host's changes after it (the other starts) bring.
            let status = reboot_with(&mut host, &refusing(&path, errno, 100));
            let write = match attr {
                "assign_adapter" => "assign adapter 7",
                "assign_domain" => "assign domain 0x04",
                _ => "assign control domain 0x47",
            };
            let reason =
                format!("cannot start guest3: the kernel refused to {write}: {text} ({errno})");
            let failures = status["start_failures"].as_array().expect("start_failures");
            assert_eq!(failures.len(), 1, "{attr} {errno}: {status:#}");
            assert_eq!(failures[0]["uuid"], G3, "{status:#}");
            assert_eq!(failures[0]["error"], reason.as_str(), "{attr} {errno}");
            // guest3 rolled back whole (a retry may be under way); the
            // others started.
            host.wait_for("guest3 to be rolled back", || matrix(&host, G3).is_none());
            assert_eq!(matrix(&host, G1), want[0]);
            assert_eq!(matrix(&host, G2), want[1]);
            reported += 1;
        }
    }
    // A fault on the create of the first mdev restored (once): it alone
    // fails, with the kernel's reason. The others' starts change the host,
    // so a retry after READY may already have started it when status asks:
    // apd's log says the failure either way.
    let reason =
        "cannot start guest3: the kernel refused to create the mdev: Input/output error (EIO)";
    let logged = format!("automatic start failed: {reason}");
    let said = |host: &Host| host.apd_log().matches(&logged).count();
    let before = said(&host);
    let status = reboot_with(&mut host, &[format!("{CREATE} EIO")]);
    assert_eq!(said(&host), before + 1, "{}", host.apd_log());
    let failures = status["start_failures"].as_array().expect("start_failures");
    assert!(failures.len() <= 1, "{status:#}");
    if let Some(f) = failures.first() {
        assert_eq!(f["uuid"], G3, "{status:#}");
        assert_eq!(f["error"], reason);
    }
    assert_eq!(matrix(&host, G1), want[0]);
    assert_eq!(matrix(&host, G2), want[1]);
    // With the faults gone, the next boot restores all three exactly.
    host.control("inject", "clear");
    reboot_with(&mut host, &[]);
    let now: Vec<Option<String>> = [G1, G2, G3].iter().map(|u| matrix(&host, u)).collect();
    assert_eq!(now, want);
    eprintln!("e2e: {reported} faults in a boot restore, each reported and rolled back");
}

#[test]
fn a_boot_restore_whose_rollback_fails_names_the_mdev_left() {
    let Some(mut host) = restore_host() else {
        return;
    };
    let dir = format!("devices/vfio_ap/matrix/{G3}");
    let mut faults = refusing(&format!("{dir}/assign_domain"), "EIO", 1);
    faults.extend(refusing(&format!("{dir}/remove"), "EBUSY", 1));
    let status = reboot_with(&mut host, &faults);
    // A change of the host after the boot (a domain joins the LPAR) is
    // followed and retries failed starts: the report must stay.
    let queues = status["queues"].as_u64().expect("queues");
    host.control("lpar", "add domain 0x20");
    host.wait_for("apd to follow the new domain", || {
        host.apctl_json(&["status"])["queues"].as_u64() == Some(queues + 7)
    });
    // A change takes the writer: after the retry the uevents brought.
    host.apctl_ok(&["config", "1", "on"]);
    let status = host.apctl_json(&["status"]);
    let failures = status["start_failures"].as_array().expect("start_failures");
    assert_eq!(failures.len(), 1, "{status:#}");
    let error = failures[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Input/output error (EIO)")
            && error.contains("undoing the earlier writes failed too")
            && error.contains(&format!("could not remove the created mdev {G3}"))
            && error.contains("(EBUSY)"),
        "{error}"
    );
    assert!(matrix(&host, G3).is_some(), "the mdev left is there to see");
    // Stopped by the admin, it is started again by the next retry or boot.
    host.apctl_ok(&["stop", "guest3"]);
    reboot_with(&mut host, &[]);
    assert!(matrix(&host, G3).is_some());
    assert!(matrix(&host, G1).is_some() && matrix(&host, G2).is_some());
}
