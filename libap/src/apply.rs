//! The one executor: runs a list of [`Step`]s (an `apply` [`Plan`], or
//! the plan of one of apd's commands from [`crate::plan`]) in order
//! through [`Sysfs`] and the [`Store`]; when one fails, every completed
//! step is undone in reverse order, so the host and the definitions on
//! disk are as before. This is the only code that writes AP
//! configuration, and it writes it one way:
//!
//! - an id is written as `0x<hex>\n` to `assign_*`/`unassign_*`, one id
//!   per write. The assignment is never written through `ap_config`, on
//!   any kernel: each step of a plan is one write the failure can name
//!   (`ap_config`, where the kernel has it, is read, never written);
//! - a mask is written whole (`0x` + 64 hex digits + `\n`), apmask before
//!   aqmask, only when it changes;
//! - an mdev is created with its UUID + `\n`, removed with `1\n`.
//!
//! Before each step the executor looks whether it is already in place (an
//! active mdev to create, an assigned id to assign, masks that already
//! have the value, ...): such a step writes nothing and is reported as
//! [`Outcome::InPlace`], so a caller can tell no change from a change.
//!
//! The caller holds the writer lock (`/run/lock/s390apconfig.lock`);
//! [`execute`] takes none.

use crate::host::{paths, Host, HostError, Matrix};
use crate::mask::ApMask;
use crate::plan::{Plan, Step};
use crate::store::{write_atomic, Store, StoreError};
use crate::sysfs::{Sysfs, SysfsError};
use crate::validate::AssignKind;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// What running one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It wrote its change.
    Changed,
    /// It was in place already: nothing written.
    InPlace,
}

/// One step run, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// The step.
    pub step: Step,
    /// Whether it changed something.
    pub outcome: Outcome,
}

/// What a successful run did, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Every step of the plan, in order, with what it did.
    pub steps: Vec<StepReport>,
}

impl ApplyReport {
    /// How many steps changed something.
    pub fn changed(&self) -> usize {
        self.steps
            .iter()
            .filter(|r| r.outcome == Outcome::Changed)
            .count()
    }

    /// Whether every step was in place already (nothing was written).
    pub fn nothing_changed(&self) -> bool {
        self.changed() == 0
    }

    /// Whether the step at `index` changed something.
    pub fn changed_at(&self, index: usize) -> bool {
        self.steps
            .get(index)
            .is_some_and(|r| r.outcome == Outcome::Changed)
    }
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

impl ApplyError {
    /// Why the step failed, as one clause: `the kernel refused to assign
    /// domain 0x47: Address already in use (EADDRINUSE)` for a refused
    /// write, else the cause itself (a failed read, a store error).
    pub fn cause_sentence(&self) -> String {
        match self.cause.as_ref() {
            ApplyCause::Sysfs(e) if e.op == crate::sysfs::SysfsOp::Write => format!(
                "the kernel refused to {}: {} ({})",
                write_of(&self.failed_step, &e.path),
                crate::sysfs::strerror(e.errno),
                e.errno_name()
            ),
            cause => cause.to_string(),
        }
    }
}

/// The write a step makes, for people: `assign domain 0x47`, `set apmask`.
fn write_of(step: &Step, path: &str) -> String {
    match step {
        Step::SetMasks { .. } if path == paths::AQMASK => "set aqmask".to_string(),
        Step::SetMasks { .. } => "set apmask".to_string(),
        Step::Create { .. } => "create the mdev".to_string(),
        Step::Remove { .. } => "remove the mdev".to_string(),
        Step::Assign { kind, id, .. } => format!("assign {}", kind.describe(*id)),
        Step::Unassign { kind, id, .. } => format!("unassign {}", kind.describe(*id)),
        other => other.describe(),
    }
}

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
    /// Configure the adapter back.
    Configured { adapter: u8, was_on: bool },
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

fn card_config_path(adapter: u8) -> String {
    format!("{}/config", paths::card(adapter))
}

fn write_card_config(sysfs: &dyn Sysfs, adapter: u8, on: bool) -> Result<(), SysfsError> {
    sysfs.write(&card_config_path(adapter), if on { b"1\n" } else { b"0\n" })
}

/// Whether the card is configured on (its `config` reads 1).
fn read_card_config(sysfs: &dyn Sysfs, adapter: u8) -> Result<bool, ApplyCause> {
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
            Undo::Configured { adapter, was_on } => format!(
                "configure adapter {adapter} {} again",
                if *was_on { "on" } else { "off" }
            ),
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
            Undo::Configured { adapter, was_on } => {
                write_card_config(sysfs, *adapter, *was_on).map_err(s)
            }
        }
    }
}

