//! Discovery: aggregated (`apidiscovery.k8s.io/v2`) documents for `GET /api` and `GET /apis`
//! when the Accept header asks for them (as kubectl does), the legacy documents otherwise.

use crate::support;

use kubecache_apimachinery::registry::Registry;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, VARY};
use serde_json::{Value, json};
use support::server::TestServer;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// Exactly what kubectl 1.33 sends.
const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

async fn get_accept(server: &TestServer, path: &str, accept: Option<&str>) -> (HeaderMap, Value) {
    let mut request = server
        .client
        .get(server.url(path))
        .timeout(std::time::Duration::from_secs(15));
    if let Some(accept) = accept {
        request = request.header(ACCEPT, accept);
    }
    let response = request.send().await.expect("discovery request");
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("read body");
    let body: Value = serde_json::from_slice(&bytes).expect("JSON body");
    (headers, body)
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(CONTENT_TYPE)
        .expect("a Content-Type")
        .to_str()
        .unwrap()
}

fn assert_vary_accept(headers: &HeaderMap) {
    let vary = headers.get(VARY).expect("a Vary header").to_str().unwrap();
    assert!(vary.contains("Accept"), "Vary: {vary}");
}

#[track_caller]
fn assert_list(body: &Value) -> &Vec<Value> {
    assert_eq!(body["apiVersion"], "apidiscovery.k8s.io/v2", "{body:#}");
    assert_eq!(body["kind"], "APIGroupDiscoveryList");
    assert_eq!(body["metadata"], json!({}));
    body["items"].as_array().expect("items")
}

