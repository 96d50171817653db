//! Kernel uevents: one wire-format parser (kernel spec §9) and the three
//! sources apd reads them from — netlink (a real host), the SOCK_SEQPACKET
//! socket of `apsim mount`, and the in-process simulator's channel. Every
//! source feeds the same channel of raw messages; the daemon parses them,
//! drains bursts and re-reads the host once.
//!
//! The wire format is [`wire`], what an event means for the model is
//! [`classify`], the sources are [`sources`]; this module merges what
//! they deliver into bursts.

mod sources;

pub use libap::uevent::parse;
pub use libap::uevent::Change;
pub use sources::{forward_blocking, spawn, Source};

use libap::resync::Stale;
use tokio::sync::mpsc;

/// What a source delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// One raw message.
    Message(Vec<u8>),
    /// Events may have been lost (buffer overrun, reconnect): re-read
    /// everything.
    Resync(&'static str),
}

/// Everything a source had queued when apd got to it, merged: a burst of
/// thousands of events costs one re-read of what they name, not one each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Burst {
    /// What the events made stale.
    pub stale: Stale,
    /// Whether a failed automatic start may now succeed.
    pub unblock: bool,
    /// How many feeds the burst held (for logs).
    pub events: usize,
}

/// Waits for the next feed, then takes every feed already queued behind
/// it. `None` once every source is gone.
pub async fn next_burst(rx: &mut mpsc::Receiver<Feed>) -> Option<Burst> {
    let first = rx.recv().await?;
    let mut burst = Burst {
        stale: Stale::none(),
        unblock: false,
        events: 0,
    };
    let mut take = |feed: Feed| {
        burst.events += 1;
        match feed {
            Feed::Message(msg) => match parse(&msg) {
                Ok(ev) => {
                    let change = ev.classify();
                    if change != Change::Ignored {
                        tracing::debug!(action = %ev.action, devpath = %ev.devpath, ?change, "uevent");
                    }
                    burst.stale.merge(change.stale());
                    burst.unblock |= change.may_unblock_start();
                }
                Err(e) => tracing::debug!(error = %e, "ignoring a malformed uevent"),
            },
            Feed::Resync(why) => {
                tracing::info!(why, "re-reading the whole host");
                burst.stale.merge(Stale::everything());
                burst.unblock = true;
            }
        }
    };
    take(first);
    while let Ok(more) = rx.try_recv() {
        take(more);
    }
    Some(burst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libap::uevent::testing::wire;

    /// Thousands of queued events make one burst: one re-read of what
    /// they name, not one per event.
    #[tokio::test]
    async fn a_burst_of_thousands_of_events_is_one_re_read() {
        // Room for all of them (8,192 and one), as if apd were busy.
        let (tx, mut rx) = mpsc::channel(8193);
        // 256 adapters x 16 domains unbound then bound (a mask change on a
        // big host), plus noise apd ignores.
        let mut sent = 0;
        for a in 0..=255u8 {
            for d in 0..16u8 {
                for action in ["unbind", "bind"] {
                    let devpath = format!("/devices/ap/card{a:02x}/{a:02x}.{d:04x}");
                    let msg = wire(&[
                        &format!("{action}@{devpath}"),
                        &format!("ACTION={action}"),
                        &format!("DEVPATH={devpath}"),
                        "SUBSYSTEM=ap",
                        "DRIVER=vfio_ap",
                    ]);
                    tx.send(Feed::Message(msg)).await.expect("queued");
                    sent += 1;
                }
            }
        }
        tx.send(Feed::Message(b"not a uevent".to_vec()))
            .await
            .expect("queued");
        sent += 1;
        drop(tx);
        let burst = next_burst(&mut rx).await.expect("a burst");
        assert_eq!(burst.events, sent);
        assert_eq!(burst.stale.queues.len(), 256 * 16);
        assert!(burst.stale.masks && !burst.stale.everything);
        assert!(burst.unblock, "a bind may let a failed start succeed");
        assert!(next_burst(&mut rx).await.is_none(), "nothing left over");
    }
}
