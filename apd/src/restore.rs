//! Boot restore and retries: undo the change an earlier apd was killed in
//! the middle of, load the definitions, apply the persistent masks, start
//! every autostart definition that is not active; what cannot be done now
//! is reported and retried when a uevent changes the host.

use apbus::Error;
use libap::apply::StepLog;
use libap::resync::Stale;
use uuid::Uuid;

use crate::engine::Engine;
use crate::ops::{name_map, Started};

/// The reason given while vfio_ap is missing; a retry follows its
/// `MDEV_STATE=registered` uevent.
pub const WAITING_FOR_VFIO_AP: &str =
    "waiting for the vfio_ap module: the mdev is started when it is loaded (MDEV_STATE=registered)";

/// Undoes the change an earlier apd left half done when it was killed
/// (kill -9, a crash): its intent journal names every write it made or was
/// about to make; each one found in place is undone, so no mdev stays half
/// created or half assigned and each definition file has its old content.
/// Runs before the host is read and the definitions are loaded; a failure
/// is logged naming what is left, and apd goes on.
pub async fn recover(engine: &Engine) {
    let Some(journal) = engine.journal().cloned() else {
        return;
    };
    let path = journal.path().display().to_string();
    let result = match engine.config_lock().await {
        Ok(_held) => engine
            .blocking(move |fs| journal.recover(fs).map_err(|e| e.to_string()))
            .await
            .map_err(|e| e.sentence())
            .and_then(|r| r),
        Err(e) => Err(e.sentence()),
    };
    match result {
        Ok(None) => {}
        Ok(Some(r)) if r.earlier_boot => {
            tracing::info!(journal = %path, "dropped an intent journal of an earlier boot: the reboot undid its changes");
        }
        Ok(Some(r)) => {
            for undone in &r.undone {
                tracing::warn!(journal = %path, "undone after an interrupted change: {undone}");
            }
            for failed in &r.failed {
                tracing::error!(journal = %path, "an interrupted change is not fully undone: {failed}");
            }
            let outcome = if r.failed.is_empty() {
                "it is undone"
            } else {
                "it is only partly undone (see above)"
            };
            tracing::warn!(
                journal = %path,
                undone = r.undone.len(),
                not_made = r.absent,
                failed = r.failed.len(),
                "apd was stopped in the middle of a change (killed?); {outcome}"
            );
        }
        Err(e) => {
            tracing::error!(journal = %path, error = %e, "cannot undo the change an earlier apd was interrupted in; its intent journal is kept")
        }
    }
}

/// What [`read_store`] read: the definitions and the persistent masks.
pub type StoreRead = (
    libap::store::LoadReport,
    Result<Masks, libap::store::StoreError>,
);
type Masks = (Option<libap::mask::ApMask>, Option<libap::mask::ApMask>);

/// Reads the store on a blocking thread, for [`load_read`] (at start,
/// while the host is read).
pub fn read_store(engine: &Engine) -> tokio::task::JoinHandle<StoreRead> {
    let store = engine.store().clone();
    tokio::task::spawn_blocking(move || (store.load(), store.load_masks()))
}

/// Loads the store into the model (definitions, load errors, persistent
/// masks). Never fails: bad files are reported and skipped.
pub async fn load(engine: &Engine) {
    load_read(engine, read_store(engine).await).await;
}

