//! check, apply, export: whole states and files. Files are
//! read and parsed here (libap's formats), so a bad file is refused before
//! anything is sent.

use super::{Ctx, Outcome};
use crate::cli::{ApplyArgs, CheckArgs, ExportArgs, ExportFormat};
use crate::convert;
use crate::error::CliError;
use crate::render::{self, json};
use libap::desired::DesiredState;
use serde::Serialize;
use std::io::Read;
use std::path::Path;

/// Largest desired-state file read (a host has at most a few thousand mdevs).
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// How a FILE argument is named in sentences.
fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        "standard input".to_string()
    } else {
        path.display().to_string()
    }
}

/// Reads FILE (`-` for standard input), at most [`MAX_FILE`] bytes.
fn read_file(path: &Path) -> Result<String, CliError> {
    let fail = |e: std::io::Error| CliError::failed(format!("cannot read {}: {e}", shown(path)));
    let mut text = String::new();
    let n = if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(fail)?
    } else {
        std::fs::File::open(path)
            .map_err(fail)?
            .take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(fail)?
    };
    if n as u64 > MAX_FILE {
        return Err(CliError::failed(format!(
            "{} is larger than {} MiB; a desired-state file is much smaller",
            shown(path),
            MAX_FILE / 1024 / 1024
        )));
    }
    Ok(text)
}

/// Reads and parses a desired-state file.
fn desired_state(path: &Path) -> Result<apbus::DesiredState, CliError> {
    let text = read_file(path)?;
    let state = DesiredState::from_toml(&text).map_err(|e| {
        CliError::failed(format!(
            "{} is not a valid desired-state file: {}",
            shown(path),
            crate::bus::plain(&e.to_string())
        ))
    })?;
    Ok(convert::state_to_bus(&state))
}

/// `check [FILE]`: exit 1 when any finding is an error.
pub async fn check(ctx: &Ctx, a: &CheckArgs) -> Result<Outcome, CliError> {
    let state = a.file.as_deref().map(desired_state).transpose()?;
    let apd = ctx.connect().await?;
    let findings = match &state {
        Some(s) => apd.manager.check_state(s).await,
        None => apd.manager.check().await,
    }
    .map_err(|e| apd.error(e))?;
    let code = u8::from(findings.iter().any(render::state::is_error));
    let stdout = if ctx.json {
        let mut sorted: Vec<&apbus::Finding> = findings.iter().collect();
        sorted.sort_by_key(|f| !render::state::is_error(f));
        render::to_json(&json::CheckJson {
            findings: sorted.into_iter().map(json::FindingJson::from).collect(),
        })
    } else {
        let what = match &a.file {
            Some(f) => shown(f),
            None => "the stored definitions".to_string(),
        };
        render::state::findings(&findings, &what, ctx.style)
    };
    Ok(Outcome {
        stdout,
        code,
        notes: Vec::new(),
    })
}

/// `apply FILE [--dry-run] [--prune]`: prints the plan (run or to run).
pub async fn apply(ctx: &Ctx, a: &ApplyArgs) -> Result<Outcome, CliError> {
    let state = desired_state(&a.file)?;
    let apd = ctx.connect().await?;
    let steps = if a.dry_run {
        apd.manager.plan(&state, a.prune).await
    } else {
        apd.manager.apply(&state, a.prune).await
    }
    .map_err(|e| apd.error(e))?;
    if ctx.json {
        return Ok(Outcome::print(render::to_json(&json::PlanJson {
            steps: steps.iter().map(json::StepJson::from).collect(),
        })));
    }
    Ok(Outcome::print(render::state::plan(
        &steps,
        !a.dry_run,
        &shown(&a.file),
        ctx.style,
    )))
}

/// The JSON form of the exported state.
#[derive(Debug, Serialize)]
struct ExportJson {
    masks: Option<MasksJson>,
    mdevs: Vec<DefinitionJson>,
}

#[derive(Debug, Serialize)]
struct MasksJson {
    apmask: Option<String>,
    aqmask: Option<String>,
}

#[derive(Debug, Serialize)]
struct DefinitionJson {
    uuid: String,
    name: Option<String>,
    autostart: bool,
    adapters: Vec<u32>,
    domains: Vec<u32>,
    control_domains: Vec<u32>,
}

fn export_json(s: &apbus::DesiredState) -> ExportJson {
    let opt = |m: &str| {
        let m = m.trim();
        (!m.is_empty()).then(|| m.to_string())
    };
    ExportJson {
        masks: s.has_masks.then(|| MasksJson {
            apmask: opt(&s.apmask),
            aqmask: opt(&s.aqmask),
        }),
        mdevs: s
            .mdevs
            .iter()
            .map(|d| {
                let ids = json::IdListsJson::from(&d.ids);
                DefinitionJson {
                    uuid: d.uuid.clone(),
                    name: opt(&d.name),
                    autostart: d.autostart,
                    adapters: ids.adapters,
                    domains: ids.domains,
                    control_domains: ids.control_domains,
                }
            })
            .collect(),
    }
}

/// `export [--format toml|mdevctl] [DIR]`.
pub async fn export(ctx: &Ctx, a: &ExportArgs) -> Result<Outcome, CliError> {
    match (a.format, &a.dir) {
        (ExportFormat::Toml, Some(_)) => {
            return Err(CliError::usage(
                "DIR is only for --format mdevctl; --format toml prints to standard output (apctl export > host.toml)",
            ))
        }
        (ExportFormat::Mdevctl, None) => {
            return Err(CliError::usage(
                "--format mdevctl needs DIR, the directory to write the <uuid> files into (e.g. /etc/mdevctl.d/matrix)",
            ))
        }
        _ => {}
    }
    let apd = ctx.connect().await?;
    let state = apd.manager.export().await.map_err(|e| apd.error(e))?;
    let Some(dir) = &a.dir else {
        if ctx.json {
            return Ok(Outcome::print(render::to_json(&export_json(&state))));
        }
        return Ok(Outcome::print(convert::state_from_bus(&state)?.to_toml()));
    };
    let defs = state
        .mdevs
        .iter()
        .map(convert::definition_from_bus)
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    libap::mdevctl::export_dir(dir, &defs)
        .map_err(|e| CliError::failed(crate::bus::plain(&e.to_string())))?;
    let uuids: Vec<String> = defs
        .iter()
        .map(|d| d.uuid.hyphenated().to_string())
        .collect();
    if ctx.json {
        return Ok(Outcome::print(render::to_json(&json::UuidsJson { uuids })));
    }
    Ok(Outcome::print(
        uuids
            .iter()
            .map(|u| format!("{}\n", dir.join(u).display()))
            .collect::<String>(),
    ))
}
