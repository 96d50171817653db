//! apd and mdevctl side by side: an mdev defined in both apd's store
//! (`CFG/mdevs/<uuid>.toml`) and mdevctl's directory
//! (`/etc/mdevctl.d/matrix/<uuid>`) is restored at boot by whichever comes
//! first — apd when it starts, mdevctl from its udev rule when the matrix
//! device registers — and the other then finds it existing, possibly with
//! another matrix. One owner per mdev: the rule here finds those with two.

use crate::definition::Definition;
use crate::mdevctl::PARENT;
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// mdevctl's directory of vfio_ap definitions under `root` (the directory
/// that plays `/`): `<root>/etc/mdevctl.d/matrix`.
pub fn mdevctl_dir(root: &Path) -> PathBuf {
    root.join("etc/mdevctl.d").join(PARENT)
}

/// One mdev both apd and mdevctl define.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinedTwice {
    /// The mdev.
    pub uuid: Uuid,
    /// apd's name for it, if any.
    pub name: Option<String>,
    /// apd's definition file.
    pub apd_file: PathBuf,
    /// mdevctl's definition file.
    pub mdevctl_file: PathBuf,
}

impl DefinedTwice {
    /// One sentence naming both files and why it matters; the commands
    /// that keep one of the two are the front end's to name.
    pub fn problem(&self) -> String {
        let uuid = self.uuid.hyphenated();
        let label = match &self.name {
            Some(n) => format!("{n} ({uuid})"),
            None => uuid.to_string(),
        };
        format!(
            "{label} is defined twice, by apd in {} and by mdevctl in {}: at boot each restores it \
             and the second finds it already there, so keep one",
            self.apd_file.display(),
            self.mdevctl_file.display(),
        )
    }
}

/// mdevctl's definition files by UUID (file names that are UUIDs, in either
/// case); an absent or unreadable directory holds none.
fn mdevctl_files(dir: &Path) -> BTreeMap<Uuid, PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let uuid = Uuid::try_parse(&name).ok().filter(|_| name.len() == 36)?;
            Some((uuid, e.path()))
        })
        .collect()
}

/// The definitions of `defs` (apd's, stored in `store`) that mdevctl
/// defines too, ascending by UUID; none when the store does not look
/// beside mdevctl.
pub fn defined_twice(store: &Store, defs: &[Definition]) -> Vec<DefinedTwice> {
    let Some(dir) = store.mdevctl_dir() else {
        return Vec::new();
    };
    let theirs = mdevctl_files(dir);
    let mut out: Vec<DefinedTwice> = defs
        .iter()
        .filter_map(|d| {
            theirs.get(&d.uuid).map(|file| DefinedTwice {
                uuid: d.uuid,
                name: d.name.clone(),
                apd_file: store.path_of(d.uuid),
                mdevctl_file: file.clone(),
            })
        })
        .collect();
    out.sort_by_key(|d| d.uuid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_uuids_both_define_and_names_both_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let cfg = root.path().join("etc/apd");
        let store = Store::new(&cfg).beside_mdevctl(root.path());
        let theirs = root.path().join("etc/mdevctl.d/matrix");
        assert_eq!(store.mdevctl_dir(), Some(theirs.as_path()));
        let mut g1 = Definition::new(Uuid::from_u128(1));
        g1.name = Some("guest1".into());
        let g2 = Definition::new(Uuid::from_u128(2));
        let g3 = Definition::new(Uuid::from_u128(3));
        let defs = [g1, g2, g3];
        // No mdevctl directory: nothing.
        assert_eq!(defined_twice(&store, &defs), vec![]);
        std::fs::create_dir_all(&theirs).expect("mkdir");
        std::fs::write(theirs.join("00000000-0000-0000-0000-000000000001"), "{}").expect("w");
        // mdevctl's own spelling is lower case; upper case is the same mdev.
        std::fs::write(theirs.join("00000000-0000-0000-0000-00000000000A"), "{}").expect("w");
        std::fs::write(theirs.join("00000000-0000-0000-0000-000000000003"), "{}").expect("w");
        std::fs::write(theirs.join("notes"), "").expect("w");
        let found = defined_twice(&store, &defs);
        assert_eq!(
            found.iter().map(|d| d.uuid).collect::<Vec<_>>(),
            vec![Uuid::from_u128(1), Uuid::from_u128(3)]
        );
        let s = found[0].problem();
        assert!(
            s.starts_with("guest1 (00000000-0000-0000-0000-000000000001) is defined twice"),
            "{s}"
        );
        assert!(
            s.contains(&store.path_of(Uuid::from_u128(1)).display().to_string()),
            "{s}"
        );
        assert!(
            s.contains(
                &theirs
                    .join("00000000-0000-0000-0000-000000000001")
                    .display()
                    .to_string()
            ),
            "{s}"
        );
        assert!(s.ends_with("so keep one"), "{s}");
        // A store that does not look beside mdevctl finds nothing.
        assert_eq!(defined_twice(&Store::new(&cfg), &defs), vec![]);
    }
}
