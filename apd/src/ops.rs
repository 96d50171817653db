//! The changes apd makes, each validated with libap before the first
//! write, run all or nothing under the writer and the s390 configuration
//! lock, then published.

use std::collections::BTreeMap;
use std::sync::Arc;

use apbus::{Error, IdLists, Scope};
use libap::host::paths;
use libap::matrix::format_ap_config;
use libap::resync::Stale;
use libap::validate::{
    check_assign_to, check_definitions, check_mask_change_named, check_matrix_named, AssignKind,
    AssignVerdict, Finding, FindingKind, Severity,
};
use libap::{ApMask, Definition, Host, Matrix};
use uuid::Uuid;

use crate::convert::{self, mask_from_ids, matrix_from_ids, IdKind};
use crate::engine::{Engine, Failure, State};
use crate::txn::{self, Step, Target};

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

/// The writes that create `def`'s mdev and assign its matrix; the create
/// is undone by removing the mdev.
pub fn start_steps(host: &Host, def: &Definition) -> Vec<Step> {
    let u = def.uuid;
    let mut steps = vec![Step::new(
        Target::Create,
        paths::MDEV_CREATE,
        u.hyphenated().to_string(),
        "create the mdev",
    )
    .undo_with(paths::mdev_attr(&u, "remove"), "1")];
    let m = def.matrix();
    if m.is_empty() {
        return steps;
    }
    if host.supports_ap_config() {
        steps.push(Step::new(
            Target::ApConfig,
            paths::mdev_attr(&u, "ap_config"),
            format_ap_config(m.adapters, m.domains, m.control_domains),
            "set its whole matrix in ap_config",
        ));
    } else {
        steps.extend(assign_steps(u, &Matrix::default(), &m, true));
    }
    steps
}

