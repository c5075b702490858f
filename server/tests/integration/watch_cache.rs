//! The watch cache's semantics, proven over HTTP (and, for slow-watcher eviction, at the
//! `ReadPath` level): its history window, Exact reads and continue tokens that outlive
//! storage compaction, consistent reads under concurrent writes, NotOlderThan reads proven
//! by other resources' revisions, selector enter/leave with the indexed trigger field,
//! resumption across an etcd restart, watch-list and bookmarks.
//!
//! Most cases run twice — over the embedded store and over a real etcd — through
//! [`on_both!`]. Every test is bounded by [`TEST_TIMEOUT`], every watch read by its own.

use crate::support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use kubecache_apimachinery::codec::JsonCodec;
use kubecache_apimachinery::registry::Registry;
use kubecache_cache::{
    Filter, FrameStream, ReadAt, Shapes, WatchCache, WatchCacheConfig, WatchRequest, WatchStart,
};
use kubecache_core::storage::{Backend, ListOptions, StorageError};
use kubecache_server::api::Api;
use kubecache_server::server::ReadConfig;
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::etcd::EtcdBackend;
use kubecache_storage::testing::TestEtcd;
use reqwest::Method;
use serde_json::{Value, json};
use support::server::{JSON, MERGE_PATCH, Next, TestServer, WatchStream};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const PODS: &str = "/api/v1/namespaces/default/pods";

/// No test may take longer than this.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a watch must stay silent to count as "nothing more came".
const QUIET: Duration = Duration::from_millis(300);

// ============================================================================================
// Harness
// ============================================================================================

/// Where the server under test stores objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Embedded,
    Etcd,
}

/// A server over a store. Fields drop in order: the server before the etcd it talks to.
struct Env {
    server: TestServer,
    etcd: Option<TestEtcd>,
}

impl std::ops::Deref for Env {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

async fn start(store: Store, config: WatchCacheConfig) -> Env {
    match store {
        Store::Embedded => {
            let backend = Arc::new(EmbeddedBackend::in_memory());
            let server =
                TestServer::start_with_reads(backend, ReadConfig::WatchCache(config)).await;
            Env { server, etcd: None }
        }
        Store::Etcd => {
            let etcd = tokio::task::spawn_blocking(TestEtcd::start)
                .await
                .expect("start etcd");
            let backend = EtcdBackend::connect(&[etcd.endpoint()], Default::default())
                .await
                .expect("connect to etcd");
            let server =
                TestServer::start_with_reads(Arc::new(backend), ReadConfig::WatchCache(config))
                    .await;
            Env {
                server,
                etcd: Some(etcd),
            }
        }
    }
}

/// The cache configuration of most tests: defaults, two shards.
fn config() -> WatchCacheConfig {
    WatchCacheConfig {
        shards: 2,
        ..Default::default()
    }
}

/// Runs a test body, failing it instead of hanging past [`TEST_TIMEOUT`].
async fn bounded(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("the test did not finish in time");
}

/// For each `case(store)` function: a module with an `embedded` and an `etcd` test.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::bounded(super::$case(super::Store::Embedded)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                super::bounded(super::$case(super::Store::Etcd)).await
            }
        }
    )*};
}

on_both!(
    watch_window,
    history_bounded_by_bytes,
    cache_outlives_storage_compaction,
    consistent_list_under_concurrent_writes,
    consistent_list_after_idle,
    not_older_than_from_another_resource,
    selectors_enter_and_leave,
    watch_list_and_bookmarks,
    slow_watcher_is_ended_without_delaying_others,
);

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn secret(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "data": {"k": "dg=="}})
}

fn pod(name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    })
}

fn rv(object: &Value) -> i64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no resourceVersion: {object:#}"))
        .parse()
        .unwrap_or_else(|_| panic!("resourceVersion is not a number: {object:#}"))
}

/// The names of a list's items, in the order served.
fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list:#}"))
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

async fn create(server: &TestServer, path: &str, body: &Value) -> Value {
    server.post(path, body).await.expect(201).clone()
}

/// Reads the next frame, panicking unless it is an event of `event_type` about `name`.
async fn expect(watch: &mut WatchStream, event_type: &str, name: &str) -> Value {
    watch.expect_event(event_type, name).await
}

/// The next frame, which must be an ERROR carrying a Status with this code and reason.
async fn expect_error(watch: &mut WatchStream, code: i64, reason: &str) -> Value {
    let event = watch.next_event().await;
    assert_eq!(event["type"], "ERROR", "{event:#}");
    assert_eq!(event["object"]["kind"], "Status", "{event:#}");
    assert_eq!(event["object"]["code"], code, "{event:#}");
    assert_eq!(event["object"]["reason"], reason, "{event:#}");
    event
}

// ============================================================================================
// 1. The history window: too old → 410 ERROR; inside → exactly the events after it
// ============================================================================================

