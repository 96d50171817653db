//! `matrix`: one picture of who owns every queue of the LPAR, built from
//! the answers apd already gives `queues`, `list` and `show`.

use super::{Ctx, Outcome};
use crate::args;
use crate::cli::MatrixArgs;
use crate::error::CliError;
use crate::render::{self, matrix};
use libap::ApMask;
use std::collections::BTreeMap;

/// The union of repeated `-a`/`-d` options; `None` when none was given.
fn limit(what: &str, inputs: &[String]) -> Result<Option<ApMask>, CliError> {
    if inputs.is_empty() {
        return Ok(None);
    }
    let mut all = ApMask::empty();
    for input in inputs {
        all = all.union(args::parse_list(what, input)?);
    }
    Ok(Some(all))
}

/// `matrix [-a LIST] [-d LIST]`.
pub async fn matrix(ctx: &Ctx, a: &MatrixArgs) -> Result<Outcome, CliError> {
    let only_adapters = limit("adapter list", &a.adapters)?;
    let only_domains = limit("domain list", &a.domains)?;
    let apd = ctx.connect().await?;
    let adapters = apd
        .manager
        .list_adapters()
        .await
        .map_err(|e| apd.error(e))?;
    let queues = apd.manager.list_queues().await.map_err(|e| apd.error(e))?;
    let mdevs = apd.manager.list_mdevs().await.map_err(|e| apd.error(e))?;
    // Whether a guest can use its queues is apd's verdict, as in `show`.
    let mut verdicts = BTreeMap::new();
    for m in mdevs.iter().filter(|m| m.active) {
        match apd.manager.get_mdev(&m.uuid).await {
            Ok((_, apqns)) => {
                verdicts.insert(m.uuid.to_ascii_lowercase(), apqns);
            }
            // Removed since ListMdevs: its cells fall back to the queues' state.
            Err(apbus::Error::NotFound(_)) => {}
            Err(e) => return Err(apd.error(e)),
        }
    }
    let grid = matrix::build(&matrix::Inputs {
        adapters: &adapters,
        queues: &queues,
        mdevs: &mdevs,
        verdicts: &verdicts,
        only_adapters: only_adapters.as_ref(),
        only_domains: only_domains.as_ref(),
    });
    if ctx.json {
        return Ok(Outcome::print(render::to_json(&matrix::json(&grid))));
    }
    Ok(Outcome::print(matrix::text(&grid, ctx.style)))
}
