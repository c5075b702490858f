//! Objects as the read path holds them: the stored bytes plus what filtering needs (labels
//! and selectable fields, extracted once), and their JSON as served, encoded at most once per
//! API shape.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use kubecache_core::registry::ResourceInfo;
use kubecache_core::selector::{FieldSelector, LabelSelector};
use kubecache_core::storage::{KeyValue, Revision, StorageError};

pub use crate::attrs::{Labels, ObjectAttrs};
use crate::json;

/// How many API shapes one stored object can be served in (core/v1 and events.k8s.io/v1
/// events share storage: two).
pub const MAX_SHAPES: usize = 2;

/// What the server knows about objects that the read path does not: how to read labels and
/// fields out of stored bytes, and how to render an object for a client.
pub trait ObjectCodec: Send + Sync + 'static {
    /// Namespace, name, labels and the fields `resource` can be selected by.
    fn attributes(
        &self,
        resource: &ResourceInfo,
        kv: &KeyValue,
    ) -> Result<ObjectAttrs, StorageError>;

    /// The object's JSON as `shape` serves it, with `metadata.resourceVersion` = `revision`.
    fn encode(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes;

    /// Where `"resourceVersion":"N"` can be inserted into `stored` to make exactly what
    /// [`ObjectCodec::encode`] makes for `shape` (see [`crate::json::splice_point`]), or `None`
    /// when `shape` needs a real encode. Objects with a splice point keep no served copy: their
    /// JSON is assembled from the stored bytes while it is written.
    fn splice_point(&self, _stored: &[u8], _shape: &ResourceInfo) -> Option<usize> {
        None
    }

    /// A BOOKMARK object of `shape` at `revision`.
    fn bookmark(&self, shape: &ResourceInfo, revision: Revision, initial_events_end: bool)
    -> Bytes;

    /// The object as a one-row Table of `shape` (server-side printing in watch frames); by
    /// default the plain object, for codecs that print no tables.
    fn encode_table(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes {
        self.encode(stored, revision, shape)
    }

    /// The object in the client's binary encoding (kube's protobuf), for views that ask for
    /// it; by default the JSON, for codecs that have no other encoding.
    fn encode_protobuf(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes {
        self.encode(stored, revision, shape)
    }

    /// Encodes in `view`.
    fn encode_view(&self, stored: &[u8], revision: Revision, view: View, shapes: &Shapes) -> Bytes {
        let shape = shapes.get(view.shape);
        if view.table {
            self.encode_table(stored, revision, shape)
        } else if view.protobuf {
            self.encode_protobuf(stored, revision, shape)
        } else {
            self.encode(stored, revision, shape)
        }
    }

    /// The watch frame of one event for a watcher in `view`: `object` is what
    /// [`ObjectCodec::encode_view`] made, or JSON (bookmarks, error Statuses). By default a
    /// newline-delimited JSON frame.
    fn watch_frame(&self, _view: View, event_type: &str, object: &[u8]) -> Bytes {
        frame(event_type, object)
    }

    /// The field watchers of `resource` are indexed by besides name and namespace: the one
    /// many watchers select a single value of (pods: `spec.nodeName`, one per kubelet).
    fn trigger_field(&self, _resource: &ResourceInfo) -> Option<&'static str> {
        None
    }
}

/// How a watcher wants its objects: in which API shape, and whether each as a one-row
/// `meta.k8s.io/v1` Table (kubectl's server-side printing) or in protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct View {
    pub shape: usize,
    pub table: bool,
    /// kube's protobuf encoding (Tables are JSON only: `table` wins).
    pub protobuf: bool,
}

/// How many distinct views a stored object can be encoded in (per shape: JSON, Table,
/// protobuf).
pub const MAX_VIEWS: usize = MAX_SHAPES * 3;

impl View {
    pub fn index(self) -> usize {
        let format = if self.table {
            1
        } else if self.protobuf {
            2
        } else {
            0
        };
        self.shape * 3 + format
    }
}

impl From<usize> for View {
    /// The plain JSON object in shape number `shape`.
    fn from(shape: usize) -> View {
        View {
            shape,
            table: false,
            protobuf: false,
        }
    }
}

/// Which objects a LIST or WATCH wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only objects in this namespace.
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, attrs: &ObjectAttrs) -> bool {
        let in_scope = match &self.namespace {
            Some(ns) => attrs.namespace() == Some(ns.as_str()),
            None => true,
        };
        in_scope
            && self.labels.matches_with(|key| attrs.labels().get(key))
            && self.fields.matches_with(|field| attrs.field(field))
    }

    /// Selects every object in its scope.
    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

