//! The simulated kernel: one struct holding every piece of AP state, changed
//! only under the simulator's single lock. Submodules hold the store and
//! show functions of each sysfs area; this file holds the objects, the
//! driver core (bind/unbind/probe), the guest matrix filter, bus scans and
//! uevent emission.

mod ap;
mod bus;
mod control;
mod mdev;
pub(crate) mod tree;
mod walk;

use std::collections::{BTreeMap, VecDeque};
use std::ops::{Deref, Index, IndexMut};
use std::sync::mpsc::Sender;

use crate::bits::Bits;
use crate::topology::{AdapterSpec, CardType, Topology};
use crate::Errno;

pub(crate) use control::Injection;

/// How many kernel log lines the ring keeps.
const LOG_RING: usize = 8192;

/// The AP drivers of `/sys/bus/ap/drivers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Drv {
    Cex4Card,
    Cex4Queue,
    VfioAp,
}

impl Drv {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Drv::Cex4Card => "cex4card",
            Drv::Cex4Queue => "cex4queue",
            Drv::VfioAp => "vfio_ap",
        }
    }
}

/// A card device (`/sys/devices/ap/cardXX`).
#[derive(Clone, Debug)]
pub(crate) struct Card {
    pub(crate) card_type: CardType,
    pub(crate) config: bool,
    pub(crate) chkstop: bool,
    /// zcrypt's online flag (what was last written to `online`).
    pub(crate) online: bool,
    pub(crate) driver: Option<Drv>,
}

/// A queue device (`/sys/devices/ap/cardXX/XX.YYYY`).
#[derive(Clone, Debug)]
pub(crate) struct Queue {
    pub(crate) config: bool,
    pub(crate) online: bool,
    pub(crate) driver: Option<Drv>,
}

/// A vfio_ap mediated device.
#[derive(Clone, Debug)]
pub(crate) struct Mdev {
    /// Lowercase, as the kernel names it.
    pub(crate) uuid: String,
    pub(crate) apm: Bits,
    pub(crate) aqm: Bits,
    pub(crate) adm: Bits,
    /// The guest matrix (shadow APCB).
    pub(crate) shadow_apm: Bits,
    pub(crate) shadow_aqm: Bits,
    /// A guest has the mdev open.
    pub(crate) in_use: bool,
    /// A `remove` write is waiting for the guest to release it.
    pub(crate) removing: bool,
    pub(crate) iommu_group: u32,
    /// The running scan added assigned ids: filter once the scan ends.
    pub(crate) scan_added: bool,
}

impl Mdev {
    /// A freshly created mdev: nothing assigned, no guest.
    pub(crate) fn new(uuid: String, iommu_group: u32) -> Mdev {
        Mdev {
            uuid,
            apm: Bits::empty(),
            aqm: Bits::empty(),
            adm: Bits::empty(),
            shadow_apm: Bits::empty(),
            shadow_aqm: Bits::empty(),
            in_use: false,
            removing: false,
            iommu_group,
            scan_added: false,
        }
    }
}

/// The mdevs in creation order (vfio_ap's list order, which listings show),
/// with an index by UUID so a path lookup does not search the list.
/// A stored mdev's `uuid` never changes: the index relies on it.
#[derive(Debug, Default)]
pub(crate) struct MdevList {
    list: Vec<Mdev>,
    /// UUID → position in `list`.
    by_uuid: BTreeMap<String, usize>,
}

impl MdevList {
    /// Appends a new mdev; its UUID must not be in the list yet.
    pub(crate) fn push(&mut self, m: Mdev) {
        debug_assert!(!self.by_uuid.contains_key(&m.uuid), "mdev {} twice", m.uuid);
        self.by_uuid.insert(m.uuid.clone(), self.list.len());
        self.list.push(m);
    }

    /// Removes the mdev at `i`; the later ones move down by one.
    pub(crate) fn remove(&mut self, i: usize) -> Mdev {
        let m = self.list.remove(i);
        self.by_uuid.remove(&m.uuid);
        for (j, later) in self.list.iter().enumerate().skip(i) {
            if let Some(pos) = self.by_uuid.get_mut(&later.uuid) {
                *pos = j;
            }
        }
        m
    }

    /// Position of the mdev named `uuid` (lowercase, as the kernel names it).
    pub(crate) fn position(&self, uuid: &str) -> Option<usize> {
        let i = *self.by_uuid.get(uuid)?;
        debug_assert_eq!(self.list[i].uuid, uuid, "mdev index out of step");
        Some(i)
    }

    pub(crate) fn get(&self, uuid: &str) -> Option<&Mdev> {
        self.position(uuid).map(|i| &self.list[i])
    }
}

