//! list, show, define, undefine, start, stop, assign, unassign.

use super::{Ctx, Outcome};
use crate::args;
use crate::cli::{AssignArgs, DefineArgs, ListArgs, ShowArgs};
use crate::error::CliError;
use crate::render::{self, json};
use apbus::{Definition, Scope};

/// `list [--defined|--active]`: one `ListMdevs` call, filtered and sorted here.
pub async fn list(ctx: &Ctx, a: &ListArgs) -> Result<Outcome, CliError> {
    let apd = ctx.connect().await?;
    let mut mdevs = apd.manager.list_mdevs().await.map_err(|e| apd.error(e))?;
    mdevs.retain(|m| (!a.defined || m.defined) && (!a.active || m.active));
    mdevs.sort_by(render::mdevs::list_order);
    if ctx.json {
        let v: Vec<json::MdevJson> = mdevs.iter().map(json::MdevJson::from).collect();
        return Ok(Outcome::print(render::to_json(&v)));
    }
    Ok(Outcome::print(render::mdevs::list(&mdevs, ctx.style)))
}

/// `show MDEV`.
pub async fn show(ctx: &Ctx, a: &ShowArgs) -> Result<Outcome, CliError> {
    args::check_mdev(&a.mdev)?;
    let apd = ctx.connect().await?;
    let (info, apqns) = apd
        .manager
        .get_mdev(&a.mdev)
        .await
        .map_err(|e| apd.error(e))?;
    if a.libvirt {
        let hostdev = render::libvirt::hostdev(&info.uuid);
        if ctx.json {
            return Ok(Outcome::print(render::to_json(&json::HostdevJson {
                uuid: info.uuid.clone(),
                name: (!info.name.is_empty()).then(|| info.name.clone()),
                hostdev,
            })));
        }
        return Ok(Outcome::print(hostdev));
    }
    if ctx.json {
        return Ok(Outcome::print(render::to_json(&json::ShowJson::new(
            &info, &apqns,
        ))));
    }
    Ok(Outcome::print(render::mdevs::show(
        &info, &apqns, ctx.style,
    )))
}

/// `define`: prints the UUID apd stored the definition under.
pub async fn define(ctx: &Ctx, a: &DefineArgs) -> Result<Outcome, CliError> {
    let uuid = match &a.uuid {
        Some(u) => args::parse_uuid(u)?,
        None => String::new(),
    };
    if let Some(name) = &a.name {
        args::check_name(name)?;
    }
    let ids = args::parse_id_lists(&a.ids)?;
    let definition = Definition {
        uuid,
        name: a.name.clone().unwrap_or_default(),
        autostart: a.auto,
        ids,
    };
    let apd = ctx.connect().await?;
    let uuid = apd
        .manager
        .define(&definition)
        .await
        .map_err(|e| apd.error(e))?;
    if ctx.json {
        return Ok(Outcome::print(render::to_json(&json::UuidJson { uuid })));
    }
    Ok(Outcome::print(format!("{uuid}\n")))
}

/// The commands that take only an MDEV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simple {
    /// `undefine`.
    Undefine,
    /// `start`.
    Start,
    /// `stop`.
    Stop,
}

/// `undefine`, `start`, `stop`: silent on success, like systemctl.
pub async fn simple(ctx: &Ctx, what: Simple, mdev: &str) -> Result<Outcome, CliError> {
    args::check_mdev(mdev)?;
    let apd = ctx.connect().await?;
    let m = &apd.manager;
    let r = match what {
        Simple::Undefine => m.undefine(mdev).await,
        Simple::Start => m.start(mdev).await,
        Simple::Stop => m.stop(mdev).await,
    };
    r.map_err(|e| apd.error(e))?;
    Ok(Outcome::quiet())
}

/// `assign` (add = true) and `unassign`.
pub async fn assign(ctx: &Ctx, a: &AssignArgs, add: bool) -> Result<Outcome, CliError> {
    args::check_mdev(&a.mdev)?;
    let ids = args::parse_id_lists(&a.ids)?;
    if args::is_empty(&ids) {
        let verb = if add { "assign" } else { "unassign" };
        return Err(CliError::usage(format!(
            "nothing to {verb}: give adapters (-a LIST), domains (-d LIST) or control domains (-c LIST)"
        )));
    }
    let scope = match (a.live, a.persistent) {
        (true, _) => Scope::Live,
        (_, true) => Scope::Persistent,
        _ => Scope::Both,
    };
    let apd = ctx.connect().await?;
    let r = if add {
        apd.manager.assign(&a.mdev, &ids, scope.as_str()).await
    } else {
        apd.manager.unassign(&a.mdev, &ids, scope.as_str()).await
    };
    r.map_err(|e| apd.error(e))?;
    Ok(Outcome::quiet())
}

/// `__complete-mdevs`: names and UUIDs for the shell; silent when apd
/// cannot be reached (completion must never print errors into the prompt).
pub async fn complete(ctx: &Ctx, describe: bool) -> Outcome {
    let Ok(apd) = ctx.connect().await else {
        return Outcome::quiet();
    };
    match apd.manager.list_mdevs().await {
        Ok(mut mdevs) => {
            mdevs.sort_by(render::mdevs::list_order);
            Outcome::print(render::mdevs::completion_words(&mdevs, describe))
        }
        Err(_) => Outcome::quiet(),
    }
}
