//! README.md and .ci/run must agree: CI runs exactly the test command the
//! README gives newcomers, and the README opens with the walk-through.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn read(rel: &str) -> String {
    let path = repo_file(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The lines of the first ```sh block between `<!-- NAME:begin -->` and
/// `<!-- NAME:end -->`.
fn marked_commands(readme: &str, name: &str) -> Vec<String> {
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let start = readme
        .find(&begin)
        .unwrap_or_else(|| panic!("README.md lacks {begin}"));
    let stop = readme[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("README.md lacks {end} after {begin}"));
    let section = &readme[start + begin.len()..start + stop];
    let body = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(body, _)| body)
        .unwrap_or_else(|| panic!("README.md: no ```sh block between {begin} and {end}"));
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn ci_runs_the_readme_test_command_verbatim() {
    let readme = read("README.md");
    let ci = read(".ci/run");
    let commands = marked_commands(&readme, "test-command");
    assert!(
        !commands.is_empty(),
        "README.md's test command block is empty"
    );
    let ci_lines: Vec<&str> = ci.lines().map(str::trim).collect();
    for command in &commands {
        assert!(
            ci_lines.contains(&command.as_str()),
            ".ci/run does not run README.md's test command `{command}` as a line of its own"
        );
    }
    let clippy = ci_lines
        .iter()
        .position(|l| l.starts_with("cargo clippy"))
        .expect(".ci/run runs clippy");
    let fmt = ci_lines
        .iter()
        .position(|l| l.starts_with("cargo fmt"))
        .expect(".ci/run checks formatting");
    let tests = ci_lines
        .iter()
        .position(|l| *l == commands[0])
        .expect("found above");
    assert!(
        fmt < tests && clippy < tests,
        "format and lint run before the tests"
    );
}

#[test]
fn ci_script_is_strict_and_executable() {
    let ci = read(".ci/run");
    assert!(
        ci.starts_with("#!/usr/bin/env bash\n"),
        ".ci/run is a bash script"
    );
    assert!(ci.contains("set -euo pipefail"));
    let mode = fs::metadata(repo_file(".ci/run"))
        .expect(".ci/run exists")
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, ".ci/run is not executable");
}

#[test]
fn readme_opens_with_the_walkthrough_command() {
    let readme = read("README.md");
    let first_block = readme
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(body, _)| body.trim())
        .expect("README.md has a ```sh block");
    assert_eq!(
        first_block,
        "cargo build --release --workspace && ./target/release/ap-walkthrough"
    );
    let before: usize = readme[..readme.find("```sh").expect("found above")]
        .lines()
        .count();
    assert!(before <= 5, "the command is among README.md's first lines");
}

#[test]
fn marked_commands_reads_only_the_marked_block() {
    let text = "x\n<!-- a:begin -->\n```sh\n one\n\ntwo\n```\n<!-- a:end -->\n```sh\nthree\n```\n";
    assert_eq!(marked_commands(text, "a"), vec!["one", "two"]);
}

#[test]
#[should_panic(expected = "README.md lacks <!-- b:begin -->")]
fn a_missing_marker_is_named() {
    marked_commands("no markers", "b");
}
