//! The host model, read from sysfs through [`Sysfs`]: configuration, masks,
//! cards, queues and their drivers, vfio_ap mdevs; who owns each APQN.
//!
//! Paths follow kernel spec §1–§8: `bus/ap/...`, `devices/ap/cardXX/XX.YYYY`,
//! `devices/vfio_ap/matrix/<uuid>/...`. Everything is a plain value, cheap
//! to clone, so a planner can simulate steps on a copy.

use crate::apqn::Apqn;
use crate::mask::ApMask;
use crate::matrix::{parse_ap_config, parse_control_domains, parse_matrix, MatrixError};
use crate::resync::{Stale, VfioPart};
use crate::sysfs::{Sysfs, SysfsError};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

/// Sysfs paths (relative to the sysfs root).
pub mod paths {
    /// The AP bus directory.
    pub const AP_BUS: &str = "bus/ap";
    /// Host apmask.
    pub const APMASK: &str = "bus/ap/apmask";
    /// Host aqmask.
    pub const AQMASK: &str = "bus/ap/aqmask";
    /// Highest adapter id.
    pub const MAX_ADAPTER_ID: &str = "bus/ap/ap_max_adapter_id";
    /// Highest domain id.
    pub const MAX_DOMAIN_ID: &str = "bus/ap/ap_max_domain_id";
    /// Host configuration: adapters (APM).
    pub const ADAPTER_MASK: &str = "bus/ap/ap_adapter_mask";
    /// Host configuration: usage domains (AQM).
    pub const USAGE_DOMAIN_MASK: &str = "bus/ap/ap_usage_domain_mask";
    /// Host configuration: control domains (ADM).
    pub const CONTROL_DOMAIN_MASK: &str = "bus/ap/ap_control_domain_mask";
    /// `N/M (complete)`.
    pub const BINDINGS: &str = "bus/ap/bindings";
    /// Writing anything forces a rescan.
    pub const SCANS: &str = "bus/ap/scans";
    /// Card and queue devices.
    pub const AP_DEVICES: &str = "devices/ap";
    /// The vfio_ap matrix device (present while vfio_ap is loaded).
    pub const MATRIX: &str = "devices/vfio_ap/matrix";
    /// Features of the matrix device.
    pub const MATRIX_FEATURES: &str = "devices/vfio_ap/matrix/features";
    /// Writing a UUID creates an mdev.
    pub const MDEV_CREATE: &str =
        "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create";
    /// Remaining mdev instances.
    pub const MDEV_AVAILABLE: &str =
        "devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/available_instances";
    /// Links to all mdevs (of every type).
    pub const MDEV_BUS_DEVICES: &str = "bus/mdev/devices";
    /// Driver name of queues given to guests.
    pub const VFIO_AP_DRIVER: &str = "vfio_ap";

    /// `devices/ap/card05`.
    pub fn card(adapter: u8) -> String {
        format!("devices/ap/card{adapter:02x}")
    }

    /// `devices/ap/card05/05.0004`.
    pub fn queue(apqn: crate::apqn::Apqn) -> String {
        format!("devices/ap/card{:02x}/{apqn}", apqn.adapter)
    }

    /// `devices/vfio_ap/matrix/<uuid>`.
    pub fn mdev(uuid: &uuid::Uuid) -> String {
        format!("devices/vfio_ap/matrix/{}", uuid.hyphenated())
    }

    /// `devices/vfio_ap/matrix/<uuid>/<attr>` (e.g. `assign_adapter`).
    pub fn mdev_attr(uuid: &uuid::Uuid, attr: &str) -> String {
        format!("devices/vfio_ap/matrix/{}/{attr}", uuid.hyphenated())
    }
}

/// The LPAR's AP configuration (QCI): APM, AQM, ADM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostConfig {
    /// Adapters (APM), from `ap_adapter_mask`.
    pub adapters: ApMask,
    /// Usage domains (AQM), from `ap_usage_domain_mask`.
    pub usage_domains: ApMask,
    /// Control domains (ADM), from `ap_control_domain_mask`.
    pub control_domains: ApMask,
    /// False when the kernel said `not supported` (no QCI): then adapters
    /// and usage domains are what the cards and queues present show, and
    /// control domains are unknown (empty).
    pub known: bool,
}

/// What an adapter does, from the type letter (`CEX7C`) or `ap_functions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardMode {
    /// Accelerator (`A`).
    Accel,
    /// CCA coprocessor (`C`).
    Cca,
    /// EP11 coprocessor (`P`).
    Ep11,
}

