//! The queue reports: the model keeps which queues exist and their
//! drivers; their state attributes (`config`, `chkstop`, `online`) are
//! read by the first report that shows them (issue 17: apd's start reads
//! no queue's files) and kept until a re-read names the queue.
//!
//! `apctl queues` lists every queue with its owner: 65,536 of them on the
//! big host (about 6 MB on the bus), so the report is not built as a list
//! first: [`QueueList::iter`] makes each entry from a snapshot of the model
//! when asked (`dbus/queue_list.rs` serializes it as the reply).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use apbus::{Error, QueueInfo};
use libap::host::{Owner, OwnerIndex, QueueState};
use libap::resync::Stale;
use libap::Apqn;

use super::{unreadable, Engine, State};

/// The queues' state attributes as reports read them. A re-read that
/// names a queue, its card or the masks (after a uevent or a write of
/// ours) drops what it names, so a uevent keeps them current as it keeps
/// the model; `chkstop` changes without a uevent, as before.
#[derive(Debug, Default)]
pub struct QueueStates {
    known: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// Counts the drops: a read that began before one is not kept.
    generation: u64,
    states: BTreeMap<Apqn, QueueState>,
}

impl QueueStates {
    fn lock(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops what `stale` names: a mask change rebinds queues (`online`
    /// exists only under cex4queue), a card's uevent covers its queues.
    pub fn forget(&self, stale: &Stale) {
        let mut k = self.lock();
        if stale.everything || stale.masks {
            k.states.clear();
        } else if stale.cards.is_empty() && stale.queues.is_empty() {
            return;
        }
        k.generation += 1;
        for a in &stale.cards {
            let card: Vec<Apqn> = k
                .states
                .range(Apqn::new(*a, 0)..=Apqn::new(*a, 255))
                .map(|(q, _)| *q)
                .collect();
            for q in card {
                k.states.remove(&q);
            }
        }
        for q in &stale.queues {
            k.states.remove(q);
        }
    }
}

/// What [`QueueStates::lookup`] found: the known states and the queues
/// to read.
#[derive(Debug)]
pub struct Lookup {
    generation: u64,
    /// The states known.
    pub known: BTreeMap<Apqn, QueueState>,
    /// The queues whose state is not known.
    pub missing: Vec<Apqn>,
}

impl QueueStates {
    /// The known states of `apqns`, and the others to read.
    pub fn lookup(&self, apqns: impl IntoIterator<Item = Apqn>) -> Lookup {
        let k = self.lock();
        let mut known = BTreeMap::new();
        let mut missing = Vec::new();
        for q in apqns {
            match k.states.get(&q) {
                Some(s) => {
                    known.insert(q, *s);
                }
                None => missing.push(q),
            }
        }
        Lookup {
            generation: k.generation,
            known,
            missing,
        }
    }

    /// Keeps the states read after `lookup`, unless something was dropped
    /// meanwhile (a uevent that came during the read may be about a value
    /// read before it); returns every state, known and read.
    pub fn keep(
        &self,
        lookup: Lookup,
        read: Vec<(Apqn, QueueState)>,
    ) -> BTreeMap<Apqn, QueueState> {
        let mut k = self.lock();
        let keep = k.generation == lookup.generation;
        let mut states = lookup.known;
        for (q, s) in read {
            if keep {
                k.states.insert(q, s);
            }
            states.insert(q, s);
        }
        states
    }
}

/// Reads the state of each queue of `apqns` (three files a queue); a queue
/// gone is left out.
pub fn read_states(
    fs: &dyn libap::Sysfs,
    apqns: &[Apqn],
) -> Result<Vec<(Apqn, QueueState)>, libap::HostError> {
    let mut read = Vec::with_capacity(apqns.len());
    for q in apqns {
        if let Some(s) = QueueState::read(fs, *q)? {
            read.push((*q, s));
        }
    }
    Ok(read)
}

impl Engine {
    /// The state attributes of `apqns`: those known, and the others read
    /// on a blocking thread and kept; a queue gone meanwhile is left out.
    pub async fn queue_states(
        &self,
        apqns: Vec<Apqn>,
    ) -> Result<BTreeMap<Apqn, QueueState>, Error> {
        let mut lookup = self.queue_states.lookup(apqns);
        if lookup.missing.is_empty() {
            return Ok(lookup.known);
        }
        let missing = std::mem::take(&mut lookup.missing);
        let read = self
            .blocking(move |fs| read_states(fs, &missing))
            .await?
            .map_err(unreadable)?;
        Ok(self.queue_states.keep(lookup, read))
    }
}

/// Every queue with its owner and state, from one snapshot of the model.
#[derive(Debug)]
pub struct QueueList {
    view: State,
    owners: OwnerIndex,
    /// The state of each queue; a queue gone since the snapshot has none
    /// and is left out.
    states: BTreeMap<Apqn, QueueState>,
}

impl QueueList {
    /// How many queues.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// The queues in APQN order, each made when asked for.
    pub fn iter(&self) -> impl Iterator<Item = QueueInfo> + '_ {
        self.view
            .host
            .queues
            .values()
            .filter_map(|q| Some(self.info(q, self.states.get(&q.apqn)?)))
    }

    fn info(&self, q: &libap::host::Queue, state: &QueueState) -> QueueInfo {
        let (v, h) = (&self.view, &self.view.host);
        let card = h.cards.get(&q.apqn.adapter);
        let (owner, owner_uuid, owner_name) = match h.owner(q.apqn) {
            Owner::Host { .. } => ("host", String::new(), String::new()),
            Owner::Free | Owner::Mdev { .. } => match self.owners.get(q.apqn) {
                Some(u) => (
                    "mdev",
                    u.hyphenated().to_string(),
                    v.name_of(*u).unwrap_or_default(),
                ),
                None => ("free", String::new(), String::new()),
            },
        };
        QueueInfo {
            apqn: q.apqn.to_string(),
            card_type: card.map(|c| c.type_name.clone()).unwrap_or_default(),
            mode: card
                .and_then(|c| c.mode)
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
            config: state.config,
            // Only cex4queue-bound queues have `online`; others follow
            // their card.
            online: state
                .online
                .unwrap_or_else(|| state.config && card.is_some_and(|c| c.online)),
            chkstop: state.chkstop,
            driver: q.driver.as_deref().unwrap_or_default().to_string(),
            owner: owner.to_string(),
            owner_uuid,
            owner_name,
        }
    }
}

impl Engine {
    /// `apctl queues`: the model's queues with the state each shows (read
    /// now where not known).
    pub async fn list_queues(&self) -> Result<QueueList, Error> {
        let view = self.peek_view(Stale::unannounced()).await?;
        let states = self
            .queue_states(view.host.queues.keys().copied().collect())
            .await?;
        let owners = view.host.mdev_owners();
        Ok(QueueList {
            view,
            owners,
            states,
        })
    }
}