/// [`load`] from what [`read_store`] read.
pub async fn load_read(engine: &Engine, loaded: Result<StoreRead, tokio::task::JoinError>) {
    let mut s = engine.state();
    s.defs_mut().clear();
    s.load_errors.clear();
    // Each pair is (file, problem): the problem never repeats the path,
    // and never quotes the file (libap::config_file).
    match loaded {
        Ok((report, masks)) => {
            for d in report.definitions {
                s.defs_mut().insert(d.uuid, d);
            }
            for e in report.errors {
                let path = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                s.load_errors.push((path, e.problem()));
            }
            match masks {
                Ok(m) => s.persistent_masks = m,
                Err(e) => {
                    tracing::error!(error = %e, "the persistent masks are not applied");
                    s.persistent_masks = (None, None);
                    s.load_errors.push((
                        engine.store().masks_path().display().to_string(),
                        format!("{} (the persistent masks are not applied)", e.problem()),
                    ));
                }
            }
        }
        Err(e) => s.load_errors.push((
            engine.store().dir().display().to_string(),
            format!("apd could not load its configuration: {e}"),
        )),
    }
    tracing::info!(
        definitions = s.defs.len(),
        errors = s.load_errors.len(),
        "definitions loaded"
    );
}

/// The boot sequence after [`load`]; the caller holds the writer. Returns
/// a summary line for the log and systemd's STATUS.
pub async fn boot(engine: &Engine) -> String {
    apply_persistent_masks(engine).await;
    let (started, failed, waiting) = start_autostart(engine, None).await;
    engine.publish().await;
    let summary = format!(
        "restored: {started} mdevs started, {failed} failed{}",
        if waiting {
            "; waiting for vfio_ap to start the others"
        } else {
            ""
        }
    );
    tracing::info!("{summary}");
    summary
}

/// Applies the persistent masks (if stored and different); a failure is
/// recorded and retried.
pub async fn apply_persistent_masks(engine: &Engine) {
    let (pa, pq) = engine.state().persistent_masks;
    if pa.is_none() && pq.is_none() {
        engine.state().mask_failure = None;
        return;
    }
    let result = async {
        let held = engine.config_lock().await?;
        let host = engine.sync(Stale::masks().and(Stale::all_mdevs())).await?;
        let names = name_map(&engine.state());
        let new_ap = pa.unwrap_or(host.apmask);
        let new_aq = pq.unwrap_or(host.aqmask);
        let changed = engine
            .change_masks(&held, host, &names, new_ap, new_aq, None)
            .await;
        engine.sync(Stale::masks()).await?;
        changed
    }
    .await;
    match result {
        Ok(()) => engine.state().mask_failure = None,
        Err(e) => {
            let msg = format!(
                "the persistent masks could not be applied: {}",
                e.sentence()
            );
            tracing::error!("{msg}");
            engine.record_failure(None, msg);
        }
    }
}

/// Starts the autostart definitions that are not active (all of them, or
/// only those in `only`). Returns (started, failed, waiting for vfio_ap).
///
/// The mdevs are re-read once; each start then puts its mdev into the
/// model as libap predicts it (read back only where it cannot): a boot
/// with K autostart mdevs costs its writes and O(K) reads, not O(K²).
pub async fn start_autostart(engine: &Engine, only: Option<&[Uuid]>) -> (usize, usize, bool) {
    // One lock for all the starts: the restore is one change, decided on
    // what is read under it.
    let held = match engine.config_lock().await {
        Ok(h) => h,
        Err(e) => {
            let due = autostart_due(engine, only);
            tracing::error!(error = %e, mdevs = due.len(), "the automatic starts wait for the s390 AP configuration lock");
            for uuid in &due {
                engine.record_failure(Some(*uuid), format!("cannot start it: {}", e.sentence()));
            }
            return (0, due.len(), false);
        }
    };
    if let Err(e) = engine
        .sync(Stale::before_change().and(Stale::all_mdevs()))
        .await
    {
        tracing::error!(error = %e, "cannot re-read the host before the automatic starts");
    }
    let candidates = autostart_due(engine, only);
    let (mut started, mut failed, mut waiting) = (0, 0, false);
    for uuid in candidates {
        if engine.is_stopping() {
            tracing::info!(
                "stopping: the remaining automatic starts are left for the next start of apd"
            );
            break;
        }
        if !engine.state().host.vfio_ap_loaded {
            engine.record_failure(Some(uuid), WAITING_FOR_VFIO_AP.to_string());
            waiting = true;
            continue;
        }
        // The next start sees this one's queues: the model has the mdev as
        // started (predicted) or as read after a failure.
        // One line per mdev (its mdev-started event), not one per write.
        let seen = match engine.start_locked(&held, uuid, StepLog::Debug).await {
            Ok(outcome) => {
                started += usize::from(outcome == Started::Now);
                engine.state().start_failures.remove(&uuid);
                engine.after_start(uuid, Some(outcome)).await
            }
            // It re-reads the mdev itself, after the rollback.
            Err(e) => {
                failed += 1;
                report_failure(engine, uuid, &e).await;
                Ok(())
            }
        };
        if let Err(e) = seen {
            tracing::warn!(uuid = %uuid, error = %e, "cannot re-read the mdev after its start");
        }
    }
    (started, failed, waiting)
}

