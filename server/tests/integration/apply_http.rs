//! Server-side apply and managedFields over HTTP, on the embedded store and on a real etcd:
//! apply creates, conflicts are 409 with kube's message and causes, `force` takes fields
//! over, omitted fields are removed, ordinary writes record their manager, dryRun writes
//! nothing, strategic merge patch on a type without a schema is 415.

use crate::support;

use std::sync::Arc;

use kubecache_storage::testing::TestEtcd;
use reqwest::Method;
use serde_json::{Value, json};
use support::server::{STRATEGIC_MERGE_PATCH, TestServer};

const APPLY: &str = "application/apply-patch+yaml";
const CM: &str = "/api/v1/namespaces/default/configmaps/cfg";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments/web";

async fn apply(
    server: &TestServer,
    path: &str,
    params: &[(&str, &str)],
    body: &str,
) -> support::server::Reply {
    server
        .send(
            Method::PATCH,
            &server.url_with(path, params),
            Some(APPLY),
            Some(body.as_bytes().to_vec()),
        )
        .await
}

fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_string(),
                        e["operation"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn entry<'a>(object: &'a Value, manager: &str) -> &'a Value {
    object["metadata"]["managedFields"]
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no entry for {manager}: {object:#}"))
}

const DEPLOYMENT_YAML: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: nginx:1.25
        ports:
        - containerPort: 80
          protocol: TCP
";

