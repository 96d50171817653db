//! apctl as a process, without apd: argument parsing, usage errors (exit
//! 2), bad values refused before any connection (exit 1 or 2 with one
//! sentence), completions without apd, and the hint when apd is unreachable.

use assert_cmd::Command;

/// A bus address where nothing listens: any attempt to connect fails, so a
/// test that reaches the bus shows it in the message.
fn nowhere() -> String {
    let dir = std::env::temp_dir().join(format!("apctl-cli-test-{}", std::process::id()));
    format!("unix:path={}/no-bus-here", dir.display())
}

fn apctl() -> Command {
    let mut c = Command::cargo_bin("apctl").expect("the apctl binary is built");
    c.env("APCTL_BUS", nowhere()).env_remove("NO_COLOR");
    c
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = apctl().args(args).output().expect("apctl runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The rules every message obeys: no panic, no Debug output, no D-Bus names.
fn assert_clean(r: &Run) {
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "org.freedesktop",
        "Error {",
        "Some(",
        "MethodError",
    ] {
        assert!(
            !r.stderr.contains(bad),
            "stderr contains {bad:?}: {}",
            r.stderr
        );
    }
}

/// A refusal: exactly one line `apctl: ...` on stderr, nothing on stdout.
fn assert_one_sentence(r: &Run, code: i32, needle: &str) {
    assert_eq!(r.code, code, "exit status; stderr: {}", r.stderr);
    assert!(r.stdout.is_empty(), "stdout: {}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    assert!(r.stderr.starts_with("apctl: "), "{}", r.stderr);
    assert!(
        r.stderr.contains(needle),
        "expected {needle:?} in {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("cannot reach apd"),
        "bad input must be refused before connecting: {}",
        r.stderr
    );
    assert_clean(r);
}

#[test]
fn usage_errors_exit_2_with_clap_message() {
    for args in [
        vec!["bogus"],
        vec![],
        vec!["show"],
        vec!["list", "--defined", "--active"],
        vec!["define", "--auto", "--manual"],
        vec!["assign", "g", "--live", "--persistent", "-a", "5"],
        vec!["config", "5", "maybe"],
        vec!["config", "5"],
        vec!["completions", "tcsh"],
        vec!["export", "--format", "xml"],
        vec!["apply"],
        vec!["list", "--frobnicate"],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 2, "apctl {args:?}: {}", r.stderr);
        assert!(r.stderr.contains("error:"), "apctl {args:?}: {}", r.stderr);
        assert_clean(&r);
    }
}

#[test]
fn help_and_version_exit_0() {
    let r = run(&["--help"]);
    assert_eq!(r.code, 0);
    for cmd in [
        "status",
        "list",
        "show",
        "define",
        "undefine",
        "start",
        "stop",
        "assign",
        "unassign",
        "masks",
        "queues",
        "config",
        "check",
        "apply",
        "import-mdevctl",
        "export",
        "monitor",
        "matrix",
        "completions",
    ] {
        assert!(r.stdout.contains(cmd), "--help lacks {cmd}");
    }
    assert!(
        !r.stdout.contains("__complete-mdevs"),
        "hidden command shown"
    );
    let r = run(&["--version"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("apctl "), "{}", r.stdout);
}

#[test]
fn bad_id_lists_are_refused_before_anything_is_sent() {
    for (args, needle) in [
        (
            vec!["define", "-a", "5,,6"],
            "invalid adapter list \"5,,6\"",
        ),
        (vec!["define", "-d", "0x"], "invalid domain list \"0x\""),
        (
            vec!["assign", "guest1", "-a", "1-"],
            "invalid adapter list \"1-\"",
        ),
        (
            vec!["assign", "guest1", "-d", "300"],
            "invalid domain list \"300\"",
        ),
        (
            vec!["unassign", "guest1", "-c", "4-1"],
            "invalid control domain list \"4-1\"",
        ),
        (
            vec!["assign", "guest1", "-a", "5", "-a", "abc"],
            "invalid adapter list \"abc\"",
        ),
        (vec!["queues", "--adapter", "5,,6"], "invalid adapter list"),
        (vec!["queues", "--domain", "0x100"], "invalid domain list"),
        (
            vec!["matrix", "-a", "5", "-a", "5,,6"],
            "invalid adapter list \"5,,6\"",
        ),
        (
            vec!["matrix", "-d", "0x100"],
            "invalid domain list \"0x100\"",
        ),
        (vec!["config", "300", "on"], "invalid adapter \"300\""),
        (vec!["config", "0x", "off"], "invalid adapter \"0x\""),
        (vec!["define", "--uuid", "not-a-uuid"], "invalid UUID"),
        (vec!["define", "--name", "two words"], "invalid name"),
        (
            vec!["define", "--name", "62177883-f1bb-47f0-914d-32a22e3a8804"],
            "invalid name",
        ),
        (vec!["assign", "guest1"], "nothing to assign"),
        (vec!["unassign", "guest1"], "nothing to unassign"),
        (vec!["show", ""], "MDEV is empty"),
    ] {
        let r = run(&args);
        assert_one_sentence(&r, 2, needle);
    }
}

#[test]
fn huge_input_gets_a_short_sentence() {
    let huge = "5,".repeat(50_000);
    let r = run(&["assign", "guest1", "-a", &huge]);
    assert_one_sentence(&r, 2, "too long");
    assert!(r.stderr.len() < 300, "{} bytes", r.stderr.len());
    let huge = "9".repeat(100_000);
    let r = run(&["masks", "--apmask", &huge]);
    assert_one_sentence(&r, 2, "too long");
    let r = run(&["show", &"g".repeat(100_000)]);
    assert_one_sentence(&r, 2, "no mdev can be named");
    assert!(r.stderr.len() < 300, "{} bytes", r.stderr.len());
}

#[test]
fn malformed_masks_are_refused_with_the_kernel_rule() {
    for (spec, needle) in [
        ("+1,2", "must start with + or -"),
        ("0X12", "lowercase 0x"),
        ("-300", "above 255"),
        ("0x12 34", "unexpected"),
        ("+4-1", "backwards"),
        ("", "empty"),
    ] {
        let r = run(&["masks", "--apmask", spec]);
        assert_one_sentence(&r, 2, needle);
        assert!(r.stderr.contains("--apmask"), "{}", r.stderr);
    }
    let r = run(&["masks", "--aqmask", &format!("0x{}", "f".repeat(65))]);
    assert_one_sentence(&r, 2, "64 hex digits");
}

#[test]
fn bad_bus_is_a_usage_error() {
    let r = run(&["--bus", "sytem", "list"]);
    assert_one_sentence(&r, 2, "invalid bus \"sytem\"");
    let out = apctl()
        .env("APCTL_BUS", "nonsense")
        .arg("list")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("APCTL_BUS"));
}

#[test]
fn unreachable_apd_gives_the_hint() {
    for args in [
        vec!["status"],
        vec!["list"],
        vec!["--json", "list"],
        vec!["show", "guest1"],
        vec!["start", "guest1"],
        vec!["masks"],
        vec!["queues"],
        vec!["matrix"],
        vec!["monitor"],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 1, "apctl {args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr
                .starts_with("apctl: cannot reach apd on the bus at unix:path="),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("Use --bus or APCTL_BUS"), "{}", r.stderr);
        assert_clean(&r);
    }
    // --bus wins over the environment.
    let r = run(&["--bus", "unix:path=/nonexistent/other", "list"]);
    assert!(r.stderr.contains("/nonexistent/other"), "{}", r.stderr);
}

