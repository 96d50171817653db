//! All-or-nothing sysfs write sequences: each step may carry the write that
//! undoes it; when a step fails, the completed steps are undone in reverse
//! order. And the map from a kernel errno to apd's named errors.

use apbus::ErrorKind;
use libap::resync::Stale;
use libap::{Sysfs, SysfsError};

/// What a write does, for naming the error kind of its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `create` of the mdev type.
    Create,
    /// An mdev's `remove`.
    Remove,
    /// `assign_*`/`unassign_*`.
    Assign,
    /// An mdev's `ap_config`.
    ApConfig,
    /// `apmask`/`aqmask`.
    Mask,
    /// A card's `config`.
    CardConfig,
    /// A file of the definition store.
    Store,
}

/// One write and its undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Path relative to the sysfs root.
    pub path: String,
    /// What is written.
    pub data: String,
    /// What kind of write it is.
    pub target: Target,
    /// For people: `assign domain 0x47`, `create the mdev`.
    pub what: String,
    /// The write that undoes this one, if one is needed.
    pub undo: Option<(String, String)>,
}

impl Step {
    /// A step without undo.
    pub fn new(
        target: Target,
        path: impl Into<String>,
        data: impl Into<String>,
        what: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            data: data.into(),
            target,
            what: what.into(),
            undo: None,
        }
    }

    /// The same step, undone by writing `data` to `path`.
    pub fn undo_with(mut self, path: impl Into<String>, data: impl Into<String>) -> Self {
        self.undo = Some((path.into(), data.into()));
        self
    }
}

/// What a sequence of steps (done, or undone after a failure) may have
/// changed in the host model.
pub fn stale(steps: &[Step]) -> Stale {
    let mut stale = Stale::none();
    for step in steps {
        stale.merge(Stale::after_write(&step.path, &step.data));
        if let Some((path, data)) = &step.undo {
            stale.merge(Stale::after_write(path, data));
        }
    }
    stale
}

/// A failed sequence: the step that failed and how the rollback went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The step the kernel refused.
    pub step: Step,
    /// The kernel's error.
    pub error: SysfsError,
    /// Undo writes that failed themselves (the host may be left changed).
    pub rollback_errors: Vec<SysfsError>,
}

impl Failure {
    /// The named error kind of the kernel's refusal.
    pub fn kind(&self) -> ErrorKind {
        kind_for_errno(self.error.errno, self.step.target)
    }

    /// `the kernel refused assign_domain 0x47 (Address already in use, EADDRINUSE)`,
    /// plus a note when the rollback failed.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "the kernel refused to {}: {} ({})",
            self.step.what,
            libap::sysfs::strerror(self.error.errno),
            self.error.errno_name()
        );
        if !self.rollback_errors.is_empty() {
            let errs: Vec<String> = self.rollback_errors.iter().map(|e| e.to_string()).collect();
            s.push_str(&format!(
                "; undoing the earlier writes failed too ({}), so check the host with `apctl list`",
                errs.join("; ")
            ));
        }
        s
    }
}

/// Runs `steps` in order; on the first failure undoes the completed ones
/// (newest first) and reports it. Returns how many steps ran.
pub fn run(fs: &dyn Sysfs, steps: &[Step]) -> Result<usize, Box<Failure>> {
    for (i, step) in steps.iter().enumerate() {
        if let Err(error) = fs.write(&step.path, step.data.as_bytes()) {
            tracing::warn!(path = %step.path, data = %step.data.trim_end(), %error, "sysfs write refused; rolling back");
            let rollback_errors = undo(fs, &steps[..i]);
            return Err(Box::new(Failure {
                step: step.clone(),
                error,
                rollback_errors,
            }));
        }
        tracing::debug!(path = %step.path, data = %step.data.trim_end(), "sysfs write");
    }
    Ok(steps.len())
}

/// Undoes `done` (all completed), newest first; returns the undo writes
/// that failed.
pub fn undo(fs: &dyn Sysfs, done: &[Step]) -> Vec<SysfsError> {
    let mut errors = Vec::new();
    for step in done.iter().rev() {
        if let Some((path, data)) = &step.undo {
            if let Err(e) = fs.write(path, data.as_bytes()) {
                tracing::error!(%path, data = %data.trim_end(), error = %e, "rollback write failed");
                errors.push(e);
            }
        }
    }
    errors
}

