//! kube-rs (the `kube` crate with its runtime, typed by k8s-openapi) against kubecache, on the
//! embedded store and on a real etcd. Every test body is one `async fn(Cluster)`; the macro at
//! the bottom runs each on both stores (`embedded::NAME`, `etcd::NAME`).
//!
//! - Typed `Api<ConfigMap>`, `Api<Pod>`, `Api<Deployment>`: create, get, list with label and
//!   field selectors, replace, merge/JSON/strategic patches, delete, and the
//!   NotFound/AlreadyExists/Conflict answers as `kube::Error::Api` with code and reason.
//! - `kube::runtime::watcher` + `reflector` stores (list-then-watch and streaming lists) that
//!   must end equal to a fresh LIST while writers create, update and delete concurrently and
//!   the watches are cut: by the server's `timeoutSeconds`, by dropped connections, and by a
//!   restart onto a new server whose watch cache starts later (410 Gone → relist).
//!
//! - `#[derive(CustomResource)]`: the generated CRD applied (server-side apply) until
//!   Established, then a reflector on the custom kind that must see what is created, changed
//!   and deleted, and the schema kube-derive generated refusing a wrong type.
//!
//! - Every built-in kind with CRUD that k8s-openapi types (`builtin_kinds.rs`): a table of a
//!   valid and an invalid object per kind through create/get/list/watch/replace/delete, the
//!   HorizontalPodAutoscaler through autoscaling/v1 and v2, pod binding and eviction and
//!   service-account token requests.
//!
//! No timed assertions: waits have deadlines, then the state is compared.

#[allow(dead_code)]
#[path = "../../../server/tests/integration/support/server.rs"]
mod server;

#[path = "kube_rs/builtin_kinds.rs"]
mod builtin_kinds;
use builtin_kinds::{
    builtin_kinds_crud, hpa_v1_and_v2, pod_binding_and_eviction, service_account_token_request,
};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, conditions, wait, watcher};
use kube::{Client, Config, CustomResource, CustomResourceExt, ResourceExt};
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use kubecache_storage::testing::TestEtcd;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use server::TestServer;
use tokio::net::{TcpListener, TcpStream};

/// How long a reflector store may take to match the server once writes stop.
const CONVERGE: Duration = Duration::from_secs(30);

/// How long a watch may take to be ended by `timeoutSeconds` and started again.
const REWATCH: Duration = Duration::from_secs(30);

/// A kubecache server over one store, and the etcd behind it if any.
struct Cluster {
    /// Declared first so it stops before etcd.
    server: TestServer,
    _etcd: Option<TestEtcd>,
}

impl Cluster {
    async fn embedded() -> Cluster {
        Cluster {
            server: TestServer::start_with(Arc::new(EmbeddedBackend::in_memory())).await,
            _etcd: None,
        }
    }

    async fn etcd() -> Cluster {
        let etcd = TestEtcd::start();
        let backend = EtcdBackend::connect(&[etcd.endpoint()], EtcdOptions::default())
            .await
            .expect("connect to etcd");
        Cluster {
            server: TestServer::start_with(Arc::new(backend)).await,
            _etcd: Some(etcd),
        }
    }

    fn client(&self) -> Client {
        client_for(&self.server.base)
    }
}

/// A kube client for `http://127.0.0.1:PORT` (plain HTTP, no credentials: the insecure port).
fn client_for(base: &str) -> Client {
    let config = Config::new(base.parse().expect("a valid URL"));
    Client::try_from(config).expect("build a kube client")
}

fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: (!labels.is_empty()).then(|| strings(labels)),
        ..ObjectMeta::default()
    }
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn configmap(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(name, labels),
        data: Some(strings(data)),
        ..ConfigMap::default()
    }
}

fn pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]},
    }))
    .expect("a valid pod")
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]},
            },
        },
    }))
    .expect("a valid deployment")
}

fn json_patch(ops: serde_json::Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(ops).expect("a valid JSON patch"))
}

