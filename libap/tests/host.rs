//! Host model read through the Sysfs trait, on the in-memory fake and on a
//! directory (DirSysfs).

mod common;

use common::{m, seed_with_guests, Counting, HostSpec, G1, G2};
use libap::host::{CardMode, Owner};
use libap::resync::Stale;
use libap::{ApMask, Apqn, DirSysfs, Host, HostError, Sysfs};
use uuid::Uuid;

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("uuid")
}

#[test]
fn reads_the_seed_host() {
    let fs = seed_with_guests().fake();
    let host = Host::read(&fs).expect("read");
    assert_eq!(host.max_adapter_id, 255);
    assert!(host.config.known);
    assert_eq!(host.config.adapters, m(&[5, 6, 7]));
    assert_eq!(host.config.usage_domains, m(&[4, 0x47, 0xab, 0xff]));
    assert!(host.vfio_ap_loaded);
    assert!(host.supports_ap_config());
    assert_eq!(host.cards.len(), 3);
    let c5 = &host.cards[&5];
    assert_eq!(c5.type_name, "CEX7C");
    assert_eq!(c5.mode, Some(CardMode::Cca));
    assert_eq!(host.cards[&6].mode, Some(CardMode::Accel));
    assert_eq!(host.cards[&7].mode, Some(CardMode::Ep11));
    assert_eq!(host.queues.len(), 12);
    let q = &host.queues[&Apqn::new(5, 4)];
    assert_eq!(q.driver.as_deref(), Some("vfio_ap"));
    assert_eq!(host.mdevs.len(), 2);
    let g1 = &host.mdevs[&uuid(G1)];
    assert_eq!(g1.matrix.adapters, m(&[5, 6]));
    assert_eq!(g1.matrix.domains, m(&[4, 0xab]));
    let gm = g1.guest_matrix.expect("guest matrix");
    assert_eq!((gm.adapters, gm.domains), (m(&[5, 6]), m(&[4, 0xab])));
}

#[test]
fn owners() {
    let host = Host::read(&seed_with_guests().fake()).expect("read");
    assert_eq!(host.owner(Apqn::new(5, 4)), Owner::Mdev { uuid: uuid(G1) });
    assert_eq!(
        host.owner(Apqn::new(5, 0x47)),
        Owner::Mdev { uuid: uuid(G2) }
    );
    assert_eq!(host.owner(Apqn::new(7, 4)), Owner::Free);
    assert_eq!(
        host.owner(Apqn::new(7, 5)),
        Owner::Host {
            apmask_bit: 7,
            aqmask_bit: 5
        }
    );
    let idx = host.mdev_owners();
    assert_eq!(idx.get(Apqn::new(6, 0xab)), Some(&uuid(G1)));
    assert_eq!(idx.get(Apqn::new(7, 0xab)), None);
}

