//! Expected output ("golden") files for what people read, rendered from
//! fixed apbus values (the seed scenario: Guest1 adapters 5,6 domains
//! 4,0xab; Guest2 adapter 5 domains 0x47,0xff). Each file in
//! `tests/expected/` is compared byte for byte; regenerate them all with
//! `APCTL_REGENERATE=1 cargo test -p apctl --test golden` and review the diff.

use apbus::{ApqnInfo, Finding, IdLists, MdevInfo, PlanStep, QueueInfo, Status};
use apctl::render::{self, events::MonitorEvent, Style};
use libap::ApMask;
use std::path::Path;

const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
const G2: &str = "9d0e6f8a-4a43-4f4d-a1d1-3c1c3d1b2a10";
const FOREIGN: &str = "2c4b1a6e-93f0-4c1e-8f0a-5d6b7c8d9e0f";

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(name);
    if std::env::var_os("APCTL_REGENERATE").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create tests/expected");
        std::fs::write(&path, actual).expect("write the expected file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run APCTL_REGENERATE=1 cargo test -p apctl --test golden",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} differs from the expected output; if the change is intended run APCTL_REGENERATE=1 cargo test -p apctl --test golden"
    );
}

fn ids(a: &[u32], d: &[u32], c: &[u32]) -> IdLists {
    IdLists {
        adapters: a.to_vec(),
        domains: d.to_vec(),
        control_domains: c.to_vec(),
    }
}

fn guest1() -> MdevInfo {
    MdevInfo {
        uuid: G1.into(),
        name: "guest1".into(),
        defined: true,
        active: true,
        autostart: true,
        ids: ids(&[5, 6], &[4, 0xab], &[]),
        guest_matrix: vec![
            "05.0004".into(),
            "05.00ab".into(),
            "06.0004".into(),
            "06.00ab".into(),
        ],
        differs: false,
        persistent: ids(&[5, 6], &[4, 0xab], &[]),
        start_error: String::new(),
    }
}

fn guest2() -> MdevInfo {
    MdevInfo {
        uuid: G2.into(),
        name: "guest2".into(),
        defined: true,
        active: false,
        autostart: false,
        ids: ids(&[5], &[0x47, 0xff], &[0x47]),
        guest_matrix: vec![],
        differs: false,
        persistent: ids(&[5], &[0x47, 0xff], &[0x47]),
        start_error:
            "cannot start guest2: queue 05.0047 is owned by the host (aqmask bit 0x47 is set)"
                .into(),
    }
}

fn foreign() -> MdevInfo {
    MdevInfo {
        uuid: FOREIGN.into(),
        name: String::new(),
        defined: false,
        active: true,
        autostart: false,
        ids: ids(&[7], &[0, 1, 2, 3], &[]),
        guest_matrix: vec![],
        differs: false,
        persistent: IdLists::default(),
        start_error: String::new(),
    }
}

fn seed_list() -> Vec<MdevInfo> {
    let mut g1 = guest1();
    // Someone hot-unplugged adapter 6 live only.
    g1.ids = ids(&[5], &[4, 0xab], &[]);
    g1.guest_matrix = vec!["05.0004".into(), "05.00ab".into()];
    g1.differs = true;
    let mut v = vec![foreign(), guest2(), g1];
    v.sort_by(render::mdevs::list_order);
    v
}

#[test]
fn list_table() {
    golden("list.txt", &render::mdevs::list(&seed_list(), Style::PLAIN));
    golden("list-empty.txt", &render::mdevs::list(&[], Style::PLAIN));
    // On a terminal: the same alignment, with colour codes around cells.
    golden(
        "list-color.txt",
        &render::mdevs::list(&seed_list(), Style { color: true }),
    );
}

#[test]
fn list_json() {
    let v: Vec<render::json::MdevJson> = seed_list()
        .iter()
        .map(render::json::MdevJson::from)
        .collect();
    golden("list.json", &render::to_json(&v));
}

fn guest1_apqns() -> Vec<ApqnInfo> {
    vec![
        ApqnInfo {
            apqn: "05.0004".into(),
            in_guest_matrix: true,
            usable: true,
            reason: String::new(),
        },
        ApqnInfo {
            apqn: "05.00ab".into(),
            in_guest_matrix: true,
            usable: true,
            reason: String::new(),
        },
        ApqnInfo {
            apqn: "06.0004".into(),
            in_guest_matrix: true,
            usable: false,
            reason: "adapter 6 is configured off; the guest sees it deconfigured until apctl config 6 on".into(),
        },
        ApqnInfo {
            apqn: "06.00ab".into(),
            in_guest_matrix: true,
            usable: false,
            reason: "adapter 6 is configured off; the guest sees it deconfigured until apctl config 6 on".into(),
        },
    ]
}

