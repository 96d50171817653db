//! The JSON that `--json` prints: exactly the fields design.md names, built
//! from apbus values. "None" on the bus (empty string) is `null` here.

use super::ids::ascending;
use apbus::{ApqnInfo, Finding, IdLists, MdevInfo, PlanStep, QueueInfo, QueueInfoRef, Status};
use serde::Serialize;

fn opt(s: &str) -> Option<String> {
    opt_ref(s).map(str::to_string)
}

/// [`opt`] borrowed.
fn opt_ref(s: &str) -> Option<&str> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// The three id lists, ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdListsJson {
    /// Adapters.
    pub adapters: Vec<u32>,
    /// Usage domains.
    pub domains: Vec<u32>,
    /// Control domains.
    pub control_domains: Vec<u32>,
}

impl From<&IdLists> for IdListsJson {
    fn from(ids: &IdLists) -> Self {
        IdListsJson {
            adapters: ascending(&ids.adapters),
            domains: ascending(&ids.domains),
            control_domains: ascending(&ids.control_domains),
        }
    }
}

/// One element of `list --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MdevJson {
    /// Lowercase UUID.
    pub uuid: String,
    /// Name or null.
    pub name: Option<String>,
    /// A definition is stored.
    pub defined: bool,
    /// The mdev exists.
    pub active: bool,
    /// Started at boot.
    pub autostart: bool,
    /// Live assignment when active, else the definition.
    pub adapters: Vec<u32>,
    /// Usage domains, same rule.
    pub domains: Vec<u32>,
    /// Control domains, same rule.
    pub control_domains: Vec<u32>,
    /// `"05.0004"` strings; empty when not active.
    pub guest_matrix: Vec<String>,
    /// The definition's lists when active, defined and different, else null.
    pub persistent: Option<IdListsJson>,
}

impl From<&MdevInfo> for MdevJson {
    fn from(m: &MdevInfo) -> Self {
        let live = IdListsJson::from(&m.ids);
        let persistent = if m.active && m.defined && m.differs {
            Some(IdListsJson::from(&m.persistent))
        } else {
            None
        };
        let mut guest_matrix = if m.active {
            m.guest_matrix.clone()
        } else {
            Vec::new()
        };
        guest_matrix.sort();
        guest_matrix.dedup();
        MdevJson {
            uuid: m.uuid.to_ascii_lowercase(),
            name: opt(&m.name),
            defined: m.defined,
            active: m.active,
            autostart: m.autostart,
            adapters: live.adapters,
            domains: live.domains,
            control_domains: live.control_domains,
            guest_matrix,
            persistent,
        }
    }
}

/// One APQN of `show --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApqnJson {
    /// `"05.0004"`.
    pub apqn: String,
    /// In the kernel's guest matrix.
    pub in_guest_matrix: bool,
    /// In the guest matrix, configured, not check-stopped.
    pub usable: bool,
    /// Why not usable, or null.
    pub reason: Option<String>,
}

impl From<&ApqnInfo> for ApqnJson {
    fn from(a: &ApqnInfo) -> Self {
        ApqnJson {
            apqn: a.apqn.clone(),
            in_guest_matrix: a.in_guest_matrix,
            usable: a.usable,
            reason: opt(&a.reason),
        }
    }
}

/// `show --json`: the list object plus `apqns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShowJson {
    /// The fields of `list --json`.
    #[serde(flatten)]
    pub mdev: MdevJson,
    /// One entry per APQN of the matrix.
    pub apqns: Vec<ApqnJson>,
}

impl ShowJson {
    /// Builds the object from `GetMdev`'s answer.
    pub fn new(m: &MdevInfo, apqns: &[ApqnInfo]) -> Self {
        let mut apqns: Vec<ApqnJson> = apqns.iter().map(ApqnJson::from).collect();
        apqns.sort_by(|a, b| a.apqn.cmp(&b.apqn));
        ShowJson {
            mdev: MdevJson::from(m),
            apqns,
        }
    }
}