/// Creates a namespace through kube and returns its name.
async fn namespace(client: &Client, name: &str) -> String {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let created = namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta(name, &[]),
                ..Namespace::default()
            },
        )
        .await
        .expect("create the namespace");
    assert_eq!(created.metadata.name.as_deref(), Some(name));
    name.to_string()
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    let mut names: Vec<String> = items
        .iter()
        .map(|o| o.meta().name.clone().unwrap())
        .collect();
    names.sort();
    names
}

fn rv<K: kube::Resource>(object: &K) -> u64 {
    object
        .meta()
        .resource_version
        .as_deref()
        .expect("a resourceVersion")
        .parse()
        .expect("a numeric resourceVersion")
}

/// Asserts that `result` is `kube::Error::Api` with this code and reason; returns the Status.
#[track_caller]
fn api_error<T: Debug>(
    result: kube::Result<T>,
    code: u16,
    reason: &str,
) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (code, reason),
                "{status:?}"
            );
            assert!(!status.message.is_empty(), "{status:?}");
            status
        }
        other => panic!("expected an API error {code} {reason}, got {other:?}"),
    }
}

async fn configmap_crud(cluster: Cluster) {
    let client = cluster.client();
    let ns = namespace(&client, "kube-rs-cm").await;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let pp = PostParams::default();

    let created = api
        .create(&pp, &configmap("a1", &[("tier", "front")], &[("k", "1")]))
        .await
        .expect("create a1");
    assert_eq!(created.metadata.namespace.as_deref(), Some(ns.as_str()));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.data, Some(strings(&[("k", "1")])));
    api.create(&pp, &configmap("a2", &[("tier", "front")], &[]))
        .await
        .expect("create a2");
    api.create(&pp, &configmap("b1", &[("tier", "back")], &[]))
        .await
        .expect("create b1");

    let got = api.get("a1").await.expect("get a1");
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );

    let front = api
        .list(&ListParams::default().labels("tier=front"))
        .await
        .expect("list tier=front");
    assert_eq!(names(&front.items), ["a1", "a2"]);
    assert!(front.metadata.resource_version.is_some());
    let not_front = api
        .list(&ListParams::default().labels("tier!=front"))
        .await
        .expect("list tier!=front");
    assert_eq!(names(&not_front.items), ["b1"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=a2"))
        .await
        .expect("list by name");
    assert_eq!(names(&by_name.items), ["a2"]);

    // Errors keep the server's Status.
    let exists = api_error(
        api.create(&pp, &configmap("a1", &[], &[])).await,
        409,
        "AlreadyExists",
    );
    let details = exists.details.expect("AlreadyExists has details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("a1", "configmaps")
    );
    api_error(api.get("nope").await, 404, "NotFound");
    assert!(api.get_opt("nope").await.expect("get_opt").is_none());

    // Replace with the current resourceVersion, then with the stale one.
    let mut edited = got.clone();
    edited.data = Some(strings(&[("k", "2")]));
    let replaced = api.replace("a1", &pp, &edited).await.expect("replace a1");
    assert_eq!(replaced.data, Some(strings(&[("k", "2")])));
    assert!(rv(&replaced) > rv(&got));
    assert_eq!(replaced.metadata.uid, created.metadata.uid);
    api_error(api.replace("a1", &pp, &edited).await, 409, "Conflict");

    // Merge patch: null removes a key; labels merge.
    let merged = api
        .patch(
            "a1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"data": {"m": "x", "k": null}, "metadata": {"labels": {"extra": "y"}}}),
            ),
        )
        .await
        .expect("merge patch");
    assert_eq!(merged.data, Some(strings(&[("m", "x")])));
    assert_eq!(
        merged.metadata.labels,
        Some(strings(&[("extra", "y"), ("tier", "front")]))
    );

    // JSON patch, with a passing test op.
    let patched = api
        .patch(
            "a1",
            &PatchParams::default(),
            &json_patch(json!([
                {"op": "test", "path": "/data/m", "value": "x"},
                {"op": "add", "path": "/data/j", "value": "z"},
            ])),
        )
        .await
        .expect("json patch");
    assert_eq!(patched.data, Some(strings(&[("j", "z"), ("m", "x")])));

    // A patch with a stale resourceVersion is a precondition that fails.
    api_error(
        api.patch(
            "a1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": got.metadata.resource_version}, "data": {"q": "1"}})),
        )
        .await,
        409,
        "Conflict",
    );

    // Dry run: the answer shows the change, the store does not have it.
    let dry = api
        .patch(
            "a1",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"data": {"dry": "run"}})),
        )
        .await
        .expect("dry-run patch");
    assert_eq!(
        dry.data.as_ref().unwrap().get("dry").map(String::as_str),
        Some("run")
    );
    let after = api.get("a1").await.expect("get a1");
    assert_eq!(after.data, patched.data);
    assert_eq!(
        after.metadata.resource_version,
        patched.metadata.resource_version
    );

    // Delete answers a Success Status for configmaps; then the object is gone.
    let deleted = api
        .delete("a1", &DeleteParams::default())
        .await
        .expect("delete a1");
    let status = deleted.right().expect("configmap deletes answer a Status");
    assert_eq!(status.details.expect("details").name, "a1");
    api_error(api.get("a1").await, 404, "NotFound");
    api_error(
        api.delete("a1", &DeleteParams::default()).await,
        404,
        "NotFound",
    );

    // Collection delete by label.
    let gone = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=front"),
        )
        .await
        .expect("delete collection");
    let gone = gone
        .left()
        .expect("deletecollection answers the deleted objects");
    assert_eq!(names(&gone.items), ["a2"]);
    assert_eq!(
        names(&api.list(&ListParams::default()).await.unwrap().items),
        ["b1"]
    );
}

