//! The changes apd makes, each validated with libap before the first
//! write, run all or nothing under the writer and the s390 configuration
//! lock, then published.

use std::collections::BTreeMap;
use std::sync::Arc;

use apbus::{Error, IdLists, Scope};
use libap::apply::{ApplyError, Outcome};
use libap::plan::Step;
use libap::resync::Stale;
use libap::validate::{
    check_assign_to, check_definitions, check_mask_change_named, check_matrix_named, check_remove,
    check_vfio_ap, Asker, AssignKind, AssignVerdict, Finding, FindingKind, Severity,
};
use libap::{ApMask, Definition, Host, Matrix};
use uuid::Uuid;

use crate::convert::{self, mask_from_ids, matrix_from_ids, IdKind};
use crate::engine::{touched, Engine, Failure, State};

/// Mask strings longer than this are refused unread (the kernel takes at
/// most a page).
const MAX_MASK_INPUT: usize = 4096;

/// What a start did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// It was created now.
    Now,
    /// It was active already: nothing written.
    Already,
}

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

/// Kinds of definition findings that refuse a change of definitions: the
/// definitions could not all work whatever the host does. Host-dependent
/// findings (host-owned queues) are not refusals: masks may change later.
fn blocks_definition(f: &Finding) -> bool {
    f.severity == Severity::Error
        && matches!(
            f.kind,
            FindingKind::OutOfRange
                | FindingKind::SharedAutostart
                | FindingKind::DuplicateName
                | FindingKind::DuplicateUuid
                | FindingKind::InvalidName
        )
}

/// The first blocking finding about one of `uuids` when `defs` replace
/// the stored definitions, as the refusal of `action`.
fn definition_refusal(
    host: &Host,
    defs: &[Definition],
    uuids: &[Uuid],
    action: &str,
) -> Option<Error> {
    check_definitions(Some(host), defs)
        .into_iter()
        .find(|f| blocks_definition(f) && f.mdevs.iter().any(|(u, _)| uuids.contains(u)))
        .map(|f| convert::refused(&f, format!("cannot {action}: {}", f.reason)))
}

/// A bus definition as a model definition (a new UUID when it has none).
pub fn definition_from_bus(d: &apbus::Definition, host: &Host) -> Result<Definition, Error> {
    let uuid = if d.uuid.is_empty() {
        Uuid::new_v4()
    } else {
        convert::parse_uuid(&d.uuid).ok_or_else(|| {
            Error::Invalid(format!(
                "cannot define {:?}: it is not a UUID (write it as 62177883-f1bb-47f0-914d-32a22e3a8804, or leave it empty to get a new one)",
                d.uuid
            ))
        })?
    };
    let name = if d.name.is_empty() {
        None
    } else {
        libap::definition::validate_name(&d.name)
            .map_err(|e| Error::Invalid(format!("cannot define {}: {e}", d.name)))?;
        Some(d.name.clone())
    };
    let who = name
        .clone()
        .unwrap_or_else(|| uuid.hyphenated().to_string());
    let m = matrix_from_ids(
        &d.ids,
        host.max_adapter_id,
        host.max_domain_id,
        &format!("define {who}"),
    )?;
    let mut def = Definition::new(uuid);
    def.name = name;
    def.autostart = d.autostart;
    def.set_matrix(&m);
    Ok(def)
}

