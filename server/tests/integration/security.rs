//! The filter chain over the secure port, in process: TLS with a generated serving
//! certificate, token and client-certificate authentication (401), authorization (403),
//! max in-flight (429), panic recovery (500), the request timeout (504), CORS,
//! impersonation, audit events per stage/level/policy, and graceful shutdown with a watch
//! open. Every test starts its own server on free loopback ports.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kubecache_server::audit::LogOptions;
use kubecache_server::authz::AuthorizationMode;
use kubecache_server::filters::drain::Drain;
use kubecache_server::filters::{self, Chain, ChainOptions};
use kubecache_server::{server, serving, tls};
use kubecache_storage::embedded::EmbeddedBackend;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use support::pki::{ClientCert, TestCa};
use support::server::Reply;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TOKENS: &str = "admin-token,admin,uid-admin,\"system:masters\"\n\
                      alice-token,alice,uid-alice,\"devs,qa\"\n\
                      bob-token,bob,uid-bob\n";
/// Bound on any single wait in these tests (never an assertion about speed).
const PATIENCE: Duration = Duration::from_secs(30);

/// A kubecache with the filter chain on a TLS port and a plain-HTTP port.
struct Secure {
    https: String,
    http: String,
    ca_pem: String,
    dir: tempfile::TempDir,
    /// The chain serving: tests read its state (slots taken) to wait on it.
    chain: Arc<Chain>,
    drain: Arc<Drain>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Drop for Secure {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Options with the test token file (in `dir`) and the debug routes.
fn options(dir: &Path) -> ChainOptions {
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, TOKENS).expect("write the token file");
    ChainOptions {
        token_auth_file: Some(tokens),
        debug_routes: true,
        ..ChainOptions::default()
    }
}

fn audit_to(dir: &Path, options: &mut ChainOptions) -> PathBuf {
    let path = dir.join("audit").join("audit.log");
    options.audit_log = Some(LogOptions {
        path: path.clone(),
        max_size_mb: 0,
        max_backups: 0,
        max_age_days: 0,
    });
    path
}

impl Secure {
    async fn start(configure: impl FnOnce(&Path, &mut ChainOptions)) -> Secure {
        Secure::start_with_ca(None, configure).await
    }

    async fn start_with_ca(
        client_ca_pem: Option<&str>,
        configure: impl FnOnce(&Path, &mut ChainOptions),
    ) -> Secure {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = options(dir.path());
        configure(dir.path(), &mut options);
        let api = server::build_api(
            Arc::new(EmbeddedBackend::in_memory()),
            "/registry",
            server::ReadConfig::default(),
        )
        .await
        .expect("build the API");
        let chain = Chain::new(&options, &api).expect("build the chain");
        let drain = chain.drain.clone();
        let app = filters::apply(server::router(api), chain.clone());
        let client_ca = client_ca_pem.map(|pem| {
            let path = dir.path().join("client-ca.crt");
            std::fs::write(&path, pem).expect("write the client CA");
            path
        });
        let serving = tls::ServingCert::Generated {
            dir: dir.path().join("serving"),
        };
        let tls = tls::server_config(&serving, client_ca.as_deref()).expect("TLS config");
        let ca_pem = std::fs::read_to_string(tls.generated_ca.as_ref().expect("generated CA"))
            .expect("read the generated CA");
        let secure = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let insecure = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let https = format!("https://127.0.0.1:{}", secure.local_addr().unwrap().port());
        let http = format!("http://127.0.0.1:{}", insecure.local_addr().unwrap().port());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serving::run(
            vec![
                serving::Listener {
                    tcp: secure,
                    tls: Some(tls.config),
                },
                serving::Listener {
                    tcp: insecure,
                    tls: None,
                },
            ],
            app,
            drain.clone(),
            async move {
                let _ = stopped.await;
            },
            PATIENCE,
        ));
        Secure {
            https,
            http,
            ca_pem,
            dir,
            chain,
            drain,
            stop: Some(stop),
            task,
        }
    }

    fn builder(&self) -> reqwest::ClientBuilder {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA PEM");
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .no_proxy()
            .timeout(PATIENCE)
    }

    /// A client that trusts the server's generated CA.
    fn client(&self) -> reqwest::Client {
        self.builder().build().expect("client")
    }