#[test]
fn spec_mask_example_host_apqns() {
    // apmask 0x7d00.. + aqmask 0x8000.. give the host (1..5,7) x 0.
    let host = Host {
        apmask: ApMask::parse_absolute(
            "0x7d00000000000000000000000000000000000000000000000000000000000000",
        )
        .expect("mask"),
        aqmask: ApMask::parse_absolute(
            "0x8000000000000000000000000000000000000000000000000000000000000000",
        )
        .expect("mask"),
        ..Host::default()
    };
    let mut owned = Vec::new();
    for a in 0..=255u8 {
        for d in 0..=255u8 {
            if matches!(host.owner(Apqn::new(a, d)), Owner::Host { .. }) {
                owned.push((a, d));
            }
        }
    }
    assert_eq!(owned, vec![(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (7, 0)]);
}

#[test]
fn usability_reasons() {
    let mut spec = seed_with_guests();
    // Adapter 6 configured off: still in the guest matrix, not usable.
    spec.adapters[1].2 = false;
    let fs = spec.fake();
    let host = Host::read(&fs).expect("read");
    let (in_g, usable, why) = host.usability(&fs, uuid(G1), Apqn::new(6, 4));
    assert!(in_g);
    assert!(!usable);
    assert!(why.expect("reason").contains("configured off"));
    let (in_g, usable, why) = host.usability(&fs, uuid(G1), Apqn::new(5, 4));
    assert!(in_g && usable && why.is_none());

    // Queue bound to cex4queue (host-owned) and an adapter outside the LPAR.
    let mut spec = HostSpec::seed();
    spec.mdevs
        .push((G1.into(), m(&[5, 9]), m(&[4, 5]), ApMask::empty()));
    let fs = spec.fake();
    let mut host = Host::read(&fs).expect("read");
    let (in_g, usable, why) = host.usability(&fs, uuid(G1), Apqn::new(9, 4));
    assert!(!in_g && !usable);
    assert!(
        why.expect("reason").contains("outside the LPAR"),
        "adapter 9"
    );
    let (_, _, why) = host.usability(&fs, uuid(G1), Apqn::new(5, 5));
    assert!(why.expect("reason").contains("domain 0x05 is outside"));
    // Host-owned reason when the configuration knows the domain.
    host.config.usage_domains.insert(5);
    host.aqmask.insert(5);
    host.apmask.insert(5);
    let (_, _, why) = host.usability(&fs, uuid(G1), Apqn::new(5, 5));
    assert!(why.expect("reason").contains("belongs to the host"));
    let (in_g, _, why) = host.usability(&fs, uuid(G1), Apqn::new(0, 0));
    assert!(!in_g);
    assert!(why.is_some());
}

#[test]
fn unbound_queue_drops_its_adapter() {
    let spec = seed_with_guests();
    let fs = spec.fake();
    // Unbound, as the kernel unbinds: both links go.
    fs.remove_tree("devices/ap/card06/06.00ab/driver");
    fs.remove_tree("bus/ap/drivers/vfio_ap/06.00ab");
    let host = Host::read(&fs).expect("read");
    assert_eq!(host.queues[&Apqn::new(6, 0xab)].driver, None);
    let (a, d) = libap::guest::guest_matrix(&host, m(&[5, 6]), m(&[4, 0xab]));
    assert_eq!((a, d), (m(&[5]), m(&[4, 0xab])));
    // The guest_matrix file the fake wrote still holds adapter 6 (the
    // kernel updates it incrementally); without it the full filter decides.
    let (in_g, _, _) = host.usability(&fs, uuid(G1), Apqn::new(6, 4));
    assert!(in_g);
    let mut h2 = host.clone();
    if let Some(mdev) = h2.mdevs.get_mut(&uuid(G1)) {
        mdev.guest_matrix = None;
    }
    let (in_g, _, why) = h2.usability(&fs, uuid(G1), Apqn::new(6, 4));
    assert!(!in_g);
    assert!(why.expect("reason").contains("06.00ab is not bound"));
}

#[test]
fn without_qci_and_old_kernel() {
    let mut spec = seed_with_guests();
    spec.qci = false;
    spec.features = None;
    let host = Host::read(&spec.fake()).expect("read");
    assert!(!host.config.known);
    assert_eq!(host.config.adapters, m(&[5, 6, 7]));
    assert_eq!(host.config.usage_domains, m(&[4, 0x47, 0xab, 0xff]));
    assert!(host.features.is_none());
    assert!(!host.supports_ap_config());
    // matrix + control_domains instead of ap_config; no guest_matrix file.
    let g1 = &host.mdevs[&uuid(G1)];
    assert_eq!(g1.matrix.adapters, m(&[5, 6]));
    assert!(g1.guest_matrix.is_none());
    let gm = host.guest_matrix_of(&uuid(G1)).expect("predicted");
    assert_eq!((gm.adapters, gm.domains), (m(&[5, 6]), m(&[4, 0xab])));
}

#[test]
fn vfio_ap_not_loaded() {
    let mut spec = HostSpec::seed();
    spec.vfio_ap_loaded = false;
    let host = Host::read(&spec.fake()).expect("read");
    assert!(!host.vfio_ap_loaded);
    assert!(host.mdevs.is_empty());
    assert_eq!(host.queues[&Apqn::new(5, 4)].driver, None);
}

#[test]
fn read_and_refresh_one_mdev() {
    let fs = seed_with_guests().fake();
    let mut host = Host::read(&fs).expect("read");
    let dir = format!("devices/vfio_ap/matrix/{G2}");
    // Another tool assigns domain 4 behind our back (no uevent).
    fs.file(
        &format!("{dir}/ap_config"),
        &libap::matrix::format_ap_config(m(&[5]), m(&[4, 0x47, 0xff]), ApMask::empty()),
    );
    let fresh = Host::read_mdev(&fs, uuid(G2))
        .expect("read")
        .expect("exists");
    assert_eq!(fresh.matrix.domains, m(&[4, 0x47, 0xff]));
    host.refresh_mdev(&fs, uuid(G2)).expect("refresh");
    assert_eq!(host.mdevs[&uuid(G2)].matrix.domains, m(&[4, 0x47, 0xff]));
    fs.remove_tree(&dir);
    assert!(Host::read_mdev(&fs, uuid(G2)).expect("read").is_none());
    assert!(host.refresh_mdev(&fs, uuid(G2)).expect("refresh").is_none());
    assert!(!host.mdevs.contains_key(&uuid(G2)));
}

/// Found by the uevent storm end to end: a report re-read an mdev that a
/// concurrent stop was removing. The kernel removes a device's attributes
/// before its directory; an mdev met in between is gone, not an error.
#[test]
fn an_mdev_met_while_it_is_removed_is_gone() {
    let fs = seed_with_guests().fake();
    let dir = format!("devices/vfio_ap/matrix/{G2}");
    for attr in ["ap_config", "matrix", "control_domains", "guest_matrix"] {
        fs.remove_tree(&format!("{dir}/{attr}"));
    }
    assert!(fs.exists(&dir), "the directory is still there");
    assert!(Host::read_mdev(&fs, uuid(G2)).expect("read").is_none());
    let host = Host::read(&fs).expect("the whole host reads");
    assert!(!host.mdevs.contains_key(&uuid(G2)));
    assert!(host.mdevs.contains_key(&uuid(G1)));
}

#[test]
fn bad_content_is_an_error_naming_the_file() {
    let fs = seed_with_guests().fake();
    fs.file("bus/ap/apmask", "garbage\n");
    match Host::read(&fs) {
        Err(HostError::Parse { path, .. }) => assert_eq!(path, "bus/ap/apmask"),
        other => panic!("expected a parse error, got {other:?}"),
    }
    let fs = seed_with_guests().fake();
    fs.file(&format!("devices/vfio_ap/matrix/{G1}/ap_config"), "0x1\n");
    let e = Host::read(&fs).expect_err("bad ap_config");
    assert!(e.to_string().contains("ap_config"), "{e}");
    let fs = common::FakeSysfs::new();
    assert!(matches!(Host::read(&fs), Err(HostError::NoApBus { .. })));
}

#[test]
fn dir_sysfs_reads_the_same_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = seed_with_guests();
    spec.write_dir(dir.path());
    let from_dir = Host::read(&DirSysfs::new(dir.path())).expect("read dir");
    let from_fake = Host::read(&spec.fake()).expect("read fake");
    assert_eq!(from_dir, from_fake);
}

