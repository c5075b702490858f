//! Large LISTs, whose JSON body is streamed in chunks as it is sent
//! (`server/src/handlers/list_body.rs`): on the embedded store and on etcd, a list of many
//! objects must parse, hold every object, and be byte for byte the list assembled from the
//! objects' own encodings (what the unstreamed path writes); small lists keep their
//! Content-Length.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kubecache_storage::etcd::EtcdBackend;
use kubecache_storage::testing::TestEtcd;
use serde_json::{Value, json};
use support::server::TestServer;

const CM: &str = "/api/v1/namespaces/default/configmaps";

/// Objects in the large list: with ~1.2 KiB each, ~2 MB of JSON, several times the size
/// above which a body is streamed and many chunks long.
const OBJECTS: usize = 1_600;

fn configmap(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i:05}"), "labels": {"half": (i % 2).to_string()}},
        // Distinct contents, so a misplaced or repeated object cannot go unnoticed.
        "data": {"payload": format!("{i}-{}", "x".repeat(1_100))},
    })
}

/// Creates the objects, 32 requests at a time.
async fn create_all(server: &TestServer) {
    futures::stream::iter(0..OBJECTS)
        .map(|i| async move { server.post(CM, &configmap(i)).await.expect(201).clone() })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

/// GET of `url`: status, headers and the body's bytes, unparsed.
async fn raw(server: &TestServer, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let response = (server.client.get(url))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("read the body").to_vec();
    (status, headers, body)
}

/// Checks one large LIST (`params` as its query) against the objects' own encodings.
async fn check_large_list(server: &TestServer, params: &[(&str, &str)]) {
    let (status, headers, body) = raw(server, &server.url_with(CM, params)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    // Streamed: chunked, no Content-Length.
    assert!(
        headers.get("content-length").is_none(),
        "a large list is streamed: {headers:?}"
    );
    let list: Value = serde_json::from_slice(&body).expect("the streamed body parses");
    assert_eq!(list["kind"], "ConfigMapList");
    let items = list["items"].as_array().expect("items");
    let names: BTreeSet<String> = items
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = (0..OBJECTS).map(|i| format!("cm-{i:05}")).collect();
    assert_eq!(names, expected, "every object, once");
    assert_eq!(items.len(), OBJECTS);
    for item in items {
        let name = item["metadata"]["name"].as_str().unwrap();
        let i: usize = name[3..].parse().unwrap();
        assert_eq!(item["data"], configmap(i)["data"], "{name}'s data");
    }

    // The same bytes as the list assembled from each object's served JSON (a GET from the
    // cache writes an object exactly as the unstreamed list path does).
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap();
    let mut assembled = format!(
        r#"{{"kind":"ConfigMapList","apiVersion":"v1","metadata":{{"resourceVersion":"{rv}"}},"items":["#
    )
    .into_bytes();
    for (n, item) in items.iter().enumerate() {
        let name = item["metadata"]["name"].as_str().unwrap();
        let url = server.url_with(&format!("{CM}/{name}"), &[("resourceVersion", "0")]);
        let (status, _, object) = raw(server, &url).await;
        assert_eq!(status, 200);
        if n > 0 {
            assembled.push(b',');
        }
        assembled.extend_from_slice(&object);
    }
    assembled.extend_from_slice(b"]}");
    assert!(
        body == assembled,
        "streamed body differs from the assembled list ({} vs {} bytes)",
        body.len(),
        assembled.len()
    );
}

async fn large_list_streams(server: &TestServer) {
    create_all(server).await;
    // From the cache at any revision, and consistent (the cache proven current first).
    check_large_list(server, &[("resourceVersion", "0")]).await;
    check_large_list(server, &[]).await;

    // Across namespaces (the whole prefix, walked without comparing keys): every object.
    let all = server.url_with("/api/v1/configmaps", &[("resourceVersion", "0")]);
    let (status, headers, body) = raw(server, &all).await;
    assert_eq!(status, 200);
    assert!(headers.get("content-length").is_none());
    let list: Value = serde_json::from_slice(&body).expect("the streamed body parses");
    let in_default: BTreeSet<&str> = (list["items"].as_array().unwrap().iter())
        .filter(|item| item["metadata"]["namespace"] == "default")
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(in_default.len(), OBJECTS);

    // A small list (a page, a selected few) is still one buffer with its length.
    let (status, headers, body) = raw(server, &server.url_with(CM, &[("limit", "3")])).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-length").map(|v| v.to_str().unwrap()),
        Some(body.len().to_string().as_str()),
        "a small list keeps its Content-Length"
    );
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert!(page["metadata"]["continue"].is_string());

    // A selector's half is still large: streamed, and only the selected objects.
    let (status, headers, body) = raw(
        server,
        &server.url_with(CM, &[("labelSelector", "half=1"), ("resourceVersion", "0")]),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("content-length").is_none());
    let half: Value = serde_json::from_slice(&body).unwrap();
    let items = half["items"].as_array().unwrap();
    assert_eq!(items.len(), OBJECTS / 2);
    assert!(items.iter().all(|i| i["metadata"]["labels"]["half"] == "1"));
}

#[tokio::test]
async fn large_list_streams_embedded() {
    let server = TestServer::start().await;
    large_list_streams(&server).await;
}

#[tokio::test]
async fn large_list_streams_etcd() {
    let etcd = tokio::task::spawn_blocking(TestEtcd::start)
        .await
        .expect("start etcd");
    let backend = EtcdBackend::connect(&[etcd.endpoint()], Default::default())
        .await
        .expect("connect to etcd");
    let server = TestServer::start_with(Arc::new(backend)).await;
    large_list_streams(&server).await;
}
