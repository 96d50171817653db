//! The planner and `apply::execute` against the simulator (apsim, the
//! referee that shares no rules with libap): for random pairs of desired
//! states A and B on a small host, applying B from A either is refused by
//! libap before anything is written, or reaches B with no kernel refusal.
//! A kernel error injected in the middle of an apply leaves every sysfs file
//! and every definition file exactly as before; so does a writer killed
//! before or after any write of an apply, once the next one has recovered
//! its intent journal.

use apsim::{NodeKind, Sim, Topology};
use libap::apply::{execute, execute_journaled, ApplyCause, Journal, Known, Outcome, StepLog};
use libap::desired::{DesiredMasks, DesiredState, MaskForm, MdevSpec};
use libap::plan::{plan, Plan, Step};
use libap::store::Store;
use libap::sysfs::{SimSysfs, SysfsError};
use libap::validate::Severity;
use libap::Sysfs;
use libap::{ApMask, Definition, Host, Matrix};
use proptest::prelude::*;
use std::collections::BTreeMap;
use testkit::{diff, dir_snapshot};
use uuid::Uuid;

/// Adapters 0-3 × domains 0-3 in the LPAR; ids up to 7 are in range, so
/// 4-7 are over-provisioning.
const TOPOLOGY: &str = r#"
max_adapter_id = 7
max_domain_id = 7
usage_domains = [0, 1, 2, 3]
control_domains = [0, 1, 2, 3]
[[adapter]]
id = 0
type = "CEX7C"
[[adapter]]
id = 1
type = "CEX7A"
[[adapter]]
id = 2
type = "CEX8P"
[[adapter]]
id = 3
type = "CEX6C"
"#;

const UUIDS: [&str; 4] = [
    "62177883-f1bb-47f0-914d-32a22e3a8804",
    "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e",
    "11111111-2222-4333-8444-555555555555",
    "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
];

fn boot() -> SimSysfs {
    SimSysfs(Sim::new(
        Topology::from_toml_str(TOPOLOGY).expect("topology"),
    ))
}

