//! The Ansible collection `apctl.vfio_ap` (`ansible/`, design.md "Fleets"):
//! built, installed and linted ([`collection_lint`]), then its example
//! playbook run against three simulated hosts at once (three `apd --sim` on
//! three private buses, three inventory hosts with
//! `ansible_connection=local`, forks): the seed documents' two guests
//! configured everywhere (with `--diff`), a second run that changes nothing
//! (inline and from a file, `src`), check mode that shows a plan and writes
//! nothing (`prune` included), drift made behind Ansible's back reported for
//! exactly the drifted hosts, a refusal on one host that leaves it as it
//! was while the others proceed, and `vfio_ap_info` against `apctl --json`.
//! End states are read back with `apctl --json`, not taken from Ansible's
//! report, which the test reads through its own JSON-lines stdout callback
//! (`tests/ansible/callback_plugins/e2e_jsonl.py`; ansible-core ships none).
//!
//! ansible-core (pinned, [`ANSIBLE_CORE`]) lives in a virtualenv under
//! `target/ansible-venv`, made once from PyPI and reused (a lock file keeps
//! concurrent tests from building it twice). The tests skip, saying why,
//! only when no such virtualenv can be had (no `python3`, no `venv` module
//! — Debian: python3-venv — or PyPI out of reach).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use e2e::{bin, describe, Host, HostOptions, Mode, SEED_HOST};
use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

/// The ansible-core release the collection is tested with (ansible/README.md).
const ANSIBLE_CORE: &str = "ansible-core==2.19.14";

/// ansible-core 2.19.14 leaves `cryptography` unpinned; 51.0 made its
/// ssh-agent module warn about DSA on every start (stderr of
/// validate-modules, which `collection_lint` requires empty), so the last
/// release before it is pinned beside it.
const CRYPTOGRAPHY: &str = "cryptography==50.0.2";

/// What the virtualenv holds; a venv made for another spec is made anew.
const VENV_SPEC: &str = "ansible-core==2.19.14 cryptography==50.0.2 + ansible-test sanity requirements: validate-modules, pep8\n";

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";

/// The seed documents' two guests, as YAML group_vars (0x.. are integers in
/// YAML, as in apctl's TOML). guest1 has a UUID, guest2 is matched by name.
const TWO_GUESTS: &str = r#"vfio_ap_desired:
  masks:
    vfio_adapters: [5, 6]
    vfio_domains: [4, 0x47, 0xab, 0xff]
  mdevs:
    - name: guest1
      uuid: 62177883-f1bb-47f0-914d-32a22e3a8804
      autostart: true
      adapters: [5, 6]
      domains: [4, 0xab]
      control_domains: []
    - name: guest2
      autostart: true
      adapters: [5]
      domains: [0x47, 0xff]
"#;

/// Domain 0x47 moves from guest2 to guest1.
const MOVED: &str = r#"vfio_ap_desired:
  masks:
    vfio_adapters: [5, 6]
    vfio_domains: [4, 0x47, 0xab, 0xff]
  mdevs:
    - name: guest1
      autostart: true
      adapters: [5, 6]
      domains: [4, 0x47, 0xab]
    - name: guest2
      autostart: true
      adapters: [5]
      domains: [0xff]
"#;

/// Masks that take adapter 5 and domain 4 back for the host while guest1
/// holds 05.0004: apctl refuses.
const TAKE_BACK: &str = r#"vfio_ap_desired:
  masks:
    vfio_adapters: [6]
    vfio_domains: [0x47, 0xab, 0xff]
"#;

/// TWO_GUESTS as a desired-state file (guest2 last, without a UUID).
const TWO_GUESTS_TOML: &str = r#"[masks]
vfio_adapters = [5, 6]
vfio_domains = [4, 0x47, 0xab, 0xff]

[[mdev]]
uuid = "62177883-f1bb-47f0-914d-32a22e3a8804"
name = "guest1"
autostart = true
adapters = [5, 6]
domains = [4, 0xab]
[[mdev]]
name = "guest2"
autostart = true
adapters = [5]
domains = [0x47, 0xff]
"#;

