//! Object metadata rules: what the server fills in on create, what it keeps on update, and
//! how an object is stored (JSON without `resourceVersion`, which comes from etcd's
//! mod_revision on every read, as in kube-apiserver).

use crate::registry::Resource;
use bytes::Bytes;
use kubecache_core::status::{ApiError, Cause};
use kubecache_core::storage::KeyValue;
use kubecache_core::validation;
use serde_json::{Map, Value, json};

pub fn tracks_generation(resource: &Resource) -> bool {
    resource.strategy().tracks_generation()
}

/// The object as served: the stored JSON with `metadata.resourceVersion` set.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("object at {} is not valid JSON: {e}", kv.key)))?;
    set_resource_version(&mut object, kv.mod_revision);
    Ok(object)
}

/// The bytes to store: the object without `metadata.resourceVersion`.
pub fn encode(object: &Value) -> Bytes {
    let has_rv = object
        .get("metadata")
        .is_some_and(|meta| meta.get("resourceVersion").is_some());
    if !has_rv {
        return Bytes::from(serde_json::to_vec(object).expect("a JSON value always serializes"));
    }
    let mut stored = object.clone();
    if let Some(meta) = stored.get_mut("metadata").and_then(Value::as_object_mut) {
        // shift_remove keeps the other keys in order, so an unchanged object encodes to the
        // bytes stored and a no-op update writes nothing.
        meta.shift_remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&stored).expect("a JSON value always serializes"))
}

/// [`encode`] for an object the caller owns: takes `resourceVersion` out for the encoding and
/// puts it back where it was, instead of copying the object.
pub fn encode_owned(object: &mut Value) -> Bytes {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return encode(object);
    };
    let Some(index) = meta.keys().position(|k| k == "resourceVersion") else {
        return encode(object);
    };
    let rv = meta.shift_remove("resourceVersion").expect("just found");
    let bytes = Bytes::from(serde_json::to_vec(object).expect("a JSON value always serializes"));
    metadata_mut(object).shift_insert(index, "resourceVersion".into(), rv);
    bytes
}

pub fn set_resource_version(object: &mut Value, revision: i64) {
    kubecache_cache::json::set_resource_version(object, revision);
}

/// `metadata`, created empty if missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = json!({});
    }
    let map = object.as_object_mut().expect("just made an object");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("just made an object")
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

pub fn name(object: &Value) -> &str {
    meta_str(object, "name").unwrap_or("")
}

/// The object's resourceVersion, if it names one (`""` and absent are "unconditional").
pub fn resource_version(object: &Value) -> Result<Option<i64>, ApiError> {
    match meta_str(object, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(rv) => parse_resource_version(rv).map(Some),
    }
}

pub fn parse_resource_version(rv: &str) -> Result<i64, ApiError> {
    rv.parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(object: &Value) -> bool {
    meta_str(object, "deletionTimestamp").is_some()
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Sets `apiVersion` and `kind` from the URL when the body lacks them, and rejects a body
/// that names another type.
pub fn check_type(resource: &Resource, object: &mut Value) -> Result<(), ApiError> {
    let Some(map) = object.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let expected_version = resource.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(expected_version));
        }
        Some(v) if v == expected_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(&resource.kind));
        }
        Some(k) if k == resource.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )));
        }
    }
    Ok(())
}

/// Makes `metadata.namespace` agree with the URL: filled in when absent, 400 when different,
/// cleared for cluster-scoped resources.
pub fn check_namespace(
    resource: &Resource,
    object: &mut Value,
    url_namespace: Option<&str>,
) -> Result<(), ApiError> {
    let meta = metadata_mut(object);
    if !resource.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let Some(url_namespace) = url_namespace else {
        return Err(ApiError::bad_request(
            "the namespace of the object must be given in the request path",
        ));
    };
    match meta.get("namespace").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("namespace".into(), json!(url_namespace));
            Ok(())
        }
        Some(ns) if ns == url_namespace => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
}

/// Validates object metadata: the name by the resource's rule, label keys and values,
/// annotation keys. Failures are causes of a 422 Invalid.
pub fn validate_metadata(resource: &Resource, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = name(object);
    if name.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    } else {
        for problem in resource.name_rule.check(name) {
            causes.push(Cause::invalid("metadata.name", name, &problem));
        }
    }
    let meta = object.get("metadata");
    if let Some(labels) = meta.and_then(|m| m.get("labels")) {
        validate_labels(labels, "metadata.labels", &mut causes);
    }
    if let Some(annotations) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let mut total = 0;
        for (key, value) in annotations {
            for problem in validation::is_qualified_name(&key.to_lowercase()) {
                causes.push(Cause::invalid("metadata.annotations", key, &problem));
            }
            total += key.len() + value.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            causes.push(Cause::new(
                "FieldValueTooLong",
                "metadata.annotations",
                "Too long: may not be more than 262144 bytes",
            ));
        }
    }
    causes
}

/// kube's `ValidateLabels`: each key a qualified name, each value a label value, reported at
/// `field` (`metadata.labels`, a RuntimeClass's `scheduling.nodeSelector`).
pub fn validate_labels(labels: &Value, field: &str, causes: &mut Vec<Cause>) {
    for (key, value) in labels.as_object().into_iter().flatten() {
        for problem in validation::is_qualified_name(key) {
            causes.push(Cause::invalid(field, key, &problem));
        }
        let value = value.as_str().unwrap_or("");
        for problem in validation::is_label_value(value) {
            causes.push(Cause::invalid(field, value, &problem));
        }
    }
}

