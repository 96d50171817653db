//! The shipped systemd unit passes `systemd-analyze verify`, and the
//! D-Bus activation and polkit files agree with the contract.

use std::path::{Path, PathBuf};
use std::process::Command;

fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("systemd")
}

fn read(name: &str) -> String {
    let p = systemd_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !e2e::command_exists("systemd-analyze") {
        eprintln!("skipped: systemd-analyze is not installed (Debian: systemd)");
        return;
    }
    let unit = read("apd.service");
    assert!(unit.contains("\nType=notify\n"));
    assert!(unit.contains("\nBusName=org.apctl.Apd1\n"));
    assert!(unit.contains("\nExecStart=/usr/sbin/apd\n"));
    // verify needs an ExecStart that exists: point it at the built apd.
    let apd = e2e::bin("apd");
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("apd.service");
    std::fs::write(
        &copy,
        unit.replace(
            "ExecStart=/usr/sbin/apd",
            &format!("ExecStart={}", apd.display()),
        ),
    )
    .expect("write the unit copy");
    // Man pages are not installed where the tests run.
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed ({:?}):\n{stderr}",
        out.status
    );
    // Warnings are reported on stderr with a zero status: none about our unit.
    assert!(
        !stderr.contains("apd.service"),
        "systemd-analyze verify complained:\n{stderr}"
    );
}

#[test]
fn the_activation_policy_and_polkit_files_name_the_contract() {
    let activation = read("org.apctl.Apd1.service");
    assert!(activation.contains("[D-BUS Service]"));
    assert!(activation.contains("\nName=org.apctl.Apd1\n"));
    assert!(activation.contains("\nSystemdService=apd.service\n"));
    assert!(activation.contains("\nUser=root\n"));

    let policy = read("org.apctl.Apd1.conf");
    assert!(policy.contains(r#"<policy user="root">"#));
    assert!(policy.contains(r#"<allow own="org.apctl.Apd1"/>"#));
    assert!(policy.contains(r#"<allow send_destination="org.apctl.Apd1"/>"#));
    // Nobody but root may own the name.
    assert_eq!(policy.matches("allow own=").count(), 1);

    let polkit = read("org.apctl.apd.policy");
    assert!(polkit.contains(&format!(r#"<action id="{}">"#, apbus::POLKIT_ACTION)));
    assert!(polkit.contains("<allow_active>auth_admin_keep</allow_active>"));
}
