//! The only door to the kernel: a small trait over sysfs, and its
//! implementation on a real directory (`/sys`, or a FUSE-mounted apsim) and,
//! with the feature `apsim`, over the in-process simulator (`SimSysfs`).

#[cfg(feature = "apsim")]
mod sim;
#[cfg(feature = "apsim")]
pub use sim::SimSysfs;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::host::paths;

/// Which sysfs operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SysfsOp {
    /// Reading an attribute.
    Read,
    /// Writing an attribute.
    Write,
    /// Listing a directory.
    List,
    /// Reading a symlink.
    ReadLink,
}

/// A failed sysfs access: the operation, the path, the errno and, for a
/// write, the data written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsError {
    /// What was attempted.
    pub op: SysfsOp,
    /// Path relative to the sysfs root.
    pub path: String,
    /// The errno the kernel returned.
    pub errno: i32,
    /// For writes: what was written (lossy UTF-8).
    pub data: Option<String>,
}

impl SysfsError {
    /// A new error.
    pub fn new(op: SysfsOp, path: impl Into<String>, errno: i32) -> Self {
        Self {
            op,
            path: path.into(),
            errno,
            data: None,
        }
    }

    /// A failed write of `data` to `path`.
    pub fn write(path: impl Into<String>, data: &[u8], errno: i32) -> Self {
        Self {
            op: SysfsOp::Write,
            path: path.into(),
            errno,
            data: Some(String::from_utf8_lossy(data).into_owned()),
        }
    }

    /// The symbolic errno name, e.g. `EBUSY`.
    pub fn errno_name(&self) -> ErrnoName {
        errno_name(self.errno)
    }

    /// Whether the path did not exist.
    pub fn is_not_found(&self) -> bool {
        self.errno == libc::ENOENT
    }
}

impl fmt::Display for SysfsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = strerror(self.errno);
        let name = errno_name(self.errno);
        match self.op {
            SysfsOp::Write => {
                let data = self.data.as_deref().unwrap_or("");
                // Show what was written without its trailing newline, as
                // `echo` would have been given it.
                let shown = data.strip_suffix('\n').unwrap_or(data);
                write!(f, "cannot write {shown:?} to {}: {msg} ({name})", self.path)
            }
            SysfsOp::Read => write!(f, "cannot read {}: {msg} ({name})", self.path),
            SysfsOp::List => write!(f, "cannot list {}: {msg} ({name})", self.path),
            SysfsOp::ReadLink => write!(f, "cannot read link {}: {msg} ({name})", self.path),
        }
    }
}

impl std::error::Error for SysfsError {}

/// A symbolic errno name: `Borrowed` static name when known, else an owned
/// `E<num>`. Derefs to `str`, compares with `&str`, implements Display.
pub type ErrnoName = Cow<'static, str>;

const ERRNOS: &[(i32, &str)] = &[
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::ESRCH, "ESRCH"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::ENXIO, "ENXIO"),
    (libc::E2BIG, "E2BIG"),
    (libc::EBADF, "EBADF"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (libc::EFAULT, "EFAULT"),
    (libc::EBUSY, "EBUSY"),
    (libc::EEXIST, "EEXIST"),
    (libc::ENODEV, "ENODEV"),
    (libc::ENOTDIR, "ENOTDIR"),
    (libc::EISDIR, "EISDIR"),
    (libc::EINVAL, "EINVAL"),
    (libc::ENFILE, "ENFILE"),
    (libc::EMFILE, "EMFILE"),
    (libc::ENOSPC, "ENOSPC"),
    (libc::EROFS, "EROFS"),
    (libc::EPIPE, "EPIPE"),
    (libc::ERANGE, "ERANGE"),
    (libc::EDEADLK, "EDEADLK"),
    (libc::ENAMETOOLONG, "ENAMETOOLONG"),
    (libc::ENOSYS, "ENOSYS"),
    (libc::ENOTEMPTY, "ENOTEMPTY"),
    (libc::ELOOP, "ELOOP"),
    (libc::ENODATA, "ENODATA"),
    (libc::ETIME, "ETIME"),
    (libc::EUSERS, "EUSERS"),
    (libc::EOPNOTSUPP, "EOPNOTSUPP"),
    (libc::EADDRINUSE, "EADDRINUSE"),
    (libc::EADDRNOTAVAIL, "EADDRNOTAVAIL"),
    (libc::ENOTCONN, "ENOTCONN"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
    (libc::ECONNREFUSED, "ECONNREFUSED"),
    (libc::EALREADY, "EALREADY"),
    (libc::EINPROGRESS, "EINPROGRESS"),
    (libc::ECANCELED, "ECANCELED"),
    (libc::EOVERFLOW, "EOVERFLOW"),
    (libc::ENOTSUP, "ENOTSUP"),
];

/// The symbolic name of an errno (`EINVAL`), or `E<num>` if unknown here.
pub fn errno_name(errno: i32) -> ErrnoName {
    ERRNOS
        .iter()
        .find(|(n, _)| *n == errno)
        .map(|(_, s)| Cow::Borrowed(*s))
        .unwrap_or_else(|| Cow::Owned(format!("E{errno}")))
}

/// The errno for a symbolic name (`EBUSY` → 16), or a plain number.
pub fn errno_from_name(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return Some(n);
    }
    ERRNOS
        .iter()
        .find(|(_, s)| s.eq_ignore_ascii_case(name))
        .map(|(n, _)| *n)
}

