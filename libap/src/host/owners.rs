//! Who owns an APQN: the host (the masks), an mdev (its matrix), or
//! nobody; and what the guest matrix of an mdev is.

use super::{Card, GuestMatrix, Host, Queue};
use crate::apqn::Apqn;
use crate::mask::ApMask;
use std::collections::BTreeMap;
use uuid::Uuid;

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

/// Whether `apmask` and `aqmask` give `apqn` to the host (kernel spec §2:
/// both its bits set); otherwise it is free for vfio_ap.
pub fn host_owns(apmask: ApMask, aqmask: ApMask, apqn: Apqn) -> bool {
    apmask.contains(apqn.adapter) && aqmask.contains(apqn.domain)
}

impl Host {
    /// The cards, to change: copied first while a copy of the model
    /// shares them.
    pub fn cards_mut(&mut self) -> &mut BTreeMap<u8, Card> {
        std::sync::Arc::make_mut(&mut self.cards)
    }

    /// The queues, to change: copied first while a copy of the model
    /// shares them.
    pub fn queues_mut(&mut self) -> &mut BTreeMap<Apqn, Queue> {
        std::sync::Arc::make_mut(&mut self.queues)
    }

    /// The UUIDs of the mdevs that differ between this model and `newer`
    /// (added, removed or changed), in order; what both share is skipped
    /// unread, so comparing two copies of a model that differ in one mdev
    /// costs that mdev, not 1,000.
    pub fn mdevs_changed<'a>(&'a self, newer: &'a Host) -> impl Iterator<Item = Uuid> + 'a {
        self.mdevs.diff(&newer.mdevs).map(|d| match d {
            imbl::ordmap::DiffItem::Add(u, _) | imbl::ordmap::DiffItem::Remove(u, _) => *u,
            imbl::ordmap::DiffItem::Update { new: (u, _), .. } => *u,
        })
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
        host_owns(self.apmask, self.aqmask, apqn)
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
    /// whole assignment). Older kernels lack `features`: we then say no.
    /// Only tests ask: the executor tries `ap_config` for a created mdev
    /// and falls back to one id per write by itself ([`crate::apply`]),
    /// and reading falls back to `matrix` by itself.
    #[cfg(any(test, feature = "testing"))]
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

#[cfg(test)]
mod tests {
    use super::super::{Matrix, Mdev};
    use super::*;
    use proptest::prelude::*;

    fn mdev(n: u8, domain: u8) -> Mdev {
        let mut matrix = Matrix::default();
        matrix.adapters.insert(n);
        matrix.domains.insert(domain);
        Mdev {
            uuid: Uuid::from_u128(u128::from(n)),
            matrix,
            guest_matrix: None,
            in_use: false,
        }
    }

    fn host(mdevs: &BTreeMap<u8, u8>) -> Host {
        Host {
            mdevs: mdevs
                .iter()
                .map(|(&n, &d)| (Uuid::from_u128(u128::from(n)), mdev(n, d)))
                .collect(),
            ..Host::default()
        }
    }

    proptest! {
        /// A copy changed in place (as apd changes its model while a
        /// snapshot shares it) differs from the original in exactly the
        /// mdevs a lookup of every UUID finds different, and the original
        /// is left as it was.
        #[test]
        fn mdevs_changed_finds_what_lookups_find(
            old in prop::collection::btree_map(0u8..200, 0u8..3, 0..300),
            edits in prop::collection::vec((0u8..200, prop::option::of(0u8..3)), 0..10),
        ) {
            let before = host(&old);
            let mut after = before.clone();
            for (n, d) in &edits {
                let u = Uuid::from_u128(u128::from(*n));
                match d {
                    Some(d) => after.mdevs.insert(u, mdev(*n, *d)),
                    None => after.mdevs.remove(&u),
                };
            }
            prop_assert_eq!(&before, &host(&old));
            let found: Vec<Uuid> = before.mdevs_changed(&after).collect();
            let mut uuids: Vec<Uuid> = before.mdevs.keys().chain(after.mdevs.keys()).copied().collect();
            uuids.sort_unstable();
            uuids.dedup();
            let looked_up: Vec<Uuid> = uuids
                .into_iter()
                .filter(|u| before.mdevs.get(u) != after.mdevs.get(u))
                .collect();
            prop_assert_eq!(found, looked_up);
        }
    }

    #[test]
    fn a_model_compared_with_itself_changes_nothing() {
        let h = host(&(0..100).map(|n| (n, 1)).collect());
        assert_eq!(h.mdevs_changed(&h.clone()).count(), 0);
    }
}