/// One stored version of an object, shared by snapshots, events and list results.
///
/// Its served JSON is not kept when the codec can splice `resourceVersion` into the stored
/// bytes (every shape but a converted one): only the splice point is, and the JSON is assembled
/// as it is written ([`CachedObject::write_json`]), so an object costs one copy of its JSON.
/// Encodings that need real work (a converted shape, protobuf) are kept once made, in slots
/// allocated on first use.
#[derive(Debug)]
pub struct CachedObject {
    pub kv: KeyValue,
    pub attrs: ObjectAttrs,
    /// Per shape: 0 = not looked up yet, [`NO_SPLICE`] = encode, else the splice point.
    splice: [AtomicU32; MAX_SHAPES],
    /// JSON of unspliceable shapes, then protobuf, per shape: encoded on first use.
    encodings: OnceLock<Box<[OnceLock<Bytes>; 2 * MAX_SHAPES]>>,
}

/// A shape whose JSON is encoded, not spliced.
const NO_SPLICE: u32 = u32::MAX;

impl CachedObject {
    pub fn new(kv: KeyValue, attrs: ObjectAttrs) -> Arc<CachedObject> {
        Arc::new(CachedObject {
            kv,
            attrs,
            splice: Default::default(),
            encodings: OnceLock::new(),
        })
    }

    fn slot(&self, index: usize) -> &OnceLock<Bytes> {
        &self.encodings.get_or_init(Default::default)[index]
    }

    /// Where `resourceVersion` goes into the stored bytes for `shape`, looked up once.
    fn splice_point(
        &self,
        codec: &dyn ObjectCodec,
        shapes: &Shapes,
        shape: usize,
    ) -> Option<usize> {
        let cached = self.splice[shape].load(Ordering::Relaxed);
        let point = if cached == 0 {
            let found = codec
                .splice_point(&self.kv.value, shapes.get(shape))
                .and_then(|at| u32::try_from(at).ok())
                .filter(|at| *at != 0 && *at != NO_SPLICE)
                .unwrap_or(NO_SPLICE);
            self.splice[shape].store(found, Ordering::Relaxed);
            found
        } else {
            cached
        };
        (point != NO_SPLICE).then_some(point as usize)
    }

    /// Reads the fields [`CachedObject::write_json`] starts with, for a loop to call on an
    /// object it will write soon: the load's cache miss then overlaps other work.
    pub fn touch(&self, shape: usize) {
        std::hint::black_box(self.splice[shape].load(Ordering::Relaxed));
        std::hint::black_box(self.kv.value.first().copied());
    }

    /// Appends the object's JSON in shape number `shape` to `out`: the list path's way, with
    /// no copy made or kept per object when it splices.
    pub fn write_json(
        &self,
        codec: &dyn ObjectCodec,
        shapes: &Shapes,
        shape: usize,
        out: &mut BytesMut,
    ) {
        match self.splice_point(codec, shapes, shape) {
            Some(at) => json::write_spliced(&self.kv.value, at, self.kv.mod_revision, out),
            None => out.put_slice(&self.json(codec, shapes, shape)),
        }
    }

    /// Builds the object for `resource` from a stored key/value.
    pub fn from_kv(
        codec: &dyn ObjectCodec,
        resource: &ResourceInfo,
        kv: KeyValue,
    ) -> Result<Arc<CachedObject>, StorageError> {
        let attrs = codec.attributes(resource, &kv)?;
        Ok(CachedObject::new(kv, attrs))
    }

    /// The object's JSON in shape number `shape` (see [`Shapes`]): spliced afresh, or
    /// encoded once and kept.
    pub fn json(&self, codec: &dyn ObjectCodec, shapes: &Shapes, shape: usize) -> Bytes {
        if let Some(at) = self.splice_point(codec, shapes, shape) {
            let stored = &self.kv.value;
            let mut out = BytesMut::with_capacity(json::spliced_len(stored, self.kv.mod_revision));
            json::write_spliced(stored, at, self.kv.mod_revision, &mut out);
            return out.freeze();
        }
        self.slot(shape)
            .get_or_init(|| codec.encode(&self.kv.value, self.kv.mod_revision, shapes.get(shape)))
            .clone()
    }

