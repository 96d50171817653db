//! `apctl matrix` end to end on the seed host (private dbus-daemon, apsim
//! over FUSE, apd, apctl): the grid before and after the masks, with
//! guest1, guest2 and an mdev another tool made, adapter 6 configured off;
//! `--json` cell by cell; and the view on a real terminal (tmux), in colour
//! and with NO_COLOR, within 80 columns.

mod apctl_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use apctl_support::*;
use e2e::{describe, Host};
use serde_json::Value;

/// An mdev made by another tool, holding 07.0004 (free after the masks).
const FOREIGN: &str = "2c4b1a6e-93f0-4c1e-8f0a-5d6b7c8d9e0f";

/// The grid lines of a plain `apctl matrix` (everything before the blank
/// line that starts the legend).
fn grid_lines(text: &str) -> Vec<&str> {
    text.lines().take_while(|l| !l.is_empty()).collect()
}

/// Masks, guest1 and guest2 started, the foreign mdev, adapter 6 off;
/// returns guest1's and guest2's UUIDs.
fn seed_with_everything(host: &Host) -> (String, String) {
    seed_masks(host, false);
    let g1 = host.apctl_ok(&["define", "--name", "guest1", "-a", "5,6", "-d", "4,0xab"]);
    let g2 = host.apctl_ok(&["define", "--name", "guest2", "-a", "5", "-d", "0x47,0xff"]);
    host.apctl_ok(&["start", "guest1"]);
    host.apctl_ok(&["start", "guest2"]);
    host.write(
        "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
        FOREIGN,
    )
    .expect("create an mdev behind apd's back");
    for (attr, id) in [("assign_adapter", "7"), ("assign_domain", "4")] {
        host.write(&format!("devices/vfio_ap/matrix/{FOREIGN}/{attr}"), id)
            .unwrap_or_else(|e| panic!("{attr} {id} to the foreign mdev: {e}"));
    }
    host.wait_for("apd to see the foreign mdev", || {
        host.apctl_json(&["list"]).as_array().map(Vec::len) == Some(3)
    });
    host.apctl_ok(&["config", "6", "off"]);
    (g1.trim().to_string(), g2.trim().to_string())
}

