//! Helpers shared by the tests of several packages. libap's simulator
//! tests and the end-to-end tests both prove that a refused or rolled-back
//! change left a directory (the definition store, apd's config dir) byte
//! for byte as it was; [`mdevctl`] runs the real mdevctl against a fake
//! root. Plain std code: it depends on nothing of this workspace, so any
//! package may take it as a dev-dependency.

pub mod mdevctl;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;

/// Every file and directory under `root`, by path relative to it
/// (directories end with `/` and hold no bytes), with each file's bytes.
/// A missing `root` gives an empty map.
pub fn dir_snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .map(|r| r.display().to_string())
                .unwrap_or_default();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The entries that differ between two snapshots, one line each
/// (`gone:`, `changed:`, `new:`), for failure messages. Empty when equal.
pub fn diff<V: PartialEq + Debug>(
    before: &BTreeMap<String, V>,
    after: &BTreeMap<String, V>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => out.push(format!("gone: {k} = {v:?}")),
            Some(w) if w != v => out.push(format!("changed: {k}: {v:?} -> {w:?}")),
            Some(_) => {}
        }
    }
    for (k, w) in after {
        if !before.contains_key(k) {
            out.push(format!("new: {k} = {w:?}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_see_every_change_and_nothing_else() {
        let dir = tempfile_dir();
        let root = dir.as_path();
        std::fs::create_dir_all(root.join("mdevs")).expect("mkdir");
        std::fs::write(root.join("mdevs/a.toml"), b"one").expect("write");
        std::fs::write(root.join("apd.toml"), b"masks").expect("write");
        let before = dir_snapshot(root);
        assert_eq!(
            before.keys().cloned().collect::<Vec<_>>(),
            vec!["apd.toml", "mdevs/", "mdevs/a.toml"]
        );
        assert!(diff(&before, &dir_snapshot(root)).is_empty());
        std::fs::write(root.join("mdevs/a.toml"), b"two").expect("write");
        std::fs::write(root.join("mdevs/b.toml"), b"new").expect("write");
        std::fs::remove_file(root.join("apd.toml")).expect("remove");
        let d = diff(&before, &dir_snapshot(root));
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].starts_with("gone: apd.toml"), "{d:?}");
        assert!(d[1].starts_with("changed: mdevs/a.toml"), "{d:?}");
        assert!(d[2].starts_with("new: mdevs/b.toml"), "{d:?}");
        assert!(dir_snapshot(&root.join("missing")).is_empty());
        std::fs::remove_dir_all(root).expect("clean up");
    }

    /// A fresh directory under the system temp dir (no dependency for it).
    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("testkit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }
}
