//! Concurrent clients never lose an update: 8 clients x 500 mixed
//! operations (assign, unassign, start, stop) on overlapping APQNs of four
//! mdevs, half of them `apctl` processes and half raw D-Bus callers, against
//! one apd. Each (mdev, kind, id) is changed by one client only, so the
//! last acknowledged assign or unassign of that client decides whether the
//! id is in the definition at the end, whatever the others did meanwhile:
//! a lost acknowledged update, or a refused call that changed something,
//! shows as a wrong id. Afterwards every active mdev's live matrix equals
//! its definition and no APQN is held by two active mdevs.

mod apd_support;

use apbus::ErrorKind;
use apd_support::*;
use e2e::{describe, Host, HostOptions, Mode, Rng, SEED_HOST};
use std::collections::{BTreeMap, BTreeSet};

const CLIENTS: usize = 8;
const OPS_PER_CLIENT: usize = 500;
const MDEVS: [&str; 4] = ["c0", "c1", "c2", "c3"];
const ADAPTERS: [u32; 2] = [5, 6];
const DOMAINS: [u32; 4] = [4, 0x47, 0xab, 0xff];
/// Control domains may be shared (kernel.md §5): they exercise the
/// definitions without refusals.
const CONTROL: [u32; 2] = [0x47, 0xab];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Adapter,
    Domain,
    Control,
}

impl Kind {
    fn flag(self) -> &'static str {
        match self {
            Kind::Adapter => "-a",
            Kind::Domain => "-d",
            Kind::Control => "-c",
        }
    }

    fn ids(self, id: u32) -> apbus::IdLists {
        match self {
            Kind::Adapter => ids(&[id], &[], &[]),
            Kind::Domain => ids(&[], &[id], &[]),
            Kind::Control => ids(&[], &[], &[id]),
        }
    }

    fn of(self, l: &apbus::IdLists) -> &[u32] {
        match self {
            Kind::Adapter => &l.adapters,
            Kind::Domain => &l.domains,
            Kind::Control => &l.control_domains,
        }
    }
}

type Pair = (usize, Kind, u32);

fn pairs() -> Vec<Pair> {
    let mut v = Vec::new();
    for m in 0..MDEVS.len() {
        v.extend(ADAPTERS.iter().map(|&a| (m, Kind::Adapter, a)));
        v.extend(DOMAINS.iter().map(|&d| (m, Kind::Domain, d)));
        v.extend(CONTROL.iter().map(|&c| (m, Kind::Control, c)));
    }
    v
}

#[derive(Debug)]
enum Op {
    Assign(Pair),
    Unassign(Pair),
    Start(usize),
    Stop(usize),
}

/// What a client saw: per pair it owns, the last acknowledged change
/// (true = assigned); and how many calls were refused.
#[derive(Debug, Default)]
struct Outcome {
    last: BTreeMap<Pair, bool>,
    done: usize,
    refused: usize,
}

/// One call; Ok(true) acknowledged, Ok(false) refused with a sentence.
fn call(host: &Host, client: Option<&Client>, op: &Op) -> bool {
    let (verb, mdev, extra): (&str, usize, Option<(Kind, u32)>) = match op {
        Op::Assign((m, k, id)) => ("assign", *m, Some((*k, *id))),
        Op::Unassign((m, k, id)) => ("unassign", *m, Some((*k, *id))),
        Op::Start(m) => ("start", *m, None),
        Op::Stop(m) => ("stop", *m, None),
    };
    let name = MDEVS[mdev];
    match client {
        None => {
            let id = extra.map(|(_, id)| format!("{id:#x}"));
            let mut args = vec![verb, name];
            if let (Some((k, _)), Some(id)) = (extra, id.as_deref()) {
                args.extend([k.flag(), id]);
            }
            let out = host.apctl(&args);
            match out.status.code() {
                Some(0) => true,
                Some(1) => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(
                        err.starts_with("apctl: ") && err.trim_end().lines().count() == 1,
                        "a refusal is one sentence: {}",
                        describe(&out)
                    );
                    false
                }
                _ => panic!("apctl {}: {}", args.join(" "), describe(&out)),
            }
        }
        Some(c) => {
            let m = c.manager();
            let r = match (verb, extra) {
                ("assign", Some((k, id))) => c.run(m.assign(name, &k.ids(id), "")),
                ("unassign", Some((k, id))) => c.run(m.unassign(name, &k.ids(id), "")),
                ("start", _) => c.run(m.start(name)),
                _ => c.run(m.stop(name)),
            };
            match r {
                Ok(()) => true,
                Err(e) => {
                    assert!(
                        !matches!(e.kind(), ErrorKind::Failed | ErrorKind::AccessDenied)
                            && !e.sentence().is_empty()
                            && !e.sentence().contains('\n'),
                        "{verb} {name}: {:?}: {}",
                        e.kind(),
                        e.sentence()
                    );
                    false
                }
            }
        }
    }
}

