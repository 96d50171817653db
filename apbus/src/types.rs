//! The structures that travel on the bus. Every field is typed; "none" is
//! the empty string and id lists are ascending `u32` arrays.

use serde::{Deserialize, Serialize};
use zvariant::{OwnedValue, Type, Value};

/// The three id lists of an mdev's matrix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct IdLists {
    /// Adapter ids (APIDs).
    pub adapters: Vec<u32>,
    /// Usage domain ids (APQIs).
    pub domains: Vec<u32>,
    /// Control domain ids.
    pub control_domains: Vec<u32>,
}

/// Which state an assign or unassign changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The live mdev if active and the definition if defined.
    Both,
    /// Only the live mdev (refused when it is not active).
    Live,
    /// Only the definition (refused when there is none).
    Persistent,
}

impl Scope {
    /// The wire form: `""`, `"live"` or `"persistent"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Both => "",
            Scope::Live => "live",
            Scope::Persistent => "persistent",
        }
    }

    /// Parses the wire form; `None` for anything else.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "" | "both" => Some(Scope::Both),
            "live" => Some(Scope::Live),
            "persistent" => Some(Scope::Persistent),
            _ => None,
        }
    }
}

/// A definition as sent to `Define`, `Import` and inside a [`DesiredState`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Definition {
    /// UUID; empty asks apd to generate one (Define) or to match by name (apply).
    pub uuid: String,
    /// Name; empty for none.
    pub name: String,
    /// Started at boot and by `apply`.
    pub autostart: bool,
    /// The matrix.
    pub ids: IdLists,
}

/// One mdev as `apctl list` shows it: ours (defined) or another tool's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct MdevInfo {
    /// Lowercase UUID.
    pub uuid: String,
    /// Name from the definition; empty for none.
    pub name: String,
    /// A definition is stored.
    pub defined: bool,
    /// The mdev exists in sysfs.
    pub active: bool,
    /// The definition starts at boot.
    pub autostart: bool,
    /// Live assignment when active, else the definition.
    pub ids: IdLists,
    /// The kernel's `guest_matrix`, as `"05.0004"` strings; empty when not active.
    pub guest_matrix: Vec<String>,
    /// Active, defined, and the live assignment differs from the definition.
    pub differs: bool,
    /// The definition's lists (meaningful when `defined`).
    pub persistent: IdLists,
    /// Why the last automatic start failed; empty when none failed.
    pub start_error: String,
}

/// One APQN of an mdev's matrix, for `apctl show`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ApqnInfo {
    /// `"05.0004"`.
    pub apqn: String,
    /// In the kernel's `guest_matrix`.
    pub in_guest_matrix: bool,
    /// In the guest matrix, adapter configured and not check-stopped.
    pub usable: bool,
    /// One sentence why the guest cannot use it; empty when usable.
    pub reason: String,
}

/// One adapter (card) of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type, Value, OwnedValue)]
pub struct AdapterInfo {
    /// APID.
    pub id: u32,
    /// Card type, e.g. `CEX7C`.
    pub card_type: String,
    /// `accel`, `cca` or `ep11`.
    pub mode: String,
    /// Configured (card `config` 1).
    pub config: bool,
    /// Online.
    pub online: bool,
    /// Check-stopped.
    pub chkstop: bool,
}

/// One queue (APQN) of the host, for `apctl queues`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct QueueInfo {
    /// `"05.0004"`.
    pub apqn: String,
    /// Card type, e.g. `CEX7C`.
    pub card_type: String,
    /// `accel`, `cca` or `ep11`.
    pub mode: String,
    /// Configured.
    pub config: bool,
    /// Online.
    pub online: bool,
    /// Check-stopped.
    pub chkstop: bool,
    /// Bound driver (`cex4queue`, `vfio_ap`); empty when unbound.
    pub driver: String,
    /// `host`, `free` or `mdev`.
    pub owner: String,
    /// The owning mdev's UUID when `owner` is `mdev`.
    pub owner_uuid: String,
    /// The owning mdev's name, empty when it has none.
    pub owner_name: String,
}

/// [`QueueInfo`] as a client reads it: borrowed from the reply message, so
/// `apctl queues` over 65,536 APQNs copies none of their strings. The same
/// fields in the same order: on the bus it is exactly a `QueueInfo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Type)]
pub struct QueueInfoRef<'a> {
    /// `"05.0004"`.
    pub apqn: &'a str,
    /// Card type, e.g. `CEX7C`.
    pub card_type: &'a str,
    /// `accel`, `cca` or `ep11`.
    pub mode: &'a str,
    /// Configured.
    pub config: bool,
    /// Online.
    pub online: bool,
    /// Check-stopped.
    pub chkstop: bool,
    /// Bound driver (`cex4queue`, `vfio_ap`); empty when unbound.
    pub driver: &'a str,
    /// `host`, `free` or `mdev`.
    pub owner: &'a str,
    /// The owning mdev's UUID when `owner` is `mdev`.
    pub owner_uuid: &'a str,
    /// The owning mdev's name, empty when it has none.
    pub owner_name: &'a str,
}

