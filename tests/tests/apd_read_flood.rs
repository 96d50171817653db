//! Issue 18's read floods: reading is open to every uid, so no read load
//! may grow apd without bound. On the big host (256 adapters x 256
//! domains, 65,536 queues, `apd --sim`) with 1,000 definitions, 250 of them
//! active, 100 clients call every read method at once (ListQueues,
//! ListMdevs, GetMdev, GetStatus, ListAdapters, Export, Check, the Host's
//! and an mdev's properties, introspection, GetManagedObjects), each on its
//! own connection, each method in a different order.
//!
//! Must hold: every call is answered, with its reply or with apd's Busy
//! sentence; apd's peak RSS (VmHWM, reset before the flood) stays under
//! [`PEAK_BOUND_MIB`]; afterwards its RSS returns near where it idled
//! before; an admin's `apctl start` during the flood succeeds (its latency
//! is printed, never asserted); apd keeps serving.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use e2e::{Host, HostOptions, Mode};

const BIG_HOST: &str = include_str!("../../apsim/examples/big.toml");
/// Concurrent clients, each on its own connection.
const CLIENTS: usize = 100;
/// Definitions; every fourth starts at boot.
const DEFINED: usize = 1000;
/// apd's documented peak under any read load (RELIABILITY.md, "Read floods").
const PEAK_BOUND_MIB: u64 = 64;
/// How far above its idle RSS apd may stay once the flood is over.
const SETTLE_SLACK_MIB: u64 = 12;

/// The admin's mdev: defined, not autostart, its one APQN free.
const ADMIN_MDEV: &str = "flood-0001";

fn uuid(i: usize) -> String {
    format!("f1000d00-0000-4000-8000-{i:012x}")
}

