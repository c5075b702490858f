//! `metav1.Status` bodies byte for byte as kube-apiserver writes them, from every place that
//! writes one: kube's JSON encoder (Go's `json.Encoder`) writes the fields in the Go struct's
//! order — `kind, apiVersion, metadata, status, message, reason, details, code` — and ends
//! the body with a newline; in a watch ERROR event the Status is embedded compact, the frame's
//! newline the only one; in protobuf Go's generated marshaller writes the fields by tag with
//! every non-pointer field, empty or not. Clients compare these bytes (the Python client's
//! own tests compare a 409's body).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kubecache_server::authn::Connection;
use kubecache_server::filters::{self, Chain, ChainOptions};
use kubecache_server::server;
use kubecache_storage::embedded::EmbeddedBackend;
use reqwest::header::ACCEPT;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::support::server::TestServer;

const CM: &str = "/api/v1/namespaces/default/configmaps";
const PATIENCE: Duration = Duration::from_secs(30);

const DETAILS_ORDER: [&str; 6] = [
    "name",
    "group",
    "kind",
    "uid",
    "causes",
    "retryAfterSeconds",
];

/// GET/POST/… with the raw body bytes back.
async fn raw(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap());
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.bytes().await.expect("body").to_vec(),
    )
}

fn keys(object: &Value) -> Vec<&str> {
    object
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// `present` is a subsequence of `order`, i.e. in kube's order.
fn assert_in_order(present: &[&str], order: &[&str], what: &str) {
    let mut rest = order.iter();
    for key in present {
        assert!(
            rest.any(|k| k == key),
            "{what}: {key:?} out of kube's order {order:?} (keys: {present:?})"
        );
    }
}

/// A Status response body: JSON with kube's key order, ending with exactly one newline.
fn assert_status_body(bytes: &[u8], code: u16, reason: &str) -> Value {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    assert!(text.ends_with("}\n"), "no trailing newline: {text:?}");
    assert_eq!(text.matches('\n').count(), 1, "{text:?}");
    let status: Value = serde_json::from_str(text).expect("JSON");
    let present = keys(&status);
    assert_eq!(present[..4], ["kind", "apiVersion", "metadata", "status"]);
    assert_in_order(&present, crate::support::server::STATUS_KEY_ORDER, "Status");
    if let Some(details) = status.get("details") {
        assert_in_order(&keys(details), &DETAILS_ORDER, "details");
        assert_eq!(present.last(), Some(&"code"), "code last: {text}");
        for cause in details["causes"].as_array().into_iter().flatten() {
            assert_in_order(&keys(cause), &["reason", "message", "field"], "cause");
        }
    }
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], code);
    assert_eq!(status["reason"], reason);
    status
}

/// The 409 of a second create, byte for byte as the Python client's tests expect it.
#[tokio::test]
async fn a_409_is_kubes_bytes() {
    let server = TestServer::start().await;
    let configmap = json!({"metadata": {"name": "dup"}});
    let url = server.url(CM);
    let (status, _, _) = raw(
        &server.client,
        reqwest::Method::POST,
        &url,
        Some(&configmap),
    )
    .await;
    assert_eq!(status, 201);
    let (status, headers, body) = raw(
        &server.client,
        reqwest::Method::POST,
        &url,
        Some(&configmap),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        concat!(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
            r#""message":"configmaps \"dup\" already exists","reason":"AlreadyExists","#,
            r#""details":{"name":"dup","kind":"configmaps"},"code":409}"#,
            "\n"
        )
    );
}

