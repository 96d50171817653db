//! The intent journal: what a plan being run has changed, or is about to
//! change, so that a writer killed between two writes (kill -9, a crash)
//! can be undone by the next one.
//!
//! Before each write the executor appends one line, the [`Undo`] of the
//! change it is about to make; when the plan has finished or rolled back
//! the file is emptied. It stays open from one plan to the next: a boot
//! restore of 1,000 mdevs runs 1,000 plans, and a create and a remove of
//! the file for each cost more than the writes they announce. An empty
//! file (or none) means nothing is pending. A journal found with entries at
//! start belongs to an operation whose caller never got an answer, so
//! "nothing" is the outcome: [`Journal::recover`] undoes its entries in
//! reverse order, each only where its change is there now (a write that
//! never happened is skipped, a write whose answer was lost is undone),
//! and removes it.
//!
//! The journal lives as long as the kernel state it describes: in a
//! runtime directory that a reboot clears (`/run/apd`). A journal of an
//! earlier boot (its boot id is not the kernel's) is dropped unread, so
//! it can never recreate an mdev the reboot removed.
//!
//! So the journal is never synced to disk: a write(2) survives the death
//! of its process (kill -9, a panic) in the page cache, which is what the
//! next apd of the same boot reads; only a crash of the kernel loses it,
//! and that journal would be dropped as an earlier boot's anyway. (The
//! syncs were four fsyncs per started mdev: the file and its directory
//! at the start of a plan, then one per announced write.)

use super::undo::{read_card_config, read_mask, snapshot, Undo};
use super::Live;
use crate::host::{paths, Matrix};
use crate::mask::ApMask;
use crate::store::{io_err, StoreError};
use crate::sysfs::Sysfs;
use crate::validate::AssignKind;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

/// The journal's file name in its directory.
pub const JOURNAL_FILE: &str = "apply.journal";

/// The first line's tag; the boot id follows it.
const HEADER: &str = "apd-intent-journal 1 boot=";

/// Where the kernel says which boot this is.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The intent journal of one writer, in a runtime directory. Its clones
/// share the open file.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    /// The file, open (append-only) from the first plan on; `None` before
    /// it and after a failure, so that the next plan opens it afresh.
    file: Arc<Mutex<Option<File>>>,
}

/// What [`Journal::recover`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The journal's path.
    pub path: PathBuf,
    /// The journal was written before the last boot: dropped unread.
    pub earlier_boot: bool,
    /// Changes of the interrupted plan found in place and undone, in the
    /// order undone (one sentence each).
    pub undone: Vec<String>,
    /// Entries found not (or no longer) in place: nothing to undo.
    pub absent: usize,
    /// Undos that failed, each naming what is left and why.
    pub failed: Vec<String>,
}

/// The kernel's boot id, or `-` where it has none (not Linux); read once
/// per process (it is the boot's), not at every change a boot restore
/// makes.
fn boot_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        fs::read_to_string(BOOT_ID).map_or_else(|_| "-".to_string(), |s| s.trim().to_string())
    })
}

impl Journal {
    /// The journal `DIR/apply.journal`.
    pub fn new(dir: impl AsRef<Path>) -> Journal {
        Journal {
            path: dir.as_ref().join(JOURNAL_FILE),
            file: Arc::default(),
        }
    }

