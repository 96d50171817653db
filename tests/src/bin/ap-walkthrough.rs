//! ap-walkthrough: the seed documents' scenario on the real system, on any
//! Linux machine. It starts a private dbus-daemon and `apd --sim` on the
//! seed host (adapters 1-7, domains 0, 4, 0x47, 0xab, 0xff), runs real
//! `apctl` commands, prints each as an admin would type it with its output,
//! checks that every step did what it must, and tears everything down (also
//! on Ctrl-C). `--interactive` leaves apd running afterwards.

use std::fs::{self, File};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use e2e::{bin, BusPolicy, Host, HostOptions, Mode};
use serde_json::{json, Value};
use tokio::signal::unix::{signal, SignalKind};

/// The host everything runs on; a global so the signal thread can tear it
/// down. Whoever holds the lock may use the host; teardown takes it away.
static HOST: Mutex<Option<Host>> = Mutex::new(None);

/// Set by the signal thread before it tears down.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

const USAGE: &str = "usage: ap-walkthrough [--interactive] [--record FILE]

Runs the seed documents' scenario on a simulated s390 host: a private D-Bus
bus, apd --sim and real apctl commands, printed as an admin would type them.

  --interactive   afterwards, leave apd running and print how to point apctl
                  at it; Ctrl-C stops everything
  --record FILE   also write every command, its outcome and JSON snapshots of
                  the state after each step to FILE (JSON lines; for tests)";

#[derive(Debug, Default)]
struct Opts {
    interactive: bool,
    record: Option<PathBuf>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut opts = Opts::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--interactive" | "-i" => opts.interactive = true,
            "--record" => {
                let file = args
                    .next()
                    .ok_or_else(|| "--record needs a FILE".to_owned())?;
                opts.record = Some(PathBuf::from(file));
            }
            _ if arg.starts_with("--record=") => {
                opts.record = Some(PathBuf::from(&arg["--record=".len()..]));
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ap-walkthrough: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = handle_signals() {
        eprintln!("ap-walkthrough: cannot set up Ctrl-C handling: {e}");
        return ExitCode::FAILURE;
    }
    // A panic (the harness panics on what it cannot start) must still tear
    // down: the host lives in a static, which nothing drops.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut walk = Walk::new(opts.record.as_deref())?;
        walk.run()?;
        if opts.interactive {
            walk.interactive()?;
        }
        Ok(())
    }))
    .unwrap_or_else(|_| Err("the walk-through panicked (the message is above)".to_owned()));
    let dir = teardown();
    if INTERRUPTED.load(Ordering::SeqCst) {
        // The signal thread has torn down (teardown waited for it) and
        // exits with 128+signal; what failed here was the interruption.
        loop {
            thread::park();
        }
    }
    match outcome {
        Ok(()) => {
            if let Some(dir) = dir {
                println!("\nStopped apd and the bus, removed {}.", dir.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\nap-walkthrough: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Catches SIGINT, SIGTERM and SIGHUP (tokio's handlers; a caught signal
/// reverts to its default in the children at exec, unlike a blocked one)
/// and lets one thread wait for them, tear down, and exit with 128+signal.
fn handle_signals() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut int, mut term, mut hup) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        )
    };
    thread::spawn(move || {
        let (name, number) = runtime.block_on(async {
            tokio::select! {
                _ = int.recv() => ("SIGINT", libc::SIGINT),
                _ = term.recv() => ("SIGTERM", libc::SIGTERM),
                _ = hup.recv() => ("SIGHUP", libc::SIGHUP),
            }
        });
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("\nap-walkthrough: {name}: stopping apd and the bus");
        if let Some(dir) = teardown() {
            eprintln!("ap-walkthrough: removed {}", dir.display());
        }
        std::process::exit(128 + number);
    });
    Ok(())
}

fn host() -> MutexGuard<'static, Option<Host>> {
    HOST.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops everything the walk-through started; returns the removed
/// directory. Holds the lock until the host is gone, so a second caller
/// (main after a signal) returns only once the first has finished.
fn teardown() -> Option<PathBuf> {
    let mut guard = host();
    guard.take().map(|host| {
        let dir = host.dir().to_path_buf();
        drop(host);
        dir
    })
}

/// Runs `f` on the host; an error when it is gone (torn down).
fn with_host<R>(f: impl FnOnce(&mut Host) -> R) -> Result<R, String> {
    let mut guard = host();
    let host = guard
        .as_mut()
        .ok_or_else(|| "the simulated host was stopped".to_owned())?;
    Ok(f(host))
}

/// What a displayed command must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    /// Exit status 1 with a one-sentence refusal on stderr.
    Refused,
}

