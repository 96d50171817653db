//! `monitor`: one line per signal from apd, for people or as JSON lines.

use serde_json::{json, Map, Value as Json};
use zvariant::Value;

/// A signal apd sent (or the bus sent about apd), decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorEvent {
    /// `org.apctl.Apd1.Manager.Event`.
    Event {
        /// Kebab-case kind, e.g. `mdev-started`.
        kind: String,
        /// The mdev's UUID, empty for host events.
        uuid: String,
        /// One sentence.
        message: String,
    },
    /// `PropertiesChanged` on the host or an mdev object.
    PropertiesChanged {
        /// The mdev's UUID, or `None` for the host object.
        uuid: Option<String>,
        /// The interface whose properties changed.
        interface: String,
        /// Name and new value of each changed property, by name.
        changed: Vec<(String, Json)>,
        /// Properties that changed without their value being sent.
        invalidated: Vec<String>,
    },
    /// `InterfacesAdded`: an mdev object appeared.
    Added {
        /// The mdev's UUID, or `None` for the host object.
        uuid: Option<String>,
        /// Its interfaces.
        interfaces: Vec<String>,
    },
    /// `InterfacesRemoved`: an mdev object went away.
    Removed {
        /// The mdev's UUID, or `None` for the host object.
        uuid: Option<String>,
        /// The interfaces removed.
        interfaces: Vec<String>,
    },
    /// apd took its bus name (started).
    ApdStarted,
    /// apd released its bus name (stopped or crashed).
    ApdStopped,
}

/// The object a path names: `host` or `mdev <uuid>`.
fn object(uuid: &Option<String>) -> String {
    match uuid {
        Some(u) => format!("mdev {u}"),
        None => "host".to_string(),
    }
}

