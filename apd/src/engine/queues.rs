//! The queue reports: the model keeps which queues exist and their
//! drivers; their state attributes (`config`, `chkstop`, `online`) are
//! read by the reports that show them (issue 17: apd's start reads no
//! queue's files).

use std::collections::BTreeMap;

use apbus::{Error, QueueInfo};
use libap::host::{Owner, QueueState};
use libap::resync::Stale;
use libap::Apqn;

use super::{unreadable, Engine};

impl Engine {
    /// The state attributes of `apqns` (the model keeps none: three files
    /// a queue), read on a blocking thread; a queue gone meanwhile is left
    /// out.
    pub async fn queue_states(
        &self,
        apqns: Vec<Apqn>,
    ) -> Result<BTreeMap<Apqn, QueueState>, Error> {
        if apqns.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.blocking(move |fs| {
            let mut states = BTreeMap::new();
            for q in apqns {
                if let Some(s) = QueueState::read(fs, q)? {
                    states.insert(q, s);
                }
            }
            Ok(states)
        })
        .await?
        .map_err(unreadable)
    }

    /// `apctl queues`: the model's queues with the state each shows, read
    /// now (a queue gone meanwhile is left out).
    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>, Error> {
        let v = self.peek_view(Stale::unannounced()).await?;
        let h = &v.host;
        let states = self
            .queue_states(h.queues.keys().copied().collect())
            .await?;
        let owners = h.mdev_owners();
        Ok(h.queues
            .values()
            .filter_map(|q| Some((q, states.get(&q.apqn)?)))
            .map(|(q, state)| {
                let card = h.cards.get(&q.apqn.adapter);
                let (owner, owner_uuid, owner_name) = match h.owner(q.apqn) {
                    Owner::Host { .. } => ("host", String::new(), String::new()),
                    Owner::Free | Owner::Mdev { .. } => match owners.get(q.apqn) {
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
                    // Only cex4queue-bound queues have `online`; others
                    // follow their card.
                    online: state
                        .online
                        .unwrap_or_else(|| state.config && card.is_some_and(|c| c.online)),
                    chkstop: state.chkstop,
                    driver: q.driver.clone().unwrap_or_default(),
                    owner: owner.to_string(),
                    owner_uuid,
                    owner_name,
                }
            })
            .collect())
    }
}
