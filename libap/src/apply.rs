//! Running a [`Plan`]: each step in order through [`Sysfs`] and the
//! [`Store`]; when one fails, every completed step is undone in reverse
//! order, so the host and the definitions on disk are as before.
//!
//! The caller holds the writer lock (`/run/lock/s390apconfig.lock`);
//! [`execute`] takes none.

use crate::host::{paths, Host, HostError, Matrix};
use crate::mask::ApMask;
use crate::plan::{Plan, Step};
use crate::store::{write_atomic, Store, StoreError};
use crate::sysfs::{Sysfs, SysfsError};
use crate::validate::AssignKind;
use std::fmt;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// What a successful run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// The steps done, in order (all of the plan's).
    pub done: Vec<Step>,
}

/// Why a step (or its undo) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyCause {
    /// The kernel refused a write, or a sysfs read failed.
    #[error("{0}")]
    Sysfs(#[from] SysfsError),
    /// A definition or mask file could not be written.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The live state could not be read.
    #[error("{0}")]
    Host(#[from] HostError),
}

impl ApplyCause {
    /// The errno, when the kernel or the OS gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            ApplyCause::Sysfs(e) => Some(e.errno),
            ApplyCause::Store(StoreError::Io { errno, .. }) => *errno,
            ApplyCause::Host(HostError::Sysfs(e)) => Some(e.errno),
            _ => None,
        }
    }
}

/// A failed apply: which step, why, and whether everything done before it
/// was undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError {
    /// 1-based position of the failed step.
    pub index: usize,
    /// Number of steps in the plan.
    pub total: usize,
    /// The step that failed (boxed: a step holds whole definitions).
    pub failed_step: Box<Step>,
    /// Why it failed (names the path and the errno).
    pub cause: Box<ApplyCause>,
    /// True when every completed step was undone.
    pub rolled_back: bool,
    /// One sentence per undo that failed; empty when `rolled_back`.
    pub not_rolled_back: Vec<String>,
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} of {} failed ({}): {}; ",
            self.index,
            self.total,
            self.failed_step.describe(),
            self.cause
        )?;
        let done = self.index.saturating_sub(1);
        if self.rolled_back {
            match done {
                0 => write!(
                    f,
                    "it was the first step, so the host and the definitions are as before"
                ),
                1 => write!(
                    f,
                    "the completed step was rolled back, so the host and the definitions are as before"
                ),
                n => write!(
                    f,
                    "the {n} completed steps were rolled back, so the host and the definitions are as before"
                ),
            }
        } else {
            write!(
                f,
                "the rollback was incomplete: {}",
                self.not_rolled_back.join("; ")
            )
        }
    }
}

impl std::error::Error for ApplyError {}

