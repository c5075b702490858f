//! HTTP-level tests of the API: a real server on a loopback port (see
//! `support::server::TestServer`), talked to with reqwest, checking status codes, `Status`
//! bodies and what is stored afterwards. Every test starts its own server over a fresh
//! in-memory store.

use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::server::{JSON, JSON_PATCH, MERGE_PATCH, Next, STRATEGIC_MERGE_PATCH, TestServer};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn labelled(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    })
}

/// The names of a list's items, sorted.
fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list:#}"))
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn rv(object: &Value) -> i64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no resourceVersion: {object:#}"))
        .parse()
        .unwrap()
}

async fn create_cm(server: &TestServer, body: &Value) -> Value {
    server.post(CM, body).await.expect(201).clone()
}

/// The configmaps of `default`, by name.
async fn cm_names(server: &TestServer) -> Vec<String> {
    names(server.get(CM).await.expect(200))
}

// ============================================================================================
// Version, discovery, health
// ============================================================================================

#[tokio::test]
async fn version_and_health_endpoints() {
    let server = TestServer::start().await;
    let version = server.get("/version").await;
    let version = version.expect(200);
    assert_eq!(version["major"], "1");
    assert_eq!(version["minor"], "33");
    assert!(
        version["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.33.")
    );
    for path in ["/healthz", "/livez", "/readyz"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.body, "ok", "{path}");
    }
}

#[tokio::test]
async fn core_discovery() {
    let server = TestServer::start().await;
    let api = server.get("/api").await;
    let api = api.expect(200);
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));

    let v1 = server.get("/api/v1").await;
    let v1 = v1.expect(200);
    assert_eq!(v1["kind"], "APIResourceList");
    assert_eq!(v1["groupVersion"], "v1");
    let resources = v1["resources"].as_array().unwrap();
    let find = |name: &str| {
        resources
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from /api/v1"))
    };
    let pods = find("pods");
    assert_eq!(pods["kind"], "Pod");
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["singularName"], "pod");
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    let verbs: BTreeSet<&str> = pods["verbs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for verb in [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ] {
        assert!(verbs.contains(verb), "pods verbs lack {verb}: {verbs:?}");
    }
    let status = find("pods/status");
    assert_eq!(status["kind"], "Pod");
    assert_eq!(find("namespaces")["namespaced"], false);
    assert_eq!(find("nodes")["namespaced"], false);
    assert_eq!(find("configmaps")["shortNames"], json!(["cm"]));
}

#[tokio::test]
async fn group_discovery() {
    let server = TestServer::start().await;
    let apis = server.get("/apis").await;
    let apis = apis.expect(200);
    assert_eq!(apis["kind"], "APIGroupList");
    let groups: BTreeSet<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for group in [
        "apps",
        "batch",
        "rbac.authorization.k8s.io",
        "events.k8s.io",
        "coordination.k8s.io",
        "networking.k8s.io",
    ] {
        assert!(groups.contains(group), "/apis lacks {group}: {groups:?}");
    }
    assert!(!groups.contains(""), "the core group is not under /apis");

    let apps = server.get("/apis/apps").await;
    let apps = apps.expect(200);
    assert_eq!(apps["kind"], "APIGroup");
    assert_eq!(apps["name"], "apps");
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");

    let apps_v1 = server.get("/apis/apps/v1").await;
    let apps_v1 = apps_v1.expect(200);
    assert_eq!(apps_v1["groupVersion"], "apps/v1");
    let resources = apps_v1["resources"].as_array().unwrap();
    let deployments = resources
        .iter()
        .find(|r| r["name"] == "deployments")
        .unwrap();
    assert_eq!(deployments["kind"], "Deployment");
    assert_eq!(deployments["shortNames"], json!(["deploy"]));
    let scale = resources
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .expect("deployments/scale listed");
    assert_eq!(scale["group"], "autoscaling");
    assert_eq!(scale["version"], "v1");
    assert_eq!(scale["kind"], "Scale");
    assert!(resources.iter().any(|r| r["name"] == "deployments/status"));
}

#[tokio::test]
async fn unknown_paths_are_404_status() {
    let server = TestServer::start().await;
    for path in [
        "/nope",
        "/api/v2",
        "/apis/nope.example.com",
        "/apis/apps/v7",
        "/api/v1/widgets",
        "/api/v1/namespaces/default/widgets/x",
        "/api/v1/namespaces/default/configmaps/x/status",
    ] {
        let reply = server.get(path).await;
        reply.expect_status(404, "NotFound");
        assert_eq!(
            reply.message(),
            "the server could not find the requested resource",
            "{path}"
        );
    }
    // A verb the path cannot take is 405.
    let body = serde_json::to_vec(&configmap("x")).unwrap();
    let reply = server
        .send(
            Method::POST,
            &server.url(&format!("{CM}/x")),
            Some(JSON),
            Some(body),
        )
        .await;
    reply.expect_status(405, "MethodNotAllowed");
    let reply = server
        .send(
            Method::DELETE,
            &server.url(&format!("{DEPLOY}/x/scale")),
            None,
            None,
        )
        .await;
    reply.expect_status(405, "MethodNotAllowed");
}

// ============================================================================================
// Create
// ============================================================================================

#[tokio::test]
async fn create_fills_server_owned_fields() {
    let server = TestServer::start().await;
    let body = json!({"metadata": {"generateName": "gen-", "generation": 7, "uid": "mine"}, "data": {"a": "b"}});
    let created = create_cm(&server, &body).await;
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("gen-") && name.len() == "gen-".len() + 5,
        "{name}"
    );
    assert_eq!(created["kind"], "ConfigMap");
    assert_eq!(created["apiVersion"], "v1");
    assert_eq!(created["metadata"]["namespace"], "default");
    let uid = created["metadata"]["uid"].as_str().unwrap();
    assert_eq!(uid.len(), 36, "{uid}");
    assert_ne!(uid, "mine");
    let ts = created["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
    assert!(
        created["metadata"].get("generation").is_none(),
        "configmaps have no generation"
    );
    assert!(rv(&created) > 0);

    let fetched = server.get(&format!("{CM}/{name}")).await;
    assert_eq!(fetched.expect(200), &created);
}

/// A create answers with the stored bytes and the resourceVersion spliced in: byte for byte
/// what a GET of the new object then serves from the cache.
#[tokio::test]
async fn create_response_bytes_equal_the_served_object() {
    let server = TestServer::start().await;
    let body = json!({"metadata": {"name": "bytes", "annotations": {"q": "\"x\""}}, "data": {"metadata": "v"}});
    let created = server
        .client
        .post(server.url(CM))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created = created.bytes().await.unwrap();
    let fetched = server
        .client
        .get(server.url(&format!("{CM}/bytes")))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    let fetched = fetched.bytes().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&created),
        String::from_utf8_lossy(&fetched)
    );
    let parsed: Value = serde_json::from_slice(&created).unwrap();
    assert_eq!(parsed["data"]["metadata"], "v");
    assert_eq!(parsed["metadata"]["annotations"]["q"], "\"x\"");
    assert!(rv(&parsed) > 0);
}

#[tokio::test]
async fn create_deployment_starts_at_generation_1() {
    let server = TestServer::start().await;
    let mut body = deployment("web", 2);
    body["status"] = json!({"replicas": 5});
    let created = server.post(DEPLOY, &body).await;
    let created = created.expect(201);
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["metadata"]["namespace"], "default");
    // Reset on create: to an empty DeploymentStatus, which kube writes as `{}`.
    assert_eq!(
        created["status"],
        json!({}),
        "status is reset on create: {created:#}"
    );
}

#[tokio::test]
async fn create_without_type_meta_or_content_type() {
    let server = TestServer::start().await;
    let body =
        serde_json::to_vec(&json!({"metadata": {"name": "bare"}, "data": {"x": "y"}})).unwrap();
    let reply = server
        .send(Method::POST, &server.url(CM), None, Some(body))
        .await;
    let created = reply.expect(201);
    assert_eq!(created["kind"], "ConfigMap");
    assert_eq!(created["apiVersion"], "v1");
    let stored = server.get(&format!("{CM}/bare")).await;
    assert_eq!(stored.expect(200)["data"]["x"], "y");
}

#[tokio::test]
async fn create_with_another_type_is_400() {
    let server = TestServer::start().await;
    let mut body = configmap("typed");
    body["apiVersion"] = json!("apps/v1");
    let reply = server.post(CM, &body).await;
    reply.expect_status(400, "BadRequest");
    assert!(reply.message().contains("apps/v1"), "{}", reply.message());

    let mut body = configmap("typed");
    body["kind"] = json!("Secret");
    server
        .post(CM, &body)
        .await
        .expect_status(400, "BadRequest");
    server
        .get(&format!("{CM}/typed"))
        .await
        .expect_status(404, "NotFound");
}

