//! Keeping a host model current without reading the host whole.
//!
//! A change (a uevent, or a sysfs write of our own) makes some parts of the
//! model stale: [`Stale`] names them. [`Host::read_stale`] re-reads just
//! those parts into a [`Delta`] — on a blocking thread, against a snapshot
//! of the model, so the model stays readable meanwhile — and
//! [`Host::apply`] puts the delta in. A whole read of a 256×256 host is
//! some 2,000 sysfs reads (the cards' files and directory listings; queue
//! attributes are read by the reports that show them); the re-read after
//! one uevent is a handful.
//!
//! Rules of thumb from kernel spec: a mask change rebinds the queues whose
//! bits flipped; a card or queue change moves the guest matrix of every mdev
//! holding that adapter (or, for a queue, that domain); an mdev's
//! attributes and a control-domain-only LPAR change come without a uevent,
//! so a reader re-reads those first (`Stale::unannounced`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::apqn::Apqn;
use crate::host::{
    host_owns, list_queues, parse_card_name, parse_mdev_name, paths, read_bindings,
    read_bindings_of, read_card, read_driver, read_likely_absent_mdev, read_mask, read_mdev_from,
    read_queue, read_vfio_part, Card, Features, GuestMatrix, Host, HostError, Matrix, Mdev, Queue,
    RawConfig,
};
use crate::mask::ApMask;
use crate::sysfs::Sysfs;

/// The parts of a host model that no longer match the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stale {
    /// Everything: read the host whole (events were lost, or a write whose
    /// effects we do not model, such as a rescan).
    pub everything: bool,
    /// apmask and aqmask (and so the queues whose bits flip).
    pub masks: bool,
    /// The LPAR's configuration and the maximum ids.
    pub config: bool,
    /// Whether vfio_ap is loaded, its features and the set of mdevs, each
    /// re-read.
    pub all_mdevs: bool,
    /// Cards re-read with all their queues.
    pub cards: BTreeSet<u8>,
    /// Single queues.
    pub queues: BTreeSet<Apqn>,
    /// Single mdevs (appeared, changed or gone).
    pub mdevs: BTreeSet<Uuid>,
}

impl Stale {
    /// Nothing is stale.
    pub fn none() -> Stale {
        Stale::default()
    }

    /// The whole host.
    pub fn everything() -> Stale {
        Stale {
            everything: true,
            ..Stale::default()
        }
    }

    /// Every mdev (the kernel sends no uevent for their attributes).
    pub fn all_mdevs() -> Stale {
        Stale {
            all_mdevs: true,
            ..Stale::default()
        }
    }

    /// What the kernel changes without a uevent, re-read before a report
    /// or a change: every mdev (assignments written by other tools, a
    /// guest opening it; kernel spec §9) and the LPAR's configuration (a
    /// change of control domains alone creates or removes no device, so
    /// only its mask file shows it; §1).
    pub fn unannounced() -> Stale {
        Stale {
            all_mdevs: true,
            config: true,
            ..Stale::default()
        }
    }

    /// What a change's checks depend on beyond the mdevs, holding the s390
    /// AP configuration lock: the masks, whose uevent from another
    /// writer's change may not have been followed yet (every refusal of
    /// kernel spec §5 depends on them), and the LPAR's configuration (no
    /// uevent). A change whose writes are computed from them (the masks)
    /// re-reads them before it decides; one whose writes are not (a start,
    /// a stop) reads them only when a check refuses or the kernel does, so
    /// that neither refusal rests on a stale model. The caller adds the
    /// mdev it changes ([`Stale::mdev`]); another mdev an other tool wrote
    /// to without a uevent is met by the kernel's refusal, after which a
    /// re-read of every mdev names it. So a change costs what it touches,
    /// not one read per mdev on the host.
    pub fn before_change() -> Stale {
        Stale {
            masks: true,
            config: true,
            ..Stale::default()
        }
    }

    /// One mdev.
    pub fn mdev(uuid: Uuid) -> Stale {
        Stale {
            mdevs: BTreeSet::from([uuid]),
            ..Stale::default()
        }
    }

