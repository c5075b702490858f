//! Objects as the read path holds them: the stored bytes plus what filtering needs (labels
//! and selectable fields, extracted once), and their encodings as served, made at most once
//! per view actually asked for (API shape × JSON or protobuf; Tables are made per use).
//!
//! A resource may be served in any number of shapes (API versions sharing one storage
//! prefix). What an object keeps per shape costs nothing until that shape is asked for: the
//! splice points of the first [`INLINE_SHAPES`] shapes sit in the object (4 B each), and
//! every kept encoding lives in a chain of slot blocks allocated on first use
//! ([`CachedObject`]).
//!
//! A shape stored in another version's shape is *converted* ([`ObjectCodec::converts`]), and
//! conversion may wait (a custom resource's conversion webhook). It is never done on a shard
//! thread: the task that serves the read or the watch awaits it ([`CachedObject::converted`],
//! [`ObjectCodec::convert`]), and what it made is kept for every later reader of that view.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::selector::{FieldSelector, LabelSelector};
use kubecache_core::storage::{KeyValue, Revision, StorageError};

pub use crate::attrs::{Labels, ObjectAttrs};
use crate::json;

/// Shapes whose splice point an object keeps inline, with no allocation: the stored shape
/// and one more (core/v1 and events.k8s.io/v1 events share storage). Later shapes keep theirs
/// in the object's slot blocks, allocated when such a shape is first served.
pub const INLINE_SHAPES: usize = 2;

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

    /// Encodes in `view` (whose shape is one of `shapes`).
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

    /// Whether objects served as `shape` are stored in another version's shape and must be
    /// converted. Every view of such a shape is made by [`ObjectCodec::convert`], off the
    /// shard threads; the shard encodes only shapes that do not convert. Asked once per shape
    /// ([`Shapes::converts`]).
    fn converts(&self, _shape: &ResourceInfo) -> bool {
        false
    }

    /// The object in `view` of a shape that [converts](ObjectCodec::converts): conversion and
    /// encoding, which may wait (a conversion webhook), so it is awaited by the task serving
    /// the read or the watch, never on a shard thread. By default the synchronous
    /// [`ObjectCodec::encode_view`].
    fn convert<'a>(
        &'a self,
        stored: &'a [u8],
        revision: Revision,
        view: View,
        shapes: &'a Shapes,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move { Ok(self.encode_view(stored, revision, view, shapes)) })
    }
}

/// How a watcher wants its objects: in which API shape (its number in the resource's
/// [`Shapes`]), and whether each as a one-row `meta.k8s.io/v1` Table (kubectl's server-side
/// printing) or in protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct View {
    pub shape: usize,
    pub table: bool,
    /// kube's protobuf encoding (Tables are JSON only: `table` wins).
    pub protobuf: bool,
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
/// allocated on first use: nothing is allocated for a view never asked for, and a shape added
/// to the resource later needs nothing from the objects already cached. A converted shape's
/// views are made by [`CachedObject::converted`], awaited by the reader's task; the
/// synchronous encoders find them there.
#[derive(Debug)]
pub struct CachedObject {
    pub kv: KeyValue,
    pub attrs: ObjectAttrs,
    /// Per inline shape: 0 = not looked up yet, [`NO_SPLICE`] = encode, else the splice point.
    splice: [AtomicU32; INLINE_SHAPES],
    /// What is kept of the other views, by [`slot_of`]: allocated on first use.
    kept: OnceLock<Box<Slots>>,
}

/// A shape whose JSON is encoded, not spliced.
const NO_SPLICE: u32 = u32::MAX;

/// Slots per block: two shapes' JSON and protobuf, the common case in one allocation.
const SLOTS_PER_BLOCK: usize = 4;

/// A block of kept encodings, and the next block once a view beyond it is asked for: a chain
/// that grows without a lock and without a cap (each link is set once, like each slot).
#[derive(Debug, Default)]
struct Slots {
    slots: [OnceLock<Kept>; SLOTS_PER_BLOCK],
    next: OnceLock<Box<Slots>>,
}

/// What an object keeps of one (shape, format).
#[derive(Debug)]
enum Kept {
    /// The JSON of a shape past [`INLINE_SHAPES`] is the stored bytes with the resourceVersion
    /// spliced in here.
    Splice(u32),
    /// An encoding made once (protobuf, the JSON of a shape that cannot be spliced).
    Encoded(Bytes),
    /// A converted shape's JSON or protobuf, made by the first task that asks for it while
    /// the others wait for it (conversion may wait itself, so not under the slot's
    /// `OnceLock`, which blocks its thread).
    Converted(Box<tokio::sync::OnceCell<Bytes>>),
}

