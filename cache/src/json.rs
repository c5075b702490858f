//! Helpers for codecs whose stored objects are JSON: reading what selectors need without
//! building the whole object, and setting `metadata.resourceVersion` without re-serializing.

use bytes::{BufMut, Bytes};
use kubecache_core::fields;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::storage::{KeyValue, Revision, StorageError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::attrs::KNOWN_FIELDS;
use crate::object::ObjectAttrs;

/// Namespace, name, labels and the selectable fields of `resource` in a stored object. Most
/// objects decode into the few fields selectors read, skipping the rest without building it;
/// anything unexpected takes the full parse.
pub fn attributes(resource: &ResourceInfo, kv: &KeyValue) -> Result<ObjectAttrs, StorageError> {
    let subset = covers_selectable_fields(resource)
        .then(|| serde_json::from_slice::<Selectable>(&kv.value).ok())
        .flatten();
    let object = match subset {
        Some(selectable) => selectable.into_value(),
        None => serde_json::from_slice(&kv.value).map_err(|e| {
            StorageError::Internal(format!("object at {} is not valid JSON: {e}", kv.key))
        })?,
    };
    Ok(attributes_of(resource, &object))
}

/// Whether [`Selectable`] holds every field `resource` can be selected by: the built-in ones
/// ([`KNOWN_FIELDS`]); a custom resource's `selectableFields` take the full parse.
fn covers_selectable_fields(resource: &ResourceInfo) -> bool {
    resource
        .selectable_fields
        .iter()
        .all(|field| KNOWN_FIELDS.contains(&field.as_str()))
}

/// The stored object with `metadata.resourceVersion` set to `revision`: spliced in when the
/// bytes are kubecache's compact JSON, else parsed, set and serialized again.
pub fn with_resource_version(stored: &[u8], revision: Revision) -> Bytes {
    if let Some(spliced) = splice_resource_version(stored, revision) {
        return spliced;
    }
    let mut object: Value = serde_json::from_slice(stored).unwrap_or_else(|_| json!({}));
    set_resource_version(&mut object, revision);
    Bytes::from(serde_json::to_vec(&object).expect("a JSON value always serializes"))
}

/// Sets `metadata.resourceVersion`, creating `metadata` if needed.
pub fn set_resource_version(object: &mut Value, revision: Revision) {
    if !object.is_object() {
        *object = json!({});
    }
    let map = object.as_object_mut().expect("just made an object");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .expect("just made an object")
        .insert("resourceVersion".into(), json!(revision.to_string()));
}

/// Labels, namespace, name and the selectable fields of `object` (a full object, or the
/// selectable subset of one: [`fields::value`] reads both alike).
pub fn attributes_of(resource: &ResourceInfo, object: &Value) -> ObjectAttrs {
    let labels = object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)));
    let fields = fields::supported(resource)
        .into_iter()
        .filter(|f| !f.starts_with("metadata."))
        .map(|f| (f, fields::value(resource, object, f).unwrap_or_default()));
    let meta = |field: &str| object.get("metadata")?.get(field)?.as_str();
    ObjectAttrs::new(
        meta("namespace"),
        meta("name").unwrap_or(""),
        labels,
        fields,
    )
}

