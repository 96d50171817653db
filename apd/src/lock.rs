//! The s390 AP configuration lock, `/run/lock/s390apconfig.lock`, shared
//! with s390-tools (ap-check, chzdev's AP support, zdev's libap).
//!
//! s390-tools does not use flock(2) here but a liblockfile-compatible lock
//! file: the lock is held while the file exists. A holder writes its pid
//! (`"<pid>\n"`) to a private temporary file next to the lock and link(2)s
//! it to the lock's name, which is atomic and fails when the lock exists.
//! A lock whose pid is dead (kill(pid, 0) gives ESRCH), or that holds no
//! pid and is older than five minutes, is stale and may be removed. The
//! holder releases it by unlinking it. We follow the same protocol so that
//! apd and those tools never write AP configuration at the same time.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// How long a lock without a pid stays valid (liblockfile: 5 minutes).
const NO_PID_VALIDITY: Duration = Duration::from_secs(300);

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
        let result = self.link_loop(&tmp, pid);
        // The temporary name is never needed after the loop: on success the
        // lock name holds the same inode.
        let _ = fs::remove_file(&tmp);
        result
    }

    fn link_loop(&self, tmp: &Path, pid: u32) -> Result<LockGuard, LockError> {
        let deadline = Instant::now() + self.wait;
        let mut pause = Duration::from_millis(20);
        loop {
            match fs::hard_link(tmp, &self.path) {
                Ok(()) => {
                    tracing::trace!(lock = %self.path.display(), "s390 AP configuration lock taken");
                    return Ok(LockGuard {
                        path: self.path.clone(),
                        pid,
                    });
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

    /// `<lock>.lk<pid><time&15>`, the liblockfile naming of the temporary.
    fn temp_path(&self, pid: u32) -> PathBuf {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".lk{pid:05}{:x}", secs & 15));
        PathBuf::from(name)
    }
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
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(_) => return Holder::Gone,
    };
    let content = fs::read_to_string(path).unwrap_or_default();
    let age = SystemTime::now()
        .duration_since(
            SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(meta.mtime()).unwrap_or(0)),
        )
        .unwrap_or(Duration::ZERO);
    classify(&content, age, own_pid, pid_alive)
}

/// The decision, separated from the file system for tests.
fn classify(content: &str, age: Duration, own_pid: u32, alive: impl Fn(i32) -> bool) -> Holder {
    let pid: i32 = content.trim().parse().unwrap_or(0);
    if pid > 0 {
        // Our own pid in a lock we do not hold is a leftover of an earlier
        // process that had the same pid (a restarted container).
        if u32::try_from(pid).ok() == Some(own_pid) {
            return Holder::Stale(format!("it names our own pid {pid}"));
        }
        if !alive(pid) {
            return Holder::Stale(format!("process {pid} no longer exists"));
        }
        return Holder::Alive(describe(pid));
    }
    if age > NO_PID_VALIDITY {
        Holder::Stale("it holds no pid and is older than five minutes".to_string())
    } else {
        Holder::Alive("a process that has not yet written its pid".to_string())
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
        let alive = |p: i32| p == 42;
        assert!(matches!(
            classify("42\n", Duration::ZERO, 7, alive),
            Holder::Alive(_)
        ));
        assert!(matches!(
            classify("43\n", Duration::ZERO, 7, alive),
            Holder::Stale(_)
        ));
        assert!(matches!(
            classify("7\n", Duration::ZERO, 7, alive),
            Holder::Stale(_)
        ));
        assert!(matches!(
            classify("", Duration::from_secs(10), 7, alive),
            Holder::Alive(_)
        ));
        assert!(matches!(
            classify("garbage", Duration::from_secs(301), 7, alive),
            Holder::Stale(_)
        ));
        assert!(matches!(
            classify("-5", Duration::from_secs(1), 7, alive),
            Holder::Alive(_)
        ));
    }
}
