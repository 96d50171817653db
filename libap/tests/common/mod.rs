//! An in-memory sysfs for tests: a map of path → file, link or directory,
//! and a builder that lays out a host as kernel spec §1–§6 describe it.
#![allow(dead_code)]

use libap::matrix::{format_ap_config, format_control_domains, format_matrix};
use libap::sysfs::{Sysfs, SysfsError, SysfsOp};
use libap::{ApMask, Apqn};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone)]
pub enum Node {
    File(String),
    Link(String),
    Dir,
}

#[derive(Debug, Default)]
pub struct FakeSysfs {
    pub nodes: Mutex<BTreeMap<String, Node>>,
    pub writes: Mutex<Vec<(String, Vec<u8>)>>,
}

impl FakeSysfs {
    pub fn new() -> Self {
        Self::default()
    }

    fn add_parents(map: &mut BTreeMap<String, Node>, path: &str) {
        let mut cur = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(p);
            map.entry(cur.clone()).or_insert(Node::Dir);
        }
    }

    pub fn file(&self, path: &str, content: &str) {
        let mut m = self.nodes.lock().expect("lock");
        Self::add_parents(&mut m, path);
        m.insert(path.to_string(), Node::File(content.to_string()));
    }

    pub fn link(&self, path: &str, target: &str) {
        let mut m = self.nodes.lock().expect("lock");
        Self::add_parents(&mut m, path);
        m.insert(path.to_string(), Node::Link(target.to_string()));
    }

    pub fn dir(&self, path: &str) {
        let mut m = self.nodes.lock().expect("lock");
        Self::add_parents(&mut m, &format!("{path}/x"));
    }

    pub fn remove_tree(&self, path: &str) {
        let mut m = self.nodes.lock().expect("lock");
        let prefix = format!("{path}/");
        m.retain(|k, _| k != path && !k.starts_with(&prefix));
    }
}

impl Sysfs for FakeSysfs {
    fn read(&self, path: &str) -> Result<String, SysfsError> {
        match self.nodes.lock().expect("lock").get(path) {
            Some(Node::File(s)) => Ok(s.clone()),
            Some(_) => Err(SysfsError::new(SysfsOp::Read, path, libc::EISDIR)),
            None => Err(SysfsError::new(SysfsOp::Read, path, libc::ENOENT)),
        }
    }
    fn write(&self, path: &str, data: &[u8]) -> Result<(), SysfsError> {
        let mut m = self.nodes.lock().expect("lock");
        match m.get(path) {
            Some(Node::File(_)) => {
                m.insert(
                    path.to_string(),
                    Node::File(String::from_utf8_lossy(data).into_owned()),
                );
                self.writes
                    .lock()
                    .expect("lock")
                    .push((path.to_string(), data.to_vec()));
                Ok(())
            }
            _ => Err(SysfsError::write(path, data, libc::ENOENT)),
        }
    }
    fn list(&self, path: &str) -> Result<Vec<String>, SysfsError> {
        let m = self.nodes.lock().expect("lock");
        match m.get(path) {
            Some(Node::Dir) => {}
            Some(_) => return Err(SysfsError::new(SysfsOp::List, path, libc::ENOTDIR)),
            None => return Err(SysfsError::new(SysfsOp::List, path, libc::ENOENT)),
        }
        let prefix = format!("{path}/");
        let mut names: Vec<String> = m
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_string)
            .collect();
        names.sort();
        Ok(names)
    }
    fn read_link(&self, path: &str) -> Result<String, SysfsError> {
        match self.nodes.lock().expect("lock").get(path) {
            Some(Node::Link(t)) => Ok(t.clone()),
            Some(_) => Err(SysfsError::new(SysfsOp::ReadLink, path, libc::EINVAL)),
            None => Err(SysfsError::new(SysfsOp::ReadLink, path, libc::ENOENT)),
        }
    }
    fn exists(&self, path: &str) -> bool {
        self.nodes.lock().expect("lock").contains_key(path)
    }
}

