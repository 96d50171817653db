//! Why a guest cannot use an APQN of its mdev (kernel spec §3, §6, §7):
//! one typed reason per kernel rule, each with one sentence of fact.
//! Remedies that name commands are the caller's to add.

use crate::apqn::Apqn;
use crate::host::{Host, Owner, QueueState};
use std::fmt;
use uuid::Uuid;

/// Why an APQN of an mdev's matrix is not usable by its guest, or why
/// an inactive mdev's APQN would not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// The mdev is not active: it has no live matrix.
    NotActive(Uuid),
    /// The APQN is not in the mdev's matrix.
    NotInMatrix(Apqn),
    /// The adapter (or the queue) is configured off (standby, §7).
    ConfiguredOff(u8),
    /// The queue or its card is check-stopped.
    CheckStopped(Apqn),
    /// The adapter is not in the LPAR's configuration (ap_adapter_mask).
    AdapterOutsideConfig(u8),
    /// The domain is not in the LPAR's usage domains.
    DomainOutsideConfig(u8),
    /// The masks give the queue to the host (§2).
    HostOwned(Apqn),
    /// Another mdev's matrix holds the queue (§5).
    AssignedTo(Apqn, Uuid),
    /// The host has no such queue.
    NoQueue(Apqn),
    /// The queue is bound to another driver.
    BoundTo(Apqn, String),
    /// The queue has no driver.
    Unbound(Apqn),
    /// The vfio_ap module is not loaded.
    VfioApNotLoaded,
    /// The full filter left the adapter out: this queue of it is not
    /// bound to vfio_ap (§6).
    LeftOut(u8, Apqn),
    /// The kernel unplugged the adapter; it returns at the next full
    /// filter (§6).
    Unplugged(u8),
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::NotActive(u) => write!(f, "mdev {u} is not active (it has no live matrix)"),
            Unusable::NotInMatrix(q) => write!(f, "queue {q} is not in the mdev's matrix"),
            Unusable::ConfiguredOff(a) => write!(f, "adapter {a} is configured off (standby)"),
            Unusable::CheckStopped(q) => write!(
                f,
                "queue {q} is check-stopped (hardware error); the adapter needs service"
            ),
            Unusable::AdapterOutsideConfig(a) => write!(
                f,
                "adapter {a} is outside the LPAR's configuration (not in ap_adapter_mask)"
            ),
            Unusable::DomainOutsideConfig(d) => write!(
                f,
                "domain 0x{d:02x} is outside the LPAR's configuration (not in ap_usage_domain_mask)"
            ),
            Unusable::HostOwned(q) => write!(
                f,
                "queue {q} belongs to the host (adapter {} is set in apmask and domain 0x{:02x} in aqmask)",
                q.adapter, q.domain
            ),
            Unusable::AssignedTo(q, _) => write!(f, "queue {q} is assigned to another mdev"),
            Unusable::NoQueue(q) => write!(f, "queue {q} does not exist on this host"),
            Unusable::BoundTo(q, drv) => write!(f, "queue {q} is bound to {drv}, not to vfio_ap"),
            Unusable::Unbound(q) => write!(
                f,
                "queue {q} is not bound to vfio_ap (no driver; echo {q} > /sys/bus/ap/drivers_probe)"
            ),
            Unusable::VfioApNotLoaded => write!(f, "the vfio_ap module is not loaded"),
            Unusable::LeftOut(a, b) => write!(
                f,
                "adapter {a} is left out of the guest because queue {b} is not bound to vfio_ap"
            ),
            Unusable::Unplugged(a) => write!(
                f,
                "adapter {a} was unplugged by the kernel and returns at its next full filter (assign or rescan)"
            ),
        }
    }
}

/// Whether an APQN is in its mdev's guest matrix, and why the guest cannot
/// use it (None: it can).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usability {
    /// In the guest matrix.
    pub in_guest: bool,
    /// Why not usable; None when usable.
    pub why_not: Option<Unusable>,
}

impl Host {
    /// For `apctl show`: whether `apqn` of the active mdev `uuid` is in its
    /// guest matrix, and why the guest cannot use it (in the guest matrix,
    /// adapter configured and not check-stopped is usable). `queue` is the
    /// queue's state as read for this report ([`QueueState::read`]; the
    /// model does not keep it), None when not read: then the card decides.
    pub fn usable(&self, uuid: Uuid, apqn: Apqn, queue: Option<&QueueState>) -> Usability {
        let Some(mdev) = self.mdevs.get(&uuid) else {
            return Usability {
                in_guest: false,
                why_not: Some(Unusable::NotActive(uuid)),
            };
        };
        let in_guest = self
            .guest_matrix_of(&uuid)
            .is_some_and(|g| g.contains(apqn));
        let why_not = if !mdev.matrix.contains(apqn) {
            Some(Unusable::NotInMatrix(apqn))
        } else if in_guest {
            self.in_guest_problem(apqn, queue)
        } else {
            Some(self.left_out_reason(uuid, apqn))
        };
        Usability { in_guest, why_not }
    }

