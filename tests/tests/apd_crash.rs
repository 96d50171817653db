//! kill -9 of apd in the middle of its changes, at seeded points, over a
//! FUSE-mounted simulator (the kernel survives apd's death only there).
//!
//! Commands: define, undefine, start, stop, assign and unassign (live,
//! persistent, both), masks (live, and with --persistent) and apply are
//! each run with every attribute they write slowed down (`.apsim/delay`);
//! apd is killed once the seeded number of writes is visible in sysfs (0:
//! at a seeded moment right after the command was sent, where only files
//! may have changed), then started again on the same configuration and
//! mount. Afterwards the
//! masks, every mdev's assignment and every file of the configuration
//! directory are exactly as before the command, or exactly as the command
//! makes them (no half-assigned mdev, no temporary file, every definition
//! parses), and the intent journal is gone.
//!
//! Boot restore: 256 autostart mdevs; the kernel reboots and apd is killed
//! again and again while it restores them; the last start must converge to
//! exactly the definitions.
//!
//! `APD_CRASH_SEED` reproduces a run; `APD_CRASH_POINTS` and
//! `APD_CRASH_RESTORE_POINTS` lengthen it (RELIABILITY.md has the long run).

mod apd_crash_support;

use std::process::Child;
use std::thread;
use std::time::Duration;

use apd_crash_support::*;
use e2e::{describe, fuse_available, Host, HostOptions};

const G1: &str = "11111111-0000-4000-8000-000000000001";
const G2: &str = "11111111-0000-4000-8000-000000000002";
const G3: &str = "11111111-0000-4000-8000-000000000003";
const G4: &str = "11111111-0000-4000-8000-000000000004";
const G5: &str = "11111111-0000-4000-8000-000000000005";

/// How long each slowed write sleeps before the kernel takes it.
const SLOW_MS: u64 = 40;

fn fuse_host() -> Option<Host> {
    if !fuse_available() {
        eprintln!("skipped: FUSE is not available here (/dev/fuse, root or fusermount3)");
        return None;
    }
    Some(Host::start_with(HostOptions::new(&crash_topology())))
}

/// A command, what undoes it, and the mdevs whose attributes it writes.
struct Command {
    args: Vec<String>,
    inverse: Vec<Vec<String>>,
    mdevs: Vec<&'static str>,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn command(args: &str, inverse: &[&str], mdevs: &[&'static str]) -> Command {
    Command {
        args: words(args),
        inverse: inverse.iter().map(|i| words(i)).collect(),
        mdevs: mdevs.to_vec(),
    }
}

const G1_DEFINE: &str =
    "define --uuid 11111111-0000-4000-8000-000000000001 --name g1 --manual -a 0,1 -d 0,1,2 -c 0";

/// The commands, each from the base state and back to it.
fn commands(apply_file: &str, base_file: &str) -> Vec<Command> {
    let masks_then = format!(
        "masks --apmask 0x0001{} --aqmask 0x00000001{} --persistent",
        &APMASK[6..],
        &AQMASK[10..]
    );
    let masks_back = format!("masks --apmask {APMASK} --aqmask {AQMASK} --persistent");
    vec![
        command("start g1", &["stop g1"], &[G1]),
        command("stop g3", &["start g3"], &[G3]),
        command(
            "assign g2 -d 5,6,7 -c 2",
            &["unassign g2 -d 5,6,7 -c 2"],
            &[G2],
        ),
        command("unassign g2 -a 3 -d 1", &["assign g2 -a 3 -d 1"], &[G2]),
        command("assign g2 -d 8 --live", &["unassign g2 -d 8 --live"], &[G2]),
        command(&masks_then, &[&masks_back], &[]),
        command(
            &format!("masks --aqmask 0x00000003{}", &AQMASK[10..]),
            &[&format!("masks --aqmask {AQMASK}")],
            &[],
        ),
        command(
            "assign g1 -d 3 --persistent",
            &["unassign g1 -d 3 --persistent"],
            &[],
        ),
        command(
            &format!("define --uuid {G4} --name g4 --manual -a 9 -d 9"),
            &["undefine g4"],
            &[],
        ),
        command("undefine g1", &[G1_DEFINE], &[]),
        command(
            &format!("apply {apply_file}"),
            &[&format!("apply --prune {base_file}")],
            &[G2, G5],
        ),
    ]
}