/// Read access as a slice (iter, len, search); changes only through
/// `push`/`remove` and element access, which keep the index right.
impl Deref for MdevList {
    type Target = [Mdev];
    fn deref(&self) -> &[Mdev] {
        &self.list
    }
}

impl Index<usize> for MdevList {
    type Output = Mdev;
    fn index(&self, i: usize) -> &Mdev {
        &self.list[i]
    }
}

impl IndexMut<usize> for MdevList {
    fn index_mut(&mut self, i: usize) -> &mut Mdev {
        &mut self.list[i]
    }
}

impl<'a> IntoIterator for &'a MdevList {
    type Item = &'a Mdev;
    type IntoIter = std::slice::Iter<'a, Mdev>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

impl<'a> IntoIterator for &'a mut MdevList {
    type Item = &'a mut Mdev;
    type IntoIter = std::slice::IterMut<'a, Mdev>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter_mut()
    }
}

/// A device that sends uevents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dev {
    ApRoot,
    Card(u8),
    Queue(u8, u8),
    Matrix,
    Mdev(String),
}

impl Dev {
    pub(crate) fn devpath(&self) -> String {
        match self {
            Dev::ApRoot => "/devices/ap".to_string(),
            Dev::Card(a) => format!("/devices/ap/card{a:02x}"),
            Dev::Queue(a, d) => format!("/devices/ap/card{a:02x}/{a:02x}.{d:04x}"),
            Dev::Matrix => "/devices/vfio_ap/matrix".to_string(),
            Dev::Mdev(u) => format!("/devices/vfio_ap/matrix/{u}"),
        }
    }

    fn subsystem(&self) -> &'static str {
        match self {
            Dev::ApRoot | Dev::Card(_) | Dev::Queue(..) => "ap",
            Dev::Matrix => "matrix",
            Dev::Mdev(_) => "mdev",
        }
    }
}

/// A device on the AP bus, as `bind`/`unbind`/`drivers_probe` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BusDev {
    Card(u8),
    Queue(u8, u8),
}

/// The driver key of a uevent: the device's current driver, or an explicit
/// one (the old driver on `unbind`, none on `add`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum DriverKey {
    Current,
    Is(Option<&'static str>),
}

/// Formats an APQN as sysfs names queues.
/// A queue's name, `XX.YYYY`. Listings make one per queue (65,536 on a
/// full LPAR), so the digits are written directly, not through `format!`.
pub(crate) fn apqn(a: u8, d: u8) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hex = |n: u8| char::from(HEX[usize::from(n & 0xf)]);
    let mut s = String::with_capacity(7);
    s.push(hex(a >> 4));
    s.push(hex(a));
    s.push_str(".00");
    s.push(hex(d >> 4));
    s.push(hex(d));
    s
}

/// The whole simulated kernel state.
#[derive(Debug)]
pub(crate) struct Kernel {
    pub(crate) max_apid: u8,
    pub(crate) max_apqi: u8,
    /// The host AP configuration (QCI): APM, AQM, ADM.
    pub(crate) host_apm: Bits,
    pub(crate) host_aqm: Bits,
    pub(crate) host_adm: Bits,
    /// What firmware knows about each adapter, in or out of the LPAR.
    pub(crate) specs: BTreeMap<u8, AdapterSpec>,
    pub(crate) cards: BTreeMap<u8, Card>,
    pub(crate) queues: BTreeMap<(u8, u8), Queue>,
    pub(crate) apmask: Bits,
    pub(crate) aqmask: Bits,
    pub(crate) vfio_loaded: bool,
    /// Oldest first; the kernel searches newest first.
    pub(crate) mdevs: MdevList,
    pub(crate) ap_domain: Option<u8>,
    pub(crate) config_time: i64,
    pub(crate) poll_thread: bool,
    pub(crate) poll_timeout: u64,
    pub(crate) scans: u64,
    complete_count: u64,
    /// A queue was probed since the last `BINDINGS=complete`.
    probed: bool,
    seqnum: u64,
    /// How many uevents so far said that names left the tree (a device
    /// removed or unbound, the matrix device unregistered): the FUSE
    /// mount invalidates what the kernel cached when this moves.
    /// FUSE requests served by the mount (`.apsim/requests`).
    pub(crate) fuse_requests: u64,
    pub(crate) removals: u64,
    subscribers: Vec<Sender<Vec<u8>>>,
    log: VecDeque<String>,
    pub(crate) injections: Vec<Injection>,
    pub(crate) delays: Vec<(String, u64)>,
    next_iommu_group: u32,
    /// How many mdevs vfio_ap-passthrough allows.
    pub(crate) mdev_limit: usize,
}

