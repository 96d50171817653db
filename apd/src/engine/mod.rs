//! The engine: apd's model of the host and its definitions, the single
//! writer of AP configuration, and the reads apctl needs.
//!
//! One tokio mutex (`writer`) serializes every change, every boot or
//! retry step and every uevent-driven re-read, so a change is never seen
//! half done. Sysfs I/O runs on blocking threads; a write sequence runs as
//! one blocking job under the s390 configuration lock, so a shutdown never
//! leaves it half done either.
//!
//! Four verbs re-read the host, each with what it re-reads named by a
//! [`Stale`]: [`Engine::read_host`] reads it whole (at start);
//! [`Engine::sync`] re-reads into the model (the caller holds the
//! writer); [`Engine::refresh`] syncs, then publishes; [`Engine::peek_host`]
//! (and [`Engine::peek_view`]) re-reads for a reply without touching the
//! model, asking for a refresh when it saw a change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use apbus::{AdapterInfo, ApqnInfo, Error, IdLists, MdevInfo, Status};
use libap::apply::{ApplyError, ApplyReport, Journal, Known, StepLog};
use libap::plan::Step;
use libap::resync::{Delta, Stale};
use libap::store::Store;
use libap::{Host, Sysfs};
use uuid::Uuid;

use crate::convert::{adapter_info, apqn_strings, id_lists, parse_uuid};
use crate::lock::{ConfigLock, LockGuard};
use crate::remedy;

pub(crate) mod queues;
mod state;

pub use queues::QueueList;
pub use state::{Failure, State};

#[cfg(test)]
pub(crate) use state::tests::state as test_state;

/// The live assignment of an mdev (re-read for a D-Bus property read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveView {
    /// The assignment.
    pub ids: IdLists,
    /// The guest matrix.
    pub guest_matrix: Vec<String>,
}

/// A read of the host failed: the error callers see.
fn unreadable(e: libap::HostError) -> Error {
    Error::Failed(format!("cannot read the host's AP configuration: {e}"))
}

/// The engine; shared by the D-Bus objects, the uevent loop and main.
#[derive(Debug)]
pub struct Engine {
    sysfs: Arc<dyn Sysfs>,
    backend: String,
    store: Store,
    /// Where each change is announced before it is made (None: --sim).
    journal: Option<Journal>,
    lock: ConfigLock,
    writer: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    subscriber: Mutex<Option<mpsc::UnboundedSender<Update>>>,
    stopping: AtomicBool,
    stop_requested: tokio::sync::Notify,
    refresh_pending: AtomicBool,
    refresh_wanted: tokio::sync::Notify,
    queue_states: queues::QueueStates,
}

/// A change of the model the engine tells its subscriber (apd's D-Bus
/// face, which shapes it for the bus).
#[derive(Debug)]
pub enum Change {
    /// The model as it is now.
    Model(Arc<State>),
    /// The model before the boot restore: the Host properties go on the
    /// bus, the mdev objects wait for the model after it (each then added
    /// once, with its state after the restore, and not added, then changed
    /// a thousand times over), and the events of that next model are told
    /// against this one.
    Baseline(Arc<State>),
    /// An automatic start failed (the first time with this sentence).
    StartFailed {
        /// The mdev.
        uuid: Uuid,
        /// Why (as in [`Failure::message`]).
        message: String,
    },
}

/// One change, and the sender to tell the engine it is shown: the engine
/// waits for it, so that a change is shown before the call that made it
/// returns.
#[derive(Debug)]
pub struct Update {
    /// The change.
    pub change: Change,
    /// Dropped or sent once the change is shown.
    pub shown: oneshot::Sender<()>,
}

/// What a run of libap's executor gave: its report, or the step that
/// failed and how the rollback went.
pub type Executed = Result<ApplyReport, Box<ApplyError>>;

/// What running or undoing `steps` may change in the host model.
pub fn touched(steps: &[Step]) -> Stale {
    let mut stale = Stale::none();
    for step in steps {
        stale.merge(step.stale());
    }
    stale
}

/// Held while changing anything.
pub type WriteGuard<'a> = tokio::sync::MutexGuard<'a, ()>;

