//! Model-based test of the watch cache.
//!
//! A seeded random sequence of writes goes straight to the embedded backend: pods are
//! created, relabelled, moved between nodes and deleted (some live for an instant: created
//! and deleted back to back); now and then an unrelated key is written (the global revision
//! moves with no pod event) or the backend is compacted at a past revision. A [`WatchCache`]
//! with small history bounds follows it. The model is kept trivially correct: the full pod
//! state after every write, and the list of pod events.
//!
//! Every few steps (and at random right after a write, while the cache is likely behind)
//! the cache is compared with the model:
//! - (a) LIST at `Latest`, with a random filter and random limit/continue paging: exactly the
//!   model's current filtered state, at the model's current revision; LIST at `Any` and
//!   `NotOlderThan(n)`: the model's state at the revision the list reports (≥ n);
//! - (b) LIST and GET at `Exact(r)`: the model's state at `r` when `r` is in the cache's
//!   history window, else `Compacted` (the window follows from the history length and
//!   revision the cache reports: it holds the newest `history_events` pod events it applied);
//!   every pod event reaches the cache, and its history keeps as many as its bounds say;
//! - (c) WATCH `After(r)` (a retained `r`, random filter): the model's events after `r` with
//!   enter/leave semantics; `After(r)` before the window: `Compacted`; WATCH `Initial(..)`:
//!   ADDED for the filtered state, then (optionally) the initial-events-end BOOKMARK; and a
//!   few long-lived watchers, opened at checks or between writes and kept open across
//!   writes, get exactly the model's events. After the expected frames, no further frame may
//!   arrive.
//!
//! The operations are a function of the seed alone; which revisions the reads pick can
//! depend on how far the cache has got. Seeds and sizes are constants below; a failure names
//! its seed and step, and the test's output (shown by the test runner on failure) lists
//! every operation performed.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use kubecache_apimachinery::codec::JsonCodec;
use kubecache_apimachinery::registry::Registry;
use kubecache_cache::{
    Filter, FrameStream, ListRequest, ReadAt, ReadPath, Shapes, WatchCache, WatchCacheConfig,
    WatchRequest, WatchStart,
};
use kubecache_core::registry::ResourceInfo;
use kubecache_core::selector::{FieldSelector, LabelSelector};
use kubecache_core::storage::{Backend, Revision, StorageError};
use kubecache_storage::embedded::EmbeddedBackend;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// One run: a seed and the cache configuration it runs against.
struct Scenario {
    seed: u64,
    shards: usize,
    /// The cache's `history_window`: with an hour, history is bounded by the max event count
    /// only; with zero, every event beyond the min count is old enough to drop.
    history_window: Duration,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        seed: 0x5eed_0001,
        shards: 1,
        history_window: Duration::from_secs(3600),
    },
    Scenario {
        seed: 0x5eed_0002,
        shards: 2,
        history_window: Duration::ZERO,
    },
    Scenario {
        seed: 0x5eed_0003,
        shards: 2,
        history_window: Duration::from_secs(3600),
    },
];

/// Random operations per scenario.
const STEPS: usize = 300;
/// The cache is compared with the model after every this many operations (and at the end).
const CHECK_EVERY: usize = 3;
const HISTORY_MIN: usize = 20;
const HISTORY_MAX: usize = 50;
/// Long-lived watchers open at most at once.
const MAX_OPEN_WATCHERS: usize = 3;

const PREFIX: &str = "/registry/pods/";
/// A key outside the cached prefix: writing it moves the revision without a pod event.
const UNRELATED_KEY: &str = "/registry/configmaps/default/unrelated";
const NAMESPACES: [&str; 3] = ["ns-a", "ns-b", "ns-c"];
const NAMES: [&str; 5] = ["p0", "p1", "p2", "p3", "p4"];
/// spec.nodeName values; "" is an unscheduled pod (no nodeName).
const NODES: [&str; 4] = ["", "node-1", "node-2", "node-3"];
const LABEL_VALUES: [(&str, &[&str]); 2] = [
    ("app", &["web", "db", "cache"]),
    ("tier", &["front", "back"]),
];