/// What the executor knows of the live mdevs it touches: each one's
/// assignment, read once and then kept up to date by its own writes
/// (None: the mdev does not exist).
#[derive(Debug, Default)]
struct Live {
    mdevs: BTreeMap<Uuid, Option<Matrix>>,
}

impl Live {
    fn matrix(&mut self, sysfs: &dyn Sysfs, uuid: Uuid) -> Result<Option<Matrix>, ApplyCause> {
        if let Some(m) = self.mdevs.get(&uuid) {
            return Ok(*m);
        }
        let m = Host::read_mdev(sysfs, uuid)?.map(|m| m.matrix);
        self.mdevs.insert(uuid, m);
        Ok(m)
    }

    fn ids(m: &mut Matrix, kind: AssignKind) -> &mut ApMask {
        match kind {
            AssignKind::Adapter => &mut m.adapters,
            AssignKind::Domain => &mut m.domains,
            AssignKind::ControlDomain => &mut m.control_domains,
        }
    }

    /// Whether `id` is assigned now (false when the mdev is unknown: the
    /// write then gets the kernel's answer).
    fn has(&mut self, sysfs: &dyn Sysfs, uuid: Uuid, kind: AssignKind, id: u8) -> bool {
        match self.matrix(sysfs, uuid) {
            Ok(Some(mut m)) => Self::ids(&mut m, kind).contains(id),
            _ => false,
        }
    }

    fn set(&mut self, uuid: Uuid, kind: AssignKind, id: u8, assigned: bool) {
        if let Some(Some(m)) = self.mdevs.get_mut(&uuid) {
            let ids = Self::ids(m, kind);
            if assigned {
                ids.insert(id);
            } else {
                ids.remove(id);
            }
        }
    }
}

/// Run one step; on success its undo entries are on `undo`.
fn run_step(
    step: &Step,
    sysfs: &dyn Sysfs,
    store: &Store,
    live: &mut Live,
    undo: &mut Vec<Undo>,
) -> Result<Outcome, ApplyCause> {
    match step {
        Step::StoreMasks { .. } | Step::Define(_) | Step::Redefine { .. } | Step::Undefine(_) => {
            run_store_step(step, store, undo)
        }
        Step::SetMasks { apmask, aqmask, .. } => set_masks(sysfs, *apmask, *aqmask, undo),
        Step::ConfigureAdapter { adapter, on } => configure(sysfs, *adapter, *on, undo),
        Step::Create { .. } | Step::Remove { .. } | Step::Assign { .. } | Step::Unassign { .. } => {
            run_mdev_step(step, sysfs, live, undo)
        }
    }
}

/// A step on the definition store. Its undo is pushed before writing, so
/// a write that fails half-way (renamed but not synced) is restored too.
fn run_store_step(step: &Step, store: &Store, undo: &mut Vec<Undo>) -> Result<Outcome, ApplyCause> {
    let path = match step {
        Step::StoreMasks { .. } => store.masks_path(),
        Step::Define(def) | Step::Redefine { new: def, .. } | Step::Undefine(def) => {
            store.path_of(def.uuid)
        }
        _ => return Ok(Outcome::InPlace),
    };
    let old = snapshot(&path)?;
    if matches!(step, Step::Undefine(_)) && old.is_none() {
        return Ok(Outcome::InPlace);
    }
    undo.push(Undo::File { old, path });
    match step {
        Step::StoreMasks { apmask, aqmask } => store.save_masks(*apmask, *aqmask)?,
        Step::Define(def) | Step::Redefine { new: def, .. } => store.save(def)?,
        Step::Undefine(def) => {
            store.remove(def.uuid)?;
        }
        _ => {}
    }
    Ok(Outcome::Changed)
}

/// Writes each mask that differs from `apmask`/`aqmask`, apmask first.
fn set_masks(
    sysfs: &dyn Sysfs,
    apmask: ApMask,
    aqmask: ApMask,
    undo: &mut Vec<Undo>,
) -> Result<Outcome, ApplyCause> {
    let mut outcome = Outcome::InPlace;
    for (path, new) in [(paths::APMASK, apmask), (paths::AQMASK, aqmask)] {
        let old = read_mask(sysfs, path)?;
        if old != new {
            sysfs.write(path, format!("{new}\n").as_bytes())?;
            undo.push(Undo::Mask { path, old });
            outcome = Outcome::Changed;
        }
    }
    Ok(outcome)
}