/// Every readable file (content) and symlink (target) of the tree, except
/// the simulator's control directory and IOMMU group numbers.
fn sysfs_snapshot(fs: &SimSysfs) -> BTreeMap<String, String> {
    fn walk(sim: &Sim, dir: &str, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = sim.list(dir) else {
            return;
        };
        for e in entries {
            let path = if dir.is_empty() {
                e.name.clone()
            } else {
                format!("{dir}/{}", e.name)
            };
            // The control surface is not the kernel's. IOMMU group numbers
            // are allocated anew when an mdev is re-created (rollback of a
            // removal): no tool chooses them, so they are not compared.
            if path == ".apsim" || path == "kernel/iommu_groups" || path.ends_with("/iommu_group") {
                continue;
            }
            match e.kind {
                NodeKind::Dir => {
                    out.insert(path.clone(), "<dir>".to_string());
                    walk(sim, &path, out);
                }
                NodeKind::Symlink => {
                    let t = sim.readlink(&path).unwrap_or_default();
                    out.insert(path, format!("-> {t}"));
                }
                NodeKind::File => {
                    if let Ok(b) = sim.read(&path) {
                        out.insert(path, String::from_utf8_lossy(&b).into_owned());
                    }
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&fs.0, "", &mut out);
    out
}

/// Kernel refusals the simulator logs (EBUSY on a mask, EADDRINUSE on an assign).
fn refusals(fs: &SimSysfs) -> usize {
    fs.0.log()
        .iter()
        .filter(|l| l.contains("Can not reserve") || l.contains("may not assign"))
        .count()
}

fn read_host(fs: &SimSysfs) -> Host {
    Host::read(fs).expect("host reads")
}

fn stored(store: &Store) -> Vec<Definition> {
    let r = store.load();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r.definitions
}

fn masks_of(m: Option<ApMask>) -> ApMask {
    m.unwrap_or_else(ApMask::full)
}

/// A mask over ids 0..=7 (bits 8..=255 stay set, as on a booted host).
fn low_mask() -> impl Strategy<Value = ApMask> {
    any::<u8>().prop_map(|bits| {
        let mut m = ApMask::full();
        for id in 0..8u8 {
            m.set(id, bits & (1 << id) != 0);
        }
        m
    })
}

fn low_ids() -> impl Strategy<Value = ApMask> {
    any::<u8>().prop_map(|bits| (0..8u8).filter(|i| bits & (1 << i) != 0).collect())
}

/// Up to four mdevs; `disjoint` gives each domain to at most one mdev
/// (so autostart mdevs do not clash), else domains are random. Masks are
/// absent, random, or the vfio shorthand for exactly what the mdevs use.
fn desired_state(disjoint: bool) -> impl Strategy<Value = DesiredState> {
    let mdev = (
        any::<bool>(), // uuid given (else matched by name)
        any::<bool>(), // autostart
        low_ids(),     // adapters
        low_ids(),     // domains (random mode)
        low_ids(),     // control domains
    );
    (
        proptest::collection::vec(mdev, 0..=4),
        proptest::collection::vec(0..5usize, 8), // owner of each domain (disjoint mode)
        0..3u8,                                  // masks: none, random, derived
        low_mask(),
        low_mask(),
        proptest::sample::subsequence(vec![0usize, 1, 2, 3], 0..=4), // which uuids to use
    )
        .prop_map(move |(mdevs, owners, mask_kind, apmask, aqmask, slots)| {
            let mut specs = Vec::new();
            for (i, (with_uuid, autostart, adapters, domains, controls)) in
                mdevs.into_iter().enumerate()
            {
                let Some(&slot) = slots.get(i) else { break };
                let domains = if disjoint {
                    (0..8u8).filter(|d| owners[usize::from(*d)] == i).collect()
                } else {
                    domains
                };
                specs.push(MdevSpec {
                    uuid: with_uuid.then(|| Uuid::parse_str(UUIDS[slot]).expect("uuid")),
                    name: Some(format!("m{slot}")),
                    autostart,
                    adapters,
                    domains,
                    control_domains: controls,
                });
            }
            let masks = match mask_kind {
                0 => None,
                1 => Some(DesiredMasks {
                    apmask: Some(apmask),
                    aqmask: Some(aqmask),
                    form: MaskForm::Hex,
                }),
                _ => {
                    let a: ApMask = specs.iter().fold(ApMask::empty(), |m, s| m | s.adapters);
                    let d: ApMask = specs.iter().fold(ApMask::empty(), |m, s| m | s.domains);
                    Some(DesiredMasks {
                        apmask: Some(!a),
                        aqmask: Some(!d),
                        form: MaskForm::Vfio,
                    })
                }
            };
            DesiredState {
                masks,
                mdevs: specs,
            }
        })
}

/// The UUID a file mdev ended up with (its own, or the stored one of its name).
fn uuid_of(spec: &MdevSpec, defs: &[Definition]) -> Uuid {
    spec.uuid.unwrap_or_else(|| {
        defs.iter()
            .find(|d| d.name == spec.name)
            .map(|d| d.uuid)
            .expect("a definition with the spec's name")
    })
}

/// What the host and the store must look like after applying `want` from
/// `before` (host) and `before_defs` — computed here from the semantics,
/// not from the plan.
fn check_reached(
    before: &Host,
    before_defs: &[Definition],
    want: &DesiredState,
    prune: bool,
    after: &Host,
    after_defs: &[Definition],
) -> Result<(), TestCaseError> {
    // Masks: the file's, else unchanged.
    let m = want.masks.unwrap_or_default();
    prop_assert_eq!(after.apmask, m.apmask.unwrap_or(before.apmask));
    prop_assert_eq!(after.aqmask, m.aqmask.unwrap_or(before.aqmask));

    // Definitions: the file's, plus (without prune) the ones it does not name.
    let mut expect_defs: BTreeMap<Uuid, Definition> = BTreeMap::new();
    for spec in &want.mdevs {
        let uuid = uuid_of(spec, after_defs);
        expect_defs.insert(uuid, spec.to_definition(uuid));
    }
    let named: Vec<Uuid> = expect_defs.keys().copied().collect();
    if !prune {
        for d in before_defs {
            expect_defs.entry(d.uuid).or_insert_with(|| d.clone());
        }
    }
    let got_defs: BTreeMap<Uuid, Definition> =
        after_defs.iter().map(|d| (d.uuid, d.clone())).collect();
    prop_assert_eq!(&got_defs, &expect_defs);

    // Live mdevs.
    let mut expect_live: BTreeMap<Uuid, Matrix> = BTreeMap::new();
    for (uuid, mdev) in &before.mdevs {
        let defined = before_defs.iter().any(|d| d.uuid == *uuid);
        let pruned = prune && defined && !named.contains(uuid);
        if !pruned {
            expect_live.insert(*uuid, mdev.matrix);
        }
    }
    for (uuid, d) in expect_defs.iter().filter(|(u, _)| named.contains(u)) {
        if d.autostart || before.mdevs.contains_key(uuid) {
            expect_live.insert(*uuid, d.matrix());
        }
    }
    let got_live: BTreeMap<Uuid, Matrix> =
        after.mdevs.iter().map(|(u, m)| (*u, m.matrix)).collect();
    prop_assert_eq!(got_live, expect_live);
    Ok(())
}

/// Plan and (when valid) execute `want`; returns the plan when it ran.
fn apply_state(
    fs: &SimSysfs,
    store: &Store,
    want: &DesiredState,
    prune: bool,
) -> Result<Option<Plan>, TestCaseError> {
    let host = read_host(fs);
    let defs = stored(store);
    let persistent = store.load_masks().expect("masks load");
    let sys_before = sysfs_snapshot(fs);
    let store_before = dir_snapshot(store.dir());
    let refused_before = refusals(fs);
    match plan(&host, &defs, persistent, want, prune) {
        Err(findings) => {
            prop_assert!(findings.iter().any(|f| f.severity == Severity::Error));
            // Refused: nothing was written.
            prop_assert!(diff(&sys_before, &sysfs_snapshot(fs)).is_empty());
            prop_assert!(diff(&store_before, &dir_snapshot(store.dir())).is_empty());
            Ok(None)
        }
        Ok(p) => {
            if let Err(e) = execute(&p, fs, store) {
                return Err(TestCaseError::fail(format!(
                    "libap said the plan is valid, but: {e}\nplan: {:#?}",
                    p.steps
                )));
            }
            prop_assert_eq!(refusals(fs), refused_before, "the kernel logged a refusal");
            let after = read_host(fs);
            let after_defs = stored(store);
            check_reached(&host, &defs, want, prune, &after, &after_defs)?;
            // The planner's own prediction agrees with the simulator.
            let predicted: BTreeMap<Uuid, Matrix> =
                p.end.mdevs.iter().map(|(u, m)| (*u, m.matrix)).collect();
            let live: BTreeMap<Uuid, Matrix> =
                after.mdevs.iter().map(|(u, m)| (*u, m.matrix)).collect();
            prop_assert_eq!(predicted, live);
            prop_assert_eq!(&p.definitions, &after_defs);
            if let Some(m) = want.masks {
                let (ap, aq) = store.load_masks().expect("masks");
                prop_assert_eq!(masks_of(ap), masks_of(m.apmask.or(persistent.0)));
                prop_assert_eq!(masks_of(aq), masks_of(m.aqmask.or(persistent.1)));
            }
            // Applying the same state again is a no-op.
            let again = plan(
                &after,
                &after_defs,
                store.load_masks().expect("masks"),
                &pin_uuids(want, &after_defs),
                prune,
            )
            .map_err(|f| TestCaseError::fail(format!("second plan refused: {f:#?}")))?;
            prop_assert!(again.is_empty(), "second plan: {:#?}", again.steps);
            Ok(Some(p))
        }
    }
}

/// The state with every UUID filled in from the definitions (a new mdev
/// without UUID gets a fresh one per plan; its definition now has one).
fn pin_uuids(want: &DesiredState, defs: &[Definition]) -> DesiredState {
    let mut s = want.clone();
    for m in &mut s.mdevs {
        m.uuid = Some(uuid_of(m, defs));
    }
    s
}

/// A kernel that refuses an id refuses the `ap_config` write holding it
/// too: an mdev the plan creates gets its ids that way (the executor
/// then writes them one at a time, and meets the refusal on the id).
fn refuse_ap_config_too(fs: &SimSysfs, step: &Step, errno: impl std::fmt::Display) {
    if let Step::Assign { uuid, .. } = step {
        let path = libap::host::paths::mdev_attr(uuid, "ap_config");
        fs.0.write(".apsim/inject", format!("{path} {errno}\n").as_bytes())
            .expect("inject");
    }
}

/// The path a step writes to, for injecting a failure there.
fn write_path(step: &Step) -> Option<String> {
    use libap::host::paths;
    match step {
        Step::SetMasks {
            aqmask, old_aqmask, ..
        } => Some(if aqmask != old_aqmask {
            paths::AQMASK.to_string()
        } else {
            paths::APMASK.to_string()
        }),
        Step::Create { .. } => Some(paths::MDEV_CREATE.to_string()),
        Step::Assign { uuid, kind, .. } => {
            Some(paths::mdev_attr(uuid, &format!("assign_{}", kind.attr())))
        }
        Step::Unassign { uuid, kind, .. } => {
            Some(paths::mdev_attr(uuid, &format!("unassign_{}", kind.attr())))
        }
        Step::Remove { uuid, .. } => Some(paths::mdev_attr(uuid, "remove")),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn apply_b_from_a(
        a in desired_state(true),
        b in prop_oneof![desired_state(true), desired_state(false)],
        prune in any::<bool>(),
    ) {
        let fs = boot();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path().join("cfg"));
        if apply_state(&fs, &store, &a, false)?.is_none() {
            return Ok(());
        }
        apply_state(&fs, &store, &b, prune)?;
    }

    #[test]
    fn injected_kernel_error_rolls_back_everything(
        a in desired_state(true),
        b in desired_state(true),
        prune in any::<bool>(),
        pick in any::<prop::sample::Index>(),
        errno in prop::sample::select(vec![libc::EIO, libc::EBUSY, libc::ENODEV, libc::EADDRINUSE]),
    ) {
        let fs = boot();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path().join("cfg"));
        if apply_state(&fs, &store, &a, false)?.is_none() {
            return Ok(());
        }
        let host = read_host(&fs);
        let defs = stored(&store);
        let Ok(p) = plan(&host, &defs, store.load_masks().expect("masks"), &b, prune) else {
            return Ok(());
        };
        let live: Vec<(usize, String)> = p
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| write_path(s).map(|w| (i, w)))
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let (i, path) = &live[pick.index(live.len())];
        let sys_before = sysfs_snapshot(&fs);
        let store_before = dir_snapshot(store.dir());
        fs.0.write(".apsim/inject", format!("{path} {errno}\n").as_bytes())
            .expect("inject");
        refuse_ap_config_too(&fs, &p.steps[*i], errno);
        let err = execute(&p, &fs, &store).expect_err("the injected error stops the apply");
        prop_assert!(err.rolled_back, "{err}");
        prop_assert!(err.not_rolled_back.is_empty());
        match err.cause.as_ref() {
            ApplyCause::Sysfs(e) => {
                prop_assert_eq!(e.errno, errno);
                prop_assert_eq!(&e.path, path);
            }
            other => prop_assert!(false, "unexpected cause {other}"),
        }
        let text = err.to_string();
        prop_assert!(text.contains(&format!("step {} of {} failed", err.index, p.steps.len())), "{text}");
        prop_assert!(text.contains("rolled back") || text.contains("first step"), "{text}");
        let d = diff(&sys_before, &sysfs_snapshot(&fs));
        prop_assert!(d.is_empty(), "sysfs differs after rollback: {d:#?}\n{err}");
        let d = diff(&store_before, &dir_snapshot(store.dir()));
        prop_assert!(d.is_empty(), "store differs after rollback: {d:#?}\n{err}");
    }
}

const G1: &str = UUIDS[0];

fn spec(uuid: &str, name: &str, adapters: &[u8], domains: &[u8]) -> MdevSpec {
    MdevSpec {
        uuid: Some(Uuid::parse_str(uuid).expect("uuid")),
        name: Some(name.into()),
        autostart: true,
        adapters: adapters.iter().copied().collect(),
        domains: domains.iter().copied().collect(),
        control_domains: ApMask::empty(),
    }
}

fn vfio_masks(adapters: &[u8], domains: &[u8]) -> Option<DesiredMasks> {
    Some(DesiredMasks {
        apmask: Some(!adapters.iter().copied().collect::<ApMask>()),
        aqmask: Some(!domains.iter().copied().collect::<ApMask>()),
        form: MaskForm::Vfio,
    })
}

/// A fresh simulator and store with state A applied: adapters and
/// domains 0 and 1 for vfio_ap, and the mdev `name` (G1) holding 00.0000.
fn one_mdev_applied(name: &str) -> (SimSysfs, tempfile::TempDir, Store, DesiredState) {
    let fs = boot();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path().join("cfg"));
    let a = DesiredState {
        masks: vfio_masks(&[0, 1], &[0, 1]),
        mdevs: vec![spec(G1, name, &[0], &[0])],
    };
    apply_state(&fs, &store, &a, false)
        .map_err(|e| e.to_string())
        .expect("A applies")
        .expect("A is valid");
    (fs, dir, store, a)
}