/// One cell of `matrix --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatrixCellJson {
    /// `"05.0004"`.
    pub apqn: String,
    /// `host`, `free`, `mdev`, or `none` (no queue device at this place).
    pub owner: String,
    /// The owning mdev's UUID when `owner` is `mdev`, else null.
    pub mdev: Option<String>,
    /// Its name, null when it has none or the owner is not an mdev.
    pub name: Option<String>,
    /// Whoever owns the queue can use it.
    pub usable: bool,
    /// Why not, or null.
    pub reason: Option<String>,
    /// Further owners of the same APQN (`host` or mdev UUIDs): written by
    /// another tool; empty when nobody collides.
    pub collides_with: Vec<String>,
}

/// `matrix --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatrixJson {
    /// The rows: the LPAR's adapters shown, ascending.
    pub adapters: Vec<u32>,
    /// The columns: the LPAR's usage domains shown, ascending.
    pub domains: Vec<u32>,
    /// Every cell, by adapter, then domain.
    pub cells: Vec<MatrixCellJson>,
    /// The active mdevs, as `list --json` shows them.
    pub mdevs: Vec<MdevJson>,
}

/// One queue of `queues --json`, borrowed from apd's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueJson<'q> {
    /// `"05.0004"`.
    pub apqn: &'q str,
    /// Card type, e.g. `CEX7C`.
    pub card_type: &'q str,
    /// `accel`, `cca` or `ep11`.
    pub mode: &'q str,
    /// Configured.
    pub config: bool,
    /// Online.
    pub online: bool,
    /// Check-stopped.
    pub chkstop: bool,
    /// Bound driver, or null.
    pub driver: Option<&'q str>,
    /// `host`, `free` or `mdev`.
    pub owner: &'q str,
    /// The owning mdev's UUID, or null.
    pub owner_uuid: Option<&'q str>,
    /// The owning mdev's name, or null.
    pub owner_name: Option<&'q str>,
}

impl<'q> From<&QueueInfoRef<'q>> for QueueJson<'q> {
    fn from(q: &QueueInfoRef<'q>) -> Self {
        QueueJson {
            apqn: q.apqn,
            card_type: q.card_type,
            mode: q.mode,
            config: q.config,
            online: q.online,
            chkstop: q.chkstop,
            driver: opt_ref(q.driver),
            owner: q.owner,
            owner_uuid: opt_ref(q.owner_uuid),
            owner_name: opt_ref(q.owner_name),
        }
    }
}

impl<'q> From<&'q QueueInfo> for QueueJson<'q> {
    fn from(q: &'q QueueInfo) -> Self {
        QueueJson::from(&QueueInfoRef::from(q))
    }
}

/// A JSON array written as `items` is walked, so no Vec of it is built.
#[derive(Debug, Clone)]
pub struct ArrayOf<I>(pub I);

impl<I> Serialize for ArrayOf<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

/// A definition file that did not load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadErrorJson {
    /// The file.
    pub path: String,
    /// Why.
    pub error: String,
}

/// A definition that failed to start or apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartFailureJson {
    /// The mdev's UUID.
    pub uuid: String,
    /// Its name, or null.
    pub name: Option<String>,
    /// Why.
    pub error: String,
}

/// `status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusJson {
    /// apd's version.
    pub version: String,
    /// A sysfs root or `simulator`.
    pub backend: String,
    /// vfio_ap's matrix device is present.
    pub vfio_ap_loaded: bool,
    /// Current apmask.
    pub apmask: String,
    /// Current aqmask.
    pub aqmask: String,
    /// Persistent apmask, or null.
    pub persistent_apmask: Option<String>,
    /// Persistent aqmask, or null.
    pub persistent_aqmask: Option<String>,
    /// Adapters in the host configuration.
    pub adapters: u32,
    /// Queues that exist.
    pub queues: u32,
    /// Queues owned by the host.
    pub queues_host: u32,
    /// Queues free for vfio_ap and in no mdev.
    pub queues_free: u32,
    /// Queues in some mdev's matrix.
    pub queues_assigned: u32,
    /// Stored definitions.
    pub defined: u32,
    /// Mdevs that exist.
    pub active: u32,
    /// Definition files that did not load.
    pub load_errors: Vec<LoadErrorJson>,
    /// Definitions that failed to start or apply.
    pub start_failures: Vec<StartFailureJson>,
    /// apd's check warnings that status repeats (mdevs mdevctl defines too).
    pub warnings: Vec<String>,
}