async fn pod_crud(cluster: Cluster) {
    let client = cluster.client();
    let ns = namespace(&client, "kube-rs-pods").await;
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let pp = PostParams::default();

    let created = api
        .create(&pp, &pod("web-1", "web"))
        .await
        .expect("create web-1");
    assert_eq!(created.metadata.namespace.as_deref(), Some(ns.as_str()));
    let status = created.status.as_ref().expect("a pod gets a status");
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    api.create(&pp, &pod("web-2", "web"))
        .await
        .expect("create web-2");
    api.create(&pp, &pod("db-1", "db"))
        .await
        .expect("create db-1");
    api_error(
        api.create(&pp, &pod("db-1", "db")).await,
        409,
        "AlreadyExists",
    );

    let web = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("list app=web");
    assert_eq!(names(&web.items), ["web-1", "web-2"]);
    let phase = api
        .list(&ListParams::default().fields("status.phase=Pending,metadata.name!=web-2"))
        .await
        .expect("list by field");
    assert_eq!(names(&phase.items), ["db-1", "web-1"]);

    // Strategic merge on containers (merge key: name) changes main's image and keeps the
    // rest of main (a pod's containers cannot be added or removed after creation).
    let patched = api
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}),
            ),
        )
        .await
        .expect("strategic patch");
    let containers = &patched.spec.as_ref().unwrap().containers;
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].name, "main");
    assert_eq!(containers[0].image.as_deref(), Some("nginx:1.27"));
    // The defaulted fields of main were merged into, not replaced.
    assert_eq!(
        containers[0].termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );

    // Merge patch on labels, then replace with the current object.
    let relabelled = api
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "web", "track": "canary"}}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        relabelled.metadata.labels,
        Some(strings(&[("app", "web"), ("track", "canary")]))
    );
    let mut annotated = relabelled.clone();
    annotated.metadata.annotations = Some(strings(&[("note", "replaced")]));
    let replaced = api
        .replace("web-1", &pp, &annotated)
        .await
        .expect("replace");
    assert_eq!(
        replaced.metadata.annotations,
        Some(strings(&[("note", "replaced")]))
    );
    api_error(api.replace("web-1", &pp, &annotated).await, 409, "Conflict");
    api_error(
        api.patch(
            "missing",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await,
        404,
        "NotFound",
    );

    // Deleting a pod answers the pod.
    let deleted = api
        .delete("web-1", &DeleteParams::default())
        .await
        .expect("delete");
    let deleted = deleted.left().expect("pod deletes answer the pod");
    assert_eq!(deleted.metadata.name.as_deref(), Some("web-1"));
    api_error(api.get("web-1").await, 404, "NotFound");
    assert_eq!(
        names(&api.list(&ListParams::default()).await.unwrap().items),
        ["db-1", "web-2"]
    );
}

