//! A request body over the 3 MiB limit is answered with kube-apiserver's 413 Status, and the
//! client gets to read it: an HTTP/1.1 client that writes its whole body before it reads
//! (Python's `http.client`, and so the Kubernetes Python client) must be able to finish
//! writing, then read the 413 — not see a broken pipe or a reset. The server drains the rest
//! of such a body (bounded) and closes the connection after it (`Connection: close`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::support::binary::Kubecache;
use super::support::server::TestServer;

const PATH: &str = "/api/v1/namespaces/default/configmaps";
const LIMIT: usize = 3 * 1024 * 1024;
const BODY_413: &str = concat!(
    r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
    r#""message":"Request entity too large: limit is 3145728","reason":"RequestEntityTooLarge","#,
    r#""code":413}"#,
    "\n"
);

/// A 4 MiB ConfigMap in JSON.
fn big_configmap() -> Vec<u8> {
    let mut body = br#"{"metadata":{"name":"big"},"data":{"x":""#.to_vec();
    body.resize(body.len() + 4 * 1024 * 1024, b'y');
    body.extend_from_slice(br#""}}"#);
    body
}

fn connect(server: &Kubecache) -> (TcpStream, String) {
    let address = server.url().trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&address).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    (stream, address)
}

/// Reads the whole response (the server closes the connection after it): head and body.
fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("the response is readable, not reset");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no response head in {:?}",
                String::from_utf8_lossy(&response)
            )
        });
    (
        String::from_utf8_lossy(&response[..split]).to_lowercase(),
        String::from_utf8_lossy(&response[split + 4..]).into_owned(),
    )
}

/// Sends `body` in small pieces with pauses, as a slow client does; every write must
/// succeed (on today's main the server closed the connection right after it answered, and
/// the writes failed with a broken pipe or a reset).
fn send_slowly(stream: &mut TcpStream, pieces: impl Iterator<Item = Vec<u8>>) {
    let mut sent = 0usize;
    for piece in pieces {
        stream
            .write_all(&piece)
            .unwrap_or_else(|e| panic!("writing the body failed after {sent} bytes: {e}"));
        sent += piece.len();
        std::thread::sleep(Duration::from_millis(3));
    }
}

#[test]
fn a_4mib_body_with_content_length_sent_slowly_gets_the_413() {
    let server = Kubecache::start();
    let (mut stream, address) = connect(&server);
    let body = big_configmap();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    send_slowly(&mut stream, body.chunks(64 * 1024).map(<[u8]>::to_vec));
    let (head, body) = read_response(&mut stream);
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{head}"
    );
    assert_eq!(body, BODY_413);
    // Nothing was created, and the server serves on.
    let (status, _) = server.http("GET", &format!("{PATH}/big"), None, None);
    assert_eq!(status, 404);
}

#[test]
fn a_4mib_chunked_body_sent_slowly_gets_the_413() {
    let server = Kubecache::start();
    let (mut stream, address) = connect(&server);
    let body = big_configmap();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunks = body
        .chunks(64 * 1024)
        .map(|chunk| {
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(chunk);
            framed.extend_from_slice(b"\r\n");
            framed
        })
        .chain(std::iter::once(b"0\r\n\r\n".to_vec()));
    send_slowly(&mut stream, chunks);
    let (head, body) = read_response(&mut stream);
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert_eq!(body, BODY_413);
}

/// A client that waits for `100 Continue` before sending a body too large by its
/// Content-Length gets the 413 at once, and no `100 Continue` (so it sends nothing).
#[test]
fn expect_continue_over_the_limit_is_answered_without_continue() {
    let server = Kubecache::start();
    let (mut stream, address) = connect(&server);
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        64 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).unwrap();
    let (head, body) = read_response(&mut stream);
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(!head.contains("100 continue"), "{head}");
    assert_eq!(body, BODY_413);
}

/// A body just under the limit is still accepted (the drain is only for what is left unread).
#[tokio::test]
async fn a_body_under_the_limit_is_created_and_the_connection_kept() {
    let server = TestServer::start().await;
    let mut body = br#"{"metadata":{"name":"fits"},"data":{"x":""#.to_vec();
    body.resize(LIMIT - 100, b'y');
    body.extend_from_slice(br#""}}"#);
    let response = server
        .client
        .post(server.url(PATH))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("connection").is_none());
}

/// Over HTTP/2 the 413 is read too: the stream's rest is drained after the response (a
/// client such as curl 7.88 reports a stream reset mid-upload as a failure).
#[tokio::test]
async fn a_4mib_body_over_http2_gets_the_413() {
    let server = TestServer::start().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = client
        .post(server.url(PATH))
        .header("content-type", "application/json")
        .body(big_configmap())
        .send()
        .await
        .expect("the response, not a reset");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 413);
    assert_eq!(response.text().await.unwrap(), BODY_413);
}

/// curl, as a user would try it: a 4 MiB body with a Content-Length, chunked, and over
/// HTTP/2 (prior knowledge); each time curl reads the 413 Status and exits 0. Skipped where
/// there is no curl.
#[test]
fn curl_reads_the_413() {
    let curl = ["/usr/bin/curl", "/usr/local/bin/curl"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists());
    let Some(curl) = curl else {
        eprintln!("no curl: skipped");
        return;
    };
    let server = Kubecache::start();
    let file = server.dir().join("big.json");
    std::fs::write(&file, big_configmap()).unwrap();
    let url = format!("{}{PATH}", server.url());
    let data = format!("@{}", file.display());
    for extra in [
        &[][..],
        &["-H", "Transfer-Encoding: chunked"][..],
        &["--http2-prior-knowledge"][..],
    ] {
        let output = std::process::Command::new(curl)
            .args(["-sS", "--max-time", "60", "-X", "POST"])
            .args(["-H", "Content-Type: application/json"])
            .args(["--data-binary", &data, "-w", "\n%{http_code}"])
            .args(extra)
            .arg(&url)
            .output()
            .expect("runs curl");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "curl {extra:?}: {:?} {stdout} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(stdout, format!("{BODY_413}\n413"), "curl {extra:?}");
    }
}