    fn client_with_cert(&self, cert: &ClientCert) -> reqwest::Client {
        let identity =
            reqwest::Identity::from_pem(format!("{}{}", cert.cert_pem, cert.key_pem).as_bytes())
                .expect("client identity");
        self.builder().identity(identity).build().expect("client")
    }

    /// A request on the secure port with a bearer token.
    fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut request = self
            .client()
            .request(method, format!("{}{path}", self.https));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        send(self.request(Method::GET, path, token)).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        send(self.request(Method::POST, path, Some(token)).json(body)).await
    }
}

async fn send(request: RequestBuilder) -> Reply {
    let response = request.send().await.expect("send the request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("read the body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        headers,
        body,
    }
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

/// The audit log's events (every line must be a JSON object).
fn audit_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad audit line {line}: {e}"))
        })
        .collect()
}

/// Waits (bounded) until `check` holds for the audit events, and returns them.
async fn audit_until(path: &Path, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let events = audit_events(path);
        if check(&events) {
            return events;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("audit log never satisfied the check: {events:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn events_of<'a>(events: &'a [Value], audit_id: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["auditID"] == audit_id).collect()
}

fn audit_id(reply: &Reply) -> String {
    reply
        .headers
        .get("audit-id")
        .expect("an Audit-Id header")
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_token_is_401_good_token_and_anonymous_authenticate() {
    let server = Secure::start(|_, _| {}).await;
    let reply = server.get("/api/v1/namespaces", Some("wrong")).await;
    reply.expect_status(401, "Unauthorized");
    assert_eq!(reply.message(), "Unauthorized");
    assert!(reply.headers.contains_key("audit-id"));
    server
        .get("/api/v1/namespaces", Some("alice-token"))
        .await
        .expect(200);
    // ALPN: HTTP/2 when the client offers it, HTTP/1.1 otherwise.
    let h2 = server
        .request(Method::GET, "/version", Some("alice-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    let h1 = server
        .builder()
        .http1_only()
        .build()
        .unwrap()
        .get(format!("{}/version", server.https))
        .bearer_auth("alice-token")
        .send()
        .await
        .unwrap();
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert_eq!(h1.status(), 200);
    // No credentials: system:anonymous (allowed by AlwaysAllow).
    server.get("/api/v1/namespaces", None).await.expect(200);

    let mut audit = PathBuf::new();
    let strict = Secure::start(|dir, options| {
        options.anonymous_auth = false;
        audit = audit_to(dir, options);
    })
    .await;
    let refused = strict.get("/api/v1/namespaces", None).await;
    refused.expect_status(401, "Unauthorized");
    let wrong = strict.get("/api/v1/namespaces", Some("wrong")).await;
    wrong.expect_status(401, "Unauthorized");
    // Failed authentications are audited (ResponseStarted, no user).
    let (refused_id, wrong_id) = (audit_id(&refused), audit_id(&wrong));
    let events = audit_until(&audit, |events| {
        events_of(events, &refused_id).len() == 1 && events_of(events, &wrong_id).len() == 1
    })
    .await;
    let event = events_of(&events, &refused_id)[0];
    assert_eq!(event["stage"], "ResponseStarted");
    assert_eq!(event["user"]["username"], "");
    assert_eq!(event["responseStatus"]["code"], 401);
    assert_eq!(
        event["responseStatus"]["message"],
        "Authentication failed, no credentials provided"
    );
    assert_eq!(
        events_of(&events, &wrong_id)[0]["responseStatus"]["message"],
        "Authentication failed, attempted: bearer"
    );
    strict
        .get("/api/v1/namespaces", Some("bob-token"))
        .await
        .expect(200);
    // The plain-HTTP port needs no credentials.
    let reply =
        send(reqwest::Client::new().get(format!("{}/api/v1/namespaces", strict.http))).await;
    reply.expect(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn always_deny_is_403_with_kube_message_but_masters_pass() {
    let server = Secure::start(|_, options| {
        options.authorization_modes = vec![AuthorizationMode::AlwaysDeny];
    })
    .await;
    let reply = server
        .get("/api/v1/namespaces/default/pods", Some("alice-token"))
        .await;
    reply.expect_status(403, "Forbidden");
    assert_eq!(
        reply.message(),
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default": Everything is forbidden."#
    );
    assert_eq!(reply.body["details"]["kind"], "pods");
    let reply = server
        .get("/apis/apps/v1/namespaces/default/deployments/web", None)
        .await;
    reply.expect_status(403, "Forbidden");
    assert_eq!(
        reply.message(),
        r#"deployments.apps "web" is forbidden: User "system:anonymous" cannot get resource "deployments" in API group "apps" in the namespace "default": Everything is forbidden."#
    );
    // Authorization comes before the lookup: a resource that does not exist is 403, not 404.
    server
        .get("/api/v1/nosuchthings", Some("alice-token"))
        .await
        .expect_status(403, "Forbidden");
    // system:masters (admin's group, and the insecure port's user) is always allowed.
    server
        .get("/api/v1/namespaces/default/pods", Some("admin-token"))
        .await
        .expect(200);
    let reply =
        send(reqwest::Client::new().get(format!("{}/api/v1/namespaces", server.http))).await;
    reply.expect(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificate_authenticates_as_cn_in_o() {
    let ca = TestCa::new("test-client-ca");
    let mut audit = PathBuf::new();
    let server = Secure::start_with_ca(Some(&ca.cert_pem), |dir, options| {
        audit = audit_to(dir, options);
        options.authorization_modes = vec![AuthorizationMode::AlwaysDeny];
    })
    .await;
    let carol = ca.client("carol", Some("devs"));
    let client = server.client_with_cert(&carol);
    let reply = send(client.get(format!("{}/api/v1/namespaces", server.https))).await;
    reply.expect_status(403, "Forbidden");
    assert!(
        reply
            .message()
            .contains(r#"User "carol" cannot list resource "namespaces""#),
        "{}",
        reply.message()
    );
    let id = audit_id(&reply);
    let events = audit_until(&audit, |events| events_of(events, &id).len() == 2).await;
    let event = events_of(&events, &id)[1];
    assert_eq!(event["user"]["username"], "carol");
    assert_eq!(
        event["user"]["groups"],
        json!(["devs", "system:authenticated"])
    );
    assert_eq!(
        event["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );

    // A certificate from another CA fails the TLS handshake.
    let stranger = TestCa::new("stranger").client("mallory", None);
    let result = server
        .client_with_cert(&stranger)
        .get(format!("{}/api/v1/namespaces", server.https))
        .send()
        .await;
    assert!(result.is_err(), "a foreign client certificate was accepted");
    // Without a certificate the token still works on the same port.
    server
        .get("/api/v1/namespaces", Some("admin-token"))
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_in_flight_limit_is_429_with_retry_after() {
    let server = Arc::new(
        Secure::start(|_, options| {
            options.max_requests_inflight = 1;
            // The slow request holds its slot until the test ends, however long that takes.
            options.request_timeout = Duration::ZERO;
        })
        .await,
    );
    // Occupy the only read-only slot with a slow request, and see that it has: until it
    // holds the slot, a probe could take the slot first and the slow request be refused.
    let slow = {
        let server = server.clone();
        tokio::spawn(async move {
            send(
                server
                    .request(
                        Method::GET,
                        "/debug/kubecache/sleep?seconds=3600",
                        Some("alice-token"),
                    )
                    // Not PATIENCE: the client must not give up on it while the test runs.
                    .timeout(Duration::from_secs(3600)),
            )
            .await
        })
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.chain.limits.read_only_in_flight() == 0 {
        if slow.is_finished() {
            panic!("the slow request ended: {:?}", slow.await);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow request never took the slot"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = server.get("/api/v1/namespaces", Some("bob-token")).await;
    refused.expect_status(429, "TooManyRequests");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.body["details"]["retryAfterSeconds"], 1);
    // system:masters is never turned away; mutating requests have their own pool.
    assert_eq!(server.chain.limits.read_only_in_flight(), 1, "still held");
    server
        .get("/api/v1/namespaces", Some("admin-token"))
        .await
        .expect(200);
    server
        .post(
            "/api/v1/namespaces/default/configmaps",
            "bob-token",
            &configmap("c"),
        )
        .await
        .expect(201);
    // Watches are not counted.
    let watch = server
        .request(
            Method::GET,
            "/api/v1/configmaps?watch=true&timeoutSeconds=1",
            Some("bob-token"),
        )
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status(), 200);
    slow.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_handler_is_500_and_the_server_lives_on() {
    let mut audit = PathBuf::new();
    let server = Secure::start(|dir, options| audit = audit_to(dir, options)).await;
    let reply = server
        .get("/debug/kubecache/panic", Some("alice-token"))
        .await;
    reply.expect_status(500, "InternalError");
    assert!(reply.message().contains("panic"), "{}", reply.message());
    let id = audit_id(&reply);
    // Same connection pool, same server: still serving.
    server
        .get("/version", Some("alice-token"))
        .await
        .expect(200);
    server
        .get("/api/v1/namespaces", Some("alice-token"))
        .await
        .expect(200);
    let events = audit_until(&audit, |events| events_of(events, &id).len() == 2).await;
    let stages: Vec<_> = events_of(&events, &id)
        .iter()
        .map(|e| e["stage"].clone())
        .collect();
    assert_eq!(stages, vec![json!("RequestReceived"), json!("Panic")]);
    assert_eq!(events_of(&events, &id)[1]["responseStatus"]["code"], 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_request_is_504_but_a_watch_is_not_cut() {
    let server = Secure::start(|_, options| {
        options.request_timeout = Duration::from_secs(1);
    })
    .await;
    let reply = server
        .get("/debug/kubecache/sleep?seconds=30", Some("alice-token"))
        .await;
    reply.expect_status(504, "Timeout");
    assert_eq!(
        reply.message(),
        "request did not complete within requested timeout - context deadline exceeded"
    );
    // The request's own shorter ?timeout= applies; a malformed one is a 400.
    let open = Secure::start(|_, _| {}).await;
    open.get(
        "/debug/kubecache/sleep?seconds=30&timeout=1s",
        Some("alice-token"),
    )
    .await
    .expect_status(504, "Timeout");
    open.get("/api/v1/namespaces?timeout=soon", Some("alice-token"))
        .await
        .expect_status(400, "BadRequest");
    open.get("/api/v1/namespaces?timeout=30s", Some("alice-token"))
        .await
        .expect(200);
    // A watch outlives the timeout: an event two seconds in still arrives.
    let mut watch = server
        .request(
            Method::GET,
            "/api/v1/namespaces/default/configmaps?watch=true",
            Some("alice-token"),
        )
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status(), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    server
        .post(
            "/api/v1/namespaces/default/configmaps",
            "alice-token",
            &configmap("late"),
        )
        .await
        .expect(201);
    let mut seen = String::new();
    while !seen.contains("\"late\"") {
        let chunk = tokio::time::timeout(PATIENCE, watch.chunk())
            .await
            .expect("a watch event in time")
            .expect("read the watch")
            .expect("the watch is still open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("ADDED"), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflight_allowed_and_refused() {
    let server = Secure::start(|_, options| {
        options.cors_allowed_origins = vec![r"^https://good\.example$".to_string()];
    })
    .await;
    let preflight = |origin: &str| {
        server
            .request(Method::OPTIONS, "/api/v1/namespaces", None)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
    };
    let allowed = send(preflight("https://good.example")).await;
    assert_eq!(allowed.status, 204);
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://good.example"
    );
    assert_eq!(allowed.headers["access-control-allow-credentials"], "true");
    assert!(
        allowed.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PATCH")
    );
    let refused = send(preflight("https://evil.example")).await;
    assert_ne!(refused.status, 204);
    assert!(!refused.headers.contains_key("access-control-allow-origin"));
    // Anchored: a look-alike suffix does not match.
    let refused = send(preflight("https://good.example.evil")).await;
    assert!(!refused.headers.contains_key("access-control-allow-origin"));
    // An actual request from an allowed origin carries the headers too.
    let reply = send(
        server
            .request(Method::GET, "/api/v1/namespaces", Some("alice-token"))
            .header("origin", "https://good.example"),
    )
    .await;
    reply.expect(200);
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://good.example"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn impersonation_allowed_runs_as_the_target_and_denied_is_403() {
    let mut audit = PathBuf::new();
    let server = Secure::start(|dir, options| {
        audit = audit_to(dir, options);
        options.authorization_modes = vec![AuthorizationMode::AlwaysDeny];
    })
    .await;
    // admin (system:masters) may impersonate; the request then runs as bob, who is denied.
    let reply = send(
        server
            .request(
                Method::GET,
                "/api/v1/namespaces/default/pods",
                Some("admin-token"),
            )
            .header("impersonate-user", "bob")
            .header("impersonate-group", "testers")
            .header("impersonate-extra-scopes", "view"),
    )
    .await;
    reply.expect_status(403, "Forbidden");
    assert!(
        reply
            .message()
            .starts_with(r#"pods is forbidden: User "bob" cannot list"#),
        "{}",
        reply.message()
    );
    let id = audit_id(&reply);
    let events = audit_until(&audit, |events| events_of(events, &id).len() == 2).await;
    let event = events_of(&events, &id)[1];
    assert_eq!(event["user"]["username"], "admin");
    assert_eq!(event["impersonatedUser"]["username"], "bob");
    assert_eq!(
        event["impersonatedUser"]["groups"],
        json!(["testers", "system:authenticated"])
    );
    assert_eq!(
        event["impersonatedUser"]["extra"]["scopes"],
        json!(["view"])
    );

    // alice may not impersonate: 403 about the impersonation itself.
    let reply = send(
        server
            .request(Method::GET, "/api/v1/namespaces", Some("alice-token"))
            .header("impersonate-user", "bob"),
    )
    .await;
    reply.expect_status(403, "Forbidden");
    assert_eq!(
        reply.message(),
        r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope: Everything is forbidden."#
    );
    let reply = send(
        server
            .request(Method::GET, "/api/v1/namespaces", Some("alice-token"))
            .header(
                "impersonate-user",
                "system:serviceaccount:kube-system:robot",
            ),
    )
    .await;
    assert!(
        reply.message().starts_with(r#"serviceaccounts "robot" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "kube-system""#),
        "{}",
        reply.message()
    );
    // Groups without a user: 400.
    let reply = send(
        server
            .request(Method::GET, "/api/v1/namespaces", Some("admin-token"))
            .header("impersonate-group", "system:masters"),
    )
    .await;
    reply.expect_status(400, "BadRequest");

    // Allowed all the way: with AlwaysAllow alice becomes system:admin-ish "carol".
    let open = Secure::start(|_, _| {}).await;
    let reply = send(
        open.request(Method::GET, "/api/v1/namespaces", Some("alice-token"))
            .header("impersonate-user", "carol"),
    )
    .await;
    reply.expect(200);
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_metadata_by_default_with_one_line_per_stage() {
    let mut audit = PathBuf::new();
    let server = Secure::start(|dir, options| audit = audit_to(dir, options)).await;
    let reply = server
        .post(
            "/api/v1/namespaces/default/configmaps",
            "alice-token",
            &configmap("settings"),
        )
        .await;
    reply.expect(201);
    let id = audit_id(&reply);
    let events = audit_until(&audit, |events| events_of(events, &id).len() == 2).await;
    let ours = events_of(&events, &id);
    assert_eq!(ours[0]["stage"], "RequestReceived");
    assert_eq!(ours[1]["stage"], "ResponseComplete");
    let event = ours[1];
    assert_eq!(event["kind"], "Event");
    assert_eq!(event["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(event["level"], "Metadata");
    assert_eq!(event["verb"], "create");
    assert_eq!(event["requestURI"], "/api/v1/namespaces/default/configmaps");
    assert_eq!(event["user"]["username"], "alice");
    assert_eq!(event["user"]["uid"], "uid-alice");
    assert_eq!(
        event["user"]["groups"],
        json!(["devs", "qa", "system:authenticated"])
    );
    assert_eq!(event["sourceIPs"], json!(["127.0.0.1"]));
    assert_eq!(
        event["objectRef"],
        json!({"resource": "configmaps", "namespace": "default", "apiVersion": "v1"})
    );
    assert_eq!(event["responseStatus"]["code"], 201);
    assert!(event.get("requestObject").is_none());
    assert!(event.get("responseObject").is_none());
    assert!(ours[0].get("responseStatus").is_none());
    assert_eq!(
        event["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert!(
        event["requestReceivedTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // A failure's Status is recorded at Metadata.
    let reply = server
        .get(
            "/api/v1/namespaces/default/configmaps/missing",
            Some("alice-token"),
        )
        .await;
    reply.expect(404);
    let id = audit_id(&reply);
    let events = audit_until(&audit, |events| events_of(events, &id).len() == 2).await;
    let status = &events_of(&events, &id)[1]["responseStatus"];
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["code"], 404);
    // The client's Audit-ID is kept.
    let reply = send(
        server
            .request(Method::GET, "/version", Some("alice-token"))
            .header("audit-id", "my-own-id"),
    )
    .await;
    assert_eq!(audit_id(&reply), "my-own-id");
}

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    nonResourceURLs: ["/version", "/healthz*"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["configmaps"]
  - level: None
    users: ["bob"]
  - level: RequestResponse
"#;

#[tokio::test(flavor = "multi_thread")]
async fn audit_policy_levels_omit_stages_and_secret_bodies() {
    let mut audit = PathBuf::new();
    let server = Secure::start(|dir, options| {
        audit = audit_to(dir, options);
        let policy = dir.join("policy.yaml");
        std::fs::write(&policy, POLICY).unwrap();
        options.audit_policy_file = Some(policy);
    })
    .await;
    // configmaps: named by a rule, bodies recorded.
    let reply = server
        .post(
            "/api/v1/namespaces/default/configmaps",
            "alice-token",
            &configmap("cm"),
        )
        .await;
    reply.expect(201);
    let cm_id = audit_id(&reply);
    // secrets: only the catch-all rule matches: capped at Metadata.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}});
    let reply = server
        .post("/api/v1/namespaces/default/secrets", "alice-token", &secret)
        .await;
    reply.expect(201);
    let secret_id = audit_id(&reply);
    // bob: level None.
    let reply = server.get("/api/v1/namespaces", Some("bob-token")).await;
    let bob_id = audit_id(&reply);
    // /version: None.
    let reply = server.get("/version", Some("alice-token")).await;
    let version_id = audit_id(&reply);
    // A watch: ResponseStarted, then ResponseComplete when it ends (timeoutSeconds=1).
    let mut watch = server
        .request(
            Method::GET,
            "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1",
            Some("alice-token"),
        )
        .send()
        .await
        .expect("watch");
    let watch_id = watch.headers()["audit-id"].to_str().unwrap().to_string();
    while watch.chunk().await.expect("read the watch").is_some() {}

    let events = audit_until(&audit, |events| events_of(events, &watch_id).len() == 2).await;
    let cm = events_of(&events, &cm_id);
    assert_eq!(cm.len(), 1, "RequestReceived is omitted: {cm:#?}");
    assert_eq!(cm[0]["level"], "RequestResponse");
    assert_eq!(cm[0]["requestObject"]["data"]["k"], "v");
    assert_eq!(cm[0]["responseObject"]["metadata"]["name"], "cm");
    let secret = events_of(&events, &secret_id);
    assert_eq!(secret[0]["level"], "Metadata");
    assert!(secret[0].get("requestObject").is_none());
    assert!(!serde_json::to_string(&events).unwrap().contains("hunter2"));
    assert!(events_of(&events, &bob_id).is_empty());
    assert!(events_of(&events, &version_id).is_empty());
    let stages: Vec<_> = events_of(&events, &watch_id)
        .iter()
        .map(|e| e["stage"].clone())
        .collect();
    assert_eq!(
        stages,
        vec![json!("ResponseStarted"), json!("ResponseComplete")]
    );
    assert_eq!(events_of(&events, &watch_id)[0]["verb"], "watch");
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_finishes_requests_and_ends_watches() {
    let mut server = Secure::start(|_, _| {}).await;
    let client = server.client();
    let mut watch = client
        .get(format!(
            "{}/api/v1/namespaces/default/configmaps?watch=true",
            server.https
        ))
        .bearer_auth("alice-token")
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status(), 200);
    let slow = tokio::spawn(
        client
            .get(format!("{}/debug/kubecache/sleep?seconds=2", server.https))
            .bearer_auth("alice-token")
            .send(),
    );
    // Shut down once the slow request is being served.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.drain.in_flight() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow request never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.stop.take().unwrap().send(()).unwrap();
    // The watch ends cleanly: the stream closes without an error.
    loop {
        match tokio::time::timeout(PATIENCE, watch.chunk()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => panic!("the watch ended with an error: {e}"),
            Err(_) => panic!("the watch did not end on shutdown"),
        }
    }
    // The request in flight finished.
    let slow = slow.await.unwrap().expect("the slow request completed");
    assert_eq!(slow.status(), 200);
    assert_eq!(slow.text().await.unwrap(), "slept");
    // The server stops, and no longer accepts connections.
    tokio::time::timeout(PATIENCE, &mut server.task)
        .await
        .expect("serving ended")
        .expect("serving did not panic");
    let refused = reqwest::Client::new()
        .get(format!("{}/version", server.http))
        .send()
        .await;
    assert!(refused.is_err(), "still accepting after shutdown");
    let _ = &server.dir;
}