/// Every single await is bounded by this.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// After the expected frames, a watch must stay silent for this long.
const QUIET: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// Deterministic randomness (splitmix64)
// ---------------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A non-empty subset of `items`, in their order.
    fn subset(&mut self, items: &[&'static str]) -> Vec<&'static str> {
        loop {
            let chosen: Vec<_> = items.iter().copied().filter(|_| self.percent(50)).collect();
            if !chosen.is_empty() {
                return chosen;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Pod {
    namespace: &'static str,
    name: &'static str,
    labels: BTreeMap<&'static str, &'static str>,
    /// "" when unscheduled.
    node: &'static str,
}

impl Pod {
    fn key(&self) -> String {
        format!("{PREFIX}{}/{}", self.namespace, self.name)
    }

    /// The stored object.
    fn to_json(&self) -> Value {
        let mut spec = json!({});
        if !self.node.is_empty() {
            spec["nodeName"] = json!(self.node);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels},
            "spec": spec,
        })
    }

    fn field(&self, field: &str) -> &str {
        match field {
            "metadata.name" => self.name,
            "metadata.namespace" => self.namespace,
            "spec.nodeName" => self.node,
            other => panic!("the model has no field {other}"),
        }
    }

    fn random_labels(rng: &mut Rng) -> BTreeMap<&'static str, &'static str> {
        let mut labels = BTreeMap::new();
        for (key, values) in LABEL_VALUES {
            if rng.percent(70) {
                labels.insert(key, rng.pick(values));
            }
        }
        labels
    }
}

/// A pod as stored at some revision.
#[derive(Debug, Clone)]
struct Stored {
    pod: Pod,
    value: Bytes,
    mod_revision: Revision,
}

type State = BTreeMap<String, Stored>;

/// One change to a pod: the state it replaced and the new one (`None`: absent).
#[derive(Debug, Clone)]
struct ModelEvent {
    revision: Revision,
    prev: Option<Stored>,
    object: Option<Stored>,
}

struct Model {
    /// The store's revision: that of the last write, pod or not.
    revision: Revision,
    /// Every pod event, in revision order.
    events: Vec<ModelEvent>,
    /// The pod state after every pod event, with its revision; the first entry is the empty
    /// state the test starts from.
    states: Vec<(Revision, State)>,
}

impl Model {
    fn new(revision: Revision) -> Model {
        Model {
            revision,
            events: Vec::new(),
            states: vec![(revision, State::new())],
        }
    }

    fn current(&self) -> &State {
        &self.states.last().expect("never empty").1
    }

    /// The state at `revision`: after the last pod event at or before it.
    fn state_at(&self, revision: Revision) -> &State {
        assert!(revision <= self.revision, "the model has no future");
        let i = self.states.partition_point(|(r, _)| *r <= revision);
        &self.states[i.checked_sub(1).expect("no state before the start")].1
    }

    /// Records a write of `pod` (`None`: a delete of `key`) at `revision`.
    fn record(&mut self, revision: Revision, key: &str, pod: Option<Pod>) {
        assert_eq!(
            revision,
            self.revision + 1,
            "every write takes the next revision"
        );
        self.revision = revision;
        let mut state = self.current().clone();
        let object = pod.map(|pod| Stored {
            value: Bytes::from(serde_json::to_vec(&pod.to_json()).expect("json")),
            pod,
            mod_revision: revision,
        });
        let prev = match &object {
            Some(object) => state.insert(key.to_string(), object.clone()),
            None => state.remove(key),
        };
        self.events.push(ModelEvent {
            revision,
            prev,
            object,
        });
        self.states.push((revision, state));
    }

    /// A write outside the cached prefix.
    fn record_unrelated(&mut self, revision: Revision) {
        assert_eq!(
            revision,
            self.revision + 1,
            "every write takes the next revision"
        );
        self.revision = revision;
    }

    /// The objects a LIST with `filter` at `revision` returns: (key, value, mod_revision).
    fn list(&self, revision: Revision, filter: &ModelFilter) -> Vec<(String, Bytes, Revision)> {
        self.state_at(revision)
            .iter()
            .filter(|(_, s)| filter.matches(&s.pod))
            .map(|(k, s)| (k.clone(), s.value.clone(), s.mod_revision))
            .collect()
    }

    /// The frames a watcher with `filter` gets for the events after `after`:
    /// - the object starts matching (created, or changed into the filter): ADDED, new state;
    /// - it keeps matching: MODIFIED, new state;
    /// - it stops matching (deleted, or changed out of the filter): DELETED carrying the
    ///   previous state, with the revision of the change;
    /// - it matches neither before nor after: nothing.
    fn watch_frames(&self, filter: &ModelFilter, after: Revision) -> Vec<SeenFrame> {
        let mut frames = Vec::new();
        for event in self.events.iter().filter(|e| e.revision > after) {
            let was = event.prev.as_ref().is_some_and(|s| filter.matches(&s.pod));
            let is = event
                .object
                .as_ref()
                .is_some_and(|s| filter.matches(&s.pod));
            let (kind, pod) = match (was, is) {
                (false, true) => ("ADDED", &event.object),
                (true, true) => ("MODIFIED", &event.object),
                (true, false) => ("DELETED", &event.prev),
                (false, false) => continue,
            };
            frames.push(SeenFrame {
                kind: kind.to_string(),
                revision: event.revision,
                object: pod.as_ref().expect("present").pod.to_json(),
            });
        }
        frames
    }

    /// ADDED frames for the filtered state at `revision`, in key order.
    fn initial_frames(&self, filter: &ModelFilter, revision: Revision) -> Vec<SeenFrame> {
        self.state_at(revision)
            .values()
            .filter(|s| filter.matches(&s.pod))
            .map(|s| SeenFrame {
                kind: "ADDED".to_string(),
                revision: s.mod_revision,
                object: s.pod.to_json(),
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Filters, evaluated by the model independently of the cache's selector code
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum LabelReq {
    Eq(&'static str, &'static str),
    Ne(&'static str, &'static str),
    In(&'static str, Vec<&'static str>),
    NotIn(&'static str, Vec<&'static str>),
    Exists(&'static str),
    NotExists(&'static str),
}

impl LabelReq {
    /// Kubernetes' semantics: `!=` and `notin` also match objects without the label.
    fn matches(&self, labels: &BTreeMap<&'static str, &'static str>) -> bool {
        match self {
            LabelReq::Eq(k, v) => labels.get(k) == Some(v),
            LabelReq::Ne(k, v) => labels.get(k) != Some(v),
            LabelReq::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelReq::NotIn(k, vs) => !labels.get(k).is_some_and(|v| vs.contains(v)),
            LabelReq::Exists(k) => labels.contains_key(k),
            LabelReq::NotExists(k) => !labels.contains_key(k),
        }
    }

    fn selector(&self) -> String {
        match self {
            LabelReq::Eq(k, v) => format!("{k}={v}"),
            LabelReq::Ne(k, v) => format!("{k}!={v}"),
            LabelReq::In(k, vs) => format!("{k} in ({})", vs.join(",")),
            LabelReq::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
            LabelReq::Exists(k) => k.to_string(),
            LabelReq::NotExists(k) => format!("!{k}"),
        }
    }
}

#[derive(Debug, Clone)]
struct FieldReq {
    field: &'static str,
    equals: bool,
    value: &'static str,
}

#[derive(Debug, Clone, Default)]
struct ModelFilter {
    namespace: Option<&'static str>,
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl ModelFilter {
    fn random(rng: &mut Rng) -> ModelFilter {
        let mut filter = ModelFilter::default();
        if rng.percent(30) {
            filter.namespace = Some(rng.pick(&NAMESPACES));
        }
        if rng.percent(45) {
            for _ in 0..rng.between(1, 2) {
                let (key, values) = rng.pick(&LABEL_VALUES);
                filter.labels.push(match rng.below(6) {
                    0 => LabelReq::Eq(key, rng.pick(values)),
                    1 => LabelReq::Ne(key, rng.pick(values)),
                    2 => LabelReq::In(key, rng.subset(values)),
                    3 => LabelReq::NotIn(key, rng.subset(values)),
                    4 => LabelReq::Exists(key),
                    _ => LabelReq::NotExists(key),
                });
            }
        }
        if rng.percent(45) {
            for _ in 0..rng.between(1, 2) {
                let (field, value) = match rng.below(4) {
                    0 | 1 => ("spec.nodeName", rng.pick(&NODES)),
                    2 => ("metadata.name", rng.pick(&NAMES)),
                    _ => ("metadata.namespace", rng.pick(&NAMESPACES)),
                };
                filter.fields.push(FieldReq {
                    field,
                    equals: rng.percent(60),
                    value,
                });
            }
        }
        filter
    }

    /// One `field=value` requirement.
    fn field(field: &'static str, value: &'static str) -> ModelFilter {
        ModelFilter {
            fields: vec![FieldReq {
                field,
                equals: true,
                value,
            }],
            ..ModelFilter::default()
        }
    }

    fn matches(&self, pod: &Pod) -> bool {
        self.namespace.is_none_or(|ns| pod.namespace == ns)
            && self.labels.iter().all(|r| r.matches(&pod.labels))
            && self
                .fields
                .iter()
                .all(|f| (pod.field(f.field) == f.value) == f.equals)
    }

    /// No label or field selector (a namespace may still narrow it).
    fn selects_all(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    fn label_selector(&self) -> String {
        let parts: Vec<String> = self.labels.iter().map(LabelReq::selector).collect();
        parts.join(",")
    }

    fn field_selector(&self) -> String {
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|f| {
                format!(
                    "{}{}{}",
                    f.field,
                    if f.equals { "=" } else { "!=" },
                    f.value
                )
            })
            .collect();
        parts.join(",")
    }

    /// The cache's filter, through the selector parsers the API uses.
    fn to_filter(&self) -> Arc<Filter> {
        let labels = LabelSelector::parse(&self.label_selector())
            .unwrap_or_else(|e| panic!("label selector {:?}: {e:?}", self.label_selector()));
        let fields = FieldSelector::parse(&self.field_selector())
            .unwrap_or_else(|e| panic!("field selector {:?}: {e:?}", self.field_selector()));
        Arc::new(Filter {
            namespace: self.namespace.map(str::to_string),
            labels,
            fields,
        })
    }
}

impl fmt::Display for ModelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ns={:?} labels={:?} fields={:?}",
            self.namespace.unwrap_or("*"),
            self.label_selector(),
            self.field_selector()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Watch frames
// ---------------------------------------------------------------------------------------------

/// A watch frame as compared: its type, its object's resourceVersion, and the object without
/// its resourceVersion.
#[derive(Debug, Clone, PartialEq)]
struct SeenFrame {
    kind: String,
    revision: Revision,
    object: Value,
}

impl SeenFrame {
    fn parse(frame: &[u8]) -> Result<SeenFrame, String> {
        let text = String::from_utf8_lossy(frame);
        if !frame.ends_with(b"\n") {
            return Err(format!("frame {text:?} does not end with a newline"));
        }
        let mut frame: Value =
            serde_json::from_slice(frame).map_err(|e| format!("frame {text:?}: {e}"))?;
        let kind = frame["type"].as_str().unwrap_or_default().to_string();
        let mut object = frame["object"].take();
        let revision = object["metadata"]
            .as_object_mut()
            .and_then(|m| m.remove("resourceVersion"))
            .and_then(|rv| rv.as_str().and_then(|rv| rv.parse().ok()))
            .ok_or_else(|| format!("frame {text:?} has no type or resourceVersion"))?;
        Ok(SeenFrame {
            kind,
            revision,
            object,
        })
    }

    fn is_initial_events_end(&self) -> bool {
        self.kind == "BOOKMARK"
            && self.object["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"
    }
}

impl fmt::Display for SeenFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.object["metadata"];
        write!(
            f,
            "{} rv={} {}/{} labels={} node={}",
            self.kind,
            self.revision,
            m["namespace"].as_str().unwrap_or("-"),
            m["name"].as_str().unwrap_or("-"),
            m["labels"],
            self.object["spec"]["nodeName"].as_str().unwrap_or("")
        )
    }
}

fn show(frames: &[SeenFrame]) -> String {
    frames.iter().map(|f| format!("\n    {f}")).collect()
}

/// A watch kept open across writes.
struct OpenWatch {
    name: String,
    filter: ModelFilter,
    stream: FrameStream,
    /// The watcher has been given every event up to this revision.
    seen_through: Revision,
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// What a run exercised, printed at its end.
#[derive(Default)]
struct Tally {
    creates: Cell<usize>,
    updates: Cell<usize>,
    deletes: Cell<usize>,
    unrelated_writes: Cell<usize>,
    compactions: Cell<usize>,
    lists: Cell<usize>,
    pages: Cell<usize>,
    exact_served: Cell<usize>,
    exact_compacted: Cell<usize>,
    watches: Cell<usize>,
    watches_compacted: Cell<usize>,
    frames: Cell<usize>,
}

fn bump(counter: &Cell<usize>, by: usize) {
    counter.set(counter.get() + by);
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} creates, {} updates, {} deletes, {} unrelated writes, {} compactions; \
             {} lists in {} pages; Exact lists: {} served, {} Compacted; \
             {} watches ({} Compacted), {} frames compared",
            self.creates.get(),
            self.updates.get(),
            self.deletes.get(),
            self.unrelated_writes.get(),
            self.compactions.get(),
            self.lists.get(),
            self.pages.get(),
            self.exact_served.get(),
            self.exact_compacted.get(),
            self.watches.get(),
            self.watches_compacted.get(),
            self.frames.get(),
        )
    }
}

struct Run {
    seed: u64,
    tally: Tally,
    step: usize,
    rng: Rng,
    backend: Arc<EmbeddedBackend>,
    cache: WatchCache,
    pods: Arc<ResourceInfo>,
    window_bounds_history: bool,
    model: Model,
    compacted: Revision,
    watches: Vec<OpenWatch>,
    next_watch: usize,
}

impl Run {
    fn ctx(&self) -> String {
        format!("seed {:#x} step {}", self.seed, self.step)
    }

    /// `what`, prefixed with the seed and step.
    fn at(&self, what: &str) -> String {
        format!("{}: {what}", self.ctx())
    }

    /// `future`, or a panic once [`OP_TIMEOUT`] passes; `what` names the seed and step.
    async fn bounded<T>(&self, what: &str, future: impl Future<Output = T>) -> T {
        match tokio::time::timeout(OP_TIMEOUT, future).await {
            Ok(value) => value,
            Err(_) => panic!("{what}: timed out after {OP_TIMEOUT:?}"),
        }
    }

    async fn start(scenario: &Scenario) -> Run {
        let backend = Arc::new(EmbeddedBackend::in_memory());
        let pods = Registry::builtin()
            .lookup("", "v1", "pods")
            .expect("pods are built in")
            .info()
            .clone();
        let config = WatchCacheConfig {
            shards: scenario.shards,
            history_min_events: HISTORY_MIN,
            history_window: scenario.history_window,
            history_max_events: HISTORY_MAX,
            watcher_queue: 1024,
            sync_timeout: Duration::from_secs(3),
            ..WatchCacheConfig::default()
        };
        let cache = WatchCache::start(
            backend.clone(),
            Arc::new(JsonCodec::new(Arc::new(Registry::builtin()))),
            vec![(PREFIX.to_string(), Shapes::new(vec![pods.clone()]))],
            config,
        );
        let run = Run {
            seed: scenario.seed,
            tally: Tally::default(),
            step: 0,
            rng: Rng(scenario.seed),
            backend,
            cache,
            pods,
            window_bounds_history: scenario.history_window > Duration::from_secs(60),
            model: Model::new(0),
            compacted: 0,
            watches: Vec::new(),
            next_watch: 0,
        };
        // Writes start once the cache has listed the (empty) store, so that its history
        // holds every pod event.
        run.bounded(&run.at("cache ready"), async {
            while run.cache.ready().await.is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let revision = run
            .bounded(&run.at("current revision"), run.backend.current_revision())
            .await
            .unwrap();
        assert_eq!(revision, 0, "the store starts empty");
        run
    }

    // --- operations ------------------------------------------------------------------------

    async fn random_operation(&mut self) {
        let state = self.model.current().clone();
        let absent: Vec<(&'static str, &'static str)> = NAMESPACES
            .iter()
            .flat_map(|ns| NAMES.iter().map(move |n| (*ns, *n)))
            .filter(|(ns, n)| !state.contains_key(&format!("{PREFIX}{ns}/{n}")))
            .collect();
        let roll = self.rng.below(100);
        if state.is_empty() || (roll < 35 && !absent.is_empty()) {
            let (namespace, name) = self.rng.pick(&absent);
            let pod = Pod {
                namespace,
                name,
                labels: Pod::random_labels(&mut self.rng),
                node: self.rng.pick(&NODES),
            };
            let key = pod.key();
            self.create(pod).await;
            if roll >= 28 {
                // A pod that lives for an instant, and a consistent read right after: the
                // cache, likely still behind, must not take the unchanged key count for
                // "nothing happened" and skip the two events; nor serve its state from
                // before them as the state while the pod lived.
                let created = self.model.revision;
                self.delete(&key, None).await;
                self.check_latest_list().await;
                self.check_exact_list(Some(created)).await;
            }
        } else if roll < 80 {
            let keys: Vec<&String> = state.keys().collect();
            let old = &state[keys[self.rng.below(keys.len())]];
            let mut pod = old.pod.clone();
            match self.rng.below(4) {
                0 => pod.labels = Pod::random_labels(&mut self.rng),
                1 => pod.node = self.rng.pick(&NODES),
                2 => {
                    pod.labels = Pod::random_labels(&mut self.rng);
                    pod.node = self.rng.pick(&NODES);
                }
                // Rewritten unchanged: still a new revision.
                _ => {}
            }
            self.update(pod, old.mod_revision).await;
        } else if roll < 92 {
            let keys: Vec<&String> = state.keys().collect();
            let key = keys[self.rng.below(keys.len())].clone();
            let expected = self.rng.percent(50).then(|| state[&key].mod_revision);
            self.delete(&key, expected).await;
        } else if roll < 96 || self.model.revision <= self.compacted {
            self.write_unrelated().await;
        } else {
            let revision = self.rng.between(self.compacted + 1, self.model.revision);
            self.compact(revision).await;
        }
    }

    async fn create(&mut self, pod: Pod) {
        let key = pod.key();
        let value = Bytes::from(serde_json::to_vec(&pod.to_json()).unwrap());
        let kv = self
            .bounded(&self.at("create"), self.backend.create(&key, value))
            .await
            .unwrap_or_else(|e| panic!("{}: create {key}: {e}", self.ctx()));
        eprintln!(
            "{}: create {key} labels={:?} node={:?} -> rv {}",
            self.ctx(),
            pod.labels,
            pod.node,
            kv.mod_revision
        );
        self.model.record(kv.mod_revision, &key, Some(pod));
        bump(&self.tally.creates, 1);
    }

    async fn update(&mut self, pod: Pod, expected: Revision) {
        let key = pod.key();
        let value = Bytes::from(serde_json::to_vec(&pod.to_json()).unwrap());
        let kv = self
            .bounded(
                &self.at("update"),
                self.backend.update(&key, value, expected),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: update {key}: {e}", self.ctx()));
        eprintln!(
            "{}: update {key} labels={:?} node={:?} -> rv {}",
            self.ctx(),
            pod.labels,
            pod.node,
            kv.mod_revision
        );
        self.model.record(kv.mod_revision, &key, Some(pod));
        bump(&self.tally.updates, 1);
    }

    async fn delete(&mut self, key: &str, expected: Option<Revision>) {
        let deleted = self
            .bounded(&self.at("delete"), self.backend.delete(key, expected))
            .await
            .unwrap_or_else(|e| panic!("{}: delete {key}: {e}", self.ctx()));
        eprintln!("{}: delete {key} -> rv {}", self.ctx(), deleted.revision);
        assert_eq!(
            deleted.prev.mod_revision,
            self.model.current()[key].mod_revision
        );
        self.model.record(deleted.revision, key, None);
        bump(&self.tally.deletes, 1);
    }

    async fn write_unrelated(&mut self) {
        let value = Bytes::from(format!("{{\"step\":{}}}", self.step));
        let kv = match self
            .bounded(&self.at("get unrelated"), self.backend.get(UNRELATED_KEY))
            .await
            .unwrap()
        {
            Some(old) => self.backend.update(UNRELATED_KEY, value, old.mod_revision),
            None => self.backend.create(UNRELATED_KEY, value),
        };
        let kv = self.bounded(&self.at("write unrelated"), kv).await.unwrap();
        eprintln!("{}: unrelated write -> rv {}", self.ctx(), kv.mod_revision);
        self.model.record_unrelated(kv.mod_revision);
        bump(&self.tally.unrelated_writes, 1);
    }

    async fn compact(&mut self, revision: Revision) {
        self.bounded(&self.at("compact"), self.backend.compact(revision))
            .await
            .unwrap_or_else(|e| panic!("{}: compact {revision}: {e}", self.ctx()));
        eprintln!("{}: compact at {revision}", self.ctx());
        self.compacted = revision;
        bump(&self.tally.compactions, 1);
    }

    // --- checks ----------------------------------------------------------------------------

    /// A whole LIST through limit/continue paging: every page at the first page's revision,
    /// the next one starting right after the key the previous one ended at. Returns the
    /// revision and the objects.
    async fn list_all(
        &self,
        at: ReadAt,
        filter: &ModelFilter,
        limit: Option<usize>,
    ) -> Result<(Revision, Vec<(String, Bytes, Revision)>), StorageError> {
        let ctx = format!("{}: LIST {at:?} {filter} limit {limit:?}", self.ctx());
        let cache_filter = filter.to_filter();
        let mut start_key = None;
        // As the server: the count a page reported rides in the next page's token.
        let mut remaining_hint = None;
        let mut at = at;
        let mut revision = None;
        let mut objects: Vec<(String, Bytes, Revision)> = Vec::new();
        for page in 0.. {
            assert!(
                page <= NAMESPACES.len() * NAMES.len() + 1,
                "{ctx}: endless paging"
            );
            let request = ListRequest {
                resource: self.pods.clone(),
                prefix: PREFIX.to_string(),
                start_key: start_key.take(),
                limit,
                at,
                filter: cache_filter.clone(),
                remaining_hint: remaining_hint.take(),
            };
            let result = match self.bounded(&ctx, self.cache.list(request)).await {
                Ok(result) => result,
                // The first page may find its revision gone; a later one too, when the
                // window moved past it meanwhile (an expired continue token): the caller
                // checks that. Nothing else may fail.
                Err(e @ StorageError::Compacted { .. }) => return Err(e),
                Err(e) if page == 0 => return Err(e),
                Err(e) => panic!("{ctx}: page {page} failed: {e}"),
            };
            bump(&self.tally.pages, 1);
            let page_revision = *revision.get_or_insert(result.revision);
            assert_eq!(
                result.revision, page_revision,
                "{ctx}: page {page} revision"
            );
            if let Some(limit) = limit {
                assert!(result.objects.len() <= limit, "{ctx}: page {page} too long");
            }
            // The page holds the next matching objects of the state at its revision, and all
            // of them when it is the last.
            let after = objects
                .last()
                .map(|(k, _, _)| k.clone())
                .unwrap_or_default();
            let mut expected: Vec<_> = self
                .model
                .list(page_revision, filter)
                .into_iter()
                .filter(|(k, _, _)| *k > after)
                .collect();
            if result.continue_after.is_some() {
                expected.truncate(result.objects.len());
            }
            let page_objects: Vec<_> = result
                .objects
                .iter()
                .map(|o| (o.kv.key.clone(), o.kv.value.clone(), o.kv.mod_revision))
                .collect();
            assert!(
                page_objects == expected,
                "{ctx}: page {page} at {page_revision}\n  got      {:?}\n  expected {:?}",
                keys(&page_objects),
                keys(&expected)
            );
            for object in &result.objects {
                let served: Value = serde_json::from_slice(&self.cache.json(object, &self.pods))
                    .unwrap_or_else(|e| panic!("{ctx}: served JSON: {e}"));
                assert_eq!(
                    served["metadata"]["resourceVersion"],
                    object.kv.mod_revision.to_string(),
                    "{ctx}: served resourceVersion"
                );
                objects.push((
                    object.kv.key.clone(),
                    object.kv.value.clone(),
                    object.kv.mod_revision,
                ));
            }
            if filter.selects_all() {
                // Unfiltered pages count what follows them.
                let last = objects
                    .last()
                    .map(|(k, _, _)| k.clone())
                    .unwrap_or_default();
                let rest = self
                    .model
                    .list(page_revision, filter)
                    .iter()
                    .filter(|(k, _, _)| *k > last)
                    .count();
                let expected_remaining = (result.continue_after.is_some()).then_some(rest as i64);
                assert_eq!(
                    result.remaining, expected_remaining,
                    "{ctx}: page {page} remaining"
                );
                assert_eq!(
                    result.continue_after.is_some(),
                    rest > 0,
                    "{ctx}: page {page}: continue iff more objects follow"
                );
            }
            match result.continue_after {
                Some(last) => {
                    start_key = Some(format!("{last}\0"));
                    remaining_hint = result.remaining;
                    at = ReadAt::Exact(page_revision);
                }
                None => break,
            }
        }
        bump(&self.tally.lists, 1);
        Ok((revision.expect("at least one page"), objects))
    }

    fn random_limit(&mut self) -> Option<usize> {
        self.rng
            .percent(60)
            .then(|| self.rng.between(1, 5) as usize)
    }

    /// The cache's pod history: how many events it holds, and the revision before them (the
    /// oldest revision it serves). The history holds the newest events the cache applied.
    fn window(&self) -> (usize, Revision) {
        let stats = self.cache.stats();
        let pods = stats
            .iter()
            .find(|s| s.prefix == PREFIX)
            .expect("the pod cache");
        let held = pods.history_events;
        // The events the cache has applied: those up to its revision.
        let applied = self
            .model
            .events
            .partition_point(|e| e.revision <= pods.revision);
        assert!(held <= applied, "{}: more history than events", self.ctx());
        let base = match applied.checked_sub(held + 1) {
            Some(i) => self.model.events[i].revision,
            None => 0,
        };
        (held, base)
    }

    /// (a) LIST at Latest equals the model now.
    async fn check_latest_list(&mut self) {
        let filter = ModelFilter::random(&mut self.rng);
        let limit = self.random_limit();
        let (revision, objects) = self
            .list_all(ReadAt::Latest, &filter, limit)
            .await
            .unwrap_or_else(|e| panic!("{}: LIST Latest {filter}: {e}", self.ctx()));
        assert_eq!(
            revision,
            self.model.revision,
            "{}: LIST Latest revision",
            self.ctx()
        );
        let expected = self.model.list(revision, &filter);
        assert!(
            objects == expected,
            "{}: LIST Latest {filter} limit {limit:?} at {revision}\n  got      {:?}\n  expected {:?}",
            self.ctx(),
            keys(&objects),
            keys(&expected)
        );
    }

    /// The cache's revision: that of the last event it applied.
    fn cache_revision(&self) -> Revision {
        let stats = self.cache.stats();
        stats
            .iter()
            .find(|s| s.prefix == PREFIX)
            .expect("the pod cache")
            .revision
    }

    /// Every pod event reaches the cache (a consistent read may be served before the last
    /// ones arrive, when it proved they change nothing), and the history then holds the
    /// newest of them, as many as its bounds allow.
    async fn check_history(&self) {
        let last = self.model.events.last().map_or(0, |e| e.revision);
        let what = self.at(&format!("the cache applying every event up to {last}"));
        self.bounded(&what, async {
            while self.cache_revision() < last {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        let (held, _) = self.window();
        let events = self.model.events.len();
        assert!(
            held >= events.min(HISTORY_MIN) && held <= events.min(HISTORY_MAX),
            "{}: {held} events retained of {events}: the cache holds every pod event, the \
             newest {HISTORY_MIN}..={HISTORY_MAX} of them retained",
            self.ctx()
        );
        if self.window_bounds_history {
            assert_eq!(
                held,
                events.min(HISTORY_MAX),
                "{}: retained events",
                self.ctx()
            );
        }
    }

    /// (b) LIST and GET at Exact(r) (`at`, or a random r): the model at r inside the window,
    /// Compacted before it.
    async fn check_exact_list(&mut self, at: Option<Revision>) {
        let (_, base_before) = self.window();
        let now = self.model.revision;
        // Mostly inside the window, sometimes the newest revision (which the cache may have
        // to prove current when only other keys were written since its last event).
        let r = match (at, self.rng.below(10)) {
            (Some(r), _) => r,
            (None, 0 | 1) => now,
            (None, 2..=6) => self.rng.between(base_before.clamp(1, now), now),
            (None, _) => self.rng.between(1, now),
        };
        let filter = ModelFilter::random(&mut self.rng);
        let limit = self.random_limit();
        let result = self.list_all(ReadAt::Exact(r), &filter, limit).await;
        let (_, base_after) = self.window();
        let ctx = format!(
            "{}: LIST Exact({r}) {filter} limit {limit:?} (window from {base_before}..{base_after})",
            self.ctx()
        );
        match result {
            Ok((revision, objects)) => {
                assert!(r >= base_before, "{ctx}: served from before the window");
                bump(&self.tally.exact_served, 1);
                assert_eq!(revision, r, "{ctx}: revision");
                let expected = self.model.list(r, &filter);
                assert!(
                    objects == expected,
                    "{ctx}\n  got      {:?}\n  expected {:?}",
                    keys(&objects),
                    keys(&expected)
                );
            }
            Err(StorageError::Compacted { .. }) => {
                assert!(r < base_after, "{ctx}: Compacted inside the window");
                bump(&self.tally.exact_compacted, 1);
            }
            Err(e) => panic!("{ctx}: {e}"),
        }

        // GET of one key at the same revision: its state in the model.
        let key = format!(
            "{PREFIX}{}/{}",
            self.rng.pick(&NAMESPACES),
            self.rng.pick(&NAMES)
        );
        let what = format!("{}: GET {key} Exact({r})", self.ctx());
        let got = self
            .bounded(&what, self.cache.get(&self.pods, &key, ReadAt::Exact(r)))
            .await;
        let (_, base_after) = self.window();
        match got {
            Ok(object) => {
                assert!(r >= base_before, "{what}: served from before the window");
                let got = object.map(|o| (o.kv.value.clone(), o.kv.mod_revision));
                let expected = self
                    .model
                    .state_at(r)
                    .get(&key)
                    .map(|s| (s.value.clone(), s.mod_revision));
                assert_eq!(got, expected, "{what}");
            }
            Err(StorageError::Compacted { .. }) => {
                assert!(r < base_after, "{what}: Compacted inside the window");
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }

    /// LIST at `Any` or `NotOlderThan(n)`: some state the model had, at or after `n`.
    async fn check_relaxed_list(&mut self) {
        let at = if self.rng.percent(50) {
            ReadAt::Any
        } else {
            ReadAt::NotOlderThan(self.rng.between(0, self.model.revision))
        };
        let filter = ModelFilter::random(&mut self.rng);
        // resourceVersion=0 may ignore the limit (DESIGN.md): page only the other.
        let limit = match at {
            ReadAt::Any => None,
            _ => self.random_limit(),
        };
        let ctx = format!("{}: LIST {at:?} {filter} limit {limit:?}", self.ctx());
        let (revision, objects) = self
            .list_all(at, &filter, limit)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let oldest = match at {
            ReadAt::NotOlderThan(n) => n,
            _ => 0,
        };
        assert!(
            oldest <= revision && revision <= self.model.revision,
            "{ctx}: at revision {revision}"
        );
        let expected = self.model.list(revision, &filter);
        assert!(
            objects == expected,
            "{ctx} at {revision}\n  got      {:?}\n  expected {:?}",
            keys(&objects),
            keys(&expected)
        );
    }

    async fn open(
        &self,
        what: &str,
        filter: &ModelFilter,
        start: WatchStart,
        initial_events_end: bool,
    ) -> Result<FrameStream, StorageError> {
        let request = WatchRequest {
            table: false,
            protobuf: false,
            resource: self.pods.clone(),
            prefix: PREFIX.to_string(),
            filter: filter.to_filter(),
            start,
            initial_events_end,
            bookmarks: false,
            bookmark_interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(3600),
        };
        bump(&self.tally.watches, 1);
        self.bounded(what, self.cache.watch(request)).await
    }

    /// The next `n` frames, or those that came and why no more did.
    async fn try_read(
        stream: &mut FrameStream,
        n: usize,
    ) -> Result<Vec<SeenFrame>, (Vec<SeenFrame>, String)> {
        let mut frames = Vec::with_capacity(n);
        while frames.len() < n {
            match tokio::time::timeout(OP_TIMEOUT, stream.next()).await {
                Ok(Some(frame)) => match SeenFrame::parse(&frame) {
                    Ok(frame) => frames.push(frame),
                    Err(e) => return Err((frames, e)),
                },
                Ok(None) => return Err((frames, "the watch ended".into())),
                Err(_) => return Err((frames, format!("no frame within {OP_TIMEOUT:?}"))),
            }
        }
        Ok(frames)
    }

    async fn read_frames(&self, what: &str, stream: &mut FrameStream, n: usize) -> Vec<SeenFrame> {
        Self::try_read(stream, n)
            .await
            .unwrap_or_else(|(got, why)| {
                panic!("{what}: {why}; got {} of {n}:{}", got.len(), show(&got))
            })
    }

    /// Reads as many frames as expected and compares them.
    async fn read_expected(&self, what: &str, stream: &mut FrameStream, expected: &[SeenFrame]) {
        match Self::try_read(stream, expected.len()).await {
            Ok(got) => self.assert_frames(what, &got, expected),
            Err((got, why)) => panic!(
                "{what}: {why}\n  got:{}\n  expected:{}",
                show(&got),
                show(expected)
            ),
        }
    }

    fn assert_frames(&self, what: &str, got: &[SeenFrame], expected: &[SeenFrame]) {
        bump(&self.tally.frames, got.len());
        assert!(
            got == expected,
            "{what}\n  got:{}\n  expected:{}",
            show(got),
            show(expected)
        );
    }

    /// Reads a watch's initial frames (ADDED for the filtered state, then the
    /// initial-events-end BOOKMARK when asked for) and checks them; returns the revision they
    /// reflect.
    async fn check_initial(
        &self,
        what: &str,
        stream: &mut FrameStream,
        filter: &ModelFilter,
        at: ReadAt,
        initial_events_end: bool,
    ) -> Revision {
        if !initial_events_end {
            // Only a read at the latest revision says which state the frames show.
            assert_eq!(at, ReadAt::Latest);
            let expected = self.model.initial_frames(filter, self.model.revision);
            self.read_expected(what, stream, &expected).await;
            return self.model.revision;
        }
        // ADDED frames until the bookmark, which names their revision.
        let mut added = Vec::new();
        let bookmark = loop {
            let frame = self.read_frames(what, stream, 1).await.remove(0);
            if frame.kind == "BOOKMARK" {
                break frame;
            }
            added.push(frame);
            assert!(
                added.len() <= NAMESPACES.len() * NAMES.len(),
                "{what}: no initial-events-end bookmark:{}",
                show(&added)
            );
        };
        assert!(
            bookmark.is_initial_events_end(),
            "{what}: bookmark {bookmark:?}"
        );
        let revision = bookmark.revision;
        match at {
            ReadAt::Latest => {
                assert_eq!(revision, self.model.revision, "{what}: bookmark revision")
            }
            ReadAt::NotOlderThan(n) => assert!(
                n <= revision && revision <= self.model.revision,
                "{what}: bookmark revision {revision}"
            ),
            other => panic!("no initial events at {other:?}"),
        }
        self.assert_frames(what, &added, &self.model.initial_frames(filter, revision));
        revision
    }

    /// (c) WATCH from a retained revision, from before the window, and with initial events.
    /// Returns the watches, to check that they stay silent.
    async fn check_new_watches(&mut self) -> Vec<(String, FrameStream)> {
        let mut quiet = Vec::new();
        let (_, base) = self.window();

        // After(r), r in the window: the model's events after r.
        let r = self.rng.between(base, self.model.revision);
        let filter = ModelFilter::random(&mut self.rng);
        let what = format!("{}: WATCH After({r}) {filter}", self.ctx());
        let mut stream = self
            .open(&what, &filter, WatchStart::After(r), false)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e} (window from {base})"));
        let expected = self.model.watch_frames(&filter, r);
        self.read_expected(&what, &mut stream, &expected).await;
        quiet.push((what, stream));

        // After(r), r before the window: 410.
        if base > 0 {
            let r = self.rng.between(0, base - 1);
            let filter = ModelFilter::random(&mut self.rng);
            let what = format!(
                "{}: WATCH After({r}) {filter} (window from {base})",
                self.ctx()
            );
            match self.open(&what, &filter, WatchStart::After(r), false).await {
                Err(StorageError::Compacted { .. }) => bump(&self.tally.watches_compacted, 1),
                Err(e) => panic!("{what}: {e}, expected Compacted"),
                Ok(_) => panic!("{what}: started, expected Compacted"),
            }
        }

        // Initial: ADDED for the state, then events after it (none: nothing is written
        // meanwhile).
        let filter = ModelFilter::random(&mut self.rng);
        let (at, initial_events_end) = if self.rng.percent(50) {
            (ReadAt::Latest, self.rng.percent(50))
        } else {
            let n = self.rng.between(0, self.model.revision);
            (ReadAt::NotOlderThan(n), true)
        };
        let what = format!(
            "{}: WATCH Initial({at:?}) end-bookmark={initial_events_end} {filter}",
            self.ctx()
        );
        let mut stream = self
            .open(&what, &filter, WatchStart::Initial(at), initial_events_end)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let revision = self
            .check_initial(&what, &mut stream, &filter, at, initial_events_end)
            .await;
        let expected = self.model.watch_frames(&filter, revision);
        self.read_expected(&what, &mut stream, &expected).await;
        quiet.push((what, stream));
        quiet
    }

    /// Now and then closes a long-lived watcher, and opens another (at most
    /// [`MAX_OPEN_WATCHERS`]). Called at checks, when the cache has caught up with the store,
    /// and between writes, when it may still be applying them: a watch must start without a
    /// gap either way.
    async fn open_or_close_watches(&mut self, caught_up: bool) {
        if !self.watches.is_empty() && self.rng.percent(10) {
            let closed = self.watches.remove(self.rng.below(self.watches.len()));
            eprintln!("{}: close watch {}", self.ctx(), closed.name);
        }
        if self.watches.len() >= MAX_OPEN_WATCHERS || !self.rng.percent(30) {
            return;
        }
        // Half of them as a kubelet or a controller of one object watches: what the cache
        // indexes watchers by.
        let filter = match self.rng.below(4) {
            0 => ModelFilter::field("spec.nodeName", self.rng.pick(&NODES)),
            1 => ModelFilter::field("metadata.name", self.rng.pick(&NAMES)),
            _ => ModelFilter::random(&mut self.rng),
        };
        let name = format!("w{}", self.next_watch);
        self.next_watch += 1;
        // The oldest revision certainly retained: the cache keeps the newest HISTORY_MIN
        // events, and while it is catching up the window moves on by what it applies.
        let oldest = if caught_up {
            self.window().1
        } else {
            let events = &self.model.events;
            events
                .len()
                .checked_sub(HISTORY_MIN / 2)
                .map_or(0, |i| events[i].revision)
        };
        let (start, initial_events_end) = match self.rng.below(3) {
            0 => (
                WatchStart::After(self.rng.between(oldest, self.model.revision)),
                false,
            ),
            1 => (WatchStart::Initial(ReadAt::Latest), self.rng.percent(50)),
            _ => {
                let n = self.rng.between(0, self.model.revision);
                (WatchStart::Initial(ReadAt::NotOlderThan(n)), true)
            }
        };
        let what = format!("{}: open watch {name} {start:?} {filter}", self.ctx());
        eprintln!("{what}");
        let mut stream = self
            .open(&what, &filter, start, initial_events_end)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let seen_through = match start {
            WatchStart::After(r) => r,
            WatchStart::Initial(at) => {
                self.check_initial(&what, &mut stream, &filter, at, initial_events_end)
                    .await
            }
        };
        self.watches.push(OpenWatch {
            name,
            filter,
            stream,
            seen_through,
        });
    }

    /// Each long-lived watcher has received exactly the model's events since it was last
    /// checked (or opened).
    async fn check_open_watches(&mut self) {
        let mut watches = std::mem::take(&mut self.watches);
        for watch in &mut watches {
            let what = format!(
                "{}: open watch {} {} (since {})",
                self.ctx(),
                watch.name,
                watch.filter,
                watch.seen_through
            );
            let expected = self.model.watch_frames(&watch.filter, watch.seen_through);
            self.read_expected(&what, &mut watch.stream, &expected)
                .await;
            watch.seen_through = self.model.revision;
        }
        self.watches = watches;
    }

    /// No watch has a frame beyond those expected.
    async fn check_quiet(&mut self, mut extra: Vec<(String, FrameStream)>) {
        tokio::time::sleep(QUIET).await;
        let ctx = self.ctx();
        let open = self.watches.iter_mut().map(|w| {
            (
                format!("{ctx}: open watch {} {}", w.name, w.filter),
                &mut w.stream,
            )
        });
        for (what, stream) in extra.iter_mut().map(|(w, s)| (w.clone(), s)).chain(open) {
            match stream.next().now_or_never() {
                None => {}
                Some(Some(frame)) => {
                    let frame = match SeenFrame::parse(&frame) {
                        Ok(frame) => frame.to_string(),
                        Err(e) => e,
                    };
                    panic!("{what}: unexpected frame {frame}")
                }
                Some(None) => panic!("{what}: the watch ended"),
            }
        }
    }

    async fn check(&mut self) {
        // Half of the time, the reads that need not wait for the latest revision go first,
        // while the cache may still be applying the last writes.
        let exact_first = self.rng.percent(50);
        if exact_first {
            self.check_relaxed_list().await;
            for _ in 0..2 {
                self.check_exact_list(None).await;
            }
        }
        self.check_latest_list().await;
        self.check_history().await;
        if !exact_first {
            for _ in 0..2 {
                self.check_exact_list(None).await;
            }
        }
        let quiet = self.check_new_watches().await;
        self.open_or_close_watches(true).await;
        self.check_open_watches().await;
        self.check_quiet(quiet).await;
    }
}

fn keys(objects: &[(String, Bytes, Revision)]) -> Vec<String> {
    objects
        .iter()
        .map(|(k, v, rv)| format!("{k}@{rv}:{}", String::from_utf8_lossy(v)))
        .collect()
}

async fn run(scenario: &Scenario) {
    let mut run = Run::start(scenario).await;
    for step in 1..=STEPS {
        run.step = step;
        run.random_operation().await;
        if run.rng.percent(10) {
            // A consistent read while the cache is likely still applying the write.
            run.check_latest_list().await;
        }
        if run.rng.percent(5) {
            run.open_or_close_watches(false).await;
        }
        if step % CHECK_EVERY == 0 || step == STEPS {
            run.check().await;
        }
    }
    eprintln!(
        "seed {:#x}: {} pod events up to revision {}, compacted at {}; {}",
        run.seed,
        run.model.events.len(),
        run.model.revision,
        run.compacted,
        run.tally
    );
}

#[tokio::test]
async fn model_scenario_0() {
    run(&SCENARIOS[0]).await;
}

#[tokio::test]
async fn model_scenario_1() {
    run(&SCENARIOS[1]).await;
}

#[tokio::test]
async fn model_scenario_2() {
    run(&SCENARIOS[2]).await;
}