#[test]
fn card_mode_sources() {
    assert_eq!(CardMode::from_type("CEX8P"), Some(CardMode::Ep11));
    assert_eq!(CardMode::from_type("CEX4"), None);
    assert_eq!(CardMode::from_functions(0x9200_0000), Some(CardMode::Cca));
    assert_eq!(CardMode::from_functions(0x0800_0000), Some(CardMode::Accel));
    assert_eq!(CardMode::from_functions(0x0400_0000), Some(CardMode::Ep11));
}

#[test]
fn a_queue_state_is_read_when_a_report_asks_for_it() {
    let spec = seed_with_guests();
    let fs = spec.fake();
    let host = Host::read(&fs).expect("read");
    let q = Apqn::new(5, 4);
    let (in_g, usable, _) = host.usability(&fs, uuid(G1), q);
    assert!(in_g && usable);
    // The queue alone changes (its card does not), and the model is not
    // re-read: the report reads the queue and sees it.
    fs.file("devices/ap/card05/05.0004/chkstop", "1\n");
    let (in_g, usable, why) = host.usability(&fs, uuid(G1), q);
    assert!(in_g && !usable);
    assert!(why.expect("reason").contains("check-stopped"));
    fs.file("devices/ap/card05/05.0004/config", "0\n");
    let (_, usable, why) = host.usability(&fs, uuid(G1), q);
    assert!(!usable);
    assert!(why.expect("reason").contains("configured off"));
    assert_eq!(
        libap::host::QueueState::read(&fs, q).expect("read"),
        Some(libap::host::QueueState {
            config: false,
            chkstop: true,
            online: None
        })
    );
    assert_eq!(
        libap::host::QueueState::read(&fs, Apqn::new(9, 4)).expect("read"),
        None,
        "no such queue"
    );
}