#[test]
fn a_failing_definition_write_restores_earlier_files_and_the_host() {
    let (fs, _dir, store, _) = one_mdev_applied("m0");
    // B redefines m0 and defines m1, whose file cannot be written: a
    // directory sits where the file goes.
    let b = DesiredState {
        masks: vfio_masks(&[0, 1, 2], &[0, 1]),
        mdevs: vec![
            spec(G1, "m0", &[0], &[0, 1]),
            spec(UUIDS[1], "m1", &[1], &[0]),
        ],
    };
    let host = read_host(&fs);
    let p = plan(
        &host,
        &stored(&store),
        store.load_masks().expect("masks"),
        &b,
        false,
    )
    .expect("valid");
    let blocker = store.path_of(Uuid::parse_str(UUIDS[1]).expect("uuid"));
    std::fs::create_dir_all(blocker.join("x")).expect("blocker");
    let sys_before = sysfs_snapshot(&fs);
    let store_before = dir_snapshot(store.dir());
    let err = execute(&p, &fs, &store).expect_err("cannot write m1");
    assert!(matches!(*err.cause, ApplyCause::Store(_)), "{err}");
    assert!(matches!(err.failed_step.as_ref(), Step::Define(d) if d.name.as_deref() == Some("m1")));
    assert!(err.rolled_back, "{err}");
    assert_eq!(sysfs_snapshot(&fs), sys_before);
    assert_eq!(dir_snapshot(store.dir()), store_before);
}

