//! polkit end to end: a private bus that plays the system bus (the system
//! bus defaults, the shipped `org.apctl.Apd1.conf` and polkit's own bus
//! policy), a real polkitd serving it, and apd on `--bus system` pointed at
//! it. polkit's rules grant `org.apctl.apd.manage` to one unprivileged uid
//! only: that uid's changes go through, another uid's are refused with the
//! polkit sentence and change nothing, and reads stay open to everyone.
//!
//! polkitd reads actions and rules from fixed system directories, so the
//! test installs the shipped action (when missing) and its rule there for
//! the length of its run and removes them when it ends, also on panic.
//! Needs root and polkitd (Debian: package `polkitd`); skips otherwise.

mod apctl_support;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use apctl_support::{mdev, stderr, stdout};
use e2e::{
    command_exists, describe, BusPolicy, Host, HostOptions, Mode, POLKIT_BUS_NAME, SEED_HOST,
};
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Uid, User};
use serde_json::{json, Value};

/// Where Debian (and Fedora) install the polkit daemon.
const POLKITD: &str = "/usr/lib/polkit-1/polkitd";
/// polkitd's action directory and the name the shipped action is installed under.
const ACTIONS_DIR: &str = "/usr/share/polkit-1/actions";
const ACTION_FILE: &str = "org.apctl.apd.policy";
/// polkitd's rules directory for local rules, and this test's rule there
/// (49: before the distribution's 50-default.rules).
const RULES_DIR: &str = "/etc/polkit-1/rules.d";
const RULE_FILE: &str = "49-apctl-e2e-apd-polkit.rules";

/// The uid polkit grants `org.apctl.apd.manage` to (nobody) and one it
/// does not (daemon); both have passwd entries, as polkit's rules see users
/// by name.
const GRANTED_UID: u32 = 65534;
const REFUSED_UID: u32 = 1;

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";

/// The shipped polkit action (`systemd/org.apctl.apd.policy`).
fn shipped_action() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("systemd")
        .join(ACTION_FILE)
}

/// The one rule: yes to `org.apctl.apd.manage` for `user`, no opinion on
/// anything else (polkit then falls back to the action's defaults).
fn rule_for(user: &str) -> String {
    format!(
        "// Installed by the apctl end-to-end test apd_polkit (tests/tests/apd_polkit.rs)\n\
         // for one run; it removes this file when it ends. Safe to delete.\n\
         polkit.addRule(function (action, subject) {{\n    \
             if (action.id == \"{}\" && subject.user == \"{user}\") {{\n        \
                 return polkit.Result.YES;\n    \
             }}\n    \
             return polkit.Result.NOT_HANDLED;\n\
         }});\n",
        apbus::POLKIT_ACTION
    )
}

/// What this test put into polkit's system directories: removed when
/// dropped, also when the test panics. Holds an exclusive lock on the
/// actions directory meanwhile, so a second run of this test (another
/// `cargo test`) waits instead of removing files the first still uses.
struct Installed {
    files: Vec<PathBuf>,
    _lock: Flock<File>,
}

impl Installed {
    fn lock() -> Installed {
        let dir =
            File::open(ACTIONS_DIR).unwrap_or_else(|e| panic!("cannot open {ACTIONS_DIR}: {e}"));
        let lock = Flock::lock(dir, FlockArg::LockExclusive)
            .unwrap_or_else(|(_, e)| panic!("cannot lock {ACTIONS_DIR}: {e}"));
        Installed {
            files: Vec::new(),
            _lock: lock,
        }
    }

