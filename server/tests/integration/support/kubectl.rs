//! Small helpers for kubectl end-to-end tests on top of [`Kubecache`]: output decoding,
//! `create -f` of a manifest, reading objects back over HTTP, and bounded polling.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::binary::Kubecache;

/// How long a test polls for a state (a deletion, a finalizer being seen) before failing.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Non-blank lines.
pub fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .collect()
}

/// The whitespace-separated columns of the first line (a table header).
pub fn header(text: &str) -> Vec<String> {
    lines(text)
        .first()
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `kubectl create -f` of `contents` written to the temp dir as `file`; returns stdout.
pub fn create(server: &Kubecache, file: &str, contents: &str) -> String {
    let path = server.manifest(file, contents);
    server.kubectl_ok(&["create", "-f", &path])
}

/// GETs an object over HTTP, asserting 200.
pub fn server_object(server: &Kubecache, path: &str) -> Value {
    let (status, body) = server.get_json(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Polls `check` every 50 ms until it returns `Some`, panicking with `what` after [`WAIT`].
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls until GET `path` answers 404 NotFound.
pub fn wait_gone(server: &Kubecache, path: &str) {
    wait_until(&format!("{path} deleted"), || {
        let (status, body) = server.get_json(path);
        (status == 404).then(|| assert_eq!(body["reason"], "NotFound", "{body}"))
    });
}
