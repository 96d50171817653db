//! The one executor: runs a list of [`Step`]s (an `apply` [`Plan`], or
//! the plan of one of apd's commands from [`crate::plan`]) in order
//! through [`Sysfs`] and the [`Store`]; when one fails, every completed
//! step is undone in reverse order, so the host and the definitions on
//! disk are as before. This is the only code that writes AP
//! configuration, and it writes it one way:
//!
//! - an id is written as `0x<hex>\n` to `assign_*`/`unassign_*`, one id
//!   per write, so a refusal names the id;
//! - except into an mdev this run has just created: its assignment steps
//!   (the plan's run of `Assign` steps right after the create) are written
//!   with one `ap_config` write where the kernel has that file (kernel
//!   spec §6: all or nothing). A boot restore then costs a create and one
//!   write per mdev (issue 17). Nobody else knows a new mdev yet, so the
//!   absolute write cannot overwrite another writer's ids; a live mdev is
//!   still changed id by id. When the kernel refuses the `ap_config`
//!   write (or has no such file) nothing has changed, and the same steps
//!   are written one id at a time: the refusal then names its id as
//!   before;
//! - a mask is written whole (`0x` + 64 hex digits + `\n`), apmask before
//!   aqmask, only when it changes;
//! - an mdev is created with its UUID + `\n`, removed with `1\n`.
//!
//! Before each step the executor looks whether it is already in place (an
//! active mdev to create, an assigned id to assign, masks that already
//! have the value, ...): such a step writes nothing and is reported as
//! [`Outcome::InPlace`], so a caller can tell no change from a change.
//!
//! A caller that has just read the host under the lock it holds for the
//! run tells the executor what it knows ([`Known`]): an mdev it found
//! absent is created without a lookup first (one FUSE request per mdev of
//! a boot restore), one it found active is changed without being read
//! again. A create the kernel refuses because someone made the mdev
//! meanwhile (`EEXIST`) then fails the run, which is rolled back.
//!
//! With a [`Journal`] ([`execute_journaled`]) each change is announced
//! in it before it is made, so a writer killed half-way can be
//! undone by the next one ([`Journal::recover`]).
//!
//! The caller holds the writer lock (`/run/lock/s390apconfig.lock`);
//! [`execute`] takes none.

use crate::host::{paths, read_likely_absent_mdev, Host, Matrix};
use crate::mask::ApMask;
use crate::matrix::format_ap_config;
use crate::plan::{Plan, Step};
use crate::store::Store;
use crate::sysfs::Sysfs;
use crate::validate::AssignKind;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use uuid::Uuid;

mod journal;
mod report;
mod undo;

pub use journal::{Journal, Recovery, JOURNAL_FILE};
pub use report::{ApplyCause, ApplyError, ApplyReport, Outcome, StepReport};
use undo::{
    create_mdev, read_card_config, read_mask, remove_mdev, snapshot, write_card_config, write_id,
    Undo,
};

/// What the executor knows of the live mdevs it touches: each one's
/// assignment, read once and then kept up to date by its own writes
/// (None: the mdev does not exist).
#[derive(Debug, Default)]
struct Live {
    mdevs: BTreeMap<Uuid, Option<Matrix>>,
    /// The mdevs this run created (and has not removed since), whose
    /// assignment may go in one `ap_config` write.
    created: BTreeSet<Uuid>,
}

/// What the caller read of the host under the lock it holds while the
/// steps run (see the module's text): the assignment of each mdev the
/// steps touch, None for one it found absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    mdevs: BTreeMap<Uuid, Option<Matrix>>,
}

impl Known {
    /// Nothing known: the first step on each mdev looks at it.
    pub fn nothing() -> Known {
        Known::default()
    }

    /// What `host`, read under the caller's lock, tells about `steps`:
    /// each mdev they create, remove, assign to or unassign from, as
    /// `host` has it.
    pub fn from_host(host: &Host, steps: &[Step]) -> Known {
        let mdevs = steps
            .iter()
            .filter_map(|s| match s {
                Step::Create { uuid, .. }
                | Step::Remove { uuid, .. }
                | Step::Assign { uuid, .. }
                | Step::Unassign { uuid, .. } => {
                    Some((*uuid, host.mdevs.get(uuid).map(|m| m.matrix)))
                }
                _ => None,
            })
            .collect();
        Known { mdevs }
    }
}

