//! The real mdevctl (1.4.0, installed by `.ci/run` into
//! `target/mdevctl/bin`) run against a fake root: mdevctl builds every path
//! from `MDEVCTL_ENV_ROOT` (`<root>/etc/mdevctl.d/<parent>/<uuid>` for
//! definitions, `<root>/sys/class/mdev_bus` and `<root>/sys/bus/mdev/devices`
//! for the live side), so `<root>/sys` may be a link to a mounted simulator.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The version `.ci/run` installs and the tests were written against.
pub const VERSION: &str = "1.4.0";

/// The mdevctl binary: `$MDEVCTL` if set, else `target/mdevctl/bin/mdevctl`
/// next to the running test (where `.ci/run` installs it); `Err` is the
/// reason to skip, for the test's output.
pub fn binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MDEVCTL") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("MDEVCTL={} is not a file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    exe.ancestors()
        .map(|a| a.join("mdevctl/bin/mdevctl"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "mdevctl is not installed under target/mdevctl (.ci/run installs it: \
                 RST2MAN=true cargo install mdevctl --version {VERSION} --locked --root target/mdevctl)"
            )
        })
}

/// mdevctl with a fake root.
#[derive(Debug, Clone)]
pub struct Mdevctl {
    bin: PathBuf,
    root: PathBuf,
}

impl Mdevctl {
    /// Makes `root` a root mdevctl accepts (the directories its self check
    /// wants, no callout or notifier scripts) and, with `sys`, links
    /// `<root>/sys` to it. `Err` is the reason to skip.
    pub fn in_root(root: &Path, sys: Option<&Path>) -> Result<Mdevctl, String> {
        let bin = binary()?;
        for dir in [
            "etc/mdevctl.d",
            "usr/lib/mdevctl/scripts.d/callouts",
            "usr/lib/mdevctl/scripts.d/notifiers",
        ] {
            std::fs::create_dir_all(root.join(dir))
                .map_err(|e| format!("cannot create {}: {e}", root.join(dir).display()))?;
        }
        if let Some(sys) = sys {
            std::os::unix::fs::symlink(sys, root.join("sys"))
                .map_err(|e| format!("cannot link {}/sys: {e}", root.display()))?;
        }
        Ok(Mdevctl {
            bin,
            root: root.to_path_buf(),
        })
    }

    /// `<root>/etc/mdevctl.d/matrix`: where mdevctl keeps vfio_ap definitions.
    pub fn matrix_dir(&self) -> PathBuf {
        self.root.join("etc/mdevctl.d/matrix")
    }

    /// Runs mdevctl with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env("MDEVCTL_ENV_ROOT", &self.root)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()))
    }

    /// Runs mdevctl, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mdevctl {args:?}: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
