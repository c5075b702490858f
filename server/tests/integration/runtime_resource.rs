//! A resource added and removed while the server serves (issue 17, the run-time registry):
//! a test strategy (`example.com/v1 widgets`, namespaced, with a status subresource, objects
//! kept as sent, no OpenAPI kind of its own) is added with `Api::add_resource`, served to
//! kubectl and to the official Python client (CRUD, LIST, WATCH), seen in discovery and
//! OpenAPI, and removed with `Api::remove_resource`: its open watch ends plainly (no ERROR
//! frame), its requests get 404, discovery, OpenAPI and the watch cache forget it.
//!
//! Meanwhile a writer creates pods without pause, from before the add until after the
//! remove, and a pod watch opened before the add must receive exactly those writes (every
//! resourceVersion, in order) and stay open throughout: the change of the registry and the
//! cache map is invisible to the watches of other resources.
//!
//! kubectl runs against the in-process server with its own discovery cache, populated
//! before the add, so it also shows that kubectl finds a resource that appeared after it
//! cached discovery (and forgets one that went away).

use crate::support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::schemars::SchemaGenerator;
use kubecache_apimachinery::openapi::schemas::Kind;
use kubecache_apimachinery::strategy::{Strategy, TypedForm};
use kubecache_core::registry::{NAMESPACED, ResourceInfo};
use kubecache_server::api::Api;
use kubecache_server::server::ReadConfig;
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use kubecache_storage::testing::TestEtcd;
use reqwest::header::ACCEPT;
use serde_json::{Value, json};
use support::binary::{KUBECTL_TIMEOUT, kubectl_binary, run_bounded};
use support::server::{EVENT_TIMEOUT, Next, TestServer, WatchStream};

const NS: &str = "runtime";
const WIDGETS: &str = "/apis/example.com/v1/namespaces/runtime/widgets";
/// Where the widgets are stored (kube's layout for a custom resource: group/plural).
const WIDGETS_PREFIX: &str = "/registry/example.com/widgets/";
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// How long a Python script may run.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(60);

/// The test strategy: a resource no built-in has, with every default of [`Strategy`] and
/// no typed form (objects kept as sent), as a custom resource without a schema.
struct Widgets;

