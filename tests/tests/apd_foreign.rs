//! Foreign writers: another tool writes the (FUSE-mounted, simulated)
//! sysfs while apd serves its clients, with and without the s390 AP
//! configuration lock that s390-tools and apd share. Whatever they write is
//! detected and shown (`list --json` carries the definition as
//! `persistent` when the live matrix differs), and apd never overwrites it:
//! apd decides on what it reads once it holds the lock, and its writes name
//! only the ids its clients asked for.

mod apd_support;

use apd_support::{SEED_APMASK, SEED_AQMASK};
use e2e::{describe, fuse_available, Host, HostOptions, Mode, Rng, SEED_HOST};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn fuse_host() -> Option<Host> {
    if !fuse_available() {
        eprintln!("skipped: FUSE is not available");
        return None;
    }
    Some(Host::start_with(HostOptions {
        mode: Mode::Fuse,
        ..HostOptions::new(SEED_HOST)
    }))
}

/// The lock as s390-tools take it (a pid file link(2)ed to the lock's
/// name), held by this test's process until dropped.
struct Held(PathBuf);

impl Held {
    fn take(lock: &Path) -> Held {
        let tmp = lock.with_extension(format!("foreign{}", std::process::id()));
        fs::write(&tmp, format!("{}\n", std::process::id())).expect("write the pid file");
        fs::hard_link(&tmp, lock).expect("nobody holds the lock");
        fs::remove_file(&tmp).expect("remove the pid file");
        Held(lock.to_path_buf())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn lock_path(host: &Host) -> PathBuf {
    host.dir().join("s390apconfig.lock")
}

/// Whether apd waits for the lock: its pid file (`<lock><pid><xx>`, the
/// s390-tools name) exists while it tries to link it.
fn apd_waits_for_lock(host: &Host) -> bool {
    let Ok(entries) = fs::read_dir(host.dir()) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.len() > "s390apconfig.lock".len()
            && name.starts_with("s390apconfig.lock")
            && !name.contains("foreign")
    })
}

fn mask_bit(host: &Host, mask: &str, bit: usize) -> bool {
    let text = host.read(&format!("bus/ap/{mask}"));
    let hex = text.trim().trim_start_matches("0x");
    let nibble = u8::from_str_radix(&hex[bit / 4..bit / 4 + 1], 16).expect("hex digit");
    nibble & (8 >> (bit % 4)) != 0
}

/// A change queued behind a foreign holder of the lock, the holder's own
/// write, then the release: `apctl` runs `args` while the lock is held, and
/// `foreign` runs once apd waits for it.
fn behind_the_lock(host: &Host, args: &[&str], foreign: impl FnOnce()) -> std::process::Output {
    let held = Held::take(&lock_path(host));
    std::thread::scope(|s| {
        let client = s.spawn(|| host.apctl(args));
        host.wait_for("apd to wait for the s390 AP configuration lock", || {
            apd_waits_for_lock(host)
        });
        foreign();
        drop(held);
        client.join().expect("the apctl thread")
    })
}