impl Kernel {
    /// Boots: loads vfio_ap if the topology says so, then runs the initial
    /// bus scan that creates and binds every card and queue.
    pub(crate) fn boot(topology: &Topology) -> Kernel {
        let mut k = Kernel {
            max_apid: topology.max_adapter_id,
            max_apqi: topology.max_domain_id,
            host_apm: Bits::empty(),
            host_aqm: Bits::empty(),
            host_adm: Bits::empty(),
            specs: topology
                .adapters
                .iter()
                .map(|a| (a.id, a.clone()))
                .collect(),
            cards: BTreeMap::new(),
            queues: BTreeMap::new(),
            apmask: topology.apmask,
            aqmask: topology.aqmask,
            vfio_loaded: false,
            mdevs: MdevList::default(),
            ap_domain: None,
            config_time: 30,
            poll_thread: false,
            poll_timeout: 250_000,
            scans: 0,
            complete_count: 0,
            probed: true,
            seqnum: 0,
            fuse_requests: 0,
            removals: 0,
            subscribers: Vec::new(),
            log: VecDeque::new(),
            injections: Vec::new(),
            delays: Vec::new(),
            next_iommu_group: 0,
            mdev_limit: mdev::MAX_INSTANCES,
        };
        if topology.vfio_ap_loaded {
            k.load_vfio_ap();
        }
        let apm = Bits::from_ids(topology.adapters.iter().map(|a| a.id));
        k.scan(Some((
            apm,
            topology.usage_domains,
            topology.control_domains,
        )));
        k
    }

    // ---- kernel log and uevents -------------------------------------------

