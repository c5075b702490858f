//! The connect subresources end to end: the real kubecache binary, a fake kubelet process
//! (`server/tests/kubelet/fake_kubelet.py`: HTTPS with a client certificate required, SPDY/3.1
//! and WebSocket stream protocols, a real process for exec, real TCP for port-forward) and
//! real clients: kubectl 1.29 (SPDY) and 1.33 (WebSocket first) for logs, exec, attach,
//! port-forward and `get --raw` through the proxies; raw HTTP for the errors and the
//! streaming bounds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::binary::{Kubecache, Storage, Streaming, free_port, wait_timeout};
use crate::support::kubectl::{parse, stderr, stdout, wait_until};
use crate::support::kubelet::{CLIENT_CN, FakeKubelet, create_pod, register_node};

/// kubectl binaries of one client version each (the dispatcher at /usr/bin/kubectl picks
/// by server version; these pick the protocol: 1.29 speaks SPDY only, 1.33 WebSocket first).
const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

fn kubectl_of(version: &str) -> PathBuf {
    Path::new(KUBECTL_DIR).join(format!("kubectl.{version}"))
}

/// A kubecache pointed at a fake kubelet, with node `node-a` (that kubelet) and pod `web`
/// (container `app`, its port the kubelet's plain-HTTP port) on it.
struct Cluster {
    server: Kubecache,
    kubelet: FakeKubelet,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_on(Storage::Memory)
    }

    fn start_on(storage: Storage) -> Cluster {
        let kubelet = FakeKubelet::start();
        let args = kubelet.kubecache_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Kubecache::start_with_args(storage, &args);
        kubelet.register_node(&server, "node-a");
        create_pod(
            &server,
            "web",
            Some("node-a"),
            json!([{"name": "app", "image": "app", "ports": [{"name": "http", "containerPort": kubelet.http_port}]}]),
        );
        Cluster { server, kubelet }
    }

    fn kubectl(&self, version: &str, args: &[&str]) -> Output {
        run(
            self.server.kubectl_command_of(&kubectl_of(version), args),
            None,
        )
    }

    fn kubectl_with_stdin(&self, version: &str, args: &[&str], input: &str) -> Output {
        run(
            self.server.kubectl_command_of(&kubectl_of(version), args),
            Some(input),
        )
    }

    /// GET `path`: status and body as text.
    fn get(&self, path: &str) -> (u16, String) {
        let (code, body) = self.server.http("GET", path, None, None);
        (code, String::from_utf8_lossy(&body).to_string())
    }

    fn get_status(&self, path: &str) -> (u16, Value) {
        let (code, body) = self.get(path);
        (code, parse(&body))
    }
}

/// Runs `command` (its stdin `input`, then closed), killed after a minute.
fn run(mut command: Command, input: Option<&str>) -> Output {
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn kubectl");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = out.read_to_end(&mut bytes);
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = err.read_to_end(&mut bytes);
        bytes
    });
    let status = wait_timeout(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
        let _ = child.kill();
        child.wait().expect("reap kubectl")
    });
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

#[track_caller]
fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kubectl failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

#[test]
fn kubectl_logs_reads_the_kubelets_container_log_over_client_tls() {
    let cluster = Cluster::start();
    for version in ["1.29", "1.33"] {
        let out = assert_ok(&cluster.kubectl(version, &["logs", "web"]));
        let expected: Vec<String> = (1..=5)
            .map(|i| format!("default/web/app line {i}"))
            .collect();
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            expected,
            "kubectl {version}"
        );
    }
    let out = assert_ok(&cluster.kubectl(
        "1.33",
        &[
            "logs",
            "web",
            "--tail=2",
            "--timestamps",
            "--limit-bytes=1000",
        ],
    ));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "2024-01-01T00:00:01.000000000Z default/web/app line 4",
            "2024-01-01T00:00:02.000000000Z default/web/app line 5",
        ]
    );
    let request = cluster
        .kubelet
        .last_request("/containerLogs/default/web/app");
    assert_eq!(
        request["query"],
        "limitBytes=1000&tailLines=2&timestamps=true"
    );
    // kubecache's kubelet client certificate, verified by the kubelet; the client's own
    // credentials stay with kubecache.
    assert_eq!(request["clientCN"], CLIENT_CN);
    assert!(
        request["headers"].get("authorization").is_none(),
        "{request}"
    );
}

