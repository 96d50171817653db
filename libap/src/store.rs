//! The definition store: `CFG/mdevs/<uuid>.toml`, one file per mdev, and
//! the persistent masks in `CFG/apd.toml`.
//!
//! Writes are atomic: a temporary file in the same directory
//! (`.<name>.tmp.<pid>.<n>`), written, fsynced, renamed over the target, then
//! the directory fsynced; a reader sees the old file or the new one, never
//! half of one. Loading never fails as a whole: each bad file becomes a
//! typed error naming it, and is never rewritten or deleted.

use crate::config_file::{
    read_regular, Document, FileError, FileKind, Position, Problem, ReadError,
};
use crate::definition::{validate_name, Definition, NameError};
use crate::mask::ApMask;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

/// Subdirectory holding the definitions.
pub const MDEVS_DIR: &str = "mdevs";
/// File holding the persistent masks.
pub const MASKS_FILE: &str = "apd.toml";

/// A store failure, naming the file. Nothing here quotes a file's content:
/// reports of these are open to every uid (design.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// An OS error on `path`.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was attempted (`read`, `write`, `rename`, ...).
        op: &'static str,
        /// The OS error text.
        message: String,
        /// The errno, when the OS gave one.
        errno: Option<i32>,
    },
    /// A definition file that does not parse; it is skipped, never rewritten.
    Parse {
        /// The file.
        path: PathBuf,
        /// Why, by position.
        error: FileError,
    },
    /// Something other than a regular file stands where a configuration
    /// file belongs; it is not followed or opened, and never replaced.
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What stands there.
        kind: FileKind,
    },
    /// A configuration file larger than any apd writes.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// A configuration file that is not UTF-8 text.
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The file name's UUID is not the UUID inside.
    UuidMismatch {
        /// The file.
        path: PathBuf,
        /// UUID from the file name.
        file: Uuid,
        /// UUID inside.
        content: Uuid,
    },
    /// A `.toml` file whose name is not `<lowercase uuid>.toml`.
    BadFileName {
        /// The file.
        path: PathBuf,
    },
    /// A second definition with a name already taken; it is skipped.
    DuplicateName {
        /// The skipped file.
        path: PathBuf,
        /// The name.
        name: String,
        /// The file that keeps the name.
        other: PathBuf,
    },
    /// A definition with an invalid name cannot be saved.
    InvalidName(NameError),
    /// `apd.toml` does not hold valid masks.
    Masks {
        /// The file.
        path: PathBuf,
        /// Why, by position.
        error: FileError,
    },
}

impl From<NameError> for StoreError {
    fn from(e: NameError) -> Self {
        StoreError::InvalidName(e)
    }
}

impl std::error::Error for StoreError {}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io {
                path, op, message, ..
            } => {
                write!(f, "cannot {op} {}: {message}", path.display())
            }
            StoreError::InvalidName(e) => write!(f, "{e}"),
            other => match other.path() {
                Some(path) => write!(f, "{}: {}", path.display(), other.problem()),
                None => f.write_str(&other.problem()),
            },
        }
    }
}

