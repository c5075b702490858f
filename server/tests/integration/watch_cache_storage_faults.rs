//! The watch cache when its storage watch misbehaves, forced by a backend wrapper that can
//! hold watch events back (a gate) and break watch streams on demand:
//!
//! - a consistent read may prove the cache current while events are still on their way (a
//!   create and a delete that cancel out); those events must still reach watches that start
//!   before them;
//! - a broken storage watch whose resume revision was compacted meanwhile makes the cache
//!   relist, and its watchers end with 410 so their clients relist too — a gap is never
//!   served silently.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use kubecache_apimachinery::codec::JsonCodec;
use kubecache_apimachinery::registry::Registry;
use kubecache_cache::{
    Filter, ListRequest, ReadAt, ReadPath, Shapes, WatchCache, WatchCacheConfig, WatchRequest,
    WatchStart,
};
use kubecache_core::registry::ResourceInfo;
use kubecache_core::storage::{
    Backend, Deleted, KeyValue, ListOptions, ListPage, PrefixState, Result, Revision, StorageError,
    WatchStream,
};
use kubecache_storage::embedded::EmbeddedBackend;
use serde_json::{Value, json};
use tokio::sync::watch;

/// Bound on a wait for a frame that must come (a hang, not a speed check).
const PATIENCE: Duration = Duration::from_secs(30);

/// Delegates to a real backend, but its watch streams deliver nothing while the gate is shut,
/// and all of them fail (then end) when `breaks` is bumped; an event still held at the gate
/// when they break is never delivered, as by a connection that drops before it arrives.
struct GatedBackend {
    inner: EmbeddedBackend,
    open: watch::Sender<bool>,
    breaks: watch::Sender<u64>,
}

impl GatedBackend {
    fn new() -> Arc<GatedBackend> {
        Arc::new(GatedBackend {
            inner: EmbeddedBackend::in_memory(),
            open: watch::channel(true).0,
            breaks: watch::channel(0).0,
        })
    }
}

