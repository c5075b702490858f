//! The server's [`ObjectCodec`]: how the read path reads labels and selectable fields out of
//! stored objects and renders them for clients.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use kubecache_cache::{ObjectAttrs, ObjectCodec, Shapes, View, json};
use kubecache_core::registry::ResourceInfo;
use kubecache_core::storage::{KeyValue, Revision, StorageError};
use serde_json::{Value, json};

use crate::registry::{Registry, Resource};
use crate::{objects, protobuf, table};

/// Stored objects are JSON (see [`objects::encode`]); what is kind-specific about rendering
/// them comes from the resource's strategy, found in the registry.
#[derive(Debug, Clone)]
pub struct JsonCodec {
    registry: Arc<Registry>,
}

impl JsonCodec {
    pub fn new(registry: Arc<Registry>) -> JsonCodec {
        JsonCodec { registry }
    }

    /// The registered resource of a shape; one removed while its event was on the way is
    /// rendered as stored.
    fn resource(&self, shape: &ResourceInfo) -> Arc<Resource> {
        self.registry
            .resolve(shape)
            .unwrap_or_else(|| Resource::untyped(Arc::new(shape.clone())))
    }
}

/// Objects of `shape` are stored as they are served (not in another version's shape).
fn stored_as_served(shape: &Resource) -> bool {
    !shape.converts()
}

/// A stored object as JSON with its resourceVersion, before conversion.
fn parsed(stored: &[u8], revision: Revision) -> Value {
    let mut object: Value = serde_json::from_slice(stored).unwrap_or_else(|_| json!({}));
    objects::set_resource_version(&mut object, revision);
    object
}

/// An object of `shape` (converted already) in `view`: JSON, a one-row Table, or protobuf
/// (JSON when the type has none).
fn render(shape: &Resource, view: View, object: Value, revision: Revision) -> Bytes {
    if view.table {
        let metadata = json!({"resourceVersion": revision.to_string()});
        let table = table::render(
            shape,
            vec![object],
            metadata,
            table::IncludeObject::Object,
            chrono::Utc::now(),
        );
        return Bytes::from(serde_json::to_vec(&table).expect("a JSON value always serializes"));
    }
    if view.protobuf
        && let Ok(protobuf) = protobuf::encode_envelope(&object)
    {
        return Bytes::from(protobuf);
    }
    Bytes::from(serde_json::to_vec(&object).expect("a JSON value always serializes"))
}

impl ObjectCodec for JsonCodec {
    fn attributes(
        &self,
        resource: &ResourceInfo,
        kv: &KeyValue,
    ) -> Result<ObjectAttrs, StorageError> {
        json::attributes(resource, kv)
    }

    fn encode(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes {
        let shape = &self.resource(shape);
        // Served in its stored shape: the stored bytes with the resourceVersion spliced in,
        // no parse and re-serialize.
        if stored_as_served(shape) {
            return json::with_resource_version(stored, revision);
        }
        let object = shape.strategy().to_served(parsed(stored, revision));
        render(shape, View::default(), object, revision)
    }

    fn splice_point(&self, stored: &[u8], shape: &ResourceInfo) -> Option<usize> {
        // Exactly what `encode` splices; another version's shape is converted, not spliced.
        stored_as_served(&self.resource(shape)).then(|| json::splice_point(stored))?
    }

    fn encode_table(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes {
        let shape = &self.resource(shape);
        let object = parsed(stored, revision);
        // The strategy's conversion only for a shape that converts: this runs on a shard for
        // the others, and conversion never does.
        let object = if stored_as_served(shape) {
            object
        } else {
            shape.strategy().to_served(object)
        };
        let table = View {
            table: true,
            ..View::default()
        };
        render(shape, table, object, revision)
    }

    fn encode_protobuf(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes {
        // The served JSON, transcoded: `k8s\0` + runtime.Unknown. JSON stays when the type has
        // no protobuf form; `watch_frame` then turns the event into an ERROR.
        let json = self.encode(stored, revision, shape);
        serde_json::from_slice::<Value>(&json)
            .ok()
            .and_then(|object| protobuf::encode_envelope(&object).ok())
            .map_or(json, Bytes::from)
    }

    fn watch_frame(&self, view: View, event_type: &str, object: &[u8]) -> Bytes {
        if view.protobuf && !view.table {
            protobuf::encoded_watch_frame(event_type, object)
        } else {
            kubecache_cache::object::frame(event_type, object)
        }
    }

    fn trigger_field(&self, resource: &ResourceInfo) -> Option<&'static str> {
        self.resource(resource).strategy().trigger_field()
    }

    fn converts(&self, shape: &ResourceInfo) -> bool {
        self.resource(shape).converts()
    }

    /// The strategy's conversion for reads ([`crate::strategy::Strategy::convert_to_served`]),
    /// awaited in the task that serves the read or the watch, then rendered in `view`.
    fn convert<'a>(
        &'a self,
        stored: &'a [u8],
        revision: Revision,
        view: View,
        shapes: &'a Shapes,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        let shape = self.resource(shapes.get(view.shape));
        Box::pin(async move {
            let object = (shape.strategy())
                .convert_to_served(parsed(stored, revision))
                .await
                .map_err(|e| StorageError::Internal(e.message))?;
            Ok(render(&shape, view, object, revision))
        })
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
            json!({"kind": &shape.kind, "apiVersion": shape.api_version(), "metadata": metadata});
        Bytes::from(serde_json::to_vec(&bookmark).expect("a JSON value always serializes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_encoding() {
        let reg = Arc::new(Registry::builtin());
        let codec = JsonCodec::new(reg.clone());
        let pods = reg.lookup("", "v1", "pods").unwrap();
        assert_eq!(codec.trigger_field(pods.info()), Some("spec.nodeName"));
        let stored = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"n","labels":{"app":"web"}},"spec":{"nodeName":"node-1"}}"#;
        let kv = KeyValue {
            key: "/registry/pods/n/p".into(),
            value: Bytes::from_static(stored),
            create_revision: 3,
            mod_revision: 4,
        };
        let attrs = codec.attributes(&pods, &kv).unwrap();
        assert_eq!(attrs.namespace(), Some("n"));
        assert_eq!(attrs.labels().get("app"), Some("web"));
        assert_eq!(attrs.field("spec.nodeName"), Some("node-1"));
        assert_eq!(attrs.field("spec.hostNetwork"), Some("false"));
        let json: Value = serde_json::from_slice(&codec.encode(stored, 9, &pods)).unwrap();
        assert_eq!(json["metadata"]["resourceVersion"], "9");
    }
}
