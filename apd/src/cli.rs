//! Command-line flags of apd (design.md, "Binaries and flags").

use std::path::PathBuf;

use apbus::bus::{BusChoice, BusChoiceError};
use clap::Parser;

/// apd: the single writer of AP crypto configuration on an s390 host.
///
/// Serves org.apctl.Apd1 on D-Bus, persists mdev definitions and masks,
/// restores them at boot and follows the kernel's uevents.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "apd",
    version,
    about = "The single writer of AP crypto configuration (vfio_ap mdevs, apmask, aqmask) on an s390 host",
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP
)]
pub struct Cli {
    /// The directory that plays `/sys` (it contains `bus/ap/...`), e.g. the
    /// mount point of `apsim mount`.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/sys",
        conflicts_with = "sim"
    )]
    pub sysfs_root: PathBuf,

    /// Read kernel uevents from this SOCK_SEQPACKET unix socket (as served by
    /// `apsim mount --uevent-socket`) instead of netlink.
    #[arg(long, value_name = "SOCK", conflicts_with = "sim")]
    pub uevent_socket: Option<PathBuf>,

    /// Where definitions (`mdevs/<uuid>.toml`) and persistent masks
    /// (`apd.toml`) live.
    #[arg(long, value_name = "DIR", default_value = "/etc/apd")]
    pub config_dir: PathBuf,

    /// The directory that plays `/` for mdevctl (as its MDEVCTL_ENV_ROOT):
    /// `check` warns about mdevs defined both by apd and in
    /// `<DIR>/etc/mdevctl.d/matrix`.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub mdevctl_root: PathBuf,

    /// The bus to serve on: `system`, `session` or a D-Bus address.
    #[arg(long, value_name = "BUS", default_value = "system")]
    pub bus: String,

    /// Run on the in-process simulator built from this host topology file.
    #[arg(long, value_name = "HOST.toml")]
    pub sim: Option<PathBuf>,

    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a
    /// tracing directive); RUST_LOG wins when set.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,

    /// Where apd keeps its intent journal (`apply.journal`): every change
    /// is announced there before it is made, so that when apd is
    /// killed half-way (kill -9, a crash) its next start undoes that change
    /// (the caller never got an answer) before the boot restore. Runtime
    /// state, as the kernel's: a reboot must clear it (systemd's
    /// RuntimeDirectory=apd). apd also listens there on `private`, a socket
    /// for root's apctl that bypasses the bus daemon. Unused with --sim,
    /// whose kernel ends with apd.
    #[arg(long, value_name = "DIR", default_value = apbus::RUNTIME_DIR)]
    pub runtime_dir: PathBuf,

    /// The s390 AP configuration lock shared with s390-tools (chzdev,
    /// ap-check); held while apd writes.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/run/lock/s390apconfig.lock"
    )]
    pub lock_file: PathBuf,
}

const LONG_ABOUT: &str = "\
apd owns every change to the AP configuration of an s390 host: the vfio_ap \
mediated devices (mdevs) that pass crypto adapters to KVM guests, and the \
host's apmask and aqmask. It serves the D-Bus API org.apctl.Apd1 (used by \
apctl and by any other tool), validates every change before the first write, \
writes all or nothing under /run/lock/s390apconfig.lock (shared with \
s390-tools), stores definitions and persistent masks, restores them at boot \
and then tells systemd it is ready, and follows the kernel's uevents (adapter \
configuration, masks, queues, the vfio_ap module) to keep its view current and \
to retry definitions that could not start.";

const AFTER_LONG_HELP: &str = "\
Files: CFG/mdevs/<uuid>.toml holds one definition each; CFG/apd.toml the \
persistent masks. Files that do not parse are reported (apctl status, apctl \
check, the log) and skipped, never rewritten.

Authorization: reading is open to everyone; a change needs uid 0 or the polkit \
action org.apctl.apd.manage (on a session or private bus also the daemon's own \
uid).

Signals: SIGTERM and SIGINT end apd after the change in progress has finished \
or rolled back; no mdev is ever left half created. After SIGKILL or a crash in \
the middle of a change, the next start of apd undoes what that change had done \
(RUNTIME_DIR/apply.journal), then restores as at boot.";

/// `--bus` as a bus, or the sentence apd exits with (status 2).
pub fn bus_choice(s: &str) -> Result<BusChoice, String> {
    BusChoice::parse(s).map_err(|e| match e {
        BusChoiceError::Empty => "--bus needs `system`, `session` or a D-Bus address".to_string(),
        BusChoiceError::NotABus(other) => format!(
            "--bus {other:?} is neither `system`, `session` nor a D-Bus address \
             (e.g. unix:path=/run/dbus/test_bus)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let cli = Cli::try_parse_from(["apd"]).expect("defaults");
        assert_eq!(cli.sysfs_root, PathBuf::from("/sys"));
        assert_eq!(cli.config_dir, PathBuf::from("/etc/apd"));
        assert_eq!(cli.mdevctl_root, PathBuf::from("/"));
        assert_eq!(cli.bus, "system");
        assert_eq!(cli.lock_file, PathBuf::from("/run/lock/s390apconfig.lock"));
        assert_eq!(cli.runtime_dir, PathBuf::from("/run/apd"));
        assert!(cli.uevent_socket.is_none());
        assert!(cli.sim.is_none());
    }

    #[test]
    fn sim_excludes_a_sysfs_root() {
        assert!(Cli::try_parse_from(["apd", "--sim", "h.toml", "--sysfs-root", "/x"]).is_err());
        assert!(Cli::try_parse_from(["apd", "--sim", "h.toml"]).is_ok());
    }

    /// `man/apd.8` is generated from these flags; regenerate it with
    /// `APD_UPDATE_MAN=1 cargo test -p apd man_page`.
    #[test]
    fn man_page_is_current() {
        use clap::CommandFactory as _;
        let man = clap_mangen::Man::new(Cli::command())
            .section("8")
            .source(format!("apd {}", env!("CARGO_PKG_VERSION")))
            .manual("System Administration");
        let mut buf = Vec::new();
        man.render(&mut buf).expect("render into memory");
        let live = String::from_utf8(buf).expect("roff is UTF-8");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../man/apd.8");
        if std::env::var_os("APD_UPDATE_MAN").is_some() {
            std::fs::write(&path, &live).expect("write man/apd.8");
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == live,
            "{} is stale; run APD_UPDATE_MAN=1 cargo test -p apd man_page",
            path.display()
        );
    }

    #[test]
    fn bus_choices() {
        assert_eq!(bus_choice("system"), Ok(BusChoice::System));
        assert_eq!(bus_choice("session"), Ok(BusChoice::Session));
        assert_eq!(
            bus_choice("unix:path=/tmp/bus"),
            Ok(BusChoice::Address("unix:path=/tmp/bus".into()))
        );
        assert_eq!(
            bus_choice("sytem"),
            Err(
                "--bus \"sytem\" is neither `system`, `session` nor a D-Bus address \
                 (e.g. unix:path=/run/dbus/test_bus)"
                    .to_string()
            )
        );
        assert_eq!(
            bus_choice(""),
            Err("--bus needs `system`, `session` or a D-Bus address".to_string())
        );
        // The same address rule as apctl's: a transport name, a colon, and more.
        for bad in [":x", "unix:", "/tmp/bus"] {
            assert!(bus_choice(bad).is_err(), "{bad:?}");
        }
    }
}