async fn watch_window(store: Store) {
    let env = start(
        store,
        WatchCacheConfig {
            history_min_events: 3,
            history_max_events: 5,
            ..config()
        },
    )
    .await;
    let mut rvs = Vec::new();
    for i in 0..10 {
        rvs.push(rv(&create(&env, CM, &configmap(&format!("c{i}"))).await));
    }
    // A consistent LIST brings the cache up to the last write.
    let list = env.get(CM).await;
    let expected: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    assert_eq!(names(list.expect(200)), expected);
    assert!(rv(&list.body) >= rvs[9]);

    // The cache keeps the last 5 events (c5..c9): the state after c4 is its oldest.
    for too_old in [rvs[0], rvs[3]] {
        let mut watch = env
            .watch(
                CM,
                &[("watch", "true"), ("resourceVersion", &too_old.to_string())],
            )
            .await;
        let error = expect_error(&mut watch, 410, "Expired").await;
        assert!(
            error["object"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("too old resource version"),
            "{error:#}"
        );
        watch.expect_end(Duration::from_secs(5)).await;
    }

    // Inside the window: exactly the events after the start, in order, then nothing.
    for from in [4, 6, 9] {
        let mut watch = env
            .watch(
                CM,
                &[
                    ("watch", "true"),
                    ("resourceVersion", &rvs[from].to_string()),
                ],
            )
            .await;
        for (i, &expected_rv) in rvs.iter().enumerate().skip(from + 1) {
            let event = expect(&mut watch, "ADDED", &format!("c{i}")).await;
            assert_eq!(rv(&event["object"]), expected_rv, "{event:#}");
        }
        watch.expect_quiet(QUIET).await;
    }

    // The window moves with new writes: c5's revision falls out of it.
    for i in 10..13 {
        rvs.push(rv(&create(&env, CM, &configmap(&format!("c{i}"))).await));
    }
    env.get(CM).await.expect(200);
    let mut live = env
        .watch(
            CM,
            &[("watch", "true"), ("resourceVersion", &rvs[7].to_string())],
        )
        .await;
    for i in 8..13 {
        expect(&mut live, "ADDED", &format!("c{i}")).await;
    }
    let mut stale = env
        .watch(
            CM,
            &[("watch", "true"), ("resourceVersion", &rvs[5].to_string())],
        )
        .await;
    expect_error(&mut stale, 410, "Expired").await;
    stale.expect_end(Duration::from_secs(5)).await;
    // A watch inside the window keeps going live.
    create(&env, CM, &configmap("c13")).await;
    expect(&mut live, "ADDED", "c13").await;
    live.expect_quiet(QUIET).await;
}

/// Beyond `history_min_events`, history keeps at most `history_max_bytes` of object versions:
/// with ~8 KB objects and a 20,000-byte bound, the last two events (never three).
async fn history_bounded_by_bytes(store: Store) {
    let env = start(
        store,
        WatchCacheConfig {
            history_min_events: 1,
            history_max_events: 1_000,
            history_max_bytes: 20_000,
            ..config()
        },
    )
    .await;
    let big = |name: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": "x".repeat(8_000)}})
    };
    let mut rvs = Vec::new();
    for i in 0..6 {
        rvs.push(rv(&create(&env, CM, &big(&format!("b{i}"))).await));
    }
    env.get(CM).await.expect(200);
    // b4 and b5 are retained: from b3's revision on, exactly them.
    let mut watch = env
        .watch(
            CM,
            &[("watch", "true"), ("resourceVersion", &rvs[3].to_string())],
        )
        .await;
    for (i, &expected_rv) in rvs.iter().enumerate().skip(4) {
        let event = expect(&mut watch, "ADDED", &format!("b{i}")).await;
        assert_eq!(rv(&event["object"]), expected_rv, "{event:#}");
    }
    watch.expect_quiet(QUIET).await;
    // b3 is not: from b2's revision the watch is too old.
    let mut stale = env
        .watch(
            CM,
            &[("watch", "true"), ("resourceVersion", &rvs[2].to_string())],
        )
        .await;
    expect_error(&mut stale, 410, "Expired").await;
    stale.expect_end(Duration::from_secs(5)).await;
}

// ============================================================================================
// 2. Exact reads and continue tokens from the cache after storage compacted
// ============================================================================================

