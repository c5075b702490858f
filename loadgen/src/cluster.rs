//! `cluster`: a simulated cluster over real HTTP — N kubelets, one kube-scheduler and a
//! Deployment-like controller — measuring how fast pods go from creation to Running.
//!
//! Each component makes the requests the real one makes (kubelet and kube-scheduler 1.33):
//! - kubelet: POST its Node; POST, then PUT every 10 s, its Lease in `kube-node-lease`;
//!   strategic-merge PATCH `nodes/<n>/status` every 60 s; LIST then WATCH its own Node
//!   (`fieldSelector=metadata.name=<n>`) and its pods (`fieldSelector=spec.nodeName=<n>`,
//!   `allowWatchBookmarks=true`, `timeoutSeconds` drawn from 300–600 per watch); on each new
//!   pod a strategic-merge PATCH of `pods/<p>/status` to Running (kubelet's status-manager
//!   shape: uid precondition, `$setElementOrder/conditions`, conditions, container statuses),
//!   preceded by a TokenRequest for the pod's service account (its projected token) and
//!   followed by a POSTed Event.
//! - scheduler: LIST/WATCH of unscheduled, non-terminal pods and the informers
//!   kube-scheduler starts ([`SCHEDULER_INFORMERS`]); places each pod on the node with
//!   the fewest pods and POSTs `pods/<p>/binding` (bindings run concurrently, as its binding
//!   cycle does); with no node known, PATCHes the pod's PodScheduled=False condition and
//!   retries; holds its leader Lease in `kube-system`, renewed every 2 s.
//! - controller: creates the pods in bursts (`bursts` per second) at `rate` pods/s, and
//!   watches them (its own LIST/WATCH by run label): the first event with `spec.nodeName`
//!   set times create→bound, the first with `status.phase=Running` create→Running, both from
//!   the instant it sent the create. Every pod created must be seen Running by this watch;
//!   the pods the kubelets patched and the pods the controller saw are counted separately
//!   and their difference reported.
//!
//! Connections: every kubelet has its own [`Client`], so its own connections, as a real
//! kubelet does (with `--http2` one multiplexed connection per kubelet, the shape of
//! client-go over TLS; with HTTP/1.1 a connection per watch plus a small keep-alive pool).
//! The scheduler and the controller have one client each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounting::{histogram, record_ns};
use crate::client::{Client, Conn, Error, Target, encode_query};
use crate::pod::RUN_LABEL;
use crate::procs::Monitor;
use crate::report::percentiles;
use crate::watch_lines::LineBuffer;

const JSON: &str = "application/json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
/// kubelet's `nodeLeaseRenewInterval` default (a quarter of the 40 s lease).
const NODE_LEASE_RENEW: Duration = Duration::from_secs(10);
/// kubelet's `nodeStatusReportFrequency` default.
const NODE_STATUS_REPORT: Duration = Duration::from_secs(60);
/// kube-scheduler's `leaderElection.renewDeadline`… is 10 s; its retry period — how often
/// the holder renews — is 2 s.
const LEADER_RENEW: Duration = Duration::from_secs(2);
/// Concurrent bindings in flight (kube-scheduler binds in goroutines, unbounded; a bound
/// keeps a burst from opening thousands of streams at once).
const BINDING_CONCURRENCY: usize = 64;
/// Concurrent creates of one burst (the ReplicaSet controller's slow-start batches reach 500).
const CREATE_CONCURRENCY: usize = 64;
/// Kubelets registering at once.
const SETUP_CONCURRENCY: usize = 64;

/// What kube-scheduler's informer factory LISTs and WATCHes besides pods (1.33).
pub const SCHEDULER_INFORMERS: &[&str] = &[
    "/api/v1/nodes",
    "/api/v1/namespaces",
    "/api/v1/persistentvolumes",
    "/api/v1/persistentvolumeclaims",
    "/apis/storage.k8s.io/v1/storageclasses",
    "/apis/storage.k8s.io/v1/csinodes",
    "/apis/storage.k8s.io/v1/csidrivers",
    "/apis/storage.k8s.io/v1/csistoragecapacities",
    "/apis/apps/v1/replicasets",
    "/apis/apps/v1/statefulsets",
    "/api/v1/replicationcontrollers",
    "/api/v1/services",
    "/apis/policy/v1/poddisruptionbudgets",
];

/// The shape of a cluster run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub nodes: u32,
    /// Pods created per second.
    pub rate: f64,
    /// Bursts per second the creates come in.
    pub bursts: u32,
    pub duration: Duration,
    /// How long pods may take to reach Running after the last create.
    pub drain: Duration,
    pub run: String,
    pub namespace: String,
    pub server_pids: Vec<u32>,
    pub deadline: Instant,
    pub cleanup: bool,
}

impl Plan {
    fn prefix(&self) -> String {
        format!("lg{}", self.run)
    }

    fn node_name(&self, index: u32) -> String {
        format!("{}-node-{index}", self.prefix())
    }

    fn pod_name(&self, index: u64) -> String {
        format!("{}-pod-{index}", self.prefix())
    }

    fn selector(&self) -> String {
        encode_query(&format!("{RUN_LABEL}={}", self.run))
    }
}

