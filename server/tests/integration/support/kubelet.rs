//! The fake kubelet (`server/tests/kubelet/fake_kubelet.py`) as a child process: HTTPS with
//! a serving certificate from a test CA, client certificates required (signed by a second
//! test CA, whose client certificate kubecache is given), every request it gets recorded
//! as a JSON line. [`FakeKubelet::kubecache_args`] are the `serve` flags that point
//! kubecache at it; [`FakeKubelet::register_node`] writes a Node whose kubelet it is.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::binary::Kubecache;
use super::pki::TestCa;

/// The client certificate's common name kubecache presents to kubelets.
pub const CLIENT_CN: &str = "kube-apiserver-kubelet-client";

pub struct FakeKubelet {
    child: Child,
    /// The kubelet API port (HTTPS).
    pub https_port: u16,
    /// The same handler over plain HTTP: what a pod's port is in these tests.
    pub http_port: u16,
    dir: tempfile::TempDir,
}

impl FakeKubelet {
    pub fn start() -> FakeKubelet {
        let dir = tempfile::Builder::new()
            .prefix("fake-kubelet-")
            .tempdir()
            .expect("create the fake kubelet's dir");
        let serving_ca = TestCa::new("kubelet-ca");
        let serving = serving_ca.server(&["127.0.0.1", "localhost"]);
        let client_ca = TestCa::new("kubelet-client-ca");
        let client = client_ca.client(CLIENT_CN, Some("system:masters"));
        let write = |name: &str, contents: &str| {
            std::fs::write(dir.path().join(name), contents).expect("write a PEM file");
        };
        write("serving-ca.pem", &serving_ca.cert_pem);
        write("serving.pem", &serving.cert_pem);
        write("serving-key.pem", &serving.key_pem);
        write("client-ca.pem", &client_ca.cert_pem);
        write("client.pem", &client.cert_pem);
        write("client-key.pem", &client.key_pem);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kubelet/fake_kubelet.py");
        let path = |name: &str| dir.path().join(name);
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--cert")
            .arg(path("serving.pem"))
            .arg("--key")
            .arg(path("serving-key.pem"))
            .arg("--client-ca")
            .arg(path("client-ca.pem"))
            .arg("--record")
            .arg(path("requests.jsonl"))
            // Its stdin closes when this test process ends: it exits then.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the fake kubelet (python3)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("the fake kubelet prints its ports");
        let words: Vec<&str> = line.split_whitespace().collect();
        let (https_port, http_port) = match words.as_slice() {
            ["kubelet", "https", https, "http", http] => {
                (https.parse().unwrap(), http.parse().unwrap())
            }
            _ => panic!("unexpected first line from the fake kubelet: {line:?}"),
        };
        FakeKubelet {
            child,
            https_port,
            http_port,
            dir,
        }
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_string()
    }

    /// The `serve` flags that make kubecache reach this kubelet: its CA, the client
    /// certificate it requires, loopback targets allowed.
    pub fn kubecache_args(&self) -> Vec<String> {
        vec![
            "--kubelet-certificate-authority".to_string(),
            self.file("serving-ca.pem"),
            "--kubelet-client-certificate".to_string(),
            self.file("client.pem"),
            "--kubelet-client-key".to_string(),
            self.file("client-key.pem"),
            "--allow-loopback-proxy-targets".to_string(),
        ]
    }

    /// Every record so far, oldest first: the requests the kubelet got, and its events
    /// (`"event": "upgrade"`, `"follow-closed"`).
    pub fn requests(&self) -> Vec<Value> {
        let path: PathBuf = self.dir.path().join("requests.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON record"))
            .collect()
    }

    /// The last request for a path starting with `prefix`.
    pub fn last_request(&self, prefix: &str) -> Value {
        self.requests()
            .into_iter()
            .rev()
            .filter(|r| r.get("event").is_none())
            .find(|r| r["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
            .unwrap_or_else(|| panic!("the kubelet got no request for {prefix}"))
    }

    /// Creates Node `name` whose kubelet this is (address 127.0.0.1, its HTTPS port).
    pub fn register_node(&self, server: &Kubecache, name: &str) {
        register_node(
            server,
            name,
            json!({
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.https_port}},
            }),
        );
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates Node `name` with this `status`.
pub fn register_node(server: &Kubecache, name: &str, status: Value) {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    let (code, body) = server.http(
        "POST",
        "/api/v1/nodes",
        Some("application/json"),
        Some(node.to_string().as_bytes()),
    );
    assert_eq!(
        code,
        201,
        "create node {name}: {}",
        String::from_utf8_lossy(&body)
    );
    patch_status(
        server,
        &format!("/api/v1/nodes/{name}"),
        json!({"status": status}),
    );
}

/// Merge-patches an object's status subresource.
pub fn patch_status(server: &Kubecache, path: &str, patch: Value) {
    let (code, body) = server.http(
        "PATCH",
        &format!("{path}/status"),
        Some("application/merge-patch+json"),
        Some(patch.to_string().as_bytes()),
    );
    assert_eq!(
        code,
        200,
        "patch {path}/status: {}",
        String::from_utf8_lossy(&body)
    );
}

/// Creates pod `name` in `default` with these containers, on `node` (none: unscheduled),
/// Running, its IP 127.0.0.1.
pub fn create_pod(server: &Kubecache, name: &str, node: Option<&str>, containers: Value) {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": containers},
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    let (code, body) = server.http(
        "POST",
        "/api/v1/namespaces/default/pods",
        Some("application/json"),
        Some(pod.to_string().as_bytes()),
    );
    assert_eq!(
        code,
        201,
        "create pod {name}: {}",
        String::from_utf8_lossy(&body)
    );
    patch_status(
        server,
        &format!("/api/v1/namespaces/default/pods/{name}"),
        json!({"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}}),
    );
}