async fn cache_outlives_storage_compaction(store: Store) {
    let env = start(
        store,
        WatchCacheConfig {
            history_min_events: 3,
            history_max_events: 8,
            ..config()
        },
    )
    .await;
    let mut rvs = BTreeMap::new();
    for name in ["a", "b", "c", "d"] {
        rvs.insert(name, rv(&create(&env, CM, &configmap(name)).await));
    }

    // The first page of a paginated list, at the current revision.
    let first = env.get_with(CM, &[("limit", "2")]).await;
    assert_eq!(names(first.expect(200)), strings(&["a", "b"]));
    let list_rv = rv(&first.body);
    assert!(list_rv >= rvs["d"]);
    let token = first.body["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();

    // Written after the first page: it sorts last but must never appear in this list.
    let late = create(&env, CM, &configmap("e")).await;
    // Also a page that starts at an older revision (legacy Exact with a limit).
    let old_page = env
        .get_with(
            CM,
            &[("limit", "1"), ("resourceVersion", &rvs["b"].to_string())],
        )
        .await;
    assert_eq!(names(old_page.expect(200)), strings(&["a"]));
    assert_eq!(rv(&old_page.body), rvs["b"]);
    let old_token = old_page.body["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();

    // Storage forgets every revision before now.
    let now = env.backend.current_revision().await.unwrap();
    assert!(now >= rv(&late));
    env.backend.compact(now).await.expect("compact storage");
    let direct = env
        .backend
        .list(ListOptions {
            prefix: "/registry/configmaps/default/".into(),
            revision: Some(rvs["b"]),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(direct, Err(StorageError::Compacted { .. })),
        "storage still serves the old revision: {direct:?}"
    );

    // The cache still has them.
    let exact = env
        .get_with(
            CM,
            &[
                ("resourceVersion", &rvs["b"].to_string()),
                ("resourceVersionMatch", "Exact"),
            ],
        )
        .await;
    assert_eq!(names(exact.expect(200)), strings(&["a", "b"]));
    assert_eq!(rv(&exact.body), rvs["b"]);
    let a = &exact.body["items"][0];
    assert_eq!(rv(a), rvs["a"]);

    let second = env
        .get_with(CM, &[("limit", "2"), ("continue", &token)])
        .await;
    assert_eq!(names(second.expect(200)), strings(&["c", "d"]));
    assert_eq!(rv(&second.body), list_rv);
    assert!(
        second.body["metadata"]["continue"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "the snapshot ends at d: {:#}",
        second.body
    );
    // The older snapshot pages on at its own revision: b then nothing newer.
    let next_old = env
        .get_with(CM, &[("limit", "5"), ("continue", &old_token)])
        .await;
    assert_eq!(names(next_old.expect(200)), strings(&["b"]));
    assert_eq!(rv(&next_old.body), rvs["b"]);
    // The current state has e.
    assert_eq!(
        names(env.get(CM).await.expect(200)),
        strings(&["a", "b", "c", "d", "e"])
    );

    // Push the window (8 events) past both snapshots.
    for i in 0..10 {
        create(&env, CM, &configmap(&format!("z{i}"))).await;
    }
    // (The cache may apply acknowledged writes a moment later; a consistent LIST waits.)
    env.get(CM).await.expect(200);
    let expired = env
        .get_with(CM, &[("limit", "2"), ("continue", &token)])
        .await;
    expired.expect_status(410, "Expired");
    assert!(expired.message().contains("continue"), "{:#}", expired.body);
    env.get_with(
        CM,
        &[
            ("resourceVersion", &rvs["b"].to_string()),
            ("resourceVersionMatch", "Exact"),
        ],
    )
    .await
    .expect_status(410, "Expired");
}

// ============================================================================================
// 3. Consistent reads: every acknowledged write is in a LIST without resourceVersion
// ============================================================================================

/// The writes acknowledged so far: name → resourceVersion of its last acknowledged write.
type Acked = Arc<Mutex<HashMap<String, i64>>>;

async fn send_json(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: &Value,
) -> (u16, Value) {
    let response = client
        .request(method, url)
        .header(reqwest::header::CONTENT_TYPE, JSON)
        .timeout(Duration::from_secs(15))
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Creates configmaps `{prefix}-{i}` as fast as it can until `until`, updating every third
/// one it created, and records each acknowledged write. Returns how many writes it made.
async fn writer(
    client: reqwest::Client,
    base: String,
    prefix: String,
    acked: Acked,
    until: Instant,
) -> usize {
    let mut writes = 0;
    let mut created: Vec<Value> = Vec::new();
    let mut i = 0;
    while Instant::now() < until {
        let name = format!("{prefix}-{i}");
        let (status, object) = send_json(
            &client,
            Method::POST,
            &format!("{base}{CM}"),
            &configmap(&name),
        )
        .await;
        assert_eq!(status, 201, "create {name}: {object:#}");
        acked.lock().unwrap().insert(name, rv(&object));
        created.push(object);
        writes += 1;
        if i % 3 == 2 {
            let target = &mut created[i - 1];
            target["data"]["k"] = json!(format!("updated-{i}"));
            let name = target["metadata"]["name"].as_str().unwrap().to_string();
            let (status, updated) =
                send_json(&client, Method::PUT, &format!("{base}{CM}/{name}"), target).await;
            assert_eq!(status, 200, "update {name}: {updated:#}");
            acked.lock().unwrap().insert(name, rv(&updated));
            *target = updated;
            writes += 1;
        }
        i += 1;
    }
    writes
}

async fn consistent_list_under_concurrent_writes(store: Store) {
    let env = start(store, config()).await;
    let acked: Acked = Arc::default();
    let until = Instant::now() + Duration::from_secs(2);
    let writers: Vec<_> = (0..2)
        .map(|w| {
            tokio::spawn(writer(
                env.client.clone(),
                env.base.clone(),
                format!("w{w}"),
                acked.clone(),
                until,
            ))
        })
        .collect();

    let mut lists = 0;
    let mut checked = 0;
    while Instant::now() < until + Duration::from_millis(200) {
        let before: HashMap<String, i64> = acked.lock().unwrap().clone();
        let list = env.get(CM).await;
        let list = list.expect(200);
        let list_rv = rv(list);
        let items: HashMap<&str, i64> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| (item["metadata"]["name"].as_str().unwrap(), rv(item)))
            .collect();
        assert_eq!(
            items.len(),
            list["items"].as_array().unwrap().len(),
            "duplicate names in a list"
        );
        for (name, &written) in &before {
            let listed = items.get(name.as_str()).unwrap_or_else(|| {
                panic!("{name} (resourceVersion {written}) was acknowledged before the LIST at {list_rv} but is missing")
            });
            assert!(
                *listed >= written,
                "{name}: the list at {list_rv} has resourceVersion {listed}, older than the acknowledged {written}"
            );
            assert!(
                list_rv >= written,
                "the list's resourceVersion {list_rv} is older than the acknowledged write of {name} at {written}"
            );
        }
        checked += before.len();
        lists += 1;
    }
    let mut writes = 0;
    for writer in writers {
        writes += writer.await.expect("writer");
    }
    assert!(writes > 20, "only {writes} writes in 2 s");
    assert!(lists > 5, "only {lists} lists in 2 s");
    assert!(checked > 0);

    // After the writers stopped: the list is exactly what was acknowledged.
    let final_list = env.get(CM).await;
    let final_items: HashMap<String, i64> = final_list.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["metadata"]["name"].as_str().unwrap().to_string(),
                rv(item),
            )
        })
        .collect();
    assert_eq!(final_items, *acked.lock().unwrap());
}

/// etcd 3.4.23 may report progress ahead of undelivered events (etcd#15220): a cache that
/// trusted progress notifications could answer a consistent LIST without a write it had not
/// received yet. A write to a resource whose cache sat idle must be in the very next LIST.
async fn consistent_list_after_idle(store: Store) {
    let env = start(store, config()).await;
    let resources = [
        (SECRETS, "secret"),
        (CM, "configmap"),
        ("/api/v1/namespaces/kube-system/secrets", "secret"),
    ];
    for round in 0..4 {
        // Idle: nothing written to these resources (etcd sends no events, only progress).
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // Other resources move etcd's revision on meanwhile.
        create(&env, PODS, &pod(&format!("bump-{round}"), "bump")).await;
        for (path, kind) in resources {
            let name = format!("idle-{round}");
            let body = if kind == "secret" {
                secret(&name)
            } else {
                configmap(&name)
            };
            let written = rv(&create(&env, path, &body).await);
            let list = env.get(path).await;
            let list = list.expect(200);
            assert!(
                names(list).contains(&name),
                "{path}: {name} written at {written} is missing from the LIST at {}",
                rv(list)
            );
            assert!(rv(list) >= written);
        }
        // An update right after the idle period too.
        let path = format!("{CM}/idle-{round}");
        let patched = env
            .patch(&path, MERGE_PATCH, &json!({"data": {"k": "patched"}}))
            .await;
        let written = rv(patched.expect(200));
        let list = env.get(CM).await;
        let item = list.expect(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == format!("idle-{round}"))
            .cloned()
            .expect("the patched configmap is listed");
        assert_eq!(rv(&item), written);
        assert_eq!(item["data"]["k"], "patched");
    }
}

// ============================================================================================
// 4. NotOlderThan revisions reached by other resources' writes; far-future ones time out
// ============================================================================================

async fn not_older_than_from_another_resource(store: Store) {
    let env = start(store, config()).await;
    create(&env, SECRETS, &secret("s0")).await;
    // N is a configmap's revision: the secrets cache never saw an event at N.
    let n = rv(&create(&env, CM, &configmap("x")).await);
    let n_text = n.to_string();

    let list = env
        .get_with(
            SECRETS,
            &[
                ("resourceVersion", &n_text),
                ("resourceVersionMatch", "NotOlderThan"),
            ],
        )
        .await;
    assert_eq!(names(list.expect(200)), strings(&["s0"]));
    assert!(rv(&list.body) >= n);
    // Without resourceVersionMatch and without a limit it means the same.
    let legacy = env.get_with(SECRETS, &[("resourceVersion", &n_text)]).await;
    assert_eq!(names(legacy.expect(200)), strings(&["s0"]));
    // Exact at N: the secrets did not change between their last write and N.
    let exact = env
        .get_with(
            SECRETS,
            &[
                ("resourceVersion", &n_text),
                ("resourceVersionMatch", "Exact"),
            ],
        )
        .await;
    assert_eq!(names(exact.expect(200)), strings(&["s0"]));
    assert_eq!(rv(&exact.body), n);
    // A GET at N.
    env.get_with(&format!("{SECRETS}/s0"), &[("resourceVersion", &n_text)])
        .await
        .expect(200);
    // A watch from N gets what follows, not what precedes.
    let mut watch = env
        .watch(SECRETS, &[("watch", "true"), ("resourceVersion", &n_text)])
        .await;
    let s1 = create(&env, SECRETS, &secret("s1")).await;
    let added = expect(&mut watch, "ADDED", "s1").await;
    assert_eq!(rv(&added["object"]), rv(&s1));
    watch.expect_quiet(QUIET).await;

    // Far in the future: a 504 Timeout after a brief wait.
    let future = (n + 1_000_000).to_string();
    let started = Instant::now();
    let reply = env
        .get_with(
            SECRETS,
            &[
                ("resourceVersion", &future),
                ("resourceVersionMatch", "NotOlderThan"),
            ],
        )
        .await;
    let waited = started.elapsed();
    reply.expect_status(504, "Timeout");
    assert!(
        reply.message().contains("Too large resource version"),
        "{:#}",
        reply.body
    );
    assert_eq!(
        reply.body["details"]["causes"][0]["reason"], "ResourceVersionTooLarge",
        "{:#}",
        reply.body
    );
    assert!(
        waited < Duration::from_secs(5) + Duration::from_millis(500),
        "the 504 took {waited:?}"
    );
    assert!(
        waited >= Duration::from_millis(500),
        "no wait before the 504: {waited:?}"
    );
}

// ============================================================================================
// 5. A slow watcher is ended with a 429 telling where to resume; others are not delayed
// ============================================================================================

/// A watch cache over `backend` for every built-in resource, as `server::build_api` builds
/// one, kept as `WatchCache` for its stats.
fn watch_cache(backend: Arc<dyn Backend>, config: WatchCacheConfig) -> Arc<WatchCache> {
    let registry = Registry::builtin().snapshot();
    let mut resources: Vec<(String, Shapes)> = Vec::new();
    for resource in registry.iter() {
        if resources
            .iter()
            .any(|(_, shapes)| shapes.primary().storage_path == resource.storage_path)
        {
            continue;
        }
        let sharing = registry
            .sharing_storage(&resource.storage_path)
            .map(|r| r.info().clone())
            .collect();
        resources.push((resource.storage_prefix("/registry"), Shapes::new(sharing)));
    }
    Arc::new(WatchCache::start(
        backend,
        Arc::new(JsonCodec::new(Arc::new(Registry::builtin()))),
        resources,
        config,
    ))
}

async fn next_frame(stream: &mut FrameStream, wait: Duration) -> Option<Value> {
    let frame: Bytes = tokio::time::timeout(wait, stream.next())
        .await
        .expect("no frame in time")?;
    Some(serde_json::from_slice(&frame).expect("a frame is JSON"))
}

fn frame_name(frame: &Value) -> &str {
    frame["object"]["metadata"]["name"].as_str().unwrap_or("")
}

async fn slow_watcher_is_ended_without_delaying_others(store: Store) {
    {
        // The etcd (if any) outlives the cache: locals drop in reverse order.
        let (backend, _etcd): (Arc<dyn Backend>, Option<TestEtcd>) = match store {
            Store::Embedded => (Arc::new(EmbeddedBackend::in_memory()), None),
            Store::Etcd => {
                let etcd = tokio::task::spawn_blocking(TestEtcd::start)
                    .await
                    .expect("start etcd");
                let backend = EtcdBackend::connect(&[etcd.endpoint()], Default::default())
                    .await
                    .expect("connect to etcd");
                (Arc::new(backend), Some(etcd))
            }
        };
        let cache = watch_cache(
            backend.clone(),
            WatchCacheConfig {
                watcher_queue: 8,
                ..config()
            },
        );
        let api = Api::new(backend.clone(), cache.clone(), "/registry");
        let ready_by = Instant::now() + Duration::from_secs(10);
        while api.reads.ready().await.is_err() {
            assert!(Instant::now() < ready_by, "the cache did not get ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let configmaps = api.registry.lookup("", "v1", "configmaps").unwrap();
        let request = |start: WatchStart| WatchRequest {
            table: false,
            protobuf: false,
            resource: configmaps.info().clone(),
            prefix: api.storage_prefix(&configmaps),
            filter: Arc::new(Filter::default()),
            start,
            initial_events_end: false,
            bookmarks: false,
            bookmark_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(300),
        };
        let start_rv = backend.current_revision().await.unwrap();
        let mut slow = api
            .reads
            .watch(request(WatchStart::Initial(ReadAt::Latest)))
            .await
            .expect("slow watch");
        let mut fast = api
            .reads
            .watch(request(WatchStart::Initial(ReadAt::Latest)))
            .await
            .expect("fast watch");
        let (frames, mut received) = tokio::sync::mpsc::unbounded_channel();
        let poller = tokio::spawn(async move {
            while let Some(frame) = fast.next().await {
                let frame: Value = serde_json::from_slice(&frame).expect("a frame is JSON");
                if frames.send(frame).is_err() {
                    break;
                }
            }
        });

        let mut revisions = Vec::new();
        let mut slowest = Duration::ZERO;
        for i in 0..200 {
            let name = format!("cm-{i:03}");
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"i": i.to_string()}});
            let written = Instant::now();
            let kv = backend
                .create(
                    &format!("/registry/configmaps/default/{name}"),
                    Bytes::from(serde_json::to_vec(&object).unwrap()),
                )
                .await
                .expect("write");
            revisions.push(kv.mod_revision);
            // The polled watcher gets each event promptly, in order, although the other one
            // stopped reading long ago.
            let frame = tokio::time::timeout(Duration::from_secs(2), received.recv())
                .await
                .unwrap_or_else(|_| panic!("the polled watcher did not get {name} within 2 s"))
                .expect("the polled watch ended");
            slowest = slowest.max(written.elapsed());
            assert_eq!(frame["type"], "ADDED", "{frame:#}");
            assert_eq!(frame_name(&frame), name, "{frame:#}");
            assert_eq!(rv(&frame["object"]), kv.mod_revision);
        }
        assert!(
            slowest < Duration::from_secs(1),
            "an event took {slowest:?}"
        );
        assert!(
            received.try_recv().is_err(),
            "the polled watcher got extra frames"
        );

        let stats = cache
            .stats()
            .into_iter()
            .find(|s| s.prefix == "/registry/configmaps/")
            .expect("stats of configmaps");
        assert_eq!(stats.watchers_terminated_slow, 1, "{stats:?}");
        assert_eq!(
            stats.watchers, 1,
            "only the polled watcher is left: {stats:?}"
        );

        // The slow watcher: what it had queued, then the 429.
        let mut queued = Vec::new();
        let error = loop {
            let frame = next_frame(&mut slow, Duration::from_secs(5))
                .await
                .expect("the slow watch ended without an ERROR");
            if frame["type"] == "ERROR" {
                break frame;
            }
            assert_eq!(frame["type"], "ADDED", "{frame:#}");
            queued.push(frame);
        };
        assert!(queued.len() <= 8, "{} frames queued", queued.len());
        for (i, frame) in queued.iter().enumerate() {
            assert_eq!(frame_name(frame), format!("cm-{i:03}"));
            assert_eq!(rv(&frame["object"]), revisions[i]);
        }
        assert_eq!(error["object"]["code"], 429, "{error:#}");
        assert_eq!(error["object"]["reason"], "TooManyRequests", "{error:#}");
        let message = error["object"]["message"].as_str().unwrap_or("");
        let resume: i64 = message
            .rsplit("resourceVersion ")
            .next()
            .and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|digits| digits.parse().ok())
            })
            .unwrap_or_else(|| panic!("no resourceVersion to resume from in {message:?}"));
        let expected_resume = queued.last().map_or(start_rv, |frame| rv(&frame["object"]));
        assert_eq!(resume, expected_resume, "{message}");
        assert!(
            next_frame(&mut slow, Duration::from_secs(5))
                .await
                .is_none(),
            "the slow watch goes on after its ERROR"
        );

        // Resuming from there: the rest, no gap, no duplicate.
        let mut resumed = api
            .reads
            .watch(request(WatchStart::After(resume)))
            .await
            .expect("resume");
        for (i, &revision) in revisions.iter().enumerate().skip(queued.len()) {
            let frame = next_frame(&mut resumed, Duration::from_secs(5))
                .await
                .expect("the resumed watch ended");
            assert_eq!(frame["type"], "ADDED", "{frame:#}");
            assert_eq!(frame_name(&frame), format!("cm-{i:03}"), "{frame:#}");
            assert_eq!(rv(&frame["object"]), revision);
        }
        assert!(
            tokio::time::timeout(QUIET, resumed.next()).await.is_err(),
            "the resumed watch got more than the remaining events"
        );
        drop(slow);
        poller.abort();
    }
}

