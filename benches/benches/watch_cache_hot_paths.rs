//! Watch cache hot paths, each measured next to a baseline in the same run.
//!
//! Every figure is the time of one operation, and every operation has a baseline: what a
//! simpler design would do in its place. The operations (DESIGN.md, "The data path"):
//!
//! 1. **apply** one storage event to a resource cache holding 10,000 pods.
//!    * `apply/state`: the state update alone, i.e. the lines of `ResourceCache::apply`
//!      after the object is built. That is the persistent-map (`imbl::OrdMap`) insert, the
//!      `CacheEvent`, the history push with its snapshot, trimming to 1,000 retained events
//!      (steady state), and the publish (`ArcSwap` store of a new `Published` and the
//!      revision `watch`). They are written out here with the cache's public types. The
//!      baseline is a `BTreeMap<String, Arc<CachedObject>>` updated in place: what a cache
//!      that keeps no snapshots would do.
//!    * `apply/resource-cache`: the real `ResourceCache::run` task, fed by a channel-backed
//!      storage watch on a current-thread runtime. Per event it runs the shard's loop, the
//!      attribute extraction (the codec's selective decode), `apply` and the publish. The
//!      baseline is a task reading the same kind of stream that extracts the attributes with
//!      the same codec and updates a `BTreeMap`, so the ratio isolates the snapshotting.
//! 2. **encode** one event of a ~1.5 KiB pod into a watch frame. The first call of
//!    `CacheEvent::frame` runs the codec (splice `"resourceVersion":"N"` into the stored JSON:
//!    a scan of the bytes and one copy) and `frame()`. Later calls for the same kind and shape
//!    return a clone of the shared `Bytes`. The baseline is `serde_json::to_vec` of the pod's
//!    `Value`.
//! 3. **dispatch** one event to 10,000 watchers with `WatcherIndex::dispatch`. Each event is
//!    fresh, so its frame is encoded once within the figure (except in `indexed-routing`).
//!    Queues are bounded (1,024) and drained, untimed, after every 512 events, so they never
//!    fill.
//!    * `dispatch/indexed`: 10,000 kubelet-style watchers (`fieldSelector=spec.nodeName=node-i`,
//!      indexed by the trigger field), and an event for a pod on node-42: one candidate. The
//!      baseline is a linear scan that evaluates every watcher's filter.
//!    * `dispatch/indexed-routing`: the same with each event's frame encoded beforehand, so
//!      that both figures are the routing alone.
//!    * `dispatch/unindexed`: 10,000 watchers without selectors, so every event becomes
//!      10,000 deliveries of one shared frame. The baseline encodes the frame once per
//!      watcher: a fan-out that shares nothing.
//! 4. **list** 50,000 pods from a snapshot with the real `WatchCache::list` (`ReadAt::Any`):
//!    an `OrdMap` range, the filter, and collecting `Arc` clones. Then, separately, the same
//!    plus the response body, assembled as the server's `list_body` does from each object's
//!    cached JSON. This is run without a selector and with a label selector matching 10%.
//!    The baseline builds the byte-identical body from a `Vec<(String, Value)>` of decoded
//!    objects with `serde_json`: the decode-and-reserialize path, without even the decode.
//! 5. **selector** matching of one cached pod (`selector/label`: `tier in (tier-2,tier-3),
//!    pod-template-hash=7d9f8c6b5d,!canary`; `selector/field`: `spec.nodeName=node-42,
//!    metadata.namespace=ns-42`), round-robin over 1,000 pods, with `Filter::matches` on the
//!    attributes the cache extracted once per stored version. The baseline is what a server
//!    without that cache does per object: decode the stored JSON into a `serde_json::Value`
//!    and walk it. A third variant walks an already decoded `Value`, to split decode from walk.
//! 6. **paging** through the 50,000 pods in pages of 500 with continue tokens, as the server
//!    serves each page: decode the token, the real `WatchCache::list` with `start_key` and
//!    `limit` at `ReadAt::Exact` (the token's revision), encode the next token. The baseline is
//!    one unpaged LIST of the same snapshot: `paging/walk` compares a whole walk of 100 pages
//!    with it; `paging/page` compares one page (every page in turn, the first, the last) with
//!    1/100 of it.
//!
//! The codec does the server's `JsonCodec` JSON work (the benches cannot depend on the server
//! crate) through the same functions, `kubecache_cache::json`: attributes from a typed subset
//! of the object (the rest skipped unbuilt, the full parse as the fallback), and encoding by
//! splicing `"resourceVersion":"N"` into the stored compact JSON.
//!
//! The harness is the same as in `shard_executor.rs`. This machine is noisy, and criterion
//! measures one configuration after another. Here each group's variants are built up front
//! and sampled in interleaved rounds (one sample of each per round, order rotated). A ratio
//! is the median over rounds of `variant / baseline` in the same round. Each sample is sized
//! by a calibration to ~30 ms (at least one operation).
//!
//! Run: `cargo bench -p kubecache-benches --bench watch_cache_hot_paths` (~55 s after the
//! build). Arguments that do not start with `--` filter groups by substring (e.g. `dispatch`).
//! Without `--bench` (e.g. `cargo test --benches`) it runs a tiny smoke version.

