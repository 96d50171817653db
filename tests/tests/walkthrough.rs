//! The walk-through of issue 7, run as a newcomer runs it: the binary, its
//! exit status, and each step's outcome checked against design.md and the
//! kernel spec from the JSON it recorded (not from its printed text).

mod apctl_support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use apctl_support::mdev;
use serde_json::{json, Value};

const WALKTHROUGH: &str = env!("CARGO_BIN_EXE_ap-walkthrough");

const VFIO_ADAPTERS: [u64; 2] = [5, 6];
const VFIO_DOMAINS: [u64; 4] = [4, 0x47, 0xab, 0xff];
const GUEST1: [&str; 4] = ["05.0004", "05.00ab", "06.0004", "06.00ab"];
const GUEST2: [&str; 2] = ["05.0047", "05.00ff"];

struct Record {
    entries: Vec<Value>,
}

impl Record {
    fn load(path: &Path) -> Record {
        let text = fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read the record {}: {e}", path.display()));
        let entries = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record line {l}: {e}")))
            .collect();
        Record { entries }
    }

    fn step(&self, n: u64) -> Vec<&Value> {
        self.entries.iter().filter(|e| e["step"] == n).collect()
    }

    /// The displayed commands of step `n` whose arguments start with `prefix`.
    fn commands(&self, n: u64, prefix: &[&str]) -> Vec<&Value> {
        self.step(n)
            .into_iter()
            .filter(|e| e["event"] == "command" && starts_with(&e["args"], prefix))
            .collect()
    }

    fn command(&self, n: u64, args: &[&str]) -> &Value {
        let found = self.commands(n, args);
        assert_eq!(
            found.len(),
            1,
            "step {n} runs `apctl {}` once",
            args.join(" ")
        );
        found[0]
    }

    /// The last JSON snapshot of `apctl --json ARGS` in step `n`.
    fn last_snapshot(&self, n: u64, args: &[&str]) -> &Value {
        self.snapshots(n, args)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("step {n} has no snapshot of `apctl {}`", args.join(" ")))
    }

    fn snapshots(&self, n: u64, args: &[&str]) -> Vec<&Value> {
        self.step(n)
            .into_iter()
            .filter(|e| e["event"] == "snapshot" && e["args"] == json!(args))
            .map(|e| &e["json"])
            .collect()
    }

    fn event(&self, name: &str) -> &Value {
        self.entries
            .iter()
            .find(|e| e["event"] == name)
            .unwrap_or_else(|| panic!("the record has no {name} event"))
    }
}

fn starts_with(args: &Value, prefix: &[&str]) -> bool {
    args.as_array()
        .is_some_and(|a| a.len() >= prefix.len() && a.iter().zip(prefix).all(|(x, p)| x == p))
}

/// `"05.00ab"` → (5, 0xab).
fn parse_apqn(apqn: &str) -> (u64, u64) {
    let (a, d) = apqn
        .split_once('.')
        .unwrap_or_else(|| panic!("{apqn:?} is not an APQN"));
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap_or_else(|e| panic!("{apqn:?}: {e}"));
    (hex(a), hex(d))
}

