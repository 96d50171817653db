//! mdevs: `Start` (and the automatic starts), `Stop`, `Assign` and
//! `Unassign`.

use std::sync::Arc;

use apbus::{Error, IdLists, Scope};
use libap::apply::{ApplyError, Known, StepLog};
use libap::plan::Step;
use libap::resync::{Delta, Stale};
use libap::validate::{
    check_assign_to, check_matrix_named, check_remove, check_vfio_ap, Asker, AssignKind,
    AssignVerdict, Finding,
};
use libap::{ApMask, Definition, Host, Matrix};
use uuid::Uuid;

use super::definitions::definition_refusal;
use super::{kernel_refusal, name_map, store_failed, target, NameMap};
use crate::convert::{self, matrix_from_ids};
use crate::engine::{touched, Engine};
use crate::lock::LockGuard;
use crate::remedy;

/// What a start did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// It was created now.
    Now,
    /// It was active already: nothing written.
    Already,
}

/// `current` with `ids` added or removed.
pub fn changed(current: &Matrix, ids: &Matrix, add: bool) -> Matrix {
    let f = |a: ApMask, b: ApMask| if add { a.union(b) } else { a.difference(b) };
    Matrix::new(
        f(current.adapters, ids.adapters),
        f(current.domains, ids.domains),
        f(current.control_domains, ids.control_domains),
    )
}

/// Whether a start failed at its create because an mdev with its UUID
/// exists (the kernel's EEXIST): nothing was written, and the mdev is
/// someone else's or one apd has not seen yet.
fn created_meanwhile(failure: &ApplyError) -> bool {
    failure.index == 1
        && matches!(*failure.failed_step, Step::Create { .. })
        && failure.cause.errno() == Some(libc::EEXIST)
}

impl Engine {
    /// Resolves `arg` and re-reads that mdev under the lock, with `also`
    /// in the same read ([`Stale::before_change`] where the change's
    /// checks pass on the masks; a start and a stop read those only when
    /// a check or the kernel refuses: [`Engine::check_fresh`]). Resolving
    /// `arg` first is the same as after: that re-read adds or removes no
    /// other mdev.
    async fn sync_mdev(&self, arg: &str, also: Stale) -> Result<(Uuid, Arc<Host>), Error> {
        let uuid = self.state().resolve(arg)?;
        let host = self.sync(also.and(Stale::mdev(uuid))).await?;
        Ok((uuid, host))
    }

    /// `Start`.
    pub async fn start(&self, arg: &str) -> Result<(), Error> {
        let w = self.change().await?;
        let uuid = self.state().resolve(arg)?;
        // One the model has as active is read again (it may be gone). One
        // it has as inactive is created without a look first: an mdev made
        // meanwhile under that UUID fails the create with EEXIST, and
        // `start_locked` reads it then (a FUSE lookup and a hop to a
        // blocking thread fewer per start).
        if self.state().host.mdevs.contains_key(&uuid) {
            self.sync(Stale::mdev(uuid)).await?;
        }
        let result = self.start_locked(w.held(), uuid, StepLog::Info).await;
        if result.is_ok() {
            // A successful start by hand ends an automatic start's failure.
            self.state().start_failures.remove(&uuid);
        }
        if let Err(e) = self.after_start(uuid, result.as_ref().ok().copied()).await {
            tracing::error!(uuid = %uuid, error = %e, "cannot re-read the mdev after its start");
        }
        self.publish().await;
        result.map(|_| ())
    }

    /// Brings the model up to the mdev after a start under the writer:
    /// one this start created (`Started::Now`) goes in as libap predicts
    /// the kernel shows it, instead of being read back (three files fewer
    /// per start, which a boot restore makes once per mdev; its `add`
    /// uevent re-reads it); one found active (`Started::Already`) was read
    /// under the writer and not written since; after a failure it is read.
    pub async fn after_start(&self, uuid: Uuid, outcome: Option<Started>) -> Result<(), Error> {
        let predicted = match outcome {
            Some(Started::Now) => {
                let s = self.state();
                s.defs
                    .get(&uuid)
                    .and_then(|d| Delta::started(&s.host, uuid, d.matrix()))
            }
            Some(Started::Already) => return Ok(()),
            None => None,
        };
        match predicted {
            Some(delta) => {
                self.state().apply(delta);
                Ok(())
            }
            None => self.sync(Stale::mdev(uuid)).await.map(|_| ()),
        }
    }