    /// One card and its queues.
    pub fn card(adapter: u8) -> Stale {
        Stale {
            cards: BTreeSet::from([adapter]),
            ..Stale::default()
        }
    }

    /// One queue.
    pub fn queue(apqn: Apqn) -> Stale {
        Stale {
            queues: BTreeSet::from([apqn]),
            ..Stale::default()
        }
    }

    /// The masks.
    pub fn masks() -> Stale {
        Stale {
            masks: true,
            ..Stale::default()
        }
    }

    /// The configuration.
    pub fn config() -> Stale {
        Stale {
            config: true,
            ..Stale::default()
        }
    }

    /// Whether nothing is stale.
    pub fn is_empty(&self) -> bool {
        *self == Stale::default()
    }

    /// This and what `other` names (for building one in an expression).
    pub fn and(mut self, other: Stale) -> Stale {
        self.merge(other);
        self
    }

    /// Adds what `other` names.
    pub fn merge(&mut self, other: Stale) {
        self.everything |= other.everything;
        self.masks |= other.masks;
        self.config |= other.config;
        self.all_mdevs |= other.all_mdevs;
        self.cards.extend(other.cards);
        self.queues.extend(other.queues);
        self.mdevs.extend(other.mdevs);
    }

    /// What writing `data` to `path` (relative to the sysfs root) makes
    /// stale, per kernel spec: masks rebind queues, a card's `config`
    /// changes the card and its queues, `create` and an mdev's attributes
    /// change that mdev. A write we do not model makes everything stale.
    pub fn after_write(path: &str, data: &str) -> Stale {
        let path = path.trim_matches('/');
        if path == paths::APMASK || path == paths::AQMASK {
            return Stale::masks();
        }
        if path == paths::MDEV_CREATE {
            return match parse_mdev_name(data.trim()) {
                Some(u) => Stale::mdev(u),
                None => Stale::all_mdevs(),
            };
        }
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["devices", "ap", card, "config" | "online"] => {
                parse_card_name(card).map_or_else(Stale::everything, Stale::card)
            }
            ["devices", "ap", card, queue, "online" | "config"] => {
                match (parse_card_name(card), queue.parse::<Apqn>()) {
                    (Some(a), Ok(q)) if q.adapter == a => Stale::queue(q),
                    _ => Stale::everything(),
                }
            }
            ["devices", "vfio_ap", "matrix", uuid, _attr] => {
                parse_mdev_name(uuid).map_or_else(Stale::all_mdevs, Stale::mdev)
            }
            _ => Stale::everything(),
        }
    }
}

/// The re-read parts of a host, ready for [`Host::apply`].
#[derive(Debug, Clone, Default)]
pub struct Delta {
    whole: Option<Box<Host>>,
    masks: Option<(ApMask, ApMask)>,
    config: Option<RawConfig>,
    cards: Vec<(u8, Option<Card>, Vec<Queue>)>,
    queues: Vec<(Apqn, Option<Queue>)>,
    vfio: Option<VfioPart>,
    mdevs: Vec<(Uuid, Option<Mdev>)>,
}

/// The vfio_ap side: loaded, features, every mdev.
#[derive(Debug, Clone, Default)]
pub(crate) struct VfioPart {
    pub(crate) loaded: bool,
    pub(crate) features: Option<Features>,
    pub(crate) mdevs: crate::host::Mdevs,
}

impl Delta {
    /// The mdev a writer has just created and assigned `matrix` to, as the
    /// kernel shows it after those writes (kernel spec §6: the full filter
    /// runs after each assign of a new id; no guest holds a new mdev), so
    /// the writer need not read it back; its uevents re-read it later.
    /// None when the kernel has no `features` file: whether it shows a
    /// `guest_matrix` is then only known by reading.
    pub fn started(host: &Host, uuid: Uuid, matrix: Matrix) -> Option<Delta> {
        let features = host.features.as_ref()?;
        let guest_matrix = features.guest_matrix.then(|| {
            let (adapters, domains) =
                crate::guest::guest_matrix(host, matrix.adapters, matrix.domains);
            GuestMatrix { adapters, domains }
        });
        let mdev = Mdev {
            uuid,
            matrix,
            guest_matrix,
            in_use: false,
        };
        Some(Delta {
            mdevs: vec![(uuid, Some(mdev))],
            ..Delta::default()
        })
    }