/// `DEFINED` one-APQN definitions on disjoint APQNs (adapter i % 256,
/// domain i / 256), every fourth autostart, and the persistent aqmask
/// that gives domains 0-3 to vfio_ap.
fn write_config(dir: &Path) {
    let mdevs = dir.join("mdevs");
    std::fs::create_dir_all(&mdevs).expect("mdevs directory");
    for i in 0..DEFINED {
        let text = format!(
            "uuid = \"{}\"\nname = \"flood-{i:04}\"\nautostart = {}\n\
             adapters = [{}]\ndomains = [{}]\ncontrol_domains = []\n",
            uuid(i),
            i % 4 == 0,
            i % 256,
            i / 256
        );
        std::fs::write(mdevs.join(format!("{}.toml", uuid(i))), text).expect("definition");
    }
    let aqmask = format!("0x0{}", "f".repeat(63));
    std::fs::write(dir.join("apd.toml"), format!("aqmask = \"{aqmask}\"\n")).expect("apd.toml");
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("apd's status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets VmHWM to the current RSS (Linux 4.0+); false when not allowed.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// One read call: (interface, member, object path or None for the root).
#[derive(Debug, Clone, Copy)]
enum Read {
    Manager(&'static str),
    GetMdev,
    HostProperties,
    HostAdapters,
    MdevProperties,
    MdevGuestMatrix,
    IntrospectRoot,
    IntrospectMdevs,
    ManagedObjects,
}

const READS: [Read; 14] = [
    Read::Manager("ListQueues"),
    Read::Manager("ListMdevs"),
    Read::GetMdev,
    Read::Manager("GetStatus"),
    Read::Manager("ListAdapters"),
    Read::Manager("Export"),
    Read::Manager("Check"),
    Read::HostProperties,
    Read::HostAdapters,
    Read::MdevProperties,
    Read::MdevGuestMatrix,
    Read::IntrospectRoot,
    Read::IntrospectMdevs,
    Read::ManagedObjects,
];

impl Read {
    fn label(self) -> String {
        match self {
            Read::Manager(m) => m.to_string(),
            other => format!("{other:?}"),
        }
    }
}

/// Calls `read` (about active mdev `mdev`); the reply's size in bytes.
async fn call(conn: &zbus::Connection, read: Read, mdev: &str) -> zbus::Result<usize> {
    const PROPS: &str = "org.freedesktop.DBus.Properties";
    let dest = Some(apbus::BUS_NAME);
    let root = apbus::ROOT_PATH;
    let mpath = apbus::mdev_path(mdev);
    let msg = match read {
        Read::Manager(m) => {
            conn.call_method(dest, root, Some(apbus::MANAGER_INTERFACE), m, &())
                .await?
        }
        Read::GetMdev => {
            conn.call_method(
                dest,
                root,
                Some(apbus::MANAGER_INTERFACE),
                "GetMdev",
                &(mdev,),
            )
            .await?
        }
        Read::HostProperties => {
            conn.call_method(dest, root, Some(PROPS), "GetAll", &(apbus::HOST_INTERFACE,))
                .await?
        }
        Read::HostAdapters => {
            conn.call_method(
                dest,
                root,
                Some(PROPS),
                "Get",
                &(apbus::HOST_INTERFACE, "Adapters"),
            )
            .await?
        }
        Read::MdevProperties => {
            conn.call_method(
                dest,
                mpath.as_str(),
                Some(PROPS),
                "GetAll",
                &(apbus::MDEV_INTERFACE,),
            )
            .await?
        }
        Read::MdevGuestMatrix => {
            conn.call_method(
                dest,
                mpath.as_str(),
                Some(PROPS),
                "Get",
                &(apbus::MDEV_INTERFACE, "GuestMatrix"),
            )
            .await?
        }
        Read::IntrospectRoot | Read::IntrospectMdevs => {
            let path = match read {
                Read::IntrospectRoot => root.to_string(),
                _ => format!("{root}/mdev"),
            };
            conn.call_method(
                dest,
                path.as_str(),
                Some("org.freedesktop.DBus.Introspectable"),
                "Introspect",
                &(),
            )
            .await?
        }
        Read::ManagedObjects => {
            conn.call_method(
                dest,
                root,
                Some("org.freedesktop.DBus.ObjectManager"),
                "GetManagedObjects",
                &(),
            )
            .await?
        }
    };
    Ok(msg.data().len())
}

/// `APD_FLOOD_READS=ListQueues,IntrospectRoot` floods with those reads
/// only (to see what one costs); all of them by default.
fn chosen(read: Read) -> bool {
    std::env::var("APD_FLOOD_READS")
        .map_or(true, |v| v.split(',').any(|r| r.trim() == read.label()))
}

/// What the clients saw, per read: answered, refused as Busy, bytes.
#[derive(Debug, Default)]
struct Tally {
    per_read: BTreeMap<String, (usize, usize, usize)>,
    busy_sentence: Option<String>,
    failures: Vec<String>,
}

impl Tally {
    fn note(&mut self, read: Read, r: zbus::Result<usize>) {
        let e = self.per_read.entry(read.label()).or_default();
        match r {
            Ok(bytes) => {
                e.0 += 1;
                e.2 += bytes;
            }
            Err(zbus::Error::MethodError(name, text, _))
                if name.as_str() == "org.apctl.Apd1.Error.Busy" =>
            {
                e.1 += 1;
                self.busy_sentence.get_or_insert(text.unwrap_or_default());
            }
            Err(other) => self.failures.push(format!("{}: {other}", read.label())),
        }
    }
}

/// The flood: every client calls every read once, client `i` starting at
/// read `i`, so all of them are asked for at each moment.
fn flood(host: &Host, done: &Arc<AtomicUsize>) -> Tally {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let address = host.bus_address().to_string();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..CLIENTS {
            let (address, tally, done) = (address.clone(), tally.clone(), done.clone());
            let mdev = uuid(4 * (i % (DEFINED / 4)));
            tasks.push(tokio::spawn(async move {
                let conn = zbus::connection::Builder::address(address.as_str())?
                    .build()
                    .await?;
                for k in 0..READS.len() {
                    let read = READS[(i + k) % READS.len()];
                    if !chosen(read) {
                        continue;
                    }
                    let r = call(&conn, read, &mdev).await;
                    tally.lock().expect("tally").note(read, r);
                    done.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<_, zbus::Error>(())
            }));
        }
        for t in tasks {
            t.await
                .expect("a client task")
                .expect("a client's connection");
        }
    });
    let tally = std::mem::take(&mut *tally.lock().expect("tally"));
    tally
}

/// One call of every read, so apd's first-use allocations are made
/// before its idle RSS is taken.
fn warm_up(host: &Host) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let warm = rt
        .block_on(async {
            let conn = zbus::connection::Builder::address(host.bus_address())?
                .build()
                .await?;
            let mut t = Tally::default();
            for read in READS {
                t.note(read, call(&conn, read, &uuid(0)).await);
            }
            Ok::<_, zbus::Error>(t)
        })
        .expect("warm-up");
    assert!(warm.failures.is_empty(), "{:?}", warm.failures);
}

/// The admin's start and stop during the flood, with their latencies.
struct Admin {
    start: std::process::Output,
    start_latency: std::time::Duration,
    answered_before: usize,
    stop: std::process::Output,
    stop_latency: std::time::Duration,
}

/// Starts and stops [`ADMIN_MDEV`] once the flood is under way.
fn admin(host: &Host, done: &AtomicUsize) -> Admin {
    host.wait_for("the flood to start", || {
        done.load(Ordering::SeqCst) >= CLIENTS
    });
    let t = Instant::now();
    let start = host.apctl(&["start", ADMIN_MDEV]);
    let start_latency = t.elapsed();
    let answered_before = done.load(Ordering::SeqCst);
    let t = Instant::now();
    let stop = host.apctl(&["stop", ADMIN_MDEV]);
    Admin {
        start,
        start_latency,
        answered_before,
        stop,
        stop_latency: t.elapsed(),
    }
}

/// apd's RSS once it is at most `settle` KiB, or when the liveness bound
/// passes (a hang bound, not a speed verdict).
fn settled_rss(apd: u32, settle: u64) -> u64 {
    let deadline = Instant::now() + e2e::liveness_timeout();
    let mut rss = memory_kib(apd).0;
    while rss > settle && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        rss = memory_kib(apd).0;
    }
    rss
}

