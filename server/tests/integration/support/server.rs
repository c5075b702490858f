//! An in-process kubecache API server for HTTP-level tests.
//!
//! `TestServer::start()` builds the API over a fresh in-memory embedded store, serves it on
//! a free loopback port and hands back a reqwest client pointed at it; `start_with` takes any
//! [`Backend`] so the same tests can run over etcd. The server task is aborted on drop.
//!
//! Every request helper returns a [`Reply`] (status, headers, body parsed as JSON when it is
//! JSON); watches come back as a [`WatchStream`] whose reads are all bounded by a timeout, so
//! a missing event fails the test instead of hanging it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use kubecache_core::storage::Backend;
use kubecache_server::server;
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use kubecache_storage::testing::TestEtcd;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, Url};
use serde_json::Value;
use tokio::task::JoinHandle;

/// How long one request may take before the test fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a watch read waits for the next event by default: a bound on a hang, generous
/// for a loaded machine (an event normally arrives in milliseconds), never a speed check.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

pub const JSON: &str = "application/json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

/// The top-level keys of a `metav1.Status` in the order kube-apiserver writes them (the Go
/// struct's field order; omitempty fields may be absent).
pub const STATUS_KEY_ORDER: &[&str] = &[
    "kind",
    "apiVersion",
    "metadata",
    "status",
    "message",
    "reason",
    "details",
    "code",
];

/// A kubecache API server running inside the test's runtime.
/// The in-process controllers the test servers run (`--controllers`): all but the
/// `kube-root-ca.crt` publisher, whose ConfigMap in every namespace would be one more object
/// in each test that uses ConfigMaps as its neutral resource and counts them.
/// service_account_tokens.rs runs the publisher and tests it.
pub const TEST_CONTROLLERS: &str = "*,-root-ca-cert-publisher";

pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The store the server writes to (for compaction and direct inspection).
    pub backend: Arc<dyn Backend>,
    pub client: reqwest::Client,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A response: status code, headers, and the body as JSON (`Value::String` of the raw text
/// when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// A response read whole: its body as JSON, or as a JSON string when it is not JSON.
    async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("read the response body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The `Warning` header values.
    pub fn warnings(&self) -> Vec<String> {
        self.headers
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect()
    }

    /// Panics unless the status code is `code`, printing the body.
    #[track_caller]
    pub fn expect(&self, code: u16) -> &Value {
        assert_eq!(
            self.status, code,
            "unexpected status; body: {:#}",
            self.body
        );
        &self.body
    }

    /// Panics unless this is a failure `Status` with this code and reason.
    #[track_caller]
    pub fn expect_status(&self, code: u16, reason: &str) -> &Value {
        assert_eq!(
            self.status, code,
            "unexpected status; body: {:#}",
            self.body
        );
        assert_eq!(self.body["kind"], "Status", "not a Status: {:#}", self.body);
        assert_eq!(self.body["status"], "Failure", "{:#}", self.body);
        assert_eq!(self.body["code"], code, "{:#}", self.body);
        assert_eq!(self.body["reason"], reason, "{:#}", self.body);
        &self.body
    }

    /// The Status `message`.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

impl TestServer {
    /// A server over a fresh in-memory embedded store.
    pub async fn start() -> TestServer {
        TestServer::start_with(Arc::new(EmbeddedBackend::in_memory())).await
    }

    /// A server over `backend` reading through the watch cache, with the initial
    /// namespaces created.
    pub async fn start_with(backend: Arc<dyn Backend>) -> TestServer {
        TestServer::start_with_reads(backend, server::ReadConfig::default()).await
    }

    /// A server over a new connection to a real etcd.
    pub async fn start_on_etcd(etcd: &TestEtcd) -> TestServer {
        let backend = EtcdBackend::connect(&[etcd.endpoint()], EtcdOptions::default())
            .await
            .expect("connect to etcd");
        TestServer::start_with(Arc::new(backend)).await
    }

    /// A server over a fresh in-memory store whose reads go to storage directly.
    pub async fn start_uncached() -> TestServer {
        let backend = Arc::new(EmbeddedBackend::in_memory());
        TestServer::start_with_reads(backend, server::ReadConfig::Storage).await
    }

    /// A server over `backend` with reads served as `reads` says.
    pub async fn start_with_reads(
        backend: Arc<dyn Backend>,
        reads: server::ReadConfig,
    ) -> TestServer {
        TestServer::start_configured(backend, reads, |_| {}).await
    }

    /// A server over `backend` with these admission settings (service IP range…).
    pub async fn start_with_admission(
        backend: Arc<dyn Backend>,
        admission: kubecache_admission::Config,
    ) -> TestServer {
        TestServer::start_with_config(backend, server::ReadConfig::default(), admission, |_| {})
            .await
    }

    /// A server over `backend` whose API `configure` adjusts before it serves (e.g. installs
    /// an authorizer chain).
    pub async fn start_configured(
        backend: Arc<dyn Backend>,
        reads: server::ReadConfig,
        configure: impl FnOnce(&Arc<kubecache_server::api::Api>),
    ) -> TestServer {
        TestServer::start_with_config(backend, reads, Default::default(), configure).await
    }

    /// [`TestServer::start_configured`] with these in-process controllers (the others run
    /// [`TEST_CONTROLLERS`]).
    pub async fn start_with_controllers(
        backend: Arc<dyn Backend>,
        controllers: server::ControllerConfig,
        configure: impl FnOnce(&Arc<kubecache_server::api::Api>),
    ) -> TestServer {
        TestServer::start_full(
            backend,
            server::ReadConfig::default(),
            Default::default(),
            controllers,
            configure,
        )
        .await
    }

    async fn start_with_config(
        backend: Arc<dyn Backend>,
        reads: server::ReadConfig,
        admission: kubecache_admission::Config,
        configure: impl FnOnce(&Arc<kubecache_server::api::Api>),
    ) -> TestServer {
        let controllers =
            server::ControllerConfig::parse(TEST_CONTROLLERS, "").expect("known controllers");
        TestServer::start_full(backend, reads, admission, controllers, configure).await
    }

    async fn start_full(
        backend: Arc<dyn Backend>,
        reads: server::ReadConfig,
        admission: kubecache_admission::Config,
        controllers: server::ControllerConfig,
        configure: impl FnOnce(&Arc<kubecache_server::api::Api>),
    ) -> TestServer {
        let api =
            server::build_api_with(backend.clone(), "/registry", reads, admission, controllers)
                .await
                .expect("build the API");
        configure(&api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("bound address").port();
        let task = tokio::spawn(async move {
            server::serve(listener, api, std::future::pending())
                .await
                .expect("serve");
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("reqwest client");
        TestServer {
            base: format!("http://127.0.0.1:{port}"),
            backend,
            client,
            task,
        }
    }

    /// The URL of `path` (which may carry a query string).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The URL of `path` with `params` percent-encoded as its query.
    pub fn url_with(&self, path: &str, params: &[(&str, &str)]) -> String {
        let mut url = Url::parse(&self.url(path)).expect("valid URL");
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        url.to_string()
    }

    /// Sends a request with an optional Content-Type and body.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = self.client.request(method, url).timeout(REQUEST_TIMEOUT);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        Reply::read(response).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, &self.url(path), None, None).await
    }

    /// GET with query parameters (percent-encoded).
    pub async fn get_with(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, &self.url_with(path, params), None, None)
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(
            Method::POST,
            &self.url(path),
            Some(JSON),
            Some(to_vec(body)),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, &self.url(path), Some(JSON), Some(to_vec(body)))
            .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &Value) -> Reply {
        self.send(
            Method::PATCH,
            &self.url(path),
            Some(content_type),
            Some(to_vec(body)),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, &self.url(path), None, None).await
    }

    /// DELETE with a `DeleteOptions` body.
    pub async fn delete_with(&self, path: &str, options: &Value) -> Reply {
        self.send(
            Method::DELETE,
            &self.url(path),
            Some(JSON),
            Some(to_vec(options)),
        )
        .await
    }

    /// Creates a namespace and checks it was created.
    pub async fn create_namespace(&self, name: &str) -> Value {
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        self.post("/api/v1/namespaces", &body)
            .await
            .expect(201)
            .clone()
    }

    /// GET with query parameters and an `Accept` header (a Table, protobuf…).
    pub async fn get_accepting(&self, path: &str, params: &[(&str, &str)], accept: &str) -> Reply {
        let url = self.url_with(path, params);
        let request = self.client.get(&url).header("accept", accept);
        let response = tokio::time::timeout(REQUEST_TIMEOUT, request.send())
            .await
            .unwrap_or_else(|_| panic!("GET {url}: no response in time"))
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
        Reply::read(response).await
    }

    /// Starts a watch on `path` with query parameters; panics unless it answers 200.
    pub async fn watch(&self, path: &str, params: &[(&str, &str)]) -> WatchStream {
        self.watch_accepting(path, params, None).await
    }

    /// [`TestServer::watch`] with an `Accept` header (a watch of Tables…).
    pub async fn watch_accepting(
        &self,
        path: &str,
        params: &[(&str, &str)],
        accept: Option<&str>,
    ) -> WatchStream {
        let url = self.url_with(path, params);
        let mut request = self.client.get(&url);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = tokio::time::timeout(REQUEST_TIMEOUT, request.send())
            .await
            .unwrap_or_else(|_| panic!("watch {url}: no response headers in time"))
            .unwrap_or_else(|e| panic!("watch {url} failed: {e}"));
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.text().await.unwrap_or_default();
            panic!("watch {url}: status {status}: {body}");
        }
        WatchStream {
            url,
            stream: chunks(response),
            buffer: BytesMut::new(),
        }
    }
}

/// The response body as a stream of chunks (reqwest's `bytes_stream` needs its `stream`
/// feature; `chunk()` reads the same chunks without it).
fn chunks(response: reqwest::Response) -> BoxStream<'static, reqwest::Result<Bytes>> {
    futures::stream::unfold(Some(response), |response| async move {
        let mut response = response?;
        match response.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(response))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    })
    .boxed()
}