/// Counters and histograms every component writes to.
struct Shared {
    epoch: Instant,
    stop: AtomicBool,
    /// Pod name → ns (from `epoch`) its create was sent.
    created: Mutex<HashMap<String, u64>>,
    /// Pod name → ns the controller saw it bound / Running.
    bound: Mutex<HashMap<String, u64>>,
    running: Mutex<HashMap<String, u64>>,
    bound_ms: Mutex<Histogram<u64>>,
    running_ms: Mutex<Histogram<u64>>,
    node_lease: Mutex<Histogram<u64>>,
    leader_lease: Mutex<Histogram<u64>>,
    /// Pods the kubelets patched to Running.
    kubelet_running: AtomicU64,
    bindings: AtomicU64,
    unschedulable_patches: AtomicU64,
    watch_errors: AtomicU64,
    request_errors: AtomicU64,
    /// Requests sent, by kind (the request mix).
    mix: Mutex<HashMap<&'static str, u64>>,
    first_errors: Mutex<Vec<String>>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn count(&self, kind: &'static str) {
        *self.mix.lock().expect("mix lock").entry(kind).or_default() += 1;
    }

    fn note(&self, counter: &AtomicU64, what: &str, error: &dyn std::fmt::Display) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().expect("errors lock");
        if first.len() < 5 {
            eprintln!("kubecache-loadgen: cluster: {what}: {error}");
            first.push(format!("{what}: {error}"));
        }
    }

    /// Sends one request of the mix, timing it into `histogram` if given.
    async fn call(
        &self,
        client: &Client,
        kind: &'static str,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
        histogram: Option<&Mutex<Histogram<u64>>>,
    ) -> Result<Bytes, Error> {
        self.count(kind);
        let start = Instant::now();
        let body = body.map(|(content_type, body)| (content_type, Bytes::from(body)));
        let result = client.call(None, method, path, body).await;
        if let Some(histogram) = histogram {
            record_ns(
                &mut histogram.lock().expect("histogram lock"),
                start.elapsed().as_nanos() as u64,
            );
        }
        match result {
            Ok(reply) => Ok(reply.body),
            Err(e) => {
                self.note(&self.request_errors, kind, &e);
                Err(e)
            }
        }
    }
}

/// The part of a watched or listed object the simulated components read.
#[derive(Deserialize, Default)]
struct Object {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    status: Status,
    #[serde(default)]
    items: Vec<Object>,
    /// An ERROR event's Status code.
    #[serde(default)]
    code: u16,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(default, rename = "nodeName")]
    node_name: String,
    #[serde(default, rename = "serviceAccountName")]
    service_account_name: String,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    phase: String,
}

#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    object: Object,
}

/// LIST `collection?query`, then WATCH it from the LIST's resourceVersion for as long as the
/// run lasts, calling `on_object` for every listed item and every ADDED/MODIFIED object;
/// re-watches from the last resourceVersion (bookmarks included) when the server ends a
/// watch, relists after 410 Gone. `timeout` gives each watch's timeoutSeconds.
async fn informer(
    shared: &Shared,
    client: &Client,
    kind: &'static str,
    collection: &str,
    query: &str,
    mut timeout: impl FnMut() -> u64,
    mut on_object: impl FnMut(Object),
) {
    let mut conn = Conn::default();
    'relist: while !shared.stopped() {
        shared.count(kind);
        let path = format!("{collection}?{query}");
        let listed = match client.call(Some(&mut conn), Method::GET, &path, None).await {
            Ok(reply) => serde_json::from_slice::<Object>(&reply.body),
            Err(e) => {
                shared.note(&shared.watch_errors, kind, &e);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let Ok(list) = listed else {
            shared.note(&shared.watch_errors, kind, &"LIST reply is not a list");
            return;
        };
        let mut rv = list.metadata.resource_version;
        list.items.into_iter().for_each(&mut on_object);
        while !shared.stopped() {
            shared.count(kind);
            let path = format!(
                "{collection}?{query}&watch=true&allowWatchBookmarks=true&timeoutSeconds={}&resourceVersion={rv}",
                timeout()
            );
            let mut body = match client.stream(&mut conn, &path).await {
                Ok(body) => body,
                Err(e) => {
                    shared.note(&shared.watch_errors, kind, &e);
                    if e.status() == Some(StatusCode::GONE) {
                        continue 'relist;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut buffer = LineBuffer::default();
            loop {
                let frame = tokio::select! {
                    frame = body.frame() => frame,
                    _ = stopped(shared) => return,
                };
                match frame {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            buffer.push(data);
                        }
                    }
                    Some(Err(e)) => {
                        shared.note(&shared.watch_errors, kind, &e);
                        break;
                    }
                    // The server ended the watch (its timeoutSeconds): watch again.
                    None => break,
                }
                while let Some(line) = buffer.next_line() {
                    let line: Line = match serde_json::from_slice(&line) {
                        Ok(line) => line,
                        Err(e) => {
                            shared.note(&shared.watch_errors, kind, &e);
                            continue;
                        }
                    };
                    match line.kind.as_str() {
                        "ERROR" => {
                            shared.note(
                                &shared.watch_errors,
                                kind,
                                &format!("ERROR event {}", line.object.code),
                            );
                            continue 'relist;
                        }
                        "BOOKMARK" => rv = line.object.metadata.resource_version,
                        "DELETED" => rv = line.object.metadata.resource_version,
                        _ => {
                            rv = line.object.metadata.resource_version.clone();
                            on_object(line.object);
                        }
                    }
                }
            }
        }
    }
}

/// Resolves once the run is stopping.
async fn stopped(shared: &Shared) {
    while !shared.stopped() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A cheap, well-mixed number from `seed` (splitmix64), for jitter.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn rfc3339_micro_now() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0);
    let seconds = rfc3339_now();
    format!("{}.{micros:06}Z", seconds.trim_end_matches('Z'))
}

fn ready_condition(now: &str) -> Value {
    json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
           "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
           "lastTransitionTime": now})
}