use kubecache_benches::{BenchCodec, current_thread, read_only, stats};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use kubecache_cache::json;
use kubecache_cache::object::frame;
use kubecache_cache::watch_cache::resource::{ResourceCache, ResourceHandle};
use kubecache_cache::watch_cache::state::{CacheEvent, CacheState, EventKind, Published, Queued};
use kubecache_cache::watch_cache::watchers::{Ending, Frame, WatcherIndex, WatcherStats};
use kubecache_cache::{
    CachedObject, Filter, ListRequest, ObjectCodec, ReadAt, ReadPath, Shapes, WatchCache,
    WatchCacheConfig, write_items_one_by_one,
};
use kubecache_core::continue_token::ContinueToken;
use kubecache_core::registry::{NAMESPACED, ResourceInfo};
use kubecache_core::selector::{FieldSelector, LabelSelector};
use kubecache_core::storage::{
    Backend, Deleted, KeyValue, ListOptions, ListPage, PrefixState, Result as StorageResult,
    Revision, StorageEvent, WatchStream,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

const PREFIX: &str = "/registry/pods/";
/// A watcher's queue, as `WatchCacheConfig::default().watcher_queue`.
const WATCHER_QUEUE: usize = 1_024;
/// At most this many events between two drains of the watchers' queues, so that none fills.
const MAX_DISPATCH_OPS: usize = WATCHER_QUEUE / 2;
/// The label selector of the 10% LIST.
const TENTH: &str = "tier=tier-3";

/// How much work one run does.
#[derive(Clone, Copy)]
struct Scale {
    /// Pods in the cache that events are applied to.
    apply_pods: usize,
    /// Events retained by that cache (history_min_events = history_max_events).
    history: usize,
    /// Watchers of each dispatch group.
    watchers: usize,
    /// Pods listed.
    list_objects: usize,
    /// Interleaved rounds per group.
    rounds: usize,
    /// Target duration of one sample.
    sample: Duration,
}

const BENCH: Scale = Scale {
    apply_pods: 10_000,
    history: 1_000,
    watchers: 10_000,
    list_objects: 50_000,
    rounds: 21,
    sample: Duration::from_millis(30),
};

/// Without `--bench`: prove every path works, fast, even in a debug build.
const SMOKE: Scale = Scale {
    apply_pods: 200,
    history: 20,
    watchers: 100,
    list_objects: 1_200,
    rounds: 1,
    sample: Duration::from_micros(100),
};

// ---------------------------------------------------------------------------------------------
// Pods and the codec.

fn pods() -> &'static Arc<ResourceInfo> {
    static PODS: std::sync::LazyLock<Arc<ResourceInfo>> = std::sync::LazyLock::new(|| {
        Arc::new(ResourceInfo::new(
            "", "v1", "pods", "pod", "Pod", NAMESPACED,
        ))
    });
    &PODS
}

/// A running pod of a ReplicaSet, ~1.5 KiB of JSON: pod `i` on node `i % nodes`, in namespace
/// `ns-(i % 50)`, labelled `tier=tier-(i % 10)`.
fn pod(i: usize, nodes: usize) -> Value {
    let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("web-7d9f8c6b5d-{i:06}"),
            "namespace": format!("ns-{:02}", i % 50),
            "uid": format!("6f1c2a4e-5b7d-4c3e-9f10-{i:012}"),
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {
                "app": format!("app-{}", i % 100),
                "tier": format!("tier-{}", i % 10),
                "pod-template-hash": "7d9f8c6b5d",
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-7d9f8c6b5d",
                "uid": "0d6f3c0a-9a51-4f0e-8d8e-2b4c1f7e5a21",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "nodeName": format!("node-{}", i % nodes),
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "containers": [{
                "name": "web",
                "image": "nginx:1.27.0",
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "volumeMounts": [{
                    "name": "kube-api-access",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    "readOnly": true,
                }],
            }],
            "volumes": [{
                "name": "kube-api-access",
                "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]},
            }],
        },
        "status": {
            "phase": "Running",
            "hostIP": "192.168.0.10",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:05Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2025-01-01T00:00:05Z"},
            ],
            "containerStatuses": [{
                "name": "web",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "image": "nginx:1.27.0",
                "containerID": format!("containerd://{i:016x}"),
                "state": {"running": {"startedAt": "2025-01-01T00:00:04Z"}},
            }],
        },
    })
}

fn pod_key(pod: &Value) -> String {
    let meta = &pod["metadata"];
    format!(
        "{PREFIX}{}/{}",
        meta["namespace"].as_str().unwrap_or(""),
        meta["name"].as_str().unwrap_or("")
    )
}

/// Pod `i` as storage holds it, written at `revision`.
fn pod_kv(i: usize, nodes: usize, revision: Revision) -> KeyValue {
    let pod = pod(i, nodes);
    KeyValue {
        key: pod_key(&pod),
        value: Bytes::from(serde_json::to_vec(&pod).expect("JSON serializes")),
        create_revision: revision,
        mod_revision: revision,
    }
}

/// Pod `kv` as the cache holds it (attributes extracted).
fn cached(codec: &BenchCodec, kv: KeyValue) -> Arc<CachedObject> {
    CachedObject::from_kv(codec, pods(), kv).expect("pods parse")
}

/// The same object again, as a new stored version at `revision` (its JSON not encoded yet).
fn new_version(object: &CachedObject, revision: Revision) -> Arc<CachedObject> {
    let mut kv = object.kv.clone();
    kv.mod_revision = revision;
    CachedObject::new(kv, object.attrs.clone())
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Added => "ADDED",
        EventKind::Modified => "MODIFIED",
        EventKind::Deleted => "DELETED",
    }
}

// ---------------------------------------------------------------------------------------------
// A storage backend that lists a fixed set of pods and then streams what the bench sends.

type Events = mpsc::UnboundedSender<StorageResult<StorageEvent>>;

fn event_stream(rx: mpsc::UnboundedReceiver<StorageResult<StorageEvent>>) -> WatchStream {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }).boxed()
}

struct FakeBackend {
    kvs: Vec<KeyValue>,
    revision: Revision,
    /// The one watch the cache opens.
    watch: Mutex<Option<mpsc::UnboundedReceiver<StorageResult<StorageEvent>>>>,
}

impl FakeBackend {
    fn new(kvs: Vec<KeyValue>, revision: Revision) -> (Arc<FakeBackend>, Events) {
        let (tx, rx) = mpsc::unbounded_channel();
        let backend = FakeBackend {
            kvs,
            revision,
            watch: Mutex::new(Some(rx)),
        };
        (Arc::new(backend), tx)
    }
}

#[async_trait]
impl Backend for FakeBackend {
    async fn get(&self, key: &str) -> StorageResult<Option<KeyValue>> {
        Ok(self.kvs.iter().find(|kv| kv.key == key).cloned())
    }

    async fn list(&self, _options: ListOptions) -> StorageResult<ListPage> {
        Ok(ListPage {
            kvs: self.kvs.clone(),
            revision: self.revision,
            more: false,
            count: self.kvs.len() as i64,
        })
    }

    async fn create(&self, _key: &str, _value: Bytes) -> StorageResult<KeyValue> {
        Err(read_only())
    }

    async fn update(
        &self,
        _key: &str,
        _value: Bytes,
        _expected: Revision,
    ) -> StorageResult<KeyValue> {
        Err(read_only())
    }

    async fn delete(&self, _key: &str, _expected: Option<Revision>) -> StorageResult<Deleted> {
        Err(read_only())
    }

    async fn watch(&self, _prefix: &str, _start: Revision) -> StorageResult<WatchStream> {
        let rx = self.watch.lock().expect("not poisoned").take();
        // A second watch only happens if the bench dropped its sender: wait forever.
        Ok(rx.map_or_else(|| futures::stream::pending().boxed(), event_stream))
    }

