//! The `ReadPath` conformance suite: kube-apiserver's read semantics (GET, LIST and WATCH at
//! each `resourceVersion`/`resourceVersionMatch`, selectors, pagination, watch starts, DELETED
//! events, 410s, bookmarks) as one list of cases, run against both implementations — the
//! watch cache ([`WatchCache`]) and the pass-through ([`Passthrough`]) — over any backend.
//!
//! Each case takes a [`Fixture`]: a backend of its own to write to (the cases compact it, so
//! it is not shared) and the read path under test over it, serving one namespaced resource
//! (`configmaps`). Revisions are compared with those the case's own writes returned.
//!
//! Where the two legitimately differ, the case says so and asserts each one's behaviour
//! ([`Implementation`]): kube's watch cache serves `resourceVersion=0` from whatever state it
//! holds (possibly behind storage) and forgets history by its own window, not by storage
//! compaction; the pass-through reads storage.
//!
//! Use from a test file (the crate needs `tokio` with its macros):
//!
//! ```ignore
//! async fn setup() -> (Fixture, impl Sized) { ... } // fixture + guard (an etcd) kept alive
//! kubecache_cache::testing::conformance::read_path_conformance_tests!(setup);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kubecache_core::continue_token::ContinueToken;
use kubecache_core::registry::{NAMESPACED, ResourceInfo};
use kubecache_core::selector::{FieldSelector, LabelSelector};
use kubecache_core::storage::{Backend, KeyValue, Revision, StorageError};
use serde_json::{Value, json};

use crate::object::Shapes;
use crate::testing::TestCodec;
use crate::{
    Filter, FrameStream, ListRequest, ListResult, Passthrough, ReadAt, ReadPath, WatchCache,
    WatchCacheConfig, WatchRequest, WatchStart,
};

/// How long a case waits for a frame, or for a state to become visible.
const WAIT: Duration = Duration::from_secs(15);

/// Events the watch cache retains in the fixture (its history window): small, so a case can
/// write past it.
pub const HISTORY: usize = 16;

/// Which read path a fixture serves through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    WatchCache,
    Passthrough,
}

/// One case's world: a backend, the read path under test over it, and the resource it serves.
pub struct Fixture {
    pub backend: Arc<dyn Backend>,
    pub read: Arc<dyn ReadPath>,
    pub implementation: Implementation,
    pub resource: Arc<ResourceInfo>,
    /// The resource's storage prefix, `/registry/configmaps/`.
    pub prefix: String,
}

/// The resource the cases read: namespaced, selectable by name and namespace.
pub fn configmaps() -> Arc<ResourceInfo> {
    Arc::new(ResourceInfo::new(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        NAMESPACED,
    ))
}

