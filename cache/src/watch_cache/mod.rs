//! The sharded watch cache: GET, LIST and WATCH served from memory.
//!
//! Each storage prefix (a resource, with every API version that shares its storage) has one
//! cache, placed on a shard by [`shard_for`]. A shard is a thread running a tokio
//! current-thread runtime; the cache's task on it is the only code that changes the cache
//! (its objects, history and watcher index). Everyone else reads the published state through
//! an `ArcSwap` — no lock on the read or fan-out path — or sends the task a command.
//!
//! The set of caches changes while serving: [`WatchCache::add_resource`] starts one more (on
//! the shard [`shard_for`] names), [`WatchCache::add_shape`] serves a resource in one more
//! version, [`WatchCache::remove_resource`] stops one. The map of caches is itself published
//! through an `ArcSwap` and replaced whole on a change (copy-on-write): a reader loads it
//! once, never locks, and a change to one resource is invisible to requests and watches of
//! the others.
//!
//! Consistency: a read that must see every acknowledged write (resourceVersion unset) asks
//! storage for the prefix's summary at its current revision R ([`Backend::prefix_state`]).
//! If nothing under the prefix was written after the cache's revision and the key counts
//! agree, the cache already is the state at R; otherwise the events up to R are on their
//! way, and the read waits for the cache to apply them and checks again. This needs no
//! progress notifications, whose ordering etcd 3.4.23 does not guarantee (etcd#15220).

pub mod resource;
pub mod state;
pub mod watchers;

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::status::{ApiError, Reason};
use kubecache_core::storage::{Backend, Result, Revision, StorageError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval, Sleep};

use self::resource::{Command, Initial, ResourceCache, ResourceHandle, Start};
use self::state::{CacheEvent, CacheState, Objects, Published, Queued};
use self::watchers::{ENDED_EXPIRED, ENDED_REMOVED, ENDED_TOO_SLOW, Ending, Frame};
use crate::object::{CachedObject, ObjectCodec, Shapes, View};
use crate::{
    FrameStream, ListRequest, ListResult, ReadAt, ReadPath, WAIT_FOR_REVISION, WatchRequest,
    WatchStart, write_items_one_by_one,
};

/// Tuning of the watch cache.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shard threads (default: one per core).
    pub shards: usize,
    /// History keeps at least this many events per resource...
    pub history_min_events: usize,
    /// ...and every event of at least this long ago...
    pub history_window: Duration,
    /// ...but never more than this many...
    pub history_max_events: usize,
    /// ...nor, beyond `history_min_events`, more object versions than this many bytes of
    /// stored JSON: a count alone is blind to object size, and at a high write rate 75 s of
    /// history is most of the server's memory.
    pub history_max_bytes: usize,
    /// Frames a watcher may have queued before it is ended as too slow.
    pub watcher_queue: usize,
    /// How long a read waits for the cache to catch up before answering 504.
    pub sync_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            history_min_events: 1_000,
            history_window: Duration::from_secs(75),
            history_max_events: 100_000,
            history_max_bytes: 48 << 20,
            watcher_queue: 1_024,
            sync_timeout: WAIT_FOR_REVISION,
        }
    }
}

/// The routing function: which shard serves the cache of a storage prefix (FNV-1a of the
/// prefix, so placement is stable across restarts and replicas).
pub fn shard_for(prefix: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in prefix.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards.max(1) as u64) as usize
}