/// Configures an adapter on or off unless it is so already.
fn configure(
    sysfs: &dyn Sysfs,
    adapter: u8,
    on: bool,
    undo: &mut Vec<Undo>,
) -> Result<Outcome, ApplyCause> {
    let was_on = read_card_config(sysfs, adapter)?;
    if was_on == on {
        return Ok(Outcome::InPlace);
    }
    write_card_config(sysfs, adapter, on)?;
    undo.push(Undo::Configured { adapter, was_on });
    Ok(Outcome::Changed)
}

/// Creates, removes, assigns to or unassigns from an mdev, unless the
/// live mdev is so already.
fn run_mdev_step(
    step: &Step,
    sysfs: &dyn Sysfs,
    live: &mut Live,
    undo: &mut Vec<Undo>,
) -> Result<Outcome, ApplyCause> {
    match *step {
        Step::Create { uuid, .. } => {
            if live.matrix(sysfs, uuid)?.is_some() {
                return Ok(Outcome::InPlace);
            }
            create_mdev(sysfs, uuid)?;
            live.mdevs.insert(uuid, Some(Matrix::default()));
            undo.push(Undo::Created { uuid });
        }
        Step::Remove { uuid, .. } => {
            // Recreate it as it is now, not as it was when planned.
            let Some(matrix) = live.matrix(sysfs, uuid)? else {
                return Ok(Outcome::InPlace);
            };
            remove_mdev(sysfs, uuid)?;
            live.mdevs.insert(uuid, None);
            undo.push(Undo::Removed { uuid, matrix });
        }
        Step::Assign { uuid, kind, id, .. } => {
            if live.has(sysfs, uuid, kind, id) {
                return Ok(Outcome::InPlace);
            }
            write_id(sysfs, uuid, "assign", kind, id)?;
            live.set(uuid, kind, id, true);
            undo.push(Undo::Assigned { uuid, kind, id });
        }
        Step::Unassign { uuid, kind, id, .. } => {
            if !live.has(sysfs, uuid, kind, id) {
                return Ok(Outcome::InPlace);
            }
            write_id(sysfs, uuid, "unassign", kind, id)?;
            live.set(uuid, kind, id, false);
            undo.push(Undo::Unassigned { uuid, kind, id });
        }
        _ => return Ok(Outcome::InPlace),
    }
    Ok(Outcome::Changed)
}

/// Run `plan` through `sysfs` and `store` ([`execute_steps`]).
pub fn execute(plan: &Plan, sysfs: &dyn Sysfs, store: &Store) -> Result<ApplyReport, ApplyError> {
    execute_steps(&plan.steps, sysfs, store)
}

/// Run `steps` in order. On the first failure every completed step is
/// undone in reverse order and the error says which step failed, why, and
/// whether the rollback was complete.
pub fn execute_steps(
    steps: &[Step],
    sysfs: &dyn Sysfs,
    store: &Store,
) -> Result<ApplyReport, ApplyError> {
    // Directories a definition write may create; removed again on rollback
    // when they were not there before and are empty.
    let created_dirs: Vec<PathBuf> = [store.mdevs_dir(), store.dir().to_path_buf()]
        .into_iter()
        .filter(|d| !d.exists())
        .collect();
    let total = steps.len();
    let mut undo: Vec<Undo> = Vec::new();
    let mut live = Live::default();
    let mut report = ApplyReport { steps: Vec::new() };
    for (i, step) in steps.iter().enumerate() {
        let cause = match run_step(step, sysfs, store, &mut live, &mut undo) {
            Ok(outcome) => {
                tracing::info!(
                    step = i + 1,
                    total,
                    action = step.action(),
                    target = %step.target(),
                    in_place = outcome == Outcome::InPlace,
                    "{}",
                    step.describe()
                );
                report.steps.push(StepReport {
                    step: step.clone(),
                    outcome,
                });
                continue;
            }
            Err(cause) => cause,
        };
        tracing::warn!(step = i + 1, total, action = step.action(), target = %step.target(), %cause, "step failed, rolling back");
        let mut not_rolled_back = Vec::new();
        while let Some(u) = undo.pop() {
            if let Err(e) = u.run(sysfs) {
                tracing::error!(undo = %u.describe(), error = %e, "rollback step failed");
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
    Ok(report)
}
