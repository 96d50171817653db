//! `monitor` in apctl's language: a [`Follower`] keeps apd's view (the
//! mdevs and the host properties) current from the signals, and turns
//! them into one [`Happening`] per thing that happened, naming mdevs by
//! name and ids as every other view does (adapters decimal, domains hex).
//!
//! apd sends, for one change, the new property values first and then its
//! `Event` signals. Property values only update the view; a line comes from
//! the `Event` that follows, except for what apd has no event for (adapter
//! state, persistent masks, definition files that did not load), which the
//! view tells by comparing old and new values.

use super::events::MonitorEvent;
use super::host::cleared_ids;
use super::ids::{adapters, domains};
use super::json::MdevJson;
use apbus::{AdapterInfo, MdevInfo};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet};

/// The host properties monitor follows (`org.apctl.Apd1.Host`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostView {
    /// Live apmask.
    pub ap_mask: String,
    /// Live aqmask.
    pub aq_mask: String,
    /// Persistent apmask, empty for none.
    pub persistent_ap_mask: String,
    /// Persistent aqmask, empty for none.
    pub persistent_aq_mask: String,
    /// `ap_max_adapter_id`.
    pub max_adapter_id: u32,
    /// `ap_max_domain_id`.
    pub max_domain_id: u32,
    /// vfio_ap's matrix device is present.
    pub vfio_ap_loaded: bool,
    /// The LPAR's adapters.
    pub adapters: Vec<AdapterInfo>,
    /// Definition files that did not load: (path, sentence).
    pub load_errors: Vec<(String, String)>,
}

/// One thing that happened, for one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Happening {
    /// Kebab-case kind: apd's event kinds, and `adapter-state`,
    /// `persistent-masks`, `load-errors`, `apd-started`, `apd-stopped`.
    pub kind: String,
    /// The mdev it is about, as apctl knows it now.
    pub mdev: Option<MdevInfo>,
    /// The adapter it is about.
    pub adapter: Option<u32>,
    /// What happened, one sentence without the subject.
    pub message: String,
}

impl Happening {
    fn host(kind: &str, message: impl Into<String>) -> Happening {
        Happening {
            kind: kind.to_string(),
            mdev: None,
            adapter: None,
            message: message.into(),
        }
    }

    /// The line for people: `KIND MDEV: MESSAGE` (the mdev's name, its
    /// UUID when unnamed), `KIND: adapter N MESSAGE`, or `KIND: MESSAGE`.
    pub fn line(&self) -> String {
        let clean = |s: &str| super::super::bus::plain(s);
        let kind = clean(&self.kind);
        let message = clean(&self.message);
        match (&self.mdev, self.adapter) {
            (Some(m), _) if message.is_empty() => format!("{kind} {}", clean(&who(m))),
            (Some(m), _) => format!("{kind} {}: {message}", clean(&who(m))),
            (None, Some(a)) => format!("{kind}: adapter {a} {message}"),
            (None, None) => format!("{kind}: {message}"),
        }
    }

    /// The object for `--json`, one per line.
    pub fn json(&self) -> Json {
        json!({
            "event": self.kind,
            "uuid": self.mdev.as_ref().map(|m| m.uuid.to_ascii_lowercase()),
            "name": self.mdev.as_ref().and_then(|m| (!m.name.is_empty()).then(|| m.name.clone())),
            "adapter": self.adapter,
            "message": self.message,
            "mdev": self.mdev.as_ref().map(MdevJson::from),
        })
    }
}

/// An mdev's name, or its UUID when it has none.
fn who(m: &MdevInfo) -> String {
    if m.name.is_empty() {
        m.uuid.to_ascii_lowercase()
    } else {
        m.name.clone()
    }
}

/// `adapters 5,6, domains 0x04,0xab, control domains -`.
fn assignment(m: &MdevInfo) -> String {
    format!(
        "adapters {}, domains {}, control domains {}",
        adapters(&m.ids.adapters),
        domains(&m.ids.domains),
        domains(&m.ids.control_domains)
    )
}

fn guest_matrix(m: &MdevInfo) -> String {
    if m.guest_matrix.is_empty() {
        "guest matrix empty".to_string()
    } else {
        format!("guest matrix {}", m.guest_matrix.join(","))
    }
}