    /// Whether applying this delta to `host` would change it; lets a
    /// reader keep its snapshot when nothing moved, without a copy.
    pub fn changes(&self, host: &Host) -> bool {
        if let Some(whole) = &self.whole {
            return **whole != *host;
        }
        let masks = self
            .masks
            .is_some_and(|(ap, aq)| host.apmask != ap || host.aqmask != aq);
        let cards = self.cards.iter().any(|(a, card, queues)| {
            let range = Apqn::new(*a, 0)..=Apqn::new(*a, 255);
            host.cards.get(a) != card.as_ref()
                || !host.queues.range(range).map(|(_, q)| q).eq(queues.iter())
        });
        let queues = self
            .queues
            .iter()
            .any(|(apqn, q)| host.queues.get(apqn) != q.as_ref());
        let vfio = self.vfio.as_ref().is_some_and(|v| {
            host.vfio_ap_loaded != v.loaded || host.features != v.features || host.mdevs != v.mdevs
        });
        let mdevs = self
            .mdevs
            .iter()
            .any(|(u, m)| host.mdevs.get(u) != m.as_ref());
        // With everything else equal, the configuration derives the same
        // from `host` as from the host after the delta.
        let config = self.config.as_ref().is_some_and(|raw| {
            host.config != raw.derive(host)
                || host.max_adapter_id != raw.max_adapter_id
                || host.max_domain_id != raw.max_domain_id
        });
        masks || cards || queues || vfio || mdevs || config
    }

    /// The number of sysfs objects re-read (cards, queues, mdevs), for logs.
    pub fn size(&self) -> usize {
        if let Some(h) = &self.whole {
            return h.cards.len() + h.queues.len() + h.mdevs.len();
        }
        self.cards
            .iter()
            .map(|(_, _, q)| 1 + q.len())
            .sum::<usize>()
            + self.queues.len()
            + self.vfio.as_ref().map_or(0, |v| v.mdevs.len())
            + self.mdevs.len()
    }
}

/// The adapters and domains whose bits a mask write flipped.
#[derive(Debug, Clone, Copy, Default)]
struct Flipped {
    ap: ApMask,
    aq: ApMask,
}

impl Flipped {
    /// Whether the write flipped this queue's host ownership bits.
    #[cfg(test)]
    fn holds(&self, q: Apqn) -> bool {
        self.ap.contains(q.adapter) || self.aq.contains(q.domain)
    }

    /// The model's queues whose bits flipped ([`Flipped::holds`]), in
    /// order, found adapter by adapter (a flipped domain is looked up on
    /// each) rather than by a walk over every queue: a change that flipped
    /// nothing, such as a start, costs nothing on a 65,536-queue host.
    fn queues_in(&self, queues: &BTreeMap<Apqn, Queue>) -> Vec<Apqn> {
        let mut found = Vec::new();
        if self.ap.is_empty() && self.aq.is_empty() {
            return found;
        }
        let mut from = Apqn::new(0, 0);
        while let Some((first, _)) = queues.range(from..).next() {
            let a = first.adapter;
            if self.ap.contains(a) {
                found.extend(
                    queues
                        .range(*first..=Apqn::new(a, u8::MAX))
                        .map(|(q, _)| *q),
                );
            } else {
                found.extend(
                    self.aq
                        .iter()
                        .map(|d| Apqn::new(a, d))
                        .filter(|q| queues.contains_key(q)),
                );
            }
            match a.checked_add(1) {
                Some(next) => from = Apqn::new(next, 0),
                None => break,
            }
        }
        found
    }

    /// Whether a matrix can hold a queue whose bits flipped.
    fn may_move(&self, m: &Matrix) -> bool {
        (m.adapters.intersects(self.ap) && !m.domains.is_empty())
            || (m.domains.intersects(self.aq) && !m.adapters.is_empty())
    }
}

/// How many queues' drivers are read one `driver` link each; from this
/// many on, one listing per AP driver (`bus/ap/drivers/<drv>`) is fewer
/// accesses (a mask write that moves a domain moves a queue per card).
const LIST_DRIVERS_FROM: usize = 64;

