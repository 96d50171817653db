//! How each completed change is undone, and the writes both the steps and
//! their undoing make (one way to write an id, a mask, an mdev).

use super::report::ApplyCause;
use crate::host::{paths, HostError, Matrix};
use crate::mask::ApMask;
use crate::store::write_atomic;
use crate::sysfs::{Sysfs, SysfsError};
use crate::validate::AssignKind;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// How to undo one completed change.
#[derive(Debug, Clone)]
pub(super) enum Undo {
    /// Write the old mask back (`new`: what the step wrote).
    Mask {
        path: &'static str,
        old: ApMask,
        new: ApMask,
    },
    /// Put the old file content back (None: the file did not exist).
    File { path: PathBuf, old: Option<Vec<u8>> },
    /// Remove the mdev we created.
    Created { uuid: Uuid },
    /// Unassign what we assigned.
    Assigned {
        uuid: Uuid,
        kind: AssignKind,
        id: u8,
    },
    /// Assign back what we unassigned.
    Unassigned {
        uuid: Uuid,
        kind: AssignKind,
        id: u8,
    },
    /// Recreate the mdev we removed, with its matrix.
    Removed { uuid: Uuid, matrix: Matrix },
    /// Configure the adapter back.
    Configured { adapter: u8, was_on: bool },
}

pub(super) fn attr(verb: &str, kind: AssignKind) -> String {
    format!("{verb}_{}", kind.attr())
}

pub(super) fn write_id(
    sysfs: &dyn Sysfs,
    uuid: Uuid,
    verb: &str,
    kind: AssignKind,
    id: u8,
) -> Result<(), SysfsError> {
    sysfs.write(
        &paths::mdev_attr(&uuid, &attr(verb, kind)),
        format!("0x{id:x}\n").as_bytes(),
    )
}

pub(super) fn create_mdev(sysfs: &dyn Sysfs, uuid: Uuid) -> Result<(), SysfsError> {
    sysfs.write(
        paths::MDEV_CREATE,
        format!("{}\n", uuid.hyphenated()).as_bytes(),
    )
}

pub(super) fn remove_mdev(sysfs: &dyn Sysfs, uuid: Uuid) -> Result<(), SysfsError> {
    sysfs.write(&paths::mdev_attr(&uuid, "remove"), b"1\n")
}

pub(super) fn card_config_path(adapter: u8) -> String {
    format!("{}/config", paths::card(adapter))
}

pub(super) fn write_card_config(
    sysfs: &dyn Sysfs,
    adapter: u8,
    on: bool,
) -> Result<(), SysfsError> {
    sysfs.write(&card_config_path(adapter), if on { b"1\n" } else { b"0\n" })
}

/// Whether the card is configured on (its `config` reads 1).
pub(super) fn read_card_config(sysfs: &dyn Sysfs, adapter: u8) -> Result<bool, ApplyCause> {
    let path = card_config_path(adapter);
    let text = sysfs.read(&path)?;
    match text.trim_end() {
        "1" => Ok(true),
        "0" => Ok(false),
        other => Err(ApplyCause::Host(HostError::Parse {
            path,
            message: format!("expected 0 or 1, found {other:?}"),
        })),
    }
}

pub(super) fn read_mask(sysfs: &dyn Sysfs, path: &str) -> Result<ApMask, ApplyCause> {
    let text = sysfs.read(path)?;
    ApMask::parse_absolute(&text).map_err(|e| {
        ApplyCause::Host(HostError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })
    })
}

/// A store file's content before a step changes it, for the rollback;
/// read by the store's rules (no symlink followed, regular files only), so
/// a rollback can never copy a link's target into the store.
pub(super) fn snapshot(path: &Path) -> Result<Option<Vec<u8>>, ApplyCause> {
    Ok(crate::store::read_config(path)
        .map_err(ApplyCause::Store)?
        .map(String::into_bytes))
}

pub(super) fn restore_file(path: &Path, old: &Option<Vec<u8>>) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    match old {
        Some(bytes) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            write_atomic(dir, &name, bytes).map_err(|e| e.to_string())
        }
        None => match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
        },
    }
}

impl Undo {
    /// The mdev the change is on, if any.
    pub(super) fn mdev(&self) -> Option<Uuid> {
        match self {
            Undo::Created { uuid }
            | Undo::Removed { uuid, .. }
            | Undo::Assigned { uuid, .. }
            | Undo::Unassigned { uuid, .. } => Some(*uuid),
            Undo::Mask { .. } | Undo::File { .. } | Undo::Configured { .. } => None,
        }
    }

    /// What the undo does, for the report when it fails.
    pub(super) fn describe(&self) -> String {
        match self {
            Undo::Mask { path, old, .. } => format!("restore {path} to {old}"),
            Undo::File { path, old: Some(_) } => {
                format!("restore the old content of {}", path.display())
            }
            Undo::File { path, old: None } => format!("remove {}", path.display()),
            Undo::Created { uuid } => format!("remove the created mdev {}", uuid.hyphenated()),
            Undo::Assigned { uuid, kind, id } => format!(
                "unassign {} from mdev {}",
                kind.describe(*id),
                uuid.hyphenated()
            ),
            Undo::Unassigned { uuid, kind, id } => format!(
                "assign {} back to mdev {}",
                kind.describe(*id),
                uuid.hyphenated()
            ),
            Undo::Removed { uuid, .. } => {
                format!("recreate mdev {} with its old matrix", uuid.hyphenated())
            }
            Undo::Configured { adapter, was_on } => format!(
                "configure adapter {adapter} {} again",
                if *was_on { "on" } else { "off" }
            ),
        }
    }

    pub(super) fn run(&self, sysfs: &dyn Sysfs) -> Result<(), String> {
        let s = |e: SysfsError| e.to_string();
        match self {
            Undo::Mask { path, old, .. } => {
                sysfs.write(path, format!("{old}\n").as_bytes()).map_err(s)
            }
            Undo::File { path, old } => restore_file(path, old),
            Undo::Created { uuid } => remove_mdev(sysfs, *uuid).map_err(s),
            Undo::Assigned { uuid, kind, id } => {
                write_id(sysfs, *uuid, "unassign", *kind, *id).map_err(s)
            }
            Undo::Unassigned { uuid, kind, id } => {
                write_id(sysfs, *uuid, "assign", *kind, *id).map_err(s)
            }
            Undo::Removed { uuid, matrix } => {
                create_mdev(sysfs, *uuid).map_err(s)?;
                // Adapters first: with no domain yet there is no APQN to check.
                let mut failed = Vec::new();
                for (kind, ids) in [
                    (AssignKind::Adapter, matrix.adapters),
                    (AssignKind::Domain, matrix.domains),
                    (AssignKind::ControlDomain, matrix.control_domains),
                ] {
                    for id in ids.iter() {
                        if let Err(e) = write_id(sysfs, *uuid, "assign", kind, id) {
                            failed.push(e.to_string());
                        }
                    }
                }
                if failed.is_empty() {
                    Ok(())
                } else {
                    Err(failed.join("; "))
                }
            }
            Undo::Configured { adapter, was_on } => {
                write_card_config(sysfs, *adapter, *was_on).map_err(s)
            }
        }
    }
}