#[test]
fn a_failing_step_names_itself_and_the_rollback() {
    let fs = boot();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path().join("cfg"));
    let a = DesiredState {
        masks: vfio_masks(&[0, 1], &[0, 1]),
        mdevs: vec![spec(G1, "m0", &[0, 1], &[0, 1])],
    };
    let host = read_host(&fs);
    let p = plan(&host, &[], (None, None), &a, false).expect("valid");
    let sys_before = sysfs_snapshot(&fs);
    let path = libap::host::paths::mdev_attr(&Uuid::parse_str(G1).expect("uuid"), "assign_domain");
    fs.0.write(".apsim/inject", format!("{path} EIO 2\n").as_bytes())
        .expect("inject");
    let assign = p.steps.iter().find(|s| matches!(s, Step::Assign { .. }));
    refuse_ap_config_too(&fs, assign.expect("an assign step"), "EIO");
    let err = execute(&p, &fs, &store).expect_err("injected");
    let Step::Assign { id: 0, .. } = *err.failed_step else {
        panic!("failed at {:?}", err.failed_step)
    };
    assert_eq!(
        err.to_string(),
        format!(
            "step {} of {} failed (assign domain 0x00 to m0 ({G1})): cannot write \"0x0\" to {path}: Input/output error (EIO); the {} completed steps were rolled back, so the host and the definitions are as before",
            err.index,
            p.steps.len(),
            err.index - 1
        )
    );
    assert_eq!(sysfs_snapshot(&fs), sys_before);
    assert!(
        dir_snapshot(store.dir()).is_empty(),
        "the store dir is gone again"
    );
}