/// The drivers of queues known to exist (just listed, or in the model
/// with only their host ownership changed): one link each for a few, the
/// drivers' listings, read once, for many. A queue gone meanwhile reads
/// as unbound; its remove uevent follows.
#[derive(Default)]
struct Bindings(Option<BTreeMap<Apqn, Arc<str>>>);

impl Bindings {
    fn queues(&mut self, fs: &dyn Sysfs, apqns: &[Apqn]) -> Result<Vec<Queue>, HostError> {
        if apqns.len() < LIST_DRIVERS_FROM && self.0.is_none() {
            return apqns
                .iter()
                .map(|&apqn| read_driver(fs, apqn).map(|driver| Queue { apqn, driver }))
                .collect();
        }
        let bound = match &mut self.0 {
            Some(b) => b,
            None => self.0.insert(read_bindings(fs)?),
        };
        Ok(in_listing(bound, apqns))
    }

    /// The drivers of queues whose host ownership bits flipped: by the
    /// masks now (`host_owned`) each can only be bound to vfio_ap, or only
    /// to a host driver (kernel spec §3: a bind the masks do not allow
    /// fails), so many are read from the listings of that side alone. A
    /// boot restore that gives 1,024 queues to vfio_ap lists vfio_ap's
    /// directory, not cex4queue's 64,512 entries as well.
    fn moved(
        &mut self,
        fs: &dyn Sysfs,
        apqns: &[Apqn],
        host_owned: impl Fn(Apqn) -> bool,
    ) -> Result<Vec<Queue>, HostError> {
        if apqns.len() < LIST_DRIVERS_FROM || self.0.is_some() {
            return self.queues(fs, apqns);
        }
        let to_host = apqns.iter().any(|q| host_owned(*q));
        let to_vfio = apqns.iter().any(|q| !host_owned(*q));
        let bound = read_bindings_of(fs, |driver| {
            if driver == paths::VFIO_AP_DRIVER {
                to_vfio
            } else {
                to_host
            }
        })?;
        Ok(in_listing(&bound, apqns))
    }
}

/// Each of `apqns` with its driver from `bound` (absent: unbound).
fn in_listing(bound: &BTreeMap<Apqn, Arc<str>>, apqns: &[Apqn]) -> Vec<Queue> {
    apqns
        .iter()
        .map(|&apqn| Queue {
            apqn,
            driver: bound.get(&apqn).cloned(),
        })
        .collect()
}

impl Host {
    /// Re-reads what `stale` names (and what follows from it) through
    /// `fs`. `self` is the model the delta will be applied to.
    pub fn read_stale(&self, fs: &dyn Sysfs, stale: &Stale) -> Result<Delta, HostError> {
        if stale.everything {
            return Ok(Delta {
                whole: Some(Box::new(Host::read(fs)?)),
                ..Delta::default()
            });
        }
        let mut delta = Delta::default();
        let cards = &stale.cards;
        let mut queues = stale.queues.clone();
        let mut flipped = Flipped::default();
        let mut bindings = Bindings::default();
        if stale.masks {
            let ap = read_mask(fs, paths::APMASK)?;
            let aq = read_mask(fs, paths::AQMASK)?;
            flipped = Flipped {
                ap: ap.difference(self.apmask).union(self.apmask.difference(ap)),
                aq: aq.difference(self.aqmask).union(self.aqmask.difference(aq)),
            };
            delta.masks = Some((ap, aq));
        }
        for a in cards {
            let Some(card) = read_card(fs, *a)? else {
                delta.cards.push((*a, None, Vec::new()));
                continue;
            };
            // Just listed: only the driver is read (a queue gone meanwhile
            // reads as unbound; its remove uevent follows).
            let listed = list_queues(fs, *a)?;
            let qs = bindings.queues(fs, &listed)?;
            delta.cards.push((*a, Some(card), qs));
        }
        queues.retain(|q| !cards.contains(&q.adapter));
        for q in &queues {
            delta.queues.push((*q, read_queue(fs, *q)?));
        }
        // The kernel rebinds the queues whose host ownership flipped before
        // the mask write returns: they stay, their drivers move.
        let moved: Vec<Apqn> = flipped
            .queues_in(&self.queues)
            .into_iter()
            .filter(|q| !queues.contains(q) && !cards.contains(&q.adapter))
            .collect();
        let (ap, aq) = delta.masks.unwrap_or((self.apmask, self.aqmask));
        for q in bindings.moved(fs, &moved, |q| host_owns(ap, aq, q))? {
            delta.queues.push((q.apqn, Some(q)));
        }
        // The configuration files are few, and re-read with any card or
        // queue: an LPAR change shows as cards and queues coming and going,
        // and without QCI the configuration follows the devices present.
        if stale.config || stale.masks || !cards.is_empty() || !queues.is_empty() {
            delta.config = Some(RawConfig::reread(fs, self)?);
        }
        if stale.all_mdevs {
            delta.vfio = Some(read_vfio_part(fs, &self.queues)?);
            return Ok(delta);
        }
        for u in self.mdevs_moved(stale, &queues, flipped) {
            // One the model does not hold is most likely still absent: a
            // start reads the mdev it is about to create.
            let mdev = if self.mdevs.contains_key(&u) {
                read_mdev_from(fs, u, &self.queues)?
            } else {
                read_likely_absent_mdev(fs, u, &self.queues)?
            };
            delta.mdevs.push((u, mdev));
        }
        Ok(delta)
    }

