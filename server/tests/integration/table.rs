//! Server-side printing: GET and LIST answered as a `meta.k8s.io/v1` Table when the Accept
//! header asks for one, as `kubectl get` does.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::server::TestServer;

/// What kubectl sends for `kubectl get`.
const KUBECTL_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// GET `path` with `params` and Accept `accept`: status, Content-Type and JSON body.
async fn get_accept(
    server: &TestServer,
    path: &str,
    params: &[(&str, &str)],
    accept: &str,
) -> (u16, String, Value) {
    let response = server
        .client
        .get(server.url_with(path, params))
        .header("Accept", accept)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.json().await.expect("a JSON body");
    (status, content_type, body)
}

/// GET as kubectl does, asserting a 200 Table.
async fn get_table(server: &TestServer, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, content_type, body) = get_accept(server, path, params, KUBECTL_ACCEPT).await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(content_type, TABLE_CONTENT_TYPE);
    assert_eq!(body["kind"], "Table", "{body:#}");
    assert_eq!(body["apiVersion"], "meta.k8s.io/v1");
    body
}

fn column_names(table: &Value) -> Vec<(String, u64)> {
    table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            for field in ["name", "type", "format", "description", "priority"] {
                assert!(c.get(field).is_some(), "column without {field}: {c}");
            }
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The cells of the row whose object is named `name`, by column name.
fn row_cells(table: &Value, name: &str) -> Vec<(String, Value)> {
    let names = column_names(table);
    let row = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == name)
        .unwrap_or_else(|| panic!("no row {name} in {table:#}"));
    names
        .into_iter()
        .map(|(n, _)| n)
        .zip(row["cells"].as_array().unwrap().iter().cloned())
        .collect()
}

fn cell(table: &Value, name: &str, column: &str) -> Value {
    row_cells(table, name)
        .into_iter()
        .find(|(c, _)| c == column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .1
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]},
    })
}

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test]
async fn pod_list_as_table() {
    let server = TestServer::start().await;
    for name in ["alpha", "beta"] {
        server.post(PODS, &pod(name)).await.expect(201);
    }
    let table = get_table(&server, PODS, &[("limit", "500")]).await;
    assert_eq!(
        column_names(&table),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1),
        ]
        .map(|(n, p)| (n.to_string(), p))
    );
    assert_eq!(table["columnDefinitions"][0]["format"], "name");
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let cells = row_cells(&table, "alpha");
    let cells: Vec<Value> = cells.into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        cells[..4],
        [json!("alpha"), json!("0/1"), json!("Pending"), json!("0")]
    );
    let age = cells[4].as_str().unwrap();
    assert!(age.ends_with('s'), "a fresh pod's age: {age}");
    assert_eq!(
        cells[5..],
        [
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>")
        ]
    );

    // Each row carries the full object by default.
    let object = &rows[0]["object"];
    assert_eq!(object["kind"], "Pod");
    assert_eq!(object["apiVersion"], "v1");
    assert_eq!(object["metadata"]["name"], "alpha");
    assert_eq!(object["metadata"]["namespace"], "default");
    assert_eq!(object["spec"]["containers"][0]["image"], "nginx:1.25");
    assert!(table["metadata"]["resourceVersion"].as_str().is_some());
}

#[tokio::test]
async fn plain_json_unless_a_v1_table_is_asked_for() {
    let server = TestServer::start().await;
    server.post(PODS, &pod("alpha")).await.expect(201);
    for accept in [
        "application/json",
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        "application/json;as=Unknown;v=v1;g=meta.k8s.io,application/json",
    ] {
        let (status, content_type, body) = get_accept(&server, PODS, &[], accept).await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "application/json", "{accept}");
        assert_eq!(body["kind"], "PodList", "{accept}");
    }
}

#[tokio::test]
async fn get_one_object_as_table() {
    let server = TestServer::start().await;
    let created = server.post(PODS, &pod("alpha")).await.expect(201).clone();
    let table = get_table(&server, &format!("{PODS}/alpha"), &[]).await;
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["cells"][0], "alpha");
    assert_eq!(
        rows[0]["object"]["metadata"]["uid"],
        created["metadata"]["uid"]
    );
    assert_eq!(
        table["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    // Not found is still a Status.
    let (status, _, body) =
        get_accept(&server, &format!("{PODS}/missing"), &[], KUBECTL_ACCEPT).await;
    assert_eq!(status, 404);
    assert_eq!(body["kind"], "Status");
}

#[tokio::test]
async fn deployment_columns_come_from_status() {
    let server = TestServer::start().await;
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "main", "image": "nginx:1.25"},
                    {"name": "sidecar", "image": "busybox:1.36"},
                ]},
            },
        },
    });
    server.post(deployments, &deployment).await.expect(201);
    let status = json!({"status": {
        "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 1,
    }});
    server
        .patch(
            &format!("{deployments}/web/status"),
            support::server::MERGE_PATCH,
            &status,
        )
        .await
        .expect(200);

    let table = get_table(&server, deployments, &[]).await;
    let names: Vec<String> = column_names(&table).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(cell(&table, "web", "Ready"), "2/3");
    assert_eq!(cell(&table, "web", "Up-to-date"), 3);
    assert_eq!(cell(&table, "web", "Available"), 1);
    assert_eq!(cell(&table, "web", "Containers"), "main,sidecar");
    assert_eq!(cell(&table, "web", "Images"), "nginx:1.25,busybox:1.36");
    assert_eq!(cell(&table, "web", "Selector"), "app=web");
}