/// The C library's message for an errno ("Invalid argument").
pub fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    // std appends " (os error N)"; the errno name is shown separately.
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Access to a sysfs tree. Paths are relative to the sysfs root, e.g.
/// `bus/ap/apmask`, without a leading `/`.
pub trait Sysfs: Send + Sync + fmt::Debug {
    /// Read an attribute (the whole content).
    fn read(&self, path: &str) -> Result<String, SysfsError>;
    /// Write an attribute in one write(2) of the whole buffer.
    fn write(&self, path: &str, data: &[u8]) -> Result<(), SysfsError>;
    /// Entry names of a directory, sorted.
    fn list(&self, path: &str) -> Result<Vec<String>, SysfsError>;
    /// A symlink's target as stored.
    fn read_link(&self, path: &str) -> Result<String, SysfsError>;
    /// Whether the path exists (following links).
    fn exists(&self, path: &str) -> bool;
}

/// Sysfs rooted at a directory: `/sys` on a host, or the mount point of
/// `apsim mount`. Clones share the attributes held open.
#[derive(Debug, Clone)]
pub struct DirSysfs {
    root: PathBuf,
    held: Arc<Held>,
}

/// The AP bus's masks ([`paths::BUS_MASKS`]) kept open and read again from
/// offset 0, where that shows the current value: sysfs makes a new `show`
/// for a read at offset 0 (seq_file), and apsim's mount a new read of its
/// model. Each change re-reads the five masks; through FUSE a held one
/// costs one READ instead of OPEN, READ and RELEASE (and the LOOKUPs of
/// the path once the kernel's TTL ran out).
#[derive(Debug, Default)]
struct Held {
    /// Whether the masks' filesystem is sysfs or FUSE, asked once. A plain
    /// directory (tests) may replace a file by another: nothing is held.
    shows_anew: OnceLock<bool>,
    files: Mutex<HashMap<&'static str, Arc<File>>>,
}

impl Held {
    /// `path`'s text through a held file (or why it cannot be opened), or
    /// None: not a held path, not a filesystem that shows anew, or the held
    /// file failed (then it is dropped, and a fresh open tells the caller
    /// what is wrong).
    fn read(&self, path: &str, full: &Path) -> Option<std::io::Result<Vec<u8>>> {
        let key = paths::BUS_MASKS
            .into_iter()
            .find(|p| *p == path.trim_start_matches('/'))?;
        if !*self.shows_anew.get_or_init(|| shows_anew(full)) {
            return None;
        }
        let files = || self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let held = files().get(key).cloned();
        let file = match held {
            Some(f) => f,
            None => {
                // A mask that cannot be opened is not opened again by the
                // caller: its error is the answer.
                let f = match File::open(full) {
                    Ok(f) => Arc::new(f),
                    Err(e) => return Some(Err(e)),
                };
                files().insert(key, f.clone());
                f
            }
        };
        match read_from_start(&file) {
            Ok(bytes) => Some(Ok(bytes)),
            Err(e) => {
                tracing::debug!(path, error = %e, "a held attribute failed; opening it again");
                files().remove(key);
                None
            }
        }
    }
}

