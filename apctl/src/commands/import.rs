//! `import-mdevctl [DIR] [--remove-source]`: adopt mdevctl's vfio_ap
//! definitions file by file. A file that does not parse, or that apd
//! refuses, is skipped and named with its reason; every other file is
//! imported. Importing again changes nothing (apd accepts a definition it
//! already holds exactly so).

use super::{Ctx, Outcome};
use crate::bus::{plain, Apd};
use crate::cli::ImportArgs;
use crate::convert;
use crate::error::CliError;
use crate::render;
use apbus::ErrorKind;
use libap::mdevctl::SourceFile;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A file left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Skipped {
    file: PathBuf,
    reason: String,
}

/// `import-mdevctl --json`.
#[derive(Debug, Serialize)]
struct ImportJson {
    /// Imported (or already defined exactly so), ascending.
    uuids: Vec<String>,
    /// The files left out, in file name order.
    skipped: Vec<Skipped>,
}

/// Errors apd gives for one definition (the file's fault, or a conflict
/// with what is defined), as opposed to the bus or authorization failing.
fn refuses_definition(e: &apbus::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Exists
            | ErrorKind::Conflict
            | ErrorKind::Invalid
            | ErrorKind::InUse
            | ErrorKind::HostOwned
            | ErrorKind::OutOfRange
    )
}

/// Imports `files` into apd: all at once when apd accepts them together,
/// else one by one so that each refusal names its file.
async fn adopt(apd: &Apd, files: &[SourceFile]) -> Result<(Vec<String>, Vec<Skipped>), CliError> {
    let defs: Vec<apbus::Definition> = files
        .iter()
        .map(|f| convert::definition_to_bus(&f.definition))
        .collect();
    match apd.manager.import(&defs).await {
        Ok(uuids) => return Ok((uuids, Vec::new())),
        Err(e) if refuses_definition(&e) => {}
        Err(e) => return Err(apd.error(e)),
    }
    let mut uuids = Vec::new();
    let mut skipped = Vec::new();
    for (file, def) in files.iter().zip(&defs) {
        match apd.manager.import(std::slice::from_ref(def)).await {
            Ok(u) => uuids.extend(u),
            Err(e) => skipped.push(Skipped {
                file: file.path.clone(),
                reason: format!("apd refused it: {}", apd.error(e).sentence),
            }),
        }
    }
    Ok((uuids, skipped))
}

/// Removes the files of the imported definitions; a file that cannot be
/// removed is a note (the definition is imported all the same).
fn remove_sources(files: &[SourceFile], uuids: &[String], notes: &mut Vec<String>) -> bool {
    let mut all = true;
    for f in files {
        if !uuids.contains(&f.definition.uuid.hyphenated().to_string()) {
            continue;
        }
        if let Err(e) = std::fs::remove_file(&f.path) {
            all = false;
            notes.push(format!(
                "imported {} but cannot remove {}: {}; remove it yourself so mdevctl does not restore it too",
                f.definition.uuid.hyphenated(),
                f.path.display(),
                plain(&e.to_string())
            ));
        }
    }
    all
}

fn shown_file(dir: &Path, file: &Path) -> String {
    if file == dir {
        dir.display().to_string()
    } else {
        file.display().to_string()
    }
}

/// `import-mdevctl [DIR] [--remove-source]`.
pub async fn import_mdevctl(ctx: &Ctx, a: &ImportArgs) -> Result<Outcome, CliError> {
    let (files, errors) = libap::mdevctl::read_dir(&a.dir);
    if let Some(unreadable) = errors.iter().find(|e| e.path() == Some(a.dir.as_path())) {
        return Err(CliError::failed(format!(
            "nothing imported: {}; name mdevctl's directory of vfio_ap definitions (default {})",
            plain(&unreadable.to_string()),
            crate::cli::MDEVCTL_DIR
        )));
    }
    let mut skipped: Vec<Skipped> = errors
        .iter()
        .map(|e| Skipped {
            file: e.path().unwrap_or(&a.dir).to_path_buf(),
            reason: plain(&e.reason()),
        })
        .collect();
    if files.is_empty() && skipped.is_empty() {
        if ctx.json {
            return Ok(Outcome::print(render::to_json(&ImportJson {
                uuids: Vec::new(),
                skipped: Vec::new(),
            })));
        }
        return Ok(Outcome::print(format!(
            "Nothing to import: {} holds no mdevctl definitions.\n",
            a.dir.display()
        )));
    }
    let mut uuids = Vec::new();
    if !files.is_empty() {
        let apd = ctx.connect().await?;
        let (imported, refused) = adopt(&apd, &files).await?;
        uuids = imported;
        skipped.extend(refused);
    }
    uuids.sort();
    uuids.dedup();
    skipped.sort_by(|x, y| x.file.cmp(&y.file));
    let mut notes: Vec<String> = skipped
        .iter()
        .map(|s| format!("skipped {}: {}", shown_file(&a.dir, &s.file), s.reason))
        .collect();
    let mut code = 0;
    if !skipped.is_empty() {
        code = 1;
        notes.push(format!(
            "imported {} of {} mdevctl definitions from {}; fix or remove the {} skipped file{} and import again (what is imported stays as it is)",
            uuids.len(),
            files.len() + errors.len(),
            a.dir.display(),
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" }
        ));
    }
    if a.remove_source && !remove_sources(&files, &uuids, &mut notes) {
        code = 1;
    }
    let stdout = if ctx.json {
        render::to_json(&ImportJson {
            uuids,
            skipped: skipped.clone(),
        })
    } else {
        uuids.iter().map(|u| format!("{u}\n")).collect()
    };
    Ok(Outcome {
        stdout,
        code,
        notes,
    })
}