    async fn current_revision(&self) -> StorageResult<Revision> {
        Ok(self.revision)
    }

    async fn prefix_state(
        &self,
        _prefix: &str,
        _since: Revision,
        _at: Option<Revision>,
    ) -> StorageResult<PrefixState> {
        Err(read_only())
    }

    async fn compact(&self, _revision: Revision) -> StorageResult<()> {
        Ok(())
    }
}

fn cache_config(history: usize) -> WatchCacheConfig {
    WatchCacheConfig {
        shards: 1,
        history_min_events: history,
        history_max_events: history,
        ..WatchCacheConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Interleaved measurement.

/// One way of doing an operation. `run(n)` does `n` operations and returns the time they took
/// (preparation and clean-up happen outside the returned time).
struct Variant<'a> {
    label: String,
    /// At most this many operations per sample.
    max_ops: usize,
    run: Box<dyn FnMut(usize) -> Duration + 'a>,
    /// Operations per sample, set by calibration.
    ops: usize,
    /// ns per operation, one per round.
    ns: Vec<f64>,
}

impl<'a> Variant<'a> {
    fn new(
        label: impl Into<String>,
        max_ops: usize,
        run: impl FnMut(usize) -> Duration + 'a,
    ) -> Variant<'a> {
        Variant {
            label: label.into(),
            max_ops: max_ops.max(1),
            run: Box::new(run),
            ops: 1,
            ns: Vec::new(),
        }
    }

    fn sample(&mut self) -> f64 {
        let d = (self.run)(self.ops);
        d.as_nanos() as f64 / self.ops as f64
    }
}

struct Group<'a> {
    name: &'static str,
    /// Deliveries per operation, for a per-delivery figure.
    deliveries: Option<usize>,
    /// Variants[0] is the baseline.
    variants: Vec<Variant<'a>>,
}

/// Measures `group`; returns its table rows.
fn measure(mut group: Group<'_>, scale: Scale) -> Vec<String> {
    let started = Instant::now();
    // Warm up, then size each variant's sample to `scale.sample`.
    for v in &mut group.variants {
        v.ops = 1;
        v.sample();
        v.ops = v.max_ops.min(4);
        let ns = v.sample().max(1.0);
        v.ops = ((scale.sample.as_nanos() as f64 / ns) as usize).clamp(1, v.max_ops);
    }
    let n = group.variants.len();
    for round in 0..scale.rounds {
        for k in 0..n {
            let v = &mut group.variants[(k + round) % n];
            let ns = v.sample();
            v.ns.push(ns);
        }
    }
    eprintln!(
        "{}: {} interleaved rounds in {:.1?} (ops per sample: {})",
        group.name,
        scale.rounds,
        started.elapsed(),
        group
            .variants
            .iter()
            .map(|v| v.ops.to_string())
            .collect::<Vec<_>>()
            .join("/")
    );

    let base = &group.variants[0];
    let (bm, blo, bhi) = stats(&base.ns);
    let per_delivery = |ns: f64| match group.deliveries {
        Some(d) => format!("; {}/delivery", human_ns(ns / d as f64)),
        None => String::new(),
    };
    let baseline = format!(
        "{}: {} ({}–{}){}",
        base.label,
        human_ns(bm),
        human_ns(blo),
        human_ns(bhi),
        per_delivery(bm)
    );
    group.variants[1..]
        .iter()
        .map(|v| {
            let (m, lo, hi) = stats(&v.ns);
            let ratios: Vec<f64> = v.ns.iter().zip(&base.ns).map(|(x, b)| x / b).collect();
            let (rm, rlo, rhi) = stats(&ratios);
            format!(
                "| {}: {} | {} ({}–{}){} | {baseline} | {} ({}–{}) |",
                group.name,
                v.label,
                human_ns(m),
                human_ns(lo),
                human_ns(hi),
                per_delivery(m),
                ratio(rm),
                ratio(rlo),
                ratio(rhi),
            )
        })
        .collect()
}