    /// Creates a defined mdev and assigns its matrix, all or nothing,
    /// checked against the model (the caller holds the writer, has brought
    /// the mdevs up to date, and brings this mdev up to date afterwards:
    /// [`Engine::after_start`]). Its steps are logged as `log` says; the
    /// publisher logs its `mdev-started` event either way.
    pub async fn start_locked(
        &self,
        held: &LockGuard,
        uuid: Uuid,
        log: StepLog,
    ) -> Result<Started, Error> {
        let (host, names, def, who) = {
            let s = self.state();
            (
                s.host.clone(),
                name_map(&s),
                s.defs.get(&uuid).cloned(),
                target(&s, uuid),
            )
        };
        let lookup = |u: Uuid| names.get(&u);
        let Some(def) = def else {
            return Err(Error::NotFound(format!(
                "cannot start {who}: it has no definition; define it first with `apctl define`"
            )));
        };
        if host.mdevs.contains_key(&uuid) {
            // Read under `held` by the caller, and a start never changes a
            // running mdev's assignment: nothing to write or to look at
            // again.
            tracing::debug!(uuid = %uuid, "already active; nothing to start");
            return Ok(Started::Already);
        }
        check_vfio_ap(&host, uuid, def.name.as_deref(), Asker::Command)
            .map_err(|f| convert::refused(&f, remedy::message(&f)))?;
        // The definition's matrix against a read of the host: the refusal
        // that names the culprit, before the writes and after a failed one.
        let check = |host: &Host| {
            check_matrix_named(
                host,
                &lookup,
                uuid,
                def.adapters,
                def.domains,
                def.control_domains,
            )
        };
        let refused = |f: Finding| {
            convert::refused(&f, format!("cannot start {who}: {}", remedy::reason(&f)))
        };
        // The masks and the configuration were not read under `held`: a
        // refusal reads them first.
        let host = self
            .check_fresh(host, Stale::before_change(), check)
            .await?
            .map_err(refused)?;
        // The model was read under `held`: a create needs no lookup first.
        let steps = libap::plan::start(&host, &def);
        let known = Known::from_host(&host, &steps);
        match self.execute_logged(held, steps, log, known).await? {
            // Known absent, the create is written without a look first:
            // one made by someone else since our read fails with EEXIST.
            Ok(report) => {
                tracing::debug!(uuid = %uuid, writes = report.changed(), "started");
                Ok(Started::Now)
            }
            Err(failure) => {
                // Someone may have changed the host between our check and
                // the write: the check on a fresh read names the culprit.
                let now = Stale::unannounced().and(Stale::before_change());
                if let Ok(now) = self.sync(now).await {
                    if created_meanwhile(&failure) && now.mdevs.contains_key(&uuid) {
                        // Another tool made it since the model last saw
                        // the host: active, as a read first would have
                        // found it (a start never changes a running mdev).
                        tracing::debug!(uuid = %uuid, "made by another tool meanwhile; nothing to start");
                        return Ok(Started::Already);
                    }
                    check(&now).map_err(refused)?;
                }
                Err(kernel_refusal(&format!("start {who}"), &failure))
            }
        }
    }