impl CardMode {
    /// `accel`, `cca` or `ep11` (as in uevents and lszcrypt).
    pub fn as_str(&self) -> &'static str {
        match self {
            CardMode::Accel => "accel",
            CardMode::Cca => "cca",
            CardMode::Ep11 => "ep11",
        }
    }

    /// From the card type string's last letter, e.g. `CEX7C` → CCA.
    pub fn from_type(type_name: &str) -> Option<CardMode> {
        match type_name.trim().chars().last()? {
            'A' | 'a' => Some(CardMode::Accel),
            'C' | 'c' => Some(CardMode::Cca),
            'P' | 'p' => Some(CardMode::Ep11),
            _ => None,
        }
    }

    /// From `ap_functions` (0x10000000 CCA, 0x08000000 accel, 0x04000000 EP11).
    pub fn from_functions(functions: u32) -> Option<CardMode> {
        if functions & 0x1000_0000 != 0 {
            Some(CardMode::Cca)
        } else if functions & 0x0400_0000 != 0 {
            Some(CardMode::Ep11)
        } else if functions & 0x0800_0000 != 0 {
            Some(CardMode::Accel)
        } else {
            None
        }
    }
}

impl fmt::Display for CardMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An adapter (card) device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The adapter id.
    pub id: u8,
    /// `type`, e.g. `CEX7C` (empty if unreadable).
    pub type_name: String,
    /// `hwtype` (e.g. 13 for CEX7).
    pub hwtype: Option<u32>,
    /// Mode, from the type letter or `ap_functions`.
    pub mode: Option<CardMode>,
    /// `ap_functions`.
    pub functions: Option<u32>,
    /// `config`: configured (true) or standby (false).
    pub config: bool,
    /// `online`.
    pub online: bool,
    /// `chkstop`: check-stopped.
    pub chkstop: bool,
}

/// A queue (APQN) device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The APQN.
    pub apqn: Apqn,
    /// `config`.
    pub config: bool,
    /// `chkstop`.
    pub chkstop: bool,
    /// `online` (only cex4queue-bound queues have it).
    pub online: Option<bool>,
    /// Driver name (basename of the `driver` link), None when unbound.
    /// (A vfio_ap queue's `status` is not kept: it changes without a
    /// uevent when an mdev is assigned or opened; see [`Mdev::in_use`].)
    pub driver: Option<String>,
}

impl Queue {
    /// Whether the queue is bound to vfio_ap.
    pub fn is_vfio(&self) -> bool {
        self.driver.as_deref() == Some(paths::VFIO_AP_DRIVER)
    }
}

/// Adapters, usage domains and control domains assigned to an mdev (or
/// described by a definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Matrix {
    /// Assigned adapters.
    pub adapters: ApMask,
    /// Assigned usage domains.
    pub domains: ApMask,
    /// Assigned control domains.
    pub control_domains: ApMask,
}

impl Matrix {
    /// A matrix from three masks.
    pub fn new(adapters: ApMask, domains: ApMask, control_domains: ApMask) -> Self {
        Self {
            adapters,
            domains,
            control_domains,
        }
    }

    /// Whether the APQN is in adapters × domains.
    pub fn contains(&self, apqn: Apqn) -> bool {
        self.adapters.contains(apqn.adapter) && self.domains.contains(apqn.domain)
    }

    /// The APQNs adapters × domains, ascending.
    pub fn apqns(&self) -> Vec<Apqn> {
        apqns_of(&self.adapters, &self.domains)
    }

    /// Whether the two matrices share an APQN.
    pub fn overlaps(&self, other: &Matrix) -> bool {
        self.adapters.intersects(other.adapters) && self.domains.intersects(other.domains)
    }

    /// Whether nothing is assigned.
    pub fn is_empty(&self) -> bool {
        self.adapters.is_empty() && self.domains.is_empty() && self.control_domains.is_empty()
    }
}

/// adapters × domains, ascending by adapter then domain.
pub fn apqns_of(adapters: &ApMask, domains: &ApMask) -> Vec<Apqn> {
    let mut v = Vec::with_capacity(adapters.len() * domains.len());
    for a in adapters.iter() {
        for d in domains.iter() {
            v.push(Apqn::new(a, d));
        }
    }
    v
}