/// One simulated kubelet.
async fn kubelet(
    shared: Arc<Shared>,
    plan: Arc<Plan>,
    client: Client,
    index: u32,
    setup: Arc<tokio::sync::Semaphore>,
    ready: Arc<AtomicU64>,
) {
    let node = plan.node_name(index);
    let labels = json!({"kubernetes.io/hostname": node, RUN_LABEL: plan.run});
    {
        let _permit = setup.acquire().await;
        let now = rfc3339_now();
        let body = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node, "labels": labels},
            "status": {"capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                       "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                       "conditions": [ready_condition(&now)],
                       "addresses": [{"type": "InternalIP", "address": format!("10.{}.{}.1", index / 256 % 256, index % 256)}]}});
        let _ = shared
            .call(
                &client,
                "node create",
                Method::POST,
                "/api/v1/nodes",
                Some((JSON, body.to_string())),
                None,
            )
            .await;
    }
    let client = Arc::new(client);
    // Its loops live as long as the kubelet: dropping the set (when the run aborts the
    // kubelet) aborts them.
    let mut children = tokio::task::JoinSet::new();
    children.spawn(node_lease(
        shared.clone(),
        plan.clone(),
        client.clone(),
        index,
    ));
    children.spawn(node_status(
        shared.clone(),
        client.clone(),
        node.clone(),
        index,
    ));
    {
        let (shared, client, node) = (shared.clone(), client.clone(), node.clone());
        children.spawn(async move {
            let query = format!(
                "fieldSelector={}",
                encode_query(&format!("metadata.name={node}"))
            );
            informer(
                &shared,
                &client,
                "kubelet node watch",
                "/api/v1/nodes",
                &query,
                || 300 + mix(index as u64) % 300,
                |_| {},
            )
            .await
        });
    }
    let query = format!(
        "fieldSelector={}",
        encode_query(&format!("spec.nodeName={node}"))
    );
    let started = Mutex::new(std::collections::HashSet::new());
    let (to_start, mut pending) = tokio::sync::mpsc::unbounded_channel::<Object>();
    let mut watches = 0u64;
    let pods = informer(
        &shared,
        &client,
        "kubelet pod watch",
        "/api/v1/pods",
        &query,
        || {
            watches += 1;
            300 + mix((index as u64) << 32 | watches) % 301
        },
        |pod| {
            if pod.status.phase != "Running"
                && started
                    .lock()
                    .expect("started lock")
                    .insert(pod.metadata.name.clone())
            {
                let _ = to_start.send(pod);
            }
        },
    );
    let starter = async {
        ready.fetch_add(1, Ordering::Relaxed);
        while let Some(pod) = pending.recv().await {
            start_pod(&shared, &plan, &client, &node, index, pod).await;
        }
    };
    tokio::select! {
        _ = pods => {}
        _ = starter => {}
    }
    drop(children);
}