#[tokio::test]
async fn a_404_is_kubes_bytes() {
    let server = TestServer::start().await;
    let (status, _, body) = raw(
        &server.client,
        reqwest::Method::GET,
        &server.url("/apis/apps/v1/namespaces/default/deployments/gone"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        concat!(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
            r#""message":"deployments.apps \"gone\" not found","reason":"NotFound","#,
            r#""details":{"name":"gone","group":"apps","kind":"deployments"},"code":404}"#,
            "\n"
        )
    );
    // No details at all: `code` right after `reason`.
    let (status, _, body) = raw(
        &server.client,
        reqwest::Method::GET,
        &server.url("/api/v1/no-such-resource"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.ends_with("\"reason\":\"NotFound\",\"code\":404}\n"),
        "{text:?}"
    );
    assert_status_body(text.as_bytes(), 404, "NotFound");
}

/// A 422 with causes: details (with its causes, each `reason, message, field`) before code.
#[tokio::test]
async fn a_422_with_causes_keeps_kubes_order() {
    let server = TestServer::start().await;
    let (status, _, body) = raw(
        &server.client,
        reqwest::Method::POST,
        &server.url(CM),
        Some(&json!({"metadata": {"name": "Not_Valid"}})),
    )
    .await;
    assert_eq!(status, 422);
    let status = assert_status_body(&body, 422, "Invalid");
    assert_eq!(keys(&status["details"]), ["name", "kind", "causes"]);
    assert_eq!(
        keys(&status["details"]["causes"][0]),
        ["reason", "message", "field"]
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains(r#"}]},"code":422}"#),
        "causes, then details close, then code: {text}"
    );
}

/// A successful DELETE answers a Success Status: no code, details `name, kind, uid`.
#[tokio::test]
async fn a_delete_success_status_is_kubes_bytes() {
    let server = TestServer::start().await;
    let created = server
        .post(CM, &json!({"metadata": {"name": "bye"}}))
        .await
        .expect(201)
        .clone();
    let uid = created["metadata"]["uid"].as_str().unwrap();
    let (status, _, body) = raw(
        &server.client,
        reqwest::Method::DELETE,
        &server.url(&format!("{CM}/bye")),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        format!(
            "{}{uid}{}",
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"bye","kind":"configmaps","uid":""#,
            "\"}}\n"
        )
    );
}

/// The Status of a watch ERROR event: embedded compact in `{"type":"ERROR","object":…}`
/// with kube's order; the frame's newline is the only one.
#[tokio::test]
async fn a_watch_error_event_embeds_kubes_status() {
    let server = TestServer::start_uncached().await;
    for name in ["a", "b", "c"] {
        server
            .post(CM, &json!({"metadata": {"name": name}}))
            .await
            .expect(201);
    }
    let current = server.backend.current_revision().await.unwrap();
    server.backend.compact(current).await.unwrap();
    let url = server.url_with(CM, &[("watch", "true"), ("resourceVersion", "1")]);
    let mut response = server.client.get(&url).send().await.expect("watch");
    assert_eq!(response.status(), 200);
    let mut frame = Vec::new();
    while !frame.contains(&b'\n') {
        let chunk = tokio::time::timeout(PATIENCE, response.chunk())
            .await
            .expect("a frame in time")
            .expect("the stream")
            .expect("a chunk before the end");
        frame.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(frame).unwrap();
    assert!(
        text.starts_with(r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":""#),
        "{text}"
    );
    assert!(
        text.ends_with("\"reason\":\"Expired\",\"code\":410}}\n"),
        "{text:?}"
    );
    assert_eq!(text.matches('\n').count(), 1, "{text:?}");
}

/// A protobuf Status as Go's generated marshaller writes it: fields by tag, every field that
/// is not a pointer written even when empty (ListMeta's three strings, empty `group` and
/// `uid`, a zero `retryAfterSeconds`), the code last.
#[tokio::test]
async fn a_protobuf_status_is_kubes_bytes() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(server.url(&format!("{CM}/gone")))
        .header(ACCEPT, "application/vnd.kubernetes.protobuf")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.kubernetes.protobuf"
    );
    let body = response.bytes().await.unwrap().to_vec();

    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 128, "one-byte lengths only");
        let mut out = vec![(tag << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let message = br#"configmaps "gone" not found"#;
    let mut details = field(1, b"gone"); // name
    details.extend(field(2, b"")); // group
    details.extend(field(3, b"configmaps")); // kind
    details.extend([5 << 3, 0]); // retryAfterSeconds = 0
    details.extend(field(6, b"")); // uid
    let mut list_meta = field(1, b""); // selfLink
    list_meta.extend(field(2, b"")); // resourceVersion
    list_meta.extend(field(3, b"")); // continue
    let mut status = field(1, &list_meta);
    status.extend(field(2, b"Failure"));
    status.extend(field(3, message));
    status.extend(field(4, b"NotFound"));
    status.extend(field(5, &details));
    status.extend([6 << 3, 0x94, 0x03]); // code = 404
    let mut type_meta = field(1, b"v1");
    type_meta.extend(field(2, b"Status"));
    let mut expected = b"k8s\0".to_vec();
    expected.extend(field(1, &type_meta));
    expected.extend(field(2, &status));
    expected.extend(field(3, b"")); // contentEncoding
    expected.extend(field(4, b"")); // contentType
    assert_eq!(body, expected);
}

const TOKENS: &str = "bob-token,bob,uid-bob\n";

/// An in-process server behind the filter chain configured by `configure`, on a plain port.
async fn with_chain(
    dir: &Path,
    configure: impl FnOnce(&mut ChainOptions),
) -> (String, tokio::task::JoinHandle<()>) {
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, TOKENS).unwrap();
    let mut options = ChainOptions {
        token_auth_file: Some(tokens),
        ..ChainOptions::default()
    };
    configure(&mut options);
    let api = server::build_api(
        Arc::new(EmbeddedBackend::in_memory()),
        "/registry",
        server::ReadConfig::default(),
    )
    .await
    .expect("build the API");
    let chain = Chain::new(&options, &api).expect("the chain");
    // Served as the secure port would be (authentication applies there only), without TLS.
    let app = filters::apply(server::router(api), chain).layer(axum::middleware::from_fn(
        |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
            request.extensions_mut().insert(Connection {
                remote: "127.0.0.1:1".parse().unwrap(),
                secure: true,
                client_certs: None,
            });
            next.run(request).await
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, task)
}

/// The filter chain's 401 and 403 are Status bodies like the handlers'.
#[tokio::test]
async fn filter_chain_401_and_403_are_kubes_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (base, task) = with_chain(dir.path(), |options| {
        options.authorization_modes = vec![kubecache_server::authz::AuthorizationMode::Rbac];
    })
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("{base}{CM}"))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.text().await.unwrap(),
        concat!(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
            r#""message":"Unauthorized","reason":"Unauthorized","code":401}"#,
            "\n"
        )
    );
    let response = client
        .get(format!("{base}{CM}/one"))
        .bearer_auth("bob-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body = response.bytes().await.unwrap();
    let status = assert_status_body(&body, 403, "Forbidden");
    assert_eq!(keys(&status["details"]), ["name", "kind"]);
    task.abort();
}

/// The filter chain's 429: `details.retryAfterSeconds`, then `code`. (kube-apiserver's
/// max-in-flight filter answers plain text here — see COMPATIBILITY's known differences;
/// kubecache's Status has at least the order and newline of every other Status.) The one mutating slot
/// is held by an anonymous POST whose body never finishes (the limit is taken before the body is read);
/// probes go until one is refused. Should the held request be the one refused (a probe held
/// the slot at that moment), it is answered at once, and another is held.
#[tokio::test(flavor = "multi_thread")]
async fn filter_chain_429_is_kubes_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (base, task) = with_chain(dir.path(), |options| {
        options.max_mutating_requests_inflight = 1;
    })
    .await;
    let address = base.trim_start_matches("http://").to_string();
    let hold = || {
        let mut held = TcpStream::connect(&address).unwrap();
        let head = format!(
            "POST {CM} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{\"metadata\":"
        );
        held.write_all(head.as_bytes()).unwrap();
        held.set_nonblocking(true).unwrap();
        held
    };
    let mut held = hold();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let body = loop {
        let response = client
            .post(format!("{base}{CM}?dryRun=All"))
            .bearer_auth("bob-token")
            .header("content-type", "application/json")
            .body(r#"{"metadata":{"name":"probe"}}"#)
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
            break response.bytes().await.unwrap();
        }
        assert_eq!(response.status(), 201);
        let mut peek = [0u8; 1];
        if !matches!(held.read(&mut peek), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            held = hold();
        }
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        concat!(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
            r#""message":"Too many requests, please try again later.","reason":"TooManyRequests","#,
            r#""details":{"retryAfterSeconds":1},"code":429}"#,
            "\n"
        )
    );
    drop(held);
    task.abort();
}

/// The Status an audit event records for a failure (`responseStatus`) is a metav1.Status in
/// the Go struct's order too: `metadata, status, message, reason, details, code`.
#[tokio::test]
async fn an_audit_events_response_status_keeps_kubes_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let (base, task) = with_chain(dir.path(), |options| {
        options.audit_log = Some(kubecache_server::audit::LogOptions {
            path: log.clone(),
            max_size_mb: 0,
            max_backups: 0,
            max_age_days: 0,
        });
    })
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("{base}{CM}/missing"))
        .bearer_auth("bob-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let expected = concat!(
        r#""responseStatus":{"metadata":{},"status":"Failure","#,
        r#""message":"configmaps \"missing\" not found","reason":"NotFound","#,
        r#""details":{"name":"missing","kind":"configmaps"},"code":404}"#
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(expected) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event with {expected} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
}

