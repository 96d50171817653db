//! The checks behind the fuzz targets: each takes arbitrary bytes, must
//! never panic or hang, and asserts what must hold for every input.
//! Two are differential: libap's prediction of a kernel parser against the
//! simulator, which implements `shared/spec/kernel.md` on its own.

use apsim::{Sim, Topology};
use libap::desired::DesiredState;
use libap::ids::{format_id_list, parse_id_list};
use libap::{mdevctl, ApMask, Definition};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The simulator writes at most a page, as sysfs takes it.
const PAGE: usize = 4096;

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// One seed host per process: booting is the slow part.
fn seed_sim() -> &'static Mutex<Sim> {
    static SIM: OnceLock<Mutex<Sim>> = OnceLock::new();
    SIM.get_or_init(|| {
        let topo = Topology::from_toml_str(include_str!("../../apsim/examples/seed.toml"))
            .expect("the seed topology parses");
        Mutex::new(Sim::new(topo))
    })
}

fn read_mask(sim: &Sim, path: &str) -> ApMask {
    let raw = sim.read(path).expect("the mask reads");
    ApMask::parse_absolute(std::str::from_utf8(&raw).expect("ascii")).expect("the kernel's format")
}

/// A write to `apmask`: libap's `apply_write` predicts exactly what the
/// kernel does (new mask, or EINVAL and no change). No mdev exists, so
/// EBUSY cannot come.
pub fn mask_write(data: &[u8]) {
    let Some(s) = text(data).filter(|s| s.len() < PAGE) else {
        return;
    };
    let sim = seed_sim().lock().unwrap_or_else(|p| p.into_inner());
    let before = read_mask(&sim, "bus/ap/apmask");
    let predicted = before.apply_write(s);
    let written = sim.write("bus/ap/apmask", data);
    let after = read_mask(&sim, "bus/ap/apmask");
    match (predicted, written) {
        (Ok(m), Ok(_)) => assert_eq!(after, m, "write {s:?}"),
        (Err(_), Err(errno)) => {
            assert_eq!(errno, libc::EINVAL, "write {s:?}");
            assert_eq!(after, before, "a refused write {s:?} changed the mask");
        }
        (p, w) => panic!("write {s:?}: libap says {p:?}, the kernel {w:?}"),
    }
}

/// A write to an mdev's `assign_control_domain` (checked only against the
/// maximum, kernel.md §5): libap's `kstrtoul` predicts the kernel's parse.
pub fn id_write(data: &[u8]) {
    const UUID: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
    let Some(s) = text(data).filter(|s| !s.is_empty() && s.len() < PAGE) else {
        return;
    };
    let sim = seed_sim().lock().unwrap_or_else(|p| p.into_inner());
    let dir = format!("devices/vfio_ap/matrix/{UUID}");
    if sim.stat(&dir).is_err() {
        sim.write(
            "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create",
            UUID.as_bytes(),
        )
        .expect("create the mdev");
    }
    let attr = format!("{dir}/assign_control_domain");
    let written = sim.write(&attr, data);
    let shown = String::from_utf8(sim.read(&format!("{dir}/control_domains")).expect("read"))
        .expect("ascii");
    match (mdevctl::kstrtoul(s), written) {
        (Some(v), Ok(_)) if v <= 255 => {
            assert!(
                shown.lines().any(|l| u64::from_str_radix(l, 16) == Ok(v)),
                "{s:?} = {v} not shown in {shown:?}"
            );
            // Back to empty, so the next input starts alike.
            sim.write(
                &format!("{dir}/unassign_control_domain"),
                v.to_string().as_bytes(),
            )
            .expect("unassign");
        }
        (Some(v), Err(errno)) if v > 255 => assert_eq!(errno, libc::ENODEV, "{s:?}"),
        // EINVAL, or ERANGE for a number past u64.
        (None, Err(errno)) => assert!(
            errno == libc::EINVAL || errno == libc::ERANGE,
            "{s:?}: errno {errno}"
        ),
        (p, w) => panic!("write {s:?}: libap parses {p:?}, the kernel says {w:?}"),
    }
}

/// apctl's id lists: what parses prints back as the same set.
pub fn id_list(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(m) = parse_id_list(s) {
        if !m.is_empty() {
            assert_eq!(parse_id_list(&format_id_list(&m)), Ok(m), "{s:?}");
        }
    }
}

/// A definition file: what loads saves back as itself; a refusal quotes
/// nothing of the file (its text has no quote marks and no braces).
pub fn definition(data: &[u8]) {
    let Some(s) = text(data) else { return };
    match Definition::from_toml(s) {
        Ok(d) => assert_eq!(Definition::from_toml(&d.to_toml()), Ok(d)),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('"') && !msg.contains('`'), "{msg}");
        }
    }
}

/// The desired-state file: what parses prints back as the same state.
pub fn desired_state(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(state) = DesiredState::from_toml(s) {
        assert_eq!(DesiredState::from_toml(&state.to_toml()), Ok(state));
    }
}

/// An mdevctl JSON file: what imports exports back as the same definition.
pub fn mdevctl_json(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let uuid = uuid::Uuid::from_u128(1);
    let path = Path::new("fuzz.json");
    if let Ok(d) = mdevctl::from_json(uuid, s, path) {
        let again = mdevctl::from_json(uuid, &mdevctl::to_json(&d), path);
        assert_eq!(again.ok(), Some(d));
    }
}

/// The topology file: parses or refuses; a small host boots.
pub fn topology(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(t) = Topology::from_toml_str(s) {
        if t.adapters().len() * t.usage_domains().len() <= 256 {
            let sim = Sim::new(t);
            assert!(sim.read("bus/ap/apmask").is_ok());
        }
    }
}

/// A uevent as the socket delivers it: what parses is classified without
/// a panic, and written back in wire format parses to the same event.
pub fn uevent(data: &[u8]) {
    let Ok(ev) = libap::uevent::parse(data) else {
        return;
    };
    let change = ev.classify();
    let _ = (change.stale(), change.may_unblock_start());
    let mut wire = format!("{}@{}", ev.action, ev.devpath).into_bytes();
    for (k, v) in &ev.env {
        wire.push(0);
        wire.extend_from_slice(format!("{k}={v}").as_bytes());
    }
    assert_eq!(libap::uevent::parse(&wire).as_ref(), Ok(&ev));
}