    /// Writes `text` to `path` (world-readable: polkitd reads it as its own
    /// user) and removes it again when dropped. Noted before the write, so
    /// a half-written file goes too.
    fn install(&mut self, path: PathBuf, text: &str) {
        self.files.push(path.clone());
        fs::write(&path, text).unwrap_or_else(|e| panic!("cannot install {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("cannot make {} readable: {e}", path.display()));
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        for path in self.files.drain(..) {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => eprintln!(
                    "e2e: cannot remove {} ({e}); delete it by hand, it grants {}",
                    path.display(),
                    apbus::POLKIT_ACTION
                ),
            }
        }
    }
}

/// Why this test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("apd_polkit needs root (it installs a polkit rule and starts polkitd)".into());
    }
    if !Path::new(POLKITD).is_file() {
        return Some(format!(
            "{POLKITD} is not installed (Debian: apt-get install polkitd)"
        ));
    }
    for dir in [ACTIONS_DIR, RULES_DIR] {
        if !Path::new(dir).is_dir() {
            return Some(format!("polkit's directory {dir} is missing"));
        }
    }
    if !command_exists("setpriv") {
        return Some("setpriv is not installed (Debian: util-linux)".into());
    }
    None
}

/// The user name polkit's rules see for `uid`.
fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Every file under `dir` with its content: the config dir before and after.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries =
            fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                todo.push(path.clone());
                out.insert(path, Vec::new());
            } else {
                let data = fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                out.insert(path, data);
            }
        }
    }
    out
}

/// `apctl --json ARGS` as `uid`; must succeed.
fn json_as(host: &Host, uid: u32, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = host.apctl_as(uid, uid, &all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apctl {} as uid {uid}:\n{}",
        all.join(" "),
        describe(&out)
    );
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| {
        panic!(
            "apctl {} printed no JSON ({e}):\n{}",
            all.join(" "),
            describe(&out)
        )
    })
}

/// The refusal when polkit was asked and said no: exit 1, nothing on
/// stdout, one sentence on stderr naming the uid, the change and the action.
fn assert_polkit_refused(out: &Output, uid: u32, what: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", describe(out));
    assert_eq!(stdout(out), "", "{}", describe(out));
    assert_eq!(
        stderr(out),
        format!(
            "apctl: uid {uid} may not {what}: changing AP configuration requires root and \
             polkit did not grant {}; run the command as root (e.g. with sudo)\n",
            apbus::POLKIT_ACTION
        ),
        "{}",
        describe(out)
    );
}

/// The state a refused change must leave alone: definitions on disk, the
/// model apd reports, the masks.
fn state(host: &Host) -> (BTreeMap<PathBuf, Vec<u8>>, Value, Value) {
    (
        files_under(host.config_dir()),
        host.apctl_json(&["list"]),
        host.apctl_json(&["masks"]),
    )
}