/// The state module with a file on the host (`src`, `vfio_ap_src`).
const SRC_PLAYBOOK: &str = r#"- name: Desired state from a file
  hosts: kvm_hosts
  gather_facts: false
  tasks:
    - name: From a file
      apctl.vfio_ap.vfio_ap_state:
        src: "{{ vfio_ap_src }}"
        prune: "{{ vfio_ap_prune | default(false) }}"
        bus: "{{ apctl_bus }}"
        apctl_path: "{{ apctl_path }}"
"#;

const HOSTS: [&str; 3] = ["host1", "host2", "host3"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `target/`: the directory above the one that holds apctl.
fn target_dir() -> PathBuf {
    let apctl = bin("apctl");
    apctl
        .parent()
        .and_then(Path::parent)
        .expect("apctl lives in target/<profile>/")
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!("{cmd:?} failed:\n{}", describe(&out)))
    }
}

/// The virtualenv with ansible-core, made once (under a lock) and reused;
/// `None`, with the reason on stderr, when it cannot be made here.
fn ansible_venv() -> Option<PathBuf> {
    let target = target_dir();
    let venv = target.join("ansible-venv");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(target.join("ansible-venv.lock"))
        .expect("create target/ansible-venv.lock");
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock target/ansible-venv.lock");
    let ready = venv.join("apctl-ready");
    if fs::read_to_string(&ready).is_ok_and(|s| s == VENV_SPEC) {
        return Some(venv);
    }
    match make_venv(&venv) {
        Ok(()) => {
            fs::write(&ready, VENV_SPEC).expect("write the virtualenv's marker");
            Some(venv)
        }
        Err(why) => {
            let _ = fs::remove_dir_all(&venv);
            eprintln!(
                "skipped: no virtualenv with {ANSIBLE_CORE} can be made here \
                 (needs python3 >= 3.11 with its venv module, Debian: python3-venv, and PyPI): {why}"
            );
            None
        }
    }
}

fn make_venv(venv: &Path) -> Result<(), String> {
    if venv.exists() {
        fs::remove_dir_all(venv).map_err(|e| format!("cannot remove {}: {e}", venv.display()))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    let pip = |args: &[&str]| {
        run(Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "--quiet",
                "--retries",
                "2",
            ])
            .args(args))
    };
    pip(&[ANSIBLE_CORE, CRYPTOGRAPHY])?;
    // ansible-test's own pins for the checks `collection_lint` runs.
    let reqs = ansible_test_dir(venv)?.join("_data/requirements");
    pip(&[
        "-r",
        &reqs
            .join("sanity.validate-modules.txt")
            .display()
            .to_string(),
        "-r",
        &reqs.join("sanity.pep8.txt").display().to_string(),
    ])?;
    Ok(())
}