/// Whether `path` is on sysfs or a FUSE mount (apsim's), whose attributes
/// show their current value at each read from offset 0.
fn shows_anew(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, FUSE_SUPER_MAGIC, SYSFS_MAGIC};
    statfs(path).is_ok_and(|s| {
        s.filesystem_type() == SYSFS_MAGIC || s.filesystem_type() == FUSE_SUPER_MAGIC
    })
}

impl DirSysfs {
    /// Sysfs rooted at `root` (the directory that plays `/sys`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            held: Arc::default(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolve a relative path; refuses `..` and absolute paths so a path
    /// can never leave the root.
    fn resolve(&self, op: SysfsOp, path: &str) -> Result<PathBuf, SysfsError> {
        let rel = Path::new(path.trim_start_matches('/'));
        for c in rel.components() {
            match c {
                Component::Normal(_) | Component::CurDir => {}
                _ => return Err(SysfsError::new(op, path, libc::EINVAL)),
            }
        }
        Ok(self.root.join(rel))
    }
}

/// A sysfs attribute shows at most a page, whole, in its first read(2):
/// a short read is the end, so no second read(2) (one more FUSE round
/// trip on a mounted simulator) is spent to find it. Only a full buffer
/// reads on.
///
/// Each read is a pread(2) from offset 0: the same for a file just
/// opened, and a new `show` for one held open.
fn read_from_start(file: &File) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        let offset = u64::try_from(len).unwrap_or(u64::MAX);
        let n = match file.read_at(&mut buf[len..], offset) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        len += n;
        if n == 0 || len < buf.len() {
            buf.truncate(len);
            return Ok(buf);
        }
        buf.resize(buf.len() * 2, 0);
    }
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Sysfs for DirSysfs {
    fn read(&self, path: &str) -> Result<String, SysfsError> {
        let full = self.resolve(SysfsOp::Read, path)?;
        let bytes = self
            .held
            .read(path, &full)
            .unwrap_or_else(|| File::open(&full).and_then(|f| read_from_start(&f)))
            .map_err(|e| SysfsError::new(SysfsOp::Read, path, errno_of(&e)))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn write(&self, path: &str, data: &[u8]) -> Result<(), SysfsError> {
        let full = self
            .resolve(SysfsOp::Write, path)
            .map_err(|e| SysfsError::write(e.path, data, e.errno))?;
        // Open for writing, never create, and without the O_TRUNC of `echo
        // x > attr`: a sysfs store never sees a truncate (kernfs ignores
        // one), and through FUSE it costs a SETATTR and the GETXATTR of
        // security.capability checked before it: two requests of five.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&full)
            .map_err(|e| SysfsError::write(path, data, errno_of(&e)))?;
        // One write(2) call: a sysfs store sees exactly this buffer.
        let n = file
            .write(data)
            .map_err(|e| SysfsError::write(path, data, errno_of(&e)))?;
        if n != data.len() {
            tracing::warn!(path, written = n, len = data.len(), "short sysfs write");
            return Err(SysfsError::write(path, data, libc::EIO));
        }
        tracing::debug!(path, data = %String::from_utf8_lossy(data).trim_end(), "sysfs write");
        Ok(())
    }

    fn list(&self, path: &str) -> Result<Vec<String>, SysfsError> {
        let full = self.resolve(SysfsOp::List, path)?;
        let rd = std::fs::read_dir(&full)
            .map_err(|e| SysfsError::new(SysfsOp::List, path, errno_of(&e)))?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| SysfsError::new(SysfsOp::List, path, errno_of(&e)))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn read_link(&self, path: &str) -> Result<String, SysfsError> {
        let full = self.resolve(SysfsOp::ReadLink, path)?;
        let target = std::fs::read_link(&full)
            .map_err(|e| SysfsError::new(SysfsOp::ReadLink, path, errno_of(&e)))?;
        Ok(target.to_string_lossy().into_owned())
    }

    fn exists(&self, path: &str) -> bool {
        self.resolve(SysfsOp::Read, path)
            .map(|p| p.exists())
            .unwrap_or(false)
    }
}

/// A reference or a smart pointer to a [`Sysfs`] is one: every method goes
/// to what it points to.
macro_rules! forward_sysfs {
    ($($pointer:ty),+) => {$(
        impl<T: Sysfs + ?Sized> Sysfs for $pointer {
            fn read(&self, path: &str) -> Result<String, SysfsError> {
                (**self).read(path)
            }
            fn write(&self, path: &str, data: &[u8]) -> Result<(), SysfsError> {
                (**self).write(path, data)
            }
            fn list(&self, path: &str) -> Result<Vec<String>, SysfsError> {
                (**self).list(path)
            }
            fn read_link(&self, path: &str) -> Result<String, SysfsError> {
                (**self).read_link(path)
            }
            fn exists(&self, path: &str) -> bool {
                (**self).exists(path)
            }
        }
    )+};
}

forward_sysfs!(&T, Arc<T>, Box<T>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_read_whole_whatever_their_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fs = DirSysfs::new(dir.path());
        for len in [0usize, 1, 4095, 4096, 4097, 10_000] {
            let text: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            std::fs::write(dir.path().join("attr"), &text).expect("write");
            assert_eq!(fs.read("attr").expect("read"), text, "{len} bytes");
        }
    }

    #[test]
    fn display_names_the_write() {
        let e = SysfsError::write("bus/ap/apmask", b"5\n", libc::EINVAL);
        assert_eq!(
            e.to_string(),
            "cannot write \"5\" to bus/ap/apmask: Invalid argument (EINVAL)"
        );
        let e = SysfsError::new(SysfsOp::Read, "bus/ap/aqmask", libc::ENOENT);
        assert_eq!(
            e.to_string(),
            "cannot read bus/ap/aqmask: No such file or directory (ENOENT)"
        );
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::EADDRINUSE), "EADDRINUSE");
        assert_eq!(errno_name(libc::EADDRNOTAVAIL), "EADDRNOTAVAIL");
        assert_eq!(errno_name(libc::EUSERS), "EUSERS");
        assert_eq!(errno_name(9999), "E9999");
        assert_eq!(errno_from_name("EBUSY"), Some(libc::EBUSY));
        assert_eq!(errno_from_name("16"), Some(16));
        assert_eq!(errno_from_name("ENOPE"), None);
    }

    #[test]
    fn a_plain_directory_holds_no_mask_open() {
        // A plain file may be replaced by another (a rename): only sysfs
        // and FUSE show a held attribute anew.
        let dir = tempfile::tempdir().expect("tempdir");
        let ap = dir.path().join("bus/ap");
        std::fs::create_dir_all(&ap).expect("mkdir");
        let fs = DirSysfs::new(dir.path());
        for value in ["0xf0\n", "0x0f\n", "0xff\n"] {
            std::fs::write(ap.join("apmask.new"), value).expect("write");
            std::fs::rename(ap.join("apmask.new"), ap.join("apmask")).expect("rename");
            assert_eq!(fs.read(paths::APMASK).expect("read"), value);
        }
        assert!(!shows_anew(&ap.join("apmask")));
        assert!(fs.held.files.lock().expect("lock").is_empty());
    }

    #[test]
    fn dir_sysfs_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("bus/ap")).expect("mkdir");
        std::fs::write(dir.path().join("bus/ap/apmask"), "old value\n").expect("write");
        let fs = DirSysfs::new(dir.path());
        assert!(fs.exists("bus/ap/apmask"));
        assert!(!fs.exists("bus/ap/nothing"));
        // One write(2) at offset 0 and no truncate, as a sysfs store sees
        // it: over a plain file the old tail stays.
        fs.write("bus/ap/apmask", b"-5\n").expect("write");
        assert_eq!(fs.read("bus/ap/apmask").expect("read"), "-5\n value\n");
        assert_eq!(fs.list("bus/ap").expect("list"), vec!["apmask".to_string()]);
        let e = fs.write("bus/ap/missing", b"1").expect_err("no create");
        assert_eq!(e.errno, libc::ENOENT);
        assert_eq!(e.data.as_deref(), Some("1"));
        let e = fs.read("../etc/passwd").expect_err("no escape");
        assert_eq!(e.errno, libc::EINVAL);
        std::os::unix::fs::symlink("../../bus/ap", dir.path().join("bus/link")).expect("symlink");
        assert_eq!(fs.read_link("bus/link").expect("link"), "../../bus/ap");
        assert_eq!(
            fs.list("/bus").expect("list"),
            vec!["ap".to_string(), "link".to_string()]
        );
    }
}