struct Walk {
    record: Option<File>,
    step: u32,
    guest1: String,
    guest2: String,
}

type Res<T = ()> = Result<T, String>;

impl Walk {
    fn new(record: Option<&Path>) -> Res<Walk> {
        let record = record
            .map(|path| {
                File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
            })
            .transpose()?;
        Ok(Walk {
            record,
            step: 0,
            guest1: String::new(),
            guest2: String::new(),
        })
    }

    fn record(&mut self, mut entry: Value) {
        if let Some(file) = self.record.as_mut() {
            entry["step"] = json!(self.step);
            // A lost line makes the test fail with a clear message later.
            let _ = writeln!(file, "{entry}");
            let _ = file.flush();
        }
    }

    fn record_host(&mut self, event: &str) -> Res {
        let (dir, pids) = with_host(|h| (h.dir().to_path_buf(), h.pids()))?;
        self.record(json!({"event": event, "dir": dir, "pids": pids}));
        Ok(())
    }

    fn heading(&mut self, title: &str) {
        self.step += 1;
        println!("\n== {}. {title} ==", self.step);
        self.record(json!({"event": "step", "title": title}));
    }

    fn say(&self, text: &str) {
        println!("# {text}");
    }

    /// Runs apctl with `args`, printed as typed, with its output.
    fn apctl(&mut self, args: &[&str], expect: Expect) -> Res<Output> {
        println!("$ apctl {}", shell_words(args));
        let out = with_host(|h| h.apctl(args))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        print!("{stdout}");
        if !stdout.is_empty() && !stdout.ends_with('\n') {
            println!();
        }
        eprint!("{stderr}");
        let _ = std::io::stderr().flush();
        let code = out.status.code();
        if code != Some(0) {
            println!(
                "[exit status {}]",
                code.map_or("signal".into(), |c| c.to_string())
            );
        }
        self.record(json!({
            "event": "command", "args": args, "status": code,
            "stdout": stdout, "stderr": stderr,
        }));
        let command = format!("apctl {}", shell_words(args));
        match expect {
            Expect::Success if code != Some(0) => {
                return Err(format!("`{command}` failed: {}", stderr.trim()));
            }
            Expect::Refused if code != Some(1) => {
                return Err(format!(
                    "`{command}` must be refused with exit status 1, got {code:?}"
                ));
            }
            Expect::Refused if stderr.trim().lines().count() != 1 => {
                return Err(format!(
                    "`{command}` must explain its refusal in one line on stderr, got {stderr:?}"
                ));
            }
            _ => {}
        }
        Ok(out)
    }

    /// `apctl --json ARGS`, not shown; recorded as a snapshot of the state.
    fn json(&mut self, args: &[&str]) -> Res<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = with_host(|h| h.apctl(&all))?;
        if !out.status.success() {
            return Err(format!(
                "`apctl {}` failed: {}",
                all.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let value: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "`apctl {}` printed no JSON ({e}): {}",
                all.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })?;
        self.record(json!({"event": "snapshot", "args": args, "json": value}));
        Ok(value)
    }

    /// Snapshots of everything the test checks after a step.
    fn snapshot(&mut self) -> Res<(Value, Value, Value)> {
        Ok((
            self.json(&["queues"])?,
            self.json(&["masks"])?,
            self.json(&["list"])?,
        ))
    }