/// The installed `ansible_test` package.
fn ansible_test_dir(venv: &Path) -> Result<PathBuf, String> {
    let out = run(Command::new(venv.join("bin/python")).args([
        "-c",
        "import ansible_test, os; print(os.path.dirname(ansible_test.__file__))",
    ]))?;
    Ok(PathBuf::from(
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// The environment every ansible command of these tests runs in: nothing
/// from the user's configuration, everything temporary under `dir`.
fn ansible_env(cmd: &mut Command, dir: &Path) {
    cmd.current_dir(dir)
        .env("LC_ALL", "C.UTF-8")
        .env("ANSIBLE_CONFIG", dir.join("no-ansible.cfg"))
        .env("ANSIBLE_HOME", dir.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-local-tmp"))
        .env("ANSIBLE_REMOTE_TEMP", dir.join("ansible-remote-tmp"))
        .env("ANSIBLE_COLLECTIONS_PATH", dir.join("collections"))
        .env("ANSIBLE_COLLECTIONS_SCAN_SYS_PATH", "false")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("APCTL_BUS");
}

/// `dir/collections/ansible_collections/apctl/vfio_ap` -> the repository's `ansible/`.
fn install_collection(dir: &Path) {
    let ns = dir.join("collections/ansible_collections/apctl");
    fs::create_dir_all(&ns).expect("create the collections tree");
    std::os::unix::fs::symlink(repo().join("ansible"), ns.join("vfio_ap"))
        .expect("link the collection");
}

fn python_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read a directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            python_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "py") {
            out.push(p);
        }
    }
}

fn ok(cmd: &mut Command) -> String {
    match run(cmd) {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => panic!("{e}"),
    }
}

/// `ansible-galaxy collection build` and `install`, then what `ansible-test
/// sanity` would check, as far as it runs without docker and without its
/// pip bootstrap from ci-files.testing.ansible.com: its validate-modules
/// script (documentation against the argument spec, the
/// schemas of DOCUMENTATION/EXAMPLES/RETURN) with the collection's ignore
/// file, pycodestyle with ansible-test's settings, `ansible-doc` on each
/// module, `py_compile` of every Python file, and the TOML writer's tests.
#[test]
fn collection_lint() {
    let Some(venv) = ansible_venv() else { return };
    let dir = tempfile::tempdir().expect("temporary directory");
    let dir = dir.path();
    let python = venv.join("bin/python");
    let ansible_test = ansible_test_dir(&venv).unwrap_or_else(|e| panic!("{e}"));

    // The collection as Galaxy would ship it: built from ansible/, then
    // installed (offline) into dir/collections/ansible_collections/apctl/
    // vfio_ap, the tree validate-modules and ansible-doc want.
    let galaxy = fs::read_to_string(repo().join("ansible/galaxy.yml")).expect("galaxy.yml");
    let version = galaxy
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .expect("galaxy.yml has a version")
        .trim()
        .to_string();
    assert!(galaxy.contains("namespace: apctl\n") && galaxy.contains("name: vfio_ap\n"));
    let mut cmd = Command::new(venv.join("bin/ansible-galaxy"));
    cmd.args(["collection", "build", "--output-path"])
        .arg(dir.join("build"))
        .arg(repo().join("ansible"));
    ansible_env(&mut cmd, dir);
    ok(&mut cmd);
    let mut cmd = Command::new(venv.join("bin/ansible-galaxy"));
    cmd.args(["collection", "install", "--offline", "-p"])
        .arg(dir.join("collections"))
        .arg(dir.join(format!("build/apctl-vfio_ap-{version}.tar.gz")));
    ansible_env(&mut cmd, dir);
    ok(&mut cmd);
    let tree = dir.join("collections/ansible_collections/apctl/vfio_ap");
    assert!(
        tree.join("MANIFEST.json").is_file(),
        "the collection is not installed"
    );
    let modules = [
        "plugins/modules/vfio_ap_state.py",
        "plugins/modules/vfio_ap_info.py",
    ];
    let mut cmd = Command::new(&python);
    cmd.arg(ansible_test.join("_util/controller/sanity/validate-modules/validate.py"))
        .args(["--format", "json", "--arg-spec", "--collection"])
        .arg("ansible_collections/apctl/vfio_ap")
        .args(["--collection-version", &version])
        .args(modules);
    ansible_env(&mut cmd, dir);
    cmd.current_dir(&tree);
    let out = cmd.output().expect("run validate-modules");
    // 0: clean, 3: findings (ansible-test's convention).
    assert!(
        matches!(out.status.code(), Some(0 | 3)) && out.stderr.is_empty(),
        "validate-modules failed:\n{}",
        describe(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "validate-modules printed no JSON ({e}):\n{}",
            describe(&out)
        )
    });
    let ignores =
        fs::read_to_string(tree.join("tests/sanity/ignore-2.19.txt")).expect("ignore file");
    let mut findings = Vec::new();
    for (file, r) in report.as_object().expect("an object per file") {
        for kind in ["errors", "warnings"] {
            for f in r[kind].as_array().into_iter().flatten() {
                let code = f["code"].as_str().unwrap_or_default();
                if !ignores
                    .lines()
                    .any(|l| l == format!("{file} validate-modules:{code}"))
                {
                    findings.push(format!("{file}: {kind}: {code}: {}", f["msg"]));
                }
            }
        }
    }
    assert!(
        findings.is_empty(),
        "validate-modules:\n{}",
        findings.join("\n")
    );
    assert_eq!(
        report.as_object().map(|o| o.len()),
        Some(modules.len()),
        "validate-modules checked every module: {report:#}"
    );

    // pycodestyle as `ansible-test sanity --test pep8` runs it.
    let ignore: Vec<String> =
        fs::read_to_string(ansible_test.join("_util/controller/sanity/pep8/current-ignore.txt"))
            .expect("ansible-test's pep8 ignore list")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
    let mut py = Vec::new();
    python_files(&repo().join("ansible"), &mut py);
    python_files(&repo().join("tests/ansible"), &mut py);
    assert!(py.len() >= 5, "{py:?}");
    let mut cmd = Command::new(venv.join("bin/pycodestyle"));
    cmd.args(["--max-line-length", "160", "--ignore", &ignore.join(",")])
        .args(&py);
    ansible_env(&mut cmd, dir);
    ok(&mut cmd);

    // Every file compiles (as py_compile does, without writing __pycache__).
    let mut cmd = Command::new(&python);
    cmd.args([
        "-c",
        "import sys\nfor p in sys.argv[1:]:\n    compile(open(p, 'rb').read(), p, 'exec', dont_inherit=True)",
    ])
    .args(&py);
    ansible_env(&mut cmd, dir);
    ok(&mut cmd);

    // ansible-doc reads both modules' documentation (from the installed collection).
    let mut cmd = Command::new(venv.join("bin/ansible-doc"));
    cmd.args([
        "--json",
        "apctl.vfio_ap.vfio_ap_state",
        "apctl.vfio_ap.vfio_ap_info",
    ]);
    ansible_env(&mut cmd, dir);
    let docs: Value = serde_json::from_str(&ok(&mut cmd)).expect("ansible-doc --json prints JSON");
    let state = &docs["apctl.vfio_ap.vfio_ap_state"];
    for option in ["state", "src", "prune", "bus", "apctl_path"] {
        assert!(
            state["doc"]["options"][option].is_object(),
            "no option {option}: {state:#}"
        );
    }
    assert_eq!(state["doc"]["options"]["bus"]["default"], "system");
    assert!(state["return"]["steps"].is_object(), "{state:#}");
    assert!(state["examples"]
        .as_str()
        .is_some_and(|e| e.contains("vfio_ap_state")));
    let info = &docs["apctl.vfio_ap.vfio_ap_info"];
    for rv in ["mdevs", "queues", "masks", "status"] {
        assert!(
            info["return"][rv].is_object(),
            "no return value {rv}: {info:#}"
        );
    }

    // The TOML writer against Python's TOML reader.
    let mut cmd = Command::new(&python);
    cmd.args(["-m", "unittest", "-q", "test_toml_state"])
        .env("PYTHONPATH", repo().join("ansible/plugins/module_utils"));
    ansible_env(&mut cmd, dir);
    cmd.current_dir(repo().join("tests/ansible"));
    run(&mut cmd).unwrap_or_else(|e| panic!("{e}"));
}

