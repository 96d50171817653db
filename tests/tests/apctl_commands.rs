//! Every apctl command end to end (private dbus-daemon, apsim over FUSE,
//! apd, apctl): status, list filters, define/undefine/start/stop,
//! assign/unassign with --live/--persistent, masks, queues filters, config,
//! check, export/apply, import-mdevctl, monitor, completion words, access
//! for non-root users, and the hint when apd is gone.

mod apctl_support;

use apctl_support::*;
use e2e::{describe, liveness_timeout, Host, SEED_HOST};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::sync::mpsc;

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";

/// Masks, Guest1 (fixed UUID, autostart) and Guest2 (manual), both running.
fn seed(host: &Host) -> String {
    seed_masks(host, true);
    let out = host.apctl_ok(&[
        "define", "--uuid", G1, "--name", "guest1", "--auto", "-a", "5,6", "-d", "4,0xab",
    ]);
    assert_eq!(out, format!("{G1}\n"));
    let g2 = host.apctl_ok(&[
        "define",
        "--name",
        "guest2",
        "--manual",
        "-a",
        "5",
        "-d",
        "0x47,0xff",
    ]);
    host.apctl_ok(&["start", "guest1"]);
    host.apctl_ok(&["start", "guest2"]);
    g2.trim().to_string()
}