fn print_tally(tally: &Tally) {
    for (read, (ok, busy, bytes)) in &tally.per_read {
        eprintln!("e2e:   {read}: {ok} answered ({bytes} bytes), {busy} busy");
    }
    if let Some(s) = &tally.busy_sentence {
        eprintln!("e2e:   Busy: {s}");
    }
}

fn assert_answered(tally: &Tally, admin: &Admin) {
    assert!(tally.failures.is_empty(), "{:#?}", tally.failures);
    assert_eq!(
        tally.per_read.values().map(|v| v.0 + v.1).sum::<usize>(),
        CLIENTS * READS.iter().filter(|r| chosen(**r)).count()
    );
    for (read, (ok, _, _)) in &tally.per_read {
        assert!(*ok > 0, "no {read} call was answered during the flood");
    }
    for (what, out) in [("start", &admin.start), ("stop", &admin.stop)] {
        assert!(
            out.status.success(),
            "the admin's {what} failed during the flood: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_read_flood_keeps_apd_bounded_and_changes_still_run() {
    let cfg = tempfile::tempdir().expect("a config dir");
    write_config(cfg.path());
    let mut host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        config_dir: Some(cfg.path().to_path_buf()),
        ..HostOptions::new(BIG_HOST)
    });
    let apd = *host.pids().last().expect("apd's pid");
    let list = host.apctl_json(&["list"]);
    let mdevs = list.as_array().expect("list");
    assert_eq!(mdevs.len(), DEFINED);
    let active = mdevs.iter().filter(|m| m["active"] == true).count();
    assert_eq!(active, DEFINED / 4, "the autostart mdevs run");

    warm_up(&host);
    let (idle, _) = memory_kib(apd);
    let peak_reset = reset_peak(apd);
    let done = Arc::new(AtomicUsize::new(0));
    let stop = AtomicBool::new(false);
    let max_rss = AtomicU64::new(0);
    let started = Instant::now();
    let (tally, admin) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                max_rss.fetch_max(memory_kib(apd).0, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        });
        let admin = s.spawn(|| admin(&host, &done));
        let tally = flood(&host, &done);
        let admin = admin.join().expect("the admin");
        stop.store(true, Ordering::SeqCst);
        sampler.join().expect("the sampler");
        (tally, admin)
    });
    let flood_time = started.elapsed();
    let sampled = max_rss.load(Ordering::SeqCst);
    let peak = if peak_reset {
        memory_kib(apd).1
    } else {
        sampled
    };
    let settle = idle + SETTLE_SLACK_MIB * 1024;
    let after = settled_rss(apd, settle);

    eprintln!(
        "e2e: read flood: {CLIENTS} clients x {} reads in {flood_time:.1?}; apd RSS idle {idle} KiB, \
         peak {peak} KiB (VmHWM reset: {peak_reset}; sampled {sampled} KiB), after {after} KiB; \
         admin `apctl start` {:.1?} (after {} reads had been answered), `apctl stop` {:.1?}",
        READS.len(),
        admin.start_latency,
        admin.answered_before,
        admin.stop_latency
    );
    print_tally(&tally);
    assert_answered(&tally, &admin);
    assert!(
        peak <= PEAK_BOUND_MIB * 1024,
        "apd's peak RSS was {peak} KiB under the flood (bound {PEAK_BOUND_MIB} MiB, idle {idle} KiB)"
    );
    assert!(
        after <= settle,
        "apd kept {after} KiB after the flood (idle {idle} KiB, slack {SETTLE_SLACK_MIB} MiB)"
    );
    assert!(host.apd_running(), "apd exited under the flood");
    let list = host.apctl_json(&["list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(DEFINED));
}

/// A client that sends `calls` and never reads its socket: D-Bus's
/// EXTERNAL handshake by hand, `Hello`, then the calls, raw.
fn never_reading_client(address: &str, calls: &[zbus::Message]) -> std::os::unix::net::UnixStream {
    use std::io::{Read, Write};
    let path = address
        .strip_prefix("unix:path=")
        .and_then(|p| p.split(',').next())
        .expect("a unix:path= bus address");
    let mut s = std::os::unix::net::UnixStream::connect(path).expect("connect to the bus");
    let uid: String = nix::unistd::getuid()
        .as_raw()
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    s.write_all(format!("\0AUTH EXTERNAL {uid}\r\n").as_bytes())
        .expect("AUTH");
    let mut ok = [0u8; 128];
    let n = s.read(&mut ok).expect("the bus's answer");
    assert!(
        ok[..n].starts_with(b"OK "),
        "{:?}",
        String::from_utf8_lossy(&ok[..n])
    );
    s.write_all(b"BEGIN\r\n").expect("BEGIN");
    let hello = zbus::Message::method_call("/org/freedesktop/DBus", "Hello")
        .and_then(|b| b.destination("org.freedesktop.DBus"))
        .and_then(|b| b.interface("org.freedesktop.DBus"))
        .and_then(|b| b.build(&()))
        .expect("Hello");
    s.write_all(hello.data()).expect("Hello sent");
    for c in calls {
        s.write_all(c.data()).expect("a call sent");
    }
    s
}

/// As the Cockpit page does: one connection asks for 100 active mdevs at
/// once (dbus-daemon allows 128 calls waiting per connection). Small
/// replies wait their turn; none may be refused.
fn every_active_mdev_at_once(host: &Host) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let refused: Vec<String> = rt.block_on(async {
        let conn = zbus::connection::Builder::address(host.bus_address())
            .expect("address")
            .build()
            .await
            .expect("connect");
        let calls: Vec<_> = (0..100)
            .map(|i| {
                let conn = conn.clone();
                tokio::spawn(async move { call(&conn, Read::GetMdev, &uuid(4 * i)).await })
            })
            .collect();
        let mut refused = Vec::new();
        for c in calls {
            if let Err(e) = c.await.expect("a GetMdev task") {
                refused.push(e.to_string());
            }
        }
        refused
    });
    assert!(
        refused.is_empty(),
        "{} refused: {:?}",
        refused.len(),
        refused.first()
    );
}