    /// `Stop`.
    pub async fn stop(&self, arg: &str) -> Result<(), Error> {
        let w = self.change().await?;
        let (uuid, host) = self.sync_mdev(arg, Stale::none()).await?;
        let (uuid, who) = {
            let s = self.state();
            let u = uuid;
            (u, target(&s, u))
        };
        let name = self.state().name_of(uuid);
        check_remove(&host, uuid, name.as_deref(), Asker::Command)
            .map_err(|f| convert::refused(&f, remedy::message(&f)))?;
        let matrix = host.mdevs.get(&uuid).map(|m| m.matrix).unwrap_or_default();
        let steps = libap::plan::stop(uuid, name, matrix);
        // The mdev was read under the lock: the executor need not look.
        let known = Known::from_host(&host, &steps);
        let result = match self
            .execute_logged(w.held(), steps, StepLog::Info, known)
            .await?
        {
            Ok(report) if report.nothing_changed() => {
                tracing::debug!(uuid = %uuid, "not active; nothing to stop");
                Ok(())
            }
            Ok(_) => {
                tracing::info!(uuid = %uuid, "stopped");
                Ok(())
            }
            Err(f) => Err(kernel_refusal(&format!("stop {who}"), &f)),
        };
        self.refresh(Stale::mdev(uuid)).await;
        result
    }

    /// `Assign` (`add`) and `Unassign`.
    pub async fn assign(
        &self,
        arg: &str,
        ids: IdLists,
        scope: Scope,
        add: bool,
    ) -> Result<(), Error> {
        let w = self.change().await?;
        let (uuid, mut host) = self.sync_mdev(arg, Stale::before_change()).await?;
        let names = name_map(&self.state());
        let (uuid, who, def) = {
            let s = self.state();
            let u = uuid;
            (u, target(&s, u), s.defs.get(&u).cloned())
        };
        let verb = if add { "assign to" } else { "unassign from" };
        let action = format!("{verb} {who}");
        let want = matrix_from_ids(&ids, host.max_adapter_id, host.max_domain_id, &action)?;
        if want.is_empty() {
            return Err(Error::Invalid(format!(
                "cannot {action}: no adapters, domains or control domains given"
            )));
        }
        let live_mdev = host.mdevs.get(&uuid).cloned();
        let (live, persistent) =
            scope_parts(scope, live_mdev.is_some(), def.is_some(), &action, &who)?;

        // Validate both parts before the first write.
        let mut live_steps = Vec::new();
        if let (true, Some(m)) = (live, &live_mdev) {
            if add {
                host = self
                    .check_fresh(host, Stale::none(), |h| {
                        check_assigns(h, &names, uuid, m.matrix, &want)
                    })
                    .await?
                    .map_err(|f| convert::refused(&f, remedy::message(&f)))?;
            }
            live_steps = libap::plan::assignment(
                uuid,
                def.as_ref().and_then(|d| d.name.clone()),
                &want,
                add,
            );
        }
        let new_def = match (persistent, &def) {
            (true, Some(d)) => self.changed_definition(&host, d, &want, add, &action)?,
            _ => None,
        };
        let mut steps = live_steps;
        if let (Some(old), Some(new)) = (&def, &new_def) {
            steps.push(Step::Redefine {
                old: old.clone(),
                new: new.clone(),
            });
        }
        if steps.is_empty() {
            tracing::debug!(uuid = %uuid, "nothing to change");
            return Ok(());
        }
        let touched = touched(&steps);
        // The mdev was read under the lock: the executor need not look.
        let known = Known::from_host(&host, &steps);
        let result = match self
            .execute_logged(w.held(), steps, StepLog::Info, known)
            .await?
        {
            Ok(report) => {
                if let Some(nd) = new_def {
                    self.state().defs_mut().insert(uuid, nd);
                }
                if report.nothing_changed() {
                    tracing::debug!(uuid = %uuid, add, live, persistent, "nothing to change: every id was in place");
                } else {
                    tracing::info!(uuid = %uuid, add, live, persistent, changes = report.changed(), "assignment changed");
                }
                Ok(())
            }
            Err(f) => Err(self
                .assign_refusal(&f, add, uuid, &names, &want, &action)
                .await),
        };
        self.refresh(touched).await;
        result
    }

