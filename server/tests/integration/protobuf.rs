//! `application/vnd.kubernetes.protobuf` over HTTP, on the embedded store and on a real
//! etcd: protobuf request bodies, protobuf objects, lists, errors and watch frames for
//! clients that ask for them first, JSON for everyone else.

use crate::support;

use std::time::Duration;

use kubecache_apimachinery::protobuf::{self, MEDIA_TYPE, STREAM_MEDIA_TYPE};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use support::server::TestServer;

/// What kubectl and client-go send as Accept.
const KUBECTL_ACCEPT: &str = "application/vnd.kubernetes.protobuf,application/json";

/// A raw response: status, content type, body bytes.
struct Raw {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Raw {
    /// The body as protobuf, decoded to JSON; panics unless it is protobuf.
    #[track_caller]
    fn object(&self) -> Value {
        assert_eq!(
            self.content_type,
            MEDIA_TYPE,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        protobuf::decode_envelope(&self.body, None).expect("a protobuf object")
    }
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    accept: &str,
    body: Option<(&str, Vec<u8>)>,
) -> Raw {
    let mut request = server
        .client
        .request(method, server.url(path))
        .header(ACCEPT, accept)
        .timeout(Duration::from_secs(15));
    if let Some((content_type, bytes)) = body {
        request = request.header(CONTENT_TYPE, content_type).body(bytes);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.bytes().await.expect("body").to_vec();
    Raw {
        status,
        content_type,
        body,
    }
}

fn pb(object: &Value) -> Vec<u8> {
    protobuf::encode_envelope(object).expect("encodes")
}

async fn create_pb(server: &TestServer, path: &str, object: &Value) -> Raw {
    send(
        server,
        Method::POST,
        path,
        KUBECTL_ACCEPT,
        Some((MEDIA_TYPE, pb(object))),
    )
    .await
}

on_both_stores!(
    create_get_list_in_protobuf_embedded,
    create_get_list_in_protobuf_etcd,
    create_get_list_in_protobuf
);

async fn create_get_list_in_protobuf(server: &TestServer) {
    server.create_namespace("pb").await;
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "pb", "labels": {"app": "db"}},
        "type": "Opaque", "data": {"password": "AAEC/w=="}});
    let created = create_pb(server, "/api/v1/namespaces/pb/secrets", &secret).await;
    assert_eq!(created.status, 201);
    let created = created.object();
    assert_eq!(created["kind"], "Secret");
    assert_eq!(created["data"]["password"], "AAEC/w==");
    assert!(!created["metadata"]["uid"].as_str().unwrap().is_empty());
    let rv = created["metadata"]["resourceVersion"].as_str().unwrap();
    assert!(rv.parse::<i64>().unwrap() > 0);
    assert!(created["metadata"]["creationTimestamp"].is_string());

    // JSON clients see the same object.
    let json_view = server
        .get("/api/v1/namespaces/pb/secrets/creds")
        .await
        .expect(200)
        .clone();
    assert_eq!(json_view["data"], json!({"password": "AAEC/w=="}));
    assert_eq!(json_view["metadata"]["labels"], json!({"app": "db"}));
    assert_eq!(json_view["metadata"]["uid"], created["metadata"]["uid"]);

    // GET in protobuf.
    let got = send(
        server,
        Method::GET,
        "/api/v1/namespaces/pb/secrets/creds",
        KUBECTL_ACCEPT,
        None,
    )
    .await;
    assert_eq!(got.status, 200);
    let got = got.object();
    assert_eq!(got["metadata"]["resourceVersion"], rv);
    assert_eq!(got["data"], json_view["data"]);