#[test]
fn polkit_grants_changes_to_one_uid_only_and_reads_stay_open() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    let (Some(granted), Some(_refused)) = (user_name(GRANTED_UID), user_name(REFUSED_UID)) else {
        eprintln!(
            "skipped: uids {GRANTED_UID} and {REFUSED_UID} need passwd entries \
             (polkit's rules name users)"
        );
        return;
    };

    // Installed before polkitd starts: it loads actions and rules at start
    // (it also reloads on change, but then the test could not tell when).
    // Declared first, so it is dropped last, after polkitd and apd stopped.
    let mut installed = Installed::lock();
    let action = Path::new(ACTIONS_DIR).join(ACTION_FILE);
    // An action already there belongs to an installed apd: left alone.
    let own_action = !action.exists();
    if own_action {
        let text = fs::read_to_string(shipped_action()).expect("the shipped polkit action");
        installed.install(action.clone(), &text);
    }
    // A file of this name can only be the leftover of a run that was
    // killed: overwritten, and removed with the rest.
    let rule = Path::new(RULES_DIR).join(RULE_FILE);
    installed.install(rule.clone(), &rule_for(&granted));

    let host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        policy: BusPolicy::ShippedWithPolkit,
        system_bus: true,
        ..HostOptions::new(SEED_HOST)
    });
    // Declared after the host: stopped before the bus goes. Without
    // --no-debug polkitd logs the rules it loaded to its log; it drops to
    // its own user (Debian: polkitd) once it has read them.
    let mut polkitd = host.bus().start_service(
        POLKIT_BUS_NAME,
        Command::new(POLKITD),
        &host.dir().join("polkitd.log"),
    );

    // (c) Reads are open to everyone, granted or not.
    let before = state(&host);
    assert_eq!(json_as(&host, REFUSED_UID, &["list"]), before.1);
    assert_eq!(json_as(&host, REFUSED_UID, &["masks"]), before.2);
    assert_eq!(json_as(&host, GRANTED_UID, &["list"]), before.1);

    // (a) Without the grant: refused by apd after polkit said no; nothing changed.
    let out = host.apctl_as(
        REFUSED_UID,
        REFUSED_UID,
        &[
            "masks",
            "--apmask",
            "-5,-6",
            "--aqmask",
            "-4,-0x47,-0xab,-0xff",
        ],
    );
    assert_polkit_refused(&out, REFUSED_UID, "change the AP masks");
    let out = host.apctl_as(
        REFUSED_UID,
        REFUSED_UID,
        &[
            "define", "--uuid", G1, "--name", "guest1", "-a", "5,6", "-d", "4,0xab",
        ],
    );
    assert_polkit_refused(&out, REFUSED_UID, "define mdev guest1");
    assert_eq!(state(&host), before, "a refused change changed something");

    // (b) The granted uid: masks, guest1 defined and started.
    for args in [
        &[
            "masks",
            "--apmask",
            "-5,-6",
            "--aqmask",
            "-4,-0x47,-0xab,-0xff",
        ][..],
        &[
            "define", "--uuid", G1, "--name", "guest1", "-a", "5,6", "-d", "4,0xab",
        ][..],
        &["start", "guest1"][..],
    ] {
        let out = host.apctl_as(GRANTED_UID, GRANTED_UID, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "apctl {} as uid {GRANTED_UID} ({granted}), granted by polkit:\n{}\napd log:\n{}\npolkitd log:\n{}",
            args.join(" "),
            describe(&out),
            e2e::tail(&host.apd_log(), 30),
            e2e::tail(&polkitd.log(), 30)
        );
    }
    assert!(host
        .config_dir()
        .join("mdevs")
        .join(format!("{G1}.toml"))
        .is_file());
    let list = host.apctl_json(&["list"]);
    let guest1 = mdev(&list, "guest1");
    assert_eq!(guest1["uuid"], G1, "{list}");
    assert_eq!(guest1["active"], true, "{list}");
    assert_eq!(guest1["adapters"], json!([5, 6]), "{list}");
    assert_eq!(guest1["domains"], json!([4, 0xab]), "{list}");
    assert_eq!(
        guest1["guest_matrix"],
        json!(["05.0004", "05.00ab", "06.0004", "06.00ab"]),
        "{list}"
    );
    assert_eq!(host.apctl_json(&["masks"])["vfio_adapters"], json!([5, 6]));

    // (a) again, now that there is something to break; (c) the refused uid
    // still reads it all.
    let after = state(&host);
    let out = host.apctl_as(REFUSED_UID, REFUSED_UID, &["stop", "guest1"]);
    assert_polkit_refused(&out, REFUSED_UID, "stop mdev guest1");
    assert_eq!(state(&host), after, "a refused stop changed something");
    assert_eq!(json_as(&host, REFUSED_UID, &["list"]), after.1);

    // apd took the polkit path both ways (not the "no polkit" refusal).
    let log = host.apd_log();
    assert!(log.contains("authorized by polkit"), "apd log:\n{log}");
    assert!(log.contains("refused by polkit"), "apd log:\n{log}");
    assert!(
        polkitd.running(),
        "polkitd died; its log:\n{}",
        polkitd.log()
    );

    // Nothing granting anything is left behind.
    drop(polkitd);
    drop(host);
    drop(installed);
    assert!(!rule.exists(), "{} was left behind", rule.display());
    assert!(
        !own_action || !action.exists(),
        "{} was left behind",
        action.display()
    );
}