    pub(crate) fn klog(&mut self, line: String) {
        tracing::info!(target: "apsim::kernel", "{line}");
        if self.log.len() == LOG_RING {
            self.log.pop_front();
        }
        self.log.push_back(line);
    }

    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.log.iter().cloned().collect()
    }

    pub(crate) fn subscribe(&mut self, tx: Sender<Vec<u8>>) {
        self.subscribers.push(tx);
    }

    /// The device's current driver name, for `DRIVER=` keys.
    fn current_driver(&self, dev: &Dev) -> Option<&'static str> {
        match dev {
            Dev::ApRoot => None,
            Dev::Card(a) => self.cards.get(a).and_then(|c| c.driver).map(Drv::name),
            Dev::Queue(a, d) => self
                .queues
                .get(&(*a, *d))
                .and_then(|q| q.driver)
                .map(Drv::name),
            Dev::Matrix => self.vfio_loaded.then_some("vfio_ap"),
            Dev::Mdev(u) => self.mdev_index(u).map(|_| "vfio_ap_mdev"),
        }
    }

    /// The device's own uevent keys (what its `uevent` file shows).
    pub(crate) fn device_keys(&self, dev: &Dev, driver: DriverKey) -> Vec<String> {
        let driver = match driver {
            DriverKey::Current => self.current_driver(dev),
            DriverKey::Is(d) => d,
        };
        let mut keys = Vec::new();
        let mode = |a: &u8| self.cards.get(a).map(|c| c.card_type.mode.name());
        match dev {
            Dev::Card(_) => keys.push("DEVTYPE=ap_card".to_string()),
            Dev::Queue(..) => keys.push("DEVTYPE=ap_queue".to_string()),
            _ => {}
        }
        if let Some(d) = driver {
            keys.push(format!("DRIVER={d}"));
        }
        match dev {
            Dev::Card(a) => {
                if let Some(c) = self.cards.get(a) {
                    let t = c.card_type.hwtype();
                    keys.push(format!("DEV_TYPE={t:04X}"));
                    keys.push(format!("MODALIAS=ap:t{t:02X}"));
                    keys.push(format!("MODE={}", c.card_type.mode.name()));
                }
            }
            Dev::Queue(a, _) => {
                if let Some(m) = mode(a) {
                    keys.push(format!("MODE={m}"));
                }
            }
            Dev::Mdev(_) => keys.push("MDEV_TYPE=vfio_ap-passthrough".to_string()),
            Dev::ApRoot | Dev::Matrix => {}
        }
        keys
    }

    /// Sends one uevent in the kernel's wire format to every subscriber.
    pub(crate) fn uevent(&mut self, action: &str, dev: &Dev, own: &[String], driver: DriverKey) {
        self.seqnum += 1;
        if matches!(action, "remove" | "unbind")
            || own.iter().any(|k| k == "MDEV_STATE=unregistered")
        {
            self.removals += 1;
        }
        let devpath = dev.devpath();
        let mut msg = format!(
            "{action}@{devpath}\0ACTION={action}\0DEVPATH={devpath}\0SUBSYSTEM={}\0",
            dev.subsystem()
        );
        for key in own.iter().chain(self.device_keys(dev, driver).iter()) {
            msg.push_str(key);
            msg.push('\0');
        }
        msg.push_str(&format!("SEQNUM={}\0", self.seqnum));
        tracing::debug!(target: "apsim::uevent", "{}", msg.replace('\0', " "));
        let bytes = msg.into_bytes();
        self.subscribers.retain(|s| s.send(bytes.clone()).is_ok());
    }

    fn event(&mut self, action: &str, dev: &Dev, own: &[String]) {
        self.uevent(action, dev, own, DriverKey::Current);
    }

    // ---- ownership and the driver core ------------------------------------

    /// apmask and aqmask give the queue to the host's zcrypt drivers.
    pub(crate) fn host_owned(&self, a: u8, d: u8) -> bool {
        self.apmask.get(a) && self.aqmask.get(d)
    }

    /// The driver the masks give the queue to, if it is there.
    fn wanted_driver(&self, a: u8, d: u8) -> Option<Drv> {
        if self.host_owned(a, d) {
            Some(Drv::Cex4Queue)
        } else if self.vfio_loaded {
            Some(Drv::VfioAp)
        } else {
            None
        }
    }

    pub(crate) fn bound_to_vfio(&self, a: u8, d: u8) -> bool {
        self.queues
            .get(&(a, d))
            .is_some_and(|q| q.driver == Some(Drv::VfioAp))
    }

    /// Index of the mdev whose matrix holds the APQN (assignments never
    /// overlap, so there is at most one).
    pub(crate) fn holder(&self, a: u8, d: u8) -> Option<usize> {
        self.mdevs.iter().position(|m| m.apm.get(a) && m.aqm.get(d))
    }

    /// The newest mdev (other than `skip`) whose matrix shares an APQN with
    /// `apm` x `aqm`, and the shared adapters and domains: vfio_ap searches
    /// its mdev list newest first.
    pub(crate) fn first_overlap(
        &self,
        skip: Option<usize>,
        apm: &Bits,
        aqm: &Bits,
    ) -> Option<(String, Bits, Bits)> {
        self.mdevs
            .iter()
            .enumerate()
            .rev()
            .filter(|(j, _)| Some(*j) != skip)
            .find_map(|(_, m)| {
                let a = m.apm.and(apm);
                let d = m.aqm.and(aqm);
                (!a.is_empty() && !d.is_empty()).then(|| (m.uuid.clone(), a, d))
            })
    }

    pub(crate) fn mdev_index(&self, uuid: &str) -> Option<usize> {
        self.mdevs.position(uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_the_kernels_format() {
        // ap_queue's dev_set_name: "%02x.%04x".
        for a in 0..=255u8 {
            for d in 0..=255u8 {
                assert_eq!(apqn(a, d), format!("{a:02x}.{d:04x}"));
            }
        }
    }

    fn mdev(uuid: &str, iommu_group: u32) -> Mdev {
        Mdev::new(uuid.to_string(), iommu_group)
    }

    /// Every UUID finds its own mdev, in list order.
    fn assert_in_step(list: &MdevList, order: &[&str]) {
        let got: Vec<&str> = list.iter().map(|m| m.uuid.as_str()).collect();
        assert_eq!(got, order);
        for (i, u) in order.iter().enumerate() {
            assert_eq!(list.position(u), Some(i), "{u}");
            assert_eq!(list.get(u).map(|m| m.uuid.as_str()), Some(*u));
        }
    }

    #[test]
    fn mdev_list_keeps_creation_order_and_finds_by_uuid_after_removals() {
        let mut list = MdevList::default();
        for (g, u) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            list.push(mdev(u, g as u32));
        }
        assert_in_step(&list, &["a", "b", "c", "d", "e"]);
        assert_eq!(list.remove(2).uuid, "c");
        assert_in_step(&list, &["a", "b", "d", "e"]);
        assert_eq!(list.position("c"), None);
        assert_eq!(list.remove(0).uuid, "a");
        assert_eq!(list.remove(2).uuid, "e");
        assert_in_step(&list, &["b", "d"]);
        list.push(mdev("c", 9));
        assert_in_step(&list, &["b", "d", "c"]);
        assert_eq!(list[2].iommu_group, 9);
        assert_eq!(list.get("zz").map(|m| m.iommu_group), None);
    }
}