/// g1 defined (manual), g2 (autostart) and g3 (manual) running, the masks
/// stored; the apply file adds g5 (autostart) and a domain to g2.
fn setup(host: &Host) -> (String, String) {
    host.apctl_ok(&[
        "masks",
        "--apmask",
        APMASK,
        "--aqmask",
        AQMASK,
        "--persistent",
    ]);
    host.apctl_ok(
        &words(G1_DEFINE)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    host.apctl_ok(&[
        "define", "--uuid", G2, "--name", "g2", "--auto", "-a", "2,3", "-d", "0,1", "-c", "1",
    ]);
    host.apctl_ok(&[
        "define", "--uuid", G3, "--name", "g3", "--manual", "-a", "4", "-d", "4,5",
    ]);
    host.apctl_ok(&["start", "g2"]);
    host.apctl_ok(&["start", "g3"]);
    let base = host.dir().join("base.toml");
    std::fs::write(&base, host.apctl_ok(&["export"])).expect("write base.toml");
    let file = host.dir().join("apply.toml");
    let text = host.apctl_ok(&["export"]).replace("domains = [0, 1]", "domains = [0, 1, 10]")
        + &format!(
            "\n[[mdev]]\nuuid = \"{G5}\"\nname = \"g5\"\nautostart = true\nadapters = [6, 7]\ndomains = [6, 7]\ncontrol_domains = [3]\n"
        );
    assert!(
        text.contains("domains = [0, 1, 10]"),
        "g2 in the export: {text}"
    );
    std::fs::write(&file, text).expect("write apply.toml");
    (file.display().to_string(), base.display().to_string())
}

fn run(host: &Host, args: &[String]) {
    host.apctl_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Every attribute the command may write, slowed down (or back to normal).
fn slow(host: &Host, c: &Command, ms: u64) {
    let mut paths = vec![
        "bus/ap/apmask".to_string(),
        "bus/ap/aqmask".to_string(),
        CREATE.to_string(),
    ];
    for uuid in &c.mdevs {
        for attr in [
            "assign_adapter",
            "assign_domain",
            "assign_control_domain",
            "unassign_adapter",
            "unassign_domain",
            "unassign_control_domain",
            "remove",
        ] {
            paths.push(format!("devices/vfio_ap/matrix/{uuid}/{attr}"));
        }
    }
    for p in paths {
        host.control("delay", &format!("{p} {ms}"));
    }
}

/// Kills apd once `k` writes of the running command are visible (k = 0:
/// after a seeded moment of up to SLOW_MS), or when the command has ended.
fn kill_at(host: &mut Host, client: &mut Child, before: &State, k: u64, rng: &mut Rng) {
    if k == 0 {
        thread::sleep(Duration::from_millis(rng.below(SLOW_MS)));
    } else {
        host.wait_for("the command's writes", || {
            writes_between(before, &live_state(host)) >= k
                || client.try_wait().ok().flatten().is_some()
        });
    }
    host.kill_apd();
}

/// The sysfs part of the state (the files are not read while apd writes).
fn live_state(host: &Host) -> State {
    State {
        files: Default::default(),
        ..state(host)
    }
}

#[test]
fn kill_9_in_the_middle_of_a_command_leaves_it_undone_or_done() {
    let Some(mut host) = fuse_host() else { return };
    let mut rng = Rng::from_env("APD_CRASH_SEED", "apd_crash commands");
    let total = points("APD_CRASH_POINTS", 80);
    let (apply_file, base_file) = setup(&host);
    let cmds = commands(&apply_file, &base_file);
    // Each command run whole once: where it leads, how many writes.
    let base = state(&host);
    let mut targets = Vec::new();
    for c in &cmds {
        run(&host, &c.args);
        let done = state(&host);
        let writes = writes_between(&base, &done);
        for i in &c.inverse {
            run(&host, i);
        }
        let back = state(&host);
        assert!(
            back == base,
            "`{}` then its inverse: {:#?}",
            c.args.join(" "),
            differences(&base, &back)
        );
        targets.push((done, writes));
    }
    let (mut undone, mut done) = (0, 0);
    for point in 0..total {
        let i = usize::try_from(rng.below(cmds.len() as u64)).unwrap_or(0);
        let (c, (after, writes)) = (&cmds[i], &targets[i]);
        let k = rng.below(writes + 1);
        let what = format!(
            "point {point}: `{}` killed at write {k} of {writes}",
            c.args.join(" ")
        );
        slow(&host, c, SLOW_MS);
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let mut client = host.apctl_spawn(&args);
        kill_at(&mut host, &mut client, &base, k, &mut rng);
        let out = client.wait_with_output().expect("apctl ends when apd dies");
        slow(&host, c, 0);
        host.start_apd();
        assert_journal_empty(&host, &what);
        let now = state(&host);
        if now == base {
            undone += 1;
        } else if now == *after {
            done += 1;
            for inv in &c.inverse {
                run(&host, inv);
            }
            assert!(
                state(&host) == base,
                "{what}: its inverse did not lead back"
            );
        } else {
            panic!(
                "{what}: neither as before nor as the command makes it:\nfrom before: {:#?}\nfrom done: {:#?}\napctl: {}\napd log:\n{}",
                differences(&base, &now),
                differences(after, &now),
                describe(&out),
                e2e::tail(&host.apd_log(), 60)
            );
        }
    }
    let interrupted = host
        .apd_log()
        .matches("apd was stopped in the middle of a change")
        .count();
    eprintln!(
        "e2e apd_crash commands: {total} kill points, {undone} undone, {done} found done; \
         {interrupted} undone from the intent journal"
    );
    // Most kills land inside a change: a run where none did tested nothing.
    assert!(
        total < 20 || interrupted > 0,
        "no kill landed inside a change"
    );
}

/// The i-th of the restore's mdevs: one APQN each (adapter i % 16, domain
/// i / 16) and control domain 16 + i / 16.
fn restore_mdev(i: usize) -> String {
    format!(
        "[[mdev]]\nuuid = \"22222222-0000-4000-8000-{i:012x}\"\nname = \"r{i:03}\"\nautostart = true\nadapters = [{}]\ndomains = [{}]\ncontrol_domains = [{}]\n",
        i % 16,
        i / 16,
        16 + i / 16
    )
}

#[test]
fn kill_9_during_a_boot_restore_of_256_mdevs_converges() {
    let Some(mut host) = fuse_host() else { return };
    let mut rng = Rng::from_env("APD_CRASH_SEED", "apd_crash restore");
    let total = points("APD_CRASH_RESTORE_POINTS", 20);
    let mdevs = 256;
    let file = host.dir().join("restore.toml");
    let mut text = format!("[masks]\napmask = \"{APMASK}\"\naqmask = \"{AQMASK}\"\n");
    for i in 0..mdevs {
        text.push_str(&restore_mdev(i));
    }
    std::fs::write(&file, text).expect("write restore.toml");
    host.apctl_ok(&["apply", &file.display().to_string()]);
    let want = state(&host);
    assert_eq!(want.mdevs.len(), mdevs);
    let (mut kills, mut reboots) = (0, 0);
    while kills < total {
        reboots += 1;
        host.stop_apd();
        host.restart_apsim();
        host.spawn_apd();
        // Now and then a kill early in the start: before the restore or
        // while the persistent masks are written.
        if rng.below(3) == 0 {
            thread::sleep(Duration::from_millis(rng.below(800)));
            host.kill_apd();
            kills += 1;
            host.spawn_apd();
        }
        // A few kills per boot, each at a seeded count of mdevs created.
        let mut at = 0;
        for _ in 0..3 {
            at += 1 + rng.below(mdevs as u64 / 3);
            if at >= mdevs as u64 || kills >= total {
                break;
            }
            host.wait_for("the restore's progress", || {
                mdev_uuids(&host).len() as u64 >= at
            });
            thread::sleep(Duration::from_millis(rng.below(5)));
            host.kill_apd();
            kills += 1;
            host.spawn_apd();
        }
        host.wait_apd_ready();
        assert_journal_empty(&host, "after the restore");
        let now = state(&host);
        assert!(
            now == want,
            "reboot {reboots}: the restore did not converge to the definitions: {:#?}\napd log:\n{}",
            differences(&want, &now),
            e2e::tail(&host.apd_log(), 40)
        );
    }
    let interrupted = host
        .apd_log()
        .matches("apd was stopped in the middle of a change")
        .count();
    eprintln!(
        "e2e apd_crash restore: {kills} kill points over {reboots} reboots of {mdevs} autostart mdevs; \
         {interrupted} landed inside a change and were undone at the next start"
    );
    assert!(
        total < 10 || interrupted > 0,
        "no kill landed inside a change"
    );
}
