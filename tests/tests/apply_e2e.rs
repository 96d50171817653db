//! `apctl apply` end to end on the seed host (private dbus-daemon, apsim
//! over FUSE, apd, apctl as separate processes): from nothing to the seed
//! documents' two-guest setup, moving a domain, a refused mask change, a
//! kernel error injected in the middle (host and definitions exactly as
//! before, compared over full sysfs snapshots), and a second apply that
//! changes nothing.

mod apctl_support;

use apctl_support::*;
use e2e::{assert_unchanged, describe, snapshot, Host, SEED_TWO_GUESTS};
use serde_json::Value;

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2: &str = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e";

/// Domain 0x47 moves from guest2 to guest1 (guest1 matched by name).
const MOVED: &str = r#"
[masks]
vfio_adapters = [5, 6]
vfio_domains = [4, 0x47, 0xab, 0xff]

[[mdev]]
name = "guest1"
autostart = true
adapters = [5, 6]
domains = [4, 0x47, 0xab]

[[mdev]]
uuid = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e"
name = "guest2"
autostart = true
adapters = [5]
domains = [0xff]
"#;

/// Takes adapter 5 and domain 4 back for the host while guest1 holds 05.0004.
const TAKE_BACK: &str = r#"
[masks]
vfio_adapters = [6]
vfio_domains = [0x47, 0xab, 0xff]
"#;

fn write_state(host: &Host, name: &str, text: &str) -> String {
    let path = host.dir().join(name);
    std::fs::write(&path, text).expect("write the desired-state file");
    path.display().to_string()
}

fn matrix(host: &Host, uuid: &str) -> String {
    host.read(&format!("devices/vfio_ap/matrix/{uuid}/matrix"))
}

