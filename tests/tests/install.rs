//! `make install` into a staging root (DESTDIR) lays out what distributions
//! expect, the installed unit passes `systemd-analyze verify` inside that
//! root, a dbus-daemon loads the installed bus policy (only root may own
//! org.apctl.Apd1), PREFIX moves the daemon and the files that name it,
//! the Cockpit hook installs cockpit/ when a tree has one, and
//! dist/apctl.spec (rpmspec -P, Debian: rpm) packages exactly that tree.
//! Tools that are missing make their part skip with the reason.

use e2e::{command_exists, describe, Bus};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// The directory the tests' apd and apctl were built into.
fn build_dir() -> PathBuf {
    e2e::bin("apd").parent().expect("build dir").to_path_buf()
}

/// `make -C dir install DESTDIR=stage BUILDDIR=... extra...`, which must
/// succeed. The Cockpit page is left out (a built cockpit/dist in a
/// developer's tree must not change the tree these tests expect) unless
/// `extra` names COCKPITDIST.
fn make_install(dir: &Path, makefile: &Path, stage: &Path, extra: &[&str]) {
    let no_page = format!("COCKPITDIST={}/no-cockpit-page", stage.display());
    let cockpit = if extra.iter().any(|a| a.starts_with("COCKPITDIST=")) {
        None
    } else {
        Some(no_page.as_str())
    };
    let out = Command::new("make")
        .arg("-C")
        .arg(dir)
        .arg("-f")
        .arg(makefile)
        .arg("install")
        .arg(format!("DESTDIR={}", stage.display()))
        .arg(format!("BUILDDIR={}", build_dir().display()))
        .args(extra)
        .args(cockpit)
        .output()
        .expect("run make");
    assert!(out.status.success(), "make install: {}", describe(&out));
}

/// Every file under `root`, relative, as `/usr/...`.
fn files(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let p = e.path();
            if e.file_type().expect("file type").is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.insert(format!("/{}", rel.display()));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn man_pages() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("man"))
        .expect("man/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn expected_tree(prefix: &str) -> BTreeSet<String> {
    let mut want: BTreeSet<String> = [
        "/sbin/apd",
        "/bin/apctl",
        "/lib/systemd/system/apd.service",
        "/share/dbus-1/system.d/org.apctl.Apd1.conf",
        "/share/dbus-1/system-services/org.apctl.Apd1.service",
        "/share/polkit-1/actions/org.apctl.apd.policy",
        "/share/bash-completion/completions/apctl",
        "/share/zsh/site-functions/_apctl",
        "/share/fish/vendor_completions.d/apctl.fish",
    ]
    .iter()
    .map(|p| format!("{prefix}{p}"))
    .collect();
    for page in man_pages() {
        want.insert(format!("{prefix}/share/man/man8/{page}"));
    }
    want
}

fn need(tool: &str, package: &str) -> bool {
    if command_exists(tool) {
        return true;
    }
    eprintln!("skipped: {tool} is not installed (Debian: {package})");
    false
}

