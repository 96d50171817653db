//! apctl and apd beside the real mdevctl (1.4.0, installed by `.ci/run`;
//! these tests skip with the reason where it is missing), with
//! `MDEVCTL_ENV_ROOT` pointing at a fake root:
//! - mdevctl lists what `apctl export --format mdevctl` wrote;
//! - `apctl import-mdevctl` adopts what `mdevctl define`/`modify` wrote;
//! - on the live simulator (`<root>/sys` is the apsim mount) mdevctl sees
//!   apd's mdevs, and an mdev mdevctl starts is foreign to apd: listed,
//!   respected, never overwritten.

mod apctl_support;

use apctl_support::*;
use e2e::{describe, Host, HostOptions, Mode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use testkit::mdevctl::Mdevctl;
use testkit::{diff, dir_snapshot};

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2: &str = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e";
const FOREIGN: &str = "0c7e2a3f-1d5b-4e7c-9f0a-2b3c4d5e6f70";

/// mdevctl on a fresh root in the host's temp dir, or the reason to skip.
fn mdevctl(host: &Host, sys: bool) -> Option<Mdevctl> {
    let root = host.dir().join("mdevctl-root");
    match Mdevctl::in_root(&root, sys.then(|| host.sysfs())) {
        Ok(m) => Some(m),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

fn in_process_host() -> Host {
    let host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        ..HostOptions::default()
    });
    seed_masks(&host, false);
    host
}

/// kstrtoul base 0, as the kernel parses an attribute mdevctl writes.
fn c_number(s: &str) -> u64 {
    let parsed = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8)
    } else {
        s.parse()
    };
    parsed.unwrap_or_else(|e| panic!("{s:?} is not a number: {e}"))
}

/// One mdev of `mdevctl list -d --dumpjson`: start mode and the id lists
/// its attributes assign, as `apctl --json list` shows them.
fn dumped(dump: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for parent in dump.as_array().expect("an array of parents") {
        for (pname, mdevs) in parent.as_object().expect("parent object") {
            assert_eq!(pname, "matrix", "{dump}");
            for m in mdevs.as_array().expect("mdevs") {
                for (uuid, def) in m.as_object().expect("mdev object") {
                    assert_eq!(def["mdev_type"], "vfio_ap-passthrough", "{dump}");
                    let mut ids: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
                    for attr in def["attrs"].as_array().expect("attrs") {
                        for (k, v) in attr.as_object().expect("attr") {
                            let key = match k.as_str() {
                                "assign_adapter" => "adapters",
                                "assign_domain" => "domains",
                                "assign_control_domain" => "control_domains",
                                other => panic!("unexpected attribute {other} in {dump}"),
                            };
                            ids.entry(key)
                                .or_default()
                                .push(c_number(v.as_str().expect("string")));
                        }
                    }
                    let list = |k: &str| {
                        let mut v = ids.get(k).cloned().unwrap_or_default();
                        v.sort_unstable();
                        json!(v)
                    };
                    out.insert(
                        uuid.clone(),
                        json!({
                            "autostart": def["start"] == "auto",
                            "adapters": list("adapters"),
                            "domains": list("domains"),
                            "control_domains": list("control_domains"),
                        }),
                    );
                }
            }
        }
    }
    out
}

/// apctl's view of the same (definitions only).
fn listed(host: &Host) -> BTreeMap<String, Value> {
    host.apctl_json(&["list", "--defined"])
        .as_array()
        .expect("array")
        .iter()
        .map(|m| {
            (
                m["uuid"].as_str().expect("uuid").to_string(),
                json!({
                    "autostart": m["autostart"],
                    "adapters": m["adapters"],
                    "domains": m["domains"],
                    "control_domains": m["control_domains"],
                }),
            )
        })
        .collect()
}

#[test]
fn mdevctl_lists_what_apctl_exported() {
    let host = in_process_host();
    let Some(mdevctl) = mdevctl(&host, false) else {
        return;
    };
    host.apctl_ok(&[
        "define", "--uuid", G1, "--name", "guest1", "--auto", "-a", "5,6", "-d", "4,0xab", "-c",
        "0xff",
    ]);
    host.apctl_ok(&[
        "define",
        "--uuid",
        G2,
        "--name",
        "guest2",
        "--manual",
        "-a",
        "5",
        "-d",
        "0x47,0xff",
    ]);
    let dir = mdevctl.matrix_dir();
    host.apctl_ok(&["export", "--format", "mdevctl", &dir.display().to_string()]);

    let text = mdevctl.ok(&["list", "-d"]);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    let mut expect = vec![
        format!("{G1} matrix vfio_ap-passthrough auto"),
        format!("{G2} matrix vfio_ap-passthrough manual"),
    ];
    expect.sort();
    assert_eq!(lines, expect, "{text}");

    let dump: Value = serde_json::from_str(&mdevctl.ok(&["list", "-d", "--dumpjson"]))
        .expect("mdevctl --dumpjson");
    assert_eq!(dumped(&dump), listed(&host), "{dump}");
}