    /// Whether the file holds a plan not finished (entries, or a header
    /// alone): what [`Journal::recover`] would look at.
    pub fn pending(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.len() > 0)
    }

    /// The shared file handle; a run that panicked holding it (a kill in
    /// the tests) left it as it was, entries and all.
    fn handle(&self) -> MutexGuard<'_, Option<File>> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the journal of a plan: its header goes in with the first
    /// entry, in one write(2). The file is empty here: the last plan
    /// emptied it, or recovery removed it.
    pub(super) fn begin(&self) -> Result<Recorder<'_>, StoreError> {
        let mut handle = self.handle();
        // A file unlinked under apd (an admin's rm, a cleanup of /run)
        // would take the next entries with it: one fstat per plan tells.
        if handle
            .as_ref()
            .is_some_and(|f| f.metadata().map_or(true, |m| m.nlink() == 0))
        {
            *handle = None;
        }
        if handle.is_none() {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            fs::create_dir_all(dir).map_err(|e| io_err(dir, "create directory", &e))?;
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                .open(&self.path)
                .map_err(|e| io_err(&self.path, "create", &e))?;
            *handle = Some(file);
        }
        Ok(Recorder {
            handle,
            path: &self.path,
            header: Some(format!("{HEADER}{}\n", boot_id())),
        })
    }

    /// Undoes the plan an earlier writer left unfinished, if any, and
    /// removes its journal. `Ok(None)`: there was none. The caller holds
    /// the writer lock.
    pub fn recover(&self, sysfs: &dyn Sysfs) -> Result<Option<Recovery>, StoreError> {
        let text = match fs::read(&self.path) {
            // Empty: the last plan finished.
            Ok(bytes) if bytes.is_empty() => return Ok(None),
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&self.path, "read", &e)),
        };
        let mut recovery = Recovery {
            path: self.path.clone(),
            ..Recovery::default()
        };
        // Only whole lines count: a torn last line is a write never made.
        let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
        let header = lines.next().map(str::trim_end);
        let boot = header.and_then(|h| h.strip_prefix(HEADER));
        if boot.is_some_and(|b| b != boot_id()) {
            recovery.earlier_boot = true;
        } else if boot.is_some() {
            let entries: Vec<(usize, &str)> = lines.enumerate().collect();
            let mut live = Live::default();
            for (n, line) in entries.into_iter().rev() {
                match parse(line.trim_end()) {
                    Some(undo) => undo_if_done(&undo, sysfs, &mut live, &mut recovery),
                    None => recovery.failed.push(format!(
                        "entry {} of {} is unreadable; what it announced was not checked",
                        n + 1,
                        self.path.display()
                    )),
                }
            }
        }
        // The next plan opens the file afresh, not the removed one.
        *self.handle() = None;
        fs::remove_file(&self.path).map_err(|e| io_err(&self.path, "remove", &e))?;
        Ok(Some(recovery))
    }
}

/// Appends the intents of one plan run to its journal; holds the file
/// for the run (one writer at a time).
#[derive(Debug)]
pub(super) struct Recorder<'j> {
    handle: MutexGuard<'j, Option<File>>,
    path: &'j Path,
    /// The header, until the first entry takes it along.
    header: Option<String>,
}

impl Recorder<'_> {
    /// Records `undo` (the change about to be made): one write(2), whole
    /// in the file once it returns, for the next apd of this boot.
    pub(super) fn record(&mut self, undo: &Undo) -> Result<(), StoreError> {
        let mut line = self.header.take().unwrap_or_default();
        line.push_str(&entry(undo));
        line.push('\n');
        let written = match self.handle.as_mut() {
            Some(file) => file.write_all(line.as_bytes()),
            None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        };
        written.map_err(|e| {
            // Half a line may be in: it reads as a write never made. The
            // next plan opens the file again.
            *self.handle = None;
            io_err(self.path, "write", &e)
        })
    }

    /// The plan has finished or rolled back: its journal is emptied.
    pub(super) fn finish(mut self) {
        let emptied = match self.handle.as_ref() {
            Some(file) => file.set_len(0),
            None => fs::remove_file(self.path).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            }),
        };
        if let Err(e) = emptied {
            *self.handle = None;
            // The next start would undo a plan that ended: say so loudly.
            tracing::error!(path = %self.path.display(), error = %e, "cannot empty the intent journal of a finished plan");
        }
    }
}

/// Runs `undo` when the change it undoes is there now.
fn undo_if_done(undo: &Undo, sysfs: &dyn Sysfs, live: &mut Live, recovery: &mut Recovery) {
    match in_place(undo, sysfs, live) {
        Ok(false) => recovery.absent += 1,
        Ok(true) => {
            let result = undo.run(sysfs);
            live.forget(undo);
            match result {
                Ok(()) => recovery.undone.push(undo.describe()),
                Err(e) => recovery
                    .failed
                    .push(format!("could not {} ({e})", undo.describe())),
            }
        }
        Err(e) => recovery.failed.push(format!(
            "could not tell whether to {} ({e})",
            undo.describe()
        )),
    }
}

