//! Test harness for the loadgen: the real `kubecache` binary (built by cargo if needed, never
//! linked: the loadgen has no build-time dependency on the server), a real etcd on free
//! loopback ports, and running the loadgen binary with bounded waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// How long building the server binary may take (a cold build on a busy machine).
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long the server or etcd may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one loadgen run may take before it is killed.
pub const LOADGEN_TIMEOUT: Duration = Duration::from_secs(240);

/// The kubecache binary: `$KUBECACHE_BIN`, else `cargo build -p kubecache-server` (a no-op
/// when it is fresh) and the binary in this target dir.
pub fn kubecache_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    static BUILD: Mutex<()> = Mutex::new(());
    BINARY
        .get_or_init(|| {
            let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(path) = std::env::var_os("KUBECACHE_BIN") {
                return PathBuf::from(path);
            }
            // The test binary is target/<profile>/deps/<name>; the server goes to
            // target/<profile>/kubecache.
            let exe = std::env::current_exe().expect("the test binary's path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps")
                .to_path_buf();
            let release = profile_dir.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut command = Command::new(cargo);
            command.args([
                "build",
                "-q",
                "-p",
                "kubecache-server",
                "--bin",
                "kubecache",
            ]);
            if release {
                command.arg("--release");
            }
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            command.current_dir(&workspace);
            let output = run_bounded(command, BUILD_TIMEOUT);
            assert!(
                output.status.success(),
                "building kubecache failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let binary = profile_dir.join("kubecache");
            assert!(binary.is_file(), "{} is missing", binary.display());
            binary
        })
        .clone()
}

/// A running `kubecache serve`, killed on drop.
pub struct Kubecache {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Kubecache {
    /// On the embedded store, in memory.
    pub fn start() -> Kubecache {
        Kubecache::start_with(&[])
    }

    /// On etcd at `endpoint`.
    pub fn on_etcd(endpoint: &str) -> Kubecache {
        Kubecache::start_with(&["--etcd-servers", endpoint])
    }

    fn start_with(args: &[&str]) -> Kubecache {
        let dir = tempfile::Builder::new()
            .prefix("kubecache-loadgen-test-")
            .tempdir()
            .expect("a temp dir");
        let log = std::fs::File::create(dir.path().join("kubecache.log")).expect("a log file");
        // `--insecure-port 0` turns the plain port off: pick a free one, and no secure port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .expect("a free loopback port")
            .port()
            .to_string();
        let mut child = Command::new(kubecache_binary())
            .args(["serve", "--insecure-port", &port, "--secure-port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn kubecache");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = sender.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains("serving") => {
                    let start = line.find("http://").expect("a URL in the serving line");
                    break line[start..]
                        .split_whitespace()
                        .next()
                        .expect("the URL")
                        .to_string();
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "kubecache did not serve within {START_TIMEOUT:?}; log:\n{}",
                        std::fs::read_to_string(dir.path().join("kubecache.log"))
                            .unwrap_or_default()
                    );
                }
            }
        };
        Kubecache {
            child,
            url,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }
}

impl Drop for Kubecache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A single-member etcd on free loopback ports with a temp data dir, killed on drop.
pub struct Etcd {
    child: Child,
    pub endpoint: String,
    dir: tempfile::TempDir,
}

impl Etcd {
    pub fn start() -> Etcd {
        let binary = std::env::var_os("ETCD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("etcd"));
        let dir = tempfile::Builder::new()
            .prefix("kubecache-loadgen-etcd-")
            .tempdir()
            .expect("a temp dir");
        let (client, peer) = {
            let a = TcpListener::bind("127.0.0.1:0").expect("a free port");
            let b = TcpListener::bind("127.0.0.1:0").expect("a free port");
            (
                a.local_addr().expect("addr").port(),
                b.local_addr().expect("addr").port(),
            )
        };
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("a log file");
        let child = Command::new(&binary)
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} (etcd is required): {e}", binary.display()));
        let mut etcd = Etcd {
            child,
            endpoint,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !healthy(client) {
            if let Ok(Some(status)) = etcd.child.try_wait() {
                panic!("etcd exited with {status}; log:\n{}", etcd.log());
            }
            assert!(
                Instant::now() < deadline,
                "etcd not healthy within {START_TIMEOUT:?}; log:\n{}",
                etcd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        etcd
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn healthy(port: u16) -> bool {
    let check = || -> std::io::Result<bool> {
        use std::io::Write;
        let address = ([127, 0, 0, 1], port).into();
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let _ = stream.shutdown(Shutdown::Write);
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.contains("\"health\":\"true\""))
    };
    check().unwrap_or(false)
}

/// Runs `command` with captured output, killing it after `timeout`.
pub fn run_bounded(mut command: Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not finish within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Runs the loadgen with `args` plus `--json-out`, asserts it succeeded, and returns the
/// JSON report.
pub fn loadgen(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("a temp dir");
    let json = dir.path().join("report.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubecache-loadgen"));
    command.args(args).arg("--json-out").arg(&json);
    let output = run_bounded(command, LOADGEN_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubecache-loadgen {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report is not JSON ({e}): {text}"))
}

/// Asserts a report (or its `baseline`) shows a correct run: every watcher got exactly its
/// events, and nothing failed.
pub fn assert_correct(report: &serde_json::Value) {
    let events = &report["events"];
    let count = |field: &str| {
        events[field]
            .as_u64()
            .unwrap_or_else(|| panic!("events.{field} in {report:#}"))
    };
    assert!(count("expected") > 0, "no events expected: {report:#}");
    assert_eq!(count("received"), count("expected"), "{report:#}");
    for field in [
        "missed",
        "duplicated",
        "out_of_order",
        "unexpected",
        "excused",
    ] {
        assert_eq!(count(field), 0, "events.{field}: {report:#}");
    }
    for field in ["write", "watch", "list", "relists"] {
        assert_eq!(report["errors"][field], 0, "errors.{field}: {report:#}");
    }
    assert!(
        report["writes_per_sec"].as_f64().unwrap_or(0.0) > 0.0,
        "{report:#}"
    );
    assert!(
        report["events_per_sec"].as_f64().unwrap_or(0.0) > 0.0,
        "{report:#}"
    );
    assert!(report["latency_from_send_ms"]["p99"].is_f64(), "{report:#}");
}