fn queue_owners(queues: &Value) -> Vec<(String, String, Option<String>)> {
    queues
        .as_array()
        .expect("queues --json is an array")
        .iter()
        .map(|q| {
            (
                q["apqn"].as_str().expect("apqn").to_owned(),
                q["owner"].as_str().expect("owner").to_owned(),
                q["owner_name"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn assert_running_seed_guests(list: &Value) {
    for (name, adapters, domains, guest_matrix) in [
        ("guest1", json!([5, 6]), json!([4, 0xab]), GUEST1.as_slice()),
        ("guest2", json!([5]), json!([0x47, 0xff]), GUEST2.as_slice()),
    ] {
        let m = mdev(list, name);
        assert_eq!(m["defined"], true, "{m}");
        assert_eq!(m["active"], true, "{m}");
        assert_eq!(m["autostart"], true, "{m}");
        assert_eq!(m["adapters"], adapters, "{m}");
        assert_eq!(m["domains"], domains, "{m}");
        assert_eq!(m["control_domains"], json!([]), "{m}");
        assert_eq!(m["guest_matrix"], json!(guest_matrix), "{m}");
        assert!(m["persistent"].is_null(), "live and definition agree: {m}");
    }
}

fn process_gone(pid: u64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.contains(") Z "))
        .unwrap_or(true)
}

/// Every process and the temporary directory the walk-through started are gone.
fn assert_cleaned_up(record: &Record) {
    for event in record
        .entries
        .iter()
        .filter(|e| e["event"] == "host" || e["event"] == "rebooted")
    {
        let dir = PathBuf::from(event["dir"].as_str().expect("dir"));
        assert!(!dir.exists(), "{} was left behind", dir.display());
        for pid in event["pids"].as_array().expect("pids") {
            let pid = pid.as_u64().expect("pid");
            assert!(process_gone(pid), "process {pid} was left running");
        }
    }
}

fn run_walkthrough(tmp: &Path) -> (Record, String) {
    let record_path = tmp.join("record.jsonl");
    let out = Command::new(WALKTHROUGH)
        .arg("--record")
        .arg(&record_path)
        .stdin(Stdio::null())
        .output()
        .expect("ap-walkthrough runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ap-walkthrough failed ({}):\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (Record::load(&record_path), stdout)
}

#[test]
fn the_walkthrough_shows_every_step_of_issue_7() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (record, stdout) = run_walkthrough(tmp.path());

    // 1. Every APQN of the host (7 adapters x 5 usage domains) is the host's.
    let queues = record.last_snapshot(1, &["queues"]);
    let owners = queue_owners(queues);
    assert_eq!(owners.len(), 7 * 5, "{queues}");
    assert!(
        owners.iter().all(|(_, owner, _)| owner == "host"),
        "{queues}"
    );
    record.command(1, &["queues"]);

    // 2. The seed's relative masks; vfio_ap gets exactly 5,6 x the four domains.
    let masks_cmd = record.command(
        2,
        &[
            "masks",
            "--apmask",
            "-5,-6",
            "--aqmask",
            "-4,-0x47,-0xab,-0xff",
        ],
    );
    assert_eq!(masks_cmd["status"], 0, "{masks_cmd}");
    let masks = record.last_snapshot(2, &["masks"]);
    assert_eq!(masks["vfio_adapters"], json!(VFIO_ADAPTERS), "{masks}");
    assert_eq!(masks["vfio_domains"], json!(VFIO_DOMAINS), "{masks}");
    // Kernel spec §2: the host keeps (a,d) only while bit a is set in apmask
    // AND bit d in aqmask; every other queue is free for vfio_ap.
    let owners2 = queue_owners(record.last_snapshot(2, &["queues"]));
    assert_eq!(owners2.len(), 7 * 5);
    for (apqn_s, owner, _) in &owners2 {
        let (a, d) = parse_apqn(apqn_s);
        let host = !VFIO_ADAPTERS.contains(&a) && !VFIO_DOMAINS.contains(&d);
        assert_eq!(owner, if host { "host" } else { "free" }, "{apqn_s}");
    }
    let host_queues = owners2.iter().filter(|(_, o, _)| o == "host").count();
    assert_eq!(
        host_queues, 5,
        "adapters 1-4 and 7 keep domain 0 for the host"
    );
    record.command(2, &["queues"]);

    // 3. Both guests defined with autostart, started, listed and shown.
    for name in ["guest1", "guest2"] {
        let define = record.command(3, &["define", "--name", name, "--auto"]);
        assert_eq!(define["status"], 0, "{define}");
        assert_eq!(record.command(3, &["start", name])["status"], 0);
    }
    record.command(3, &["list"]);
    record.command(3, &["show", "guest1"]);
    let list3 = record.last_snapshot(3, &["list"]);
    assert_running_seed_guests(list3);
    let guest1_uuid = mdev(list3, "guest1")["uuid"]
        .as_str()
        .expect("uuid")
        .to_owned();
    let guest2_uuid = mdev(list3, "guest2")["uuid"]
        .as_str()
        .expect("uuid")
        .to_owned();
    let show = record.last_snapshot(3, &["show", "guest1"]);
    let apqns: Vec<&Value> = show["apqns"].as_array().expect("apqns").iter().collect();
    assert_eq!(apqns.len(), 4, "{show}");
    assert!(
        apqns
            .iter()
            .all(|a| a["usable"] == true && a["reason"].is_null()),
        "{show}"
    );
    for (apqn_s, owner, name) in queue_owners(record.last_snapshot(3, &["queues"])) {
        if GUEST1.contains(&apqn_s.as_str()) {
            assert_eq!(
                (owner.as_str(), name.as_deref()),
                ("mdev", Some("guest1")),
                "{apqn_s}"
            );
        } else if GUEST2.contains(&apqn_s.as_str()) {
            assert_eq!(
                (owner.as_str(), name.as_deref()),
                ("mdev", Some("guest2")),
                "{apqn_s}"
            );
        }
    }

    // 4. Guest1's domain for Guest2: refused in one sentence naming guest1;
    //    nothing changed.
    let refused = record.command(4, &["assign", "guest2"]);
    assert_eq!(refused["status"], 1, "{refused}");
    let stderr = refused["stderr"].as_str().expect("stderr");
    assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {stderr}");
    assert!(stderr.contains("guest1"), "names guest1: {stderr}");
    assert!(stderr.contains("05.00ab"), "names the queue: {stderr}");
    assert_eq!(record.last_snapshot(4, &["list"]), list3, "nothing changed");

    // 5. Setting apmask bit 5 and aqmask bit 4 would give guest1's 05.0004
    //    to the host (kernel spec §2: EBUSY): refused naming the mdev.
    let refused = record.command(5, &["masks", "--apmask", "+5", "--aqmask", "+4"]);
    assert_eq!(refused["status"], 1, "{refused}");
    let stderr = refused["stderr"].as_str().expect("stderr");
    assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {stderr}");
    assert!(
        stderr.contains("guest1") || stderr.contains(&guest1_uuid),
        "names guest1's mdev: {stderr}"
    );
    assert_eq!(
        record.last_snapshot(5, &["masks"]),
        masks,
        "the masks stayed"
    );
    assert_eq!(
        record.last_snapshot(5, &["list"]),
        list3,
        "the guests stayed"
    );

    // 6. Adapter 6 off: guest matrix unchanged (kernel spec §7), 06.* not
    //    usable with a reason; on: usable again.
    let step6 = record.step(6);
    let on_at = step6
        .iter()
        .position(|e| e["event"] == "command" && e["args"] == json!(["config", "6", "on"]))
        .expect("step 6 configures adapter 6 on");
    let off_at = step6
        .iter()
        .position(|e| e["event"] == "command" && e["args"] == json!(["config", "6", "off"]))
        .expect("step 6 configures adapter 6 off");
    assert!(off_at < on_at);
    let shows = |range: std::ops::Range<usize>| -> Vec<&Value> {
        step6[range]
            .iter()
            .filter(|e| e["event"] == "snapshot" && e["args"] == json!(["show", "guest1"]))
            .map(|e| &e["json"])
            .collect()
    };
    // The matrix while 6 is off: guest1 (A) and guest2 (B), row 6 marked.
    let matrix = record.command(6, &["matrix"]);
    assert_eq!(matrix["status"], 0, "{matrix}");
    let grid = matrix["stdout"].as_str().expect("matrix stdout");
    for row in [
        "ADAPTER        00 04 47 ab ff",
        "  5 CEX7C      .  A  B  A  B",
        "  6 CEX7C off  .! A! .! A! .!",
    ] {
        assert!(grid.lines().any(|l| l == row), "no {row:?} in\n{grid}");
    }
    let off = *shows(off_at..on_at)
        .last()
        .expect("a show of guest1 while 6 is off");
    assert_eq!(off["guest_matrix"], json!(GUEST1), "{off}");
    assert_eq!(off["adapters"], json!([5, 6]), "{off}");
    for a in off["apqns"].as_array().expect("apqns") {
        let on_6 = a["apqn"].as_str().expect("apqn").starts_with("06.");
        assert_eq!(a["in_guest_matrix"], true, "{a}");
        assert_eq!(a["usable"], !on_6, "{a}");
        assert_eq!(a["reason"].is_null(), !on_6, "{a}");
    }
    let on = *shows(on_at..step6.len())
        .last()
        .expect("a show of guest1 after 6 is on");
    assert_eq!(on["guest_matrix"], json!(GUEST1), "{on}");
    assert!(
        on["apqns"]
            .as_array()
            .expect("apqns")
            .iter()
            .all(|a| a["usable"] == true),
        "{on}"
    );

    // 7. Reboot: a new apd on a fresh kernel; both guests back, no command.
    let before = record.event("host");
    let after = record.event("rebooted");
    assert_eq!(after["step"], 7);
    assert_ne!(before["pids"], after["pids"], "apd was restarted");
    let commands7: Vec<&Value> = record.commands(7, &[]);
    assert!(
        commands7.iter().all(|c| c["args"] == json!(["list"])),
        "after the reboot only `apctl list` is typed: {commands7:?}"
    );
    let list7 = record.last_snapshot(7, &["list"]);
    assert_running_seed_guests(list7);
    assert_eq!(mdev(list7, "guest1")["uuid"], json!(guest1_uuid));
    assert_eq!(mdev(list7, "guest2")["uuid"], json!(guest2_uuid));
    assert_eq!(
        record.last_snapshot(7, &["masks"])["vfio_adapters"],
        json!(VFIO_ADAPTERS)
    );

    // 8. check is clean; mdevctl files, one per guest, in mdevctl's format.
    assert_eq!(record.command(8, &["check"])["status"], 0);
    let check = record.last_snapshot(8, &["check"]);
    assert_eq!(check["findings"], json!([]), "{check}");
    assert_eq!(
        record.command(8, &["export", "--format", "mdevctl"])["status"],
        0
    );
    let files: Vec<&Value> = record
        .step(8)
        .into_iter()
        .filter(|e| e["event"] == "mdevctl")
        .collect();
    let names: BTreeSet<&str> = files
        .iter()
        .map(|f| f["file"].as_str().expect("file"))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([guest1_uuid.as_str(), guest2_uuid.as_str()])
    );
    for file in files {
        let (adapters, domains) = if file["file"] == json!(guest1_uuid) {
            (BTreeSet::from([5, 6]), BTreeSet::from([4, 0xab]))
        } else {
            (BTreeSet::from([5]), BTreeSet::from([0x47, 0xff]))
        };
        assert_mdevctl_file(file["text"].as_str().expect("text"), &adapters, &domains);
    }
    record.event("finished");

    // The README's excerpt is this output, not an invention.
    assert_readme_excerpt_is_real(&stdout);
    assert_cleaned_up(&record);
}

/// mdevctl's JSON: the vfio_ap type, autostart, one attribute per id.
fn assert_mdevctl_file(text: &str, adapters: &BTreeSet<u64>, domains: &BTreeSet<u64>) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(v["mdev_type"], "vfio_ap-passthrough", "{text}");
    assert_eq!(v["start"], "auto", "{text}");
    let mut got_adapters = BTreeSet::new();
    let mut got_domains = BTreeSet::new();
    for attr in v["attrs"].as_array().expect("attrs is an array") {
        let (key, value) = attr
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("an attribute is a one-key object");
        let id = parse_c_number(value.as_str().expect("attribute values are strings"));
        match key.as_str() {
            "assign_adapter" => got_adapters.insert(id),
            "assign_domain" => got_domains.insert(id),
            other => panic!("unexpected attribute {other} in {text}"),
        };
    }
    assert_eq!(&got_adapters, adapters, "{text}");
    assert_eq!(&got_domains, domains, "{text}");
}

/// kstrtoul base 0, as the kernel parses the attribute mdevctl writes.
fn parse_c_number(s: &str) -> u64 {
    let s = s.trim();
    let parsed = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8)
    } else {
        s.parse()
    };
    parsed.unwrap_or_else(|e| panic!("{s:?} is not a number: {e}"))
}

