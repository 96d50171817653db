//! The Cockpit page (`cockpit/`) in a real browser: apd (`--sim`, the seed
//! host) on a private bus that plays the system bus, `cockpit-ws` with a
//! local `cockpit-bridge` that finds the package in its data directories
//! and talks to that bus, and headless Chromium driven over the DevTools
//! protocol by `tests/cockpit/drive.mjs` (puppeteer-core). The host is set
//! up with apctl as in the seed documents; the page must show guest1 and
//! guest2 and their cells, follow `apctl stop guest2` and `apctl config 6
//! off` without a reload, start guest2 from the page (apd then lists it
//! active), and show apd's sentence when it refuses a start. A second
//! cockpit-ws runs as nobody: its page shows the same host, and a stop
//! there gets apd's refusal (the sentence apctl prints for nobody) and
//! changes nothing. The page is built with its npm packages (esbuild,
//! PatternFly) into a temporary `share/cockpit/apctl`; the screenshot goes
//! to `target/cockpit-screenshot.png`. The same runs again over FUSE
//! (`apsim mount`), where adapter 6 goes off by a sysfs write apd learns
//! from the uevent.
//!
//! Needs `cockpit-ws` and `cockpit-bridge` (Debian: cockpit-ws,
//! cockpit-bridge), Chromium (`chromium`), Node.js and npm, and the npm
//! registry or npm's cache, and root (apd serves the private bus as the
//! system bus, where only root changes things without polkit); says why
//! and skips otherwise.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use e2e::{
    bin, command_exists, describe, fuse_available, liveness_timeout, tail, Host, HostOptions, Mode,
    SEED_HOST,
};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Gid, Pid, Uid};

/// Where Debian installs cockpit-ws (not on PATH).
const COCKPIT_WS: &str = "/usr/lib/cockpit/cockpit-ws";
/// The unprivileged user whose page sees everything and whose changes apd
/// refuses (no polkit on the test's bus).
const NOBODY: u32 = 65534;
/// Debian's Chromium, unless `CHROMIUM` names another.
const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from)
}

/// Why this test cannot run here, if it cannot.
fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        // apd serves the bus as the system bus: only root's changes go
        // through without polkit, and the page starts an mdev.
        return Some("cockpit needs root (the bridge's changes go to apd as root's)".into());
    }
    if !Path::new(COCKPIT_WS).is_file() {
        return Some(format!(
            "{COCKPIT_WS} is not installed (Debian: apt-get install cockpit-ws)"
        ));
    }
    if !command_exists("cockpit-bridge") {
        return Some(
            "cockpit-bridge is not installed (Debian: apt-get install cockpit-bridge)".into(),
        );
    }
    if !chromium().is_file() {
        return Some(format!(
            "{} is not installed (Debian: apt-get install chromium)",
            chromium().display()
        ));
    }
    for (program, package) in [
        ("node", "nodejs"),
        ("npm", "npm"),
        ("setpriv", "util-linux"),
    ] {
        if !command_exists(program) {
            return Some(format!(
                "{program} is not installed (Debian: apt-get install {package})"
            ));
        }
    }
    None
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// `target/`: the parent of `target/<profile>/`, where the binaries are.
fn target_dir() -> PathBuf {
    bin("apctl")
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/apctl")
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(out.status.success(), "{what} failed:\n{}", describe(&out));
}

/// `npm ci` in `dir` unless its node_modules already holds what
/// package-lock.json names (noted after the last successful install), so
/// reruns cost nothing; a fresh clone installs from npm's cache or the
/// registry.
fn npm_ci(dir: &Path) {
    let lock = fs::read(dir.join("package-lock.json")).expect("a package-lock.json");
    let stamp = dir.join("node_modules").join(".apctl-installed-lock");
    if fs::read(&stamp).is_ok_and(|s| s == lock) {
        return;
    }
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir),
        &format!("npm ci in {}", dir.display()),
    );
    fs::write(&stamp, &lock).expect("cannot note the installed lock file");
}

/// A child in its own process group (cockpit-ws and the bridges it
/// starts), killed with the group when dropped.
struct Group {
    child: Child,
    port: u16,
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// The page's address on a cockpit-ws.
fn page_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/cockpit/@localhost/apctl/index.html")
}