impl Kept {
    /// The encoding kept, if made.
    fn encoded(&self) -> Option<&Bytes> {
        match self {
            Kept::Encoded(bytes) => Some(bytes),
            Kept::Converted(cell) => cell.get(),
            Kept::Splice(_) => None,
        }
    }
}

/// The slot of `shape`'s JSON (`protobuf` false) or protobuf: two per shape.
fn slot_of(shape: usize, protobuf: bool) -> usize {
    shape * 2 + usize::from(protobuf)
}

impl CachedObject {
    pub fn new(kv: KeyValue, attrs: ObjectAttrs) -> Arc<CachedObject> {
        Arc::new(CachedObject {
            kv,
            attrs,
            splice: Default::default(),
            kept: OnceLock::new(),
        })
    }

    /// Slot number `index`, allocating the blocks up to it on first use.
    fn slot(&self, index: usize) -> &OnceLock<Kept> {
        let mut block: &Slots = self.kept.get_or_init(Default::default);
        for _ in 0..index / SLOTS_PER_BLOCK {
            block = block.next.get_or_init(Default::default);
        }
        &block.slots[index % SLOTS_PER_BLOCK]
    }

    /// Where `resourceVersion` goes into the stored bytes for `shape`, looked up once.
    fn splice_point(
        &self,
        codec: &dyn ObjectCodec,
        shapes: &Shapes,
        shape: usize,
    ) -> Option<usize> {
        let look_up = || {
            codec
                .splice_point(&self.kv.value, shapes.get(shape))
                .and_then(|at| u32::try_from(at).ok())
                .filter(|at| *at != 0 && *at != NO_SPLICE)
        };
        let Some(inline) = self.splice.get(shape) else {
            // A later shape: its splice point, or its encoding, is kept in its JSON slot.
            let kept = self
                .slot(slot_of(shape, false))
                .get_or_init(|| match look_up() {
                    Some(at) => Kept::Splice(at),
                    // Made by `converted`, in the task that serves it.
                    None if shapes.converts(shape, codec) => Kept::Converted(Box::default()),
                    None => Kept::Encoded(codec.encode(
                        &self.kv.value,
                        self.kv.mod_revision,
                        shapes.get(shape),
                    )),
                });
            return match kept {
                Kept::Splice(at) => Some(*at as usize),
                Kept::Encoded(_) | Kept::Converted(_) => None,
            };
        };
        let cached = inline.load(Ordering::Relaxed);
        let point = if cached == 0 {
            let found = look_up().unwrap_or(NO_SPLICE);
            inline.store(found, Ordering::Relaxed);
            found
        } else {
            cached
        };
        (point != NO_SPLICE).then_some(point as usize)
    }