/// The kubelet's status-manager patch that marks `pod` Running, then the Event it records.
async fn start_pod(
    shared: &Shared,
    plan: &Plan,
    client: &Client,
    node: &str,
    index: u32,
    pod: Object,
) {
    let now = rfc3339_now();
    let ip = format!(
        "10.{}.{}.{}",
        index / 256 % 256,
        index % 256,
        2 + mix(pod.metadata.name.len() as u64) % 250
    );
    let condition = |kind: &str| json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
    let patch = json!({
        "metadata": {"uid": pod.metadata.uid},
        "status": {
            "$setElementOrder/conditions": [{"type": "PodReadyToStartContainers"}, {"type": "Initialized"},
                {"type": "Ready"}, {"type": "ContainersReady"}, {"type": "PodScheduled"}],
            "conditions": [condition("PodReadyToStartContainers"), condition("Initialized"),
                condition("Ready"), condition("ContainersReady")],
            "containerStatuses": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                "imageID": "registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a",
                "containerID": format!("containerd://{}", pod.metadata.uid.replace('-', "")),
                "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": now}}, "lastState": {}}],
            "hostIP": format!("10.{}.{}.1", index / 256 % 256, index % 256),
            "hostIPs": [{"ip": format!("10.{}.{}.1", index / 256 % 256, index % 256)}],
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
        }
    });
    // The projected service-account token ServiceAccount admission mounts: kubelet's token
    // manager requests one bound to the pod.
    if !pod.spec.service_account_name.is_empty() {
        let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": [], "expirationSeconds": 3607,
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                        "name": pod.metadata.name, "uid": pod.metadata.uid}}});
        let path = format!(
            "/api/v1/namespaces/{}/serviceaccounts/{}/token",
            plan.namespace, pod.spec.service_account_name
        );
        let token = Some((JSON, request.to_string()));
        let _ = (shared.call(
            client,
            "kubelet token request",
            Method::POST,
            &path,
            token,
            None,
        ))
        .await;
    }
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/status",
        plan.namespace, pod.metadata.name
    );
    if shared
        .call(
            client,
            "kubelet pod status patch",
            Method::PATCH,
            &path,
            Some((STRATEGIC, patch.to_string())),
            None,
        )
        .await
        .is_err()
    {
        return;
    }
    shared.kubelet_running.fetch_add(1, Ordering::Relaxed);
    let event = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{}.{:x}", pod.metadata.name, mix(shared.now_ns())), "namespace": plan.namespace,
                     "labels": {RUN_LABEL: plan.run}},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name,
                           "namespace": plan.namespace, "uid": pod.metadata.uid,
                           "fieldPath": "spec.containers{app}"},
        "reason": "Started", "message": "Started container app", "type": "Normal",
        "source": {"component": "kubelet", "host": node}, "reportingComponent": "kubelet",
        "reportingInstance": node, "firstTimestamp": now, "lastTimestamp": now, "count": 1});
    let path = format!("/api/v1/namespaces/{}/events", plan.namespace);
    let _ = shared
        .call(
            client,
            "kubelet event",
            Method::POST,
            &path,
            Some((JSON, event.to_string())),
            None,
        )
        .await;
}

/// Whose Lease: a kubelet's node lease or the scheduler's leader lease.
#[derive(Clone, Copy)]
enum LeaseRole {
    Node,
    Leader,
}

impl LeaseRole {
    fn namespace(self) -> &'static str {
        match self {
            LeaseRole::Node => "kube-node-lease",
            LeaseRole::Leader => "kube-system",
        }
    }

    /// kubelet: 40 s leases renewed every 10 s; kube-scheduler: 15 s, renewed every 2 s.
    fn duration_and_renewal(self) -> (u32, Duration) {
        match self {
            LeaseRole::Node => (40, NODE_LEASE_RENEW),
            LeaseRole::Leader => (15, LEADER_RENEW),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            LeaseRole::Node => "node lease renew",
            LeaseRole::Leader => "leader lease renew",
        }
    }

    fn histogram(self, shared: &Shared) -> &Mutex<Histogram<u64>> {
        match self {
            LeaseRole::Node => &shared.node_lease,
            LeaseRole::Leader => &shared.leader_lease,
        }
    }
}

/// Creates a Lease, then PUTs it on the role's schedule with a fresh renewTime (optimistic
/// update from the last resourceVersion, as client-go's lease clients do), timing each PUT.
async fn hold_lease(
    shared: &Shared,
    client: &Client,
    plan: &Plan,
    role: LeaseRole,
    name: &str,
    first_delay: Duration,
) {
    let namespace = role.namespace();
    let (duration_seconds, every) = role.duration_and_renewal();
    let (kind, histogram) = (role.kind(), role.histogram(shared));
    let labels = json!({RUN_LABEL: plan.run});
    let collection = format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases");
    let mut lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration_seconds,
                 "acquireTime": rfc3339_micro_now(), "renewTime": rfc3339_micro_now()}});
    let mut rv = match shared
        .call(
            client,
            "lease create",
            Method::POST,
            &collection,
            Some((JSON, lease.to_string())),
            None,
        )
        .await
    {
        Ok(body) => serde_json::from_slice::<Object>(&body)
            .map(|o| o.metadata.resource_version)
            .unwrap_or_default(),
        Err(_) => return,
    };
    tokio::time::sleep(first_delay).await;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let path = format!("{collection}/{name}");
    loop {
        ticker.tick().await;
        if shared.stopped() {
            return;
        }
        lease["metadata"]["resourceVersion"] = json!(rv);
        lease["spec"]["renewTime"] = json!(rfc3339_micro_now());
        if let Ok(body) = shared
            .call(
                client,
                kind,
                Method::PUT,
                &path,
                Some((JSON, lease.to_string())),
                Some(histogram),
            )
            .await
        {
            rv = serde_json::from_slice::<Object>(&body)
                .map(|o| o.metadata.resource_version)
                .unwrap_or(rv);
        }
    }
}

async fn node_lease(shared: Arc<Shared>, plan: Arc<Plan>, client: Arc<Client>, index: u32) {
    let name = plan.node_name(index);
    // Kubelets start at different times: spread the renewals over the interval.
    let jitter = Duration::from_millis(mix(index as u64) % NODE_LEASE_RENEW.as_millis() as u64);
    hold_lease(&shared, &client, &plan, LeaseRole::Node, &name, jitter).await;
}