/// The UUID of an mdev by name, from `apctl --json list`.
fn mdev_uuid(host: &Host, name: &str) -> String {
    let list = host.apctl_json(&["list"]);
    list.as_array()
        .and_then(|l| l.iter().find(|m| m["name"] == name))
        .and_then(|m| m["uuid"].as_str())
        .unwrap_or_else(|| panic!("apctl list has no {name}: {list}"))
        .to_string()
}

/// cockpit-ws on loopback, serving with a local bridge that finds the
/// package under XDG_DATA_DIRS (`share/cockpit/apctl`) and Cockpit's own
/// base1 under /usr/share, and takes the private bus for the system bus.
/// With `nobody_home`, cockpit-ws and its bridge run as nobody (setpriv).
/// Returns it, listening, and its log.
fn cockpit_ws(
    host: &Host,
    share: &Path,
    dir: &Path,
    nobody_home: Option<&Path>,
) -> (Group, PathBuf) {
    let who = if nobody_home.is_some() {
        "nobody"
    } else {
        "root"
    };
    let log_path = dir.join(format!("cockpit-ws-{who}.log"));
    let log = fs::File::create(&log_path).expect("cockpit-ws log");
    let port = free_port();
    let mut cmd = match nobody_home {
        Some(home) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={NOBODY}"))
                .arg(format!("--regid={NOBODY}"))
                .args(["--clear-groups", "--", COCKPIT_WS])
                .env("HOME", home)
                .env("USER", "nobody");
            cmd
        }
        None => Command::new(COCKPIT_WS),
    };
    let child = cmd
        .args(["--no-tls", "--address", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--local-session=cockpit-bridge")
        .env(
            "XDG_DATA_DIRS",
            format!("{}:/usr/local/share:/usr/share", share.display()),
        )
        .env("DBUS_SYSTEM_BUS_ADDRESS", host.bus_address())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("cockpit-ws log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {COCKPIT_WS} as {who}: {e}"));
    let ws = Group { child, port };
    let deadline = Instant::now() + liveness_timeout();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cockpit-ws ({who}) does not listen on port {port}; its log:\n{}",
            fs::read_to_string(&log_path).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(20));
    }
    (ws, log_path)
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The grid the page draws (`cockpit/src/model.js`), case by case, under
/// Node.js's own test runner: needs only `node`.
#[test]
fn cockpit_grid_model_matches_apctl_matrix() {
    if !command_exists("node") {
        eprintln!("skipped: node is not installed (Debian: apt-get install nodejs)");
        return;
    }
    let cockpit = repo().join("cockpit");
    run(
        Command::new("node")
            .args(["--test", "test/model.test.js"])
            .current_dir(&cockpit),
        "node --test cockpit/test/model.test.js",
    );
}

#[test]
fn cockpit_page_follows_the_host_live_and_acts_through_apd() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    page_scenario(Mode::InProcess, "cockpit-screenshot.png");
}

/// The same over the real sysfs code path (apsim mounted over FUSE), where
/// adapter 6 goes off by a write apd did not make: the page learns it from
/// the uevent, through apd.
#[test]
fn cockpit_page_follows_a_uevent_live() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    if !fuse_available() {
        eprintln!("skipped: FUSE is not available here (/dev/fuse, root or fusermount3)");
        return;
    }
    page_scenario(Mode::Fuse, "cockpit-screenshot-fuse.png");
}

/// Serializes the npm installs of the tests of this file.
static NPM: Mutex<()> = Mutex::new(());