impl Live {
    fn new(known: &Known) -> Live {
        Live {
            mdevs: known.mdevs.clone(),
            created: BTreeSet::new(),
        }
    }

    fn matrix(&mut self, sysfs: &dyn Sysfs, uuid: Uuid) -> Result<Option<Matrix>, ApplyCause> {
        if let Some(m) = self.mdevs.get(&uuid) {
            return Ok(*m);
        }
        let m = Host::read_mdev(sysfs, uuid)?.map(|m| m.matrix);
        self.mdevs.insert(uuid, m);
        Ok(m)
    }

    /// Whether the mdev exists, read as one about to be created when it is
    /// not known (one lookup of its directory while it is absent).
    fn exists(&mut self, sysfs: &dyn Sysfs, uuid: Uuid) -> Result<bool, ApplyCause> {
        let m = match self.mdevs.entry(uuid) {
            Entry::Occupied(known) => *known.get(),
            Entry::Vacant(unknown) => *unknown
                .insert(read_likely_absent_mdev(sysfs, uuid, &BTreeMap::new())?.map(|m| m.matrix)),
        };
        Ok(m.is_some())
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

    /// Drops what is known of the mdev `undo` changed: re-read when next needed.
    fn forget(&mut self, undo: &Undo) {
        if let Some(uuid) = undo.mdev() {
            self.mdevs.remove(&uuid);
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

/// The changes a run has made, each as its [`Undo`], and the journal
/// that announces each before it is made.
#[derive(Debug, Default)]
struct Changes<'j> {
    undo: Vec<Undo>,
    journal: Option<&'j Journal>,
    recorder: Option<journal::Recorder<'j>>,
}

impl Changes<'_> {
    /// Announces the change `undo` undoes, before it is made (the journal
    /// is started with the first one: a plan in place writes none).
    fn intend(&mut self, undo: &Undo) -> Result<(), ApplyCause> {
        let Some(journal) = self.journal else {
            return Ok(());
        };
        let recorder = match &mut self.recorder {
            Some(r) => r,
            None => self.recorder.insert(journal.begin()?),
        };
        recorder.record(undo).map_err(ApplyCause::Store)
    }

    /// The change is made (or, for a file, may be half made).
    fn done(&mut self, undo: Undo) {
        self.undo.push(undo);
    }

    /// Makes one change: announces it, makes it with `write`, then notes
    /// it for the rollback (a write that failed made no change to undo).
    fn make<E>(
        &mut self,
        undo: Undo,
        write: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), ApplyCause>
    where
        ApplyCause: From<E>,
    {
        self.intend(&undo)?;
        write()?;
        self.done(undo);
        Ok(())
    }

    /// Announces and notes a change before it is made.
    fn before(&mut self, undo: Undo) -> Result<(), ApplyCause> {
        self.intend(&undo)?;
        self.done(undo);
        Ok(())
    }

    /// The run has ended, done or rolled back: its journal is emptied.
    fn finish(self) {
        if let Some(r) = self.recorder {
            r.finish();
        }
    }
}

/// Run one step; on success its undo entries are on `undo`.
fn run_step(
    step: &Step,
    sysfs: &dyn Sysfs,
    store: &Store,
    live: &mut Live,
    undo: &mut Changes<'_>,
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
fn run_store_step(
    step: &Step,
    store: &Store,
    undo: &mut Changes<'_>,
) -> Result<Outcome, ApplyCause> {
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
    undo.before(Undo::File { old, path })?;
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
    undo: &mut Changes<'_>,
) -> Result<Outcome, ApplyCause> {
    let mut outcome = Outcome::InPlace;
    for (path, new) in [(paths::APMASK, apmask), (paths::AQMASK, aqmask)] {
        let old = read_mask(sysfs, path)?;
        if old != new {
            undo.make(Undo::Mask { path, old, new }, || {
                sysfs.write(path, format!("{new}\n").as_bytes())
            })?;
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
    undo: &mut Changes<'_>,
) -> Result<Outcome, ApplyCause> {
    let was_on = read_card_config(sysfs, adapter)?;
    if was_on == on {
        return Ok(Outcome::InPlace);
    }
    undo.make(Undo::Configured { adapter, was_on }, || {
        write_card_config(sysfs, adapter, on)
    })?;
    Ok(Outcome::Changed)
}

/// Creates, removes, assigns to or unassigns from an mdev, unless the
/// live mdev is so already.
fn run_mdev_step(
    step: &Step,
    sysfs: &dyn Sysfs,
    live: &mut Live,
    undo: &mut Changes<'_>,
) -> Result<Outcome, ApplyCause> {
    match *step {
        Step::Create { uuid, .. } => {
            if live.exists(sysfs, uuid)? {
                return Ok(Outcome::InPlace);
            }
            undo.make(Undo::Created { uuid }, || create_mdev(sysfs, uuid))?;
            live.mdevs.insert(uuid, Some(Matrix::default()));
            live.created.insert(uuid);
        }
        Step::Remove { uuid, .. } => {
            // Recreate it as it is now (or as the caller read it under
            // its lock), not as it was when planned.
            let Some(matrix) = live.matrix(sysfs, uuid)? else {
                return Ok(Outcome::InPlace);
            };
            undo.make(Undo::Removed { uuid, matrix }, || remove_mdev(sysfs, uuid))?;
            live.mdevs.insert(uuid, None);
            live.created.remove(&uuid);
        }
        Step::Assign { uuid, kind, id, .. } => {
            if live.has(sysfs, uuid, kind, id) {
                return Ok(Outcome::InPlace);
            }
            undo.make(Undo::Assigned { uuid, kind, id }, || {
                write_id(sysfs, uuid, "assign", kind, id)
            })?;
            live.set(uuid, kind, id, true);
        }
        Step::Unassign { uuid, kind, id, .. } => {
            if !live.has(sysfs, uuid, kind, id) {
                return Ok(Outcome::InPlace);
            }
            undo.make(Undo::Unassigned { uuid, kind, id }, || {
                write_id(sysfs, uuid, "unassign", kind, id)
            })?;
            live.set(uuid, kind, id, false);
        }
        _ => return Ok(Outcome::InPlace),
    }
    Ok(Outcome::Changed)
}

/// Runs the steps at the head of `steps`: the run of assignments into an
/// mdev this run created at once where the kernel takes it, else the
/// first step alone. Returns the outcome of each step run.
fn run_span(
    steps: &[Step],
    sysfs: &dyn Sysfs,
    store: &Store,
    live: &mut Live,
    undo: &mut Changes<'_>,
) -> Result<Vec<Outcome>, ApplyCause> {
    let run = fresh_assigns(steps, live);
    if run > 1 {
        if let Some(outcomes) = assign_at_once(&steps[..run], sysfs, live, undo)? {
            return Ok(outcomes);
        }
    }
    let first = steps.first().map(|s| run_step(s, sysfs, store, live, undo));
    first.into_iter().collect()
}

/// How many `Assign` steps at the head of `steps` go into one mdev this
/// run created.
fn fresh_assigns(steps: &[Step], live: &Live) -> usize {
    let Some(Step::Assign { uuid, .. }) = steps.first() else {
        return 0;
    };
    if !live.created.contains(uuid) {
        return 0;
    }
    steps
        .iter()
        .take_while(|s| matches!(s, Step::Assign { uuid: u, .. } if u == uuid))
        .count()
}

/// Writes `run`, assignments into one mdev this run created, with one
/// `ap_config` write, each id announced in the journal first. `None`:
/// the kernel has no `ap_config` or refused the write, which changed
/// nothing; the caller then writes the ids one at a time.
fn assign_at_once(
    run: &[Step],
    sysfs: &dyn Sysfs,
    live: &mut Live,
    undo: &mut Changes<'_>,
) -> Result<Option<Vec<Outcome>>, ApplyCause> {
    let Some(Step::Assign { uuid, .. }) = run.first() else {
        return Ok(None);
    };
    let uuid = *uuid;
    let Some(Some(mut matrix)) = live.mdevs.get(&uuid).copied() else {
        return Ok(None);
    };
    let mut made = Vec::new();
    let mut outcomes = Vec::new();
    for step in run {
        let Step::Assign { kind, id, .. } = *step else {
            return Ok(None);
        };
        let ids = Live::ids(&mut matrix, kind);
        if ids.contains(id) {
            outcomes.push(Outcome::InPlace);
        } else {
            ids.insert(id);
            made.push(Undo::Assigned { uuid, kind, id });
            outcomes.push(Outcome::Changed);
        }
    }
    for u in &made {
        undo.intend(u)?;
    }
    let text = format_ap_config(matrix.adapters, matrix.domains, matrix.control_domains);
    if let Err(e) = sysfs.write(&paths::mdev_attr(&uuid, "ap_config"), text.as_bytes()) {
        tracing::debug!(%uuid, error = %e, "ap_config not written: assigning one id at a time");
        // Not again for this mdev: its ids go one at a time from here.
        live.created.remove(&uuid);
        return Ok(None);
    }
    for u in made {
        undo.done(u);
    }
    live.mdevs.insert(uuid, Some(matrix));
    Ok(Some(outcomes))
}

/// Run `plan` through `sysfs` and `store` ([`execute_steps`]).
pub fn execute(plan: &Plan, sysfs: &dyn Sysfs, store: &Store) -> Result<ApplyReport, ApplyError> {
    execute_steps(&plan.steps, sysfs, store)
}

/// Run `steps` in order, without a journal ([`execute_journaled`]).
pub fn execute_steps(
    steps: &[Step],
    sysfs: &dyn Sysfs,
    store: &Store,
) -> Result<ApplyReport, ApplyError> {
    execute_journaled(steps, sysfs, store, None, StepLog::Info, &Known::nothing())
}

/// How the executor logs the steps it made: one INFO line each (a change
/// someone asked for: the log shows what was written), or DEBUG where the
/// caller logs one line per mdev instead (apd's boot restore: 1,000 mdevs
/// would be 3,000 step lines, a tenth of the restore's time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepLog {
    /// One INFO line per step.
    #[default]
    Info,
    /// One DEBUG line per step.
    Debug,
}

/// A tracing event at the level `log` names.
macro_rules! step_event {
    ($log:expr, $($event:tt)+) => {
        match $log {
            StepLog::Info => tracing::info!($($event)+),
            StepLog::Debug => tracing::debug!($($event)+),
        }
    };
}

/// Run `steps` in order, each change announced in `journal` (if any)
/// before it is made, each step logged as `log` says, on a host of which
/// the caller read what `known` says. On the first failure every completed step is
/// undone in reverse order and the error says which step failed, why, and
/// whether the rollback was complete. The journal is emptied when the run
/// ends either way: only a writer killed half-way leaves entries.
pub fn execute_journaled(
    steps: &[Step],
    sysfs: &dyn Sysfs,
    store: &Store,
    journal: Option<&Journal>,
    log: StepLog,
    known: &Known,
) -> Result<ApplyReport, ApplyError> {
    // Directories a definition write may create; removed again on rollback
    // when they were not there before and are empty. A plan of live steps
    // writes no definition (a start, a stop: looked at for none).
    let created_dirs: Vec<PathBuf> = if steps.iter().all(Step::is_live) {
        Vec::new()
    } else {
        [store.mdevs_dir(), store.dir().to_path_buf()]
            .into_iter()
            .filter(|d| !d.exists())
            .collect()
    };
    let total = steps.len();
    let mut undo = Changes {
        journal,
        ..Changes::default()
    };
    let mut live = Live::new(known);
    let mut report = ApplyReport { steps: Vec::new() };
    let mut i = 0;
    while i < total {
        let step = &steps[i];
        let done = run_span(&steps[i..], sysfs, store, &mut live, &mut undo);
        let cause = match done {
            Ok(outcomes) => {
                for (k, outcome) in outcomes.into_iter().enumerate() {
                    let step = &steps[i + k];
                    step_event!(
                        log,
                        step = i + k + 1,
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
                }
                i = report.steps.len();
                continue;
            }
            Err(cause) => cause,
        };
        tracing::warn!(step = i + 1, total, action = step.action(), target = %step.target(), %cause, "step failed, rolling back");
        let mut not_rolled_back = Vec::new();
        while let Some(u) = undo.undo.pop() {
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
        undo.finish();
        return Err(ApplyError {
            index: i + 1,
            total,
            failed_step: Box::new(step.clone()),
            cause: Box::new(cause),
            rolled_back: not_rolled_back.is_empty(),
            not_rolled_back,
        });
    }
    undo.finish();
    Ok(report)
}
