//! Walking the simulated sysfs tree: the entries of each directory, one
//! entry by name (large directories are looked up, not listed), and paths
//! resolved from the root through symlinks.

use std::collections::VecDeque;

use super::tree::*;
use super::{BusDev, Dev, Drv, Kernel};
use crate::Errno;

impl Kernel {
    fn card_has(&self, a: u8, attr: CardAttr) -> bool {
        let Some(c) = self.cards.get(&a) else {
            return false;
        };
        let zcrypt = c.driver == Some(Drv::Cex4Card);
        match attr {
            // zcrypt's attributes exist while cex4card drives the card.
            CardAttr::Type | CardAttr::Online | CardAttr::Load => zcrypt,
            CardAttr::Serialnr => zcrypt && c.card_type.mode != crate::topology::Mode::Accel,
            _ => true,
        }
    }

    fn queue_has(&self, a: u8, d: u8, attr: QueueAttr) -> bool {
        let Some(q) = self.queues.get(&(a, d)) else {
            return false;
        };
        match attr {
            QueueAttr::Online => q.driver == Some(Drv::Cex4Queue),
            QueueAttr::Status => q.driver == Some(Drv::VfioAp),
            _ => true,
        }
    }

    /// Every entry of a directory, in the state as it is now.
    pub(crate) fn entries(&self, d: &Dir) -> Vec<(String, Obj)> {
        match d {
            Dir::Root => vec![
                dir("bus", Dir::Bus),
                dir("devices", Dir::Devices),
                dir("class", Dir::Class),
                dir("kernel", Dir::SysKernel),
                dir(".apsim", Dir::Control),
            ],
            Dir::Bus => {
                let mut v = vec![dir("ap", Dir::BusAp), dir("mdev", Dir::BusMdev)];
                if self.vfio_loaded {
                    v.push(dir("matrix", Dir::BusMatrix));
                }
                v
            }
            Dir::BusAp => {
                let mut v = attr_entries(BUS_ATTRS, Attr::Bus);
                v.push(dir("devices", Dir::BusApDevices));
                v.push(dir("drivers", Dir::BusApDrivers));
                v
            }
            Dir::BusApDevices => self.bus_ap_devices(),
            Dir::BusApDrivers => AP_DRIVERS
                .iter()
                .filter(|drv| **drv != Drv::VfioAp || self.vfio_loaded)
                .map(|drv| dir(drv.name(), Dir::ApDriver(*drv)))
                .collect(),
            Dir::ApDriver(drv) => self.driver_entries(*drv),
            Dir::BusMatrix => vec![
                dir("devices", Dir::BusMatrixDevices),
                dir("drivers", Dir::BusMatrixDrivers),
            ],
            Dir::BusMatrixDevices => vec![link("matrix", "../../../devices/vfio_ap/matrix")],
            Dir::BusMatrixDrivers => vec![dir("vfio_ap", Dir::MatrixDriver)],
            Dir::MatrixDriver => vec![link("matrix", "../../../../devices/vfio_ap/matrix")],
            Dir::BusMdev => vec![
                dir("devices", Dir::BusMdevDevices),
                dir("drivers", Dir::BusMdevDrivers),
            ],
            Dir::BusMdevDevices => self.mdev_entries(d),
            Dir::BusMdevDrivers => vec![dir("vfio_ap_mdev", Dir::MdevDriver)],
            Dir::MdevDriver => self.mdev_entries(d),
            Dir::Devices => {
                let mut v = vec![dir("ap", Dir::DevAp)];
                if self.vfio_loaded {
                    v.push(dir("vfio_ap", Dir::DevVfioAp));
                }
                v
            }
            Dir::DevAp => self.dev_ap_entries(),
            Dir::Card(a) => self.card_entries(*a),
            Dir::Queue(a, d) => self.queue_entries(*a, *d),
            Dir::DevVfioAp => vec![dir("matrix", Dir::Matrix)],
            Dir::Matrix => self.matrix_entries(d),
            Dir::MdevTypes => vec![dir("vfio_ap-passthrough", Dir::MdevType)],
            Dir::MdevType => {
                let mut v = attr_entries(TYPE_ATTRS, Attr::Type);
                v.push(dir("devices", Dir::MdevTypeDevices));
                v
            }
            Dir::MdevTypeDevices => self.mdev_entries(d),
            Dir::Mdev(u) => self.mdevs.get(u).map(mdev_dir_entries).unwrap_or_default(),
            Dir::Class => vec![dir("mdev_bus", Dir::ClassMdevBus)],
            Dir::ClassMdevBus => {
                if self.vfio_loaded {
                    vec![link("matrix", "../../devices/vfio_ap/matrix")]
                } else {
                    Vec::new()
                }
            }
            Dir::SysKernel => vec![dir("iommu_groups", Dir::IommuGroups)],
            Dir::IommuGroups => self
                .mdevs
                .iter()
                .map(|m| (m.iommu_group.to_string(), group_dir(m.iommu_group)))
                .collect(),
            Dir::IommuGroup(g) => vec![dir("devices", Dir::IommuGroupDevices(*g))],
            Dir::IommuGroupDevices(_) => self.mdev_entries(d),
            Dir::Control => attr_entries(CONTROL, Attr::Control),
        }
    }

