//! libap hot paths: mask parsing, one assign validated against 1,000 mdevs
//! on a 256x256 host, the guest matrix of a full 256x256 host, and reading
//! that host through the in-process simulator: whole, or only what a change
//! made stale (what apd does after a uevent or before a report).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use libap::apqn::Apqn;
use libap::host::{Host, HostConfig, Matrix, Mdev, Queue};
use libap::validate::{check_assign, AssignKind};
use libap::ApMask;
use uuid::Uuid;

fn full_host(mdevs: usize) -> Host {
    let mut host = Host {
        max_adapter_id: 255,
        max_domain_id: 255,
        config: HostConfig {
            adapters: ApMask::full(),
            usage_domains: ApMask::full(),
            control_domains: ApMask::full(),
            known: true,
        },
        // Everything given to vfio_ap.
        apmask: ApMask::empty(),
        aqmask: ApMask::empty(),
        vfio_ap_loaded: true,
        ..Host::default()
    };
    for a in 0..=255u8 {
        for d in 0..=255u8 {
            let apqn = Apqn::new(a, d);
            host.queues_mut().insert(
                apqn,
                Queue {
                    apqn,
                    driver: Some("vfio_ap".into()),
                },
            );
        }
    }
    // 1,000 disjoint mdevs: mdev i holds adapter i % 256, domain i / 256.
    for i in 0..mdevs {
        let uuid = Uuid::from_u128(i as u128 + 1);
        let a = u8::try_from(i % 256).expect("fits");
        let d = u8::try_from(i / 256).expect("fits");
        host.mdevs.insert(
            uuid,
            Mdev {
                uuid,
                matrix: Matrix::new(
                    ApMask::from_ids([a]),
                    ApMask::from_ids([d]),
                    ApMask::empty(),
                ),
                guest_matrix: None,
                in_use: false,
            },
        );
    }
    host
}

fn masks(c: &mut Criterion) {
    let abs = "0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe\n";
    c.bench_function("mask parse absolute (64 digits)", |b| {
        b.iter(|| ApMask::parse_absolute(black_box(abs)))
    });
    let full = ApMask::full();
    c.bench_function("mask apply relative -4,-0x47,-0xab,-0xff", |b| {
        b.iter(|| full.apply_write(black_box("-4,-0x47,-0xab,-0xff")))
    });
    c.bench_function("mask apply relative range -0-255", |b| {
        b.iter(|| full.apply_write(black_box("-0-255")))
    });
    c.bench_function("mask display", |b| b.iter(|| black_box(full).to_string()));
}

fn validation(c: &mut Criterion) {
    let host = full_host(1000);
    let target = Uuid::from_u128(1);
    let none = |_: Uuid| None;
    c.bench_function("check_assign ok vs 1000 mdevs (256x256)", |b| {
        b.iter(|| check_assign(&host, &none, target, AssignKind::Domain, black_box(200)))
    });
    // Adapter 1 is held by mdev 2 with domain 0: in use.
    c.bench_function("check_assign refused vs 1000 mdevs (256x256)", |b| {
        b.iter(|| check_assign(&host, &none, target, AssignKind::Adapter, black_box(1)))
    });
}

fn guest(c: &mut Criterion) {
    let host = full_host(0);
    c.bench_function("guest matrix full 256x256 host", |b| {
        b.iter(|| libap::guest::guest_matrix(&host, black_box(ApMask::full()), ApMask::full()))
    });
}

/// The big host (256x256) in apsim, every queue given to vfio_ap, with
/// 1,000 mdevs: mdev i holds adapter i % 256 and domain i / 256.
fn big_sim() -> libap::sysfs::SimSysfs {
    use libap::host::paths;
    use libap::sysfs::Sysfs;
    let topo = apsim::Topology::from_toml_str(include_str!("../../apsim/examples/big.toml"))
        .expect("big topology");
    let fs = libap::sysfs::SimSysfs(apsim::Sim::new(topo));
    fs.write(paths::APMASK, b"0x\n").expect("apmask");
    fs.write(paths::AQMASK, b"0x\n").expect("aqmask");
    for i in 0..1000u128 {
        let uuid = Uuid::from_u128(i + 1);
        fs.write(paths::MDEV_CREATE, uuid.hyphenated().to_string().as_bytes())
            .expect("create");
        let (a, d) = (i % 256, i / 256);
        fs.write(
            &paths::mdev_attr(&uuid, "assign_adapter"),
            a.to_string().as_bytes(),
        )
        .expect("assign adapter");
        fs.write(
            &paths::mdev_attr(&uuid, "assign_domain"),
            d.to_string().as_bytes(),
        )
        .expect("assign domain");
    }
    fs
}

fn resync(c: &mut Criterion) {
    use libap::resync::Stale;
    let fs = big_sim();
    let host = Host::read(&fs).expect("read");
    let mut g = c.benchmark_group("big host in apsim, 1,000 mdevs");
    g.sample_size(10);
    g.bench_function("whole read (Host::read)", |b| {
        b.iter(|| Host::read(&fs).expect("read"))
    });
    for (name, stale) in [
        ("re-read one card and its 256 queues", Stale::card(7)),
        ("re-read one queue", Stale::queue(Apqn::new(7, 7))),
        ("re-read one mdev", Stale::mdev(Uuid::from_u128(7))),
        ("re-read every mdev (before a report)", Stale::all_mdevs()),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let delta = host.read_stale(&fs, black_box(&stale)).expect("re-read");
                black_box(delta.changes(&host))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, masks, validation, guest, resync);
criterion_main!(benches);