/// Whether the change `undo` undoes is in place now.
fn in_place(undo: &Undo, sysfs: &dyn Sysfs, live: &mut Live) -> Result<bool, String> {
    let s = |e: super::ApplyCause| e.to_string();
    Ok(match undo {
        Undo::Mask { path, old, new } => {
            let now = read_mask(sysfs, path).map_err(s)?;
            now == *new && now != *old
        }
        Undo::File { path, old } => snapshot(path).map_err(s)? != *old,
        Undo::Configured { adapter, was_on } => {
            read_card_config(sysfs, *adapter).map_err(s)? != *was_on
        }
        Undo::Created { uuid } => live.matrix(sysfs, *uuid).map_err(s)?.is_some(),
        Undo::Removed { uuid, .. } => live.matrix(sysfs, *uuid).map_err(s)?.is_none(),
        Undo::Assigned { uuid, kind, id } => live.has(sysfs, *uuid, *kind, *id),
        Undo::Unassigned { uuid, kind, id } => {
            live.matrix(sysfs, *uuid).map_err(s)?.is_some() && !live.has(sysfs, *uuid, *kind, *id)
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn kind_word(kind: AssignKind) -> &'static str {
    kind.attr()
}

fn kind_of(word: &str) -> Option<AssignKind> {
    [
        AssignKind::Adapter,
        AssignKind::Domain,
        AssignKind::ControlDomain,
    ]
    .into_iter()
    .find(|k| k.attr() == word)
}

/// One journal line (without its newline): a verb and its fields,
/// space-separated; paths and file contents in hex.
fn entry(undo: &Undo) -> String {
    match undo {
        Undo::Mask { path, old, new } => format!("mask {path} {old} {new}"),
        Undo::File { path, old } => format!(
            "file {} {}",
            hex(path.as_os_str().as_encoded_bytes()),
            old.as_deref().map_or_else(|| "-".to_string(), hex)
        ),
        Undo::Configured { adapter, was_on } => {
            format!("config {adapter} {}", u8::from(*was_on))
        }
        Undo::Created { uuid } => format!("created {}", uuid.hyphenated()),
        Undo::Removed { uuid, matrix } => format!(
            "removed {} {} {} {}",
            uuid.hyphenated(),
            matrix.adapters,
            matrix.domains,
            matrix.control_domains
        ),
        Undo::Assigned { uuid, kind, id } => {
            format!("assigned {} {} {id}", uuid.hyphenated(), kind_word(*kind))
        }
        Undo::Unassigned { uuid, kind, id } => {
            format!("unassigned {} {} {id}", uuid.hyphenated(), kind_word(*kind))
        }
    }
}

/// The [`Undo`] of one journal line; None when it is not one.
fn parse(line: &str) -> Option<Undo> {
    let w: Vec<&str> = line.split(' ').collect();
    let uuid = |i: usize| w.get(i).and_then(|s| Uuid::try_parse(s).ok());
    let mask = |i: usize| w.get(i).and_then(|s| ApMask::parse_absolute(s).ok());
    let id_of = |kind: usize, id: usize| Some((kind_of(w.get(kind)?)?, w.get(id)?.parse().ok()?));
    Some(match (*w.first()?, w.len()) {
        ("mask", 4) => Undo::Mask {
            path: [paths::APMASK, paths::AQMASK]
                .into_iter()
                .find(|p| *p == w[1])?,
            old: mask(2)?,
            new: mask(3)?,
        },
        ("file", 3) => Undo::File {
            path: PathBuf::from(std::ffi::OsString::from_vec(unhex(w[1])?)),
            old: if w[2] == "-" {
                None
            } else {
                Some(unhex(w[2])?)
            },
        },
        ("config", 3) => Undo::Configured {
            adapter: w[1].parse().ok()?,
            was_on: match w[2] {
                "1" => true,
                "0" => false,
                _ => return None,
            },
        },
        ("created", 2) => Undo::Created { uuid: uuid(1)? },
        ("removed", 5) => Undo::Removed {
            uuid: uuid(1)?,
            matrix: Matrix {
                adapters: mask(2)?,
                domains: mask(3)?,
                control_domains: mask(4)?,
            },
        },
        ("assigned", 4) => {
            let (kind, id) = id_of(2, 3)?;
            Undo::Assigned {
                uuid: uuid(1)?,
                kind,
                id,
            }
        }
        ("unassigned", 4) => {
            let (kind, id) = id_of(2, 3)?;
            Undo::Unassigned {
                uuid: uuid(1)?,
                kind,
                id,
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_reads_back_as_itself() {
        let uuid = Uuid::parse_str("62177883-f1bb-47f0-914d-32a22e3a8804").expect("uuid");
        let mut m = Matrix::default();
        m.adapters.insert(5);
        m.domains.insert(0xab);
        let undos = [
            Undo::Mask {
                path: paths::AQMASK,
                old: ApMask::full(),
                new: ApMask::empty(),
            },
            Undo::File {
                path: PathBuf::from("/etc/apd/mdevs/a b.toml"),
                old: Some(b"name = \"x\"\n".to_vec()),
            },
            Undo::File {
                path: PathBuf::from("/etc/apd/apd.toml"),
                old: None,
            },
            Undo::Configured {
                adapter: 6,
                was_on: false,
            },
            Undo::Created { uuid },
            Undo::Removed { uuid, matrix: m },
            Undo::Assigned {
                uuid,
                kind: AssignKind::ControlDomain,
                id: 0xff,
            },
            Undo::Unassigned {
                uuid,
                kind: AssignKind::Adapter,
                id: 0,
            },
        ];
        for u in undos {
            let line = entry(&u);
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(
                parse(&line).map(|p| entry(&p)),
                Some(line.clone()),
                "{line}"
            );
        }
    }

    /// One file for every plan: emptied when a plan ends (nothing to
    /// recover), entries left by a killed one, and a new file when the
    /// old one was unlinked under apd.
    #[test]
    fn the_file_is_emptied_between_plans_and_made_again_when_unlinked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let journal = Journal::new(dir.path().join("run"));
        let sysfs = crate::sysfs::DirSysfs::new(dir.path());
        let uuid = Uuid::parse_str("62177883-f1bb-47f0-914d-32a22e3a8804").expect("uuid");
        let created = Undo::Created { uuid };

        let mut plan = journal.begin().expect("begin");
        plan.record(&created).expect("record");
        assert!(journal.pending());
        plan.finish();
        assert!(journal.path().exists() && !journal.pending());
        assert_eq!(journal.recover(&sysfs).expect("recover"), None);

        // Killed half-way: the header goes in again with the first entry.
        let mut plan = journal.begin().expect("begin");
        plan.record(&created).expect("record");
        drop(plan);
        let text = fs::read_to_string(journal.path()).expect("read");
        assert!(text.starts_with(HEADER), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");

        // Unlinked under apd: the next plan's entries land in a new file.
        fs::remove_file(journal.path()).expect("remove");
        let mut plan = journal.begin().expect("begin");
        plan.record(&created).expect("record");
        drop(plan);
        let recovery = journal.recover(&sysfs).expect("recover").expect("entries");
        assert_eq!((recovery.absent, recovery.failed.len()), (1, 0));
        assert!(!journal.path().exists());
    }

    #[test]
    fn lines_that_are_not_entries_are_refused() {
        for bad in [
            "",
            "mask bus/ap/other 0x0 0x0",
            "assigned 62177883-f1bb-47f0-914d-32a22e3a8804 queue 5",
            "assigned 62177883-f1bb-47f0-914d-32a22e3a8804 adapter 256",
            "config 5 2",
            "file zz -",
            "created not-a-uuid",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
