//! apd's model: the host as last read, the definitions, the persistent
//! masks and what failed; and how the model answers about one mdev.

use std::collections::BTreeMap;
use std::sync::Arc;

use apbus::{Error, IdLists, MdevInfo};
use libap::usable::Unusable;
use libap::{ApMask, Definition, Host};
use uuid::Uuid;

use crate::convert::{apqn_strings, id_lists, parse_uuid};
use crate::remedy;

/// A definition that could not start (or persistent masks that could not
/// be applied), and the host's generation then: a retry is worth it only
/// once the host has changed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The sentence (Mdev.StartError, Status.start_failures).
    pub message: String,
    /// [`State::host_gen`] when it failed.
    pub host_gen: u64,
    /// The failed start could not be rolled back: the mdev it left stays
    /// reported while it differs from its definition.
    pub left_behind: bool,
}

/// apd's model.
#[derive(Debug, Default, Clone)]
pub struct State {
    /// The host as kept current from uevents and our own writes (change
    /// it with [`State::set_host`] or [`State::apply`]). Shared, so a
    /// reader takes a snapshot without copying a 65,536-queue host.
    pub host: Arc<Host>,
    /// Counts the changes of `host`: cheaper to keep per failure than a copy.
    pub host_gen: u64,
    /// Stored definitions; shared with the models published before, so
    /// a publish copies none (change them with [`State::defs_mut`]).
    pub defs: Arc<BTreeMap<Uuid, Definition>>,
    /// Definition files that did not load: (path, sentence).
    pub load_errors: Vec<(String, String)>,
    /// Persistent apmask and aqmask (apd.toml), applied at boot.
    pub persistent_masks: (Option<ApMask>, Option<ApMask>),
    /// Autostart definitions that failed to start.
    pub start_failures: BTreeMap<Uuid, Failure>,
    /// The persistent masks failed to apply.
    pub mask_failure: Option<Failure>,
}

impl State {
    /// Replaces the host model; a different host is a new generation.
    pub fn set_host(&mut self, host: Host) {
        if *self.host != host {
            self.host = Arc::new(host);
            self.host_gen += 1;
        }
    }

    /// The definitions, to change (copied first while a published model
    /// shares them).
    pub fn defs_mut(&mut self) -> &mut BTreeMap<Uuid, Definition> {
        Arc::make_mut(&mut self.defs)
    }

    /// Puts a re-read part into the host model; a change is a new
    /// generation.
    pub fn apply(&mut self, delta: libap::resync::Delta) -> bool {
        if !delta.changes(&self.host) {
            return false;
        }
        Arc::make_mut(&mut self.host).put(delta);
        self.host_gen += 1;
        true
    }

    /// The name of a definition, for messages.
    pub fn name_of(&self, uuid: Uuid) -> Option<String> {
        self.defs.get(&uuid).and_then(|d| d.name.clone())
    }

    /// `guest1 (uuid)` or the bare UUID.
    pub fn label(&self, uuid: Uuid) -> String {
        libap::definition::label(uuid, self.name_of(uuid).as_deref())
    }

    /// Resolves an mdev argument (UUID in any case, or a definition's name)
    /// to a UUID that is defined or active.
    pub fn resolve(&self, arg: &str) -> Result<Uuid, Error> {
        if arg.is_empty() {
            return Err(Error::Invalid(
                "no mdev given: name one by UUID or by name".to_string(),
            ));
        }
        if let Some(u) = parse_uuid(arg) {
            if self.defs.contains_key(&u) || self.host.mdevs.contains_key(&u) {
                return Ok(u);
            }
            return Err(Error::NotFound(format!(
                "no mdev {} is defined or active; `apctl list` shows the mdevs",
                u.hyphenated()
            )));
        }
        match self
            .defs
            .values()
            .find(|d| d.name.as_deref() == Some(arg))
        {
            Some(d) => Ok(d.uuid),
            None => Err(Error::NotFound(format!(
                "no mdev is named {arg:?}; `apctl list` shows the mdevs (give a UUID for one without a name)"
            ))),
        }
    }