/// kubelet's node status report: a strategic-merge PATCH of `nodes/<n>/status` with the
/// heartbeat of every condition, every [`NODE_STATUS_REPORT`].
async fn node_status(shared: Arc<Shared>, client: Arc<Client>, node: String, index: u32) {
    let jitter = mix(index as u64 ^ 0x5eed) % NODE_STATUS_REPORT.as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(jitter)).await;
    let path = format!("/api/v1/nodes/{node}/status");
    while !shared.stopped() {
        let now = rfc3339_now();
        let patch = json!({"status": {
            "$setElementOrder/conditions": [{"type": "Ready"}],
            "conditions": [{"type": "Ready", "lastHeartbeatTime": now}]}});
        let _ = shared
            .call(
                &client,
                "node status patch",
                Method::PATCH,
                &path,
                Some((STRATEGIC, patch.to_string())),
                None,
            )
            .await;
        tokio::time::sleep(NODE_STATUS_REPORT).await;
    }
}

/// The scheduler's view of the nodes: pods placed per node.
#[derive(Default)]
struct Placement {
    nodes: Vec<(String, u64)>,
}

impl Placement {
    /// The node with the fewest pods (the first of them), counting the pod placed on it.
    fn choose(&mut self) -> Option<String> {
        let (node, pods) = self.nodes.iter_mut().min_by_key(|(_, pods)| *pods)?;
        *pods += 1;
        Some(node.clone())
    }
}

async fn scheduler(shared: Arc<Shared>, plan: Arc<Plan>, client: Arc<Client>) {
    let placement = Arc::new(Mutex::new(Placement::default()));
    // Dropped (so aborted) with the scheduler.
    let mut tasks = tokio::task::JoinSet::new();
    for collection in SCHEDULER_INFORMERS {
        let (shared, client, placement, prefix) = (
            shared.clone(),
            client.clone(),
            placement.clone(),
            plan.prefix(),
        );
        let is_nodes = *collection == "/api/v1/nodes";
        tasks.spawn(async move {
            informer(
                &shared,
                &client,
                "scheduler informer",
                collection,
                "",
                || 300 + mix(collection.len() as u64) % 300,
                |object| {
                    if is_nodes && object.metadata.name.starts_with(&prefix) {
                        let mut placement = placement.lock().expect("placement lock");
                        if !placement
                            .nodes
                            .iter()
                            .any(|(name, _)| *name == object.metadata.name)
                        {
                            placement.nodes.push((object.metadata.name, 0));
                        }
                    }
                },
            )
            .await
        });
    }
    {
        let (shared, client, plan) = (shared.clone(), client.clone(), plan.clone());
        tasks.spawn(async move {
            let name = format!("{}-kube-scheduler", plan.prefix());
            hold_lease(
                &shared,
                &client,
                &plan,
                LeaseRole::Leader,
                &name,
                Duration::ZERO,
            )
            .await
        });
    }
    let (queue, mut unscheduled) = tokio::sync::mpsc::unbounded_channel::<Object>();
    let bindings = Arc::new(tokio::sync::Semaphore::new(BINDING_CONCURRENCY));
    let binder = {
        let (shared, plan, client, queue) =
            (shared.clone(), plan.clone(), client.clone(), queue.clone());
        async move {
            while let Some(pod) = unscheduled.recv().await {
                let Ok(permit) = bindings.clone().acquire_owned().await else {
                    return;
                };
                let node = placement.lock().expect("placement lock").choose();
                let (shared, plan, client, queue) =
                    (shared.clone(), plan.clone(), client.clone(), queue.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match node {
                        Some(node) => bind(&shared, &plan, &client, &pod, &node).await,
                        None => {
                            mark_unschedulable(&shared, &plan, &client, &pod).await;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            let _ = queue.send(pod);
                        }
                    }
                });
            }
        }
    };
    let query = format!(
        "fieldSelector={}",
        encode_query("spec.nodeName=,status.phase!=Succeeded,status.phase!=Failed")
    );
    let seen = Mutex::new(std::collections::HashSet::new());
    let watch = informer(
        &shared,
        &client,
        "scheduler pod watch",
        "/api/v1/pods",
        &query,
        || 300 + mix(7) % 300,
        |pod| {
            if pod.spec.node_name.is_empty()
                && seen
                    .lock()
                    .expect("seen lock")
                    .insert(pod.metadata.name.clone())
            {
                let _ = queue.send(pod);
            }
        },
    );
    tokio::select! {
        _ = watch => {}
        _ = binder => {}
    }
    drop(tasks);
}

async fn bind(shared: &Shared, plan: &Plan, client: &Client, pod: &Object, node: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod.metadata.name, "namespace": plan.namespace, "uid": pod.metadata.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/binding",
        plan.namespace, pod.metadata.name
    );
    if shared
        .call(
            client,
            "scheduler binding",
            Method::POST,
            &path,
            Some((JSON, body.to_string())),
            None,
        )
        .await
        .is_ok()
    {
        shared.bindings.fetch_add(1, Ordering::Relaxed);
    }
}