async fn deployment_crud(cluster: Cluster) {
    let client = cluster.client();
    let ns = namespace(&client, "kube-rs-deploy").await;
    let api: Api<Deployment> = Api::namespaced(client, &ns);
    let pp = PostParams::default();

    let created = api
        .create(&pp, &deployment("web", 1))
        .await
        .expect("create web");
    assert_eq!(created.metadata.generation, Some(1));
    api.create(&pp, &deployment("api", 2))
        .await
        .expect("create api");
    api_error(
        api.create(&pp, &deployment("web", 1)).await,
        409,
        "AlreadyExists",
    );
    let listed = api
        .list(&ListParams::default().labels("app in (web,other)"))
        .await
        .expect("list");
    assert_eq!(names(&listed.items), ["web"]);

    // JSON patch of the spec bumps the generation; the scale subresource agrees.
    let patched = api
        .patch(
            "web",
            &PatchParams::default(),
            &json_patch(json!([{"op": "replace", "path": "/spec/replicas", "value": 3}])),
        )
        .await
        .expect("json patch");
    assert_eq!(patched.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(patched.metadata.generation, Some(2));
    let scale = api.get_scale("web").await.expect("get scale");
    assert_eq!(scale.spec.unwrap().replicas, Some(3));

    // Merge patch of the template image.
    let merged = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}}),
            ),
        )
        .await
        .expect("merge patch");
    let template = &merged.spec.as_ref().unwrap().template;
    assert_eq!(
        template.metadata.as_ref().unwrap().annotations,
        Some(strings(&[("rev", "2")]))
    );

    // Replace: current resourceVersion works, stale conflicts, a changed selector is kept
    // as sent (no defaulting differences matter here).
    let mut edited = merged.clone();
    edited.spec.as_mut().unwrap().replicas = Some(5);
    let replaced = api.replace("web", &pp, &edited).await.expect("replace");
    assert_eq!(replaced.spec.as_ref().unwrap().replicas, Some(5));
    assert_eq!(replaced.metadata.generation, Some(4));
    api_error(api.replace("web", &pp, &edited).await, 409, "Conflict");

    let got = api.get("web").await.expect("get web");
    assert_eq!(
        got.metadata.resource_version,
        replaced.metadata.resource_version
    );

    let deleted = api
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(deleted.is_right(), "deployment deletes answer a Status");
    api_error(api.get("web").await, 404, "NotFound");
    api_error(
        api.delete("web", &DeleteParams::default()).await,
        404,
        "NotFound",
    );
    assert_eq!(
        names(&api.list(&ListParams::default()).await.unwrap().items),
        ["api"]
    );
}