    /// The mdevs whose guest matrix a re-read of `stale` may move: those it
    /// names; for a card or queue change those that hold its adapter, and
    /// for a queue's also those that hold its domain (a domain leaving the
    /// LPAR leaves a guest without adapters too). A queue whose host
    /// ownership flipped moves only those whose matrix can hold it (kernel
    /// spec §6: the full filter runs when a queue of the matrix is bound to
    /// vfio_ap; a mask write unplugs nothing), so that giving one domain to
    /// vfio_ap does not re-read every mdev that holds some adapter.
    fn mdevs_moved(
        &self,
        stale: &Stale,
        queues: &BTreeSet<Apqn>,
        flipped: Flipped,
    ) -> BTreeSet<Uuid> {
        let adapters = ApMask::from_ids(
            stale
                .cards
                .iter()
                .copied()
                .chain(queues.iter().map(|q| q.adapter)),
        );
        let domains = ApMask::from_ids(queues.iter().map(|q| q.domain));
        let mut mdevs = stale.mdevs.clone();
        mdevs.extend(
            self.mdevs
                .values()
                .filter(|m| {
                    m.matrix.adapters.intersects(adapters)
                        || m.matrix.domains.intersects(domains)
                        || flipped.may_move(&m.matrix)
                })
                .map(|m| m.uuid),
        );
        mdevs
    }

    /// Puts a delta read by [`Host::read_stale`] into the model. Returns
    /// whether anything changed.
    pub fn apply(&mut self, delta: Delta) -> bool {
        let changed = delta.changes(self);
        self.put(delta);
        changed
    }

    /// Puts a delta into the model without asking whether it changes
    /// anything: for a caller that asked [`Delta::changes`] already (to
    /// avoid copying a shared model that would not change).
    pub fn put(&mut self, delta: Delta) {
        if let Some(whole) = delta.whole {
            *self = *whole;
            return;
        }
        if let Some((ap, aq)) = delta.masks {
            self.apmask = ap;
            self.aqmask = aq;
        }
        for (a, card, queues) in delta.cards {
            let range = Apqn::new(a, 0)..=Apqn::new(a, 255);
            let old: Vec<Apqn> = self.queues.range(range).map(|(k, _)| *k).collect();
            let all = self.queues_mut();
            for q in old {
                all.remove(&q);
            }
            match card {
                Some(c) => self.cards_mut().insert(a, c),
                None => self.cards_mut().remove(&a),
            };
            let all = self.queues_mut();
            for q in queues {
                all.insert(q.apqn, q);
            }
        }
        for (apqn, queue) in delta.queues {
            match queue {
                Some(q) => self.queues_mut().insert(apqn, q),
                None => self.queues_mut().remove(&apqn),
            };
        }
        if let Some(raw) = delta.config {
            self.config = raw.derive(self);
            self.max_adapter_id = raw.max_adapter_id;
            self.max_domain_id = raw.max_domain_id;
        }
        if let Some(v) = delta.vfio {
            self.vfio_ap_loaded = v.loaded;
            self.features = v.features;
            self.mdevs = v.mdevs;
        }
        for (uuid, mdev) in delta.mdevs {
            match mdev {
                Some(m) => self.mdevs.insert(uuid, m),
                None => self.mdevs.remove(&uuid),
            };
        }
    }