// ============================================================================================
// 6. Selectors: objects entering and leaving label and spec.nodeName selectors
// ============================================================================================

async fn move_pod(env: &Env, patch: Value) -> i64 {
    rv(env
        .patch(&format!("{PODS}/p"), MERGE_PATCH, &patch)
        .await
        .expect(200))
}

/// Binds the unscheduled pod `p` to `node` through `pods/binding` (an update may not set
/// `spec.nodeName`); the pod's new resourceVersion.
async fn bind_pod(env: &Env, node: &str) -> i64 {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                         "target": {"kind": "Node", "name": node}});
    env.post(&format!("{PODS}/p/binding"), &binding)
        .await
        .expect(201);
    rv(env.get(&format!("{PODS}/p")).await.expect(200))
}

/// Moves the bound pod `p` to `node` in storage. No API request can (kube allows a pod
/// one binding), but the cache must follow whatever storage holds: another writer of the
/// same etcd may do it.
async fn move_in_storage(env: &Env, node: &str) -> i64 {
    let key = "/registry/pods/default/p";
    let stored = env
        .backend
        .get(key)
        .await
        .unwrap()
        .expect("pod p is stored");
    let mut pod: Value = serde_json::from_slice(&stored.value).unwrap();
    pod["spec"]["nodeName"] = json!(node);
    let written = env
        .backend
        .update(
            key,
            Bytes::from(serde_json::to_vec(&pod).unwrap()),
            stored.mod_revision,
        )
        .await
        .unwrap();
    written.mod_revision
}

