//! The only door to the kernel: a small trait over sysfs, and its
//! implementation on a real directory (`/sys`, or a FUSE-mounted apsim) and,
//! with the feature `apsim`, over the in-process simulator (`SimSysfs`).

#[cfg(feature = "apsim")]
mod sim;
#[cfg(feature = "apsim")]
pub use sim::SimSysfs;

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

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
/// `apsim mount`.
#[derive(Debug, Clone)]
pub struct DirSysfs {
    root: PathBuf,
}

impl DirSysfs {
    /// Sysfs rooted at `root` (the directory that plays `/sys`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
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
fn read_attribute(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        let n = match file.read(&mut buf[len..]) {
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
        let bytes = read_attribute(&full)
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

forward_sysfs!(&T, std::sync::Arc<T>, Box<T>);

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
