//! A simulated host: a private bus, the kernel side (apsim mounted over FUSE,
//! or the simulator inside apd), and apd, each a real process.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::Instant;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::bus::{command_exists, Bus, BusPolicy};
use crate::process::{liveness_timeout, Proc, POLL};
use crate::{bin, APD_BUS_NAME};

/// Where the simulated kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `apsim mount` serves a sysfs tree over FUSE and apd reads it through
    /// `--sysfs-root`: the real sysfs code path (needs /dev/fuse).
    #[default]
    Fuse,
    /// `apd --sim HOST.toml`: the simulator inside apd; needs no FUSE and no root.
    InProcess,
}

/// How [`Host::start_with`] sets up a host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The host topology file (TOML text, design.md "Host topology file").
    pub topology: String,
    pub mode: Mode,
    pub policy: BusPolicy,
    /// apd's `--config-dir`; `None` = a fresh, empty one in the temp dir.
    pub config_dir: Option<PathBuf>,
    /// Start apd and wait until it is ready.
    pub start_apd: bool,
    /// Extra arguments appended to apd's command line.
    pub apd_args: Vec<String>,
    /// apd serves `--bus system` with `DBUS_SYSTEM_BUS_ADDRESS` set to the
    /// private bus: it takes the system bus's paths (a caller that is not
    /// root needs polkit, even one of apd's own uid) on the private bus.
    /// `false` = `--bus <the private bus's address>`.
    pub system_bus: bool,
}

impl HostOptions {
    /// FUSE mode, permissive bus, fresh config dir, apd started.
    pub fn new(topology: &str) -> HostOptions {
        HostOptions {
            topology: topology.to_owned(),
            mode: Mode::Fuse,
            policy: BusPolicy::Permissive,
            config_dir: None,
            start_apd: true,
            apd_args: Vec::new(),
            system_bus: false,
        }
    }
}

impl Default for HostOptions {
    /// The seed documents' host.
    fn default() -> HostOptions {
        HostOptions::new(crate::SEED_HOST)
    }
}

/// A running simulated host. Dropping it stops apd, apsim (which unmounts)
/// and the bus, and removes every temporary file.
#[derive(Debug)]
pub struct Host {
    apd: Option<Proc>,
    apsim: Option<Proc>,
    bus: Option<Bus>,
    mode: Mode,
    apd_args: Vec<String>,
    apd_system_bus: bool,
    root: PathBuf,
    topology: PathBuf,
    sysfs: PathBuf,
    uevents: PathBuf,
    config: PathBuf,
    apd_log: PathBuf,
    apsim_log: PathBuf,
    apd_starts: u32,
    /// apd's NOTIFY_SOCKET from its spawn until it said READY=1.
    apd_notify: Option<UnixDatagram>,
    /// Whether the apd spawned last has said READY=1.
    apd_ready: bool,
    /// When the last apd spawn happened.
    apd_spawned: Option<Instant>,
    /// When the last apd start spawned apd and when apd said READY=1.
    apd_start_times: Option<(Instant, Instant)>,
    /// apd's own runtime dir: on tmpfs when the machine has `/dev/shm`,
    /// as `/run/apd` is on a host (the journal's writes cost what they
    /// cost there); else `run` in the host's directory.
    run_dir: Option<TempDir>,
    // Last field: dropped after everything above has stopped.
    _dir: TempDir,
}

impl Host {
    /// FUSE mode, permissive bus, fresh config dir, apd started and serving.
    pub fn start(topology_toml: &str) -> Host {
        Host::start_with(HostOptions::new(topology_toml))
    }

