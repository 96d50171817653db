//! status, masks, queues, config.

use super::{Ctx, Outcome};
use crate::args;
use crate::bus::Apd;
use crate::cli::{ConfigArgs, MasksArgs, OnOff, QueuesArgs};
use crate::error::CliError;
use crate::output;
use crate::render::{self, json};
use apbus::proxy::HostProxy;
use apbus::QueueInfoRef;
use libap::{ApMask, Apqn};
use zbus::proxy::CacheProperties;

/// `status`: exit 0 whenever apd answers, whatever it reports.
pub async fn status(ctx: &Ctx) -> Result<Outcome, CliError> {
    let apd = ctx.connect().await?;
    let s = apd.manager.get_status().await.map_err(|e| apd.error(e))?;
    // apd's check holds the warnings status repeats: mdevs that mdevctl
    // defines too. Status reports what it can even when check fails.
    let warnings: Vec<String> = apd
        .manager
        .check()
        .await
        .map(|findings| {
            findings
                .into_iter()
                .filter(|f| f.kind == DEFINED_BY_MDEVCTL)
                .map(|f| f.message)
                .collect()
        })
        .unwrap_or_default();
    if ctx.json {
        let mut j = json::StatusJson::from(&s);
        j.warnings = warnings;
        return Ok(Outcome::print(render::to_json(&j)));
    }
    Ok(Outcome::print(render::host::status(
        &s, &warnings, ctx.style,
    )))
}

/// The kind of apd's check finding for an mdev mdevctl defines too.
const DEFINED_BY_MDEVCTL: &str = "defined-by-mdevctl";

/// The masks as they are now, with what they give to vfio_ap.
async fn current_masks(apd: &Apd) -> Result<json::MasksJson, CliError> {
    let s = apd.manager.get_status().await.map_err(|e| apd.error(e))?;
    let host = HostProxy::builder(&apd.connection)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| apd.error(e.into()))?;
    let max_adapter = host
        .max_adapter_id()
        .await
        .map_err(|e| apd.error(e.into()))?;
    let max_domain = host
        .max_domain_id()
        .await
        .map_err(|e| apd.error(e.into()))?;
    Ok(render::host::masks_json(&s, max_adapter, max_domain))
}

/// chzdev's rule at `file` for `masks --json`: None when there is none.
fn chzdev_json(file: &std::path::Path) -> Option<json::ChzdevJson> {
    let shown = |m: Option<ApMask>| m.map(|m| m.to_string().trim().to_string());
    match libap::chzdev::read_rule(file) {
        Ok(None) => None,
        Ok(Some(m)) => Some(json::ChzdevJson {
            file: file.display().to_string(),
            apmask: shown(m.apmask),
            aqmask: shown(m.aqmask),
            problem: None,
        }),
        Err(problem) => Some(json::ChzdevJson {
            file: file.display().to_string(),
            apmask: None,
            aqmask: None,
            problem: Some(problem),
        }),
    }
}

/// `masks`: show them, or change them as one validated step.
pub async fn masks(ctx: &Ctx, a: &MasksArgs) -> Result<Outcome, CliError> {
    if let Some(spec) = &a.apmask {
        args::check_mask("--apmask", spec)?;
    }
    if let Some(spec) = &a.aqmask {
        args::check_mask("--aqmask", spec)?;
    }
    let apd = ctx.connect().await?;
    if a.apmask.is_some() || a.aqmask.is_some() || a.persistent {
        apd.manager
            .set_masks(
                a.apmask.as_deref().unwrap_or(""),
                a.aqmask.as_deref().unwrap_or(""),
                a.persistent,
            )
            .await
            .map_err(|e| apd.error(e))?;
    }
    let mut m = current_masks(&apd).await?;
    m.chzdev = chzdev_json(&a.chzdev_rule);
    if ctx.json {
        return Ok(Outcome::print(render::to_json(&m)));
    }
    Ok(Outcome::print(render::host::masks(&m, ctx.style)))
}

