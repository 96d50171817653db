//! [`Sysfs`] over apsim's in-process simulator (feature `apsim`): what
//! `apd --sim HOST.toml` runs on, and what libap's own tests check the
//! planner and the validator against. apsim knows nothing of libap (it is the
//! referee), so the adapter lives on this side.

use apsim::{NodeKind, Sim};

use super::{Sysfs, SysfsError, SysfsOp};

/// The simulator seen through [`Sysfs`]; errnos pass through unchanged.
/// Paths may start with `/` (the simulator's root plays `/sys`).
#[derive(Debug, Clone)]
pub struct SimSysfs(pub Sim);

fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

impl Sysfs for SimSysfs {
    fn read(&self, path: &str) -> Result<String, SysfsError> {
        self.0
            .read(rel(path))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| SysfsError::new(SysfsOp::Read, path, e))
    }

    fn write(&self, path: &str, data: &[u8]) -> Result<(), SysfsError> {
        match self.0.write(rel(path), data) {
            Ok(n) if n == data.len() => Ok(()),
            // sysfs takes at most a page; a store that took less is a
            // failure for us, as for DirSysfs.
            Ok(_) => Err(SysfsError::write(path, data, libc::EIO)),
            Err(e) => Err(SysfsError::write(path, data, e)),
        }
    }

    fn list(&self, path: &str) -> Result<Vec<String>, SysfsError> {
        let mut names: Vec<String> = self
            .0
            .list(rel(path))
            .map_err(|e| SysfsError::new(SysfsOp::List, path, e))?
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        Ok(names)
    }

    fn read_link(&self, path: &str) -> Result<String, SysfsError> {
        self.0
            .readlink(rel(path))
            .map_err(|e| SysfsError::new(SysfsOp::ReadLink, path, e))
    }

    fn exists(&self, path: &str) -> bool {
        let p = rel(path);
        match self.0.stat(p) {
            Ok(n) if n.kind != NodeKind::Symlink => true,
            // A link exists when its target does: resolve it by reading
            // (a directory answers EISDIR, a write-only attribute EACCES).
            Ok(_) => !matches!(self.0.read(p), Err(libc::ENOENT) | Err(libc::ENOTDIR)),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Host;

    const TOPOLOGY: &str = r#"
usage_domains = [4, 0x47]
control_domains = [4, 0x47]
[[adapter]]
id = 5
type = "CEX7C"
"#;

    fn sim() -> SimSysfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("host.toml");
        std::fs::write(&path, TOPOLOGY).expect("write topology");
        let topo = apsim::Topology::from_file(&path).expect("topology");
        SimSysfs(Sim::new(topo))
    }

    #[test]
    fn libap_reads_the_simulated_host() {
        let fs = sim();
        let host = Host::read(&fs).expect("host");
        assert!(host.cards.contains_key(&5));
        assert_eq!(host.queues.len(), 2);
        assert!(host.vfio_ap_loaded);
        assert!(fs.exists("bus/ap/devices/card05"), "a link to a directory");
        assert!(fs.exists("/bus/ap/apmask"));
        assert!(!fs.exists("bus/ap/nothing"));
    }

    #[test]
    fn errnos_pass_through() {
        let fs = sim();
        let e = fs
            .write("bus/ap/apmask", b"0X12\n")
            .expect_err("0X is invalid");
        assert_eq!(e.errno, libc::EINVAL);
        assert_eq!(e.op, SysfsOp::Write);
        let e = fs.read("bus/ap/none").expect_err("absent");
        assert_eq!(e.errno, libc::ENOENT);
        fs.write("bus/ap/apmask", b"-5\n").expect("relative write");
        let host = Host::read(&fs).expect("host");
        assert!(!host.apmask.contains(5));
    }
}