fn run_client(host: &Host, index: usize, owned: &[Pair]) -> Outcome {
    let raw = (index % 2 == 1).then(|| Client::new(host));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((index as u64 + 1) * 0x1000_0001));
    let mut out = Outcome::default();
    for _ in 0..OPS_PER_CLIENT {
        let op = match rng.below(10) {
            0 | 1 => Op::Start(rng.below(MDEVS.len())),
            2 => Op::Stop(rng.below(MDEVS.len())),
            n => {
                let p = owned[rng.below(owned.len())];
                if n % 2 == 0 {
                    Op::Assign(p)
                } else {
                    Op::Unassign(p)
                }
            }
        };
        let acked = call(host, raw.as_ref(), &op);
        out.done += 1;
        if !acked {
            out.refused += 1;
            continue;
        }
        match op {
            Op::Assign(p) => {
                out.last.insert(p, true);
            }
            Op::Unassign(p) => {
                out.last.insert(p, false);
            }
            Op::Start(_) | Op::Stop(_) => {}
        }
    }
    out
}

#[test]
fn concurrent_clients_never_lose_an_acknowledged_update() {
    let host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        ..HostOptions::new(SEED_HOST)
    });
    host.apctl_ok(&["masks", "--apmask", SEED_APMASK, "--aqmask", SEED_AQMASK]);
    for name in MDEVS {
        host.apctl_ok(&["define", "--name", name, "--manual"]);
    }
    let all = pairs();
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let owned: Vec<Pair> = all
                    .iter()
                    .enumerate()
                    .filter(|(n, _)| n % CLIENTS == i)
                    .map(|(_, p)| *p)
                    .collect();
                let host = &host;
                s.spawn(move || run_client(host, i, &owned))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client panicked"))
            .collect()
    });
    let done: usize = outcomes.iter().map(|o| o.done).sum();
    let refused: usize = outcomes.iter().map(|o| o.refused).sum();
    assert_eq!(done, CLIENTS * OPS_PER_CLIENT);
    eprintln!("e2e: {done} calls, {refused} refused");

    let c = Client::new(&host);
    let mdevs = c.run(c.manager().list_mdevs()).expect("ListMdevs");
    let by_name: BTreeMap<&str, &apbus::MdevInfo> =
        mdevs.iter().map(|m| (m.name.as_str(), m)).collect();
    // No acknowledged update lost, no refused one applied.
    for o in &outcomes {
        for (&(m, kind, id), &assigned) in &o.last {
            let info = by_name[MDEVS[m]];
            let definition = if info.active {
                &info.persistent
            } else {
                &info.ids
            };
            assert_eq!(
                kind.of(definition).contains(&id),
                assigned,
                "{} {kind:?} {id:#x}: the last acknowledged change said {}",
                MDEVS[m],
                if assigned { "assigned" } else { "unassigned" }
            );
        }
    }
    // Live equals definition, and no APQN is held twice.
    let mut held: BTreeSet<(u32, u32)> = BTreeSet::new();
    for info in mdevs.iter().filter(|m| m.active) {
        assert!(
            !info.differs,
            "{}: live differs from its definition",
            info.name
        );
        assert_eq!(info.ids, info.persistent, "{}", info.name);
        for &a in &info.ids.adapters {
            for &d in &info.ids.domains {
                assert!(
                    held.insert((a, d)),
                    "APQN {a:02x}.{d:04x} is held twice (second: {})",
                    info.name
                );
            }
        }
    }
    // apd still answers, and the definitions on disk are what it serves.
    let export = host.apctl_ok(&["export"]);
    for name in MDEVS {
        assert!(export.contains(&format!("name = \"{name}\"")), "{export}");
    }
}
