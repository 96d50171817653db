//! What the executor tells its caller: each step's [`Outcome`], and on
//! failure an [`ApplyError`] naming the step, the kernel's answer and
//! whether the rollback was complete.

use crate::host::{paths, HostError};
use crate::plan::Step;
use crate::store::StoreError;
use crate::sysfs::SysfsError;
use std::fmt;

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
