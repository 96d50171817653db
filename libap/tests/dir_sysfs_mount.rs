//! DirSysfs on apsim's FUSE mount: the AP bus's masks are held open and
//! read again from offset 0, so each read shows the current value and
//! costs one FUSE request. The mount is served in this process (the
//! apsim library), and changed behind the reader through its model.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;

use apsim::fuse::{names::Names, serve};
use apsim::{Sim, Topology};
use libap::host::paths;
use libap::sysfs::{DirSysfs, Sysfs};

/// Why a FUSE mount cannot be made here, if it cannot.
fn fuse_unavailable() -> Option<&'static str> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is absent");
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root (mount(2) needs it)");
    }
    None
}

/// FUSE requests apsim has served so far (its control file, read in
/// process: that read is not a request).
fn requests(sim: &Sim) -> u64 {
    let text = sim.read(".apsim/requests").expect("read .apsim/requests");
    String::from_utf8_lossy(&text)
        .trim()
        .parse()
        .expect("a count")
}

#[test]
fn a_held_mask_shows_each_change_for_one_request() {
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipping FUSE test: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mount = dir.path().join("sys");
    std::fs::create_dir(&mount).expect("mount point");
    let sim = Sim::new(
        Topology::from_toml_str(include_str!("../../apsim/examples/seed.toml"))
            .expect("seed topology"),
    );
    let (ready_tx, ready) = mpsc::channel();
    let (served_sim, served_at) = (sim.clone(), mount.clone());
    let server = std::thread::spawn(move || {
        serve(served_sim, Names::default(), &served_at, move || {
            let _ = ready_tx.send(());
        })
    });
    ready.recv().expect("the mount is served");

    let fs = DirSysfs::new(&mount);
    // The first read of each mask opens it; every later one is one READ.
    let first: Vec<String> = paths::BUS_MASKS
        .iter()
        .map(|p| fs.read(p).expect("first read"))
        .collect();
    for (p, before) in paths::BUS_MASKS.iter().zip(&first) {
        let n = requests(&sim);
        assert_eq!(&fs.read(p).expect("read again"), before, "{p}");
        assert_eq!(
            requests(&sim) - n,
            1,
            "{p}: a held mask is read with one request"
        );
    }

    // A change behind the reader is seen at the next read, every time.
    let mut last = first[0].clone();
    for term in ["-5\n", "-6\n", "+5\n", "+6\n"] {
        sim.write(paths::APMASK, term.as_bytes())
            .unwrap_or_else(|e| panic!("write {term:?} to apmask: errno {e}"));
        let model = String::from_utf8_lossy(&sim.read(paths::APMASK).expect("model")).into_owned();
        assert_ne!(model, last, "{term:?} changes apmask");
        assert_eq!(
            fs.read(paths::APMASK).expect("read after the change"),
            model,
            "after {term:?}"
        );
        last = model;
    }
    assert_eq!(last, first[0], "the four changes end where they began");

    // Other attributes are opened at each read, as before.
    let n = requests(&sim);
    fs.read(paths::MAX_ADAPTER_ID).expect("ap_max_adapter_id");
    assert!(
        requests(&sim) - n >= 2,
        "an attribute not held is opened again"
    );

    drop(fs);
    let unmounted = Command::new("umount")
        .arg("-l")
        .arg(&mount)
        .status()
        .expect("run umount");
    assert!(unmounted.success(), "umount -l {}", mount.display());
    server
        .join()
        .expect("the server thread")
        .expect("the session ends cleanly");
}
