//! apctl end to end on the seed host (private dbus-daemon, apsim over FUSE,
//! apd, apctl as separate processes): the vfio-ap documentation's scenario
//! (masks `-5,-6` / `-4,-0x47,-0xab,-0xff`, Guest1 adapters 5,6 domains
//! 4,0xab, Guest2 adapter 5 domains 0x47,0xff), the refusals with their exact
//! sentences and exit codes, `--json` parsed back field by field, and bad
//! input that changes nothing.

mod apctl_support;

use apctl_support::*;
use e2e::{describe, Host};
use serde_json::json;

/// The seed scenario up to both guests running; returns (guest1, guest2) UUIDs.
fn seed_guests(host: &Host) -> (String, String) {
    seed_masks(host, true);
    let g1 = host.apctl_ok(&[
        "define", "--name", "guest1", "--auto", "-a", "5,6", "-d", "4,0xab",
    ]);
    let g2 = host.apctl_ok(&[
        "define",
        "--name",
        "guest2",
        "--auto",
        "-a",
        "5",
        "-d",
        "0x47,0xff",
    ]);
    let (g1, g2) = (g1.trim().to_string(), g2.trim().to_string());
    for u in [&g1, &g2] {
        assert_eq!(u.len(), 36, "define prints the UUID alone: {u:?}");
        assert!(u.chars().all(|c| c.is_ascii_hexdigit() || c == '-'), "{u}");
    }
    host.apctl_ok(&["start", "guest1"]);
    host.apctl_ok(&["start", g2.as_str()]);
    (g1, g2)
}

