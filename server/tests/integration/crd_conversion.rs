//! CRD versions with a conversion webhook (`conversion.strategy: Webhook`): a real HTTPS
//! webhook the test serves on loopback (its certificate from rcgen, its CA in the CRD's
//! `caBundle`) converts between v1 (storage: `spec.size`) and v2 (served: `spec.replicas`).
//! Objects written in v2 are stored in v1 and read back in either version, watched in v2;
//! the webhook sees kube's ConversionReview. A webhook that answers garbage fails reads with
//! kube's message and refuses writes without writing, while other resources keep working.
//! v1 is deprecated: every answer for it carries kube's `Warning`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::server::{MERGE_PATCH, TestServer};

const WIDGETS: &str = "/apis/example.com/v2/namespaces/default/widgets";
const WIDGETS_V1: &str = "/apis/example.com/v1/namespaces/default/widgets";

/// What the webhook does.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Convert,
    Garbage,
}

/// A conversion webhook served over HTTPS on loopback; records every review it gets.
struct Webhook {
    url: String,
    ca_pem: String,
    reviews: Arc<Mutex<Vec<Value>>>,
    mode: Arc<Mutex<Mode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `object` in `desired`: v1's `size` is v2's `replicas`.
fn convert(mut object: Value, desired: &str) -> Value {
    let spec = object["spec"].as_object_mut().expect("a spec");
    let (from, to) = if desired == "example.com/v2" {
        ("size", "replicas")
    } else {
        ("replicas", "size")
    };
    if let Some(value) = spec.remove(from) {
        spec.insert(to.to_string(), value);
    }
    object["apiVersion"] = json!(desired);
    object
}

impl Webhook {
    async fn start() -> Webhook {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "webhook-ca");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Convert));
        let (seen, how) = (reviews.clone(), mode.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen, how) = (acceptor.clone(), seen.clone(), how.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let (seen, how) = (seen.clone(), how.clone());
                            async move {
                                let body = request.into_body().collect().await?.to_bytes();
                                let review: Value =
                                    serde_json::from_slice(&body).unwrap_or_default();
                                seen.lock().unwrap().push(review.clone());
                                let answer = if *how.lock().unwrap() == Mode::Garbage {
                                    Bytes::from_static(b"<html>not a review</html>")
                                } else {
                                    let request = &review["request"];
                                    let desired = request["desiredAPIVersion"].as_str().unwrap();
                                    let converted: Vec<Value> = request["objects"]
                                        .as_array()
                                        .unwrap()
                                        .iter()
                                        .map(|o| convert(o.clone(), desired))
                                        .collect();
                                    Bytes::from(
                                        serde_json::to_vec(&json!({
                                            "apiVersion": "apiextensions.k8s.io/v1",
                                            "kind": "ConversionReview",
                                            "response": {"uid": request["uid"],
                                                         "result": {"status": "Success"},
                                                         "convertedObjects": converted},
                                        }))
                                        .unwrap(),
                                    )
                                };
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(answer)))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Webhook {
            url: format!("https://127.0.0.1:{port}/convert"),
            ca_pem: ca.pem(),
            reviews,
            mode,
            task,
        }
    }

    fn reviews(&self) -> Vec<Value> {
        self.reviews.lock().unwrap().clone()
    }
}

fn crd(webhook: &Webhook) -> Value {
    let schema = |field: &str| {
        json!({"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {field: {"type": "integer"}}}}}})
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "deprecated": true,
                 "schema": schema("size")},
                {"name": "v2", "served": true, "storage": false, "schema": schema("replicas")},
            ],
            "conversion": {"strategy": "Webhook", "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {
                    "url": webhook.url,
                    "caBundle": base64::engine::general_purpose::STANDARD.encode(&webhook.ca_pem),
                }}},
        },
    })
}

