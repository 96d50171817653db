//! The signals `monitor` listens to, decoded; [`super::happenings`] tells
//! what they mean.

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
        /// The properties of its `org.apctl.Apd1.Mdev` interface, by name.
        properties: Vec<(String, Json)>,
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
    fn values_become_json() {
        let v = Value::from(vec![5u32, 6]);
        assert_eq!(value_to_json(&v), json!([5, 6]));
        assert_eq!(value_to_json(&Value::from("x")), json!("x"));
        assert_eq!(value_to_json(&Value::from(true)), json!(true));
    }
}
