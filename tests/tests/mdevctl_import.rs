//! `apctl import-mdevctl` with real files: a truncated file or a stray one
//! does not keep the good definitions out; each skipped file is named with
//! its reason and the exit status is 1; importing again changes nothing;
//! `--remove-source` removes exactly the files imported. Runs on the
//! in-process simulator (no FUSE needed).

mod apctl_support;

use apctl_support::*;
use e2e::{describe, Host, HostOptions, Mode};
use serde_json::json;
use std::path::Path;
use testkit::{diff, dir_snapshot};

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2: &str = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e";
const G3: &str = "9a4dd1a1-5b0c-4a8f-8a3e-6d2f1c0b7e55";

/// An mdevctl file as mdevctl writes it.
fn mdevctl_json(start: &str, attrs: &[(&str, &str)]) -> String {
    let attrs: Vec<serde_json::Value> = attrs.iter().map(|(k, v)| json!({ (*k): v })).collect();
    serde_json::to_string_pretty(&json!({
        "mdev_type": "vfio_ap-passthrough",
        "start": start,
        "attrs": attrs,
    }))
    .expect("json")
}

fn host() -> Host {
    let host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        ..HostOptions::default()
    });
    seed_masks(&host, false);
    host
}

/// mdevctl's directory: guest1 and guest2 good, G3 cut in the middle of a
/// write, and a stray README.
fn write_dir(dir: &Path) -> String {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join(G1),
        mdevctl_json(
            "auto",
            &[
                ("assign_adapter", "5"),
                ("assign_adapter", "6"),
                ("assign_domain", "0x4"),
                ("assign_domain", "0xab"),
            ],
        ),
    )
    .expect("write");
    std::fs::write(
        dir.join(G2),
        mdevctl_json(
            "manual",
            &[("assign_adapter", "5"), ("assign_domain", "0107")],
        ),
    )
    .expect("write");
    let full = mdevctl_json(
        "auto",
        &[("assign_adapter", "6"), ("assign_domain", "0xff")],
    );
    std::fs::write(dir.join(G3), &full[..full.len() / 2]).expect("write");
    std::fs::write(dir.join("README"), "kept by hand\n").expect("write");
    dir.display().to_string()
}

#[test]
fn bad_files_are_named_and_the_good_ones_imported() {
    let host = host();
    let dir = host.dir().join("mdevctl.d").join("matrix");
    let arg = write_dir(&dir);
    let out = host.apctl(&["import-mdevctl", &arg]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let mut expect = vec![G1, G2];
    expect.sort();
    assert_eq!(stdout(&out), format!("{}\n{}\n", expect[0], expect[1]));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "apctl: skipped {}: not valid JSON",
            dir.join(G3).display()
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "apctl: skipped {}: its name is not a UUID",
            dir.join("README").display()
        )),
        "{err}"
    );
    assert!(
        lines[2].starts_with("apctl: imported 2 of 4 mdevctl definitions from "),
        "{err}"
    );
    assert!(lines[2].contains("2 skipped files"), "{err}");

    let list = host.apctl_json(&["list", "--defined"]);
    let uuids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["uuid"].as_str())
        .collect();
    assert_eq!(uuids.len(), 2, "{list}");
    let g1 = list
        .as_array()
        .and_then(|l| l.iter().find(|m| m["uuid"] == G1))
        .expect("guest1");
    assert_eq!(g1["adapters"], json!([5, 6]));
    assert_eq!(g1["domains"], json!([4, 0xab]));
    assert_eq!(g1["autostart"], true);
    let g2 = list
        .as_array()
        .and_then(|l| l.iter().find(|m| m["uuid"] == G2))
        .expect("guest2");
    assert_eq!(g2["domains"], json!([0x47]), "0107 is octal");
    assert_eq!(g2["autostart"], false);

    // Again: nothing changes, and the same files are named again.
    let before = dir_snapshot(host.config_dir());
    let again = host.apctl(&["--json", "import-mdevctl", &arg]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    let v: serde_json::Value = serde_json::from_str(&stdout(&again)).expect("json");
    assert_eq!(v["uuids"], json!(expect));
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .filter_map(|s| s["file"].as_str())
        .collect();
    assert_eq!(
        skipped,
        vec![
            dir.join(G3).display().to_string(),
            dir.join("README").display().to_string()
        ]
    );
    assert_eq!(
        diff(&before, &dir_snapshot(host.config_dir())),
        Vec::<String>::new()
    );

    // Once the bad files are gone, importing again succeeds and changes nothing.
    std::fs::remove_file(dir.join(G3)).expect("rm");
    std::fs::remove_file(dir.join("README")).expect("rm");
    let out = host.apctl(&["import-mdevctl", &arg]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(
        diff(&before, &dir_snapshot(host.config_dir())),
        Vec::<String>::new()
    );
}

#[test]
fn a_definition_apd_refuses_is_skipped_and_named() {
    let host = host();
    host.apctl_ok(&[
        "define", "--uuid", G1, "--name", "guest1", "-a", "5", "-d", "4",
    ]);
    let dir = host.dir().join("other");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // G1 differs from apd's guest1; G2 is new.
    std::fs::write(
        dir.join(G1),
        mdevctl_json("auto", &[("assign_adapter", "6")]),
    )
    .expect("write");
    std::fs::write(
        dir.join(G2),
        mdevctl_json("manual", &[("assign_adapter", "5")]),
    )
    .expect("write");
    let out = host.apctl(&["import-mdevctl", &dir.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(stdout(&out), format!("{G2}\n"));
    let err = stderr(&out);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!(
            "apctl: skipped {}: apd refused it: ",
            dir.join(G1).display()
        )),
        "{err}"
    );
    assert!(first.contains("already defined differently"), "{err}");
    let list = host.apctl_json(&["list"]);
    assert_eq!(
        mdev(&list, "guest1")["adapters"],
        json!([5]),
        "guest1 is left alone"
    );
}

#[test]
fn remove_source_removes_only_what_was_imported() {
    let host = host();
    let dir = host.dir().join("mdevctl.d").join("matrix");
    let arg = write_dir(&dir);
    let out = host.apctl(&["import-mdevctl", "--remove-source", &arg]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec![G3.to_string(), "README".to_string()]);
    let list = host.apctl_json(&["list", "--defined"]);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
}

#[test]
fn an_unreadable_directory_is_one_sentence() {
    let host = host();
    let missing = host.dir().join("no-such-dir");
    let out = host.apctl(&["import-mdevctl", &missing.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "apctl: nothing imported: cannot read {}: ",
            missing.display()
        )),
        "{err}"
    );
}