    fn run(&mut self) -> Res {
        println!("ap-walkthrough: the seed documents' scenario on a simulated s390 host.");
        println!("Starting a private D-Bus bus and `apd --sim` on the seed host");
        println!("(adapters 1-7; usage and control domains 0, 4, 0x47, 0xab, 0xff).");
        let address = {
            // Locked while starting: a Ctrl-C now tears down what started.
            let mut guard = host();
            let started = guard.insert(Host::start_with(HostOptions {
                mode: Mode::InProcess,
                policy: BusPolicy::Permissive,
                ..HostOptions::default()
            }));
            started.bus_address().to_owned()
        };
        self.record_host("host")?;
        println!("Every command below is real; to run your own, point apctl at the bus:");
        println!("$ export APCTL_BUS='{address}'");

        self.step_1_queues()?;
        self.step_2_masks()?;
        self.step_3_guests()?;
        self.step_4_refused_assignment()?;
        self.step_5_refused_mask_change()?;
        self.step_6_config_off_on()?;
        self.step_7_reboot()?;
        self.step_8_check_and_export()?;
        println!("\nAll 8 steps did what they must.");
        self.record(json!({"event": "finished"}));
        Ok(())
    }

    fn step_1_queues(&mut self) -> Res {
        self.heading("Before anything: the host owns every queue");
        self.apctl(&["queues"], Expect::Success)?;
        let (queues, _, _) = self.snapshot()?;
        let all = as_array(&queues, "queues")?;
        if all.is_empty() || all.iter().any(|q| q["owner"] != "host") {
            return Err("before any mask change every queue must be owned by the host".into());
        }
        Ok(())
    }

    fn step_2_masks(&mut self) -> Res {
        self.heading("Give adapters 5, 6 and domains 4, 0x47, 0xab, 0xff to vfio_ap");
        self.say("the seed's relative mask syntax; --persistent keeps the masks for boot");
        self.apctl(
            &[
                "masks",
                "--apmask",
                "-5,-6",
                "--aqmask",
                "-4,-0x47,-0xab,-0xff",
                "--persistent",
            ],
            Expect::Success,
        )?;
        self.apctl(&["queues"], Expect::Success)?;
        let (_, masks, _) = self.snapshot()?;
        if masks["vfio_adapters"] != json!([5, 6])
            || masks["vfio_domains"] != json!([4, 0x47, 0xab, 0xff])
        {
            return Err(format!(
                "the masks did not give the seed's queues to vfio_ap: {masks}"
            ));
        }
        Ok(())
    }

    fn step_3_guests(&mut self) -> Res {
        self.heading("Define Guest1 and Guest2 with autostart and start them");
        let out = self.apctl(
            &[
                "define", "--name", "guest1", "--auto", "-a", "5,6", "-d", "4,0xab",
            ],
            Expect::Success,
        )?;
        self.guest1 = uuid_in(&out.stdout).ok_or("`apctl define` printed no UUID for guest1")?;
        let out = self.apctl(
            &[
                "define",
                "--name",
                "guest2",
                "--auto",
                "-a",
                "5",
                "-d",
                "0x47,0xff",
            ],
            Expect::Success,
        )?;
        self.guest2 = uuid_in(&out.stdout).ok_or("`apctl define` printed no UUID for guest2")?;
        self.apctl(&["start", "guest1"], Expect::Success)?;
        self.apctl(&["start", "guest2"], Expect::Success)?;
        self.apctl(&["list"], Expect::Success)?;
        self.apctl(&["show", "guest1"], Expect::Success)?;
        let (_, _, list) = self.snapshot()?;
        self.json(&["show", "guest1"])?;
        for (name, guest_matrix) in [
            (
                "guest1",
                ["05.0004", "05.00ab", "06.0004", "06.00ab"].as_slice(),
            ),
            ("guest2", ["05.0047", "05.00ff"].as_slice()),
        ] {
            let mdev = find_mdev(&list, name)?;
            if mdev["active"] != true || mdev["guest_matrix"] != json!(guest_matrix) {
                return Err(format!(
                    "{name} is not running with its seed matrix: {mdev}"
                ));
            }
        }
        Ok(())
    }