/// The named error for a kernel errno (kernel spec §2, §4, §5, §8).
pub fn kind_for_errno(errno: i32, target: Target) -> ErrorKind {
    match errno {
        libc::EADDRNOTAVAIL => ErrorKind::HostOwned,
        libc::EADDRINUSE => ErrorKind::InUse,
        libc::ENODEV => match target {
            Target::Assign | Target::ApConfig => ErrorKind::OutOfRange,
            // A card or the matrix device went away meanwhile.
            _ => ErrorKind::NotFound,
        },
        // A remove on 5.x kernels while a guest uses the mdev: the guest
        // holds it. A mask write that would take queues from an mdev is
        // Busy, as libap names the same refusal predicted (MaskBusy).
        libc::EBUSY => match target {
            Target::Remove => ErrorKind::InUse,
            _ => ErrorKind::Busy,
        },
        libc::EAGAIN => ErrorKind::Busy,
        libc::EEXIST => ErrorKind::Exists,
        libc::EINVAL | libc::ERANGE => ErrorKind::Invalid,
        libc::ENOENT => ErrorKind::NotFound,
        _ => ErrorKind::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Records writes; refuses writes to paths listed in `refuse`.
    #[derive(Debug, Default)]
    struct Fake {
        writes: Mutex<Vec<(String, String)>>,
        refuse: BTreeMap<String, i32>,
    }

    impl Sysfs for Fake {
        fn read(&self, path: &str) -> Result<String, SysfsError> {
            Err(SysfsError::new(libap::SysfsOp::Read, path, libc::ENOENT))
        }
        fn write(&self, path: &str, data: &[u8]) -> Result<(), SysfsError> {
            if let Some(e) = self.refuse.get(path) {
                return Err(SysfsError::write(path, data, *e));
            }
            self.writes
                .lock()
                .expect("lock")
                .push((path.into(), String::from_utf8_lossy(data).into()));
            Ok(())
        }
        fn list(&self, path: &str) -> Result<Vec<String>, SysfsError> {
            Err(SysfsError::new(libap::SysfsOp::List, path, libc::ENOENT))
        }
        fn read_link(&self, path: &str) -> Result<String, SysfsError> {
            Err(SysfsError::new(
                libap::SysfsOp::ReadLink,
                path,
                libc::ENOENT,
            ))
        }
        fn exists(&self, _: &str) -> bool {
            false
        }
    }

    fn start_steps() -> Vec<Step> {
        vec![
            Step::new(Target::Create, "create", "u", "create mdev u").undo_with("u/remove", "1"),
            Step::new(Target::Assign, "u/assign_adapter", "5", "assign adapter 5"),
            Step::new(
                Target::Assign,
                "u/assign_domain",
                "0x47",
                "assign domain 0x47",
            ),
        ]
    }

    #[test]
    fn all_steps_run_in_order() {
        let fs = Fake::default();
        assert_eq!(run(&fs, &start_steps()), Ok(3));
        let w = fs.writes.lock().expect("lock").clone();
        assert_eq!(w.len(), 3);
        assert_eq!(w[0], ("create".into(), "u".into()));
    }

    #[test]
    fn a_refusal_rolls_back_what_was_done() {
        let mut fs = Fake::default();
        fs.refuse.insert("u/assign_domain".into(), libc::EADDRINUSE);
        let f = run(&fs, &start_steps()).expect_err("refused");
        assert_eq!(f.step.what, "assign domain 0x47");
        assert_eq!(f.kind(), ErrorKind::InUse);
        assert!(f.rollback_errors.is_empty());
        let w = fs.writes.lock().expect("lock").clone();
        // create, assign_adapter, then the undo of create.
        assert_eq!(w.last(), Some(&("u/remove".into(), "1".into())));
        assert_eq!(w.len(), 3);
        let d = f.describe();
        assert!(d.contains("assign domain 0x47"), "{d}");
        assert!(d.contains("EADDRINUSE"), "{d}");
    }

    #[test]
    fn a_failed_rollback_is_reported() {
        let mut fs = Fake::default();
        fs.refuse.insert("u/assign_adapter".into(), libc::ENODEV);
        fs.refuse.insert("u/remove".into(), libc::EIO);
        let f = run(&fs, &start_steps()).expect_err("refused");
        assert_eq!(f.kind(), ErrorKind::OutOfRange);
        assert_eq!(f.rollback_errors.len(), 1);
        assert!(f.describe().contains("undoing the earlier writes failed"));
    }

    #[test]
    fn errno_names_follow_the_design() {
        use ErrorKind::*;
        assert_eq!(
            kind_for_errno(libc::EADDRNOTAVAIL, Target::Assign),
            HostOwned
        );
        assert_eq!(kind_for_errno(libc::EADDRINUSE, Target::ApConfig), InUse);
        assert_eq!(kind_for_errno(libc::ENODEV, Target::Assign), OutOfRange);
        assert_eq!(kind_for_errno(libc::ENODEV, Target::CardConfig), NotFound);
        assert_eq!(kind_for_errno(libc::EBUSY, Target::Mask), Busy);
        assert_eq!(kind_for_errno(libc::EBUSY, Target::Remove), InUse);
        assert_eq!(kind_for_errno(libc::EBUSY, Target::CardConfig), Busy);
        assert_eq!(kind_for_errno(libc::EEXIST, Target::Create), Exists);
        assert_eq!(kind_for_errno(libc::EINVAL, Target::Mask), Invalid);
        assert_eq!(kind_for_errno(libc::EUSERS, Target::Create), Failed);
        assert_eq!(kind_for_errno(libc::EIO, Target::Assign), Failed);
    }
}