    // A second object, then LIST in protobuf: a SecretList.
    let other = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "other", "namespace": "pb"}, "data": {"k": "dg=="}});
    assert_eq!(
        create_pb(server, "/api/v1/namespaces/pb/secrets", &other)
            .await
            .status,
        201
    );
    let list = send(
        server,
        Method::GET,
        "/api/v1/namespaces/pb/secrets",
        KUBECTL_ACCEPT,
        None,
    )
    .await
    .object();
    assert_eq!(list["kind"], "SecretList");
    assert!(list["metadata"]["resourceVersion"].is_string());
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["creds", "other"]);
    assert_eq!(list["items"][1]["data"], json!({"k": "dg=="}));
    assert_eq!(list["items"][0]["type"], "Opaque");

    // Paginated, with a continue token.
    let page = send(
        server,
        Method::GET,
        "/api/v1/namespaces/pb/secrets?limit=1",
        KUBECTL_ACCEPT,
        None,
    )
    .await
    .object();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(!page["metadata"]["continue"].as_str().unwrap().is_empty());

    // Update (PUT) in protobuf.
    let mut update = got.clone();
    update["metadata"]["labels"]["app"] = json!("cache");
    let updated = send(
        server,
        Method::PUT,
        "/api/v1/namespaces/pb/secrets/creds",
        KUBECTL_ACCEPT,
        Some((MEDIA_TYPE, pb(&update))),
    )
    .await;
    assert_eq!(updated.status, 200);
    let updated = updated.object();
    assert_eq!(updated["metadata"]["labels"]["app"], "cache");
    assert_ne!(updated["metadata"]["resourceVersion"], rv);

    // A stale update: a 409 Conflict Status, in protobuf.
    let conflict = send(
        server,
        Method::PUT,
        "/api/v1/namespaces/pb/secrets/creds",
        KUBECTL_ACCEPT,
        Some((MEDIA_TYPE, pb(&update))),
    )
    .await;
    assert_eq!(conflict.status, 409);
    let status = conflict.object();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(status["code"], 409);

    // DELETE with a protobuf DeleteOptions body (client-go's typed clients send one).
    let options =
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"});
    let deleted = send(
        server,
        Method::DELETE,
        "/api/v1/namespaces/pb/secrets/other",
        KUBECTL_ACCEPT,
        Some((MEDIA_TYPE, pb(&options))),
    )
    .await;
    assert_eq!(deleted.status, 200);
    server
        .get("/api/v1/namespaces/pb/secrets/other")
        .await
        .expect_status(404, "NotFound");
}

on_both_stores!(
    errors_and_bad_bodies_embedded,
    errors_and_bad_bodies_etcd,
    errors_and_bad_bodies
);

async fn errors_and_bad_bodies(server: &TestServer) {
    server.create_namespace("pb").await;
    // A missing object: a protobuf 404 Status.
    let missing = send(
        server,
        Method::GET,
        "/api/v1/namespaces/pb/configmaps/nope",
        KUBECTL_ACCEPT,
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    let status = missing.object();
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["details"]["name"], "nope");

    // Malformed protobuf: 400 BadRequest, and nothing written.
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "pb"}, "data": {"k": "v"}});
    let good = pb(&object);
    let bad_bodies: Vec<Vec<u8>> = vec![
        b"{\"kind\":\"ConfigMap\"}".to_vec(),
        b"k8s\0".to_vec(),
        good[..good.len() - 9].to_vec(),
        {
            // The raw message cut short inside the envelope.
            let mut b = good.clone();
            let at = b.len() - 12;
            b[at] = 0xff;
            b
        },
    ];
    for body in bad_bodies {
        let reply = send(
            server,
            Method::POST,
            "/api/v1/namespaces/pb/configmaps",
            KUBECTL_ACCEPT,
            Some((MEDIA_TYPE, body)),
        )
        .await;
        assert_eq!(reply.status, 400);
        let status = reply.object();
        assert_eq!(status["reason"], "BadRequest", "{status}");
    }
    // A JSON client gets the same error as JSON.
    let reply = server
        .send(
            Method::POST,
            &server.url("/api/v1/namespaces/pb/configmaps"),
            Some(MEDIA_TYPE),
            Some(b"not protobuf".to_vec()),
        )
        .await;
    reply.expect_status(400, "BadRequest");
    let list = server
        .get("/api/v1/namespaces/pb/configmaps")
        .await
        .expect(200)
        .clone();
    assert_eq!(list["items"], json!([]));

    // A body that names another kind than the URL: rejected, nothing written.
    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cm", "namespace": "pb"}});
    let reply = create_pb(server, "/api/v1/namespaces/pb/configmaps", &pod).await;
    assert_eq!(reply.status, 400, "{}", reply.object());

    // The good body is accepted.
    let created = create_pb(server, "/api/v1/namespaces/pb/configmaps", &object).await;
    assert_eq!(created.status, 201);
    // And created twice: a protobuf 409 AlreadyExists.
    let again = create_pb(server, "/api/v1/namespaces/pb/configmaps", &object).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.object()["reason"], "AlreadyExists");
}