async fn server_side_apply(server: &TestServer) {
    // fieldManager is required.
    apply(server, DEPLOY, &[], DEPLOYMENT_YAML)
        .await
        .expect_status(422, "Invalid");
    // force only with apply.
    server
        .send(
            Method::PATCH,
            &server.url_with(DEPLOY, &[("force", "true")]),
            Some(STRATEGIC_MERGE_PATCH),
            Some(b"{}".to_vec()),
        )
        .await
        .expect_status(422, "Invalid");

    // dryRun creates nothing.
    apply(
        server,
        DEPLOY,
        &[("fieldManager", "a"), ("dryRun", "All")],
        DEPLOYMENT_YAML,
    )
    .await
    .expect(201);
    server.get(DEPLOY).await.expect_status(404, "NotFound");

    // Apply creates.
    let created = apply(server, DEPLOY, &[("fieldManager", "a")], DEPLOYMENT_YAML).await;
    let created = created.expect(201);
    assert_eq!(managers(created), [("a".to_string(), "Apply".to_string())]);
    let a = entry(created, "a");
    assert_eq!(a["apiVersion"], "apps/v1");
    assert_eq!(a["fieldsType"], "FieldsV1");
    assert!(a["time"].is_string());
    assert_eq!(
        a["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"main\"}"]["f:ports"],
        json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}})
    );

    // Applying the same configuration again is a no-op for ownership.
    let again = apply(server, DEPLOY, &[("fieldManager", "a")], DEPLOYMENT_YAML).await;
    assert_eq!(
        managers(again.expect(200)),
        [("a".to_string(), "Apply".to_string())]
    );

    // An ordinary write records its manager and takes the field it changed.
    let scaled = server
        .send(
            Method::PATCH,
            &server.url_with(DEPLOY, &[("fieldManager", "scaler")]),
            Some("application/merge-patch+json"),
            Some(br#"{"spec":{"replicas":5}}"#.to_vec()),
        )
        .await;
    let scaled = scaled.expect(200);
    assert_eq!(
        entry(scaled, "scaler")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(entry(scaled, "scaler")["operation"], "Update");
    assert!(
        entry(scaled, "a")["fieldsV1"]["f:spec"]
            .get("f:replicas")
            .is_none()
    );

    // a applies replicas again: conflict with the updater.
    let conflict = apply(server, DEPLOY, &[("fieldManager", "a")], DEPLOYMENT_YAML).await;
    let status = conflict.expect_status(409, "Conflict");
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"scaler\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"scaler\" using apps/v1", "field": ".spec.replicas"}])
    );
    assert_eq!(server.get(DEPLOY).await.expect(200)["spec"]["replicas"], 5);

    // Forced: a takes replicas back.
    let forced = apply(
        server,
        DEPLOY,
        &[("fieldManager", "a"), ("force", "true")],
        DEPLOYMENT_YAML,
    )
    .await;
    let forced = forced.expect(200);
    assert_eq!(forced["spec"]["replicas"], 2);
    assert!(
        forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["manager"] != "scaler"),
        "scaler owned nothing else: {forced:#}"
    );

    // A label from someone else survives a's next apply, which drops its own label and the
    // port; both are removed.
    server
        .send(
            Method::PATCH,
            &server.url_with(DEPLOY, &[("fieldManager", "kubectl-label")]),
            Some(STRATEGIC_MERGE_PATCH),
            Some(br#"{"metadata":{"labels":{"owner":"ops"}}}"#.to_vec()),
        )
        .await
        .expect(200);
    let trimmed = DEPLOYMENT_YAML
        .replace("  labels:\n    app: web\nspec:", "spec:")
        .replace(
            "        ports:\n        - containerPort: 80\n          protocol: TCP\n",
            "",
        );
    let result = apply(server, DEPLOY, &[("fieldManager", "a")], &trimmed).await;
    let result = result.expect(200);
    assert_eq!(
        result["metadata"]["labels"],
        json!({"owner": "ops"}),
        "{result:#}"
    );
    assert!(
        result["spec"]["template"]["spec"]["containers"][0]
            .get("ports")
            .is_none(),
        "{result:#}"
    );

    // Every write keeps managedFields valid: a PUT of the object as read back.
    let mut current = server.get(DEPLOY).await.expect(200).clone();
    current["spec"]["minReadySeconds"] = json!(3);
    let put = server
        .send(
            Method::PUT,
            &server.url_with(DEPLOY, &[("fieldManager", "kubectl-edit")]),
            Some("application/json"),
            Some(serde_json::to_vec(&current).unwrap()),
        )
        .await;
    let put = put.expect(200);
    assert_eq!(
        entry(put, "kubectl-edit")["fieldsV1"],
        json!({"f:spec": {"f:minReadySeconds": {}}})
    );

    // Apply with a JSON body, to a ConfigMap; a create records the User-Agent's product.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let made = server
        .send(
            Method::PATCH,
            &server.url_with(CM, &[("fieldManager", "json-applier")]),
            Some(APPLY),
            Some(serde_json::to_vec(&cm).unwrap()),
        )
        .await;
    assert_eq!(made.expect(201)["data"], json!({"a": "1"}));
    let posted = server
        .post(
            "/api/v1/namespaces/default/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}, "data": {"b": "2"}}),
        )
        .await;
    let posted = posted.expect(201);
    let entries = posted["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["operation"], "Update");
    assert_eq!(
        entries[0]["fieldsV1"],
        json!({"f:data": {".": {}, "f:b": {}}})
    );

    // Apply to the status subresource owns status fields only, under subresource "status".
    let status = apply(
        server,
        &format!("{DEPLOY}/status"),
        &[("fieldManager", "controller")],
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nstatus:\n  replicas: 2\n  observedGeneration: 1\n",
    )
    .await;
    let status = status.expect(200);
    assert_eq!(status["status"]["replicas"], 2);
    let controller = entry(status, "controller");
    assert_eq!(controller["subresource"], "status");
    assert_eq!(
        controller["fieldsV1"],
        json!({"f:status": {"f:observedGeneration": {}, "f:replicas": {}}})
    );
    assert!(entry(status, "a")["fieldsV1"].get("f:status").is_none());

    // Bad YAML is a 400.
    apply(server, CM, &[("fieldManager", "a")], "data: [")
        .await
        .expect_status(400, "BadRequest");
}

#[tokio::test]
async fn server_side_apply_on_embedded() {
    let server = TestServer::start().await;
    server_side_apply(&server).await;
}

#[tokio::test]
async fn server_side_apply_on_etcd() {
    let etcd = TestEtcd::start();
    let backend = kubecache_storage::etcd::EtcdBackend::connect(
        &[etcd.endpoint()],
        kubecache_storage::etcd::EtcdOptions::default(),
    )
    .await
    .expect("connect to etcd");
    let server = TestServer::start_with(Arc::new(backend)).await;
    server_side_apply(&server).await;
}