#[test]
fn apctl_adopts_what_mdevctl_wrote_and_leaves_it_alone() {
    let host = in_process_host();
    let Some(mdevctl) = mdevctl(&host, false) else {
        return;
    };
    // mdevctl's define has --auto; without it the mdev is manual.
    let define = |uuid: &str, auto: bool| {
        let mut args = vec![
            "define",
            "--uuid",
            uuid,
            "--parent",
            "matrix",
            "--type",
            "vfio_ap-passthrough",
        ];
        if auto {
            args.push("--auto");
        }
        mdevctl.ok(&args);
    };
    let add = |uuid: &str, attr: &str, value: &str| {
        mdevctl.ok(&[
            "modify",
            "--uuid",
            uuid,
            "--addattr",
            attr,
            "--value",
            value,
        ]);
    };
    define(G1, true);
    add(G1, "assign_adapter", "5");
    add(G1, "assign_adapter", "0x6");
    add(G1, "assign_domain", "4");
    add(G1, "assign_domain", "0xab");
    add(G1, "assign_control_domain", "0377");
    define(G2, false);
    add(G2, "assign_adapter", "05");
    add(G2, "assign_domain", "0107");
    add(G2, "assign_domain", "255");
    let dir = mdevctl.matrix_dir();
    let before = dir_snapshot(&dir);
    assert_eq!(before.len(), 2, "{:?}", before.keys());

    let out = host.apctl(&["import-mdevctl", &dir.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stderr(&out), "");
    let got = listed(&host);
    assert_eq!(
        got.get(G1),
        Some(
            &json!({"autostart": true, "adapters": [5, 6], "domains": [4, 0xab], "control_domains": [0xff]})
        ),
        "{got:?}"
    );
    assert_eq!(
        got.get(G2),
        Some(
            &json!({"autostart": false, "adapters": [5], "domains": [0x47, 0xff], "control_domains": []})
        ),
        "{got:?}"
    );
    assert_eq!(diff(&before, &dir_snapshot(&dir)), Vec::<String>::new());
    // mdevctl still reads its own files as before.
    let dump: Value = serde_json::from_str(&mdevctl.ok(&["list", "-d", "--dumpjson"]))
        .expect("mdevctl --dumpjson");
    assert_eq!(dumped(&dump), got, "{dump}");
}

#[test]
fn mdevctl_on_the_live_host_sees_apd_and_apd_respects_mdevctl() {
    let Some(host) = seed_host() else { return };
    let Some(mdevctl) = mdevctl(&host, true) else {
        return;
    };
    seed_masks(&host, false);
    host.apctl_ok(&[
        "define", "--uuid", G1, "--name", "guest1", "--auto", "-a", "5,6", "-d", "4,0xab",
    ]);
    host.apctl_ok(&[
        "define",
        "--uuid",
        G2,
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

    // mdevctl sees apd's mdevs (it knows no definition of them: manual).
    let text = mdevctl.ok(&["list"]);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    let mut expect = vec![
        format!("{G1} matrix vfio_ap-passthrough manual"),
        format!("{G2} matrix vfio_ap-passthrough manual"),
    ];
    expect.sort();
    assert_eq!(lines, expect, "{text}");

    // mdevctl defines and starts an mdev of its own on 06.0047.
    mdevctl.ok(&[
        "define",
        "--uuid",
        FOREIGN,
        "--parent",
        "matrix",
        "--type",
        "vfio_ap-passthrough",
    ]);
    for (attr, value) in [
        ("assign_adapter", "6"),
        ("assign_domain", "0x47"),
        ("assign_control_domain", "4"),
    ] {
        mdevctl.ok(&[
            "modify",
            "--uuid",
            FOREIGN,
            "--addattr",
            attr,
            "--value",
            value,
        ]);
    }
    mdevctl.ok(&["start", "--uuid", FOREIGN]);
    let matrix = format!("devices/vfio_ap/matrix/{FOREIGN}/matrix");
    assert_eq!(host.read(&matrix), "06.0047\n");

    // apd lists it as another tool's mdev, with mdevctl's assignment.
    host.wait_for("apd lists mdevctl's mdev", || {
        host.apctl_json(&["list"])
            .as_array()
            .is_some_and(|l| l.iter().any(|m| m["uuid"] == FOREIGN))
    });
    let list = host.apctl_json(&["list"]);
    let f = list
        .as_array()
        .and_then(|l| l.iter().find(|m| m["uuid"] == FOREIGN))
        .expect("listed");
    assert_eq!(f["defined"], false, "{f}");
    assert_eq!(f["active"], true, "{f}");
    assert_eq!(f["adapters"], json!([6]), "{f}");
    assert_eq!(f["domains"], json!([0x47]), "{f}");
    assert_eq!(f["control_domains"], json!([4]), "{f}");

    // apd will not take its queue for a definition of its own...
    host.apctl_ok(&[
        "define", "--name", "guest3", "--manual", "-a", "6", "-d", "0x47",
    ]);
    let out = host.apctl(&["start", "guest3"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains(FOREIGN), "{}", describe(&out));
    assert!(stderr(&out).contains("06.0047"), "{}", describe(&out));
    // ...and while it restarts its own mdevs, mdevctl's stays as it was.
    host.apctl_ok(&["stop", "guest2"]);
    host.apctl_ok(&["start", "guest2"]);
    assert_eq!(host.read(&matrix), "06.0047\n");
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{FOREIGN}/control_domains")),
        "0004\n"
    );
    let text = mdevctl.ok(&["list"]);
    assert!(
        text.contains(&format!("{FOREIGN} matrix vfio_ap-passthrough manual")),
        "{text}"
    );

    // mdevctl stops it; apd sees it go.
    mdevctl.ok(&["stop", "--uuid", FOREIGN]);
    host.wait_for("apd no longer lists mdevctl's mdev", || {
        host.apctl_json(&["list"])
            .as_array()
            .is_some_and(|l| l.iter().all(|m| m["uuid"] != FOREIGN))
    });
}