fn is_uuid_line(line: &str) -> bool {
    line.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .any(|w| w.len() == 36 && w.matches('-').count() == 4)
}

/// Lines of README.md's excerpt (between the walkthrough-excerpt markers,
/// inside its code block) appear in the real output, except elisions and
/// lines with a UUID or the temporary directory, which differ per run.
fn assert_readme_excerpt_is_real(stdout: &str) {
    let readme_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = fs::read_to_string(&readme_path).expect("README.md");
    let begin = "<!-- walkthrough-excerpt:begin -->";
    let end = "<!-- walkthrough-excerpt:end -->";
    let start = readme
        .find(begin)
        .expect("README.md has the excerpt markers")
        + begin.len();
    let stop = start + readme[start..].find(end).expect("the end marker");
    let excerpt = &readme[start..stop];
    let body = excerpt
        .split_once("```text\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(body, _)| body)
        .expect("the excerpt is a ```text block");
    let output: BTreeSet<&str> = stdout.lines().map(str::trim_end).collect();
    let mut checked = 0;
    for line in body.lines().map(str::trim_end) {
        if line.is_empty() || line.trim() == "..." || is_uuid_line(line) || line.contains("/tmp/") {
            continue;
        }
        assert!(
            output.contains(line),
            "README.md's excerpt line {line:?} is not in the walk-through's output:\n{stdout}"
        );
        checked += 1;
    }
    assert!(
        checked >= 5,
        "the excerpt shows real output ({checked} lines checked)"
    );
}

#[test]
fn ctrl_c_in_interactive_mode_tears_everything_down() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let record_path = tmp.path().join("record.jsonl");
    let stdout_path = tmp.path().join("stdout.txt");
    let mut child = Command::new(WALKTHROUGH)
        .arg("--interactive")
        .arg("--record")
        .arg(&record_path)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("ap-walkthrough starts");

    // Liveness bound only: the walk-through takes seconds.
    let deadline = Instant::now() + e2e::liveness_timeout() * 2;
    let bus = loop {
        let text = fs::read_to_string(&record_path).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains(r#""event":"interactive""#))
        {
            let v: Value = serde_json::from_str(line).expect("record line");
            break v["bus"].as_str().expect("bus").to_owned();
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "ap-walkthrough --interactive exited ({status}) before it went interactive:\n{}",
                fs::read_to_string(&stdout_path).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "ap-walkthrough never went interactive"
        );
        thread::sleep(Duration::from_millis(50));
    };
    let printed = fs::read_to_string(&stdout_path).expect("stdout");
    assert!(
        printed.contains(&format!("export APCTL_BUS='{bus}'")),
        "interactive mode prints how to point apctl at apd:\n{printed}"
    );

    // apd is really serving there.
    let apctl = e2e::bin("apctl");
    let out = Command::new(&apctl)
        .arg("status")
        .env("APCTL_BUS", &bus)
        .output()
        .expect("apctl runs");
    assert!(out.status.success(), "{}", e2e::describe(&out));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits")),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT delivered");
    let out = child.wait_with_output().expect("ap-walkthrough exits");
    assert_eq!(
        out.status.code(),
        Some(130),
        "Ctrl-C ends the walk-through with 128+SIGINT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_cleaned_up(&Record::load(&record_path));
}

#[test]
fn bad_arguments_are_a_usage_error() {
    let out = Command::new(WALKTHROUGH)
        .arg("--no-such-flag")
        .output()
        .expect("ap-walkthrough runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--no-such-flag") && stderr.contains("usage:"),
        "{stderr}"
    );
}