async fn watch_from(
    server: &TestServer,
    path: &str,
    resource_version: &str,
    selector: (&str, &str),
) -> WatchStream {
    server
        .watch(
            path,
            &[
                ("watch", "true"),
                ("resourceVersion", resource_version),
                selector,
            ],
        )
        .await
}

fn node_name(event: &Value) -> &str {
    event["object"]["spec"]["nodeName"].as_str().unwrap_or("")
}

async fn selectors_enter_and_leave(store: Store) {
    let env = start(store, config()).await;
    let start_rv = rv(env.get(PODS).await.expect(200)).to_string();
    // A kubelet's watch is cluster-wide; the others are namespaced.
    let watch = |path, selector| watch_from(&env, path, &start_rv, selector);
    let mut node_a = watch("/api/v1/pods", ("fieldSelector", "spec.nodeName=node-a")).await;
    let mut node_b = watch(PODS, ("fieldSelector", "spec.nodeName=node-b")).await;
    let mut unscheduled = watch(PODS, ("fieldSelector", "spec.nodeName=")).await;
    let mut web = watch(PODS, ("labelSelector", "app=web")).await;

    // Created unscheduled: only the unscheduled watcher sees it.
    let created = rv(&create(&env, PODS, &pod("p", "db")).await);
    let event = expect(&mut unscheduled, "ADDED", "p").await;
    assert_eq!(rv(&event["object"]), created);

    // Scheduled onto node-a: it enters node-a's selector and leaves the unscheduled one.
    let to_a = bind_pod(&env, "node-a").await;
    let event = expect(&mut node_a, "ADDED", "p").await;
    assert_eq!((node_name(&event), rv(&event["object"])), ("node-a", to_a));
    let event = expect(&mut unscheduled, "DELETED", "p").await;
    // The last state that matched, at the revision of the change.
    assert_eq!((node_name(&event), rv(&event["object"])), ("", to_a));

    // Labelled app=web while on node-a.
    let labelled = move_pod(&env, json!({"metadata": {"labels": {"app": "web"}}})).await;
    let event = expect(&mut node_a, "MODIFIED", "p").await;
    assert_eq!(rv(&event["object"]), labelled);
    let event = expect(&mut web, "ADDED", "p").await;
    assert_eq!(
        (node_name(&event), rv(&event["object"])),
        ("node-a", labelled)
    );

    // Moved to node-b: node-a sees it leave (as it last was there), node-b sees it arrive.
    let to_b = move_in_storage(&env, "node-b").await;
    let event = expect(&mut node_a, "DELETED", "p").await;
    assert_eq!((node_name(&event), rv(&event["object"])), ("node-a", to_b));
    assert_eq!(event["object"]["metadata"]["labels"]["app"], "web");
    let event = expect(&mut node_b, "ADDED", "p").await;
    assert_eq!((node_name(&event), rv(&event["object"])), ("node-b", to_b));
    let event = expect(&mut web, "MODIFIED", "p").await;
    assert_eq!((node_name(&event), rv(&event["object"])), ("node-b", to_b));

    // The label changes back: it leaves the label selector.
    let relabelled = move_pod(&env, json!({"metadata": {"labels": {"app": "db"}}})).await;
    let event = expect(&mut web, "DELETED", "p").await;
    assert_eq!(event["object"]["metadata"]["labels"]["app"], "web");
    assert_eq!(rv(&event["object"]), relabelled);
    let event = expect(&mut node_b, "MODIFIED", "p").await;
    assert_eq!(event["object"]["metadata"]["labels"]["app"], "db");

    // A pod created on node-a directly never shows up unscheduled.
    create(
        &env,
        PODS,
        &json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]},
        }),
    )
    .await;
    expect(&mut node_a, "ADDED", "q").await;

    // Deleted on node-b.
    env.delete(&format!("{PODS}/p")).await.expect(200);
    let event = expect(&mut node_b, "DELETED", "p").await;
    assert_eq!(node_name(&event), "node-b");
    assert!(rv(&event["object"]) > relabelled);

    for stream in [&mut node_a, &mut node_b, &mut unscheduled, &mut web] {
        stream.expect_quiet(QUIET).await;
    }

    // Watches from now (synthetic ADDED) with the same selectors.
    let mut on_a = env
        .watch(
            "/api/v1/pods",
            &[("watch", "true"), ("fieldSelector", "spec.nodeName=node-a")],
        )
        .await;
    expect(&mut on_a, "ADDED", "q").await;
    on_a.expect_quiet(QUIET).await;
    let mut none = env
        .watch(
            PODS,
            &[("watch", "true"), ("fieldSelector", "spec.nodeName=")],
        )
        .await;
    none.expect_quiet(QUIET).await;
    create(&env, PODS, &pod("r", "db")).await;
    expect(&mut none, "ADDED", "r").await;
    // And the same selectors on a LIST.
    let listed = env
        .get_with(PODS, &[("fieldSelector", "spec.nodeName=")])
        .await;
    assert_eq!(names(listed.expect(200)), strings(&["r"]));
}