/// What kube-scheduler records when no node fits: PodScheduled=False, Unschedulable.
async fn mark_unschedulable(shared: &Shared, plan: &Plan, client: &Client, pod: &Object) {
    let now = rfc3339_now();
    let patch = json!({"metadata": {"uid": pod.metadata.uid}, "status": {
        "$setElementOrder/conditions": [{"type": "PodScheduled"}],
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/0 nodes are available.", "lastProbeTime": null, "lastTransitionTime": now}]}});
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/status",
        plan.namespace, pod.metadata.name
    );
    if shared
        .call(
            client,
            "scheduler unschedulable patch",
            Method::PATCH,
            &path,
            Some((STRATEGIC, patch.to_string())),
            None,
        )
        .await
        .is_ok()
    {
        shared.unschedulable_patches.fetch_add(1, Ordering::Relaxed);
    }
}

/// The controller's own watch of its pods: when each was first seen bound and Running.
async fn controller_watch(shared: Arc<Shared>, plan: Arc<Plan>, client: Arc<Client>) {
    let collection = format!("/api/v1/namespaces/{}/pods", plan.namespace);
    let query = format!("labelSelector={}", plan.selector());
    informer(
        &shared,
        &client,
        "controller pod watch",
        &collection,
        &query,
        || 600,
        |pod| {
            let now = shared.now_ns();
            let Some(sent) = shared
                .created
                .lock()
                .expect("created lock")
                .get(&pod.metadata.name)
                .copied()
            else {
                return;
            };
            let observe = |seen: &Mutex<HashMap<String, u64>>,
                           histogram: &Mutex<Histogram<u64>>| {
                let mut seen = seen.lock().expect("seen lock");
                if !seen.contains_key(&pod.metadata.name) {
                    seen.insert(pod.metadata.name.clone(), now);
                    record_ns(
                        &mut histogram.lock().expect("histogram lock"),
                        now.saturating_sub(sent),
                    );
                }
            };
            if !pod.spec.node_name.is_empty() {
                observe(&shared.bound, &shared.bound_ms);
            }
            if pod.status.phase == "Running" {
                observe(&shared.running, &shared.running_ms);
            }
        },
    )
    .await
}

fn pod_body(plan: &Plan, name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": plan.namespace,
                     "labels": {"app": "loadgen-cluster", RUN_LABEL: plan.run}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
                 "terminationGracePeriodSeconds": 0}})
    .to_string()
}