/// The bus form of a definition.
pub fn definition_to_bus(d: &Definition) -> apbus::Definition {
    apbus::Definition {
        uuid: d.uuid.hyphenated().to_string(),
        name: d.name.clone().unwrap_or_default(),
        autostart: d.autostart,
        ids: convert::id_lists(&d.matrix()),
    }
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
    /// Re-reads into the model what the kernel changes without a uevent
    /// (every mdev, the LPAR configuration; the rest follows uevents) and
    /// returns the host with the names. The caller holds the writer.
    async fn fresh(&self) -> Result<(Arc<Host>, BTreeMap<Uuid, String>), Error> {
        let host = self.sync(Stale::unannounced()).await?;
        Ok((host, name_map(&self.state())))
    }

    /// `Define`.
    pub async fn define(&self, d: apbus::Definition) -> Result<String, Error> {
        let _w = self.writer().await?;
        let (host, _) = self.fresh().await?;
        let def = definition_from_bus(&d, &host)?;
        let who = def.label();
        let all = {
            let s = self.state();
            if let Some(old) = s.defs.get(&def.uuid) {
                return Err(Error::Exists(format!(
                    "cannot define {who}: {} is already defined; change it with `apctl assign`/`unassign` or undefine it first",
                    old.label()
                )));
            }
            if let Some(n) = &def.name {
                if let Some(other) = s.defs.values().find(|o| o.name.as_ref() == Some(n)) {
                    return Err(Error::Exists(format!(
                        "cannot define {who}: the name {n} is taken by {}; choose another name",
                        other.label()
                    )));
                }
            }
            let mut all: Vec<Definition> = s.defs.values().cloned().collect();
            all.push(def.clone());
            all
        };
        if let Some(e) = definition_refusal(&host, &all, &[def.uuid], &format!("define {who}")) {
            return Err(e);
        }
        if let Err(e) = self.execute(vec![Step::Define(def.clone())]).await? {
            return Err(Error::Failed(store_failed(&e)));
        }
        tracing::info!(uuid = %def.uuid, name = def.name.as_deref().unwrap_or(""), "defined");
        self.state().defs.insert(def.uuid, def.clone());
        self.publish().await;
        Ok(def.uuid.hyphenated().to_string())
    }

    /// `Undefine`.
    pub async fn undefine(&self, arg: &str) -> Result<(), Error> {
        let _w = self.writer().await?;
        self.fresh().await?;
        let uuid = self.state().resolve(arg)?;
        let label = self.state().label(uuid);
        let Some(def) = self.state().defs.get(&uuid).cloned() else {
            return Err(Error::NotFound(format!(
                "cannot undefine {label}: it has no definition (it was created by another tool)"
            )));
        };
        if let Err(e) = self.execute(vec![Step::Undefine(def)]).await? {
            return Err(Error::Failed(store_failed(&e)));
        }
        {
            let mut s = self.state();
            s.defs.remove(&uuid);
            s.start_failures.remove(&uuid);
        }
        tracing::info!(uuid = %uuid, "undefined");
        self.publish().await;
        Ok(())
    }

    /// `Start`.
    pub async fn start(&self, arg: &str) -> Result<(), Error> {
        let _w = self.writer().await?;
        self.fresh().await?;
        let uuid = self.state().resolve(arg)?;
        let result = self.start_locked(uuid).await;
        if result.is_ok() {
            // A successful start by hand ends an automatic start's failure.
            self.state().start_failures.remove(&uuid);
        }
        self.refresh(Stale::mdev(uuid)).await;
        result.map(|_| ())
    }

    /// Creates a defined mdev and assigns its matrix, all or nothing,
    /// checked against the model (the caller holds the writer, has brought
    /// the mdevs up to date, and re-reads this mdev afterwards).
    pub async fn start_locked(&self, uuid: Uuid) -> Result<Started, Error> {
        let (host, names) = {
            let s = self.state();
            (s.host.clone(), name_map(&s))
        };
        let lookup = |u: Uuid| names.get(&u).cloned();
        let (def, who) = {
            let s = self.state();
            (s.defs.get(&uuid).cloned(), target(&s, uuid))
        };
        let Some(def) = def else {
            return Err(Error::NotFound(format!(
                "cannot start {who}: it has no definition; define it first with `apctl define`"
            )));
        };
        let active = host.mdevs.contains_key(&uuid);
        if !active {
            check_vfio_ap(&host, uuid, def.name.as_deref(), Asker::Command)
                .map_err(|f| convert::refused(&f, f.message.clone()))?;
        }
        // The definition's matrix against a read of the host: the refusal
        // that names the culprit, before the writes and after a failed one.
        let refusal = |host: &Host| {
            check_matrix_named(
                host,
                &lookup,
                uuid,
                def.adapters,
                def.domains,
                def.control_domains,
            )
            .map_err(|f| convert::refused(&f, format!("cannot start {who}: {}", f.reason)))
        };
        if !active {
            refusal(&host)?;
        }
        match self.execute(libap::plan::start(&host, &def)).await? {
            Ok(report) if !report.changed_at(0) => {
                tracing::debug!(uuid = %uuid, "already active; nothing to start");
                Ok(Started::Already)
            }
            Ok(report) => {
                tracing::info!(uuid = %uuid, writes = report.changed(), "started");
                Ok(Started::Now)
            }
            Err(failure) => {
                // Someone may have changed the host between our check and
                // the write: the check on a fresh read names the culprit.
                if let Ok(now) = self.sync(Stale::unannounced()).await {
                    refusal(&now)?;
                }
                Err(kernel_refusal(&format!("start {who}"), &failure))
            }
        }
    }

    /// `Stop`.
    pub async fn stop(&self, arg: &str) -> Result<(), Error> {
        let _w = self.writer().await?;
        let (host, _) = self.fresh().await?;
        let (uuid, who) = {
            let s = self.state();
            let u = s.resolve(arg)?;
            (u, target(&s, u))
        };
        let name = self.state().name_of(uuid);
        check_remove(&host, uuid, name.as_deref(), Asker::Command)
            .map_err(|f| convert::refused(&f, f.message.clone()))?;
        let matrix = host.mdevs.get(&uuid).map(|m| m.matrix).unwrap_or_default();
        let result = match self.execute(libap::plan::stop(uuid, name, matrix)).await? {
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
        let _w = self.writer().await?;
        let (host, names) = self.fresh().await?;
        let lookup = |u: Uuid| names.get(&u).cloned();
        let (uuid, who, def) = {
            let s = self.state();
            let u = s.resolve(arg)?;
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
        let (live, persistent) = match scope {
            Scope::Both => (live_mdev.is_some(), def.is_some()),
            Scope::Live => {
                if live_mdev.is_none() {
                    return Err(Error::Invalid(format!(
                        "cannot {action} live: {who} is not active; start it first, or change only its definition with --persistent"
                    )));
                }
                (true, false)
            }
            Scope::Persistent => {
                if def.is_none() {
                    return Err(Error::NotFound(format!(
                        "cannot {action} persistently: {who} has no definition; change it live with --live, or define it first"
                    )));
                }
                (false, true)
            }
        };

        // Validate both parts before the first write.
        let mut live_steps = Vec::new();
        if let (true, Some(m)) = (live, &live_mdev) {
            if add {
                let mut cur = m.matrix;
                for (kind, mask) in [
                    (AssignKind::Adapter, want.adapters),
                    (AssignKind::Domain, want.domains),
                    (AssignKind::ControlDomain, want.control_domains),
                ] {
                    for id in mask.iter() {
                        match check_assign_to(&host, &lookup, uuid, &cur, kind, id) {
                            Ok(AssignVerdict::NoOp) => {}
                            Ok(AssignVerdict::Ok) => {
                                cur = changed(&cur, &single(kind, id), true);
                            }
                            Err(f) => return Err(convert::refused(&f, f.message.clone())),
                        }
                    }
                }
            }
            live_steps = libap::plan::assignment(
                uuid,
                def.as_ref().and_then(|d| d.name.clone()),
                &want,
                add,
            );
        }
        let mut new_def = None;
        if let (true, Some(d)) = (persistent, &def) {
            let mut nd = d.clone();
            nd.set_matrix(&changed(&d.matrix(), &want, add));
            if nd != *d {
                let all: Vec<Definition> = {
                    let s = self.state();
                    s.defs
                        .values()
                        .map(|o| {
                            if o.uuid == uuid {
                                nd.clone()
                            } else {
                                o.clone()
                            }
                        })
                        .collect()
                };
                if let Some(e) = definition_refusal(&host, &all, &[uuid], &action) {
                    return Err(e);
                }
                new_def = Some(nd);
            }
        }
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
        let result = match self.execute(steps).await? {
            Ok(report) => {
                if let Some(nd) = new_def {
                    self.state().defs.insert(uuid, nd);
                }
                if report.nothing_changed() {
                    tracing::debug!(uuid = %uuid, add, live, persistent, "nothing to change: every id was in place");
                } else {
                    tracing::info!(uuid = %uuid, add, live, persistent, changes = report.changed(), "assignment changed");
                }
                Ok(())
            }
            // The definition stays as it was, so the live change went too.
            Err(f) if !f.failed_step.is_live() => {
                let mut msg = format!("cannot {action}: {}", store_failed(&f));
                if !f.rolled_back {
                    msg.push_str(
                        "; undoing the live change failed as well, check with `apctl show`",
                    );
                }
                Err(Error::Failed(msg))
            }
            Err(f) => Err(kernel_refusal(&action, &f)),
        };
        self.refresh(touched).await;
        result
    }

    /// `SetMasks`.
    pub async fn set_masks(
        &self,
        apmask: &str,
        aqmask: &str,
        persistent: bool,
    ) -> Result<(String, String), Error> {
        for (name, s) in [("apmask", apmask), ("aqmask", aqmask)] {
            if s.len() > MAX_MASK_INPUT {
                return Err(Error::Invalid(format!(
                    "cannot change the masks: the {name} given is {} bytes long; a mask is 0x and 64 hex digits, or relative terms such as -5,-6",
                    s.len()
                )));
            }
        }
        let _w = self.writer().await?;
        let (host, names) = self.fresh().await?;
        let parse = |name: &str, cur: ApMask, s: &str| -> Result<ApMask, Error> {
            if s.is_empty() {
                return Ok(cur);
            }
            cur.apply_write(s)
                .map_err(|e| Error::Invalid(format!("cannot change the {name}: {e}")))
        };
        let new_ap = parse("apmask", host.apmask, apmask)?;
        let new_aq = parse("aqmask", host.aqmask, aqmask)?;
        let store = persistent.then_some((Some(new_ap), Some(new_aq)));
        let result = self
            .change_masks(&host, &names, new_ap, new_aq, store)
            .await;
        if result.is_ok() && persistent {
            let mut s = self.state();
            s.persistent_masks = (Some(new_ap), Some(new_aq));
            s.mask_failure = None;
        }
        self.refresh(Stale::masks()).await;
        result.map(|()| (new_ap.to_string(), new_aq.to_string()))
    }

    /// Validates and writes new masks, and with `store` the persistent
    /// masks too, all or nothing; the caller holds the writer and re-reads
    /// the masks afterwards.
    pub async fn change_masks(
        &self,
        host: &Host,
        names: &BTreeMap<Uuid, String>,
        new_ap: ApMask,
        new_aq: ApMask,
        store: Option<(Option<ApMask>, Option<ApMask>)>,
    ) -> Result<(), Error> {
        let lookup = |u: Uuid| names.get(&u).cloned();
        check_mask_change_named(host, &lookup, new_ap, new_aq)
            .map_err(|f| convert::refused(&f, f.message.clone()))?;
        let mut steps = libap::plan::masks(host.apmask, host.aqmask, new_ap, new_aq);
        if let Some((apmask, aqmask)) = store {
            steps.push(Step::StoreMasks { apmask, aqmask });
        }
        match self.execute(steps).await? {
            Ok(report) => {
                let live = report.steps.iter().filter(|r| r.step.is_live());
                if live.clone().any(|r| r.outcome == Outcome::Changed) {
                    tracing::info!(apmask = %new_ap, aqmask = %new_aq, "masks changed");
                } else {
                    tracing::debug!(apmask = %new_ap, aqmask = %new_aq, "the masks were in place");
                }
                Ok(())
            }
            // Refused as a whole: the live masks were put back.
            Err(failure) if !failure.failed_step.is_live() => Err(Error::Failed(format!(
                "cannot store the persistent masks: {}; the live masks were put back",
                store_failed(&failure)
            ))),
            Err(failure) => {
                if let Ok(now) = self.sync(Stale::masks().and(Stale::all_mdevs())).await {
                    if let Err(f) = check_mask_change_named(&now, &lookup, new_ap, new_aq) {
                        return Err(convert::refused(&f, f.message.clone()));
                    }
                }
                Err(kernel_refusal("change the masks", &failure))
            }
        }
    }

    /// `ConfigureAdapter`.
    pub async fn configure_adapter(&self, adapter: u32, on: bool) -> Result<(), Error> {
        let _w = self.writer().await?;
        let (host, _) = self.fresh().await?;
        let state = if on { "on" } else { "off" };
        let id = mask_from_ids(
            &[adapter],
            IdKind::Adapter,
            host.max_adapter_id,
            &format!("configure adapter {adapter} {state}"),
        )?
        .first()
        .ok_or_else(|| Error::Invalid(format!("cannot configure adapter {adapter}")))?;
        if !host.cards.contains_key(&id) {
            return Err(Error::NotFound(format!(
                "cannot configure adapter {id} {state}: the host has no card {:02x} (it is not in the LPAR's configuration, or older than CEX4)",
                id
            )));
        }
        let steps = libap::plan::configure_adapter(id, on);
        let touched = touched(&steps);
        let result = match self.execute(steps).await? {
            Ok(report) if report.nothing_changed() => {
                tracing::debug!(adapter = id, on, "the adapter was configured so already");
                Ok(())
            }
            Ok(_) => {
                tracing::info!(adapter = id, on, "adapter configured");
                Ok(())
            }
            Err(f) => Err(kernel_refusal(
                &format!("configure adapter {id} {state}"),
                &f,
            )),
        };
        self.refresh(touched).await;
        result
    }

    /// `Check`: load errors, then libap's verdicts on the definitions.
    pub async fn check(&self) -> Result<Vec<apbus::Finding>, Error> {
        let host = self.current_host(Stale::unannounced()).await?;
        let (defs, load_errors) = {
            let s = self.state();
            (
                s.defs.values().cloned().collect::<Vec<_>>(),
                s.load_errors.clone(),
            )
        };
        let mut out: Vec<apbus::Finding> = load_errors
            .into_iter()
            .map(|(path, message)| apbus::Finding {
                severity: "error".into(),
                kind: "load-error".into(),
                message: format!("{message} (the file is skipped)"),
                apqns: Vec::new(),
                mdevs: file_uuid(&path).into_iter().collect(),
            })
            .collect();
        out.extend(
            check_definitions(Some(&host), &defs)
                .iter()
                .map(convert::finding),
        );
        Ok(out)
    }

    /// `Import`: several definitions, all or nothing.
    pub async fn import(&self, defs: Vec<apbus::Definition>) -> Result<Vec<String>, Error> {
        if defs.len() > 65536 {
            return Err(Error::Invalid(format!(
                "cannot import {} definitions at once (at most 65536, the kernel's mdev limit)",
                defs.len()
            )));
        }
        let _w = self.writer().await?;
        let (host, _) = self.fresh().await?;
        let mut new = Vec::new();
        for d in &defs {
            new.push(definition_from_bus(d, &host)?);
        }
        let mut to_save = Vec::new();
        let all = {
            let s = self.state();
            let mut all: BTreeMap<Uuid, Definition> = s.defs.clone();
            for d in &new {
                if new.iter().filter(|o| o.uuid == d.uuid).count() > 1 {
                    return Err(Error::Conflict(format!(
                        "cannot import: {} appears more than once",
                        d.uuid.hyphenated()
                    )));
                }
                match s.defs.get(&d.uuid) {
                    Some(old) if old == d => continue,
                    Some(old) => {
                        return Err(Error::Exists(format!(
                        "cannot import {}: {} is already defined differently; undefine it first",
                        d.label(),
                        old.label()
                    )))
                    }
                    None => {}
                }
                if let Some(n) = &d.name {
                    if let Some(o) = all
                        .values()
                        .find(|o| o.name.as_ref() == Some(n) && o.uuid != d.uuid)
                    {
                        return Err(Error::Exists(format!(
                            "cannot import {}: the name {n} is taken by {}",
                            d.label(),
                            o.label()
                        )));
                    }
                }
                all.insert(d.uuid, d.clone());
                to_save.push(d.clone());
            }
            all.into_values().collect::<Vec<_>>()
        };
        let uuids: Vec<Uuid> = to_save.iter().map(|d| d.uuid).collect();
        if let Some(e) = definition_refusal(&host, &all, &uuids, "import the definitions") {
            return Err(e);
        }
        let steps: Vec<Step> = to_save.iter().cloned().map(Step::Define).collect();
        if let Err(e) = self.execute(steps).await? {
            return Err(Error::Failed(store_failed(&e)));
        }
        {
            let mut s = self.state();
            for d in to_save {
                s.defs.insert(d.uuid, d);
            }
        }
        tracing::info!(count = uuids.len(), "definitions imported");
        self.publish().await;
        Ok(new
            .iter()
            .map(|d| d.uuid.hyphenated().to_string())
            .collect())
    }

    /// Records that an automatic start (or the persistent masks) failed.
    pub fn record_failure(&self, uuid: Option<Uuid>, message: String) {
        let mut s = self.state();
        let f = Failure {
            message,
            host_gen: s.host_gen,
        };
        match uuid {
            Some(u) => {
                s.start_failures.insert(u, f);
            }
            None => s.mask_failure = Some(f),
        }
    }
}

fn single(kind: AssignKind, id: u8) -> Matrix {
    let one = ApMask::from_ids([id]);
    match kind {
        AssignKind::Adapter => Matrix::new(one, ApMask::empty(), ApMask::empty()),
        AssignKind::Domain => Matrix::new(ApMask::empty(), one, ApMask::empty()),
        AssignKind::ControlDomain => Matrix::new(ApMask::empty(), ApMask::empty(), one),
    }
}

/// The UUID a definition file is named after, if it is.
fn file_uuid(path: &str) -> Option<String> {
    let stem = std::path::Path::new(path).file_stem()?.to_str()?;
    convert::parse_uuid(stem).map(|u| u.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_definitions_are_checked() {
        let host = Host {
            max_adapter_id: 15,
            max_domain_id: 15,
            ..Host::default()
        };
        let ok = apbus::Definition {
            uuid: "62177883-F1BB-47f0-914d-32a22e3a8804".into(),
            name: "guest1".into(),
            autostart: true,
            ids: IdLists {
                adapters: vec![5, 6],
                domains: vec![4],
                control_domains: vec![],
            },
        };
        let d = definition_from_bus(&ok, &host).expect("valid");
        assert_eq!(
            d.uuid.hyphenated().to_string(),
            "62177883-f1bb-47f0-914d-32a22e3a8804"
        );
        assert_eq!(
            definition_to_bus(&d).uuid,
            "62177883-f1bb-47f0-914d-32a22e3a8804"
        );
        let mut bad = ok.clone();
        bad.uuid = "not-a-uuid".into();
        assert_eq!(
            definition_from_bus(&bad, &host).expect_err("uuid").kind(),
            apbus::ErrorKind::Invalid
        );
        let mut bad = ok.clone();
        bad.name = "has space".into();
        assert_eq!(
            definition_from_bus(&bad, &host).expect_err("name").kind(),
            apbus::ErrorKind::Invalid
        );
        let mut bad = ok.clone();
        bad.ids.domains = vec![16];
        assert_eq!(
            definition_from_bus(&bad, &host).expect_err("range").kind(),
            apbus::ErrorKind::OutOfRange
        );
        let mut fresh = ok;
        fresh.uuid.clear();
        assert_ne!(
            definition_from_bus(&fresh, &host).expect("new uuid").uuid,
            Uuid::nil()
        );
    }
}