// ============================================================================================
// 7. An etcd restart: the cache resumes its storage watch; client watches go on
// ============================================================================================

/// Polls /readyz until it answers `code`, for at most 20 s.
async fn wait_ready(server: &TestServer, code: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = tokio::time::timeout(
            Duration::from_secs(5),
            server.client.get(server.url("/readyz")).send(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|r| r.status().as_u16());
        if status == Some(code) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz did not answer {code} (last: {status:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a configmap, retrying while storage is coming back; its resourceVersion.
async fn create_retrying(server: &TestServer, name: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = send_json(
            &server.client,
            Method::POST,
            &server.url(CM),
            &configmap(name),
        )
        .await;
        match status {
            201 => return rv(&body),
            // The first attempt reached etcd but its answer was lost.
            409 => return rv(server.get(&format!("{CM}/{name}")).await.expect(200)),
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "create {name}: {status} {body:#}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_etcd_restart() {
    bounded(async {
        let mut env = start(Store::Etcd, config()).await;
        let list_rv = rv(env.get(CM).await.expect(200)).to_string();
        let mut watch = env
            .watch(CM, &[("watch", "true"), ("resourceVersion", &list_rv)])
            .await;
        let mut written = Vec::new();
        for name in ["before-1", "before-2"] {
            written.push((
                name.to_string(),
                rv(&create(&env, CM, &configmap(name)).await),
            ));
        }
        for (name, revision) in &written {
            let event = expect(&mut watch, "ADDED", name).await;
            assert_eq!(rv(&event["object"]), *revision);
        }
        wait_ready(&env, 200).await;

        let mut etcd = env.etcd.take().expect("etcd");
        let etcd = tokio::task::spawn_blocking(move || {
            etcd.stop();
            etcd
        })
        .await
        .unwrap();
        wait_ready(&env, 500).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let etcd = tokio::task::spawn_blocking(move || {
            let mut etcd = etcd;
            etcd.restart();
            etcd
        })
        .await
        .unwrap();
        // Another replica writes at once, likely before this cache's storage watch is back:
        // the cache must replay it from etcd when it resumes.
        let other = EtcdBackend::connect(&[etcd.endpoint()], Default::default())
            .await
            .expect("connect to etcd");
        env.etcd = Some(etcd);
        let replica = TestServer::start_with_reads(Arc::new(other), ReadConfig::Storage).await;
        let mut after = vec![(
            "after-0".to_string(),
            create_retrying(&replica, "after-0").await,
        )];
        wait_ready(&env, 200).await;

        for name in ["after-1", "after-2", "after-3"] {
            after.push((name.to_string(), create_retrying(&env, name).await));
        }
        // The same client watch: every new event, in order, none twice, none of the old ones.
        for (name, revision) in &after {
            let event = expect(&mut watch, "ADDED", name).await;
            assert_eq!(rv(&event["object"]), *revision, "{event:#}");
        }
        watch.expect_quiet(QUIET).await;
        assert_eq!(
            names(env.get(CM).await.expect(200)),
            strings(&[
                "after-0", "after-1", "after-2", "after-3", "before-1", "before-2"
            ])
        );
    })
    .await
}

// ============================================================================================
// 8. Watch-list (sendInitialEvents) and bookmarks
// ============================================================================================

async fn watch_list_and_bookmarks(store: Store) {
    let env = start(store, config()).await;
    let mut last = 0;
    for name in ["a", "b", "c"] {
        last = rv(&create(&env, CM, &configmap(name)).await);
    }
    let mut watch = env
        .watch(
            CM,
            &[
                ("watch", "true"),
                ("sendInitialEvents", "true"),
                ("resourceVersionMatch", "NotOlderThan"),
                ("allowWatchBookmarks", "true"),
            ],
        )
        .await;
    for name in ["a", "b", "c"] {
        expect(&mut watch, "ADDED", name).await;
    }
    let end = watch.next_event().await;
    assert_eq!(end["type"], "BOOKMARK", "{end:#}");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true",
        "{end:#}"
    );
    assert_eq!(end["object"]["kind"], "ConfigMap", "{end:#}");
    let end_rv = rv(&end["object"]);
    assert!(end_rv >= last, "{end:#}");
    let d = rv(&create(&env, CM, &configmap("d")).await);
    let event = expect(&mut watch, "ADDED", "d").await;
    assert_eq!(rv(&event["object"]), d);
    assert!(d > end_rv);
    watch.expect_quiet(QUIET).await;

    // With a resourceVersion to be not older than.
    let mut watch = env
        .watch(
            CM,
            &[
                ("watch", "true"),
                ("sendInitialEvents", "true"),
                ("resourceVersionMatch", "NotOlderThan"),
                ("resourceVersion", &last.to_string()),
                ("allowWatchBookmarks", "true"),
            ],
        )
        .await;
    for name in ["a", "b", "c", "d"] {
        expect(&mut watch, "ADDED", name).await;
    }
    let end = watch.next_event().await;
    assert_eq!(end["type"], "BOOKMARK", "{end:#}");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(rv(&end["object"]) >= d);

    // Bookmarks with a short timeout: one comes ~2 s before the end.
    let list_rv = rv(env.get(CM).await.expect(200)).to_string();
    let started = Instant::now();
    let mut watch = env
        .watch(
            CM,
            &[
                ("watch", "true"),
                ("resourceVersion", &list_rv),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", "4"),
            ],
        )
        .await;
    let e = rv(&create(&env, CM, &configmap("e")).await);
    let event = expect(&mut watch, "ADDED", "e").await;
    assert_eq!(rv(&event["object"]), e);
    // Another resource moves the revision on meanwhile.
    create(&env, SECRETS, &secret("unrelated")).await;
    let bookmark = match watch.next_within(Duration::from_secs(5)).await {
        Next::Event(event) => event,
        other => panic!("expected a BOOKMARK, got {other:?}"),
    };
    let at = started.elapsed();
    assert_eq!(bookmark["type"], "BOOKMARK", "{bookmark:#}");
    assert!(
        at >= Duration::from_millis(1500) && at < Duration::from_millis(3800),
        "the bookmark came {at:?} into a 4 s watch"
    );
    assert!(
        bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"].is_null(),
        "{bookmark:#}"
    );
    let bookmark_rv = rv(&bookmark["object"]);
    assert!(bookmark_rv >= e, "{bookmark:#}");
    watch.expect_end(Duration::from_secs(4)).await;
    let ended = started.elapsed();
    assert!(
        ended >= Duration::from_millis(3500) && ended < Duration::from_secs(7),
        "the 4 s watch ended after {ended:?}"
    );

    // The bookmark is a resume point: what follows, nothing that preceded it.
    let mut resumed = env
        .watch(
            CM,
            &[
                ("watch", "true"),
                ("resourceVersion", &bookmark_rv.to_string()),
                ("allowWatchBookmarks", "true"),
            ],
        )
        .await;
    let f = rv(&create(&env, CM, &configmap("f")).await);
    let event = expect(&mut resumed, "ADDED", "f").await;
    assert_eq!(rv(&event["object"]), f);
    resumed.expect_quiet(QUIET).await;
}
