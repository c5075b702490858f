//! What the watch cache's state costs in memory: bytes per cached object and per idle watcher.
//!
//! Issue 6's targets: a cached object costs at most 1.5× its JSON size; an idle watcher at
//! most 16 KiB. A counting global allocator (this binary only) keeps the live heap bytes, and
//! each figure is a difference of live bytes around the real thing:
//!
//! * **objects**: ~1 KiB pods are loaded into a real `WatchCache` (one shard) over a backend
//!   whose LIST hands them over (the backend keeps nothing). Bytes per object is the live
//!   bytes once the cache is ready minus before the pods were made, over the number of pods,
//!   at 10,000 and 50,000 pods; the difference of the two loads over the 40,000 pods between
//!   them is the marginal cost, free of fixed costs (runtime, shard thread). It is measured
//!   again after one LIST has had each object's served JSON encoded (`ReadPath::json`): the
//!   cache keeps that encoding beside the stored bytes, so this is the steady state of a cache
//!   that serves LISTs or watches.
//! * **watchers**: 10,000 kubelet-style watches (`fieldSelector=spec.nodeName=node-i`,
//!   bookmarks on, from the LIST's revision) are opened through the real `ReadPath::watch`
//!   and polled once, as the HTTP server polls a response body, then held idle. Bytes per
//!   watcher is the live-bytes difference over the number of watchers. Then the parts of one
//!   watcher are measured alone, 10,000 of each, to say what dominates.
//!
//! The figures count the bytes requested from the allocator: malloc's own per-allocation
//! overhead and fragmentation come on top (RSS growth is printed beside them as a check).
//! They do not depend on timing, so a busy machine does not change them.
//!
//! Run: `cargo bench -p kubecache-benches --bench memory` (a few seconds after the build).
//! Without `--bench` (e.g. `cargo test --benches`) it runs a tiny smoke version.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use kubecache_benches::{BenchCodec, current_thread, read_only};
use kubecache_cache::watch_cache::watchers::Frame;
use kubecache_cache::{
    Filter, FrameStream, ListRequest, ObjectAttrs, ReadAt, ReadPath, Shapes, WatchCache,
    WatchCacheConfig, WatchRequest, WatchStart, json,
};
use kubecache_core::registry::{NAMESPACED, ResourceInfo};
use kubecache_core::selector::FieldSelector;
use kubecache_core::storage::{
    Backend, Deleted, KeyValue, ListOptions, ListPage, PrefixState, Result as StorageResult,
    Revision, WatchStream,
};
use serde_json::json;
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// The counting allocator.

/// Live heap bytes: allocated minus freed, as requested by the program.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// `System`, counting live bytes in `LIVE`.
struct Counting;

// The only unsafe code of the crate (the workspace forbids it; benches/Cargo.toml denies it
// so that this allocator can allow it): each method forwards to `System` with the caller's
// own arguments, which is exactly the contract `GlobalAlloc` asks of it.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; `layout` is valid as the caller promises.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc` for `ptr` and `layout`; `new_size` is valid as promised.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Resident set size in bytes (Linux), for comparison; 0 where unknown.
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

// ---------------------------------------------------------------------------------------------
// Pods, the codec and a backend (as in watch_cache_hot_paths.rs, smaller pods).

const PREFIX: &str = "/registry/pods/";

fn pods() -> &'static Arc<ResourceInfo> {
    static PODS: std::sync::LazyLock<Arc<ResourceInfo>> = std::sync::LazyLock::new(|| {
        Arc::new(ResourceInfo::new(
            "", "v1", "pods", "pod", "Pod", NAMESPACED,
        ))
    });
    &PODS
}