#[tokio::test]
async fn create_with_namespace_mismatch_is_400() {
    let server = TestServer::start().await;
    let mut body = configmap("elsewhere");
    body["metadata"]["namespace"] = json!("kube-system");
    let reply = server.post(CM, &body).await;
    reply.expect_status(400, "BadRequest");
    assert_eq!(
        reply.message(),
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    assert!(cm_names(&server).await.is_empty());
    let other = server
        .get("/api/v1/namespaces/kube-system/configmaps")
        .await;
    assert!(names(other.expect(200)).is_empty());
}

#[tokio::test]
async fn duplicate_create_is_409_already_exists() {
    let server = TestServer::start().await;
    let first = create_cm(&server, &configmap("dup")).await;
    let mut again = configmap("dup");
    again["data"] = json!({"k": "changed"});
    let reply = server.post(CM, &again).await;
    let status = reply.expect_status(409, "AlreadyExists");
    assert_eq!(reply.message(), "configmaps \"dup\" already exists");
    assert_eq!(status["details"]["name"], "dup");
    assert_eq!(status["details"]["kind"], "configmaps");
    let stored = server.get(&format!("{CM}/dup")).await;
    assert_eq!(stored.expect(200), &first, "the first object is untouched");
}

#[tokio::test]
async fn invalid_or_missing_name_is_422() {
    let server = TestServer::start().await;
    let reply = server.post(CM, &configmap("Bad_Name")).await;
    let status = reply.expect_status(422, "Invalid");
    assert!(
        reply.message().starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{}",
        reply.message()
    );
    assert_eq!(status["details"]["kind"], "ConfigMap");
    assert_eq!(status["details"]["name"], "Bad_Name");
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueInvalid"
    );

    let reply = server.post(CM, &json!({"data": {"a": "b"}})).await;
    let status = reply.expect_status(422, "Invalid");
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueRequired"
    );
    assert!(
        reply.message().contains("name or generateName is required"),
        "{}",
        reply.message()
    );

    let reply = server
        .post(CM, &labelled("badlabel", json!({"ok": "no way"})))
        .await;
    let status = reply.expect_status(422, "Invalid");
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.labels");

    assert!(cm_names(&server).await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn create_in_missing_namespace_is_404() {
    let server = TestServer::start().await;
    let reply = server
        .post("/api/v1/namespaces/ghost/configmaps", &configmap("a"))
        .await;
    let status = reply.expect_status(404, "NotFound");
    assert_eq!(reply.message(), "namespaces \"ghost\" not found");
    assert_eq!(status["details"]["kind"], "namespaces");
    let all = server.get("/api/v1/configmaps").await;
    assert!(names(all.expect(200)).is_empty());
}

#[tokio::test]
async fn field_validation_strict_warn_ignore() {
    let server = TestServer::start().await;
    let mut body = configmap("strict");
    body["bogus"] = json!("x");
    let reply = server
        .post(&format!("{CM}?fieldValidation=Strict"), &body)
        .await;
    reply.expect_status(400, "BadRequest");
    assert_eq!(
        reply.message(),
        "strict decoding error: unknown field \"bogus\""
    );
    server
        .get(&format!("{CM}/strict"))
        .await
        .expect_status(404, "NotFound");

    // Duplicate fields, which serde_json alone would silently collapse.
    let duplicate = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dupfield","name":"dupfield"},"data":{"k":"v"}}"#;
    let reply = server
        .send(
            Method::POST,
            &server.url(&format!("{CM}?fieldValidation=Strict")),
            Some(JSON),
            Some(duplicate.to_vec()),
        )
        .await;
    reply.expect_status(400, "BadRequest");
    assert!(
        reply
            .message()
            .contains("duplicate field \"metadata.name\""),
        "{}",
        reply.message()
    );
    server
        .get(&format!("{CM}/dupfield"))
        .await
        .expect_status(404, "NotFound");

    // Warn (the default): created, the field dropped, a Warning header names it.
    let mut body = configmap("warned");
    body["bogus"] = json!("x");
    body["metadata"]["alsoBogus"] = json!(1);
    let reply = server.post(CM, &body).await;
    let created = reply.expect(201).clone();
    assert!(created.get("bogus").is_none());
    let warnings = reply.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("299 ") && w.contains("unknown field \\\"bogus\\\"")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("metadata.alsoBogus")),
        "{warnings:?}"
    );
    let stored = server.get(&format!("{CM}/warned")).await;
    let stored = stored.expect(200);
    assert!(stored.get("bogus").is_none(), "{stored:#}");
    assert!(stored["metadata"].get("alsoBogus").is_none(), "{stored:#}");

    let mut body = configmap("ignored");
    body["bogus"] = json!("x");
    let reply = server
        .post(&format!("{CM}?fieldValidation=Ignore"), &body)
        .await;
    reply.expect(201);
    assert!(reply.warnings().is_empty(), "{:?}", reply.warnings());
    assert!(
        server
            .get(&format!("{CM}/ignored"))
            .await
            .expect(200)
            .get("bogus")
            .is_none()
    );

    let reply = server
        .post(&format!("{CM}?fieldValidation=Sometimes"), &configmap("x"))
        .await;
    reply.expect_status(400, "BadRequest");
    assert_eq!(cm_names(&server).await, vec!["ignored", "warned"]);
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let server = TestServer::start().await;
    let reply = server
        .send(
            Method::POST,
            &server.url(CM),
            Some(JSON),
            Some(b"{\"metadata\": {\"name\": ".to_vec()),
        )
        .await;
    reply.expect_status(400, "BadRequest");

    let body = json!({"metadata": {"name": "typed"}, "data": {"k": 5}});
    let reply = server.post(CM, &body).await;
    reply.expect_status(400, "BadRequest");
    assert!(
        reply
            .message()
            .starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap"),
        "{}",
        reply.message()
    );
    let reply = server.post(CM, &json!(["not", "an", "object"])).await;
    reply.expect_status(400, "BadRequest");
    assert!(cm_names(&server).await.is_empty());
}

#[tokio::test]
async fn oversized_body_is_413() {
    let server = TestServer::start().await;
    let mut body = configmap("huge");
    body["data"]["big"] = json!("x".repeat(3 * 1024 * 1024 + 10));
    let reply = server.post(CM, &body).await;
    reply.expect_status(413, "RequestEntityTooLarge");
    server
        .get(&format!("{CM}/huge"))
        .await
        .expect_status(404, "NotFound");
}

#[tokio::test]
async fn unsupported_media_types_are_415() {
    let server = TestServer::start().await;
    for content_type in ["application/yaml", "text/plain"] {
        let body = serde_json::to_vec(&configmap("media")).unwrap();
        let reply = server
            .send(
                Method::POST,
                &server.url(CM),
                Some(content_type),
                Some(body),
            )
            .await;
        reply.expect_status(415, "UnsupportedMediaType");
        assert!(
            reply.message().contains(content_type),
            "{}",
            reply.message()
        );
    }
    // Parameters after the media type are fine.
    let body = serde_json::to_vec(&configmap("charset")).unwrap();
    server
        .send(
            Method::POST,
            &server.url(CM),
            Some("application/json; charset=utf-8"),
            Some(body),
        )
        .await
        .expect(201);
    assert_eq!(cm_names(&server).await, vec!["charset"]);
}

#[tokio::test]
async fn dry_run_create_stores_nothing() {
    let server = TestServer::start().await;
    let reply = server
        .post(&format!("{CM}?dryRun=All"), &configmap("dry"))
        .await;
    let created = reply.expect(201);
    assert_eq!(created["metadata"]["name"], "dry");
    assert!(created["metadata"]["uid"].is_string());
    server
        .get(&format!("{CM}/dry"))
        .await
        .expect_status(404, "NotFound");
    server
        .post(&format!("{CM}?dryRun=Sometimes"), &configmap("dry"))
        .await
        .expect_status(400, "BadRequest");
    assert!(cm_names(&server).await.is_empty());
    // A dry run still reports a conflict with what exists.
    create_cm(&server, &configmap("real")).await;
    server
        .post(&format!("{CM}?dryRun=All"), &configmap("real"))
        .await
        .expect_status(409, "AlreadyExists");
}

// ============================================================================================
// Get
// ============================================================================================

