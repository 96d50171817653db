//! Definitions: `Define`, `Undefine`, `Import`, `Check`, and the bus form
//! of a definition.

use std::collections::BTreeMap;

use apbus::Error;
use libap::plan::Step;
use libap::resync::Stale;
use libap::validate::{check_definitions, Finding, FindingKind, Severity};
use libap::{Definition, Host};
use uuid::Uuid;

use super::store_failed;
use crate::convert::{self, matrix_from_ids};
use crate::engine::Engine;
use crate::remedy;

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
pub(super) fn definition_refusal(
    host: &Host,
    defs: &[Definition],
    uuids: &[Uuid],
    action: &str,
) -> Option<Error> {
    check_definitions(Some(host), defs)
        .into_iter()
        .find(|f| blocks_definition(f) && f.mdevs.iter().any(|(u, _)| uuids.contains(u)))
        .map(|f| convert::refused(&f, format!("cannot {action}: {}", remedy::reason(&f))))
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

impl Engine {
    /// `Define`.
    pub async fn define(&self, d: apbus::Definition) -> Result<String, Error> {
        let w = self.change().await?;
        let host = self.sync(Stale::before_change()).await?;
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
        if let Err(e) = self
            .execute(w.held(), vec![Step::Define(def.clone())])
            .await?
        {
            return Err(Error::Failed(store_failed(&e)));
        }
        tracing::info!(uuid = %def.uuid, name = def.name.as_deref().unwrap_or(""), "defined");
        self.state().defs_mut().insert(def.uuid, def.clone());
        self.publish().await;
        Ok(def.uuid.hyphenated().to_string())
    }

    /// `Undefine`.
    pub async fn undefine(&self, arg: &str) -> Result<(), Error> {
        let w = self.change().await?;
        self.sync(Stale::before_change()).await?;
        let uuid = self.state().resolve(arg)?;
        let label = self.state().label(uuid);
        let Some(def) = self.state().defs.get(&uuid).cloned() else {
            return Err(Error::NotFound(format!(
                "cannot undefine {label}: it has no definition (it was created by another tool)"
            )));
        };
        if let Err(e) = self.execute(w.held(), vec![Step::Undefine(def)]).await? {
            return Err(Error::Failed(store_failed(&e)));
        }
        {
            let mut s = self.state();
            s.defs_mut().remove(&uuid);
            s.start_failures.remove(&uuid);
        }
        tracing::info!(uuid = %uuid, "undefined");
        self.publish().await;
        Ok(())
    }

    /// `Check`: load errors, then libap's verdicts on the definitions.
    pub async fn check(&self) -> Result<Vec<apbus::Finding>, Error> {
        let host = self.peek_host(Stale::unannounced()).await?;
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
        let w = self.change().await?;
        let host = self.sync(Stale::before_change()).await?;
        let mut new = Vec::new();
        for d in &defs {
            new.push(definition_from_bus(d, &host)?);
        }
        let mut to_save = Vec::new();
        let all = {
            let s = self.state();
            let mut all: BTreeMap<Uuid, Definition> = (*s.defs).clone();
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
        if let Err(e) = self.execute(w.held(), steps).await? {
            return Err(Error::Failed(store_failed(&e)));
        }
        {
            let mut s = self.state();
            for d in to_save {
                s.defs_mut().insert(d.uuid, d);
            }
        }
        tracing::info!(count = uuids.len(), "definitions imported");
        self.publish().await;
        Ok(new
            .iter()
            .map(|d| d.uuid.hyphenated().to_string())
            .collect())
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
    use apbus::IdLists;

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
