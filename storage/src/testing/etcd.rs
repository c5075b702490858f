//! A real etcd for tests: `TestEtcd::start()` runs `etcd` on two free loopback ports with a
//! temporary data dir and kills it on drop. The binary is required: a missing `etcd` panics
//! (tests never skip).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd may take to answer `/health` after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One single-member etcd cluster owned by a test.
pub struct TestEtcd {
    /// The etcd binary.
    binary: PathBuf,
    /// Data dir and log file; removed on drop (after the process is gone).
    dir: tempfile::TempDir,
    /// Client port on 127.0.0.1.
    client_port: u16,
    /// Peer port on 127.0.0.1.
    peer_port: u16,
    /// The running process, `None` while stopped.
    child: Option<Child>,
}

impl TestEtcd {
    /// Starts etcd on free ports and waits until it is healthy. Panics if etcd is missing or
    /// does not come up (retrying a few times with new ports in case a port was taken).
    pub fn start() -> TestEtcd {
        let binary = find_etcd();
        let mut last_error = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("kubecache-etcd-")
                .tempdir()
                .expect("create etcd temp dir");
            let (client_port, peer_port) = free_ports();
            let mut etcd = TestEtcd {
                binary: binary.clone(),
                dir,
                client_port,
                peer_port,
                child: None,
            };
            match etcd.spawn_and_wait() {
                Ok(()) => return etcd,
                Err(error) => last_error = error,
            }
        }
        panic!("etcd did not start: {last_error}");
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file etcd's stdout and stderr go to.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills etcd (SIGKILL) and waits for it to exit. The data dir is kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data dir (stopping it first if running) and
    /// waits until it is healthy.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(error) = self.spawn_and_wait() {
            panic!("etcd did not restart: {error}");
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("open {}: {e}", self.log_path().display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&self.binary)
            .arg("--name")
            .arg("t")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .args(["--max-request-bytes", "4194304"])
            .args(["--quota-backend-bytes", "8589934592"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("etcd exited with {status}; log:\n{}", self.log()));
            }
            if healthy(self.client_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "etcd not healthy after {START_TIMEOUT:?}; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The etcd binary: `$ETCD_BIN`, else `etcd` on PATH, else /usr/bin/etcd.
pub(super) fn find_etcd() -> PathBuf {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return path;
        }
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("etcd"))
        .find(|path| path.is_file());
    match on_path {
        Some(path) => path,
        None if Path::new("/usr/bin/etcd").is_file() => PathBuf::from("/usr/bin/etcd"),
        None => panic!("etcd not found: run scripts/install-deps.sh"),
    }
}

/// Two distinct free ports on 127.0.0.1 (both listeners are held until both are picked).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    (
        a.local_addr().expect("local addr").port(),
        b.local_addr().expect("local addr").port(),
    )
}

/// `GET /health` answers `"health":"true"` (etcd has a leader and serves requests).
pub(super) fn healthy(port: u16) -> bool {
    http_get(port, "/health").is_some_and(|body| body.contains("\"health\":\"true\""))
}

/// The response (head and body) to a plain-HTTP `GET path` on 127.0.0.1:`port`, `None` if
/// the port does not answer.
pub(super) fn http_get(port: u16, path: &str) -> Option<String> {
    let get = || -> std::io::Result<String> {
        let address = ([127, 0, 0, 1], port).into();
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes())?;
        let _ = stream.shutdown(Shutdown::Write);
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    get().ok()
}
