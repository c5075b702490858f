//! # kubecache-cache
//!
//! The read path between the API handlers and storage. Handlers serve GET, LIST and WATCH
//! through [`ReadPath`] and never read a backend themselves, so where reads come from is one
//! decision made at startup:
//!
//! - [`Passthrough`] reads storage directly (kube-apiserver with `--watch-cache=false`);
//! - the sharded watch cache serves them from memory.
//!
//! The vocabulary is kube-apiserver's: a read is at a [`ReadAt`] (resourceVersion and
//! resourceVersionMatch), selects with a [`Filter`], and yields [`CachedObject`]s — stored
//! bytes with their labels and fields extracted once and their encodings made at most once per
//! view asked for (API version × JSON or protobuf). A watch yields ready-to-write frames.
//!
//! The set of resources is not fixed: the registry adds and removes resources, and versions
//! of them, while the server runs ([`ReadPath::add_resource`], [`ReadPath::add_shape`],
//! [`ReadPath::remove_resource`]).

pub mod attrs;
pub mod json;
pub mod object;
pub mod passthrough;
#[cfg(feature = "testing")]
pub mod testing;
pub mod watch_cache;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::BoxStream;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::storage::{Result, Revision};

pub use object::{CachedObject, Filter, ObjectAttrs, ObjectCodec, Shapes, View};
pub use passthrough::Passthrough;
pub use watch_cache::{Config as WatchCacheConfig, ResourceCacheStats, WatchCache};

/// Which state a read must reflect (kube-apiserver's resourceVersion semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAt {
    /// resourceVersion unset: every write acknowledged before the read began.
    Latest,
    /// resourceVersion=0: any state at hand, however recent.
    Any,
    /// resourceVersionMatch=NotOlderThan: this revision or newer; waits briefly for it, then
    /// fails with `FutureRevision`.
    NotOlderThan(Revision),
    /// resourceVersionMatch=Exact (and continue tokens): exactly this revision, or
    /// `Compacted` when it is no longer retained.
    Exact(Revision),
}

/// How long a read waits for a revision it has not reached yet.
pub const WAIT_FOR_REVISION: Duration = Duration::from_secs(3);

/// A LIST.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// The resource asked for: its fields are selectable, its shape is served.
    pub resource: Arc<ResourceInfo>,
    /// The storage prefix of every object of the resource (`/registry/pods/`).
    pub prefix: String,
    /// Start at this key (inclusive): a continue token's position.
    pub start_key: Option<String>,
    /// At most this many matching objects.
    pub limit: Option<usize>,
    pub at: ReadAt,
    pub filter: Arc<Filter>,
    /// How many objects the collection holds at and after `start_key` at the `Exact` revision
    /// read, when a continue token carried it (the previous page's `remaining`): lets an
    /// unfiltered page report `remaining` without counting the rest of the range. A hint: a
    /// value that contradicts the snapshot is ignored.
    pub remaining_hint: Option<i64>,
}

/// The objects a LIST found.
#[derive(Debug, Clone)]
pub struct ListResult {
    pub objects: Vec<Arc<CachedObject>>,
    /// The revision the list reflects.
    pub revision: Revision,
    /// When more objects may follow: the last key examined, to continue after.
    pub continue_after: Option<String>,
    /// Objects left after this page, when known (unfiltered lists).
    pub remaining: Option<i64>,
}

/// Where a WATCH starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Synthetic ADDED events for the state at `ReadAt`, then changes after it.
    Initial(ReadAt),
    /// Every change after this revision.
    After(Revision),
}

/// A WATCH.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub resource: Arc<ResourceInfo>,
    pub prefix: String,
    pub filter: Arc<Filter>,
    pub start: WatchStart,
    /// After the initial events, a BOOKMARK annotated `k8s.io/initial-events-end`.
    pub initial_events_end: bool,
    /// Each object as a one-row `meta.k8s.io/v1` Table (server-side printing).
    pub table: bool,
    /// Frames in the codec's protobuf encoding (see [`ObjectCodec::watch_frame`]).
    pub protobuf: bool,
    /// Periodic BOOKMARKs (allowWatchBookmarks).
    pub bookmarks: bool,
    /// How often bookmarks are sent.
    pub bookmark_interval: Duration,
    /// The watch ends after this long (timeoutSeconds); with bookmarks, one is sent shortly
    /// before.
    pub timeout: Duration,
}

impl ListRequest {
    /// The storage prefix the request reads: the resource's, narrowed to the namespace the
    /// filter names.
    pub fn collection_prefix(&self) -> String {
        collection_prefix(&self.resource, &self.prefix, &self.filter)
    }
}

impl WatchRequest {
    pub fn collection_prefix(&self) -> String {
        collection_prefix(&self.resource, &self.prefix, &self.filter)
    }
}