impl StoreError {
    /// The file concerned, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StoreError::Io { path, .. }
            | StoreError::Parse { path, .. }
            | StoreError::NotRegular { path, .. }
            | StoreError::TooLarge { path, .. }
            | StoreError::NotText { path }
            | StoreError::UuidMismatch { path, .. }
            | StoreError::BadFileName { path }
            | StoreError::DuplicateName { path, .. }
            | StoreError::Masks { path, .. } => Some(path),
            StoreError::InvalidName(_) => None,
        }
    }

    /// What is wrong, without the path: for reports that name the file
    /// beside it (apd's `LoadErrors` pairs).
    pub fn problem(&self) -> String {
        match self {
            StoreError::Io { op, message, .. } => format!("cannot {op}: {message}"),
            StoreError::Parse { error, .. } => format!("{error}; fix or remove the file"),
            StoreError::NotRegular { kind, .. } => format!(
                "{kind}, not a regular file: apd reads only regular files here and \
                 follows no links; put the file itself in its place, or remove it"
            ),
            StoreError::TooLarge { size, .. } => format!(
                "{size} bytes, larger than any configuration file ({} bytes at most); fix or remove it",
                crate::config_file::MAX_FILE_SIZE
            ),
            StoreError::NotText { .. } => {
                "not UTF-8 text; fix or remove the file".to_string()
            }
            StoreError::UuidMismatch { file, content, .. } => format!(
                "the file holds uuid {content}, but its name says {file}; rename the file to {content}.toml or fix the uuid"
            ),
            StoreError::BadFileName { .. } => {
                "a definition file must be named <uuid>.toml (lowercase); rename or remove it"
                    .to_string()
            }
            StoreError::DuplicateName { name, other, .. } => format!(
                "the name {name:?} is already used by {}; rename one of them",
                other.display()
            ),
            StoreError::InvalidName(e) => e.to_string(),
            StoreError::Masks { error, .. } => error.to_string(),
        }
    }

    /// The error for a configuration file `path` that could not be read.
    fn unreadable(path: &Path, e: ReadError) -> StoreError {
        let path = path.to_path_buf();
        match e {
            ReadError::NotRegular(kind) => StoreError::NotRegular { path, kind },
            ReadError::TooLarge(size) => StoreError::TooLarge { path, size },
            ReadError::NotUtf8 => StoreError::NotText { path },
            ReadError::Io(e) => io_err(&path, "read", &e),
        }
    }
}

/// Read a configuration file by the rules of [`crate::config_file`]:
/// `Ok(None)` when there is none.
pub(crate) fn read_config(path: &Path) -> Result<Option<String>, StoreError> {
    read_regular(path).map_err(|e| StoreError::unreadable(path, e))
}

/// Refuse to replace or remove anything but a regular file (or nothing)
/// at `path`: what the store reports as skipped is never rewritten.
fn replaceable(path: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => match FileKind::of(meta.file_type()) {
            Some(kind) => Err(StoreError::NotRegular {
                path: path.to_path_buf(),
                kind,
            }),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

pub(crate) fn io_err(path: &Path, op: &'static str, e: &std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        op,
        message: e.to_string(),
        errno: e.raw_os_error(),
    }
}

/// What [`Store::load`] found: the good definitions (sorted by UUID) and
/// one error per bad file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Definitions that loaded.
    pub definitions: Vec<Definition>,
    /// One entry per file that did not.
    pub errors: Vec<StoreError>,
}

/// The on-disk store rooted at `CFG`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// Where mdevctl keeps its vfio_ap definitions, when apd looks there
    /// ([`crate::coexist`]).
    mdevctl_dir: Option<PathBuf>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One entry of `mdevs/`: None when it is not a definition (our temporary
/// file, removed if its writer is dead; a hidden or non-`.toml` file; a
/// file removed since the listing), else the definition or why it is not
/// loaded.
fn load_entry(path: &Path, name: &str) -> Option<Result<Definition, StoreError>> {
    if let Some(pid) = temp_owner(name) {
        if !process_alive(pid) {
            tracing::info!(path = %path.display(), "removing a temporary file left by an interrupted save");
            let _ = fs::remove_file(path);
        }
        return None;
    }
    if name.starts_with('.') {
        return None;
    }
    let Some(stem) = name.strip_suffix(".toml") else {
        tracing::debug!(path = %path.display(), "ignoring a file that is not a definition");
        return None;
    };
    let file_uuid = match Uuid::try_parse(stem) {
        Ok(u) if u.hyphenated().to_string() == stem => u,
        _ => {
            return Some(Err(StoreError::BadFileName {
                path: path.to_path_buf(),
            }))
        }
    };
    let text = match read_config(path) {
        Ok(Some(t)) => t,
        // Gone since the listing: a concurrent remove.
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    let def = match Definition::from_toml(&text) {
        Ok(d) => d,
        Err(error) => {
            return Some(Err(StoreError::Parse {
                path: path.to_path_buf(),
                error,
            }))
        }
    };
    if def.uuid != file_uuid {
        return Some(Err(StoreError::UuidMismatch {
            path: path.to_path_buf(),
            file: file_uuid,
            content: def.uuid,
        }));
    }
    Some(Ok(def))
}

/// Removes the temporary files of dead writers directly in `dir` (those of
/// `apd.toml`, saved in CFG itself); anything else there is left alone.
fn sweep_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if temp_owner(&name).is_some_and(|pid| !process_alive(pid)) {
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing a temporary file left by an interrupted save");
            let _ = fs::remove_file(&path);
        }
    }
}