/// A host layout written into a FakeSysfs (or a directory, via `files`).
#[derive(Debug, Clone)]
pub struct HostSpec {
    pub max_adapter_id: u8,
    pub max_domain_id: u8,
    pub adapters: Vec<(u8, &'static str, bool)>,
    pub usage_domains: ApMask,
    pub control_domains: ApMask,
    pub apmask: ApMask,
    pub aqmask: ApMask,
    pub vfio_ap_loaded: bool,
    pub features: Option<&'static str>,
    /// (uuid, adapters, domains, controls, guest matrix override)
    pub mdevs: Vec<(String, ApMask, ApMask, ApMask)>,
    pub qci: bool,
}

pub fn m(ids: &[u8]) -> ApMask {
    ApMask::from_ids(ids.iter().copied())
}

impl HostSpec {
    /// The seed host: adapters 5,6,7 (CEX7C, CEX7A, CEX8P), usage/control
    /// domains 4, 0x47, 0xab, 0xff; masks `-5,-6` and `-4,-0x47,-0xab,-0xff`.
    pub fn seed() -> Self {
        let full = ApMask::full();
        HostSpec {
            max_adapter_id: 255,
            max_domain_id: 255,
            adapters: vec![(5, "CEX7C", true), (6, "CEX7A", true), (7, "CEX8P", true)],
            usage_domains: m(&[4, 0x47, 0xab, 0xff]),
            control_domains: m(&[4, 0x47, 0xab, 0xff]),
            apmask: full.apply_write("-5,-6").expect("valid"),
            aqmask: full.apply_write("-4,-0x47,-0xab,-0xff").expect("valid"),
            vfio_ap_loaded: true,
            features: Some("guest_matrix hotplug ap_config\n"),
            mdevs: Vec::new(),
            qci: true,
        }
    }

    /// Every file of the layout: (path, Ok(content) | Err(link target)).
    pub fn files(&self) -> Vec<(String, Result<String, String>)> {
        let mut out: Vec<(String, Result<String, String>)> = Vec::new();
        let mut f = |p: String, c: String| out.push((p, Ok(c)));
        f("bus/ap/apmask".into(), format!("{}\n", self.apmask));
        f("bus/ap/aqmask".into(), format!("{}\n", self.aqmask));
        f(
            "bus/ap/ap_max_adapter_id".into(),
            format!("{}\n", self.max_adapter_id),
        );
        f(
            "bus/ap/ap_max_domain_id".into(),
            format!("{}\n", self.max_domain_id),
        );
        let apm = ApMask::from_ids(self.adapters.iter().map(|a| a.0));
        if self.qci {
            f("bus/ap/ap_adapter_mask".into(), format!("{apm}\n"));
            f(
                "bus/ap/ap_usage_domain_mask".into(),
                format!("{}\n", self.usage_domains),
            );
            f(
                "bus/ap/ap_control_domain_mask".into(),
                format!("{}\n", self.control_domains),
            );
        } else {
            for p in [
                "bus/ap/ap_adapter_mask",
                "bus/ap/ap_usage_domain_mask",
                "bus/ap/ap_control_domain_mask",
            ] {
                f(p.into(), "not supported\n".into());
            }
        }
        let mut links = Vec::new();
        for (id, ty, config) in &self.adapters {
            let card = format!("devices/ap/card{id:02x}");
            f(format!("{card}/type"), format!("{ty}\n"));
            f(format!("{card}/hwtype"), "13\n".into());
            f(format!("{card}/config"), format!("{}\n", u8::from(*config)));
            f(format!("{card}/online"), format!("{}\n", u8::from(*config)));
            f(format!("{card}/chkstop"), "0\n".into());
            f(format!("{card}/ap_functions"), "0x92000000\n".into());
            links.push((
                format!("{card}/driver"),
                "../../../bus/ap/drivers/cex4card".to_string(),
            ));
            for d in self.usage_domains.iter() {
                let apqn = Apqn::new(*id, d);
                let q = format!("{card}/{apqn}");
                f(format!("{q}/config"), format!("{}\n", u8::from(*config)));
                f(format!("{q}/chkstop"), "0\n".into());
                let host = self.apmask.contains(*id) && self.aqmask.contains(d);
                if host {
                    f(format!("{q}/online"), "1\n".into());
                    links.push((
                        format!("{q}/driver"),
                        "../../../../bus/ap/drivers/cex4queue".into(),
                    ));
                    links.push(driver_entry("cex4queue", apqn));
                } else if self.vfio_ap_loaded {
                    let assigned = self
                        .mdevs
                        .iter()
                        .any(|(_, a, dd, _)| a.contains(*id) && dd.contains(d));
                    f(
                        format!("{q}/status"),
                        if assigned {
                            "assigned\n"
                        } else {
                            "unassigned\n"
                        }
                        .into(),
                    );
                    links.push((
                        format!("{q}/driver"),
                        "../../../../bus/ap/drivers/vfio_ap".into(),
                    ));
                    links.push(driver_entry("vfio_ap", apqn));
                }
            }
        }
        if self.vfio_ap_loaded {
            if let Some(feat) = self.features {
                f("devices/vfio_ap/matrix/features".into(), feat.into());
            }
            f(
                "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/available_instances"
                    .into(),
                format!("{}\n", 65536 - self.mdevs.len()),
            );
            f(
                "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create".into(),
                String::new(),
            );
            for (uuid, a, d, c) in &self.mdevs {
                let dir = format!("devices/vfio_ap/matrix/{uuid}");
                f(format!("{dir}/matrix"), format_matrix(a, d));
                f(format!("{dir}/control_domains"), format_control_domains(c));
                if self.features.is_some_and(|x| x.contains("ap_config")) {
                    f(format!("{dir}/ap_config"), format_ap_config(a, d, c));
                }
                // The full filter on this layout.
                let mut ga = a.intersection(apm);
                let gd = d.intersection(self.usage_domains);
                for ad in ga {
                    let bad = gd.iter().any(|dd| {
                        (self.apmask.contains(ad) && self.aqmask.contains(dd))
                            || !self.usage_domains.contains(dd)
                    });
                    if bad {
                        ga.remove(ad);
                    }
                }
                if self.features.is_some_and(|x| x.contains("guest_matrix")) {
                    f(format!("{dir}/guest_matrix"), format_matrix(ga, gd));
                }
                for attr in [
                    "assign_adapter",
                    "assign_domain",
                    "assign_control_domain",
                    "remove",
                ] {
                    f(format!("{dir}/{attr}"), String::new());
                }
                links.push((
                    format!("bus/mdev/devices/{uuid}"),
                    format!("../../../{dir}"),
                ));
            }
        }
        for (p, t) in links {
            out.push((p, Err(t)));
        }
        out
    }