fn human_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Two decimals, or three significant digits below 0.1.
fn ratio(x: f64) -> String {
    if x >= 0.1 || x <= 0.0 {
        format!("{x:.2}")
    } else {
        let decimals = (2.0 - x.log10().floor()) as usize;
        format!("{x:.decimals$}")
    }
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// 1. Apply one event.

/// The state update of `ResourceCache::apply`, after the object is built: insert, event,
/// history with its snapshot, trim, publish.
fn apply_to_state(
    current: &mut Published,
    handle: &ResourceHandle,
    history: usize,
    key: Arc<str>,
    object: Arc<CachedObject>,
) {
    let revision = object.kv.mod_revision;
    let prev = current.objects.insert(key.clone(), object.clone());
    let event = Arc::new(CacheEvent::new(revision, key, Some(object), prev));
    current.revision = revision;
    current.verified = revision;
    current.record(event);
    while current.history.len() > history {
        current.drop_oldest();
    }
    handle.published.store(Arc::new(current.clone()));
    handle.revision.send_if_modified(|r| {
        let changed = *r != revision;
        *r = revision;
        changed
    });
}

fn apply_state(scale: Scale) -> Vec<String> {
    let codec = BenchCodec;
    let n = scale.apply_pods;
    let objects: Vec<Arc<CachedObject>> = (0..n)
        .map(|i| cached(&codec, pod_kv(i, 1_000, 1)))
        .collect();
    let keys: Vec<Arc<str>> = objects.iter().map(|o| o.kv.key.as_str().into()).collect();
    // The i-th operation updates pod i % n with a new version at revision 1 + i.
    let fresh = |revision: Revision| {
        let i = revision as usize % n;
        (keys[i].clone(), new_version(&objects[i], revision))
    };

    let mut map: BTreeMap<String, Arc<CachedObject>> = objects
        .iter()
        .map(|o| (o.kv.key.clone(), o.clone()))
        .collect();
    let mut map_revision: Revision = 1;
    let baseline = Variant::new("BTreeMap<String, Arc> update in place", 100_000, |ops| {
        let batch: Vec<_> = (0..ops)
            .map(|_| {
                map_revision += 1;
                fresh(map_revision).1
            })
            .collect();
        timed(|| {
            for object in batch {
                match map.get_mut(object.kv.key.as_str()) {
                    Some(slot) => *slot = object,
                    None => {
                        map.insert(object.kv.key.clone(), object);
                    }
                }
            }
        })
    });

    let shapes = Shapes::new(vec![pods().clone()]);
    let (handle, _commands) = ResourceHandle::new(PREFIX.into(), shapes, 0);
    let mut current = Published::listed(
        keys.iter().cloned().zip(objects.iter().cloned()).collect(),
        1,
    );
    let mut revision: Revision = 1;
    // Fill the history: steady state pushes one event and drops one.
    for _ in 0..scale.history {
        revision += 1;
        let (key, object) = fresh(revision);
        apply_to_state(&mut current, &handle, scale.history, key, object);
    }
    let kubecache = Variant::new("OrdMap insert + history push + publish", 100_000, |ops| {
        let batch: Vec<_> = (0..ops)
            .map(|_| {
                revision += 1;
                fresh(revision)
            })
            .collect();
        timed(|| {
            for (key, object) in batch {
                apply_to_state(&mut current, &handle, scale.history, key, object);
            }
        })
    });

    measure(
        Group {
            name: "apply/state",
            deliveries: None,
            variants: vec![baseline, kubecache],
        },
        scale,
    )
}

/// A cache that keeps no snapshots: the stream, the attributes, a `BTreeMap` updated in place.
async fn btree_cache(
    mut events: WatchStream,
    codec: Arc<BenchCodec>,
    mut map: BTreeMap<String, Arc<CachedObject>>,
    revision: watch::Sender<Revision>,
) {
    while let Some(Ok(event)) = events.next().await {
        let StorageEvent::Put { kv, .. } = event else {
            continue;
        };
        let attrs = codec.attributes(pods(), &kv).unwrap_or_default();
        let rev = kv.mod_revision;
        let object = CachedObject::new(kv, attrs);
        match map.get_mut(object.kv.key.as_str()) {
            Some(slot) => *slot = object,
            None => {
                map.insert(object.kv.key.clone(), object);
            }
        }
        revision.send_if_modified(|r| {
            let changed = *r != rev;
            *r = rev;
            changed
        });
    }
}

fn apply_resource_cache(scale: Scale) -> Vec<String> {
    let codec = Arc::new(BenchCodec);
    let n = scale.apply_pods;
    let kvs: Vec<KeyValue> = (0..n).map(|i| pod_kv(i, 1_000, 1)).collect();
    let rt = current_thread();
    // The i-th event rewrites pod i % n at revision 1 + i (etcd gives no prev_kv here: the
    // cache takes the previous state from its own map).
    let batch = |revision: &mut Revision, ops: usize| -> Vec<StorageResult<StorageEvent>> {
        (0..ops)
            .map(|_| {
                *revision += 1;
                let mut kv = kvs[*revision as usize % n].clone();
                kv.mod_revision = *revision;
                Ok(StorageEvent::Put { kv, prev: None })
            })
            .collect()
    };
    // Sends a batch and waits until `published` reports its last revision.
    let run = |tx: &Events, published: &mut watch::Receiver<Revision>, events: Vec<_>, last| {
        rt.block_on(async {
            let start = Instant::now();
            for event in events {
                tx.send(event).expect("the cache is running");
            }
            published
                .wait_for(|r| *r >= last)
                .await
                .expect("the cache is running");
            start.elapsed()
        })
    };

    // Baseline.
    let (base_tx, base_rx) = mpsc::unbounded_channel();
    let (base_rev_tx, mut base_rev) = watch::channel(1);
    let map = kvs
        .iter()
        .map(|kv| (kv.key.clone(), cached(&codec, kv.clone())))
        .collect();
    rt.spawn(btree_cache(
        event_stream(base_rx),
        codec.clone(),
        map,
        base_rev_tx,
    ));
    let mut base_revision: Revision = 1;
    let baseline = Variant::new("stream → attributes → BTreeMap update", 20_000, |ops| {
        let events = batch(&mut base_revision, ops);
        run(&base_tx, &mut base_rev, events, base_revision)
    });

    // The real cache task.
    let (backend, tx) = FakeBackend::new(kvs.clone(), 1);
    let (handle, commands) =
        ResourceHandle::new(PREFIX.into(), Shapes::new(vec![pods().clone()]), 0);
    let cache = ResourceCache::new(
        handle.clone(),
        backend,
        codec.clone(),
        cache_config(scale.history),
    );
    rt.spawn(cache.run(commands));
    let mut published = handle.revision.subscribe();
    rt.block_on(published.wait_for(|_| handle.load().state == CacheState::Ready))
        .expect("the cache lists");
    assert_eq!(handle.load().objects.len(), n);
    let mut revision: Revision = 1;
    // Fill the history: steady state pushes one event and drops one.
    let events = batch(&mut revision, scale.history + 1);
    run(&tx, &mut published, events, revision);
    assert_eq!(handle.load().history.len(), scale.history);
    let kubecache = Variant::new("ResourceCache::run (apply + publish)", 20_000, |ops| {
        let events = batch(&mut revision, ops);
        run(&tx, &mut published, events, revision)
    });

    let rows = measure(
        Group {
            name: "apply/resource-cache",
            deliveries: None,
            variants: vec![baseline, kubecache],
        },
        scale,
    );
    assert_eq!(handle.load().history.len(), scale.history);
    drop(tx);
    drop(base_tx);
    rows
}

// ---------------------------------------------------------------------------------------------
// 2. Encode one event.

fn encode(scale: Scale) -> Vec<String> {
    let codec = BenchCodec;
    let shapes = Shapes::new(vec![pods().clone()]);
    let value = pod(42, 1_000);
    let prev = cached(&codec, pod_kv(42, 1_000, 1));
    let key: Arc<str> = prev.kv.key.as_str().into();
    eprintln!("pod JSON: {} bytes", prev.kv.value.len());
    assert!(
        json::splice_resource_version(&prev.kv.value, 2).is_some(),
        "the pod is encoded by the splice, as the server does"
    );
    let event = |revision: Revision| {
        CacheEvent::new(
            revision,
            key.clone(),
            Some(new_version(&prev, revision)),
            Some(prev.clone()),
        )
    };
    let frame_of = |e: &CacheEvent| e.frame(EventKind::Modified, 0, &codec, &shapes);

    let baseline = Variant::new("serde_json::to_vec(&Value)", 100_000, |ops| {
        let mut out = Vec::with_capacity(ops);
        timed(|| {
            for _ in 0..ops {
                out.push(serde_json::to_vec(black_box(&value)).expect("serializes"));
            }
        })
    });

    let mut revision: Revision = 1;
    let first = Variant::new("first CacheEvent::frame (encode + frame)", 100_000, |ops| {
        let events: Vec<CacheEvent> = (0..ops)
            .map(|_| {
                revision += 1;
                event(revision)
            })
            .collect();
        let mut out = Vec::with_capacity(ops);
        timed(|| {
            for e in &events {
                out.push(frame_of(e));
            }
        })
    });

    let shared: Vec<CacheEvent> = (0..64).map(|i| event(1_000_000 + i)).collect();
    let check = frame_of(&shared[0]);
    assert!(check.starts_with(b"{\"type\":\"MODIFIED\",\"object\":{") && check.ends_with(b"}\n"));
    let reuse = Variant::new(
        "next CacheEvent::frame (shared Bytes clone)",
        1_000_000,
        |ops| {
            let mut out = Vec::with_capacity(ops);
            timed(|| {
                for i in 0..ops {
                    out.push(frame_of(&shared[i % shared.len()]));
                }
            })
        },
    );

    measure(
        Group {
            name: "encode",
            deliveries: None,
            variants: vec![baseline, first, reuse],
        },
        scale,
    )
}

// ---------------------------------------------------------------------------------------------
// 3. Dispatch one event to 10,000 watchers.

/// Watchers as a plain list, for the baselines.
struct WatcherList {
    watchers: Vec<(Arc<Filter>, mpsc::Sender<Frame>)>,
    queues: Vec<mpsc::Receiver<Frame>>,
}

/// `n` watchers in a `WatcherIndex` and the same filters in a list; `filter(i)` is watcher i's.
fn watchers(
    n: usize,
    filter: impl Fn(usize) -> Filter,
) -> (WatcherIndex, Vec<mpsc::Receiver<Frame>>, WatcherList) {
    let mut index = WatcherIndex::new(
        BenchCodec.trigger_field(pods()),
        Arc::new(WatcherStats::default()),
    );
    let mut queues = Vec::with_capacity(n);
    let mut list = WatcherList {
        watchers: Vec::with_capacity(n),
        queues: Vec::with_capacity(n),
    };
    for i in 0..n {
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        // Started at revision 1: every event of the bench (revision 2 on) is after it.
        index.add(Arc::new(filter(i)), 0, tx, Arc::new(Ending::default()), 1);
        queues.push(rx);
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        list.watchers.push((Arc::new(filter(i)), tx));
        list.queues.push(rx);
    }
    assert_eq!(index.len(), n);
    (index, queues, list)
}

/// Runs `ops` operations as chunks of at most `MAX_DISPATCH_OPS` (`chunk(n)` times `n` of
/// them and drains the queues after): no queue ever fills.
fn in_chunks(mut ops: usize, mut chunk: impl FnMut(usize) -> Duration) -> Duration {
    let mut total = Duration::ZERO;
    while ops > 0 {
        let n = ops.min(MAX_DISPATCH_OPS);
        total += chunk(n);
        ops -= n;
    }
    total
}

/// Empties `queues`; returns how many frames they held.
fn drain<'q>(queues: impl IntoIterator<Item = &'q mut mpsc::Receiver<Frame>>) -> usize {
    let mut n = 0;
    for q in queues {
        while q.try_recv().is_ok() {
            n += 1;
        }
    }
    n
}