    /// One mdev as the bus shows it.
    pub fn mdev_info(&self, uuid: Uuid) -> MdevInfo {
        let def = self.defs.get(&uuid);
        let live = self.host.mdevs.get(&uuid);
        let ids = match (live, def) {
            (Some(m), _) => id_lists(&m.matrix),
            (None, Some(d)) => id_lists(&d.matrix()),
            (None, None) => IdLists::default(),
        };
        let guest_matrix = match live {
            Some(_) => self
                .host
                .guest_matrix_of(&uuid)
                .map(|g| apqn_strings(&g.apqns()))
                .unwrap_or_default(),
            None => Vec::new(),
        };
        MdevInfo {
            uuid: uuid.hyphenated().to_string(),
            name: def.and_then(|d| d.name.clone()).unwrap_or_default(),
            defined: def.is_some(),
            active: live.is_some(),
            autostart: def.is_some_and(|d| d.autostart),
            differs: matches!((live, def), (Some(m), Some(d)) if m.matrix != d.matrix()),
            persistent: def.map(|d| id_lists(&d.matrix())).unwrap_or_default(),
            ids,
            guest_matrix,
            start_error: self
                .start_failures
                .get(&uuid)
                .map(|f| f.message.clone())
                .unwrap_or_default(),
        }
    }

    /// Why an APQN of an inactive mdev's definition is not in a guest, and
    /// what a start would meet: the host or another mdev holding it, the
    /// adapter off or outside the LPAR, or nothing (then: start it).
    pub fn inactive_reason(&self, uuid: Uuid, q: libap::Apqn) -> String {
        let who = self.label(uuid);
        let start = remedy::start(
            &self
                .name_of(uuid)
                .unwrap_or_else(|| uuid.hyphenated().to_string()),
        );
        let blocker = self.host.start_blocker(uuid, q).map(|b| match b {
            Unusable::HostOwned(_) => format!(
                "{b}, so {start} would be refused; {}",
                remedy::GIVE_TO_VFIO_AP
            ),
            Unusable::AssignedTo(q, other) => format!(
                "queue {q} is assigned to {}, so {start} would be refused until that mdev gives it up",
                self.label(other)
            ),
            other => remedy::unusable(&other),
        });
        match blocker {
            Some(b) => format!("{who} is not active, and {b}"),
            None => format!("{who} is not active; start it with {start}"),
        }
    }

    /// Every mdev, defined or active, ascending by UUID.
    pub fn all_uuids(&self) -> Vec<Uuid> {
        let mut v: Vec<Uuid> = self.defs.keys().copied().collect();
        v.extend(self.host.mdevs.keys().copied());
        v.sort();
        v.dedup();
        v
    }

