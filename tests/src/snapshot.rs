//! Whole-host snapshots for "nothing changed" checks: every readable file
//! and link of a mounted simulator, and every file of apd's configuration
//! directory, compared with testkit's diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Host;

/// Every readable file (content) and symlink (target) under the mount, except
/// the simulator's control directory and IOMMU group numbers (allocated anew
/// when an mdev is re-created; no tool can choose them).
pub fn sysfs_snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let rel = p
                .strip_prefix(root)
                .map(|r| r.display().to_string())
                .unwrap_or_default();
            if rel == ".apsim" || rel == "kernel/iommu_groups" || rel.ends_with("/iommu_group") {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let t = std::fs::read_link(&p)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                out.insert(rel, format!("-> {t}"));
            } else if meta.is_dir() {
                out.insert(rel.clone(), "<dir>".to_string());
                walk(root, &p, out);
            } else if let Ok(text) = std::fs::read(&p) {
                out.insert(rel, String::from_utf8_lossy(&text).into_owned());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Both snapshots of a host: (sysfs, definitions).
pub type Snapshot = (BTreeMap<String, String>, BTreeMap<String, Vec<u8>>);

/// The host's sysfs (a FUSE host) and configuration directory now.
pub fn snapshot(host: &Host) -> Snapshot {
    (
        sysfs_snapshot(host.sysfs()),
        testkit::dir_snapshot(host.config_dir()),
    )
}

/// Panics, showing the differences, when anything changed.
pub fn assert_unchanged(before: &Snapshot, after: &Snapshot, what: &str) {
    let d = testkit::diff(&before.0, &after.0);
    assert!(d.is_empty(), "{what}: sysfs changed: {d:#?}");
    let d = testkit::diff(&before.1, &after.1);
    assert!(d.is_empty(), "{what}: the definitions changed: {d:#?}");
}