    /// Re-reads what `stale` names into this model; returns whether
    /// anything changed.
    pub fn refresh(&mut self, fs: &dyn Sysfs, stale: &Stale) -> Result<bool, HostError> {
        let delta = self.read_stale(fs, stale)?;
        Ok(self.apply(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid() -> Uuid {
        Uuid::parse_str("62177883-f1bb-47f0-914d-32a22e3a8804").expect("uuid")
    }

    proptest::proptest! {
        /// The queues a mask change flipped, found adapter by adapter, are
        /// those a walk over every queue finds, in the same order.
        #[test]
        fn flipped_queues_are_found_as_a_walk_finds_them(
            present in proptest::collection::btree_set((0u8..=255, 0u8..=255), 0..300),
            ap in proptest::collection::vec(0u8..=255, 0..4),
            aq in proptest::collection::vec(0u8..=255, 0..4),
        ) {
            let queues: BTreeMap<Apqn, Queue> = present
                .iter()
                .map(|&(a, d)| {
                    let apqn = Apqn::new(a, d);
                    (apqn, Queue { apqn, driver: None })
                })
                .collect();
            let flipped = Flipped {
                ap: ApMask::from_ids(ap),
                aq: ApMask::from_ids(aq),
            };
            let walk: Vec<Apqn> = queues.keys().filter(|q| flipped.holds(**q)).copied().collect();
            proptest::prop_assert_eq!(flipped.queues_in(&queues), walk);
        }
    }

    #[test]
    fn writes_name_what_they_make_stale() {
        let u = uuid();
        assert_eq!(Stale::after_write("bus/ap/apmask", "-5"), Stale::masks());
        assert_eq!(Stale::after_write("/bus/ap/aqmask", "+1"), Stale::masks());
        assert_eq!(
            Stale::after_write(paths::MDEV_CREATE, &format!("{}\n", u.hyphenated())),
            Stale::mdev(u)
        );
        assert_eq!(
            Stale::after_write(paths::MDEV_CREATE, "garbage"),
            Stale::all_mdevs()
        );
        assert_eq!(
            Stale::after_write(&paths::mdev_attr(&u, "assign_adapter"), "5"),
            Stale::mdev(u)
        );
        assert_eq!(
            Stale::after_write("devices/ap/card05/config", "0"),
            Stale::card(5)
        );
        assert_eq!(
            Stale::after_write("devices/ap/card05/online", "1"),
            Stale::card(5)
        );
        assert_eq!(
            Stale::after_write("devices/ap/card05/05.0004/online", "1"),
            Stale::queue(Apqn::new(5, 4))
        );
        for unknown in [
            "bus/ap/scans",
            "bus/ap/drivers_probe",
            "devices/ap/card05/06.0004/online",
            "devices/ap/cardzz/config",
            "",
        ] {
            assert_eq!(
                Stale::after_write(unknown, "1"),
                Stale::everything(),
                "{unknown}"
            );
        }
    }

    #[test]
    fn merging_adds_up() {
        let mut s = Stale::none();
        assert!(s.is_empty());
        s.merge(Stale::card(5));
        s.merge(Stale::queue(Apqn::new(6, 4)));
        s.merge(Stale::mdev(uuid()));
        s.merge(Stale::masks());
        assert!(s.masks && !s.everything && !s.is_empty());
        assert_eq!(s.cards, BTreeSet::from([5]));
        assert_eq!(s.queues.len(), 1);
        assert_eq!(s.mdevs.len(), 1);
        assert_eq!(
            Stale::card(5)
                .and(Stale::queue(Apqn::new(6, 4)))
                .and(Stale::mdev(uuid()))
                .and(Stale::masks()),
            s
        );
    }
}