/// `indexed`: kubelet watchers (else watchers without selectors); `pre_encoded`: events reused
/// round-robin from a warm set. (Events no longer keep their frames — the fan-out encodes each
/// once per dispatch — so this variant now includes one encode per event, as the other does.)
fn dispatch(scale: Scale, indexed: bool, pre_encoded: bool) -> Vec<String> {
    let codec = BenchCodec;
    let shapes = Shapes::new(vec![pods().clone()]);
    let n = scale.watchers;
    // The event's pod is on node-42; kubelet i watches node-i.
    let nodes = n.max(43);
    let prev = cached(&codec, pod_kv(42, nodes, 1));
    assert_eq!(prev.attrs.field("spec.nodeName"), Some("node-42"));
    let key: Arc<str> = prev.kv.key.as_str().into();
    let event = |revision: Revision| {
        let object = new_version(&prev, revision);
        Arc::new(CacheEvent::new(
            revision,
            key.clone(),
            Some(object),
            Some(prev.clone()),
        ))
    };
    // Warm events reused round-robin (their frames are encoded per dispatch).
    let encoded: Vec<Arc<CacheEvent>> = (0..64)
        .map(|i| {
            let e = event(1_000_000 + i);
            e.frame(EventKind::Modified, 0, &codec, &shapes);
            e
        })
        .collect();
    let events = |revision: &mut Revision, ops: usize| -> Vec<Arc<CacheEvent>> {
        (0..ops)
            .map(|_| {
                *revision += 1;
                if pre_encoded {
                    encoded[*revision as usize % encoded.len()].clone()
                } else {
                    event(*revision)
                }
            })
            .collect()
    };
    let (mut index, mut queues, mut list) = if indexed {
        watchers(n, |i| Filter {
            fields: FieldSelector::parse(&format!("spec.nodeName=node-{i}")).expect("parses"),
            ..Filter::default()
        })
    } else {
        watchers(n, |_| Filter::default())
    };
    // Queues that receive the event: node-42's kubelet, or everyone.
    let receivers = if indexed { 42..43 } else { 0..n };
    let deliveries = receivers.len();

    let mut base_revision: Revision = 1;
    let baseline_label = if indexed {
        "linear scan of every filter"
    } else {
        "encode once per watcher"
    };
    let baseline = Variant::new(baseline_label, 100_000, |ops| {
        in_chunks(ops, |ops| {
            let batch = events(&mut base_revision, ops);
            let d = timed(|| {
                for event in &batch {
                    for (filter, queue) in &list.watchers {
                        let Some(kind) = event.kind_for(filter) else {
                            continue;
                        };
                        let frame = if indexed {
                            // Shared, as in the cache: only the scan differs.
                            event.frame(kind, 0, &codec, &shapes)
                        } else {
                            let object = event.object.as_ref().expect("a put");
                            let json = codec.encode(&object.kv.value, event.revision, pods());
                            frame(kind_name(kind), &json)
                        };
                        let frame = Queued::Ready(frame);
                        queue.try_send((event.revision, frame)).expect("room");
                    }
                }
            });
            let sent = drain(&mut list.queues[receivers.clone()]);
            assert_eq!(sent, ops * deliveries);
            d
        })
    });

    let mut revision: Revision = 1;
    let kubecache = Variant::new("WatcherIndex::dispatch", 100_000, |ops| {
        in_chunks(ops, |ops| {
            let batch = events(&mut revision, ops);
            let d = timed(|| {
                for event in &batch {
                    index.dispatch(event, &codec, &shapes);
                }
            });
            let sent = drain(&mut queues[receivers.clone()]);
            assert_eq!(sent, ops * deliveries);
            d
        })
    });

    measure(
        Group {
            name: match (indexed, pre_encoded) {
                (true, false) => "dispatch/indexed",
                (true, true) => "dispatch/indexed-routing",
                (false, _) => "dispatch/unindexed",
            },
            deliveries: (!indexed).then_some(deliveries),
            variants: vec![baseline, kubecache],
        },
        scale,
    )
}