/// Our temporary file name for `target` (`.target.tmp.<pid>.<n>`).
fn temp_name(target: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{target}.tmp.{}.{n}", std::process::id())
}

/// If `name` is one of our temporary files, the pid that made it.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp.")?;
    let (pid, n) = tail.split_once('.')?;
    if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(dir, "fsync", &e))
}

/// Write `content` to `dir/name` atomically (temp file, fsync, rename,
/// fsync the directory).
pub fn write_atomic(dir: &Path, name: &str, content: &[u8]) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, "create directory", &e))?;
    let tmp = dir.join(temp_name(name));
    let target = dir.join(name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, "create", &e))?;
        f.write_all(content)
            .map_err(|e| io_err(&tmp, "write", &e))?;
        f.sync_all().map_err(|e| io_err(&tmp, "fsync", &e))?;
        drop(f);
        fs::rename(&tmp, &target).map_err(|e| io_err(&target, "rename into", &e))
    })();
    if result.is_err() {
        // Best effort: never leave our own temp file behind on failure.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(dir)
}

impl Store {
    /// The store in `dir` (`CFG`, e.g. `/etc/apd`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            mdevctl_dir: None,
        }
    }

    /// The same store, beside mdevctl's definitions under `root` (the
    /// directory that plays `/`, as `MDEVCTL_ENV_ROOT` does for mdevctl):
    /// `<root>/etc/mdevctl.d/matrix`.
    pub fn beside_mdevctl(mut self, root: &Path) -> Self {
        self.mdevctl_dir = Some(crate::coexist::mdevctl_dir(root));
        self
    }

    /// mdevctl's directory of vfio_ap definitions, if this store looks there.
    pub fn mdevctl_dir(&self) -> Option<&Path> {
        self.mdevctl_dir.as_deref()
    }

    /// `CFG`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `CFG/mdevs`.
    pub fn mdevs_dir(&self) -> PathBuf {
        self.dir.join(MDEVS_DIR)
    }

    /// `CFG/mdevs/<uuid>.toml`.
    pub fn path_of(&self, uuid: Uuid) -> PathBuf {
        self.mdevs_dir().join(format!("{}.toml", uuid.hyphenated()))
    }

    /// `CFG/apd.toml`.
    pub fn masks_path(&self) -> PathBuf {
        self.dir.join(MASKS_FILE)
    }

    /// Load every definition; bad files become errors, the rest load.
    /// Temporary files of ours (in `mdevs/` and, those of `apd.toml`, in
    /// CFG) are skipped, and removed when the process that made them is
    /// gone (an interrupted save).
    pub fn load(&self) -> LoadReport {
        let mut report = LoadReport::default();
        sweep_temp_files(&self.dir);
        let dir = self.mdevs_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return report,
            Err(e) => {
                report.errors.push(io_err(&dir, "read directory", &e));
                return report;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => names.push(e.file_name().to_string_lossy().into_owned()),
                Err(e) => report.errors.push(io_err(&dir, "read directory", &e)),
            }
        }
        names.sort();
        let mut taken: HashMap<String, PathBuf> = HashMap::new();
        for name in names {
            let path = dir.join(&name);
            let def = match load_entry(&path, &name) {
                None => continue,
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    report.errors.push(e);
                    continue;
                }
            };
            if let Some(n) = &def.name {
                if let Some(other) = taken.get(n) {
                    report.errors.push(StoreError::DuplicateName {
                        path,
                        name: n.clone(),
                        other: other.clone(),
                    });
                    continue;
                }
                taken.insert(n.clone(), path.clone());
            }
            report.definitions.push(def);
        }
        for e in &report.errors {
            tracing::warn!("definition store: {e}");
        }
        report
    }

    /// Load one definition by UUID; `Ok(None)` when there is no file.
    #[cfg(any(test, feature = "testing"))]
    pub fn load_one(&self, uuid: Uuid) -> Result<Option<Definition>, StoreError> {
        let path = self.path_of(uuid);
        let Some(text) = read_config(&path)? else {
            return Ok(None);
        };
        let def = Definition::from_toml(&text).map_err(|error| StoreError::Parse {
            path: path.clone(),
            error,
        })?;
        if def.uuid != uuid {
            return Err(StoreError::UuidMismatch {
                path,
                file: uuid,
                content: def.uuid,
            });
        }
        Ok(Some(def))
    }

    /// Write a definition atomically (creating `CFG/mdevs` if needed).
    /// Name uniqueness across definitions is the caller's rule to enforce.
    pub fn save(&self, def: &Definition) -> Result<(), StoreError> {
        if let Some(n) = &def.name {
            validate_name(n)?;
        }
        let name = format!("{}.toml", def.uuid.hyphenated());
        replaceable(&self.path_of(def.uuid))?;
        write_atomic(&self.mdevs_dir(), &name, def.to_toml().as_bytes())?;
        tracing::debug!(uuid = %def.uuid, "definition saved");
        Ok(())
    }

    /// Remove a definition's file; `Ok(false)` when there was none.
    pub fn remove(&self, uuid: Uuid) -> Result<bool, StoreError> {
        let path = self.path_of(uuid);
        replaceable(&path)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                fsync_dir(&self.mdevs_dir())?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path, "remove", &e)),
        }
    }

    /// `apd.toml`, parsed; the document borrows `text`.
    fn read_masks_text(&self) -> Result<Option<String>, StoreError> {
        read_config(&self.masks_path())
    }

    fn masks_error(&self, error: FileError) -> StoreError {
        StoreError::Masks {
            path: self.masks_path(),
            error,
        }
    }

    /// The persistent masks (`apmask`, `aqmask` in `CFG/apd.toml`); None
    /// for a mask that is not stored.
    pub fn load_masks(&self) -> Result<(Option<ApMask>, Option<ApMask>), StoreError> {
        let Some(text) = self.read_masks_text()? else {
            return Ok((None, None));
        };
        let doc = Document::parse(&text).map_err(|e| self.masks_error(e))?;
        let get = |key: &'static str| -> Result<Option<ApMask>, StoreError> {
            match doc.string(key).map_err(|e| self.masks_error(e))? {
                None => Ok(None),
                Some((s, at)) => ApMask::parse_absolute(s)
                    .map(Some)
                    .map_err(|_| self.masks_error(doc.error(Problem::NotAMask(key), at))),
            }
        };
        Ok((get("apmask")?, get("aqmask")?))
    }

    /// Store the persistent masks (None removes one); other keys of
    /// `apd.toml` are kept. A file that does not parse is not overwritten.
    pub fn save_masks(
        &self,
        apmask: Option<ApMask>,
        aqmask: Option<ApMask>,
    ) -> Result<(), StoreError> {
        let mut table = match self.read_masks_text()? {
            None => toml::Table::new(),
            Some(text) => text.parse::<toml::Table>().map_err(|e| {
                self.masks_error(FileError {
                    problem: Problem::Syntax,
                    at: e.span().map(|s| Position::at(&text, s.start)),
                })
            })?,
        };
        for (key, value) in [("apmask", apmask), ("aqmask", aqmask)] {
            match value {
                Some(m) => {
                    table.insert(key.to_string(), toml::Value::String(m.to_string()));
                }
                None => {
                    table.remove(key);
                }
            }
        }
        let text = toml::to_string(&table).map_err(|e| StoreError::Io {
            path: self.masks_path(),
            op: "encode",
            message: e.to_string(),
            errno: None,
        })?;
        write_atomic(&self.dir, MASKS_FILE, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognized() {
        let t = temp_name("x.toml");
        assert_eq!(temp_owner(&t), Some(std::process::id()));
        assert_eq!(temp_owner(".x.toml.tmp.123.4"), Some(123));
        assert_eq!(temp_owner("x.toml"), None);
        assert_eq!(temp_owner(".x.toml.tmp.abc.4"), None);
        assert_eq!(temp_owner(".hidden"), None);
    }
}