impl Strategy for Widgets {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "example.com",
            "v1",
            "widgets",
            "widget",
            "Widget",
            NAMESPACED,
        )
        .short(&["wd"])
        .categories(&["fixtures"])
        .status()
        .stored_at("example.com/widgets")
    }
    fn round_trip(&self, object: &Value) -> Result<Value, serde_json::Error> {
        Ok(object.clone())
    }
    fn openapi_kind(&self, _: &mut SchemaGenerator) -> Option<Kind> {
        None
    }
    fn typed_form(&self) -> TypedForm {
        TypedForm::FreeForm
    }
    fn tracks_generation(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_added_and_removed_while_serving_embedded() {
    let (server, api) = start(Arc::new(EmbeddedBackend::in_memory())).await;
    scenario(&server, &api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_added_and_removed_while_serving_etcd() {
    let etcd = TestEtcd::start();
    let backend = EtcdBackend::connect(&[etcd.endpoint()], EtcdOptions::default())
        .await
        .expect("connect to etcd");
    let (server, api) = start(Arc::new(backend)).await;
    scenario(&server, &api).await;
}

/// A server reading through the watch cache, and its API (to add and remove resources).
async fn start(backend: Arc<dyn kubecache_core::storage::Backend>) -> (TestServer, Arc<Api>) {
    let mut handle = None;
    let server = TestServer::start_configured(backend, ReadConfig::default(), |api| {
        handle = Some(api.clone())
    })
    .await;
    (server, handle.expect("configure ran"))
}

async fn scenario(server: &TestServer, api: &Arc<Api>) {
    server.create_namespace(NS).await;
    let kubectl = Kubectl::new(&server.base);

    // Before: kubectl caches discovery without widgets; nothing serves them.
    let resources = kubectl.ok(&["api-resources"]).await;
    assert!(!resources.contains("example.com"), "{resources}");
    server.get(WIDGETS).await.expect_status(404, "NotFound");

    // A pod watch from a known revision, read without pause by a task of its own, and a
    // writer of pods that runs from here until after the remove.
    let list = server.get(&format!("/api/v1/namespaces/{NS}/pods")).await;
    let from = list.expect(200)["metadata"]["resourceVersion"]
        .as_str()
        .expect("a list revision")
        .to_string();
    let pod_watch = server
        .watch(
            &format!("/api/v1/namespaces/{NS}/pods"),
            &[("watch", "1"), ("resourceVersion", &from)],
        )
        .await;
    let reader = tokio::spawn(read_pods_until(pod_watch, "last"));
    let writer = PodWriter::start(server);
    writer.wait_for_writes(3).await;

    // Add.
    let added = api
        .add_resource(Arc::new(Widgets))
        .expect("widgets are added");
    assert_eq!(added.kind, "Widget");
    writer.wait_for_writes(writer.written() + 3).await;

    // Discovery, legacy and aggregated.
    let groups = server.get("/apis").await;
    let group = groups.expect(200)["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "example.com")
        .unwrap_or_else(|| panic!("/apis lacks example.com: {:#}", groups.body))
        .clone();
    assert_eq!(group["preferredVersion"]["groupVersion"], "example.com/v1");
    let list = server.get("/apis/example.com/v1").await;
    let list = list.expect(200);
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["widgets", "widgets/status"], "{list:#}");
    let widgets = &list["resources"][0];
    assert_eq!(widgets["kind"], "Widget");
    assert_eq!(widgets["namespaced"], true);
    assert_eq!(widgets["shortNames"], json!(["wd"]));
    assert_eq!(widgets["categories"], json!(["fixtures"]));
    assert_eq!(widgets["verbs"].as_array().unwrap().len(), 8, "{widgets:#}");
    let aggregated = aggregated_groups(server).await;
    let entry = aggregated
        .iter()
        .find(|g| g["metadata"]["name"] == "example.com")
        .unwrap_or_else(|| panic!("aggregated discovery lacks example.com: {aggregated:#?}"));
    assert_eq!(entry["versions"][0]["version"], "v1");
    assert_eq!(entry["versions"][0]["resources"][0]["resource"], "widgets");
    assert_eq!(
        entry["versions"][0]["resources"][0]["subresources"][0]["subresource"],
        "status"
    );

    // OpenAPI v3: the group-version document, its paths and a free-form schema.
    let index = server.get("/openapi/v3").await;
    let url = index.expect(200)["paths"]["apis/example.com/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap_or_else(|| panic!("/openapi/v3 lacks apis/example.com/v1: {:#}", index.body))
        .to_string();
    let document = server.get(&url).await;
    let document = document.expect(200);
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/apis/example.com/v1/namespaces/{namespace}/widgets",
        "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}",
        "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/status",
        "/apis/example.com/v1/widgets",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing: {:?}",
            paths.keys()
        );
    }
    let item = &paths["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"];
    assert_eq!(
        item["get"]["x-kubernetes-group-version-kind"],
        json!({"group": "example.com", "kind": "Widget", "version": "v1"})
    );
    // Like a custom resource's: no strategic merge patch (kubectl would send one).
    let patch_types = item["patch"]["requestBody"]["content"].as_object().unwrap();
    assert!(
        !patch_types.contains_key("application/strategic-merge-patch+json"),
        "{patch_types:?}"
    );
    assert!(patch_types.contains_key("application/merge-patch+json"));
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let widget = &schemas["com.example.v1.Widget"];
    assert_eq!(widget["type"], "object", "{widget:#}");
    assert_eq!(widget["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(
        widget["x-kubernetes-group-version-kind"],
        json!([{"group": "example.com", "kind": "Widget", "version": "v1"}])
    );
    assert!(schemas.contains_key("com.example.v1.WidgetList"));
    // Every reference of the document resolves inside it.
    for target in references(document) {
        let name = target.trim_start_matches("#/components/schemas/");
        assert!(schemas.contains_key(name), "dangling {target}");
    }
    // OpenAPI v2, as kube publishes a custom resource whose schema keeps unknown fields.
    let v2 = server.get("/openapi/v2").await;
    let v2_widget = &v2.expect(200)["definitions"]["com.example.v1.Widget"];
    assert_eq!(v2_widget["type"], "object", "{v2_widget:#}");
    assert!(v2_widget.get("properties").is_none(), "{v2_widget:#}");

    // A widget watch, open until the remove.
    let widgets_list = server.get(WIDGETS).await;
    assert_eq!(widgets_list.expect(200)["kind"], "WidgetList");
    let widgets_from = widgets_list.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut widget_watch = server
        .watch(
            WIDGETS,
            &[("watch", "1"), ("resourceVersion", &widgets_from)],
        )
        .await;

    // kubectl: discovery found again, then apply, get, apply a change, delete.
    let resources = kubectl
        .ok(&["api-resources", "--api-group=example.com"])
        .await;
    let line = resources
        .lines()
        .find(|l| l.starts_with("widgets"))
        .unwrap_or_else(|| panic!("api-resources lacks widgets:\n{resources}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        columns,
        ["widgets", "wd", "example.com/v1", "true", "Widget"],
        "{resources}"
    );
    let manifest = kubectl.manifest("w.yaml", &widget_yaml(3));
    let applied = kubectl.ok(&["apply", "-f", &manifest]).await;
    assert!(
        applied.contains("widget.example.com/w created"),
        "{applied}"
    );
    let table = kubectl.ok(&["get", "widgets", "-n", NS]).await;
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].starts_with("NAME") && rows[0].contains("AGE"),
        "{table}"
    );
    assert!(rows[1].starts_with("w "), "{table}");
    let got: Value = parse(
        &kubectl
            .ok(&["get", "widget", "w", "-n", NS, "-o", "json"])
            .await,
    );
    assert_eq!(got["apiVersion"], "example.com/v1");
    assert_eq!(got["kind"], "Widget");
    assert_eq!(got["spec"], json!({"size": 3, "color": "blue"}));
    let applied = kubectl
        .ok(&["apply", "-f", &kubectl.manifest("w.yaml", &widget_yaml(5))])
        .await;
    assert!(
        applied.contains("widget.example.com/w configured"),
        "{applied}"
    );
    let got: Value = parse(
        &kubectl
            .ok(&["get", "wd", "w", "-n", NS, "-o", "json"])
            .await,
    );
    assert_eq!(got["spec"], json!({"size": 5, "color": "blue"}));
    let deleted = kubectl.ok(&["delete", "widget", "w", "-n", NS]).await;
    assert!(
        deleted.contains("widget.example.com \"w\" deleted"),
        "{deleted}"
    );
    widget_watch.expect_event("ADDED", "w").await;
    let modified = widget_watch.expect_event("MODIFIED", "w").await;
    assert_eq!(modified["object"]["spec"]["size"], 5);
    widget_watch.expect_event("DELETED", "w").await;

    // The Python client: create, list, get, patch (object and status), watch, delete.
    let py = python(&server.base, PYTHON_CLIENT).await;
    assert_eq!(
        py["events"],
        json!([
            ["ADDED", "py", 1],
            ["MODIFIED", "py", 2],
            ["MODIFIED", "py", 2],
            ["DELETED", "py", 2]
        ]),
        "{py:#}"
    );
    assert_eq!(py["listed"], json!(["py"]));
    assert_eq!(py["status"], json!({"ready": true}));
    widget_watch.expect_event("ADDED", "py").await;
    widget_watch.expect_event("MODIFIED", "py").await;
    let status = widget_watch.expect_event("MODIFIED", "py").await;
    assert_eq!(status["object"]["status"], json!({"ready": true}));
    widget_watch.expect_event("DELETED", "py").await;
    // One more widget stays until the remove (its cache holds something).
    server
        .post(WIDGETS, &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "stays"}, "spec": {}}))
        .await
        .expect(201);
    widget_watch.expect_event("ADDED", "stays").await;
    // A client that asks for protobuf first gets JSON: the kind has no protobuf form.
    let (content_type, body) =
        first_chunk(server, &format!("{WIDGETS}/stays"), PROTOBUF_FIRST).await;
    assert_eq!(content_type, "application/json");
    assert_eq!(parse(&body)["metadata"]["name"], "stays");
    let (content_type, body) = first_chunk(
        server,
        &format!("{WIDGETS}?watch=1&resourceVersion=0&timeoutSeconds=5"),
        PROTOBUF_FIRST,
    )
    .await;
    assert_eq!(content_type, "application/json");
    let event = parse(body.lines().next().unwrap_or(""));
    assert_eq!(
        (&event["type"], &event["object"]["metadata"]["name"]),
        (&json!("ADDED"), &json!("stays")),
        "{event:#}"
    );
    let cached = api.reads.metrics();
    assert!(
        cached.iter().any(|s| s.prefix == WIDGETS_PREFIX),
        "no cache for widgets: {:?}",
        cached.iter().map(|s| &s.prefix).collect::<Vec<_>>()
    );

    assert!(
        cache_metrics(server)
            .await
            .iter()
            .any(|l| l.contains("widgets")),
        "no cache metrics for widgets"
    );

    // Remove.
    let removed = api
        .remove_resource("example.com", "v1", "widgets")
        .await
        .expect("widgets were served");
    assert!(Arc::ptr_eq(&removed, &added));
    // Its watch ends plainly: no ERROR frame, nothing else.
    match widget_watch.next_within(EVENT_TIMEOUT).await {
        Next::End => {}
        other => panic!("the widget watch should end after the remove, got {other:?}"),
    }
    // Its requests are 404; discovery, OpenAPI and the cache forget it.
    server.get(WIDGETS).await.expect_status(404, "NotFound");
    server
        .get(&format!("{WIDGETS}/stays"))
        .await
        .expect_status(404, "NotFound");
    server.get("/apis/example.com/v1").await.expect(404);
    let groups = server.get("/apis").await;
    assert!(
        !groups.expect(200)["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "example.com"),
        "{:#}",
        groups.body
    );
    assert!(
        !aggregated_groups(server)
            .await
            .iter()
            .any(|g| g["metadata"]["name"] == "example.com")
    );
    let index = server.get("/openapi/v3").await;
    assert!(
        index.expect(200)["paths"]
            .get("apis/example.com/v1")
            .is_none()
    );
    server.get(&url).await.expect(404);
    let v2 = server.get("/openapi/v2").await;
    assert!(
        v2.expect(200)["definitions"]
            .get("com.example.v1.Widget")
            .is_none()
    );
    let cached = api.reads.metrics();
    assert!(
        !cached.iter().any(|s| s.prefix == WIDGETS_PREFIX),
        "the widgets' cache is still there"
    );
    assert!(cached.iter().any(|s| s.prefix == "/registry/pods/"));
    let cache_lines = cache_metrics(server).await;
    assert!(
        cache_lines.iter().any(|l| l.contains("resource=\"pods\"")),
        "no pod cache metrics: {cache_lines:#?}"
    );
    assert!(
        !cache_lines.iter().any(|l| l.contains("widgets")),
        "{cache_lines:#?}"
    );
    // kubectl's discovery cache still names widgets; the server says they are gone.
    let output = kubectl.run(&["get", "widgets", "-n", NS]).await;
    assert!(
        !output.status.success(),
        "kubectl get widgets after the remove"
    );

    // After: more pods, then the end of the writer and the last pod.
    writer.wait_for_writes(writer.written() + 3).await;
    let written = writer.stop().await;
    let last = server
        .post(&format!("/api/v1/namespaces/{NS}/pods"), &pod("last"))
        .await;
    let last_rv = revision(last.expect(201));
    let seen = reader.await.expect("the pod watch reader");
    let mut expected: Vec<(String, i64)> = written;
    expected.push(("last".to_string(), last_rv));
    assert!(
        expected.len() > 10,
        "too few pod writes: {}",
        expected.len()
    );
    assert_eq!(
        seen, expected,
        "the pod watch missed, reordered or invented events"
    );
}

/// One event per pod written: `(name, resourceVersion)` of each ADDED, in order, until the
/// pod named `last`; panics on any other event, on an ERROR, on the end of the stream.
async fn read_pods_until(mut watch: WatchStream, last: &'static str) -> Vec<(String, i64)> {
    let mut seen = Vec::new();
    loop {
        let event = match watch.next_within(EVENT_TIMEOUT).await {
            Next::Event(event) => event,
            other => panic!(
                "the pod watch ended or stalled after {} events: {other:?}",
                seen.len()
            ),
        };
        assert_eq!(event["type"], "ADDED", "{event:#}");
        let name = event["object"]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        seen.push((name.clone(), revision(&event["object"])));
        if name == last {
            return seen;
        }
    }
}

/// Creates pods one after another in a task of its own, recording each one's name and
/// resourceVersion, until stopped.
struct PodWriter {
    stop: Arc<AtomicBool>,
    written: Arc<parking_lot::Mutex<Vec<(String, i64)>>>,
    notify: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl PodWriter {
    fn start(server: &TestServer) -> PodWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let written: Arc<parking_lot::Mutex<Vec<(String, i64)>>> = Default::default();
        let notify = Arc::new(tokio::sync::Notify::new());
        let client = server.client.clone();
        let url = server.url(&format!("/api/v1/namespaces/{NS}/pods"));
        let task = {
            let (stop, written, notify) = (stop.clone(), written.clone(), notify.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let name = format!("p{n}");
                    let response = client
                        .post(&url)
                        .json(&pod(&name))
                        .timeout(Duration::from_secs(15))
                        .send()
                        .await
                        .expect("create a pod");
                    assert_eq!(response.status().as_u16(), 201, "create pod {name}");
                    let body: Value = response.json().await.expect("a pod");
                    written.lock().push((name, revision(&body)));
                    notify.notify_waiters();
                    n += 1;
                }
            })
        };
        PodWriter {
            stop,
            written,
            notify,
            task,
        }
    }

    fn written(&self) -> usize {
        self.written.lock().len()
    }

    /// Waits (bounded) until at least `count` pods were written.
    async fn wait_for_writes(&self, count: usize) {
        tokio::time::timeout(EVENT_TIMEOUT, async {
            loop {
                let notified = self.notify.notified();
                if self.written() >= count {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{count} pods not written in time"));
    }

    /// Stops the writer; every pod it wrote.
    async fn stop(self) -> Vec<(String, i64)> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the pod writer");
        std::mem::take(&mut *self.written.lock())
    }
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    })
}

