//! The checked-in introspection XML (`apd/org.apctl.Apd1.xml`) is what the
//! live service says about the root object and an mdev object. After a
//! deliberate change of the D-Bus API regenerate it with
//! `APD_UPDATE_XML=1 cargo test -p e2e --test apd_introspection`.

mod apd_support;

use std::path::PathBuf;

use apd_support::*;
use e2e::{Host, HostOptions, Mode, SEED_HOST};

fn xml_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("apd")
        .join("org.apctl.Apd1.xml")
}

#[test]
fn the_checked_in_introspection_xml_matches_the_live_service() {
    let host = Host::start_with(HostOptions {
        mode: Mode::InProcess,
        ..HostOptions::new(SEED_HOST)
    });
    let c = Client::new(&host);
    c.run(c.manager().define(&guest1(false)))
        .expect("an mdev object to introspect");
    // zbus introspects recursively: the root's reply holds the mdev object.
    let root = c.introspect(apbus::ROOT_PATH);
    let leaf = apbus::mdev_path(GUEST1_UUID);
    let leaf = leaf.rsplit('/').next().expect("a leaf");
    assert!(root.contains(&format!("<node name=\"{leaf}\">")), "{root}");
    let start = root.find("<node>").expect("a <node> element");
    let live = format!(
        "{}<!-- org.apctl.Apd1 as apd serves it: the root object {} with one mdev\n     \
         object below it. Generated from the live service: run the e2e test\n     \
         apd_introspection with APD_UPDATE_XML=1 to regenerate it. -->\n{}",
        &root[..start],
        apbus::ROOT_PATH,
        &root[start..]
    );

    let path = xml_file();
    if std::env::var_os("APD_UPDATE_XML").is_some() {
        std::fs::write(&path, &live).expect("write the introspection XML");
        eprintln!("wrote {}", path.display());
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); generate it with APD_UPDATE_XML=1 cargo test -p e2e --test apd_introspection",
            path.display()
        )
    });
    if checked_in != live {
        let diff: Vec<String> = checked_in
            .lines()
            .zip(live.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  file: {a}\n  live: {b}", i + 1))
            .collect();
        panic!(
            "{} differs from the live service ({} vs {} lines):\n{}\n\
             If the D-Bus API changed on purpose, regenerate it with \
             APD_UPDATE_XML=1 cargo test -p e2e --test apd_introspection",
            path.display(),
            checked_in.lines().count(),
            live.lines().count(),
            diff.join("\n")
        );
    }
    // XML comments may not hold `--` (the file must stay well-formed).
    for comment in checked_in.split("<!--").skip(1) {
        let inner = comment.split("-->").next().unwrap_or("");
        assert!(!inner.contains("--"), "an XML comment holds --: {inner}");
    }
    // The contract's names are all there.
    for name in [
        apbus::MANAGER_INTERFACE,
        apbus::HOST_INTERFACE,
        apbus::MDEV_INTERFACE,
        "org.freedesktop.DBus.ObjectManager",
        "<signal name=\"Event\">",
        "<method name=\"SetMasks\">",
        "<property name=\"GuestMatrix\"",
    ] {
        assert!(checked_in.contains(name), "{name} is missing");
    }
}
