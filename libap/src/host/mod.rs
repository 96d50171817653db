//! The host model, read from sysfs through [`Sysfs`]: configuration, masks,
//! cards, queues and their drivers, vfio_ap mdevs; who owns each APQN.
//!
//! Paths follow kernel spec §1–§8: `bus/ap/...`, `devices/ap/cardXX/XX.YYYY`,
//! `devices/vfio_ap/matrix/<uuid>/...`. Everything is a plain value, cheap
//! to clone, so a planner can simulate steps on a copy.
//!
//! The model is here; reading it is [`read`]'s, who owns what
//! [`owners`]'s.

mod owners;
mod read;

pub use owners::{host_owns, Owner, OwnerIndex};
pub(crate) use read::{
    list_queues, read_bindings, read_bindings_of, read_card, read_driver, read_likely_absent_mdev,
    read_mask, read_mdev_from, read_queue, read_vfio_part, RawConfig,
};
pub use read::{parse_card_name, parse_mdev_name};

use crate::apqn::Apqn;
use crate::mask::ApMask;
use crate::sysfs::SysfsError;
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
    /// The AP bus's masks, which every change re-reads under the lock:
    /// attributes of the bus itself, there as long as the AP bus is, so a
    /// reader may keep them open ([`crate::sysfs::DirSysfs`] does).
    pub const BUS_MASKS: [&str; 5] = [
        APMASK,
        AQMASK,
        ADAPTER_MASK,
        USAGE_DOMAIN_MASK,
        CONTROL_DOMAIN_MASK,
    ];
    /// `N/M (complete)`.
    pub const BINDINGS: &str = "bus/ap/bindings";
    /// Writing anything forces a rescan.
    pub const SCANS: &str = "bus/ap/scans";
    /// Card and queue devices.
    pub const AP_DEVICES: &str = "devices/ap";
    /// The AP drivers, each directory listing the devices bound to it.
    pub const AP_DRIVERS: &str = "bus/ap/drivers";
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
    /// Mode, from the type letter, else from `ap_functions`. (`hwtype`
    /// is not read: nothing apd shows or decides needs it.)
    pub mode: Option<CardMode>,
    /// `config`: configured (true) or standby (false).
    pub config: bool,
    /// `online`.
    pub online: bool,
    /// `chkstop`: check-stopped.
    pub chkstop: bool,
}

/// A queue (APQN) device, as the model keeps it: that it exists and its
/// driver, both from directory listings (the card's, the drivers'). Its
/// state attributes are not kept: reading them is three files a queue, six
/// figures of reads at start on a full LPAR, and nothing apd decides needs
/// them; a report that shows them reads them ([`QueueState`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The APQN.
    pub apqn: Apqn,
    /// Driver name (basename of the `driver` link), None when unbound;
    /// one shared string per driver, not a copy per queue (65,536 queues).
    /// (A vfio_ap queue's `status` is not kept: it changes without a
    /// uevent when an mdev is assigned or opened; see [`Mdev::in_use`].)
    pub driver: Option<std::sync::Arc<str>>,
}

/// A queue's state attributes, read when a report shows them
/// ([`QueueState::read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// `config`.
    pub config: bool,
    /// `chkstop`.
    pub chkstop: bool,
    /// `online` (only cex4queue-bound queues have it).
    pub online: Option<bool>,
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
    /// Cards by adapter id; shared by the copies of the model like the
    /// queues, so a change that touches no card copies none (256 on a
    /// full machine; change them with [`Host::cards_mut`]).
    pub cards: std::sync::Arc<BTreeMap<u8, Card>>,
    /// Queues by APQN (existence and driver; see [`Queue`]). Shared by the
    /// copies of the model (a published snapshot), so a change that moves
    /// no queue copies none of them: 65,536 on a full LPAR (change them
    /// with [`Host::queues_mut`]).
    pub queues: std::sync::Arc<BTreeMap<Apqn, Queue>>,
    /// vfio_ap mdevs by UUID (see [`Mdevs`]).
    pub mdevs: Mdevs,
}

/// The mdevs by UUID, in a persistent map: the copies of the model (a
/// published snapshot) share it, and a change copies only the nodes on
/// the path to what it changes, not 1,000 mdevs; two copies are compared
/// by what differs ([`imbl::OrdMap::diff`] skips the shared nodes).
pub type Mdevs = imbl::OrdMap<Uuid, Mdev>;