/// What a pair of masks gives to vfio_ap.
fn given(apmask: &str, aqmask: &str, max_adapter: u32, max_domain: u32) -> String {
    match (
        cleared_ids(apmask, max_adapter),
        cleared_ids(aqmask, max_domain),
    ) {
        (Some(a), Some(d)) => format!(
            "vfio_ap gets adapters {} and domains {}",
            adapters(&a),
            domains(&d)
        ),
        _ => format!("apmask {}, aqmask {}", apmask.trim(), aqmask.trim()),
    }
}

fn id_of(v: &Json) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn ids_of(v: &Json) -> Vec<u32> {
    v.as_array()
        .map(|a| a.iter().filter_map(id_of).collect())
        .unwrap_or_default()
}

fn text_of(v: &Json) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// An `AdapterInfo` sent as a structure: `[id, type, mode, config, online, chkstop]`.
fn adapter_of(v: &Json) -> Option<AdapterInfo> {
    let f = v.as_array()?;
    Some(AdapterInfo {
        id: id_of(f.first()?)?,
        card_type: text_of(f.get(1)?),
        mode: text_of(f.get(2)?),
        config: f.get(3)?.as_bool()?,
        online: f.get(4)?.as_bool()?,
        chkstop: f.get(5)?.as_bool()?,
    })
}

/// Sets one `org.apctl.Apd1.Mdev` property.
fn set_mdev_property(m: &mut MdevInfo, name: &str, v: &Json) {
    match name {
        "Uuid" => m.uuid = text_of(v).to_ascii_lowercase(),
        "Name" => m.name = text_of(v),
        "Defined" => m.defined = v.as_bool().unwrap_or(m.defined),
        "Active" => m.active = v.as_bool().unwrap_or(m.active),
        "Autostart" => m.autostart = v.as_bool().unwrap_or(m.autostart),
        "Adapters" => m.ids.adapters = ids_of(v),
        "Domains" => m.ids.domains = ids_of(v),
        "ControlDomains" => m.ids.control_domains = ids_of(v),
        "GuestMatrix" => {
            m.guest_matrix = v
                .as_array()
                .map(|a| a.iter().map(text_of).collect())
                .unwrap_or_default();
        }
        "StartError" => m.start_error = text_of(v),
        _ => {}
    }
}

/// apd's view as monitor follows it, and what is still to be said.
#[derive(Debug, Clone, Default)]
pub struct Follower {
    host: HostView,
    /// Every mdev seen, by lowercase UUID (kept when its object goes away,
    /// so that the events that follow can still name it).
    mdevs: BTreeMap<String, MdevInfo>,
    /// UUIDs whose definition the last lines said exists.
    defined: BTreeSet<String>,
    /// The persistent masks changed; said once at [`Follower::flush`].
    persistent_changed: bool,
}

impl Follower {
    /// Starts from what apd answered when monitor began.
    pub fn new(host: HostView, mdevs: &[MdevInfo]) -> Follower {
        let mdevs: BTreeMap<String, MdevInfo> = mdevs
            .iter()
            .map(|m| (m.uuid.to_ascii_lowercase(), m.clone()))
            .collect();
        let defined = mdevs
            .iter()
            .filter(|(_, m)| m.defined)
            .map(|(u, _)| u.clone())
            .collect();
        Follower {
            host,
            mdevs,
            defined,
            persistent_changed: false,
        }
    }

    fn mdev(&self, uuid: &str) -> MdevInfo {
        let uuid = uuid.to_ascii_lowercase();
        self.mdevs.get(&uuid).cloned().unwrap_or(MdevInfo {
            uuid,
            ..MdevInfo::default()
        })
    }

    fn about(&self, kind: &str, uuid: &str, message: String) -> Happening {
        Happening {
            kind: kind.to_string(),
            mdev: Some(self.mdev(uuid)),
            adapter: None,
            message,
        }
    }