#[tokio::test]
async fn json_unless_protobuf_comes_first() {
    let server = TestServer::start().await;
    server.create_namespace("pb").await;
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "pb"}, "data": {"k": "v"}});
    assert_eq!(
        create_pb(&server, "/api/v1/namespaces/pb/configmaps", &object)
            .await
            .status,
        201
    );
    let path = "/api/v1/namespaces/pb/configmaps/cm";
    for accept in [
        "application/json",
        "application/json, application/vnd.kubernetes.protobuf",
        "*/*",
        "application/vnd.kubernetes.protobuf;q=0.1, application/json",
    ] {
        let reply = send(&server, Method::GET, path, accept, None).await;
        assert_eq!(reply.content_type, "application/json", "{accept}");
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["data"]["k"], "v");
    }
    // Tables are JSON even when protobuf is acceptable too.
    let reply = send(
        &server,
        Method::GET,
        "/api/v1/namespaces/pb/configmaps",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/vnd.kubernetes.protobuf",
        None,
    )
    .await;
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["kind"], "Table");
    // A protobuf body of a JSON-only media type is refused; JSON still works.
    let reply = send(
        &server,
        Method::POST,
        "/api/v1/namespaces/pb/configmaps",
        "application/json",
        Some(("application/yaml", b"kind: ConfigMap".to_vec())),
    )
    .await;
    assert_eq!(reply.status, 415);
}

on_both_stores!(
    imperative_create_bodies_embedded,
    imperative_create_bodies_etcd,
    imperative_create_bodies
);

/// Bodies as kubectl's Go structs produce them: every non-pointer field, empty strings,
/// zero counts, zero Times and empty structs included.
async fn imperative_create_bodies(server: &TestServer) {
    use protobuf::wire::{VARINT, put_key, put_len, put_varint};
    fn meta(name: &str, namespace: &str) -> Vec<u8> {
        let mut m = Vec::new();
        put_len(&mut m, 1, name.as_bytes());
        put_len(&mut m, 2, b"");
        put_len(&mut m, 3, namespace.as_bytes());
        put_len(&mut m, 4, b"");
        put_len(&mut m, 5, b"");
        put_len(&mut m, 6, b"");
        put_key(&mut m, 7, VARINT);
        put_varint(&mut m, 0);
        put_len(&mut m, 8, b"");
        m
    }
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        put_len(&mut type_meta, 1, api_version.as_bytes());
        put_len(&mut type_meta, 2, kind.as_bytes());
        let mut out = protobuf::MAGIC.to_vec();
        put_len(&mut out, 1, &type_meta);
        put_len(&mut out, 2, raw);
        put_len(&mut out, 3, b"");
        put_len(&mut out, 4, b"");
        out
    }
    // Namespace {metadata, spec: {}, status: {phase: ""}}
    let mut ns = Vec::new();
    put_len(&mut ns, 1, &meta("imperative", ""));
    put_len(&mut ns, 2, b"");
    put_len(&mut ns, 3, &{
        let mut s = Vec::new();
        put_len(&mut s, 1, b"");
        s
    });
    let reply = send(
        server,
        Method::POST,
        "/api/v1/namespaces",
        KUBECTL_ACCEPT,
        Some((MEDIA_TYPE, envelope("v1", "Namespace", &ns))),
    )
    .await;
    assert_eq!(reply.status, 201);
    let stored = server
        .get("/api/v1/namespaces/imperative")
        .await
        .expect(200)
        .clone();
    let meta_keys: Vec<&String> = stored["metadata"].as_object().unwrap().keys().collect();
    for absent in ["generateName", "selfLink", "generation"] {
        assert!(
            !meta_keys.iter().any(|k| *k == absent),
            "{absent} in {meta_keys:?}"
        );
    }
    assert_eq!(stored["metadata"]["name"], "imperative");
    assert_eq!(stored["status"]["phase"], "Active");

    // ConfigMap {metadata, data: {"k": "v"}} in the namespace given by the URL only.
    let mut cm = Vec::new();
    put_len(&mut cm, 1, &meta("settings", ""));
    put_len(&mut cm, 2, &{
        let mut e = Vec::new();
        put_len(&mut e, 1, b"color");
        put_len(&mut e, 2, b"blue");
        e
    });
    let reply = send(
        server,
        Method::POST,
        "/api/v1/namespaces/imperative/configmaps",
        KUBECTL_ACCEPT,
        Some((MEDIA_TYPE, envelope("v1", "ConfigMap", &cm))),
    )
    .await;
    assert_eq!(reply.status, 201);
    let created = reply.object();
    assert_eq!(created["metadata"]["namespace"], "imperative");
    assert_eq!(created["data"], json!({"color": "blue"}));
}