impl Fixture {
    /// `implementation` over `backend` (which the case may write to and compact), with
    /// [`TestCodec`]; the watch cache keeps [`HISTORY`] events. Returns once the read path is
    /// ready: the watch cache knows revisions from its initial list on (an older one is 410
    /// to it, as to kube's), so the cases start writing after that list.
    pub async fn new(backend: Arc<dyn Backend>, implementation: Implementation) -> Fixture {
        let resource = configmaps();
        let prefix = format!("/registry/{}/", resource.storage_path);
        let codec = Arc::new(TestCodec);
        let read: Arc<dyn ReadPath> = match implementation {
            Implementation::Passthrough => Arc::new(Passthrough::new(backend.clone(), codec)),
            Implementation::WatchCache => Arc::new(WatchCache::start(
                backend.clone(),
                codec,
                vec![(prefix.clone(), Shapes::new(vec![resource.clone()]))],
                WatchCacheConfig {
                    shards: 2,
                    history_min_events: HISTORY,
                    history_max_events: HISTORY,
                    history_window: Duration::ZERO,
                    ..WatchCacheConfig::default()
                },
            )),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Err(e) = read.ready().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the read path is not ready: {e}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Fixture {
            backend,
            read,
            implementation,
            resource,
            prefix,
        }
    }

    fn key(&self, namespace: &str, name: &str) -> String {
        format!("{}{namespace}/{name}", self.prefix)
    }

    /// Creates `namespace/name` with `labels` and `data: {"v": value}`.
    async fn create(&self, namespace: &str, name: &str, labels: Value, value: &str) -> KeyValue {
        let key = self.key(namespace, name);
        self.backend
            .create(&key, object(namespace, name, labels, value))
            .await
            .unwrap_or_else(|e| panic!("create {key}: {e}"))
    }

    /// Replaces the object `kv` holds (compare-and-swap on its revision).
    async fn update(&self, kv: &KeyValue, labels: Value, value: &str) -> KeyValue {
        let stored: Value = serde_json::from_slice(&kv.value).unwrap();
        let namespace = stored["metadata"]["namespace"].as_str().unwrap();
        let name = stored["metadata"]["name"].as_str().unwrap();
        self.backend
            .update(
                &kv.key,
                object(namespace, name, labels, value),
                kv.mod_revision,
            )
            .await
            .unwrap_or_else(|e| panic!("update {}: {e}", kv.key))
    }

    /// Deletes the object `kv` holds; the delete's revision.
    async fn delete(&self, kv: &KeyValue) -> Revision {
        self.backend
            .delete(&kv.key, Some(kv.mod_revision))
            .await
            .unwrap_or_else(|e| panic!("delete {}: {e}", kv.key))
            .revision
    }

    async fn get(
        &self,
        namespace: &str,
        name: &str,
        at: ReadAt,
    ) -> Result<Option<Value>, StorageError> {
        let found = self
            .read
            .get(&self.resource, &self.key(namespace, name), at)
            .await?;
        Ok(found.map(|o| json_of(&self.read.json(&o, &self.resource))))
    }

    fn list_request(&self, filter: Filter, at: ReadAt) -> ListRequest {
        ListRequest {
            resource: self.resource.clone(),
            prefix: self.prefix.clone(),
            start_key: None,
            limit: None,
            at,
            filter: Arc::new(filter),
            remaining_hint: None,
        }
    }

    async fn list(&self, filter: Filter, at: ReadAt) -> Result<ListResult, StorageError> {
        self.read.list(self.list_request(filter, at)).await
    }

    /// The next page of `request` after `page`, through a continue token as the server makes
    /// and reads it (`handlers/read.rs`).
    async fn next_page(
        &self,
        request: &ListRequest,
        page: &ListResult,
    ) -> Result<ListResult, StorageError> {
        let collection = request.collection_prefix();
        let last = page.continue_after.as_ref().expect("a continue key");
        let token = ContinueToken::after(&last[collection.len()..], page.revision)
            .with_remaining(page.remaining)
            .encode();
        let token = ContinueToken::decode(&token).expect("the token decodes");
        self.read
            .list(ListRequest {
                start_key: Some(token.start_key_under(&collection)),
                at: ReadAt::Exact(token.resource_version),
                remaining_hint: token.remaining,
                ..request.clone()
            })
            .await
    }

    fn watch_request(&self, filter: Filter, start: WatchStart) -> WatchRequest {
        WatchRequest {
            resource: self.resource.clone(),
            prefix: self.prefix.clone(),
            filter: Arc::new(filter),
            start,
            initial_events_end: false,
            table: false,
            protobuf: false,
            bookmarks: false,
            bookmark_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(300),
        }
    }

    async fn watch(&self, request: WatchRequest) -> Frames {
        Frames {
            stream: self
                .read
                .watch(request)
                .await
                .unwrap_or_else(|e| panic!("watch: {e}")),
            buffer: Vec::new(),
        }
    }

    /// Brings the read path up to storage's current revision (a consistent LIST, which the
    /// watch cache answers only once it has applied every event up to it).
    async fn sync(&self) -> Revision {
        let current = self.backend.current_revision().await.unwrap();
        let listed = self
            .list(Filter::default(), ReadAt::Latest)
            .await
            .expect("a consistent list");
        assert!(
            listed.revision >= current,
            "{} < {current}",
            listed.revision
        );
        listed.revision
    }
}

fn object(namespace: &str, name: &str, labels: Value, value: &str) -> Bytes {
    let object = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"v": value},
    });
    Bytes::from(serde_json::to_vec(&object).unwrap())
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

fn rv(object: &Value) -> Revision {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no resourceVersion: {object}"))
        .parse()
        .unwrap()
}