/// A reflector over `api` driven on a background task; counts relists and keeps errors.
struct Reflector {
    store: Store<ConfigMap>,
    /// `watcher::Event::Init` seen: one per (re)list.
    inits: Arc<AtomicUsize>,
    /// Errors the watcher reported (it retries on its own).
    errors: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reflector {
    async fn start(api: Api<ConfigMap>, config: watcher::Config) -> Reflector {
        let (store, writer) = reflector::store();
        let inits = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stream = reflector::reflector(writer, watcher(api, config));
        let task = {
            let inits = inits.clone();
            let errors = errors.clone();
            tokio::spawn(stream.for_each(move |event| {
                let failed = event.is_err();
                match event {
                    Ok(watcher::Event::Init) => {
                        inits.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(watcher::Error::WatchError(status)) => {
                        errors.lock().unwrap().push(format!(
                            "watch error {} {}: {}",
                            status.code, status.reason, status.message
                        ))
                    }
                    Err(e) => errors.lock().unwrap().push(e.to_string()),
                }
                // No backoff layer here: pause after an error so that a refused connection
                // does not spin.
                async move {
                    if failed {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }))
        };
        let reflector = Reflector {
            store,
            inits,
            errors,
            task,
        };
        tokio::time::timeout(CONVERGE, reflector.store.wait_until_ready())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the reflector did not list within {CONVERGE:?}; errors: {:?}",
                    reflector.errors()
                )
            })
            .expect("the writer is alive");
        reflector
    }

    fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    fn inits(&self) -> usize {
        self.inits.load(Ordering::SeqCst)
    }
}

/// What is compared between a store and a LIST: name → (resourceVersion, data).
type Snapshot = BTreeMap<String, (Option<String>, Option<BTreeMap<String, String>>)>;

fn snapshot<'a>(objects: impl Iterator<Item = &'a ConfigMap>) -> Snapshot {
    objects
        .map(|cm| {
            (
                cm.metadata.name.clone().unwrap(),
                (cm.metadata.resource_version.clone(), cm.data.clone()),
            )
        })
        .collect()
}

