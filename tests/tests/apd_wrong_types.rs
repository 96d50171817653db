//! Issue 18: every D-Bus method of apd called with the wrong types, raw
//! (no typed proxy): missing arguments, extra arguments, a string where
//! an integer goes and the reverse, signed for unsigned, structures with
//! a field missing or of another type, and every property set (all are
//! read-only) with a value of its own type and of another. Each call must
//! get an error with a name and a sentence, never a reply; apd must not
//! panic or hang, keep serving, and nothing may change (the definitions on
//! disk, the masks, the mdevs). `apd_input` covers wrong *values* through
//! the typed proxies.

mod apd_support;

use apd_support::*;
use e2e::{Host, HostOptions, Mode, SEED_HOST};
use zbus::zvariant::{DynamicType, Value};

const PROPS: &str = "org.freedesktop.DBus.Properties";

/// A refused call: (error name, sentence).
type Refusal = (String, String);

struct Raw<'a> {
    client: &'a Client,
    conn: zbus::Connection,
}

impl Raw<'_> {
    /// Calls `member` of `iface` at `path` with `body`; the error it got.
    fn refused<B>(&self, path: &str, iface: &str, member: &str, body: &B) -> Refusal
    where
        B: zbus::export::serde::Serialize + DynamicType,
    {
        let sig = body.signature().to_string();
        let r = self.client.run(self.conn.call_method(
            Some(apbus::BUS_NAME),
            path,
            Some(iface),
            member,
            body,
        ));
        match r {
            Ok(reply) => panic!(
                "{iface}.{member} with a body of signature {sig:?} was answered, not refused: {:?}",
                reply.body().signature()
            ),
            Err(zbus::Error::MethodError(name, text, _)) => {
                let text = text.unwrap_or_default();
                assert!(
                    !text.trim().is_empty(),
                    "{iface}.{member} ({sig}): {name} without a sentence"
                );
                (name.to_string(), text)
            }
            Err(other) => panic!("{iface}.{member} ({sig}): not a D-Bus error: {other}"),
        }
    }

    fn manager<B: zbus::export::serde::Serialize + DynamicType>(
        &self,
        member: &str,
        body: &B,
    ) -> Refusal {
        self.refused(apbus::ROOT_PATH, apbus::MANAGER_INTERFACE, member, body)
    }
}

/// The state a wrong call must not change: definitions, masks, mdevs.
fn state(host: &Host) -> (String, String, String) {
    (
        host.apctl_ok(&["export"]),
        host.apctl_ok(&["masks"]),
        host.apctl_ok(&["--json", "list"]),
    )
}

/// Refused for its arguments: the standard InvalidArgs (properties,
/// introspection), or zbus's own error naming the signature it expected
/// (apd's methods: zbus checks their arguments before apd sees them).
fn invalid_args(r: &Refusal, what: &str) {
    let ok = r.0 == "org.freedesktop.DBus.Error.InvalidArgs"
        || (r.0 == "org.freedesktop.zbus.Error" && r.1.contains("Signature mismatch"));
    assert!(ok, "{what}: {} {}", r.0, r.1);
}