fn value_of(object: &Value) -> &str {
    object["data"]["v"].as_str().unwrap_or("")
}

fn name_of(object: &Value) -> String {
    let meta = &object["metadata"];
    format!(
        "{}/{}",
        meta["namespace"].as_str().unwrap_or(""),
        meta["name"].as_str().unwrap_or("")
    )
}

fn names(listed: &ListResult) -> Vec<String> {
    listed
        .objects
        .iter()
        .map(|o| name_of(&json_of(&o.kv.value)))
        .collect()
}

fn labels(selector: &str) -> Filter {
    Filter {
        labels: LabelSelector::parse(selector).unwrap(),
        ..Filter::default()
    }
}

fn fields(selector: &str) -> Filter {
    Filter {
        fields: FieldSelector::parse(selector).unwrap(),
        ..Filter::default()
    }
}

fn in_namespace(namespace: &str) -> Filter {
    Filter {
        namespace: Some(namespace.into()),
        ..Filter::default()
    }
}

/// `Compacted`, or the case fails with what came instead.
#[track_caller]
fn assert_compacted<T: std::fmt::Debug>(result: Result<T, StorageError>, what: &str) {
    match result {
        Err(StorageError::Compacted { .. }) => {}
        other => panic!("{what}: expected Compacted (410), got {other:?}"),
    }
}

/// A watch's frames, parsed.
pub struct Frames {
    stream: FrameStream,
    /// Bytes of a frame split across chunks.
    buffer: Vec<u8>,
}

/// One watch frame: its type and object.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: String,
    pub object: Value,
}

impl Frames {
    /// The next frame, `None` when the stream ended; panics after [`WAIT`].
    async fn next_or_end(&mut self) -> Option<Frame> {
        loop {
            if let Some(at) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=at).collect();
                let frame = json_of(&line[..at]);
                return Some(Frame {
                    kind: frame["type"].as_str().unwrap_or("").to_string(),
                    object: frame["object"].clone(),
                });
            }
            match tokio::time::timeout(WAIT, self.stream.next()).await {
                Err(_) => panic!("no watch frame in {WAIT:?}"),
                Ok(None) => {
                    assert!(self.buffer.is_empty(), "the stream ended inside a frame");
                    return None;
                }
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
            }
        }
    }

    async fn next(&mut self) -> Frame {
        self.next_or_end().await.expect("the watch ended")
    }

    /// The next frame that is not a BOOKMARK.
    async fn next_event(&mut self) -> Frame {
        loop {
            let frame = self.next().await;
            if frame.kind != "BOOKMARK" {
                return frame;
            }
        }
    }

    /// The next event, checked to be `kind` of `name` (`namespace/name`) at `revision`.
    async fn expect(&mut self, kind: &str, name: &str, revision: Revision) -> Frame {
        let frame = self.next_event().await;
        assert_eq!(
            (
                frame.kind.as_str(),
                name_of(&frame.object).as_str(),
                rv(&frame.object)
            ),
            (kind, name, revision),
            "{frame:?}"
        );
        frame
    }
}

// ---- the cases ------------------------------------------------------------------------------

/// Generates one `#[tokio::test]` per case. `$setup` names an `async fn() -> (Fixture, G)`;
/// `G` (an etcd, a temp dir) is kept alive for the test's duration.
#[macro_export]
macro_rules! read_path_conformance_tests {
    ($setup:path) => {
        $crate::read_path_conformance_tests!(@cases $setup;
            get_at_each_read_at,
            reads_of_a_future_revision_time_out,
            list_selects_by_labels_fields_and_namespace,
            list_pages_are_one_snapshot,
            list_resource_version_match,
            reads_before_the_retained_history_are_gone,
            watch_initial_events_then_changes,
            watch_after_a_revision_replays_every_change_once,
            watch_deleted_carries_the_last_state,
            watch_filters_by_entering_and_leaving,
            watch_in_a_namespace,
            watch_bookmarks_never_overtake_events,
            watch_ends_at_its_timeout,
        );
    };
    (@cases $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (fixture, _guard) = $setup().await;
                $crate::testing::conformance::$case(fixture).await;
            }
        )*
    };
}
pub use crate::read_path_conformance_tests;