/// What a guest gets (the mdev's `guest_matrix` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GuestMatrix {
    /// Adapters plugged into the guest.
    pub adapters: ApMask,
    /// Usage domains plugged into the guest.
    pub domains: ApMask,
}

impl GuestMatrix {
    /// Whether the APQN is in the guest matrix.
    pub fn contains(&self, apqn: Apqn) -> bool {
        self.adapters.contains(apqn.adapter) && self.domains.contains(apqn.domain)
    }

    /// The guest's APQNs, ascending.
    pub fn apqns(&self) -> Vec<Apqn> {
        apqns_of(&self.adapters, &self.domains)
    }
}

/// A live vfio_ap mdev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mdev {
    /// Its UUID (lowercase in sysfs).
    pub uuid: Uuid,
    /// The assignment (`matrix` + `control_domains`, or `ap_config`).
    pub matrix: Matrix,
    /// The kernel's `guest_matrix` file; None on kernels without it.
    pub guest_matrix: Option<GuestMatrix>,
    /// A guest uses it (some queue of it reports `in use`).
    pub in_use: bool,
}

/// Features of the vfio_ap matrix device (`features` file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Features {
    /// `guest_matrix` attribute exists.
    pub guest_matrix: bool,
    /// Dynamic hot plug/unplug.
    pub hotplug: bool,
    /// `ap_config` attribute exists.
    pub ap_config: bool,
    /// Every word, as read.
    pub words: Vec<String>,
}

impl Features {
    /// Parse the space-separated feature words.
    pub fn parse(text: &str) -> Features {
        let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        let has = |w: &str| words.iter().any(|x| x == w);
        Features {
            guest_matrix: has("guest_matrix"),
            hotplug: has("hotplug"),
            ap_config: has("ap_config"),
            words,
        }
    }
}

/// Who owns an APQN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The host's zcrypt drivers: apmask bit `apmask_bit` and aqmask bit
    /// `aqmask_bit` are both set.
    Host {
        /// The adapter bit set in apmask.
        apmask_bit: u8,
        /// The domain bit set in aqmask.
        aqmask_bit: u8,
    },
    /// Free for vfio_ap, in no mdev's matrix.
    Free,
    /// In this mdev's matrix.
    Mdev {
        /// The mdev.
        uuid: Uuid,
    },
}

/// The host could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No AP bus: not an s390 host, or the wrong sysfs root.
    #[error("no AP bus at {path} (not an s390 host with AP support, or the wrong sysfs root)")]
    NoApBus {
        /// The path looked for.
        path: String,
    },
    /// A sysfs access failed.
    #[error("{0}")]
    Sysfs(#[from] SysfsError),
    /// A file's content is not in the kernel's format.
    #[error("unexpected content in {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole AP picture of a host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Host {
    /// `ap_max_adapter_id`.
    pub max_adapter_id: u8,
    /// `ap_max_domain_id`.
    pub max_domain_id: u8,
    /// The LPAR's configuration.
    pub config: HostConfig,
    /// `bus/ap/apmask`.
    pub apmask: ApMask,
    /// `bus/ap/aqmask`.
    pub aqmask: ApMask,
    /// The vfio_ap matrix device is present.
    pub vfio_ap_loaded: bool,
    /// The matrix device's `features`; None when the file is absent (older
    /// kernel or vfio_ap not loaded).
    pub features: Option<Features>,
    /// Cards by adapter id.
    pub cards: BTreeMap<u8, Card>,
    /// Queues by APQN.
    pub queues: BTreeMap<Apqn, Queue>,
    /// vfio_ap mdevs by UUID.
    pub mdevs: BTreeMap<Uuid, Mdev>,
}