    fn step_4_refused_assignment(&mut self) -> Res {
        self.heading("A refused assignment: Guest1's domain 0xab for Guest2");
        let out = self.apctl(&["assign", "guest2", "-d", "0xab"], Expect::Refused)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.contains("guest1") {
            return Err(format!("the refusal does not name guest1: {stderr}"));
        }
        self.say("nothing changed:");
        self.apctl(&["list"], Expect::Success)?;
        let (_, _, list) = self.snapshot()?;
        let guest2 = find_mdev(&list, "guest2")?;
        if guest2["domains"] != json!([0x47, 0xff]) || !guest2["persistent"].is_null() {
            return Err(format!("the refused assignment changed guest2: {guest2}"));
        }
        Ok(())
    }

    fn step_5_refused_mask_change(&mut self) -> Res {
        self.heading("A refused mask change: giving queue 05.0004 back to the host");
        self.say("the host owns a queue when its adapter is set in apmask AND its domain in");
        self.say("aqmask: setting both 5 and 4 would take guest1's 05.0004");
        let out = self.apctl(
            &["masks", "--apmask", "+5", "--aqmask", "+4"],
            Expect::Refused,
        )?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.contains("guest1") && !stderr.contains(&self.guest1) {
            return Err(format!("the refusal does not name guest1's mdev: {stderr}"));
        }
        self.say("the masks are as they were:");
        self.apctl(&["masks"], Expect::Success)?;
        let (_, masks, _) = self.snapshot()?;
        if masks["vfio_adapters"] != json!([5, 6])
            || masks["vfio_domains"] != json!([4, 0x47, 0xab, 0xff])
        {
            return Err(format!(
                "the refused mask change changed the masks: {masks}"
            ));
        }
        Ok(())
    }

    fn step_6_config_off_on(&mut self) -> Res {
        self.heading("Adapter 6 configured off, then on again");
        self.apctl(&["config", "6", "off"], Expect::Success)?;
        self.say("guest1 keeps adapter 6 in its matrix and guest matrix, but cannot use it:");
        self.wait_for_usable("06.0004", false)?;
        self.apctl(&["show", "guest1"], Expect::Success)?;
        self.say("the whole LPAR at a glance (A, B: the guests; ! not usable):");
        self.apctl(&["matrix"], Expect::Success)?;
        self.apctl(&["config", "6", "on"], Expect::Success)?;
        self.say("usable again:");
        self.wait_for_usable("06.0004", true)?;
        self.apctl(&["show", "guest1"], Expect::Success)?;
        self.snapshot()?;
        Ok(())
    }

