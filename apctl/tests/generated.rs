//! The checked-in completions (`completions/`) and man pages (`man/`) must
//! be what the current clap definitions generate. Regenerate them with
//! `APCTL_REGENERATE=1 cargo test -p apctl --test generated`.

use apctl::cli::CompletionShell;
use apctl::generate;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("apctl lives inside the workspace")
        .to_path_buf()
}

fn regenerate() -> bool {
    std::env::var_os("APCTL_REGENERATE").is_some_and(|v| v == "1")
}

/// Compares (or with APCTL_REGENERATE=1 rewrites) each file; returns the
/// names of stale ones.
fn check(dir: &Path, files: &[(String, String)]) -> Vec<String> {
    let mut stale = Vec::new();
    if regenerate() {
        std::fs::create_dir_all(dir).expect("create the directory");
    }
    for (name, text) in files {
        let path = dir.join(name);
        if regenerate() {
            std::fs::write(&path, text).expect("write the generated file");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(old) if &old == text => {}
            _ => stale.push(path.display().to_string()),
        }
    }
    stale
}

#[test]
fn completions_are_current() {
    let files: Vec<(String, String)> = [
        CompletionShell::Bash,
        CompletionShell::Zsh,
        CompletionShell::Fish,
    ]
    .into_iter()
    .map(|s| {
        (
            generate::completion_file(s).to_string(),
            generate::completion(s),
        )
    })
    .collect();
    let stale = check(&workspace().join("completions"), &files);
    assert!(
        stale.is_empty(),
        "stale completions: {stale:?}; run APCTL_REGENERATE=1 cargo test -p apctl --test generated"
    );
}

#[test]
fn man_pages_are_current() {
    let pages = generate::man_pages();
    let dir = workspace().join("man");
    let stale = check(&dir, &pages);
    assert!(
        stale.is_empty(),
        "stale man pages: {stale:?}; run APCTL_REGENERATE=1 cargo test -p apctl --test generated"
    );
    // A page for a subcommand that no longer exists is stale too.
    let expected: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .expect("man/ exists")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("apctl") && n.ends_with(".8") && !expected.contains(&n.as_str()))
        .collect();
    if regenerate() {
        for n in &leftovers {
            std::fs::remove_file(dir.join(n)).expect("remove a page of a removed subcommand");
        }
    } else {
        assert!(
            leftovers.is_empty(),
            "man pages of removed subcommands: {leftovers:?}"
        );
    }
}
