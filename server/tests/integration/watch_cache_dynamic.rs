//! Resources that come and go while the watch cache serves, at the `ReadPath` level:
//!
//! - a resource added at run time is listed, read and watched; removed, its watches end
//!   cleanly (no ERROR frame), its reads fail, its storage watch stops and its objects are
//!   freed — while a watch of pods on the same shard loses none of the pod events written
//!   all along, in order;
//! - a resource served in three versions (then a fourth, added while watched) serves each in
//!   its own shape, and encodes each (event, view) at most once however many watchers share
//!   it; a version it does not serve is an error.
//!
//! No assertion is about time: every wait is for something observable, bounded only so that a
//! broken cache fails the test instead of hanging it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use kubecache_apimachinery::registry::Registry;
use kubecache_cache::{
    Filter, FrameStream, ListRequest, ObjectAttrs, ObjectCodec, ReadAt, ReadPath, Shapes,
    WatchCache, WatchCacheConfig, WatchRequest, WatchStart, json,
};
use kubecache_core::registry::{NAMESPACED, ResourceInfo};
use kubecache_core::storage::{
    Backend, Deleted, KeyValue, ListOptions, ListPage, PrefixState, Result, Revision, StorageError,
    WatchStream,
};
use kubecache_storage::embedded::EmbeddedBackend;
use serde_json::{Value, json};

/// How long any one observable condition may take before the test fails.
const BOUND: Duration = Duration::from_secs(30);

// ============================================================================================
// Harness
// ============================================================================================

/// An embedded store that counts the watch streams open on each prefix (a stream counts
/// until it is dropped): shows that a removed resource's storage watch stops.
struct CountingBackend {
    inner: EmbeddedBackend,
    watches: Arc<Mutex<HashMap<String, usize>>>,
}

/// Counts one open watch stream until dropped.
struct OpenWatch {
    prefix: String,
    watches: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        *self
            .watches
            .lock()
            .unwrap()
            .entry(self.prefix.clone())
            .or_default() -= 1;
    }
}

impl CountingBackend {
    fn new() -> Arc<CountingBackend> {
        Arc::new(CountingBackend {
            inner: EmbeddedBackend::in_memory(),
            watches: Arc::default(),
        })
    }

