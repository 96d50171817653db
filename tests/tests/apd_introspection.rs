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

/// The lines inside the outer `<node>` of an introspection reply, without
/// references to child nodes (the file nests the mdev object itself).
fn body(xml: &str) -> Vec<String> {
    let start = xml.find("<node").expect("a <node> element");
    let lines: Vec<&str> = xml[start..].lines().collect();
    assert!(lines.len() >= 2, "{xml}");
    lines[1..lines.len() - 1]
        .iter()
        .filter(|l| !l.trim_start().starts_with("<node name="))
        .map(|l| l.to_string())
        .collect()
}

fn indent(lines: &[String], by: usize) -> String {
    let pad = " ".repeat(by);
    lines
        .iter()
        .map(|l| format!("{pad}{l}\n"))
        .collect::<String>()
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
    let root = c.introspect(apbus::ROOT_PATH);
    assert!(root.contains("<node name=\"mdev\"/>"), "{root}");
    let mdev_path = apbus::mdev_path(GUEST1_UUID);
    let mdev = c.introspect(&mdev_path);
    let leaf = mdev_path.rsplit('/').next().expect("a leaf");

    let live = format!(
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n\
         <!-- org.apctl.Apd1 as apd serves it: the root object and one mdev object\n     \
         (/org/apctl/Apd1/mdev/<uuid with _>). Generated from the live service by\n     \
         APD_UPDATE_XML=1 cargo test -p e2e --test apd_introspection -->\n\
         <node name=\"{root_path}\">\n{root_body}  <node name=\"mdev\">\n    <node name=\"{leaf}\">\n{mdev_body}    </node>\n  </node>\n</node>\n",
        root_path = apbus::ROOT_PATH,
        root_body = indent(&body(&root), 0),
        mdev_body = indent(&body(&mdev), 4),
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