impl From<&Status> for StatusJson {
    fn from(s: &Status) -> Self {
        StatusJson {
            version: s.version.clone(),
            backend: s.backend.clone(),
            vfio_ap_loaded: s.vfio_ap_loaded,
            apmask: s.apmask.clone(),
            aqmask: s.aqmask.clone(),
            persistent_apmask: opt(&s.persistent_apmask),
            persistent_aqmask: opt(&s.persistent_aqmask),
            adapters: s.adapters,
            queues: s.queues,
            queues_host: s.queues_host,
            queues_free: s.queues_free,
            queues_assigned: s.queues_assigned,
            defined: s.defined,
            active: s.active,
            load_errors: s
                .load_errors
                .iter()
                .map(|(path, error)| LoadErrorJson {
                    path: path.clone(),
                    error: error.clone(),
                })
                .collect(),
            start_failures: s
                .start_failures
                .iter()
                .map(|(uuid, name, error)| StartFailureJson {
                    uuid: uuid.clone(),
                    name: opt(name),
                    error: error.clone(),
                })
                .collect(),
            warnings: Vec::new(),
        }
    }
}

/// `masks --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MasksJson {
    /// Live apmask (kernel read format).
    pub apmask: String,
    /// Live aqmask.
    pub aqmask: String,
    /// Persistent apmask, or null.
    pub persistent_apmask: Option<String>,
    /// Persistent aqmask, or null.
    pub persistent_aqmask: Option<String>,
    /// Adapters whose apmask bit is clear: all their queues go to vfio_ap.
    pub vfio_adapters: Vec<u32>,
    /// Domains whose aqmask bit is clear: their queues on every adapter go to vfio_ap.
    pub vfio_domains: Vec<u32>,
    /// chzdev's persistent masks (its udev rule), or null when there is no rule.
    pub chzdev: Option<ChzdevJson>,
}

/// chzdev's persistent masks in `masks --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChzdevJson {
    /// The udev rule.
    pub file: String,
    /// The apmask it sets at boot, or null.
    pub apmask: Option<String>,
    /// The aqmask it sets at boot, or null.
    pub aqmask: Option<String>,
    /// Why the rule could not be read, or null.
    pub problem: Option<String>,
}

/// One finding of `check --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingJson {
    /// `error` or `warning`.
    pub severity: String,
    /// A stable kebab-case kind.
    pub kind: String,
    /// The sentence.
    pub message: String,
    /// APQNs concerned.
    pub apqns: Vec<String>,
    /// UUIDs of the mdevs concerned.
    pub mdevs: Vec<String>,
}

impl From<&Finding> for FindingJson {
    fn from(f: &Finding) -> Self {
        FindingJson {
            severity: f.severity.clone(),
            kind: f.kind.clone(),
            message: f.message.clone(),
            apqns: f.apqns.clone(),
            mdevs: f.mdevs.clone(),
        }
    }
}

/// `check --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckJson {
    /// Every finding, errors first.
    pub findings: Vec<FindingJson>,
}

/// One step of `apply --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepJson {
    /// A kebab-case verb, e.g. `set-masks`, `define`, `start`.
    pub action: String,
    /// `host`, or the mdev's name or UUID.
    pub target: String,
    /// The mdev's UUID, or null for host steps.
    pub uuid: Option<String>,
    /// One sentence.
    pub detail: String,
}

impl From<&PlanStep> for StepJson {
    fn from(s: &PlanStep) -> Self {
        StepJson {
            action: s.action.clone(),
            target: s.target.clone(),
            uuid: opt(&s.uuid),
            detail: s.detail.clone(),
        }
    }
}