#[test]
fn logs_follow_streams_and_a_client_that_leaves_releases_the_kubelet() {
    let cluster = Cluster::start();
    let mut follow = Streaming::spawn(
        cluster
            .server
            .kubectl_command_of(&kubectl_of("1.33"), &["logs", "-f", "web"]),
    );
    follow.wait_for(Duration::from_secs(30), |lines| {
        lines.iter().any(|l| l == "default/web/app follow 3")
    });
    let request = cluster
        .kubelet
        .last_request("/containerLogs/default/web/app");
    assert_eq!(request["query"], "follow=true");
    follow.kill();
    wait_until("the kubelet sees the follow stream closed", || {
        cluster
            .kubelet
            .requests()
            .iter()
            .any(|r| r["event"] == "follow-closed")
            .then_some(())
    });
}

#[test]
fn bad_log_requests_are_kube_statuses() {
    let cluster = Cluster::start();
    create_pod(
        &cluster.server,
        "two",
        Some("node-a"),
        json!([{"name": "a", "image": "a"}, {"name": "waiting", "image": "b"}]),
    );
    let pods = "/api/v1/namespaces/default/pods";
    let (code, status) = cluster.get_status(&format!("{pods}/two/log"));
    assert_eq!(
        (code, &status["reason"]),
        (400, &json!("BadRequest")),
        "{status}"
    );
    assert_eq!(
        status["message"],
        "a container name must be specified for pod two, choose one of: [a waiting]"
    );
    let (code, status) = cluster.get_status(&format!("{pods}/two/log?container=nope"));
    assert_eq!(code, 400);
    assert_eq!(status["message"], "container nope is not valid for pod two");
    // The kubelet's own 400 (a container not started) is passed on as kube's BadRequest.
    let (code, status) = cluster.get_status(&format!("{pods}/two/log?container=waiting"));
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "container \"waiting\" in pod \"two\" is waiting to start: ContainerCreating"
    );
    // Options: wrong types 400, invalid values 422 with a cause per field.
    let (code, _) = cluster.get_status(&format!("{pods}/web/log?tailLines=ten"));
    assert_eq!(code, 400);
    let (code, status) = cluster.get_status(&format!("{pods}/web/log?tailLines=-1&limitBytes=0"));
    assert_eq!(
        (code, &status["reason"]),
        (422, &json!("Invalid")),
        "{status}"
    );
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["tailLines", "limitBytes"]);
    assert_eq!(status["details"]["kind"], "PodLogOptions");
    let (code, _) = cluster.get_status(&format!("{pods}/missing/log"));
    assert_eq!(code, 404);
    // Nothing reached the kubelet for any of these but the waiting container's.
    let logs: Vec<Value> = cluster
        .kubelet
        .requests()
        .into_iter()
        .filter(|r| r.get("event").is_none())
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/containerLogs"))
        })
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
}

#[test]
fn pods_and_nodes_the_kubelet_cannot_serve_are_kube_errors_never_hangs() {
    let cluster = Cluster::start();
    let server = &cluster.server;
    let pods = "/api/v1/namespaces/default/pods";
    // A pod on no node: its log is empty (kube's nil location); exec is 400.
    create_pod(
        server,
        "pending",
        None,
        json!([{"name": "app", "image": "a"}]),
    );
    assert_eq!(
        cluster.get(&format!("{pods}/pending/log")),
        (200, String::new())
    );
    let (code, status) = cluster.get_status(&format!("{pods}/pending/exec?command=true&stdout=1"));
    assert_eq!(code, 400, "{status}");
    assert_eq!(
        status["message"],
        "pod pending does not have a host assigned"
    );
    // A node without an address of a preferred type.
    register_node(
        server,
        "no-address",
        json!({"addresses": [{"type": "Other", "address": "x"}]}),
    );
    create_pod(
        server,
        "stranded",
        Some("no-address"),
        json!([{"name": "app", "image": "a"}]),
    );
    let (code, status) = cluster.get_status(&format!("{pods}/stranded/log"));
    assert_eq!(
        (code, &status["reason"]),
        (500, &json!("InternalError")),
        "{status}"
    );
    assert_eq!(
        status["message"],
        "Internal error occurred: no preferred addresses found; known addresses: [{Other x}]"
    );
    // A kubelet that does not answer (nothing listens on the port).
    let closed = free_port();
    register_node(
        server,
        "down",
        json!({
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": closed}},
        }),
    );
    create_pod(
        server,
        "lost",
        Some("down"),
        json!([{"name": "app", "image": "a"}]),
    );
    let (code, status) = cluster.get_status(&format!("{pods}/lost/log"));
    assert_eq!(code, 500, "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Internal error occurred: error dialing backend: dial tcp 127.0.0.1:{closed}"
        )),
        "{message}"
    );
    let out = cluster.kubectl("1.29", &["exec", "lost", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error dialing backend"),
        "{}",
        stderr(&out)
    );
    // A node that does not exist.
    create_pod(
        server,
        "orphan",
        Some("gone"),
        json!([{"name": "app", "image": "a"}]),
    );
    let (code, status) = cluster.get_status(&format!("{pods}/orphan/log"));
    assert_eq!(code, 404, "{status}");
    assert_eq!(status["message"], "nodes \"gone\" not found");
    // The server still serves everything else.
    assert_eq!(cluster.get("/api/v1/namespaces/default/pods/web").0, 200);
}

