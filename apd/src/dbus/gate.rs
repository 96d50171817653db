//! What reads may cost. Reading is open to every uid, and a reply can be
//! megabytes (every queue of a 256x256 host, about 6 MB on the bus), so
//! every read whose reply grows with the host passes this gate first
//! (issue 18: 24 concurrent `apctl --json queues` took apd from 16 MiB to
//! 682 MiB):
//!
//! - replies under way at once (built, serialized, written) fit in a
//!   budget of [`BUDGET_KIB`], by their estimated size; the others wait
//!   their turn, first come first served;
//! - at most [`MAX_ADMITTED`] large reads (a reply of [`LARGE_KIB`] or
//!   more) are under way or waiting, at most [`MAX_PER_CONNECTION`] of one
//!   connection; past that a large read is refused as Busy, with a
//!   sentence that says so;
//! - a large reply is refused as Busy while the bus daemon holds 48 MiB of
//!   apd's messages that their callers have not read (a client that never
//!   reads its socket would otherwise pile apd's replies up in the daemon
//!   until it stops reading apd);
//! - when the last read of a burst with a large reply ends, the memory is
//!   handed back to the kernel ([`crate::memory::give_back`]).
//!
//! Changes never pass here: an admin's change does not wait behind reads.
//! A reply keeps its [`Ticket`] (inside [`Gated`]) until zbus has written
//! it to the bus, so the budget covers the message buffer too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apbus::{DesiredState, Error};
use serde::{Serialize, Serializer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zbus::message::Header;
use zbus::zvariant::{Signature, Type};

use crate::engine::State;

/// Estimated bytes of replies under way at once, in KiB.
pub const BUDGET_KIB: u32 = 8 * 1024;
/// A read whose reply is estimated at this many KiB or more is large.
/// Smaller ones only wait their turn (a client such as the Cockpit page
/// asks for every active mdev at once); their waiting costs what zbus
/// already pays for every call, a task and the call's message.
pub const LARGE_KIB: u32 = 256;
/// Large reads under way or waiting, in total.
pub const MAX_ADMITTED: usize = 64;
/// Large reads under way or waiting, per connection (a client waits for
/// its replies before it asks again).
pub const MAX_PER_CONNECTION: usize = 4;
/// A reply of this estimated size (KiB) or more makes the end of its
/// burst hand memory back, and is sent only while the bus daemon holds
/// less than [`BACKLOG_LIMIT`] of apd's messages.
const TRIM_AFTER_KIB: u32 = 1024;
/// apd's messages the bus daemon may hold for their recipients before
/// large replies are refused: dbus-daemon stops reading a sender at its
/// `max_incoming_bytes` (127 MB by default), and then apd could answer
/// nobody, not even an admin, until the silent callers read or leave.
const BACKLOG_LIMIT: u64 = 48 * 1024 * 1024;

/// The gate; shared by the read methods of the root object.
#[derive(Debug)]
pub struct ReadGate {
    budget: Arc<Semaphore>,
    admitted: Mutex<Admitted>,
    /// apd's connection, to ask the bus daemon what it holds of apd's
    /// (None in unit tests, or once the daemon could not tell).
    bus: Mutex<Option<zbus::Connection>>,
}

#[derive(Debug, Default)]
struct Admitted {
    /// Every read under way or waiting.
    total: usize,
    /// Large ones (a reply of [`LARGE_KIB`] or more), in total and by
    /// connection.
    large_total: usize,
    per_connection: HashMap<String, usize>,
    /// A reply of [`TRIM_AFTER_KIB`] or more ran since the last trim.
    trim_due: bool,
}

impl Admitted {
    /// Counts a large read of `connection` in, or refuses it as Busy.
    fn admit_large(&mut self, connection: &str) -> Result<(), Error> {
        if self.large_total >= MAX_ADMITTED {
            tracing::debug!(connection, "a read refused: apd is answering too many");
            return Err(Error::Busy(format!(
                "apd is answering {} large reads; try again in a moment",
                self.large_total
            )));
        }
        let mine = self
            .per_connection
            .entry(connection.to_string())
            .or_default();
        if *mine >= MAX_PER_CONNECTION {
            tracing::debug!(connection, "a read refused: its connection has too many");
            return Err(Error::Busy(format!(
                "this connection ({connection}) already waits for {MAX_PER_CONNECTION} large reads from apd; wait for their replies, then ask again"
            )));
        }
        *mine += 1;
        self.large_total += 1;
        Ok(())
    }
}

/// A read's place: admitted, then its share of the budget. Dropping it
/// (the reply written, or the read abandoned) frees both.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<ReadGate>,
    connection: String,
    kib: u32,
    large: bool,
    permit: Option<OwnedSemaphorePermit>,
}

impl ReadGate {
    /// A gate with the budget and limits above; `bus` (apd's connection)
    /// is asked how much of apd's the bus daemon holds.
    pub fn new(bus: Option<zbus::Connection>) -> Arc<ReadGate> {
        Arc::new(ReadGate {
            budget: Arc::new(Semaphore::new(BUDGET_KIB as usize)),
            admitted: Mutex::new(Admitted::default()),
            bus: Mutex::new(bus),
        })
    }

