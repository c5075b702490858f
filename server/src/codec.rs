//! The server's [`ObjectCodec`]: how the read path reads labels and selectable fields out of
//! stored objects and renders them for clients.

use bytes::Bytes;
use kubecache_cache::{ObjectAttrs, ObjectCodec};
use kubecache_core::registry::ResourceInfo;
use kubecache_core::storage::{KeyValue, Revision, StorageError};
use serde_json::{Value, json};

use crate::{fields, handlers, objects, table};

/// Stored objects are JSON (see [`objects::encode`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonCodec;

impl ObjectCodec for JsonCodec {
    fn attributes(
        &self,
        resource: &ResourceInfo,
        kv: &KeyValue,
    ) -> Result<ObjectAttrs, StorageError> {
        let object: Value = serde_json::from_slice(&kv.value).map_err(|e| {
            StorageError::Internal(format!("object at {} is not valid JSON: {e}", kv.key))
        })?;
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let fields = fields::supported(resource)
            .into_iter()
            .filter(|f| !f.starts_with("metadata."))
            .map(|f| (f, fields::value(resource, &object, f).unwrap_or_default()))
            .collect();
        Ok(ObjectAttrs {
            namespace: objects::meta_str(&object, "namespace").map(str::to_string),
            name: objects::name(&object).to_string(),
            labels,
            fields,
        })
    }

    fn encode(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes {
        // Served in its stored shape (all but events.k8s.io): splice the resourceVersion in
        // instead of parsing and re-serializing the whole object.
        let spliced = (shape.group != "events.k8s.io")
            .then(|| splice_resource_version(stored, revision))
            .flatten();
        if let Some(encoded) = spliced {
            return encoded;
        }
        let mut object: Value = serde_json::from_slice(stored).unwrap_or_else(|_| json!({}));
        objects::set_resource_version(&mut object, revision);
        let object = handlers::present_value(shape, object);
        Bytes::from(serde_json::to_vec(&object).expect("a JSON value always serializes"))
    }

    fn encode_table(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes {
        let mut object: Value = serde_json::from_slice(stored).unwrap_or_else(|_| json!({}));
        objects::set_resource_version(&mut object, revision);
        let object = handlers::present_value(shape, object);
        let metadata = json!({"resourceVersion": revision.to_string()});
        let table = table::render(
            shape,
            vec![object],
            metadata,
            table::IncludeObject::Object,
            chrono::Utc::now(),
        );
        Bytes::from(serde_json::to_vec(&table).expect("a JSON value always serializes"))
    }

    fn trigger_field(&self, resource: &ResourceInfo) -> Option<&'static str> {
        // Every kubelet watches its own pods by spec.nodeName.
        (resource.group.is_empty() && resource.resource == "pods").then_some("spec.nodeName")
    }

    fn bookmark(
        &self,
        shape: &ResourceInfo,
        revision: Revision,
        initial_events_end: bool,
    ) -> Bytes {
        let mut metadata =
            json!({"resourceVersion": revision.to_string(), "creationTimestamp": null});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let bookmark =
            json!({"kind": shape.kind, "apiVersion": shape.api_version(), "metadata": metadata});
        Bytes::from(serde_json::to_vec(&bookmark).expect("a JSON value always serializes"))
    }
}

/// The stored object with `"resourceVersion":"N"` inserted first into its top-level
/// `metadata`, or `None` when the bytes are not the compact JSON kubecache writes (then the
/// caller parses). Objects that mention `resourceVersion` anywhere take the slow path too, so a
/// splice never duplicates a key.
fn splice_resource_version(stored: &[u8], revision: Revision) -> Option<Bytes> {
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
                let at = i + METADATA.len();
                let field = format!("\"resourceVersion\":\"{revision}\"");
                let separator: &[u8] = if stored.get(at) == Some(&b'}') {
                    b""
                } else {
                    b","
                };
                let mut out = Vec::with_capacity(stored.len() + field.len() + 1);
                out.extend_from_slice(&stored[..at]);
                out.extend_from_slice(field.as_bytes());
                out.extend_from_slice(separator);
                out.extend_from_slice(&stored[at..]);
                return Some(Bytes::from(out));
            }
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    None
}

fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubecache_core::registry::Registry;

    #[test]
    fn attributes_and_encoding() {
        let reg = Registry::builtin();
        let pods = reg.lookup("", "v1", "pods").unwrap();
        let stored = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n","labels":{"app":"web"}},"spec":{"nodeName":"node-1"}}"#;
        let kv = KeyValue {
            key: "/registry/pods/n/p".into(),
            value: Bytes::from_static(stored),
            create_revision: 3,
            mod_revision: 4,
        };
        let attrs = JsonCodec.attributes(pods, &kv).unwrap();
        assert_eq!(attrs.namespace.as_deref(), Some("n"));
        assert_eq!(attrs.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(attrs.field("spec.nodeName"), Some("node-1"));
        assert_eq!(attrs.field("spec.hostNetwork"), Some("false"));
        let json: Value = serde_json::from_slice(&JsonCodec.encode(stored, 9, pods)).unwrap();
        assert_eq!(json["metadata"]["resourceVersion"], "9");
    }

    #[test]
    fn spliced_resource_version_equals_the_parsed_path() {
        let pods = Registry::builtin().lookup("", "v1", "pods").unwrap();
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
            objects::set_resource_version(&mut parsed, 42);
            assert_eq!(spliced, parsed, "{stored}");
            let encoded: Value =
                serde_json::from_slice(&JsonCodec.encode(stored.as_bytes(), 42, pods)).unwrap();
            assert_eq!(encoded, parsed);
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
            let encoded: Value =
                serde_json::from_slice(&JsonCodec.encode(stored.as_bytes(), 7, pods)).unwrap();
            assert_eq!(encoded["metadata"]["resourceVersion"], "7", "{stored}");
        }
    }
}