/// Held while changing AP configuration: apd's writer, then the s390 AP
/// configuration lock shared with s390-tools. A change reads the host and
/// decides under both, so a foreign holder's writes are seen, never
/// overwritten by a decision taken before them.
pub struct ChangeGuard<'a> {
    /// Released after the lock (fields drop in order: lock first).
    held: LockGuard,
    _writer: WriteGuard<'a>,
}

impl ChangeGuard<'_> {
    /// The s390 lock, the proof [`Engine::execute`] asks for.
    pub fn held(&self) -> &LockGuard {
        &self.held
    }
}

impl Engine {
    /// An engine on `sysfs` (`backend` describes it for Status), storing
    /// definitions in `store`, announcing each change in `journal`,
    /// writing under `lock`.
    pub fn new(
        sysfs: Arc<dyn Sysfs>,
        backend: String,
        store: Store,
        journal: Option<Journal>,
        lock: ConfigLock,
    ) -> Arc<Engine> {
        Arc::new(Engine {
            sysfs,
            backend,
            store,
            journal,
            lock,
            writer: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
            subscriber: Mutex::new(None),
            stopping: AtomicBool::new(false),
            stop_requested: tokio::sync::Notify::new(),
            refresh_pending: AtomicBool::new(false),
            refresh_wanted: tokio::sync::Notify::new(),
            queue_states: queues::QueueStates::default(),
        })
    }

    /// The changes of the model from now on, in order (a new subscriber
    /// replaces the last one).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Update> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.subscriber.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// Tells the subscriber of `change` and waits until it is shown; does
    /// nothing without a subscriber.
    async fn tell(&self, change: Change) {
        let tx = self
            .subscriber
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(tx) = tx else { return };
        let (shown, wait) = oneshot::channel();
        if tx.send(Update { change, shown }).is_ok() {
            // An error: the subscriber is gone; nothing to wait for.
            let _ = wait.await;
        }
    }

    /// Tells the subscriber that an automatic start failed.
    pub async fn start_failed(&self, uuid: Uuid, message: String) {
        self.tell(Change::StartFailed { uuid, message }).await;
    }