    /// Bytes of apd's messages the bus daemon holds for recipients that
    /// have not read them (dbus-daemon's `Debug.Stats`); None where the
    /// daemon cannot tell (dbus-broker, no stats), and then never asked again.
    async fn backlog(&self) -> Option<u64> {
        let conn = self.bus.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        let me = conn.unique_name()?.to_string();
        let reply = conn
            .call_method(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                Some("org.freedesktop.DBus.Debug.Stats"),
                "GetConnectionStats",
                &(me.as_str(),),
            )
            .await;
        let bytes = reply.ok().and_then(|r| {
            let stats: HashMap<String, zbus::zvariant::OwnedValue> = r.body().deserialize().ok()?;
            u32::try_from(stats.get("IncomingBytes")?).ok()
        });
        if bytes.is_none() {
            tracing::info!("the bus daemon does not tell how much of apd's it holds; large replies are not held back for callers that do not read");
            *self.bus.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        bytes.map(u64::from)
    }

    fn admitted(&self) -> std::sync::MutexGuard<'_, Admitted> {
        self.admitted.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a read of the caller of `hdr` whose reply is about `bytes`
    /// long and waits for its turn; Busy past the limits. The peers of the
    /// private socket have no bus name: they count as one caller.
    pub async fn enter(self: &Arc<Self>, hdr: &Header<'_>, bytes: usize) -> Result<Ticket, Error> {
        let connection = hdr
            .sender()
            .map_or_else(|| super::private::CALLER.to_string(), |s| s.to_string());
        self.enter_as(connection, bytes).await
    }

    async fn enter_as(self: &Arc<Self>, connection: String, bytes: usize) -> Result<Ticket, Error> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, BUDGET_KIB);
        let large = kib >= LARGE_KIB;
        {
            let mut a = self.admitted();
            if large {
                a.admit_large(&connection)?;
            }
            a.total += 1;
        }
        // Made before the wait: a read abandoned while it waits still leaves.
        let mut ticket = Ticket {
            gate: self.clone(),
            connection,
            kib,
            large,
            permit: None,
        };
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(kib)
            .await
            .map_err(|_| Error::Failed("apd's read budget is closed".to_string()))?;
        ticket.permit = Some(permit);
        if kib >= TRIM_AFTER_KIB {
            if let Some(held) = self.backlog().await {
                if held.saturating_add(bytes as u64) > BACKLOG_LIMIT {
                    tracing::debug!(
                        held,
                        "a large read refused: the bus holds apd's unread replies"
                    );
                    return Err(Error::Busy(format!(
                        "the bus still holds {} MiB of apd's replies that their callers have not read; try again in a moment",
                        held / (1024 * 1024)
                    )));
                }
            }
        }
        Ok(ticket)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        drop(self.permit.take());
        let quiet = {
            let mut a = self.gate.admitted();
            a.total = a.total.saturating_sub(1);
            if self.large {
                a.large_total = a.large_total.saturating_sub(1);
                if let Some(n) = a.per_connection.get_mut(&self.connection) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        a.per_connection.remove(&self.connection);
                    }
                }
            }
            a.trim_due |= self.kib >= TRIM_AFTER_KIB;
            a.total == 0 && std::mem::take(&mut a.trim_due)
        };
        if quiet {
            tracing::debug!("reads went quiet after a large reply; handing memory back");
            // A trim walks every heap: not on an async worker.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(crate::memory::give_back)),
                Err(_) => crate::memory::give_back(),
            }
        }
    }
}

/// A reply with its ticket: on the bus exactly `T`, and the ticket lives
/// until zbus has written it.
#[derive(Debug)]
pub struct Gated<T> {
    value: T,
    _ticket: Ticket,
}

impl<T> Gated<T> {
    /// `value`, sent under `ticket`.
    pub fn new(value: T, ticket: Ticket) -> Gated<T> {
        Gated {
            value,
            _ticket: ticket,
        }
    }
}

impl<T: Serialize> Serialize for Gated<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: Type> Type for Gated<T> {
    const SIGNATURE: &'static Signature = T::SIGNATURE;
}

/// Estimated reply sizes, from the model's counts (no work done yet).
/// Generous: an estimate only decides how many replies run at once.
pub mod estimate {
    use super::*;

    /// Bytes of one mdev in `ListMdevs` and `GetManagedObjects`: fixed
    /// fields, its ids (live and defined) and its guest matrix strings.
    fn mdev(s: &State, uuid: &uuid::Uuid) -> usize {
        let apqns = |a: &libap::ApMask, d: &libap::ApMask| a.len() * d.len();
        let live = s.host.mdevs.get(uuid).map_or(0, |m| {
            let x = &m.matrix;
            4 * (x.adapters.len() + x.domains.len() + x.control_domains.len())
                + 16 * apqns(&x.adapters, &x.domains)
        });
        let defined = s.defs.get(uuid).map_or(0, |d| {
            4 * (d.adapters.len() + d.domains.len() + d.control_domains.len())
        });
        512 + live + defined
    }

