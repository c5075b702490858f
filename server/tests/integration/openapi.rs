//! OpenAPI v3 over HTTP: the `/openapi/v3` index, every document it names, the schemas and
//! operations kubectl reads (the `fieldValidation` parameter on patch operations, the kinds
//! `explain` looks up), and kube-apiserver's hash caching (immutable with the current hash,
//! 301 with an outdated one, `Etag` / `If-None-Match`).

use crate::support;

use std::time::Duration;

use kubecache_apimachinery::patch::PATCH_TYPES;
use kubecache_apimachinery::registry::Registry;
use kubecache_core::registry::ResourceInfo;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_TYPE, ETAG, EXPIRES, HeaderMap, IF_NONE_MATCH, LOCATION,
};
use serde_json::{Value, json};
use support::server::TestServer;

const SMP: &str = "application/strategic-merge-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// A fetched response: status, headers, raw body.
struct Fetched {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Fetched {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }

    fn header(&self, name: reqwest::header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// GET `path_and_query` without following redirects, with extra headers.
async fn fetch(server: &TestServer, path_and_query: &str, headers: &[(&str, &str)]) -> Fetched {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client
        .get(server.url(path_and_query))
        .timeout(Duration::from_secs(30));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    Fetched {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

async fn index(server: &TestServer) -> Value {
    let reply = fetch(server, "/openapi/v3", &[]).await;
    assert_eq!(reply.status, 200);
    reply.json()["paths"].clone()
}

/// The `serverRelativeURL` of `path` in the index.
async fn url_of(server: &TestServer, path: &str) -> String {
    index(server).await[path]["serverRelativeURL"]
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not in the index"))
        .to_string()
}

/// The document of a group-version, fetched by its index URL.
async fn gv_document(server: &TestServer, group: &str, version: &str) -> Value {
    let path = if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    };
    let url = url_of(server, &path).await;
    let reply = fetch(server, &url, &[]).await;
    assert_eq!(reply.status, 200, "GET {url}");
    reply.json()
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn prefix(r: &ResourceInfo) -> String {
    if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    }
}

/// The collection and item paths of a resource, as `kubectl explain` searches them.
fn collection_path(r: &ResourceInfo) -> String {
    if r.namespaced {
        format!("{}/namespaces/{{namespace}}/{}", prefix(r), r.resource)
    } else {
        format!("{}/{}", prefix(r), r.resource)
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// Every `$ref` target in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    // (JSONSchemaProps has a property named `$ref`.)
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The schema in `doc` whose `x-kubernetes-group-version-kind` names this kind (as
/// `kubectl explain` finds it).
fn schema_of<'a>(doc: &'a Value, group: &str, version: &str, kind: &str) -> Option<&'a Value> {
    let wanted = gvk(group, version, kind);
    doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|list| list.contains(&wanted))
        })
}

fn has_query_param(op: &Value, name: &str) -> bool {
    op["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "query"))
}

#[tokio::test]
async fn index_names_every_group_version_with_a_content_hash() {
    let server = TestServer::start().await;
    let reply = fetch(&server, "/openapi/v3", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header(CONTENT_TYPE), Some("application/json"));
    assert!(reply.header(ETAG).is_some_and(|e| e.starts_with('"')));
    let paths = reply.json()["paths"].clone();
    let registry = Registry::builtin().snapshot();
    let mut expected = vec!["api".to_string(), "apis".to_string(), "version".to_string()];
    for (group, versions) in registry.groups() {
        if !group.is_empty() {
            expected.push(format!("apis/{group}"));
        }
        for version in versions {
            expected.push(gv_path(&group, &version));
        }
    }
    let mut listed: Vec<String> = paths.as_object().unwrap().keys().cloned().collect();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    for (path, entry) in paths.as_object().unwrap() {
        let url = entry["serverRelativeURL"].as_str().unwrap();
        let hash = url
            .strip_prefix(&format!("/openapi/v3/{path}?hash="))
            .unwrap_or_else(|| panic!("{url}"));
        assert_eq!(hash.len(), 32, "{url}");
        assert!(
            hash.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
            "{url}"
        );
    }
    // The index is stable: the same bytes, the same Etag.
    let again = fetch(&server, "/openapi/v3", &[]).await;
    assert_eq!(again.body, reply.body);
    assert_eq!(again.header(ETAG), reply.header(ETAG));
}

#[tokio::test]
async fn every_document_parses_and_resolves_its_references() {
    let server = TestServer::start().await;
    let paths = index(&server).await;
    for (path, entry) in paths.as_object().unwrap() {
        let url = entry["serverRelativeURL"].as_str().unwrap();
        let reply = fetch(&server, url, &[("Accept", "application/json")]).await;
        assert_eq!(reply.status, 200, "{url}");
        assert_eq!(reply.header(CONTENT_TYPE), Some("application/json"));
        let doc = reply.json();
        assert_eq!(doc["openapi"], "3.0.0", "{path}");
        assert_eq!(doc["info"]["title"], "Kubernetes");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(!schemas.is_empty(), "{path}");
        let mut targets = Vec::new();
        refs(&doc, &mut targets);
        for target in targets {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{path}: reference {target}"));
            assert!(schemas.contains_key(name), "{path}: dangling {target}");
        }
        // Operation ids are unique within a document.
        let mut ids = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for method in ["get", "put", "post", "patch", "delete"] {
                if let Some(id) = item[method]["operationId"].as_str() {
                    ids.push(id.to_string());
                }
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{path}: duplicate operationId");
    }
}

#[tokio::test]
async fn every_built_in_kind_has_its_schema_and_paths() {
    let server = TestServer::start().await;
    let registry = Registry::builtin().snapshot();
    for (group, versions) in registry.groups() {
        let group = group.as_str();
        for version in versions.iter().map(String::as_str) {
            let doc = gv_document(&server, group, version).await;
            for r in registry.in_group_version(group, version) {
                let schema = schema_of(&doc, group, version, &r.kind)
                    .unwrap_or_else(|| panic!("no schema for {group}/{version} {}", &r.kind));
                assert_eq!(schema["type"], "object", "{}", &r.kind);
                assert!(
                    schema["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty())
                );
                assert!(schema["properties"]["metadata"].is_object(), "{}", &r.kind);
                let list = schema_of(&doc, group, version, &format!("{}List", &r.kind))
                    .unwrap_or_else(|| panic!("no list schema for {}", &r.kind));
                assert_eq!(list["properties"]["items"]["type"], "array");

                // `kubectl explain` finds the kind through the collection and item paths.
                let collection = &doc["paths"][collection_path(r)];
                assert_eq!(
                    collection["get"]["x-kubernetes-action"], "list",
                    "{}",
                    r.kind
                );
                assert_eq!(
                    collection["get"]["x-kubernetes-group-version-kind"],
                    gvk(group, version, &r.kind)
                );
                assert_eq!(collection["post"]["x-kubernetes-action"], "post");
                let item = &doc["paths"][format!("{}/{{name}}", collection_path(r))];
                for (method, action) in [
                    ("get", "get"),
                    ("put", "put"),
                    ("patch", "patch"),
                    ("delete", "delete"),
                ] {
                    assert_eq!(
                        item[method]["x-kubernetes-action"], action,
                        "{} {method}",
                        r.kind
                    );
                    assert!(item[method]["operationId"].is_string());
                }
                assert_eq!(
                    item["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == "namespace" && p["in"] == "path"),
                    r.namespaced,
                    "{}",
                    r.kind
                );
                if r.supports("deletecollection") {
                    let delete = &collection["delete"];
                    assert_eq!(delete["x-kubernetes-action"], "deletecollection");
                    assert!(has_query_param(delete, "labelSelector"), "{}", &r.kind);
                    assert!(has_query_param(delete, "propagationPolicy"), "{}", &r.kind);
                    assert!(!has_query_param(delete, "watch"), "{}", &r.kind);
                } else {
                    assert!(collection.get("delete").is_none(), "{}", &r.kind);
                }
                let watch = if r.namespaced {
                    format!(
                        "{}/watch/namespaces/{{namespace}}/{}",
                        prefix(r),
                        r.resource
                    )
                } else {
                    format!("{}/watch/{}", prefix(r), r.resource)
                };
                assert_eq!(
                    doc["paths"][&watch]["get"]["x-kubernetes-action"],
                    "watchlist"
                );
                assert_eq!(
                    doc["paths"][format!("{watch}/{{name}}")]["get"]["x-kubernetes-action"],
                    "watch"
                );
                let status = &doc["paths"][format!("{}/{{name}}/status", collection_path(r))];
                assert_eq!(status.is_object(), r.status_subresource, "{}", &r.kind);
                let scale = &doc["paths"][format!("{}/{{name}}/scale", collection_path(r))];
                assert_eq!(scale.is_object(), r.scale_subresource, "{}", &r.kind);
                if r.scale_subresource {
                    assert_eq!(
                        scale["patch"]["x-kubernetes-group-version-kind"],
                        gvk("autoscaling", "v1", "Scale")
                    );
                    assert!(schema_of(&doc, "autoscaling", "v1", "Scale").is_some());
                }
            }
        }
    }
}

/// What kubectl's `queryParamVerifierV3` does: every patch operation of a kind must carry
/// an operation-level `fieldValidation` query parameter, or kubectl validates client-side
/// (and, without `/openapi/v2`, fails).
#[tokio::test]
async fn patch_operations_carry_field_validation() {
    let server = TestServer::start().await;
    let registry = Registry::builtin().snapshot();
    for (group, versions) in registry.groups() {
        let group = group.as_str();
        for version in versions.iter().map(String::as_str) {
            let doc = gv_document(&server, group, version).await;
            let mut patches = 0;
            for (path, item) in doc["paths"].as_object().unwrap() {
                if let Some(op) = item.get("patch") {
                    patches += 1;
                    assert_eq!(op["x-kubernetes-action"], "patch", "{path}");
                    assert!(
                        op["x-kubernetes-group-version-kind"]["kind"].is_string(),
                        "{path}"
                    );
                    assert!(has_query_param(op, "fieldValidation"), "{path}");
                    assert!(has_query_param(op, "fieldManager"), "{path}");
                    assert!(has_query_param(op, "dryRun"), "{path}");
                    assert!(has_query_param(op, "force"), "{path}");
                    // Every patch type the server takes, strategic merge patch and
                    // server-side apply included.
                    let content = op["requestBody"]["content"].as_object().unwrap();
                    for media in PATCH_TYPES {
                        assert!(content.contains_key(*media), "{path}: {media}");
                    }
                    assert!(content.contains_key(SMP), "{path}");
                    assert!(content.contains_key(APPLY), "{path}");
                    assert_eq!(content.len(), PATCH_TYPES.len(), "{path}");
                    // Responses in JSON and protobuf.
                    let ok = op["responses"]["200"]["content"].as_object().unwrap();
                    assert!(ok.contains_key("application/json"), "{path}");
                    assert!(ok.contains_key(PROTOBUF), "{path}");
                }
                for method in ["post", "put"] {
                    if let Some(op) = item.get(method) {
                        assert!(has_query_param(op, "fieldValidation"), "{path} {method}");
                    }
                }
            }
            assert!(patches > 0, "{group}/{version}");
            for r in registry.in_group_version(group, version) {
                let wanted = gvk(group, version, &r.kind);
                let found = doc["paths"].as_object().unwrap().values().any(|item| {
                    item["patch"]["x-kubernetes-group-version-kind"] == wanted
                        && has_query_param(&item["patch"], "fieldValidation")
                });
                assert!(found, "no patch operation for {wanted}");
            }
        }
    }
}

/// The merge extensions of a few properties, as kube 1.33 publishes them.
fn assert_merge_extensions(definitions: &Value, doc: &str) {
    let prop = |definition: &str, property: &str| {
        let value = &definitions[definition]["properties"][property];
        assert!(value.is_object(), "{doc}: no {definition}.{property}");
        value.clone()
    };
    let ext = |value: &Value, name: &str| value.get(name).cloned().unwrap_or(Value::Null);
    let pod_spec = "io.k8s.api.core.v1.PodSpec";
    let containers = prop(pod_spec, "containers");
    assert_eq!(
        ext(&containers, "x-kubernetes-patch-merge-key"),
        "name",
        "{doc}"
    );
    assert_eq!(
        ext(&containers, "x-kubernetes-patch-strategy"),
        "merge",
        "{doc}"
    );
    assert_eq!(ext(&containers, "x-kubernetes-list-type"), "map", "{doc}");
    assert_eq!(
        ext(&containers, "x-kubernetes-list-map-keys"),
        json!(["name"]),
        "{doc}"
    );
    let ports = prop("io.k8s.api.core.v1.Container", "ports");
    assert_eq!(
        ext(&ports, "x-kubernetes-patch-merge-key"),
        "containerPort",
        "{doc}"
    );
    assert_eq!(ext(&ports, "x-kubernetes-patch-strategy"), "merge", "{doc}");
    assert_eq!(ext(&ports, "x-kubernetes-list-type"), "map", "{doc}");
    assert_eq!(
        ext(&ports, "x-kubernetes-list-map-keys"),
        json!(["containerPort", "protocol"]),
        "{doc}"
    );
    let finalizers = prop(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
    );
    assert_eq!(
        ext(&finalizers, "x-kubernetes-patch-strategy"),
        "merge",
        "{doc}"
    );
    assert_eq!(ext(&finalizers, "x-kubernetes-list-type"), "set", "{doc}");
    assert_eq!(
        ext(&finalizers, "x-kubernetes-patch-merge-key"),
        Value::Null,
        "{doc}"
    );
    let volumes = prop(pod_spec, "volumes");
    assert_eq!(
        ext(&volumes, "x-kubernetes-patch-strategy"),
        "merge,retainKeys",
        "{doc}"
    );
    assert_eq!(
        ext(&volumes, "x-kubernetes-patch-merge-key"),
        "name",
        "{doc}"
    );
    let strategy = prop("io.k8s.api.apps.v1.DeploymentSpec", "strategy");
    assert_eq!(
        ext(&strategy, "x-kubernetes-patch-strategy"),
        "retainKeys",
        "{doc}"
    );
    assert_eq!(
        ext(&strategy, "x-kubernetes-patch-merge-key"),
        Value::Null,
        "{doc}"
    );
    // Declared atomic lists and maps; atomic structs on their definition.
    let args = prop("io.k8s.api.core.v1.Container", "args");
    assert_eq!(ext(&args, "x-kubernetes-list-type"), "atomic", "{doc}");
    assert_eq!(
        ext(&args, "x-kubernetes-patch-strategy"),
        Value::Null,
        "{doc}"
    );
    assert_eq!(
        ext(&prop(pod_spec, "nodeSelector"), "x-kubernetes-map-type"),
        "atomic",
        "{doc}"
    );
    assert_eq!(
        ext(
            &definitions["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"],
            "x-kubernetes-map-type"
        ),
        "atomic",
        "{doc}"
    );
    // Properties without a strategy carry none.
    let image = prop("io.k8s.api.core.v1.Container", "image");
    assert!(
        image
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("x-kubernetes-")),
        "{doc}: {image}"
    );
}

/// The merge extensions are published in the v3 documents and in `/openapi/v2`, and the
/// patch operations list strategic merge patch, so kubectl builds client-side apply patches
/// from them.
#[tokio::test]
async fn merge_extensions_are_published_in_v3_and_v2() {
    let server = TestServer::start().await;
    let core = gv_document(&server, "", "v1").await;
    let apps = gv_document(&server, "apps", "v1").await;
    let mut v3 = core["components"]["schemas"].as_object().unwrap().clone();
    v3.extend(apps["components"]["schemas"].as_object().unwrap().clone());
    assert_merge_extensions(&Value::Object(v3), "v3");
    let patch = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert!(patch["requestBody"]["content"].get(SMP).is_some());
    let v2 = fetch(&server, "/openapi/v2", &[]).await.json();
    assert_merge_extensions(&v2["definitions"], "v2");
}

#[tokio::test]
async fn schemas_carry_kube_names_descriptions_and_references() {
    let server = TestServer::start().await;
    let core = gv_document(&server, "", "v1").await;
    let schemas = &core["components"]["schemas"];
    let pod = &schemas["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    assert_eq!(
        pod["properties"]["spec"]["allOf"],
        json!([{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}])
    );
    assert_eq!(
        pod["properties"]["metadata"]["allOf"],
        json!([{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}])
    );
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert!(
        containers["description"]
            .as_str()
            .unwrap()
            .starts_with("List of containers belonging to the pod.")
    );
    assert_eq!(
        containers["items"]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.Container"
    );
    let container = &schemas["io.k8s.api.core.v1.Container"];
    assert_eq!(container["required"], json!(["name"]));
    assert_eq!(container["properties"]["image"]["type"], "string");
    let port = &schemas["io.k8s.api.core.v1.ContainerPort"]["properties"]["containerPort"];
    assert_eq!(port["type"], "integer");
    assert_eq!(port["format"], "int32");
    assert_eq!(
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"],
        "date-time"
    );
    assert!(schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"].is_object());
    // A document holds what its kinds use, not every definition.
    assert!(schemas.get("io.k8s.api.apps.v1.Deployment").is_none());
    let apps = gv_document(&server, "apps", "v1").await;
    let apps_schemas = &apps["components"]["schemas"];
    assert!(apps_schemas["io.k8s.api.core.v1.PodTemplateSpec"].is_object());
    assert!(apps_schemas["io.k8s.api.core.v1.Container"].is_object());
    assert!(apps_schemas.get("io.k8s.api.core.v1.Pod").is_none());
    assert!(apps_schemas.get("io.k8s.api.core.v1.ConfigMap").is_none());
}

#[tokio::test]
async fn the_current_hash_is_immutable_and_an_old_one_redirects() {
    let server = TestServer::start().await;
    let url = url_of(&server, "apis/apps/v1").await;
    let hash = url.split("hash=").nth(1).unwrap().to_string();

    let current = fetch(&server, &url, &[]).await;
    assert_eq!(current.status, 200);
    assert_eq!(current.header(CACHE_CONTROL), Some("public, immutable"));
    assert!(current.header(EXPIRES).is_some());
    let etag = format!("\"{hash}\"");
    assert_eq!(current.header(ETAG), Some(etag.as_str()));

    // Without a hash: the same document and Etag, no long-lived caching (the filter chain's
    // default, kube's WithCacheControl).
    let plain = fetch(&server, "/openapi/v3/apis/apps/v1", &[]).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body, current.body);
    assert_eq!(plain.header(ETAG), Some(etag.as_str()));
    assert_eq!(plain.header(CACHE_CONTROL), Some("no-cache, private"));

    // An outdated hash: a permanent redirect to the current URL.
    let old = fetch(
        &server,
        "/openapi/v3/apis/apps/v1?hash=0123456789ABCDEF",
        &[],
    )
    .await;
    assert_eq!(old.status, 301);
    assert_eq!(old.header(LOCATION), Some(url.as_str()));

    // The Etag revalidates.
    let revalidated = fetch(&server, &url, &[(IF_NONE_MATCH.as_str(), &etag)]).await;
    assert_eq!(revalidated.status, 304);
    assert!(revalidated.body.is_empty());
    let other = fetch(&server, &url, &[(IF_NONE_MATCH.as_str(), "\"nope\"")]).await;
    assert_eq!(other.status, 200);

    // The index revalidates too.
    let index = fetch(&server, "/openapi/v3", &[]).await;
    let index_etag = index.header(ETAG).unwrap().to_string();
    let again = fetch(
        &server,
        "/openapi/v3",
        &[(IF_NONE_MATCH.as_str(), &index_etag)],
    )
    .await;
    assert_eq!(again.status, 304);
}

#[tokio::test]
async fn documents_are_served_as_json_only() {
    let server = TestServer::start().await;
    let url = url_of(&server, "api/v1").await;
    // What kube-openapi calls the deprecated protobuf type, preferred, then JSON: JSON.
    let both = fetch(
        &server,
        &url,
        &[(
            ACCEPT.as_str(),
            "application/com.github.proto-openapi.spec.v3@v1.0+protobuf, application/json",
        )],
    )
    .await;
    assert_eq!(both.status, 200);
    assert_eq!(both.header(CONTENT_TYPE), Some("application/json"));
    both.json();
    let any = fetch(&server, &url, &[(ACCEPT.as_str(), "*/*")]).await;
    assert_eq!(any.status, 200);
    // Protobuf alone is refused with a Status.
    let proto = fetch(
        &server,
        &url,
        &[(
            ACCEPT.as_str(),
            "application/com.github.proto-openapi.spec.v3.v1.0+protobuf",
        )],
    )
    .await;
    assert_eq!(proto.status, 406);
    assert_eq!(proto.json()["reason"], "NotAcceptable");
}

#[tokio::test]
async fn unknown_documents_are_not_found() {
    let server = TestServer::start().await;
    for path in [
        "/openapi/v3/apis/nope.example.com/v1",
        "/openapi/v3/api/v2",
        "/openapi/v1",
        "/openapi",
    ] {
        let reply = fetch(&server, path, &[]).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.json()["reason"], "NotFound", "{path}");
    }
    let post = server.post("/openapi/v3", &json!({})).await;
    assert_eq!(post.status, 405);
}

/// `/openapi/v2`: the definitions kubectl validates `kind: List` manifests against, as
/// JSON and as the protobuf kubectl asks for.
#[tokio::test]
async fn openapi_v2_serves_the_definitions() {
    let server = TestServer::start().await;
    let reply = fetch(&server, "/openapi/v2", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header(CONTENT_TYPE), Some("application/json"));
    let doc = reply.json();
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["paths"], json!({}));
    let definitions = doc["definitions"].as_object().unwrap();
    let registry = Registry::builtin().snapshot();
    for r in registry.iter() {
        let wanted = gvk(&r.group, &r.version, &r.kind);
        assert!(
            definitions
                .values()
                .any(|d| d["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|l| l.contains(&wanted))),
            "no v2 definition for {wanted}"
        );
    }
    assert_eq!(
        definitions["io.k8s.api.core.v1.Pod"]["properties"]["spec"],
        json!({
            "$ref": "#/definitions/io.k8s.api.core.v1.PodSpec",
            "description": definitions["io.k8s.api.core.v1.Pod"]["properties"]["spec"]["description"],
        })
    );
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    for target in targets {
        let name = target
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("reference {target}"));
        assert!(definitions.contains_key(name), "dangling {target}");
    }

    // What kubectl sends; the answer's type is one Go's mime parser accepts.
    let proto = fetch(
        &server,
        "/openapi/v2",
        &[(
            ACCEPT.as_str(),
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )],
    )
    .await;
    assert_eq!(proto.status, 200);
    assert_eq!(
        proto.header(CONTENT_TYPE),
        Some("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    );
    // Document.swagger (field 1) = "2.0" first, then the definitions.
    assert_eq!(&proto.body[..5], b"\x0a\x032.0");
    assert!(proto.body.len() > 100_000);
    let etag = proto.header(ETAG).unwrap().to_string();
    let again = fetch(
        &server,
        "/openapi/v2",
        &[
            (
                ACCEPT.as_str(),
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            ),
            (IF_NONE_MATCH.as_str(), &etag),
        ],
    )
    .await;
    assert_eq!(again.status, 304);
    let refused = fetch(&server, "/openapi/v2", &[(ACCEPT.as_str(), "text/plain")]).await;
    assert_eq!(refused.status, 406);
}
