//! The real `kubecache` binary on its secure port (generated self-signed serving
//! certificate, `--token-auth-file`, `--client-ca-file`, audit log) and a kubeconfig for the
//! real kubectl with token and client-certificate users, all trusting the server through
//! `certificate-authority-data`. Used by security_e2e.rs and e2e_tls_rbac.rs.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use super::binary::{
    KUBECTL_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT, free_port, kubectl_binary, read_lines,
    run_bounded, wait_timeout,
};
use super::pki::{ClientCert, TestCa};

pub const TOKENS: &str = "admin-token,admin,uid-admin,\"system:masters\"\n\
                      alice-token,alice,uid-alice,\"devs\"\n";

/// A `kubecache serve` child with its secure port on.
pub struct Secured {
    pub child: Option<Child>,
    /// `https://127.0.0.1:PORT`
    pub https: String,
    /// `http://127.0.0.1:PORT` when the insecure port is on.
    pub http: Option<String>,
    /// What the server printed before serving.
    pub printed: Vec<String>,
    pub dir: tempfile::TempDir,
    pub ca: TestCa,
    /// Where the serving certificate is generated, when not in `dir`.
    pub cert_dir: Option<PathBuf>,
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
    pub fn start(insecure: bool, extra: &[&str]) -> Secured {
        Secured::start_with_certs(insecure, extra, None)
    }

    /// As [`Secured::start`], with the generated certificate in `cert_dir` (default: a
    /// `certs` directory of its own).
    pub fn start_with_certs(insecure: bool, extra: &[&str], cert_dir: Option<PathBuf>) -> Secured {
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

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// One kubeconfig with three users: a token, a client certificate, a bad token.
    pub fn write_kubeconfig(&self) {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let certs = self.cert_dir.clone().unwrap_or_else(|| self.path("certs"));
        let ca = std::fs::read(certs.join("ca.crt")).expect("the generated CA");
        let ClientCert { cert_pem, key_pem } = self.ca.client("carol", Some("ops"));
        let root = self.ca.client("root", Some("system:masters"));
        let config = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters:\n- name: kc\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: alice\n  user:\n    token: alice-token\n\
             - name: admin\n  user:\n    token: admin-token\n\
             - name: carol\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n\
             - name: stranger\n  user:\n    token: not-a-token\n\
             - name: root\n  user:\n    client-certificate-data: {root_cert}\n    client-key-data: {root_key}\n\
             contexts:\n\
             - name: alice\n  context: {{cluster: kc, user: alice}}\n\
             - name: admin\n  context: {{cluster: kc, user: admin}}\n\
             - name: carol\n  context: {{cluster: kc, user: carol}}\n\
             - name: stranger\n  context: {{cluster: kc, user: stranger}}\n\
             - name: root\n  context: {{cluster: kc, user: root}}\n\
             current-context: alice\n",
            server = self.https,
            ca = b64(&ca),
            cert = b64(cert_pem.as_bytes()),
            key = b64(key_pem.as_bytes()),
            root_cert = b64(root.cert_pem.as_bytes()),
            root_key = b64(root.key_pem.as_bytes()),
        );
        std::fs::write(self.path("kubeconfig"), config).unwrap();
    }

    pub fn kubectl(&self, context: &str, args: &[&str]) -> Output {
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

    pub fn kubectl_ok(&self, context: &str, args: &[&str]) -> String {
        let output = self.kubectl(context, args);
        assert!(
            output.status.success(),
            "kubectl --context {context} {args:?} failed:\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
    }

    pub fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
            .collect()
    }

    /// SIGTERM; asserts a successful exit within the bound.
    pub fn stop(&mut self) {
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

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