    /// `ListMdevs`, `GetManagedObjects`.
    pub fn mdevs(s: &State) -> usize {
        let inactive = s.defs.keys().filter(|u| !s.host.mdevs.contains_key(*u));
        s.host
            .mdevs
            .keys()
            .chain(inactive)
            .map(|u| mdev(s, u))
            .sum()
    }

    /// `ListQueues`: about 92 bytes a queue on the bus, more with long
    /// mdev names.
    pub fn queues(s: &State) -> usize {
        4096 + 128 * s.host.queues.len()
    }

    /// `GetMdev`: the mdev and a sentence per APQN of its matrix.
    pub fn one_mdev(s: &State, arg: &str) -> usize {
        let apqns = s.resolve(arg).map_or(0, |u| {
            let (a, d) = match (s.host.mdevs.get(&u), s.defs.get(&u)) {
                (Some(m), _) => (m.matrix.adapters, m.matrix.domains),
                (None, Some(d)) => (d.adapters, d.domains),
                (None, None) => return 0,
            };
            a.len() * d.len()
        });
        2048 + 256 * apqns
    }

    /// `GetStatus`: counts and a line per load error or start failure.
    pub fn status(s: &State) -> usize {
        4096 + 512 * (s.load_errors.len() + s.start_failures.len())
    }

    /// `ListAdapters`.
    pub fn adapters(s: &State) -> usize {
        1024 + 64 * s.host.cards.len()
    }

    /// `Export`, `Check`: a line or finding per definition.
    pub fn definitions(s: &State) -> usize {
        4096 + 512 * s.defs.len()
    }

    /// `CheckState`, `Plan`: what the state file names and what is defined.
    pub fn desired(s: &State, state: &DesiredState) -> usize {
        definitions(s) + 512 * state.mdevs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    const LARGE: usize = LARGE_KIB as usize * 1024;

    #[test]
    fn past_the_limits_large_reads_are_refused_as_busy_and_places_come_back() {
        rt().block_on(async {
            let gate = ReadGate::new(None);
            let mut held = Vec::new();
            for _ in 0..MAX_PER_CONNECTION {
                held.push(gate.enter_as(":1.1".into(), LARGE).await.expect("admitted"));
            }
            let e = gate
                .enter_as(":1.1".into(), LARGE)
                .await
                .expect_err("per connection");
            assert!(matches!(&e, Error::Busy(m) if m.contains(":1.1")), "{e}");
            // Small reads of the same connection only wait their turn.
            held.push(gate.enter_as(":1.1".into(), 100).await.expect("small"));
            // Readers that keep their place until `release` closes; past
            // the budget they wait for it, admitted all the same.
            let release = Arc::new(Semaphore::new(0));
            for i in MAX_PER_CONNECTION..MAX_ADMITTED {
                let (c, g, r) = (format!(":2.{i}"), gate.clone(), release.clone());
                tokio::spawn(async move {
                    let ticket = g.enter_as(c, LARGE).await;
                    let _closed = r.acquire().await;
                    drop(ticket);
                });
            }
            for _ in 0..1000 {
                if gate.admitted().large_total == MAX_ADMITTED {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(gate.admitted().large_total, MAX_ADMITTED);
            let e = gate.enter_as(":3.1".into(), LARGE).await.expect_err("in total");
            assert!(
                matches!(&e, Error::Busy(m) if m == "apd is answering 64 large reads; try again in a moment"),
                "{e}"
            );
            held.clear();
            release.close();
            // The waiting ones get their turn and leave.
            for _ in 0..1000 {
                if gate.admitted().total == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(gate.admitted().large_total, 0);
            assert!(gate.admitted().per_connection.is_empty());
            assert_eq!(gate.budget.available_permits(), BUDGET_KIB as usize);
            drop(gate.enter_as(":1.1".into(), LARGE).await.expect("admitted again"));
        });
    }

    #[test]
    fn replies_under_way_fit_the_budget_and_the_rest_wait_their_turn() {
        rt().block_on(async {
            let gate = ReadGate::new(None);
            let half = (BUDGET_KIB as usize / 2) * 1024;
            let a = gate.enter_as(":1.1".into(), half).await.expect("first");
            let b = gate.enter_as(":1.2".into(), half).await.expect("second");
            // A third must wait until one of them is written.
            let third = gate.enter_as(":1.3".into(), half);
            tokio::pin!(third);
            assert!(futures_poll_once(third.as_mut()).await.is_none());
            assert_eq!(gate.admitted().total, 3, "waiting reads count");
            drop(a);
            let c = third.await.expect("its turn");
            drop((b, c));
            // One larger than the whole budget runs alone, not never.
            let huge = gate
                .enter_as(":1.4".into(), usize::MAX)
                .await
                .expect("alone");
            assert_eq!(gate.budget.available_permits(), 0);
            drop(huge);
        });
    }

    /// Polls `f` once: its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
