//! Shared by the end-to-end tests that drive apctl (`apctl_commands`,
//! `apctl_seed`, `apctl_matrix`, `apply_e2e`, `walkthrough`): the seed host or the reason to
//! skip, the text of an apctl run, the seed documents' masks, and finding an
//! mdev in `apctl --json list`.

#![allow(dead_code)]

use std::process::Output;

use e2e::{describe, fuse_available, Host, SEED_HOST};
use serde_json::Value;

/// The seed documents' host over FUSE, or `None` (with the reason on
/// stderr) where FUSE is not available.
pub fn seed_host() -> Option<Host> {
    if !fuse_available() {
        eprintln!("skipped: FUSE is not available here (/dev/fuse, root or fusermount3)");
        return None;
    }
    Some(Host::start(SEED_HOST))
}

/// What a run printed on stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a run printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A refusal: exit 1, nothing on stdout, exactly `apctl: <sentence>\n` on stderr.
pub fn assert_refused(out: &Output, sentence: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", describe(out));
    assert_eq!(stdout(out), "", "{}", describe(out));
    assert_eq!(
        stderr(out),
        format!("apctl: {sentence}\n"),
        "{}",
        describe(out)
    );
}

/// The seed documents' masks: adapters 5, 6 and domains 4, 0x47, 0xab, 0xff
/// go to vfio_ap (`apctl masks`, live only or also `--persistent`).
pub fn seed_masks(host: &Host, persistent: bool) {
    let mut args = vec![
        "masks",
        "--apmask",
        "-5,-6",
        "--aqmask",
        "-4,-0x47,-0xab,-0xff",
    ];
    if persistent {
        args.push("--persistent");
    }
    host.apctl_ok(&args);
}

/// The mdev called `name` in the output of `apctl --json list`.
pub fn by_name<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()
        .expect("list --json is an array")
        .iter()
        .find(|m| m["name"] == name)
}

/// The mdev called `name`, which must be in the list.
pub fn mdev<'a>(list: &'a Value, name: &str) -> &'a Value {
    by_name(list, name).unwrap_or_else(|| panic!("no {name} in {list}"))
}
