//! A mounted simulator for tests: the real `apsim` binary in a temporary
//! directory, real `cat` and shell `echo` processes, and a uevent client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::socket::{
    connect, recv, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use nix::sys::time::TimeVal;

/// Why FUSE tests cannot run here, if they cannot.
pub fn fuse_unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is absent".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root (mount(2) needs it)".into());
    }
    None
}

/// Skips the calling test (with the reason on stderr) where FUSE is absent.
#[macro_export]
macro_rules! require_fuse {
    () => {
        if let Some(why) = common::fuse_unavailable() {
            eprintln!("skipping FUSE test: {why}");
            return;
        }
    };
}

/// strerror text, as `echo` prints it.
pub fn strerror(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    match s.find(" (os error") {
        Some(n) => s[..n].to_string(),
        None => s,
    }
}

/// Runs `apsim mount` and waits for its "mounted" line.
pub fn start_apsim(host: &Path, sock: &Path, dir: &Path) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_apsim"))
        .arg("mount")
        .arg("--host")
        .arg(host)
        .arg("--uevent-socket")
        .arg(sock)
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start apsim");
    let stdout = child.stdout.take().expect("apsim stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read apsim stdout");
    assert_eq!(
        line.trim(),
        format!("apsim: mounted {}", dir.display()),
        "apsim did not mount"
    );
    child
}

pub struct Mount {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub sock: PathBuf,
    child: Child,
}

impl Mount {
    /// Mounts a topology given as TOML text.
    pub fn with_topology(toml: &str) -> Mount {
        let tmp = tempfile::tempdir().expect("temp dir");
        let host = tmp.path().join("host.toml");
        std::fs::write(&host, toml).expect("write topology");
        let root = tmp.path().join("sys");
        let sock = tmp.path().join("uevents.sock");
        let child = start_apsim(&host, &sock, &root);
        Mount {
            tmp,
            root,
            sock,
            child,
        }
    }

    pub fn seed() -> Mount {
        Mount::with_topology(include_str!("../../examples/seed.toml"))
    }

