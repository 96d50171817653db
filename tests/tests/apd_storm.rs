//! A uevent storm while clients operate: more than 10,000 kernel events
//! (adapters configured off and on, domains leaving and joining the LPAR,
//! so queues are removed and added) from the simulator mounted over FUSE,
//! while clients list, show and start and stop a guest. apd must keep
//! answering, end consistent with the simulator (every queue and its
//! config state as sysfs shows them), keep its autostart guest running
//! with its whole matrix, and hold its memory: RSS before and after are
//! printed, and after the storm it stays within a generous bound of where
//! it started.

mod apctl_support;

use apctl_support::*;
use e2e::Host;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
/// Config writes on adapters 1-4 and LPAR domain changes, in rounds; each
/// config write is one card event and five queue events, each domain
/// change a remove or add of seven queues (plus their bind/unbind).
const ROUNDS: usize = 650;

/// Sets both flags when dropped, also while unwinding.
struct StopAll<'a>(&'a AtomicBool, &'a AtomicBool);

impl Drop for StopAll<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
        self.1.store(true, Ordering::SeqCst);
    }
}

/// Counts the uevents the simulator sends from now on, until `stop`.
fn count_uevents(host: &Host, connected: &std::sync::Barrier, stop: &AtomicBool) -> usize {
    use nix::sys::socket::{
        connect, recv, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockType,
        UnixAddr,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    connect(
        fd.as_raw_fd(),
        &UnixAddr::new(host.uevent_socket()).expect("address"),
    )
    .expect("connect to the uevent socket");
    connected.wait();
    setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, 200_000),
    )
    .expect("timeout");
    let mut buf = vec![0u8; 8192];
    let mut n = 0;
    loop {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return n,
            Ok(_) => n += 1,
            Err(_) if stop.load(Ordering::SeqCst) => return n,
            Err(_) => {}
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("apd's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// APQN → config, as the simulator's sysfs shows it.
fn sysfs_queues(host: &Host) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for card in std::fs::read_dir(host.sysfs().join("devices/ap")).expect("devices/ap") {
        let card = card.expect("entry").path();
        let name = card.file_name().map(|n| n.to_string_lossy().into_owned());
        if !name.as_deref().is_some_and(|n| n.starts_with("card")) {
            continue;
        }
        for q in std::fs::read_dir(&card).expect("card dir").flatten() {
            let qn = q.file_name().to_string_lossy().into_owned();
            if qn.len() == 7 && qn.as_bytes()[2] == b'.' {
                let config = std::fs::read_to_string(q.path().join("config")).expect("config");
                out.insert(qn, config.trim() == "1");
            }
        }
    }
    out
}

/// APQN → config, as apd serves it.
fn apd_queues(host: &Host) -> BTreeMap<String, bool> {
    let v = host.apctl_json(&["queues"]);
    v.as_array()
        .expect("queues array")
        .iter()
        .map(|q| {
            (
                q["apqn"].as_str().expect("apqn").to_string(),
                q["config"].as_bool().expect("config"),
            )
        })
        .collect()
}

#[test]
fn a_uevent_storm_while_clients_operate_ends_consistent_and_bounded() {
    let Some(host) = seed_host() else { return };
    host.apctl_ok(&[
        "masks",
        "--apmask",
        "-5,-6",
        "--aqmask",
        "-4,-0x47,-0xab,-0xff",
    ]);
    host.apctl_ok(&[
        "define", "--uuid", G1, "--name", "guest1", "--auto", "-a", "5,6", "-d", "4,0xab",
    ]);
    host.apctl_ok(&[
        "define", "--name", "guest2", "--manual", "-a", "5", "-d", "0x47",
    ]);
    host.apctl_ok(&["start", "guest1"]);
    let apd = *host.pids().last().expect("apd's pid");
    let before = rss_kib(apd);
    let stop = AtomicBool::new(false);
    let counted = AtomicBool::new(false);
    let connected = std::sync::Barrier::new(2);
    let (client_calls, sent) = std::thread::scope(|s| {
        // Whatever panics, every thread is told to stop before the scope
        // joins them.
        let _stop_all = StopAll(&stop, &counted);
        let counter = {
            let (host, counted, connected) = (&host, &counted, &connected);
            s.spawn(move || count_uevents(host, connected, counted))
        };
        // The storm starts once the counter hears everything.
        connected.wait();
        let clients: Vec<_> = (0..3)
            .map(|i| {
                let (host, stop) = (&host, &stop);
                s.spawn(move || {
                    let mut n = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        match i {
                            0 => {
                                host.apctl_json(&["list"]);
                            }
                            1 => {
                                host.apctl_ok(&["show", "guest1"]);
                            }
                            _ => {
                                // guest2 is refused while a domain it holds
                                // is out of the LPAR; both answers are fine.
                                let out = host.apctl(&["start", "guest2"]);
                                assert!(matches!(out.status.code(), Some(0 | 1)));
                                let out = host.apctl(&["stop", "guest2"]);
                                assert!(matches!(out.status.code(), Some(0 | 1)));
                            }
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        for round in 0..ROUNDS {
            let card = format!("devices/ap/card0{}/config", round % 4 + 1);
            host.write(&card, "0\n").expect("config off");
            host.write(&card, "1\n").expect("config on");
            if round % 5 == 0 {
                host.control("lpar", "remove domain 0");
                host.control("lpar", "add domain 0");
            }
        }
        // Stop everyone before joining anyone: a client that panicked must
        // not leave the counter waiting (the scope joins every thread).
        stop.store(true, Ordering::SeqCst);
        counted.store(true, Ordering::SeqCst);
        let sent = counter.join().expect("the uevent counter");
        let calls = clients
            .into_iter()
            .map(|c| c.join().expect("a client panicked"))
            .sum::<usize>();
        (calls, sent)
    });
    assert!(sent > 10_000, "the storm sent only {sent} uevents");

    // apd ends where the simulator is.
    host.wait_for("apd's queues to match sysfs", || {
        apd_queues(&host) == sysfs_queues(&host)
    });
    let list = host.apctl_json(&["list"]);
    let g1: &Value = list
        .as_array()
        .expect("list")
        .iter()
        .find(|m| m["name"] == "guest1")
        .expect("guest1 listed");
    assert_eq!(g1["active"], true, "{g1}");
    assert_eq!(
        host.read(&format!("devices/vfio_ap/matrix/{G1}/matrix")),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );
    let after = rss_kib(apd);
    eprintln!(
        "e2e: {sent} uevents, {client_calls} client calls meanwhile; apd RSS {before} KiB before, {after} KiB after"
    );
    assert!(
        after <= before * 2 + 16 * 1024,
        "apd grew from {before} KiB to {after} KiB over the storm"
    );
}