    /// The persistent masks in kernel read format, empty when not stored.
    pub fn persistent_mask_strings(&self) -> (String, String) {
        let show = |m: &Option<ApMask>| m.map(|m| m.to_string()).unwrap_or_default();
        (
            show(&self.persistent_masks.0),
            show(&self.persistent_masks.1),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use libap::host::{GuestMatrix, Mdev};
    use libap::Matrix;

    const G1: &str = "62177883-f1bb-47f0-914d-32a22e3a8804";
    const FOREIGN: &str = "0c7e2a3f-1d5b-4e7c-9f0a-2b3c4d5e6f70";

    /// guest1 (defined, active with less than its definition) and an
    /// active mdev another tool made.
    pub(crate) fn state() -> State {
        let g1 = Uuid::parse_str(G1).expect("uuid");
        let foreign = Uuid::parse_str(FOREIGN).expect("uuid");
        let mut def = Definition::new(g1);
        def.name = Some("guest1".into());
        def.autostart = true;
        def.adapters = ApMask::from_ids([5, 6]);
        def.domains = ApMask::from_ids([4]);
        let mut s = State::default();
        s.defs_mut().insert(g1, def);
        let mut host = Host::default();
        for (u, a) in [(g1, [5u8]), (foreign, [7u8])] {
            let matrix = Matrix::new(ApMask::from_ids(a), ApMask::from_ids([4]), ApMask::empty());
            host.mdevs.insert(
                u,
                Mdev {
                    uuid: u,
                    matrix,
                    guest_matrix: Some(GuestMatrix {
                        adapters: matrix.adapters,
                        domains: matrix.domains,
                    }),
                    in_use: false,
                },
            );
        }
        s.set_host(host);
        s
    }

    #[test]
    fn mdevs_resolve_by_uuid_in_any_case_or_by_name() {
        let s = state();
        let g1 = Uuid::parse_str(G1).expect("uuid");
        assert_eq!(s.resolve("guest1").expect("name"), g1);
        assert_eq!(s.resolve(&G1.to_uppercase()).expect("uuid"), g1);
        assert!(
            s.resolve(FOREIGN).is_ok(),
            "an active mdev made by another tool"
        );
        let e = s.resolve("guest9").expect_err("unknown");
        assert_eq!(e.kind(), apbus::ErrorKind::NotFound);
        assert!(e.sentence().contains("guest9"));
        let e = s
            .resolve("11111111-2222-3333-4444-555555555555")
            .expect_err("unknown uuid");
        assert!(e
            .sentence()
            .contains("11111111-2222-3333-4444-555555555555"));
        assert_eq!(
            s.resolve("").expect_err("empty").kind(),
            apbus::ErrorKind::Invalid
        );
    }

    #[test]
    fn the_bus_view_of_defined_and_foreign_mdevs() {
        let s = state();
        let g1 = Uuid::parse_str(G1).expect("uuid");
        let info = s.mdev_info(g1);
        assert!(info.defined && info.active && info.autostart);
        assert_eq!(info.name, "guest1");
        // Live assignment shown; the definition differs (adapter 6).
        assert_eq!(info.ids.adapters, vec![5]);
        assert_eq!(info.persistent.adapters, vec![5, 6]);
        assert!(info.differs);
        assert_eq!(info.guest_matrix, vec!["05.0004"]);
        let foreign = s.mdev_info(Uuid::parse_str(FOREIGN).expect("uuid"));
        assert!(foreign.active && !foreign.defined && !foreign.autostart && !foreign.differs);
        assert_eq!(foreign.name, "");
    }

    #[test]
    fn an_inactive_mdev_names_what_would_refuse_its_start() {
        let mut s = state();
        let g1 = Uuid::parse_str(G1).expect("uuid");
        let foreign = Uuid::parse_str(FOREIGN).expect("uuid");
        // guest1 is not active; the foreign mdev holds 07.0004.
        let mut host = (*s.host).clone();
        host.mdevs.remove(&g1);
        host.config = libap::host::HostConfig {
            adapters: ApMask::from_ids([5, 6, 7]),
            usage_domains: ApMask::from_ids([4]),
            control_domains: ApMask::empty(),
            known: true,
        };
        host.apmask = ApMask::from_ids([5]);
        host.aqmask = ApMask::from_ids([4]);
        s.set_host(host);
        let held = s.inactive_reason(g1, libap::Apqn::new(5, 4));
        assert_eq!(
            held,
            "guest1 (62177883-f1bb-47f0-914d-32a22e3a8804) is not active, and queue 05.0004 belongs to the host (adapter 5 is set in apmask and domain 0x04 in aqmask), so `apctl start guest1` would be refused; give it to vfio_ap with `apctl masks`"
        );
        let other = s.inactive_reason(g1, libap::Apqn::new(7, 4));
        assert!(
            other.contains("queue 07.0004 is assigned to")
                && other.contains(&foreign.hyphenated().to_string())
                && other.contains("would be refused until that mdev gives it up"),
            "{other}"
        );
        let outside = s.inactive_reason(g1, libap::Apqn::new(9, 4));
        assert!(
            outside.contains("adapter 9 is outside the LPAR's configuration"),
            "{outside}"
        );
        let free = s.inactive_reason(g1, libap::Apqn::new(6, 4));
        assert!(
            free.ends_with("is not active; start it with `apctl start guest1`"),
            "{free}"
        );
    }

    #[test]
    fn the_host_generation_counts_only_real_changes() {
        let mut s = state();
        let gen = s.host_gen;
        s.set_host((*s.host).clone());
        assert_eq!(s.host_gen, gen);
        let mut h = (*s.host).clone();
        h.apmask = ApMask::full();
        s.set_host(h);
        assert_eq!(s.host_gen, gen + 1);
    }
}
