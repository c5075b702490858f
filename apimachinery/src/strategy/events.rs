//! events.k8s.io/v1 Events are stored as core/v1 Events (one storage, two API versions, as
//! in kube-apiserver); these convert between the two shapes on the way in and out.

use serde_json::{Map, Value, json};

/// (events.k8s.io/v1 field, core/v1 field) pairs; every other field has the same name.
const RENAMED: &[(&str, &str)] = &[
    ("reportingController", "reportingComponent"),
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(object: &Value, to_core: bool, api_version: &str) -> Value {
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let renamed = RENAMED.iter().find_map(|(new, core)| {
            let (from, to) = if to_core { (new, core) } else { (core, new) };
            (key == from).then_some(*to)
        });
        out.insert(renamed.unwrap_or(key).to_string(), value.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    Value::Object(out)
}

/// An events.k8s.io/v1 Event in its stored core/v1 shape.
pub fn to_core(event: &Value) -> Value {
    rename(event, true, "v1")
}

/// A stored core/v1 Event in its events.k8s.io/v1 shape.
pub fn from_core(event: &Value) -> Value {
    rename(event, false, "events.k8s.io/v1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "note": "hello", "regarding": {"kind": "Pod", "name": "p"}, "reason": "Started", "deprecatedCount": 2});
        let core = to_core(&new);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["count"], 2);
        assert!(core.get("note").is_none());
        assert_eq!(from_core(&core), new);
    }
}