/// The owner filter of `queues`.
fn owner_matches(q: &QueueInfoRef<'_>, owner: &str) -> bool {
    match owner {
        "host" | "free" => q.owner == owner,
        name_or_uuid => {
            q.owner == "mdev"
                && (q.owner_name == name_or_uuid || q.owner_uuid.eq_ignore_ascii_case(name_or_uuid))
        }
    }
}

/// `queues`, with filters by adapter, domain and owner.
pub async fn queues(ctx: &Ctx, a: &QueuesArgs) -> Result<Outcome, CliError> {
    let adapters: Option<ApMask> = match &a.adapter {
        Some(l) => Some(args::parse_list("adapter list", l)?),
        None => None,
    };
    let domains: Option<ApMask> = match &a.domain {
        Some(l) => Some(args::parse_list("domain list", l)?),
        None => None,
    };
    if let Some(o) = &a.owner {
        args::check_mdev(o).map_err(|_| {
            CliError::usage("--owner is empty: give host, free, or an mdev's name or UUID")
        })?;
    }
    let apd = ctx.connect().await?;
    // Read in place: each queue borrows its strings from apd's reply.
    let reply = apd
        .manager
        .inner()
        .call_method("ListQueues", &())
        .await
        .map_err(|e| apd.error(e.into()))?;
    let body = reply.body();
    let mut queues: Vec<QueueInfoRef<'_>> = body.deserialize().map_err(|e| apd.error(e.into()))?;
    queues.retain(|q| {
        let apqn = q.apqn.parse::<Apqn>().ok();
        let in_adapters = adapters
            .as_ref()
            .is_none_or(|m| apqn.is_some_and(|p| m.contains(p.adapter)));
        let in_domains = domains
            .as_ref()
            .is_none_or(|m| apqn.is_some_and(|p| m.contains(p.domain)));
        let owned = a.owner.as_deref().is_none_or(|o| owner_matches(q, o));
        in_adapters && in_domains && owned
    });
    // apd sends APQNs ascending, though design.md does not promise it:
    // sort only when they are not.
    if !queues.is_sorted_by(|x, y| x.apqn <= y.apqn) {
        queues.sort_by(|x, y| x.apqn.cmp(y.apqn));
    }
    // 65,536 rows are written as they are made, never held as one String;
    // a closed stdout (| head) ends apctl quietly, as for every command.
    output::stream(|out| {
        if ctx.json {
            render::write_json(
                out,
                &json::ArrayOf(queues.iter().map(json::QueueJson::from)),
            )
        } else {
            render::host::write_queues(out, queues.iter(), ctx.style)
        }
    });
    Ok(Outcome::quiet())
}

/// `config ADAPTER on|off`.
pub async fn config(ctx: &Ctx, a: &ConfigArgs) -> Result<Outcome, CliError> {
    let adapter = args::parse_adapter(&a.adapter)?;
    let apd = ctx.connect().await?;
    apd.manager
        .configure_adapter(adapter, a.state == OnOff::On)
        .await
        .map_err(|e| apd.error(e))?;
    Ok(Outcome::quiet())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_filter() {
        let q = QueueInfoRef {
            apqn: "05.0004",
            owner: "mdev",
            owner_uuid: "62177883-f1bb-47f0-914d-32a22e3a8804",
            owner_name: "guest1",
            ..Default::default()
        };
        assert!(owner_matches(&q, "guest1"));
        assert!(owner_matches(&q, "62177883-F1BB-47F0-914D-32A22E3A8804"));
        assert!(!owner_matches(&q, "host"));
        assert!(!owner_matches(&q, "guest2"));
        let h = QueueInfoRef {
            owner: "host",
            ..Default::default()
        };
        assert!(owner_matches(&h, "host"));
        assert!(!owner_matches(&h, "free"));
    }
}