/// Creates `plan.rate × plan.duration` pods in `plan.bursts` bursts a second.
async fn controller_create(shared: Arc<Shared>, plan: Arc<Plan>, client: Arc<Client>) -> u64 {
    let total = (plan.rate * plan.duration.as_secs_f64()).round() as u64;
    let bursts = (plan.bursts.max(1) as u64 * plan.duration.as_secs()).max(1);
    let per_burst = total.div_ceil(bursts);
    let interval = Duration::from_secs_f64(1.0 / plan.bursts.max(1) as f64);
    let limit = Arc::new(tokio::sync::Semaphore::new(CREATE_CONCURRENCY));
    let start = Instant::now();
    let mut next = 0u64;
    let mut tasks = Vec::with_capacity(total as usize);
    for burst in 0..bursts {
        if Instant::now() >= plan.deadline {
            break;
        }
        tokio::time::sleep_until((start + interval * burst as u32).into()).await;
        for _ in 0..per_burst.min(total - next) {
            let name = plan.pod_name(next);
            next += 1;
            let (shared, plan, client, limit) =
                (shared.clone(), plan.clone(), client.clone(), limit.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire().await;
                let body = pod_body(&plan, &name);
                shared
                    .created
                    .lock()
                    .expect("created lock")
                    .insert(name.clone(), shared.now_ns());
                let path = format!("/api/v1/namespaces/{}/pods", plan.namespace);
                if shared
                    .call(
                        &client,
                        "controller pod create",
                        Method::POST,
                        &path,
                        Some((JSON, body)),
                        None,
                    )
                    .await
                    .is_err()
                {
                    shared.created.lock().expect("created lock").remove(&name);
                }
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    next
}

/// Pods seen Running per second in the busiest-to-quietest sense: the mean over
/// `[from, to)` and the lowest of its 10-second windows.
fn running_rates(running: &HashMap<String, u64>, from_ns: u64, to_ns: u64) -> (f64, Option<f64>) {
    let seconds = ((to_ns.saturating_sub(from_ns)) / 1_000_000_000).max(1) as usize;
    let mut per_second = vec![0u64; seconds];
    for ns in running.values() {
        if *ns >= from_ns && *ns < to_ns {
            let second = ((*ns - from_ns) / 1_000_000_000) as usize;
            if let Some(count) = per_second.get_mut(second) {
                *count += 1;
            }
        }
    }
    let mean = per_second.iter().sum::<u64>() as f64 / seconds as f64;
    let lowest = per_second
        .windows(10)
        .map(|w| w.iter().sum::<u64>() as f64 / 10.0)
        .reduce(f64::min);
    (mean, lowest)
}

async fn cleanup(client: &Client, plan: &Plan) {
    let selector = plan.selector();
    for path in [
        format!(
            "/api/v1/namespaces/{}/pods?labelSelector={selector}",
            plan.namespace
        ),
        format!(
            "/api/v1/namespaces/{}/events?labelSelector={selector}",
            plan.namespace
        ),
        format!("/api/v1/nodes?labelSelector={selector}"),
        format!(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases?labelSelector={selector}"
        ),
        format!(
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases?labelSelector={selector}"
        ),
    ] {
        if let Err(e) = client.call(None, Method::DELETE, &path, None).await {
            eprintln!("kubecache-loadgen: cluster: cleanup {path}: {e}");
        }
    }
}

/// Runs the simulated cluster; returns its report.
pub async fn run(target: Target, plan: Plan) -> Result<Value, String> {
    let plan = Arc::new(plan);
    let client = |connections| Client::new(target.clone(), connections);
    let controller_client = Arc::new(client(4));
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": plan.namespace}});
    match controller_client
        .call(
            None,
            Method::POST,
            "/api/v1/namespaces",
            Some((JSON, Bytes::from(namespace.to_string()))),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.status() == Some(StatusCode::CONFLICT) => {}
        Err(e) => return Err(format!("namespace {}: {e}", plan.namespace)),
    }
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
        created: Mutex::default(),
        bound: Mutex::default(),
        running: Mutex::default(),
        bound_ms: Mutex::new(histogram()),
        running_ms: Mutex::new(histogram()),
        node_lease: Mutex::new(histogram()),
        leader_lease: Mutex::new(histogram()),
        kubelet_running: AtomicU64::new(0),
        bindings: AtomicU64::new(0),
        unschedulable_patches: AtomicU64::new(0),
        watch_errors: AtomicU64::new(0),
        request_errors: AtomicU64::new(0),
        mix: Mutex::default(),
        first_errors: Mutex::default(),
    });
    let monitor = Arc::new(Mutex::new(Monitor::new(&plan.server_pids)));
    let sampler = {
        let monitor = monitor.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                monitor.lock().expect("monitor lock").sample();
            }
        })
    };

    // The kubelets, then the scheduler and the controller's watch.
    let setup_start = Instant::now();
    let setup = Arc::new(tokio::sync::Semaphore::new(SETUP_CONCURRENCY));
    let ready = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for index in 0..plan.nodes {
        tasks.push(tokio::spawn(kubelet(
            shared.clone(),
            plan.clone(),
            client(1),
            index,
            setup.clone(),
            ready.clone(),
        )));
    }
    tasks.push(tokio::spawn(scheduler(
        shared.clone(),
        plan.clone(),
        Arc::new(client(4)),
    )));
    tasks.push(tokio::spawn(controller_watch(
        shared.clone(),
        plan.clone(),
        controller_client.clone(),
    )));
    while ready.load(Ordering::Relaxed) < plan.nodes as u64 && Instant::now() < plan.deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every kubelet has registered; give the informers a moment to have LISTed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let setup_seconds = setup_start.elapsed().as_secs_f64();
    let cpu_before = monitor.lock().expect("monitor lock").usage.clone();

    let create_from_ns = shared.now_ns();
    let created = controller_create(shared.clone(), plan.clone(), controller_client.clone()).await;
    let create_to_ns = shared.now_ns();
    let drain_until = Instant::now() + plan.drain;
    loop {
        let running = shared.running.lock().expect("running lock").len() as u64;
        let listed = shared.created.lock().expect("created lock").len() as u64;
        if running >= listed || Instant::now() >= drain_until.min(plan.deadline) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let end_ns = shared.now_ns();
    // Let in-flight kubelet patches be counted before comparing with the controller's view.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shared.stop.store(true, Ordering::Relaxed);
    for task in &tasks {
        task.abort();
    }
    sampler.abort();
    monitor.lock().expect("monitor lock").sample();

    let acknowledged = shared.created.lock().expect("created lock").len() as u64;
    let running = shared.running.lock().expect("running lock").clone();
    let bound = shared.bound.lock().expect("bound lock").len() as u64;
    let kubelet_running = shared.kubelet_running.load(Ordering::Relaxed);
    let (mean_rate, lowest_10s) = running_rates(&running, create_from_ns, create_to_ns);
    let last_running = running.values().max().copied().unwrap_or(create_from_ns);
    let end_to_end_rate = running.len() as f64
        / ((last_running.saturating_sub(create_from_ns)) as f64 / 1e9).max(1e-3);
    let usage = monitor.lock().expect("monitor lock").usage.clone();
    let processes: serde_json::Map<String, Value> = usage
        .iter()
        .map(|(pid, usage)| {
            let before = cpu_before.get(pid).map(|u| u.cpu_seconds()).unwrap_or(0.0);
            let key = pid.map_or("loadgen".to_string(), |pid| pid.to_string());
            (
                key,
                json!({
                    "cpu_seconds": usage.cpu_seconds(),
                    "cpu_seconds_measuring": usage.cpu_seconds() - before,
                    "peak_rss_bytes": usage.peak_rss_bytes,
                }),
            )
        })
        .collect();
    let mut mix: Vec<(&str, u64)> = shared
        .mix
        .lock()
        .expect("mix lock")
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    mix.sort();
    let measuring = (end_ns - create_from_ns) as f64 / 1e9;
    let report = json!({
        "scenario": "cluster",
        "nodes": plan.nodes,
        "rate": plan.rate,
        "bursts_per_second": plan.bursts,
        "duration_seconds": plan.duration.as_secs(),
        "setup_seconds": setup_seconds,
        "measuring_seconds": measuring,
        "pods": {
            "created": acknowledged,
            "attempted": created,
            "bound_seen": bound,
            "bindings": shared.bindings.load(Ordering::Relaxed),
            "running_seen": running.len(),
            "kubelet_running_patches": kubelet_running,
            "not_seen_running": acknowledged.saturating_sub(running.len() as u64),
            "kubelet_controller_mismatch": kubelet_running.abs_diff(running.len() as u64),
            "unschedulable_patches": shared.unschedulable_patches.load(Ordering::Relaxed),
        },
        "running_per_sec": {
            "during_creation": mean_rate,
            "lowest_10s_window": lowest_10s,
            "end_to_end": end_to_end_rate,
        },
        "create_to_bound_ms": percentiles(&shared.bound_ms.lock().expect("histogram lock")),
        "create_to_running_ms": percentiles(&shared.running_ms.lock().expect("histogram lock")),
        "node_lease_renew_ms": percentiles(&shared.node_lease.lock().expect("histogram lock")),
        "leader_lease_renew_ms": percentiles(&shared.leader_lease.lock().expect("histogram lock")),
        "errors": {
            "watch": shared.watch_errors.load(Ordering::Relaxed),
            "request": shared.request_errors.load(Ordering::Relaxed),
            "first": *shared.first_errors.lock().expect("errors lock"),
        },
        "request_mix": mix.into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "requests_per_sec": shared.mix.lock().expect("mix lock").values().sum::<u64>() as f64 / shared.epoch.elapsed().as_secs_f64(),
        "processes": processes,
    });
    if plan.cleanup {
        cleanup(&controller_client, &plan).await;
    }
    Ok(report)
}

