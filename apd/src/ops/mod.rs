//! The changes apd makes, each validated with libap before the first
//! write, then run as a libap plan by libap's executor (all or nothing,
//! under the writer and the s390 configuration lock), then published. By
//! command family: definitions, mdevs (start, stop, assignments), and the
//! host (masks, adapter configuration).

mod definitions;
mod host;
mod mdevs;

pub use definitions::definition_to_bus;
pub use mdevs::Started;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use apbus::Error;
use libap::apply::ApplyError;
use libap::resync::Stale;
use libap::validate::Finding;
use libap::{Definition, Host};
use uuid::Uuid;

use crate::convert;
use crate::engine::{Engine, Failure, State};

/// Names of definitions, for libap's messages: the definitions the model
/// shares, looked up only when a message names an mdev (no copy of 1,000
/// names per change).
#[derive(Debug, Clone)]
pub struct NameMap(Arc<BTreeMap<Uuid, Definition>>);

impl NameMap {
    /// The name of the definition `uuid`, if it has one.
    pub fn get(&self, uuid: &Uuid) -> Option<String> {
        self.0.get(uuid).and_then(|d| d.name.clone())
    }
}

/// The names of the model's definitions ([`NameMap`]).
pub fn name_map(s: &State) -> NameMap {
    NameMap(s.defs.clone())
}

impl Engine {
    /// Runs `check` on `host`; where it refuses, reads again what the
    /// caller did not read under the lock (`unread`: the masks and the
    /// configuration for a start, [`Stale::before_change`]) and the mdevs
    /// the refusal names, and runs it again, until it passes or refuses
    /// on what was just read. The model may be behind the kernel there:
    /// another tool removed an mdev a moment ago and apd has not followed
    /// its uevent yet (a client's change goes first), changed its
    /// assignments, which sends none, or changed a mask. So apd refuses
    /// only what the kernel shows: a refusal costs a read of what it rests
    /// on, a change that passes nothing. Returns the host the check passed
    /// on, or the refusal. The caller holds the writer and the lock.
    pub async fn check_fresh(
        &self,
        mut host: Arc<Host>,
        unread: Stale,
        check: impl Fn(&Host) -> Result<(), Finding>,
    ) -> Result<Result<Arc<Host>, Finding>, Error> {
        let mut read = BTreeSet::new();
        let mut unread = unread;
        loop {
            let Err(f) = check(&host) else {
                return Ok(Ok(host));
            };
            let named = f
                .mdevs
                .iter()
                .map(|(u, _)| *u)
                .filter(|u| read.insert(*u))
                .fold(std::mem::take(&mut unread), |stale, u| {
                    stale.and(Stale::mdev(u))
                });
            if named.is_empty() {
                return Ok(Err(f));
            }
            tracing::debug!(stale = ?named, "a check refuses: reading what it rests on before refusing");
            host = self.sync(named).await?;
        }
    }
}

/// How people call an mdev in a refusal: its name, else its UUID (as
/// libap's messages do).
fn target(s: &State, uuid: Uuid) -> String {
    s.name_of(uuid)
        .unwrap_or_else(|| uuid.hyphenated().to_string())
}

/// A definition or mask file could not be written (the executor put
/// everything back).
fn store_failed(e: &ApplyError) -> String {
    format!("cannot store the change: {}", e.cause)
}

/// The refusal of `action` when the executor failed: the named error of
/// the kernel's errno, the write refused and, when the rollback failed
/// too, that the host may be left changed.
fn kernel_refusal(action: &str, e: &ApplyError) -> Error {
    if !e.failed_step.is_live() {
        return Error::Failed(store_failed(e));
    }
    let mut s = format!("cannot {action}: {}", e.cause_sentence());
    if !e.rolled_back {
        s.push_str(&format!(
            "; undoing the earlier writes failed too ({}), so check the host with `apctl list`",
            e.not_rolled_back.join("; ")
        ));
    }
    Error::new(convert::failure_kind(e), s)
}

impl Engine {
    /// Records that an automatic start (or the persistent masks) failed.
    pub fn record_failure(&self, uuid: Option<Uuid>, message: String) {
        let mut s = self.state();
        // An automatic start only meets inactive mdevs: one there now is
        // what a failed rollback left.
        let left_behind = uuid.is_some_and(|u| s.host.mdevs.contains_key(&u));
        let f = Failure {
            message,
            host_gen: s.host_gen,
            left_behind,
        };
        match uuid {
            Some(u) => {
                s.start_failures.insert(u, f);
            }
            None => s.mask_failure = Some(f),
        }
    }
}