/// A shard: one thread, one current-thread runtime.
struct Shard {
    runtime: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl Shard {
    fn start(index: usize) -> Shard {
        let (runtime_tx, runtime_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("kubecache-shard-{index}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("cannot start a shard runtime");
                let _ = runtime_tx.send(runtime.handle().clone());
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .expect("cannot start a shard thread");
        Shard {
            runtime: runtime_rx
                .recv()
                .expect("the shard thread reports its runtime"),
            stop: Some(stop),
        }
    }
}

/// Counters of one resource's cache, for metrics.
#[derive(Debug, Clone)]
pub struct ResourceCacheStats {
    pub prefix: String,
    /// The API versions served from it.
    pub shapes: usize,
    pub shard: usize,
    pub ready: bool,
    pub revision: Revision,
    pub objects: usize,
    pub history_events: usize,
    pub events_received: u64,
    pub relists: u64,
    pub watchers: i64,
    pub watchers_terminated_slow: u64,
    pub frames_sent: u64,
}

/// The caches by storage path (`pods`, `services/specs`, `example.com/widgets`, ...).
type Caches = HashMap<Box<str>, Arc<ResourceHandle>>;

/// Every resource's cache, on its shard.
pub struct WatchCache {
    backend: Arc<dyn Backend>,
    codec: Arc<dyn ObjectCodec>,
    config: Config,
    /// The caches, published whole: readers `load()` it (no lock), a change stores a copy.
    caches: ArcSwap<Caches>,
    /// Serializes changes of `caches` (add, remove) with each other; never taken by readers.
    changing: Mutex<()>,
    /// The storage paths of the caches started with the server: /readyz waits for those. A
    /// resource added later does not make a serving server unready while it lists; its own
    /// reads wait for it (up to the sync timeout).
    at_start: HashSet<Box<str>>,
    shards: Vec<Shard>,
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        for shard in &mut self.shards {
            if let Some(stop) = shard.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

impl WatchCache {
    /// Starts a cache for each `(storage prefix, shapes)` on its shard; they fill in the
    /// background ([`ReadPath::ready`] tells when all have).
    pub fn start(
        backend: Arc<dyn Backend>,
        codec: Arc<dyn ObjectCodec>,
        resources: Vec<(String, Shapes)>,
        config: Config,
    ) -> WatchCache {
        let shards: Vec<Shard> = (0..config.shards.max(1)).map(Shard::start).collect();
        let at_start = resources
            .iter()
            .map(|(_, shapes)| shapes.primary().storage_path.as_str().into())
            .collect();
        let cache = WatchCache {
            backend,
            codec,
            config,
            caches: ArcSwap::from_pointee(HashMap::new()),
            changing: Mutex::new(()),
            at_start,
            shards,
        };
        let mut caches = Caches::new();
        for (prefix, shapes) in resources {
            let handle = cache.spawn(prefix, shapes);
            caches.insert(
                handle.shapes().primary().storage_path.as_str().into(),
                handle,
            );
        }
        cache.caches.store(Arc::new(caches));
        cache
    }

    /// Starts the cache of `prefix` on its shard, listing in the background.
    fn spawn(&self, prefix: String, shapes: Shapes) -> Arc<ResourceHandle> {
        let shard = shard_for(&prefix, self.shards.len());
        let (handle, commands) = ResourceHandle::new(prefix, shapes, shard);
        let cache = ResourceCache::new(
            handle.clone(),
            self.backend.clone(),
            self.codec.clone(),
            self.config.clone(),
        );
        self.shards[shard].runtime.spawn(cache.run(commands));
        handle
    }

    /// Starts caching one more resource while serving: the storage `prefix` of objects served
    /// in `shapes` (keyed, like every cache, by the first shape's storage path). It lists and
    /// watches storage in the background, on the shard [`shard_for`] names; reads of it wait
    /// for its list (up to the sync timeout). Requests and watches of other resources do not
    /// notice. Fails with `KeyExists` if that storage path is cached already (to serve one more
    /// version of it, [`WatchCache::add_shape`]).
    pub fn add_resource(&self, prefix: String, shapes: Shapes) -> Result<()> {
        let path = shapes.primary().storage_path.clone();
        if let Some(other) = shapes.iter().find(|s| s.storage_path != path) {
            return Err(StorageError::Internal(format!(
                "{} is stored under {}, not {path}: not a shape of the same cache",
                other.api_version(),
                other.storage_path
            )));
        }
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        if self.caches.load().contains_key(path.as_str()) {
            return Err(StorageError::KeyExists { key: prefix });
        }
        let handle = self.spawn(prefix, shapes);
        let mut caches = Caches::clone(&self.caches.load());
        caches.insert(path.into(), handle);
        self.caches.store(Arc::new(caches));
        Ok(())
    }

    /// Serves a cached resource in one more version: `resource` shares the storage path of a
    /// cache and becomes its next shape (nothing changes if it is one already). Watches and
    /// reads in the other shapes go on untouched; cached objects encode the new shape when it
    /// is first asked for.
    pub fn add_shape(&self, resource: Arc<ResourceInfo>) -> Result<()> {
        // Serialized with add and remove: a version is never added to a cache being removed.
        let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        self.handle(&resource.storage_path)?.add_shape(resource);
        Ok(())
    }

    /// Stops caching a resource: its storage watch is dropped, its task ends, every watch of
    /// it ends (the stream closes after the frames it had queued, with no ERROR frame: what
    /// kube-apiserver does to the watches of a deleted CRD's resources), reads of it fail with
    /// `Unavailable`, and its memory is freed once in-flight reads let go of their snapshots.
    /// Returns when the task has stopped; `NotFound` if no cache has that storage path.
    pub async fn remove_resource(&self, resource: &ResourceInfo) -> Result<()> {
        let handle = {
            let _changing = self.changing.lock().unwrap_or_else(|e| e.into_inner());
            let mut caches = Caches::clone(&self.caches.load());
            let handle = caches
                .remove(resource.storage_path.as_str())
                .ok_or_else(|| StorageError::NotFound {
                    key: resource.storage_path.to_string(),
                })?;
            self.caches.store(Arc::new(caches));
            handle
        };
        let (done, stopped) = oneshot::channel();
        if handle.commands.send(Command::Stop { done }).is_ok() {
            // An error means the task is gone already (its shard stopped).
            let _ = stopped.await;
        }
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> Vec<ResourceCacheStats> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut stats: Vec<ResourceCacheStats> = self
            .caches
            .load()
            .values()
            .map(|h| {
                let p = h.load();
                ResourceCacheStats {
                    prefix: h.prefix.clone(),
                    shapes: h.shapes().len(),
                    shard: h.shard,
                    ready: p.state == CacheState::Ready,
                    revision: p.revision,
                    objects: p.objects.len(),
                    history_events: p.history.len(),
                    events_received: h.stats.events_received.load(Relaxed),
                    relists: h.stats.relists.load(Relaxed),
                    watchers: h.stats.watchers.registered.load(Relaxed),
                    watchers_terminated_slow: h.stats.watchers.terminated_slow.load(Relaxed),
                    frames_sent: h.stats.watchers.frames_sent.load(Relaxed),
                }
            })
            .collect();
        stats.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        stats
    }

    /// The cache of a storage path. None is `Unavailable`, as a read racing a removal gets
    /// from a stopped cache (kube-apiserver answers a stopped cacher's reads with 503).
    fn handle(&self, storage_path: &str) -> Result<Arc<ResourceHandle>> {
        self.caches
            .load()
            .get(storage_path)
            .cloned()
            .ok_or_else(|| {
                StorageError::Unavailable(format!(
                    "no watch cache serves {storage_path} (not served, or removed)"
                ))
            })
    }

    /// The cache serving `resource` and its shape number there: an API version the cache
    /// does not serve is an error, never served in another version's shape.
    fn serving(&self, resource: &ResourceInfo) -> Result<(Arc<ResourceHandle>, usize)> {
        let handle = self.handle(&resource.storage_path)?;
        let shape = handle.shapes().index_of(resource).ok_or_else(|| {
            StorageError::Unavailable(format!(
                "the watch cache of {} does not serve {}",
                handle.prefix,
                resource.api_version()
            ))
        })?;
        Ok((handle, shape))
    }

    /// The published state once the cache has listed, waiting up to the sync timeout.
    async fn ready_state(&self, handle: &ResourceHandle) -> Result<Arc<Published>> {
        let mut revisions = handle.revision.subscribe();
        let deadline = Instant::now() + self.config.sync_timeout;
        loop {
            let published = handle.load();
            match published.state {
                CacheState::Ready => return Ok(published),
                CacheState::Stopped => return Err(removed(handle)),
                CacheState::Pending => {
                    if let Some(failure) = &published.failure {
                        return Err(failure.clone());
                    }
                }
            }
            match tokio::time::timeout_at(deadline, revisions.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(StorageError::Unavailable(format!(
                        "the cache of {} is not ready yet",
                        handle.prefix
                    )));
                }
            }
        }
    }

    /// Brings the cache up to storage's current revision R and returns a state with its
    /// objects and the revision R they are exact at (see the module documentation).
    async fn sync(&self, handle: &ResourceHandle) -> Result<(Arc<Published>, Revision)> {
        let mut revisions = handle.revision.subscribe();
        let deadline = Instant::now() + self.config.sync_timeout;
        let mut target: Option<Revision> = None;
        loop {
            let published = self.ready_state(handle).await?;
            if target.is_some_and(|t| published.verified >= t) {
                let revision = published.verified;
                return Ok((published, revision));
            }
            // The current revision first, in one cheap round trip (a count of one key): a
            // cache already there needs no proof. Only a cache behind it asks for the prefix's
            // state, which etcd computes by reading every key under it.
            if target.is_none() {
                let current = self.backend.current_revision().await?;
                if published.verified >= current {
                    let revision = published.verified;
                    return Ok((published, revision));
                }
                target = Some(current);
            }
            let state = match self
                .backend
                .prefix_state(&handle.prefix, published.revision, target)
                .await
            {
                Ok(state) => state,
                // The target was compacted meanwhile: start over at the current revision.
                Err(StorageError::Compacted { .. }) if Instant::now() < deadline => {
                    target = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let target = *target.get_or_insert(state.revision);
            if published.verified >= target {
                let revision = published.verified;
                return Ok((published, revision));
            }
            if state.modified_since == 0 && state.count == published.objects.len() as i64 {
                let _ = handle.commands.send(Command::Advance {
                    verified_at: published.revision,
                    to: target,
                });
                return Ok((published, target));
            }
            // Events up to the target are on their way: wait for the cache to apply some.
            match tokio::time::timeout_at(deadline, revisions.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(StorageError::FutureRevision {
                        requested: target,
                        current: handle.load().revision,
                    });
                }
            }
        }
    }

    /// The objects a read at `at` sees, and the revision they reflect.
    async fn objects_for(
        &self,
        handle: &ResourceHandle,
        at: ReadAt,
    ) -> Result<(Objects, Revision)> {
        match at {
            ReadAt::Any => {
                let p = self.ready_state(handle).await?;
                Ok((p.objects.clone(), p.verified))
            }
            ReadAt::Latest => {
                let (p, revision) = self.sync(handle).await?;
                Ok((p.objects.clone(), revision))
            }
            ReadAt::NotOlderThan(n) => {
                let (p, revision) = self.at_least(handle, n).await?;
                Ok((p.objects.clone(), revision))
            }
            ReadAt::Exact(n) => Ok((self.exactly_at(handle, n).await?, n)),
        }
    }

    /// The objects exactly at `n`: from history once the cache has applied the events up to
    /// `n`; before that, its objects only if storage proves them exact at `n` itself. A proof
    /// at a later revision says nothing of the states in between: a pod may have come and
    /// gone, its two events still on their way.
    async fn exactly_at(&self, handle: &ResourceHandle, n: Revision) -> Result<Objects> {
        self.at_least(handle, n).await?;
        let mut revisions = handle.revision.subscribe();
        let deadline = Instant::now() + self.config.sync_timeout;
        loop {
            let p = self.ready_state(handle).await?;
            if n <= p.revision || n == p.verified {
                return p.objects_at(n);
            }
            let state = self
                .backend
                .prefix_state(&handle.prefix, p.revision, Some(n))
                .await?;
            if state.modified_since == 0 && state.count == p.objects.len() as i64 {
                return Ok(p.objects.clone());
            }
            // Events up to `n` are on their way: wait for the cache to apply some.
            match tokio::time::timeout_at(deadline, revisions.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(StorageError::FutureRevision {
                        requested: n,
                        current: handle.load().revision,
                    });
                }
            }
        }
    }

    /// A state at revision `n` or later, waiting briefly for it.
    async fn at_least(
        &self,
        handle: &ResourceHandle,
        n: Revision,
    ) -> Result<(Arc<Published>, Revision)> {
        let p = self.ready_state(handle).await?;
        if p.verified >= n {
            let revision = p.verified;
            return Ok((p, revision));
        }
        let deadline = Instant::now() + self.config.sync_timeout;
        loop {
            let (p, revision) = self.sync(handle).await?;
            if revision >= n {
                return Ok((p, revision));
            }
            if Instant::now() >= deadline {
                return Err(StorageError::FutureRevision {
                    requested: n,
                    current: revision,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a read of a cache that was removed meanwhile fails with.
fn removed(handle: &ResourceHandle) -> StorageError {
    StorageError::Unavailable(format!(
        "the cache of {} was removed (the resource is no longer served)",
        handle.prefix
    ))
}

/// Keys of `objects` under `prefix`, from `start` (inclusive) or after `after`.
fn range_from<'a>(
    objects: &'a Objects,
    prefix: &'a str,
    from: Bound<&'a str>,
) -> impl Iterator<Item = (&'a Arc<str>, &'a Arc<CachedObject>)> + 'a {
    objects
        .range::<_, str>((from, Bound::Unbounded))
        .take_while(move |(key, _)| key.starts_with(prefix))
}

#[async_trait]
impl ReadPath for WatchCache {
    async fn get(
        &self,
        resource: &ResourceInfo,
        key: &str,
        at: ReadAt,
    ) -> Result<Option<Arc<CachedObject>>> {
        let (handle, _) = self.serving(resource)?;
        if at == ReadAt::Latest {
            // As kube-apiserver: a GET without resourceVersion reads storage.
            return self
                .backend
                .get(key)
                .await?
                .map(|kv| CachedObject::from_kv(self.codec.as_ref(), resource, kv))
                .transpose();
        }
        let (objects, _) = self.objects_for(&handle, at).await?;
        Ok(objects.get(key).cloned())
    }

    async fn list(&self, request: ListRequest) -> Result<ListResult> {
        let (handle, _) = self.serving(&request.resource)?;
        let (objects, revision) = self.objects_for(&handle, request.at).await?;
        let collection = request.collection_prefix();
        let start = request.start_key.as_deref().unwrap_or(&collection);
        // A first page over the whole prefix walks the whole map: every key is under it, so
        // none needs comparing (reading each key's bytes is a cache miss per object).
        let mut keys: Box<dyn Iterator<Item = (&Arc<str>, &Arc<CachedObject>)> + Send> =
            if request.start_key.is_none() && collection == handle.prefix {
                Box::new(objects.iter())
            } else {
                Box::new(range_from(&objects, &collection, Bound::Included(start)))
            };
        // Without selectors every object in range matches: the range is the namespace's
        // collection when the filter names one (`ListRequest::collection_prefix`).
        let everything = request.filter.is_everything()
            && (request.filter.namespace.is_none() || request.resource.namespaced);
        let mut found = Vec::with_capacity(if everything { objects.len() } else { 0 });
        let mut last_key = None;
        let mut examined = 0i64;
        for (key, object) in keys.by_ref() {
            examined += 1;
            if everything || request.filter.matches(&object.attrs) {
                found.push(object.clone());
            }
            if request.limit.is_some_and(|l| found.len() >= l) {
                last_key = Some(key.to_string());
                break;
            }
        }
        // Whether anything follows the page (one step), and for unfiltered lists how much
        // (`remainingItemCount`, as kube: only without selectors). The count must not walk the
        // rest of the range, or a paged walk costs O(n²/page): it comes from the whole
        // prefix's size on a first page over it, or from the count the continue token carried
        // (the previous page's remainder); only without either is the rest counted, once.
        let more = last_key.is_some() && keys.next().is_some();
        let remaining = (more && request.filter.is_everything()).then(|| {
            let from_start = match &request.start_key {
                None if collection == handle.prefix => Some(objects.len() as i64),
                None => None,
                Some(_) => request.remaining_hint,
            };
            // `more` proves at least one object follows: a smaller figure is not this
            // snapshot's (a hand-edited token, another collection's), so count instead.
            match from_start.map(|n| n - examined) {
                Some(rest) if rest >= 1 => rest,
                _ => 1 + keys.count() as i64,
            }
        });
        Ok(ListResult {
            objects: found,
            revision,
            continue_after: last_key.filter(|_| more),
            remaining,
        })
    }

    async fn watch(&self, request: WatchRequest) -> Result<FrameStream> {
        let (handle, shape) = self.serving(&request.resource)?;
        let view = View {
            shape,
            table: request.table,
            protobuf: request.protobuf,
        };
        let mut attempts = 0;
        let registration = loop {
            let start = match request.start {
                WatchStart::Initial(at) => {
                    let (_, revision) = self.objects_for(&handle, at).await?;
                    Start::Current(if at == ReadAt::Any { 0 } else { revision })
                }
                WatchStart::After(n) => {
                    self.at_least(&handle, n).await?;
                    Start::After(n)
                }
            };
            let (reply, registered) = oneshot::channel();
            let stopping = || StorageError::Unavailable("the watch cache is stopping".into());
            handle
                .commands
                .send(Command::Register {
                    filter: request.filter.clone(),
                    view,
                    start,
                    reply,
                })
                .map_err(|_| stopping())?;
            match registered.await.map_err(|_| stopping())? {
                // The revision this read proved was overtaken by an event before the shard
                // recorded it; prove it again.
                Err(StorageError::FutureRevision { .. }) if attempts < 3 => attempts += 1,
                result => break result?,
            }
        };
        let collection = request.collection_prefix();
        let initial = match registration.initial {
            Initial::Objects { objects, revision } => InitialFrames::Objects {
                objects,
                revision,
                after: None,
            },
            Initial::Events(events) => InitialFrames::Events { events, next: 0 },
        };
        let timeout = request.timeout;
        let started = Instant::now();
        let shapes = handle.shapes();
        let connection = Connection {
            converts: shapes.converts(shape, self.codec.as_ref()),
            shapes,
            codec: self.codec.clone(),
            view,
            collection,
            initial,
            queue: registration.queue,
            ending: registration.ending,
            id: registration.id,
            revision: registration.revision,
            pending: VecDeque::new(),
            ticker: request.bookmarks.then(|| {
                tokio::time::interval_at(
                    started + request.bookmark_interval,
                    request.bookmark_interval,
                )
            }),
            deadline: Box::pin(tokio::time::sleep(timeout)),
            final_bookmark: (request.bookmarks && timeout > Duration::from_secs(3))
                .then(|| Box::pin(tokio::time::sleep(timeout - Duration::from_secs(2)))),
            finished: false,
            handle,
            request,
        };
        Ok(futures::stream::unfold(connection, Connection::next).boxed())
    }

    // The encoders below are handed objects a read found. If the resource or its version is
    // no longer cached (removed since), the object is encoded in exactly the asked version,
    // just not kept: an in-flight LIST still answers correctly.

    fn json(&self, object: &CachedObject, resource: &ResourceInfo) -> Bytes {
        match self.serving(resource) {
            Ok((handle, shape)) => object.json(self.codec.as_ref(), &handle.shapes(), shape),
            Err(_) => self
                .codec
                .encode(&object.kv.value, object.kv.mod_revision, resource),
        }
    }

    fn write_json(&self, object: &CachedObject, resource: &ResourceInfo, out: &mut BytesMut) {
        match self.serving(resource) {
            Ok((handle, shape)) => {
                object.write_json(self.codec.as_ref(), &handle.shapes(), shape, out)
            }
            Err(_) => out.extend_from_slice(&self.json(object, resource)),
        }
    }

    fn write_json_items(
        &self,
        objects: &[Arc<CachedObject>],
        resource: &ResourceInfo,
        out: &mut BytesMut,
        fill: usize,
        continued: bool,
    ) -> usize {
        let Ok((handle, shape)) = self.serving(resource) else {
            return write_items_one_by_one(self, objects, resource, out, fill, continued);
        };
        // The resource's encoding is looked up once per call, not per object.
        let shapes = handle.shapes();
        let codec = self.codec.as_ref();
        let mut written = 0;
        while written < objects.len() && out.len() < fill {
            // Objects lie scattered in memory: touch the one after next while this one is
            // copied, so its cache miss overlaps the copy instead of stalling the next write.
            if let Some(ahead) = objects.get(written + 2) {
                ahead.touch(shape);
            }
            if continued || written > 0 {
                out.put_u8(b',');
            }
            objects[written].write_json(codec, &shapes, shape, out);
            written += 1;
        }
        written
    }

    fn protobuf(&self, object: &CachedObject, resource: &ResourceInfo) -> Bytes {
        match self.serving(resource) {
            Ok((handle, shape)) => object.protobuf(self.codec.as_ref(), &handle.shapes(), shape),
            Err(_) => {
                self.codec
                    .encode_protobuf(&object.kv.value, object.kv.mod_revision, resource)
            }
        }
    }

    async fn convert(
        &self,
        objects: &[Arc<CachedObject>],
        resource: &ResourceInfo,
        protobuf: bool,
    ) -> Result<()> {
        // A resource no longer cached: its encoders encode in the caller's thread.
        let Ok((handle, shape)) = self.serving(resource) else {
            return Ok(());
        };
        let shapes = handle.shapes();
        let codec = self.codec.as_ref();
        if !shapes.converts(shape, codec) {
            return Ok(());
        }
        let view = View {
            shape,
            table: false,
            protobuf,
        };
        for object in objects {
            object.converted(codec, &shapes, view).await?;
        }
        Ok(())
    }

    async fn ready(&self) -> Result<()> {
        self.backend.health().await?;
        let caches = self.caches.load();
        match caches
            .iter()
            .filter(|(path, _)| self.at_start.contains(*path))
            .map(|(_, h)| h)
            // A cache that cannot list because of unreadable values answers with that error:
            // one bad key must not take the whole server out of its load balancer.
            .find(|h| {
                let published = h.load();
                published.state != CacheState::Ready && published.failure.is_none()
            }) {
            Some(pending) => Err(StorageError::Unavailable(format!(
                "the cache of {} has not synced",
                pending.prefix
            ))),
            None => Ok(()),
        }
    }

    fn metrics(&self) -> Vec<ResourceCacheStats> {
        self.stats()
    }

    fn add_resource(&self, prefix: String, shapes: Shapes) -> Result<()> {
        WatchCache::add_resource(self, prefix, shapes)
    }

    fn add_shape(&self, resource: Arc<ResourceInfo>) -> Result<()> {
        WatchCache::add_shape(self, resource)
    }

    async fn remove_resource(&self, resource: &ResourceInfo) -> Result<()> {
        WatchCache::remove_resource(self, resource).await
    }
}

/// What a watch sends before its queue.
enum InitialFrames {
    /// ADDED for each matching object, in key order, resuming after `after`.
    Objects {
        objects: Objects,
        revision: Revision,
        after: Option<Arc<str>>,
    },
    /// Retained events to replay.
    Events {
        events: Vec<Arc<CacheEvent>>,
        next: usize,
    },
    Done,
}

/// One client's watch, as the response body polls it: initial frames, then the frames the
/// shard queued, with bookmarks and the timeout interleaved. Dropping it unregisters.
struct Connection {
    handle: Arc<ResourceHandle>,
    /// The resource's shapes when the watch started: its own shape keeps its number for the
    /// life of the cache (shapes are only appended).
    shapes: Arc<Shapes>,
    /// The watch's view converts: its frames are made here, in the watch's task (the shard
    /// queues [`Queued::Deferred`] for them), never on the shard.
    converts: bool,
    codec: Arc<dyn ObjectCodec>,
    request: WatchRequest,
    view: View,
    /// The storage prefix this watch covers (narrowed to its namespace).
    collection: String,
    initial: InitialFrames,
    queue: mpsc::Receiver<Frame>,
    ending: Arc<Ending>,
    id: u64,
    /// The revision the client has been brought to.
    revision: Revision,
    /// Frames to go out before anything else.
    pending: VecDeque<Queued>,
    ticker: Option<Interval>,
    deadline: Pin<Box<Sleep>>,
    final_bookmark: Option<Pin<Box<Sleep>>>,
    finished: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.handle.commands.send(Command::Unregister(self.id));
    }
}

impl Connection {
    fn bookmark(&self, revision: Revision, initial_events_end: bool) -> Bytes {
        let bookmark = self
            .codec
            .bookmark(&self.request.resource, revision, initial_events_end);
        self.codec.watch_frame(self.view, "BOOKMARK", &bookmark)
    }

    fn error_frame(&self, error: &ApiError) -> Bytes {
        let status = error.status().to_json();
        self.codec.watch_frame(self.view, "ERROR", &status)
    }

    /// Queues a BOOKMARK after every frame already queued for revisions up to the cache's
    /// published revision (the shard queues frames before it publishes their revision).
    fn push_bookmark(&mut self) {
        let published = self.handle.load().revision;
        while let Ok((revision, frame)) = self.queue.try_recv() {
            self.revision = revision;
            self.pending.push_back(frame);
        }
        self.revision = self.revision.max(published);
        let bookmark = self.bookmark(self.revision, false);
        self.pending.push_back(Queued::Ready(bookmark));
    }

    /// The frame `queued` stands for: made here, in the watch's task, when the shard left it
    /// to convert (the first watcher of the view to get here makes it for all).
    async fn resolve(&mut self, queued: Queued) -> Bytes {
        match queued {
            Queued::Ready(frame) => frame,
            Queued::Deferred(deferred) => {
                match deferred.frame(self.codec.as_ref(), &self.shapes).await {
                    Ok(frame) => frame,
                    Err(error) => self.conversion_failed(error),
                }
            }
        }
    }

    /// Ends the watch after an object could not be converted into its version: an ERROR
    /// frame with an internal error, as kube-apiserver ends a watch whose event it cannot
    /// convert; the client re-watches.
    fn conversion_failed(&mut self, error: StorageError) -> Bytes {
        self.finished = true;
        self.initial = InitialFrames::Done;
        self.pending.clear();
        self.error_frame(&ApiError::internal(format!(
            "converting to {}: {error}",
            self.request.resource.api_version()
        )))
    }

    /// An initial ADDED frame of `object`.
    async fn added(&mut self, object: &CachedObject) -> Bytes {
        let json = if self.converts {
            match object
                .converted(self.codec.as_ref(), &self.shapes, self.view)
                .await
            {
                Ok(json) => json,
                Err(error) => return self.conversion_failed(error),
            }
        } else {
            object.encoded(self.codec.as_ref(), &self.shapes, self.view)
        };
        self.codec.watch_frame(self.view, "ADDED", &json)
    }

    /// The next initial frame, or `None` once they are all out.
    async fn next_initial(&mut self) -> Option<Bytes> {
        loop {
            match &mut self.initial {
                InitialFrames::Objects {
                    objects,
                    revision,
                    after,
                } => {
                    let from = match after {
                        Some(key) => Bound::Excluded(&**key),
                        None => Bound::Included(self.collection.as_str()),
                    };
                    let next = range_from(objects, &self.collection, from)
                        .find(|(_, o)| self.request.filter.matches(&o.attrs))
                        .map(|(k, o)| (k.clone(), o.clone()));
                    match next {
                        Some((key, object)) => {
                            *after = Some(key);
                            return Some(self.added(&object).await);
                        }
                        None => {
                            let revision = *revision;
                            self.revision = revision;
                            self.initial = InitialFrames::Done;
                            if self.request.initial_events_end {
                                return Some(self.bookmark(revision, true));
                            }
                        }
                    }
                }
                InitialFrames::Events { events, next } => {
                    while *next < events.len() {
                        let event = events[*next].clone();
                        *next += 1;
                        self.revision = event.revision;
                        if !event.key.starts_with(self.collection.as_str()) {
                            continue;
                        }
                        let Some(kind) = event.kind_for(&self.request.filter) else {
                            continue;
                        };
                        if !self.converts {
                            let codec = self.codec.as_ref();
                            return Some(event.frame(kind, self.view, codec, &self.shapes));
                        }
                        let codec = self.codec.as_ref();
                        let frame = event.converted_frame(kind, self.view, codec, &self.shapes);
                        return Some(match frame.await {
                            Ok(frame) => frame,
                            Err(error) => self.conversion_failed(error),
                        });
                    }
                    self.initial = InitialFrames::Done;
                }
                InitialFrames::Done => return None,
            }
        }
    }

    /// The frame that ends a watch the cache closed, if it closed it for a reason.
    fn ending_frame(&self) -> Option<Bytes> {
        match self.ending.get() {
            ENDED_TOO_SLOW => {
                let mut error = ApiError::new(
                    429,
                    Reason::TooManyRequests,
                    format!(
                        "the watch fell too far behind; resume from resourceVersion {}",
                        self.revision
                    ),
                );
                error.retry_after_seconds = Some(1);
                Some(self.error_frame(&error))
            }
            ENDED_EXPIRED => Some(self.error_frame(&ApiError::expired(format!(
                "too old resource version: {} (the cache had to relist)",
                self.revision
            )))),
            // ENDED_REMOVED: a plain end, as kube-apiserver ends a deleted CRD's watches.
            _ => None,
        }
    }

    async fn next(mut self) -> Option<(Bytes, Connection)> {
        loop {
            if let Some(queued) = self.pending.pop_front() {
                let frame = self.resolve(queued).await;
                return Some((frame, self));
            }
            if self.finished {
                return None;
            }
            if self.ending.get() == ENDED_REMOVED {
                // The resource was removed: whatever initial frames are left are not sent.
                // Frames the shard had queued still go out first, then the stream ends.
                self.initial = InitialFrames::Done;
            }
            if let Some(frame) = self.next_initial().await {
                return Some((frame, self));
            }
            let Connection {
                deadline,
                queue,
                ticker,
                final_bookmark,
                ..
            } = &mut self;
            let tick = async {
                match ticker {
                    Some(ticker) => ticker.tick().await,
                    None => std::future::pending().await,
                }
            };
            let last_call = async {
                match final_bookmark {
                    Some(sleep) => sleep.await,
                    None => std::future::pending().await,
                }
            };
            let woken = tokio::select! {
                biased;
                _ = deadline => Wake::Deadline,
                item = queue.recv() => Wake::Queue(item),
                _ = tick => Wake::Bookmark,
                _ = last_call => Wake::LastBookmark,
            };
            match woken {
                Wake::Deadline => self.finished = true,
                Wake::Queue(Some((revision, queued))) => {
                    self.revision = revision;
                    let frame = self.resolve(queued).await;
                    return Some((frame, self));
                }
                Wake::Queue(None) => {
                    self.finished = true;
                    if let Some(frame) = self.ending_frame() {
                        self.pending.push_back(Queued::Ready(frame));
                    }
                }
                Wake::Bookmark => self.push_bookmark(),
                Wake::LastBookmark => {
                    self.final_bookmark = None;
                    self.push_bookmark();
                }
            }
        }
    }
}

/// What woke a watch connection up.
enum Wake {
    Deadline,
    Queue(Option<Frame>),
    Bookmark,
    LastBookmark,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_stable_and_in_range() {
        for shards in 1..5 {
            for prefix in [
                "/registry/pods/",
                "/registry/minions/",
                "/registry/services/specs/",
            ] {
                let shard = shard_for(prefix, shards);
                assert!(shard < shards);
                assert_eq!(shard, shard_for(prefix, shards));
            }
        }
        let spread: std::collections::HashSet<usize> = (0..32)
            .map(|i| shard_for(&format!("/registry/r{i}/"), 4))
            .collect();
        assert_eq!(spread.len(), 4, "prefixes spread over every shard");
    }
}