/// The parts of a stored object that selectors read: metadata's name, namespace and labels,
/// and every field some resource can be selected by (see [`fields::supported`]). Decoding into
/// it skips everything else without allocating it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Selectable {
    metadata: SelectableMetadata,
    spec: Option<SelectableSpec>,
    status: Option<SelectableStatus>,
    #[serde(rename = "type")]
    type_: Option<Value>,
    reason: Option<Value>,
    reporting_component: Option<Value>,
    source: Option<SelectableSource>,
    involved_object: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SelectableMetadata {
    name: Option<Value>,
    namespace: Option<Value>,
    labels: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SelectableSpec {
    node_name: Option<Value>,
    restart_policy: Option<Value>,
    scheduler_name: Option<Value>,
    service_account_name: Option<Value>,
    host_network: Option<Value>,
    unschedulable: Option<Value>,
    signer_name: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SelectableStatus {
    phase: Option<Value>,
    #[serde(rename = "podIP")]
    pod_ip: Option<Value>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Value>,
    nominated_node_name: Option<Value>,
    replicas: Option<Value>,
    successful: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SelectableSource {
    component: Option<Value>,
}

impl Selectable {
    /// The subset as a JSON object with the original field names (absent fields left out).
    fn into_value(self) -> Value {
        fn put(map: &mut serde_json::Map<String, Value>, key: &str, value: Option<Value>) {
            if let Some(value) = value {
                map.insert(key.to_string(), value);
            }
        }
        let mut object = serde_json::Map::new();
        let mut metadata = serde_json::Map::new();
        put(&mut metadata, "name", self.metadata.name);
        put(&mut metadata, "namespace", self.metadata.namespace);
        put(&mut metadata, "labels", self.metadata.labels);
        object.insert("metadata".into(), Value::Object(metadata));
        if let Some(spec) = self.spec {
            let mut map = serde_json::Map::new();
            put(&mut map, "nodeName", spec.node_name);
            put(&mut map, "restartPolicy", spec.restart_policy);
            put(&mut map, "schedulerName", spec.scheduler_name);
            put(&mut map, "serviceAccountName", spec.service_account_name);
            put(&mut map, "hostNetwork", spec.host_network);
            put(&mut map, "unschedulable", spec.unschedulable);
            put(&mut map, "signerName", spec.signer_name);
            object.insert("spec".into(), Value::Object(map));
        }
        if let Some(status) = self.status {
            let mut map = serde_json::Map::new();
            put(&mut map, "phase", status.phase);
            put(&mut map, "podIP", status.pod_ip);
            put(&mut map, "podIPs", status.pod_ips);
            put(&mut map, "nominatedNodeName", status.nominated_node_name);
            put(&mut map, "replicas", status.replicas);
            put(&mut map, "successful", status.successful);
            object.insert("status".into(), Value::Object(map));
        }
        put(&mut object, "type", self.type_);
        put(&mut object, "reason", self.reason);
        put(&mut object, "reportingComponent", self.reporting_component);
        if let Some(source) = self.source {
            let mut map = serde_json::Map::new();
            put(&mut map, "component", source.component);
            object.insert("source".into(), Value::Object(map));
        }
        put(&mut object, "involvedObject", self.involved_object);
        Value::Object(object)
    }
}

/// The stored object with `"resourceVersion":"N"` inserted first into its top-level
/// `metadata`, or `None` when the bytes are not the compact JSON kubecache writes (then the
/// caller parses). Objects that mention `resourceVersion` anywhere take the slow path too, so a
/// splice never duplicates a key.
pub fn splice_resource_version(stored: &[u8], revision: Revision) -> Option<Bytes> {
    let at = splice_point(stored)?;
    let mut out = Vec::with_capacity(spliced_len(stored, revision));
    write_spliced(stored, at, revision, &mut out);
    Some(Bytes::from(out))
}

/// Where [`splice_resource_version`] inserts the field: right after the top-level
/// `"metadata":{`; `None` when it would not splice.
pub fn splice_point(stored: &[u8]) -> Option<usize> {
    const METADATA: &[u8] = b"\"metadata\":{";
    if memfind(stored, b"\"resourceVersion\"").is_some() {
        return None;
    }
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &byte) in stored.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' if depth == 1 && stored[i..].starts_with(METADATA) => {
                return Some(i + METADATA.len());
            }
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    None
}

/// An upper bound of the spliced object's length (exact but for the revision's digits).
pub fn spliced_len(stored: &[u8], _revision: Revision) -> usize {
    stored.len() + "\"resourceVersion\":\"\",".len() + 20
}

/// Writes `stored` with `"resourceVersion":"<revision>"` inserted at `at` (a
/// [`splice_point`] of it) to `out`: the served JSON, assembled without keeping a copy.
pub fn write_spliced(stored: &[u8], at: usize, revision: Revision, out: &mut impl BufMut) {
    out.put_slice(&stored[..at]);
    out.put_slice(b"\"resourceVersion\":\"");
    let mut digits = [0u8; 20];
    out.put_slice(decimal(revision, &mut digits));
    out.put_slice(b"\"");
    if stored.get(at) != Some(&b'}') {
        out.put_u8(b',');
    }
    out.put_slice(&stored[at..]);
}

/// `n` in decimal, in `buffer` (no allocation per object).
fn decimal(n: Revision, buffer: &mut [u8; 20]) -> &[u8] {
    let negative = n < 0;
    let mut n = n.unsigned_abs();
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buffer[at] = b'-';
    }
    &buffer[at..]
}

fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kubecache_core::registry::{CLUSTER, NAMESPACED, ResourceInfo};

    /// A resource of each kind of selectable fields (`kubecache_core::fields`), and one with
    /// only the metadata fields.
    pub(crate) fn resources_with_each_field_set() -> Vec<ResourceInfo> {
        [
            ("", "pods", "Pod", NAMESPACED),
            ("", "secrets", "Secret", NAMESPACED),
            ("", "events", "Event", NAMESPACED),
            ("", "namespaces", "Namespace", CLUSTER),
            ("", "nodes", "Node", CLUSTER),
            (
                "",
                "replicationcontrollers",
                "ReplicationController",
                NAMESPACED,
            ),
            ("apps", "replicasets", "ReplicaSet", NAMESPACED),
            ("batch", "jobs", "Job", NAMESPACED),
            (
                "certificates.k8s.io",
                "certificatesigningrequests",
                "CertificateSigningRequest",
                CLUSTER,
            ),
            ("", "configmaps", "ConfigMap", NAMESPACED),
        ]
        .into_iter()
        .map(|(group, plural, kind, scope)| {
            let info = ResourceInfo::new(group, "v1", plural, &kind.to_lowercase(), kind, scope);
            // The fields the built-in strategies declare beyond `kubecache_core::fields`'
            // own (the subset must read them too).
            match plural {
                "certificatesigningrequests" => info.selectable(&["spec.signerName"]),
                _ => info,
            }
        })
        .collect()
    }

    #[test]
    fn spliced_resource_version_equals_the_parsed_path() {
        let cases = [
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},"spec":{"containers":[{"name":"c"}]}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{},"spec":{}}"#,
            // A nested metadata (a template) and a string that looks like one come first.
            r#"{"apiVersion":"apps/v1","kind":"Deployment","note":"\"metadata\":{","spec":{"template":{"metadata":{"labels":{"x":"y"}}}},"metadata":{"name":"d"}}"#,
        ];
        for stored in cases {
            let spliced = splice_resource_version(stored.as_bytes(), 42).expect("compact JSON");
            let spliced: Value = serde_json::from_slice(&spliced).unwrap();
            let mut parsed: Value = serde_json::from_str(stored).unwrap();
            parsed["metadata"]["resourceVersion"] = json!("42");
            assert_eq!(spliced, parsed, "{stored}");
        }
        // Not ours to splice: an existing resourceVersion, no top-level metadata, not JSON.
        for stored in [
            r#"{"metadata":{"name":"a","resourceVersion":"1"}}"#,
            r#"{"spec":{"metadata":{}}}"#,
            r#"{ "metadata" : { } }"#,
        ] {
            assert!(
                splice_resource_version(stored.as_bytes(), 7).is_none(),
                "{stored}"
            );
            // The general path still sets it, by parsing.
            let set: Value =
                serde_json::from_slice(&with_resource_version(stored.as_bytes(), 7)).unwrap();
            assert_eq!(set["metadata"]["resourceVersion"], "7", "{stored}");
        }
    }

    /// The selectable subset gives the same attributes as the full object, for every
    /// resource and every kind of object, odd ones included.
    #[test]
    fn selectable_subset_matches_the_full_parse() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n", "labels": {"a": "b", "n": 5}},
                "spec": {"nodeName": "node-1", "restartPolicy": "Always", "schedulerName": "s", "serviceAccountName": "sa", "hostNetwork": true, "containers": [{"name": "c"}]},
                "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}], "nominatedNodeName": "node-2"}}),
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "n"}, "type": "Warning", "reason": "Failed",
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "n", "uid": "u", "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec"},
                "source": {"component": "kubelet"}}),
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e2"}, "reportingComponent": "ctl", "source": {"component": "kubelet"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "dg=="}}),
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"unschedulable": true}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}, "status": {"phase": "Terminating"}}),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"}, "status": {"replicas": 3}}),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": {"successful": null}}),
            json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "c"},
                "spec": {"signerName": "example.com/signer", "request": "AA=="}}),
            json!({"metadata": {"name": "odd", "labels": "not a map"}, "spec": 5, "status": "x"}),
            json!({"metadata": null}),
            json!({}),
        ];
        for resource in &resources_with_each_field_set() {
            for object in &objects {
                let stored = serde_json::to_vec(object).unwrap();
                let kv = KeyValue {
                    key: "/registry/x".into(),
                    value: Bytes::from(stored),
                    create_revision: 1,
                    mod_revision: 1,
                };
                let subset = attributes(resource, &kv).unwrap();
                let full = attributes_of(resource, object);
                assert_eq!(subset, full, "{} {object}", resource.resource);
            }
        }
    }
}