/// A protobuf watch response, read frame by frame.
struct ProtobufWatch {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl ProtobufWatch {
    async fn start(server: &TestServer, path: &str, params: &[(&str, &str)]) -> ProtobufWatch {
        let response = server
            .client
            .get(server.url_with(path, params))
            .header(ACCEPT, KUBECTL_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[CONTENT_TYPE].to_str().unwrap(),
            STREAM_MEDIA_TYPE
        );
        ProtobufWatch {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event's type and object (bounded wait).
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Ok((event_type, object, rest)) = protobuf::read_watch_frame(&self.buffer) {
                let used = self.buffer.len() - rest.len();
                self.buffer.drain(..used);
                return (event_type, object);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("a watch frame in time")
                .expect("readable")
                .expect("the stream goes on");
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

on_both_stores!(
    watch_in_protobuf_embedded,
    watch_in_protobuf_etcd,
    watch_in_protobuf
);

async fn watch_in_protobuf(server: &TestServer) {
    server.create_namespace("pb").await;
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "pb"}, "data": {"n": "1"}});
    let created = create_pb(server, "/api/v1/namespaces/pb/configmaps", &first)
        .await
        .object();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let mut watch = ProtobufWatch::start(
        server,
        "/api/v1/namespaces/pb/configmaps",
        &[("watch", "true"), ("resourceVersion", "0")],
    )
    .await;
    let mut events: Vec<(String, Value)> = Vec::new();
    events.push(watch.next().await);
    assert_eq!(events[0].0, "ADDED");
    assert_eq!(events[0].1["metadata"]["name"], "a");
    assert_eq!(events[0].1["metadata"]["resourceVersion"], rv.as_str());
    assert_eq!(events[0].1["kind"], "ConfigMap");

    // A JSON write shows up as a protobuf frame.
    server
        .post(
            "/api/v1/namespaces/pb/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "b", "namespace": "pb"}, "data": {"n": "2"}}),
        )
        .await
        .expect(201);
    let (event_type, object) = watch.next().await;
    assert_eq!(event_type, "ADDED");
    assert_eq!(object["metadata"]["name"], "b");
    assert_eq!(object["data"], json!({"n": "2"}));

    server
        .delete("/api/v1/namespaces/pb/configmaps/a")
        .await
        .expect(200);
    let (event_type, object) = watch.next().await;
    assert_eq!(event_type, "DELETED");
    assert_eq!(object["metadata"]["name"], "a");
}

#[tokio::test]
async fn scale_subresource_in_protobuf() {
    let server = TestServer::start().await;
    server.create_namespace("pb").await;
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "pb"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    assert_eq!(
        create_pb(
            &server,
            "/apis/apps/v1/namespaces/pb/deployments",
            &deployment
        )
        .await
        .status,
        201
    );
    let path = "/apis/apps/v1/namespaces/pb/deployments/web/scale";
    let scale = send(&server, Method::GET, path, KUBECTL_ACCEPT, None)
        .await
        .object();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 2);
    // Scale to zero: a pointer-less zero that must still arrive as 0.
    let mut to_zero = scale.clone();
    to_zero["spec"]["replicas"] = json!(0);
    let reply = send(
        &server,
        Method::PUT,
        path,
        KUBECTL_ACCEPT,
        Some((MEDIA_TYPE, pb(&to_zero))),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.object()["spec"]["replicas"], 0);
    let stored = server
        .get("/apis/apps/v1/namespaces/pb/deployments/web")
        .await
        .expect(200)
        .clone();
    assert_eq!(stored["spec"]["replicas"], 0);
}

#[tokio::test]
async fn watch_in_protobuf_without_the_watch_cache() {
    watch_in_protobuf(&TestServer::start_uncached().await).await;
}

on_both_stores!(
    watch_bookmarks_and_errors_in_protobuf_embedded,
    watch_bookmarks_and_errors_in_protobuf_etcd,
    watch_bookmarks_and_errors_in_protobuf
);

async fn watch_bookmarks_and_errors_in_protobuf(server: &TestServer) {
    server.create_namespace("pb").await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "pb"}, "data": {"n": "1"}});
    create_pb(server, "/api/v1/namespaces/pb/configmaps", &cm)
        .await
        .object();
    // Watch-list: the initial events end with a BOOKMARK annotated initial-events-end.
    let mut watch = ProtobufWatch::start(
        server,
        "/api/v1/namespaces/pb/configmaps",
        &[
            ("watch", "true"),
            ("sendInitialEvents", "true"),
            ("resourceVersionMatch", "NotOlderThan"),
            ("allowWatchBookmarks", "true"),
        ],
    )
    .await;
    let (event_type, object) = watch.next().await;
    assert_eq!(event_type, "ADDED");
    assert_eq!(object["data"], json!({"n": "1"}));
    let (event_type, object) = watch.next().await;
    assert_eq!(event_type, "BOOKMARK");
    assert_eq!(object["kind"], "ConfigMap");
    assert_eq!(
        object["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(object["metadata"]["resourceVersion"].is_string());
}

/// A resourceVersion older than storage retains: one ERROR event with a 410 Status. (The
/// watch cache keeps its own window; reads from storage see compaction directly.)
#[tokio::test]
async fn watch_from_a_compacted_revision_in_protobuf() {
    let server = &TestServer::start_uncached().await;
    server.create_namespace("pb").await;
    for _ in 0..3 {
        server
            .post(
                "/api/v1/namespaces/pb/configmaps",
                &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"generateName": "x-", "namespace": "pb"}}),
            )
            .await
            .expect(201);
    }
    let current = server.backend.current_revision().await.unwrap();
    server.backend.compact(current).await.unwrap();
    let mut watch = ProtobufWatch::start(
        server,
        "/api/v1/namespaces/pb/configmaps",
        &[("watch", "true"), ("resourceVersion", "1")],
    )
    .await;
    let (event_type, status) = watch.next().await;
    assert_eq!(event_type, "ERROR");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 410);
    assert_eq!(status["reason"], "Expired");
}