/// The whole scenario of `drive.mjs` on a seed host in `mode`; in FUSE
/// mode adapter 6 goes off by a write to its sysfs `config`, else by
/// `apctl config 6 off`.
fn page_scenario(mode: Mode, screenshot_name: &str) {
    let repo = repo();
    let target = target_dir();

    // The page, built as the install step builds it, into the data
    // directory the bridges search (share/cockpit/apctl): a directory
    // of its own under /tmp, which nobody's bridge can read wherever the
    // repository is.
    let scratch = tempfile::tempdir().expect("a temporary directory");
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755))
        .expect("cannot open the scratch directory to nobody");
    let share = scratch.path().join("share");
    let npm = NPM.lock().unwrap_or_else(|e| e.into_inner());
    npm_ci(&repo.join("cockpit"));
    npm_ci(&repo.join("tests").join("cockpit"));
    drop(npm);
    run(
        Command::new("node")
            .arg(repo.join("cockpit").join("build.mjs"))
            .arg(share.join("cockpit").join("apctl")),
        "the page's build (node cockpit/build.mjs)",
    );

    // The seed host, set up as the seed documents do.
    let host = Host::start_with(HostOptions {
        mode,
        system_bus: true,
        ..HostOptions::new(SEED_HOST)
    });
    for args in [
        &[
            "masks",
            "--apmask",
            "-5,-6",
            "--aqmask",
            "-4,-0x47,-0xab,-0xff",
        ][..],
        &["define", "--name", "guest1", "-a", "5,6", "-d", "4,0xab"][..],
        &["start", "guest1"][..],
        &["define", "--name", "guest2", "-a", "5", "-d", "0x47,0xff"][..],
        &["start", "guest2"][..],
    ] {
        host.apctl_ok(args);
    }

    // Two cockpit-ws, root's and nobody's, each with a local bridge.
    let nobody_home = scratch.path().join("nobody");
    fs::create_dir(&nobody_home).expect("nobody's home");
    nix::unistd::chown(
        &nobody_home,
        Some(Uid::from_raw(NOBODY)),
        Some(Gid::from_raw(NOBODY)),
    )
    .expect("cannot give nobody its home");
    let (ws, ws_log) = cockpit_ws(&host, &share, scratch.path(), None);
    let (ws_nobody, ws_nobody_log) = cockpit_ws(&host, &share, scratch.path(), Some(&nobody_home));
    let logs = || {
        format!(
            "cockpit-ws log:\n{}\ncockpit-ws (nobody) log:\n{}\napd log:\n{}",
            tail(&fs::read_to_string(&ws_log).unwrap_or_default(), 30),
            tail(&fs::read_to_string(&ws_nobody_log).unwrap_or_default(), 30),
            tail(&host.apd_log(), 30)
        )
    };

    // What apd says when nobody stops guest1 (apctl passes the UUID, as
    // the page does).
    let guest1_uuid = mdev_uuid(&host, "guest1");
    let out = host.apctl_as(NOBODY, NOBODY, &["stop", &guest1_uuid]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let refusal = String::from_utf8_lossy(&out.stderr)
        .trim_end()
        .trim_start_matches("apctl: ")
        .to_string();

    let screenshot = target.join(screenshot_name);
    let out = Command::new("node")
        .arg(repo.join("tests").join("cockpit").join("drive.mjs"))
        .current_dir(repo.join("tests").join("cockpit"))
        .env("COCKPIT_URL", page_url(ws.port))
        .env("NOBODY_URL", page_url(ws_nobody.port))
        .env("NOBODY_REFUSAL", &refusal)
        .env("CHROMIUM", chromium())
        .env("APCTL", bin("apctl"))
        .env("APCTL_BUS", host.bus_address())
        .env("SCREENSHOT", &screenshot)
        .envs((mode == Mode::Fuse).then(|| {
            (
                "CARD6_CONFIG",
                host.sysfs().join("devices/ap/card06/config"),
            )
        }))
        .env("PROFILE", scratch.path().join("chromium-profile"))
        .env("TIMEOUT_MS", liveness_timeout().as_millis().to_string())
        .stdin(Stdio::null())
        .output()
        .expect("cannot run node tests/cockpit/drive.mjs");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "the browser test failed (screenshot: {}):\n{}\n{}",
        screenshot.display(),
        describe(&out),
        logs()
    );

    // What the page started, apd has: guest2 is active.
    let list = host.apctl_json(&["list"]);
    let guest2 = list
        .as_array()
        .and_then(|l| l.iter().find(|m| m["name"] == "guest2"))
        .unwrap_or_else(|| panic!("apctl list has no guest2: {list}"));
    assert_eq!(guest2["active"], true, "{list}");
    // What nobody asked for, apd refused: guest1 still runs.
    let guest1 = list
        .as_array()
        .and_then(|l| l.iter().find(|m| m["name"] == "guest1"))
        .unwrap_or_else(|| panic!("apctl list has no guest1: {list}"));
    assert_eq!(guest1["active"], true, "{list}");
    drop(ws_nobody);
    drop(ws);
}
