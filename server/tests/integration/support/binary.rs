//! The real `kubecache` binary for end-to-end tests: [`Kubecache::start`] spawns
//! `kubecache serve --insecure-port PORT --secure-port 0` on a free loopback port (in memory, on a data dir, or on etcd), waits for the
//! "serving ... on http://ADDR" line, and kills the child on drop. It writes a kubeconfig
//! pointing at the server into a temp dir, and [`Kubecache::kubectl`] runs `/usr/bin/kubectl`
//! with it. Every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the binary may take to print its "serving" line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one kubectl invocation may take before it is killed.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop (SIGTERM) may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The kubectl binary: `$KUBECTL`, else /usr/bin/kubectl.
pub fn kubectl_binary() -> PathBuf {
    std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"))
}

/// Where the server keeps its objects.
#[derive(Debug, Clone)]
pub enum Storage {
    /// The embedded store, in memory.
    Memory,
    /// The embedded store, persisted in this directory.
    DataDir(PathBuf),
    /// etcd at this client URL.
    Etcd(String),
}

/// A running (or stopped) `kubecache serve` child process.
pub struct Kubecache {
    storage: Storage,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` of the current run.
    url: String,
    /// Kubeconfig, kubectl cache dir, server log.
    dir: tempfile::TempDir,
    /// Which run this is (the log of each run goes to its own file).
    runs: u32,
    /// More `serve` flags.
    args: Vec<String>,
}

impl Kubecache {
    /// Starts the binary in memory.
    pub fn start() -> Kubecache {
        Kubecache::start_with(Storage::Memory)
    }

    /// Starts the binary on `storage` and waits for it to serve.
    pub fn start_with(storage: Storage) -> Kubecache {
        Kubecache::start_with_args(storage, &[])
    }

    /// Starts the binary on `storage` with more `serve` flags.
    pub fn start_with_args(storage: Storage, args: &[&str]) -> Kubecache {
        let dir = tempfile::Builder::new()
            .prefix("kubecache-e2e-")
            .tempdir()
            .expect("create the e2e temp dir");
        let mut server = Kubecache {
            storage,
            child: None,
            url: String::new(),
            dir,
            runs: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The temp dir owned by this harness (kubeconfig, logs; tests may put manifests here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The kubeconfig file for the current run.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The process id of the running child.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("kubecache is not running").id()
    }

    /// The server's stderr of every run so far (for failure messages).
    pub fn log(&self) -> String {
        let mut log = String::new();
        for run in 1..=self.runs {
            let path = self.log_path(run);
            log.push_str(&format!("--- run {run}\n"));
            log.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
        log
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("kubecache-{run}.log"))
    }

    /// SIGKILL (`kill -9`) and wait for the process to be gone. Storage is kept.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; panics if it does not exit in time or
    /// exits with a failure.
    pub fn stop_graceful(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        match wait_timeout(&mut child, STOP_TIMEOUT) {
            Some(status) => assert!(
                status.success(),
                "kubecache exited with {status} on SIGTERM; log:\n{}",
                self.log()
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kubecache did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
        }
    }

    /// Starts the binary again on the same storage (stopping it with SIGKILL first if it is
    /// running). The port, and so [`Kubecache::url`] and the kubeconfig, change.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    fn spawn(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.log_path(self.runs)).expect("create the server log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubecache"));
        // `--insecure-port 0` would turn the port off: pick a free one; no secure port.
        let port = free_port();
        command.args([
            "serve",
            "--insecure-port",
            &port.to_string(),
            "--secure-port",
            "0",
            "--controllers",
            super::server::TEST_CONTROLLERS,
        ]);
        command.args(&self.args);
        match &self.storage {
            Storage::Memory => {}
            Storage::DataDir(dir) => {
                command.arg("--data-dir").arg(dir);
            }
            Storage::Etcd(endpoint) => {
                command.args(["--etcd-servers", endpoint]);
            }
        }
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn the kubecache binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = read_lines(stdout);
        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(url) = serving_url(&line) {
                        break url;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = wait_timeout(&mut child, Duration::from_secs(5));
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "kubecache closed stdout before serving (exit: {status:?}); log:\n{}",
                        std::fs::read_to_string(self.log_path(self.runs)).unwrap_or_default()
                    );
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "kubecache did not print its serving line within {START_TIMEOUT:?}; log:\n{}",
                    std::fs::read_to_string(self.log_path(self.runs)).unwrap_or_default()
                );
            }
        };
        self.child = Some(child);
        self.url = url;
        self.write_kubeconfig();
    }

    fn write_kubeconfig(&self) {
        let config = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: kubecache\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: anonymous\n  user: {{}}\n\
             contexts:\n\
             - name: kubecache\n  context:\n    cluster: kubecache\n    user: anonymous\n\
             current-context: kubecache\n",
            url = self.url
        );
        std::fs::write(self.kubeconfig(), config).expect("write the kubeconfig");
    }

    /// A `kubectl` command set up for this server (KUBECONFIG, --cache-dir), not yet run.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        self.kubectl_command_of(&kubectl_binary(), args)
    }

    /// [`Kubecache::kubectl_command`] with this kubectl binary (a given client version).
    pub fn kubectl_command_of(&self, kubectl: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl);
        command
            .env("KUBECONFIG", self.kubeconfig())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs kubectl with `args` (killed after [`KUBECTL_TIMEOUT`]).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        run_bounded(self.kubectl_command(args), KUBECTL_TIMEOUT)
    }

    /// Runs kubectl and panics unless it succeeds; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("kubectl stdout is UTF-8")
    }

    /// Writes `contents` to a file in the temp dir and returns its path (for `-f`).
    pub fn manifest(&self, name: &str, contents: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write a manifest");
        path.to_str().expect("UTF-8 temp path").to_string()
    }

    /// `GET path` straight to the server (no kubectl): status code and JSON body.
    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, body) = self.http("GET", path, None, None);
        let value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "GET {path}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        (status, value)
    }

    /// One HTTP/1.0 request straight to the server: status code and body.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, Vec<u8>) {
        self.http_accepting(method, path, "application/json", content_type, body)
    }

    /// [`Kubecache::http`] with this `Accept` header (aggregated discovery…).
    pub fn http_accepting(
        &self,
        method: &str,
        path: &str,
        accept: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, Vec<u8>) {
        let address = self
            .url
            .strip_prefix("http://")
            .expect("an http:// url")
            .to_string();
        let mut stream = TcpStream::connect(&address).expect("connect to kubecache");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .expect("set write timeout");
        let body = body.unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {address}\r\nAccept: {accept}\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(content_type) = content_type {
            request.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("send request");
        stream.write_all(body).expect("send body");
        // No shutdown of the write half: hyper drops half-closed connections. HTTP/1.0
        // makes the server close the connection after the response.
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read response");
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete HTTP response head");
        let head = String::from_utf8_lossy(&response[..split]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line: {head}"));
        (status, response[split + 4..].to_vec())
    }
}

impl Drop for Kubecache {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The URL in a line like `kubecache serving the Kubernetes API on http://ADDR (...)`.
fn serving_url(line: &str) -> Option<String> {
    if !line.contains("serving") {
        return None;
    }
    let start = line.find("http://")?;
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    Some(url)
}

/// A loopback port that is free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// Reads `stdout` line by line on a thread, forwarding each line; the thread keeps draining
/// the pipe after the receiver is gone so the child never blocks on a full pipe.
pub fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(stdout);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let _ = sender.send(line);
        }
    });
    receiver
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `command` to completion with captured output, killing it after `timeout` (then
/// panicking with what it printed).
pub fn run_bounded(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let status = match wait_timeout(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = stdout.join().unwrap_or_default();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "{command:?} did not finish within {timeout:?}:\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A child whose stdout is collected on a thread as it arrives (for `kubectl get -w`).
pub struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Streaming {
    /// Spawns `command` with stdout and stderr piped.
    pub fn spawn(mut command: Command) -> Streaming {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        Streaming {
            child,
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Collects stdout lines until `done(lines so far)` holds; panics after `timeout`.
    pub fn wait_for(&mut self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> &[String] {
        let deadline = Instant::now() + timeout;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = self.child.kill();
                panic!(
                    "timed out after {timeout:?}; lines so far:\n{}",
                    self.seen.join("\n")
                );
            }
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.child.wait();
                    panic!(
                        "stream ended before the expected lines; lines:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
        &self.seen
    }

    /// Waits (bounded) for the process to exit on its own and returns its exit status and
    /// every stdout line; kills it on timeout.
    pub fn finish(mut self, timeout: Duration) -> (Option<ExitStatus>, Vec<String>, String) {
        let status = wait_timeout(&mut self.child, timeout);
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default();
        (
            status,
            std::mem::take(&mut self.seen),
            String::from_utf8_lossy(&stderr).to_string(),
        )
    }

    /// Kills the process and returns every stdout line seen.
    pub fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