#[test]
fn show_views() {
    golden(
        "show-guest1.txt",
        &render::mdevs::show(&guest1(), &guest1_apqns(), Style::PLAIN),
    );
    golden(
        "show-guest1.json",
        &render::to_json(&render::json::ShowJson::new(&guest1(), &guest1_apqns())),
    );
    let g2_apqns = vec![
        ApqnInfo {
            apqn: "05.0047".into(),
            in_guest_matrix: false,
            usable: false,
            reason: "queue 05.0047 is owned by the host (apmask bit 5 and aqmask bit 0x47 are set); apctl masks --aqmask -0x47".into(),
        },
        ApqnInfo {
            apqn: "05.00ff".into(),
            in_guest_matrix: false,
            usable: false,
            reason: "the mdev is not active (apctl start guest2)".into(),
        },
    ];
    golden(
        "show-guest2.txt",
        &render::mdevs::show(&guest2(), &g2_apqns, Style::PLAIN),
    );
    let mut differing = seed_list()
        .into_iter()
        .find(|m| m.name == "guest1")
        .expect("guest1");
    differing.start_error.clear();
    golden(
        "show-differs.txt",
        &render::mdevs::show(&differing, &guest1_apqns()[..2], Style::PLAIN),
    );
    let mut empty = foreign();
    empty.ids = ids(&[7], &[], &[]);
    golden(
        "show-no-apqns.txt",
        &render::mdevs::show(&empty, &[], Style::PLAIN),
    );
}

fn queue(apqn: &str, owner: &str, uuid: &str, name: &str, driver: &str) -> QueueInfo {
    QueueInfo {
        apqn: apqn.into(),
        card_type: "CEX7C".into(),
        mode: "cca".into(),
        config: true,
        online: true,
        chkstop: false,
        driver: driver.into(),
        owner: owner.into(),
        owner_uuid: uuid.into(),
        owner_name: name.into(),
    }
}

#[test]
fn queues_table() {
    let mut off = queue("06.0004", "mdev", G1, "guest1", "vfio_ap");
    off.config = false;
    off.online = false;
    let mut accel = queue("07.0000", "mdev", FOREIGN, "", "vfio_ap");
    accel.card_type = "CEX7A".into();
    accel.mode = "accel".into();
    let mut stopped = queue("01.0000", "host", "", "", "cex4queue");
    stopped.chkstop = true;
    stopped.online = false;
    let queues = vec![
        queue("05.00ab", "mdev", G1, "guest1", "vfio_ap"),
        queue("05.0004", "mdev", G1, "guest1", "vfio_ap"),
        queue("05.0047", "free", "", "", "vfio_ap"),
        off,
        accel,
        stopped,
        queue("01.0004", "host", "", "", "cex4queue"),
        queue("04.0004", "free", "", "", ""),
    ];
    golden("queues.txt", &render::host::queues(&queues, Style::PLAIN));
    let v: Vec<render::json::QueueJson> =
        queues.iter().map(render::json::QueueJson::from).collect();
    golden("queues.json", &render::to_json(&v));
    golden("queues-none.txt", &render::host::queues(&[], Style::PLAIN));
}

fn seed_masks() -> (String, String) {
    let ap = ApMask::full().apply_write("-5,-6").expect("apmask");
    let aq = ApMask::full()
        .apply_write("-4,-0x47,-0xab,-0xff")
        .expect("aqmask");
    (format!("{ap}\n"), format!("{aq}\n"))
}

fn status() -> Status {
    let (apmask, aqmask) = seed_masks();
    Status {
        version: "0.1.0".into(),
        backend: "/sys".into(),
        vfio_ap_loaded: true,
        apmask: apmask.clone(),
        aqmask,
        persistent_apmask: apmask,
        persistent_aqmask: String::new(),
        adapters: 7,
        queues: 35,
        queues_host: 20,
        queues_free: 11,
        queues_assigned: 4,
        defined: 2,
        active: 2,
        load_errors: vec![],
        start_failures: vec![],
    }
}

#[test]
fn status_views() {
    golden(
        "status.txt",
        &render::host::status(&status(), &[], Style::PLAIN),
    );
    let mut troubled = status();
    troubled.vfio_ap_loaded = false;
    troubled.load_errors = vec![(
        "/etc/apd/mdevs/3f1e2d4c-0000-4000-8000-000000000001.toml".into(),
        "line 4: domains holds 300, outside 0..=255".into(),
    )];
    troubled.start_failures = vec![(
        G2.into(),
        "guest2".into(),
        "cannot start guest2: queue 05.0047 is owned by the host (aqmask bit 0x47 is set)".into(),
    )];
    let twice = vec![format!(
        "guest1 ({G1}) is defined twice, by apd in /etc/apd/mdevs/{G1}.toml and by mdevctl in /etc/mdevctl.d/matrix/{G1}: ..."
    )];
    golden(
        "status-problems.txt",
        &render::host::status(&troubled, &twice, Style::PLAIN),
    );
    let mut j = render::json::StatusJson::from(&troubled);
    j.warnings = twice;
    golden("status-problems.json", &render::to_json(&j));
}

