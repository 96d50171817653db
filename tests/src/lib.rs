//! The end-to-end harness: real processes (a private `dbus-daemon`, `apsim`,
//! `apd`, `apctl`) started per test, each test with its own everything, so
//! tests run in parallel. The walk-through binary (`ap-walkthrough`) is
//! built on the same pieces.
//!
//! The binaries under test are found next to the running executable
//! (`target/<profile>/`): build them first (`cargo build --workspace --bins`;
//! `cargo test --workspace` does it because apd, apctl and apsim have
//! integration tests of their own).

mod bus;
mod host;
mod process;
mod rng;
mod snapshot;

use std::path::PathBuf;

pub use bus::{command_exists, shipped_policy_file, Bus, BusPolicy, BusService, POLKIT_BUS_NAME};
pub use host::{describe, fuse_available, is_mounted, tail, Host, HostOptions, Mode};
pub use process::liveness_timeout;
pub use rng::Rng;
pub use snapshot::{assert_unchanged, snapshot, sysfs_snapshot, Snapshot};

/// The bus name apd owns (design.md, D-Bus).
pub const APD_BUS_NAME: &str = "org.apctl.Apd1";

/// The seed documents' host (`apsim/examples/seed.toml`, embedded so the
/// walk-through runs from anywhere): adapters 1-7, usage and control
/// domains 0, 4, 0x47, 0xab, 0xff.
pub const SEED_HOST: &str = include_str!("../../apsim/examples/seed.toml");

/// The seed documents' setup as a desired-state file: adapters 5, 6 and
/// domains 4, 0x47, 0xab, 0xff for vfio_ap; guest1 (adapters 5, 6 x
/// domains 4, 0xab) and guest2 (adapter 5 x domains 0x47, 0xff), both
/// autostart.
pub const SEED_TWO_GUESTS: &str = r#"
[masks]
vfio_adapters = [5, 6]
vfio_domains = [4, 0x47, 0xab, 0xff]

[[mdev]]
uuid = "62177883-f1bb-47f0-914d-32a22e3a8804"
name = "guest1"
autostart = true
adapters = [5, 6]
domains = [4, 0xab]
control_domains = []

[[mdev]]
uuid = "4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e"
name = "guest2"
autostart = true
adapters = [5]
domains = [0x47, 0xff]
control_domains = []
"#;

/// `target/<profile>/<name>`: a binary of this workspace, next to the
/// running test executable (`target/<profile>/deps/…`) or binary.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable has a path");
    let mut dir = exe
        .parent()
        .expect("the executable lives in a directory")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first \
         (with --release for a release build)",
        path.display()
    );
    path
}