    /// Takes one signal; returns what it says happened.
    pub fn feed(&mut self, ev: &MonitorEvent) -> Vec<Happening> {
        match ev {
            MonitorEvent::Event {
                kind,
                uuid,
                message,
            } => self.event(kind, uuid, message).into_iter().collect(),
            MonitorEvent::PropertiesChanged { uuid, changed, .. } => match uuid {
                Some(u) => {
                    let entry =
                        self.mdevs
                            .entry(u.to_ascii_lowercase())
                            .or_insert_with(|| MdevInfo {
                                uuid: u.to_ascii_lowercase(),
                                ..MdevInfo::default()
                            });
                    for (name, v) in changed {
                        set_mdev_property(entry, name, v);
                    }
                    Vec::new()
                }
                None => changed
                    .iter()
                    .flat_map(|(name, v)| self.host_property(name, v))
                    .collect(),
            },
            MonitorEvent::Added {
                uuid: Some(u),
                properties,
                ..
            } => {
                let mut m = MdevInfo {
                    uuid: u.to_ascii_lowercase(),
                    ..MdevInfo::default()
                };
                for (name, v) in properties {
                    set_mdev_property(&mut m, name, v);
                }
                self.mdevs.insert(m.uuid.clone(), m);
                Vec::new()
            }
            MonitorEvent::Removed { uuid: Some(u), .. } => {
                if let Some(m) = self.mdevs.get_mut(&u.to_ascii_lowercase()) {
                    m.active = false;
                    m.defined = false;
                    m.guest_matrix.clear();
                }
                Vec::new()
            }
            MonitorEvent::Added { uuid: None, .. } | MonitorEvent::Removed { uuid: None, .. } => {
                Vec::new()
            }
            MonitorEvent::ApdStarted => vec![Happening::host(
                "apd-started",
                "apd took its bus name; following it",
            )],
            MonitorEvent::ApdStopped => vec![Happening::host(
                "apd-stopped",
                "apd left the bus; waiting for it to come back",
            )],
        }
    }

    /// What is still to be said once the signals that came together are in.
    pub fn flush(&mut self) -> Vec<Happening> {
        if !std::mem::take(&mut self.persistent_changed) {
            return Vec::new();
        }
        let h = &self.host;
        let message = if h.persistent_ap_mask.is_empty() && h.persistent_aq_mask.is_empty() {
            "none stored: boot keeps the kernel's masks".to_string()
        } else {
            format!(
                "at boot {}",
                given(
                    &h.persistent_ap_mask,
                    &h.persistent_aq_mask,
                    h.max_adapter_id,
                    h.max_domain_id
                )
            )
        };
        vec![Happening::host("persistent-masks", message)]
    }

    /// One of apd's `Event` signals, told from the view.
    fn event(&mut self, kind: &str, uuid: &str, message: &str) -> Option<Happening> {
        let h = &self.host;
        Some(match kind {
            "mdev-started" | "mdev-changed" => {
                let m = self.mdev(uuid);
                let detail = format!("{}; {}", assignment(&m), guest_matrix(&m));
                self.about(kind, uuid, detail)
            }
            "mdev-stopped" => self.about(kind, uuid, String::new()),
            "definition-changed" => {
                let m = self.mdev(uuid);
                let key = m.uuid.clone();
                let was = self.defined.contains(&key);
                let detail = if !m.defined {
                    self.defined.remove(&key);
                    "undefined".to_string()
                } else {
                    self.defined.insert(key);
                    let verb = if was { "changed" } else { "defined" };
                    let auto = if m.autostart {
                        "autostart"
                    } else {
                        "manual start"
                    };
                    if m.active {
                        format!(
                            "{verb}, {auto} (apctl show {} compares it with the live mdev)",
                            who(&m)
                        )
                    } else {
                        format!("{verb}, {auto}: {}", assignment(&m))
                    }
                };
                self.about(kind, uuid, detail)
            }
            "start-failed" => self.about(kind, uuid, message.to_string()),
            "masks-changed" => Happening::host(
                kind,
                given(&h.ap_mask, &h.aq_mask, h.max_adapter_id, h.max_domain_id),
            ),
            "vfio-ap" => Happening::host(
                kind,
                if h.vfio_ap_loaded {
                    "loaded: mdevs can be created"
                } else {
                    "unloaded: every mdev is gone"
                },
            ),
            // Told from the Adapters property, which names the adapter.
            "adapter-config" => return None,
            _ if uuid.is_empty() => Happening::host(kind, message),
            _ => self.about(kind, uuid, message.to_string()),
        })
    }