/// Three simulated seed hosts and an Ansible inventory directory for them.
struct Fleet {
    venv: PathBuf,
    hosts: Vec<Host>,
    dir: tempfile::TempDir,
}

/// One `ansible-playbook` run, read from the e2e_jsonl callback.
#[derive(Debug)]
struct Play {
    /// host -> (event, result) of the play's one task.
    results: BTreeMap<String, (String, Value)>,
    /// host -> {ok, changed, failures, ...}.
    stats: Value,
    out: String,
}

impl Play {
    fn result(&self, host: &str) -> (&str, &Value) {
        let (event, result) = self
            .results
            .get(host)
            .unwrap_or_else(|| panic!("no result for {host}:\n{}", self.out));
        (event.as_str(), result)
    }

    /// The (action, target) of each step host's task reported.
    fn steps(&self, host: &str) -> Vec<(String, String)> {
        let (event, r) = self.result(host);
        assert_eq!(event, "ok", "{host}: {r:#}");
        r["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("{host}: no steps: {r:#}"))
            .iter()
            .map(|s| {
                (
                    s["action"].as_str().unwrap_or_default().to_string(),
                    s["target"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn changed(&self, host: &str) -> bool {
        self.stats[host]["changed"]
            .as_u64()
            .unwrap_or_else(|| panic!("no stats for {host}:\n{}", self.out))
            > 0
    }

    /// The hosts whose task changed something (or, in check mode, would).
    fn changed_hosts(&self) -> Vec<&str> {
        HOSTS.into_iter().filter(|h| self.changed(h)).collect()
    }
}

fn s(action: &str, target: &str) -> (String, String) {
    (action.to_string(), target.to_string())
}

impl Fleet {
    fn start(venv: PathBuf) -> Fleet {
        let hosts = HOSTS
            .iter()
            .map(|_| {
                Host::start_with(HostOptions {
                    mode: Mode::InProcess,
                    ..HostOptions::new(SEED_HOST)
                })
            })
            .collect();
        let dir = tempfile::tempdir().expect("temporary directory");
        install_collection(dir.path());
        Fleet { venv, hosts, dir }
    }

    fn host(&self, name: &str) -> &Host {
        let i = HOSTS
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no host {name}"));
        &self.hosts[i]
    }

    /// `inventories/NAME/`: the three hosts (each its bus), group_vars with
    /// `group_vars`, and host_vars for the hosts in `host_vars`.
    fn inventory(&self, name: &str, group_vars: &str, host_vars: &[(&str, &str)]) -> PathBuf {
        let inv = self.dir.path().join("inventories").join(name);
        fs::create_dir_all(inv.join("group_vars")).expect("create the inventory");
        fs::create_dir_all(inv.join("host_vars")).expect("create the inventory");
        let mut hosts = String::from("kvm_hosts:\n  hosts:\n");
        for (name, host) in HOSTS.iter().zip(&self.hosts) {
            hosts.push_str(&format!(
                "    {name}:\n      apctl_bus: {}\n",
                serde_json::to_string(host.bus_address()).expect("a string")
            ));
        }
        hosts.push_str(&format!(
            "  vars:\n    ansible_connection: local\n    ansible_python_interpreter: {}\n    apctl_path: {}\n",
            serde_json::to_string(&self.venv.join("bin/python")).expect("a path"),
            serde_json::to_string(&bin("apctl")).expect("a path"),
        ));
        fs::write(inv.join("hosts.yml"), hosts).expect("write hosts.yml");
        fs::write(inv.join("group_vars/kvm_hosts.yml"), group_vars).expect("write group_vars");
        for (host, vars) in host_vars {
            fs::write(inv.join(format!("host_vars/{host}.yml")), vars).expect("write host_vars");
        }
        inv
    }

    /// `ansible-playbook` with `playbook` over all three hosts at once.
    fn play(&self, playbook: &Path, inventory: &Path, extra: &[&str]) -> Play {
        let mut cmd = Command::new(self.venv.join("bin/ansible-playbook"));
        cmd.arg("-i")
            .arg(inventory)
            .args(["--forks", "3"])
            .args(extra)
            .arg(playbook)
            .env(
                "ANSIBLE_CALLBACK_PLUGINS",
                repo().join("tests/ansible/callback_plugins"),
            )
            .env("ANSIBLE_STDOUT_CALLBACK", "e2e_jsonl")
            .stdin(Stdio::null());
        ansible_env(&mut cmd, self.dir.path());
        let out = cmd.output().expect("run ansible-playbook");
        let text = describe(&out);
        // 0: all ok; 2: a host failed (ansible-playbook's convention).
        assert!(
            matches!(out.status.code(), Some(0 | 2)),
            "ansible-playbook {extra:?} failed:\n{text}"
        );
        let mut results = BTreeMap::new();
        let mut stats = Value::Null;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            match v["event"].as_str() {
                Some("stats") => stats = v["stats"].clone(),
                Some(event) => {
                    let host = v["host"].as_str().unwrap_or_default().to_string();
                    let prev = results.insert(host, (event.to_string(), v["result"].clone()));
                    assert!(
                        prev.is_none(),
                        "one task per playbook, one result per host:\n{text}"
                    );
                }
                None => {}
            }
        }
        assert!(stats.is_object(), "no stats in the output:\n{text}");
        let play = Play {
            results,
            stats,
            out: text,
        };
        assert_eq!(
            out.status.code() == Some(2),
            HOSTS.iter().any(|h| play.stats[h]["failures"] != 0),
            "exit status against the stats:\n{}",
            play.out
        );
        play
    }

    fn site(&self) -> PathBuf {
        repo().join("ansible/examples/site.yml")
    }

    /// What apctl says about a host: its mdevs, masks and exported state.
    fn view(&self, name: &str) -> (Value, Value, String) {
        let host = self.host(name);
        (
            host.apctl_json(&["list"]),
            host.apctl_json(&["masks"]),
            host.apctl_ok(&["export", "--format", "toml"]),
        )
    }
}

/// The mdev called `name` in `apctl --json list`.
fn mdev<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .expect("list --json is an array")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list:#}"))
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an id list: {v}"))
        .iter()
        .map(|i| i.as_u64().expect("an integer id"))
        .collect()
}

/// The seed documents' two guests, read back through apctl.
fn assert_two_guests(fleet: &Fleet, name: &str) {
    let (list, masks, _) = fleet.view(name);
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{name}: {list:#}");
    let g1 = mdev(&list, "guest1");
    assert_eq!(g1["uuid"], G1, "{name}: {g1:#}");
    let g2 = mdev(&list, "guest2");
    for (g, adapters, domains) in [
        (g1, vec![5, 6], vec![4, 0xab]),
        (g2, vec![5], vec![0x47, 0xff]),
    ] {
        assert_eq!(g["defined"], true, "{name}: {g:#}");
        assert_eq!(g["active"], true, "{name}: {g:#}");
        assert_eq!(g["autostart"], true, "{name}: {g:#}");
        assert_eq!(ids(&g["adapters"]), adapters, "{name}: {g:#}");
        assert_eq!(ids(&g["domains"]), domains, "{name}: {g:#}");
        assert_eq!(
            ids(&g["control_domains"]),
            Vec::<u64>::new(),
            "{name}: {g:#}"
        );
    }
    assert_eq!(ids(&masks["vfio_adapters"]), [5, 6], "{name}: {masks:#}");
    assert_eq!(
        ids(&masks["vfio_domains"]),
        [4, 0x47, 0xab, 0xff],
        "{name}: {masks:#}"
    );
    assert_eq!(
        masks["persistent_apmask"], masks["apmask"],
        "{name}: {masks:#}"
    );
}

#[test]
fn a_fleet_of_three_simulated_hosts() {
    let Some(venv) = ansible_venv() else { return };
    let fleet = Fleet::start(venv);
    let two_guests = fleet.inventory("two-guests", TWO_GUESTS, &[]);

    // 1. From nothing to the two guests, on every host at once, with --diff.
    let first = fleet.play(&fleet.site(), &two_guests, &["--diff"]);
    assert_eq!(first.changed_hosts(), HOSTS, "{}", first.out);
    for h in HOSTS {
        assert_eq!(
            first.steps(h),
            vec![
                s("define", "guest1"),
                s("define", "guest2"),
                s("store-masks", "host"),
                s("set-masks", "host"),
                s("start", "guest1"),
                s("assign-adapter", "guest1"),
                s("assign-adapter", "guest1"),
                s("assign-domain", "guest1"),
                s("assign-domain", "guest1"),
                s("start", "guest2"),
                s("assign-adapter", "guest2"),
                s("assign-domain", "guest2"),
                s("assign-domain", "guest2"),
            ],
            "{h}: {}",
            first.out
        );
        let (_, r) = first.result(h);
        assert_eq!(r["changed"], true, "{h}: {r:#}");
        let before = r["diff"]["before"].as_str().expect("diff.before");
        let after = r["diff"]["after"].as_str().expect("diff.after");
        assert!(!before.contains("[[mdev]]"), "{h}: {before}");
        assert!(after.contains(&format!("uuid = \"{G1}\"")), "{h}: {after}");
        assert_eq!(after, fleet.view(h).2, "{h}: diff.after is the export");
        assert_two_guests(&fleet, h);
    }

    // 2. Again: nothing to do anywhere.
    let views: Vec<_> = HOSTS.iter().map(|h| fleet.view(h)).collect();
    let second = fleet.play(&fleet.site(), &two_guests, &[]);
    assert!(second.changed_hosts().is_empty(), "{}", second.out);
    for (h, view) in HOSTS.iter().zip(&views) {
        assert_eq!(second.steps(h), Vec::new(), "{h}: {}", second.out);
        assert_eq!(
            &fleet.view(h),
            view,
            "{h}: the second run changed something"
        );
    }

    // The same state as a TOML file on the hosts (`src`): still nothing to
    // do; with `prune` and only guest1 in the file, check mode plans to
    // stop and undefine guest2, and nothing more.
    let src = fleet.dir.path().join("src.yml");
    fs::write(&src, SRC_PLAYBOOK).expect("write src.yml");
    let two_toml = fleet.dir.path().join("two-guests.toml");
    fs::write(&two_toml, TWO_GUESTS_TOML).expect("write two-guests.toml");
    let from_file = fleet.play(
        &src,
        &two_guests,
        &["-e", &format!("vfio_ap_src={}", two_toml.display())],
    );
    assert!(from_file.changed_hosts().is_empty(), "{}", from_file.out);
    let guest1_toml = fleet.dir.path().join("guest1-only.toml");
    let guest1_only = TWO_GUESTS_TOML
        .split("\n[[mdev]]\nname = \"guest2\"")
        .next()
        .expect("guest1's part");
    fs::write(&guest1_toml, guest1_only).expect("write guest1-only.toml");
    let prune = fleet.play(
        &src,
        &two_guests,
        &[
            "--check",
            "-e",
            &format!("vfio_ap_src={}", guest1_toml.display()),
            "-e",
            "vfio_ap_prune=true",
        ],
    );
    assert_eq!(prune.changed_hosts(), HOSTS, "{}", prune.out);
    for (h, view) in HOSTS.iter().zip(&views) {
        assert_eq!(
            prune.steps(h),
            vec![s("stop", "guest2"), s("undefine", "guest2")],
            "{h}: {}",
            prune.out
        );
        assert_eq!(&fleet.view(h), view, "{h}: check mode changed something");
    }

    // 3. Check mode on a modified state: the plan, and nothing written.
    let moved = fleet.inventory("moved", MOVED, &[]);
    let check = fleet.play(&fleet.site(), &moved, &["--check", "--diff"]);
    assert_eq!(check.changed_hosts(), HOSTS, "{}", check.out);
    for (h, view) in HOSTS.iter().zip(&views) {
        assert_eq!(
            check.steps(h),
            vec![
                s("redefine", "guest1"),
                s("redefine", "guest2"),
                s("unassign-domain", "guest2"),
                s("assign-domain", "guest1"),
            ],
            "{h}: {}",
            check.out
        );
        let (_, r) = check.result(h);
        assert!(
            r["cmd"]
                .as_array()
                .is_some_and(|c| c.contains(&Value::from("--dry-run"))),
            "{h}: {r:#}"
        );
        let after = r["diff"]["after"].as_str().expect("diff.after");
        assert!(
            after.contains("# would assign domain 0x47 to guest1"),
            "{h}: {after}"
        );
        assert_eq!(&fleet.view(h), view, "{h}: check mode changed something");
    }

    // 4. Drift behind Ansible's back: guest2 stopped on host1, a control
    // domain assigned by hand to guest1 on host2; host3 untouched.
    fleet.host("host1").apctl_ok(&["stop", "guest2"]);
    fleet
        .host("host2")
        .apctl_ok(&["assign", "guest1", "-c", "0x47"]);
    let drifted: Vec<_> = HOSTS.iter().map(|h| fleet.view(h)).collect();
    let check = fleet.play(&fleet.site(), &two_guests, &["--check"]);
    assert_eq!(check.changed_hosts(), ["host1", "host2"], "{}", check.out);
    assert_eq!(
        check.steps("host1"),
        vec![
            s("start", "guest2"),
            s("assign-adapter", "guest2"),
            s("assign-domain", "guest2"),
            s("assign-domain", "guest2"),
        ],
        "{}",
        check.out
    );
    assert_eq!(
        check.steps("host2"),
        vec![
            s("redefine", "guest1"),
            s("unassign-control-domain", "guest1")
        ],
        "{}",
        check.out
    );
    assert_eq!(check.steps("host3"), Vec::new(), "{}", check.out);
    for (h, view) in HOSTS.iter().zip(&drifted) {
        assert_eq!(&fleet.view(h), view, "{h}: check mode changed something");
    }
    assert_eq!(mdev(&drifted[0].0, "guest2")["active"], false);

    // 5. host3's state takes back a queue guest1 holds: host3 fails with
    // apctl's sentence and stays as it was; host1 and host2 are repaired.
    let refused = fleet.inventory("host3-takes-back", TWO_GUESTS, &[("host3", TAKE_BACK)]);
    let fix = fleet.play(&fleet.site(), &refused, &[]);
    let (event, r) = fix.result("host3");
    assert_eq!(event, "failed", "{r:#}");
    assert_eq!(r["rc"], 1, "{r:#}");
    let msg = r["msg"].as_str().expect("msg");
    assert!(
        msg.starts_with("apctl: cannot apply the desired state: "),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("guest1 ({G1})")) && msg.contains("05.0004"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1, "{msg}");
    assert_eq!(fix.stats["host3"]["failures"], 1, "{}", fix.out);
    assert_eq!(
        fleet.view("host3"),
        drifted[2],
        "host3 changed after a refusal"
    );
    assert_eq!(fix.changed_hosts(), ["host1", "host2"], "{}", fix.out);
    for h in ["host1", "host2"] {
        assert_eq!(fix.result(h).0, "ok", "{}", fix.out);
        assert_two_guests(&fleet, h);
    }
    assert_two_guests(&fleet, "host3");

    // 6. vfio_ap_info returns what apctl --json prints.
    let info = fleet.dir.path().join("info.yml");
    fs::write(
        &info,
        "- hosts: kvm_hosts\n  gather_facts: false\n  tasks:\n    - name: info\n      apctl.vfio_ap.vfio_ap_info:\n        bus: \"{{ apctl_bus }}\"\n        apctl_path: \"{{ apctl_path }}\"\n",
    )
    .expect("write info.yml");
    let facts = fleet.play(&info, &two_guests, &["--check"]);
    assert!(facts.changed_hosts().is_empty(), "{}", facts.out);
    for h in HOSTS {
        let (event, r) = facts.result(h);
        assert_eq!(event, "ok", "{h}: {r:#}");
        let host = fleet.host(h);
        assert_eq!(r["mdevs"], host.apctl_json(&["list"]), "{h}");
        assert_eq!(r["queues"], host.apctl_json(&["queues"]), "{h}");
        assert_eq!(r["masks"], host.apctl_json(&["masks"]), "{h}");
        assert_eq!(r["status"]["defined"], 2, "{h}: {r:#}");
        let q = r["queues"]
            .as_array()
            .expect("queues")
            .iter()
            .find(|q| q["apqn"] == "05.0004")
            .expect("05.0004");
        assert_eq!(q["owner_name"], "guest1", "{h}: {q:#}");
    }
}

/// The example playbook and inventory in ansible/README.md are the files
/// in ansible/examples/ (the playbook the fleet test runs), comments aside.
#[test]
fn readme_shows_the_example_files() {
    let root = repo().join("ansible");
    let readme = fs::read_to_string(root.join("README.md")).expect("ansible/README.md");
    for f in ["examples/site.yml", "examples/inventory.yml"] {
        let text = fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("ansible/{f}: {e}"));
        let body: String = text
            .lines()
            .filter(|l| *l != "---" && !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            readme.contains(&format!("`{f}`:\n\n```yaml\n{body}```\n")),
            "ansible/README.md does not show ansible/{f} as it is:\n{body}"
        );
    }
    for f in [
        "galaxy.yml",
        "meta/runtime.yml",
        "plugins/modules/vfio_ap_state.py",
        "plugins/modules/vfio_ap_info.py",
    ] {
        assert!(root.join(f).is_file(), "ansible/{f} is missing");
    }
}
