//! The model apd keeps from uevents equals a whole read of the host.
//!
//! apd no longer re-reads the host whole on every change: it re-reads what
//! each uevent (and each of its own writes) made stale. This checks that
//! rule against the simulator, which sends uevents as kernel spec §9 says:
//! after random writes and LPAR/module changes, the model kept from the
//! uevents (plus `Stale::after_write` for the writes, as apd does for its
//! own) equals `Host::read`; and the queue states apd keeps for its
//! reports (dropped by what the uevents name) equal a fresh read.

use std::sync::mpsc::Receiver;

use apsim::{Sim, Topology};
use libap::host::paths;
use libap::resync::Stale;
use libap::sysfs::{SimSysfs, Sysfs};
use libap::Host;
use proptest::prelude::*;

use crate::engine::queues::{read_states, QueueStates};
use crate::uevents;

const SEED: &str = include_str!("../../apsim/examples/seed.toml");
const UUIDS: [&str; 2] = [
    "62177883-f1bb-47f0-914d-32a22e3a8804",
    "4b0818b1-0b6c-4a6a-b0c2-6ef3c8ac9b43",
];

/// One operation: a write to a path (`.apsim/...` for the control surface).
#[derive(Debug, Clone)]
struct Op {
    path: String,
    data: String,
}

fn op(path: impl Into<String>, data: impl Into<String>) -> Op {
    Op {
        path: path.into(),
        data: data.into(),
    }
}

fn ops() -> impl Strategy<Value = Op> {
    let uuid = (0..UUIDS.len()).prop_map(|i| UUIDS[i]);
    let adapter = 1u8..=9;
    let domain = prop_oneof![Just(4u8), Just(0x47), Just(0xab), Just(0xff), Just(0x10)];
    prop_oneof![
        3 => Just(op(paths::APMASK, "-5-7\n")),
        3 => Just(op(paths::AQMASK, "-4,-0x47,-0xab\n")),
        1 => adapter.clone().prop_map(|a| op(paths::APMASK, format!("+{a}\n"))),
        1 => domain.clone().prop_map(|d| op(paths::AQMASK, format!("+{d}\n"))),
        2 => uuid.clone().prop_map(|u| op(paths::MDEV_CREATE, format!("{u}\n"))),
        1 => uuid.clone().prop_map(|u| op(format!("devices/vfio_ap/matrix/{u}/remove"), "1\n")),
        4 => (uuid, prop_oneof![Just("adapter"), Just("domain")], prop_oneof![Just(5u8), Just(6), Just(7), Just(4), Just(0x47)])
            .prop_map(|(u, kind, id)| op(format!("devices/vfio_ap/matrix/{u}/assign_{kind}"), format!("{id}\n"))),
        2 => (adapter.clone(), any::<bool>()).prop_map(|(a, on)| {
            op(format!("devices/ap/card{a:02x}/config"), if on { "1\n" } else { "0\n" })
        }),
        1 => (prop_oneof![Just("add"), Just("remove")], adapter).prop_map(|(verb, a)| {
            op(".apsim/lpar", format!("{verb} adapter {a}\n"))
        }),
        1 => (prop_oneof![Just("add"), Just("remove")], domain.clone()).prop_map(|(verb, d)| {
            op(".apsim/lpar", format!("{verb} domain {d}\n"))
        }),
        1 => (prop_oneof![Just("add"), Just("remove")], domain).prop_map(|(verb, d)| {
            op(".apsim/lpar", format!("{verb} control {d}\n"))
        }),
        1 => any::<bool>().prop_map(|on| op(".apsim/vfio_ap", if on { "1\n" } else { "0\n" })),
    ]
}

/// What the uevents sent so far make stale, as apd's event loop merges it.
fn drain(rx: &Receiver<Vec<u8>>) -> Stale {
    let mut stale = Stale::none();
    while let Ok(msg) = rx.try_recv() {
        let ev = uevents::parse(&msg).expect("apsim sends kernel-format uevents");
        stale.merge(ev.classify().stale());
    }
    stale
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_model_kept_from_uevents_equals_a_whole_read(seq in proptest::collection::vec(ops(), 1..30)) {
        let sim = Sim::new(Topology::from_toml_str(SEED).expect("seed topology"));
        let rx = sim.subscribe();
        let fs = SimSysfs(sim);
        let mut model = Host::read(&fs).expect("read");
        let states = QueueStates::default();
        for o in &seq {
            let accepted = fs.write(&o.path, o.data.as_bytes()).is_ok();
            let mut stale = drain(&rx);
            // apd re-reads after its own writes what they touched (the
            // kernel sends no uevent for an mdev's attributes).
            if accepted && !o.path.starts_with(".apsim") {
                stale.merge(Stale::after_write(&o.path, &o.data));
            }
            // Kernel spec §1: a control-domain-only LPAR change creates no
            // device, so no uevent; apd re-reads the configuration before
            // each report (Stale::unannounced).
            if o.path == ".apsim/lpar" && o.data.contains(" control ") {
                stale.merge(Stale::config());
            }
            model.refresh(&fs, &stale).expect("re-read");
            let whole = Host::read(&fs).expect("read");
            prop_assert_eq!(&model, &whole, "after writing {:?} to {} (stale: {:?})", o.data, o.path, stale);
            // Every queue's state: kept ones (not dropped by the uevents)
            // and the rest read now, against all read now.
            states.forget(&stale);
            let mut lookup = states.lookup(whole.queues.keys().copied());
            let missing = std::mem::take(&mut lookup.missing);
            let kept = states.keep(lookup, read_states(&fs, &missing).expect("read"));
            let apqns: Vec<_> = whole.queues.keys().copied().collect();
            let fresh: std::collections::BTreeMap<_, _> =
                read_states(&fs, &apqns).expect("read").into_iter().collect();
            prop_assert_eq!(&kept, &fresh, "queue states after writing {:?} to {} (stale: {:?})", o.data, o.path, stale);
        }
    }
}
