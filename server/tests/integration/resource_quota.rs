//! ResourceQuota end to end: the controller computes `status` of a new quota, admission
//! charges and refuses with kube's messages (nothing written, nothing charged), never over
//! the limit under 50 parallel creates (one server, and two servers on one etcd), deletes give
//! usage back, compute resources, scopes, updates charging their delta, object counts of a
//! custom resource, and kubectl's `create quota` / `describe`.

use std::time::Duration;

use futures::future::join_all;
use kubecache_storage::testing::TestEtcd;
use serde_json::{Value, json};

use crate::support::binary::{Kubecache, Storage};
use crate::support::server::{MERGE_PATCH, TEST_CONTROLLERS, TestServer};

const WAIT: Duration = Duration::from_secs(20);

fn pods(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/pods")
}

fn quota_path(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/resourcequotas/{name}")
}

fn pod(name: &str, resources: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx", "resources": resources}]},
    })
}

fn quota(name: &str, hard: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": {"hard": hard}})
}

/// Creates the quota and waits until the controller has computed its status.
async fn create_quota(server: &TestServer, namespace: &str, quota: Value) -> Value {
    let name = quota["metadata"]["name"].as_str().unwrap().to_string();
    server
        .post(
            &format!("/api/v1/namespaces/{namespace}/resourcequotas"),
            &quota,
        )
        .await
        .expect(201);
    wait_used(server, namespace, &name, |status| {
        status["hard"] == quota["spec"]["hard"] && status["used"].is_object()
    })
    .await
}

/// Polls the quota until `done(status)`; fails with the last status after [`WAIT`].
async fn wait_used(
    server: &TestServer,
    namespace: &str,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_status(server, &quota_path(namespace, name), done).await
}