    /// The same as [`Host::usable`] in words, with the queue's state read
    /// through `fs`: (in guest, usable, why not).
    #[cfg(any(test, feature = "testing"))]
    pub fn usability(
        &self,
        fs: &dyn crate::sysfs::Sysfs,
        uuid: Uuid,
        apqn: Apqn,
    ) -> (bool, bool, Option<String>) {
        let state = QueueState::read(fs, apqn).ok().flatten();
        let u = self.usable(uuid, apqn, state.as_ref());
        (
            u.in_guest,
            u.why_not.is_none(),
            u.why_not.map(|w| w.to_string()),
        )
    }

    /// What keeps a guest from an APQN of its guest matrix (§7: a
    /// configured-off adapter stays in the guest matrix).
    fn in_guest_problem(&self, apqn: Apqn, queue: Option<&QueueState>) -> Option<Unusable> {
        let card = self.cards.get(&apqn.adapter);
        if card.is_some_and(|c| !c.config) || queue.is_some_and(|q| !q.config) {
            Some(Unusable::ConfiguredOff(apqn.adapter))
        } else if card.is_some_and(|c| c.chkstop) || queue.is_some_and(|q| q.chkstop) {
            Some(Unusable::CheckStopped(apqn))
        } else {
            None
        }
    }

    /// Why an APQN of an mdev's matrix is not in its guest matrix.
    fn left_out_reason(&self, uuid: Uuid, apqn: Apqn) -> Unusable {
        let (a, d) = (apqn.adapter, apqn.domain);
        let queue = self.queues.get(&apqn);
        if self.config.known && !self.config.adapters.contains(a) {
            Unusable::AdapterOutsideConfig(a)
        } else if self.config.known && !self.config.usage_domains.contains(d) {
            Unusable::DomainOutsideConfig(d)
        } else if self.is_host_owned(apqn) {
            Unusable::HostOwned(apqn)
        } else if queue.is_none() {
            Unusable::NoQueue(apqn)
        } else if !self.is_vfio_bound(apqn) {
            match queue.and_then(|q| q.driver.as_deref().map(str::to_string)) {
                Some(drv) => Unusable::BoundTo(apqn, drv),
                None => Unusable::Unbound(apqn),
            }
        } else if !self.vfio_ap_loaded {
            Unusable::VfioApNotLoaded
        } else {
            // Bound and in the LPAR, yet filtered out: another queue of the
            // same adapter is missing from vfio_ap, so the adapter is out.
            let domains = self
                .mdevs
                .get(&uuid)
                .map(|m| m.matrix.domains)
                .unwrap_or_default();
            let blocker = domains.iter().map(|dd| Apqn::new(a, dd)).find(|q| {
                !self.is_vfio_bound(*q)
                    && (!self.config.known || self.config.usage_domains.contains(q.domain))
            });
            match blocker {
                Some(b) => Unusable::LeftOut(a, b),
                None => Unusable::Unplugged(a),
            }
        }
    }

    /// What a start of the inactive mdev `uuid` would meet at `apqn`: the
    /// host or another mdev holding it, the adapter or domain outside the
    /// LPAR, the adapter off; None when nothing.
    pub fn start_blocker(&self, uuid: Uuid, apqn: Apqn) -> Option<Unusable> {
        let (a, d) = (apqn.adapter, apqn.domain);
        match self.owner(apqn) {
            Owner::Host { .. } => Some(Unusable::HostOwned(apqn)),
            Owner::Mdev { uuid: other } if other != uuid => Some(Unusable::AssignedTo(apqn, other)),
            _ if self.config.known && !self.config.adapters.contains(a) => {
                Some(Unusable::AdapterOutsideConfig(a))
            }
            _ if self.config.known && !self.config.usage_domains.contains(d) => {
                Some(Unusable::DomainOutsideConfig(d))
            }
            _ if self.cards.get(&a).is_some_and(|c| !c.config) => Some(Unusable::ConfiguredOff(a)),
            _ => None,
        }
    }
}