/// The report as a short text table.
pub fn summary(report: &Value) -> String {
    let ms = |v: &Value, q: &str| v[q].as_f64().map_or("-".to_string(), |x| format!("{x:.1}"));
    let mut out = format!(
        "cluster: {} nodes, {} pods/s target\n",
        report["nodes"], report["rate"]
    );
    let pods = &report["pods"];
    out += &format!(
        "pods created {}  bound {}  running (controller) {}  running (kubelets) {}  not running {}  mismatch {}\n",
        pods["created"],
        pods["bound_seen"],
        pods["running_seen"],
        pods["kubelet_running_patches"],
        pods["not_seen_running"],
        pods["kubelet_controller_mismatch"]
    );
    let rates = &report["running_per_sec"];
    out += &format!(
        "running/s during creation {:.1}  lowest 10 s window {}  end to end {:.1}\n",
        rates["during_creation"].as_f64().unwrap_or(0.0),
        rates["lowest_10s_window"]
            .as_f64()
            .map_or("-".to_string(), |x| format!("{x:.1}")),
        rates["end_to_end"].as_f64().unwrap_or(0.0)
    );
    for (label, key) in [
        ("create→bound", "create_to_bound_ms"),
        ("create→Running", "create_to_running_ms"),
        ("node lease PUT", "node_lease_renew_ms"),
        ("leader lease PUT", "leader_lease_renew_ms"),
    ] {
        let v = &report[key];
        out += &format!(
            "{label:<18} p50 {:>8} ms  p99 {:>8} ms  max {:>8} ms  n {}\n",
            ms(v, "p50"),
            ms(v, "p99"),
            ms(v, "max"),
            v["count"]
        );
    }
    out += &format!(
        "errors: watch {}  request {}\n",
        report["errors"]["watch"], report["errors"]["request"]
    );
    if let Some(processes) = report["processes"].as_object() {
        for (pid, usage) in processes {
            out += &format!(
                "process {pid}: CPU {:.1} s (measuring {:.1} s)  peak RSS {:.0} MiB\n",
                usage["cpu_seconds"].as_f64().unwrap_or(0.0),
                usage["cpu_seconds_measuring"].as_f64().unwrap_or(0.0),
                usage["peak_rss_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_pods_placement_spreads_evenly() {
        let mut placement = Placement {
            nodes: vec![("a".into(), 0), ("b".into(), 0), ("c".into(), 1)],
        };
        let chosen: Vec<String> = (0..5).filter_map(|_| placement.choose()).collect();
        assert_eq!(chosen, ["a", "b", "a", "b", "c"]);
        assert!(Placement::default().choose().is_none());
    }

    #[test]
    fn running_rates_count_per_second_and_the_lowest_window() {
        let running: HashMap<String, u64> = (0..200u64)
            .map(|i| (i.to_string(), i * 100_000_000))
            .collect();
        let (mean, lowest) = running_rates(&running, 0, 20_000_000_000);
        assert_eq!(mean, 10.0);
        assert_eq!(lowest, Some(10.0));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let now = rfc3339_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z') && now.as_bytes()[10] == b'T');
        assert_eq!(rfc3339_micro_now().len(), 27);
    }
}
