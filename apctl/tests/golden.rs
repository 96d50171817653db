//! Expected output ("golden") files for what people read, rendered from
//! fixed apbus values (the seed scenario: Guest1 adapters 5,6 domains
//! 4,0xab; Guest2 adapter 5 domains 0x47,0xff). Each file in
//! `tests/expected/` is compared byte for byte; regenerate them all with
//! `APCTL_REGENERATE=1 cargo test -p apctl --test golden` and review the diff.

use apbus::{AdapterInfo, ApqnInfo, Finding, IdLists, MdevInfo, PlanStep, QueueInfo, Status};
use apctl::render::{self, events::MonitorEvent, happenings, matrix, Style};
use libap::ApMask;
use std::collections::BTreeMap;
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

/// What `monitor` prints for a sequence of apd's signals, fed as apd
/// sends them: property values first, then the `Event` of the change.
fn monitor_happenings(events: &[Vec<MonitorEvent>]) -> Vec<happenings::Happening> {
    let (apmask, aqmask) = seed_masks();
    let mut g1 = guest1();
    g1.active = false;
    g1.guest_matrix.clear();
    let host = happenings::HostView {
        ap_mask: apmask,
        aq_mask: aqmask,
        max_adapter_id: 255,
        max_domain_id: 255,
        vfio_ap_loaded: true,
        adapters: seed_host(true, vec![], &[]).adapters,
        ..Default::default()
    };
    let mut f = happenings::Follower::new(host, &[g1]);
    let mut out = Vec::new();
    // Each inner list arrives together, as one batch of signals.
    for batch in events {
        for e in batch {
            out.extend(f.feed(e));
        }
        out.extend(f.flush());
    }
    out
}

fn changed(uuid: Option<&str>, props: &[(&str, serde_json::Value)]) -> MonitorEvent {
    MonitorEvent::PropertiesChanged {
        uuid: uuid.map(str::to_string),
        interface: if uuid.is_some() {
            "org.apctl.Apd1.Mdev"
        } else {
            "org.apctl.Apd1.Host"
        }
        .into(),
        changed: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        invalidated: vec![],
    }
}

fn event(kind: &str, uuid: &str, message: &str) -> MonitorEvent {
    MonitorEvent::Event {
        kind: kind.into(),
        uuid: uuid.into(),
        message: message.into(),
    }
}

/// The host's Adapters property as apd sends it (structures as arrays).
fn adapters_property(off: &[u32]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = SEED_TYPES
        .iter()
        .map(|&(id, t)| {
            serde_json::json!([id, t, "cca", !off.contains(&id), !off.contains(&id), false])
        })
        .collect();
    serde_json::Value::Array(list)
}

#[test]
fn monitor_lines() {
    use serde_json::json;
    let g2_props = vec![
        ("Active".to_string(), json!(false)),
        ("Adapters".to_string(), json!([5])),
        ("Autostart".to_string(), json!(false)),
        ("ControlDomains".to_string(), json!([])),
        ("Defined".to_string(), json!(true)),
        ("Domains".to_string(), json!([0x47, 0xff])),
        ("GuestMatrix".to_string(), json!([])),
        ("Name".to_string(), json!("guest2")),
        ("StartError".to_string(), json!("")),
        ("Uuid".to_string(), json!(G2)),
    ];
    let persistent_ap = ApMask::full().apply_write("-5,-6").expect("ap").to_string();
    let persistent_aq = ApMask::full()
        .apply_write("-4,-0x47")
        .expect("aq")
        .to_string();
    let events = vec![
        vec![
            MonitorEvent::Added {
                uuid: Some(G2.into()),
                interfaces: vec!["org.apctl.Apd1.Mdev".into()],
                properties: g2_props,
            },
            event(
                "definition-changed",
                G2,
                "the definition of mdev guest2 was defined",
            ),
        ],
        vec![
            changed(
                Some(G1),
                &[
                    ("Active", json!(true)),
                    (
                        "GuestMatrix",
                        json!(["05.0004", "05.00ab", "06.0004", "06.00ab"]),
                    ),
                ],
            ),
            event("mdev-started", G1, "mdev guest1 was started"),
        ],
        vec![
            changed(
                Some(G1),
                &[
                    ("Domains", json!([0xab])),
                    ("GuestMatrix", json!(["05.00ab", "06.00ab"])),
                ],
            ),
            event(
                "mdev-changed",
                G1,
                "mdev guest1 now has adapters 0x05,0x06, domains 0xab",
            ),
            event(
                "definition-changed",
                G1,
                "the definition of mdev guest1 was changed",
            ),
        ],
        vec![
            changed(None, &[("Adapters", adapters_property(&[6]))]),
            event(
                "adapter-config",
                "",
                "adapter 6 was configured off (standby)",
            ),
        ],
        vec![
            changed(None, &[("PersistentApMask", json!(persistent_ap))]),
            changed(None, &[("PersistentAqMask", json!(persistent_aq))]),
        ],
        vec![event(
            "start-failed",
            G2,
            "cannot start guest2: queue 05.0047 is owned by the host (aqmask bit 0x47 is set)",
        )],
        vec![changed(
            None,
            &[(
                "LoadErrors",
                json!([["/etc/apd/mdevs/x.toml", "line 2, column 1: unknown key"]]),
            )],
        )],
        vec![
            changed(
                Some(G1),
                &[("Active", json!(false)), ("GuestMatrix", json!([]))],
            ),
            event("mdev-stopped", G1, "mdev guest1 was stopped"),
        ],
        vec![
            MonitorEvent::Removed {
                uuid: Some(G2.into()),
                interfaces: vec!["org.apctl.Apd1.Mdev".into()],
            },
            event(
                "definition-changed",
                G2,
                "the definition of mdev guest2 was undefined",
            ),
        ],
        vec![
            changed(
                Some(FOREIGN),
                &[("Active", json!(true)), ("Adapters", json!([7]))],
            ),
            event("mdev-started", FOREIGN, "mdev started"),
        ],
        vec![MonitorEvent::ApdStopped],
        vec![MonitorEvent::ApdStarted],
    ];
    let happened = monitor_happenings(&events);
    let lines: String = happened.iter().map(|h| format!("{}\n", h.line())).collect();
    golden("monitor.txt", &lines);
    let json: String = happened.iter().map(|h| format!("{}\n", h.json())).collect();
    golden("monitor.jsonl", &json);
}