#[tokio::test]
async fn configmap_data_count_and_default_columns() {
    let server = TestServer::start().await;
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
        "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AAE="},
    });
    server.post(configmaps, &cm).await.expect(201);
    let table = get_table(&server, configmaps, &[]).await;
    let names: Vec<String> = column_names(&table).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Name", "Data", "Age"]);
    assert_eq!(cell(&table, "settings", "Data"), 3);

    // A resource without a printer: Name and Age.
    let roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles";
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                      "metadata": {"name": "reader"}, "rules": []});
    server.post(roles, &role).await.expect(201);
    let table = get_table(&server, roles, &[]).await;
    let names: Vec<String> = column_names(&table).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Name", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "reader");

    // Namespaces print their phase.
    let table = get_table(&server, "/api/v1/namespaces/default", &[]).await;
    assert_eq!(cell(&table, "default", "Status"), "Active");
}

#[tokio::test]
async fn table_metadata_carries_continue_with_a_limit() {
    let server = TestServer::start().await;
    for name in ["a", "b", "c"] {
        server.post(PODS, &pod(name)).await.expect(201);
    }
    let first = get_table(&server, PODS, &[("limit", "2")]).await;
    assert_eq!(first["rows"].as_array().unwrap().len(), 2);
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("a continue token");
    assert!(!token.is_empty());
    assert!(first["metadata"]["resourceVersion"].as_str().is_some());
    assert_eq!(first["metadata"]["remainingItemCount"], 1);

    let second = get_table(&server, PODS, &[("limit", "2"), ("continue", token)]).await;
    let rows = second["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["cells"][0], "c");
    assert!(
        second["metadata"]
            .get("continue")
            .is_none_or(|c| c.as_str() == Some("")),
        "{second:#}"
    );
}

#[tokio::test]
async fn include_object_none_and_metadata() {
    let server = TestServer::start().await;
    server.post(PODS, &pod("alpha")).await.expect(201);

    let table = get_table(&server, PODS, &[("includeObject", "None")]).await;
    let row = &table["rows"][0];
    assert_eq!(row["cells"][0], "alpha");
    assert!(row.get("object").is_none(), "{row:#}");

    let table = get_table(&server, PODS, &[("includeObject", "Metadata")]).await;
    let object = &table["rows"][0]["object"];
    assert_eq!(object["kind"], "PartialObjectMetadata");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(object["metadata"]["name"], "alpha");
    assert!(object.get("spec").is_none());

    let table = get_table(&server, PODS, &[("includeObject", "Object")]).await;
    assert_eq!(table["rows"][0]["object"]["kind"], "Pod");

    let (status, _, body) =
        get_accept(&server, PODS, &[("includeObject", "Bogus")], KUBECTL_ACCEPT).await;
    assert_eq!(status, 400, "{body:#}");
}

/// `kubectl get -w` asks for Tables: every watch event's object is a one-row Table (the
/// initial ADDED ones and live changes alike), while plain watches keep plain objects.
#[tokio::test]
async fn watch_events_as_one_row_tables() {
    let server = TestServer::start().await;
    server.post(PODS, &pod("first")).await.expect(201);
    let response = server
        .client
        .get(server.url_with(PODS, &[("watch", "true"), ("timeoutSeconds", "5")]))
        .header("Accept", KUBECTL_ACCEPT)
        .send()
        .await
        .expect("watch request");
    assert_eq!(response.status().as_u16(), 200);
    let mut response = response;
    let mut buffered = Vec::new();
    let mut events: Vec<Value> = Vec::new();
    let mut created = false;
    while events.len() < 2 {
        // A bound on a hang, generous for a loaded machine.
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("a frame within 30 s")
            .expect("read")
            .expect("the watch goes on");
        buffered.extend_from_slice(&chunk);
        while let Some(end) = buffered.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffered.drain(..=end).collect();
            events.push(serde_json::from_slice(&line).expect("a JSON frame"));
        }
        if !created && !events.is_empty() {
            server.post(PODS, &pod("second")).await.expect(201);
            created = true;
        }
    }
    for (event, name) in events.iter().zip(["first", "second"]) {
        assert_eq!(event["type"], "ADDED", "{event:#}");
        let table = &event["object"];
        assert_eq!(table["kind"], "Table", "{event:#}");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["rows"].as_array().map(Vec::len), Some(1));
        assert_eq!(table["rows"][0]["cells"][0], name);
        assert_eq!(table["rows"][0]["cells"][2], "Pending");
        assert_eq!(table["rows"][0]["object"]["metadata"]["name"], name);
        assert_eq!(
            table["metadata"]["resourceVersion"],
            table["rows"][0]["object"]["metadata"]["resourceVersion"]
        );
    }
    let mut plain = server.watch(PODS, &[("watch", "true")]).await;
    let event = plain.next_event().await;
    assert_eq!(
        event["object"]["kind"], "Pod",
        "plain watches are unchanged"
    );
}