    pub fn start_with(opts: HostOptions) -> Host {
        let dir = tempfile::Builder::new()
            .prefix("ap-e2e-")
            .tempdir()
            .expect("cannot create the host's temporary directory");
        // Clients run under other uids in some tests (setpriv): they must
        // reach the bus socket inside.
        let _ = fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755));
        let root = dir
            .path()
            .canonicalize()
            .expect("the temporary directory has a canonical path");
        let topology = root.join("host.toml");
        write_file(&topology, &opts.topology);
        let config = match opts.config_dir {
            Some(config) => config,
            None => root.join("config"),
        };
        fs::create_dir_all(&config)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", config.display()));

        // Built before anything starts, so a panic half-way still tears
        // down what did start.
        let mut host = Host {
            apd: None,
            apsim: None,
            bus: None,
            mode: opts.mode,
            apd_args: opts.apd_args,
            apd_system_bus: opts.system_bus,
            sysfs: root.join("sys"),
            uevents: root.join("uevents.sock"),
            apd_log: root.join("apd.log"),
            apsim_log: root.join("apsim.log"),
            topology,
            config,
            root,
            apd_starts: 0,
            apd_notify: None,
            apd_ready: false,
            apd_spawned: None,
            apd_start_times: None,
            run_dir: tmpfs_dir("ap-e2e-run-"),
            _dir: dir,
        };
        host.bus = Some(Bus::start_in(&host.root, opts.policy));
        if host.mode == Mode::Fuse {
            host.start_apsim();
        }
        if opts.start_apd {
            host.start_apd();
        }
        host
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn bus(&self) -> &Bus {
        self.bus
            .as_ref()
            .expect("the bus runs for the host's lifetime")
    }

    pub fn bus_address(&self) -> &str {
        self.bus().address()
    }

    /// The apsim mount point (FUSE mode only).
    pub fn sysfs(&self) -> &Path {
        assert!(
            self.mode == Mode::Fuse,
            "Host::sysfs needs Mode::Fuse: in Mode::InProcess the simulated kernel lives inside apd"
        );
        &self.sysfs
    }

    pub fn config_dir(&self) -> &Path {
        &self.config
    }

    /// apd's `--runtime-dir` (its intent journal, its private socket) on
    /// a FUSE host: the one the options give, else the host's own.
    pub fn runtime_dir(&self) -> PathBuf {
        let given = self.apd_args.iter().enumerate().find_map(|(i, a)| {
            match a.strip_prefix("--runtime-dir") {
                Some("") => self.apd_args.get(i + 1).cloned(),
                Some(v) => v.strip_prefix('=').map(str::to_string),
                None => None,
            }
        });
        given.map_or_else(
            || {
                self.run_dir
                    .as_ref()
                    .map_or_else(|| self.root.join("run"), |d| d.path().to_path_buf())
            },
            PathBuf::from,
        )
    }

    /// The simulator's uevent socket (a FUSE host): a `SOCK_SEQPACKET`
    /// client gets every uevent from its connect on.
    pub fn uevent_socket(&self) -> &Path {
        &self.uevents
    }

    /// The topology file the host was started from.
    pub fn topology_path(&self) -> &Path {
        &self.topology
    }

    /// The temporary directory that holds every file of this host.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Process ids of everything the host runs now (bus, apsim, apd).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.bus().pid()];
        pids.extend(self.apsim.as_ref().map(Proc::id));
        pids.extend(self.apd.as_ref().map(Proc::id));
        pids
    }

    /// Writes `command\n` to `.apsim/<file>` in one write; panics with the
    /// error (errno included) on failure.
    pub fn control(&self, file: &str, command: &str) {
        if let Err(e) = self.try_control(file, command) {
            panic!("apsim control `{command}` > .apsim/{file} failed: {e}");
        }
    }

    pub fn try_control(&self, file: &str, command: &str) -> io::Result<()> {
        self.write(&format!(".apsim/{file}"), &format!("{command}\n"))
    }

    /// The kernel log ring (`.apsim/log`).
    pub fn kernel_log(&self) -> String {
        self.read(".apsim/log")
    }

    /// Reads a file of the mounted sysfs (`rel` relative to the mount).
    pub fn read(&self, rel: &str) -> String {
        let path = self.sysfs().join(rel);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// Writes `data` to a sysfs file in one write(2), as `echo` does; the
    /// error carries the errno the simulated kernel returned.
    pub fn write(&self, rel: &str, data: &str) -> io::Result<()> {
        let path = self.sysfs().join(rel);
        let mut file = OpenOptions::new().write(true).open(&path)?;
        let written = file.write(data.as_bytes())?;
        if written != data.len() {
            return Err(io::Error::other(format!(
                "short write to {}: {written} of {} bytes",
                path.display(),
                data.len()
            )));
        }
        Ok(())
    }

    /// Where this host's apctl looks for chzdev's persistent masks
    /// (`APCTL_CHZDEV_RULE`): in the host's temporary directory, absent
    /// until a test writes it.
    pub fn chzdev_rule(&self) -> PathBuf {
        self.dir().join("etc/udev/rules.d/41-ap.rules")
    }

    /// Runs apctl against this host's bus (`APCTL_BUS`).
    pub fn apctl(&self, args: &[&str]) -> Output {
        self.run_client(apctl_command(None, args), args, true)
    }

    /// Runs apctl as another user (`setpriv`; the tests run as root).
    pub fn apctl_as(&self, uid: u32, gid: u32, args: &[&str]) -> Output {
        self.run_client(apctl_command(Some((uid, gid)), args), args, true)
    }

    /// apd's private socket on a FUSE host.
    pub fn private_socket(&self) -> PathBuf {
        self.runtime_dir().join(apbus::PRIVATE_SOCKET_NAME)
    }

    /// Runs apctl as `uid` (None: root) the way an admin does on a host:
    /// no bus named, so it tries apd's private socket first (this host's:
    /// `APCTL_PRIVATE_SOCKET`) and falls back to the system bus.
    pub fn apctl_unnamed(&self, uid: Option<u32>, args: &[&str]) -> Output {
        let cmd = apctl_command(uid.map(|u| (u, u)), args);
        self.run_client(cmd, args, false)
    }

    /// Runs `cmd` (apctl) on this host's bus (`APCTL_BUS`), or with no bus
    /// named and this host's private socket.
    fn run_client(&self, mut cmd: Command, args: &[&str], bus_named: bool) -> Output {
        if bus_named {
            cmd.env("APCTL_BUS", self.bus_address());
        } else {
            cmd.env_remove("APCTL_BUS")
                .env(apbus::PRIVATE_SOCKET_ENV, self.private_socket());
        }
        // Not the machine's chzdev rule: the host's own (absent unless a
        // test writes it).
        cmd.env("APCTL_CHZDEV_RULE", self.chzdev_rule())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run apctl {}: {e}", args.join(" ")))
    }

    /// Runs apctl, panics unless it succeeds, returns its stdout.
    pub fn apctl_ok(&self, args: &[&str]) -> String {
        let out = self.apctl(args);
        assert!(
            out.status.success(),
            "apctl {} failed:\n{}\napd log:\n{}",
            args.join(" "),
            describe(&out),
            tail(&self.apd_log(), 40)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `apctl --json ARGS`, panics unless it succeeds, parses stdout.
    pub fn apctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = self.apctl_ok(&all);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("apctl {} printed no JSON ({e}):\n{stdout}", all.join(" ")))
    }

    /// Starts apd (no-op when it runs) and waits until it has told
    /// NOTIFY_SOCKET `READY=1` (definitions restored) and owns its bus name:
    /// [`Host::spawn_apd`] then [`Host::wait_apd_ready`].
    pub fn start_apd(&mut self) {
        if self.apd.is_some() {
            return;
        }
        self.spawn_apd();
        self.wait_apd_ready();
    }

    /// Spawns apd and returns at once, without waiting for READY=1: for
    /// tests of what apd does during start-up. Its NOTIFY_SOCKET is kept, so
    /// [`Host::apd_said_ready`] can tell later whether it ever got ready.
    /// Panics when apd is already spawned (stop it first).
    pub fn spawn_apd(&mut self) {
        if let Some(apd) = &self.apd {
            panic!(
                "Host::spawn_apd: apd (pid {}) is already spawned; stop it first",
                apd.id()
            );
        }
        self.apd_starts += 1;
        let notify_path = self.root.join("notify.sock");
        let _ = fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path)
            .unwrap_or_else(|e| panic!("cannot bind {}: {e}", notify_path.display()));
        notify
            .set_read_timeout(Some(POLL))
            .expect("a non-zero read timeout is valid");
        self.apd_notify = Some(notify);
        self.apd_ready = false;

        let mut cmd = Command::new(bin("apd"));
        match self.mode {
            Mode::Fuse => cmd
                .arg("--sysfs-root")
                .arg(&self.sysfs)
                .arg("--uevent-socket")
                .arg(&self.uevents),
            Mode::InProcess => cmd.arg("--sim").arg(&self.topology),
        };
        cmd.arg("--config-dir").arg(&self.config).arg("--bus");
        if self.apd_system_bus {
            cmd.arg("system")
                .env("DBUS_SYSTEM_BUS_ADDRESS", self.bus_address());
        } else {
            cmd.arg(self.bus_address());
        }
        // Each host its own AP configuration lock, so parallel tests (and a
        // walk-through run by a user who cannot write /run/lock) stay apart.
        if !self.apd_args.iter().any(|a| a.starts_with("--lock-file")) {
            cmd.arg("--lock-file")
                .arg(self.root.join("s390apconfig.lock"));
        }
        // The intent journal goes with the kernel: per host, kept across
        // apd restarts, gone with the host's directory.
        if self.mode == Mode::Fuse && !self.apd_args.iter().any(|a| a.starts_with("--runtime-dir"))
        {
            cmd.arg("--runtime-dir").arg(self.runtime_dir());
        }
        cmd.args(&self.apd_args)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null());
        let log = self.log_for_child(&self.apd_log, &format!("apd start #{}", self.apd_starts));
        redirect(&mut cmd, &log, &self.apd_log);
        self.apd_spawned = Some(Instant::now());
        self.apd = Some(Proc::spawn("apd", cmd));
    }

    /// Waits until the apd of [`Host::spawn_apd`] has told NOTIFY_SOCKET
    /// `READY=1` and owns its bus name; panics with its log tail when it
    /// exits first or the liveness bound passes.
    pub fn wait_apd_ready(&mut self) {
        assert!(
            self.apd.is_some(),
            "Host::wait_apd_ready: no apd was spawned (Host::spawn_apd)"
        );
        let deadline = Instant::now() + liveness_timeout();
        loop {
            if let Some(status) = self.apd.as_mut().and_then(Proc::exited) {
                self.apd = None;
                panic!(
                    "apd exited during start-up ({status}); its log {}:\n{}",
                    self.apd_log.display(),
                    tail(&self.apd_log(), 60)
                );
            }
            if !self.apd_ready {
                // Waits up to POLL for a datagram: the loop's pace.
                self.recv_notify();
            }
            if self.apd_ready && self.bus().name_has_owner(APD_BUS_NAME) == Ok(true) {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "apd did not become ready within {:?} (READY=1 on NOTIFY_SOCKET: {}; \
                     it must also own {APD_BUS_NAME}); its log:\n{}",
                    liveness_timeout(),
                    self.apd_ready,
                    tail(&self.apd_log(), 60)
                );
            }
            if self.apd_ready {
                thread::sleep(POLL);
            }
        }
        self.apd_notify = None;
        let _ = fs::remove_file(self.root.join("notify.sock"));
    }

    /// Whether the apd spawned last has told NOTIFY_SOCKET `READY=1` so far
    /// (also after it exited: what it sent stays queued until read).
    pub fn apd_said_ready(&mut self) -> bool {
        while !self.apd_ready && self.recv_notify() {}
        self.apd_ready
    }

    /// Reads one datagram from apd's NOTIFY_SOCKET (waiting up to POLL) and
    /// notes READY=1; false when none came.
    fn recv_notify(&mut self) -> bool {
        let Some(notify) = &self.apd_notify else {
            return false;
        };
        let mut buf = [0u8; 4096];
        let Ok(n) = notify.recv(&mut buf) else {
            return false;
        };
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            self.apd_ready = true;
            if let Some(spawned) = self.apd_spawned {
                self.apd_start_times = Some((spawned, Instant::now()));
            }
        }
        true
    }

    /// When the last [`Host::start_apd`] spawned apd and when apd told
    /// NOTIFY_SOCKET `READY=1` (its boot restore done); for ap-bench.
    pub fn apd_start_times(&self) -> Option<(Instant, Instant)> {
        self.apd_start_times
    }

    /// Stops apd (SIGTERM) and waits until its bus name is released.
    pub fn stop_apd(&mut self) {
        let Some(mut apd) = self.apd.take() else {
            return;
        };
        let (status, on_its_own) = apd.stop();
        if on_its_own {
            eprintln!(
                "e2e: apd had exited on its own ({status:?}) before it was stopped; its log:\n{}",
                tail(&self.apd_log(), 40)
            );
        }
        self.wait_for("apd's bus name to be released", || {
            self.bus().name_has_owner(APD_BUS_NAME) == Ok(false)
        });
    }

    /// Sends apd SIGTERM and waits until it exits; returns its exit status.
    /// Unlike [`Host::stop_apd`] it does not wait for the bus name's release,
    /// so it also fits an apd stopped during start-up, before it owned the
    /// name. Panics, with apd's log tail, when apd had already exited on its
    /// own or ignores SIGTERM for the liveness bound (then it is killed).
    pub fn sigterm_apd(&mut self) -> ExitStatus {
        let Some(apd) = self.apd.as_mut() else {
            panic!("Host::sigterm_apd: apd is not running (never spawned, or stopped)");
        };
        if let Some(status) = apd.exited() {
            self.apd = None;
            panic!(
                "apd had exited on its own ({status}) before SIGTERM; its log:\n{}",
                tail(&self.apd_log(), 60)
            );
        }
        // apd leads its own process group (Proc::spawn); as Proc::stop does.
        let pgid = Pid::from_raw(i32::try_from(apd.id()).unwrap_or(i32::MAX));
        if let Err(e) = killpg(pgid, Signal::SIGTERM) {
            panic!("cannot send SIGTERM to apd (pid {pgid}): {e}");
        }
        let deadline = Instant::now() + liveness_timeout();
        loop {
            if let Some(status) = apd.exited() {
                // Reaped: dropping it only sweeps its (empty) group.
                self.apd = None;
                return status;
            }
            if Instant::now() > deadline {
                let _ = killpg(pgid, Signal::SIGKILL);
                self.apd = None;
                panic!(
                    "apd (pid {pgid}) did not exit within {:?} of SIGTERM (killed now); its log:\n{}",
                    liveness_timeout(),
                    tail(&self.apd_log(), 60)
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Kills apd with SIGKILL, as a crash would: nothing of it runs on (no
    /// rollback, no reply); returns once it is reaped and its bus name is
    /// gone. A write it had sent the kernel may still complete.
    pub fn kill_apd(&mut self) {
        let Some(mut apd) = self.apd.take() else {
            panic!("Host::kill_apd: apd is not running (never spawned, or stopped)");
        };
        let pgid = Pid::from_raw(i32::try_from(apd.id()).unwrap_or(i32::MAX));
        if let Err(e) = killpg(pgid, Signal::SIGKILL) {
            panic!("cannot send SIGKILL to apd (pid {pgid}): {e}");
        }
        self.wait_for("apd to die of SIGKILL", || apd.exited().is_some());
        self.wait_for("apd's bus name to be released after SIGKILL", || {
            self.bus().name_has_owner(APD_BUS_NAME) == Ok(false)
        });
    }

    /// Starts apctl against this host's bus and returns at once (for a
    /// command that apd is killed in the middle of).
    pub fn apctl_spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(bin("apctl"))
            .args(args)
            .env("APCTL_BUS", self.bus_address())
            .env("APCTL_CHZDEV_RULE", self.chzdev_rule())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run apctl {}: {e}", args.join(" ")))
    }

    pub fn restart_apd(&mut self) {
        self.stop_apd();
        self.start_apd();
    }

    /// A reboot: apd stops, the simulated kernel starts afresh from the
    /// topology (every mdev and mask change gone), apd starts again with
    /// the same config dir on the same bus.
    pub fn reboot(&mut self) {
        self.stop_apd();
        if self.mode == Mode::Fuse {
            self.stop_apsim();
            self.start_apsim();
        }
        self.start_apd();
    }

    /// The simulated kernel starts afresh from the topology under a running
    /// apd (every mdev and mask change gone, no uevent for any of it): apd
    /// sees its uevent socket close and reopen, and must re-read the whole
    /// host. FUSE mode only.
    pub fn restart_apsim(&mut self) {
        assert_eq!(self.mode, Mode::Fuse, "restart_apsim needs a FUSE host");
        self.stop_apsim();
        self.start_apsim();
    }

    /// Whether apd is running (started and not exited).
    pub fn apd_running(&mut self) -> bool {
        self.apd.as_mut().is_some_and(|apd| apd.exited().is_none())
    }

    /// apd's stdout and stderr so far, across restarts.
    pub fn apd_log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.apd_log).unwrap_or_default()).into_owned()
    }

    /// apsim's stdout and stderr so far, across reboots.
    pub fn apsim_log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.apsim_log).unwrap_or_default()).into_owned()
    }

    /// Polls `f` until it is true; panics naming `what` when the liveness
    /// bound passes (a hang, never a performance verdict).
    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + liveness_timeout();
        while !f() {
            if Instant::now() > deadline {
                panic!(
                    "timed out after {:?} waiting for {what}; apd log:\n{}",
                    liveness_timeout(),
                    tail(&self.apd_log(), 40)
                );
            }
            thread::sleep(POLL);
        }
    }

    fn start_apsim(&mut self) {
        fs::create_dir_all(&self.sysfs)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.sysfs.display()));
        let _ = fs::remove_file(&self.uevents);
        let mut cmd = Command::new(bin("apsim"));
        cmd.arg("mount")
            .arg("--host")
            .arg(&self.topology)
            .arg("--uevent-socket")
            .arg(&self.uevents)
            .arg(&self.sysfs)
            .stdin(Stdio::null());
        let log = self.log_for_child(&self.apsim_log, "apsim mount");
        redirect(&mut cmd, &log, &self.apsim_log);
        self.apsim = Some(Proc::spawn("apsim", cmd));
        let ready_file = self.sysfs.join("bus/ap/apmask");
        let deadline = Instant::now() + liveness_timeout();
        while !ready_file.exists() {
            if let Some(status) = self.apsim.as_mut().and_then(Proc::exited) {
                self.apsim = None;
                panic!(
                    "apsim exited before {} appeared ({status}); its log:\n{}",
                    ready_file.display(),
                    tail(&self.apsim_log(), 60)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "apsim did not mount {} within {:?}; its log:\n{}",
                    self.sysfs.display(),
                    liveness_timeout(),
                    tail(&self.apsim_log(), 60)
                );
            }
            thread::sleep(POLL);
        }
    }

    fn stop_apsim(&mut self) {
        if let Some(mut apsim) = self.apsim.take() {
            let (status, on_its_own) = apsim.stop();
            if on_its_own {
                eprintln!(
                    "e2e: apsim had exited on its own ({status:?}); its log:\n{}",
                    tail(&self.apsim_log(), 40)
                );
            }
        }
        if is_mounted(&self.sysfs) {
            eprintln!(
                "e2e: {} still mounted after apsim stopped; lazy unmount",
                self.sysfs.display()
            );
            lazy_unmount(&self.sysfs);
        }
    }

    /// Opens the log in append mode with a header line naming this start.
    fn log_for_child(&self, path: &Path, header: &str) -> File {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        let _ = writeln!(log, "===== e2e: {header} =====");
        log
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut apd) = self.apd.take() {
            apd.stop();
        }
        self.stop_apsim();
        self.bus = None;
    }
}