fn revision(object: &Value) -> i64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion: {object:#}"))
}

fn widget_yaml(size: u32) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: {NS}\nspec:\n  size: {size}\n  color: blue\n"
    )
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The watch cache's lines of `/metrics`.
async fn cache_metrics(server: &TestServer) -> Vec<String> {
    let metrics = server.get("/metrics").await;
    let text = metrics.expect(200).as_str().unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("kubecache_watch_cache"))
        .map(str::to_string)
        .collect()
}

/// What kubectl and client-go send for built-in types: protobuf first, JSON as well.
const PROTOBUF_FIRST: &str = "application/vnd.kubernetes.protobuf, application/json";

/// GET `path` with `Accept: accept`: 200, its Content-Type and its first chunk of body.
async fn first_chunk(server: &TestServer, path: &str, accept: &str) -> (String, String) {
    let mut response = server
        .client
        .get(server.url(path))
        .header(ACCEPT, accept)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("a response");
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    let chunk = response.chunk().await.expect("a body").unwrap_or_default();
    (content_type, String::from_utf8_lossy(&chunk).into_owned())
}

/// The aggregated discovery groups of `/apis`.
async fn aggregated_groups(server: &TestServer) -> Vec<Value> {
    let response = server
        .client
        .get(server.url("/apis"))
        .header(ACCEPT, AGGREGATED)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("aggregated discovery");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["kind"], "APIGroupDiscoveryList", "{body:#}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Every `$ref` target in `value`.
fn references(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(object) => {
                for (key, value) in object {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(target)) => out.push(target.clone()),
                        _ => pending.push(value),
                    }
                }
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    out
}