/// One `assign_*` (or `unassign_*`) write per id of `ids` that changes
/// `current`, each undone by its opposite: adapters, then domains, then
/// control domains.
pub fn assign_steps(u: Uuid, current: &Matrix, ids: &Matrix, add: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    for (kind, want, have) in [
        (IdKind::Adapter, ids.adapters, current.adapters),
        (IdKind::Domain, ids.domains, current.domains),
        (
            IdKind::ControlDomain,
            ids.control_domains,
            current.control_domains,
        ),
    ] {
        for id in want.iter() {
            if have.contains(id) == add {
                continue;
            }
            let (verb, undo) = if add {
                ("assign", "unassign")
            } else {
                ("unassign", "assign")
            };
            steps.push(
                Step::new(
                    Target::Assign,
                    paths::mdev_attr(&u, &format!("{verb}_{}", kind.attr())),
                    id.to_string(),
                    format!("{verb} {}", kind.describe(u32::from(id))),
                )
                .undo_with(
                    paths::mdev_attr(&u, &format!("{undo}_{}", kind.attr())),
                    id.to_string(),
                ),
            );
        }
    }
    steps
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

/// The mask writes from (old_ap, old_aq) to (new_ap, new_aq): first the
/// apmask bits that clear, then the aqmask, then the apmask bits that set.
/// Every intermediate state gives the host only APQNs that the old or the
/// new masks give it, so the kernel's check of each single write (against
/// the other mask's current value) never refuses a change whose final
/// state is valid. Each write is undone by writing back the value before.
pub fn mask_steps(old_ap: ApMask, old_aq: ApMask, new_ap: ApMask, new_aq: ApMask) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut cur_ap = old_ap;
    let mid_ap = old_ap.intersection(new_ap);
    let mask_step = |path: &str, name: &str, to: ApMask, from: ApMask| {
        Step::new(
            Target::Mask,
            path,
            format!("{to}\n"),
            format!("set {name} to {to}"),
        )
        .undo_with(path, format!("{from}\n"))
    };
    if mid_ap != cur_ap {
        steps.push(mask_step(paths::APMASK, "apmask", mid_ap, cur_ap));
        cur_ap = mid_ap;
    }
    if new_aq != old_aq {
        steps.push(mask_step(paths::AQMASK, "aqmask", new_aq, old_aq));
    }
    if new_ap != cur_ap {
        steps.push(mask_step(paths::APMASK, "apmask", new_ap, cur_ap));
    }
    steps
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
        let saved = def.clone();
        self.store_job(move |st| st.save(&saved)).await?;
        tracing::info!(uuid = %def.uuid, name = def.name.as_deref().unwrap_or(""), "defined");
        self.state().defs.insert(def.uuid, def.clone());
        self.publish(Vec::new()).await;
        Ok(def.uuid.hyphenated().to_string())
    }

    /// `Undefine`.
    pub async fn undefine(&self, arg: &str) -> Result<(), Error> {
        let _w = self.writer().await?;
        self.fresh().await?;
        let uuid = self.state().resolve(arg)?;
        let label = self.state().label(uuid);
        if !self.state().defs.contains_key(&uuid) {
            return Err(Error::NotFound(format!(
                "cannot undefine {label}: it has no definition (it was created by another tool)"
            )));
        }
        self.store_job(move |st| st.remove(uuid)).await?;
        {
            let mut s = self.state();
            s.defs.remove(&uuid);
            s.start_failures.remove(&uuid);
        }
        tracing::info!(uuid = %uuid, "undefined");
        self.publish(Vec::new()).await;
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
        self.refresh(Stale::mdev(uuid), Vec::new()).await;
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
        if host.mdevs.contains_key(&uuid) {
            tracing::debug!(uuid = %uuid, "already active; nothing to start");
            return Ok(Started::Already);
        }
        if !host.vfio_ap_loaded {
            return Err(Error::Failed(format!(
                "cannot start {who}: the vfio_ap module is not loaded (no {}); load it with `modprobe vfio_ap`",
                paths::MATRIX
            )));
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
        refusal(&host)?;
        match self.run_steps(start_steps(&host, &def)).await? {
            Ok(_) => {
                tracing::info!(uuid = %uuid, "started");
                Ok(Started::Now)
            }
            Err(failure) => {
                // Someone may have changed the host between our check and
                // the write: the check on a fresh read names the culprit.
                if let Ok(now) = self.sync(Stale::unannounced()).await {
                    refusal(&now)?;
                }
                Err(Error::new(
                    failure.kind(),
                    format!("cannot start {who}: {}", failure.describe()),
                ))
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
        let Some(mdev) = host.mdevs.get(&uuid) else {
            return Ok(());
        };
        if mdev.in_use {
            return Err(Error::InUse(format!(
                "cannot stop {who}: a running guest uses it; shut the guest down or detach the mdev first"
            )));
        }
        let step = Step::new(
            Target::Remove,
            paths::mdev_attr(&uuid, "remove"),
            "1",
            "remove the mdev",
        );
        let result = match self.run_steps(vec![step]).await? {
            Ok(_) => {
                tracing::info!(uuid = %uuid, "stopped");
                Ok(())
            }
            Err(f) => Err(Error::new(
                f.kind(),
                format!("cannot stop {who}: {}", f.describe()),
            )),
        };
        self.refresh(Stale::mdev(uuid), Vec::new()).await;
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
            let new = changed(&m.matrix, &want, add);
            if new != m.matrix {
                live_steps = if host.supports_ap_config() {
                    vec![Step::new(
                        Target::ApConfig,
                        paths::mdev_attr(&uuid, "ap_config"),
                        format_ap_config(new.adapters, new.domains, new.control_domains),
                        format!("{verb} {who} (ap_config)"),
                    )
                    .undo_with(
                        paths::mdev_attr(&uuid, "ap_config"),
                        format_ap_config(
                            m.matrix.adapters,
                            m.matrix.domains,
                            m.matrix.control_domains,
                        ),
                    )]
                } else {
                    assign_steps(uuid, &m.matrix, &want, add)
                };
            }
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
        if live_steps.is_empty() && new_def.is_none() {
            tracing::debug!(uuid = %uuid, "nothing to change");
            return Ok(());
        }

        let done = live_steps.clone();
        let touched = txn::stale(&done);
        if let Err(f) = self.run_steps(live_steps).await? {
            let err = Error::new(f.kind(), format!("cannot {action}: {}", f.describe()));
            self.refresh(touched, Vec::new()).await;
            return Err(err);
        }
        if let Some(nd) = new_def {
            let saved = nd.clone();
            if let Err(e) = self.store_job(move |st| st.save(&saved)).await {
                // The definition stays as it was, so the live change goes too.
                let undo_errors = self.undo_steps(done).await.unwrap_or_default();
                let mut msg = format!("cannot {action}: {}", e.sentence());
                if !undo_errors.is_empty() {
                    msg.push_str(
                        "; undoing the live change failed as well, check with `apctl show`",
                    );
                }
                self.refresh(touched, Vec::new()).await;
                return Err(Error::Failed(msg));
            }
            self.state().defs.insert(uuid, nd);
        }
        tracing::info!(uuid = %uuid, add, live, persistent, "assignment changed");
        self.refresh(touched, Vec::new()).await;
        Ok(())
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
        self.change_masks(&host, &names, new_ap, new_aq).await?;
        if persistent {
            let (a, q) = (new_ap, new_aq);
            if let Err(e) = self
                .store_job(move |st| st.save_masks(Some(a), Some(q)))
                .await
            {
                // Refused as a whole: put the live masks back.
                let back = mask_steps(new_ap, new_aq, host.apmask, host.aqmask);
                let _ = self.run_steps(back).await;
                self.refresh(Stale::masks(), Vec::new()).await;
                return Err(Error::Failed(format!(
                    "cannot store the persistent masks: {}; the live masks were put back",
                    e.sentence()
                )));
            }
            let mut s = self.state();
            s.persistent_masks = (Some(new_ap), Some(new_aq));
            s.mask_failure = None;
        }
        self.refresh(Stale::masks(), Vec::new()).await;
        Ok((new_ap.to_string(), new_aq.to_string()))
    }

    /// Validates and writes new masks; the caller holds the writer and
    /// re-reads the masks afterwards.
    pub async fn change_masks(
        &self,
        host: &Host,
        names: &BTreeMap<Uuid, String>,
        new_ap: ApMask,
        new_aq: ApMask,
    ) -> Result<(), Error> {
        let lookup = |u: Uuid| names.get(&u).cloned();
        check_mask_change_named(host, &lookup, new_ap, new_aq)
            .map_err(|f| convert::refused(&f, f.message.clone()))?;
        let steps = mask_steps(host.apmask, host.aqmask, new_ap, new_aq);
        if steps.is_empty() {
            return Ok(());
        }
        match self.run_steps(steps).await? {
            Ok(_) => {
                tracing::info!(apmask = %new_ap, aqmask = %new_aq, "masks changed");
                Ok(())
            }
            Err(failure) => {
                if let Ok(now) = self.sync(Stale::masks().and(Stale::all_mdevs())).await {
                    if let Err(f) = check_mask_change_named(&now, &lookup, new_ap, new_aq) {
                        return Err(convert::refused(&f, f.message.clone()));
                    }
                }
                Err(Error::new(
                    failure.kind(),
                    format!("cannot change the masks: {}", failure.describe()),
                ))
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
        let Some(card) = host.cards.get(&id) else {
            return Err(Error::NotFound(format!(
                "cannot configure adapter {id} {state}: the host has no card {:02x} (it is not in the LPAR's configuration, or older than CEX4)",
                id
            )));
        };
        if card.config == on {
            return Ok(());
        }
        let step = Step::new(
            Target::CardConfig,
            format!("{}/config", paths::card(id)),
            if on { "1" } else { "0" },
            format!("configure adapter {id} {state}"),
        );
        let touched = txn::stale(std::slice::from_ref(&step));
        let result = match self.run_steps(vec![step]).await? {
            Ok(_) => {
                tracing::info!(adapter = id, on, "adapter configured");
                Ok(())
            }
            Err(f) => Err(Error::new(
                f.kind(),
                format!("cannot configure adapter {id} {state}: {}", f.describe()),
            )),
        };
        self.refresh(touched, Vec::new()).await;
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
        out.extend(
            libap::coexist::defined_twice(self.store(), &defs)
                .iter()
                .map(convert::defined_twice),
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
        let saving = to_save.clone();
        self.store_job(move |st| {
            for (i, d) in saving.iter().enumerate() {
                if let Err(e) = st.save(d) {
                    for done in &saving[..i] {
                        let _ = st.remove(done.uuid);
                    }
                    return Err(e);
                }
            }
            Ok(())
        })
        .await?;
        {
            let mut s = self.state();
            for d in to_save {
                s.defs.insert(d.uuid, d);
            }
        }
        tracing::info!(count = uuids.len(), "definitions imported");
        self.publish(Vec::new()).await;
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
    use proptest::prelude::*;

    fn owned(ap: ApMask, aq: ApMask) -> std::collections::BTreeSet<(u8, u8)> {
        let mut s = std::collections::BTreeSet::new();
        for a in ap.iter() {
            for d in aq.iter() {
                s.insert((a, d));
            }
        }
        s
    }

    fn small_mask() -> impl Strategy<Value = ApMask> {
        proptest::collection::vec(0u8..6, 0..6).prop_map(ApMask::from_ids)
    }

    proptest! {
        /// Every intermediate state of the mask writes gives the host only
        /// APQNs the old or the new masks give it, and the last state is
        /// the new one.
        #[test]
        fn mask_steps_never_take_more_than_old_or_new(
            old_ap in small_mask(), old_aq in small_mask(),
            new_ap in small_mask(), new_aq in small_mask(),
        ) {
            let steps = mask_steps(old_ap, old_aq, new_ap, new_aq);
            let allowed: std::collections::BTreeSet<_> =
                owned(old_ap, old_aq).union(&owned(new_ap, new_aq)).copied().collect();
            let (mut ap, mut aq) = (old_ap, old_aq);
            for s in &steps {
                let v = ApMask::parse_absolute(&s.data).expect("absolute mask");
                let (undo_path, undo_data) = s.undo.clone().expect("every mask write has an undo");
                prop_assert_eq!(&undo_path, &s.path);
                if s.path == paths::APMASK {
                    prop_assert_eq!(ApMask::parse_absolute(&undo_data).expect("undo"), ap);
                    ap = v;
                } else {
                    prop_assert_eq!(ApMask::parse_absolute(&undo_data).expect("undo"), aq);
                    aq = v;
                }
                prop_assert!(owned(ap, aq).is_subset(&allowed));
            }
            prop_assert_eq!((ap, aq), (new_ap, new_aq));
            prop_assert!(steps.len() <= 3);
        }
    }

    #[test]
    fn unchanged_masks_write_nothing() {
        let m = ApMask::full();
        assert!(mask_steps(m, m, m, m).is_empty());
    }

    #[test]
    fn clearing_comes_before_setting() {
        // apmask sets 6, aqmask clears 4: the aqmask write goes first.
        let old_ap = ApMask::from_ids([1, 2]);
        let new_ap = ApMask::from_ids([1, 2, 6]);
        let old_aq = ApMask::from_ids([4, 5]);
        let new_aq = ApMask::from_ids([5]);
        let steps = mask_steps(old_ap, old_aq, new_ap, new_aq);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].path, paths::AQMASK);
        assert_eq!(steps[1].path, paths::APMASK);
    }

    #[test]
    fn start_steps_prefer_ap_config() {
        let mut host = Host::default();
        let mut def = Definition::new(Uuid::nil());
        def.adapters = ApMask::from_ids([5]);
        def.domains = ApMask::from_ids([4, 0x47]);
        let steps = start_steps(&host, &def);
        assert_eq!(steps[0].target, Target::Create);
        assert_eq!(
            steps[0].undo,
            Some((paths::mdev_attr(&Uuid::nil(), "remove"), "1".to_string()))
        );
        let kinds: Vec<&str> = steps[1..]
            .iter()
            .map(|s| s.path.rsplit('/').next().unwrap_or(""))
            .collect();
        assert_eq!(
            kinds,
            vec!["assign_adapter", "assign_domain", "assign_domain"]
        );
        assert_eq!(steps[3].data, "71");
        host.features = Some(libap::host::Features::parse(
            "guest_matrix hotplug ap_config",
        ));
        let steps = start_steps(&host, &def);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1].target, Target::ApConfig);
        // An empty definition only creates.
        assert_eq!(start_steps(&host, &Definition::new(Uuid::nil())).len(), 1);
    }

    #[test]
    fn assign_steps_skip_what_is_there_and_undo_with_the_opposite() {
        let u = Uuid::nil();
        let cur = Matrix::new(ApMask::from_ids([5]), ApMask::empty(), ApMask::empty());
        let want = Matrix::new(
            ApMask::from_ids([5, 6]),
            ApMask::from_ids([4]),
            ApMask::empty(),
        );
        let steps = assign_steps(u, &cur, &want, true);
        assert_eq!(steps.len(), 2);
        assert!(steps[0].path.ends_with("/assign_adapter"));
        assert_eq!(steps[0].data, "6");
        assert!(steps[0]
            .undo
            .as_ref()
            .is_some_and(|(p, _)| p.ends_with("/unassign_adapter")));
        let steps = assign_steps(u, &cur, &want, false);
        assert_eq!(steps.len(), 1);
        assert!(steps[0].path.ends_with("/unassign_adapter"));
        assert_eq!(steps[0].data, "5");
    }

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