/// Every Manager method with arguments of the wrong types.
fn manager_calls(raw: &Raw<'_>) {
    let ids = (vec![5u32], vec![4u32], Vec::<u32>::new());
    let def = ("", "x", true, ids.clone());
    let state_ = (true, "", "", vec![def.clone()]);

    // Methods with a string argument: nothing, an integer, two strings.
    for member in ["GetMdev", "Undefine", "Start", "Stop"] {
        invalid_args(&raw.manager(member, &()), member);
        invalid_args(&raw.manager(member, &(5u32,)), member);
        invalid_args(&raw.manager(member, &("guest1", "guest1")), member);
        invalid_args(&raw.manager(member, &(Value::from("guest1"),)), member);
    }
    // Assign and Unassign: ids as strings, a list missing, signed ids,
    // scope as a boolean, arguments in the wrong order.
    for member in ["Assign", "Unassign"] {
        let cases: Vec<Refusal> = vec![
            raw.manager(member, &("guest1",)),
            raw.manager(member, &("guest1", (vec!["5"], vec!["4"], vec!["0"]), "")),
            raw.manager(member, &("guest1", (vec![5u32], vec![4u32]), "")),
            raw.manager(
                member,
                &("guest1", (vec![5i32], vec![4i32], vec![0i32]), ""),
            ),
            raw.manager(member, &("guest1", ids.clone(), true)),
            raw.manager(member, &(ids.clone(), "guest1", "")),
            raw.manager(member, &("guest1", vec![5u32, 4, 0], "")),
        ];
        for r in &cases {
            invalid_args(r, member);
        }
    }
    // SetMasks: integers for masks, a string for the flag, a flag missing.
    invalid_args(&raw.manager("SetMasks", &(0u32, 0u32, false)), "SetMasks");
    invalid_args(&raw.manager("SetMasks", &("", "", "yes")), "SetMasks");
    invalid_args(&raw.manager("SetMasks", &("", "")), "SetMasks");
    invalid_args(
        &raw.manager("SetMasks", &("-5", "", false, false)),
        "SetMasks",
    );
    // ConfigureAdapter: signed, 64-bit, a string, a flag as an integer.
    invalid_args(
        &raw.manager("ConfigureAdapter", &(-1i32, false)),
        "ConfigureAdapter",
    );
    invalid_args(
        &raw.manager("ConfigureAdapter", &(5u64, false)),
        "ConfigureAdapter",
    );
    invalid_args(
        &raw.manager("ConfigureAdapter", &("5", false)),
        "ConfigureAdapter",
    );
    invalid_args(
        &raw.manager("ConfigureAdapter", &(5u32, 0u32)),
        "ConfigureAdapter",
    );
    invalid_args(
        &raw.manager("ConfigureAdapter", &(5u32,)),
        "ConfigureAdapter",
    );
    // Define and Import: the definition flattened, a field missing, ids
    // of another type, one definition where a list goes.
    // Not sent: the definition's fields as four arguments (`ssb(auauau)`).
    // zvariant 5 parses that body signature and `(ssb(auauau))` into the
    // same signature, so zbus takes it for the one structure; it is the
    // same definition, not a different type.
    invalid_args(&raw.manager("Define", &(("", "x", ids.clone()),)), "Define");
    invalid_args(
        &raw.manager(
            "Define",
            &(("", "x", true, (vec![5u8], vec![4u8], vec![0u8])),),
        ),
        "Define",
    );
    invalid_args(&raw.manager("Define", &(vec![def.clone()],)), "Define");
    invalid_args(&raw.manager("Import", &(def.clone(),)), "Import");
    invalid_args(&raw.manager("Import", &(vec![("", "x", true)],)), "Import");
    invalid_args(&raw.manager("Import", &(vec!["guest1"],)), "Import");
    // The desired-state methods: the state's fields flattened, a field
    // missing, prune missing or a string.
    for member in ["CheckState", "Plan", "Apply"] {
        invalid_args(&raw.manager(member, &()), member);
        invalid_args(
            &raw.manager(member, &((true, "", vec![def.clone()]), false)),
            member,
        );
    }
    invalid_args(
        &raw.manager("CheckState", &(state_.clone(), false)),
        "CheckState",
    );
    for member in ["Plan", "Apply"] {
        invalid_args(&raw.manager(member, &(state_.clone(),)), member);
        invalid_args(&raw.manager(member, &(state_.clone(), "prune")), member);
    }
    // Methods without arguments, given some.
    for member in [
        "GetStatus",
        "ListMdevs",
        "ListQueues",
        "ListAdapters",
        "Check",
        "Export",
    ] {
        invalid_args(&raw.manager(member, &("x",)), member);
        invalid_args(&raw.manager(member, &(0u32, vec![1u32])), member);
    }
    // A method apd does not have.
    let r = raw.manager("Reboot", &());
    assert_eq!(r.0, "org.freedesktop.DBus.Error.UnknownMethod", "{}", r.1);
}