// ---------------------------------------------------------------------------------------------
// 4. LIST 50,000 pods.

/// The head of a PodList at `revision`, without its closing brace (as `list_body`).
fn list_head(revision: Revision) -> Vec<u8> {
    let head = json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": revision.to_string()},
    });
    let mut head = serde_json::to_vec(&head).expect("serializes");
    head.pop();
    head
}

/// The server's `list_body`: the head, then each object's JSON, written from the cache
/// (`ReadPath::write_json`: the stored bytes with the resourceVersion spliced in).
fn list_body(cache: &WatchCache, objects: &[Arc<CachedObject>], revision: Revision) -> Bytes {
    let head = list_head(revision);
    let size = head.len() + objects.iter().map(|o| o.kv.value.len() + 48).sum::<usize>() + 16;
    let mut body = BytesMut::with_capacity(size);
    body.put_slice(&head);
    body.put_slice(b",\"items\":[");
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        cache.write_json(object, pods(), &mut body);
    }
    body.put_slice(b"]}");
    body.freeze()
}

/// The server's streamed body (`server/src/handlers/list_body.rs`): chunks of about `chunk`
/// bytes, each dropped once made (as hyper drops a chunk once written); returns their total
/// length. `batched`: through `ReadPath::write_json_items` (one lookup of the resource's
/// encoding per chunk, the next objects touched ahead); else object by object through
/// `write_json` (the trait's default).
fn list_chunks(
    cache: &WatchCache,
    objects: &[Arc<CachedObject>],
    revision: Revision,
    chunk: usize,
    batched: bool,
    mut each: impl FnMut(&Bytes),
) -> usize {
    let (mut total, mut next) = (0, 0);
    let mut head = Some(list_head(revision));
    loop {
        let mut out = BytesMut::with_capacity(chunk + 8 * 1024);
        if let Some(head) = head.take() {
            out.put_slice(&head);
            out.put_slice(b",\"items\":[");
        }
        let rest = &objects[next..];
        next += if batched {
            cache.write_json_items(rest, pods(), &mut out, chunk, next > 0)
        } else {
            write_items_one_by_one(cache, rest, pods(), &mut out, chunk, next > 0)
        };
        let done = next == objects.len();
        if done {
            out.put_slice(b"]}");
        }
        let out = out.freeze();
        each(&out);
        total += black_box(out).len();
        if done {
            return total;
        }
    }
}

/// The same body from decoded objects, re-serialized.
fn reserialized_body(
    values: &[(String, Value)],
    selector: &LabelSelector,
    revision: Revision,
    capacity: usize,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(capacity);
    body.extend_from_slice(&list_head(revision));
    body.extend_from_slice(b",\"items\":[");
    let mut first = true;
    for (_key, value) in values {
        if !selector.matches_object(value) {
            continue;
        }
        if !first {
            body.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut body, value).expect("serializes");
    }
    body.extend_from_slice(b"]}");
    body
}