#[test]
fn kubectl_exec_runs_a_real_command_with_stdin_and_exit_codes() {
    let cluster = Cluster::start();
    // 1.29 speaks SPDY/3.1 (passed through); 1.33 offers WebSocket (v5.channel.k8s.io),
    // which kubecache translates to SPDY towards the kubelet.
    for version in ["1.29", "1.33"] {
        let out = cluster.kubectl(
            version,
            &[
                "exec",
                "web",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "kubectl {version}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "out\n", "kubectl {version}");
        assert!(
            stderr(&out).contains("err"),
            "kubectl {version}: {}",
            stderr(&out)
        );
        let out = cluster.kubectl_with_stdin(
            version,
            &[
                "exec",
                "-i",
                "web",
                "-c",
                "app",
                "--",
                "sh",
                "-c",
                "tr a-z A-Z",
            ],
            "hello from stdin\n",
        );
        assert_eq!(assert_ok(&out), "HELLO FROM STDIN\n", "kubectl {version}");
    }
    let exec = cluster.kubelet.last_request("/exec/default/web/app");
    assert_eq!(
        exec["query"],
        "command=sh&command=-c&command=tr+a-z+A-Z&stderr=1&stdin=1&stdout=1"
    );
    assert_eq!(exec["clientCN"], CLIENT_CN);
    // Four sessions, four SPDY upgrades at the kubelet: kubectl 1.33's WebSocket (v5) was
    // translated, not refused and retried over SPDY.
    assert_eq!(
        upgrades(&cluster.kubelet, "/exec/"),
        ["SPDY/3.1 v4.channel.k8s.io"; 4]
    );
}

/// The upgrades the kubelet made under `prefix`: protocol and negotiated stream protocol.
fn upgrades(kubelet: &FakeKubelet, prefix: &str) -> Vec<String> {
    kubelet
        .requests()
        .iter()
        .filter(|r| r["event"] == "upgrade")
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
        .map(|r| format!("{} {}", r["upgrade"], r["protocol"]).replace('"', ""))
        .collect()
}

#[test]
fn kubectl_attach_streams_the_main_process() {
    let cluster = Cluster::start();
    for version in ["1.29", "1.33"] {
        let out = cluster.kubectl_with_stdin(version, &["attach", "-i", "web"], "ping\n");
        let text = assert_ok(&out);
        assert!(
            text.contains("attached to app"),
            "kubectl {version}: {text}"
        );
        assert!(text.contains("ping"), "kubectl {version}: {text}");
    }
    assert_eq!(
        upgrades(&cluster.kubelet, "/attach/"),
        ["SPDY/3.1 v4.channel.k8s.io"; 2]
    );
}

/// `kubectl port-forward` to the pod's port (the kubelet's plain HTTP echo), and one real
/// HTTP exchange through it.
fn port_forward_carries_http(cluster: &Cluster, version: &str) {
    let local = free_port();
    let mapping = format!("{local}:{}", cluster.kubelet.http_port);
    let mut forward = Streaming::spawn(
        cluster
            .server
            .kubectl_command_of(&kubectl_of(version), &["port-forward", "pod/web", &mapping]),
    );
    forward.wait_for(Duration::from_secs(30), |lines| {
        lines
            .iter()
            .any(|l| l.starts_with("Forwarding from 127.0.0.1"))
    });
    for attempt in 0..2 {
        let mut stream = TcpStream::connect(("127.0.0.1", local)).expect("connect the forward");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(
            stream,
            "GET /through/the/forward?n={attempt} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the answer");
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "kubectl {version}: {response}"
        );
        let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
        let echo = parse(body);
        assert_eq!(echo["path"], "/through/the/forward");
        assert_eq!(echo["query"], format!("n={attempt}"));
    }
    forward.kill();
}

#[test]
fn kubectl_port_forward_carries_a_real_http_exchange() {
    let cluster = Cluster::start();
    for version in ["1.29", "1.33"] {
        port_forward_carries_http(&cluster, version);
    }
    // kubectl 1.29's SPDY passed through, 1.33's tunnel (SPDY in WebSocket) unwrapped.
    assert_eq!(
        upgrades(&cluster.kubelet, "/portForward/default/web"),
        ["SPDY/3.1 portforward.k8s.io"; 2]
    );
}

#[test]
fn get_raw_through_the_pod_and_node_proxies() {
    let cluster = Cluster::start();
    let port = cluster.kubelet.http_port;
    let echo = parse(&assert_ok(&cluster.kubectl(
        "1.33",
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web/proxy/some/path?x=1&y=2",
        ],
    )));
    assert_eq!(echo["path"], "/some/path");
    assert_eq!(echo["query"], "x=1&y=2");
    assert_eq!(echo["headers"]["host"], format!("127.0.0.1:{port}"));
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
    assert!(echo["headers"].get("authorization").is_none());
    // By port name and by number.
    for id in [
        "web:http",
        &format!("web:{port}"),
        &format!("http:web:{port}"),
    ] {
        let echo = parse(&assert_ok(&cluster.kubectl(
            "1.33",
            &[
                "get",
                "--raw",
                &format!("/api/v1/namespaces/default/pods/{id}/proxy/"),
            ],
        )));
        assert_eq!(echo["path"], "/", "{id}");
    }
    // The node's kubelet, over HTTPS with the client certificate; its log files too.
    let echo = parse(&assert_ok(&cluster.kubectl(
        "1.33",
        &[
            "get",
            "--raw",
            "/api/v1/nodes/node-a/proxy/logs/kubelet.log",
        ],
    )));
    assert_eq!(echo["path"], "/logs/kubelet.log");
    assert_eq!(
        cluster.kubelet.last_request("/logs/")["clientCN"],
        CLIENT_CN
    );
    // Another port of the node: plain HTTP.
    let echo = parse(&assert_ok(&cluster.kubectl(
        "1.33",
        &[
            "get",
            "--raw",
            &format!("/api/v1/nodes/node-a:{port}/proxy/metrics"),
        ],
    )));
    assert_eq!(echo["path"], "/metrics");
    assert!(cluster.kubelet.last_request("/metrics")["clientCN"].is_null());
    // The bare proxy path redirects to the one with a slash, as kube.
    let (code, _) = cluster.get("/api/v1/namespaces/default/pods/web/proxy");
    assert_eq!(code, 301);
}