    /// The object's protobuf in shape number `shape`, encoded once (for protobuf GETs, LISTs
    /// and watch events alike).
    pub fn protobuf(&self, codec: &dyn ObjectCodec, shapes: &Shapes, shape: usize) -> Bytes {
        self.slot(MAX_SHAPES + shape)
            .get_or_init(|| {
                codec.encode_protobuf(&self.kv.value, self.kv.mod_revision, shapes.get(shape))
            })
            .clone()
    }

    /// The object encoded for `view`: cached for JSON and protobuf, made for Tables.
    pub fn encoded(&self, codec: &dyn ObjectCodec, shapes: &Shapes, view: View) -> Bytes {
        if view.table {
            codec.encode_view(&self.kv.value, self.kv.mod_revision, view, shapes)
        } else if view.protobuf {
            self.protobuf(codec, shapes, view.shape)
        } else {
            self.json(codec, shapes, view.shape)
        }
    }
}

/// The API shapes of one storage prefix, numbered: the resources that share it.
#[derive(Debug, Clone)]
pub struct Shapes {
    resources: Vec<&'static ResourceInfo>,
}

impl Shapes {
    pub fn new(resources: Vec<&'static ResourceInfo>) -> Shapes {
        assert!(
            !resources.is_empty() && resources.len() <= MAX_SHAPES,
            "a storage prefix is served in 1..={MAX_SHAPES} shapes"
        );
        Shapes { resources }
    }

    /// The resource whose fields the cache indexes (the first one).
    pub fn primary(&self) -> &'static ResourceInfo {
        self.resources[0]
    }

    pub fn get(&self, shape: usize) -> &'static ResourceInfo {
        self.resources[shape]
    }

    /// The shape number of `resource`.
    pub fn index_of(&self, resource: &ResourceInfo) -> usize {
        self.resources
            .iter()
            .position(|r| {
                r.group == resource.group
                    && r.version == resource.version
                    && r.resource == resource.resource
            })
            .unwrap_or(0)
    }
}

/// A watch frame: `{"type":"ADDED","object":{...}}` and a newline.
pub fn frame(event_type: &str, object_json: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(object_json.len() + event_type.len() + 24);
    frame.extend_from_slice(b"{\"type\":\"");
    frame.extend_from_slice(event_type.as_bytes());
    frame.extend_from_slice(b"\",\"object\":");
    frame.extend_from_slice(object_json);
    frame.extend_from_slice(b"}\n");
    Bytes::from(frame)
}

/// The ERROR frame ending a watch, carrying a Status (compact: the frame's newline is the
/// only one, as in kube's watch encoder).
pub fn error_frame(error: &kubecache_core::status::ApiError) -> Bytes {
    frame("ERROR", &error.status().to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Status of an ERROR event is embedded compact, in kube's field order (`details`
    /// before `code`); the frame's newline is the only one.
    #[test]
    fn an_error_frame_embeds_kubes_status() {
        let mut error = kubecache_core::status::ApiError::new(
            429,
            kubecache_core::status::Reason::TooManyRequests,
            "the watch fell too far behind",
        );
        error.retry_after_seconds = Some(1);
        assert_eq!(
            std::str::from_utf8(&error_frame(&error)).unwrap(),
            concat!(
                r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"#,
                r#""status":"Failure","message":"the watch fell too far behind","#,
                r#""reason":"TooManyRequests","details":{"retryAfterSeconds":1},"code":429}}"#,
                "\n"
            )
        );
    }

    #[test]
    fn empty_fields_are_left_out_and_read_as_empty() {
        let attrs = ObjectAttrs::new(
            None,
            "p",
            [("app", "web")],
            [
                ("spec.nodeName", "n1".to_string()),
                ("status.nominatedNodeName", String::new()),
            ],
        );
        assert_eq!(attrs.fields().len(), 1);
        assert_eq!(attrs.field("spec.nodeName"), Some("n1"));
        let filter = |s: &str| Filter {
            fields: FieldSelector::parse(s).unwrap(),
            ..Filter::default()
        };
        assert!(filter("status.nominatedNodeName=").matches(&attrs));
        assert!(!filter("status.nominatedNodeName!=").matches(&attrs));
        assert!(filter("spec.nodeName=n1,metadata.name=p").matches(&attrs));
        assert!(!filter("spec.nodeName=n2").matches(&attrs));
    }
}