/// `apply --json`: exactly `{"steps": [...]}`, in the order they run (or ran).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanJson {
    /// The steps; `[]` when the host already matches.
    pub steps: Vec<StepJson>,
}

/// `define --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UuidJson {
    /// The new definition's UUID.
    pub uuid: String,
}

/// `import-mdevctl --json` and `export --format mdevctl --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UuidsJson {
    /// The UUIDs imported or written.
    pub uuids: Vec<String>,
}

/// `show --libvirt --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostdevJson {
    /// The mdev.
    pub uuid: String,
    /// Its name, if any.
    pub name: Option<String>,
    /// The `<hostdev>` element, as `show --libvirt` prints it.
    pub hostdev: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guest1_active_differing() -> MdevInfo {
        MdevInfo {
            uuid: "62177883-F1BB-47F0-914D-32A22E3A8804".into(),
            name: "guest1".into(),
            defined: true,
            active: true,
            autostart: true,
            ids: IdLists {
                adapters: vec![6, 5],
                domains: vec![4],
                control_domains: vec![],
            },
            guest_matrix: vec!["06.0004".into(), "05.0004".into()],
            differs: true,
            persistent: IdLists {
                adapters: vec![5, 6],
                domains: vec![4, 0xab],
                control_domains: vec![],
            },
            start_error: String::new(),
        }
    }

    #[test]
    fn list_object_has_exactly_the_design_fields() {
        let v = serde_json::to_value(MdevJson::from(&guest1_active_differing())).expect("json");
        assert_eq!(
            v,
            json!({
                "uuid": "62177883-f1bb-47f0-914d-32a22e3a8804",
                "name": "guest1",
                "defined": true,
                "active": true,
                "autostart": true,
                "adapters": [5, 6],
                "domains": [4],
                "control_domains": [],
                "guest_matrix": ["05.0004", "06.0004"],
                "persistent": {"adapters": [5, 6], "domains": [4, 171], "control_domains": []}
            })
        );
    }

    #[test]
    fn inactive_and_foreign_mdevs() {
        let mut m = guest1_active_differing();
        m.active = false;
        m.name.clear();
        let v = serde_json::to_value(MdevJson::from(&m)).expect("json");
        assert_eq!(v["name"], serde_json::Value::Null);
        assert_eq!(v["persistent"], serde_json::Value::Null);
        assert_eq!(v["guest_matrix"], json!([]));
        let mut m = guest1_active_differing();
        m.differs = false;
        let v = serde_json::to_value(MdevJson::from(&m)).expect("json");
        assert_eq!(v["persistent"], serde_json::Value::Null);
    }

    #[test]
    fn show_adds_apqns_with_null_reason() {
        let apqns = vec![
            ApqnInfo {
                apqn: "06.0004".into(),
                in_guest_matrix: true,
                usable: false,
                reason: "adapter 6 is configured off (apctl config 6 on)".into(),
            },
            ApqnInfo {
                apqn: "05.0004".into(),
                in_guest_matrix: true,
                usable: true,
                reason: String::new(),
            },
        ];
        let v =
            serde_json::to_value(ShowJson::new(&guest1_active_differing(), &apqns)).expect("json");
        assert_eq!(v["uuid"], "62177883-f1bb-47f0-914d-32a22e3a8804");
        assert_eq!(
            v["apqns"],
            json!([
                {"apqn": "05.0004", "in_guest_matrix": true, "usable": true, "reason": null},
                {"apqn": "06.0004", "in_guest_matrix": true, "usable": false,
                 "reason": "adapter 6 is configured off (apctl config 6 on)"}
            ])
        );
        let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 11, "{keys:?}");
    }

    #[test]
    fn empty_plan_is_an_empty_steps_array() {
        let v = serde_json::to_value(PlanJson { steps: vec![] }).expect("json");
        assert_eq!(v, json!({"steps": []}));
    }
}