#[tokio::test]
async fn get_existing_and_missing() {
    let server = TestServer::start().await;
    let created = create_cm(&server, &configmap("there")).await;
    let reply = server.get(&format!("{CM}/there")).await;
    assert_eq!(reply.expect(200), &created);
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "application/json"
    );

    let reply = server.get(&format!("{CM}/x")).await;
    let status = reply.expect_status(404, "NotFound");
    assert_eq!(reply.message(), "configmaps \"x\" not found");
    assert_eq!(status["details"]["kind"], "configmaps");
    assert_eq!(status["details"]["name"], "x");

    let reply = server.get(&format!("{DEPLOY}/x")).await;
    let status = reply.expect_status(404, "NotFound");
    assert_eq!(reply.message(), "deployments.apps \"x\" not found");
    assert_eq!(status["details"]["group"], "apps");

    // The same name in another namespace is another object.
    server
        .get("/api/v1/namespaces/kube-system/configmaps/there")
        .await
        .expect_status(404, "NotFound");
}

#[tokio::test]
async fn cluster_scoped_get() {
    let server = TestServer::start().await;
    let ns = server.get("/api/v1/namespaces/default").await;
    let ns = ns.expect(200);
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["status"]["phase"], "Active");
    assert!(ns["metadata"].get("namespace").is_none());

    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "namespace": "ignored"}});
    let created = server.post("/api/v1/nodes", &node).await;
    let created = created.expect(201);
    assert!(
        created["metadata"].get("namespace").is_none(),
        "{created:#}"
    );
    let fetched = server.get("/api/v1/nodes/node-1").await;
    assert_eq!(fetched.expect(200)["metadata"]["name"], "node-1");
    assert_eq!(
        names(server.get("/api/v1/nodes").await.expect(200)),
        vec!["node-1"]
    );

    server
        .get("/api/v1/namespaces/default/nodes")
        .await
        .expect_status(404, "NotFound");
    server
        .get("/api/v1/namespaces/default/nodes/node-1")
        .await
        .expect_status(404, "NotFound");
    let missing = server.get("/api/v1/nodes/node-2").await;
    missing.expect_status(404, "NotFound");
    assert_eq!(missing.message(), "nodes \"node-2\" not found");
}

// ============================================================================================
// List
// ============================================================================================

#[tokio::test]
async fn list_items_and_resource_version() {
    let server = TestServer::start().await;
    server.create_namespace("other").await;
    create_cm(&server, &configmap("a")).await;
    let b = create_cm(&server, &configmap("b")).await;
    server
        .post("/api/v1/namespaces/other/configmaps", &configmap("c"))
        .await
        .expect(201);

    let list = server.get(CM).await;
    let list = list.expect(200);
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(names(list), vec!["a", "b"]);
    assert!(rv(list) >= rv(&b), "{list:#}");
    assert!(list["metadata"].get("continue").is_none());
    for item in list["items"].as_array().unwrap() {
        assert!(rv(item) > 0);
    }

    let all = server.get("/api/v1/configmaps").await;
    let all = all.expect(200);
    assert_eq!(names(all), vec!["a", "b", "c"]);
    let namespaces: BTreeSet<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, BTreeSet::from(["default", "other"]));

    let namespaces = server.get("/api/v1/namespaces").await;
    let listed = names(namespaces.expect(200));
    for ns in [
        "default",
        "kube-node-lease",
        "kube-public",
        "kube-system",
        "other",
    ] {
        assert!(listed.iter().any(|n| n == ns), "{listed:?}");
    }
}

#[tokio::test]
async fn list_label_selectors() {
    let server = TestServer::start().await;
    create_cm(&server, &labelled("a", json!({"app": "web", "tier": "fe"}))).await;
    create_cm(&server, &labelled("b", json!({"app": "web", "tier": "be"}))).await;
    create_cm(&server, &labelled("c", json!({"app": "db"}))).await;
    create_cm(&server, &configmap("d")).await;
    let cases: &[(&str, &[&str])] = &[
        ("app=web", &["a", "b"]),
        ("app==web", &["a", "b"]),
        ("app!=web", &["c", "d"]),
        ("tier in (fe,be)", &["a", "b"]),
        ("tier in (fe)", &["a"]),
        ("app notin (web)", &["c", "d"]),
        ("tier", &["a", "b"]),
        ("!tier", &["c", "d"]),
        ("app=web,tier=fe", &["a"]),
        ("app=web,!tier", &[]),
        ("", &["a", "b", "c", "d"]),
    ];
    for (selector, expected) in cases {
        let reply = server.get_with(CM, &[("labelSelector", selector)]).await;
        assert_eq!(reply.status, 200, "{selector}: {:#}", reply.body);
        assert_eq!(names(&reply.body), *expected, "labelSelector={selector}");
    }
    for bad in ["app in (web", "a b c", "app=web=x", "!!x", "Bad Key=x"] {
        let reply = server.get_with(CM, &[("labelSelector", bad)]).await;
        assert_eq!(reply.status, 400, "labelSelector={bad}: {:#}", reply.body);
        assert_eq!(reply.body["reason"], "BadRequest");
    }
}

