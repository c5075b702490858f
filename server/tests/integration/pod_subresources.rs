//! The pod subresources clients call (issue 11): `pods/binding` and the `bindings`
//! collection, `pods/eviction` honouring PodDisruptionBudgets, `pods/ephemeralcontainers`,
//! `pods/resize`, with kube 1.33's answers — on the embedded store and on etcd — and
//! `kubectl drain` end to end.

use crate::support;

use serde_json::{Value, json};
use support::binary::Kubecache;
use support::kubectl::{server_object, stderr, wait_gone, wait_until};
use support::server::TestServer;

const STRATEGIC: &str = "application/strategic-merge-patch+json";
const MERGE: &str = "application/merge-patch+json";

fn pod(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{
            "name": "main",
            "image": "nginx:1.25",
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": "200m", "memory": "128Mi"},
            },
        }]},
    })
}

fn binding(pod: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod, "annotations": {"scheduler.example/score": "7"}},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    })
}

fn eviction(api_version: &str, pod: &str) -> Value {
    json!({"apiVersion": api_version, "kind": "Eviction", "metadata": {"name": pod}})
}

fn condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// A successful create of a subresource that returns no object: kube's `Status` of success.
fn assert_created_status(reply: &support::server::Reply) {
    let body = reply.expect(201);
    assert_eq!(body["kind"], "Status", "{body:#}");
    assert_eq!(body["status"], "Success", "{body:#}");
    assert_eq!(body["code"], 201, "{body:#}");
}

async fn binding_scenario(server: &TestServer) {
    server.create_namespace("bind").await;
    let pods = "/api/v1/namespaces/bind/pods";
    server.post(pods, &pod("web", json!({}))).await.expect(201);

    // The first binding sets nodeName, the binding's annotations and PodScheduled=True.
    let bound = server
        .post(&format!("{pods}/web/binding"), &binding("web", "n1"))
        .await;
    assert_created_status(&bound);
    let web = server.get(&format!("{pods}/web")).await.expect(200).clone();
    assert_eq!(web["spec"]["nodeName"], "n1", "{web:#}");
    assert_eq!(
        web["metadata"]["annotations"]["scheduler.example/score"],
        "7"
    );
    // kube writes the binding straight to storage: no generation bump.
    assert_eq!(web["metadata"]["generation"], 1, "{web:#}");
    let scheduled = condition(&web, "PodScheduled").expect("PodScheduled condition");
    assert_eq!(scheduled["status"], "True", "{web:#}");
    assert!(scheduled["lastTransitionTime"].is_string(), "{web:#}");

    // A second binding is a conflict, in kube's words; nothing changes.
    let again = server
        .post(&format!("{pods}/web/binding"), &binding("web", "n2"))
        .await;
    again.expect_status(409, "Conflict");
    assert_eq!(
        again.message(),
        "Operation cannot be fulfilled on pods/binding \"web\": pod web is already assigned to node \"n1\""
    );
    let unchanged = server.get(&format!("{pods}/web")).await.expect(200).clone();
    assert_eq!(
        unchanged["metadata"]["resourceVersion"],
        web["metadata"]["resourceVersion"]
    );

    // Refused bindings: a missing pod, a name that is not the path's, no target.
    server
        .post(&format!("{pods}/ghost/binding"), &binding("ghost", "n1"))
        .await
        .expect_status(404, "NotFound");
    server
        .post(&format!("{pods}/web/binding"), &binding("other", "n1"))
        .await
        .expect_status(400, "BadRequest");
    server.post(pods, &pod("api", json!({}))).await.expect(201);
    let mut no_target = binding("api", "");
    no_target["target"]["kind"] = json!("Pod");
    let invalid = server
        .post(&format!("{pods}/api/binding"), &no_target)
        .await;
    let body = invalid.expect_status(422, "Invalid");
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["target.kind", "target.name"], "{body:#}");
    // A GET of a create-only subresource is not allowed.
    server
        .get(&format!("{pods}/web/binding"))
        .await
        .expect_status(405, "MethodNotAllowed");

    // The `bindings` collection binds the pod its Binding names.
    assert_created_status(
        &server
            .post("/api/v1/namespaces/bind/bindings", &binding("api", "n2"))
            .await,
    );
    let api = server.get(&format!("{pods}/api")).await.expect(200).clone();
    assert_eq!(api["spec"]["nodeName"], "n2", "{api:#}");

    // nodeName no longer changes on an ordinary update or patch.
    let mut moved = web.clone();
    moved["spec"]["nodeName"] = json!("n3");
    let refused = server.put(&format!("{pods}/web"), &moved).await;
    refused.expect_status(422, "Invalid");
    assert!(
        refused
            .message()
            .contains("pod updates may not change fields other than"),
        "{}",
        refused.message()
    );
    server
        .patch(
            &format!("{pods}/web"),
            MERGE,
            &json!({"spec": {"nodeName": "n3"}}),
        )
        .await
        .expect_status(422, "Invalid");
    // An unbound pod cannot be bound by an update either: that is the binding's job.
    server.post(pods, &pod("free", json!({}))).await.expect(201);
    server
        .patch(
            &format!("{pods}/free"),
            MERGE,
            &json!({"spec": {"nodeName": "n1"}}),
        )
        .await
        .expect_status(422, "Invalid");
}