    /// The definition store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The intent journal (None on the in-process simulator).
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// The model, for a short synchronous look.
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the model half
        // updated in a way worse than a re-read fixes: keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the writer (refused once a shutdown started).
    pub async fn writer(&self) -> Result<WriteGuard<'_>, Error> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(Error::Busy(
                "apd is shutting down; try again when it has restarted".to_string(),
            ));
        }
        let guard = self.writer.lock().await;
        if self.stopping.load(Ordering::SeqCst) {
            return Err(Error::Busy(
                "apd is shutting down; try again when it has restarted".to_string(),
            ));
        }
        Ok(guard)
    }

    /// Takes the writer for the boot restore, even when a stop was already
    /// requested (the restore then stops between two starts).
    pub async fn boot_writer(&self) -> WriteGuard<'_> {
        self.writer.lock().await
    }

    /// Refuses new changes from now on (a signal arrived).
    pub fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop_requested.notify_waiters();
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stops taking changes and waits for the one in progress: after this
    /// returns no write runs any more (the guard is kept until exit).
    pub async fn shutdown(&self) -> WriteGuard<'_> {
        self.stopping.store(true, Ordering::SeqCst);
        self.writer.lock().await
    }

    /// Runs `f` with the sysfs on a blocking thread.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Sysfs) -> T + Send + 'static,
    {
        let fs = self.sysfs.clone();
        tokio::task::spawn_blocking(move || f(&*fs))
            .await
            .map_err(|e| Error::Failed(format!("a sysfs job of apd failed: {e}")))
    }

    /// Returns once a stop was requested.
    pub async fn stop_requested(&self) {
        loop {
            // Registered before the check, so a request in between is seen.
            let notified = self.stop_requested.notified();
            if self.is_stopping() {
                return;
            }
            notified.await;
        }
    }

    /// Reads the whole host. A read changes nothing, so a stop request
    /// (SIGTERM) abandons it rather than waiting minutes on a big host.
    pub async fn read_host(&self) -> Result<Host, Error> {
        let read = self.blocking(|fs| Host::read(fs));
        tokio::select! {
            r = read => r?.map_err(unreadable),
            () = self.stop_requested() => Err(Error::Busy(
                "apd is shutting down; the read of the host was abandoned".to_string(),
            )),
        }
    }

    /// Takes apd's writer, then the s390 AP configuration lock (waiting
    /// for another holder, as s390-tools do): every change of AP
    /// configuration starts here, and reads the host only after.
    pub async fn change(&self) -> Result<ChangeGuard<'_>, Error> {
        let writer = self.writer().await?;
        let held = self.config_lock().await?;
        Ok(ChangeGuard {
            held,
            _writer: writer,
        })
    }

    /// The s390 AP configuration lock alone, for a caller that holds the
    /// writer already (the boot restore, the retries after uevents).
    pub async fn config_lock(&self) -> Result<LockGuard, Error> {
        // Free most of the time: taken here, without a blocking thread's
        // two wake-ups; held by another tool, waited for on one.
        match self.lock.try_acquire() {
            Ok(Some(held)) => return Ok(held),
            Ok(None) => {}
            Err(e) => return Err(Error::Busy(e.to_string())),
        }
        let lock = self.lock.clone();
        tokio::task::spawn_blocking(move || lock.acquire())
            .await
            .map_err(|e| {
                Error::Failed(format!("taking the s390 AP configuration lock failed: {e}"))
            })?
            .map_err(|e| Error::Busy(e.to_string()))
    }

    /// Runs `steps` with libap's executor, all or nothing, as one blocking
    /// job (a shutdown waits for it), each change announced in the
    /// journal first (a kill half-way is undone at the next start). The
    /// caller holds the writer and the s390 lock (`_held`: it decided on
    /// what it read under the lock), and re-reads [`touched`] afterwards.
    pub async fn execute(&self, held: &LockGuard, steps: Vec<Step>) -> Result<Executed, Error> {
        self.execute_logged(held, steps, StepLog::Info, Known::nothing())
            .await
    }

    /// [`Engine::execute`], each step logged as `log` says (DEBUG for a
    /// batch whose caller logs one line per mdev: the boot restore), on a
    /// host of which the caller read what `known` says under `_held`
    /// (libap's [`Known`]: an mdev found absent is created without a
    /// lookup first).
    pub async fn execute_logged(
        &self,
        _held: &LockGuard,
        steps: Vec<Step>,
        log: StepLog,
        known: Known,
    ) -> Result<Executed, Error> {
        let store = self.store.clone();
        let journal = self.journal.clone();
        self.blocking(move |fs| {
            libap::apply::execute_journaled(&steps, fs, &store, journal.as_ref(), log, &known)
                .map_err(Box::new)
        })
        .await
    }

    /// Re-reads what `stale` names, against `model`, on a blocking thread.
    async fn read_stale(
        &self,
        model: Arc<Host>,
        stale: Stale,
    ) -> Result<Result<Delta, libap::HostError>, Error> {
        self.blocking(move |fs| model.read_stale(fs, &stale)).await
    }

    /// Re-reads what `stale` names into the model (the caller holds the
    /// writer) and returns the model. A failed partial re-read falls back
    /// to a whole one, so the model is never left half updated.
    pub async fn sync(&self, stale: Stale) -> Result<Arc<Host>, Error> {
        if stale.is_empty() {
            return Ok(self.state().host.clone());
        }
        self.queue_states.forget(&stale);
        let snapshot = self.state().host.clone();
        match self.read_stale(snapshot, stale.clone()).await? {
            Ok(delta) => {
                let size = delta.size();
                let changed = self.state().apply(delta);
                tracing::trace!(?stale, size, changed, "model re-read");
            }
            Err(e) if !stale.everything => {
                tracing::warn!(error = %e, ?stale, "a partial re-read failed; reading the whole host");
                self.queue_states.forget(&Stale::everything());
                let host = self.read_host().await?;
                self.state().set_host(host);
            }
            Err(e) => return Err(unreadable(e)),
        }
        Ok(self.state().host.clone())
    }

    /// Re-reads what `stale` names, then publishes the model. The caller
    /// holds the writer.
    pub async fn refresh(&self, stale: Stale) {
        if let Err(e) = self.sync(stale).await {
            tracing::error!(error = %e, "cannot re-read the host");
        }
        self.publish().await;
    }

    /// Publishes the model as it is.
    pub async fn publish(&self) {
        let state = Arc::new(self.state().clone());
        self.tell(Change::Model(state)).await;
    }

    /// Publishes the model before the boot restore ([`Change::Baseline`]).
    pub async fn publish_baseline(&self) {
        let state = Arc::new(self.state().clone());
        self.tell(Change::Baseline(state)).await;
    }

    /// Asks for a re-read of what the kernel changes without a uevent (the
    /// mdevs, the LPAR configuration) and a publish, soon, by
    /// [`Engine::follow_refresh_requests`] (a read saw such a change).
    pub fn schedule_refresh(&self, reason: &'static str) {
        // One pending refresh covers every read that asks for it meanwhile.
        if self.refresh_pending.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::debug!(
            reason,
            "a re-read of the mdevs and the configuration is due"
        );
        self.refresh_wanted.notify_one();
    }

    /// Runs the refreshes [`Engine::schedule_refresh`] asks for, each
    /// under the writer, until a stop is requested.
    pub async fn follow_refresh_requests(self: Arc<Self>) {
        loop {
            self.refresh_wanted.notified().await;
            let w = self.writer().await;
            self.refresh_pending.store(false, Ordering::SeqCst);
            let Ok(_w) = w else { return };
            tracing::debug!("re-reading the mdevs and the configuration");
            self.refresh(Stale::unannounced()).await;
        }
    }

    /// The host for a read: the model with what `stale` names re-read
    /// (what changes without a uevent: [`Stale::unannounced`]). If the
    /// re-read differs from the model, the model is re-published soon
    /// (foreign writes are shown, never overwritten).
    pub async fn peek_host(&self, stale: Stale) -> Result<Arc<Host>, Error> {
        let snapshot = self.state().host.clone();
        if stale.is_empty() {
            return Ok(snapshot);
        }
        let delta = self
            .read_stale(snapshot.clone(), stale)
            .await?
            .map_err(unreadable)?;
        if !delta.changes(&snapshot) {
            return Ok(snapshot);
        }
        self.schedule_refresh("a read saw a change the kernel sent no uevent for");
        let mut host = (*snapshot).clone();
        host.put(delta);
        Ok(Arc::new(host))
    }

    /// A State view with the host as [`Engine::peek_host`] gives it.
    async fn peek_view(&self, stale: Stale) -> Result<State, Error> {
        let host = self.peek_host(stale).await?;
        let s = self.state();
        Ok(State {
            host,
            host_gen: s.host_gen,
            defs: s.defs.clone(),
            load_errors: s.load_errors.clone(),
            persistent_masks: s.persistent_masks,
            start_failures: s.start_failures.clone(),
            mask_failure: s.mask_failure.clone(),
        })
    }

    /// The live assignment and guest matrix of an active mdev.
    pub async fn live_view(&self, uuid: &str) -> Option<LiveView> {
        let u = parse_uuid(uuid)?;
        let mdev = match self.blocking(move |fs| Host::read_mdev(fs, u)).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => {
                tracing::warn!(uuid, error = %e, "cannot re-read the mdev");
                return None;
            }
            Err(e) => {
                tracing::warn!(uuid, error = %e, "cannot re-read the mdev");
                return None;
            }
        };
        let guest = match mdev.guest_matrix {
            Some(g) => g.apqns(),
            None => {
                let s = self.state();
                let (a, d) =
                    libap::guest::guest_matrix(&s.host, mdev.matrix.adapters, mdev.matrix.domains);
                libap::host::apqns_of(&a, &d)
            }
        };
        Some(LiveView {
            ids: id_lists(&mdev.matrix),
            guest_matrix: apqn_strings(&guest),
        })
    }

    /// `apctl status`.
    pub async fn status(&self) -> Result<Status, Error> {
        let v = self.peek_view(Stale::unannounced()).await?;
        let h = &v.host;
        let owners = h.mdev_owners();
        let (mut host_q, mut assigned, mut free) = (0u32, 0u32, 0u32);
        for q in h.queues.keys() {
            if h.is_host_owned(*q) {
                host_q += 1;
            } else if owners.get(*q).is_some() {
                assigned += 1;
            } else {
                free += 1;
            }
        }
        let mut failures: Vec<(String, String, String)> = v
            .start_failures
            .iter()
            .map(|(u, f)| {
                (
                    u.hyphenated().to_string(),
                    v.name_of(*u).unwrap_or_default(),
                    f.message.clone(),
                )
            })
            .collect();
        if let Some(f) = &v.mask_failure {
            failures.push((
                String::new(),
                "persistent masks".to_string(),
                f.message.clone(),
            ));
        }
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let (pa, pq) = v.persistent_mask_strings();
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            backend: self.backend.clone(),
            vfio_ap_loaded: h.vfio_ap_loaded,
            apmask: h.apmask.to_string(),
            aqmask: h.aqmask.to_string(),
            persistent_apmask: pa,
            persistent_aqmask: pq,
            adapters: count(h.config.adapters.len()),
            queues: count(h.queues.len()),
            queues_host: host_q,
            queues_free: free,
            queues_assigned: assigned,
            defined: count(v.defs.len()),
            active: count(h.mdevs.len()),
            load_errors: v.load_errors.clone(),
            start_failures: failures,
        })
    }

    /// `apctl list`.
    pub async fn list_mdevs(&self) -> Result<Vec<MdevInfo>, Error> {
        let v = self.peek_view(Stale::unannounced()).await?;
        Ok(v.all_uuids().into_iter().map(|u| v.mdev_info(u)).collect())
    }

    /// `apctl show`.
    pub async fn get_mdev(&self, arg: &str) -> Result<(MdevInfo, Vec<ApqnInfo>), Error> {
        // Re-read just this mdev; a UUID is looked for even when the model
        // has not seen it yet (created by another tool a moment ago).
        let uuid = match parse_uuid(arg) {
            Some(u) => u,
            None => self.state().resolve(arg)?,
        };
        // An inactive mdev's APQNs are explained by who holds them now:
        // then every mdev is re-read, else only this one.
        let stale = if self.state().host.mdevs.contains_key(&uuid) {
            Stale::mdev(uuid).and(Stale::config())
        } else {
            Stale::unannounced()
        };
        let v = self.peek_view(stale).await?;
        let uuid = v.resolve(arg)?;
        let info = v.mdev_info(uuid);
        let matrix = match (v.host.mdevs.get(&uuid), v.defs.get(&uuid)) {
            (Some(m), _) => m.matrix,
            (None, Some(d)) => d.matrix(),
            (None, None) => libap::Matrix::default(),
        };
        let active = v.host.mdevs.contains_key(&uuid);
        // Where a queue's own state decides (in the guest matrix of an
        // active mdev), read it.
        let guest = v.host.guest_matrix_of(&uuid).map(|g| g.apqns());
        let states = self.queue_states(guest.unwrap_or_default()).await?;
        let apqns = matrix
            .apqns()
            .into_iter()
            .map(|q| {
                if !active {
                    return ApqnInfo {
                        apqn: q.to_string(),
                        in_guest_matrix: false,
                        usable: false,
                        reason: v.inactive_reason(uuid, q),
                    };
                }
                let u = v.host.usable(uuid, q, states.get(&q));
                ApqnInfo {
                    apqn: q.to_string(),
                    in_guest_matrix: u.in_guest,
                    usable: u.why_not.is_none(),
                    reason: u.why_not.as_ref().map(remedy::unusable).unwrap_or_default(),
                }
            })
            .collect();
        Ok((info, apqns))
    }

    /// Every adapter (card) of the host.
    pub async fn list_adapters(&self) -> Result<Vec<AdapterInfo>, Error> {
        let host = self.peek_host(Stale::none()).await?;
        Ok(host.cards.values().map(adapter_info).collect())
    }
}