/// A client that asks for protobuf gets the filter chain's 401 and 403, and a 413 raised
/// before any handler, as protobuf Statuses (kube-apiserver's `ErrorNegotiated`).
#[tokio::test]
async fn errors_before_the_handler_are_negotiated_to_protobuf() {
    let dir = tempfile::tempdir().unwrap();
    let (base, task) = with_chain(dir.path(), |options| {
        options.authorization_modes = vec![kubecache_server::authz::AuthorizationMode::Rbac];
    })
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let protobuf = "application/vnd.kubernetes.protobuf, application/json";
    for (token, code, reason) in [
        ("wrong-token", 401, "Unauthorized"),
        ("bob-token", 403, "Forbidden"),
    ] {
        let response = client
            .get(format!("{base}{CM}"))
            .bearer_auth(token)
            .header(ACCEPT, protobuf)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), code);
        assert_eq!(
            response.headers()["content-type"],
            "application/vnd.kubernetes.protobuf"
        );
        let body = response.bytes().await.unwrap();
        let status = kubecache_apimachinery::protobuf::decode_envelope(&body, None).unwrap();
        assert_eq!(
            (status["code"].as_u64(), status["reason"].as_str()),
            (Some(u64::from(code)), Some(reason))
        );
    }
    task.abort();

    let server = TestServer::start().await;
    let mut body = br#"{"metadata":{"name":"big"},"data":{"x":""#.to_vec();
    body.resize(4 * 1024 * 1024, b'y');
    let response = server
        .client
        .post(server.url(CM))
        .header(ACCEPT, protobuf)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body = response.bytes().await.unwrap();
    let status = kubecache_apimachinery::protobuf::decode_envelope(&body, None).unwrap();
    assert_eq!(status["reason"], "RequestEntityTooLarge");
}