#[test]
fn apqns_parse() {
    assert_eq!(parse_apqn("05.00ab"), (5, 0xab));
    assert_eq!(parse_apqn("ff.0000"), (0xff, 0));
}

#[test]
fn c_numbers_parse_like_the_kernel() {
    assert_eq!(parse_c_number("5"), 5);
    assert_eq!(parse_c_number("0xab"), 0xab);
    assert_eq!(parse_c_number("017"), 15);
    assert_eq!(parse_c_number("0"), 0);
}

#[test]
fn a_newcomer_without_root_runs_it_too() {
    // Issue 7: no root, no FUSE. Run as nobody when we are root.
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: not root, so every other walk-through test already runs unprivileged");
        return;
    }
    if !e2e::command_exists("setpriv") {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let as_nobody = |program: &str, args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program)
            .args(args)
            .env("HOME", "/tmp")
            .stdin(Stdio::null())
            .output()
            .expect("setpriv runs")
    };
    if !as_nobody("test", &["-x", WALKTHROUGH]).status.success() {
        eprintln!("skipped: nobody cannot reach {WALKTHROUGH} (a private home or target dir)");
        return;
    }
    let out = as_nobody(WALKTHROUGH, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ap-walkthrough as nobody failed ({}):\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("All 8 steps did what they must."),
        "{stdout}"
    );
}