/// Every property set (all read-only) and wrong gets.
fn property_calls(raw: &Raw<'_>) {
    // Properties: every one is read-only; a set with its own type and
    // with another is refused, a get with wrong arguments too.
    let mdev_path = apbus::mdev_path(GUEST1_UUID);
    let host_props: [(&str, Value<'_>); 9] = [
        ("ApMask", Value::from("0x00")),
        ("AqMask", Value::from("0x00")),
        ("PersistentApMask", Value::from("")),
        ("PersistentAqMask", Value::from("")),
        ("MaxAdapterId", Value::from(7u32)),
        ("MaxDomainId", Value::from(7u32)),
        ("VfioApLoaded", Value::from(false)),
        ("Adapters", Value::from(Vec::<u32>::new())),
        ("LoadErrors", Value::from(vec!["x"])),
    ];
    let mdev_props: [(&str, Value<'_>); 10] = [
        ("Uuid", Value::from(GUEST2_UUID)),
        ("Name", Value::from("guest9")),
        ("Defined", Value::from(false)),
        ("Active", Value::from(false)),
        ("Autostart", Value::from(true)),
        ("Adapters", Value::from(vec![7u32])),
        ("Domains", Value::from(vec![7u32])),
        ("ControlDomains", Value::from(vec![7u32])),
        ("GuestMatrix", Value::from(vec!["07.0007"])),
        ("StartError", Value::from("x")),
    ];
    for (path, iface, props) in [
        (apbus::ROOT_PATH, apbus::HOST_INTERFACE, &host_props[..]),
        (mdev_path.as_str(), apbus::MDEV_INTERFACE, &mdev_props[..]),
    ] {
        for (name, value) in props {
            for v in [
                value.try_clone().expect("value"),
                Value::from(-1i64),
                Value::from("x"),
            ] {
                let r = raw.refused(path, PROPS, "Set", &(iface, *name, v));
                // zbus knows no setter of a read-only property: it says
                // UnknownProperty, naming it (a setter that refuses would
                // make the property read-write in the introspection).
                assert!(
                    matches!(
                        r.0.as_str(),
                        "org.freedesktop.DBus.Error.PropertyReadOnly"
                            | "org.freedesktop.DBus.Error.UnknownProperty"
                            | "org.freedesktop.DBus.Error.InvalidArgs"
                    ) && r.1.contains(*name),
                    "Set {iface}.{name}: {} {}",
                    r.0,
                    r.1
                );
            }
            // Set without a variant, Get with an integer for the name.
            invalid_args(&raw.refused(path, PROPS, "Set", &(iface, *name, "x")), name);
            invalid_args(&raw.refused(path, PROPS, "Get", &(iface, 5u32)), name);
        }
        invalid_args(&raw.refused(path, PROPS, "GetAll", &(5u32,)), iface);
        let r = raw.refused(path, PROPS, "Get", &(iface, "NoSuchProperty"));
        assert!(
            r.0.ends_with("UnknownProperty") || r.0.ends_with("InvalidArgs"),
            "{r:?}"
        );
        let r = raw.refused(path, PROPS, "Get", &("org.apctl.Apd1.Nothing", "Name"));
        assert!(
            r.0.ends_with("UnknownInterface") || r.0.ends_with("InvalidArgs"),
            "{r:?}"
        );
    }
}

/// The standard interfaces with arguments they do not take.
fn standard_calls(raw: &Raw<'_>) {
    // Introspection and the object manager with arguments.
    invalid_args(
        &raw.refused(
            apbus::ROOT_PATH,
            "org.freedesktop.DBus.Introspectable",
            "Introspect",
            &("x",),
        ),
        "Introspect",
    );
    invalid_args(
        &raw.refused(
            apbus::ROOT_PATH,
            "org.freedesktop.DBus.ObjectManager",
            "GetManagedObjects",
            &(1u32,),
        ),
        "GetManagedObjects",
    );
}

#[test]
fn every_method_called_with_wrong_types_is_refused_and_nothing_changes() {
    let mut host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        ..HostOptions::new(SEED_HOST)
    });
    let c = Client::new(&host);
    let m = c.manager();
    c.run(m.set_masks("-5,-6", "-4,-0x47,-0xab,-0xff", true))
        .expect("masks");
    c.run(m.define(&guest1(false))).expect("define guest1");
    c.run(m.start("guest1")).expect("start guest1");
    let before = state(&host);
    let files_before = testkit::dir_snapshot(host.config_dir());
    let conn = c.run(async {
        zbus::connection::Builder::address(host.bus_address())?
            .build()
            .await
    });
    let raw = Raw {
        client: &c,
        conn: conn.expect("a raw connection"),
    };
    manager_calls(&raw);
    property_calls(&raw);
    standard_calls(&raw);

    // Still serving, nothing changed, no panic in the log.
    assert!(host.apd_running(), "apd exited");
    assert_eq!(state(&host), before, "a refused call changed apd's state");
    let files_after = testkit::dir_snapshot(host.config_dir());
    let d = testkit::diff(&files_before, &files_after);
    assert!(
        d.is_empty(),
        "a refused call changed the definitions: {d:#?}"
    );
    let log = host.apd_log();
    assert!(!log.contains("panicked"), "apd panicked:\n{log}");
    c.run(m.get_status())
        .expect("GetStatus after the wrong calls");
}