/// A JSON value for people: strings bare, lists comma-separated.
fn human(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Bool(b) => super::yes_no(*b).to_string(),
        Json::Null => "-".to_string(),
        Json::Number(n) => n.to_string(),
        Json::Array(a) if a.is_empty() => "-".to_string(),
        // A list of structures (e.g. the host's adapters): one group each.
        Json::Array(a) if a.iter().any(|v| v.is_array() || v.is_object()) => a
            .iter()
            .map(|v| match v {
                Json::Array(fields) => {
                    format!(
                        "({})",
                        fields.iter().map(human).collect::<Vec<_>>().join(" ")
                    )
                }
                other => format!("({})", human(other)),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Json::Array(a) => a.iter().map(human).collect::<Vec<_>>().join(","),
        Json::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}:{}", human(v)))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

impl MonitorEvent {
    /// One line for people (without the newline).
    pub fn line(&self) -> String {
        let clean = |s: &str| super::super::bus::plain(s);
        match self {
            MonitorEvent::Event {
                kind,
                uuid,
                message,
            } => {
                if uuid.is_empty() {
                    format!("event {}: {}", clean(kind), clean(message))
                } else {
                    format!("event {} {}: {}", clean(kind), clean(uuid), clean(message))
                }
            }
            MonitorEvent::PropertiesChanged {
                uuid,
                changed,
                invalidated,
                ..
            } => {
                let mut parts: Vec<String> = changed
                    .iter()
                    .map(|(k, v)| format!("{k}={}", clean(&human(v))))
                    .collect();
                parts.extend(invalidated.iter().map(|k| format!("{k} changed")));
                format!("changed {}: {}", object(uuid), parts.join(" "))
            }
            MonitorEvent::Added { uuid, .. } => format!("added {}", object(uuid)),
            MonitorEvent::Removed { uuid, .. } => format!("removed {}", object(uuid)),
            MonitorEvent::ApdStarted => "apd started".to_string(),
            MonitorEvent::ApdStopped => "apd stopped".to_string(),
        }
    }

    /// One JSON object (one line with `serde_json::to_string`).
    pub fn json(&self) -> Json {
        let uuid_json = |u: &Option<String>| match u {
            Some(u) => Json::String(u.clone()),
            None => Json::Null,
        };
        match self {
            MonitorEvent::Event {
                kind,
                uuid,
                message,
            } => json!({
                "type": "event",
                "kind": kind,
                "uuid": if uuid.is_empty() { Json::Null } else { Json::String(uuid.clone()) },
                "message": message,
            }),
            MonitorEvent::PropertiesChanged {
                uuid,
                interface,
                changed,
                invalidated,
            } => {
                let mut map = Map::new();
                for (k, v) in changed {
                    map.insert(k.clone(), v.clone());
                }
                json!({
                    "type": "properties-changed",
                    "object": if uuid.is_some() { "mdev" } else { "host" },
                    "uuid": uuid_json(uuid),
                    "interface": interface,
                    "changed": Json::Object(map),
                    "invalidated": invalidated,
                })
            }
            MonitorEvent::Added { uuid, interfaces } => json!({
                "type": "added",
                "object": if uuid.is_some() { "mdev" } else { "host" },
                "uuid": uuid_json(uuid),
                "interfaces": interfaces,
            }),
            MonitorEvent::Removed { uuid, interfaces } => json!({
                "type": "removed",
                "object": if uuid.is_some() { "mdev" } else { "host" },
                "uuid": uuid_json(uuid),
                "interfaces": interfaces,
            }),
            MonitorEvent::ApdStarted => json!({"type": "apd-started"}),
            MonitorEvent::ApdStopped => json!({"type": "apd-stopped"}),
        }
    }
}

/// A D-Bus value as JSON: numbers, strings, booleans, arrays; structures
/// become arrays of their fields, dictionaries objects with string keys.
pub fn value_to_json(v: &Value<'_>) -> Json {
    match v {
        Value::U8(n) => json!(n),
        Value::Bool(b) => json!(b),
        Value::I16(n) => json!(n),
        Value::U16(n) => json!(n),
        Value::I32(n) => json!(n),
        Value::U32(n) => json!(n),
        Value::I64(n) => json!(n),
        Value::U64(n) => json!(n),
        Value::F64(n) => json!(n),
        Value::Str(s) => json!(s.as_str()),
        Value::Signature(s) => json!(s.to_string()),
        Value::ObjectPath(p) => json!(p.as_str()),
        Value::Value(inner) => value_to_json(inner),
        Value::Array(a) => Json::Array(a.iter().map(value_to_json).collect()),
        Value::Dict(d) => {
            let mut map = Map::new();
            for (k, v) in d.iter() {
                let key = match value_to_json(k) {
                    Json::String(s) => s,
                    other => other.to_string(),
                };
                map.insert(key, value_to_json(v));
            }
            Json::Object(map)
        }
        Value::Structure(s) => Json::Array(s.fields().iter().map(value_to_json).collect()),
        #[allow(unreachable_patterns)]
        _ => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_for_people() {
        let e = MonitorEvent::Event {
            kind: "mdev-started".into(),
            uuid: "62177883-f1bb-47f0-914d-32a22e3a8804".into(),
            message: "guest1 started\nwith 4 queues".into(),
        };
        assert_eq!(
            e.line(),
            "event mdev-started 62177883-f1bb-47f0-914d-32a22e3a8804: guest1 started with 4 queues"
        );
        let p = MonitorEvent::PropertiesChanged {
            uuid: None,
            interface: "org.apctl.Apd1.Host".into(),
            changed: vec![("ApMask".into(), json!("0xf9ff"))],
            invalidated: vec!["Adapters".into()],
        };
        assert_eq!(p.line(), "changed host: ApMask=0xf9ff Adapters changed");
        let a = MonitorEvent::PropertiesChanged {
            uuid: None,
            interface: "org.apctl.Apd1.Host".into(),
            changed: vec![(
                "Adapters".into(),
                json!([[5, "CEX7C", "cca", true], [6, "CEX7C", "cca", false]]),
            )],
            invalidated: vec![],
        };
        assert_eq!(
            a.line(),
            "changed host: Adapters=(5 CEX7C cca yes) (6 CEX7C cca no)"
        );
        let j = p.json();
        assert_eq!(j["type"], "properties-changed");
        assert_eq!(j["object"], "host");
        assert_eq!(j["changed"]["ApMask"], "0xf9ff");
    }

    #[test]
    fn values_become_json() {
        let v = Value::from(vec![5u32, 6]);
        assert_eq!(value_to_json(&v), json!([5, 6]));
        assert_eq!(value_to_json(&Value::from("x")), json!("x"));
        assert_eq!(value_to_json(&Value::from(true)), json!(true));
    }
}