/// Polls the quota at `path` until `done(status)`; fails with the last status after [`WAIT`].
async fn wait_status(server: &TestServer, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = server.get(path).await;
        let status = reply.expect(200)["status"].clone();
        if done(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "quota {path} never reached the expected status: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the resourcequota controller has computed the status of the quota at `path`
/// (for tests that compare a quota before and after).
pub(crate) async fn wait_computed(server: &TestServer, path: &str) {
    wait_status(server, path, |status| status["used"].is_object()).await;
}

async fn dry_run_create(server: &TestServer, namespace: &str, name: &str) -> u16 {
    let url = server.url_with(&pods(namespace), &[("dryRun", "All")]);
    let body = pod(name, json!({})).to_string().into_bytes();
    server
        .send(
            reqwest::Method::POST,
            &url,
            Some("application/json"),
            Some(body),
        )
        .await
        .status
}

async fn used(server: &TestServer, namespace: &str, name: &str) -> Value {
    server.get(&quota_path(namespace, name)).await.expect(200)["status"]["used"].clone()
}

async fn charges_refuses_and_gives_back(server: &TestServer) {
    server.create_namespace("team").await;
    let status = create_quota(
        server,
        "team",
        quota("q", json!({"pods": "2", "count/configmaps": "5"})),
    )
    .await;
    assert_eq!(
        status["used"],
        json!({"count/configmaps": "0", "pods": "0"})
    );
    server
        .post(&pods("team"), &pod("a", json!({})))
        .await
        .expect(201);
    // A dry run is checked, and charges nothing.
    assert_eq!(dry_run_create(server, "team", "b").await, 201);
    assert_eq!(used(server, "team", "q").await["pods"], "1");
    server
        .post(&pods("team"), &pod("b", json!({})))
        .await
        .expect(201);
    assert_eq!(used(server, "team", "q").await["pods"], "2");
    assert_eq!(dry_run_create(server, "team", "c").await, 403);
    let refused = server.post(&pods("team"), &pod("c", json!({}))).await;
    let body = refused.expect_status(403, "Forbidden");
    assert_eq!(
        body["message"],
        "pods \"c\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );
    assert_eq!(body["details"]["kind"], "pods");
    assert_eq!(body["details"]["name"], "c");
    server.get(&format!("{}/c", pods("team"))).await.expect(404);
    assert_eq!(used(server, "team", "q").await["pods"], "2");
    // A write refused after the charge (the name exists) gives the charge back.
    server
        .post(
            "/api/v1/namespaces/team/configmaps",
            &json!({"metadata": {"name": "cm"}}),
        )
        .await
        .expect(201);
    server
        .post(
            "/api/v1/namespaces/team/configmaps",
            &json!({"metadata": {"name": "cm"}}),
        )
        .await
        .expect_status(409, "AlreadyExists");
    wait_used(server, "team", "q", |s| {
        s["used"]["count/configmaps"] == "1"
    })
    .await;
    // A delete gives usage back through the controller.
    server
        .delete(&format!("{}/a", pods("team")))
        .await
        .expect(200);
    wait_used(server, "team", "q", |s| s["used"]["pods"] == "1").await;
    server
        .post(&pods("team"), &pod("c", json!({})))
        .await
        .expect(201);
    // A spec change is reflected in status.hard, and usage recounted.
    server
        .patch(
            &quota_path("team", "q"),
            MERGE_PATCH,
            &json!({"spec": {"hard": {"pods": "3", "secrets": "4"}}}),
        )
        .await
        .expect(200);
    let status = wait_used(server, "team", "q", |s| {
        s["hard"]["pods"] == "3" && s["used"]["secrets"].is_string()
    })
    .await;
    assert_eq!(status["used"]["pods"], "2");
    assert_eq!(status["used"]["secrets"], "0");
}

on_both_stores!(
    charges_refuses_and_gives_back_embedded,
    charges_refuses_and_gives_back_etcd,
    charges_refuses_and_gives_back
);

/// 50 creates at once, spread over `servers`: exactly 10 pass a quota of 10 pods.
async fn fifty_parallel_creates(servers: &[&TestServer], namespace: &str, prefix: &str) -> usize {
    let creates = (0..50).map(|i| {
        let server = servers[i % servers.len()];
        let body = pod(&format!("{prefix}-{i}"), json!({}));
        async move { server.post(&pods(namespace), &body).await }
    });
    let replies = join_all(creates).await;
    for reply in &replies {
        assert!(
            reply.status == 201 || reply.status == 403,
            "{}: {}",
            reply.status,
            reply.body
        );
        if reply.status == 403 {
            assert!(
                reply
                    .message()
                    .contains("exceeded quota: q, requested: pods=1"),
                "{}",
                reply.message()
            );
        }
    }
    replies.iter().filter(|r| r.status == 201).count()
}

async fn count_pods(server: &TestServer, namespace: &str) -> usize {
    server.get(&pods(namespace)).await.expect(200)["items"]
        .as_array()
        .unwrap()
        .len()
}

async fn never_over_the_limit(servers: &[&TestServer]) {
    let first = servers[0];
    first.create_namespace("burst").await;
    create_quota(first, "burst", quota("q", json!({"pods": "10"}))).await;
    assert_eq!(fifty_parallel_creates(servers, "burst", "p").await, 10);
    assert_eq!(used(first, "burst", "q").await["pods"], "10");
    assert_eq!(count_pods(first, "burst").await, 10);
    for i in 0..3 {
        let name = first.get(&pods("burst")).await.expect(200)["items"][i]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        servers[i % servers.len()]
            .delete(&format!("{}/{name}", pods("burst")))
            .await
            .expect(200);
    }
    wait_used(first, "burst", "q", |s| s["used"]["pods"] == "7").await;
    assert_eq!(fifty_parallel_creates(servers, "burst", "r").await, 3);
    assert_eq!(used(first, "burst", "q").await["pods"], "10");
    assert_eq!(count_pods(first, "burst").await, 10);
}

async fn never_over_the_limit_on_one(server: &TestServer) {
    never_over_the_limit(&[server]).await;
}

on_both_stores!(
    fifty_parallel_creates_never_exceed_a_quota_embedded,
    fifty_parallel_creates_never_exceed_a_quota_etcd,
    never_over_the_limit_on_one
);

#[tokio::test]
async fn fifty_parallel_creates_on_two_servers_sharing_etcd_never_exceed_a_quota() {
    let etcd = TestEtcd::start();
    let one = TestServer::start_on_etcd(&etcd).await;
    let two = TestServer::start_on_etcd(&etcd).await;
    never_over_the_limit(&[&one, &two]).await;
}

/// Two `kubecache` processes on one etcd, 25 creates against each at once.
#[test]
fn fifty_parallel_creates_on_two_processes_sharing_etcd_never_exceed_a_quota() {
    let etcd = TestEtcd::start();
    let one = Kubecache::start_with(Storage::Etcd(etcd.endpoint()));
    let two = Kubecache::start_with(Storage::Etcd(etcd.endpoint()));
    one.kubectl_ok(&["create", "namespace", "burst"]);
    one.kubectl_ok(&["create", "quota", "q", "--hard=pods=10", "-n", "burst"]);
    let deadline = std::time::Instant::now() + WAIT;
    while one.get_json("/api/v1/namespaces/burst/resourcequotas/q").1["status"]["used"]["pods"]
        != "0"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the quota's status was never computed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let created: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let server = if i % 2 == 0 { &one } else { &two };
                scope.spawn(move || {
                    let body = pod(&format!("p-{i}"), json!({})).to_string();
                    let (status, _) = server.http(
                        "POST",
                        "/api/v1/namespaces/burst/pods",
                        Some("application/json"),
                        Some(body.as_bytes()),
                    );
                    assert!(status == 201 || status == 403, "{status}");
                    usize::from(status == 201)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(created, 10);
    let (_, quota) = two.get_json("/api/v1/namespaces/burst/resourcequotas/q");
    assert_eq!(quota["status"]["used"]["pods"], "10");
    let (_, list) = two.get_json("/api/v1/namespaces/burst/pods");
    assert_eq!(list["items"].as_array().unwrap().len(), 10);
}

async fn compute_resources_and_constraints(server: &TestServer) {
    server.create_namespace("compute").await;
    create_quota(
        server,
        "compute",
        quota(
            "compute",
            json!({"requests.cpu": "1", "limits.cpu": "2", "requests.memory": "1Gi"}),
        ),
    )
    .await;
    let refused = server.post(&pods("compute"), &pod("bare", json!({}))).await;
    assert_eq!(
        refused.expect_status(403, "Forbidden")["message"],
        "pods \"bare\" is forbidden: failed quota: compute: must specify limits.cpu for: app; requests.cpu for: app; requests.memory for: app"
    );
    let sized = json!({"requests": {"cpu": "600m", "memory": "512Mi"}, "limits": {"cpu": "600m"}});
    server
        .post(&pods("compute"), &pod("one", sized.clone()))
        .await
        .expect(201);
    let status = wait_used(server, "compute", "compute", |s| {
        s["used"]["requests.cpu"] == "600m"
    })
    .await;
    assert_eq!(
        status["used"],
        json!({"limits.cpu": "600m", "requests.cpu": "600m", "requests.memory": "512Mi"})
    );
    let refused = server.post(&pods("compute"), &pod("two", sized)).await;
    assert_eq!(
        refused.expect_status(403, "Forbidden")["message"],
        "pods \"two\" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1"
    );
    let fits = json!({"requests": {"cpu": "400m", "memory": "512Mi"}, "limits": {"cpu": "1"}});
    server
        .post(&pods("compute"), &pod("two", fits))
        .await
        .expect(201);
    assert_eq!(
        used(server, "compute", "compute").await,
        json!({"limits.cpu": "1600m", "requests.cpu": "1", "requests.memory": "1Gi"})
    );
}

on_both_stores!(
    compute_resources_and_constraints_embedded,
    compute_resources_and_constraints_etcd,
    compute_resources_and_constraints
);

#[tokio::test]
async fn scopes_select_which_pods_a_quota_charges() {
    let server = TestServer::start().await;
    server.create_namespace("scoped").await;
    create_quota(
        &server,
        "scoped",
        json!({
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "best-effort"},
            "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]},
        }),
    )
    .await;
    create_quota(
        &server,
        "scoped",
        json!({
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "high"},
            "spec": {"hard": {"pods": "5"}, "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}},
        }),
    )
    .await;
    let burstable = json!({"requests": {"cpu": "100m"}});
    server
        .post(&pods("scoped"), &pod("e1", json!({})))
        .await
        .expect(201);
    let refused = server.post(&pods("scoped"), &pod("e2", json!({}))).await;
    assert!(
        refused.message().contains("exceeded quota: best-effort"),
        "{}",
        refused.message()
    );
    for name in ["b1", "b2"] {
        server
            .post(&pods("scoped"), &pod(name, burstable.clone()))
            .await
            .expect(201);
    }
    assert_eq!(used(&server, "scoped", "best-effort").await["pods"], "1");
    assert_eq!(used(&server, "scoped", "high").await["pods"], "0");
    // The recount agrees with what admission charged.
    server
        .delete(&format!("{}/b1", pods("scoped")))
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(used(&server, "scoped", "best-effort").await["pods"], "1");
}

#[tokio::test]
async fn an_update_is_charged_its_delta() {
    let server = TestServer::start().await;
    server.create_namespace("svc").await;
    create_quota(
        &server,
        "svc",
        quota("ports", json!({"services": "2", "services.nodeports": "1"})),
    )
    .await;
    let path = "/api/v1/namespaces/svc/services";
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}});
    server.post(path, &service).await.expect(201);
    let refused = server
        .patch(
            &format!("{path}/web"),
            MERGE_PATCH,
            &json!({"spec": {"type": "NodePort"}}),
        )
        .await;
    assert_eq!(
        refused.expect_status(403, "Forbidden")["message"],
        "services \"web\" is forbidden: exceeded quota: ports, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1"
    );
    assert_eq!(
        used(&server, "svc", "ports").await,
        json!({"services": "1", "services.nodeports": "0"})
    );
    // Updating what quota does not price charges nothing more.
    server
        .patch(
            &format!("{path}/web"),
            MERGE_PATCH,
            &json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .await
        .expect(200);
    assert_eq!(
        used(&server, "svc", "ports").await,
        json!({"services": "1", "services.nodeports": "0"})
    );
}

#[tokio::test]
async fn object_counts_of_a_custom_resource() {
    let server = TestServer::start().await;
    server
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "widgets.example.com"},
                "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                    "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
            }),
        )
        .await
        .expect(201);
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.get(widgets).await.status != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the CRD was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let widget = |name: &str| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}});
    server.post(widgets, &widget("before")).await.expect(201);
    let status = create_quota(
        &server,
        "default",
        quota("widgets", json!({"count/widgets.example.com": "2"})),
    )
    .await;
    assert_eq!(status["used"]["count/widgets.example.com"], "1");
    server.post(widgets, &widget("second")).await.expect(201);
    let refused = server.post(widgets, &widget("third")).await;
    assert_eq!(
        refused.expect_status(403, "Forbidden")["message"],
        "widgets.example.com \"third\" is forbidden: exceeded quota: widgets, requested: count/widgets.example.com=1, used: count/widgets.example.com=2, limited: count/widgets.example.com=2"
    );
    server.get(&format!("{widgets}/third")).await.expect(404);
    server
        .delete(&format!("{widgets}/before"))
        .await
        .expect(200);
    wait_used(&server, "default", "widgets", |s| {
        s["used"]["count/widgets.example.com"] == "1"
    })
    .await;
    server.post(widgets, &widget("third")).await.expect(201);
}