    fn open_watches(&self, prefix: &str) -> usize {
        self.watches
            .lock()
            .unwrap()
            .get(prefix)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl Backend for CountingBackend {
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
        *self
            .watches
            .lock()
            .unwrap()
            .entry(prefix.to_string())
            .or_default() += 1;
        let open = OpenWatch {
            prefix: prefix.to_string(),
            watches: self.watches.clone(),
        };
        Ok(events
            .map(move |event| {
                let _counted = &open;
                event
            })
            .boxed())
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

fn pods() -> Arc<ResourceInfo> {
    Registry::builtin()
        .lookup("", "v1", "pods")
        .unwrap()
        .info()
        .clone()
}

/// A namespaced custom resource `example.com/<version> <plural>`, stored under
/// `/registry/example.com/<plural>/` (as kube stores custom resources).
fn custom(plural: &str, kind: &str, version: &str) -> Arc<ResourceInfo> {
    let singular = kind.to_lowercase();
    Arc::new(
        ResourceInfo::new("example.com", version, plural, &singular, kind, NAMESPACED)
            .stored_at(&format!("example.com/{plural}")),
    )
}

fn object(api_version: &str, kind: &str, name: &str, generation: u32) -> Bytes {
    let object = json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": "default"}, "spec": {"generation": generation}});
    Bytes::from(serde_json::to_vec(&object).unwrap())
}

fn pod(name: &str) -> Bytes {
    let object = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"}, "spec": {"nodeName": "n1"}});
    Bytes::from(serde_json::to_vec(&object).unwrap())
}

fn list_request(resource: &Arc<ResourceInfo>, at: ReadAt) -> ListRequest {
    ListRequest {
        resource: resource.clone(),
        prefix: resource.storage_prefix("/registry"),
        start_key: None,
        limit: None,
        at,
        filter: Arc::new(Filter::default()),
        remaining_hint: None,
    }
}

fn watch_request(resource: &Arc<ResourceInfo>) -> WatchRequest {
    WatchRequest {
        resource: resource.clone(),
        prefix: resource.storage_prefix("/registry"),
        filter: Arc::new(Filter::default()),
        start: WatchStart::Initial(ReadAt::Latest),
        initial_events_end: false,
        table: false,
        protobuf: false,
        bookmarks: false,
        bookmark_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(600),
    }
}

/// The next frame, or `None` when the stream ended.
async fn next_frame(frames: &mut FrameStream) -> Option<Value> {
    let frame = tokio::time::timeout(BOUND, frames.next())
        .await
        .expect("a frame, or the stream's end, in time")?;
    Some(serde_json::from_slice(&frame).expect("a JSON frame"))
}

async fn expect_frame(frames: &mut FrameStream, event_type: &str, name: &str) -> Value {
    let frame = next_frame(frames).await.expect("the watch goes on");
    assert_eq!(frame["type"], event_type, "{frame:#}");
    let object = &frame["object"];
    let object = match object["kind"].as_str() {
        Some("Table") => &object["rows"][0]["object"],
        _ => object,
    };
    assert_eq!(object["metadata"]["name"], name, "{frame:#}");
    object.clone()
}

/// Lists `resource` until the cache added at run time has listed it (a read of a cache still
/// listing waits, then fails with `Unavailable`, which a loaded machine may see).
async fn list_when_ready(cache: &WatchCache, resource: &Arc<ResourceInfo>) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        match cache.list(list_request(resource, ReadAt::Latest)).await {
            Ok(listed) => {
                return listed
                    .objects
                    .iter()
                    .map(|o| o.attrs.name().to_string())
                    .collect();
            }
            Err(StorageError::Unavailable(_)) if tokio::time::Instant::now() < deadline => {}
            Err(e) => panic!("the added resource is not served: {e}"),
        }
    }
}

/// Waits for the caches the server started with to have listed.
async fn until_ready(cache: &WatchCache) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while cache.ready().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache never got ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for `condition`, failing the test if it does not come to hold.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ============================================================================================
// 1. Added and removed while serving; other watches lose nothing
// ============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_added_and_removed_while_another_is_watched() {
    let backend = CountingBackend::new();
    let pods_prefix = pods().storage_prefix("/registry");
    // One shard: the added resource's task shares the pods cache's thread. The server's codec
    // knows only the built-in resources' strategies: the test's renders any resource.
    let cache = WatchCache::start(
        backend.clone(),
        Arc::new(VersionedCodec::default()),
        vec![(pods_prefix.clone(), Shapes::new(vec![pods()]))],
        WatchCacheConfig {
            shards: 1,
            ..WatchCacheConfig::default()
        },
    );
    until_ready(&cache).await;
    let mut pod_watch = cache.watch(watch_request(&pods())).await.unwrap();
    // What the pods watch receives, read as it comes.
    let seen: Arc<Mutex<Vec<(Revision, String)>>> = Arc::default();
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(frame) = pod_watch.next().await {
                let frame: Value = serde_json::from_slice(&frame).unwrap();
                assert_eq!(frame["type"], "ADDED", "{frame:#}");
                let rv: Revision = frame["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let name = frame["object"]["metadata"]["name"].as_str().unwrap();
                seen.lock().unwrap().push((rv, name.to_string()));
            }
            panic!("the pods watch ended");
        })
    };

    // Pods are written all along, by a writer of their own and between the steps below. At
    // most `WRITES` of them, fewer than a watch queue holds: even a reader that never got to
    // run could not overflow it.
    const WRITES: usize = 900;
    let written: Arc<Mutex<Vec<(Revision, String)>>> = Arc::default();
    let stop = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (backend, written, stop, prefix) = (
            backend.clone(),
            written.clone(),
            stop.clone(),
            pods_prefix.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0;
            while stop.load(Ordering::Relaxed) == 0 && i < WRITES {
                let name = format!("bg-{i:04}");
                let kv = backend
                    .create(&format!("{prefix}default/{name}"), pod(&name))
                    .await
                    .unwrap();
                written.lock().unwrap().push((kv.mod_revision, name));
                i += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let step = {
        let (backend, written, prefix) = (backend.clone(), written.clone(), pods_prefix.clone());
        move |name: &'static str| {
            let (backend, written, prefix) = (backend.clone(), written.clone(), prefix.clone());
            async move {
                let kv = backend
                    .create(&format!("{prefix}default/{name}"), pod(name))
                    .await
                    .unwrap();
                written
                    .lock()
                    .unwrap()
                    .push((kv.mod_revision, name.to_string()));
            }
        }
    };
    step("step-0").await;

    // Widgets exist in storage before the server serves them.
    let widgets = custom("widgets", "Widget", "v1");
    let prefix = widgets.storage_prefix("/registry");
    let widget = |name: &str| object("example.com/v1", "Widget", name, 1);
    backend
        .create(&format!("{prefix}default/w-0"), widget("w-0"))
        .await
        .unwrap();
    assert!(
        matches!(
            cache.list(list_request(&widgets, ReadAt::Any)).await,
            Err(StorageError::Unavailable(_))
        ),
        "not served before it is added"
    );

    // Added: listed, read and watched.
    cache
        .add_resource(prefix.clone(), Shapes::new(vec![widgets.clone()]))
        .unwrap();
    step("step-1").await;
    assert!(matches!(
        cache.add_resource(prefix.clone(), Shapes::new(vec![widgets.clone()])),
        Err(StorageError::KeyExists { .. })
    ));
    assert_eq!(list_when_ready(&cache, &widgets).await, vec!["w-0"]);
    let got = cache
        .get(&widgets, &format!("{prefix}default/w-0"), ReadAt::Any)
        .await
        .unwrap()
        .expect("w-0 is cached");
    let served: Value = serde_json::from_slice(&cache.json(&got, &widgets)).unwrap();
    assert_eq!(
        served["metadata"]["resourceVersion"],
        got.kv.mod_revision.to_string()
    );
    let w0 = Arc::downgrade(&got);
    drop(got);
    let mut widget_watch = cache.watch(watch_request(&widgets)).await.unwrap();
    expect_frame(&mut widget_watch, "ADDED", "w-0").await;
    backend
        .create(&format!("{prefix}default/w-1"), widget("w-1"))
        .await
        .unwrap();
    expect_frame(&mut widget_watch, "ADDED", "w-1").await;
    assert!(cache.stats().iter().any(|s| s.prefix == prefix));
    assert!(backend.open_watches(&prefix) >= 1);
    step("step-2").await;

    // Removed: its watch ends with no ERROR frame, its reads fail, its storage watch stops,
    // its objects are freed.
    cache.remove_resource(&widgets).await.unwrap();
    step("step-3").await;
    while let Some(frame) = next_frame(&mut widget_watch).await {
        assert_ne!(
            frame["type"], "ERROR",
            "a removed resource's watch ends plainly"
        );
    }
    drop(widget_watch);
    for at in [ReadAt::Latest, ReadAt::Any] {
        match cache.list(list_request(&widgets, at)).await {
            Err(StorageError::Unavailable(message)) => {
                assert!(message.contains("example.com/widgets"), "{message}")
            }
            other => panic!("a removed resource's list must fail: {other:?}"),
        }
        assert!(
            cache
                .get(&widgets, &format!("{prefix}default/w-0"), at)
                .await
                .is_err()
        );
    }
    assert!(cache.watch(watch_request(&widgets)).await.is_err());
    assert!(matches!(
        cache.remove_resource(&widgets).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(!cache.stats().iter().any(|s| s.prefix == prefix));
    until("the removed resource's storage watch stops", || {
        backend.open_watches(&prefix) == 0
    })
    .await;
    until("the removed resource's objects are freed", || {
        w0.upgrade().is_none()
    })
    .await;
    step("step-4").await;

    // Added again: served from storage as it is now.
    cache
        .add_resource(prefix.clone(), Shapes::new(vec![widgets.clone()]))
        .unwrap();
    assert_eq!(list_when_ready(&cache, &widgets).await, vec!["w-0", "w-1"]);
    step("step-5").await;

    // The pods watch saw every pod written throughout, once each, in revision order.
    stop.store(1, Ordering::Relaxed);
    writer.await.unwrap();
    let mut written = written.lock().unwrap().clone();
    written.sort();
    assert!(written.len() > 6, "the writer wrote during the test");
    until("the pods watch received every pod", || {
        reader.is_finished() || seen.lock().unwrap().len() >= written.len()
    })
    .await;
    assert!(!reader.is_finished(), "the pods watch stays open");
    reader.abort();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, written, "every pod event, in order, exactly once");
}

// ============================================================================================
// 2. Three shapes, then a fourth: each served in its own, each view encoded once per event
// ============================================================================================

/// Renders each shape with its own apiVersion (a stand-in for conversion) and counts every
/// encode by (version, format, revision). The storage version (v1) is served spliced, as the
/// server's codec serves stored shapes.
#[derive(Default)]
struct VersionedCodec {
    encodes: Mutex<HashMap<(String, &'static str, Revision), usize>>,
}

impl VersionedCodec {
    fn render(stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Value {
        let mut object: Value = serde_json::from_slice(stored).unwrap();
        object["apiVersion"] = json!(shape.api_version());
        json::set_resource_version(&mut object, revision);
        object
    }

    fn count(&self, shape: &ResourceInfo, format: &'static str, revision: Revision) {
        *self
            .encodes
            .lock()
            .unwrap()
            .entry((shape.version.to_string(), format, revision))
            .or_default() += 1;
    }

    /// Encodes made so far, by (version, format, revision).
    fn encodes(&self) -> HashMap<(String, &'static str, Revision), usize> {
        self.encodes.lock().unwrap().clone()
    }
}

impl ObjectCodec for VersionedCodec {
    fn attributes(
        &self,
        resource: &ResourceInfo,
        kv: &KeyValue,
    ) -> std::result::Result<ObjectAttrs, StorageError> {
        json::attributes(resource, kv)
    }

    fn encode(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes {
        self.count(shape, "json", revision);
        Bytes::from(serde_json::to_vec(&Self::render(stored, revision, shape)).unwrap())
    }

    fn splice_point(&self, stored: &[u8], shape: &ResourceInfo) -> Option<usize> {
        (shape.version == "v1").then(|| json::splice_point(stored))?
    }

    fn encode_table(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes {
        self.count(shape, "table", revision);
        let table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "rows": [{"cells": [], "object": Self::render(stored, revision, shape)}]});
        Bytes::from(serde_json::to_vec(&table).unwrap())
    }

    fn encode_protobuf(&self, stored: &[u8], revision: Revision, shape: &ResourceInfo) -> Bytes {
        self.count(shape, "protobuf", revision);
        let mut object = Self::render(stored, revision, shape);
        object["encoding"] = json!("protobuf");
        Bytes::from(serde_json::to_vec(&object).unwrap())
    }

    fn bookmark(&self, shape: &ResourceInfo, revision: Revision, _end: bool) -> Bytes {
        let bookmark = json!({"kind": shape.kind, "apiVersion": shape.api_version(),
            "metadata": {"resourceVersion": revision.to_string()}});
        Bytes::from(serde_json::to_vec(&bookmark).unwrap())
    }
}

/// A view of a watch: which version, in which format.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Json,
    Table,
    Protobuf,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shapes_each_served_and_each_view_encoded_once() {
    let backend = CountingBackend::new();
    let codec = Arc::new(VersionedCodec::default());
    let cache = WatchCache::start(
        backend.clone(),
        codec.clone(),
        vec![(
            pods().storage_prefix("/registry"),
            Shapes::new(vec![pods()]),
        )],
        WatchCacheConfig {
            shards: 2,
            ..WatchCacheConfig::default()
        },
    );
    until_ready(&cache).await;
    let [v1, v2, v3, v4] = ["v1", "v2", "v3", "v4"].map(|v| custom("gadgets", "Gadget", v));
    let prefix = v1.storage_prefix("/registry");
    cache
        .add_resource(
            prefix.clone(),
            Shapes::new(vec![v1.clone(), v2.clone(), v3.clone()]),
        )
        .unwrap();
    assert!(list_when_ready(&cache, &v2).await.is_empty());

    // A version the cache does not serve is an error, not another version's shape.
    assert!(matches!(
        cache.list(list_request(&v4, ReadAt::Any)).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(cache.watch(watch_request(&v4)).await.is_err());

    // Two watchers per view, so that sharing is what keeps each encode single.
    let views = [
        (v1.clone(), Format::Json),
        (v2.clone(), Format::Json),
        (v3.clone(), Format::Json),
        (v2.clone(), Format::Table),
        (v3.clone(), Format::Protobuf),
    ];
    let mut watches = Vec::new();
    for (resource, format) in views {
        for _ in 0..2 {
            let request = WatchRequest {
                table: format == Format::Table,
                protobuf: format == Format::Protobuf,
                ..watch_request(&resource)
            };
            watches.push((
                resource.clone(),
                format,
                cache.watch(request).await.unwrap(),
            ));
        }
    }
    let expect_all = |watches: &mut Vec<(Arc<ResourceInfo>, Format, FrameStream)>,
                      event_type: &'static str,
                      generation: u32| {
        let watches = std::mem::take(watches);
        async move {
            let mut back = Vec::new();
            for (resource, format, mut frames) in watches {
                let object = expect_frame(&mut frames, event_type, "g").await;
                assert_eq!(object["apiVersion"], resource.api_version(), "{object:#}");
                assert_eq!(object["spec"]["generation"], generation, "{object:#}");
                assert_eq!(
                    object["encoding"] == "protobuf",
                    format == Format::Protobuf,
                    "{object:#}"
                );
                back.push((resource, format, frames));
            }
            back
        }
    };

    let key = format!("{prefix}default/g");
    let created = backend
        .create(&key, object("example.com/v1", "Gadget", "g", 1))
        .await
        .unwrap();
    watches = expect_all(&mut watches, "ADDED", 1).await;

    // A fourth version, added while the others are watched: served lazily, the watches of the
    // others go on.
    cache.add_shape(v4.clone()).unwrap();
    let mut v4_watch = cache.watch(watch_request(&v4)).await.unwrap();
    let initial = expect_frame(&mut v4_watch, "ADDED", "g").await;
    assert_eq!(initial["apiVersion"], "example.com/v4");
    let updated = backend
        .update(
            &key,
            object("example.com/v1", "Gadget", "g", 2),
            created.mod_revision,
        )
        .await
        .unwrap();
    watches = expect_all(&mut watches, "MODIFIED", 2).await;
    let modified = expect_frame(&mut v4_watch, "MODIFIED", "g").await;
    assert_eq!(modified["apiVersion"], "example.com/v4");

    // A LIST in each version reuses what the watches made: no encode of its own.
    let before = codec.encodes();
    for resource in [v1, v2, v3, v4] {
        let listed = cache
            .list(list_request(&resource, ReadAt::Latest))
            .await
            .unwrap();
        assert_eq!(listed.objects.len(), 1);
        let served: Value =
            serde_json::from_slice(&cache.json(&listed.objects[0], &resource)).unwrap();
        assert_eq!(served["apiVersion"], resource.api_version());
        assert_eq!(served["spec"]["generation"], 2);
    }
    assert_eq!(codec.encodes(), before, "the LISTs encoded nothing anew");

    let deleted = backend.delete(&key, None).await.unwrap();
    watches = expect_all(&mut watches, "DELETED", 2).await;
    expect_frame(&mut v4_watch, "DELETED", "g").await;

    // Exactly one encode per (event, view) some watcher asked for; none for views nobody
    // asked for, none for the spliced storage version.
    let mut expected = HashMap::new();
    for revision in [created.mod_revision, updated.mod_revision, deleted.revision] {
        for (version, format) in [
            ("v2", "json"),
            ("v3", "json"),
            ("v2", "table"),
            ("v3", "protobuf"),
        ] {
            expected.insert((version.to_string(), format, revision), 1);
        }
    }
    // v4 was served from the create's object on (the new watch's initial ADDED).
    for revision in [created.mod_revision, updated.mod_revision, deleted.revision] {
        expected.insert(("v4".to_string(), "json", revision), 1);
    }
    // A DELETED frame carries the last state at the delete's revision: encoded afresh, once,
    // even in the spliced storage version (the codec's `encode` does the splice).
    expected.insert(("v1".to_string(), "json", deleted.revision), 1);
    assert_eq!(codec.encodes(), expected);
    drop(watches);
}
