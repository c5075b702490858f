//! A differential harness: the same requests, each with the response kube-apiserver 1.33
//! gives (status code, the headers clients look at, and the body's shape where clients
//! compare it), run against both stores. The expectations come from kube-apiserver's
//! behaviour as its source defines it (`k8s.io/apiserver` filters and response writers,
//! `k8s.io/apimachinery` serializers); a difference that stays is written down in
//! docs/COMPATIBILITY.md instead of here.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{STATUS_KEY_ORDER, TestServer};

const NS: &str = "fidelity";
const CONFIGMAPS: &str = "/api/v1/namespaces/fidelity/configmaps";

/// What a header must be.
enum Header {
    Is(&'static str, &'static str),
    Present(&'static str),
    Absent(&'static str),
}

/// What the body must be.
enum Body {
    /// A JSON object whose top-level keys come in exactly this order.
    KeyOrder(&'static [&'static str]),
    /// A JSON object whose top-level keys are among these, in this order (omitempty fields
    /// may be absent).
    KeysAmong(&'static [&'static str]),
    /// The value at a JSON pointer.
    At(&'static str, Value),
    /// A JSON pointer that resolves (whatever its value, `null` included).
    Has(&'static str),
}

/// One request and what kube-apiserver answers to it.
struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    /// Content-Type and body.
    body: Option<(&'static str, Value)>,
    accept: Option<&'static str>,
    status: u16,
    headers: &'static [Header],
    body_checks: Vec<Body>,
}

const JSON: &str = "application/json";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Every API response: `Cache-Control` from kube's `WithCacheControl`, `Audit-Id` from
/// `WithAuditInit`.
const EVERY_RESPONSE: &[Header] = &[
    Header::Is("cache-control", "no-cache, private"),
    Header::Present("audit-id"),
];

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn cases() -> Vec<Case> {
    let status_body = |code: u16, reason: &str| {
        vec![
            Body::KeysAmong(STATUS_KEY_ORDER),
            Body::At("/kind", json!("Status")),
            Body::At("/code", json!(code)),
            Body::At("/reason", json!(reason)),
        ]
    };
    vec![
        Case {
            name: "create",
            method: Method::POST,
            path: CONFIGMAPS,
            body: Some((JSON, configmap("first"))),
            accept: None,
            status: 201,
            headers: &[Header::Is("content-type", JSON), Header::Absent("warning")],
            body_checks: vec![
                Body::At("/metadata/name", json!("first")),
                Body::Has("/metadata/resourceVersion"),
                Body::Has("/metadata/uid"),
                Body::Has("/metadata/creationTimestamp"),
            ],
        },
        Case {
            name: "create with an unknown field warns",
            method: Method::POST,
            path: CONFIGMAPS,
            body: Some((JSON, {
                let mut cm = configmap("second");
                cm["spec"] = json!({"x": 1});
                cm
            })),
            accept: None,
            status: 201,
            headers: &[Header::Is(
                "warning",
                "299 - \"unknown field \\\"spec\\\"\"",
            )],
            body_checks: vec![Body::At("/metadata/name", json!("second"))],
        },
        Case {
            name: "create again is AlreadyExists",
            method: Method::POST,
            path: CONFIGMAPS,
            body: Some((JSON, configmap("first"))),
            accept: None,
            status: 409,
            headers: &[Header::Is("content-type", JSON)],
            body_checks: status_body(409, "AlreadyExists"),
        },
        Case {
            name: "update at a stale resourceVersion is a Conflict",
            method: Method::PUT,
            path: "/api/v1/namespaces/fidelity/configmaps/first",
            body: Some((JSON, {
                let mut cm = configmap("first");
                cm["metadata"]["resourceVersion"] = json!("1");
                cm
            })),
            accept: None,
            status: 409,
            headers: &[Header::Is("content-type", JSON)],
            body_checks: status_body(409, "Conflict"),
        },
        Case {
            name: "get of a missing object is NotFound",
            method: Method::GET,
            path: "/api/v1/namespaces/fidelity/configmaps/missing",
            body: None,
            accept: None,
            status: 404,
            headers: &[Header::Is("content-type", JSON)],
            body_checks: {
                let mut checks = status_body(404, "NotFound");
                checks.push(Body::At("/details/kind", json!("configmaps")));
                checks
            },
        },
        Case {
            name: "an invalid name is Invalid with causes",
            method: Method::POST,
            path: CONFIGMAPS,
            body: Some((JSON, configmap("Not_Valid"))),
            accept: None,
            status: 422,
            headers: &[Header::Is("content-type", JSON)],
            body_checks: {
                let mut checks = status_body(422, "Invalid");
                checks.push(Body::At("/details/causes/0/field", json!("metadata.name")));
                checks
            },
        },
        Case {
            name: "list",
            method: Method::GET,
            path: CONFIGMAPS,
            body: None,
            accept: None,
            status: 200,
            headers: &[Header::Is("content-type", JSON)],
            body_checks: vec![
                Body::KeyOrder(&["kind", "apiVersion", "metadata", "items"]),
                Body::At("/kind", json!("ConfigMapList")),
                Body::Has("/metadata/resourceVersion"),
            ],
        },
        Case {
            name: "list as a Table",
            method: Method::GET,
            path: CONFIGMAPS,
            body: None,
            accept: Some(TABLE),
            status: 200,
            headers: &[Header::Is("content-type", TABLE)],
            body_checks: vec![
                Body::At("/kind", json!("Table")),
                Body::At("/apiVersion", json!("meta.k8s.io/v1")),
                Body::Has("/columnDefinitions/0/priority"),
                Body::Has("/rows/0/object/metadata/name"),
            ],
        },
        Case {
            name: "delete answers a Success Status",
            method: Method::DELETE,
            path: "/api/v1/namespaces/fidelity/configmaps/second",
            body: None,
            accept: None,
            status: 200,
            headers: &[Header::Is("content-type", JSON)],
            body_checks: vec![
                Body::KeyOrder(&["kind", "apiVersion", "metadata", "status", "details"]),
                Body::At("/status", json!("Success")),
                Body::At("/details/name", json!("second")),
                Body::At("/details/kind", json!("configmaps")),
            ],
        },
        Case {
            name: "a Service has the empty structs Go always writes",
            method: Method::POST,
            path: "/api/v1/namespaces/fidelity/services",
            body: Some((
                JSON,
                json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
            )),
            accept: None,
            status: 201,
            headers: &[Header::Is("content-type", JSON)],
            body_checks: vec![Body::At("/status", json!({"loadBalancer": {}}))],
        },
        Case {
            name: "a Deployment has the empty structs Go always writes",
            method: Method::POST,
            path: "/apis/apps/v1/namespaces/fidelity/deployments",
            body: Some((
                JSON,
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
            )),
            accept: None,
            status: 201,
            headers: &[Header::Is("content-type", JSON)],
            body_checks: vec![
                Body::At("/status", json!({})),
                Body::At("/spec/template/metadata/creationTimestamp", Value::Null),
                Body::At("/spec/template/spec/containers/0/resources", json!({})),
            ],
        },
        Case {
            name: "an unknown resource is NotFound",
            method: Method::GET,
            path: "/api/v1/namespaces/fidelity/nothings",
            body: None,
            accept: None,
            status: 404,
            headers: &[],
            body_checks: vec![],
        },
    ]
}

async fn run(server: &TestServer, case: &Case) {
    let mut request = server
        .client
        .request(case.method.clone(), server.url(case.path));
    if let Some(accept) = case.accept {
        request = request.header("accept", accept);
    }
    if let Some((content_type, body)) = &case.body {
        let bytes = match body {
            Value::String(text) => text.clone().into_bytes(),
            other => serde_json::to_vec(other).unwrap(),
        };
        request = request.header("content-type", *content_type).body(bytes);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let text = String::from_utf8_lossy(&bytes);
    let name = case.name;
    assert_eq!(status, case.status, "{name}: status; body {text}");
    for header in EVERY_RESPONSE.iter().chain(case.headers) {
        match header {
            Header::Is(key, value) => {
                let got = headers.get(*key).map(|v| v.to_str().unwrap());
                assert_eq!(got, Some(*value), "{name}: header {key}");
            }
            Header::Present(key) => assert!(headers.contains_key(*key), "{name}: no {key}"),
            Header::Absent(key) => assert!(!headers.contains_key(*key), "{name}: {key} sent"),
        }
    }
    if case.body_checks.is_empty() {
        return;
    }
    let body: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{name}: body is not JSON ({e}): {text}"));
    for check in &case.body_checks {
        match check {
            Body::KeyOrder(keys) => {
                let got: Vec<&str> = body
                    .as_object()
                    .expect("an object")
                    .keys()
                    .map(String::as_str)
                    .collect();
                assert_eq!(&got, keys, "{name}: key order of {text}");
            }
            Body::KeysAmong(order) => {
                let keys = body.as_object().expect("an object").keys();
                let positions: Vec<Option<usize>> = keys
                    .map(|key| order.iter().position(|known| known == key))
                    .collect();
                assert!(
                    positions.iter().all(Option::is_some) && positions.is_sorted(),
                    "{name}: keys of {text} are not among {order:?} in that order"
                );
            }
            Body::At(pointer, value) => {
                assert_eq!(
                    body.pointer(pointer),
                    Some(value),
                    "{name}: {pointer} in {text}"
                )
            }
            Body::Has(pointer) => {
                assert!(
                    body.pointer(pointer).is_some(),
                    "{name}: no {pointer} in {text}"
                )
            }
        }
    }
}

async fn all_cases(server: &TestServer) {
    server.create_namespace(NS).await;
    for case in cases() {
        run(server, &case).await;
    }
}

on_both_stores!(
    kube_apiserver_shapes_embedded,
    kube_apiserver_shapes_etcd,
    all_cases
);
