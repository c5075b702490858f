//! End to end over TLS: the real `kubecache` binary on its secure port (generated
//! self-signed serving certificate, `--token-auth-file`, `--client-ca-file`, audit log)
//! driven by the real kubectl with a token kubeconfig and with a client-certificate
//! kubeconfig, both trusting the server through `certificate-authority-data`; the
//! Forbidden message as kubectl prints it; and SIGTERM with a watch open.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use support::binary::{
    KUBECTL_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT, free_port, kubectl_binary, read_lines,
    run_bounded, wait_timeout,
};
use support::pki::{ClientCert, TestCa};

const TOKENS: &str = "admin-token,admin,uid-admin,\"system:masters\"\n\
                      alice-token,alice,uid-alice,\"devs\"\n";

/// A `kubecache serve` child with its secure port on.
struct Secured {
    child: Option<Child>,
    /// `https://127.0.0.1:PORT`
    https: String,
    /// `http://127.0.0.1:PORT` when the insecure port is on.
    http: Option<String>,
    /// What the server printed before serving.
    printed: Vec<String>,
    dir: tempfile::TempDir,
    ca: TestCa,
    /// Where the serving certificate is generated, when not in `dir`.
    cert_dir: Option<PathBuf>,
}

impl Drop for Secured {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Secured {
    /// Starts the binary with tokens, a client CA, an audit log and `extra` flags.
    fn start(insecure: bool, extra: &[&str]) -> Secured {
        Secured::start_with_certs(insecure, extra, None)
    }

    /// As [`Secured::start`], with the generated certificate in `cert_dir` (default: a
    /// `certs` directory of its own).
    fn start_with_certs(insecure: bool, extra: &[&str], cert_dir: Option<PathBuf>) -> Secured {
        let dir = tempfile::Builder::new()
            .prefix("kubecache-tls-")
            .tempdir()
            .expect("temp dir");
        let ca = TestCa::new("e2e-client-ca");
        std::fs::write(dir.path().join("tokens.csv"), TOKENS).unwrap();
        std::fs::write(dir.path().join("client-ca.crt"), &ca.cert_pem).unwrap();
        let secure_port = free_port().to_string();
        let insecure_port = if insecure {
            free_port().to_string()
        } else {
            "0".to_string()
        };
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubecache"));
        command
            .args(["serve", "--bind-address", "127.0.0.1"])
            .args([
                "--secure-port",
                &secure_port,
                "--insecure-port",
                &insecure_port,
            ])
            .arg("--cert-dir")
            .arg(cert_dir.clone().unwrap_or_else(|| dir.path().join("certs")))
            .args(["--token-auth-file", &path("tokens.csv")])
            .args(["--client-ca-file", &path("client-ca.crt")])
            .args(["--audit-log-path", &path("audit.log")])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("server.log")).unwrap(),
            ));
        let mut child = command.spawn().expect("spawn kubecache");
        let lines = read_lines(child.stdout.take().unwrap());
        let deadline = Instant::now() + START_TIMEOUT;
        let mut printed = Vec::new();
        let mut http = None;
        let https = loop {
            match lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(url) = url_after(&line, "http://") {
                        http = Some(url);
                    }
                    let https = url_after(&line, "https://");
                    printed.push(line);
                    if let Some(url) = https {
                        break url;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    panic!(
                        "kubecache exited before serving: {}",
                        std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
                    );
                }
            }
            assert!(Instant::now() < deadline, "kubecache did not start in time");
        };
        // The certificate line comes right after the serving line.
        if let Ok(line) = lines.recv_timeout(START_TIMEOUT) {
            printed.push(line);
        }
        let server = Secured {
            child: Some(child),
            https,
            http,
            printed,
            dir,
            ca,
            cert_dir,
        };
        server.write_kubeconfig();
        server
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// One kubeconfig with three users: a token, a client certificate, a bad token.
    fn write_kubeconfig(&self) {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let certs = self.cert_dir.clone().unwrap_or_else(|| self.path("certs"));
        let ca = std::fs::read(certs.join("ca.crt")).expect("the generated CA");
        let ClientCert { cert_pem, key_pem } = self.ca.client("carol", Some("ops"));
        let config = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: kc\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: alice\n  user:\n    token: alice-token\n\
             - name: admin\n  user:\n    token: admin-token\n\
             - name: carol\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n\
             - name: stranger\n  user:\n    token: not-a-token\n\
             contexts:\n\
             - name: alice\n  context: {{cluster: kc, user: alice}}\n\
             - name: admin\n  context: {{cluster: kc, user: admin}}\n\
             - name: carol\n  context: {{cluster: kc, user: carol}}\n\
             - name: stranger\n  context: {{cluster: kc, user: stranger}}\n\
             current-context: alice\n",
            server = self.https,
            ca = b64(&ca),
            cert = b64(cert_pem.as_bytes()),
            key = b64(key_pem.as_bytes()),
        );
        std::fs::write(self.path("kubeconfig"), config).unwrap();
    }

    fn kubectl(&self, context: &str, args: &[&str]) -> Output {
        let mut command = Command::new(kubectl_binary());
        command
            .env("KUBECONFIG", self.path("kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .arg("--cache-dir")
            .arg(self.path("kubectl-cache"))
            .args(["--context", context])
            .args(args)
            .stdin(Stdio::null());
        run_bounded(command, KUBECTL_TIMEOUT)
    }

    fn kubectl_ok(&self, context: &str, args: &[&str]) -> String {
        let output = self.kubectl(context, args);
        assert!(
            output.status.success(),
            "kubectl --context {context} {args:?} failed:\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
            .collect()
    }

    /// SIGTERM; asserts a successful exit within the bound.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = wait_timeout(&mut child, STOP_TIMEOUT).unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "no exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log()
            )
        });
        assert!(status.success(), "exit {status}; log:\n{}", self.log());
    }
}

fn url_after(line: &str, scheme: &str) -> Option<String> {
    if !line.contains("serving") {
        return None;
    }
    let start = line.find(scheme)?;
    Some(line[start..].split_whitespace().next()?.to_string())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

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