/// A running pod of a ReplicaSet, ~1 KiB of compact JSON: pod `i` on node `i % nodes`, in
/// namespace `ns-(i % 50)`.
fn pod_kv(i: usize, nodes: usize, revision: Revision) -> KeyValue {
    let name = format!("web-7d9f8c6b5d-{i:06}");
    let namespace = format!("ns-{:02}", i % 50);
    let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("6f1c2a4e-5b7d-4c3e-9f10-{i:012}"),
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app": format!("app-{}", i % 100), "tier": format!("tier-{}", i % 10), "pod-template-hash": "7d9f8c6b5d"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5d", "uid": "0d6f3c0a-9a51-4f0e-8d8e-2b4c1f7e5a21", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "nodeName": format!("node-{}", i % nodes),
            "restartPolicy": "Always",
            "serviceAccountName": "default",
            "containers": [{
                "name": "web",
                "image": "nginx:1.27.0",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
            }],
        },
        "status": {
            "phase": "Running",
            "hostIP": "192.168.0.10",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:05Z"}],
            "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "image": "nginx:1.27.0", "containerID": format!("containerd://{i:016x}"), "state": {"running": {"startedAt": "2025-01-01T00:00:04Z"}}}],
        },
    });
    KeyValue {
        key: format!("{PREFIX}{namespace}/{name}"),
        // Copied into a buffer of exactly its length: `to_vec`'s spare capacity would be
        // counted as the cache's (a `Bytes` made from a `Vec` keeps the whole allocation).
        value: Bytes::copy_from_slice(&serde_json::to_vec(&pod).expect("JSON serializes")),
        create_revision: revision,
        mod_revision: revision,
    }
}

/// A backend whose first LIST hands over its pods (it keeps no copy) and whose watch is idle.
struct HandOver {
    kvs: Mutex<Vec<KeyValue>>,
    revision: Revision,
}

#[async_trait]
impl Backend for HandOver {
    async fn get(&self, _key: &str) -> StorageResult<Option<KeyValue>> {
        Err(read_only())
    }