/// Waits (bounded by [`CONVERGE`]) until every reflector's store equals a fresh LIST of `api`,
/// then asserts it.
async fn assert_converged(api: &Api<ConfigMap>, reflectors: &[&Reflector], what: &str) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let listed = api.list(&ListParams::default()).await.expect("list");
        let server = snapshot(listed.items.iter());
        let stores: Vec<Snapshot> = reflectors
            .iter()
            .map(|r| snapshot(r.store.state().iter().map(|cm| cm.as_ref())))
            .collect();
        if stores.iter().all(|store| *store == server) {
            return;
        }
        if Instant::now() > deadline {
            for (i, (store, reflector)) in stores.iter().zip(reflectors).enumerate() {
                assert_eq!(
                    *store,
                    server,
                    "{what}: reflector {i} differs from a fresh LIST after {CONVERGE:?} \
                     (errors: {:?})",
                    reflector.errors()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One writer's share of the churn: `ops` creates, updates (merge patch or replace) and
/// deletes on its own four names, in a pseudo-random but reproducible order.
async fn churn(api: Api<ConfigMap>, writer: u64, round: u64, ops: u64) {
    let mut seed = writer * 7919 + round * 104_729 + 1;
    let mut live = BTreeSet::new();
    for name in api.list(&ListParams::default()).await.expect("list").items {
        live.insert(name.metadata.name.unwrap());
    }
    for i in 0..ops {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let name = format!("w{writer}-{}", (seed >> 33) % 4);
        let value = format!("{round}.{i}");
        if !live.contains(&name) {
            api.create(
                &PostParams::default(),
                &configmap(&name, &[], &[("v", &value)]),
            )
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
            live.insert(name);
        } else {
            match (seed >> 40) % 3 {
                0 => {
                    api.delete(&name, &DeleteParams::default())
                        .await
                        .unwrap_or_else(|e| panic!("delete {name}: {e}"));
                    live.remove(&name);
                }
                1 => {
                    api.patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"data": {"v": value}})),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("patch {name}: {e}"));
                }
                _ => {
                    let mut current = api.get(&name).await.expect("get");
                    current.data = Some(strings(&[("v", &value), ("replaced", "yes")]));
                    api.replace(&name, &PostParams::default(), &current)
                        .await
                        .unwrap_or_else(|e| panic!("replace {name}: {e}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Three writers in parallel, each on its own names (owned by `writer` ids `0..3`).
async fn churn_all(api: &Api<ConfigMap>, round: u64) {
    let writers: Vec<_> = (0..3)
        .map(|writer| tokio::spawn(churn(api.clone(), writer, round, 25)))
        .collect();
    for writer in writers {
        writer.await.expect("a writer panicked");
    }
}

/// Sum of `apiserver_request_total` for WATCH on configmaps: watches that have ended.
async fn finished_configmap_watches(server: &TestServer) -> u64 {
    let reply = server.get("/metrics").await;
    let text = reply
        .expect(200)
        .as_str()
        .expect("metrics are text")
        .to_string();
    text.lines()
        .filter(|line| {
            line.starts_with("apiserver_request_total{")
                && line.contains("verb=\"WATCH\"")
                && line.contains("resource=\"configmaps\"")
        })
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// Waits (bounded) until at least `more` further configmap watches have ended.
async fn wait_for_rewatches(server: &TestServer, since: u64, more: u64) -> u64 {
    let deadline = Instant::now() + REWATCH;
    loop {
        let now = finished_configmap_watches(server).await;
        if now >= since + more {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "only {} watches ended within {REWATCH:?} (timeoutSeconds=1)",
            now - since
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two reflectors (list-then-watch, and streaming lists) whose watches the server ends every
/// second (`timeoutSeconds=1`): writes happen in three rounds separated by watch restarts,
/// and both stores must equal a fresh LIST after each round.
async fn reflector_follows_writes_across_watch_timeouts(cluster: Cluster) {
    let client = cluster.client();
    let ns = namespace(&client, "kube-rs-reflector").await;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    for i in 0..3 {
        api.create(
            &PostParams::default(),
            &configmap(&format!("seed-{i}"), &[], &[("v", "0")]),
        )
        .await
        .expect("seed");
    }

    let listing = Reflector::start(api.clone(), watcher::Config::default().timeout(1)).await;
    let streaming = Reflector::start(
        api.clone(),
        watcher::Config::default().timeout(1).streaming_lists(),
    )
    .await;
    assert_converged(&api, &[&listing, &streaming], "after the initial list").await;

    let mut ended = finished_configmap_watches(&cluster.server).await;
    for round in 0..3 {
        churn_all(&api, round).await;
        // Both watches end and are started again from their last resourceVersion.
        ended = wait_for_rewatches(&cluster.server, ended, 2).await;
        assert_converged(&api, &[&listing, &streaming], &format!("round {round}")).await;
    }
    // Deleting everything converges too.
    api.delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete collection");
    assert_converged(&api, &[&listing, &streaming], "after deleting everything").await;
    assert!(listing.store.state().is_empty());

    // A timed-out watch is resumed, not relisted: one Init each, no errors.
    assert_eq!(listing.errors(), Vec::<String>::new());
    assert_eq!(streaming.errors(), Vec::<String>::new());
    assert_eq!(listing.inits(), 1, "the list-then-watch reflector relisted");
    assert_eq!(streaming.inits(), 1, "the streaming reflector relisted");
}

/// A TCP forwarder the watcher talks through, so the test can cut its connections and point
/// it at another server.
struct Proxy {
    base: String,
    upstream: Arc<Mutex<String>>,
    cut: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut.send_modify(|generation| *generation += 1);
    }
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let upstream = Arc::new(Mutex::new(address(upstream)));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let task = {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        return;
                    };
                    let target = upstream.lock().unwrap().clone();
                    let mut cuts = cuts.clone();
                    cuts.borrow_and_update();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cuts.changed() => {}
                        }
                    });
                }
            })
        };
        Proxy {
            base,
            upstream,
            cut,
            task,
        }
    }

    /// Drops every open connection; new ones go to `upstream`.
    fn cut_to(&self, upstream: &str) {
        *self.upstream.lock().unwrap() = address(upstream);
        self.cut.send_modify(|generation| *generation += 1);
    }
}

fn address(base: &str) -> String {
    base.strip_prefix("http://")
        .expect("an http:// URL")
        .to_string()
}

/// The watcher's connections are cut, writes happen while it is away, and it comes back to a
/// restarted kubecache (a new server over the same store, whose watch cache starts at the
/// current revision): its resourceVersion is older than the new cache → 410 Gone → it
/// relists. Both before and after, the store must equal a fresh LIST.
async fn reflector_relists_after_a_restart(cluster: Cluster) {
    let client = cluster.client();
    let ns = namespace(&client, "kube-rs-restart").await;
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    for i in 0..3 {
        api.create(
            &PostParams::default(),
            &configmap(&format!("seed-{i}"), &[], &[("v", "0")]),
        )
        .await
        .expect("seed");
    }
    let proxy = Proxy::start(&cluster.server.base).await;
    let watched: Api<ConfigMap> = Api::namespaced(client_for(&proxy.base), &ns);
    let reflector = Reflector::start(watched, watcher::Config::default()).await;
    churn_all(&api, 0).await;
    assert_converged(&api, &[&reflector], "before the restart").await;
    assert_eq!(reflector.inits(), 1);

    // Cut the watch; while it is away, objects change; then a new server takes over.
    proxy.cut_to("http://127.0.0.1:1");
    churn_all(&api, 1).await;
    let restarted = TestServer::start_with(cluster.server.backend.clone()).await;
    proxy.cut_to(&restarted.base);
    let api: Api<ConfigMap> = Api::namespaced(client_for(&restarted.base), &ns);
    churn_all(&api, 2).await;
    assert_converged(&api, &[&reflector], "after the restart").await;
    assert!(
        reflector.inits() >= 2,
        "the watcher should have relisted after 410 Gone (inits: {}, errors: {:?})",
        reflector.inits(),
        reflector.errors()
    );
    assert!(
        reflector
            .errors()
            .iter()
            .any(|e| e.starts_with("watch error 410 Expired")),
        "expected a 410 Gone among the watcher's errors: {:?}",
        reflector.errors()
    );
}

/// A custom kind from kube's derive: the CRD comes from `Gadget::crd()`.
#[derive(CustomResource, Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "kubecache.example.com",
    version = "v1",
    kind = "Gadget",
    namespaced,
    shortname = "gd",
    printcolumn = r#"{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}"#
)]
struct GadgetSpec {
    size: i32,
    color: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

fn gadget(name: &str, size: i32) -> Gadget {
    let mut gadget = Gadget::new(
        name,
        GadgetSpec {
            size,
            color: "red".to_string(),
            note: None,
        },
    );
    gadget.metadata.labels = Some(strings(&[("app", "gadgets")]));
    gadget
}

/// name → size, as a reflector store or a LIST holds them.
fn sizes<'a>(gadgets: impl Iterator<Item = &'a Gadget>) -> BTreeMap<String, i32> {
    gadgets.map(|g| (g.name_any(), g.spec.size)).collect()
}