/// The random suffix kube-apiserver appends to `generateName`: 5 characters from an alphabet
/// without vowels (no accidental words) and without look-alike characters.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    format!("{prefix}{suffix}")
}

/// Fills in what the server owns on create: name from generateName, uid, creationTimestamp,
/// generation; clears what a client may not set (deletion fields, resourceVersion).
pub fn prepare_create(resource: &Resource, object: &mut Value) {
    let meta = metadata_mut(object);
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let generate_from = meta
        .get("generateName")
        .and_then(Value::as_str)
        .filter(|p| !has_name && !p.is_empty());
    if let Some(prefix) = generate_from {
        let generated = generate_name(prefix);
        meta.insert("name".into(), json!(generated));
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("selfLink");
    if tracks_generation(resource) {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    resource.strategy().prepare_for_create(resource, object);
}

/// Fields outside metadata and status: what `generation` tracks.
fn desired_state(object: &Value) -> Map<String, Value> {
    object
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Carries over what an update may not change (uid, creationTimestamp, deletion fields,
/// generation, and — unless this is a write to the `status` subresource, see
/// [`apply_status_update`] — `.status` for resources with a status subresource) and bumps
/// generation when the desired state changed.
pub fn prepare_update(resource: &Resource, old: &Value, new: &mut Value, status_write: bool) {
    let old_meta = old
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let meta = metadata_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("selfLink");
    if resource.status_subresource && !status_write {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    if !status_write {
        resource.strategy().prepare_for_update(new, old);
    }
    // A status write (or a binding, which kube writes straight to storage) is no change of the
    // desired state as the strategy sees it: no generation bump.
    if !status_write && tracks_generation(resource) && desired_state(old) != desired_state(new) {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        metadata_mut(new).insert("generation".into(), json!(generation + 1));
    }
}

/// For a `…/status` write: the old object with only `.status` taken from `new`.
pub fn apply_status_update(old: &Value, new: &Value) -> Value {
    let mut result = old.clone();
    match new.get("status") {
        Some(status) => result["status"] = status.clone(),
        None => {
            if let Some(map) = result.as_object_mut() {
                map.remove("status");
            }
        }
    }
    if let Some(rv) = meta_str(new, "resourceVersion") {
        metadata_mut(&mut result).insert("resourceVersion".into(), json!(rv));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn res(resource: &str) -> std::sync::Arc<Resource> {
        let snapshot = Registry::builtin().snapshot();
        snapshot
            .iter()
            .find(|r| r.resource == resource)
            .unwrap()
            .clone()
    }

    #[test]
    fn create_fills_system_fields() {
        let mut obj = json!({"metadata": {"generateName": "web-", "resourceVersion": "5"}, "spec": {}, "status": {"x": 1}});
        prepare_create(&res("deployments"), &mut obj);
        let name = name(&obj);
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert!(obj["metadata"]["uid"].as_str().unwrap().len() == 36);
        assert!(obj["metadata"].get("resourceVersion").is_none());
        assert!(obj.get("status").is_none(), "status is reset on create");
    }

    #[test]
    fn update_keeps_status_and_bumps_generation_on_spec_change() {
        let old = json!({"metadata": {"name": "d", "uid": "u1", "generation": 3}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut new = json!({"metadata": {"name": "d", "uid": "other"}, "spec": {"replicas": 2}, "status": {"replicas": 9}});
        prepare_update(&res("deployments"), &old, &mut new, false);
        assert_eq!(new["metadata"]["uid"], "u1");
        assert_eq!(new["metadata"]["generation"], 4);
        assert_eq!(new["status"]["replicas"], 1);
        let mut same =
            json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}});
        prepare_update(&res("deployments"), &old, &mut same, false);
        assert_eq!(
            same["metadata"]["generation"], 3,
            "metadata changes keep generation"
        );
        let submitted =
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 5}, "status": {"replicas": 2}});
        let mut status = apply_status_update(&old, &submitted);
        prepare_update(&res("deployments"), &old, &mut status, true);
        assert_eq!(
            status["status"]["replicas"], 2,
            "a status write keeps its status"
        );
        assert_eq!(status["spec"]["replicas"], 1, "and not its spec");
        assert_eq!(status["metadata"]["generation"], 3);
    }

    #[test]
    fn metadata_validation() {
        let causes = validate_metadata(
            &res("configmaps"),
            &json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "no way"}}}),
        );
        let fields: Vec<_> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.name", "metadata.labels"]);
        assert!(
            validate_metadata(
                &res("configmaps"),
                &json!({"metadata": {"name": "fine.name"}})
            )
            .is_empty()
        );
        assert_eq!(
            validate_metadata(&res("configmaps"), &json!({"metadata": {}}))[0].reason,
            "FieldValueRequired"
        );
    }

    #[test]
    fn stored_bytes_have_no_resource_version() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}});
        let kv = KeyValue {
            key: "k".into(),
            value: encode(&obj),
            create_revision: 3,
            mod_revision: 9,
        };
        assert!(!String::from_utf8_lossy(&kv.value).contains("resourceVersion"));
        assert_eq!(decode(&kv).unwrap()["metadata"]["resourceVersion"], "9");
    }
}