/// A simulated host of `cards` CEX7C adapters x 64 usage domains, whose
/// domains 32..63 are given to vfio_ap.
fn cards_by_64_domains(cards: u8) -> libap::sysfs::SimSysfs {
    let adapters: Vec<String> = (0..cards)
        .map(|a| format!("[[adapter]]\nid = {a}\ntype = \"CEX7C\"\n"))
        .collect();
    let domains: Vec<String> = (0..64).map(|d| d.to_string()).collect();
    let toml = format!(
        "usage_domains = [{d}]\ncontrol_domains = [{d}]\n\
         aqmask = \"0x{half}{zeros}\"\n{a}",
        d = domains.join(", "),
        half = "ffffffff",
        zeros = "0".repeat(56),
        a = adapters.join("\n"),
    );
    libap::sysfs::SimSysfs(apsim::Sim::new(
        apsim::Topology::from_toml_str(&toml).expect("topology"),
    ))
}

/// apd's read at start grows with the cards, not the queues (issue 17):
/// the cards' files, one listing per card and per driver, the mdevs;
/// nothing under a queue's directory. On the simulator (the referee), with
/// half the queues given to vfio_ap, so both drivers hold queues.
#[test]
fn the_whole_read_touches_no_queue() {
    let sim = cards_by_64_domains(32);
    let counting = Counting::new(&sim);
    let host = Host::read(&counting).expect("read");
    assert_eq!(host.queues.len(), 32 * 64);
    let vfio = host.queues.values().filter(|q| q.is_vfio()).count();
    assert_eq!(vfio, 32 * 32, "domains 32..63 go to vfio_ap");
    assert!(host
        .queues
        .values()
        .all(|q| q.driver.is_some() && (q.is_vfio() == (q.apqn.domain >= 32))));
    let reads = counting.reads.lock().expect("lock");
    let under_queue: Vec<&String> = reads
        .iter()
        .filter(|p| p.split('/').any(|part| part.parse::<Apqn>().is_ok()))
        .collect();
    assert!(under_queue.is_empty(), "{under_queue:?}");
    // Four accesses per healthy card (its directory, `type`, `online`,
    // its listing; six before `online` settled `config` and `chkstop`)
    // and a few dozen for the rest, where a read of every queue would
    // take thousands.
    let accesses = counting.accesses.load(std::sync::atomic::Ordering::SeqCst);
    assert!(accesses <= 4 * 32 + 40, "{accesses} accesses");
    // The drivers' listings agree with each queue's own `driver` link,
    // which a card's re-read (after its uevent) follows.
    let mut by_links = host.clone();
    let every_card = (0..32).fold(Stale::none(), |s, a| s.and(Stale::card(a)));
    let changed = by_links.refresh(&sim, &every_card).expect("re-read");
    assert!(!changed);
    assert_eq!(by_links, host);
}