/// Files only: a directory the killed run created may stay (empty).
fn store_files(store: &Store) -> BTreeMap<String, Vec<u8>> {
    let mut snap = dir_snapshot(store.dir());
    snap.retain(|k, _| !k.ends_with('/'));
    snap
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_writer_killed_at_any_write_is_undone_from_its_journal(
        a in desired_state(true),
        b in desired_state(true),
        prune in any::<bool>(),
        pick in any::<prop::sample::Index>(),
        answer_lost in any::<bool>(),
    ) {
        let fs = boot();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path().join("cfg"));
        let journal = Journal::new(dir.path().join("run"));
        if apply_state(&fs, &store, &a, false)?.is_none() {
            return Ok(());
        }
        let host = read_host(&fs);
        let defs = stored(&store);
        let Ok(p) = plan(&host, &defs, store.load_masks().expect("masks"), &b, prune) else {
            return Ok(());
        };
        // At most this many writes (a step in place writes none, a mask
        // step up to two): a kill point past the last write is no kill.
        let writes: usize = p
            .steps
            .iter()
            .map(|s| match s {
                Step::SetMasks { .. } => 2,
                s => usize::from(write_path(s).is_some()),
            })
            .sum();
        if writes == 0 {
            return Ok(());
        }
        let at = pick.index(writes);
        let sys_before = sysfs_snapshot(&fs);
        let store_before = store_files(&store);
        let dying = Recording::dying(&fs, at, answer_lost);
        let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            execute_journaled(
                &p.steps,
                &dying,
                &store,
                Some(&journal),
                StepLog::Info,
                &Known::nothing(),
            )
        }));
        if killed.is_ok() {
            prop_assert!(!journal.pending(), "a finished run leaves no entries");
            return Ok(());
        }
        prop_assert!(journal.pending(), "a killed run leaves its journal");
        let recovery = journal
            .recover(&fs)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .expect("a journal to recover");
        prop_assert!(recovery.failed.is_empty(), "{:?}", recovery.failed);
        prop_assert!(!journal.path().exists(), "the journal is gone after recovery");
        let d = diff(&sys_before, &sysfs_snapshot(&fs));
        prop_assert!(d.is_empty(), "sysfs differs after recovery from write {at}: {d:#?}\n{recovery:#?}");
        let d = diff(&store_before, &store_files(&store));
        prop_assert!(d.is_empty(), "store differs after recovery from write {at}: {d:#?}");
        // A second recovery finds nothing.
        prop_assert!(journal.recover(&fs).map_err(|e| TestCaseError::fail(e.to_string()))?.is_none());
    }
}