    /// Why an assignment failed. A live assign the kernel refused may meet
    /// what another tool assigned to some other mdev without a uevent since
    /// apd last read it: a fresh read of every mdev names who holds the
    /// queue.
    async fn assign_refusal(
        &self,
        f: &ApplyError,
        add: bool,
        uuid: Uuid,
        names: &NameMap,
        want: &Matrix,
        action: &str,
    ) -> Error {
        if add && f.failed_step.is_live() {
            if let Ok(now) = self.sync(Stale::unannounced()).await {
                if let Some(m) = now.mdevs.get(&uuid) {
                    if let Err(f) = check_assigns(&now, names, uuid, m.matrix, want) {
                        return convert::refused(&f, remedy::message(&f));
                    }
                }
            }
        }
        assign_failed(action, f)
    }

    /// The definition `d` with `want` added or removed, checked with the
    /// other definitions; None when it does not change.
    fn changed_definition(
        &self,
        host: &Host,
        d: &Definition,
        want: &Matrix,
        add: bool,
        action: &str,
    ) -> Result<Option<Definition>, Error> {
        let mut nd = d.clone();
        nd.set_matrix(&changed(&d.matrix(), want, add));
        if nd == *d {
            return Ok(None);
        }
        let all: Vec<Definition> = {
            let s = self.state();
            s.defs
                .values()
                .map(|o| {
                    if o.uuid == d.uuid {
                        nd.clone()
                    } else {
                        o.clone()
                    }
                })
                .collect()
        };
        match definition_refusal(host, &all, &[d.uuid], action) {
            Some(e) => Err(e),
            None => Ok(Some(nd)),
        }
    }
}

/// Which parts an assignment in `scope` changes: (live, persistent); a
/// part the scope names that is missing refuses it.
fn scope_parts(
    scope: Scope,
    active: bool,
    defined: bool,
    action: &str,
    who: &str,
) -> Result<(bool, bool), Error> {
    match scope {
        Scope::Both => Ok((active, defined)),
        Scope::Live if !active => Err(Error::Invalid(format!(
            "cannot {action} live: {who} is not active; start it first, or change only its definition with --persistent"
        ))),
        Scope::Live => Ok((true, false)),
        Scope::Persistent if !defined => Err(Error::NotFound(format!(
            "cannot {action} persistently: {who} has no definition; change it live with --live, or define it first"
        ))),
        Scope::Persistent => Ok((false, true)),
    }
}

/// Checks each assign of `want` to the live mdev `uuid` (whose matrix is
/// `current`) as the kernel would, in the order they are written.
fn check_assigns(
    host: &Host,
    names: &NameMap,
    uuid: Uuid,
    current: Matrix,
    want: &Matrix,
) -> Result<(), Finding> {
    let lookup = |u: Uuid| names.get(&u);
    let mut cur = current;
    for (kind, mask) in [
        (AssignKind::Adapter, want.adapters),
        (AssignKind::Domain, want.domains),
        (AssignKind::ControlDomain, want.control_domains),
    ] {
        for id in mask.iter() {
            match check_assign_to(host, &lookup, uuid, &cur, kind, id) {
                Ok(AssignVerdict::NoOp) => {}
                Ok(AssignVerdict::Ok) => cur = changed(&cur, &single(kind, id), true),
                Err(f) => return Err(f),
            }
        }
    }
    Ok(())
}

fn single(kind: AssignKind, id: u8) -> Matrix {
    let one = ApMask::from_ids([id]);
    match kind {
        AssignKind::Adapter => Matrix::new(one, ApMask::empty(), ApMask::empty()),
        AssignKind::Domain => Matrix::new(ApMask::empty(), one, ApMask::empty()),
        AssignKind::ControlDomain => Matrix::new(ApMask::empty(), ApMask::empty(), one),
    }
}

/// Why an assignment failed: the kernel's refusal of a live write, or the
/// store's failure (the definition stays as it was, so the live change was
/// undone with it).
fn assign_failed(action: &str, f: &ApplyError) -> Error {
    if f.failed_step.is_live() {
        return kernel_refusal(action, f);
    }
    let mut msg = format!("cannot {action}: {}", store_failed(f));
    if !f.rolled_back {
        msg.push_str("; undoing the live change failed as well, check with `apctl show`");
    }
    Error::Failed(msg)
}