/// Waits until the CRD's v2 resource is served.
async fn served(server: &TestServer) {
    for _ in 0..300 {
        if server.get(WIDGETS).await.status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("widgets v2 never served");
}

async fn webhook_converts(server: &TestServer) {
    let webhook = Webhook::start().await;
    server
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd(&webhook),
        )
        .await
        .expect(201);
    served(server).await;
    let mut watch = server.watch(WIDGETS, &[("watch", "true")]).await;

    // Created in v2: stored in v1 (the webhook's field name), answered in v2.
    let widget = json!({"apiVersion": "example.com/v2", "kind": "Widget",
        "metadata": {"name": "a", "labels": {"app": "a"}}, "spec": {"replicas": 3}});
    let created = server.post(WIDGETS, &widget).await;
    let created = created.expect(201);
    assert_eq!(created["apiVersion"], "example.com/v2");
    assert_eq!(created["spec"], json!({"replicas": 3}));
    let key = "/registry/example.com/widgets/default/a";
    let stored = server.backend.get(key).await.unwrap().expect("stored");
    let stored: Value = serde_json::from_slice(&stored.value).unwrap();
    assert_eq!(stored["apiVersion"], "example.com/v1");
    assert_eq!(stored["spec"], json!({"size": 3}));
    let requests: Vec<Value> = webhook
        .reviews()
        .iter()
        .map(|r| r["request"].clone())
        .collect();
    let to_v1 = requests
        .iter()
        .find(|r| r["desiredAPIVersion"] == "example.com/v1")
        .expect("the create was converted to the storage version");
    assert_eq!(
        webhook.reviews()[0]["apiVersion"],
        "apiextensions.k8s.io/v1"
    );
    assert_eq!(webhook.reviews()[0]["kind"], "ConversionReview");
    assert!(!to_v1["uid"].as_str().unwrap().is_empty());
    assert_eq!(to_v1["objects"][0]["spec"], json!({"replicas": 3}));

    // Read in both versions; v1 is deprecated.
    let v2 = server.get(&format!("{WIDGETS}/a")).await;
    assert_eq!(v2.expect(200)["spec"], json!({"replicas": 3}));
    assert!(v2.warnings().is_empty(), "{:?}", v2.warnings());
    let v1 = server.get(&format!("{WIDGETS_V1}/a")).await;
    assert_eq!(v1.expect(200)["spec"], json!({"size": 3}));
    assert_eq!(v1.body["apiVersion"], "example.com/v1");
    assert_eq!(
        v1.warnings(),
        vec!["299 - \"example.com/v1 Widget is deprecated\"".to_string()]
    );
    let list = server.get(WIDGETS).await;
    assert_eq!(list.expect(200)["items"][0]["spec"], json!({"replicas": 3}));

    // The watch in v2 sees converted objects.
    let event = watch.next_event().await;
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["apiVersion"], "example.com/v2");
    assert_eq!(event["object"]["spec"], json!({"replicas": 3}));

    // A patch in v2 sees and answers v2; stored in v1.
    let patched = server
        .patch(
            &format!("{WIDGETS}/a"),
            MERGE_PATCH,
            &json!({"spec": {"replicas": 5}}),
        )
        .await;
    assert_eq!(patched.expect(200)["spec"], json!({"replicas": 5}));
    let event = watch.next_event().await;
    assert_eq!(event["type"], "MODIFIED");
    assert_eq!(event["object"]["spec"], json!({"replicas": 5}));
    let stored: Value =
        serde_json::from_slice(&server.backend.get(key).await.unwrap().unwrap().value).unwrap();
    assert_eq!(stored["spec"], json!({"size": 5}));

    // A webhook answering garbage: reads fail with kube's message, writes write nothing,
    // other resources are served.
    *webhook.mode.lock().unwrap() = Mode::Garbage;
    let failed = server.get(&format!("{WIDGETS}/a")).await;
    assert_eq!(failed.status, 500, "{:#}", failed.body);
    assert!(
        failed
            .message()
            .contains("conversion webhook for example.com/v1, Kind=Widget failed: "),
        "{}",
        failed.message()
    );
    let refused = server
        .patch(
            &format!("{WIDGETS}/a"),
            MERGE_PATCH,
            &json!({"spec": {"replicas": 7}}),
        )
        .await;
    assert_eq!(refused.status, 500, "{:#}", refused.body);
    assert!(
        refused.message().contains("conversion webhook for"),
        "{}",
        refused.message()
    );
    let b = json!({"apiVersion": "example.com/v2", "kind": "Widget",
        "metadata": {"name": "b"}, "spec": {"replicas": 1}});
    let refused = server.post(WIDGETS, &b).await;
    assert_eq!(refused.status, 500, "{:#}", refused.body);
    assert!(
        refused
            .message()
            .contains("conversion webhook for example.com/v2, Kind=Widget failed"),
        "{}",
        refused.message()
    );
    assert!(
        server
            .backend
            .get("/registry/example.com/widgets/default/b")
            .await
            .unwrap()
            .is_none()
    );
    let stored: Value =
        serde_json::from_slice(&server.backend.get(key).await.unwrap().unwrap().value).unwrap();
    assert_eq!(stored["spec"], json!({"size": 5}), "nothing written");
    // The storage version needs no conversion: still served, with its Warning.
    let v1 = server.get(&format!("{WIDGETS_V1}/a")).await;
    assert_eq!(v1.expect(200)["spec"], json!({"size": 5}));
    let configmap = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "still-served"}, "data": {"k": "v"}});
    server
        .post("/api/v1/namespaces/default/configmaps", &configmap)
        .await
        .expect(201);
    server
        .get("/api/v1/namespaces/default/configmaps/still-served")
        .await
        .expect(200);
}

#[tokio::test]
async fn webhook_conversion_on_embedded() {
    webhook_converts(&TestServer::start().await).await;
}

#[tokio::test]
async fn webhook_conversion_on_etcd() {
    let etcd = kubecache_storage::testing::TestEtcd::start();
    webhook_converts(&TestServer::start_on_etcd(&etcd).await).await;
}