/// A fresh directory on `/dev/shm` (tmpfs), reachable by the other uids
/// some tests run clients under; `None` where the machine has no
/// `/dev/shm`.
fn tmpfs_dir(prefix: &str) -> Option<TempDir> {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(shm)
        .ok()?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).ok()?;
    Some(dir)
}

/// Whether FUSE mode can run here: /dev/fuse exists and this process can
/// mount (root, or a fusermount helper). Tests that need it print a reason
/// and return early when it is false.
pub fn fuse_available() -> bool {
    Path::new("/dev/fuse").exists()
        && (nix::unistd::geteuid().is_root()
            || command_exists("fusermount3")
            || command_exists("fusermount"))
}

fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn redirect(cmd: &mut Command, log: &File, path: &Path) {
    let out = log
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot duplicate {}: {e}", path.display()));
    let err = log
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot duplicate {}: {e}", path.display()));
    cmd.stdout(out).stderr(err);
}

/// apctl with `args`, as root or as `(uid, gid)` through `setpriv` (the
/// tests run as root).
fn apctl_command(user: Option<(u32, u32)>, args: &[&str]) -> Command {
    let Some((uid, gid)) = user else {
        let mut cmd = Command::new(bin("apctl"));
        cmd.args(args);
        return cmd;
    };
    assert!(
        command_exists("setpriv"),
        "setpriv is not installed (Debian: util-linux)"
    );
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(bin("apctl"))
        .args(args);
    cmd
}

/// Status, stdout and stderr of a finished command, for failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether `dir` is a mount point, per /proc/self/mountinfo.
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = dir.to_string_lossy();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| unescape_mountinfo(mount_point) == wanted)
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(digits)) = (bytes[i], octal) {
            let code = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(code).unwrap_or(b'?'));
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches a mount that outlived its server: umount2(MNT_DETACH) as root,
/// else the fusermount helper.
fn lazy_unmount(dir: &Path) {
    if nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH).is_ok() {
        return;
    }
    for helper in ["fusermount3", "fusermount"] {
        if command_exists(helper) {
            let ok = Command::new(helper)
                .arg("-u")
                .arg("-z")
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
        }
    }
    eprintln!(
        "e2e: could not unmount {}; unmount it by hand",
        dir.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/tmp/a\134b"), r"/tmp/a\b");
        assert_eq!(unescape_mountinfo(r"/tmp/ab\04"), r"/tmp/ab\04");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn root_is_mounted_and_a_fresh_dir_is_not() {
        assert!(is_mounted(Path::new("/")));
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!is_mounted(dir.path()));
    }
}