/// Every (group, version, resource entry) of aggregated documents.
fn entries(items: &[Value]) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for item in items {
        let group = item["metadata"]["name"].as_str().unwrap().to_string();
        for version in item["versions"].as_array().unwrap() {
            assert_eq!(version["freshness"], "Current", "{version:#}");
            let v = version["version"].as_str().unwrap().to_string();
            for resource in version["resources"].as_array().unwrap() {
                out.push((group.clone(), v.clone(), resource.clone()));
            }
        }
    }
    out
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn aggregated_core_discovery() {
    let server = TestServer::start().await;
    let (headers, body) = get_accept(&server, "/api", Some(KUBECTL_ACCEPT)).await;
    assert_eq!(content_type(&headers), AGGREGATED);
    assert_vary_accept(&headers);
    let items = assert_list(&body);
    assert_eq!(items.len(), 1, "{body:#}");
    assert_eq!(items[0]["metadata"]["name"], "");
    let versions = items[0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["version"], "v1");

    let pods = versions[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "pods")
        .expect("pods");
    assert_eq!(
        pods["responseKind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(pods["scope"], "Namespaced");
    assert_eq!(pods["singularResource"], "pod");
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    let namespaces = versions[0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "namespaces")
        .expect("namespaces");
    assert_eq!(namespaces["scope"], "Cluster");
    assert!(
        !string_list(&namespaces["verbs"]).contains(&"deletecollection".to_string()),
        "{namespaces:#}"
    );
}

#[tokio::test]
async fn aggregated_discovery_lists_every_registered_resource_once() {
    let server = TestServer::start().await;
    let (core_headers, core) = get_accept(&server, "/api", Some(AGGREGATED)).await;
    let (group_headers, groups) =
        get_accept(&server, "/apis?timeout=32s", Some(KUBECTL_ACCEPT)).await;
    assert_eq!(content_type(&core_headers), AGGREGATED);
    assert_eq!(content_type(&group_headers), AGGREGATED);
    assert_vary_accept(&group_headers);

    let group_items = assert_list(&groups);
    assert!(
        group_items
            .iter()
            .all(|item| item["metadata"]["name"] != ""),
        "the core group belongs to /api only"
    );
    let registry = Registry::builtin().snapshot();
    let named: Vec<String> = registry
        .groups()
        .into_iter()
        .map(|(g, _)| g)
        .filter(|g| !g.is_empty())
        .collect();
    let served: Vec<&str> = group_items
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(served, named, "one item per group");

    let mut all = entries(assert_list(&core));
    all.extend(entries(group_items));
    assert_eq!(all.len(), registry.len(), "no extra entries");
    for r in registry.iter() {
        let found: Vec<&Value> = all
            .iter()
            .filter(|(g, v, e)| {
                *g == r.group && *v == r.version && e["resource"] == r.resource.as_str()
            })
            .map(|(_, _, e)| e)
            .collect();
        assert_eq!(found.len(), 1, "{}/{} {}", r.group, r.version, r.resource);
        let entry = found[0];
        assert_eq!(
            entry["responseKind"],
            json!({"group": r.group, "version": r.version, "kind": r.kind}),
            "{entry:#}"
        );
        let scope = if r.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        };
        assert_eq!(entry["scope"], scope, "{entry:#}");
        assert_eq!(entry["singularResource"], r.singular, "{entry:#}");
        assert_eq!(string_list(&entry["verbs"]), r.verbs(), "{entry:#}");
        assert_eq!(
            string_list(&entry["shortNames"]),
            r.short_names,
            "{entry:#}"
        );
        assert_eq!(string_list(&entry["categories"]), r.categories, "{entry:#}");
        let subresources: Vec<&str> = entry["subresources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s["subresource"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            subresources.contains(&"status"),
            r.status_subresource,
            "{entry:#}"
        );
        assert_eq!(
            subresources.contains(&"scale"),
            r.scale_subresource,
            "{entry:#}"
        );
    }
}

#[tokio::test]
async fn aggregated_deployments_have_status_and_scale() {
    let server = TestServer::start().await;
    let (_, body) = get_accept(&server, "/apis", Some(KUBECTL_ACCEPT)).await;
    let apps = assert_list(&body)
        .iter()
        .find(|item| item["metadata"]["name"] == "apps")
        .expect("apps group");
    assert_eq!(apps["versions"][0]["version"], "v1");
    let deployments = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .expect("deployments");
    assert_eq!(
        deployments["responseKind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    assert_eq!(deployments["scope"], "Namespaced");
    assert_eq!(deployments["singularResource"], "deployment");
    assert_eq!(deployments["shortNames"], json!(["deploy"]));
    assert_eq!(deployments["categories"], json!(["all"]));
    let subresource = |name: &str| {
        deployments["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == name)
            .unwrap_or_else(|| panic!("{name} subresource: {deployments:#}"))
            .clone()
    };
    let status = subresource("status");
    assert_eq!(
        status["responseKind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    assert_eq!(status["verbs"], json!(["get", "patch", "update"]));
    let scale = subresource("scale");
    assert_eq!(
        scale["responseKind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
}

#[tokio::test]
async fn legacy_documents_without_the_aggregated_accept() {
    let server = TestServer::start().await;
    for accept in [
        None,
        Some("application/json"),
        Some("application/json, */*"),
        // Only v2beta1 (not served): legacy.
        Some(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
        ),
        // Plain JSON preferred by order.
        Some(
            "application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        ),
    ] {
        let (headers, core) = get_accept(&server, "/api", accept).await;
        assert_eq!(content_type(&headers), "application/json", "{accept:?}");
        assert_vary_accept(&headers);
        assert_eq!(core["kind"], "APIVersions", "{accept:?}");
        assert_eq!(core["versions"], json!(["v1"]));

        let (headers, groups) = get_accept(&server, "/apis", accept).await;
        assert_eq!(content_type(&headers), "application/json", "{accept:?}");
        assert_eq!(groups["kind"], "APIGroupList", "{accept:?}");
        let apps = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "apps")
            .expect("apps");
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    }

    // The per-group-version documents are unchanged, whatever the Accept.
    let (headers, apps) = get_accept(&server, "/apis/apps/v1", Some(KUBECTL_ACCEPT)).await;
    assert_eq!(content_type(&headers), "application/json");
    assert_eq!(apps["kind"], "APIResourceList");
    let names = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect::<Vec<_>>();
    assert!(names.contains(&"deployments"), "{names:?}");
    assert!(names.contains(&"deployments/scale"), "{names:?}");
}