    /// Reads the fields [`CachedObject::write_json`] starts with, for a loop to call on an
    /// object it will write soon: the load's cache miss then overlaps other work.
    pub fn touch(&self, shape: usize) {
        std::hint::black_box(self.splice.get(shape).map(|s| s.load(Ordering::Relaxed)));
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
    /// encoded once and kept (a converted shape: what [`CachedObject::converted`] made).
    pub fn json(&self, codec: &dyn ObjectCodec, shapes: &Shapes, shape: usize) -> Bytes {
        if let Some(at) = self.splice_point(codec, shapes, shape) {
            let stored = &self.kv.value;
            let mut out = BytesMut::with_capacity(json::spliced_len(stored, self.kv.mod_revision));
            json::write_spliced(stored, at, self.kv.mod_revision, &mut out);
            return out.freeze();
        }
        let kept = self.slot(slot_of(shape, false)).get_or_init(|| {
            Kept::Encoded(codec.encode(&self.kv.value, self.kv.mod_revision, shapes.get(shape)))
        });
        self.kept_or_encode(kept, codec, shapes, View::from(shape))
    }

    /// The object's protobuf in shape number `shape`, encoded once (for protobuf GETs, LISTs
    /// and watch events alike).
    pub fn protobuf(&self, codec: &dyn ObjectCodec, shapes: &Shapes, shape: usize) -> Bytes {
        let kept = self.slot(slot_of(shape, true)).get_or_init(|| {
            Kept::Encoded(codec.encode_protobuf(
                &self.kv.value,
                self.kv.mod_revision,
                shapes.get(shape),
            ))
        });
        let view = View {
            shape,
            table: false,
            protobuf: true,
        };
        self.kept_or_encode(kept, codec, shapes, view)
    }

    /// What `kept` holds, or — a converted view nobody converted first ([`CachedObject::
    /// converted`]) — the codec's synchronous encoding, made on the caller's thread and kept.
    fn kept_or_encode(
        &self,
        kept: &Kept,
        codec: &dyn ObjectCodec,
        shapes: &Shapes,
        view: View,
    ) -> Bytes {
        if let Some(encoded) = kept.encoded() {
            return encoded.clone();
        }
        let encoded = codec.encode_view(&self.kv.value, self.kv.mod_revision, view, shapes);
        if let Kept::Converted(cell) = kept {
            let _ = cell.set(encoded.clone());
        }
        encoded
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

    /// The object encoded for `view`, converting it first when the view's shape is not the
    /// stored one ([`ObjectCodec::convert`], which may wait): what the task serving a read or
    /// a watch calls. A converted JSON or protobuf view is made once per object, by the first
    /// task that asks, the others awaiting it; a Table is made per use, like every Table.
    /// Views that need no conversion are [`CachedObject::encoded`] as they are.
    pub async fn converted(
        &self,
        codec: &dyn ObjectCodec,
        shapes: &Shapes,
        view: View,
    ) -> Result<Bytes, StorageError> {
        if !shapes.converts(view.shape, codec) {
            return Ok(self.encoded(codec, shapes, view));
        }
        let (stored, revision) = (&self.kv.value, self.kv.mod_revision);
        if view.table {
            return codec.convert(stored, revision, view, shapes).await;
        }
        let kept = self
            .slot(slot_of(view.shape, view.protobuf))
            .get_or_init(|| Kept::Converted(Box::default()));
        match kept {
            Kept::Converted(cell) => cell
                .get_or_try_init(|| codec.convert(stored, revision, view, shapes))
                .await
                .cloned(),
            // Made synchronously before (`kept_or_encode`), or a splice point (a shape that
            // stopped converting: not reachable while shapes keep their resources).
            _ => Ok(self.kept_or_encode(kept, codec, shapes, view)),
        }
    }
}

/// The API shapes of one storage prefix, numbered: the resources that share it (any number;
/// the first is the one whose fields the cache indexes). A shape keeps its number for the life
/// of the cache: shapes are only ever appended ([`Shapes::with`]).
#[derive(Debug, Clone)]
pub struct Shapes {
    resources: Vec<Arc<ResourceInfo>>,
    /// Per shape, whether it converts ([`ObjectCodec::converts`]), asked the first time the
    /// shape is served (a shape is added before its resource is routed to, and the codec may
    /// only know it from then on).
    converts: Vec<OnceLock<bool>>,
}

impl Shapes {
    pub fn new(resources: Vec<Arc<ResourceInfo>>) -> Shapes {
        assert!(
            !resources.is_empty(),
            "a storage prefix is served in at least one shape"
        );
        let converts = resources.iter().map(|_| OnceLock::new()).collect();
        Shapes {
            resources,
            converts,
        }
    }

    /// These shapes and `resource` after them (itself if it is one of them already).
    pub fn with(&self, resource: Arc<ResourceInfo>) -> Shapes {
        let mut shapes = self.clone();
        if self.index_of(&resource).is_none() {
            shapes.resources.push(resource);
            shapes.converts.push(OnceLock::new());
        }
        shapes
    }

    /// Whether shape number `shape` is converted (stored in another version's shape): its
    /// views are made off the shard threads. One atomic load once known.
    pub fn converts(&self, shape: usize, codec: &dyn ObjectCodec) -> bool {
        *self.converts[shape].get_or_init(|| codec.converts(&self.resources[shape]))
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ResourceInfo>> + '_ {
        self.resources.iter()
    }

    /// The resource whose fields the cache indexes (the first one).
    pub fn primary(&self) -> &Arc<ResourceInfo> {
        &self.resources[0]
    }

    pub fn get(&self, shape: usize) -> &Arc<ResourceInfo> {
        &self.resources[shape]
    }

    /// The shape number of `resource`, if it is one of these shapes. There is no default: a
    /// version the cache does not serve is the caller's error to report, never served in
    /// another version's shape.
    pub fn index_of(&self, resource: &ResourceInfo) -> Option<usize> {
        self.resources.iter().position(|r| {
            r.group == resource.group
                && r.version == resource.version
                && r.resource == resource.resource
        })
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
    use std::collections::HashMap;
    use std::sync::Mutex;

    use kubecache_core::registry::NAMESPACED;

    /// configmaps in `version`: one more API shape of the same storage.
    fn configmaps(version: &str) -> Arc<ResourceInfo> {
        Arc::new(
            ResourceInfo::new(
                "",
                version,
                "configmaps",
                "configmap",
                "ConfigMap",
                NAMESPACED,
            )
            .stored_at("configmaps"),
        )
    }

    /// Renders each shape as `<version>:<revision>:<format>` and counts every encode by
    /// (version, format); the versions in `splicing` are served spliced.
    struct Counting {
        splicing: &'static [&'static str],
        /// Versions that convert ([`ObjectCodec::converts`]).
        converting: &'static [&'static str],
        encodes: Mutex<HashMap<(String, &'static str), usize>>,
    }

    impl Counting {
        fn new(splicing: &'static [&'static str]) -> Counting {
            Counting {
                splicing,
                converting: &[],
                encodes: Mutex::default(),
            }
        }

        fn count(&self, shape: &ResourceInfo, format: &'static str) -> Bytes {
            *self
                .encodes
                .lock()
                .unwrap()
                .entry((shape.version.clone(), format))
                .or_default() += 1;
            Bytes::from(format!("{}:{format}", shape.version))
        }

        fn encodes(&self, version: &'static str, format: &'static str) -> usize {
            let encodes = self.encodes.lock().unwrap();
            encodes
                .get(&(version.to_string(), format))
                .copied()
                .unwrap_or(0)
        }
    }

    impl ObjectCodec for Counting {
        fn attributes(&self, r: &ResourceInfo, kv: &KeyValue) -> Result<ObjectAttrs, StorageError> {
            json::attributes(r, kv)
        }
        fn encode(&self, _stored: &[u8], _revision: Revision, shape: &ResourceInfo) -> Bytes {
            self.count(shape, "json")
        }
        fn splice_point(&self, stored: &[u8], shape: &ResourceInfo) -> Option<usize> {
            self.splicing
                .contains(&shape.version.as_str())
                .then(|| json::splice_point(stored))?
        }
        fn encode_protobuf(&self, _: &[u8], _: Revision, shape: &ResourceInfo) -> Bytes {
            self.count(shape, "protobuf")
        }
        fn encode_table(&self, _: &[u8], _: Revision, shape: &ResourceInfo) -> Bytes {
            self.count(shape, "table")
        }
        fn bookmark(&self, shape: &ResourceInfo, _: Revision, _: bool) -> Bytes {
            Bytes::from(shape.version.clone())
        }
        fn converts(&self, shape: &ResourceInfo) -> bool {
            self.converting.contains(&shape.version.as_str())
        }
        fn convert<'a>(
            &'a self,
            stored: &'a [u8],
            revision: Revision,
            view: View,
            shapes: &'a Shapes,
        ) -> futures::future::BoxFuture<'a, Result<Bytes, StorageError>> {
            Box::pin(async move {
                // Waits, as a webhook would: every other task asking meanwhile must wait for
                // this conversion rather than make its own.
                tokio::task::yield_now().await;
                Ok(self.encode_view(stored, revision, view, shapes))
            })
        }
    }

    fn object() -> Arc<CachedObject> {
        let kv = KeyValue {
            key: "/registry/configmaps/default/c".into(),
            value: Bytes::from_static(
                br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"default"}}"#,
            ),
            create_revision: 7,
            mod_revision: 7,
        };
        CachedObject::from_kv(&Counting::new(&[]), &configmaps("v1"), kv).unwrap()
    }

    /// How many slot blocks the object has allocated.
    fn blocks(object: &CachedObject) -> usize {
        let mut n = 0;
        let mut next = object.kept.get();
        while let Some(block) = next {
            n += 1;
            next = block.next.get();
        }
        n
    }

    #[test]
    fn any_number_of_shapes_each_encoded_once_per_view() {
        // v1 (inline) and v4 (past the inline shapes) splice; the others are converted.
        let codec = Counting::new(&["v1", "v4"]);
        let versions = ["v1", "v2", "v3", "v4", "v5"];
        let shapes = Shapes::new(versions.map(configmaps).to_vec());
        let object = object();
        for _ in 0..3 {
            for (shape, version) in versions.iter().enumerate() {
                let json = object.json(&codec, &shapes, shape);
                let mut written = BytesMut::new();
                object.write_json(&codec, &shapes, shape, &mut written);
                assert_eq!(json, written.freeze());
                if ["v1", "v4"].contains(version) {
                    let served: serde_json::Value = serde_json::from_slice(&json).unwrap();
                    assert_eq!(served["metadata"]["resourceVersion"], "7");
                } else {
                    assert_eq!(json, format!("{version}:json").as_bytes());
                }
                let protobuf = object.protobuf(&codec, &shapes, shape);
                assert_eq!(protobuf, format!("{version}:protobuf").as_bytes());
                let table = View {
                    shape,
                    table: true,
                    protobuf: false,
                };
                assert_eq!(
                    object.encoded(&codec, &shapes, table),
                    format!("{version}:table").as_bytes()
                );
            }
        }
        for version in versions {
            let converted = usize::from(!["v1", "v4"].contains(&version));
            assert_eq!(codec.encodes(version, "json"), converted, "{version} JSON");
            assert_eq!(codec.encodes(version, "protobuf"), 1, "{version} protobuf");
            // Tables are not kept on the object (their age column moves with the clock).
            assert_eq!(codec.encodes(version, "table"), 3, "{version} tables");
        }
        // Five shapes' JSON and protobuf: ten slots, three blocks of four.
        assert_eq!(blocks(&object), 3);
    }

    /// A converted view is made once however many tasks ask for it at the same time (one
    /// converts, the others wait), and the synchronous encoders then find it made; a shape
    /// that does not convert is encoded as before.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn converted_views_are_made_once_by_the_first_task_that_asks() {
        let codec = Arc::new(Counting {
            converting: &["v2", "v3"],
            ..Counting::new(&["v1"])
        });
        let shapes = Arc::new(Shapes::new(["v1", "v2", "v3"].map(configmaps).to_vec()));
        let object = object();
        let views = [
            (1, false, false),
            (1, false, true),
            (2, false, false),
            (1, true, false),
            (0, false, false),
        ]
        .map(|(shape, table, protobuf)| View {
            shape,
            table,
            protobuf,
        });
        let mut tasks = Vec::new();
        for _ in 0..8 {
            for view in views {
                let (codec, shapes, object) = (codec.clone(), shapes.clone(), object.clone());
                tasks.push(tokio::spawn(async move {
                    let made = object.converted(codec.as_ref(), &shapes, view).await;
                    (view, made.unwrap())
                }));
            }
        }
        for task in tasks {
            let (view, made) = task.await.unwrap();
            if view.shape == 0 {
                assert!(made.starts_with(b"{\"apiVersion\":\"v1\""), "spliced");
            } else {
                assert_eq!(made, object.encoded(codec.as_ref(), &shapes, view));
            }
        }
        assert_eq!(codec.encodes("v2", "json"), 1);
        assert_eq!(codec.encodes("v2", "protobuf"), 1);
        assert_eq!(codec.encodes("v3", "json"), 1);
        // Eight concurrent Tables and the eight `encoded` compared with them: made per use.
        assert_eq!(codec.encodes("v2", "table"), 8 + 8);
        assert!(shapes.converts(1, codec.as_ref()) && !shapes.converts(0, codec.as_ref()));
        // The stored shape splices: nothing converted, nothing kept for it.
        assert_eq!(codec.encodes("v1", "json"), 0);
    }

    #[test]
    fn views_never_asked_for_cost_nothing() {
        let codec = Counting::new(&["v1", "v3"]);
        let shapes = Shapes::new(["v1", "v2", "v3"].map(configmaps).to_vec());
        let object = object();
        // The stored shape, spliced: no allocation at all.
        object.json(&codec, &shapes, 0);
        assert_eq!(blocks(&object), 0);
        // A converted shape's JSON is kept: one block.
        object.json(&codec, &shapes, 1);
        assert_eq!(blocks(&object), 1);
        // The third shape's splice point lives in the second block.
        let mut out = BytesMut::new();
        object.write_json(&codec, &shapes, 2, &mut out);
        assert_eq!(blocks(&object), 2);
        assert!(
            out.starts_with(b"{\"apiVersion\":\"v1\""),
            "spliced from the stored bytes"
        );
        assert_eq!(codec.encodes("v3", "json"), 0);
    }

    #[test]
    fn unknown_shapes_are_not_served_as_another() {
        let shapes = Shapes::new(vec![configmaps("v1"), configmaps("v2")]);
        assert_eq!(shapes.index_of(&configmaps("v2")), Some(1));
        assert_eq!(shapes.index_of(&configmaps("v3")), None);
        let more = shapes.with(configmaps("v3")).with(configmaps("v2"));
        assert_eq!(more.len(), 3, "a shape served already is not added twice");
        assert_eq!(
            more.index_of(&configmaps("v1")),
            Some(0),
            "numbers are kept"
        );
        assert_eq!(more.index_of(&configmaps("v3")), Some(2));
    }

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