    /// `devices/ap`: its uevent and a directory per card.
    fn dev_ap_entries(&self) -> Vec<(String, Obj)> {
        let mut v = vec![("uevent".to_string(), Obj::Attr(Attr::Uevent(Dev::ApRoot)))];
        for a in self.cards.keys() {
            v.push(dir(format!("card{a:02x}"), Dir::Card(*a)));
        }
        v
    }

    /// `devices/vfio_ap/matrix`: its attributes and the mdevs.
    fn matrix_entries(&self, d: &Dir) -> Vec<(String, Obj)> {
        let mut v: Vec<(String, Obj)> = MATRIX_NODES
            .iter()
            .map(|(n, make)| ((*n).to_string(), make()))
            .collect();
        v.extend(self.mdev_entries(d));
        v
    }

    /// `bus/ap/devices`: a link per card and per queue.
    fn bus_ap_devices(&self) -> Vec<(String, Obj)> {
        let mut v = Vec::with_capacity(self.cards.len() + self.queues.len());
        for a in self.cards.keys() {
            v.push((format!("card{a:02x}"), dev_link(3, BusDev::Card(*a))));
        }
        for (a, d) in self.queues.keys() {
            let q = super::apqn(*a, *d);
            v.push((q, dev_link(3, BusDev::Queue(*a, *d))));
        }
        v
    }

    /// `bus/ap/drivers/<drv>`: bind, unbind and a link per bound device.
    fn driver_entries(&self, drv: Drv) -> Vec<(String, Obj)> {
        let mut v = vec![
            ("bind".to_string(), Obj::Attr(Attr::DriverBind(drv))),
            ("unbind".to_string(), Obj::Attr(Attr::DriverUnbind(drv))),
        ];
        for (a, c) in &self.cards {
            if c.driver == Some(drv) {
                v.push((format!("card{a:02x}"), dev_link(4, BusDev::Card(*a))));
            }
        }
        for ((a, d), q) in &self.queues {
            if q.driver == Some(drv) {
                let n = super::apqn(*a, *d);
                v.push((n, dev_link(4, BusDev::Queue(*a, *d))));
            }
        }
        v
    }

    /// `devices/ap/cardXX`: its attributes, links and queues.
    fn card_entries(&self, a: u8) -> Vec<(String, Obj)> {
        let mut v: Vec<(String, Obj)> = CARD_ATTRS
            .iter()
            .filter(|(_, c)| self.card_has(a, *c))
            .map(|(n, c)| ((*n).to_string(), Obj::Attr(Attr::Card(a, *c))))
            .collect();
        v.push(("uevent".to_string(), Obj::Attr(Attr::Uevent(Dev::Card(a)))));
        v.push(link("subsystem", "../../../bus/ap"));
        if let Some(drv) = self.cards.get(&a).and_then(|c| c.driver) {
            v.push(link(
                "driver",
                format!("../../../bus/ap/drivers/{}", drv.name()),
            ));
        }
        for ((_, d), _) in self.queues.range((a, 0)..=(a, 255)) {
            v.push(dir(super::apqn(a, *d), Dir::Queue(a, *d)));
        }
        v
    }

    /// `devices/ap/cardXX/XX.YYYY`: its attributes and links.
    fn queue_entries(&self, a: u8, d: u8) -> Vec<(String, Obj)> {
        let mut v: Vec<(String, Obj)> = QUEUE_ATTRS
            .iter()
            .filter(|(_, q)| self.queue_has(a, d, *q))
            .map(|(n, q)| ((*n).to_string(), Obj::Attr(Attr::Queue(a, d, *q))))
            .collect();
        v.push((
            "uevent".to_string(),
            Obj::Attr(Attr::Uevent(Dev::Queue(a, d))),
        ));
        v.push(link("subsystem", "../../../../bus/ap"));
        if let Some(drv) = self.queues.get(&(a, d)).and_then(|q| q.driver) {
            v.push(link(
                "driver",
                format!("../../../../bus/ap/drivers/{}", drv.name()),
            ));
        }
        v
    }

    /// The entries for mdevs of a directory that lists them by UUID, in
    /// creation order.
    fn mdev_entries(&self, d: &Dir) -> Vec<(String, Obj)> {
        self.mdevs
            .iter()
            .filter_map(|m| mdev_entry(d, m).map(|o| (m.uuid.clone(), o)))
            .collect()
    }

