//! `apctl queues`: every queue of the host with its owner. The big host
//! has 65,536 of them (about 6 MB on the bus), so the reply is not built
//! as a list first: each entry is made from a snapshot of the model while
//! the reply is serialized, and a reply costs its message buffer only.

use apbus::{Error, QueueInfo};
use libap::host::{Owner, OwnerIndex};
use libap::resync::Stale;
use serde::ser::{Serialize, SerializeSeq, Serializer};
use zbus::zvariant::{Signature, Type};

use super::{Engine, State};

/// Every queue with its owner, read from one snapshot of the model.
#[derive(Debug)]
pub struct QueueList {
    view: State,
    owners: OwnerIndex,
}

impl QueueList {
    /// How many queues.
    pub fn len(&self) -> usize {
        self.view.host.queues.len()
    }

    /// The queues in APQN order, each made when asked for.
    pub fn iter(&self) -> impl Iterator<Item = QueueInfo> + '_ {
        self.view.host.queues.values().map(|q| self.info(q))
    }

    fn info(&self, q: &libap::host::Queue) -> QueueInfo {
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
            config: q.config,
            // Only cex4queue-bound queues have `online`; others follow
            // their card.
            online: q
                .online
                .unwrap_or_else(|| q.config && card.is_some_and(|c| c.online)),
            chkstop: q.chkstop,
            driver: q.driver.clone().unwrap_or_default(),
            owner: owner.to_string(),
            owner_uuid,
            owner_name,
        }
    }
}

impl Serialize for QueueList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for q in self.iter() {
            seq.serialize_element(&q)?;
        }
        seq.end()
    }
}

/// On the bus exactly a `Vec<QueueInfo>`: `a(sssbbbssss)`.
impl Type for QueueList {
    const SIGNATURE: &'static Signature = <Vec<QueueInfo> as Type>::SIGNATURE;
}

impl Engine {
    /// `apctl queues`.
    pub async fn list_queues(&self) -> Result<QueueList, Error> {
        let view = self.peek_view(Stale::unannounced()).await?;
        let owners = view.host.mdev_owners();
        Ok(QueueList { view, owners })
    }
}
