//! kubecache binaries on etcd as kube-apiserver runs on it (`TestEtcdCluster`): mutual TLS
//! with client certificates, two replicas over a 3-member cluster (consistent reads, a watch
//! resumed on the other replica, the leader killed under writes and a watch), compaction by
//! two replicas through kube's `compact_rev_key` protocol, /readyz while etcd is gone, and the
//! storage metrics.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use kubecache_storage::testing::{TestEtcd, TestEtcdCluster};
use serde_json::{Value, json};

use crate::support::binary::{Kubecache, Storage, free_port, run_bounded};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

fn replica(etcd: &TestEtcdCluster, args: &[&str]) -> Kubecache {
    Kubecache::start_with_args(Storage::Etcd(etcd.servers_flag()), args)
}

/// Creates ConfigMap `name` through `server`: its resourceVersion, or the status code of a
/// refusal.
fn create(server: &Kubecache, name: &str) -> Result<u64, u16> {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    let (status, body) = server.http(
        "POST",
        CONFIGMAPS,
        Some("application/json"),
        Some(body.to_string().as_bytes()),
    );
    if status != 201 {
        return Err(status);
    }
    let object: Value = serde_json::from_slice(&body).expect("a created object");
    Ok(resource_version(&object))
}

fn resource_version(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {object}"))
}

/// A WATCH over HTTP/1.0, its events parsed on a thread as they arrive.
struct Watch {
    events: mpsc::Receiver<Value>,
}

impl Watch {
    fn start(server: &Kubecache, query: &str) -> Watch {
        let address = server.url().strip_prefix("http://").unwrap().to_string();
        let mut stream = TcpStream::connect(&address).expect("connect to kubecache");
        let request = format!(
            "GET {CONFIGMAPS}?watch=1&{query} HTTP/1.0\r\nHost: {address}\r\nAccept: application/json\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .expect("send the watch");
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            // The head ends with an empty line.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            for line in reader.lines() {
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if sender.send(event).is_err() {
                    break;
                }
            }
        });
        Watch { events }
    }

    /// The next event, within `timeout`.
    fn next(&self, timeout: Duration) -> Value {
        self.events
            .recv_timeout(timeout)
            .expect("a watch event in time")
    }

    /// The next ADDED event, skipping bookmarks; panics on an ERROR event.
    fn next_added(&self, timeout: Duration) -> (String, u64) {
        loop {
            let event = self.next(timeout);
            match event["type"].as_str() {
                Some("ADDED") => {
                    let object = &event["object"];
                    let name = object["metadata"]["name"].as_str().unwrap().to_string();
                    return (name, resource_version(object));
                }
                Some("BOOKMARK") => {}
                _ => panic!("unexpected watch event {event}"),
            }
        }
    }
}

/// The current resourceVersion of the ConfigMap list on `server`.
fn list_revision(server: &Kubecache) -> u64 {
    let (status, list) = server.get_json(CONFIGMAPS);
    assert_eq!(status, 200, "{list}");
    resource_version(&list)
}

