//! SIGTERM while a start is half way: apd finishes the change (or rolls it
//! back) before it exits, so no half-created mdev is ever left behind, and
//! it releases its bus name.

mod apd_support;

use apd_support::*;
use e2e::{Host, SEED_HOST};

#[test]
fn sigterm_during_a_slow_start_leaves_a_whole_mdev() {
    need_fuse!();
    let mut host = Host::start(SEED_HOST);
    {
        let c = Client::new(&host);
        let m = c.manager();
        c.run(m.define(&guest1(true))).expect("define guest1");
        c.run(m.set_masks(SEED_APMASK, SEED_AQMASK, true))
            .expect("masks");
    }
    // Slow hardware: every write assigning guest1's matrix takes a while.
    let dir = format!("devices/vfio_ap/matrix/{GUEST1_UUID}");
    for attr in ["ap_config", "assign_adapter", "assign_domain"] {
        host.control("delay", &format!("{dir}/{attr} 1500"));
    }
    let starter = {
        let address = host.bus_address().to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let conn = zbus::connection::Builder::address(address.as_str())?
                    .build()
                    .await?;
                let m = apbus::proxy::ManagerProxy::new(&conn).await?;
                m.start("guest1")
                    .await
                    .map_err(|e| zbus::Error::Failure(e.to_string()))
            })
        })
    };
    // The mdev exists: the start is between create and its assignment.
    host.wait_for("the mdev to be created", || mdev_exists(&host, GUEST1_UUID));
    host.stop_apd();
    // Whatever the caller heard (success, or the connection closing), the
    // mdev is whole: its matrix is the definition's.
    let _ = starter.join().expect("the starter thread");
    for attr in ["ap_config", "assign_adapter", "assign_domain"] {
        host.control("delay", &format!("{dir}/{attr} 0"));
    }
    assert!(mdev_exists(&host, GUEST1_UUID));
    assert_eq!(
        host.read(&format!("{dir}/matrix")),
        "05.0004\n05.00ab\n06.0004\n06.00ab\n"
    );
    // apd comes back and finds it running.
    host.start_apd();
    let c = Client::new(&host);
    let g1 = c.mdev(GUEST1_UUID);
    assert!(c.run(g1.active()).expect("Active"));
    assert_eq!(c.run(g1.start_error()).expect("StartError"), "");
}
