//! apctl beside libvirt: `apctl show --libvirt MDEV` prints the
//! `<hostdev>` element of the mdev, which libvirt's own schema accepts in an
//! s390x domain (`virt-xml-validate`, Debian: libvirt-clients and
//! libxml2-utils; the validation skips with the reason where it is missing), and apd.service
//! is ordered before the libvirt daemons, so guests started at boot find
//! their mdevs.

mod apctl_support;

use apctl_support::*;
use e2e::{describe, Host, HostOptions, Mode};
use serde_json::json;
use std::process::Command;

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";

const HOSTDEV: &str = "<hostdev mode='subsystem' type='mdev' model='vfio-ap'>
  <source>
    <address uuid='62177883-f1bb-47f0-914d-32a22e3a8804'/>
  </source>
</hostdev>
";

/// A minimal s390x KVM domain with `devices` inside `<devices>`.
fn domain(devices: &str) -> String {
    format!(
        "<domain type='kvm'>
  <name>guest1</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='s390x' machine='s390-ccw-virtio'>hvm</type>
  </os>
  <devices>
{devices}  </devices>
</domain>
"
    )
}

fn host() -> Host {
    let host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        ..HostOptions::default()
    });
    seed_masks(&host, false);
    host.apctl_ok(&[
        "define", "--uuid", G1, "--name", "guest1", "--auto", "-a", "5,6", "-d", "4,0xab",
    ]);
    host
}

#[test]
fn show_libvirt_prints_the_hostdev_element() {
    let host = host();
    assert_eq!(host.apctl_ok(&["show", "--libvirt", "guest1"]), HOSTDEV);
    assert_eq!(host.apctl_ok(&["show", "--libvirt", G1]), HOSTDEV);
    assert_eq!(
        host.apctl_json(&["show", "--libvirt", "guest1"]),
        json!({"uuid": G1, "name": "guest1", "hostdev": HOSTDEV})
    );
    let out = host.apctl(&["show", "--libvirt", "guest9"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("guest9"), "{}", describe(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn virt_xml_validate_accepts_a_domain_with_it() {
    let host = host();
    let hostdev = host.apctl_ok(&["show", "--libvirt", "guest1"]);
    let indented: String = hostdev.lines().map(|l| format!("    {l}\n")).collect();
    let good = host.dir().join("guest1.xml");
    std::fs::write(&good, domain(&indented)).expect("write the domain");
    // The same domain with a misspelt model: the validator must refuse it,
    // or it proves nothing.
    let bad = host.dir().join("guest1-bad.xml");
    std::fs::write(&bad, domain(&indented.replace("vfio-ap", "vfio-apx"))).expect("write");
    let validate = |file: &std::path::Path| {
        Command::new("virt-xml-validate")
            .arg(file)
            .arg("domain")
            .output()
    };
    // virt-xml-validate runs xmllint (Debian: libxml2-utils).
    if Command::new("xmllint").arg("--version").output().is_err() {
        eprintln!("skipped: xmllint, which virt-xml-validate runs, is not installed (Debian: libxml2-utils; .ci/run installs it)");
        return;
    }
    let out = match validate(&good) {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "skipped: virt-xml-validate is not installed (Debian: libvirt-clients; .ci/run installs it)"
            );
            return;
        }
        Err(e) => panic!("cannot run virt-xml-validate: {e}"),
    };
    assert!(out.status.success(), "{}", describe(&out));
    let out = validate(&bad).expect("virt-xml-validate");
    assert!(!out.status.success(), "{}", describe(&out));
}

#[test]
fn apd_service_starts_before_the_libvirt_daemons() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/apd.service"),
    )
    .expect("systemd/apd.service");
    let before: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Before="))
        .flat_map(str::split_whitespace)
        .collect();
    for daemon in ["libvirtd.service", "virtqemud.service"] {
        assert!(
            before.contains(&daemon),
            "apd.service lacks Before={daemon}"
        );
    }
}
