//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge
//! patch.
//!
//! Strategic merge patch here covers what kubectl and the Python client send for everyday
//! edits: maps merge, `null` deletes, lists of objects merge by their merge key (containers
//! and volumes by `name`, container ports by `containerPort`, ...), `$patch: replace|delete`,
//! `$deleteFromPrimitiveList/<field>`, and `$setElementOrder`/`$retainKeys` are accepted.
//! The full per-type schema (every list's strategy from the OpenAPI extensions) arrives with
//! the client-compatibility work; see docs/COMPATIBILITY.md.

use kubecache_core::status::{ApiError, Reason};
use serde_json::{Map, Value};

use crate::typed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
}

/// The patch media types served, as a 415 lists them.
pub const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

impl PatchType {
    pub fn from_media_type(media: &str) -> Result<PatchType, ApiError> {
        match media {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::StrategicMerge),
            other => Err(ApiError::unsupported_media_type(other, PATCH_TYPES)),
        }
    }
}

/// Parses a patch body once (it is applied again on every optimistic-concurrency retry).
pub fn parse(patch_type: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let value = typed::parse_json(body)?.value;
    match patch_type {
        PatchType::Json if !value.is_array() => Err(ApiError::bad_request(
            "a JSON patch must be an array of operations",
        )),
        PatchType::Merge | PatchType::StrategicMerge if !value.is_object() => {
            Err(ApiError::bad_request("a merge patch must be a JSON object"))
        }
        _ => Ok(value),
    }
}

fn unprocessable(message: String) -> ApiError {
    ApiError::new(422, Reason::Invalid, message)
}

pub fn apply(patch_type: PatchType, current: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                unprocessable(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
        }
        PatchType::Merge => json_patch::merge(&mut doc, patch),
        PatchType::StrategicMerge => {
            doc = strategic_merge(current, patch)?;
        }
    }
    if !doc.is_object() {
        return Err(ApiError::bad_request(
            "the patched object is not a JSON object",
        ));
    }
    Ok(doc)
}

/// The merge key of a list field, when its elements merge by key instead of the list being
/// replaced. Keyed on the field name, with the element shape deciding between the two kinds
/// of `ports`.
fn merge_key(field: &str, patch_items: &[Value], current_items: &[Value]) -> Option<&'static str> {
    let has = |key: &str| {
        patch_items
            .iter()
            .chain(current_items)
            .any(|item| item.get(key).is_some())
    };
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "ports" if has("containerPort") => Some("containerPort"),
        "ports" if has("port") => Some("port"),
        _ => None,
    }
}

/// Lists of strings that merge as sets instead of being replaced.
fn merges_primitives(field: &str) -> bool {
    matches!(field, "finalizers")
}

fn strategic_merge(current: &Value, patch: &Value) -> Result<Value, ApiError> {
    match (current, patch) {
        (Value::Object(current), Value::Object(patch)) => {
            Ok(Value::Object(merge_maps(current, patch)?))
        }
        (_, patch) => Ok(strip_directives(patch)),
    }
}

fn merge_maps(
    current: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            return match strip_directives(&Value::Object(replaced)) {
                Value::Object(m) => Ok(m),
                _ => unreachable!("stripping directives keeps an object"),
            };
        }
        Some("delete") => return Ok(Map::new()),
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch directive {other:?}"
            )));
        }
    }
    let mut result = current.clone();
    for (key, value) in patch {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<&Value> = value
                .as_array()
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            if let Some(Value::Array(items)) = result.get_mut(field) {
                items.retain(|item| !remove.contains(&item));
            }
            continue;
        }
        match (result.get(key), value) {
            (_, Value::Null) => {
                result.remove(key);
            }
            (Some(Value::Object(old)), Value::Object(new)) => {
                let merged = merge_maps(old, new)?;
                result.insert(key.clone(), Value::Object(merged));
            }
            (Some(Value::Array(old)), Value::Array(new)) => {
                let merged = merge_lists(key, old, new)?;
                result.insert(key.clone(), Value::Array(merged));
            }
            (_, value) => {
                result.insert(key.clone(), strip_directives(value));
            }
        }
    }
    Ok(result)
}

fn merge_lists(field: &str, current: &[Value], patch: &[Value]) -> Result<Vec<Value>, ApiError> {
    if merges_primitives(field) {
        let mut result = current.to_vec();
        for item in patch {
            if !result.contains(item) {
                result.push(item.clone());
            }
        }
        return Ok(result);
    }
    if patch
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|item| item.get("$patch").is_none())
            .map(strip_directives)
            .collect());
    }
    let Some(key) = merge_key(field, patch, current) else {
        return Ok(patch.iter().map(strip_directives).collect());
    };
    let mut result = current.to_vec();
    for item in patch {
        let Some(id) = item.get(key) else {
            return Err(ApiError::bad_request(format!(
                "map: {item} does not contain declared merge key: {key}"
            )));
        };
        let position = result.iter().position(|old| old.get(key) == Some(id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                result.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                result[i] = strategic_merge(&result[i], item)?;
            }
            (None, false) => result.push(strip_directives(item)),
        }
    }
    Ok(result)
}

/// A patch value inserted as is, without `$` directives.
fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let current = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}});
        let merged = apply(PatchType::StrategicMerge, &current, &patch).unwrap();
        assert_eq!(
            merged["spec"]["containers"],
            json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}, {"name": "c", "image": "w"}])
        );
        let delete = json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}});
        let merged = apply(PatchType::StrategicMerge, &merged, &delete).unwrap();
        assert_eq!(merged["spec"]["containers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn strategic_merge_maps_and_nulls() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"$patch": "replace", "n": "m"}});
        let merged = apply(PatchType::StrategicMerge, &current, &patch).unwrap();
        assert_eq!(
            merged,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "data": {"n": "m"}})
        );
    }

    #[test]
    fn json_patch_test_failure_is_unprocessable() {
        let current = json!({"a": 1});
        let patch = json!([{"op": "test", "path": "/a", "value": 2}]);
        assert_eq!(
            apply(PatchType::Json, &current, &patch).unwrap_err().code,
            422
        );
        let patch = json!([{"op": "replace", "path": "/a", "value": 2}]);
        assert_eq!(
            apply(PatchType::Json, &current, &patch).unwrap(),
            json!({"a": 2})
        );
    }

    #[test]
    fn unknown_patch_type_is_415() {
        assert_eq!(
            PatchType::from_media_type("application/apply-patch+yaml")
                .unwrap_err()
                .code,
            415
        );
    }
}
