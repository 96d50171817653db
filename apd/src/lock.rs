//! The s390 AP configuration lock, `/run/lock/s390apconfig.lock`, shared
//! with s390-tools (ap-check, chzdev's AP support, zdev's libap).
//!
//! s390-tools does not use flock(2) here but a lock file (libutil's
//! util_lockfile, compatible with its earlier liblockfile one): the lock is
//! held while the file exists. A holder writes its pid (`"<pid>\n"`) to a
//! temporary file next to the lock, named `<lock><pid %05d><time & 255
//! %02x>`, and link(2)s it to the lock's name, which is atomic and fails
//! when the lock exists. The pid in a lock is read as C `atoi` reads the
//! first 40 bytes. A lock whose pid is gone (kill(pid, 0) gives ESRCH; EPERM
//! means it exists) is stale; a lock with pid 0 or no content is stale once
//! its mtime is more than 120 seconds old (a holder that never wrote its
//! pid), else held. A stale lock is unlinked and the link retried. The
//! holder releases it by unlinking it, only if it still holds its pid. We
//! follow the same protocol so that apd and those tools never write AP
//! configuration at the same time; the one addition: a lock naming apd's
//! own pid, which apd does not hold, is a leftover of an earlier process
//! with that pid (s390-tools would wait for itself).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// How long a lock without a pid stays valid, in seconds of mtime
/// (util_lockfile's WAITPID).
const NO_PID_VALIDITY_SECS: i64 = 120;

/// How much of a lock file is read for its pid (util_lockfile's BUFSIZE).
const PID_BYTES: u64 = 40;

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it and did not release it in time.
    #[error(
        "the s390 AP configuration lock {path} is held by {holder}; \
         try again when it has finished"
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, e.g. `process 1234 (chzdev)`.
        holder: String,
    },
    /// The lock file could not be created or inspected.
    #[error("cannot take the s390 AP configuration lock {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The lock file and how long to wait for it.
#[derive(Debug, Clone)]
pub struct ConfigLock {
    path: PathBuf,
    wait: Duration,
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    pid: u32,
}

impl ConfigLock {
    /// A lock at `path`; `acquire` waits up to `wait` for another holder.
    pub fn new(path: impl Into<PathBuf>, wait: Duration) -> Self {
        Self {
            path: path.into(),
            wait,
        }
    }

    /// Takes the lock (blocking; call from a blocking thread).
    pub fn acquire(&self) -> Result<LockGuard, LockError> {
        self.take(true)
            .map(|g| g.expect("a waiting take returns a guard or an error"))
    }

    /// Takes the lock if no live process holds it, without waiting: a few
    /// calls on the lock's directory (a tmpfs), cheap enough for an async
    /// thread. `Ok(None)` when it is held.
    pub fn try_acquire(&self) -> Result<Option<LockGuard>, LockError> {
        self.take(false)
    }