    /// apd learns of a config change from the kernel's uevent: wait until
    /// guest1's view shows it (a liveness bound, not a speed test).
    fn wait_for_usable(&mut self, apqn: &str, usable: bool) -> Res {
        let deadline = std::time::Instant::now() + e2e::liveness_timeout();
        loop {
            let show = self.json(&["show", "guest1"])?;
            let entry = as_array(&show["apqns"], "show guest1 .apqns")?
                .iter()
                .find(|a| a["apqn"] == apqn)
                .cloned()
                .ok_or_else(|| format!("show guest1 lists no APQN {apqn}: {show}"))?;
            if entry["usable"] == usable {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "guest1's {apqn} did not become usable={usable}: {entry}"
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn step_7_reboot(&mut self) -> Res {
        self.heading("Reboot: apd and the simulated kernel start from scratch");
        self.say("stopping apd; a new `apd --sim` starts on a fresh simulated kernel");
        self.say("(no mdevs, boot masks) with the same definitions directory");
        with_host(Host::reboot)?;
        self.record_host("rebooted")?;
        self.say("no command given: apd restored the masks and started both guests");
        self.apctl(&["list"], Expect::Success)?;
        let (_, masks, list) = self.snapshot()?;
        for (name, uuid) in [("guest1", &self.guest1), ("guest2", &self.guest2)] {
            let mdev = find_mdev(&list, name)?;
            if mdev["active"] != true || mdev["uuid"] != json!(uuid) {
                return Err(format!("{name} did not come back after the reboot: {mdev}"));
            }
        }
        if masks["vfio_adapters"] != json!([5, 6]) {
            return Err(format!("the persistent masks were not restored: {masks}"));
        }
        Ok(())
    }

    fn step_8_check_and_export(&mut self) -> Res {
        self.heading("Check the definitions and export them for mdevctl");
        self.apctl(&["check"], Expect::Success)?;
        self.json(&["check"])?;
        let dir = with_host(|h| h.dir().join("mdevctl.d").join("matrix"))?;
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let dir_arg = dir.display().to_string();
        self.apctl(
            &["export", "--format", "mdevctl", &dir_arg],
            Expect::Success,
        )?;
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for file in &files {
            println!("$ cat {}", file.display());
            let text = fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.record(json!({"event": "mdevctl", "file": name, "text": text}));
        }
        if files.len() != 2 {
            return Err(format!(
                "export --format mdevctl wrote {} files, not one per guest",
                files.len()
            ));
        }
        Ok(())
    }

    fn interactive(&mut self) -> Res {
        let address = with_host(|h| h.bus_address().to_owned())?;
        let apctl = bin("apctl");
        println!("\napd keeps running on the simulated host. In another terminal:");
        println!("    export APCTL_BUS='{address}'");
        println!("    {} queues", apctl.display());
        println!("Press Ctrl-C here to stop apd and the bus and remove the temporary files.");
        let _ = std::io::stdout().flush();
        self.record(json!({"event": "interactive", "bus": address}));
        loop {
            thread::sleep(Duration::from_secs(1));
            let (running, log) = with_host(|h| (h.apd_running(), h.apd_log()))?;
            if !running {
                return Err(format!("apd stopped; its log:\n{}", e2e::tail(&log, 30)));
            }
        }
    }
}

fn as_array<'a>(value: &'a Value, what: &str) -> Res<&'a Vec<Value>> {
    value
        .as_array()
        .ok_or_else(|| format!("{what}: expected a JSON array, got {value}"))
}

fn find_mdev<'a>(list: &'a Value, name: &str) -> Res<&'a Value> {
    as_array(list, "list")?
        .iter()
        .find(|m| m["name"] == name)
        .ok_or_else(|| format!("`apctl list` shows no {name}: {list}"))
}

/// The first UUID-shaped word of `stdout`.
fn uuid_in(stdout: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stdout)
        .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .find(|w| is_uuid(w))
        .map(str::to_ascii_lowercase)
}

fn is_uuid(word: &str) -> bool {
    word.len() == 36
        && word.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Arguments as a shell would need them typed.
fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ",._/:=@%+-".contains(c));
            if plain {
                (*a).to_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        let args = |list: &[&str]| parse_args(list.iter().map(|s| (*s).to_owned()));
        let opts = args(&["--interactive", "--record", "x.jsonl"]).expect("valid");
        assert!(opts.interactive);
        assert_eq!(opts.record, Some(PathBuf::from("x.jsonl")));
        let opts = args(&["--record=y"]).expect("valid");
        assert_eq!(opts.record, Some(PathBuf::from("y")));
        assert!(args(&["--record"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert_eq!(args(&["--help"]).err(), Some(String::new()));
    }

    #[test]
    fn uuids_are_found_in_define_output() {
        let out = b"62177883-F1BB-47f0-914d-32a22e3a8804\n";
        assert_eq!(
            uuid_in(out).as_deref(),
            Some("62177883-f1bb-47f0-914d-32a22e3a8804")
        );
        assert_eq!(
            uuid_in(b"defined guest1: 62177883-f1bb-47f0-914d-32a22e3a8804 (autostart)").as_deref(),
            Some("62177883-f1bb-47f0-914d-32a22e3a8804")
        );
        assert_eq!(uuid_in(b"no uuid here"), None);
        assert_eq!(uuid_in(b"62177883-f1bb-47f0-914d-32a22e3a880"), None);
    }

    #[test]
    fn shell_words_quotes_only_what_needs_it() {
        assert_eq!(
            shell_words(&["masks", "--apmask", "-5,-6"]),
            "masks --apmask -5,-6"
        );
        assert_eq!(shell_words(&["a b", "", "it's"]), r"'a b' '' 'it'\''s'");
    }
}