#[test]
fn masks_view() {
    let m = render::host::masks_json(&status(), 255, 255);
    golden("masks.txt", &render::host::masks(&m, Style::PLAIN));
    golden("masks.json", &render::to_json(&m));
    // chzdev's rule stores another apmask for boot than apd does.
    let mut both = m.clone();
    both.chzdev = Some(render::json::ChzdevJson {
        file: "/etc/udev/rules.d/41-ap.rules".into(),
        apmask: Some(format!("0x{}", "f".repeat(64))),
        aqmask: None,
        problem: None,
    });
    golden(
        "masks-chzdev.txt",
        &render::host::masks(&both, Style::PLAIN),
    );
}

#[test]
fn check_and_plan() {
    let findings = vec![
        Finding {
            severity: "warning".into(),
            kind: "over-provisioned".into(),
            message: "guest2 (9d0e6f8a-4a43-4f4d-a1d1-3c1c3d1b2a10) names adapter 9, which is not in the host configuration; it reaches the guest when the adapter appears".into(),
            apqns: vec![],
            mdevs: vec![G2.into()],
        },
        Finding {
            severity: "error".into(),
            kind: "shared-autostart".into(),
            message: "guest1 (62177883-f1bb-47f0-914d-32a22e3a8804) and guest2 (9d0e6f8a-4a43-4f4d-a1d1-3c1c3d1b2a10) both start at boot and share queue 05.0004".into(),
            apqns: vec!["05.0004".into()],
            mdevs: vec![G1.into(), G2.into()],
        },
    ];
    golden(
        "check.txt",
        &render::state::findings(&findings, "host.toml", Style::PLAIN),
    );
    golden(
        "check-clean.txt",
        &render::state::findings(&[], "the stored definitions", Style::PLAIN),
    );
    let step = |action: &str, target: &str, uuid: &str, detail: &str| PlanStep {
        action: action.into(),
        target: target.into(),
        uuid: uuid.into(),
        detail: detail.into(),
    };
    let steps = vec![
        step(
            "set-masks",
            "host",
            "",
            "give adapters 5,6 to vfio_ap (apmask -5,-6)",
        ),
        step(
            "define",
            "guest1",
            G1,
            "define guest1 with adapters 5,6, domains 0x04,0xab",
        ),
        step(
            "start",
            "guest1",
            G1,
            "create guest1 and assign adapters 5,6, domains 0x04,0xab",
        ),
    ];
    golden(
        "apply-dry-run.txt",
        &render::state::plan(&steps, false, "host.toml", Style::PLAIN),
    );
    golden(
        "apply-dry-run.json",
        &render::to_json(&render::json::PlanJson {
            steps: steps.iter().map(render::json::StepJson::from).collect(),
        }),
    );
    golden(
        "apply-empty.txt",
        &render::state::plan(&[], true, "host.toml", Style::PLAIN),
    );
}

#[test]
fn monitor_lines() {
    let events = [
        MonitorEvent::Event {
            kind: "mdev-started".into(),
            uuid: G1.into(),
            message: "guest1 started with 4 queues".into(),
        },
        MonitorEvent::Added {
            uuid: Some(G1.into()),
            interfaces: vec!["org.apctl.Apd1.Mdev".into()],
        },
        MonitorEvent::PropertiesChanged {
            uuid: Some(G1.into()),
            interface: "org.apctl.Apd1.Mdev".into(),
            changed: vec![
                ("Active".into(), serde_json::json!(true)),
                (
                    "GuestMatrix".into(),
                    serde_json::json!(["05.0004", "05.00ab"]),
                ),
            ],
            invalidated: vec![],
        },
        MonitorEvent::Event {
            kind: "adapter-config".into(),
            uuid: String::new(),
            message: "adapter 6 configured off".into(),
        },
        MonitorEvent::Removed {
            uuid: Some(G1.into()),
            interfaces: vec!["org.apctl.Apd1.Mdev".into()],
        },
        MonitorEvent::ApdStopped,
    ];
    let lines: String = events.iter().map(|e| format!("{}\n", e.line())).collect();
    golden("monitor.txt", &lines);
    let json: String = events.iter().map(|e| format!("{}\n", e.json())).collect();
    golden("monitor.jsonl", &json);
}