#[test]
fn matrix_follows_the_seed_scenario() {
    let Some(host) = seed_host() else { return };

    let before = host.apctl_ok(&["matrix"]);
    assert_eq!(
        grid_lines(&before),
        [
            "ADAPTER    00 04 47 ab ff",
            "  1 CEX7C  H  H  H  H  H",
            "  2 CEX7A  H  H  H  H  H",
            "  3 CEX7P  H  H  H  H  H",
            "  4 CEX6C  H  H  H  H  H",
            "  5 CEX7C  H  H  H  H  H",
            "  6 CEX7C  H  H  H  H  H",
            "  7 CEX8P  H  H  H  H  H",
        ],
        "{before}"
    );
    let json = host.apctl_json(&["matrix"]);
    assert_eq!(json["adapters"], serde_json::json!([1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(json["domains"], serde_json::json!([0, 4, 0x47, 0xab, 0xff]));
    let cells = json["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 35, "7 adapters x 5 domains");
    assert!(
        cells
            .iter()
            .all(|c| c["owner"] == "host" && c["usable"] == true && c["reason"].is_null()),
        "{json}"
    );

    let (g1, g2) = seed_with_everything(&host);
    let after = host.apctl_ok(&["matrix"]);
    assert_eq!(
        grid_lines(&after),
        [
            "ADAPTER        00 04 47 ab ff",
            "  1 CEX7C      H  .  .  .  .",
            "  2 CEX7A      H  .  .  .  .",
            "  3 CEX7P      H  .  .  .  .",
            "  4 CEX6C      H  .  .  .  .",
            "  5 CEX7C      .  A  B  A  B",
            "  6 CEX7C off  .! A! .! A! .!",
            "  7 CEX8P      H  C  .  .  .",
        ],
        "{after}"
    );
    for legend in [
        format!("A  guest1  {g1}"),
        format!("B  guest2  {g2}"),
        format!("C  -  {FOREIGN}"),
    ] {
        assert!(
            after.lines().any(|l| l == legend),
            "no {legend:?} in\n{after}"
        );
    }

    let json = host.apctl_json(&["matrix"]);
    let cell = |apqn: &str| -> &Value {
        json["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .find(|c| c["apqn"] == apqn)
            .unwrap_or_else(|| panic!("no cell {apqn} in {json}"))
    };
    let off = cell("06.0004");
    assert_eq!(
        (&off["owner"], &off["mdev"], &off["name"], &off["usable"]),
        (
            &"mdev".into(),
            &Value::from(g1.as_str()),
            &"guest1".into(),
            &false.into()
        ),
        "{off}"
    );
    assert!(
        off["reason"]
            .as_str()
            .is_some_and(|r| r.contains("adapter 6 is configured off")),
        "{off}"
    );
    let theirs = cell("07.0004");
    assert_eq!(theirs["mdev"], FOREIGN, "{theirs}");
    assert_eq!(theirs["name"], Value::Null, "{theirs}");
    assert_eq!(cell("05.00ff")["name"], "guest2");
    assert_eq!(cell("01.0000")["owner"], "host");
    assert_eq!(cell("01.0004")["owner"], "free");
    assert_eq!(cell("06.0000")["owner"], "free");
    assert_eq!(cell("06.0000")["usable"], false);
    let names: Vec<&Value> = json["mdevs"]
        .as_array()
        .expect("mdevs")
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert_eq!(
        names,
        [&Value::from("guest1"), &"guest2".into(), &Value::Null]
    );

    // -a/-d limit rows and columns; ids outside the LPAR are named.
    let limited = host.apctl_ok(&["matrix", "-a", "5,9", "-d", "0x47,4"]);
    assert_eq!(
        grid_lines(&limited),
        ["ADAPTER    04 47", "  5 CEX7C  A  B"],
        "{limited}"
    );
    assert!(
        limited.contains("Not in the LPAR (no row): adapters 9\n"),
        "{limited}"
    );
    let bad = host.apctl(&["matrix", "-d", "0x100"]);
    assert_eq!(bad.status.code(), Some(2), "{}", describe(&bad));
}

/// Runs `tmux ARGS` on the test's own server socket.
fn tmux(socket: &Path, args: &[&str]) -> Output {
    Command::new("tmux")
        .arg("-S")
        .arg(socket)
        .arg("-f")
        .arg("/dev/null")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run tmux {}: {e}", args.join(" ")))
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The screen of the pane; with `escapes`, colours as escape sequences.
fn screen(socket: &Path, escapes: bool) -> String {
    let mut args = vec!["capture-pane", "-p", "-t", "matrix"];
    if escapes {
        args.push("-e");
    }
    let out = tmux(socket, &args);
    assert!(out.status.success(), "capture-pane: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn matrix_on_an_80_column_terminal() {
    if !tmux_available() {
        eprintln!("skipped: tmux is not installed (Debian: tmux); it plays the terminal here");
        return;
    }
    let Some(host) = seed_host() else { return };
    seed_with_everything(&host);
    let socket = host.dir().join("tmux.sock");
    // Colour first (a terminal, NO_COLOR unset), then NO_COLOR; the pane
    // stays open after both so its screen can be read.
    let script = format!(
        "env -u NO_COLOR TERM=screen APCTL_BUS='{bus}' {apctl} matrix; \
         echo colour-done; \
         NO_COLOR=1 APCTL_BUS='{bus}' {apctl} matrix; \
         echo plain-done; exec cat",
        bus = host.bus_address(),
        apctl = e2e::bin("apctl").display(),
    );
    let out = tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "matrix",
            "-x",
            "80",
            "-y",
            "60",
            "sh",
            "-c",
            &script,
        ],
    );
    assert!(out.status.success(), "tmux new-session: {}", describe(&out));
    host.wait_for("both matrix runs on the tmux screen", || {
        screen(&socket, false).contains("plain-done")
    });
    let plain = screen(&socket, false);
    let coloured = screen(&socket, true);
    let _ = tmux(&socket, &["kill-server"]);

    for line in plain.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
    let (first, second) = plain
        .split_once("colour-done")
        .unwrap_or_else(|| panic!("no colour-done on the screen:\n{plain}"));
    for run in [first, second] {
        assert!(run.contains("ADAPTER        00 04 47 ab ff"), "{plain}");
        assert!(run.contains("  5 CEX7C      .  A  B  A  B"), "{plain}");
        assert!(run.contains("A  guest1  "), "{plain}");
        assert!(
            run.contains("C  -  2c4b1a6e-93f0-4c1e-8f0a-5d6b7c8d9e0f"),
            "{plain}"
        );
    }
    // On a terminal unusable cells are red, not marked; NO_COLOR marks them.
    assert!(first.contains("  6 CEX7C off  .  A  .  A  ."), "{plain}");
    assert!(second.contains("  6 CEX7C off  .! A! .! A! .!"), "{plain}");
    let (coloured_run, _) = coloured.split_once("colour-done").expect("colour run");
    assert!(
        coloured_run.contains("\x1b[31m"),
        "no red on the terminal:\n{coloured}"
    );
}