fn read_opt(fs: &dyn Sysfs, path: &str) -> Result<Option<String>, SysfsError> {
    match fs.read(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.errno == libc::ENOENT || e.errno == libc::ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

fn parse_hex_u32(s: &str) -> Option<u32> {
    let t = s.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u32::from_str_radix(t, 16).ok()
}

fn parse_mask_file(path: &str, text: &str) -> Result<ApMask, HostError> {
    ApMask::parse_absolute(text).map_err(|e| HostError::Parse {
        path: path.to_string(),
        message: e.to_string(),
    })
}

fn parse_max_id(path: &str, text: Option<String>) -> Result<u8, HostError> {
    match text {
        // Kernels without the attribute allow the architecture maximum.
        None => Ok(255),
        Some(t) => {
            let v: u32 = t.trim().parse().map_err(|_| HostError::Parse {
                path: path.to_string(),
                message: format!("{:?} is not a decimal number", t.trim()),
            })?;
            Ok(u8::try_from(v.min(255)).unwrap_or(255))
        }
    }
}

/// A card directory name `cardXX` → adapter id.
pub fn parse_card_name(name: &str) -> Option<u8> {
    let hex = name.strip_prefix("card")?;
    if hex.len() != 2 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// An mdev directory name: a lowercase hyphenated UUID.
pub fn parse_mdev_name(name: &str) -> Option<Uuid> {
    if name.len() != 36 {
        return None;
    }
    Uuid::try_parse(name).ok()
}

fn matrix_err(path: String, e: MatrixError) -> HostError {
    HostError::Parse {
        path,
        message: e.to_string(),
    }
}

/// The configuration files as read, before the fallback for hosts without
/// QCI (which needs the cards and queues present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawConfig {
    pub(crate) max_adapter_id: u8,
    pub(crate) max_domain_id: u8,
    adapters: Option<ApMask>,
    usage_domains: Option<ApMask>,
    control_domains: Option<ApMask>,
}

impl RawConfig {
    pub(crate) fn read(fs: &dyn Sysfs) -> Result<RawConfig, HostError> {
        let read = |path: &str| -> Result<Option<ApMask>, HostError> {
            match read_opt(fs, path)? {
                None => Ok(None),
                Some(t) if t.trim() == "not supported" => Ok(None),
                Some(t) => parse_mask_file(path, &t).map(Some),
            }
        };
        Ok(RawConfig {
            max_adapter_id: parse_max_id(
                paths::MAX_ADAPTER_ID,
                read_opt(fs, paths::MAX_ADAPTER_ID)?,
            )?,
            max_domain_id: parse_max_id(paths::MAX_DOMAIN_ID, read_opt(fs, paths::MAX_DOMAIN_ID)?)?,
            adapters: read(paths::ADAPTER_MASK)?,
            usage_domains: read(paths::USAGE_DOMAIN_MASK)?,
            control_domains: read(paths::CONTROL_DOMAIN_MASK)?,
        })
    }

    /// The configuration; without QCI, the devices present in `host` are
    /// the best we know.
    pub(crate) fn derive(&self, host: &Host) -> HostConfig {
        let control_domains = self.control_domains.unwrap_or_default();
        match (self.adapters, self.usage_domains) {
            (Some(adapters), Some(usage_domains)) => HostConfig {
                adapters,
                usage_domains,
                control_domains,
                known: true,
            },
            _ => HostConfig {
                adapters: ApMask::from_ids(host.cards.keys().copied()),
                usage_domains: ApMask::from_ids(host.queues.keys().map(|q| q.domain)),
                control_domains,
                known: false,
            },
        }
    }
}

impl Host {
    /// Read the whole model through `fs`.
    pub fn read(fs: &dyn Sysfs) -> Result<Host, HostError> {
        if !fs.exists(paths::AP_BUS) {
            return Err(HostError::NoApBus {
                path: paths::AP_BUS.to_string(),
            });
        }
        let apmask = parse_mask_file(paths::APMASK, &fs.read(paths::APMASK)?)?;
        let aqmask = parse_mask_file(paths::AQMASK, &fs.read(paths::AQMASK)?)?;
        let raw = RawConfig::read(fs)?;
        let mut host = Host {
            max_adapter_id: raw.max_adapter_id,
            max_domain_id: raw.max_domain_id,
            apmask,
            aqmask,
            ..Host::default()
        };
        host.read_devices(fs)?;
        host.config = raw.derive(&host);
        host.read_vfio(fs)?;
        Ok(host)
    }

    fn read_devices(&mut self, fs: &dyn Sysfs) -> Result<(), HostError> {
        let entries = match fs.list(paths::AP_DEVICES) {
            Ok(e) => e,
            Err(e) if e.errno == libc::ENOENT => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        for name in entries {
            let Some(id) = parse_card_name(&name) else {
                continue;
            };
            // A card may vanish between the listing and the read (hot unplug).
            let Some(card) = read_card(fs, id)? else {
                continue;
            };
            self.cards.insert(id, card);
            for apqn in list_queues(fs, id)? {
                if let Some(queue) = read_queue(fs, apqn)? {
                    self.queues.insert(apqn, queue);
                }
            }
        }
        Ok(())
    }

    fn read_vfio(&mut self, fs: &dyn Sysfs) -> Result<(), HostError> {
        let v = read_vfio_part(fs, &self.queues)?;
        self.vfio_ap_loaded = v.loaded;
        self.features = v.features;
        self.mdevs = v.mdevs;
        Ok(())
    }

    /// Re-read one mdev (the kernel sends no uevent when another tool
    /// changes an assignment). `Ok(None)` when it does not exist.
    pub fn read_mdev(fs: &dyn Sysfs, uuid: Uuid) -> Result<Option<Mdev>, HostError> {
        read_mdev_from(fs, uuid, &BTreeMap::new())
    }

    /// Re-read one mdev into this model (insert, update or remove it).
    /// Returns the mdev as now known.
    pub fn refresh_mdev(&mut self, fs: &dyn Sysfs, uuid: Uuid) -> Result<Option<&Mdev>, HostError> {
        self.refresh(fs, &Stale::mdev(uuid))?;
        Ok(self.mdevs.get(&uuid))
    }

    /// Re-read the masks (after a mask change uevent), with the queues
    /// whose bits flipped and the mdevs.
    pub fn refresh_masks(&mut self, fs: &dyn Sysfs) -> Result<(), HostError> {
        self.refresh(fs, &Stale::masks()).map(|_| ())
    }

    /// Re-read one card and its queues (after a card/queue uevent).
    pub fn refresh_card(&mut self, fs: &dyn Sysfs, adapter: u8) -> Result<(), HostError> {
        self.refresh(fs, &Stale::card(adapter)).map(|_| ())
    }

    /// Re-read one queue (after a bind/unbind/CONFIG uevent on it); removes
    /// it from the model when its directory is gone.
    pub fn refresh_queue(&mut self, fs: &dyn Sysfs, apqn: Apqn) -> Result<(), HostError> {
        self.refresh(fs, &Stale::queue(apqn)).map(|_| ())
    }

    /// Re-read the host configuration and maximum ids (after a scan that
    /// changed the LPAR's configuration).
    pub fn refresh_config(&mut self, fs: &dyn Sysfs) -> Result<(), HostError> {
        self.refresh(fs, &Stale::config()).map(|_| ())
    }

    /// Re-read whether vfio_ap is loaded, its features and every mdev
    /// (after `MDEV_STATE=registered|unregistered` or an mdev add/remove).
    pub fn refresh_vfio(&mut self, fs: &dyn Sysfs) -> Result<(), HostError> {
        self.refresh(fs, &Stale::all_mdevs()).map(|_| ())
    }

    /// Who owns `apqn`: the host if both mask bits are set, else the mdev
    /// whose matrix holds it, else nobody.
    pub fn owner(&self, apqn: Apqn) -> Owner {
        if self.is_host_owned(apqn) {
            return Owner::Host {
                apmask_bit: apqn.adapter,
                aqmask_bit: apqn.domain,
            };
        }
        match self.mdevs.values().find(|m| m.matrix.contains(apqn)) {
            Some(m) => Owner::Mdev { uuid: m.uuid },
            None => Owner::Free,
        }
    }

    /// Whether the masks give `apqn` to the host.
    pub fn is_host_owned(&self, apqn: Apqn) -> bool {
        self.apmask.contains(apqn.adapter) && self.aqmask.contains(apqn.domain)
    }

    /// An index from APQN to the mdev whose matrix holds it, for tables over
    /// many queues (`apctl queues`) where [`Host::owner`] per queue would
    /// scan every mdev each time.
    pub fn mdev_owners(&self) -> OwnerIndex {
        let mut slots = vec![u32::MAX; 256 * 256];
        let mut uuids = Vec::with_capacity(self.mdevs.len());
        for m in self.mdevs.values() {
            let idx = u32::try_from(uuids.len()).unwrap_or(u32::MAX);
            uuids.push(m.uuid);
            for a in m.matrix.adapters.iter() {
                for d in m.matrix.domains.iter() {
                    let slot = usize::from(a) * 256 + usize::from(d);
                    // Keep the first holder; a second one is a conflict the
                    // kernel should have refused.
                    if slots[slot] == u32::MAX {
                        slots[slot] = idx;
                    }
                }
            }
        }
        OwnerIndex { slots, uuids }
    }

    /// Whether `apqn`'s queue exists and is bound to vfio_ap.
    pub fn is_vfio_bound(&self, apqn: Apqn) -> bool {
        self.queues.get(&apqn).is_some_and(Queue::is_vfio)
    }

    /// Domains of `adapter` whose queues are bound to vfio_ap.
    pub fn vfio_bound_domains(&self, adapter: u8) -> ApMask {
        let range = Apqn::new(adapter, 0)..=Apqn::new(adapter, 255);
        self.queues
            .range(range)
            .filter(|(_, q)| q.is_vfio())
            .map(|(k, _)| k.domain)
            .collect()
    }

    /// Whether the matrix device offers `ap_config` (one atomic write of a
    /// whole assignment). Older kernels lack `features`: we then say no and
    /// callers fall back to `assign_*` writes.
    pub fn supports_ap_config(&self) -> bool {
        self.features.as_ref().is_some_and(|f| f.ap_config)
    }

    /// The guest matrix of an mdev: as the kernel shows it when known, else
    /// as predicted by the full filter.
    pub fn guest_matrix_of(&self, uuid: &Uuid) -> Option<GuestMatrix> {
        let m = self.mdevs.get(uuid)?;
        Some(m.guest_matrix.unwrap_or_else(|| {
            let (adapters, domains) =
                crate::guest::guest_matrix(self, m.matrix.adapters, m.matrix.domains);
            GuestMatrix { adapters, domains }
        }))
    }
}

/// APQN → mdev lookup built by [`Host::mdev_owners`].
#[derive(Debug, Clone)]
pub struct OwnerIndex {
    slots: Vec<u32>,
    uuids: Vec<Uuid>,
}

impl OwnerIndex {
    /// The mdev whose matrix holds `apqn`.
    pub fn get(&self, apqn: Apqn) -> Option<&Uuid> {
        let slot = usize::from(apqn.adapter) * 256 + usize::from(apqn.domain);
        let idx = *self.slots.get(slot)?;
        self.uuids.get(usize::try_from(idx).ok()?)
    }
}

/// A mask file (`apmask`, `aqmask`).
pub(crate) fn read_mask(fs: &dyn Sysfs, path: &str) -> Result<ApMask, HostError> {
    parse_mask_file(path, &fs.read(path)?)
}

/// The queues present under a card, ascending; none when the card is gone.
pub(crate) fn list_queues(fs: &dyn Sysfs, adapter: u8) -> Result<Vec<Apqn>, HostError> {
    let names = match fs.list(&paths::card(adapter)) {
        Ok(q) => q,
        Err(e) if e.errno == libc::ENOENT => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut v: Vec<Apqn> = names
        .iter()
        .filter_map(|n| n.parse::<Apqn>().ok())
        .filter(|q| q.adapter == adapter)
        .collect();
    v.sort();
    Ok(v)
}

/// Whether vfio_ap is loaded, its features and every mdev.
pub(crate) fn read_vfio_part(
    fs: &dyn Sysfs,
    queues: &BTreeMap<Apqn, Queue>,
) -> Result<VfioPart, HostError> {
    let mut v = VfioPart {
        loaded: fs.exists(paths::MATRIX),
        ..VfioPart::default()
    };
    if !v.loaded {
        return Ok(v);
    }
    v.features = read_opt(fs, paths::MATRIX_FEATURES)?.map(|t| Features::parse(&t));
    let entries = match fs.list(paths::MATRIX) {
        Ok(e) => e,
        Err(e) if e.errno == libc::ENOENT => return Ok(v),
        Err(e) => return Err(e.into()),
    };
    for name in entries {
        let Some(uuid) = parse_mdev_name(&name) else {
            continue;
        };
        if let Some(mdev) = read_mdev_from(fs, uuid, queues)? {
            v.mdevs.insert(uuid, mdev);
        }
    }
    Ok(v)
}

pub(crate) fn read_card(fs: &dyn Sysfs, id: u8) -> Result<Option<Card>, HostError> {
    let dir = paths::card(id);
    if !fs.exists(&dir) {
        return Ok(None);
    }
    let attr = |name: &str| read_opt(fs, &format!("{dir}/{name}"));
    let type_name = attr("type")?
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let functions = attr("ap_functions")?.and_then(|s| parse_hex_u32(&s));
    let mode =
        CardMode::from_type(&type_name).or_else(|| functions.and_then(CardMode::from_functions));
    Ok(Some(Card {
        id,
        hwtype: attr("hwtype")?.and_then(|s| s.trim().parse().ok()),
        mode,
        functions,
        type_name,
        // Kernels without `config` have no standby state: configured.
        config: attr("config")?.and_then(|s| parse_bool(&s)).unwrap_or(true),
        online: attr("online")?
            .and_then(|s| parse_bool(&s))
            .unwrap_or(false),
        chkstop: attr("chkstop")?
            .and_then(|s| parse_bool(&s))
            .unwrap_or(false),
    }))
}

pub(crate) fn read_queue(fs: &dyn Sysfs, apqn: Apqn) -> Result<Option<Queue>, HostError> {
    let dir = paths::queue(apqn);
    if !fs.exists(&dir) {
        return Ok(None);
    }
    let attr = |name: &str| read_opt(fs, &format!("{dir}/{name}"));
    let driver = match fs.read_link(&format!("{dir}/driver")) {
        Ok(target) => target
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .map(str::to_string)
            .filter(|s| !s.is_empty()),
        Err(e) if e.errno == libc::ENOENT || e.errno == libc::EINVAL => None,
        Err(e) => return Err(e.into()),
    };
    Ok(Some(Queue {
        apqn,
        config: attr("config")?.and_then(|s| parse_bool(&s)).unwrap_or(true),
        chkstop: attr("chkstop")?
            .and_then(|s| parse_bool(&s))
            .unwrap_or(false),
        online: attr("online")?.and_then(|s| parse_bool(&s)),
        driver,
    }))
}

pub(crate) fn read_mdev_from(
    fs: &dyn Sysfs,
    uuid: Uuid,
    queues: &BTreeMap<Apqn, Queue>,
) -> Result<Option<Mdev>, HostError> {
    let dir = paths::mdev(&uuid);
    let gone = |e: &SysfsError| e.errno == libc::ENOENT || e.errno == libc::ENODEV;
    let ap_config_path = format!("{dir}/ap_config");
    // ap_config gives the three masks in one read (one consistent snapshot);
    // only when it is missing do we look whether the mdev is (an mdev is
    // re-read before every report: one access fewer per mdev counts).
    let matrix = match fs.read(&ap_config_path) {
        Ok(text) => {
            let (a, d, c) = parse_ap_config(&text).map_err(|e| matrix_err(ap_config_path, e))?;
            Matrix::new(a, d, c)
        }
        Err(e) if gone(&e) && !fs.exists(&dir) => return Ok(None),
        Err(e) if gone(&e) => {
            let mpath = format!("{dir}/matrix");
            let (a, d) = match fs.read(&mpath) {
                Ok(t) => parse_matrix(&t).map_err(|e| matrix_err(mpath, e))?,
                Err(e) if gone(&e) && !fs.exists(&dir) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let cpath = format!("{dir}/control_domains");
            let c = match fs.read(&cpath) {
                Ok(t) => parse_control_domains(&t).map_err(|e| matrix_err(cpath, e))?,
                Err(e) if gone(&e) && !fs.exists(&dir) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Matrix::new(a, d, c)
        }
        Err(e) => return Err(e.into()),
    };
    let gpath = format!("{dir}/guest_matrix");
    let guest_matrix = match fs.read(&gpath) {
        Ok(t) => {
            let (adapters, domains) = parse_matrix(&t).map_err(|e| matrix_err(gpath, e))?;
            Some(GuestMatrix { adapters, domains })
        }
        Err(e) if gone(&e) => None,
        Err(e) => return Err(e.into()),
    };
    // Every queue of the guest matrix reports `in use` while a guest holds
    // the mdev, so the first queue with a status decides. The status is
    // read live: a guest opening the mdev sends no uevent. `queues` (the
    // model, when known) skips queues not bound to vfio_ap.
    let (ga, gd) = match &guest_matrix {
        Some(g) => (g.adapters, g.domains),
        None => (matrix.adapters, matrix.domains),
    };
    let mut in_use = false;
    'outer: for a in ga.iter() {
        for d in gd.iter() {
            let apqn = Apqn::new(a, d);
            if !queues.is_empty() && !queues.get(&apqn).is_some_and(Queue::is_vfio) {
                continue;
            }
            if let Ok(s) = fs.read(&format!("{}/status", paths::queue(apqn))) {
                in_use = s.trim() == "in use";
                break 'outer;
            }
        }
    }
    Ok(Some(Mdev {
        uuid,
        matrix,
        guest_matrix,
        in_use,
    }))
}