/// The autostart definitions that are not active (all, or those in
/// `only`), by the model.
fn autostart_due(engine: &Engine, only: Option<&[Uuid]>) -> Vec<Uuid> {
    let s = engine.state();
    s.defs
        .values()
        .filter(|d| d.autostart && !s.host.mdevs.contains_key(&d.uuid))
        .filter(|d| only.is_none_or(|o| o.contains(&d.uuid)))
        .map(|d| d.uuid)
        .collect()
}

async fn report_failure(engine: &Engine, uuid: Uuid, e: &Error) {
    let msg = e.sentence();
    tracing::error!(uuid = %uuid, error_kind = ?e.kind(), "automatic start failed: {msg}");
    let first_time = engine
        .state()
        .start_failures
        .get(&uuid)
        .is_none_or(|f| f.message != msg);
    // The host the failure is compared with must be the one after the
    // rollback, so that our own create/remove uevents do not retry it.
    if let Err(e) = engine.sync(Stale::mdev(uuid)).await {
        tracing::warn!(uuid = %uuid, error = %e, "cannot re-read the mdev after its failed start");
    }
    engine.record_failure(Some(uuid), msg.clone());
    if first_time {
        engine.start_failed(uuid, msg).await;
    }
}

/// After a burst of uevents that may have unblocked something: retries
/// the failed automatic starts (and the persistent masks) whose host has
/// changed since they failed. The caller holds the writer and has just
/// re-read the host.
pub async fn retry(engine: &Engine) {
    let (due, masks_due): (Vec<Uuid>, bool) = {
        let s = engine.state();
        (
            s.start_failures
                .iter()
                .filter(|(u, f)| {
                    f.host_gen != s.host_gen
                        && s.defs.get(u).is_some_and(|d| d.autostart)
                        && !s.host.mdevs.contains_key(*u)
                })
                .map(|(u, _)| *u)
                .collect(),
            s.mask_failure
                .as_ref()
                .is_some_and(|f| f.host_gen != s.host_gen),
        )
    };
    // Failures of definitions that are gone, manual now, or active (someone
    // started them) are over; but an mdev a failed rollback left stays
    // reported until it is stopped or matches its definition.
    {
        let mut s = engine.state();
        let host = s.host.clone();
        let defs = s.defs.clone();
        s.start_failures.retain(|u, f| {
            let Some(def) = defs.get(u).filter(|d| d.autostart) else {
                return false;
            };
            match host.mdevs.get(u) {
                None => true,
                Some(live) => f.left_behind && live.matrix != def.matrix(),
            }
        });
    }
    if masks_due {
        tracing::info!("the host changed; applying the persistent masks again");
        apply_persistent_masks(engine).await;
    }
    if due.is_empty() {
        return;
    }
    tracing::info!(
        count = due.len(),
        "the host changed; retrying failed automatic starts"
    );
    let (started, failed, _) = start_autostart(engine, Some(&due)).await;
    tracing::info!(started, failed, "retry done");
    engine.publish().await;
}