#[test]
fn completions_work_without_apd() {
    for (shell, needle) in [
        ("bash", "complete -F _apctl_mdevs"),
        ("zsh", "#compdef apctl"),
        ("fish", "complete -c apctl"),
    ] {
        let r = run(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains(needle), "{shell}");
        assert!(
            r.stdout.contains("__complete-mdevs"),
            "{shell}: no dynamic mdevs"
        );
        assert!(r.stderr.is_empty(), "{}", r.stderr);
    }
    // The hidden helper is silent when apd cannot be reached.
    let r = run(&["__complete-mdevs"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.is_empty() && r.stderr.is_empty());
}

#[test]
fn files_are_checked_before_connecting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run(&[
        "apply",
        &dir.path().join("missing.toml").display().to_string(),
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("apctl: cannot read "), "{}", r.stderr);
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[mdev]]\nname = \"g\"\nadapters = [300]\n").expect("write");
    for args in [
        vec!["apply", bad.to_str().expect("utf-8")],
        vec!["check", bad.to_str().expect("utf-8")],
        vec!["apply", "--dry-run", bad.to_str().expect("utf-8")],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.contains("is not a valid desired-state file"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("300"), "{}", r.stderr);
        assert_clean(&r);
    }
    let relative = dir.path().join("relative.toml");
    std::fs::write(&relative, "[masks]\napmask = \"-5,-6\"\n").expect("write");
    let r = run(&["apply", relative.to_str().expect("utf-8")]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("relative"), "{}", r.stderr);
    let r = run(&[
        "import-mdevctl",
        &dir.path().join("nope").display().to_string(),
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("apctl: nothing imported: cannot read"),
        "{}",
        r.stderr
    );
}

#[test]
fn export_format_and_dir_go_together() {
    let r = run(&["export", "--format", "mdevctl"]);
    assert_one_sentence(&r, 2, "--format mdevctl needs DIR");
    let r = run(&["export", "/tmp/somewhere"]);
    assert_one_sentence(&r, 2, "DIR is only for --format mdevctl");
}

#[test]
fn closed_stdout_is_not_a_panic() {
    // `apctl completions bash | head -c 10`: the reader goes away early.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("apctl"))
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.code().is_some(), "killed by a signal");
}