    async fn list(&self, _options: ListOptions) -> StorageResult<ListPage> {
        let kvs = std::mem::take(&mut *self.kvs.lock().expect("not poisoned"));
        let count = kvs.len() as i64;
        Ok(ListPage {
            kvs,
            revision: self.revision,
            more: false,
            count,
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
        Ok(futures::stream::pending().boxed())
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

// ---------------------------------------------------------------------------------------------
// The measurements.

struct Scale {
    /// Pod counts loaded, smallest first.
    objects: [usize; 2],
    /// Idle watchers opened.
    watchers: usize,
}

const BENCH: Scale = Scale {
    objects: [10_000, 50_000],
    watchers: 10_000,
};

const SMOKE: Scale = Scale {
    objects: [200, 1_000],
    watchers: 100,
};

/// One load of `n` pods: the cache (kept, for the watchers) and its figures.
struct Load {
    objects: usize,
    json_bytes: usize,
    /// Live bytes of the ready cache, and after every object's served JSON was encoded.
    loaded: usize,
    served: usize,
    rss: usize,
}

fn load(n: usize, rt: &tokio::runtime::Runtime) -> (Load, WatchCache, Revision) {
    let revision = 2 + n as Revision;
    let (before, rss_before) = (live(), rss());
    let kvs: Vec<KeyValue> = (0..n).map(|i| pod_kv(i, 1_000, 2 + i as i64)).collect();
    let json_bytes = kvs.iter().map(|kv| kv.value.len()).sum();
    let backend = Arc::new(HandOver {
        kvs: Mutex::new(kvs),
        revision,
    });
    let cache = WatchCache::start(
        backend,
        Arc::new(BenchCodec),
        vec![(PREFIX.into(), Shapes::new(vec![pods().clone()]))],
        WatchCacheConfig {
            shards: 1,
            ..WatchCacheConfig::default()
        },
    );
    rt.block_on(async {
        while cache.ready().await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let loaded = live() - before;
    let request = ListRequest {
        resource: pods().clone(),
        prefix: PREFIX.into(),
        start_key: None,
        limit: None,
        at: ReadAt::Any,
        filter: Arc::new(Filter::default()),
        remaining_hint: None,
    };
    let listed = rt.block_on(cache.list(request)).expect("lists");
    assert_eq!(listed.objects.len(), n);
    for object in &listed.objects {
        // What the object keeps of it (nothing: spliced as served); the copy is dropped.
        let served = cache.json(object, pods());
        assert!(served.len() > object.kv.value.len());
    }
    drop(listed);
    let served = live().saturating_sub(before);
    let load = Load {
        objects: n,
        json_bytes,
        loaded,
        served,
        rss: rss().saturating_sub(rss_before),
    };
    (load, cache, revision)
}

/// Waits until the live bytes stop falling (a dropped cache's shard thread frees its state
/// as it stops), for at most a second.
fn settle() {
    let mut last = live();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let now = live();
        if now >= last {
            return;
        }
        last = now;
    }
}

/// What one cached object is made of, measured part by part over `n` pods: the stored JSON,
/// the key, the `CachedObject` (its `Arc` and attributes), the attributes' heap alone, and
/// one entry of the snapshot map (`OrdMap` nodes and the `Arc<str>` key).
fn breakdown(n: usize) {
    let codec = BenchCodec;
    let mut kvs: Vec<KeyValue> = (0..n).map(|i| pod_kv(i, 1_000, 2 + i as i64)).collect();
    let json = kvs.iter().map(|kv| kv.value.len()).sum::<usize>() as f64 / n as f64;
    let key = kvs.iter().map(|kv| kv.key.capacity()).sum::<usize>() as f64 / n as f64;
    // Their heap: what `per_item` counts, less the `Vec` of the structs themselves.
    let attrs = per_item(n, |i| json::attributes(pods(), &kvs[i]).expect("parses"))
        - std::mem::size_of::<ObjectAttrs>() as f64;
    // The attributes' parts: strings packed in one buffer, their ends and field ids in another.
    let sample: Vec<ObjectAttrs> = kvs
        .iter()
        .map(|kv| json::attributes(pods(), kv).expect("parses"))
        .collect();
    let per =
        |f: &dyn Fn(&ObjectAttrs) -> usize| sample.iter().map(f).sum::<usize>() as f64 / n as f64;
    let text_heap = per(&|a| {
        a.name().len()
            + a.namespace().map_or(0, str::len)
            + a.labels()
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + a.fields().iter().map(|(_, v)| v.len()).sum::<usize>()
    });
    let index_heap = per(&|a| a.heap_size()) - text_heap;
    let fields_len = sample[0].fields().len();
    let labels_len = sample[0].labels().len();
    drop(sample);
    let mut objects = Vec::with_capacity(n);
    let before = live();
    for kv in kvs.drain(..) {
        objects.push(kubecache_cache::CachedObject::from_kv(&codec, pods(), kv).expect("parses"));
    }
    let object = (live() - before) as f64 / n as f64;
    let before = live();
    let mut map = kubecache_cache::watch_cache::state::Objects::new();
    for o in &objects {
        map.insert(Arc::<str>::from(o.kv.key.as_str()), o.clone());
    }
    let entry = (live() - before) as f64 / n as f64;
    // What serving each object's JSON once leaves behind in it (nothing when it splices).
    let shapes = kubecache_cache::Shapes::new(vec![pods().clone()]);
    let before = live();
    for o in &objects {
        assert!(o.json(&codec, &shapes, 0).len() > o.kv.value.len());
    }
    let served = live().saturating_sub(before) as f64 / n as f64;
    drop((map, objects));
    println!();
    println!("one cached object, part by part ({n} pods; bytes per object)");
    println!();
    println!("| part | bytes | × JSON |");
    println!("|---|---|---|");
    let row = |part: &str, bytes: f64| println!("| {part} | {bytes:.0} | {:.2} |", bytes / json);
    row("stored JSON (kv.value)", json);
    row("storage key (kv.key)", key);
    row(
        &format!(
            "CachedObject: Arc + struct ({} B) + attributes",
            std::mem::size_of::<kubecache_cache::CachedObject>() + 16
        ),
        object,
    );
    row(
        &format!(
            "  of which the attributes' heap (their struct: {} B)",
            std::mem::size_of::<ObjectAttrs>()
        ),
        attrs,
    );
    row(
        &format!(
            "    strings: name, namespace, {labels_len} labels, {fields_len} non-empty field values"
        ),
        text_heap,
    );
    row(
        "    index: flags, counts, field ids, string ends (u16 each)",
        index_heap,
    );
    row("snapshot map entry (OrdMap nodes + Arc<str> key)", entry);
    row("kept after its served JSON was made once", served);
    row("sum", json + key + object + entry + served);
}

/// A kubelet's watch of node `node`'s pods from `revision`.
fn kubelet_watch(node: usize, revision: Revision) -> WatchRequest {
    WatchRequest {
        resource: pods().clone(),
        prefix: PREFIX.into(),
        filter: Arc::new(Filter {
            fields: FieldSelector::parse(&format!("spec.nodeName=node-{node}")).expect("parses"),
            ..Filter::default()
        }),
        start: WatchStart::After(revision),
        initial_events_end: false,
        table: false,
        protobuf: false,
        bookmarks: true,
        bookmark_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(600),
    }
}

/// Live bytes per item of `n` items made by `make`, all held at once.
fn per_item<T>(n: usize, mut make: impl FnMut(usize) -> T) -> f64 {
    let before = live();
    let items: Vec<T> = (0..n).map(&mut make).collect();
    let bytes = live() - before;
    drop(items);
    bytes as f64 / n as f64
}

fn kib(bytes: f64) -> String {
    format!("{:.2} KiB", bytes / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scale = if args.iter().any(|a| a == "--bench") {
        BENCH
    } else {
        SMOKE
    };
    let rt = current_thread();

    // Objects. The smaller cache is measured and dropped before the larger one is loaded.
    let (small, cache, _) = load(scale.objects[0], &rt);
    drop(cache);
    settle();
    let (large, cache, revision) = load(scale.objects[1], &rt);

    println!();
    println!("memory (bytes requested from the allocator; target: ≤ 1.5× the object's JSON)");
    println!();
    println!(
        "| pods | JSON/pod | cache/pod after load | ratio | cache/pod after served JSON encoded | ratio | RSS growth/pod |"
    );
    println!("|---|---|---|---|---|---|---|");
    for l in [&small, &large] {
        let json = l.json_bytes as f64 / l.objects as f64;
        let loaded = l.loaded as f64 / l.objects as f64;
        let served = l.served as f64 / l.objects as f64;
        println!(
            "| {} | {json:.0} B | {loaded:.0} B | {:.2} | {served:.0} B | {:.2} | {:.0} B |",
            l.objects,
            loaded / json,
            served / json,
            l.rss as f64 / l.objects as f64,
        );
    }
    let between = (large.objects - small.objects) as f64;
    let json = (large.json_bytes - small.json_bytes) as f64 / between;
    let loaded = (large.loaded as f64 - small.loaded as f64) / between;
    let served = (large.served as f64 - small.served as f64) / between;
    println!(
        "| marginal ({}→{}) | {json:.0} B | {loaded:.0} B | {:.2} | {served:.0} B | {:.2} | |",
        small.objects,
        large.objects,
        loaded / json,
        served / json,
    );
    assert!(loaded > json, "a cached object holds at least its JSON");

    breakdown(scale.objects[0]);

    // Idle watchers.
    let n = scale.watchers;
    let before = live();
    let streams: Vec<FrameStream> = (0..n)
        .map(|i| {
            rt.block_on(async {
                let mut stream = cache
                    .watch(kubelet_watch(i, revision))
                    .await
                    .expect("watches");
                // Registered and idle: nothing to send yet.
                assert!(stream.next().now_or_never().is_none());
                stream
            })
        })
        .collect();
    let per_watcher = (live() - before) as f64 / n as f64;
    let stats = cache.stats();
    assert_eq!(stats[0].watchers, n as i64);

    // The parts of one watcher, alone.
    let queue = per_item(n, |_| mpsc::channel::<Frame>(cache.config().watcher_queue));
    let filter = per_item(n, |i| {
        Arc::new(Filter {
            fields: FieldSelector::parse(&format!("spec.nodeName=node-{i}")).expect("parses"),
            ..Filter::default()
        })
    });
    let timers = per_item(n, |_| {
        rt.block_on(async {
            (
                tokio::time::interval(Duration::from_secs(60)),
                Box::pin(tokio::time::sleep(Duration::from_secs(600))),
                Box::pin(tokio::time::sleep(Duration::from_secs(598))),
            )
        })
    });
    println!();
    println!("idle watchers (kubelet-style, fieldSelector=spec.nodeName; target: ≤ 16 KiB each)");
    println!();
    println!("| watchers | bytes/watcher | target reached |");
    println!("|---|---|---|");
    println!(
        "| {n} | {} | {} |",
        kib(per_watcher),
        if per_watcher <= 16.0 * 1024.0 {
            "yes"
        } else {
            "no"
        }
    );
    println!();
    println!(
        "parts, each alone: queue (mpsc::channel of {}) {}; filter {}; bookmark interval + deadline + final-bookmark sleeps {}",
        cache.config().watcher_queue,
        kib(queue),
        kib(filter),
        kib(timers),
    );
    drop(streams);
}
