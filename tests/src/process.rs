//! Child processes the harness owns. Each runs in its own process group, so
//! a stop reaches everything it spawned, and a Ctrl-C typed in the terminal
//! reaches only the harness, which then tears down in order.

use std::fmt;
use std::process::{Child, Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long the harness waits for something that must happen (a process
/// becoming ready, exiting after SIGTERM, a condition in `wait_for`). A
/// liveness bound only: reaching it means "stuck", never "too slow".
/// `E2E_TIMEOUT_SECS` overrides the default of 60 seconds.
pub fn liveness_timeout() -> Duration {
    std::env::var("E2E_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&secs| secs > 0)
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

/// How often the harness looks again while it waits.
pub(crate) const POLL: Duration = Duration::from_millis(20);

pub(crate) struct Proc {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
}

impl fmt::Debug for Proc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("status", &self.status)
            .finish()
    }
}

impl Proc {
    /// Starts `cmd` as the leader of a new process group.
    pub(crate) fn spawn(name: &str, mut cmd: Command) -> Proc {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {name} ({}): {e}",
                cmd.get_program().to_string_lossy()
            )
        });
        Proc {
            name: name.to_owned(),
            child,
            status: None,
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// The exit status if the process has ended (it is reaped then).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    fn signal_group(&self, signal: Signal) {
        let pgid = i32::try_from(self.child.id()).unwrap_or(i32::MAX);
        // ESRCH (the group is gone) is the normal case after an exit.
        let _ = killpg(Pid::from_raw(pgid), signal);
    }

    /// SIGTERM to the whole group, wait for the leader, SIGKILL whatever is
    /// left. Idempotent. Returns how the leader ended and whether it had
    /// already ended on its own before it was asked to.
    pub(crate) fn stop(&mut self) -> (Option<ExitStatus>, bool) {
        if let Some(status) = self.exited() {
            self.signal_group(Signal::SIGKILL);
            return (Some(status), true);
        }
        self.signal_group(Signal::SIGTERM);
        let deadline = Instant::now() + liveness_timeout();
        while self.exited().is_none() && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        if self.status.is_none() {
            eprintln!(
                "e2e: {} (pid {}) ignored SIGTERM; killing it",
                self.name,
                self.child.id()
            );
            self.signal_group(Signal::SIGKILL);
            self.status = self.child.wait().ok();
        }
        // Stragglers of the group (none expected) must not outlive the test.
        self.signal_group(Signal::SIGKILL);
        (self.status, false)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