    pub fn example(name: &str) -> Mount {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name);
        Mount::with_topology(&std::fs::read_to_string(path).expect("example topology"))
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `cat FILE` as a process: stdout, or stderr on failure.
    pub fn cat(&self, rel: &str) -> Result<String, String> {
        let out = Command::new("cat")
            .arg(self.p(rel))
            .output()
            .expect("run cat");
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).expect("utf-8 output"))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `cat` that must succeed.
    pub fn read(&self, rel: &str) -> String {
        self.cat(rel).unwrap_or_else(|e| panic!("cat {rel}: {e}"))
    }

    /// `echo VALUE > FILE` in a shell (bash, whose echo prints strerror).
    pub fn echo(&self, rel: &str, value: &str) -> Result<(), String> {
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"echo "$1" > "$2""#)
            .arg("bash")
            .arg(value)
            .arg(self.p(rel))
            .output()
            .expect("run bash");
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `echo` that must succeed.
    pub fn ok(&self, rel: &str, value: &str) {
        if let Err(e) = self.echo(rel, value) {
            panic!("echo {value:?} > {rel}: {e}");
        }
    }

    /// `echo` that must fail with this errno (its strerror on stderr).
    pub fn fails(&self, rel: &str, value: &str, errno: i32) {
        match self.echo(rel, value) {
            Ok(()) => panic!(
                "echo {value:?} > {rel} succeeded; expected {}",
                strerror(errno)
            ),
            Err(e) => assert!(
                e.contains(&strerror(errno)),
                "echo {value:?} > {rel}: expected {:?}, got {e:?}",
                strerror(errno)
            ),
        }
    }

    /// One `write(2)` of exact bytes: the count or the errno.
    pub fn write_raw(&self, rel: &str, data: &[u8]) -> Result<usize, i32> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.p(rel))
            .map_err(|e| e.raw_os_error().unwrap_or(0))?;
        f.write(data).map_err(|e| e.raw_os_error().unwrap_or(0))
    }

    /// Reads with std::fs (one open, reads to the end).
    pub fn read_fs(&self, rel: &str) -> Result<String, i32> {
        let mut s = String::new();
        std::fs::File::open(self.p(rel))
            .and_then(|mut f| f.read_to_string(&mut s))
            .map_err(|e| e.raw_os_error().unwrap_or(0))?;
        Ok(s)
    }

    pub fn exists(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.p(rel)).is_ok()
    }

    pub fn readlink(&self, rel: &str) -> String {
        std::fs::read_link(self.p(rel))
            .unwrap_or_else(|e| panic!("readlink {rel}: {e}"))
            .to_string_lossy()
            .into_owned()
    }

    pub fn ls(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.p(rel))
            .unwrap_or_else(|e| panic!("ls {rel}: {e}"))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    }

    pub fn log(&self) -> Vec<String> {
        self.read(".apsim/log")
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn uevents(&self) -> Uevents {
        Uevents::connect(&self.sock)
    }

    /// SIGTERM and wait for a clean exit; `then` runs after, while the
    /// temporary directory still exists.
    pub fn stop_keep_dir(mut self, then: impl FnOnce()) {
        self.terminate();
        then();
    }

    fn terminate(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let status = self.child.wait().expect("wait for apsim");
        assert!(status.success(), "apsim exited with {status}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// A parsed kernel uevent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uevent {
    pub header: String,
    pub keys: Vec<(String, String)>,
}

impl Uevent {
    pub fn parse(raw: &[u8]) -> Uevent {
        let text = std::str::from_utf8(raw).expect("uevent is UTF-8");
        assert!(text.ends_with('\0'), "uevent must end with NUL: {text:?}");
        let mut parts = text[..text.len() - 1].split('\0');
        let header = parts.next().expect("header").to_string();
        let keys = parts
            .map(|kv| {
                let (k, v) = kv
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad key {kv:?}"));
                (k.to_string(), v.to_string())
            })
            .collect();
        let ev = Uevent { header, keys };
        assert_eq!(
            ev.header,
            format!(
                "{}@{}",
                ev.get("ACTION").expect("ACTION"),
                ev.get("DEVPATH").expect("DEVPATH")
            )
        );
        assert_eq!(ev.keys[0].0, "ACTION");
        assert_eq!(ev.keys[1].0, "DEVPATH");
        assert_eq!(ev.keys[2].0, "SUBSYSTEM");
        assert_eq!(ev.keys.last().map(|k| k.0.as_str()), Some("SEQNUM"));
        ev
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn action(&self) -> &str {
        self.get("ACTION").unwrap_or("")
    }

    pub fn devpath(&self) -> &str {
        self.get("DEVPATH").unwrap_or("")
    }

    pub fn seqnum(&self) -> u64 {
        self.get("SEQNUM")
            .and_then(|s| s.parse().ok())
            .expect("SEQNUM")
    }

    /// `action@devpath`.
    pub fn short(&self) -> String {
        self.header.clone()
    }
}

pub struct Uevents {
    fd: OwnedFd,
}

impl Uevents {
    pub fn connect(sock: &Path) -> Uevents {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket");
        connect(
            fd.as_raw_fd(),
            &UnixAddr::new(sock).expect("socket address"),
        )
        .expect("connect to uevent socket");
        // Only a guard against a hung test; events normally arrive at once.
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(60, 0)).expect("SO_RCVTIMEO");
        Uevents { fd }
    }

    pub fn next(&self) -> Uevent {
        let mut buf = vec![0u8; 65536];
        let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).expect("uevent within 60 s");
        assert!(n > 0, "uevent socket closed");
        Uevent::parse(&buf[..n])
    }

    /// Events up to and including the first that matches.
    pub fn until(&self, pred: impl Fn(&Uevent) -> bool) -> Vec<Uevent> {
        let mut v = Vec::new();
        loop {
            let e = self.next();
            let done = pred(&e);
            v.push(e);
            if done {
                return v;
            }
        }
    }
}

/// Waits (polling, with a generous hang guard) until `cond` holds.
pub fn wait_for(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("gave up waiting for {what}");
}