#[test]
fn make_install_lays_out_the_tree() {
    if !need("make", "make") {
        return;
    }
    let stage = tempfile::tempdir().expect("tempdir");
    let root = stage.path();
    make_install(&repo(), &repo().join("Makefile"), root, &[]);
    assert_eq!(files(root), expected_tree("/usr"));
    let mode = |p: &str| {
        std::fs::metadata(root.join(p.trim_start_matches('/')))
            .expect("installed")
            .permissions()
            .mode()
            & 0o7777
    };
    for f in files(root) {
        let want = if f.ends_with("bin/apd") || f.ends_with("bin/apctl") {
            0o755
        } else {
            0o644
        };
        assert_eq!(mode(&f), want, "{f}");
    }
    for (installed, source) in [
        ("usr/sbin/apd", build_dir().join("apd")),
        ("usr/bin/apctl", build_dir().join("apctl")),
        (
            "usr/share/bash-completion/completions/apctl",
            repo().join("completions/apctl.bash"),
        ),
        ("usr/share/man/man8/apd.8", repo().join("man/apd.8")),
        (
            "usr/lib/systemd/system/apd.service",
            repo().join("systemd/apd.service"),
        ),
    ] {
        assert!(
            std::fs::read(root.join(installed)).expect("installed")
                == std::fs::read(&source).expect("source"),
            "{installed} differs from {}",
            source.display()
        );
    }
    let out = Command::new(root.join("usr/bin/apctl"))
        .arg("--version")
        .output()
        .expect("run the installed apctl");
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn the_installed_unit_passes_systemd_analyze_verify_in_the_root() {
    if !need("make", "make") || !need("systemd-analyze", "systemd") {
        return;
    }
    let host_units = ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("sysinit.target").exists());
    let Some(host_units) = host_units else {
        eprintln!("skipped: this machine has no systemd units (sysinit.target) to verify against");
        return;
    };
    let stage = tempfile::tempdir().expect("tempdir");
    let root = stage.path();
    make_install(&repo(), &repo().join("Makefile"), root, &[]);
    // The root needs the units apd.service refers to (sysinit.target, dbus,
    // ...): the host's, where a real root has them, but in
    // /usr/local/lib/systemd/system so they cannot shadow ours.
    let local = root.join("usr/local/lib/systemd");
    std::fs::create_dir_all(&local).expect("mkdir");
    let out = Command::new("cp")
        .arg("-a")
        .arg(host_units)
        .arg(local.join("system"))
        .output()
        .expect("cp");
    assert!(out.status.success(), "{}", describe(&out));
    let _ = std::fs::remove_file(local.join("system/apd.service"));
    let verify = |root: &Path| {
        Command::new("systemd-analyze")
            .arg("verify")
            .arg("--man=no")
            .arg(format!("--root={}", root.display()))
            .arg(root.join("usr/lib/systemd/system/apd.service"))
            .output()
            .expect("run systemd-analyze")
    };
    let out = verify(root);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!stderr.contains("apd.service"), "{stderr}");
    // It checks ExecStart inside the root: without the daemon it fails.
    std::fs::remove_file(root.join("usr/sbin/apd")).expect("rm");
    let out = verify(root);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/usr/sbin/apd"),
        "{}",
        describe(&out)
    );
}

/// `RequestName(name)` on the bus as root, or as nobody; true when granted.
fn request_name(bus: &Bus, name: &str, as_nobody: bool) -> bool {
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "dbus-send",
        ]);
        c
    } else {
        Command::new("dbus-send")
    };
    let out = cmd
        .arg(format!("--bus={}", bus.address()))
        .args([
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.RequestName",
        ])
        .arg(format!("string:{name}"))
        .arg("uint32:4")
        .output()
        .expect("run dbus-send");
    let text = describe(&out);
    if out.status.success() {
        assert!(text.contains("uint32 1"), "{text}");
        return true;
    }
    assert!(text.contains("AccessDenied"), "{text}");
    false
}

#[test]
fn a_dbus_daemon_loads_the_installed_policy() {
    if !need("make", "make") || !need("dbus-send", "dbus-bin") || !need("setpriv", "util-linux") {
        return;
    }
    let stage = tempfile::tempdir().expect("tempdir");
    make_install(&repo(), &repo().join("Makefile"), stage.path(), &[]);
    let policy = stage
        .path()
        .join("usr/share/dbus-1/system.d/org.apctl.Apd1.conf");
    let bus_dir = tempfile::tempdir().expect("tempdir");
    let bus = Bus::start_with_policy_file(bus_dir.path(), &policy);
    assert!(
        request_name(&bus, apbus::BUS_NAME, false),
        "root owns apd's name"
    );
    assert!(
        !request_name(&bus, "org.apctl.NotOurs", false),
        "the system defaults stay closed: only the policy opened apd's name"
    );
    assert!(
        !request_name(&bus, apbus::BUS_NAME, true),
        "nobody may not own it"
    );
}

