//! apd follows the kernel: adapter config off/on, LPAR configuration
//! changes and mask changes reach the model and the bus (PropertiesChanged,
//! Event) without polling, whoever caused them.

mod apd_support;

use apd_support::*;
use e2e::{Host, SEED_HOST};

/// guest1 running on the seed host.
fn seed_with_guest1() -> Host {
    let host = Host::start(SEED_HOST);
    let c = Client::new(&host);
    let m = c.manager();
    c.run(m.define(&guest1(true))).expect("define guest1");
    c.run(m.set_masks(SEED_APMASK, SEED_AQMASK, false))
        .expect("masks");
    c.run(m.start("guest1")).expect("start guest1");
    host
}

fn card_config(c: &Client, id: u32) -> bool {
    c.run(c.host().adapters())
        .expect("Adapters")
        .iter()
        .find(|a| a.id == id)
        .map(|a| a.config)
        .expect("adapter listed")
}

#[test]
fn adapter_config_off_and_on_is_seen_and_shown_as_not_usable() {
    need_fuse!();
    let host = seed_with_guest1();
    let c = Client::new(&host);
    let m = c.manager();
    let g1 = c.mdev(GUEST1_UUID);
    let full = vec!["05.0004", "05.00ab", "06.0004", "06.00ab"];
    assert_eq!(c.run(g1.guest_matrix()).expect("GuestMatrix"), full);

    let events = c.record_events();
    let host_props = c.record_properties(apbus::ROOT_PATH, apbus::HOST_INTERFACE);

    // Through apd.
    c.run(m.configure_adapter(5, false)).expect("config off");
    host.wait_for("the adapter-config event for adapter 5", || {
        events
            .any(|e| e.starts_with("adapter-config ") && e.contains("adapter 5 was configured off"))
    });
    host.wait_for("PropertiesChanged of Host.Adapters", || {
        host_props.any(|p| p == "Adapters")
    });
    assert_eq!(host.read("devices/ap/card05/config"), "0\n");
    assert!(!card_config(&c, 5));
    // Kernel spec §7: config off does not change the guest matrix ...
    assert_eq!(c.run(g1.guest_matrix()).expect("GuestMatrix"), full);
    // ... the queues are there but not usable.
    let (_, apqns) = c.run(m.get_mdev("guest1")).expect("GetMdev");
    for a in &apqns {
        assert!(a.in_guest_matrix, "{a:?}");
        if a.apqn.starts_with("05.") {
            assert!(!a.usable, "{a:?}");
            assert!(a.reason.contains("configured off"), "{a:?}");
        } else {
            assert!(a.usable && a.reason.is_empty(), "{a:?}");
        }
    }
    // Idempotent: configuring off what is off writes nothing.
    c.run(m.configure_adapter(5, false)).expect("already off");

    // Behind apd's back (the SE, chzcrypt): the CONFIG uevent tells apd.
    events.clear();
    host.write("devices/ap/card06/config", "0\n")
        .expect("config off by another tool");
    host.wait_for("the adapter-config event for adapter 6", || {
        events.any(|e| e.contains("adapter 6 was configured off"))
    });
    assert!(!card_config(&c, 6));

    c.run(m.configure_adapter(5, true)).expect("config on");
    host.write("devices/ap/card06/config", "1\n")
        .expect("config on");
    host.wait_for("both adapters configured on again", || {
        events.any(|e| e.contains("adapter 5 was configured on"))
            && events.any(|e| e.contains("adapter 6 was configured on"))
    });
    let (_, apqns) = c.run(m.get_mdev("guest1")).expect("GetMdev");
    assert!(apqns.iter().all(|a| a.usable), "{apqns:?}");

    let e = c.run(m.configure_adapter(9, true)).expect_err("no card 09");
    assert_eq!(e.kind(), apbus::ErrorKind::NotFound, "{e}");
    let e = c
        .run(m.configure_adapter(300, true))
        .expect_err("above 255");
    assert_eq!(e.kind(), apbus::ErrorKind::OutOfRange, "{e}");
}