fn list(scale: Scale, labelled: bool) -> Vec<String> {
    let n = scale.list_objects;
    let codec = Arc::new(BenchCodec);
    let kvs: Vec<KeyValue> = (0..n).map(|i| pod_kv(i, 1_000, 2 + i as i64)).collect();
    let revision = 2 + n as Revision;
    let selector = if labelled {
        LabelSelector::parse(TENTH).expect("parses")
    } else {
        LabelSelector::everything()
    };
    // Pods labelled tier-3 are those with i ≡ 3 (mod 10).
    let expected = if labelled {
        (0..n).filter(|i| i % 10 == 3).count()
    } else {
        n
    };

    // The decoded objects, as served (resourceVersion set), in key order.
    let mut values: Vec<(String, Value)> = kvs
        .iter()
        .map(|kv| {
            let json = codec.encode(&kv.value, kv.mod_revision, pods());
            (
                kv.key.clone(),
                serde_json::from_slice(&json).expect("parses"),
            )
        })
        .collect();
    values.sort_by(|a, b| a.0.cmp(&b.0));

    let (backend, _events) = FakeBackend::new(kvs, revision);
    let cache = WatchCache::start(
        backend,
        codec.clone(),
        vec![(PREFIX.into(), Shapes::new(vec![pods().clone()]))],
        cache_config(1_000),
    );
    let rt = current_thread();
    rt.block_on(async {
        while cache.ready().await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let request = ListRequest {
        resource: pods().clone(),
        prefix: PREFIX.into(),
        start_key: None,
        limit: None,
        at: ReadAt::Any,
        filter: Arc::new(Filter {
            labels: selector.clone(),
            ..Filter::default()
        }),
        remaining_hint: None,
    };
    let list = || {
        let listed = rt.block_on(cache.list(request.clone())).expect("lists");
        assert_eq!(listed.objects.len(), expected);
        listed
    };
    // Same bytes both ways (this also encodes every object's JSON once: the cache's steady
    // state, which the figures measure).
    let listed = list();
    let body = list_body(&cache, &listed.objects, listed.revision);
    let reference = reserialized_body(&values, &selector, revision, 0);
    assert!(body[..] == reference[..], "the two bodies differ");
    for batched in [true, false] {
        let mut streamed = Vec::new();
        list_chunks(
            &cache,
            &listed.objects,
            listed.revision,
            128 << 10,
            batched,
            |c| streamed.extend_from_slice(c),
        );
        assert!(streamed == reference, "the streamed body differs");
    }
    let mut capacity = reference.len();
    drop((listed, body, reference));

    let baseline = Variant::new("Vec<(key, Value)> → serde_json body", 1_000, |ops| {
        timed(|| {
            for _ in 0..ops {
                let body = reserialized_body(&values, &selector, revision, capacity);
                capacity = body.len();
                black_box(body);
            }
        })
    });
    let collect = Variant::new(
        "WatchCache::list (range + filter + Arc clones)",
        10_000,
        |ops| {
            timed(|| {
                for _ in 0..ops {
                    black_box(list());
                }
            })
        },
    );
    let with_body = Variant::new("list + body from cached JSON", 10_000, |ops| {
        timed(|| {
            for _ in 0..ops {
                let listed = list();
                black_box(list_body(&cache, &listed.objects, listed.revision));
            }
        })
    });

    let mut chunked = Vec::new();
    let cache = &cache;
    for (kib, batched) in [(64, true), (128, true), (256, true), (128, false)] {
        let how = if batched {
            "write_json_items"
        } else {
            "write_json each"
        };
        let name = format!("list + body in {kib} KiB chunks ({how})");
        chunked.push(Variant::new(name, 10_000, move |ops| {
            timed(|| {
                for _ in 0..ops {
                    let listed = list();
                    let (objects, revision) = (&listed.objects, listed.revision);
                    black_box(list_chunks(
                        cache,
                        objects,
                        revision,
                        kib << 10,
                        batched,
                        |_| (),
                    ));
                }
            })
        }));
    }

    measure(
        Group {
            name: if labelled {
                "list/label-10pct"
            } else {
                "list/all"
            },
            deliveries: None,
            variants: [baseline, collect, with_body]
                .into_iter()
                .chain(chunked)
                .collect(),
        },
        scale,
    )
}

// ---------------------------------------------------------------------------------------------
// 5. Selector matching.

/// The label selector of the `selector/label` group: a set, an equality and an absence, so
/// that every requirement is evaluated for the pods it selects (tier-2 and tier-3: 20%).
const LABELS: &str = "tier in (tier-2,tier-3),pod-template-hash=7d9f8c6b5d,!canary";
/// The field selector of the `selector/field` group: a kubelet's node and a namespace.
const FIELDS: &str = "spec.nodeName=node-42,metadata.namespace=ns-42";
/// Pods the selector groups match against, one per operation, round-robin.
const SELECTOR_PODS: usize = 1_000;

/// One pod's match against a filter, three ways. The baseline is what a server without an
/// attribute cache does per object of a LIST or per watch event: decode the stored JSON
/// into a `serde_json::Value` and walk it (`LabelSelector::matches_object`, and
/// `fields::value` for each field). The selector is parsed once in every variant (a server
/// parses it once per request, never per object).
fn selector(scale: Scale, fields: bool) -> Vec<String> {
    let codec = BenchCodec;
    let n = SELECTOR_PODS.min(scale.list_objects);
    let kvs: Vec<KeyValue> = (0..n).map(|i| pod_kv(i, 1_000, 2 + i as i64)).collect();
    let objects: Vec<Arc<CachedObject>> = kvs.iter().map(|kv| cached(&codec, kv.clone())).collect();
    let values: Vec<Value> = kvs
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).expect("parses"))
        .collect();
    let filter = if fields {
        Filter {
            fields: FieldSelector::parse(FIELDS).expect("parses"),
            ..Filter::default()
        }
    } else {
        Filter {
            labels: LabelSelector::parse(LABELS).expect("parses"),
            ..Filter::default()
        }
    };
    let walk = |value: &Value| {
        filter.labels.matches_object(value)
            && filter
                .fields
                .matches(|field| kubecache_core::fields::value(pods(), value, field))
    };
    // The three ways agree, and select what the pods' numbering says.
    let expected: Vec<bool> = (0..n)
        .map(|i| {
            if fields {
                i % 1_000 == 42 && i % 50 == 42
            } else {
                matches!(i % 10, 2 | 3)
            }
        })
        .collect();
    for i in 0..n {
        assert_eq!(filter.matches(&objects[i].attrs), expected[i], "pod {i}");
        assert_eq!(walk(&values[i]), expected[i], "pod {i}");
    }
    let matched = |ops: usize| (0..ops).filter(|i| expected[i % n]).count();

    let mut next = 0;
    let baseline = Variant::new("decode stored JSON → Value, walk it", 100_000, |ops| {
        let mut hits = 0;
        let d = timed(|| {
            for k in 0..ops {
                let kv = &kvs[(next + k) % n];
                let value: Value = serde_json::from_slice(&kv.value).expect("parses");
                hits += usize::from(walk(black_box(&value)));
            }
        });
        assert_eq!(hits, (0..ops).filter(|k| expected[(next + k) % n]).count());
        next = (next + ops) % n;
        d
    });
    let decoded = Variant::new("walk of an already decoded Value", 1_000_000, |ops| {
        let mut hits = 0;
        let d = timed(|| {
            for k in 0..ops {
                hits += usize::from(walk(black_box(&values[k % n])));
            }
        });
        assert_eq!(hits, matched(ops));
        d
    });
    let attrs = Variant::new("Filter::matches on cached ObjectAttrs", 1_000_000, |ops| {
        let mut hits = 0;
        let d = timed(|| {
            for k in 0..ops {
                hits += usize::from(filter.matches(black_box(&objects[k % n].attrs)));
            }
        });
        assert_eq!(hits, matched(ops));
        d
    });

    measure(
        Group {
            name: if fields {
                "selector/field"
            } else {
                "selector/label"
            },
            deliveries: None,
            variants: vec![baseline, decoded, attrs],
        },
        scale,
    )
}

// ---------------------------------------------------------------------------------------------
// 6. Continue-token paging.

/// Objects per page (`limit`), as kubectl's default chunk size.
const PAGE: usize = 500;