    pub fn fake(&self) -> FakeSysfs {
        let fs = FakeSysfs::new();
        fs.dir("bus/ap/drivers");
        fs.dir("devices/ap");
        if self.vfio_ap_loaded {
            fs.dir("devices/vfio_ap/matrix");
        }
        for (p, c) in self.files() {
            match c {
                Ok(c) => fs.file(&p, &c),
                Err(t) => fs.link(&p, &t),
            }
        }
        fs
    }

    pub fn write_dir(&self, root: &std::path::Path) {
        std::fs::create_dir_all(root.join("bus/ap/drivers")).expect("mkdir");
        std::fs::create_dir_all(root.join("devices/ap")).expect("mkdir");
        if self.vfio_ap_loaded {
            std::fs::create_dir_all(root.join("devices/vfio_ap/matrix")).expect("mkdir");
        }
        for (p, c) in self.files() {
            let full = root.join(&p);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            match c {
                Ok(c) => std::fs::write(&full, c).expect("write"),
                Err(t) => std::os::unix::fs::symlink(t, &full).expect("symlink"),
            }
        }
    }
}

/// A driver's directory lists each queue bound to it (kernel spec §3).
fn driver_entry(driver: &str, apqn: Apqn) -> (String, String) {
    (
        format!("bus/ap/drivers/{driver}/{apqn}"),
        format!("../../../../devices/ap/card{:02x}/{apqn}", apqn.adapter),
    )
}

pub const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
pub const G2: &str = "4b0818b1-0b6c-4a6a-b0c2-6ef3c8ac9b43";

/// The seed host with Guest1 (adapters 5,6 domains 4,0xab) and Guest2
/// (adapter 5 domains 0x47,0xff).
pub fn seed_with_guests() -> HostSpec {
    let mut s = HostSpec::seed();
    s.mdevs
        .push((G1.into(), m(&[5, 6]), m(&[4, 0xab]), ApMask::empty()));
    s.mdevs
        .push((G2.into(), m(&[5]), m(&[0x47, 0xff]), ApMask::empty()));
    s
}

/// Counts every access through it and keeps the paths read.
#[derive(Debug)]
pub struct Counting<'a> {
    pub inner: &'a dyn Sysfs,
    pub accesses: std::sync::atomic::AtomicUsize,
    pub reads: Mutex<Vec<String>>,
}

impl<'a> Counting<'a> {
    /// Counts the accesses to `inner`.
    pub fn new(inner: &'a dyn Sysfs) -> Self {
        Counting {
            inner,
            accesses: 0.into(),
            reads: Vec::new().into(),
        }
    }

    /// The paths accessed, in order.
    pub fn paths(self) -> Vec<String> {
        self.reads.into_inner().expect("reads")
    }

    fn count(&self, path: &str) {
        self.accesses
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.reads.lock().expect("lock").push(path.to_string());
    }
}

impl Sysfs for Counting<'_> {
    fn read(&self, path: &str) -> Result<String, SysfsError> {
        self.count(path);
        self.inner.read(path)
    }
    fn write(&self, path: &str, data: &[u8]) -> Result<(), SysfsError> {
        self.count(path);
        self.inner.write(path, data)
    }
    fn list(&self, path: &str) -> Result<Vec<String>, SysfsError> {
        self.count(path);
        self.inner.list(path)
    }
    fn read_link(&self, path: &str) -> Result<String, SysfsError> {
        self.count(path);
        self.inner.read_link(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.count(path);
        self.inner.exists(path)
    }
}