fn collection_prefix(resource: &ResourceInfo, prefix: &str, filter: &Filter) -> String {
    match &filter.namespace {
        Some(ns) if resource.namespaced => format!("{prefix}{ns}/"),
        _ => prefix.to_string(),
    }
}

/// Newline-delimited watch frames, ready to write; the stream ends when the watch does (an
/// ERROR frame first when it ends for a reason the client must act on).
pub type FrameStream = BoxStream<'static, Bytes>;

/// Where GET, LIST and WATCH are served from.
#[async_trait]
pub trait ReadPath: Send + Sync + 'static {
    /// One object at `at` (kube reads storage for `Latest`, the cache otherwise).
    async fn get(
        &self,
        resource: &ResourceInfo,
        key: &str,
        at: ReadAt,
    ) -> Result<Option<Arc<CachedObject>>>;

    async fn list(&self, request: ListRequest) -> Result<ListResult>;

    async fn watch(&self, request: WatchRequest) -> Result<FrameStream>;

    /// An object's JSON as `resource` serves it.
    fn json(&self, object: &CachedObject, resource: &ResourceInfo) -> Bytes;

    /// Appends an object's JSON as `resource` serves it to `out` (a LIST body): where the read
    /// path splices, without an intermediate copy.
    fn write_json(&self, object: &CachedObject, resource: &ResourceInfo, out: &mut BytesMut) {
        out.extend_from_slice(&self.json(object, resource));
    }

    /// Appends the JSON of `objects`, comma-separated, to `out` until it holds `fill` bytes
    /// or the objects run out (a LIST body's items, a chunk at a time); a comma precedes
    /// the first one too when `continued` (items were written before). Returns how many
    /// objects it wrote.
    fn write_json_items(
        &self,
        objects: &[Arc<CachedObject>],
        resource: &ResourceInfo,
        out: &mut BytesMut,
        fill: usize,
        continued: bool,
    ) -> usize {
        write_items_one_by_one(self, objects, resource, out, fill, continued)
    }

    /// An object in protobuf as `resource` serves it ([`ObjectCodec::encode_protobuf`]),
    /// encoded once per object where the read path caches objects.
    fn protobuf(&self, object: &CachedObject, resource: &ResourceInfo) -> Bytes;

    /// Converts `objects` into `resource`'s version where that is not their stored one
    /// ([`ObjectCodec::convert`]: it may wait, so the request's task awaits it here), in JSON
    /// or in protobuf: a GET or LIST calls it before it encodes, and the encoders above then
    /// find each conversion made, kept per object and version for every later reader. The
    /// default does nothing: a read path that keeps no objects (`Passthrough`) converts as it
    /// encodes, in the request's task too.
    async fn convert(
        &self,
        _objects: &[Arc<CachedObject>],
        _resource: &ResourceInfo,
        _protobuf: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// Whether every resource can be served (/readyz).
    async fn ready(&self) -> Result<()>;

    /// Counters of each resource's cache, for `/metrics` (none when reads are not cached).
    fn metrics(&self) -> Vec<ResourceCacheStats> {
        Vec::new()
    }

    // Resources that come and go while serving. The registry calls these around its own
    // change: `add_resource` / `add_shape` before it routes requests to the new resource or
    // version, `remove_resource` after it stopped routing them. A read path that caches
    // nothing (`Passthrough`) reads any prefix from storage and has nothing to do: the
    // defaults.

    /// Serves one more resource: the objects under the storage `prefix`, in `shapes` (the
    /// watch cache starts a cache for it, filling in the background).
    fn add_resource(&self, _prefix: String, _shapes: Shapes) -> Result<()> {
        Ok(())
    }

    /// Serves a resource in one more API version: `resource` shares the storage of one
    /// served already.
    fn add_shape(&self, _resource: Arc<ResourceInfo>) -> Result<()> {
        Ok(())
    }

    /// Stops serving a resource (every version sharing its storage): its watches end, its
    /// reads fail, what was held for it is freed. Returns once that is done.
    async fn remove_resource(&self, _resource: &ResourceInfo) -> Result<()> {
        Ok(())
    }
}

/// [`ReadPath::write_json_items`] through [`ReadPath::write_json`], one object at a time.
pub fn write_items_one_by_one<R: ReadPath + ?Sized>(
    reads: &R,
    objects: &[Arc<CachedObject>],
    resource: &ResourceInfo,
    out: &mut BytesMut,
    fill: usize,
    continued: bool,
) -> usize {
    let mut written = 0;
    while written < objects.len() && out.len() < fill {
        if continued || written > 0 {
            out.put_u8(b',');
        }
        reads.write_json(&objects[written], resource, out);
        written += 1;
    }
    written
}