#[tokio::test]
async fn list_field_selectors() {
    let server = TestServer::start().await;
    server.create_namespace("other").await;
    create_cm(&server, &configmap("a")).await;
    create_cm(&server, &configmap("b")).await;
    server
        .post("/api/v1/namespaces/other/configmaps", &configmap("a"))
        .await
        .expect(201);
    let reply = server
        .get_with(CM, &[("fieldSelector", "metadata.name=a")])
        .await;
    assert_eq!(names(reply.expect(200)), vec!["a"]);
    let reply = server
        .get_with(CM, &[("fieldSelector", "metadata.name!=a")])
        .await;
    assert_eq!(names(reply.expect(200)), vec!["b"]);
    let reply = server
        .get_with(
            "/api/v1/configmaps",
            &[("fieldSelector", "metadata.name==a")],
        )
        .await;
    assert_eq!(names(reply.expect(200)), vec!["a", "a"]);
    let reply = server
        .get_with(
            "/api/v1/configmaps",
            &[("fieldSelector", "metadata.namespace=other")],
        )
        .await;
    let list = reply.expect(200);
    assert_eq!(names(list), vec!["a"]);
    assert_eq!(list["items"][0]["metadata"]["namespace"], "other");
    let reply = server
        .get_with(
            "/api/v1/configmaps",
            &[(
                "fieldSelector",
                "metadata.namespace=default,metadata.name=b",
            )],
        )
        .await;
    assert_eq!(names(reply.expect(200)), vec!["b"]);

    let reply = server
        .get_with(CM, &[("fieldSelector", "spec.foo=bar")])
        .await;
    reply.expect_status(400, "BadRequest");
    assert!(reply.message().contains("spec.foo"), "{}", reply.message());
    let reply = server.get_with(CM, &[("fieldSelector", "nonsense")]).await;
    reply.expect_status(400, "BadRequest");
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let server = TestServer::start().await;
    server.create_namespace("paging").await;
    let path = "/api/v1/namespaces/paging/configmaps";
    for i in 0..7 {
        server
            .post(path, &configmap(&format!("p{i}")))
            .await
            .expect(201);
    }
    let first = server.get_with(path, &[("limit", "3")]).await;
    let first = first.expect(200).clone();
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    assert_eq!(first["metadata"]["remainingItemCount"], 4);
    let snapshot = rv(&first);
    // A write between pages is not part of this list: every page reads the first one's
    // snapshot.
    server.post(path, &configmap("p9-late")).await.expect(201);

    let mut seen: Vec<String> = names(&first);
    let mut token = first["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    let mut pages = 1;
    loop {
        let page = server
            .get_with(path, &[("limit", "3"), ("continue", &token)])
            .await;
        let page = page.expect(200).clone();
        pages += 1;
        assert_eq!(rv(&page), snapshot, "every page is the same snapshot");
        seen.extend(names(&page));
        match page["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() => {
                assert_eq!(page["metadata"]["remainingItemCount"], 1);
                token = next.to_string();
            }
            _ => {
                assert!(page["metadata"].get("remainingItemCount").is_none());
                break;
            }
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).map(|i| format!("p{i}")).collect();
    assert_eq!(seen, expected, "each object exactly once, in key order");

    // A fresh list sees the late object.
    assert_eq!(names(server.get(path).await.expect(200)).len(), 8);

    let reply = server
        .get_with(path, &[("limit", "3"), ("continue", "not-a-token")])
        .await;
    reply.expect_status(400, "BadRequest");
    let reply = server
        .get_with(
            path,
            &[
                ("limit", "3"),
                ("continue", &token),
                ("resourceVersion", "5"),
            ],
        )
        .await;
    reply.expect_status(400, "BadRequest");
}

#[tokio::test]
async fn continue_tokens_without_or_with_a_wrong_count_still_report_the_true_remainder() {
    use kubecache_core::continue_token::ContinueToken;
    let server = TestServer::start().await;
    server.create_namespace("counts").await;
    let path = "/api/v1/namespaces/counts/configmaps";
    for i in 0..7 {
        server
            .post(path, &configmap(&format!("c{i}")))
            .await
            .expect(201);
    }
    let first = server.get_with(path, &[("limit", "2")]).await;
    let first = first.expect(200).clone();
    assert_eq!(first["metadata"]["remainingItemCount"], 5);
    let token = ContinueToken::decode(first["metadata"]["continue"].as_str().unwrap()).unwrap();
    assert_eq!(token.remaining, Some(5), "the count rides in the token");
    // kube-apiserver's tokens (and older kubecache's) carry no count; a hand-edited one may
    // carry one that cannot be right (nothing would follow the page, yet something does):
    // the server counts instead.
    for remaining in [None, Some(1), Some(2)] {
        let edited = token.clone().with_remaining(remaining).encode();
        let page = server
            .get_with(path, &[("limit", "2"), ("continue", &edited)])
            .await;
        let page = page.expect(200).clone();
        assert_eq!(names(&page), ["c2", "c3"], "{remaining:?}");
        assert_eq!(page["metadata"]["remainingItemCount"], 3, "{remaining:?}");
    }
}

#[tokio::test]
async fn list_at_a_future_resource_version_times_out_with_504() {
    let server = TestServer::start().await;
    let started = Instant::now();
    let reply = server
        .get_with(
            CM,
            &[
                ("resourceVersion", "100000000"),
                ("resourceVersionMatch", "NotOlderThan"),
            ],
        )
        .await;
    let elapsed = started.elapsed();
    let status = reply.expect_status(504, "Timeout");
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
    assert!(
        reply.message().contains("Too large resource version"),
        "{}",
        reply.message()
    );
    assert_eq!(
        status["details"]["causes"][0]["reason"], "ResourceVersionTooLarge",
        "client-go recognises the error by this cause: {status:#}"
    );
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
    assert_eq!(reply.headers.get("retry-after").unwrap(), "1");
}

#[tokio::test]
async fn list_exact_resource_version_returns_the_old_state() {
    let server = TestServer::start().await;
    let old = create_cm(&server, &configmap("hist")).await;
    let old_rv = rv(&old).to_string();
    let mut changed = old.clone();
    changed["data"] = json!({"k": "new"});
    server
        .put(&format!("{CM}/hist"), &changed)
        .await
        .expect(200);
    create_cm(&server, &configmap("later")).await;

    let reply = server
        .get_with(
            CM,
            &[
                ("resourceVersion", &old_rv),
                ("resourceVersionMatch", "Exact"),
            ],
        )
        .await;
    let list = reply.expect(200);
    assert_eq!(list["metadata"]["resourceVersion"], old_rv);
    assert_eq!(names(list), vec!["hist"]);
    assert_eq!(list["items"][0]["data"]["k"], "v");

    let now = server.get(CM).await;
    let now = now.expect(200);
    assert_eq!(names(now), vec!["hist", "later"]);
    let hist = now["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["metadata"]["name"] == "hist")
        .unwrap();
    assert_eq!(hist["data"]["k"], "new");

    server
        .get_with(CM, &[("resourceVersionMatch", "Exact")])
        .await
        .expect_status(400, "BadRequest");
    server
        .get_with(CM, &[("resourceVersion", "abc")])
        .await
        .expect_status(400, "BadRequest");
}

// ============================================================================================
// Update (PUT)
// ============================================================================================

#[tokio::test]
async fn put_updates_with_optimistic_concurrency() {
    let server = TestServer::start().await;
    let created = create_cm(&server, &configmap("u")).await;
    let path = format!("{CM}/u");

    let mut first = created.clone();
    first["data"] = json!({"k": "first"});
    let updated = server.put(&path, &first).await;
    let updated = updated.expect(200).clone();
    assert!(rv(&updated) > rv(&created));
    assert_eq!(updated["data"]["k"], "first");
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        updated["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );

    // The original resourceVersion is stale now.
    let mut stale = created.clone();
    stale["data"] = json!({"k": "stale"});
    let reply = server.put(&path, &stale).await;
    let status = reply.expect_status(409, "Conflict");
    assert_eq!(
        reply.message(),
        "Operation cannot be fulfilled on configmaps \"u\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(status["details"]["name"], "u");
    assert_eq!(server.get(&path).await.expect(200), &updated, "unchanged");

    // Without a resourceVersion the update is unconditional.
    let mut unconditional = configmap("u");
    unconditional["data"] = json!({"k": "forced"});
    let forced = server.put(&path, &unconditional).await;
    let forced = forced.expect(200).clone();
    assert_eq!(forced["data"]["k"], "forced");
    assert!(rv(&forced) > rv(&updated));
    assert_eq!(
        forced["metadata"]["uid"], created["metadata"]["uid"],
        "uid is kept"
    );

    // A uid in the body is a precondition; creationTimestamp cannot be changed.
    let mut other_uid = forced.clone();
    other_uid["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
    let reply = server.put(&path, &other_uid).await;
    reply.expect_status(409, "Conflict");
    assert!(
        reply
            .message()
            .contains("Precondition failed: UID in precondition"),
        "{}",
        reply.message()
    );
    assert_eq!(server.get(&path).await.expect(200), &forced);
    let mut backdated = forced.clone();
    backdated["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    backdated["data"] = json!({"k": "backdated"});
    let kept = server.put(&path, &backdated).await;
    let kept = kept.expect(200);
    assert_eq!(kept["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        kept["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );

    // dryRun updates store nothing.
    let stored = server.get(&path).await.expect(200).clone();
    let mut dry = stored.clone();
    dry["data"] = json!({"k": "dry"});
    let reply = server.put(&format!("{path}?dryRun=All"), &dry).await;
    assert_eq!(reply.expect(200)["data"]["k"], "dry");
    let reply = server
        .patch(
            &format!("{path}?dryRun=All"),
            MERGE_PATCH,
            &json!({"data": {"k": "dry"}}),
        )
        .await;
    assert_eq!(reply.expect(200)["data"]["k"], "dry");
    assert_eq!(server.get(&path).await.expect(200), &stored);
}

#[tokio::test]
async fn put_with_wrong_name_or_missing_object() {
    let server = TestServer::start().await;
    let created = create_cm(&server, &configmap("named")).await;
    let mut renamed = created.clone();
    renamed["metadata"]["name"] = json!("other");
    let reply = server.put(&format!("{CM}/named"), &renamed).await;
    reply.expect_status(400, "BadRequest");
    assert!(
        reply.message().contains("does not match"),
        "{}",
        reply.message()
    );
    assert_eq!(
        server.get(&format!("{CM}/named")).await.expect(200),
        &created
    );
    server
        .get(&format!("{CM}/other"))
        .await
        .expect_status(404, "NotFound");

    let reply = server
        .put(&format!("{CM}/missing"), &configmap("missing"))
        .await;
    reply.expect_status(404, "NotFound");
    assert_eq!(reply.message(), "configmaps \"missing\" not found");
    server
        .get(&format!("{CM}/missing"))
        .await
        .expect_status(404, "NotFound");

    let mut moved = created.clone();
    moved["metadata"]["namespace"] = json!("kube-system");
    server
        .put(&format!("{CM}/named"), &moved)
        .await
        .expect_status(400, "BadRequest");
}

#[tokio::test]
async fn deployment_generation_and_status_on_put() {
    let server = TestServer::start().await;
    let created = server.post(DEPLOY, &deployment("web", 1)).await;
    let created = created.expect(201).clone();
    let path = format!("{DEPLOY}/web");

    // Status is set through the status subresource.
    let mut with_status = created.clone();
    with_status["status"] = json!({"replicas": 1, "readyReplicas": 1});
    let reply = server.put(&format!("{path}/status"), &with_status).await;
    let after_status = reply.expect(200).clone();
    assert_eq!(after_status["status"]["replicas"], 1);
    assert_eq!(
        after_status["metadata"]["generation"], 1,
        "status writes keep generation"
    );

    // A spec change bumps generation; the main resource cannot change status.
    let mut scaled = after_status.clone();
    scaled["spec"]["replicas"] = json!(3);
    scaled["status"] = json!({"replicas": 99});
    let reply = server.put(&path, &scaled).await;
    let scaled = reply.expect(200).clone();
    assert_eq!(scaled["spec"]["replicas"], 3);
    assert_eq!(scaled["metadata"]["generation"], 2);
    assert_eq!(scaled["status"], json!({"replicas": 1, "readyReplicas": 1}));

    // A metadata-only change does not.
    let mut relabelled = scaled.clone();
    relabelled["metadata"]["labels"]["extra"] = json!("yes");
    let reply = server.put(&path, &relabelled).await;
    let relabelled = reply.expect(200).clone();
    assert_eq!(relabelled["metadata"]["labels"]["extra"], "yes");
    assert_eq!(relabelled["metadata"]["generation"], 2);

    let stored = server.get(&path).await;
    let stored = stored.expect(200);
    assert_eq!(stored, &relabelled);
    assert_eq!(stored["status"]["readyReplicas"], 1);
}

#[tokio::test]
async fn put_status_changes_only_status() {
    let server = TestServer::start().await;
    let created = server.post(DEPLOY, &deployment("st", 2)).await;
    let created = created.expect(201).clone();
    let path = format!("{DEPLOY}/st");

    let mut body = created.clone();
    body["spec"]["replicas"] = json!(9);
    body["metadata"]["labels"]["sneaky"] = json!("yes");
    body["status"] = json!({"replicas": 2, "availableReplicas": 2});
    let reply = server.put(&format!("{path}/status"), &body).await;
    let updated = reply.expect(200).clone();
    assert_eq!(updated["status"]["availableReplicas"], 2, "{updated:#}");
    assert_eq!(
        updated["spec"]["replicas"], 2,
        "spec is ignored by a status write"
    );
    assert!(updated["metadata"]["labels"].get("sneaky").is_none());
    assert_eq!(updated["metadata"]["generation"], 1);
    assert!(rv(&updated) > rv(&created));

    let stored = server.get(&path).await;
    assert_eq!(stored.expect(200), &updated);
    let via_status = server.get(&format!("{path}/status")).await;
    assert_eq!(via_status.expect(200)["status"]["availableReplicas"], 2);

    // The status subresource checks resourceVersion too.
    let reply = server.put(&format!("{path}/status"), &body).await;
    reply.expect_status(409, "Conflict");
    // And it is only served for resources that have one.
    server
        .put(
            "/api/v1/namespaces/default/configmaps/x/status",
            &configmap("x"),
        )
        .await
        .expect_status(404, "NotFound");
}

// ============================================================================================
// Patch
// ============================================================================================

#[tokio::test]
async fn merge_patch_adds_and_removes_labels() {
    let server = TestServer::start().await;
    let created = create_cm(&server, &labelled("m", json!({"keep": "1", "drop": "2"}))).await;
    let path = format!("{CM}/m");
    let reply = server
        .patch(
            &path,
            MERGE_PATCH,
            &json!({"metadata": {"labels": {"drop": null, "new": "3"}}, "data": {"k2": "v2"}}),
        )
        .await;
    let patched = reply.expect(200).clone();
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"keep": "1", "new": "3"})
    );
    assert_eq!(patched["data"], json!({"k": "v", "k2": "v2"}));
    assert!(rv(&patched) > rv(&created));
    assert_eq!(server.get(&path).await.expect(200), &patched);

    server
        .patch(
            &format!("{CM}/absent"),
            MERGE_PATCH,
            &json!({"data": {"a": "b"}}),
        )
        .await
        .expect_status(404, "NotFound");
    server
        .patch(&path, MERGE_PATCH, &json!(["not", "a", "merge", "patch"]))
        .await
        .expect_status(400, "BadRequest");
    // A patch that breaks the type is a 400 and writes nothing.
    server
        .patch(&path, MERGE_PATCH, &json!({"data": {"k": 1}}))
        .await
        .expect_status(400, "BadRequest");
    assert_eq!(server.get(&path).await.expect(200), &patched);
}

#[tokio::test]
async fn json_patch_operations() {
    let server = TestServer::start().await;
    create_cm(&server, &configmap("j")).await;
    let path = format!("{CM}/j");
    let reply = server
        .patch(
            &path,
            JSON_PATCH,
            &json!([
                {"op": "add", "path": "/data/added", "value": "yes"},
                {"op": "replace", "path": "/data/k", "value": "replaced"},
                {"op": "add", "path": "/metadata/labels", "value": {"via": "jsonpatch"}},
            ]),
        )
        .await;
    let patched = reply.expect(200).clone();
    assert_eq!(patched["data"], json!({"k": "replaced", "added": "yes"}));
    assert_eq!(patched["metadata"]["labels"]["via"], "jsonpatch");

    let reply = server
        .patch(
            &path,
            JSON_PATCH,
            &json!([
                {"op": "replace", "path": "/data/k", "value": "should-not-stick"},
                {"op": "test", "path": "/data/added", "value": "no"},
            ]),
        )
        .await;
    reply.expect_status(422, "Invalid");
    assert_eq!(
        server.get(&path).await.expect(200),
        &patched,
        "nothing written"
    );

    server
        .patch(&path, JSON_PATCH, &json!({"op": "add"}))
        .await
        .expect_status(400, "BadRequest");
    server
        .patch(
            &path,
            JSON_PATCH,
            &json!([{"op": "remove", "path": "/data/nothere"}]),
        )
        .await
        .expect_status(422, "Invalid");
    assert_eq!(server.get(&path).await.expect(200), &patched);
}

#[tokio::test]
async fn strategic_merge_patch_merges_containers_by_name() {
    let server = TestServer::start().await;
    let mut body = deployment("smp", 1);
    body["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "web", "image": "nginx:1.25"},
        {"name": "sidecar", "image": "envoy:1"},
    ]);
    server.post(DEPLOY, &body).await.expect(201);
    let path = format!("{DEPLOY}/smp");
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "envoy:2"},
        {"name": "extra", "image": "busybox"},
    ]}}}});
    let reply = server.patch(&path, STRATEGIC_MERGE_PATCH, &patch).await;
    let patched = reply.expect(200).clone();
    // Names and images only: the containers also carry their defaults
    // (terminationMessagePath, imagePullPolicy…), as in kube.
    let containers: Vec<(&str, &str)> = patched["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["image"].as_str().unwrap()))
        .collect();
    assert_eq!(
        containers,
        vec![
            ("web", "nginx:1.25"),
            ("sidecar", "envoy:2"),
            ("extra", "busybox")
        ]
    );
    assert_eq!(patched["metadata"]["generation"], 2);

    // The same patch as a merge patch replaces the list.
    let reply = server.patch(&path, MERGE_PATCH, &patch).await;
    let replaced = reply.expect(200).clone();
    assert_eq!(
        replaced["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(server.get(&path).await.expect(200), &replaced);
}

#[tokio::test]
async fn patch_preconditions_and_media_types() {
    let server = TestServer::start().await;
    let created = create_cm(&server, &configmap("pp")).await;
    let path = format!("{CM}/pp");
    let current = server
        .patch(&path, MERGE_PATCH, &json!({"data": {"k": "1"}}))
        .await
        .expect(200)
        .clone();

    let stale = json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "data": {"k": "2"}});
    let reply = server.patch(&path, MERGE_PATCH, &stale).await;
    reply.expect_status(409, "Conflict");
    assert_eq!(server.get(&path).await.expect(200), &current);

    let fresh = json!({"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "data": {"k": "3"}});
    let reply = server.patch(&path, MERGE_PATCH, &fresh).await;
    assert_eq!(reply.expect(200)["data"]["k"], "3");

    for media in ["application/json", "application/yaml"] {
        let reply = server
            .patch(&path, media, &json!({"data": {"k": "4"}}))
            .await;
        reply.expect_status(415, "UnsupportedMediaType");
    }
    let reply = server
        .send(
            Method::PATCH,
            &server.url(&path),
            None,
            Some(br#"{"data":{"k":"5"}}"#.to_vec()),
        )
        .await;
    assert_eq!(
        reply.status, 415,
        "PATCH needs a patch media type: {:#}",
        reply.body
    );
    assert_eq!(server.get(&path).await.expect(200)["data"]["k"], "3");
}

#[tokio::test]
async fn patch_status_subresource() {
    let server = TestServer::start().await;
    server.post(DEPLOY, &deployment("ps", 2)).await.expect(201);
    let path = format!("{DEPLOY}/ps");
    let reply = server
        .patch(
            &format!("{path}/status"),
            MERGE_PATCH,
            &json!({"status": {"replicas": 2, "readyReplicas": 1}, "spec": {"replicas": 7}}),
        )
        .await;
    let patched = reply.expect(200).clone();
    assert_eq!(patched["status"]["readyReplicas"], 1, "{patched:#}");
    assert_eq!(patched["spec"]["replicas"], 2);
    assert_eq!(patched["metadata"]["generation"], 1);
    assert_eq!(server.get(&path).await.expect(200), &patched);

    // A main-resource patch of status is ignored.
    let reply = server
        .patch(
            &path,
            MERGE_PATCH,
            &json!({"status": {"readyReplicas": 0}, "metadata": {"labels": {"x": "y"}}}),
        )
        .await;
    let patched = reply.expect(200).clone();
    assert_eq!(patched["status"]["readyReplicas"], 1);
    assert_eq!(patched["metadata"]["labels"]["x"], "y");
}

// ============================================================================================
// Scale
// ============================================================================================

#[tokio::test]
async fn scale_subresource() {
    let server = TestServer::start().await;
    server.post(DEPLOY, &deployment("sc", 2)).await.expect(201);
    let path = format!("{DEPLOY}/sc");
    let scale_path = format!("{path}/scale");

    let scale = server.get(&scale_path).await;
    let scale = scale.expect(200).clone();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["metadata"]["name"], "sc");
    assert_eq!(scale["metadata"]["namespace"], "default");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=sc");

    // kubectl scale sends a PUT without Content-Type.
    let mut body = scale.clone();
    body["spec"]["replicas"] = json!(5);
    let reply = server
        .send(
            Method::PUT,
            &server.url(&scale_path),
            None,
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    let scaled = reply.expect(200).clone();
    assert_eq!(scaled["kind"], "Scale");
    assert_eq!(scaled["spec"]["replicas"], 5);
    let deployment = server.get(&path).await;
    let deployment = deployment.expect(200).clone();
    assert_eq!(deployment["spec"]["replicas"], 5);
    assert_eq!(deployment["metadata"]["generation"], 2);
    assert_eq!(
        scaled["metadata"]["resourceVersion"],
        deployment["metadata"]["resourceVersion"]
    );

    // The old Scale's resourceVersion is stale.
    let reply = server.put(&scale_path, &body).await;
    reply.expect_status(409, "Conflict");

    let reply = server
        .patch(&scale_path, MERGE_PATCH, &json!({"spec": {"replicas": 7}}))
        .await;
    assert_eq!(reply.expect(200)["spec"]["replicas"], 7);
    assert_eq!(server.get(&path).await.expect(200)["spec"]["replicas"], 7);

    let mut negative = server.get(&scale_path).await.expect(200).clone();
    negative["spec"]["replicas"] = json!(-1);
    let reply = server.put(&scale_path, &negative).await;
    let status = reply.expect_status(422, "Invalid");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.replicas");
    let reply = server
        .patch(&scale_path, MERGE_PATCH, &json!({"spec": {"replicas": -3}}))
        .await;
    reply.expect_status(422, "Invalid");
    assert_eq!(server.get(&path).await.expect(200)["spec"]["replicas"], 7);

    server
        .get(&format!("{DEPLOY}/missing/scale"))
        .await
        .expect_status(404, "NotFound");
    server
        .get("/api/v1/namespaces/default/configmaps/x/scale")
        .await
        .expect_status(404, "NotFound");
}

// ============================================================================================
// Delete
// ============================================================================================

#[tokio::test]
async fn delete_returns_success_status() {
    let server = TestServer::start().await;
    let created = create_cm(&server, &configmap("gone")).await;
    let path = format!("{CM}/gone");
    let reply = server.delete(&path).await;
    let status = reply.expect(200);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Success");
    assert_eq!(status["details"]["name"], "gone");
    assert_eq!(status["details"]["kind"], "configmaps");
    assert_eq!(status["details"]["uid"], created["metadata"]["uid"]);
    server.get(&path).await.expect_status(404, "NotFound");

    let reply = server.delete(&path).await;
    reply.expect_status(404, "NotFound");
    assert_eq!(reply.message(), "configmaps \"gone\" not found");
}

#[tokio::test]
async fn delete_preconditions() {
    let server = TestServer::start().await;
    let created = create_cm(&server, &configmap("guarded")).await;
    let path = format!("{CM}/guarded");
    let reply = server
        .delete_with(
            &path,
            &json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}}),
        )
        .await;
    reply.expect_status(409, "Conflict");
    assert!(
        reply
            .message()
            .contains("Precondition failed: UID in precondition"),
        "{}",
        reply.message()
    );
    assert_eq!(server.get(&path).await.expect(200), &created);

    let reply = server
        .delete_with(&path, &json!({"preconditions": {"resourceVersion": "1"}}))
        .await;
    reply.expect_status(409, "Conflict");
    assert!(
        reply.message().contains("ResourceVersion in precondition"),
        "{}",
        reply.message()
    );
    assert_eq!(server.get(&path).await.expect(200), &created);

    let reply = server
        .delete_with(
            &path,
            &json!({"preconditions": {
                "uid": created["metadata"]["uid"],
                "resourceVersion": created["metadata"]["resourceVersion"],
            }}),
        )
        .await;
    assert_eq!(reply.expect(200)["status"], "Success");
    server.get(&path).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn delete_with_finalizers_marks_then_update_removes() {
    let server = TestServer::start().await;
    let mut body = configmap("held");
    body["metadata"]["finalizers"] = json!(["example.com/hold"]);
    create_cm(&server, &body).await;
    let path = format!("{CM}/held");

    let reply = server.delete(&path).await;
    let marked = reply.expect(200).clone();
    assert_eq!(
        marked["kind"], "ConfigMap",
        "the marked object is returned: {marked:#}"
    );
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let stored = server.get(&path).await;
    let stored = stored.expect(200).clone();
    assert_eq!(
        stored["metadata"]["deletionTimestamp"],
        marked["metadata"]["deletionTimestamp"]
    );
    assert_eq!(
        stored["metadata"]["finalizers"],
        json!(["example.com/hold"])
    );

    // Deleting again changes nothing.
    let again = server.delete(&path).await;
    assert_eq!(
        again.expect(200)["metadata"]["deletionTimestamp"],
        marked["metadata"]["deletionTimestamp"]
    );
    // Updates cannot clear the deletion mark.
    let reply = server
        .patch(
            &path,
            MERGE_PATCH,
            &json!({"metadata": {"deletionTimestamp": null}, "data": {"k": "still"}}),
        )
        .await;
    let still = reply.expect(200).clone();
    assert_eq!(
        still["metadata"]["deletionTimestamp"],
        marked["metadata"]["deletionTimestamp"]
    );

    let reply = server
        .patch(
            &path,
            MERGE_PATCH,
            &json!({"metadata": {"finalizers": null}}),
        )
        .await;
    reply.expect(200);
    server.get(&path).await.expect_status(404, "NotFound");
}

#[tokio::test]
async fn delete_collection_by_label() {
    let server = TestServer::start().await;
    for (name, purge) in [("p1", "yes"), ("p2", "yes"), ("k1", "no")] {
        create_cm(&server, &labelled(name, json!({"purge": purge}))).await;
    }
    create_cm(&server, &configmap("k2")).await;
    server.create_namespace("other").await;
    server
        .post(
            "/api/v1/namespaces/other/configmaps",
            &labelled("p3", json!({"purge": "yes"})),
        )
        .await
        .expect(201);

    let url = server.url_with(CM, &[("labelSelector", "purge=yes")]);
    let reply = server.send(Method::DELETE, &url, None, None).await;
    let deleted = reply.expect(200);
    assert_eq!(deleted["kind"], "ConfigMapList");
    assert_eq!(names(deleted), vec!["p1", "p2"]);
    assert_eq!(cm_names(&server).await, vec!["k1", "k2"]);
    let other = server.get("/api/v1/namespaces/other/configmaps").await;
    assert_eq!(
        names(other.expect(200)),
        vec!["p3"],
        "other namespaces are untouched"
    );
}

#[tokio::test]
async fn delete_options_propagation_policy() {
    let server = TestServer::start().await;
    create_cm(&server, &configmap("bg")).await;
    create_cm(&server, &configmap("bad")).await;
    let reply = server
        .delete_with(
            &format!("{CM}/bad"),
            &json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Sideways"}),
        )
        .await;
    let status = reply.expect_status(422, "Invalid");
    assert_eq!(status["details"]["causes"][0]["field"], "propagationPolicy");
    server.get(&format!("{CM}/bad")).await.expect(200);

    let reply = server
        .delete_with(
            &format!("{CM}/bg"),
            &json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}),
        )
        .await;
    assert_eq!(reply.expect(200)["status"], "Success");
    server
        .get(&format!("{CM}/bg"))
        .await
        .expect_status(404, "NotFound");

    // The query-parameter form, as kubectl --cascade sends it.
    let url = server.url_with(&format!("{CM}/bad"), &[("propagationPolicy", "Foreground")]);
    server
        .send(Method::DELETE, &url, None, None)
        .await
        .expect(200);
    assert!(cm_names(&server).await.is_empty());

    // dryRun deletes nothing.
    create_cm(&server, &configmap("dry")).await;
    let reply = server
        .delete_with(&format!("{CM}/dry"), &json!({"dryRun": ["All"]}))
        .await;
    reply.expect(200);
    server.get(&format!("{CM}/dry")).await.expect(200);
}