/// (action, target) of each step of `apctl --json apply [--dry-run] FILE`.
fn steps(plan: &Value) -> Vec<(String, String)> {
    plan["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps array in {plan}"))
        .iter()
        .map(|s| {
            (
                s["action"].as_str().unwrap_or_default().to_string(),
                s["target"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn mask_hex(ids: &[u8]) -> String {
    let mut words = [u64::MAX; 4];
    for id in ids {
        let i = usize::from(*id);
        words[i / 64] &= !(1u64 << (63 - i % 64));
    }
    format!(
        "0x{:016x}{:016x}{:016x}{:016x}\n",
        words[0], words[1], words[2], words[3]
    )
}

fn apply_two_guests(host: &Host) -> String {
    let file = write_state(host, "two-guests.toml", SEED_TWO_GUESTS);
    host.apctl_ok(&["apply", &file]);
    file
}

#[test]
fn from_nothing_to_two_guests_then_a_second_apply_is_a_no_op() {
    let Some(host) = seed_host() else { return };
    let file = write_state(&host, "two-guests.toml", SEED_TWO_GUESTS);

    // --dry-run shows the plan and changes nothing.
    let before = snapshot(&host);
    let plan = host.apctl_json(&["apply", "--dry-run", &file]);
    assert_unchanged(&before, &snapshot(&host), "apply --dry-run");
    let s = |a: &str, t: &str| (a.to_string(), t.to_string());
    assert_eq!(
        steps(&plan),
        vec![
            s("define", "guest1"),
            s("define", "guest2"),
            s("store-masks", "host"),
            s("set-masks", "host"),
            s("start", "guest1"),
            s("assign-adapter", "guest1"),
            s("assign-adapter", "guest1"),
            s("assign-domain", "guest1"),
            s("assign-domain", "guest1"),
            s("start", "guest2"),
            s("assign-adapter", "guest2"),
            s("assign-domain", "guest2"),
            s("assign-domain", "guest2"),
        ],
        "{plan:#}"
    );
    assert_eq!(plan["steps"][4]["uuid"], G1);
    assert_eq!(
        plan["steps"][3]["detail"],
        "change the live host masks: give adapters 5,6 and domains 0x04,0x47,0xab,0xff to vfio_ap"
    );
    let human = host.apctl_ok(&["apply", "--dry-run", &file]);
    assert!(human.contains("dry run"), "{human}");
    assert!(
        human.contains(&format!("assign domain 0xab to guest1 ({G1})")),
        "{human}"
    );

    // The real thing.
    let out = host.apctl_ok(&["apply", &file]);
    assert!(out.contains("Applied"), "{out}");
    assert_eq!(host.read("bus/ap/apmask"), mask_hex(&[5, 6]));
    assert_eq!(host.read("bus/ap/aqmask"), mask_hex(&[4, 0x47, 0xab, 0xff]));
    assert_eq!(matrix(&host, G1), "05.0004\n05.00ab\n06.0004\n06.00ab\n");
    assert_eq!(matrix(&host, G2), "05.0047\n05.00ff\n");
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{G2}/guest_matrix")),
        "05.0047\n05.00ff\n"
    );
    let list = host.apctl_json(&["list"]);
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter(|m| m["defined"] == true && m["active"] == true && m["autostart"] == true)
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{list:#}");
    assert!(host.config_dir().join(format!("mdevs/{G1}.toml")).is_file());
    assert!(host.config_dir().join("apd.toml").is_file());

    // A second apply: empty plan, exit 0, nothing written.
    let before = snapshot(&host);
    let again = host.apctl_json(&["apply", &file]);
    assert_eq!(again["steps"], Value::Array(Vec::new()), "{again:#}");
    let human = host.apctl_ok(&["apply", &file]);
    assert!(human.contains("Nothing to do"), "{human}");
    assert_unchanged(&before, &snapshot(&host), "second apply");

    // What export prints applies as a no-op too.
    let exported = host.apctl_ok(&["export"]);
    let file = write_state(&host, "exported.toml", &exported);
    let again = host.apctl_json(&["apply", &file]);
    assert_eq!(again["steps"], Value::Array(Vec::new()), "{again:#}");
    assert_unchanged(&before, &snapshot(&host), "apply of the export");
}

#[test]
fn moving_a_domain_from_guest2_to_guest1() {
    let Some(host) = seed_host() else { return };
    apply_two_guests(&host);
    let file = write_state(&host, "moved.toml", MOVED);
    let plan = host.apctl_json(&["apply", &file]);
    let s = |a: &str, t: &str| (a.to_string(), t.to_string());
    assert_eq!(
        steps(&plan),
        vec![
            s("redefine", "guest1"),
            s("redefine", "guest2"),
            s("unassign-domain", "guest2"),
            s("assign-domain", "guest1"),
        ],
        "{plan:#}"
    );
    assert_eq!(
        matrix(&host, G1),
        "05.0004\n05.0047\n05.00ab\n06.0004\n06.0047\n06.00ab\n"
    );
    assert_eq!(matrix(&host, G2), "05.00ff\n");
    let def = std::fs::read_to_string(host.config_dir().join(format!("mdevs/{G1}.toml")))
        .expect("guest1's definition");
    assert!(def.contains("domains = [4, 0x47, 0xab]"), "{def}");
    // And back: the same check the other way round.
    let back = host.apctl_json(&["apply", &write_state(&host, "back.toml", SEED_TWO_GUESTS)]);
    assert_eq!(
        steps(&back)[2..],
        [s("unassign-domain", "guest1"), s("assign-domain", "guest2")]
    );
    assert_eq!(matrix(&host, G2), "05.0047\n05.00ff\n");
}

#[test]
fn a_mask_change_that_needs_a_queue_in_use_is_refused_before_any_write() {
    let Some(host) = seed_host() else { return };
    apply_two_guests(&host);
    let file = write_state(&host, "take-back.toml", TAKE_BACK);
    let before = snapshot(&host);
    for args in [vec!["apply", "--dry-run", &file], vec!["apply", &file]] {
        let out = host.apctl(&args);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert_eq!(stdout(&out), "", "{}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("apctl: cannot apply the desired state: "),
            "{err}"
        );
        assert!(err.contains("05.0004"), "{err}");
        assert!(err.contains(&format!("guest1 ({G1})")), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_unchanged(&before, &snapshot(&host), "refused apply");
    // `check FILE` lists the same refusal, exit 1.
    let out = host.apctl(&["check", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stdout(&out).contains("05.0004"), "{}", describe(&out));
}

#[test]
fn an_injected_kernel_error_mid_apply_leaves_host_and_definitions_as_before() {
    let Some(host) = seed_host() else { return };
    apply_two_guests(&host);
    // MOVED plus a new autostart guest3 on adapter 7: several steps before
    // and after guest1's assign of domain 0x47.
    let with_guest3 = format!(
        "{MOVED}\n[[mdev]]\nname = \"guest3\"\nautostart = true\nadapters = [7]\ndomains = [0x47]\n"
    )
    .replace("vfio_adapters = [5, 6]", "vfio_adapters = [5, 6, 7]");
    let file = write_state(&host, "moved-plus.toml", &with_guest3);
    let plan = host.apctl_json(&["apply", "--dry-run", &file]);
    let all = steps(&plan);
    let failing = all
        .iter()
        .position(|s| *s == ("assign-domain".to_string(), "guest1".to_string()))
        .expect("guest1 gets domain 0x47");
    assert!(failing > 3 && failing + 1 < all.len(), "{all:?}");

    let before = snapshot(&host);
    let attr = format!("devices/vfio_ap/matrix/{G1}/assign_domain");
    host.control("inject", &format!("{attr} EIO"));
    let out = host.apctl(&["apply", &file]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "step {} of {} failed (assign domain 0x47 to guest1 ({G1})): cannot write \"0x47\" to {attr}: Input/output error (EIO)",
            failing + 1,
            all.len()
        )),
        "{err}"
    );
    assert!(err.contains("rolled back"), "{err}");
    assert_unchanged(&before, &snapshot(&host), "rolled-back apply");
    // apd's view agrees: guest3 is not defined, guest2 still has 0x47.
    let list = host.apctl_json(&["list"]);
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .all(|m| m["name"] != "guest3"),
        "{list:#}"
    );
    // With the injection used up, the same file applies.
    host.apctl_ok(&["apply", &file]);
    assert_eq!(matrix(&host, G2), "05.00ff\n");
    assert!(matrix(&host, G1).contains("05.0047"));
}