    /// One host property; happenings when apd sends no event for it.
    fn host_property(&mut self, name: &str, v: &Json) -> Vec<Happening> {
        let h = &mut self.host;
        match name {
            "ApMask" => h.ap_mask = text_of(v),
            "AqMask" => h.aq_mask = text_of(v),
            "MaxAdapterId" => h.max_adapter_id = id_of(v).unwrap_or(h.max_adapter_id),
            "MaxDomainId" => h.max_domain_id = id_of(v).unwrap_or(h.max_domain_id),
            "VfioApLoaded" => h.vfio_ap_loaded = v.as_bool().unwrap_or(h.vfio_ap_loaded),
            "PersistentApMask" | "PersistentAqMask" => {
                let slot = if name == "PersistentApMask" {
                    &mut h.persistent_ap_mask
                } else {
                    &mut h.persistent_aq_mask
                };
                let new = text_of(v);
                if *slot != new {
                    *slot = new;
                    self.persistent_changed = true;
                }
            }
            "LoadErrors" => {
                let new: Vec<(String, String)> = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| {
                                let f = e.as_array()?;
                                Some((text_of(f.first()?), text_of(f.get(1)?)))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if new == h.load_errors {
                    return Vec::new();
                }
                h.load_errors = new;
                let message = if h.load_errors.is_empty() {
                    "every definition file loads".to_string()
                } else {
                    h.load_errors
                        .iter()
                        .map(|(path, why)| format!("{path}: {why}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return vec![Happening::host("load-errors", message)];
            }
            "Adapters" => {
                let new: Vec<AdapterInfo> = v
                    .as_array()
                    .map(|a| a.iter().filter_map(adapter_of).collect())
                    .unwrap_or_default();
                let old = std::mem::replace(&mut h.adapters, new);
                return adapter_changes(&old, &h.adapters);
            }
            _ => {}
        }
        Vec::new()
    }
}

/// One happening per adapter that joined, left, or changed state.
pub fn adapter_changes(old: &[AdapterInfo], new: &[AdapterInfo]) -> Vec<Happening> {
    let mut out = Vec::new();
    let mut said = |kind: &str, id: u32, message: String| {
        out.push(Happening {
            kind: kind.to_string(),
            mdev: None,
            adapter: Some(id),
            message,
        });
    };
    for n in new {
        let Some(o) = old.iter().find(|o| o.id == n.id) else {
            said(
                "adapter-config",
                n.id,
                format!("joined the LPAR ({})", n.card_type),
            );
            continue;
        };
        if o.config != n.config {
            let message = if n.config {
                "configured on".to_string()
            } else {
                "configured off (standby); guests keep it in their guest matrix but cannot use it until it is configured on"
                    .to_string()
            };
            said("adapter-config", n.id, message);
        } else if o.chkstop != n.chkstop {
            let message = if n.chkstop {
                "check-stopped (hardware error): its queues cannot be used".to_string()
            } else {
                "no longer check-stopped".to_string()
            };
            said("adapter-state", n.id, message);
        } else if o.online != n.online {
            let message = if n.online { "online" } else { "offline" };
            said("adapter-state", n.id, message.to_string());
        }
    }
    for o in old {
        if !new.iter().any(|n| n.id == o.id) {
            said(
                "adapter-config",
                o.id,
                "left the LPAR's AP configuration".to_string(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(id: u32) -> AdapterInfo {
        AdapterInfo {
            id,
            card_type: "CEX8P".into(),
            config: true,
            online: true,
            ..Default::default()
        }
    }

    #[test]
    fn adapters_joining_leaving_and_stopping_name_the_adapter() {
        let old = [card(1), card(2)];
        let mut stopped = card(2);
        stopped.chkstop = true;
        let new = [stopped, card(9)];
        let lines: Vec<String> = adapter_changes(&old, &new)
            .iter()
            .map(Happening::line)
            .collect();
        assert_eq!(
            lines,
            [
                "adapter-state: adapter 2 check-stopped (hardware error): its queues cannot be used",
                "adapter-config: adapter 9 joined the LPAR (CEX8P)",
                "adapter-config: adapter 1 left the LPAR's AP configuration",
            ]
        );
    }

    #[test]
    fn unchanged_persistent_masks_say_nothing() {
        let mut f = Follower::new(
            HostView {
                persistent_ap_mask: "0xf9".into(),
                ..Default::default()
            },
            &[],
        );
        let same = MonitorEvent::PropertiesChanged {
            uuid: None,
            interface: apbus::HOST_INTERFACE.into(),
            changed: vec![("PersistentApMask".into(), json!("0xf9"))],
            invalidated: vec![],
        };
        assert!(f.feed(&same).is_empty());
        assert!(f.flush().is_empty(), "apd restarting resends equal values");
    }
}