fn to_vec(body: &Value) -> Vec<u8> {
    serde_json::to_vec(body).expect("a JSON value serializes")
}

/// What the next read of a watch saw.
#[derive(Debug)]
pub enum Next {
    /// One `{"type", "object"}` frame.
    Event(Value),
    /// The server ended the stream.
    End,
    /// Nothing arrived in time.
    Timeout,
}

/// A watch response body read line by line.
pub struct WatchStream {
    url: String,
    stream: BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: BytesMut,
}

impl WatchStream {
    /// The next frame, the end of the stream, or a timeout after `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                let line = self.buffer.split_to(pos + 1);
                let line = &line[..pos];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let event = serde_json::from_slice(line).unwrap_or_else(|e| {
                    panic!(
                        "watch {}: frame is not JSON ({e}): {}",
                        self.url,
                        String::from_utf8_lossy(line)
                    )
                });
                return Next::Event(event);
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Next::Timeout,
                Ok(None) => {
                    assert!(
                        self.buffer.iter().all(u8::is_ascii_whitespace),
                        "watch {}: stream ended inside a frame: {}",
                        self.url,
                        String::from_utf8_lossy(&self.buffer)
                    );
                    return Next::End;
                }
                Ok(Some(Err(e))) => panic!("watch {}: read failed: {e}", self.url),
                Ok(Some(Ok(chunk))) => self.buffer.extend_from_slice(&chunk),
            }
        }
    }

    /// The next event; panics on end of stream or timeout.
    #[track_caller]
    pub fn next_event(&mut self) -> impl std::future::Future<Output = Value> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            match self.next_within(EVENT_TIMEOUT).await {
                Next::Event(event) => event,
                other => panic!(
                    "watch {} at {caller}: expected an event, got {other:?}",
                    self.url
                ),
            }
        }
    }

    /// The next event, checked to be `event_type` for the object named `name`; returns it.
    #[track_caller]
    pub fn expect_event<'a>(
        &'a mut self,
        event_type: &'a str,
        name: &'a str,
    ) -> impl std::future::Future<Output = Value> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let event = match self.next_within(EVENT_TIMEOUT).await {
                Next::Event(event) => event,
                other => panic!(
                    "watch {} at {caller}: expected {event_type} {name}, got {other:?}",
                    self.url
                ),
            };
            assert_eq!(
                (
                    event["type"].as_str(),
                    event["object"]["metadata"]["name"].as_str()
                ),
                (Some(event_type), Some(name)),
                "watch {} at {caller}: unexpected event {event:#}",
                self.url
            );
            event
        }
    }

    /// Checks that nothing arrives within `wait` (the stream may neither end nor deliver).
    #[track_caller]
    pub fn expect_quiet(&mut self, wait: Duration) -> impl std::future::Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            match self.next_within(wait).await {
                Next::Timeout => {}
                other => panic!(
                    "watch {} at {caller}: expected nothing, got {other:?}",
                    self.url
                ),
            }
        }
    }

    /// Checks that the server ends the stream within `wait`.
    #[track_caller]
    pub fn expect_end(&mut self, wait: Duration) -> impl std::future::Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            match self.next_within(wait).await {
                Next::End => {}
                other => panic!(
                    "watch {} at {caller}: expected the end, got {other:?}",
                    self.url
                ),
            }
        }
    }
}