/// The names of the ConfigMaps `server` lists.
fn listed_names(server: &Kubecache) -> HashSet<String> {
    let (status, list) = server.get_json(CONFIGMAPS);
    assert_eq!(status, 200, "{list}");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn readyz(server: &Kubecache, path: &str) -> (u16, String) {
    let (status, body) = server.http_accepting("GET", path, "text/plain", None, None);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Polls `path` until it answers `code`; the last body.
fn wait_readyz(server: &Kubecache, path: &str, code: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = readyz(server, path);
        if status == code {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} did not answer {code}: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn tls_etcd_with_client_certificates_and_refused_without() {
    let etcd = TestEtcdCluster::start_tls(3);
    let pki = etcd.pki().unwrap().clone();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (ca, cert, key) = (
        path(&pki.ca_file),
        path(&pki.client_cert_file),
        path(&pki.client_key_file),
    );
    let server = replica(
        &etcd,
        &[
            "--etcd-cafile",
            &ca,
            "--etcd-certfile",
            &cert,
            "--etcd-keyfile",
            &key,
        ],
    );
    server.kubectl_ok(&["create", "configmap", "over-tls", "--from-literal=a=b"]);
    let (status, object) = server.get_json(&format!("{CONFIGMAPS}/over-tls"));
    assert_eq!(status, 200, "{object}");
    assert_eq!(object["data"]["a"], "b");
    let body = wait_readyz(&server, "/readyz?verbose", 200);
    assert!(body.contains("[+]etcd ok"), "{body}");

    // Without a client certificate etcd refuses the connection: kubecache cannot write its
    // initial objects and exits with the reason.
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubecache"));
    command.args([
        "serve",
        "--insecure-port",
        &free_port().to_string(),
        "--secure-port",
        "0",
        "--etcd-servers",
        &etcd.servers_flag(),
        "--etcd-cafile",
        &ca,
        "--etcd-request-timeout",
        "2s",
    ]);
    let output = run_bounded(command, Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("cannot initialise storage"), "{stderr}");
}

#[test]
fn two_replicas_read_consistently_and_resume_each_others_watches() {
    let etcd = TestEtcdCluster::start(3);
    let a = replica(&etcd, &[]);
    let b = replica(&etcd, &[]);

    // A write acknowledged by A is seen by B's very next read (resourceVersion="" reads are
    // consistent: B's cache waits until it has etcd's current revision).
    for i in 0..15 {
        let name = format!("consistent-{i}");
        let revision = create(&a, &name).unwrap();
        let (status, object) = b.get_json(&format!("{CONFIGMAPS}/{name}"));
        assert_eq!(status, 200, "B did not see {name}: {object}");
        assert_eq!(resource_version(&object), revision);
        assert!(listed_names(&b).contains(&name));
    }

    // A client watching A from some revision switches to B with the last resourceVersion
    // it saw and gets the rest, once each, without a relist.
    let from = list_revision(&a);
    let on_a = Watch::start(&a, &format!("resourceVersion={from}"));
    let names: Vec<String> = (0..10).map(|i| format!("resumed-{i}")).collect();
    for name in &names {
        create(&a, name).unwrap();
    }
    let mut seen = Vec::new();
    let mut last = from;
    for _ in 0..4 {
        let (name, revision) = on_a.next_added(Duration::from_secs(20));
        assert!(revision > last);
        last = revision;
        seen.push(name);
    }
    drop(on_a);
    let on_b = Watch::start(&b, &format!("resourceVersion={last}"));
    for _ in 4..10 {
        let (name, revision) = on_b.next_added(Duration::from_secs(20));
        assert!(revision > last, "{name} at {revision} is not after {last}");
        last = revision;
        seen.push(name);
    }
    assert_eq!(seen, names);
    assert!(
        on_b.events
            .recv_timeout(Duration::from_millis(500))
            .is_err(),
        "nothing more (no duplicate, no error)"
    );
}

#[test]
fn killing_the_etcd_leader_loses_nothing_for_two_replicas() {
    let mut etcd = TestEtcdCluster::start(3);
    let a = Arc::new(replica(&etcd, &[]));
    let b = replica(&etcd, &[]);
    let from = list_revision(&b);
    let on_b = Watch::start(&b, &format!("resourceVersion={from}"));

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (a, stop) = (a.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            let mut failed = 0;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("chaos-{i:05}");
                match create(&a, &name) {
                    Ok(revision) => acknowledged.push((name, revision)),
                    Err(_) => failed += 1,
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (acknowledged, failed)
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let leader = etcd.wait_leader(Duration::from_secs(10));
    etcd.kill(leader);
    let new_leader = etcd.wait_leader(Duration::from_secs(20));
    assert_ne!(leader, new_leader);
    std::thread::sleep(Duration::from_secs(2));
    etcd.restart(leader);
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed) = writer.join().unwrap();
    eprintln!(
        "leader {leader} killed: {} creates acknowledged, {failed} failed",
        acknowledged.len()
    );
    assert!(acknowledged.len() > 20, "writes went on");

    // B's watch sees every acknowledged create once, in order (a create that failed may
    // still have been applied: seen at most once too).
    let expected: HashSet<&String> = acknowledged.iter().map(|(name, _)| name).collect();
    let mut seen = HashSet::new();
    let mut last = from;
    let last_acknowledged = acknowledged.last().unwrap().1;
    while last < last_acknowledged {
        let (name, revision) = on_b.next_added(Duration::from_secs(30));
        assert!(revision > last, "{name} at {revision} out of order");
        assert!(seen.insert(name.clone()), "{name} seen twice");
        last = revision;
    }
    for name in &expected {
        assert!(seen.contains(*name), "the watch missed {name}");
    }
    // And both replicas list every acknowledged write.
    for server in [&*a, &b] {
        let listed = listed_names(server);
        for name in &expected {
            assert!(listed.contains(*name), "{name} missing from a list");
        }
    }
}

#[test]
fn two_replicas_compact_once_per_interval() {
    let etcd = TestEtcd::start();
    let args = ["--etcd-compaction-interval", "2s"];
    let a = Kubecache::start_with_args(Storage::Etcd(etcd.endpoint()), &args);
    let b = Kubecache::start_with_args(Storage::Etcd(etcd.endpoint()), &args);
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(9) {
        create(if i % 2 == 0 { &a } else { &b }, &format!("c-{i}")).unwrap();
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime
        .block_on(EtcdBackend::connect(
            &[etcd.endpoint()],
            EtcdOptions::default(),
        ))
        .unwrap();
    let clock = runtime.block_on(client.compact_clock()).unwrap();
    eprintln!("compact_rev_key version {clock} after {elapsed:.1}s, two replicas at 2s");
    // Both replicas try every 2 s; kube's protocol lets one of them win each interval. Two
    // independent compactors would have advanced the clock twice as fast.
    let intervals = (elapsed / 2.0).ceil() as i64 + 1;
    assert!(
        (2..=intervals).contains(&clock),
        "compact_rev_key's version {clock} after {elapsed:.1}s of 2s intervals"
    );
    // etcd was compacted: its early history is gone.
    let old = runtime.block_on(kubecache_core::storage::Backend::list(
        &client,
        kubecache_core::storage::ListOptions {
            prefix: "/registry/configmaps/".into(),
            revision: Some(2),
            ..Default::default()
        },
    ));
    assert!(
        matches!(
            old,
            Err(kubecache_core::storage::StorageError::Compacted { .. })
        ),
        "{old:?}"
    );
    // The caches follow etcd's head, so compaction does not make them relist.
    for server in [&a, &b] {
        let (_, metrics) = server.http_accepting("GET", "/metrics", "text/plain", None, None);
        let metrics = String::from_utf8_lossy(&metrics);
        assert!(
            metrics
                .lines()
                .filter(|l| l.starts_with("kubecache_watch_cache_relists_total{"))
                .all(|l| l.ends_with(" 0")),
            "{metrics}"
        );
        // And they go on serving consistent reads.
        let (status, list) = server.get_json(CONFIGMAPS);
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["items"].as_array().unwrap().len(), i, "{list}");
    }
}

#[test]
fn readyz_fails_while_etcd_is_gone_and_recovers() {
    let mut etcd = TestEtcdCluster::start(3);
    let server = replica(
        &etcd,
        &[
            "--etcd-readycheck-timeout",
            "1s",
            "--etcd-request-timeout",
            "2s",
        ],
    );
    let body = wait_readyz(&server, "/readyz?verbose", 200);
    for check in ["[+]ping ok", "[+]etcd ok", "[+]watch-cache ok"] {
        assert!(body.contains(check), "{body}");
    }
    assert!(body.ends_with("readyz check passed\n"), "{body}");
    assert_eq!(readyz(&server, "/readyz"), (200, "ok".to_string()));
    assert_eq!(readyz(&server, "/readyz/etcd"), (200, "ok".to_string()));

    etcd.kill_all();
    let body = wait_readyz(&server, "/readyz", 500);
    assert!(body.contains("[-]etcd failed: reason withheld"), "{body}");
    assert!(body.contains("[+]ping ok"), "{body}");
    assert!(body.ends_with("readyz check failed\n"), "{body}");
    let (status, body) = readyz(&server, "/readyz/etcd");
    assert_eq!(status, 500);
    assert!(body.starts_with("internal server error: "), "{body}");
    let (status, body) = readyz(&server, "/readyz?exclude=etcd&exclude=watch-cache");
    assert_eq!((status, body.as_str()), (200, "ok"));

    etcd.restart_all();
    wait_readyz(&server, "/readyz", 200);
    create(&server, "after-outage").unwrap();
}

#[test]
fn storage_metrics_have_kubes_names() {
    let etcd = TestEtcdCluster::start(1);
    let server = replica(&etcd, &["--etcd-count-metric-poll-period", "1s"]);
    for i in 0..3 {
        create(&server, &format!("m-{i}")).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let (_, metrics) = server.http_accepting("GET", "/metrics", "text/plain", None, None);
        let metrics = String::from_utf8_lossy(&metrics).into_owned();
        let counted = metrics
            .lines()
            .find_map(|l| l.strip_prefix("apiserver_storage_objects{resource=\"configmaps\"} "))
            .and_then(|n| n.parse::<i64>().ok());
        // kube-root-ca.crt ConfigMaps aside, at least the three created here.
        if counted.is_some_and(|n| n >= 3) {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no object count:\n{metrics}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        metrics.contains(
            "etcd_request_duration_seconds_count{operation=\"create\",group=\"\",resource=\"configmaps\"} "
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "etcd_requests_total{operation=\"create\",group=\"rbac.authorization.k8s.io\",resource=\"clusterroles\"} "
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("apiserver_storage_objects{resource=\"namespaces\"} 4"),
        "{metrics}"
    );
    let size = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("apiserver_storage_size_bytes{storage_cluster_id=\"etcd-0\"} ")
        })
        .and_then(|n| n.parse::<i64>().ok());
    assert!(size.is_some_and(|n| n > 0), "{metrics}");
}
