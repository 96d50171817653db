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

use std::collections::BTreeMap;

use apbus::Error;
use libap::apply::ApplyError;
use uuid::Uuid;

use crate::convert;
use crate::engine::{Engine, Failure, State};

/// Names of definitions, for libap's messages.
pub fn name_map(s: &State) -> BTreeMap<Uuid, String> {
    s.defs
        .values()
        .filter_map(|d| d.name.clone().map(|n| (d.uuid, n)))
        .collect()
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