#[test]
fn clients_that_never_read_their_replies_cost_apd_nothing_lasting() {
    let cfg = tempfile::tempdir().expect("a config dir");
    write_config(cfg.path());
    let mut host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        config_dir: Some(cfg.path().to_path_buf()),
        ..HostOptions::new(BIG_HOST)
    });
    let apd = *host.pids().last().expect("apd's pid");
    warm_up(&host);
    every_active_mdev_at_once(&host);
    let (idle, _) = memory_kib(apd);
    let peak_reset = reset_peak(apd);
    let calls: Vec<zbus::Message> = (0..50)
        .map(|_| {
            zbus::Message::method_call(apbus::ROOT_PATH, "ListQueues")
                .and_then(|b| b.destination(apbus::BUS_NAME))
                .and_then(|b| b.interface(apbus::MANAGER_INTERFACE))
                .and_then(|b| b.build(&()))
                .expect("ListQueues")
        })
        .collect();
    // Ten of them, 50 calls each (6 MB a reply), none reading. The bus
    // daemon keeps what apd answers them, and stops reading apd once
    // 127 MB of its messages wait (dbus-daemon's max_incoming_bytes): apd
    // refuses large replies while the daemon holds 48 MiB of its.
    let sockets: Vec<_> = (0..10)
        .map(|_| never_reading_client(host.bus_address(), &calls))
        .collect();
    // Once the daemon holds enough of apd's unread replies, a large read
    // is refused with a sentence that says why ...
    let mut refusal = String::new();
    host.wait_for("a large read refused for the unread replies", || {
        let out = host.apctl(&["queues"]);
        refusal = String::from_utf8_lossy(&out.stderr).into_owned();
        out.status.code() == Some(1) && refusal.contains("have not read")
    });
    // ... while apd answers everything else, changes included.
    let status = host.apctl_json(&["status"]);
    assert!(status.is_object(), "{status}");
    host.apctl_ok(&["start", ADMIN_MDEV]);
    host.apctl_ok(&["stop", ADMIN_MDEV]);
    drop(sockets);
    // The daemon drops what the silent clients left: large reads again.
    host.wait_for("a large read answered again", || {
        host.apctl(&["--json", "queues"]).status.success()
    });
    eprintln!("e2e: {}", refusal.trim());
    let after = settled_rss(apd, idle + SETTLE_SLACK_MIB * 1024);
    let peak = memory_kib(apd).1;
    eprintln!(
        "e2e: 10 clients x 50 ListQueues never read: apd RSS idle {idle} KiB, peak {peak} KiB \
         (VmHWM reset: {peak_reset}), after {after} KiB"
    );
    if peak_reset {
        assert!(
            peak <= PEAK_BOUND_MIB * 1024,
            "apd's peak RSS was {peak} KiB (bound {PEAK_BOUND_MIB} MiB)"
        );
    }
    assert!(
        after <= idle + SETTLE_SLACK_MIB * 1024,
        "apd kept {after} KiB"
    );
    assert!(host.apd_running(), "apd exited");
}
