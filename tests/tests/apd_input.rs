//! Bad D-Bus input: every method answers with a named error whose
//! sentence names the culprit, never a panic, and the daemon keeps
//! serving. Runs apd on its in-process simulator (`apd --sim`).

mod apd_support;

use apbus::{DesiredState, ErrorKind};
use apd_support::*;
use e2e::{Host, HostOptions, Mode, SEED_HOST};

fn kind<T: std::fmt::Debug>(r: Result<T, apbus::Error>) -> (ErrorKind, String) {
    let e = r.expect_err("bad input must be refused");
    (e.kind(), e.sentence())
}

#[test]
fn bad_input_gets_named_errors_and_apd_keeps_serving() {
    let mut host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        ..HostOptions::new(SEED_HOST)
    });
    let c = Client::new(&host);
    let m = c.manager();
    c.run(m.define(&guest1(false))).expect("define guest1");

    // mdev arguments.
    assert_eq!(kind(c.run(m.start(""))).0, ErrorKind::Invalid);
    let (k, s) = kind(c.run(m.start("no-such-guest")));
    assert_eq!(k, ErrorKind::NotFound);
    assert!(s.contains("no-such-guest"), "{s}");
    let (k, s) = kind(c.run(m.stop("00000000-0000-0000-0000-000000000000")));
    assert_eq!(k, ErrorKind::NotFound);
    assert!(s.contains("00000000-0000-0000-0000-000000000000"), "{s}");
    assert_eq!(
        kind(c.run(m.get_mdev("\u{1}%$ \u{7f}"))).0,
        ErrorKind::NotFound
    );
    // A UUID in capitals names the same mdev.
    let (info, _) = c
        .run(m.get_mdev(&GUEST1_UUID.to_uppercase()))
        .expect("any case");
    assert_eq!(info.uuid, GUEST1_UUID);

    // Id lists.
    let (k, s) = kind(c.run(m.assign("guest1", &ids(&[256], &[], &[]), "")));
    assert_eq!(k, ErrorKind::OutOfRange);
    assert!(s.contains("adapter 256"), "{s}");
    let (k, _) = kind(c.run(m.assign("guest1", &ids(&[], &[u32::MAX], &[]), "")));
    assert_eq!(k, ErrorKind::OutOfRange);
    assert_eq!(
        kind(c.run(m.assign("guest1", &ids(&[], &[], &[]), ""))).0,
        ErrorKind::Invalid
    );
    let huge: Vec<u32> = vec![1; 100_000];
    assert_eq!(
        kind(c.run(m.assign("guest1", &ids(&huge, &[], &[]), ""))).0,
        ErrorKind::Invalid
    );
    let (k, s) = kind(c.run(m.assign("guest1", &ids(&[5], &[], &[]), "sometimes")));
    assert_eq!(k, ErrorKind::Invalid);
    assert!(s.contains("sometimes"), "{s}");
    // guest1 is not active: live only is refused, persistent only works.
    assert_eq!(
        kind(c.run(m.assign("guest1", &ids(&[7], &[], &[]), "live"))).0,
        ErrorKind::Invalid
    );

    // Masks.
    let (k, s) = kind(c.run(m.set_masks("0X12", "", false)));
    assert_eq!(k, ErrorKind::Invalid);
    assert!(s.contains("0X12"), "{s}");
    assert_eq!(
        kind(c.run(m.set_masks("", "+300", false))).0,
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(c.run(m.set_masks("+1,2", "", false))).0,
        ErrorKind::Invalid
    );
    let long = "f".repeat(100_000);
    assert_eq!(
        kind(c.run(m.set_masks(&long, "", false))).0,
        ErrorKind::Invalid
    );
    // Masks unchanged by all that.
    assert_eq!(
        c.run(c.host().ap_mask()).expect("ApMask"),
        format!("0x{}", "f".repeat(64))
    );

    // Definitions.
    let (k, _) = kind(c.run(m.define(&def("zzz", "x", false, &[], &[], &[]))));
    assert_eq!(k, ErrorKind::Invalid);
    assert_eq!(
        kind(c.run(m.define(&def("", "a/b", false, &[], &[], &[])))).0,
        ErrorKind::Invalid
    );
    assert_eq!(
        kind(c.run(m.define(&def("", GUEST2_UUID, false, &[], &[], &[])))).0,
        ErrorKind::Invalid,
        "a name that looks like a UUID"
    );
    assert_eq!(
        kind(c.run(m.define(&def("", "big", false, &[1000], &[], &[])))).0,
        ErrorKind::OutOfRange
    );
    let (k, s) = kind(c.run(m.define(&guest1(true))));
    assert_eq!(k, ErrorKind::Exists);
    assert!(s.contains(GUEST1_UUID), "{s}");
    let (k, s) = kind(c.run(m.define(&def("", "guest1", false, &[], &[], &[]))));
    assert_eq!(k, ErrorKind::Exists);
    assert!(s.contains("guest1"), "{s}");
    // Two autostart definitions sharing queues: refused as a conflict.
    c.run(m.undefine("guest1")).expect("undefine");
    c.run(m.define(&guest1(true)))
        .expect("define guest1 autostart");
    let (k, s) = kind(c.run(m.define(&def("", "twin", true, &[5], &[4], &[]))));
    assert_eq!(k, ErrorKind::Conflict);
    assert!(s.contains("05.0004"), "{s}");
    assert_eq!(
        kind(c.run(m.import(&[guest2(false), guest2(false)]))).0,
        ErrorKind::Conflict
    );
    assert_eq!(kind(c.run(m.undefine("guest2"))).0, ErrorKind::NotFound);

    // Desired states.
    let bad = DesiredState {
        has_masks: true,
        apmask: "-5".into(),
        ..DesiredState::default()
    };
    assert_eq!(kind(c.run(m.check_state(&bad))).0, ErrorKind::Invalid);
    assert_eq!(kind(c.run(m.plan(&bad, false))).0, ErrorKind::Invalid);
    assert_eq!(kind(c.run(m.apply(&bad, false))).0, ErrorKind::Invalid);

    // A call with the wrong signature is refused by the D-Bus layer.
    let raw = c.run(async {
        let conn = zbus::connection::Builder::address(host.bus_address())?
            .build()
            .await?;
        conn.call_method(
            Some(apbus::BUS_NAME),
            apbus::ROOT_PATH,
            Some(apbus::MANAGER_INTERFACE),
            "Start",
            &(42u32, "x"),
        )
        .await
        .map(|_| ())
    });
    let e = raw.expect_err("wrong signature");
    let text = e.to_string();
    assert!(
        text.contains("ignature") || text.contains("InvalidArgs"),
        "{text}"
    );

    // Still serving, still the same process.
    assert!(host.apd_running());
    let status = c.run(m.get_status()).expect("GetStatus");
    assert_eq!(status.defined, 1);
    assert!(
        status.backend.starts_with("simulator"),
        "{}",
        status.backend
    );
    // guest1's queues still belong to the host (no masks were set).
    let findings = c.run(m.check()).expect("Check");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].kind, "host-owned");
    assert_eq!(findings[0].mdevs, vec![GUEST1_UUID.to_string()]);
}