async fn custom_resource_reflector(cluster: Cluster) {
    let client = cluster.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Gadget::crd();
    let name = crd.name_any();
    assert_eq!(name, "gadgets.kubecache.example.com");
    crds.patch(
        &name,
        &PatchParams::apply("kube-rs-test"),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply the generated CRD");
    let established = wait::await_condition(crds.clone(), &name, conditions::is_crd_established());
    tokio::time::timeout(CONVERGE, established)
        .await
        .unwrap_or_else(|_| panic!("{name} not Established within {CONVERGE:?}"))
        .expect("watch the CRD");

    let ns = namespace(&client, "gadgets").await;
    let api: Api<Gadget> = Api::namespaced(client.clone(), &ns);
    let (store, writer) = reflector::store();
    let task = tokio::spawn(
        reflector::reflector(writer, watcher(api.clone(), watcher::Config::default()))
            .applied_objects()
            .for_each(|_| async {}),
    );
    tokio::time::timeout(CONVERGE, store.wait_until_ready())
        .await
        .expect("the reflector listed in time")
        .expect("the writer is alive");
    assert!(store.state().is_empty());

    for (name, size) in [("a", 1), ("b", 2), ("c", 3)] {
        let created = api
            .create(&PostParams::default(), &gadget(name, size))
            .await
            .expect("create a gadget");
        assert_eq!(created.spec, gadget(name, size).spec);
        assert_eq!(created.metadata.generation, Some(1));
    }
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 20, "note": "bigger"}})),
    )
    .await
    .expect("merge patch a gadget");
    api.delete("c", &DeleteParams::default())
        .await
        .expect("delete a gadget");

    let expected = BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 20)]);
    let deadline = Instant::now() + CONVERGE;
    loop {
        let seen = sizes(store.state().iter().map(|g| g.as_ref()));
        if seen == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reflector saw {seen:?}, not {expected:?}, within {CONVERGE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = store
        .get(&reflector::ObjectRef::new("b").within(&ns))
        .expect("b in the store");
    assert_eq!(b.spec.note.as_deref(), Some("bigger"));
    assert_eq!(b.metadata.generation, Some(2));
    let listed = api
        .list(&ListParams::default().labels("app=gadgets"))
        .await
        .expect("list");
    assert_eq!(sizes(listed.items.iter()), expected);

    // The schema kube-derive generated is enforced: `size` is an int32.
    let dynamic: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &kube::discovery::ApiResource::erase::<Gadget>(&()),
    );
    let wrong: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kubecache.example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "wrong"},
        "spec": {"size": "big", "color": "blue"},
    }))
    .expect("a dynamic object");
    let status = api_error(
        dynamic.create(&PostParams::default(), &wrong).await,
        422,
        "Invalid",
    );
    assert!(
        status
            .message
            .contains("spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\""),
        "{status:?}"
    );
    task.abort();
}