    fn take(&self, wait: bool) -> Result<Option<LockGuard>, LockError> {
        let pid = std::process::id();
        let io = |path: &Path, source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
            }
        }
        let tmp = self.temp_path(pid);
        write_pid_file(&tmp, pid).map_err(|e| io(&tmp, e))?;
        let result = self.link_loop(&tmp, pid, wait);
        // The temporary name is never needed after the loop: on success the
        // lock name holds the same inode.
        let _ = fs::remove_file(&tmp);
        result
    }

    fn link_loop(&self, tmp: &Path, pid: u32, wait: bool) -> Result<Option<LockGuard>, LockError> {
        let deadline = Instant::now() + self.wait;
        let mut pause = Duration::from_millis(20);
        loop {
            match fs::hard_link(tmp, &self.path) {
                Ok(()) => {
                    tracing::trace!(lock = %self.path.display(), "s390 AP configuration lock taken");
                    return Ok(Some(LockGuard {
                        path: self.path.clone(),
                        pid,
                    }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(LockError::Io {
                        path: self.path.clone(),
                        source: e,
                    })
                }
            }
            match inspect(&self.path, pid) {
                Holder::Gone => continue,
                Holder::Stale(why) => {
                    tracing::warn!(lock = %self.path.display(), %why, "removing a stale s390 AP configuration lock");
                    match fs::remove_file(&self.path) {
                        Ok(()) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => {
                            return Err(LockError::Io {
                                path: self.path.clone(),
                                source: e,
                            })
                        }
                    }
                }
                Holder::Alive(_) if !wait => return Ok(None),
                Holder::Alive(holder) => {
                    if Instant::now() >= deadline {
                        return Err(LockError::Held {
                            path: self.path.clone(),
                            holder,
                        });
                    }
                    tracing::debug!(lock = %self.path.display(), %holder, "waiting for the s390 AP configuration lock");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// `<lock><pid %05d><time & 255 %02x>`, util_lockfile's temporary.
    fn temp_path(&self, pid: u32) -> PathBuf {
        temp_path_at(&self.path, pid, now_secs())
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn temp_path_at(lock: &Path, pid: u32, now: i64) -> PathBuf {
    let mut name = lock.as_os_str().to_owned();
    name.push(format!("{pid:05}{:02x}", now & 255));
    PathBuf::from(name)
}

fn write_pid_file(tmp: &Path, pid: u32) -> std::io::Result<()> {
    // A leftover of ours (same pid, a crash between create and unlink) is
    // harmless to remove: nobody else uses our pid's name.
    let _ = fs::remove_file(tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(tmp)?;
    f.write_all(format!("{pid}\n").as_bytes())?;
    Ok(())
}

/// What the existing lock file says about its holder.
#[derive(Debug, PartialEq, Eq)]
enum Holder {
    /// The file vanished meanwhile: try again at once.
    Gone,
    /// Nobody holds it any more.
    Stale(String),
    /// Held by a live process, described for people.
    Alive(String),
}

fn inspect(path: &Path, own_pid: u32) -> Holder {
    use std::io::Read as _;
    let Ok(file) = fs::File::open(path) else {
        return Holder::Gone;
    };
    let mut content = Vec::new();
    let _ = (&file).take(PID_BYTES).read_to_end(&mut content);
    let mtime = file.metadata().map(|m| m.mtime()).ok();
    classify(&content, mtime, now_secs(), own_pid, pid_alive)
}

/// C `atoi`: leading white space, an optional sign, decimal digits up to
/// the first other byte; 0 without digits (saturating instead of
/// overflowing).
fn atoi(bytes: &[u8]) -> i32 {
    let mut rest = bytes
        .iter()
        .skip_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
        .peekable();
    let negative = match rest.peek() {
        Some(b'-') => {
            rest.next();
            true
        }
        Some(b'+') => {
            rest.next();
            false
        }
        _ => false,
    };
    let mut n: i64 = 0;
    for b in rest.take_while(|b| b.is_ascii_digit()) {
        n = (n * 10 + i64::from(b - b'0')).min(i64::from(i32::MAX) + 1);
    }
    let n = if negative { -n } else { n };
    i32::try_from(n.clamp(i64::from(i32::MIN), i64::from(i32::MAX))).unwrap_or(0)
}

/// The decision, separated from the file system for tests: `content` is
/// the first bytes of the lock, `mtime` its modification time (None when
/// it could not be read), `now` the time, in seconds.
fn classify(
    content: &[u8],
    mtime: Option<i64>,
    now: i64,
    own_pid: u32,
    alive: impl Fn(i32) -> bool,
) -> Holder {
    if !content.is_empty() {
        let pid = atoi(content);
        // Our own pid in a lock we do not hold is a leftover of an earlier
        // process that had the same pid (a restarted container).
        if pid > 0 && u32::try_from(pid).ok() == Some(own_pid) {
            return Holder::Stale(format!("it names our own pid {pid}"));
        }
        if !alive(pid) {
            return Holder::Stale(format!("process {pid} no longer exists"));
        }
        if pid != 0 {
            return Holder::Alive(describe(pid));
        }
    }
    match mtime {
        // The file went away or cannot be inspected: try again at once.
        None => Holder::Gone,
        Some(m) if now > m.saturating_add(NO_PID_VALIDITY_SECS) => Holder::Stale(format!(
            "it holds no pid and is older than {NO_PID_VALIDITY_SECS} seconds"
        )),
        Some(_) => Holder::Alive("a process that has not yet written its pid".to_string()),
    }
}

fn pid_alive(pid: i32) -> bool {
    // EPERM means it exists but belongs to someone else.
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

fn describe(pid: i32) -> String {
    match fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => format!("process {pid} ({})", comm.trim()),
        Err(_) => format!("process {pid}"),
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Release only a lock that is still ours (as s390-tools does).
        match fs::read_to_string(&self.path) {
            Ok(c) if c.trim().parse::<u32>().ok() == Some(self.pid) => {
                if let Err(e) = fs::remove_file(&self.path) {
                    tracing::warn!(lock = %self.path.display(), error = %e, "cannot release the s390 AP configuration lock");
                }
            }
            Ok(c) => tracing::warn!(
                lock = %self.path.display(),
                holder = c.trim(),
                "the s390 AP configuration lock was taken over while we held it"
            ),
            Err(e) => {
                tracing::warn!(lock = %self.path.display(), error = %e, "the s390 AP configuration lock vanished while we held it")
            }
        }
    }
}

#[cfg(test)]
mod peer_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_release_and_exclusion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run/lock/s390apconfig.lock");
        let lock = ConfigLock::new(&path, Duration::ZERO);
        let guard = lock.acquire().expect("first acquire");
        let content = fs::read_to_string(&path).expect("lock file");
        assert_eq!(content, format!("{}\n", std::process::id()));
        // Only the lock file remains: the temporary is gone.
        let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        drop(guard);
        assert!(!path.exists(), "released");
        let again = lock.acquire().expect("reacquire");
        drop(again);
    }

    #[test]
    fn a_live_holder_blocks_and_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s390apconfig.lock");
        // pid 1 always exists.
        fs::write(&path, "1\n").expect("foreign lock");
        let lock = ConfigLock::new(&path, Duration::ZERO);
        let err = lock.acquire().expect_err("held by pid 1");
        let msg = err.to_string();
        assert!(msg.contains("held by process 1"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert_eq!(fs::read_to_string(&path).expect("kept"), "1\n");
        // Our guard never removes a lock that is not ours.
        drop(LockGuard {
            path: path.clone(),
            pid: std::process::id(),
        });
        assert!(path.exists());
    }

    #[test]
    fn a_try_takes_a_free_or_stale_lock_and_leaves_a_held_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s390apconfig.lock");
        // A wait of a minute: a try must not use it.
        let lock = ConfigLock::new(&path, Duration::from_secs(60));
        fs::write(&path, "1\n").expect("foreign lock");
        let started = Instant::now();
        assert!(
            lock.try_acquire().expect("no error").is_none(),
            "held by pid 1"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        assert_eq!(fs::read_to_string(&path).expect("kept"), "1\n");
        fs::write(&path, "99999999\n").expect("stale lock");
        let guard = lock
            .try_acquire()
            .expect("no error")
            .expect("stale replaced");
        assert_eq!(
            fs::read_to_string(&path).expect("ours"),
            format!("{}\n", std::process::id())
        );
        // No temporary is left behind by any of the tries.
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
        drop(guard);
        assert!(!path.exists(), "released");
        drop(lock.try_acquire().expect("no error").expect("free"));
    }

    #[test]
    fn a_dead_holder_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s390apconfig.lock");
        // Above the kernel's pid_max limit (4194304): no such process.
        fs::write(&path, "99999999\n").expect("stale lock");
        let lock = ConfigLock::new(&path, Duration::ZERO);
        let guard = lock.acquire().expect("stale lock replaced");
        assert_eq!(
            fs::read_to_string(&path).expect("ours"),
            format!("{}\n", std::process::id())
        );
        drop(guard);
    }

    #[test]
    fn classification() {
        let alive = |p: i32| p == 42 || p == 0;
        let at = |c: &str, age: i64| classify(c.as_bytes(), Some(1000), 1000 + age, 7, alive);
        assert!(matches!(at("42\n", 0), Holder::Alive(_)));
        assert!(matches!(at("  42 trailing", 0), Holder::Alive(_)), "atoi");
        assert!(matches!(at("43\n", 0), Holder::Stale(_)));
        assert!(matches!(at("7\n", 0), Holder::Stale(_)));
        assert!(matches!(at("", 10), Holder::Alive(_)));
        assert!(matches!(at("", 120), Holder::Alive(_)));
        assert!(matches!(at("", 121), Holder::Stale(_)));
        assert!(matches!(at("garbage", 119), Holder::Alive(_)), "atoi 0");
        assert!(matches!(at("garbage", 301), Holder::Stale(_)));
        assert!(matches!(at("-5", 1), Holder::Stale(_)), "group 5 is gone");
        assert!(matches!(classify(b"", None, 0, 7, alive), Holder::Gone));
    }

    #[test]
    fn atoi_reads_as_c_does() {
        for (text, n) in [
            ("123\n", 123),
            ("  +8x", 8),
            ("-17", -17),
            ("", 0),
            ("x1", 0),
            ("\n\t 5", 5),
            ("99999999999", i32::MAX),
        ] {
            assert_eq!(atoi(text.as_bytes()), n, "{text:?}");
        }
    }

    #[test]
    fn the_temporary_is_named_as_util_lockfile_names_it() {
        let p = temp_path_at(Path::new("/run/lock/s390apconfig.lock"), 42, 0x1234);
        assert_eq!(p, PathBuf::from("/run/lock/s390apconfig.lock0004234"));
        let p = temp_path_at(Path::new("/l"), 123_456, 5);
        assert_eq!(p, PathBuf::from("/l12345605"));
    }
}