impl<'a> From<&'a QueueInfo> for QueueInfoRef<'a> {
    fn from(q: &'a QueueInfo) -> Self {
        QueueInfoRef {
            apqn: &q.apqn,
            card_type: &q.card_type,
            mode: &q.mode,
            config: q.config,
            online: q.online,
            chkstop: q.chkstop,
            driver: &q.driver,
            owner: &q.owner,
            owner_uuid: &q.owner_uuid,
            owner_name: &q.owner_name,
        }
    }
}

/// A finding of validation (`check`, `apply`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Finding {
    /// `error` or `warning`.
    pub severity: String,
    /// A stable kebab-case kind, e.g. `shared-autostart`.
    pub kind: String,
    /// The one sentence.
    pub message: String,
    /// APQNs concerned, `"05.0004"`.
    pub apqns: Vec<String>,
    /// UUIDs of the mdevs concerned.
    pub mdevs: Vec<String>,
}

/// A desired host state (`apctl apply`, `check FILE`, `export`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct DesiredState {
    /// Whether the state names masks; when false the masks are left alone.
    pub has_masks: bool,
    /// Absolute apmask, kernel syntax.
    pub apmask: String,
    /// Absolute aqmask, kernel syntax.
    pub aqmask: String,
    /// The mdevs.
    pub mdevs: Vec<Definition>,
}

/// One step of a plan, in the order it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct PlanStep {
    /// A stable kebab-case verb, e.g. `set-masks`, `define`, `assign-domain`, `start`.
    pub action: String,
    /// What it acts on: `host`, or the mdev's name or UUID.
    pub target: String,
    /// The UUID of the mdev acted on; empty for host steps.
    pub uuid: String,
    /// One sentence for people.
    pub detail: String,
}

/// The host summary of `apctl status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Status {
    /// apd's version.
    pub version: String,
    /// What apd runs on: a sysfs root or `simulator`.
    pub backend: String,
    /// vfio_ap's matrix device is present.
    pub vfio_ap_loaded: bool,
    /// Current apmask (kernel read format).
    pub apmask: String,
    /// Current aqmask.
    pub aqmask: String,
    /// Persistent apmask applied at boot; empty for none.
    pub persistent_apmask: String,
    /// Persistent aqmask; empty for none.
    pub persistent_aqmask: String,
    /// Adapters in the host configuration.
    pub adapters: u32,
    /// Queues that exist.
    pub queues: u32,
    /// Queues owned by the host drivers.
    pub queues_host: u32,
    /// Queues free for vfio_ap and in no mdev.
    pub queues_free: u32,
    /// Queues in some mdev's matrix.
    pub queues_assigned: u32,
    /// Stored definitions.
    pub defined: u32,
    /// Mdevs that exist.
    pub active: u32,
    /// Definition files that did not load: (path, sentence).
    pub load_errors: Vec<(String, String)>,
    /// Definitions that failed to start or apply: (uuid, name, sentence).
    pub start_failures: Vec<(String, String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use zvariant::serialized::Context;
    use zvariant::LE;

    #[test]
    fn a_queue_reads_back_borrowed_field_for_field() {
        assert_eq!(QueueInfoRef::SIGNATURE, QueueInfo::SIGNATURE);
        let queues = vec![
            QueueInfo {
                apqn: "05.0004".into(),
                card_type: "CEX7C".into(),
                mode: "cca".into(),
                config: true,
                online: false,
                chkstop: true,
                driver: "vfio_ap".into(),
                owner: "mdev".into(),
                owner_uuid: "62177883-f1bb-47f0-914d-32a22e3a8804".into(),
                owner_name: "guest1".into(),
            },
            QueueInfo {
                apqn: "ff.00ff".into(),
                owner: "free".into(),
                config: false,
                online: true,
                ..QueueInfo::default()
            },
        ];
        let bytes = zvariant::to_bytes(Context::new_dbus(LE, 0), &queues).expect("serialize");
        let (read, _): (Vec<QueueInfoRef<'_>>, _) = bytes.deserialize().expect("deserialize");
        let expected: Vec<QueueInfoRef<'_>> = queues.iter().map(QueueInfoRef::from).collect();
        assert_eq!(read, expected);
    }
}