#[test]
fn proxies_stream_request_bodies_past_the_api_body_limit() {
    let cluster = Cluster::start();
    // 8 MiB: past the 3 MiB an API request body may have; a proxied one has no cap.
    let body: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
    let (code, answer) = cluster.server.http(
        "POST",
        "/api/v1/namespaces/default/pods/web/proxy/upload",
        Some("application/octet-stream"),
        Some(&body),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&answer));
    let echo: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["bodyBytes"], body.len());
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(echo["bodySha256"], hex);
}

#[test]
fn proxies_pass_websocket_upgrades_through() {
    let cluster = Cluster::start();
    let address = cluster
        .server
        .url()
        .strip_prefix("http://")
        .unwrap()
        .to_string();
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET /api/v1/namespaces/default/pods/web/proxy/ws-echo HTTP/1.1\r\nHost: {address}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    // A masked text frame "ping", echoed back unmasked.
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 4];
    frame.extend_from_slice(&mask);
    frame.extend(b"ping".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).unwrap();
    let mut echoed = [0u8; 6];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"\x81\x04ping");
}

#[test]
fn proxies_refuse_loopback_targets_by_default() {
    let kubelet = FakeKubelet::start();
    let args: Vec<String> = kubelet
        .kubecache_args()
        .into_iter()
        .filter(|a| a != "--allow-loopback-proxy-targets")
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Kubecache::start_with_args(Storage::Memory, &args);
    kubelet.register_node(&server, "node-a");
    create_pod(
        &server,
        "web",
        Some("node-a"),
        json!([{"name": "app", "image": "a"}]),
    );
    for path in [
        "/api/v1/namespaces/default/pods/web:80/proxy/",
        "/api/v1/nodes/node-a/proxy/",
    ] {
        let (code, body) = server.get_json(path);
        assert_eq!(
            (code, &body["message"]),
            (400, &json!("address not allowed")),
            "{path}"
        );
    }
    // Logs and exec go to the kubelet, which kube does not restrict.
    let (code, _) = server.http("GET", "/api/v1/namespaces/default/pods/web/log", None, None);
    assert_eq!(code, 200);
}

#[test]
fn logs_exec_and_port_forward_on_etcd() {
    let etcd = kubecache_storage::testing::TestEtcd::start();
    let cluster = Cluster::start_on(Storage::Etcd(etcd.endpoint().to_string()));
    let out = assert_ok(&cluster.kubectl("1.33", &["logs", "web", "--tail=1"]));
    assert_eq!(out, "default/web/app line 5\n");
    let out = cluster.kubectl("1.29", &["exec", "web", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    port_forward_carries_http(&cluster, "1.33");
}