#[test]
fn an_adapter_leaving_the_lpar_changes_the_guest_matrix() {
    need_fuse!();
    let host = seed_with_guest1();
    let c = Client::new(&host);
    let g1 = c.mdev(GUEST1_UUID);
    let props = c.record_properties(&apbus::mdev_path(GUEST1_UUID), apbus::MDEV_INTERFACE);
    let events = c.record_events();

    host.control("lpar", "remove adapter 6");
    host.wait_for("PropertiesChanged of Mdev.GuestMatrix", || {
        props.any(|p| p == "GuestMatrix")
    });
    assert_eq!(
        c.run(g1.guest_matrix()).expect("GuestMatrix"),
        vec!["05.0004", "05.00ab"]
    );
    // The assignment itself stays (kernel spec §7).
    assert_eq!(c.run(g1.adapters()).expect("Adapters"), vec![5, 6]);
    host.wait_for("the mdev-changed event", || {
        events.any(|e| e.starts_with(&format!("mdev-changed {GUEST1_UUID}")))
    });
    // Its own event: the card's remove uevent may come in a later burst
    // than its queues' (apd publishes each burst as it follows it).
    host.wait_for("the adapter-left event", || {
        events.any(|e| e.contains("adapter 6 left"))
    });
    let (_, apqns) = c.run(c.manager().get_mdev("guest1")).expect("GetMdev");
    let a = apqns.iter().find(|a| a.apqn == "06.0004").expect("06.0004");
    assert!(!a.in_guest_matrix && !a.usable, "{a:?}");
    assert!(!a.reason.is_empty());

    props.clear();
    host.control("lpar", "add adapter 6 CEX7C");
    host.wait_for("adapter 6 back in the guest matrix", || {
        c.run(g1.guest_matrix())
            .is_ok_and(|g| g == vec!["05.0004", "05.00ab", "06.0004", "06.00ab"])
    });
    host.wait_for("PropertiesChanged of Mdev.GuestMatrix", || {
        props.any(|p| p == "GuestMatrix")
    });
}

#[test]
fn mask_changes_by_another_tool_update_the_host_properties() {
    need_fuse!();
    let host = Host::start(SEED_HOST);
    let c = Client::new(&host);
    let props = c.record_properties(apbus::ROOT_PATH, apbus::HOST_INTERFACE);
    let events = c.record_events();
    host.write("bus/ap/apmask", "-5\n").expect("apmask");
    host.wait_for("PropertiesChanged of Host.ApMask", || {
        props.any(|p| p == "ApMask")
    });
    assert_eq!(
        c.run(c.host().ap_mask()).expect("ApMask"),
        format!("0xfb{}", "f".repeat(62))
    );
    host.wait_for("the masks-changed event", || {
        events.any(|e| e.starts_with("masks-changed"))
    });
    // Queues follow (bound to vfio_ap now, free).
    let queues = c.run(c.manager().list_queues()).expect("ListQueues");
    let q = queues
        .iter()
        .find(|q| q.apqn == "05.0004")
        .expect("05.0004");
    assert_eq!(q.driver, "vfio_ap");
    assert_eq!(q.owner, "free");
    let q = queues
        .iter()
        .find(|q| q.apqn == "06.0004")
        .expect("06.0004");
    assert_eq!(q.owner, "host");
    assert_eq!(q.driver, "cex4queue");
}

/// Uevents lost: the simulated kernel starts afresh under a running apd
/// (masks back to the topology's, guest1 gone, and no uevent for any of
/// it). apd's uevent socket closes and reopens, and apd re-reads the whole
/// host: its model of masks and queues matches the host again, not the
/// uevents it saw.
#[test]
fn a_reconnected_uevent_source_resyncs_the_whole_model() {
    need_fuse!();
    let mut host = seed_with_guest1();
    let c = Client::new(&host);
    let m = c.manager();
    let before = c.run(m.get_status()).expect("GetStatus");
    assert_eq!(before.active, 1);

    host.restart_apsim();
    let fresh_apmask = host.read("bus/ap/apmask").trim().to_string();
    assert_ne!(
        fresh_apmask, before.apmask,
        "the fresh kernel has the topology's apmask, not the one apd set"
    );
    host.wait_for(
        "apd to re-read the host after its uevent socket reopened",
        || {
            c.run(m.get_status())
                .is_ok_and(|s| s.apmask == fresh_apmask && s.active == 0)
        },
    );
    // The queues as the fresh kernel binds them: guest1's are the host's.
    let queues = c.run(m.list_queues()).expect("ListQueues");
    let q = queues
        .iter()
        .find(|q| q.apqn == "05.0004")
        .expect("05.0004 listed");
    assert_eq!((q.driver.as_str(), q.owner.as_str()), ("cex4queue", "host"));
    assert!(
        host.apd_log().contains("re-reading the whole host"),
        "{}",
        e2e::tail(&host.apd_log(), 30)
    );
    // guest1 is defined, not active: an autostart mdev that disappears is
    // not recreated behind the admin's back (only a boot restores).
    let g1 = c.mdev(GUEST1_UUID);
    assert!(!c.run(g1.active()).expect("Active"));
}