// ============================================================================================
// Namespaces
// ============================================================================================

#[tokio::test]
async fn deleted_namespace_terminates_and_disappears() {
    let server = TestServer::start().await;
    server.create_namespace("doomed").await;
    let content = "/api/v1/namespaces/doomed/configmaps";
    server.post(content, &configmap("inside")).await.expect(201);
    server
        .post(
            "/apis/apps/v1/namespaces/doomed/deployments",
            &deployment("d", 1),
        )
        .await
        .expect(201);
    // An object with a finalizer keeps the namespace Terminating until it is released.
    let mut held = configmap("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    server.post(content, &held).await.expect(201);

    let reply = server.delete("/api/v1/namespaces/doomed").await;
    let ns = reply.expect(200).clone();
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());

    let reply = server.post(content, &configmap("late")).await;
    reply.expect_status(403, "Forbidden");
    assert!(
        reply.message().contains("being terminated"),
        "{}",
        reply.message()
    );

    // Everything but the held object goes; the held one is marked for deletion.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let configmaps = server.get(content).await.expect(200).clone();
        let deployments = server
            .get("/apis/apps/v1/namespaces/doomed/deployments")
            .await
            .expect(200)
            .clone();
        if names(&configmaps) == vec!["held"] && names(&deployments).is_empty() {
            assert!(configmaps["items"][0]["metadata"]["deletionTimestamp"].is_string());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "content not removed: {configmaps:#} {deployments:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ns = server.get("/api/v1/namespaces/doomed").await;
    assert_eq!(ns.expect(200)["status"]["phase"], "Terminating");
    let again = server.delete("/api/v1/namespaces/doomed").await;
    assert_eq!(again.expect(200)["status"]["phase"], "Terminating");
    server
        .post(content, &configmap("late"))
        .await
        .expect_status(403, "Forbidden");

    server
        .patch(
            &format!("{content}/held"),
            MERGE_PATCH,
            &json!({"metadata": {"finalizers": null}}),
        )
        .await
        .expect(200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = server.get("/api/v1/namespaces/doomed").await;
        if reply.status == 404 {
            break;
        }
        let ns = reply.expect(200);
        assert_eq!(ns["status"]["phase"], "Terminating");
        assert!(Instant::now() < deadline, "namespace still there: {ns:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = server.get("/api/v1/configmaps").await;
    assert!(
        names(all.expect(200)).is_empty(),
        "the namespace's content is gone"
    );
    // Creating in it now is a 404, and the name can be used again.
    server
        .post(content, &configmap("after"))
        .await
        .expect_status(404, "NotFound");
    server.create_namespace("doomed").await;
    server.post(content, &configmap("reborn")).await.expect(201);
}

// ============================================================================================
// events.k8s.io/v1 and core/v1 events
// ============================================================================================

#[tokio::test]
async fn events_convert_between_api_versions() {
    let server = TestServer::start().await;
    let new_api = "/apis/events.k8s.io/v1/namespaces/default/events";
    let core_api = "/api/v1/namespaces/default/events";
    let event = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "ev-new"},
        "eventTime": "2024-05-01T10:00:00.000000Z",
        "note": "Pulled image",
        "reason": "Pulled",
        "type": "Normal",
        "action": "Pull",
        "reportingController": "kubelet",
        "reportingInstance": "node-1",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web-1", "apiVersion": "v1"},
    });
    let reply = server.post(new_api, &event).await;
    let created = reply.expect(201).clone();
    assert_eq!(created["apiVersion"], "events.k8s.io/v1");
    assert_eq!(created["note"], "Pulled image");
    assert_eq!(created["regarding"]["name"], "web-1");

    let core = server.get(&format!("{core_api}/ev-new")).await;
    let core = core.expect(200).clone();
    assert_eq!(core["apiVersion"], "v1");
    assert_eq!(core["kind"], "Event");
    assert_eq!(core["message"], "Pulled image");
    assert_eq!(core["involvedObject"]["name"], "web-1");
    assert_eq!(core["reportingComponent"], "kubelet");
    assert!(
        core.get("note").is_none() && core.get("regarding").is_none(),
        "{core:#}"
    );
    assert_eq!(
        core["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    // And the other way round.
    let core_event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "ev-core"},
        "message": "Scaled up",
        "reason": "ScalingReplicaSet",
        "type": "Normal",
        "count": 3,
        "involvedObject": {"kind": "Deployment", "namespace": "default", "name": "web"},
        "source": {"component": "deployment-controller"},
    });
    server.post(core_api, &core_event).await.expect(201);
    let new = server.get(&format!("{new_api}/ev-core")).await;
    let new = new.expect(200);
    assert_eq!(new["apiVersion"], "events.k8s.io/v1");
    assert_eq!(new["note"], "Scaled up");
    assert_eq!(new["regarding"]["name"], "web");
    assert_eq!(new["deprecatedCount"], 3);
    assert_eq!(
        new["deprecatedSource"]["component"],
        "deployment-controller"
    );
    assert!(
        new.get("message").is_none() && new.get("involvedObject").is_none(),
        "{new:#}"
    );

    // Both lists show both events, each in its own shape.
    let core_list = server.get(core_api).await;
    let core_list = core_list.expect(200);
    assert_eq!(names(core_list), vec!["ev-core", "ev-new"]);
    assert!(
        core_list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["apiVersion"] == "v1")
    );
    let new_list = server.get(new_api).await;
    let new_list = new_list.expect(200);
    assert_eq!(new_list["kind"], "EventList");
    assert_eq!(new_list["apiVersion"], "events.k8s.io/v1");
    assert!(
        new_list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("note").is_some())
    );
}

