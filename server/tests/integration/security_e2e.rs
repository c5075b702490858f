//! End to end over TLS: the real `kubecache` binary on its secure port (generated
//! self-signed serving certificate, `--token-auth-file`, `--client-ca-file`, audit log)
//! driven by the real kubectl with a token kubeconfig and with a client-certificate
//! kubeconfig, both trusting the server through `certificate-authority-data`; the
//! Forbidden message as kubectl prints it; and SIGTERM with a watch open.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::binary::START_TIMEOUT;
use support::secured::{Secured, stderr};

#[test]
fn kubectl_over_tls_with_a_token_and_with_a_client_certificate() {
    let mut server = Secured::start(false, &[]);
    assert!(
        server.http.is_none(),
        "--insecure-port 0 turns the plain port off"
    );
    let certificate_line = server.printed.join("\n");
    assert!(
        certificate_line.contains("self-signed serving certificate in")
            && certificate_line.contains(server.path("certs").to_str().unwrap()),
        "{certificate_line}"
    );

    // Token kubeconfig.
    let namespaces = server.kubectl_ok("alice", &["get", "namespaces", "-o", "name"]);
    assert!(
        namespaces.lines().any(|l| l == "namespace/default"),
        "{namespaces}"
    );
    let manifest = server.path("cm.json");
    std::fs::write(
        &manifest,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"over-tls","namespace":"default"},"data":{"a":"b"}}"#,
    )
    .unwrap();
    server.kubectl_ok("alice", &["create", "-f", manifest.to_str().unwrap()]);
    // Client-certificate kubeconfig.
    let value = server.kubectl_ok(
        "carol",
        &[
            "get",
            "configmap",
            "over-tls",
            "-n",
            "default",
            "-o",
            "jsonpath={.data.a}",
        ],
    );
    assert_eq!(value, "b");
    server.kubectl_ok(
        "carol",
        &[
            "delete",
            "configmap",
            "over-tls",
            "-n",
            "default",
            "--timeout=20s",
        ],
    );
    // A bad token: 401, which kubectl reports as Unauthorized.
    let output = server.kubectl("stranger", &["get", "namespaces"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("Unauthorized"),
        "{}",
        stderr(&output)
    );

    // The audit log saw both users as authenticated.
    let events = server.audit();
    let create = events
        .iter()
        .find(|e| e["verb"] == "create" && e["stage"] == "ResponseComplete")
        .expect("an audit event for the create");
    assert_eq!(create["user"]["username"], "alice");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert_eq!(create["objectRef"]["name"], Value::Null);
    let delete = events
        .iter()
        .find(|e| e["verb"] == "delete" && e["stage"] == "ResponseComplete")
        .expect("an audit event for the delete");
    assert_eq!(delete["user"]["username"], "carol");
    assert_eq!(
        delete["user"]["groups"],
        serde_json::json!(["ops", "system:authenticated"])
    );
    assert_eq!(delete["objectRef"]["name"], "over-tls");
    assert!(
        delete["userAgent"]
            .as_str()
            .unwrap_or("")
            .starts_with("kubectl/"),
        "{delete}"
    );
    server.stop();

    // A restart reuses the generated certificate: the same kubeconfig still trusts it.
    let ca_before = std::fs::read(server.path("certs").join("ca.crt")).unwrap();
    let cert_dir = server.path("certs");
    let again = Secured::start_with_certs(false, &[], Some(cert_dir.clone()));
    assert_eq!(std::fs::read(cert_dir.join("ca.crt")).unwrap(), ca_before);
    again.kubectl_ok("alice", &["get", "namespaces"]);
}

#[test]
fn kubectl_prints_kube_forbidden_message() {
    let server = Secured::start(false, &["--authorization-mode", "AlwaysDeny"]);
    // system:masters is allowed whatever the mode; this also fills kubectl's discovery
    // cache, which AlwaysDeny would refuse alice (RBAC's system:discovery role allows it).
    server.kubectl_ok("admin", &["get", "pods", "-n", "default"]);
    let output = server.kubectl("alice", &["get", "pods", "-n", "default"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            r#"Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
        ),
        "{}",
        stderr(&output)
    );
    // Impersonation by kubectl --as: admin may, alice may not.
    let output = server.kubectl("admin", &["get", "pods", "-n", "default", "--as", "bob"]);
    assert!(
        stderr(&output).contains(r#"User "bob" cannot list resource "pods""#),
        "{}",
        stderr(&output)
    );
    let output = server.kubectl("alice", &["get", "pods", "--as", "bob"]);
    assert!(
        stderr(&output).contains(
            r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sigterm_with_a_watch_open_ends_the_watch_and_exits_cleanly() {
    let mut server = Secured::start(true, &[]);
    let http = server.http.clone().expect("the insecure port");
    let address = http.strip_prefix("http://").unwrap().to_string();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\nHost: {address}\r\n\r\n"
    )
    .unwrap();
    // Wait for the response head before shutting down.
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains("\r\n\r\n") {
        let n = stream.read(&mut buffer).expect("read the watch response");
        assert!(n > 0, "the watch closed before its headers");
        received.extend_from_slice(&buffer[..n]);
    }
    assert!(String::from_utf8_lossy(&received).starts_with("HTTP/1.1 200"));
    server.stop();
    // The watch ended with the final chunk, not a reset.
    loop {
        let n = stream
            .read(&mut buffer)
            .expect("read until the end of the watch");
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8_lossy(&received);
    assert!(text.ends_with("0\r\n\r\n"), "not a clean end: {text:?}");
    assert!(server.log().contains("shutting down"), "{}", server.log());
}

#[test]
fn shutdown_timeout_bounds_a_stuck_request() {
    let mut server = Secured::start(true, &["--debug-test-routes", "--shutdown-timeout", "1s"]);
    let http = server.http.clone().expect("the insecure port");
    let address = http.strip_prefix("http://").unwrap().to_string();
    let mut stream = TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /debug/kubecache/sleep?seconds=600 HTTP/1.1\r\nHost: {address}\r\n\r\n"
    )
    .unwrap();
    // The request is in flight once the audit log has its RequestReceived event.
    let deadline = Instant::now() + START_TIMEOUT;
    while !server
        .audit()
        .iter()
        .any(|e| e["requestURI"] == "/debug/kubecache/sleep?seconds=600")
    {
        assert!(Instant::now() < deadline, "the stuck request never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The server still answers others meanwhile.
    let (status, _) = get_plain(&address, "/healthz");
    assert_eq!(status, 200);
    // SIGTERM: the stuck request cannot finish; the process still exits 0 (stop() bounds the
    // wait well below the request's 600 s).
    server.stop();
    assert!(
        server.log().contains("after the shutdown timeout"),
        "{}",
        server.log()
    );
}

/// One HTTP/1.0 GET: status and body.
fn get_plain(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
