//! The host: `SetMasks` (and the persistent masks at boot) and
//! `ConfigureAdapter`.

use std::sync::Arc;

use apbus::Error;
use libap::apply::Outcome;
use libap::plan::Step;
use libap::resync::Stale;
use libap::validate::check_mask_change_named;
use libap::{ApMask, Host};
use uuid::Uuid;

use super::{kernel_refusal, name_map, store_failed, NameMap};
use crate::convert::{self, mask_from_ids, IdKind};
use crate::engine::{touched, Engine};
use crate::lock::LockGuard;
use crate::remedy;

/// Mask strings longer than this are refused unread (the kernel takes at
/// most a page).
const MAX_MASK_INPUT: usize = 4096;

impl Engine {
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
        let w = self.change().await?;
        let host = self.sync(Stale::before_change()).await?;
        let names = name_map(&self.state());
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
            .change_masks(w.held(), host, &names, new_ap, new_aq, store)
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
        held: &LockGuard,
        host: Arc<Host>,
        names: &NameMap,
        new_ap: ApMask,
        new_aq: ApMask,
        store: Option<(Option<ApMask>, Option<ApMask>)>,
    ) -> Result<(), Error> {
        let lookup = |u: Uuid| names.get(&u);
        let host = self
            .check_fresh(host, Stale::none(), |h| {
                check_mask_change_named(h, &lookup, new_ap, new_aq)
            })
            .await?
            .map_err(|f| convert::refused(&f, remedy::message(&f)))?;
        let mut steps = libap::plan::masks(host.apmask, host.aqmask, new_ap, new_aq);
        if let Some((apmask, aqmask)) = store {
            steps.push(Step::StoreMasks { apmask, aqmask });
        }
        match self.execute(held, steps).await? {
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
                        return Err(convert::refused(&f, remedy::message(&f)));
                    }
                }
                Err(kernel_refusal("change the masks", &failure))
            }
        }
    }

    /// `ConfigureAdapter`.
    pub async fn configure_adapter(&self, adapter: u32, on: bool) -> Result<(), Error> {
        let w = self.change().await?;
        let host = self.sync(Stale::before_change()).await?;
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
        let result = match self.execute(w.held(), steps).await? {
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
}