/// A cache of `n` pods at revision `2 + n`, ready.
fn loaded_cache(n: usize, rt: &tokio::runtime::Runtime) -> (WatchCache, Revision) {
    let kvs: Vec<KeyValue> = (0..n).map(|i| pod_kv(i, 1_000, 2 + i as i64)).collect();
    let revision = 2 + n as Revision;
    let (backend, _events) = FakeBackend::new(kvs, revision);
    let cache = WatchCache::start(
        backend,
        Arc::new(BenchCodec),
        vec![(PREFIX.into(), Shapes::new(vec![pods().clone()]))],
        cache_config(1_000),
    );
    rt.block_on(async {
        while cache.ready().await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (cache, revision)
}

/// What the server does for one page: decode the client's token (none for the first page),
/// LIST `PAGE` objects from its start key at its revision, and encode the next page's token.
/// Returns the page's objects and the next token.
fn page(
    cache: &WatchCache,
    rt: &tokio::runtime::Runtime,
    revision: Revision,
    token: Option<&str>,
) -> (usize, Option<String>) {
    let (at, start_key, remaining_hint) = match token {
        Some(token) => {
            let token = ContinueToken::decode(token).expect("a token this bench encoded");
            let start = token.start_key_under(PREFIX);
            (token.resource_version, Some(start), token.remaining)
        }
        None => (revision, None, None),
    };
    let request = ListRequest {
        resource: pods().clone(),
        prefix: PREFIX.into(),
        start_key,
        limit: Some(PAGE),
        at: ReadAt::Exact(at),
        filter: Arc::new(Filter::default()),
        remaining_hint,
    };
    let listed = rt.block_on(cache.list(request)).expect("lists");
    let next = listed.continue_after.map(|last| {
        let suffix = last.strip_prefix(PREFIX).expect("under the prefix");
        ContinueToken::after(suffix, listed.revision)
            .with_remaining(listed.remaining)
            .encode()
    });
    (listed.objects.len(), next)
}

/// `per_page`: one page at a time (the baseline's share: one unpaged LIST over the number of
/// pages); else whole walks through every page against one unpaged LIST.
fn paging(scale: Scale, per_page: bool) -> Vec<String> {
    let n = scale.list_objects;
    let pages = n.div_ceil(PAGE);
    let rt = current_thread();
    let (cache, revision) = loaded_cache(n, &rt);
    let unpaged = || {
        let request = ListRequest {
            resource: pods().clone(),
            prefix: PREFIX.into(),
            start_key: None,
            limit: None,
            at: ReadAt::Exact(revision),
            filter: Arc::new(Filter::default()),
            remaining_hint: None,
        };
        let listed = rt.block_on(cache.list(request)).expect("lists");
        assert_eq!(listed.objects.len(), n);
        listed
    };
    // Every page's token, from a walk that also proves the pages cover the snapshot.
    let mut tokens: Vec<Option<String>> = vec![None];
    let mut seen = 0;
    loop {
        let (got, next) = page(
            &cache,
            &rt,
            revision,
            tokens.last().expect("one").as_deref(),
        );
        seen += got;
        match next {
            Some(token) => tokens.push(Some(token)),
            None => break,
        }
    }
    assert_eq!((seen, tokens.len()), (n, pages));
    let walk = |rt: &tokio::runtime::Runtime| {
        let mut token: Option<String> = None;
        let (mut objects, mut pages_seen) = (0, 0);
        loop {
            let (got, next) = page(&cache, rt, revision, token.as_deref());
            objects += got;
            pages_seen += 1;
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!((objects, pages_seen), (n, pages));
    };

    // The next page of "each page in turn".
    let mut next = 0;
    let mut variants = Vec::new();
    if per_page {
        // A sample of k "operations" is k / pages unpaged LISTs, rounded up.
        variants.push(Variant::new(
            format!("1/{pages} of an unpaged LIST"),
            100 * pages,
            |ops| {
                let lists = ops.div_ceil(pages);
                let d = timed(|| {
                    for _ in 0..lists {
                        black_box(unpaged());
                    }
                });
                d.mul_f64(ops as f64 / (lists * pages) as f64)
            },
        ));
        variants.push(Variant::new("each page in turn", 10_000, |ops| {
            let d = timed(|| {
                for k in 0..ops {
                    let token = tokens[(next + k) % pages].as_deref();
                    black_box(page(&cache, &rt, revision, token));
                }
            });
            next = (next + ops) % pages;
            d
        }));
        variants.push(Variant::new("first page", 10_000, |ops| {
            timed(|| {
                for _ in 0..ops {
                    black_box(page(&cache, &rt, revision, None));
                }
            })
        }));
        variants.push(Variant::new("last page", 10_000, |ops| {
            let token = tokens[pages - 1].as_deref();
            timed(|| {
                for _ in 0..ops {
                    black_box(page(&cache, &rt, revision, token));
                }
            })
        }));
    } else {
        variants.push(Variant::new("one unpaged LIST", 1_000, |ops| {
            timed(|| {
                for _ in 0..ops {
                    black_box(unpaged());
                }
            })
        }));
        variants.push(Variant::new(
            format!("walk of {pages} pages of {PAGE}"),
            1_000,
            |ops| {
                timed(|| {
                    for _ in 0..ops {
                        walk(&rt);
                    }
                })
            },
        ));
    }

    measure(
        Group {
            name: if per_page {
                "paging/page"
            } else {
                "paging/walk"
            },
            deliveries: None,
            variants,
        },
        scale,
    )
}

// ---------------------------------------------------------------------------------------------

type Bench = fn(Scale) -> Vec<String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scale = if args.iter().any(|a| a == "--bench") {
        BENCH
    } else {
        SMOKE
    };
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let benches: [(&str, Bench); 12] = [
        ("apply/state", apply_state),
        ("apply/resource-cache", apply_resource_cache),
        ("encode", encode),
        ("dispatch/indexed", |s| dispatch(s, true, false)),
        ("dispatch/indexed-routing", |s| dispatch(s, true, true)),
        ("dispatch/unindexed", |s| dispatch(s, false, false)),
        ("list/all", |s| list(s, false)),
        ("list/label-10pct", |s| list(s, true)),
        ("selector/label", |s| selector(s, false)),
        ("selector/field", |s| selector(s, true)),
        ("paging/page", |s| paging(s, true)),
        ("paging/walk", |s| paging(s, false)),
    ];
    let started = Instant::now();
    let mut rows = Vec::new();
    for (name, bench) in benches {
        if filters.is_empty() || filters.iter().any(|f| name.contains(f)) {
            rows.extend(bench(scale));
        }
    }
    if rows.is_empty() {
        return;
    }

    let ncpu = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "watch cache hot paths (nproc={ncpu}; {} pods applied to, {} watchers, {} pods listed; {} rounds; {:.0?} in all)",
        scale.apply_pods,
        scale.watchers,
        scale.list_objects,
        scale.rounds,
        started.elapsed()
    );
    println!(
        "time per operation: median (min–max) over interleaved rounds; ratio = median (min–max) over rounds of kubecache / baseline in the same round"
    );
    println!();
    println!("| operation | kubecache | baseline | ratio |");
    println!("|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
