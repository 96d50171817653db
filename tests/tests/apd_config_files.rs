//! apd reads its configuration directory as root and its reports are open
//! to every uid (design.md, "Definitions on disk"): links, FIFOs,
//! directories, device nodes and files that do not parse in `mdevs/` and
//! as `apd.toml` are reported by path and kind, never followed or opened,
//! and nothing of a file's content reaches status, check, D-Bus or the log.

use e2e::{describe, Host, HostOptions, Mode, SEED_HOST};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

/// A line of a root-only file; the marker must never appear in any output.
const SECRET: &str = "root:$6$SECRET-MARKER-c41d$hash:19000:0:99999:7:::";
const MARKER: &str = "SECRET-MARKER";
const GOOD: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";

fn uuid_file(n: u32) -> String {
    format!("00000000-0000-0000-0000-{n:012x}.toml")
}

fn plant(cfg: &Path, outside: &Path) -> Vec<(String, &'static str)> {
    let secret = outside.join("shadow");
    fs::write(&secret, format!("{SECRET}\n")).expect("write the secret");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod 600");
    let mdevs = cfg.join("mdevs");
    fs::create_dir_all(&mdevs).expect("mdevs dir");
    fs::write(
        mdevs.join(format!("{GOOD}.toml")),
        format!("uuid = \"{GOOD}\"\nname = \"guest1\"\nautostart = false\nadapters = [5, 6]\ndomains = [4, 0xab]\ncontrol_domains = []\n"),
    )
    .expect("the good definition");
    let mut expect = Vec::new();
    symlink(&secret, mdevs.join(uuid_file(1))).expect("link outside");
    expect.push((uuid_file(1), "symbolic link"));
    let inside = mdevs.join("elsewhere");
    fs::write(&inside, format!("uuid = \"{}\"\n", &uuid_file(2)[..36])).expect("write");
    symlink(&inside, mdevs.join(uuid_file(2))).expect("link inside");
    expect.push((uuid_file(2), "symbolic link"));
    let fifo = mdevs.join(uuid_file(3));
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success(), "mkfifo");
    expect.push((uuid_file(3), "named pipe"));
    fs::create_dir(mdevs.join(uuid_file(4))).expect("a directory");
    expect.push((uuid_file(4), "directory"));
    let node = Command::new("mknod")
        .arg(mdevs.join(uuid_file(5)))
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if node {
        expect.push((uuid_file(5), "device node"));
    } else {
        eprintln!("e2e: mknod refused (not root?): the device node case is skipped");
    }
    // A regular file whose parse error would quote the secret line.
    fs::write(
        mdevs.join(uuid_file(6)),
        format!("uuid = \"{}\"\n{SECRET}\n", &uuid_file(6)[..36]),
    )
    .expect("write");
    expect.push((uuid_file(6), "line 2, column"));
    symlink(&secret, cfg.join("apd.toml")).expect("link apd.toml");
    expect.push(("apd.toml".into(), "symbolic link"));
    expect
}

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.contains(MARKER),
        "{what} quotes the secret file:\n{text}"
    );
}

#[test]
fn links_and_special_files_are_reported_and_nothing_of_them_is_quoted() {
    let mut host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        ..HostOptions::new(SEED_HOST)
    });
    host.stop_apd();
    let outside = tempfile::tempdir().expect("tempdir");
    let expect = plant(host.config_dir(), outside.path());
    // A FIFO opened for reading would hang apd here, before READY.
    host.start_apd();

    let status = host.apctl_json(&["status"]);
    assert_eq!(status["defined"], 1, "the good definition loads: {status}");
    let errors = status["load_errors"].as_array().expect("load_errors");
    assert_eq!(errors.len(), expect.len(), "{status}");
    let text = host.apctl_ok(&["status"]);
    for (file, says) in &expect {
        let line = text
            .lines()
            .find(|l| l.contains(file.as_str()))
            .unwrap_or_else(|| panic!("status does not name {file}:\n{text}"));
        assert!(line.contains(says), "{file} must say {says:?}: {line}");
        assert_eq!(line.matches(file.as_str()).count(), 1, "path twice: {line}");
    }
    let check = host.apctl(&["check"]);
    assert_eq!(check.status.code(), Some(1), "{}", describe(&check));
    let check_json = host.apctl(&["--json", "check"]);
    let nobody = host.apctl_as(65534, 65534, &["status"]);
    assert!(nobody.status.success(), "{}", describe(&nobody));
    let nobody_check = host.apctl_as(65534, 65534, &["--json", "check"]);
    for (what, out) in [
        ("apctl status", text.clone()),
        ("apctl --json status", status.to_string()),
        ("apctl check", describe(&check)),
        ("apctl --json check", describe(&check_json)),
        ("apctl status as nobody", describe(&nobody)),
        ("apctl --json check as nobody", describe(&nobody_check)),
        ("apd's log", host.apd_log()),
    ] {
        assert_clean(what, &out);
    }
    // Nothing was replaced, removed or followed.
    let mdevs = host.config_dir().join("mdevs");
    assert!(fs::symlink_metadata(mdevs.join(uuid_file(1)))
        .expect("link kept")
        .file_type()
        .is_symlink());
    assert!(fs::symlink_metadata(host.config_dir().join("apd.toml"))
        .expect("link kept")
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(outside.path().join("shadow")).expect("secret"),
        format!("{SECRET}\n")
    );
}