#[test]
fn seed_scenario_with_json_checked_field_by_field() {
    let Some(host) = seed_host() else { return };

    // Before: every queue belongs to the host, no mdevs.
    let queues = host.apctl_json(&["queues"]);
    let queues = queues.as_array().expect("queues --json is an array");
    assert_eq!(queues.len(), 35, "7 adapters x 5 domains");
    assert!(queues.iter().all(|q| q["owner"] == "host"), "{queues:?}");
    assert_eq!(host.apctl_json(&["list"]), json!([]));

    let (g1, g2) = seed_guests(&host);

    // masks --json: live and persistent, and what goes to vfio_ap.
    let masks = host.apctl_json(&["masks"]);
    let apmask = format!("0xf9{}", "f".repeat(62));
    let aqmask = "0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe";
    assert_eq!(
        masks,
        json!({
            "apmask": apmask,
            "aqmask": aqmask,
            "persistent_apmask": apmask,
            "persistent_aqmask": aqmask,
            "vfio_adapters": [5, 6],
            "vfio_domains": [4, 0x47, 0xab, 0xff],
            "chzdev": null,
        })
    );
    assert_eq!(host.read("bus/ap/apmask"), format!("{apmask}\n"));

    // list --json, exactly the fields of design.md.
    let list = host.apctl_json(&["list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(
        mdev(&list, "guest1"),
        &json!({
            "uuid": g1,
            "name": "guest1",
            "defined": true,
            "active": true,
            "autostart": true,
            "adapters": [5, 6],
            "domains": [4, 0xab],
            "control_domains": [],
            "guest_matrix": ["05.0004", "05.00ab", "06.0004", "06.00ab"],
            "persistent": null,
        })
    );
    assert_eq!(
        mdev(&list, "guest2"),
        &json!({
            "uuid": g2,
            "name": "guest2",
            "defined": true,
            "active": true,
            "autostart": true,
            "adapters": [5],
            "domains": [0x47, 0xff],
            "control_domains": [],
            "guest_matrix": ["05.0047", "05.00ff"],
            "persistent": null,
        })
    );
    // The kernel agrees.
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{g1}/matrix")),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );

    // show --json: the list object plus one verdict per APQN.
    let show = host.apctl_json(&["show", "guest1"]);
    let mut without_apqns = show.clone();
    without_apqns
        .as_object_mut()
        .expect("object")
        .remove("apqns");
    assert_eq!(&without_apqns, mdev(&list, "guest1"));
    assert_eq!(
        show["apqns"],
        json!([
            {"apqn": "05.0004", "in_guest_matrix": true, "usable": true, "reason": null},
            {"apqn": "05.00ab", "in_guest_matrix": true, "usable": true, "reason": null},
            {"apqn": "06.0004", "in_guest_matrix": true, "usable": true, "reason": null},
            {"apqn": "06.00ab", "in_guest_matrix": true, "usable": true, "reason": null},
        ])
    );

    // The human views name the guests.
    let table = host.apctl_ok(&["list"]);
    assert!(table.starts_with("NAME "), "{table}");
    assert!(
        table.contains(&format!(
            "guest1  {g1}  yes      yes     yes        5,6       0x04,0xab"
        )),
        "{table}"
    );
    let queues = host.apctl_ok(&["queues", "--owner", "guest2"]);
    assert_eq!(queues.lines().count(), 3, "{queues}");
    assert!(
        queues.contains("05.0047") && queues.contains("05.00ff"),
        "{queues}"
    );
}

#[test]
fn seed_refusals_name_the_culprit_and_change_nothing() {
    let Some(host) = seed_host() else { return };
    let (g1, g2) = seed_guests(&host);
    let before = host.apctl_json(&["list"]);
    let masks_before = host.apctl_json(&["masks"]);

    // A queue held by another mdev: names guest1 and its UUID.
    assert_refused(
        &host.apctl(&["assign", "guest2", "-d", "0xab"]),
        &format!(
            "cannot assign domain 0xab to guest2: queue 05.00ab is already assigned to guest1 ({g1})"
        ),
    );
    // The same refusal by UUID and for the definition only.
    let out = host.apctl(&["assign", &g2, "-d", "4", "--persistent"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!("guest1 ({g1})")),
        "{}",
        describe(&out)
    );

    // A host-owned queue.
    assert_refused(
        &host.apctl(&["assign", "guest2", "-a", "1", "-d", "0"]),
        "cannot assign domain 0x00 to guest2: queue 01.0000 belongs to the host (adapter 1 set in apmask, domain 0x00 in aqmask); give it to vfio_ap with `apctl masks --apmask -1` or `apctl masks --aqmask -0x00`",
    );

    // A mask change that would give an assigned queue back to the host:
    // 05.0047 is the host's only when adapter 5 and domain 0x47 both are.
    assert_refused(
        &host.apctl(&["masks", "--apmask", "+5", "--aqmask", "+0x47"]),
        &format!(
            "cannot change the masks: queue 05.0047 is assigned to guest2 ({g2}) and would return to the host; unassign it from the mdev first, or keep the masks from giving it to the host"
        ),
    );
    let out = host.apctl(&["masks", "--apmask", "+5,+6", "--aqmask", "+4,+0xab"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!("guest1 ({g1})")),
        "{}",
        describe(&out)
    );

    // Unknown mdev.
    let out = host.apctl(&["show", "guest3"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(
        stderr(&out).starts_with("apctl: ") && stderr(&out).contains("guest3"),
        "{}",
        describe(&out)
    );
    for cmd in ["start", "stop", "undefine"] {
        let out = host.apctl(&[cmd, "guest3"]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", describe(&out));
    }
    // A name that is taken.
    let out = host.apctl(&["define", "--name", "guest1", "-a", "7", "-d", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("guest1"), "{}", describe(&out));

    assert_eq!(
        host.apctl_json(&["list"]),
        before,
        "a refusal changed an mdev"
    );
    assert_eq!(
        host.apctl_json(&["masks"]),
        masks_before,
        "a refusal changed the masks"
    );
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{g2}/matrix")),
        "05.0047\n05.00ff\n"
    );
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let Some(host) = seed_host() else { return };
    seed_guests(&host);
    let before = host.apctl_json(&["list"]);
    let masks_before = host.apctl_json(&["masks"]);
    let huge = "5,".repeat(20_000);
    let cases: Vec<Vec<&str>> = vec![
        vec!["assign", "guest1", "-a", "5,,6"],
        vec!["assign", "guest1", "-d", "0x"],
        vec!["assign", "guest1", "-d", "1-"],
        vec!["assign", "guest1", "-a", "300"],
        vec!["unassign", "guest1", "-c", "4-1"],
        vec!["assign", "guest1", "-a", &huge],
        vec!["define", "--name", "guest3", "-a", "5,,6"],
        vec!["define", "--name", "bad name", "-a", "7"],
        vec!["define", "--uuid", "1234", "-a", "7"],
        vec!["masks", "--apmask", "+1,2"],
        vec!["masks", "--aqmask", "0X12"],
        vec!["masks", "--apmask", "-5", "--aqmask", "-300"],
        vec!["config", "300", "off"],
        vec!["config", "6", "sideways"],
        vec!["assign", "guest1"],
        vec!["unknown-command"],
    ];
    for args in &cases {
        let out = host.apctl(args);
        let code = out.status.code();
        assert!(
            code == Some(1) || code == Some(2),
            "apctl {args:?}: {}",
            describe(&out)
        );
        assert_eq!(stdout(&out), "", "apctl {args:?}");
        let err = stderr(&out);
        assert!(
            !err.contains("panicked") && !err.contains("org.freedesktop"),
            "{err}"
        );
        assert!(
            err.len() < 400,
            "apctl {args:?}: a {}-byte message",
            err.len()
        );
    }
    assert_eq!(
        host.apctl_json(&["list"]),
        before,
        "bad input changed an mdev"
    );
    assert_eq!(
        host.apctl_json(&["masks"]),
        masks_before,
        "bad input changed the masks"
    );
    assert_eq!(host.read("devices/ap/card06/config"), "1\n");
}

/// `show` of a defined, inactive mdev says per APQN what a start would
/// meet now: the host holding a queue, another mdev holding one, or
/// nothing (then: start it).
#[test]
fn show_of_an_inactive_mdev_names_what_would_refuse_its_start() {
    let Some(host) = seed_host() else { return };
    let (g1, _) = seed_guests(&host);
    let g3 = host.apctl_ok(&["define", "--name", "guest3", "-a", "1,5", "-d", "0,4"]);
    let g3 = g3.trim();
    let show = host.apctl_json(&["show", "guest3"]);
    let reason = |apqn: &str| -> String {
        show["apqns"]
            .as_array()
            .expect("apqns")
            .iter()
            .find(|a| a["apqn"] == apqn)
            .unwrap_or_else(|| panic!("{apqn} in {show}"))["reason"]
            .as_str()
            .expect("reason")
            .to_string()
    };
    let who = format!("guest3 ({g3}) is not active");
    assert_eq!(
        reason("01.0000"),
        format!("{who}, and queue 01.0000 belongs to the host (adapter 1 is set in apmask and domain 0x00 in aqmask), so `apctl start guest3` would be refused; give it to vfio_ap with `apctl masks`")
    );
    assert_eq!(
        reason("05.0004"),
        format!("{who}, and queue 05.0004 is assigned to guest1 ({g1}), so `apctl start guest3` would be refused until that mdev gives it up")
    );
    assert_eq!(
        reason("01.0004"),
        format!("{who}; start it with `apctl start guest3`")
    );
    // And the start is refused as announced, changing nothing.
    let out = host.apctl(&["start", "guest3"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(!host
        .sysfs()
        .join(format!("devices/vfio_ap/matrix/{g3}"))
        .exists());
}