// ============================================================================================
// Watch
// ============================================================================================

#[tokio::test]
async fn watch_from_a_list_resource_version() {
    let server = TestServer::start().await;
    server.create_namespace("other").await;
    create_cm(&server, &configmap("before")).await;
    let list = server.get(CM).await;
    let list_rv = list.expect(200)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let mut watch = server
        .watch(CM, &[("watch", "true"), ("resourceVersion", &list_rv)])
        .await;
    let created = create_cm(&server, &configmap("w")).await;
    server
        .post(
            "/api/v1/namespaces/other/configmaps",
            &configmap("elsewhere"),
        )
        .await
        .expect(201);
    let mut changed = created.clone();
    changed["data"] = json!({"k": "changed"});
    let updated = server
        .put(&format!("{CM}/w"), &changed)
        .await
        .expect(200)
        .clone();
    server.delete(&format!("{CM}/w")).await.expect(200);

    let added = watch.expect_event("ADDED", "w").await;
    assert_eq!(added["object"], created);
    let modified = watch.expect_event("MODIFIED", "w").await;
    assert_eq!(modified["object"], updated);
    let deleted = watch.expect_event("DELETED", "w").await;
    assert!(rv(&deleted["object"]) > rv(&updated), "{deleted:#}");
    assert_eq!(deleted["object"]["kind"], "ConfigMap");
    watch.expect_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn watch_without_resource_version_starts_with_synthetic_added() {
    let server = TestServer::start().await;
    create_cm(&server, &configmap("one")).await;
    create_cm(&server, &configmap("two")).await;
    let mut watch = server.watch(CM, &[("watch", "1")]).await;
    watch.expect_event("ADDED", "one").await;
    watch.expect_event("ADDED", "two").await;
    watch.expect_quiet(Duration::from_millis(300)).await;
    create_cm(&server, &configmap("three")).await;
    watch.expect_event("ADDED", "three").await;

    // resourceVersion=0 means the same.
    let mut watch = server
        .watch(CM, &[("watch", "true"), ("resourceVersion", "0")])
        .await;
    for name in ["one", "three", "two"] {
        watch.expect_event("ADDED", name).await;
    }
}

#[tokio::test]
async fn legacy_watch_path() {
    let server = TestServer::start().await;
    let list_rv = server.get(CM).await.expect(200)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut watch = server
        .watch(
            "/api/v1/watch/namespaces/default/configmaps",
            &[("resourceVersion", &list_rv)],
        )
        .await;
    create_cm(&server, &configmap("legacy")).await;
    watch.expect_event("ADDED", "legacy").await;

    // The all-namespaces legacy form.
    let mut all = server
        .watch("/api/v1/watch/configmaps", &[("resourceVersion", &list_rv)])
        .await;
    all.expect_event("ADDED", "legacy").await;
}

#[tokio::test]
async fn watch_with_field_selector_sees_only_that_object() {
    let server = TestServer::start().await;
    create_cm(&server, &configmap("x")).await;
    create_cm(&server, &configmap("y")).await;
    let mut watch = server
        .watch(
            CM,
            &[("watch", "true"), ("fieldSelector", "metadata.name=x")],
        )
        .await;
    watch.expect_event("ADDED", "x").await;
    server
        .patch(
            &format!("{CM}/y"),
            MERGE_PATCH,
            &json!({"data": {"k": "y2"}}),
        )
        .await
        .expect(200);
    server
        .patch(
            &format!("{CM}/x"),
            MERGE_PATCH,
            &json!({"data": {"k": "x2"}}),
        )
        .await
        .expect(200);
    server.delete(&format!("{CM}/y")).await.expect(200);
    server.delete(&format!("{CM}/x")).await.expect(200);
    let modified = watch.expect_event("MODIFIED", "x").await;
    assert_eq!(modified["object"]["data"]["k"], "x2");
    watch.expect_event("DELETED", "x").await;
    watch.expect_quiet(Duration::from_millis(300)).await;

    let reply = server
        .get_with(CM, &[("watch", "true"), ("fieldSelector", "data.k=x")])
        .await;
    reply.expect_status(400, "BadRequest");
}

#[tokio::test]
async fn watch_label_selector_enter_and_leave() {
    let server = TestServer::start().await;
    create_cm(&server, &configmap("mover")).await;
    let mut watch = server
        .watch(CM, &[("watch", "true"), ("labelSelector", "app=web")])
        .await;
    watch.expect_quiet(Duration::from_millis(200)).await;
    let path = format!("{CM}/mover");
    let label = |value: &str| json!({"metadata": {"labels": {"app": value}}});

    server
        .patch(&path, MERGE_PATCH, &label("web"))
        .await
        .expect(200);
    let entered = watch.expect_event("ADDED", "mover").await;
    assert_eq!(entered["object"]["metadata"]["labels"]["app"], "web");
    server
        .patch(&path, MERGE_PATCH, &json!({"data": {"k": "inside"}}))
        .await
        .expect(200);
    watch.expect_event("MODIFIED", "mover").await;
    server
        .patch(&path, MERGE_PATCH, &label("db"))
        .await
        .expect(200);
    let left = watch.expect_event("DELETED", "mover").await;
    // kube-apiserver's cacheWatcher: the previous content (the last state that matched),
    // stamped with the resourceVersion of the change that made it leave.
    assert_eq!(
        left["object"]["metadata"]["labels"]["app"], "web",
        "the last state that matched"
    );
    let current = server.get(&path).await;
    assert_eq!(
        left["object"]["metadata"]["resourceVersion"],
        current.expect(200)["metadata"]["resourceVersion"]
    );
    server
        .patch(&path, MERGE_PATCH, &json!({"data": {"k": "outside"}}))
        .await
        .expect(200);
    server.delete(&path).await.expect(200);
    watch.expect_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn watch_timeout_seconds_ends_the_stream() {
    let server = TestServer::start().await;
    // A resourceVersion the cache retains (its window starts at its initial list).
    let listed = server.get(CM).await;
    let rv = listed.expect(200)["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let mut watch = server
        .watch(
            CM,
            &[
                ("watch", "true"),
                ("timeoutSeconds", "1"),
                ("resourceVersion", &rv),
            ],
        )
        .await;
    watch.expect_end(Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "ended after {elapsed:?}"
    );
}

#[tokio::test]
async fn watch_send_initial_events_ends_with_a_bookmark() {
    let server = TestServer::start().await;
    create_cm(&server, &configmap("i1")).await;
    let last = create_cm(&server, &configmap("i2")).await;
    let mut watch = server
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
    watch.expect_event("ADDED", "i1").await;
    watch.expect_event("ADDED", "i2").await;
    let bookmark = watch.next_event().await;
    assert_eq!(bookmark["type"], "BOOKMARK", "{bookmark:#}");
    let object = &bookmark["object"];
    assert_eq!(object["kind"], "ConfigMap");
    assert_eq!(object["apiVersion"], "v1");
    assert_eq!(
        object["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(rv(object) >= rv(&last), "{bookmark:#}");
    create_cm(&server, &configmap("i3")).await;
    watch.expect_event("ADDED", "i3").await;

    // sendInitialEvents needs resourceVersionMatch=NotOlderThan.
    let reply = server
        .get_with(
            CM,
            &[
                ("watch", "true"),
                ("sendInitialEvents", "true"),
                ("allowWatchBookmarks", "true"),
            ],
        )
        .await;
    reply.expect_status(422, "Invalid");
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_is_410_expired() {
    // Storage compaction decides what is too old when reads go to storage; the watch cache
    // keeps its own window (see watch_before_the_cache_window_is_410_expired).
    let server = TestServer::start_uncached().await;
    let created = create_cm(&server, &configmap("old")).await;
    let old_rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    for value in ["1", "2", "3"] {
        server
            .patch(
                &format!("{CM}/old"),
                MERGE_PATCH,
                &json!({"data": {"k": value}}),
            )
            .await
            .expect(200);
    }
    let current = server.backend.current_revision().await.unwrap();
    server.backend.compact(current).await.unwrap();

    let mut watch = server
        .watch(CM, &[("watch", "true"), ("resourceVersion", &old_rv)])
        .await;
    let event = watch.next_event().await;
    assert_eq!(event["type"], "ERROR", "{event:#}");
    let status = &event["object"];
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 410);
    assert_eq!(status["reason"], "Expired");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("too old resource version"),
        "{status:#}"
    );
    watch.expect_end(Duration::from_secs(5)).await;

    // A list at the compacted revision is 410 too; the current state is still served.
    let reply = server
        .get_with(
            CM,
            &[
                ("resourceVersion", &old_rv),
                ("resourceVersionMatch", "Exact"),
            ],
        )
        .await;
    reply.expect_status(410, "Expired");
    let mut watch = server
        .watch(
            CM,
            &[("watch", "true"), ("resourceVersion", &current.to_string())],
        )
        .await;
    server.delete(&format!("{CM}/old")).await.expect(200);
    watch.expect_event("DELETED", "old").await;
}

/// A watch request that does not answer 200 is a Status like any other error.
#[tokio::test]
async fn watch_errors_are_status_replies() {
    let server = TestServer::start().await;
    let reply = server
        .get_with(CM, &[("watch", "true"), ("resourceVersion", "x")])
        .await;
    reply.expect_status(400, "BadRequest");
    let reply = server
        .get_with(CM, &[("watch", "true"), ("labelSelector", "a in (")])
        .await;
    reply.expect_status(400, "BadRequest");
    // Watches of unknown resources are 404.
    let reply = server.get("/api/v1/watch/widgets").await;
    reply.expect_status(404, "NotFound");
    // A watch with an unreachable timeout still answers headers at once.
    let mut watch = server
        .watch(CM, &[("watch", "true"), ("timeoutSeconds", "30")])
        .await;
    match watch.next_within(Duration::from_millis(200)).await {
        Next::Timeout => {}
        other => panic!("expected nothing on an empty collection, got {other:?}"),
    }
}

/// HTTP/2 without TLS (prior knowledge, as kubectl's transport can use behind a proxy): a
/// list and a watch whose frames arrive as DATA frames.
#[tokio::test]
async fn lists_and_watches_over_http2() {
    let server = TestServer::start().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let listed = client.get(server.url(CM)).send().await.unwrap();
    assert_eq!(listed.version(), reqwest::Version::HTTP_2);
    let body: Value = listed.json().await.unwrap();
    let rv = body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut watch = client
        .get(server.url_with(CM, &[("watch", "true"), ("resourceVersion", &rv)]))
        .send()
        .await
        .unwrap();
    assert_eq!(watch.version(), reqwest::Version::HTTP_2);
    create_cm(&server, &configmap("over-h2")).await;
    let chunk = tokio::time::timeout(Duration::from_secs(5), watch.chunk())
        .await
        .expect("a frame within 5 s")
        .unwrap()
        .expect("the watch goes on");
    let event: Value = serde_json::from_slice(&chunk).unwrap();
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "over-h2");
}

/// `sendInitialEvents=false` without a resourceVersion: no synthetic ADDED for what exists,
/// only changes from now on.
#[tokio::test]
async fn watch_without_initial_events_starts_now() {
    let server = TestServer::start().await;
    create_cm(&server, &configmap("before")).await;
    let mut watch = server
        .watch(
            CM,
            &[
                ("watch", "true"),
                ("sendInitialEvents", "false"),
                ("resourceVersionMatch", "NotOlderThan"),
            ],
        )
        .await;
    watch.expect_quiet(Duration::from_millis(300)).await;
    create_cm(&server, &configmap("after")).await;
    watch.expect_event("ADDED", "after").await;
}