// ---- matrix: the seed LPAR (adapters 1-7, usage domains 0, 4, 0x47, 0xab,
// 0xff) as apd would serve it.

const SEED_TYPES: [(u32, &str); 7] = [
    (1, "CEX7C"),
    (2, "CEX7A"),
    (3, "CEX7P"),
    (4, "CEX6C"),
    (5, "CEX7C"),
    (6, "CEX7C"),
    (7, "CEX8P"),
];
const SEED_DOMAINS: [u32; 5] = [0, 4, 0x47, 0xab, 0xff];
const OFF_REASON: &str =
    "adapter 6 is configured off (standby); configure it on with `apctl config 6 on`";

/// The seed host: `masked` after `-5,-6` / `-4,-0x47,-0xab,-0xff`, these
/// mdevs active, these adapters configured off. Queues name the first
/// mdev holding them, as apd's ListQueues does.
struct SeedHost {
    adapters: Vec<AdapterInfo>,
    queues: Vec<QueueInfo>,
    mdevs: Vec<MdevInfo>,
    verdicts: BTreeMap<String, Vec<ApqnInfo>>,
}

fn seed_host(masked: bool, mdevs: Vec<MdevInfo>, off: &[u32]) -> SeedHost {
    let adapters: Vec<AdapterInfo> = SEED_TYPES
        .iter()
        .map(|&(id, t)| AdapterInfo {
            id,
            card_type: t.into(),
            mode: "cca".into(),
            config: !off.contains(&id),
            online: !off.contains(&id),
            chkstop: false,
        })
        .collect();
    let holds = |m: &MdevInfo, a: u32, d: u32| {
        m.active && m.ids.adapters.contains(&a) && m.ids.domains.contains(&d)
    };
    let mut queues = Vec::new();
    for a in &adapters {
        for &d in &SEED_DOMAINS {
            let vfio = masked && ([5, 6].contains(&a.id) || d != 0);
            let apqn = format!("{:02x}.{d:04x}", a.id);
            // The masks come first, as in libap's Host::owner.
            let mut q = match mdevs.iter().find(|m| holds(m, a.id, d)) {
                _ if !vfio => queue(&apqn, "host", "", "", "cex4queue"),
                Some(m) => queue(&apqn, "mdev", &m.uuid, &m.name, "vfio_ap"),
                None => queue(&apqn, "free", "", "", "vfio_ap"),
            };
            q.card_type = a.card_type.clone();
            q.config = a.config;
            q.online = a.online;
            queues.push(q);
        }
    }
    let verdicts = mdevs
        .iter()
        .filter(|m| m.active)
        .map(|m| {
            let mut v = Vec::new();
            for &a in &m.ids.adapters {
                for &d in &m.ids.domains {
                    v.push(ApqnInfo {
                        apqn: format!("{a:02x}.{d:04x}"),
                        in_guest_matrix: true,
                        usable: !off.contains(&a),
                        reason: if off.contains(&a) {
                            OFF_REASON.into()
                        } else {
                            String::new()
                        },
                    });
                }
            }
            (m.uuid.clone(), v)
        })
        .collect();
    SeedHost {
        adapters,
        queues,
        mdevs,
        verdicts,
    }
}