#[test]
fn status_list_filters_and_lifecycle() {
    let Some(host) = seed_host() else { return };
    let status = host.apctl_json(&["status"]);
    assert_eq!(status["adapters"], 7);
    assert_eq!(status["queues"], 35);
    assert_eq!(status["defined"], 0);
    assert_eq!(status["vfio_ap_loaded"], true);
    assert_eq!(status["load_errors"], json!([]));
    assert_eq!(status["persistent_apmask"], Value::Null);
    let text = host.apctl_ok(&["status"]);
    assert!(text.starts_with("apd "), "{text}");

    let g2 = seed(&host);
    let status = host.apctl_json(&["status"]);
    assert_eq!(
        (status["defined"].clone(), status["active"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(status["queues_assigned"], 6);

    // An mdev made by another tool: listed, not defined.
    let foreign = "2c4b1a6e-93f0-4c1e-8f0a-5d6b7c8d9e0f";
    host.write(
        "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
        foreign,
    )
    .expect("create an mdev behind apd's back");
    host.wait_for("apd to see the foreign mdev", || {
        host.apctl_json(&["list"]).as_array().map(Vec::len) == Some(3)
    });
    let list = host.apctl_json(&["list"]);
    let f = list
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["uuid"] == foreign)
        .expect("foreign mdev listed");
    assert_eq!(f["name"], Value::Null);
    assert_eq!(
        (f["defined"].clone(), f["active"].clone()),
        (json!(false), json!(true))
    );

    // Filters.
    let defined = host.apctl_json(&["list", "--defined"]);
    assert_eq!(defined.as_array().map(Vec::len), Some(2));
    host.apctl_ok(&["stop", "guest2"]);
    let active = host.apctl_json(&["list", "--active"]);
    let names: Vec<&Value> = active
        .as_array()
        .expect("array")
        .iter()
        .map(|m| &m["uuid"])
        .collect();
    assert_eq!(names.len(), 2, "{active}");
    assert!(!names.contains(&&json!(g2)), "{active}");

    // Stopped: the definition's lists, no guest matrix.
    let list = host.apctl_json(&["list"]);
    let guest2 = mdev(&list, "guest2");
    assert_eq!(guest2["active"], false);
    assert_eq!(guest2["autostart"], false);
    assert_eq!(guest2["domains"], json!([0x47, 0xff]));
    assert_eq!(guest2["guest_matrix"], json!([]));
    assert!(!host
        .sysfs()
        .join(format!("devices/vfio_ap/matrix/{g2}"))
        .exists());

    // Undefine keeps an active mdev running (guest1), forgets a stopped one.
    host.apctl_ok(&["undefine", "guest1"]);
    host.apctl_ok(&["undefine", &g2]);
    let list = host.apctl_json(&["list"]);
    assert!(by_name(&list, "guest2").is_none(), "{list}");
    let g1 = list
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["uuid"] == G1)
        .expect("guest1 still active");
    assert_eq!(
        (g1["defined"].clone(), g1["active"].clone()),
        (json!(false), json!(true))
    );
    assert!(host
        .sysfs()
        .join(format!("devices/vfio_ap/matrix/{G1}"))
        .exists());
    let out = host.apctl(&["start", "guest2"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
}

#[test]
fn assign_scopes_and_the_persistent_object() {
    let Some(host) = seed_host() else { return };
    seed(&host);
    // Live only: the definition keeps adapter 6.
    host.apctl_ok(&["unassign", "guest1", "-a", "6", "--live"]);
    let show = host.apctl_json(&["show", "guest1"]);
    assert_eq!(show["adapters"], json!([5]));
    assert_eq!(show["guest_matrix"], json!(["05.0004", "05.00ab"]));
    assert_eq!(
        show["persistent"],
        json!({"adapters": [5, 6], "domains": [4, 0xab], "control_domains": []})
    );
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{G1}/matrix")),
        "05.0004\n05.00ab\n"
    );
    let text = host.apctl_ok(&["show", "guest1"]);
    assert!(text.contains("Definition:"), "{text}");
    // Back, live only: equal again, persistent null.
    host.apctl_ok(&["assign", "guest1", "-a", "6", "--live"]);
    assert_eq!(
        host.apctl_json(&["show", "guest1"])["persistent"],
        Value::Null
    );
    // Persistent only: live unchanged.
    host.apctl_ok(&["assign", "guest1", "-c", "0x47", "--persistent"]);
    let show = host.apctl_json(&["show", "guest1"]);
    assert_eq!(show["control_domains"], json!([]));
    assert_eq!(show["persistent"]["control_domains"], json!([0x47]));
    // Both (default).
    host.apctl_ok(&["assign", "guest1", "-c", "0x47"]);
    let show = host.apctl_json(&["show", "guest1"]);
    assert_eq!(show["control_domains"], json!([0x47]));
    assert_eq!(show["persistent"], Value::Null);
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{G1}/control_domains")),
        "0047\n"
    );
    host.apctl_ok(&["unassign", "guest1", "-c", "0x47", "-d", "0xab"]);
    let show = host.apctl_json(&["show", "guest1"]);
    assert_eq!(show["domains"], json!([4]));
    assert_eq!(show["control_domains"], json!([]));
    // --live on an inactive mdev is refused.
    host.apctl_ok(&["stop", "guest2"]);
    let out = host.apctl(&["assign", "guest2", "-d", "0", "--live"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", describe(&out));
}

#[test]
fn masks_queues_and_config() {
    let Some(host) = seed_host() else { return };
    // Masks alone, not persistent.
    let m = host.apctl_json(&["masks", "--apmask", "-5,-6"]);
    assert_eq!(m["vfio_adapters"], json!([5, 6]));
    assert_eq!(m["vfio_domains"], json!([]));
    assert_eq!(m["persistent_apmask"], Value::Null);
    let m = host.apctl_json(&["masks", "--aqmask", "-4,-0x47,-0xab,-0xff", "--persistent"]);
    assert_eq!(m["vfio_domains"], json!([4, 0x47, 0xab, 0xff]));
    assert_eq!(m["persistent_aqmask"], m["aqmask"]);
    let text = host.apctl_ok(&["masks"]);
    assert!(text.contains("Given to vfio_ap: adapters 5,6"), "{text}");
    seed(&host);

    // queues filters.
    let q = host.apctl_json(&["queues", "--adapter", "5", "--domain", "0x47"]);
    assert_eq!(
        q,
        json!([{
            "apqn": "05.0047", "card_type": "CEX7C", "mode": "cca", "config": true,
            "online": true, "chkstop": false, "driver": "vfio_ap", "owner": "mdev",
            "owner_uuid": q[0]["owner_uuid"], "owner_name": "guest2"
        }])
    );
    let free = host.apctl_json(&["queues", "--owner", "free"]);
    assert!(free.as_array().is_some_and(|a| !a.is_empty()));
    assert!(free
        .as_array()
        .expect("array")
        .iter()
        .all(|q| q["owner"] == "free" && q["driver"] == "vfio_ap"));
    let hosts = host.apctl_json(&["queues", "--owner", "host", "--adapter", "1-4"]);
    assert_eq!(
        hosts.as_array().map(Vec::len),
        Some(4),
        "domain 0 on adapters 1-4: {hosts}"
    );
    let g1 = host.apctl_json(&["queues", "--owner", G1]);
    let apqns: Vec<&Value> = g1
        .as_array()
        .expect("array")
        .iter()
        .map(|q| &q["apqn"])
        .collect();
    assert_eq!(
        apqns,
        [
            &json!("05.0004"),
            &json!("05.00ab"),
            &json!("06.0004"),
            &json!("06.00ab")
        ]
    );
    let text = host.apctl_ok(&["queues", "--adapter", "6"]);
    assert!(text.starts_with("APQN "), "{text}");
    assert_eq!(text.lines().count(), 6, "{text}");

    // config off: guest matrix unchanged (kernel spec §7), usable false with a reason.
    host.apctl_ok(&["config", "6", "off"]);
    assert_eq!(host.read("devices/ap/card06/config"), "0\n");
    let show = host.apctl_json(&["show", "guest1"]);
    assert_eq!(
        show["guest_matrix"],
        json!(["05.0004", "05.00ab", "06.0004", "06.00ab"])
    );
    for a in show["apqns"].as_array().expect("apqns") {
        let on_6 = a["apqn"].as_str().is_some_and(|s| s.starts_with("06."));
        assert_eq!(a["usable"], !on_6, "{a}");
        assert_eq!(a["in_guest_matrix"], true, "{a}");
        if on_6 {
            assert!(
                a["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("adapter 6")),
                "{a}"
            );
        } else {
            assert_eq!(a["reason"], Value::Null);
        }
    }
    let text = host.apctl_ok(&["show", "guest1"]);
    assert!(text.contains("WHY NOT"), "{text}");
    let q = host.apctl_json(&["queues", "--adapter", "6", "--domain", "4"]);
    assert_eq!(q[0]["config"], false);
    host.apctl_ok(&["config", "0x6", "on"]);
    assert_eq!(host.read("devices/ap/card06/config"), "1\n");
    assert!(host.apctl_json(&["show", "guest1"])["apqns"]
        .as_array()
        .expect("apqns")
        .iter()
        .all(|a| a["usable"] == true));
    let out = host.apctl(&["config", "9", "on"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains('9'), "{}", describe(&out));
}

#[test]
fn check_export_apply_and_mdevctl() {
    let Some(host) = seed_host() else { return };
    seed(&host);
    let out = host.apctl(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(host.apctl_json(&["check"])["findings"], json!([]));

    // export > file, apply file: nothing to do.
    let exported = host.apctl_ok(&["export"]);
    assert!(exported.contains(&format!("uuid = \"{G1}\"")), "{exported}");
    assert!(exported.starts_with("[masks]\n"), "{exported}");
    let file = host.dir().join("host-state.toml");
    std::fs::write(&file, &exported).expect("write the exported state");
    let path = file.display().to_string();
    assert_eq!(
        host.apctl_json(&["apply", "--dry-run", &path]),
        json!({"steps": []})
    );
    let out = host.apctl_ok(&["apply", &path]);
    assert!(out.starts_with("Nothing to do"), "{out}");
    let ex = host.apctl_json(&["export"]);
    assert_eq!(ex["mdevs"].as_array().map(Vec::len), Some(2), "{ex}");

    // A state whose two autostart mdevs share a queue: check FILE exits 1.
    let conflict = host.dir().join("conflict.toml");
    std::fs::write(
        &conflict,
        "[[mdev]]\nname = \"a\"\nautostart = true\nadapters = [6]\ndomains = [0x47]\n\n\
         [[mdev]]\nname = \"b\"\nautostart = true\nadapters = [6]\ndomains = [0x47]\n",
    )
    .expect("write");
    let out = host.apctl(&["check", &conflict.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stdout(&out).contains("error:"), "{}", describe(&out));
    let out = host.apctl(&["--json", "check", &conflict.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("check --json");
    assert!(v["findings"]
        .as_array()
        .is_some_and(|f| f.iter().any(|f| f["severity"] == "error")));

    // A plan that changes something lists its steps, and --dry-run writes nothing.
    let more = host.dir().join("more.toml");
    std::fs::write(
        &more,
        "[[mdev]]\nname = \"guest3\"\nautostart = true\nadapters = [6]\ndomains = [0x47, 0xff]\n",
    )
    .expect("write");
    let plan = host.apctl_json(&["apply", "--dry-run", &more.display().to_string()]);
    let steps = plan["steps"].as_array().expect("steps");
    assert!(!steps.is_empty(), "{plan}");
    for s in steps {
        for key in ["action", "target", "uuid", "detail"] {
            assert!(s.get(key).is_some(), "{s} lacks {key}");
        }
    }
    assert!(by_name(&host.apctl_json(&["list"]), "guest3").is_none());

    // export --format mdevctl DIR, then import into a fresh host.
    let dir = host.dir().join("mdevctl.d").join("matrix");
    let out = host.apctl_ok(&["export", "--format", "mdevctl", &dir.display().to_string()]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let text = std::fs::read_to_string(dir.join(G1)).expect("mdevctl file for guest1");
    let v: Value = serde_json::from_str(&text).expect("mdevctl JSON");
    assert_eq!(v["mdev_type"], "vfio_ap-passthrough");
    assert_eq!(v["start"], "auto");

    let other = Host::start(SEED_HOST);
    seed_masks(&other, false);
    let imported = other.apctl_json(&["import-mdevctl", &dir.display().to_string()]);
    let uuids = imported["uuids"].as_array().expect("uuids");
    assert_eq!(uuids.len(), 2, "{imported}");
    assert!(uuids.contains(&json!(G1)), "{imported}");
    let list = other.apctl_json(&["list", "--defined"]);
    let g1 = list
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["uuid"] == G1)
        .expect("guest1 imported");
    assert_eq!(g1["adapters"], json!([5, 6]));
    assert_eq!(g1["domains"], json!([4, 0xab]));
    assert_eq!(g1["autostart"], true);
    // An empty directory imports nothing and says so.
    let empty = other.dir().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = other.apctl_ok(&["import-mdevctl", &empty.display().to_string()]);
    assert!(out.starts_with("Nothing to import"), "{out}");
}

#[test]
fn queues_into_a_closed_pipe_end_quietly() {
    let Some(host) = seed_host() else { return };
    for args in [vec!["queues"], vec!["--json", "queues"]] {
        let mut child = host.apctl_spawn(&args);
        // The reader is gone before apctl has its reply: every write of
        // the streamed rows meets EPIPE, as under `| head -0`.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for apctl");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

#[test]
fn monitor_prints_events_and_exits_on_ctrl_c() {
    let Some(mut host) = seed_host() else { return };
    seed_masks(&host, false);
    host.apctl_ok(&[
        "define", "--uuid", G1, "--name", "guest1", "-a", "5,6", "-d", "4,0xab",
    ]);
    let mut child = host.apctl_spawn(&["--json", "monitor"]);
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send((true, line));
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send((false, line));
        }
    });
    // Ready once it says so on stderr: the subscriptions are in place.
    let (on_stdout, first) = rx
        .recv_timeout(liveness_timeout())
        .expect("monitor says it watches");
    assert!(
        !on_stdout && first.starts_with("apctl: watching apd on"),
        "{first}"
    );

    host.apctl_ok(&["start", "guest1"]);
    host.apctl_ok(&["config", "6", "off"]);
    let mut lines = Vec::new();
    let mut saw_mdev = false;
    let mut saw_config = false;
    while !(saw_mdev && saw_config) {
        let (on_stdout, line) = rx
            .recv_timeout(liveness_timeout())
            .unwrap_or_else(|_| panic!("monitor printed no event for start/config: {lines:?}"));
        assert!(on_stdout, "stderr: {line}");
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["event"].is_string(), "{v}");
        assert!(v["message"].is_string(), "{v}");
        if v["event"] == "mdev-started" {
            assert_eq!(v["uuid"], G1, "{v}");
            assert_eq!(v["name"], "guest1", "{v}");
            assert_eq!(v["mdev"]["adapters"], serde_json::json!([5, 6]), "{v}");
            saw_mdev = true;
        }
        saw_config |= v["event"] == "adapter-config" && v["adapter"] == 6;
        lines.push(line);
    }
    // apd restarts: monitor says so and keeps following the new apd.
    host.restart_apd();
    host.apctl_ok(&["define", "--name", "guest2", "-a", "5", "-d", "0x47"]);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|v: &Value| v["event"] == "definition-changed" && v["name"] == "guest2")
    {
        let (on_stdout, line) = rx
            .recv_timeout(liveness_timeout())
            .unwrap_or_else(|_| panic!("no event after apd restarted: {seen:?}"));
        assert!(on_stdout, "stderr: {line}");
        seen.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")));
    }
    let defined = seen.last().expect("the definition-changed line");
    assert_eq!(
        defined["message"], "defined, manual start: adapters 5, domains 0x47, control domains -",
        "ids as every apctl view shows them: {defined}"
    );
    let types: Vec<&Value> = seen.iter().map(|v| &v["event"]).collect();
    let stopped = types.iter().position(|t| **t == "apd-stopped");
    let started = types.iter().position(|t| **t == "apd-started");
    assert!(stopped.is_some() && stopped < started, "{seen:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send SIGINT");
    let status = child.wait().expect("monitor exits");
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean exit");
}

#[test]
fn completion_words_access_and_apd_gone() {
    let Some(mut host) = seed_host() else { return };
    seed(&host);
    let words = host.apctl_ok(&["__complete-mdevs"]);
    for w in ["guest1", "guest2", G1] {
        assert!(words.lines().any(|l| l == w), "{w} missing from {words}");
    }
    let described = host.apctl_ok(&["__complete-mdevs", "--describe"]);
    assert!(described.contains(&format!("guest1\t{G1}")), "{described}");

    // Anyone may read; only root may change.
    let out = host.apctl_as(65534, 65534, &["--json", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let before = host.apctl_json(&["list"]);
    let out = host.apctl_as(65534, 65534, &["stop", "guest1"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", describe(&out));
    assert!(stderr(&out).starts_with("apctl: "), "{}", describe(&out));
    assert!(
        !stderr(&out).contains("org.apctl.Apd1.Error"),
        "{}",
        describe(&out)
    );
    assert_eq!(host.apctl_json(&["list"]), before);

    // Reboot: autostart guest1 comes back, manual guest2 stays defined only.
    host.reboot();
    let list = host.apctl_json(&["list"]);
    assert_eq!(mdev(&list, "guest1")["active"], true, "{list}");
    assert_eq!(mdev(&list, "guest2")["active"], false, "{list}");
    assert_eq!(host.apctl_json(&["masks"])["vfio_adapters"], json!([5, 6]));

    // apd gone: the hint, exit 1.
    host.stop_apd();
    let out = host.apctl(&["list"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "apctl: cannot reach apd on the bus at {}: the name org.apctl.Apd1 has no owner; is apd running? (systemctl status apd) Use --bus or APCTL_BUS for another bus.\n",
            host.bus_address()
        )
    );
    let out = host.apctl(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "completions need no apd");
    let out = host.apctl(&["__complete-mdevs"]);
    assert_eq!(
        (out.status.code(), stdout(&out), stderr(&out)),
        (Some(0), String::new(), String::new())
    );
}

#[test]
fn a_thousand_definitions_in_one_list() {
    let Some(host) = seed_host() else { return };
    let dir = host.dir().join("thousand");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..1000u32 {
        let uuid = format!("00000000-0000-4000-8000-{i:012x}");
        std::fs::write(
            dir.join(&uuid),
            "{\n  \"mdev_type\": \"vfio_ap-passthrough\",\n  \"start\": \"manual\",\n  \"attrs\": []\n}\n",
        )
        .expect("write an mdevctl file");
    }
    let imported = host.apctl_json(&["import-mdevctl", &dir.display().to_string()]);
    assert_eq!(imported["uuids"].as_array().map(Vec::len), Some(1000));
    let list = host.apctl_json(&["list"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1000);
    assert!(list
        .iter()
        .all(|m| m["defined"] == true && m["active"] == false));
    let table = host.apctl_ok(&["list", "--defined"]);
    assert_eq!(table.lines().count(), 1001, "a header and one row each");
    let show = host.apctl_json(&["show", "00000000-0000-4000-8000-0000000003e7"]);
    assert_eq!(show["apqns"], json!([]));
}