    /// One entry of a directory. Large directories (65536 queues, 65536
    /// mdevs on a big host) are looked up by name instead of listed.
    pub(crate) fn child(&self, d: &Dir, name: &str) -> Option<Obj> {
        match d {
            Dir::BusMdevDevices
            | Dir::MdevDriver
            | Dir::MdevTypeDevices
            | Dir::IommuGroupDevices(_) => mdev_entry(d, self.mdevs.get(name)?),
            Dir::Matrix => match MATRIX_NODES.iter().find(|(n, _)| *n == name) {
                Some((_, make)) => Some(make()),
                None => mdev_entry(d, self.mdevs.get(name)?),
            },
            Dir::Mdev(u) => mdev_dir_child(self.mdevs.get(u)?, name),
            Dir::IommuGroups => {
                let g = parse_group(name)?;
                // Groups are not indexed: a scan of integers, no listing.
                self.mdevs
                    .iter()
                    .any(|m| m.iommu_group == g)
                    .then(|| group_dir(g))
            }
            Dir::BusApDevices => {
                if let Some(a) = parse_card(name) {
                    return self
                        .cards
                        .contains_key(&a)
                        .then(|| dev_link(3, BusDev::Card(a)));
                }
                let (a, dom) = parse_queue(name)?;
                self.queues
                    .contains_key(&(a, dom))
                    .then(|| dev_link(3, BusDev::Queue(a, dom)))
            }
            Dir::DevAp => match parse_card(name) {
                Some(a) => self
                    .cards
                    .contains_key(&a)
                    .then_some(Obj::Dir(Dir::Card(a))),
                None => (name == "uevent").then_some(Obj::Attr(Attr::Uevent(Dev::ApRoot))),
            },
            Dir::Card(a) => {
                if let Some((qa, qd)) = parse_queue(name) {
                    return (qa == *a && self.queues.contains_key(&(qa, qd)))
                        .then_some(Obj::Dir(Dir::Queue(qa, qd)));
                }
                if let Some((_, c)) = CARD_ATTRS.iter().find(|(n, _)| *n == name) {
                    return self
                        .card_has(*a, *c)
                        .then_some(Obj::Attr(Attr::Card(*a, *c)));
                }
                self.cards.get(a)?;
                self.small_child(d, name)
            }
            Dir::ApDriver(drv) => {
                if let Some(a) = parse_card(name) {
                    return (self.cards.get(&a)?.driver == Some(*drv))
                        .then(|| dev_link(4, BusDev::Card(a)));
                }
                if let Some((a, dom)) = parse_queue(name) {
                    return (self.queues.get(&(a, dom))?.driver == Some(*drv))
                        .then(|| dev_link(4, BusDev::Queue(a, dom)));
                }
                self.small_child(d, name)
            }
            _ => self.small_child(d, name),
        }
    }

    fn small_child(&self, d: &Dir, name: &str) -> Option<Obj> {
        self.entries(d)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o)
    }

    /// Walks a path from the root, following symlinks in the middle and, if
    /// `follow_last`, at the end. Returns the physical path and the node.
    pub(crate) fn resolve(&self, path: &str, follow_last: bool) -> Result<(String, Obj), Errno> {
        let mut todo: VecDeque<String> = split(path).collect();
        let mut stack: Vec<(String, Dir)> = Vec::new();
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == ".." {
                stack.pop();
                continue;
            }
            let cur = stack.last().map_or(Dir::Root, |(_, d)| d.clone());
            let obj = self.child(&cur, &name).ok_or(libc::ENOENT)?;
            match obj {
                Obj::Dir(d) => stack.push((name, d)),
                Obj::Link(target) if follow_last || !todo.is_empty() => {
                    let target = target.text();
                    links += 1;
                    if links > 40 {
                        return Err(libc::ELOOP);
                    }
                    if target.starts_with('/') {
                        stack.clear();
                    }
                    for c in split(&target).collect::<Vec<_>>().into_iter().rev() {
                        todo.push_front(c);
                    }
                }
                other => {
                    if !todo.is_empty() {
                        return Err(libc::ENOTDIR);
                    }
                    stack.push((name, Dir::Root));
                    let p = join(&stack);
                    return Ok((p, other));
                }
            }
        }
        let d = stack.last().map_or(Dir::Root, |(_, d)| d.clone());
        Ok((join(&stack), Obj::Dir(d)))
    }

    /// The physical path a stored control path (inject, delay) means now;
    /// a path that does not resolve yet stays as written.
    pub(crate) fn canonical(&self, path: &str) -> String {
        match self.resolve(path, true) {
            Ok((p, _)) => p,
            Err(_) => split(path).collect::<Vec<_>>().join("/"),
        }
    }
}

fn split(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
}

fn join(stack: &[(String, Dir)]) -> String {
    stack
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join("/")
}