/// Keeps the path of every write through it; with a kill point, its
/// writer dies (panics) at its write number `at` (0-based): before the
/// write, or, with `answer_lost`, after the kernel made it.
#[derive(Debug)]
struct Recording<'a> {
    inner: &'a SimSysfs,
    writes: std::sync::Mutex<Vec<String>>,
    /// The paths looked up (`exists`).
    lookups: std::sync::Mutex<Vec<String>>,
    /// The paths read.
    reads: std::sync::Mutex<Vec<String>>,
    kill: Option<(usize, bool)>,
}

impl Recording<'_> {
    fn new(inner: &SimSysfs) -> Recording<'_> {
        Recording {
            inner,
            writes: Vec::new().into(),
            lookups: Vec::new().into(),
            reads: Vec::new().into(),
            kill: None,
        }
    }

    fn dying(inner: &SimSysfs, at: usize, answer_lost: bool) -> Recording<'_> {
        Recording {
            kill: Some((at, answer_lost)),
            ..Recording::new(inner)
        }
    }

    /// The attributes written under `uuid`'s directory (or `create`).
    fn mdev_writes(&self, uuid: Uuid) -> Vec<String> {
        let dir = format!("{}/", libap::host::paths::mdev(&uuid));
        let w = self.writes.lock().expect("lock");
        w.iter()
            .filter_map(|p| match p.strip_prefix(&dir) {
                Some(attr) => Some(attr.to_string()),
                None => p.ends_with("/create").then(|| "create".to_string()),
            })
            .collect()
    }
}

impl Sysfs for Recording<'_> {
    fn read(&self, path: &str) -> Result<String, SysfsError> {
        self.reads.lock().expect("lock").push(path.to_string());
        self.inner.read(path)
    }
    fn write(&self, path: &str, data: &[u8]) -> Result<(), SysfsError> {
        let n = {
            let mut w = self.writes.lock().expect("lock");
            w.push(path.to_string());
            w.len() - 1
        };
        let kill = self.kill.filter(|(at, _)| *at == n);
        if let Some((_, false)) = kill {
            panic!("killed before write {n}");
        }
        let r = self.inner.write(path, data);
        if kill.is_some() {
            panic!("killed after write {n}");
        }
        r
    }
    fn list(&self, path: &str) -> Result<Vec<String>, SysfsError> {
        self.inner.list(path)
    }
    fn read_link(&self, path: &str) -> Result<String, SysfsError> {
        self.inner.read_link(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.lookups.lock().expect("lock").push(path.to_string());
        self.inner.exists(path)
    }
}

/// guest1 (adapters 0, 1 x domains 0, 1) planned on a fresh simulator
/// from a read of it: the simulator, the store's directory, the store,
/// the plan and the host it was made on.
fn guest1_planned() -> (SimSysfs, tempfile::TempDir, Store, Plan, Host) {
    let fs = boot();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path().join("cfg"));
    let want = DesiredState {
        masks: vfio_masks(&[0, 1], &[0, 1]),
        mdevs: vec![spec(G1, "guest1", &[0, 1], &[0, 1])],
    };
    let host = read_host(&fs);
    let p = plan(&host, &[], (None, None), &want, false).expect("valid");
    (fs, dir, store, p, host)
}

