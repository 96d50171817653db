//! Refusals of whole actions, whoever asks: a start without vfio_ap, a
//! stop of an mdev a guest uses, ids out of range.

use uuid::Uuid;

use super::{finding, AssignKind, Finding, FindingKind, Severity};
use crate::definition::label;
use crate::host::Host;
use crate::mask::ApMask;

/// Who asks for a start or a stop: one of apd's commands, or a plan of
/// `apply` (whose remedy names the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// `Start`/`Stop` (apctl start/stop, the boot restore).
    Command,
    /// A step of an `apply` plan.
    Apply,
}

/// A refusal of a whole action, its sentence in both `message` and
/// `reason`.
fn refusal(kind: FindingKind, uuid: Uuid, name: Option<&str>, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        kind,
        apqns: Vec::new(),
        mdevs: vec![(uuid, name.map(str::to_string))],
        reason: message.clone(),
        message,
        remedy: None,
    }
}

/// Whether an mdev can be created: the vfio_ap module must be loaded (no
/// matrix device, no mdev type; kernel spec §4).
pub fn check_vfio_ap(
    host: &Host,
    uuid: Uuid,
    name: Option<&str>,
    asker: Asker,
) -> Result<(), Finding> {
    if host.vfio_ap_loaded {
        return Ok(());
    }
    let remedy = match asker {
        Asker::Command => "load it with `modprobe vfio_ap`",
        Asker::Apply => "load it with `modprobe vfio_ap` or make the mdev manual",
    };
    let who = match (asker, name) {
        // apd's commands name an mdev by its name alone, else its UUID.
        (Asker::Command, Some(n)) => n.to_string(),
        (Asker::Command, None) => uuid.hyphenated().to_string(),
        (Asker::Apply, _) => label(uuid, name),
    };
    Err(refusal(
        FindingKind::VfioApNotLoaded,
        uuid,
        name,
        format!(
            "cannot start {who}: the vfio_ap module is not loaded (no {}); {remedy}",
            crate::host::paths::MATRIX
        ),
    ))
}

/// Whether an mdev can be removed now: while a guest uses it the kernel's
/// remove waits until the guest lets go (kernel spec §4).
pub fn check_remove(
    host: &Host,
    uuid: Uuid,
    name: Option<&str>,
    asker: Asker,
) -> Result<(), Finding> {
    if !host.mdevs.get(&uuid).is_some_and(|m| m.in_use) {
        return Ok(());
    }
    let message = match (asker, name) {
        (Asker::Command, n) => format!(
            "cannot stop {}: a running guest uses it; shut the guest down or detach the mdev first",
            n.map_or_else(|| uuid.hyphenated().to_string(), str::to_string)
        ),
        (Asker::Apply, n) => format!(
            "cannot stop {}: a guest is using it (removing it would wait until the guest lets go); shut the guest down first, or name the mdev in the file",
            label(uuid, n)
        ),
    };
    Err(refusal(FindingKind::InUse, uuid, name, message))
}

/// Ids of one kind given as numbers (on the bus, in a file) as a mask:
/// each must be at most `max`, the host's highest id of that kind (kernel
/// spec §5: the kernel refuses a higher one with ENODEV). The refusal
/// names the first id out of range and the maximum.
pub fn ids_within(ids: &[u32], kind: AssignKind, max: u8, action: &str) -> Result<ApMask, Finding> {
    let mut m = ApMask::empty();
    for &id in ids {
        match u8::try_from(id) {
            Ok(v) if v <= max => {
                m.insert(v);
            }
            _ => {
                let what = match kind {
                    AssignKind::Adapter => {
                        format!("the host's highest adapter id is {max} (ap_max_adapter_id)")
                    }
                    _ => format!("the host's highest domain id is 0x{max:02x} (ap_max_domain_id)"),
                };
                let named = match kind {
                    AssignKind::Adapter => format!("adapter {id}"),
                    AssignKind::Domain => format!("domain 0x{id:02x}"),
                    AssignKind::ControlDomain => format!("control domain 0x{id:02x}"),
                };
                return Err(finding(
                    Severity::Error,
                    FindingKind::OutOfRange,
                    Vec::new(),
                    Vec::new(),
                    action,
                    format!("{named} is out of range; {what}"),
                ));
            }
        }
    }
    Ok(m)
}