#[test]
fn prefix_moves_the_daemon_and_the_files_that_name_it() {
    if !need("make", "make") {
        return;
    }
    let stage = tempfile::tempdir().expect("tempdir");
    let root = stage.path();
    make_install(
        &repo(),
        &repo().join("Makefile"),
        root,
        &["PREFIX=/usr/local"],
    );
    assert_eq!(files(root), expected_tree("/usr/local"));
    let unit = std::fs::read_to_string(root.join("usr/local/lib/systemd/system/apd.service"))
        .expect("unit");
    assert!(unit.contains("\nExecStart=/usr/local/sbin/apd\n"), "{unit}");
    let activation = std::fs::read_to_string(
        root.join("usr/local/share/dbus-1/system-services/org.apctl.Apd1.service"),
    )
    .expect("activation file");
    assert!(
        activation.contains("\nExec=/usr/local/sbin/apd\n"),
        "{activation}"
    );
}

#[test]
fn the_cockpit_hook_installs_cockpit_when_present() {
    if !need("make", "make") {
        return;
    }
    // A tree like this one with a built page in cockpit/dist (`make
    // cockpit` builds it from cockpit/): the files make installs from.
    let tree = tempfile::tempdir().expect("tempdir");
    for dir in ["systemd", "completions", "man"] {
        std::os::unix::fs::symlink(repo().join(dir), tree.path().join(dir)).expect("link");
    }
    std::fs::create_dir_all(tree.path().join("cockpit/dist/fonts")).expect("mkdir");
    std::fs::write(tree.path().join("cockpit/dist/manifest.json"), "{}\n").expect("write");
    std::fs::write(tree.path().join("cockpit/dist/fonts/a.woff2"), "font\n").expect("write");
    // Sources are not installed, only what the build made.
    std::fs::write(tree.path().join("cockpit/build.mjs"), "// build\n").expect("write");
    let stage = tempfile::tempdir().expect("tempdir");
    make_install(
        tree.path(),
        &repo().join("Makefile"),
        stage.path(),
        &["COCKPITDIST=cockpit/dist"],
    );
    let mut want = expected_tree("/usr");
    want.insert("/usr/share/cockpit/apctl/manifest.json".into());
    want.insert("/usr/share/cockpit/apctl/fonts/a.woff2".into());
    assert_eq!(files(stage.path()), want);
}

/// `*` matches any run of characters (rpm's %files globs, as used here).
fn glob(pattern: &str, path: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = path;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    rest.is_empty()
}

#[test]
fn the_rpm_spec_parses_and_packages_the_installed_tree() {
    if !need("make", "make") || !need("rpmspec", "rpm") {
        return;
    }
    let out = Command::new("rpmspec")
        .arg("-P")
        .arg(repo().join("dist/apctl.spec"))
        .output()
        .expect("run rpmspec");
    assert!(out.status.success(), "{}", describe(&out));
    let spec = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = spec
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(str::trim)
        .expect("Version:");
    assert_eq!(
        version,
        env!("CARGO_PKG_VERSION"),
        "the spec's version is the workspace's"
    );
    let listed: Vec<&str> = spec
        .lines()
        .skip_while(|l| l.trim() != "%files")
        .skip(1)
        .take_while(|l| !l.starts_with("%changelog"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('%'))
        .collect();
    let stage = tempfile::tempdir().expect("tempdir");
    make_install(&repo(), &repo().join("Makefile"), stage.path(), &[]);
    let installed = files(stage.path());
    for f in &installed {
        assert!(
            listed.iter().any(|p| glob(p, f)),
            "{f} is installed but not in %files"
        );
    }
    for p in &listed {
        assert!(
            installed.iter().any(|f| glob(p, f)),
            "%files lists {p}, which make install does not install"
        );
    }
}
