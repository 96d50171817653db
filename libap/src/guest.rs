//! The guest matrix: what a guest actually gets from an mdev (kernel spec §6).
//!
//! [`guest_matrix`] is the kernel's *full filter*. The kernel runs it after
//! an assign of a new id, an `ap_config` write, a queue of the matrix being
//! bound to vfio_ap, and a scan that added assigned ids; other changes are
//! incremental (an unassign removes only that id, an unbound queue removes
//! its adapter), so the live `guest_matrix` can differ from the full filter
//! (an adapter dropped for a domain that was later unassigned stays out).
//! apd therefore shows the kernel's `guest_matrix` file and uses this
//! function only to predict the outcome of its own writes.

use crate::host::Host;
use crate::mask::ApMask;
use std::borrow::Borrow;

/// The full filter: adapters ∩ host APM, domains ∩ host AQM, then drop an
/// adapter if any queue (adapter, remaining domain) is not bound to vfio_ap
/// (a missing queue is not bound). Domains are never dropped.
pub fn guest_matrix(
    host: &Host,
    adapters: impl Borrow<ApMask>,
    domains: impl Borrow<ApMask>,
) -> (ApMask, ApMask) {
    let mut a = adapters.borrow().intersection(host.config.adapters);
    let d = domains.borrow().intersection(host.config.usage_domains);
    if d.is_empty() {
        return (a, d);
    }
    for adapter in a {
        if !d.is_subset(host.vfio_bound_domains(adapter)) {
            a.remove(adapter);
        }
    }
    (a, d)
}