on_both_stores!(
    binding_once_then_conflict_embedded,
    binding_once_then_conflict_etcd,
    binding_scenario
);

/// Sets a pod's phase (and Ready condition) through its status subresource, as a kubelet.
async fn set_phase(server: &TestServer, path: &str, phase: &str, ready: bool) {
    let ready = if ready { "True" } else { "False" };
    server
        .patch(
            &format!("{path}/status"),
            MERGE,
            &json!({"status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}),
        )
        .await
        .expect(200);
}

/// A PodDisruptionBudget selecting `app`, with the status a disruption controller would
/// have written.
async fn budget(server: &TestServer, ns: &str, name: &str, app: &str, allowed: i64) {
    let budgets = format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets");
    let created = server
        .post(
            &budgets,
            &json!({
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": name},
                "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": app}}},
            }),
        )
        .await
        .expect(201)
        .clone();
    let generation = created["metadata"]["generation"].clone();
    server
        .patch(
            &format!("{budgets}/{name}/status"),
            MERGE,
            &json!({"status": {
                "observedGeneration": generation,
                "disruptionsAllowed": allowed,
                "currentHealthy": 3,
                "desiredHealthy": 2,
                "expectedPods": 3,
            }}),
        )
        .await
        .expect(200);
}

async fn eviction_scenario(server: &TestServer) {
    server.create_namespace("evict").await;
    let pods = "/api/v1/namespaces/evict/pods";
    for name in ["db-1", "db-2", "db-3"] {
        server
            .post(pods, &pod(name, json!({"app": "db"})))
            .await
            .expect(201);
        set_phase(server, &format!("{pods}/{name}"), "Running", true).await;
    }
    budget(server, "evict", "db", "db", 1).await;
    let pdb = "/apis/policy/v1/namespaces/evict/poddisruptionbudgets/db";

    // Allowed: the budget is spent and records the pod, and the pod is deleted.
    let mut watch = server
        .watch(
            pods,
            &[("watch", "true"), ("fieldSelector", "metadata.name=db-1")],
        )
        .await;
    watch.expect_event("ADDED", "db-1").await;
    assert_created_status(
        &server
            .post(
                &format!("{pods}/db-1/eviction"),
                &eviction("policy/v1", "db-1"),
            )
            .await,
    );
    // The pod is marked as a disruption target before it goes.
    let marked = watch.expect_event("MODIFIED", "db-1").await;
    let target = condition(&marked["object"], "DisruptionTarget").expect("DisruptionTarget");
    assert_eq!(target["reason"], "EvictionByEvictionAPI", "{marked:#}");
    watch.expect_event("DELETED", "db-1").await;
    server
        .get(&format!("{pods}/db-1"))
        .await
        .expect_status(404, "NotFound");
    let spent = server.get(pdb).await.expect(200).clone();
    assert_eq!(spent["status"]["disruptionsAllowed"], 0, "{spent:#}");
    assert!(
        spent["status"]["disruptedPods"]["db-1"].is_string(),
        "{spent:#}"
    );
    let allowed = condition(&spent, "DisruptionAllowed").expect("DisruptionAllowed");
    assert_eq!(allowed["status"], "False", "{spent:#}");
    assert_eq!(allowed["reason"], "InsufficientPods");

    // Blocked: 429 with kube's message and cause; the pod stays.
    let blocked = server
        .post(
            &format!("{pods}/db-2/eviction"),
            &eviction("policy/v1", "db-2"),
        )
        .await;
    let body = blocked.expect_status(429, "TooManyRequests");
    assert_eq!(
        blocked.message(),
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        body["details"]["causes"],
        json!([{
            "reason": "DisruptionBudget",
            "message": "The disruption budget db needs 2 healthy pods and has 3 currently",
        }]),
        "{body:#}"
    );
    server.get(&format!("{pods}/db-2")).await.expect(200);

    // A terminal pod is deleted without asking its budget; so is a Pending one (the
    // policy/v1beta1 form of the body is accepted too).
    set_phase(server, &format!("{pods}/db-2"), "Failed", false).await;
    assert_created_status(
        &server
            .post(
                &format!("{pods}/db-2/eviction"),
                &eviction("policy/v1beta1", "db-2"),
            )
            .await,
    );
    server
        .post(pods, &pod("db-4", json!({"app": "db"})))
        .await
        .expect(201);
    assert_created_status(
        &server
            .post(
                &format!("{pods}/db-4/eviction"),
                &eviction("policy/v1", "db-4"),
            )
            .await,
    );
    server
        .get(&format!("{pods}/db-4"))
        .await
        .expect_status(404, "NotFound");

    // Two budgets selecting one pod: kube refuses with a 500.
    budget(server, "evict", "db-again", "db", 1).await;
    let two = server
        .post(
            &format!("{pods}/db-3/eviction"),
            &eviction("policy/v1", "db-3"),
        )
        .await;
    assert_eq!(two.status, 500, "{:#}", two.body);
    assert_eq!(
        two.message(),
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    server.get(&format!("{pods}/db-3")).await.expect(200);

    // A dry run checks the budget and writes nothing.
    server
        .delete("/apis/policy/v1/namespaces/evict/poddisruptionbudgets/db-again")
        .await
        .expect(200);
    budget(server, "evict", "spare", "spare", 1).await;
    server
        .post(pods, &pod("spare-1", json!({"app": "spare"})))
        .await
        .expect(201);
    set_phase(server, &format!("{pods}/spare-1"), "Running", true).await;
    let mut dry = eviction("policy/v1", "spare-1");
    dry["deleteOptions"] = json!({"dryRun": ["All"]});
    assert_created_status(&server.post(&format!("{pods}/spare-1/eviction"), &dry).await);
    server.get(&format!("{pods}/spare-1")).await.expect(200);
    let spare = server
        .get("/apis/policy/v1/namespaces/evict/poddisruptionbudgets/spare")
        .await
        .expect(200)
        .clone();
    assert_eq!(spare["status"]["disruptionsAllowed"], 1, "{spare:#}");

    // A missing pod, a body naming another pod, another kind.
    server
        .post(
            &format!("{pods}/ghost/eviction"),
            &eviction("policy/v1", "ghost"),
        )
        .await
        .expect_status(404, "NotFound");
    server
        .post(
            &format!("{pods}/db-3/eviction"),
            &eviction("policy/v1", "db-1"),
        )
        .await
        .expect_status(400, "BadRequest");
    server
        .post(
            &format!("{pods}/db-3/eviction"),
            &eviction("apps/v1", "db-3"),
        )
        .await
        .expect_status(400, "BadRequest");
}

on_both_stores!(
    eviction_honours_budgets_embedded,
    eviction_honours_budgets_etcd,
    eviction_scenario
);

async fn ephemeral_and_resize_scenario(server: &TestServer) {
    server.create_namespace("dbg").await;
    let pods = "/api/v1/namespaces/dbg/pods";
    server
        .post(pods, &pod("app", json!({"app": "x"})))
        .await
        .expect(201);
    let path = format!("{pods}/app");

    // Adding an ephemeral container: only spec.ephemeralContainers changes (a label in the
    // same patch is ignored, as kube's strategy drops it).
    let debugger = json!({"name": "debugger", "image": "busybox", "targetContainerName": "main"});
    let added = server
        .patch(
            &format!("{path}/ephemeralcontainers"),
            STRATEGIC,
            &json!({"metadata": {"labels": {"app": "y"}}, "spec": {"ephemeralContainers": [debugger]}}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(added["kind"], "Pod");
    assert_eq!(
        added["spec"]["ephemeralContainers"][0]["name"], "debugger",
        "{added:#}"
    );
    assert_eq!(added["metadata"]["labels"]["app"], "x", "{added:#}");
    let got = server
        .get(&format!("{path}/ephemeralcontainers"))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        got["spec"]["ephemeralContainers"],
        added["spec"]["ephemeralContainers"]
    );

    // Existing ephemeral containers may be neither changed nor removed.
    let mut changed = added.clone();
    changed["spec"]["ephemeralContainers"][0]["image"] = json!("alpine");
    let refused = server
        .put(&format!("{path}/ephemeralcontainers"), &changed)
        .await;
    refused.expect_status(422, "Invalid");
    assert!(
        refused
            .message()
            .contains("existing ephemeral containers \"debugger\" may not be changed"),
        "{}",
        refused.message()
    );
    let mut removed = added.clone();
    removed["spec"]["ephemeralContainers"] = json!([]);
    let refused = server
        .put(&format!("{path}/ephemeralcontainers"), &removed)
        .await;
    refused.expect_status(422, "Invalid");
    assert!(
        refused.message().contains("may not be removed"),
        "{}",
        refused.message()
    );
    // An ephemeral container may not have ports, nor target a container the pod lacks.
    let body = server
        .patch(
            &format!("{path}/ephemeralcontainers"),
            STRATEGIC,
            &json!({"spec": {"ephemeralContainers": [debugger, {
                "name": "probe",
                "image": "busybox",
                "targetContainerName": "nope",
                "ports": [{"containerPort": 80}],
            }]}}),
        )
        .await;
    let body = body.expect_status(422, "Invalid");
    let causes = body["details"]["causes"].as_array().unwrap();
    assert!(
        causes
            .iter()
            .any(|c| c["field"] == "spec.ephemeralContainers[1].ports"
                && c["message"] == "Forbidden: cannot be set for an Ephemeral Container"),
        "{body:#}"
    );
    assert!(
        causes
            .iter()
            .any(|c| c["field"] == "spec.ephemeralContainers[1].targetContainerName"),
        "{body:#}"
    );
    // An ordinary update cannot add one.
    let mut via_update = added.clone();
    via_update["spec"]["ephemeralContainers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "second", "image": "busybox"}));
    server
        .put(&path, &via_update)
        .await
        .expect_status(422, "Invalid");

    // Resize: the containers' resources change, nothing else (the image in the same patch
    // is ignored).
    let resized = server
        .patch(
            &format!("{path}/resize"),
            STRATEGIC,
            &json!({"spec": {"containers": [{
                "name": "main",
                "image": "nginx:1.26",
                "resources": {"requests": {"cpu": "150m"}},
            }]}}),
        )
        .await
        .expect(200)
        .clone();
    let main = &resized["spec"]["containers"][0];
    assert_eq!(main["resources"]["requests"]["cpu"], "150m", "{resized:#}");
    assert_eq!(
        main["resources"]["requests"]["memory"], "64Mi",
        "{resized:#}"
    );
    assert_eq!(main["image"], "nginx:1.25", "{resized:#}");
    // Server-side apply to the subresource changes no more than a patch does.
    let applied = server
        .send(
            reqwest::Method::PATCH,
            &server.url_with(
                &format!("{path}/resize"),
                &[("fieldManager", "resizer"), ("force", "true")],
            ),
            Some("application/apply-patch+yaml"),
            Some(
                serde_json::to_vec(&json!({
                    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
                    "spec": {"containers": [{
                        "name": "main",
                        "image": "nginx:1.27",
                        "resources": {"requests": {"cpu": "160m", "memory": "64Mi"}},
                    }]},
                }))
                .unwrap(),
            ),
        )
        .await;
    let applied = applied.expect(200);
    let main = &applied["spec"]["containers"][0];
    assert_eq!(main["resources"]["requests"]["cpu"], "160m", "{applied:#}");
    assert_eq!(main["image"], "nginx:1.25", "{applied:#}");
    // ... but not into another QoS class (Burstable → Guaranteed), nor other resources.
    let refused = server
        .patch(
            &format!("{path}/resize"),
            STRATEGIC,
            &json!({"spec": {"containers": [{
                "name": "main",
                "resources": {"requests": {"cpu": "200m", "memory": "128Mi"}},
            }]}}),
        )
        .await;
    refused.expect_status(422, "Invalid");
    assert!(
        refused
            .message()
            .contains("Pod QOS Class may not change as a result of resizing"),
        "{}",
        refused.message()
    );
    let refused = server
        .patch(
            &format!("{path}/resize"),
            STRATEGIC,
            &json!({"spec": {"containers": [{
                "name": "main",
                "resources": {"limits": {"ephemeral-storage": "1Gi"}},
            }]}}),
        )
        .await;
    refused.expect_status(422, "Invalid");
    assert!(
        refused
            .message()
            .contains("only cpu and memory resources are mutable"),
        "{}",
        refused.message()
    );
    // An ordinary update still cannot change resources.
    server
        .patch(
            &path,
            STRATEGIC,
            &json!({"spec": {"containers": [{"name": "main", "resources": {"requests": {"cpu": "120m"}}}]}}),
        )
        .await
        .expect_status(422, "Invalid");
    // Only pods have these subresources.
    server
        .get("/api/v1/namespaces/dbg/configmaps/x/resize")
        .await
        .expect_status(404, "NotFound");
}

on_both_stores!(
    ephemeral_containers_and_resize_embedded,
    ephemeral_containers_and_resize_etcd,
    ephemeral_and_resize_scenario
);

/// `/api/v1` lists the pod subresources and `bindings` with kube's verbs and kinds, in the
/// legacy and the aggregated documents.
#[tokio::test]
async fn discovery_lists_the_pod_subresources() {
    let server = TestServer::start().await;
    let list = server.get("/api/v1").await.expect(200).clone();
    let entry = |name: &str| {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is not listed: {list:#}"))
    };
    assert_eq!(
        entry("pods/binding"),
        json!({"name": "pods/binding", "singularName": "", "namespaced": true, "kind": "Binding", "verbs": ["create"]})
    );
    assert_eq!(
        entry("pods/eviction"),
        json!({"name": "pods/eviction", "singularName": "", "namespaced": true, "kind": "Eviction",
               "verbs": ["create"], "group": "policy", "version": "v1"})
    );
    for view in ["pods/ephemeralcontainers", "pods/resize"] {
        let e = entry(view);
        assert_eq!(e["kind"], "Pod", "{e}");
        assert_eq!(e["verbs"], json!(["get", "patch", "update"]), "{e}");
    }
    let bindings = entry("bindings");
    assert_eq!(bindings["kind"], "Binding");
    assert_eq!(bindings["verbs"], json!(["create"]));

    // The object views are in OpenAPI, named as kube names them.
    let openapi = server.get("/openapi/v3/api/v1").await.expect(200).clone();
    for (sub, word) in [
        ("ephemeralcontainers", "Ephemeralcontainers"),
        ("resize", "Resize"),
    ] {
        let path =
            &openapi["paths"][format!("/api/v1/namespaces/{{namespace}}/pods/{{name}}/{sub}")];
        assert_eq!(
            path["get"]["operationId"],
            format!("readCoreV1NamespacedPod{word}"),
            "{path:#}"
        );
        assert!(
            path["patch"].is_object() && path["put"].is_object(),
            "{path:#}"
        );
    }

    let aggregated = server
        .get_accepting(
            "/api",
            &[],
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )
        .await
        .expect(200)
        .clone();
    let pods = aggregated["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "pods")
        .cloned()
        .unwrap();
    let subresources: Vec<(&str, &str)> = pods["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["subresource"].as_str().unwrap(),
                s["responseKind"]["kind"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("binding", "Binding"),
        ("ephemeralcontainers", "Pod"),
        ("eviction", "Eviction"),
        ("resize", "Pod"),
        ("status", "Pod"),
    ] {
        assert!(subresources.contains(&expected), "{subresources:?}");
    }
}

fn post_json(server: &Kubecache, path: &str, body: &Value) -> (u16, Value) {
    let (status, bytes) = server.http(
        "POST",
        path,
        Some("application/json"),
        Some(&serde_json::to_vec(body).unwrap()),
    );
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn patch_json(server: &Kubecache, path: &str, body: &Value) -> (u16, Value) {
    let (status, bytes) = server.http(
        "PATCH",
        path,
        Some(MERGE),
        Some(&serde_json::to_vec(body).unwrap()),
    );
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A running, ready pod on `node`, as a scheduler and a kubelet would have left it.
fn running_pod(server: &Kubecache, name: &str, app: &str, node: &str) {
    let mut body = pod(name, json!({"app": app}));
    body["spec"]["nodeName"] = json!(node);
    let (status, created) = post_json(server, "/api/v1/namespaces/default/pods", &body);
    assert_eq!(status, 201, "{created}");
    let (status, patched) = patch_json(
        server,
        &format!("/api/v1/namespaces/default/pods/{name}/status"),
        &json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    assert_eq!(status, 200, "{patched}");
}

fn node_and_budget(server: &Kubecache, node: &str, app: &str, allowed: i64) {
    let (status, body) = post_json(
        server,
        "/api/v1/nodes",
        &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}),
    );
    assert_eq!(status, 201, "{body}");
    let budgets = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
    let (status, body) = post_json(
        server,
        budgets,
        &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": app},
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": app}}}}),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = patch_json(
        server,
        &format!("{budgets}/{app}/status"),
        &json!({"status": {"observedGeneration": body["metadata"]["generation"],
                "disruptionsAllowed": allowed, "currentHealthy": 2, "desiredHealthy": 2,
                "expectedPods": 2}}),
    );
    assert_eq!(status, 200, "{body}");
}

/// `kubectl drain` evicts a node's pods through `pods/eviction`: with a budget that allows
/// it the node is cordoned and emptied; with a budget at zero kubectl retries the 429 until
/// its timeout and fails, and the pod stays.
#[test]
fn kubectl_drain_evicts_and_respects_budgets() {
    let server = Kubecache::start();
    node_and_budget(&server, "worker-1", "web", 2);
    running_pod(&server, "web-1", "web", "worker-1");
    running_pod(&server, "web-2", "web", "worker-1");
    let out = server.kubectl_ok(&[
        "drain",
        "worker-1",
        "--ignore-daemonsets",
        "--force",
        "--timeout=60s",
    ]);
    assert!(out.contains("pod/web-1 evicted"), "{out}");
    assert!(out.contains("node/worker-1 drained"), "{out}");
    for name in ["web-1", "web-2"] {
        wait_gone(&server, &format!("/api/v1/namespaces/default/pods/{name}"));
    }
    let node = server_object(&server, "/api/v1/nodes/worker-1");
    assert_eq!(node["spec"]["unschedulable"], true, "{node}");
    let budget = server_object(
        &server,
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web",
    );
    assert_eq!(budget["status"]["disruptionsAllowed"], 0, "{budget}");

    node_and_budget(&server, "worker-2", "db", 0);
    running_pod(&server, "db-1", "db", "worker-2");
    let output = server.kubectl(&[
        "drain",
        "worker-2",
        "--ignore-daemonsets",
        "--force",
        "--timeout=8s",
    ]);
    assert!(
        !output.status.success(),
        "drain succeeded against a budget at zero"
    );
    let err = stderr(&output);
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{err}"
    );
    assert!(err.contains("will retry after"), "{err}");
    wait_until("db-1 still there", || {
        let (status, _) = server.get_json("/api/v1/namespaces/default/pods/db-1");
        (status == 200).then_some(())
    });
}

/// `nodes/{name}/status` takes a kubelet's strategic merge patch: conditions merged by type,
/// addresses replaced, the spec left alone.
async fn node_status_scenario(server: &TestServer) {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                      "spec": {"podCIDR": "10.0.1.0/24"}});
    server.post("/api/v1/nodes", &node).await.expect(201);
    let ready = |status: &str, time: &str| {
        json!({"type": "Ready", "status": status, "reason": "KubeletReady",
               "lastHeartbeatTime": time, "lastTransitionTime": time})
    };
    let first = json!({"status": {
        "conditions": [ready("True", "2026-01-01T00:00:00Z"),
                       {"type": "MemoryPressure", "status": "False",
                        "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
    }});
    server
        .patch("/api/v1/nodes/n1/status", STRATEGIC, &first)
        .await
        .expect(200);
    // The next heartbeat names only the Ready condition; MemoryPressure stays.
    let heartbeat = json!({"status": {"conditions": [ready("True", "2026-01-01T00:01:00Z")]},
                           "spec": {"podCIDR": "10.9.9.0/24"}});
    let patched = server
        .patch("/api/v1/nodes/n1/status", STRATEGIC, &heartbeat)
        .await
        .expect(200)
        .clone();
    let conditions = patched["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 2, "{patched:#}");
    assert_eq!(conditions[0]["lastHeartbeatTime"], "2026-01-01T00:01:00Z");
    assert_eq!(patched["status"]["capacity"]["pods"], "110");
    assert_eq!(patched["spec"]["podCIDR"], "10.0.1.0/24", "{patched:#}");
}

on_both_stores!(
    node_status_takes_a_kubelet_patch_embedded,
    node_status_takes_a_kubelet_patch_etcd,
    node_status_scenario
);

/// kubectl's own calls: `kubectl debug` adds an ephemeral container through
/// `pods/ephemeralcontainers`, `kubectl patch --subresource resize` resizes, and a pod
/// patch of nodeName is refused with kube's message.
#[test]
fn kubectl_debug_and_resize() {
    let server = Kubecache::start();
    let overrides = r#"{"spec":{"containers":[{"name":"web","image":"nginx","resources":{"requests":{"cpu":"100m"},"limits":{"cpu":"200m"}}}]}}"#;
    server.kubectl_ok(&[
        "run",
        "web",
        "--image=nginx",
        &format!("--overrides={overrides}"),
    ]);
    server.kubectl_ok(&[
        "debug",
        "web",
        "--image=busybox",
        "--target=web",
        "--profile=general",
    ]);
    let pod = server_object(&server, "/api/v1/namespaces/default/pods/web");
    let debugger = &pod["spec"]["ephemeralContainers"][0];
    assert_eq!(debugger["image"], "busybox", "{pod}");
    assert_eq!(debugger["targetContainerName"], "web", "{pod}");

    server.kubectl_ok(&[
        "patch",
        "pod",
        "web",
        "--subresource=resize",
        "--patch",
        r#"{"spec":{"containers":[{"name":"web","resources":{"requests":{"cpu":"150m"}}}]}}"#,
    ]);
    let pod = server_object(&server, "/api/v1/namespaces/default/pods/web");
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["requests"]["cpu"], "150m",
        "{pod}"
    );

    let output = server.kubectl(&["patch", "pod", "web", "-p", r#"{"spec":{"nodeName":"n1"}}"#]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("pod updates may not change fields other than"),
        "{}",
        stderr(&output)
    );
}

/// kube-scheduler and kubectl speak protobuf: a protobuf Binding binds, a protobuf Eviction
/// evicts, and the answers are protobuf Statuses.
async fn protobuf_scenario(server: &TestServer) {
    use kubecache_apimachinery::protobuf::{self, MEDIA_TYPE};
    server.create_namespace("pb").await;
    let pods = "/api/v1/namespaces/pb/pods";
    server.post(pods, &pod("web", json!({}))).await.expect(201);
    let send = |path: String, object: Value| async move {
        let response = server
            .client
            .post(server.url(&path))
            .header(reqwest::header::CONTENT_TYPE, MEDIA_TYPE)
            .header(
                reqwest::header::ACCEPT,
                format!("{MEDIA_TYPE},application/json"),
            )
            .body(protobuf::encode_envelope(&object).expect("encodes"))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        let answer = protobuf::decode_envelope(&body, None).expect("a protobuf answer");
        (status, answer)
    };
    let (status, answer) = send(format!("{pods}/web/binding"), binding("web", "n1")).await;
    assert_eq!(
        (status, &answer["status"]),
        (201, &json!("Success")),
        "{answer:#}"
    );
    let web = server.get(&format!("{pods}/web")).await.expect(200).clone();
    assert_eq!(web["spec"]["nodeName"], "n1");
    let (status, answer) = send(format!("{pods}/web/binding"), binding("web", "n2")).await;
    assert_eq!(
        (status, &answer["reason"]),
        (409, &json!("Conflict")),
        "{answer:#}"
    );

    let (status, answer) = send(format!("{pods}/web/eviction"), eviction("policy/v1", "web")).await;
    assert_eq!(
        (status, &answer["status"]),
        (201, &json!("Success")),
        "{answer:#}"
    );
    server
        .get(&format!("{pods}/web"))
        .await
        .expect_status(404, "NotFound");
}

on_both_stores!(
    protobuf_binding_and_eviction_embedded,
    protobuf_binding_and_eviction_etcd,
    protobuf_scenario
);