on_both_stores!(
    every_kind_stores_the_same_from_protobuf_and_json_embedded,
    every_kind_stores_the_same_from_protobuf_and_json_etcd,
    every_kind_stores_the_same_from_protobuf_and_json
);

/// For every built-in kind: its sample object created once in protobuf and once in JSON is
/// stored and served the same (but for what the server assigns), and GET in protobuf serves
/// what GET in JSON does.
async fn every_kind_stores_the_same_from_protobuf_and_json(server: &TestServer) {
    use kubecache_apimachinery::registry::Registry;
    let samples: Vec<Value> = crate::support::creatable_samples();
    server.create_namespace("pb").await;
    let registry = Registry::builtin().snapshot();
    let assigned = ["name", "uid", "resourceVersion", "creationTimestamp"];
    for sample in samples {
        let version = sample["apiVersion"].as_str().unwrap();
        let (group, version) = version.split_once('/').unwrap_or(("", version));
        let resource = registry
            .by_kind(group, version, sample["kind"].as_str().unwrap())
            .unwrap();
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let collection = if resource.namespaced {
            format!("{prefix}/namespaces/pb/{}", resource.resource)
        } else {
            format!("{prefix}/{}", resource.resource)
        };
        let mut object = sample.clone();
        let meta = object["metadata"].as_object_mut().unwrap();
        for server_owned in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "finalizers",
        ] {
            meta.remove(server_owned);
        }
        if resource.namespaced {
            meta.insert("namespace".into(), json!("pb"));
        }
        let name = meta["name"].as_str().unwrap().to_string();
        // Two names for the two copies (a CRD's name is plural.group, an APIService's
        // version.group: rename the group).
        let renamed = |prefix: &str| {
            let mut copy = object.clone();
            if sample["kind"] == "CustomResourceDefinition" {
                let group = format!("{prefix}-{}", copy["spec"]["group"].as_str().unwrap());
                copy["metadata"]["name"] = json!(format!("widgets.{group}"));
                copy["spec"]["group"] = json!(group);
            } else if sample["kind"] == "APIService" {
                let group = format!("{prefix}-{}", copy["spec"]["group"].as_str().unwrap());
                let version = copy["spec"]["version"].as_str().unwrap().to_string();
                copy["metadata"]["name"] = json!(format!("{version}.{group}"));
                copy["spec"]["group"] = json!(group);
            } else {
                let kind = sample["kind"].as_str().unwrap();
                copy["metadata"]["name"] =
                    json!(crate::support::prefixed_name(kind, &name, prefix));
            }
            // Each copy gets its own cluster IP from the allocator.
            if sample["kind"] == "Service" {
                let spec = copy["spec"].as_object_mut().unwrap();
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
            copy
        };
        let (via_json, via_pb) = (renamed("js"), renamed("pb"));
        let js_name = via_json["metadata"]["name"].as_str().unwrap().to_string();
        let pb_name = via_pb["metadata"]["name"].as_str().unwrap().to_string();

        let kind = &sample["kind"];
        server.post(&collection, &via_json).await.expect(201);
        let created = create_pb(server, &collection, &via_pb).await;
        assert_eq!(created.status, 201, "{kind}: {}", created.object());
        // The CRD controller writes a CRD's status once it serves it: compare the settled
        // objects, not one before and one after that write.
        if sample["kind"] == "CustomResourceDefinition" {
            for name in [&js_name, &pb_name] {
                crate::crd_controller::wait_established(server, name).await;
            }
        }
        // So does the resourcequota controller, a quota's status.
        if sample["kind"] == "ResourceQuota" {
            for name in [&js_name, &pb_name] {
                crate::resource_quota::wait_computed(server, &format!("{collection}/{name}")).await;
            }
        }

        let mut from_json = server
            .get(&format!("{collection}/{js_name}"))
            .await
            .expect(200)
            .clone();
        let mut from_pb = server
            .get(&format!("{collection}/{pb_name}"))
            .await
            .expect(200)
            .clone();
        // GET in protobuf serves the same object.
        let pb_get = send(
            server,
            Method::GET,
            &format!("{collection}/{pb_name}"),
            KUBECTL_ACCEPT,
            None,
        )
        .await
        .object();
        // (Unless the aggregation controller rewrote an aggregated ClusterRole in between.)
        if !(sample["kind"] == "ClusterRole" && sample.get("aggregationRule").is_some()) {
            assert_eq!(
                pb_get["metadata"]["resourceVersion"], from_pb["metadata"]["resourceVersion"],
                "{kind}"
            );
        }
        let (js_uid, pb_uid) = (
            from_json["metadata"]["uid"].clone(),
            from_pb["metadata"]["uid"].clone(),
        );
        for object in [&mut from_json, &mut from_pb] {
            let meta = object["metadata"].as_object_mut().unwrap();
            for field in assigned {
                meta.remove(field);
            }
            if object["kind"] == "CustomResourceDefinition" || object["kind"] == "APIService" {
                object["spec"].as_object_mut().unwrap().remove("group");
            }
            // An aggregated ClusterRole's rules are the aggregation controller's: each copy
            // has them from the body or rewritten from the selected roles, depending on when
            // the controller got to it.
            // So is their ownership: the controller writes through the Store, which records
            // it as the rules' manager.
            if object["kind"] == "ClusterRole" && object.get("aggregationRule").is_some() {
                object.as_object_mut().unwrap().remove("rules");
                let meta = object["metadata"].as_object_mut().unwrap();
                if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
                    entries.retain(|e| e["manager"] != "kube-controller-manager");
                    for entry in entries {
                        if let Some(fields) = entry["fieldsV1"].as_object_mut() {
                            fields.remove("f:rules");
                        }
                    }
                }
            }
            if object["kind"] == "Service" {
                let spec = object["spec"].as_object_mut().unwrap();
                assert!(spec.remove("clusterIP").is_some(), "{kind}: no clusterIP");
                spec.remove("clusterIPs");
            }
            let meta = object["metadata"].as_object_mut().unwrap();
            // managedFields record when each copy was written (seconds may differ).
            if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
                for entry in entries {
                    entry.as_object_mut().unwrap().remove("time");
                }
            }
            // A namespace's name label is the server's too.
            if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
                labels.remove("kubernetes.io/metadata.name");
            }
        }
        // Values the server derives from the object's own uid and name (a Job's selector and
        // labels) differ between the copies by those alone.
        let normalize = |object: &Value, uid: &Value, name: &str| -> Value {
            let text = mask_token_volume(&object.to_string());
            let text = match uid.as_str() {
                Some(uid) => text.replace(uid, "<uid>"),
                None => text,
            };
            serde_json::from_str(&text.replace(&format!("\"{name}\""), "\"<name>\"")).unwrap()
        };
        assert_eq!(
            normalize(&from_pb, &pb_uid, &pb_name),
            normalize(&from_json, &js_uid, &js_name),
            "{kind}"
        );
    }
}

/// The ServiceAccount admission plugin names each pod's token volume
/// (`kube-api-access-<5 random>`) at random: masked for comparisons.
fn mask_token_volume(text: &str) -> String {
    const PREFIX: &str = "kube-api-access-";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let end = (at + PREFIX.len() + 5).min(rest.len());
        out.push_str(&rest[..at]);
        out.push_str(PREFIX);
        out.push_str("xxxxx");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}