#[test]
fn kubectl_create_and_describe_quota() {
    let server = Kubecache::start();
    server.kubectl_ok(&["create", "namespace", "shop"]);
    server.kubectl_ok(&[
        "create",
        "quota",
        "compute",
        "--hard=pods=4,requests.cpu=2,requests.memory=1Gi",
        "-n",
        "shop",
    ]);
    let pod = server.manifest(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  containers:\n  - name: app\n    image: nginx\n    resources:\n      requests:\n        cpu: 500m\n        memory: 256Mi\n",
    );
    let deadline = std::time::Instant::now() + WAIT;
    while server
        .get_json("/api/v1/namespaces/shop/resourcequotas/compute")
        .1["status"]["used"]["pods"]
        != "0"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the quota's status was never computed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kubectl_ok(&["create", "-f", &pod]);
    let described = server.kubectl_ok(&["describe", "quota", "compute", "-n", "shop"]);
    let rows: Vec<Vec<&str>> = described
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.contains(&vec!["Resource", "Used", "Hard"]),
        "{described}"
    );
    assert!(rows.contains(&vec!["pods", "1", "4"]), "{described}");
    assert!(
        rows.contains(&vec!["requests.cpu", "500m", "2"]),
        "{described}"
    );
    assert!(
        rows.contains(&vec!["requests.memory", "256Mi", "1Gi"]),
        "{described}"
    );
    let limits = server.manifest(
        "limits.yaml",
        "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: defaults\n  namespace: shop\nspec:\n  limits:\n  - type: Container\n    default:\n      cpu: 300m\n    defaultRequest:\n      cpu: 200m\n",
    );
    server.kubectl_ok(&["create", "-f", &limits]);
    let namespace = server.kubectl_ok(&["describe", "namespace", "shop"]);
    let rows: Vec<Vec<&str>> = namespace
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(namespace.contains("Resource Quotas"), "{namespace}");
    assert!(rows.contains(&vec!["Name:", "compute"]), "{namespace}");
    assert!(rows.contains(&vec!["pods", "1", "4"]), "{namespace}");
    assert!(namespace.contains("Resource Limits"), "{namespace}");
    assert!(
        rows.contains(&vec!["Container", "cpu", "-", "-", "200m", "300m", "-"]),
        "{namespace}"
    );
    let refused = server.kubectl(&["run", "big", "-n", "shop", "--image=nginx", "--overrides",
        r#"{"spec":{"containers":[{"name":"big","image":"nginx","resources":{"requests":{"cpu":"2","memory":"1Mi"}}}]}}"#]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("pods \"big\" is forbidden: exceeded quota: compute, requested: requests.cpu=2, used: requests.cpu=500m, limited: requests.cpu=2"),
        "{stderr}"
    );
}

/// The periodic resync (`--resource-quota-sync-period`) repairs a `status.used` that drifted
/// from the objects, here one written wrong through the status subresource.
#[tokio::test]
async fn the_periodic_resync_repairs_drift() {
    let mut controllers =
        kubecache_server::server::ControllerConfig::parse(TEST_CONTROLLERS, "").unwrap();
    controllers.quota_sync_period = Duration::from_millis(500);
    let backend = std::sync::Arc::new(kubecache_storage::embedded::EmbeddedBackend::in_memory());
    let server = TestServer::start_with_controllers(backend, controllers, |_| {}).await;
    server.create_namespace("drift").await;
    create_quota(&server, "drift", quota("q", json!({"pods": "5"}))).await;
    server
        .post(&pods("drift"), &pod("a", json!({})))
        .await
        .expect(201);
    server
        .patch(
            &format!("{}/status", quota_path("drift", "q")),
            MERGE_PATCH,
            &json!({"status": {"used": {"pods": "4"}}}),
        )
        .await
        .expect(200);
    wait_used(&server, "drift", "q", |s| s["used"]["pods"] == "1").await;
}
