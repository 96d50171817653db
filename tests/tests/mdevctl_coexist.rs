//! An mdev defined both by apd and in mdevctl's directory: `apctl check`
//! and `apctl status` warn, naming both files (apd's `--mdevctl-root`
//! plays `/` for mdevctl's `/etc/mdevctl.d/matrix`); check still exits 0.

mod apctl_support;

use apctl_support::*;
use e2e::{describe, Host, HostOptions, Mode};
use serde_json::Value;

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2: &str = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e";

#[test]
fn check_and_status_warn_about_an_mdev_mdevctl_defines_too() {
    let root = tempfile::tempdir().expect("tempdir");
    let host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        apd_args: vec!["--mdevctl-root".into(), root.path().display().to_string()],
        ..HostOptions::default()
    });
    seed_masks(&host, false);
    host.apctl_ok(&[
        "define", "--uuid", G1, "--name", "guest1", "--auto", "-a", "5,6", "-d", "4,0xab",
    ]);
    host.apctl_ok(&[
        "define", "--uuid", G2, "--name", "guest2", "-a", "5", "-d", "0x47",
    ]);
    let clean = host.apctl(&["check"]);
    assert_eq!(clean.status.code(), Some(0), "{}", describe(&clean));
    assert!(!stdout(&clean).contains("mdevctl"), "{}", describe(&clean));
    assert!(host.apctl_ok(&["status"]).contains("Problems:"));

    let theirs = root.path().join("etc/mdevctl.d/matrix");
    std::fs::create_dir_all(&theirs).expect("mkdir");
    let mdevctl_file = theirs.join(G1);
    std::fs::write(
        &mdevctl_file,
        r#"{"mdev_type": "vfio_ap-passthrough", "start": "auto", "attrs": [{"assign_adapter": "5"}]}"#,
    )
    .expect("write mdevctl's file");
    let apd_file = host.config_dir().join("mdevs").join(format!("{G1}.toml"));
    assert!(apd_file.is_file(), "{}", apd_file.display());
    let both = |text: &str| {
        text.contains(&apd_file.display().to_string())
            && text.contains(&mdevctl_file.display().to_string())
    };

    let out = host.apctl(&["check"]);
    assert_eq!(out.status.code(), Some(0), "a warning: {}", describe(&out));
    let text = stdout(&out);
    let warning: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("defined twice"))
        .collect();
    assert_eq!(warning.len(), 1, "{text}");
    assert!(warning[0].contains("warning"), "{text}");
    assert!(warning[0].contains(&format!("guest1 ({G1})")), "{text}");
    assert!(both(warning[0]), "{text}");
    assert!(!text.contains(G2), "{text}");

    let v = host.apctl_json(&["check"]);
    let findings: Vec<&Value> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "defined-by-mdevctl")
        .collect();
    assert_eq!(findings.len(), 1, "{v}");
    assert_eq!(findings[0]["severity"], "warning");
    assert_eq!(findings[0]["mdevs"], serde_json::json!([G1]));

    let status = host.apctl_ok(&["status"]);
    assert!(both(&status), "{status}");
    assert!(!status.contains("Problems:         none"), "{status}");
    let v = host.apctl_json(&["status"]);
    let warnings = v["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{v}");
    assert!(both(warnings[0].as_str().expect("sentence")), "{v}");

    // Left to apd: the warning is gone.
    std::fs::remove_file(&mdevctl_file).expect("rm");
    let out = host.apctl(&["check"]);
    assert!(
        !stdout(&out).contains("defined twice"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        host.apctl_json(&["status"])["warnings"],
        serde_json::json!([])
    );
}