/// How to undo one completed change.
#[derive(Debug, Clone)]
enum Undo {
    /// Write the old mask back.
    Mask { path: &'static str, old: ApMask },
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
}

fn attr(verb: &str, kind: AssignKind) -> String {
    format!("{verb}_{}", kind.attr())
}

fn write_id(
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

fn create_mdev(sysfs: &dyn Sysfs, uuid: Uuid) -> Result<(), SysfsError> {
    sysfs.write(
        paths::MDEV_CREATE,
        format!("{}\n", uuid.hyphenated()).as_bytes(),
    )
}

fn remove_mdev(sysfs: &dyn Sysfs, uuid: Uuid) -> Result<(), SysfsError> {
    sysfs.write(&paths::mdev_attr(&uuid, "remove"), b"1\n")
}

fn read_mask(sysfs: &dyn Sysfs, path: &str) -> Result<ApMask, ApplyCause> {
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
fn snapshot(path: &Path) -> Result<Option<Vec<u8>>, ApplyCause> {
    Ok(crate::store::read_config(path)
        .map_err(ApplyCause::Store)?
        .map(String::into_bytes))
}

fn restore_file(path: &Path, old: &Option<Vec<u8>>) -> Result<(), String> {
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
    /// What the undo does, for the report when it fails.
    fn describe(&self) -> String {
        match self {
            Undo::Mask { path, old } => format!("restore {path} to {old}"),
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
        }
    }

    fn run(&self, sysfs: &dyn Sysfs) -> Result<(), String> {
        let s = |e: SysfsError| e.to_string();
        match self {
            Undo::Mask { path, old } => sysfs.write(path, format!("{old}\n").as_bytes()).map_err(s),
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
        }
    }
}

/// Run one step; on success its undo entries are on `undo`. File steps
/// push their undo before writing, so a write that fails half-way (renamed
/// but not synced) is restored too.
fn run_step(
    step: &Step,
    sysfs: &dyn Sysfs,
    store: &Store,
    undo: &mut Vec<Undo>,
) -> Result<(), ApplyCause> {
    match step {
        Step::SetMasks { apmask, aqmask, .. } => {
            for (path, new) in [(paths::APMASK, apmask), (paths::AQMASK, aqmask)] {
                let old = read_mask(sysfs, path)?;
                if old != *new {
                    sysfs.write(path, format!("{new}\n").as_bytes())?;
                    undo.push(Undo::Mask { path, old });
                }
            }
        }
        Step::StoreMasks { apmask, aqmask } => {
            let path = store.masks_path();
            undo.push(Undo::File {
                old: snapshot(&path)?,
                path,
            });
            store.save_masks(*apmask, *aqmask)?;
        }
        Step::Define(def) | Step::Redefine { new: def, .. } => {
            let path = store.path_of(def.uuid);
            undo.push(Undo::File {
                old: snapshot(&path)?,
                path,
            });
            store.save(def)?;
        }
        Step::Undefine(def) => {
            let path = store.path_of(def.uuid);
            undo.push(Undo::File {
                old: snapshot(&path)?,
                path,
            });
            store.remove(def.uuid)?;
        }
        Step::Create { uuid, .. } => {
            create_mdev(sysfs, *uuid)?;
            undo.push(Undo::Created { uuid: *uuid });
        }
        Step::Assign { uuid, kind, id, .. } => {
            write_id(sysfs, *uuid, "assign", *kind, *id)?;
            undo.push(Undo::Assigned {
                uuid: *uuid,
                kind: *kind,
                id: *id,
            });
        }
        Step::Unassign { uuid, kind, id, .. } => {
            write_id(sysfs, *uuid, "unassign", *kind, *id)?;
            undo.push(Undo::Unassigned {
                uuid: *uuid,
                kind: *kind,
                id: *id,
            });
        }
        Step::Remove { uuid, matrix, .. } => {
            // Recreate it as it is now, not as it was when planned.
            let live = match Host::read_mdev(sysfs, *uuid)? {
                Some(m) => m.matrix,
                None => *matrix,
            };
            remove_mdev(sysfs, *uuid)?;
            undo.push(Undo::Removed {
                uuid: *uuid,
                matrix: live,
            });
        }
    }
    Ok(())
}

/// Run `plan` through `sysfs` and `store`. On the first failure every
/// completed step is undone in reverse order and the error says which step
/// failed, why, and whether the rollback was complete.
pub fn execute(plan: &Plan, sysfs: &dyn Sysfs, store: &Store) -> Result<ApplyReport, ApplyError> {
    // Directories a definition write may create; removed again on rollback
    // when they were not there before and are empty.
    let created_dirs: Vec<PathBuf> = [store.mdevs_dir(), store.dir().to_path_buf()]
        .into_iter()
        .filter(|d| !d.exists())
        .collect();
    let total = plan.steps.len();
    let mut undo: Vec<Undo> = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        tracing::info!(step = i + 1, total, "apply: {}", step.describe());
        let Err(cause) = run_step(step, sysfs, store, &mut undo) else {
            continue;
        };
        tracing::warn!(step = i + 1, total, %cause, "apply: step failed, rolling back");
        let mut not_rolled_back = Vec::new();
        while let Some(u) = undo.pop() {
            if let Err(e) = u.run(sysfs) {
                tracing::error!(undo = %u.describe(), error = %e, "apply: rollback step failed");
                not_rolled_back.push(format!("could not {} ({e})", u.describe()));
            }
        }
        if not_rolled_back.is_empty() {
            for d in &created_dirs {
                // Only removes an empty directory; anything else stays.
                let _ = std::fs::remove_dir(d);
            }
        }
        return Err(ApplyError {
            index: i + 1,
            total,
            failed_step: Box::new(step.clone()),
            cause: Box::new(cause),
            rolled_back: not_rolled_back.is_empty(),
            not_rolled_back,
        });
    }
    Ok(ApplyReport {
        done: plan.steps.clone(),
    })
}
