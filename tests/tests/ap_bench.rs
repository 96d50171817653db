//! `ap-bench --smoke`: the end-to-end benchmark at tiny sizes (5 mdevs,
//! in-process simulator, seed host), so its code cannot rot. It checks that
//! every scenario ran and that `--write` replaces only its own section;
//! never how long anything took.

use std::fs;
use std::process::Command;

const AP_BENCH: &str = env!("CARGO_BIN_EXE_ap-bench");
const BEGIN: &str = "<!-- ap-bench:begin";
const END: &str = "<!-- ap-bench:end -->";

/// The table rows (`| in-process | seed | what | runs | ...`) of the section.
fn rows(section: &str) -> Vec<Vec<String>> {
    section
        .lines()
        .filter(|l| l.starts_with("| in-process |"))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn smoke_run_covers_every_scenario_and_writes_its_section() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("BENCHMARKS.md");
    let before = "# Benchmarks\n\n## libap (criterion)\n\n| a | b |\n|---|---|\n| kept | 1 ns |\n";
    fs::write(&file, before).expect("write the benchmarks file");

    let out = Command::new(AP_BENCH)
        .args(["--smoke", "--write"])
        .arg(&file)
        .output()
        .expect("run ap-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ap-bench --smoke failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    let rows = rows(&stdout);
    let whats: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    for wanted in [
        "apd spawn → READY, empty config dir",
        "`apctl --version` (process start, no D-Bus)",
        "`apctl import-mdevctl` of 5 definitions (setup, once)",
        "`apctl list`, 5 defined",
        "`apctl --json list`, 5 defined",
        "D-Bus `ListMdevs` alone (open connection), 5 defined",
        "`apctl show` (active mdev)",
        "`apctl queues` (35 queues)",
        "`apctl assign` refused (queue in use, EADDRINUSE)",
        "`apctl define` (one mdev, 1 APQN)",
        "`apctl start` (one mdev, 1 APQN)",
        "`apctl stop` (one mdev, 1 APQN)",
        "D-Bus `ConfigureAdapter` 7 off (5 queues) → `Adapters` shows it",
        "D-Bus `ConfigureAdapter` 7 on → `Adapters` shows it",
        "boot restore, 1 autostart: apd spawn → READY",
        "boot restore, 5 autostart: apd spawn → READY",
        "boot restore, 5 autostart: apd spawn → 5 active seen by `ListMdevs`",
        "`apctl list`, 5 active",
        "reboot, 5 autostart: apd spawn → READY",
    ] {
        assert!(whats.contains(&wanted), "no row {wanted:?} in:\n{stdout}");
    }
    for row in &rows {
        assert_eq!(row.len(), 7, "a row has 7 cells: {row:?}");
        assert_eq!(row[1], "seed", "smoke runs the seed host only: {row:?}");
        let runs: usize = row[3].parse().expect("the runs cell is a number");
        assert!(runs >= 1, "every smoke scenario ran: {row:?}");
        assert!(
            row[4].ends_with(" ms") || row[4].ends_with(" s"),
            "the median is a duration: {row:?}"
        );
    }
    assert!(
        !stdout.contains("| FUSE |"),
        "smoke is in-process only:\n{stdout}"
    );
    assert!(stdout.contains("Machine: ") && stdout.contains(" UTC"));

    // --write appended the section once, kept the rest, and a second run
    // replaces it instead of adding another.
    let written = fs::read_to_string(&file).expect("read the benchmarks file");
    assert!(written.starts_with(before.trim_end()), "{written}");
    assert_eq!(written.matches(BEGIN).count(), 1, "{written}");
    assert_eq!(written.matches(END).count(), 1, "{written}");
    let status = Command::new(AP_BENCH)
        .args(["--smoke", "--runs", "1", "--write"])
        .arg(&file)
        .output()
        .expect("run ap-bench again");
    assert!(status.status.success(), "second run failed");
    let rewritten = fs::read_to_string(&file).expect("read the benchmarks file");
    assert_eq!(rewritten.matches(BEGIN).count(), 1, "{rewritten}");
    assert!(rewritten.contains("| kept | 1 ns |"));
    assert!(rewritten.contains("ap-bench --smoke --runs 1"));
}

#[test]
fn bad_arguments_are_a_usage_error() {
    let out = Command::new(AP_BENCH)
        .args(["--runs", "zero"])
        .output()
        .expect("run ap-bench");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--runs \"zero\""), "{stderr}");
    assert!(stderr.contains("usage: ap-bench"), "{stderr}");
}