/// A Pod and a Job a real kube-apiserver wrote into etcd (protobuf, under their keys) read by
/// kube-rs into k8s-openapi's types, and a change to the Pod seen by the runtime watcher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_kube_apiserver_wrote() {
    use k8s_openapi::api::batch::v1::Job;
    use kubecache_core::storage::Backend;
    use kubecache_store::storage_format::{FormattedBackend, StorageFormat};

    let etcd = TestEtcd::start();
    let raw: Arc<dyn Backend> = Arc::new(
        EtcdBackend::connect(&[etcd.endpoint()], EtcdOptions::default())
            .await
            .expect("connect to etcd"),
    );
    for (key, file) in [
        ("/registry/pods/default/pi-dqtsw", "pod.bin"),
        ("/registry/jobs/default/pi", "job.bin"),
    ] {
        let value = kubecache_apiextensions::fixtures::kube_storage(file);
        raw.create(key, bytes::Bytes::from(value))
            .await
            .expect("put");
    }
    let backend = FormattedBackend::new(raw, "/registry", StorageFormat::default());
    let server = TestServer::start_with(Arc::new(backend)).await;
    let client = client_for(&server.base);

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods.get("pi-dqtsw").await.expect("get the pod");
    assert_eq!(
        pod.uid().as_deref(),
        Some("a4adc7ca-5b56-11e7-8d4b-42010a800002")
    );
    let spec = pod.spec.as_ref().expect("a spec");
    assert_eq!(
        spec.node_name.as_deref(),
        Some("kubernetes-minion-group-vlql")
    );
    assert_eq!(spec.containers[0].image.as_deref(), Some("perl"));
    let status = pod.status.as_ref().expect("a status");
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let job = jobs.get("pi").await.expect("get the job");
    assert_eq!(job.status.and_then(|s| s.succeeded), Some(1));

    let mut events = watcher(pods.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(CONVERGE, events.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "{first:?}");
    pods.patch(
        "pi-dqtsw",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"touched": "kube-rs"}}})),
    )
    .await
    .expect("patch the pod");
    let deadline = Instant::now() + CONVERGE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, events.next())
            .await
            .expect("the change is watched")
            .expect("the watch goes on")
            .expect("no watch error");
        if event.labels().get("touched").map(String::as_str) == Some("kube-rs") {
            break;
        }
    }
}

/// Runs each test body on the embedded store and on a real etcd.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Cluster::embedded().await).await;
                }
            )*
        }
        mod etcd_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Cluster::etcd().await).await;
                }
            )*
        }
    };
}

on_both_stores!(
    configmap_crud,
    pod_crud,
    deployment_crud,
    reflector_follows_writes_across_watch_timeouts,
    reflector_relists_after_a_restart,
    custom_resource_reflector,
    builtin_kinds_crud,
    hpa_v1_and_v2,
    pod_binding_and_eviction,
    service_account_token_request,
);
