//! apd's lock against an independent implementation of s390-tools'
//! protocol (libutil's util_lockfile as its documentation and behaviour
//! describe it: temporary file, link(2), the pid read as C's `atoi` reads
//! it, kill(pid, 0), 120 seconds for a lock without a pid), written
//! here from that description and sharing nothing with `lock.rs`. Holders
//! are real processes (`sleep`), so liveness is the kernel's answer.

use super::*;
use std::process::{Child, Command};

/// C `atoi`, as the C standard describes it: `isspace` bytes, an optional
/// sign, decimal digits.
fn c_atoi(bytes: &[u8]) -> i32 {
    let start = bytes
        .iter()
        .position(|b| !b" \t\n\x0b\x0c\r".contains(b))
        .unwrap_or(bytes.len());
    let text = &bytes[start..];
    let (sign, digits) = match text.first() {
        Some(b'-') => (-1i64, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    };
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    let value = std::str::from_utf8(&digits[..end])
        .ok()
        .and_then(|d| d.parse::<i64>().ok())
        .unwrap_or(0);
    i32::try_from(sign * value).unwrap_or(0)
}

/// The other side: a tool of s390-tools taking the lock for `pid`.
struct Peer {
    lock: PathBuf,
    pid: i32,
}

impl Peer {
    fn for_process(lock: &Path, child: &Child) -> Peer {
        Peer {
            lock: lock.to_path_buf(),
            pid: i32::try_from(child.id()).expect("pid"),
        }
    }

    fn owner(&self) -> Option<i32> {
        let mut buf = fs::read(&self.lock).ok()?;
        buf.truncate(40);
        Some(c_atoi(&buf))
    }

    /// One attempt, no waiting (retries = 0): true when the lock is ours.
    fn try_lock(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let tmp = PathBuf::from(format!(
            "{}{:05}{:02x}",
            self.lock.display(),
            std::process::id(),
            now & 255
        ));
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .and_then(|mut f| f.write_all(format!("{}\n", self.pid).as_bytes()))
            .expect("temporary lock file");
        let taken = loop {
            if fs::hard_link(&tmp, &self.lock).is_ok() {
                break true;
            }
            if !self.remove_if_stale(now) {
                break false;
            }
        };
        fs::remove_file(&tmp).expect("remove the temporary");
        taken
    }

    /// true when the lock was stale (and is gone now): try again at once.
    fn remove_if_stale(&self, now: u64) -> bool {
        let Ok(meta) = fs::metadata(&self.lock) else {
            return true;
        };
        let has_content = meta.len() > 0;
        if has_content {
            let pid = self.owner().unwrap_or(0);
            let gone = kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH);
            if gone {
                let _ = fs::remove_file(&self.lock);
                return true;
            }
            if pid != 0 {
                return false;
            }
        }
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        if now > mtime + 120 {
            let _ = fs::remove_file(&self.lock);
            return true;
        }
        false
    }

    /// Unlinks the lock only if it names our pid.
    fn release(&self) -> bool {
        if self.owner() != Some(self.pid) {
            return false;
        }
        fs::remove_file(&self.lock).is_ok()
    }
}

/// A process that lives until killed, named `sleep` by the time it is
/// returned (spawn returns once the child's exec has begun, and the kernel
/// renames it a moment later: a lock read in between names the test).
fn holder() -> Child {
    let child = Command::new("sleep").arg("600").spawn().expect("run sleep");
    let comm = format!("/proc/{}/comm", child.id());
    let named = (0..1000).any(|_| {
        let done = fs::read_to_string(&comm).is_ok_and(|c| c.trim_end() == "sleep");
        if !done {
            std::thread::sleep(Duration::from_millis(1));
        }
        done
    });
    if !named {
        end(child);
        panic!("{comm} never said sleep");
    }
    child
}

fn end(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn set_age(path: &Path, seconds: u64) {
    let when = SystemTime::now() - Duration::from_secs(seconds);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

#[test]
fn a_tool_of_s390_tools_and_apd_exclude_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s390apconfig.lock");
    let apd = ConfigLock::new(&path, Duration::ZERO);
    let tool = holder();
    let peer = Peer::for_process(&path, &tool);

    // The tool holds it: apd waits (here: gives up at once) and names it.
    assert!(peer.try_lock());
    let err = apd.acquire().expect_err("held by the tool");
    assert!(
        err.to_string()
            .contains(&format!("held by process {} (sleep)", tool.id())),
        "{err}"
    );
    assert_eq!(
        peer.owner(),
        Some(peer.pid),
        "apd left the tool's lock alone"
    );
    assert!(peer.release());

    // apd holds it: the tool cannot take it, and sees apd's pid.
    let guard = apd.acquire().expect("free again");
    assert_eq!(
        peer.owner(),
        Some(i32::try_from(std::process::id()).expect("pid"))
    );
    assert!(!peer.try_lock());
    assert!(!peer.release(), "the tool never removes apd's lock");
    drop(guard);
    assert!(!path.exists());
    assert!(peer.try_lock(), "released for the tool");
    assert!(peer.release());

    // No temporaries are left behind by either side.
    assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
    end(tool);
}

#[test]
fn both_sides_agree_on_what_is_stale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s390apconfig.lock");
    let apd = ConfigLock::new(&path, Duration::ZERO);

    // The tool died holding it: apd takes it over, and so would the tool.
    let tool = holder();
    let peer = Peer::for_process(&path, &tool);
    assert!(peer.try_lock());
    end(tool);
    let guard = apd.acquire().expect("a dead holder's lock is stale");
    drop(guard);
    let tool = holder();
    let peer = Peer::for_process(&path, &tool);
    assert!(peer.try_lock());
    end(tool);
    let other = holder();
    let second = Peer::for_process(&path, &other);
    assert!(second.try_lock(), "the tool's side: stale too");
    assert!(second.release());

    // A lock without a pid: held for 120 seconds of mtime, then stale, on
    // both sides.
    for (age, stale) in [(60, false), (110, false), (125, true), (3600, true)] {
        fs::write(&path, "").expect("an empty lock");
        set_age(&path, age);
        assert_eq!(second.try_lock(), stale, "the tool, {age} s");
        if stale {
            assert!(second.release());
            fs::write(&path, "").expect("an empty lock");
            set_age(&path, age);
        }
        assert_eq!(apd.acquire().is_ok(), stale, "apd, {age} s");
        let _ = fs::remove_file(&path);
    }
    // pid 0 is treated as no pid at all.
    fs::write(&path, "0\n").expect("pid 0");
    assert!(!second.try_lock());
    assert!(apd.acquire().is_err());
    set_age(&path, 200);
    assert!(apd.acquire().is_ok());
    end(other);
}
