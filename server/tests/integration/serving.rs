//! The plain port's protocol detection (`server/src/serving.rs`), on the real binary: a
//! connection speaks HTTP/2 only if it opens with the HTTP/2 preface, which the server finds
//! by peeking at the socket; anything else is HTTP/1.1, served from its first byte.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::support::binary::Kubecache;

/// A request whose first byte is also the preface's ("P" of "PRI"), arriving in two writes:
/// the server waits for more before it decides, then serves it as HTTP/1.1 with nothing lost.
#[test]
fn a_request_that_starts_like_the_http2_preface_is_served_as_http1() {
    let server = Kubecache::start();
    let address = server.url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&address).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"split"}}"#;
    let request = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(&request.as_bytes()[..1]).expect("writes");
    std::thread::sleep(Duration::from_millis(100));
    stream.write_all(&request.as_bytes()[1..]).expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reads");
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains(r#""name":"split""#), "{response}");
}

/// HTTP/2 with prior knowledge (h2c) on the plain port: a list and a watch.
#[tokio::test]
async fn h2c_is_served_on_the_plain_port() {
    let server = Kubecache::start();
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let url = format!("{}/api/v1/namespaces/default/configmaps", server.url());
    let listed = client.get(&url).send().await.expect("lists");
    assert_eq!(listed.version(), reqwest::Version::HTTP_2);
    assert_eq!(listed.status(), 200);
    let body: serde_json::Value = listed.json().await.expect("JSON");
    let rv = body["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion")
        .to_string();
    let mut watch = client
        .get(format!("{url}?watch=true&resourceVersion={rv}"))
        .send()
        .await
        .expect("watches");
    assert_eq!(watch.version(), reqwest::Version::HTTP_2);
    let created = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"over-h2c"}}"#)
        .send()
        .await
        .expect("creates");
    assert_eq!(created.status(), 201);
    let chunk = tokio::time::timeout(Duration::from_secs(30), watch.chunk())
        .await
        .expect("a frame")
        .expect("the watch goes on")
        .expect("a chunk");
    let event: serde_json::Value = serde_json::from_slice(&chunk).expect("a JSON frame");
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "over-h2c");
}