/// A caller that read the host under the lock it holds for the run tells
/// the executor which mdevs are absent: their create is written without
/// a lookup of the mdev first (a FUSE request per mdev of a boot
/// restore); without that knowledge the executor looks, once.
#[test]
fn a_create_known_absent_is_written_without_a_lookup() {
    let uuid = Uuid::parse_str(G1).expect("uuid");
    let mdev_dir = libap::host::paths::mdev(&uuid);
    for (told, lookups) in [(true, 0), (false, 1)] {
        let (fs, _dir, store, p, host) = guest1_planned();
        let known = if told {
            Known::from_host(&host, &p.steps)
        } else {
            Known::nothing()
        };
        let rec = Recording::new(&fs);
        execute_journaled(&p.steps, &rec, &store, None, StepLog::Info, &known)
            .expect("guest1 starts");
        let looked = rec.lookups.lock().expect("lock").clone();
        assert_eq!(
            looked.iter().filter(|l| **l == mdev_dir).count(),
            lookups,
            "told {told}: {looked:?}"
        );
        assert_eq!(
            rec.mdev_writes(uuid),
            ["create", "ap_config"],
            "told {told}"
        );
        assert!(read_host(&fs).mdevs.contains_key(&uuid));
    }
}

/// An mdev known absent that another tool creates between the caller's
/// read and the run: the kernel refuses the create (EEXIST), the run
/// fails naming the create and is rolled back; the other tool's mdev is
/// left as it made it, with none of our ids.
#[test]
fn a_create_known_absent_that_appeared_meanwhile_fails_and_rolls_back() {
    let (fs, _dir, store, p, host) = guest1_planned();
    let known = Known::from_host(&host, &p.steps);
    fs.write(
        libap::host::paths::MDEV_CREATE,
        format!("{G1}\n").as_bytes(),
    )
    .expect("another tool creates guest1's mdev");
    let before = sysfs_snapshot(&fs);
    let e = execute_journaled(&p.steps, &fs, &store, None, StepLog::Info, &known)
        .expect_err("the create is refused");
    assert!(matches!(*e.failed_step, Step::Create { .. }), "{e}");
    assert!(
        e.to_string().contains("EEXIST") || e.to_string().contains("exists"),
        "{e}"
    );
    assert!(e.rolled_back, "{e}");
    let d = diff(&before, &sysfs_snapshot(&fs));
    assert!(d.is_empty(), "{d:#?}");
}

/// guest1 started on a fresh simulator and the host read after: the
/// simulator, the store's directory, the store and that host.
fn guest1_active() -> (SimSysfs, tempfile::TempDir, Store, Host) {
    let (fs, dir, store, p, _) = guest1_planned();
    execute(&p, &fs, &store).expect("guest1 starts");
    let host = read_host(&fs);
    (fs, dir, store, host)
}

/// The steps that unassign guest1's domain 1 and then stop it.
fn guest1_unassign_and_stop(host: &Host) -> Vec<Step> {
    let uuid = Uuid::parse_str(G1).expect("uuid");
    let m = host.mdevs.get(&uuid).expect("guest1 is active").matrix;
    let mut one = Matrix::default();
    one.domains.set(1, true);
    let mut steps = libap::plan::assignment(uuid, None, &one, false);
    steps.extend(libap::plan::stop(uuid, None, m));
    steps
}

/// An mdev the caller read under its lock (active, with its matrix) is
/// changed and removed without the executor reading it again; without
/// that knowledge the executor reads it once, before its first step.
#[test]
fn an_mdev_known_active_is_changed_without_a_read() {
    let uuid = Uuid::parse_str(G1).expect("uuid");
    let under = format!("{}/", libap::host::paths::mdev(&uuid));
    for told in [true, false] {
        let (fs, _dir, store, host) = guest1_active();
        let steps = guest1_unassign_and_stop(&host);
        let known = if told {
            Known::from_host(&host, &steps)
        } else {
            Known::nothing()
        };
        let rec = Recording::new(&fs);
        let report = execute_journaled(&steps, &rec, &store, None, StepLog::Info, &known)
            .expect("guest1 is changed and stopped");
        assert_eq!(report.changed(), 2, "told {told}");
        let reads = rec.reads.lock().expect("lock").clone();
        let of_mdev = reads.iter().filter(|r| r.starts_with(&under)).count();
        if told {
            assert_eq!(of_mdev, 0, "{reads:?}");
        } else {
            assert!(of_mdev > 0, "{reads:?}");
        }
        assert_eq!(rec.mdev_writes(uuid), ["unassign_domain", "remove"]);
        assert!(!read_host(&fs).mdevs.contains_key(&uuid));
    }
}