/// A card's `config` and `chkstop` are read only where its `online` does
/// not settle them (kernel spec §8: `online` reads 1 only on a configured
/// card that is not check-stopped). On the simulator, every state a card
/// can be in, set online and offline, reads as its `config`, `online` and `chkstop` say.
#[test]
fn a_card_reads_as_its_files_say_in_every_state() {
    let mut toml = String::from("usage_domains = [4]\ncontrol_domains = [4]\n");
    for (id, config, chkstop) in [
        (0, true, false),
        (1, false, false),
        (2, true, true),
        (3, false, true),
    ] {
        toml.push_str(&format!(
            "[[adapter]]\nid = {id}\ntype = \"CEX7C\"\nconfig = {config}\nchkstop = {chkstop}\n"
        ));
    }
    let fs = libap::sysfs::SimSysfs(apsim::Sim::new(
        apsim::Topology::from_toml_str(&toml).expect("topology"),
    ));
    let mut onlines = 0;
    for online in ["0", "1", "0", "1"] {
        for a in 0..4u8 {
            // ENODEV where the card cannot go online: its state stays.
            let _ = fs.write(&format!("devices/ap/card{a:02x}/online"), online.as_bytes());
        }
        let host = Host::read(&fs).expect("read");
        for a in 0..4u8 {
            let file = |name: &str| {
                let path = format!("devices/ap/card{a:02x}/{name}");
                fs.read(&path).expect("read a card file").trim() == "1"
            };
            let card = &host.cards[&a];
            assert_eq!(
                (card.config, card.online, card.chkstop),
                (file("config"), file("online"), file("chkstop")),
                "card {a} after online={online}"
            );
            onlines += usize::from(card.online);
        }
    }
    assert_eq!(onlines, 2, "card 0 went online twice, the others never");
}

/// Fails every access to one path with EIO.
#[derive(Debug)]
struct FailingAt<'a> {
    inner: &'a dyn Sysfs,
    path: String,
}

impl FailingAt<'_> {
    fn check(&self, path: &str) -> Result<(), libap::SysfsError> {
        if path == self.path {
            return Err(libap::SysfsError::new(
                libap::sysfs::SysfsOp::Read,
                path,
                libc::EIO,
            ));
        }
        Ok(())
    }
}

impl Sysfs for FailingAt<'_> {
    fn read(&self, path: &str) -> Result<String, libap::SysfsError> {
        self.check(path)?;
        self.inner.read(path)
    }
    fn write(&self, path: &str, data: &[u8]) -> Result<(), libap::SysfsError> {
        self.check(path)?;
        self.inner.write(path, data)
    }
    fn list(&self, path: &str) -> Result<Vec<String>, libap::SysfsError> {
        self.check(path)?;
        self.inner.list(path)
    }
    fn read_link(&self, path: &str) -> Result<String, libap::SysfsError> {
        self.check(path)?;
        self.inner.read_link(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.check(path).is_ok() && self.inner.exists(path)
    }
}