/// kubectl against the in-process server, with a kubeconfig and a discovery cache of its
/// own; each run is bounded and off the runtime's threads.
struct Kubectl {
    dir: tempfile::TempDir,
}

impl Kubectl {
    fn new(base: &str) -> Kubectl {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {base}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: u\n\
             current-context: t\n"
        );
        std::fs::write(dir.path().join("kubeconfig"), config).expect("write the kubeconfig");
        Kubectl { dir }
    }

    fn manifest(&self, name: &str, contents: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write a manifest");
        path.to_string_lossy().into_owned()
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(kubectl_binary());
        command
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .stdin(std::process::Stdio::null());
        tokio::task::spawn_blocking(move || run_bounded(command, KUBECTL_TIMEOUT))
            .await
            .expect("kubectl ran")
    }

    /// Runs kubectl and panics unless it succeeds; its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("kubectl stdout is UTF-8")
    }
}

/// Runs `script` with python3 (the official `kubernetes` client), the server's URL in
/// `$SERVER`; its stdout's last line is JSON. A failure of the script fails the test.
async fn python(base: &str, script: &'static str) -> Value {
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(script)
        .env("SERVER", base)
        .env("NAMESPACE", NS)
        .stdin(std::process::Stdio::null());
    let output = tokio::task::spawn_blocking(move || run_bounded(command, PYTHON_TIMEOUT))
        .await
        .expect("python ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Python client failed ({}):\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse(stdout.lines().last().unwrap_or(""))
}

/// CustomObjectsApi: list (for a revision), create, get, patch the object and its status,
/// delete; then a watch from the list's revision sees all four writes.
const PYTHON_CLIENT: &str = r#"
import json, os
from kubernetes import client, watch

configuration = client.Configuration()
configuration.host = os.environ["SERVER"]
api = client.CustomObjectsApi(client.ApiClient(configuration))
ns = os.environ["NAMESPACE"]
g, v, plural = "example.com", "v1", "widgets"

start = api.list_namespaced_custom_object(g, v, ns, plural)["metadata"]["resourceVersion"]
created = api.create_namespaced_custom_object(g, v, ns, plural, {
    "apiVersion": "example.com/v1", "kind": "Widget",
    "metadata": {"name": "py"}, "spec": {"size": 1},
})
assert created["metadata"]["generation"] == 1, created
got = api.get_namespaced_custom_object(g, v, ns, plural, "py")
assert got["spec"] == {"size": 1}, got
listed = [o["metadata"]["name"] for o in api.list_namespaced_custom_object(g, v, ns, plural)["items"]]
patched = api.patch_namespaced_custom_object(g, v, ns, plural, "py", {"spec": {"size": 2}})
assert patched["spec"] == {"size": 2}, patched
status = api.patch_namespaced_custom_object_status(g, v, ns, plural, "py", {"status": {"ready": True}})
assert status["status"] == {"ready": True}, status
assert status["spec"] == {"size": 2}, status
api.delete_namespaced_custom_object(g, v, ns, plural, "py")

events = []
w = watch.Watch()
for event in w.stream(api.list_namespaced_custom_object, g, v, ns, plural,
                      resource_version=start, timeout_seconds=30):
    obj = event["object"]
    events.append([event["type"], obj["metadata"]["name"], obj["metadata"].get("generation")])
    if event["type"] == "DELETED":
        w.stop()
print(json.dumps({"events": events, "listed": listed, "status": status["status"]}))
"#;