/// An mdev known active that another tool removes between the caller's
/// read and the run: the kernel refuses the write to it, the run fails
/// naming that step and is rolled back, and the host is left as the other
/// tool made it.
#[test]
fn an_mdev_known_active_that_went_away_meanwhile_fails_and_rolls_back() {
    let (fs, _dir, store, host) = guest1_active();
    let steps = guest1_unassign_and_stop(&host);
    let known = Known::from_host(&host, &steps);
    let uuid = Uuid::parse_str(G1).expect("uuid");
    fs.write(&libap::host::paths::mdev_attr(&uuid, "remove"), b"1\n")
        .expect("another tool removes guest1's mdev");
    let before = sysfs_snapshot(&fs);
    let e = execute_journaled(&steps, &fs, &store, None, StepLog::Info, &known)
        .expect_err("the unassign is refused");
    assert!(matches!(*e.failed_step, Step::Unassign { .. }), "{e}");
    assert!(e.rolled_back, "{e}");
    let d = diff(&before, &sysfs_snapshot(&fs));
    assert!(d.is_empty(), "{d:#?}");
}

/// Creates guest1 (adapters 0, 1 x domains 0, 1 and control domain 2)
/// on a fresh simulator, `prepare`d first; returns what was written to
/// it and the tree after.
fn start_guest1(prepare: impl Fn(&SimSysfs)) -> (Vec<String>, BTreeMap<String, String>) {
    let fs = boot();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path().join("cfg"));
    let mut g1 = spec(G1, "guest1", &[0, 1], &[0, 1]);
    g1.control_domains = [2].into_iter().collect();
    let want = DesiredState {
        masks: vfio_masks(&[0, 1], &[0, 1]),
        mdevs: vec![g1],
    };
    let p = plan(&read_host(&fs), &[], (None, None), &want, false).expect("valid");
    prepare(&fs);
    let rec = Recording::new(&fs);
    let report = execute(&p, &rec, &store).expect("guest1 starts");
    assert!(report.steps.iter().all(|s| s.outcome == Outcome::Changed));
    let uuid = Uuid::parse_str(G1).expect("uuid");
    let m = read_host(&fs).mdevs[&uuid].matrix;
    assert_eq!(
        (m.adapters, m.domains, m.control_domains),
        (
            [0, 1].into_iter().collect(),
            [0, 1].into_iter().collect(),
            [2].into_iter().collect()
        )
    );
    (rec.mdev_writes(uuid), sysfs_snapshot(&fs))
}

/// A created mdev gets its whole assignment in one `ap_config` write
/// (issue 17: a boot restore costs a create and one write per mdev);
/// where the kernel has no `ap_config` (older than about 6.10), or
/// refuses it, the same ids go one at a time, to the same end.
#[test]
fn a_created_mdev_gets_its_assignment_in_one_ap_config_write() {
    let (at_once, tree) = start_guest1(|_| {});
    assert_eq!(at_once, ["create", "ap_config"]);
    let uuid = Uuid::parse_str(G1).expect("uuid");
    let ap_config = libap::host::paths::mdev_attr(&uuid, "ap_config");
    for errno in ["ENOENT", "EIO"] {
        let (one_by_one, same) = start_guest1(|fs| {
            fs.0.write(".apsim/inject", format!("{ap_config} {errno}").as_bytes())
                .expect("inject");
        });
        assert_eq!(
            one_by_one,
            [
                "create",
                "ap_config",
                "assign_adapter",
                "assign_adapter",
                "assign_domain",
                "assign_domain",
                "assign_control_domain"
            ],
            "{errno}"
        );
        let d = diff(&tree, &same);
        assert!(d.is_empty(), "{errno}: {d:#?}");
    }
}

/// A live mdev is changed id by id, never with an absolute `ap_config`
/// write: another tool's ids written meanwhile stay (issue 18).
#[test]
fn a_live_mdev_is_changed_id_by_id() {
    let (fs, _dir, store, a) = one_mdev_applied("guest1");
    let b = DesiredState {
        masks: a.masks,
        mdevs: vec![spec(G1, "guest1", &[0, 1], &[0, 1])],
    };
    let p = plan(
        &read_host(&fs),
        &stored(&store),
        store.load_masks().expect("masks"),
        &b,
        false,
    )
    .expect("valid");
    let rec = Recording::new(&fs);
    execute(&p, &rec, &store).expect("B applies");
    let uuid = Uuid::parse_str(G1).expect("uuid");
    assert_eq!(rec.mdev_writes(uuid), ["assign_adapter", "assign_domain"]);
}