fn grid(h: &SeedHost, a: Option<&ApMask>, d: Option<&ApMask>) -> matrix::Grid {
    matrix::build(&matrix::Inputs {
        adapters: &h.adapters,
        queues: &h.queues,
        mdevs: &h.mdevs,
        verdicts: &h.verdicts,
        only_adapters: a,
        only_domains: d,
    })
}

fn active_guests() -> Vec<MdevInfo> {
    let mut g2 = guest2();
    g2.active = true;
    g2.ids = ids(&[5], &[0x47, 0xff], &[]);
    g2.guest_matrix = vec!["05.0047".into(), "05.00ff".into()];
    g2.start_error.clear();
    vec![guest1(), g2]
}

/// Every line within 80 columns, colour codes aside.
fn fits_80(text: &str) {
    for line in text.lines() {
        let visible = line.replace("\x1b[31m", "").replace("\x1b[33m", "");
        let visible = visible.replace("\x1b[1m", "").replace("\x1b[0m", "");
        assert!(visible.chars().count() <= 80, "wider than 80: {line:?}");
    }
}

#[test]
fn matrix_seed_views() {
    let before = seed_host(false, vec![], &[]);
    let after = seed_host(true, vec![], &[]);
    let guests = seed_host(true, active_guests(), &[6]);
    let cases = [
        ("matrix-before-masks.txt", &before),
        ("matrix-after-masks.txt", &after),
        ("matrix-guests.txt", &guests),
    ];
    for (file, host) in cases {
        let text = matrix::text(&grid(host, None, None), Style::PLAIN);
        fits_80(&text);
        golden(file, &text);
    }
    let colour = matrix::text(&grid(&guests, None, None), Style { color: true });
    fits_80(&colour);
    golden("matrix-guests-color.txt", &colour);
    golden(
        "matrix-guests.json",
        &render::to_json(&matrix::json(&grid(&guests, None, None))),
    );
    let a = libap::ids::parse_id_list("5,6,9").expect("adapters");
    let d = libap::ids::parse_id_list("4,0xab").expect("domains");
    golden(
        "matrix-limited.txt",
        &matrix::text(&grid(&guests, Some(&a), Some(&d)), Style::PLAIN),
    );
}

#[test]
fn matrix_foreign_collision() {
    // Another tool made an unnamed mdev holding 05.0004, which guest1 holds
    // too, and 07.0000 alone (a host queue, for the kernel's masks).
    let mut clash = foreign();
    clash.ids = ids(&[5, 7], &[0, 4], &[]);
    let mut mdevs = active_guests();
    mdevs.push(clash);
    let host = seed_host(true, mdevs, &[6]);
    let g = grid(&host, None, None);
    let text = matrix::text(&g, Style::PLAIN);
    fits_80(&text);
    golden("matrix-collision.txt", &text);
    let json = matrix::json(&g);
    let cell = |apqn: &str| {
        json.cells
            .iter()
            .find(|c| c.apqn == apqn)
            .unwrap_or_else(|| panic!("no cell {apqn}"))
    };
    assert_eq!(cell("05.0004").collides_with, vec![FOREIGN.to_string()]);
    assert!(!cell("05.0004").usable);
    assert_eq!(cell("07.0000").owner, "host");
    assert_eq!(cell("07.0000").collides_with, vec![FOREIGN.to_string()]);
    golden("matrix-collision.json", &render::to_json(&json));
}

#[test]
fn matrix_wide_host_wraps_into_blocks() {
    let all = libap::ids::parse_id_list("0-255").expect("all");
    let adapters: Vec<AdapterInfo> = (0..=255u32)
        .map(|id| AdapterInfo {
            id,
            card_type: "CEX8P".into(),
            config: true,
            online: true,
            ..Default::default()
        })
        .collect();
    let queues: Vec<QueueInfo> = (0..=255u32)
        .flat_map(|a| (0..=255u32).map(move |d| (a, d)))
        .map(|(a, d)| queue(&format!("{a:02x}.{d:04x}"), "host", "", "", "cex4queue"))
        .collect();
    let g = matrix::build(&matrix::Inputs {
        adapters: &adapters,
        queues: &queues,
        mdevs: &[],
        verdicts: &BTreeMap::new(),
        only_adapters: Some(&all),
        only_domains: None,
    });
    assert_eq!(g.domains.len(), 256);
    let text = matrix::text(&g, Style::PLAIN);
    fits_80(&text);
    let headers = text.lines().filter(|l| l.starts_with("ADAPTER")).count();
    assert_eq!(headers, 256 / matrix::BLOCK, "one header per block");
    assert!(text.contains("255 CEX8P"), "decimal rows");
}