/// GET at `Latest` reads storage; at `NotOlderThan(r)` a state at r or later; at `Exact(r)`
/// the object as it was at r; a missing key is `None`. At `Any` (resourceVersion=0) the
/// pass-through reads storage, while the watch cache answers from the state it holds, which
/// may be behind: it reaches the latest write, and never shows a state that never was.
pub async fn get_at_each_read_at(f: Fixture) {
    let v1 = f.create("a", "x", json!({}), "one").await;
    let v2 = f.update(&v1, json!({}), "two").await;

    let latest = f.get("a", "x", ReadAt::Latest).await.unwrap().unwrap();
    assert_eq!((value_of(&latest), rv(&latest)), ("two", v2.mod_revision));
    let newer = f
        .get("a", "x", ReadAt::NotOlderThan(v2.mod_revision))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((value_of(&newer), rv(&newer)), ("two", v2.mod_revision));
    let old = f
        .get("a", "x", ReadAt::Exact(v1.mod_revision))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((value_of(&old), rv(&old)), ("one", v1.mod_revision));
    assert_eq!(f.get("a", "missing", ReadAt::Latest).await.unwrap(), None);
    assert_eq!(
        f.get("a", "missing", ReadAt::NotOlderThan(v2.mod_revision))
            .await
            .unwrap(),
        None
    );

    // resourceVersion=0.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let any = f.get("a", "x", ReadAt::Any).await.unwrap();
        match f.implementation {
            Implementation::Passthrough => {
                let any = any.as_ref().expect("the pass-through reads storage");
                assert_eq!(rv(any), v2.mod_revision);
            }
            Implementation::WatchCache => {
                if let Some(any) = &any {
                    let seen = (value_of(any), rv(any));
                    assert!(
                        seen == ("one", v1.mod_revision) || seen == ("two", v2.mod_revision),
                        "a state that never was: {any}"
                    );
                }
            }
        }
        if any.is_some_and(|o| rv(&o) == v2.mod_revision) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET at resourceVersion=0 never reached the latest write"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A read at a revision storage has not reached waits briefly, then fails with
/// `FutureRevision` (kube's 504 "Too large resource version"), for GET and LIST alike.
pub async fn reads_of_a_future_revision_time_out(f: Fixture) {
    let kv = f.create("a", "x", json!({}), "one").await;
    let future = kv.mod_revision + 1_000;
    match f.get("a", "x", ReadAt::NotOlderThan(future)).await {
        Err(StorageError::FutureRevision { requested, .. }) => assert_eq!(requested, future),
        other => panic!("GET at a future revision: {other:?}"),
    }
    match f
        .list(Filter::default(), ReadAt::NotOlderThan(future))
        .await
    {
        Err(StorageError::FutureRevision { .. }) => {}
        other => panic!("LIST at a future revision: {other:?}"),
    }
}

/// LIST returns, in key order, exactly the objects its label selector, field selector and
/// namespace select, at a revision covering every write before it.
pub async fn list_selects_by_labels_fields_and_namespace(f: Fixture) {
    f.create("a", "web-1", json!({"app": "web", "tier": "front"}), "1")
        .await;
    f.create("a", "db-1", json!({"app": "db"}), "2").await;
    f.create("b", "web-2", json!({"app": "web"}), "3").await;
    let last = f.create("b", "cache", json!({}), "4").await;

    let all = f.list(Filter::default(), ReadAt::Latest).await.unwrap();
    assert!(all.revision >= last.mod_revision);
    assert_eq!(names(&all), ["a/db-1", "a/web-1", "b/cache", "b/web-2"]);
    assert_eq!(all.continue_after, None);
    assert_eq!(all.remaining, None);

    let web = f.list(labels("app=web"), ReadAt::Latest).await.unwrap();
    assert_eq!(names(&web), ["a/web-1", "b/web-2"]);
    let not_web = f.list(labels("app!=web"), ReadAt::Latest).await.unwrap();
    assert_eq!(names(&not_web), ["a/db-1", "b/cache"]);
    let front = f
        .list(labels("app=web,tier in (front)"), ReadAt::Latest)
        .await
        .unwrap();
    assert_eq!(names(&front), ["a/web-1"]);

    let by_name = f
        .list(fields("metadata.name=cache"), ReadAt::Latest)
        .await
        .unwrap();
    assert_eq!(names(&by_name), ["b/cache"]);
    let by_namespace = f
        .list(fields("metadata.namespace=a"), ReadAt::Latest)
        .await
        .unwrap();
    assert_eq!(names(&by_namespace), ["a/db-1", "a/web-1"]);

    let in_b = f.list(in_namespace("b"), ReadAt::Latest).await.unwrap();
    assert_eq!(names(&in_b), ["b/cache", "b/web-2"]);
    let web_in_b = f
        .list(
            Filter {
                namespace: Some("b".into()),
                ..labels("app=web")
            },
            ReadAt::Latest,
        )
        .await
        .unwrap();
    assert_eq!(names(&web_in_b), ["b/web-2"]);
    let nowhere = f.list(in_namespace("c"), ReadAt::Latest).await.unwrap();
    assert_eq!(names(&nowhere), Vec::<String>::new());
}

/// limit + continue: every page is read at the first page's revision, so writes made between
/// pages are not seen; `remaining` counts what follows (unfiltered lists only); the last page
/// has no continue key. A filtered list pages over matching objects, without `remaining`.
pub async fn list_pages_are_one_snapshot(f: Fixture) {
    let mut kvs = BTreeMap::new();
    for name in ["o1", "o3", "o5", "o7", "o9"] {
        kvs.insert(name, f.create("a", name, json!({"odd": "yes"}), name).await);
    }
    let request = ListRequest {
        limit: Some(2),
        ..f.list_request(Filter::default(), ReadAt::Latest)
    };
    let first = f.read.list(request.clone()).await.unwrap();
    assert_eq!(names(&first), ["a/o1", "a/o3"]);
    assert_eq!(first.remaining, Some(3));
    let snapshot = first.revision;

    // Between the pages: a create inside the rest of the range, a delete and an update of
    // objects on later pages.
    f.create("a", "o4", json!({"odd": "no"}), "o4").await;
    f.delete(&kvs["o7"]).await;
    f.update(&kvs["o9"], json!({"odd": "yes"}), "changed").await;

    let second = f.next_page(&request, &first).await.unwrap();
    assert_eq!(second.revision, snapshot);
    assert_eq!(names(&second), ["a/o5", "a/o7"]);
    assert_eq!(second.remaining, Some(1));
    let third = f.next_page(&request, &second).await.unwrap();
    assert_eq!(third.revision, snapshot);
    assert_eq!(names(&third), ["a/o9"]);
    assert_eq!(value_of(&json_of(&third.objects[0].kv.value)), "o9");
    assert_eq!(third.continue_after, None);
    assert_eq!(third.remaining, None);

    // Filtered: pages of matching objects, no remaining count.
    let filtered = ListRequest {
        limit: Some(1),
        ..f.list_request(labels("odd=yes"), ReadAt::Latest)
    };
    let page = f.read.list(filtered.clone()).await.unwrap();
    assert_eq!(names(&page), ["a/o1"]);
    assert_eq!(page.remaining, None);
    let mut seen = names(&page);
    let mut page = page;
    while page.continue_after.is_some() {
        page = f.next_page(&filtered, &page).await.unwrap();
        assert_eq!(page.remaining, None);
        seen.extend(names(&page));
    }
    assert_eq!(seen, ["a/o1", "a/o3", "a/o5", "a/o9"]);
}

/// resourceVersionMatch: `NotOlderThan(r)` lists a state at r or later; `Exact(r)` the state
/// at r, reported as r. At `Any` the pass-through lists storage's latest state, the watch
/// cache the state it holds (reaching the latest write).
pub async fn list_resource_version_match(f: Fixture) {
    let x1 = f.create("a", "x", json!({}), "one").await;
    let y = f.create("a", "y", json!({}), "y").await;
    let x2 = f.update(&x1, json!({}), "two").await;
    let gone = f.delete(&y).await;

    // At x2 or later: y may or may not be gone yet; at the delete or later, it is.
    let newer = f
        .list(Filter::default(), ReadAt::NotOlderThan(x2.mod_revision))
        .await
        .unwrap();
    assert!(newer.revision >= x2.mod_revision);
    let expected: &[&str] = if newer.revision >= gone {
        &["a/x"]
    } else {
        &["a/x", "a/y"]
    };
    assert_eq!(names(&newer), expected);
    let newest = f
        .list(Filter::default(), ReadAt::NotOlderThan(gone))
        .await
        .unwrap();
    assert!(newest.revision >= gone);
    assert_eq!(names(&newest), ["a/x"]);
    assert_eq!(value_of(&json_of(&newest.objects[0].kv.value)), "two");

    let exact = f
        .list(Filter::default(), ReadAt::Exact(y.mod_revision))
        .await
        .unwrap();
    assert_eq!(exact.revision, y.mod_revision);
    assert_eq!(names(&exact), ["a/x", "a/y"]);
    assert_eq!(value_of(&json_of(&exact.objects[0].kv.value)), "one");
    let exact = f
        .list(Filter::default(), ReadAt::Exact(x1.mod_revision))
        .await
        .unwrap();
    assert_eq!(names(&exact), ["a/x"]);

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let any = f.list(Filter::default(), ReadAt::Any).await.unwrap();
        if f.implementation == Implementation::Passthrough {
            assert!(any.revision >= x2.mod_revision, "{}", any.revision);
        }
        if names(&any) == ["a/x"] && any.revision >= x2.mod_revision {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "LIST at resourceVersion=0 never reached the latest write"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads and watches at a revision the read path no longer retains fail with `Compacted`
/// (410 Gone; a watch gets it from the call, which the server sends as a 410 ERROR frame):
/// GET and LIST at `Exact`, a continue token, a watch from it. What "no longer retained"
/// means differs: for the pass-through, compacted in storage; for the watch cache, older than
/// its history window (it keeps events storage compacted meanwhile, as kube's does). The case
/// writes past the window and compacts, so both forget.
pub async fn reads_before_the_retained_history_are_gone(f: Fixture) {
    let first = f.create("a", "x", json!({}), "0").await;
    let other = f.create("a", "y", json!({}), "y").await;
    let page = f
        .read
        .list(ListRequest {
            limit: Some(1),
            ..f.list_request(Filter::default(), ReadAt::Exact(other.mod_revision))
        })
        .await
        .unwrap();
    assert!(page.continue_after.is_some());
    let mut kv = first.clone();
    for i in 1..=(HISTORY as i64 + 4) {
        kv = f.update(&kv, json!({}), &i.to_string()).await;
    }
    f.sync().await;
    match f.backend.compact(kv.mod_revision).await {
        Ok(()) | Err(StorageError::Compacted { .. }) => {}
        Err(e) => panic!("compact: {e}"),
    }

    let old = first.mod_revision;
    assert_compacted(f.get("a", "x", ReadAt::Exact(old)).await, "GET at Exact");
    assert_compacted(
        f.list(Filter::default(), ReadAt::Exact(old)).await,
        "LIST at Exact",
    );
    let request = ListRequest {
        limit: Some(1),
        ..f.list_request(Filter::default(), ReadAt::Latest)
    };
    assert_compacted(f.next_page(&request, &page).await, "a continue token");
    let watch = f
        .read
        .watch(f.watch_request(Filter::default(), WatchStart::After(old)))
        .await;
    assert_compacted(watch.map(|_| ()), "WATCH after a revision");

    // The latest state is still served, and a watch from it works.
    let latest = f
        .get("a", "x", ReadAt::Exact(kv.mod_revision))
        .await
        .unwrap();
    assert_eq!(latest.map(|o| rv(&o)), Some(kv.mod_revision));
    let mut watch = f
        .watch(f.watch_request(Filter::default(), WatchStart::After(kv.mod_revision)))
        .await;
    let next = f.update(&kv, json!({}), "after").await;
    watch.expect("MODIFIED", "a/x", next.mod_revision).await;
}

/// A watch from the initial state (sendInitialEvents, or a watch without resourceVersion):
/// one synthetic ADDED per object, each at its own resourceVersion; with
/// `initial_events_end`, a BOOKMARK annotated `k8s.io/initial-events-end` at the revision
/// the initial state reflects; then every change after it.
pub async fn watch_initial_events_then_changes(f: Fixture) {
    let a = f.create("a", "a", json!({}), "a").await;
    let b = f.create("a", "b", json!({}), "b").await;
    let c = f.create("b", "c", json!({}), "c").await;
    let mut watch = f
        .watch(WatchRequest {
            initial_events_end: true,
            ..f.watch_request(Filter::default(), WatchStart::Initial(ReadAt::Latest))
        })
        .await;
    let mut initial = Vec::new();
    let end = loop {
        let frame = watch.next().await;
        if frame.kind == "BOOKMARK" {
            break frame;
        }
        assert_eq!(frame.kind, "ADDED", "{frame:?}");
        initial.push((name_of(&frame.object), rv(&frame.object)));
    };
    initial.sort();
    assert_eq!(
        initial,
        [
            ("a/a".to_string(), a.mod_revision),
            ("a/b".to_string(), b.mod_revision),
            ("b/c".to_string(), c.mod_revision),
        ]
    );
    assert_eq!(
        end.object["metadata"]["annotations"]["k8s.io/initial-events-end"], "true",
        "{end:?}"
    );
    assert!(rv(&end.object) >= c.mod_revision, "{end:?}");

    let b2 = f.update(&b, json!({}), "b2").await;
    let d = f.create("b", "d", json!({}), "d").await;
    let gone = f.delete(&a).await;
    watch.expect("MODIFIED", "a/b", b2.mod_revision).await;
    watch.expect("ADDED", "b/d", d.mod_revision).await;
    watch.expect("DELETED", "a/a", gone).await;
}

/// A watch from revision r gets every change after r, in order, once: the ones already made
/// (replayed) and the ones that follow (live), nothing lost or repeated at the seam.
pub async fn watch_after_a_revision_replays_every_change_once(f: Fixture) {
    let mut expected = Vec::new();
    let x = f.create("a", "x", json!({}), "x0").await;
    let y = f.create("a", "y", json!({}), "y0").await;
    let start = y.mod_revision;
    let x1 = f.update(&x, json!({}), "x1").await;
    expected.push(("MODIFIED", "a/x", x1.mod_revision));
    let z = f.create("b", "z", json!({}), "z0").await;
    expected.push(("ADDED", "b/z", z.mod_revision));
    let gone = f.delete(&y).await;
    expected.push(("DELETED", "a/y", gone));
    let x2 = f.update(&x1, json!({}), "x2").await;
    expected.push(("MODIFIED", "a/x", x2.mod_revision));

    let mut watch = f
        .watch(f.watch_request(Filter::default(), WatchStart::After(start)))
        .await;
    // Live changes, written while the replay may still be on its way.
    let z1 = f.update(&z, json!({}), "z1").await;
    expected.push(("MODIFIED", "b/z", z1.mod_revision));
    let w = f.create("a", "w", json!({}), "w0").await;
    expected.push(("ADDED", "a/w", w.mod_revision));
    for (kind, name, revision) in &expected {
        watch.expect(kind, name, *revision).await;
    }
    // Nothing repeated: the next frame is the next change.
    let sentinel = f.update(&w, json!({}), "w1").await;
    watch.expect("MODIFIED", "a/w", sentinel.mod_revision).await;
}

/// A DELETED event carries the object's last state, at the delete's revision.
pub async fn watch_deleted_carries_the_last_state(f: Fixture) {
    let v1 = f.create("a", "x", json!({"k": "v"}), "first").await;
    let mut watch = f
        .watch(f.watch_request(Filter::default(), WatchStart::After(v1.mod_revision)))
        .await;
    let v2 = f.update(&v1, json!({"k": "v"}), "last").await;
    let gone = f.delete(&v2).await;
    watch.expect("MODIFIED", "a/x", v2.mod_revision).await;
    let deleted = watch.expect("DELETED", "a/x", gone).await;
    assert_eq!(value_of(&deleted.object), "last", "{deleted:?}");
    assert_eq!(deleted.object["metadata"]["labels"], json!({"k": "v"}));
}

/// With a selector, an object that starts matching is ADDED, changes while matching are
/// MODIFIED, one that stops matching is DELETED (with its last matching state, at the
/// revision it stopped), and changes of objects that never match send nothing.
pub async fn watch_filters_by_entering_and_leaving(f: Fixture) {
    let start = f.backend.current_revision().await.unwrap();
    let mut watch = f
        .watch(f.watch_request(labels("app=web"), WatchStart::After(start)))
        .await;
    let x = f.create("a", "x", json!({"app": "db"}), "0").await;
    let x1 = f.update(&x, json!({"app": "web"}), "1").await;
    let x2 = f.update(&x1, json!({"app": "web"}), "2").await;
    let other = f.create("a", "other", json!({"app": "db"}), "0").await;
    let x3 = f.update(&x2, json!({"app": "db"}), "3").await;
    f.update(&other, json!({"app": "cache"}), "1").await;
    let y = f.create("a", "y", json!({"app": "web"}), "0").await;

    watch.expect("ADDED", "a/x", x1.mod_revision).await;
    watch.expect("MODIFIED", "a/x", x2.mod_revision).await;
    let left = watch.expect("DELETED", "a/x", x3.mod_revision).await;
    assert_eq!(left.object["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(value_of(&left.object), "2");
    watch.expect("ADDED", "a/y", y.mod_revision).await;
}

/// A watch in a namespace sees that namespace's objects only, initial and live.
pub async fn watch_in_a_namespace(f: Fixture) {
    f.create("a", "x", json!({}), "0").await;
    let y = f.create("b", "y", json!({}), "0").await;
    let mut watch = f
        .watch(f.watch_request(in_namespace("b"), WatchStart::Initial(ReadAt::Latest)))
        .await;
    watch.expect("ADDED", "b/y", y.mod_revision).await;
    f.create("a", "x2", json!({}), "0").await;
    let z = f.create("b", "z", json!({}), "0").await;
    watch.expect("ADDED", "b/z", z.mod_revision).await;
}

/// With bookmarks, BOOKMARKs come periodically; one at revision r promises every event up
/// to r was sent before it: no later event is at or before r, and bookmarks never go back.
pub async fn watch_bookmarks_never_overtake_events(f: Fixture) {
    let start = f.create("a", "x", json!({}), "0").await;
    let mut watch = f
        .watch(WatchRequest {
            bookmarks: true,
            bookmark_interval: Duration::from_millis(100),
            ..f.watch_request(Filter::default(), WatchStart::After(start.mod_revision))
        })
        .await;
    let mut kv = start;
    let mut last_event = 0;
    let mut last_bookmark = 0;
    let mut bookmarks = 0;
    let mut written = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    // Writes interleaved with frames until several bookmarks came, one of them after all
    // writes were seen.
    while bookmarks < 3 || last_bookmark < kv.mod_revision {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{bookmarks} bookmarks, the last at {last_bookmark}, writes up to {}",
            kv.mod_revision
        );
        if written < 5 {
            kv = f.update(&kv, json!({}), &written.to_string()).await;
            written += 1;
        }
        let frame = watch.next().await;
        let revision = rv(&frame.object);
        match frame.kind.as_str() {
            "BOOKMARK" => {
                assert!(
                    revision >= last_event,
                    "bookmark {revision} before event {last_event}"
                );
                assert!(revision >= last_bookmark, "bookmarks went back");
                last_bookmark = revision;
                bookmarks += 1;
            }
            "MODIFIED" => {
                assert!(
                    revision > last_bookmark,
                    "event {revision} after bookmark {last_bookmark}"
                );
                assert!(revision > last_event);
                last_event = revision;
            }
            other => panic!("unexpected {other}: {frame:?}"),
        }
    }
    assert_eq!(last_event, kv.mod_revision);
}

/// A watch ends by itself after its timeout (timeoutSeconds), without an ERROR.
pub async fn watch_ends_at_its_timeout(f: Fixture) {
    let kv = f.create("a", "x", json!({}), "0").await;
    let mut watch = f
        .watch(WatchRequest {
            timeout: Duration::from_secs(1),
            ..f.watch_request(Filter::default(), WatchStart::After(kv.mod_revision))
        })
        .await;
    if let Some(frame) = watch.next_or_end().await {
        panic!("expected the end, got {frame:?}");
    }
}