/// The cards of a big host are read on several threads, and the drivers'
/// listings beside them (issue 17): the model is the same as one card at
/// a time (each card re-read alone, as after its uevent), and a card or a
/// listing that cannot be read, whichever thread meets it, fails the read
/// naming its file, never a panic or a card quietly left out.
#[test]
fn cards_read_side_by_side_make_the_same_model() {
    let sim = cards_by_64_domains(70);
    let host = Host::read(&sim).expect("read");
    assert_eq!(host.cards.len(), 70);
    assert_eq!(host.queues.len(), 70 * 64);
    let mut one_by_one = host.clone();
    one_by_one.cards_mut().clear();
    one_by_one.queues_mut().clear();
    let every_card = (0..70).fold(Stale::none(), |s, a| s.and(Stale::card(a)));
    one_by_one.refresh(&sim, &every_card).expect("re-read");
    assert_eq!(one_by_one, host);
    // The drivers' listings are read beside the cards: one that fails
    // fails the read too.
    let unreadable = [0, 17, 35, 52, 69]
        .map(|card| format!("devices/ap/card{card:02x}/type"))
        .into_iter()
        .chain(["bus/ap/drivers/cex4queue".to_string()]);
    for path in unreadable {
        let failing = FailingAt {
            inner: &sim,
            path: path.clone(),
        };
        let err = Host::read(&failing).expect_err("card unreadable");
        assert!(
            matches!(&err, HostError::Sysfs(e) if e.path == path),
            "{err}"
        );
    }
}

/// A control-domain change of the LPAR sends no uevent (kernel spec §1):
/// the re-read apd makes before each change sees it, and reads only the
/// configuration masks, not the maximum ids, which the kernel sets once,
/// at boot.
#[test]
fn the_re_read_before_a_change_sees_the_lpar_without_the_maximum_ids() {
    let fs = libap::sysfs::SimSysfs(apsim::Sim::new(
        apsim::Topology::from_toml_str(include_str!("../../apsim/examples/seed.toml"))
            .expect("seed topology"),
    ));
    let mut model = Host::read(&fs).expect("read");
    fs.write(".apsim/lpar", b"add control 0x10\n")
        .expect("a control domain joins the LPAR");
    let counting = Counting::new(&fs);
    assert!(model
        .refresh(&counting, &Stale::before_change())
        .expect("re-read"));
    assert!(model.config.control_domains.contains(0x10));
    assert_eq!(model, Host::read(&fs).expect("read"));
    let reads = counting.paths();
    assert!(
        reads
            .iter()
            .any(|p| p == libap::host::paths::CONTROL_DOMAIN_MASK),
        "{reads:?}"
    );
    for max in [
        libap::host::paths::MAX_ADAPTER_ID,
        libap::host::paths::MAX_DOMAIN_ID,
    ] {
        assert!(!reads.iter().any(|p| p == max), "{max} re-read: {reads:?}");
    }
}

/// A card's mode comes from its type's last letter: `ap_functions` is read
/// only for a type that does not tell, and `hwtype` never (nothing needs
/// it): two files fewer per card at start.
#[test]
fn a_card_is_read_without_the_files_its_type_makes_needless() {
    let fake = HostSpec::seed().fake();
    let read_counted = |fs: &dyn Sysfs| {
        let counting = Counting::new(fs);
        let host = Host::read(&counting).expect("read");
        (host, counting.paths())
    };
    let (host, reads) = read_counted(&fake);
    let modes: Vec<Option<CardMode>> = host.cards.values().map(|c| c.mode).collect();
    assert_eq!(
        modes,
        [
            Some(CardMode::Cca),
            Some(CardMode::Accel),
            Some(CardMode::Ep11)
        ]
    );
    let needless = |p: &&String| p.ends_with("/ap_functions") || p.ends_with("/hwtype");
    assert_eq!(reads.iter().filter(needless).count(), 0, "{reads:?}");
    // A type without its letter: the functions tell (0x92000000: CCA).
    fake.file("devices/ap/card06/type", "CEX9\n");
    let (host, reads) = read_counted(&fake);
    assert_eq!(host.cards[&6].mode, Some(CardMode::Cca));
    let read: Vec<&String> = reads.iter().filter(needless).collect();
    assert_eq!(read, ["devices/ap/card06/ap_functions"]);
}