#[test]
fn a_foreign_holder_of_the_lock_is_waited_for_and_its_writes_are_kept() {
    let Some(host) = fuse_host() else { return };

    // Masks: apd's relative change must apply to the masks as the foreign
    // holder left them, not to what apd read before it got the lock.
    let out = behind_the_lock(&host, &["masks", "--apmask", "-5"], || {
        host.write("bus/ap/apmask", "-7\n")
            .expect("the foreign mask write");
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!mask_bit(&host, "apmask", 5), "apd's change is made");
    assert!(
        !mask_bit(&host, "apmask", 7),
        "the foreign change is kept, not overwritten by apd's stale picture"
    );

    host.apctl_ok(&["masks", "--apmask", SEED_APMASK, "--aqmask", SEED_AQMASK]);
    host.apctl_ok(&["define", "--name", "guest1", "-a", "5,6", "-d", "4,0xab"]);
    host.apctl_ok(&["define", "--name", "guest2", "-a", "5", "-d", "0x47"]);
    host.apctl_ok(&["start", "guest1"]);
    host.apctl_ok(&["start", "guest2"]);
    let g1 = uuid_of(&host, "guest1");
    let g2 = uuid_of(&host, "guest2");

    // An assignment the foreign holder makes impossible meanwhile: apd's
    // verdict is on the host as it is once apd holds the lock, names the
    // mdev in the way, and changes nothing.
    let out = behind_the_lock(&host, &["assign", "guest2", "-d", "0xff"], || {
        host.write(
            &format!("devices/vfio_ap/matrix/{g1}/assign_domain"),
            "0xff\n",
        )
        .expect("the foreign assign");
    });
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("05.00ff") && err.contains(&format!("guest1 ({g1})")),
        "the refusal names the queue and who holds it: {err}"
    );
    let shown = list(&host);
    assert_eq!(shown["guest2"]["domains"], serde_json::json!([0x47]));
    assert_eq!(shown["guest2"]["persistent"], Value::Null, "{shown:?}");
    // The foreign domain is shown, the definition kept beside it.
    assert_eq!(
        shown["guest1"]["domains"],
        serde_json::json!([4, 0xab, 0xff])
    );
    assert_eq!(
        shown["guest1"]["persistent"]["domains"],
        serde_json::json!([4, 0xab])
    );
    let live = host.read(&format!("devices/vfio_ap/matrix/{g2}/matrix"));
    assert!(!live.contains("00ff"), "guest2 unchanged: {live}");

    // A start of an active mdev that the foreign holder changes meanwhile:
    // a success that writes nothing (a start never changes a running
    // mdev's assignment), decided on the mdev as apd reads it under the
    // lock, and with a stop after it, on that same read: the mdev goes
    // away as the foreign holder left it.
    let out = behind_the_lock(&host, &["start", "guest1"], || {
        foreign_assigns(&host, &g1, &[("unassign_domain", "0xff")]);
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{g1}/matrix")),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );
    assert_eq!(
        list(&host)["guest1"]["domains"],
        serde_json::json!([4, 0xab])
    );
    let out = behind_the_lock(&host, &["stop", "guest2"], || {
        foreign_assigns(&host, &g2, &[("assign_domain", "0xff")]);
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!host
        .sysfs()
        .join(format!("devices/vfio_ap/matrix/{g2}"))
        .exists());
    assert_eq!(list(&host)["guest2"]["active"], Value::Bool(false));
}

/// Another tool's writes to mdev `uuid`: `attr` `id` each, as `echo` does.
fn foreign_assigns(host: &Host, uuid: &str, assigns: &[(&str, &str)]) {
    for (attr, id) in assigns {
        host.write(
            &format!("devices/vfio_ap/matrix/{uuid}/{attr}"),
            &format!("{id}\n"),
        )
        .unwrap_or_else(|e| panic!("the foreign {attr} {id}: {e}"));
    }
}

/// Another tool creates mdev `uuid` with `assigns`; apd shows it.
fn foreign_mdev(host: &Host, uuid: &str, assigns: &[(&str, &str)]) {
    host.write(
        "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
        &format!("{uuid}\n"),
    )
    .expect("the foreign create");
    foreign_assigns(host, uuid, assigns);
    host.wait_for("apd to show the foreign mdev", || {
        list(host).values().any(|m| m["uuid"] == uuid)
    });
}

/// Another tool removes the mdev in the way (and unassigns a queue from
/// another) just before apd's change, whose uevents apd has not followed
/// yet when it decides: the kernel takes the change, so apd must too. It
/// reads the mdevs a refusal would name before it refuses. Here apd waits
/// for the lock while the other tool writes, so the uevents of the removal
/// are still queued when it decides (they wait for apd's writer).
#[test]
fn an_mdev_another_tool_just_removed_or_changed_is_not_in_the_way() {
    let Some(host) = fuse_host() else { return };
    host.apctl_ok(&["masks", "--apmask", SEED_APMASK, "--aqmask", SEED_AQMASK]);
    host.apctl_ok(&["define", "--name", "guest1", "-a", "5,6", "-d", "4,0xab"]);
    host.apctl_ok(&["define", "--name", "guest2", "-a", "5", "-d", "0x47"]);
    host.apctl_ok(&["start", "guest2"]);
    let g2 = uuid_of(&host, "guest2");

    // A foreign mdev holds guest1's queue 05.0004.
    let other = "0e5e1b1e-0000-4000-8000-000000000001";
    foreign_mdev(
        &host,
        other,
        &[("assign_adapter", "5"), ("assign_domain", "4")],
    );
    let out = host.apctl(&["start", "guest1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "refused while it is there: {}",
        describe(&out)
    );

    let out = behind_the_lock(&host, &["start", "guest1"], || {
        host.write(&format!("devices/vfio_ap/matrix/{other}/remove"), "1\n")
            .expect("the foreign remove");
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        host.read(&format!(
            "devices/vfio_ap/matrix/{}/matrix",
            uuid_of(&host, "guest1")
        ))
        .contains("05.0004"),
        "guest1 is started with its queues"
    );

    // The same for a live assign: a foreign mdev holds 05.00ab, and the
    // other tool unassigns the domain from it (no uevent at all) just
    // before guest2's assign.
    host.apctl_ok(&["stop", "guest1"]);
    foreign_mdev(
        &host,
        other,
        &[("assign_adapter", "5"), ("assign_domain", "0xab")],
    );
    let out = behind_the_lock(&host, &["assign", "guest2", "-d", "0xab", "--live"], || {
        host.write(
            &format!("devices/vfio_ap/matrix/{other}/unassign_domain"),
            "0xab\n",
        )
        .expect("the foreign unassign");
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let live = host.read(&format!("devices/vfio_ap/matrix/{g2}/matrix"));
    assert!(live.contains("05.00ab"), "guest2 has the domain: {live}");

    // And for the masks: adapter 6 goes back to the host once the foreign
    // mdev that held 06.0001 is gone (domain 1 is the host's, so the queue
    // would become the host's: EBUSY while an mdev holds it).
    foreign_assigns(
        &host,
        other,
        &[("assign_adapter", "6"), ("assign_domain", "1")],
    );
    let out = host.apctl(&["masks", "--apmask", "+6"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "refused while it holds 06.0001: {}",
        describe(&out)
    );
    let out = behind_the_lock(&host, &["masks", "--apmask", "+6"], || {
        host.write(&format!("devices/vfio_ap/matrix/{other}/remove"), "1\n")
            .expect("the foreign remove");
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        mask_bit(&host, "apmask", 6),
        "adapter 6 is the host's again"
    );
}

/// A start reads no mask before it writes (its writes do not depend on
/// them): its checks run on the model, and a refusal reads the masks
/// again before it is given, a write the kernel refuses after them. So
/// a mask another tool changed a moment ago (its uevent waits behind the
/// start) decides the start as the kernel decides it, either way.
#[test]
fn a_mask_another_tool_just_changed_decides_a_start_as_the_kernel_does() {
    let Some(host) = fuse_host() else { return };
    host.apctl_ok(&["masks", "--apmask", SEED_APMASK, "--aqmask", SEED_AQMASK]);
    // Queue 07.0010 is the host's: neither adapter 7 nor domain 0x10 is
    // given to vfio_ap.
    host.apctl_ok(&["define", "--name", "guest3", "-a", "7", "-d", "0x10"]);
    let out = host.apctl(&["start", "guest3"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "refused while 07.0010 is the host's: {}",
        describe(&out)
    );

    // The other tool gives domain 0x10 to vfio_ap while apd waits.
    let out = behind_the_lock(&host, &["start", "guest3"], || {
        host.write("bus/ap/aqmask", "-0x10\n")
            .expect("the foreign mask write");
    });
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let g3 = uuid_of(&host, "guest3");
    assert!(
        host.read(&format!("devices/vfio_ap/matrix/{g3}/matrix"))
            .contains("07.0010"),
        "guest3 is started with its queue"
    );

    // And takes it back while apd waits: the model still gives it to
    // vfio_ap, the kernel refuses the write, and the refusal names the
    // queue as the host's, with nothing left behind.
    host.apctl_ok(&["stop", "guest3"]);
    let out = behind_the_lock(&host, &["start", "guest3"], || {
        host.write("bus/ap/aqmask", "+0x10\n")
            .expect("the foreign mask write");
    });
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("07.0010") && said.contains("host"),
        "the refusal names the queue the host owns: {said}"
    );
    assert!(
        !host
            .sysfs()
            .join(format!("devices/vfio_ap/matrix/{g3}"))
            .exists(),
        "the mdev created before the refused write is removed again"
    );
    assert!(
        mask_bit(&host, "aqmask", 0x10),
        "the other tool's mask stays"
    );
}

fn uuid_of(host: &Host, name: &str) -> String {
    list(host)[name]["uuid"].as_str().expect("uuid").to_string()
}

/// `apctl --json list` by name.
fn list(host: &Host) -> BTreeMap<String, Value> {
    let v = host.apctl_json(&["list"]);
    v.as_array()
        .expect("an array")
        .iter()
        .map(|m| (m["name"].as_str().unwrap_or("").to_string(), m.clone()))
        .collect()
}

const GUESTS: [&str; 2] = ["guest1", "guest2"];
/// Control domains may be shared (kernel.md §5): nobody is refused, so
/// every call counts. apd's clients change these...
const OURS: [u32; 2] = [0x47, 0xab];
/// ...and the foreign writer these, with `echo`, half the time holding
/// the lock.
const THEIRS: [u32; 2] = [0x04, 0xff];
const ROUNDS: usize = 150;

#[test]
fn foreign_writers_racing_apds_clients_are_shown_and_never_overwritten() {
    let Some(host) = fuse_host() else { return };
    host.apctl_ok(&["masks", "--apmask", SEED_APMASK, "--aqmask", SEED_AQMASK]);
    for (name, a, d) in [("guest1", "5,6", "4,0xab"), ("guest2", "5", "0x47")] {
        host.apctl_ok(&["define", "--name", name, "-a", a, "-d", d]);
        host.apctl_ok(&["start", name]);
    }
    let uuids: Vec<String> = GUESTS.iter().map(|g| uuid_of(&host, g)).collect();

    // Two apctl clients, each owning one guest's control domains of OURS,
    // and one foreign writer owning THEIRS on both guests.
    let (ours, theirs) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..GUESTS.len())
            .map(|g| {
                let host = &host;
                s.spawn(move || {
                    let mut rng = Rng(0x5eed_0001 + g as u64);
                    let mut last = BTreeMap::new();
                    for _ in 0..ROUNDS {
                        let id = OURS[rng.below(OURS.len())];
                        let verb = ["assign", "unassign"][rng.below(2)];
                        let out = host.apctl(&[verb, GUESTS[g], "-c", &format!("{id:#x}")]);
                        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
                        last.insert((g, id), verb == "assign");
                    }
                    last
                })
            })
            .collect();
        let foreign = s.spawn(|| {
            let mut rng = Rng(0xf0e1_9a2b);
            let mut last = BTreeMap::new();
            for round in 0..ROUNDS * 2 {
                let g = rng.below(GUESTS.len());
                let id = THEIRS[rng.below(THEIRS.len())];
                // The last write assigns, so a difference remains to show.
                let assign = round + 1 == ROUNDS * 2 || rng.below(2) == 0;
                let verb = if assign { "assign" } else { "unassign" };
                let path = format!("devices/vfio_ap/matrix/{}/{verb}_control_domain", uuids[g]);
                let _held = (rng.below(2) == 0).then(|| Held::take_waiting(&lock_path(&host)));
                host.write(&path, &format!("{id:#x}\n"))
                    .unwrap_or_else(|e| panic!("echo {id:#x} > {path}: {e}"));
                last.insert((g, id), assign);
            }
            last
        });
        let mut ours = BTreeMap::new();
        for c in clients {
            ours.extend(c.join().expect("a client"));
        }
        (ours, foreign.join().expect("the foreign writer"))
    });

    let list = list(&host);
    for (g, name) in GUESTS.iter().enumerate() {
        let m = &list[*name];
        let live = m["control_domains"].as_array().expect("live ids").clone();
        let has = |id: u32| live.iter().any(|v| v.as_u64() == Some(u64::from(id)));
        let defined = m["persistent"]["control_domains"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| live.clone());
        let in_def = |id: u32| defined.iter().any(|v| v.as_u64() == Some(u64::from(id)));
        for id in OURS {
            let want = ours.get(&(g, id)).copied().unwrap_or(false);
            assert_eq!(
                has(id),
                want,
                "{name}: apd's client's last call for {id:#x}: {m}"
            );
            assert_eq!(in_def(id), want, "{name}: definition, {id:#x}: {m}");
        }
        for id in THEIRS {
            let want = theirs.get(&(g, id)).copied().unwrap_or(false);
            assert_eq!(
                has(id),
                want,
                "{name}: the foreign writer's last write of {id:#x} stands: {m}"
            );
            assert!(
                !in_def(id),
                "{name}: a foreign id never enters the definition: {m}"
            );
        }
        if THEIRS.iter().any(|id| has(*id)) {
            assert!(m["persistent"].is_object(), "the difference is shown: {m}");
        }
    }
    // And the files hold only what apd's clients asked for.
    for (g, name) in GUESTS.iter().enumerate() {
        let file = host
            .config_dir()
            .join("mdevs")
            .join(format!("{}.toml", uuids[g]));
        let text = fs::read_to_string(&file).expect("the definition file");
        let stored = control_domains_in(&text);
        let want: Vec<u32> = OURS
            .iter()
            .copied()
            .filter(|id| ours.get(&(g, *id)).copied().unwrap_or(false))
            .collect();
        assert_eq!(stored, want, "{name}: {text}");
    }
}

impl Held {
    /// Takes the lock, waiting while apd holds it.
    fn take_waiting(lock: &Path) -> Held {
        let tmp = lock.with_extension(format!("foreign{}", std::process::id()));
        fs::write(&tmp, format!("{}\n", std::process::id())).expect("write the pid file");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while fs::hard_link(&tmp, lock).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "apd kept the lock for a minute"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        fs::remove_file(&tmp).expect("remove the pid file");
        Held(lock.to_path_buf())
    }
}

/// The `control_domains = [...]` list of a definition file (ids decimal or
/// `0x` hex, on one line as apd writes it).
fn control_domains_in(text: &str) -> Vec<u32> {
    let line = text
        .lines()
        .find(|l| l.starts_with("control_domains"))
        .unwrap_or_else(|| panic!("no control_domains in {text}"));
    let list = line
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(inside, _)| inside)
        .unwrap_or_else(|| panic!("not a one-line list: {line}"));
    list.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => t.parse(),
        })
        .map(|r| r.unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

/// A start that waits for apd's writer while another tool makes its mdev
/// (empty, under the definition's UUID) finds it active when its turn
/// comes: apd creates an mdev the model has as inactive without a look
/// first, and the kernel's EEXIST is taken as "made meanwhile". Nothing is
/// written to it: the other tool's (empty) matrix stays.
#[test]
fn a_start_finds_the_mdev_another_tool_made_while_it_waited_active() {
    let Some(host) = fuse_host() else { return };
    host.apctl_ok(&["masks", "--apmask", SEED_APMASK, "--aqmask", SEED_AQMASK]);
    host.apctl_ok(&["define", "--name", "guest1", "-a", "5,6", "-d", "4,0xab"]);
    host.apctl_ok(&["define", "--name", "guest2", "-a", "5", "-d", "0x47,0xff"]);
    host.apctl_ok(&["start", "guest2"]);
    let (g1, g2) = (uuid_of(&host, "guest1"), uuid_of(&host, "guest2"));
    // guest2's next write is slow: apd holds its writer through it.
    let dir2 = format!("devices/vfio_ap/matrix/{g2}");
    for attr in ["ap_config", "unassign_domain"] {
        host.control("delay", &format!("{dir2}/{attr} 1500"));
    }
    let slow = host.apctl_spawn(&["unassign", "guest2", "-d", "0xff"]);
    std::thread::sleep(std::time::Duration::from_millis(400));
    // The start waits for the writer, ahead of apd's uevents.
    let start = host.apctl_spawn(&["start", "guest1"]);
    std::thread::sleep(std::time::Duration::from_millis(400));
    host.write(
        "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
        &g1,
    )
    .expect("another tool creates guest1's mdev");
    let slow = slow.wait_with_output().expect("unassign");
    assert!(slow.status.success(), "{}", describe(&slow));
    let start = start.wait_with_output().expect("start");
    assert!(start.status.success(), "{}", describe(&start));
    for attr in ["ap_config", "unassign_domain"] {
        host.control("delay", &format!("{dir2}/{attr} 0"));
    }
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{g1}/matrix")),
        "",
        "the start wrote to the other tool's mdev"
    );
    let guest1 = &list(&host)["guest1"];
    assert_eq!(guest1["active"], true, "{guest1}");
}