#[async_trait]
impl Backend for GatedBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        self.inner.list(options).await
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        self.inner.update(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted> {
        self.inner.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream> {
        let events = self.inner.watch(prefix, start).await?;
        let gate = self.open.subscribe();
        let mut breaks = self.breaks.subscribe();
        breaks.mark_unchanged();
        let state = (Some(events), gate, breaks);
        let stream = futures::stream::unfold(state, |(events, mut gate, mut breaks)| async move {
            let mut events = events?;
            // An event is held at the gate after it arrives, so closing the gate holds back
            // everything from then on, even an event a parked poll was about to receive.
            let next = async {
                let event = events.next().await;
                let _ = gate.wait_for(|open| *open).await;
                event
            };
            let event = tokio::select! {
                biased;
                _ = breaks.changed() => None,
                event = next => Some(event),
            };
            // A break wins over an event it finds held at the gate: the break can land after
            // the select looked at `breaks` but before the gate opened in the same poll. Tests
            // break before they open the gate, so a gate seen open makes that break visible.
            match event {
                Some(event) if !breaks.has_changed().unwrap_or(true) => {
                    event.map(|event| (event, (Some(events), gate, breaks)))
                }
                _ => Some((
                    Err(StorageError::Unavailable("connection reset (test)".into())),
                    (None, gate, breaks),
                )),
            }
        });
        Ok(stream.boxed())
    }
    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }
    async fn prefix_state(
        &self,
        prefix: &str,
        since: Revision,
        at: Option<Revision>,
    ) -> Result<PrefixState> {
        self.inner.prefix_state(prefix, since, at).await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
}

fn configmaps() -> Arc<ResourceInfo> {
    Registry::builtin()
        .lookup("", "v1", "configmaps")
        .unwrap()
        .info()
        .clone()
}

fn configmap(name: &str) -> Bytes {
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v"}});
    Bytes::from(serde_json::to_vec(&object).unwrap())
}

/// A watch cache of configmaps, on one shard, over a gated embedded store.
fn gated_cache() -> (Arc<GatedBackend>, WatchCache) {
    let backend = GatedBackend::new();
    let resource = configmaps();
    let cache = WatchCache::start(
        backend.clone(),
        Arc::new(JsonCodec::new(Arc::new(Registry::builtin()))),
        vec![(
            resource.storage_prefix("/registry"),
            Shapes::new(vec![resource]),
        )],
        WatchCacheConfig {
            shards: 1,
            ..Default::default()
        },
    );
    (backend, cache)
}

async fn next_frame(frames: &mut kubecache_cache::FrameStream) -> Value {
    // A bound on a hang, generous for a loaded machine.
    let frame = tokio::time::timeout(PATIENCE, frames.next())
        .await
        .expect("a frame within PATIENCE")
        .expect("the watch goes on");
    serde_json::from_slice(&frame).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proven_current_read_never_hides_events_still_on_their_way() {
    let (backend, cache) = gated_cache();
    let resource = configmaps();
    let prefix = resource.storage_prefix("/registry");
    let kept = backend
        .create(&format!("{prefix}default/kept"), configmap("kept"))
        .await
        .unwrap();
    let list = |at| ListRequest {
        resource: resource.clone(),
        prefix: prefix.clone(),
        start_key: None,
        limit: None,
        at,
        filter: Arc::new(Filter::default()),
        remaining_hint: None,
    };
    // The cache has caught up with `kept`.
    let listed = cache.list(list(ReadAt::Latest)).await.unwrap();
    assert_eq!(listed.objects.len(), 1);

    // Shut the gate: the next create and delete reach storage but not the cache.
    backend.open.send_replace(false);
    let created = backend
        .create(&format!("{prefix}default/brief"), configmap("brief"))
        .await
        .unwrap();
    let deleted = backend
        .delete(&format!("{prefix}default/brief"), None)
        .await
        .unwrap();

    // A consistent read proves the cache current (nothing changed, same count) and claims
    // the current revision, without waiting for the events.
    let listed = tokio::time::timeout(Duration::from_secs(2), cache.list(list(ReadAt::Latest)))
        .await
        .expect("no wait for held-back events")
        .unwrap();
    assert_eq!(listed.revision, deleted.revision);
    let names: Vec<&str> = listed.objects.iter().map(|o| o.attrs.name()).collect();
    assert_eq!(names, vec!["kept"]);

    // A watch from the list's revision starts after both events; a watch from the create's
    // revision must still see the delete; one from before the create sees both.
    let watch = |after: Revision| WatchRequest {
        table: false,
        protobuf: false,
        resource: resource.clone(),
        prefix: prefix.clone(),
        filter: Arc::new(Filter::default()),
        start: WatchStart::After(after),
        initial_events_end: false,
        bookmarks: false,
        bookmark_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(30),
    };
    // The state between the cache's last event and the proven revision is unknown while the
    // events are held back: an Exact read there must not answer with the proven state.
    let between = cache.list(list(ReadAt::Exact(created.mod_revision))).await;
    assert!(
        matches!(between, Err(StorageError::FutureRevision { .. })),
        "no answer without the events: {:?}",
        between.map(|l| l.objects.len())
    );

    let mut from_list = cache.watch(watch(listed.revision)).await.unwrap();
    let mut from_create = cache.watch(watch(created.mod_revision)).await.unwrap();
    let mut from_before = cache.watch(watch(kept.mod_revision)).await.unwrap();

    backend.open.send_replace(true);
    let later = backend
        .create(&format!("{prefix}default/later"), configmap("later"))
        .await
        .unwrap();

    let event = next_frame(&mut from_before).await;
    assert_eq!(
        (
            event["type"].as_str(),
            event["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("brief"))
    );
    let event = next_frame(&mut from_before).await;
    assert_eq!(
        (
            event["type"].as_str(),
            event["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("brief"))
    );
    assert_eq!(
        event["object"]["metadata"]["resourceVersion"],
        deleted.revision.to_string()
    );

    let event = next_frame(&mut from_create).await;
    assert_eq!(
        (
            event["type"].as_str(),
            event["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("brief"))
    );

    for frames in [&mut from_before, &mut from_create, &mut from_list] {
        let event = next_frame(frames).await;
        assert_eq!(
            (
                event["type"].as_str(),
                event["object"]["metadata"]["name"].as_str()
            ),
            (Some("ADDED"), Some("later"))
        );
        assert_eq!(
            event["object"]["metadata"]["resourceVersion"],
            later.mod_revision.to_string()
        );
    }

    // Exact reads between the create and the delete are served from history once the events
    // are in; at the list's revision, the state it served.
    let at_create = cache
        .list(list(ReadAt::Exact(created.mod_revision)))
        .await
        .unwrap();
    assert_eq!(at_create.objects.len(), 2);
    let at_list = cache
        .list(list(ReadAt::Exact(listed.revision)))
        .await
        .unwrap();
    assert_eq!(at_list.objects.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_resume_point_relists_and_ends_watchers_with_410() {
    let (backend, cache) = gated_cache();
    let resource = configmaps();
    let prefix = resource.storage_prefix("/registry");
    let first = backend
        .create(&format!("{prefix}default/first"), configmap("first"))
        .await
        .unwrap();
    let request = |start| WatchRequest {
        table: false,
        protobuf: false,
        resource: resource.clone(),
        prefix: prefix.clone(),
        filter: Arc::new(Filter::default()),
        start,
        initial_events_end: false,
        bookmarks: false,
        bookmark_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(30),
    };
    let mut watcher = cache
        .watch(request(WatchStart::Initial(ReadAt::Latest)))
        .await
        .unwrap();
    let event = next_frame(&mut watcher).await;
    assert_eq!(event["type"], "ADDED");

    // The cache stops hearing from storage; meanwhile writes happen and are compacted away.
    backend.open.send_replace(false);
    let second = backend
        .create(&format!("{prefix}default/second"), configmap("second"))
        .await
        .unwrap();
    backend
        .delete(&format!("{prefix}default/first"), None)
        .await
        .unwrap();
    let now = backend.current_revision().await.unwrap();
    backend.compact(now).await.unwrap();
    backend.breaks.send_modify(|n| *n += 1);
    backend.open.send_replace(true);

    // Resuming from its last revision fails as compacted: the cache relists and ends its
    // watchers with 410 Expired (the events in between can no longer be replayed).
    let event = next_frame(&mut watcher).await;
    assert_eq!(event["type"], "ERROR", "{event:#}");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    let end = tokio::time::timeout(PATIENCE, watcher.next()).await;
    assert!(matches!(end, Ok(None)), "the watch ends after the ERROR");

    // After the relist the cache serves storage's state, and its history starts there.
    let listed = cache
        .list(ListRequest {
            resource: resource.clone(),
            prefix: prefix.clone(),
            start_key: None,
            limit: None,
            at: ReadAt::Latest,
            filter: Arc::new(Filter::default()),
            remaining_hint: None,
        })
        .await
        .unwrap();
    let names: Vec<&str> = listed.objects.iter().map(|o| o.attrs.name()).collect();
    assert_eq!(names, vec!["second"]);
    assert!(listed.revision >= second.mod_revision);
    let stale = cache
        .watch(request(WatchStart::After(first.mod_revision)))
        .await;
    assert!(
        matches!(stale, Err(StorageError::Compacted { .. })),
        "a watch from before the relist cannot be served"
    );
    let relists: u64 = cache.stats().iter().map(|s| s.relists).sum();
    assert_eq!(relists, 1);
}
