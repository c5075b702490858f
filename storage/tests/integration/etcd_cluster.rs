//! The etcd backend as kube-apiserver uses etcd: mutual TLS, several members with one killed
//! under load, and kube's compaction protocol between several compactors
//! (`testing::TestEtcdCluster`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kubecache_core::storage::{Backend, ListOptions, StorageError, StorageEvent};
use kubecache_storage::etcd::{
    COMPACT_REV_KEY, CompactRound, EtcdBackend, EtcdOptions, EtcdTls, MEMBER_FAILURES_TO_REMOVE,
    MEMBER_PROBE_PERIOD, MEMBER_PROBE_TIMEOUT,
};
use kubecache_storage::testing::{TestEtcdCluster, TestPki};

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).expect("read a test certificate")
}

/// TLS options from the cluster's files: the CA, and a client certificate when given.
fn tls(pki: &TestPki, client: Option<(&std::path::Path, &std::path::Path)>) -> EtcdTls {
    EtcdTls {
        ca_pem: Some(read(&pki.ca_file)),
        client: client.map(|(cert, key)| (read(cert), read(key))),
    }
}

async fn connect(endpoints: &[String], tls: Option<EtcdTls>) -> EtcdBackend {
    let options = EtcdOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(3),
        tls,
    };
    EtcdBackend::connect(endpoints, options)
        .await
        .expect("connect does not contact etcd")
}

#[tokio::test]
async fn tls_with_client_certificate_and_refused_without() {
    let etcd = tokio::task::spawn_blocking(|| TestEtcdCluster::start_tls(1))
        .await
        .unwrap();
    let pki = etcd.pki().unwrap().clone();
    let endpoints = etcd.endpoints();

    let trusted = connect(
        &endpoints,
        Some(tls(
            &pki,
            Some((&pki.client_cert_file, &pki.client_key_file)),
        )),
    )
    .await;
    let created = trusted
        .create("/tls/a", Bytes::from_static(b"1"))
        .await
        .expect("a client with a certificate the CA signed writes");
    let got = trusted.get("/tls/a").await.unwrap().unwrap();
    assert_eq!(got.mod_revision, created.mod_revision);
    let mut watch = trusted.watch("/tls/", created.mod_revision).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Ok(Some(Ok(StorageEvent::Put { kv, .. }))) => assert_eq!(kv.key, "/tls/a"),
        other => panic!("expected the put over TLS, got {other:?}"),
    }

    // etcd requires a client certificate: without one, or with one from another CA, the
    // handshake fails and nothing is read or written.
    let anonymous = connect(&endpoints, Some(tls(&pki, None))).await;
    let untrusted = connect(
        &endpoints,
        Some(tls(
            &pki,
            Some((
                &pki.untrusted_client_cert_file,
                &pki.untrusted_client_key_file,
            )),
        )),
    )
    .await;
    for (name, refused) in [("no certificate", &anonymous), ("other CA", &untrusted)] {
        assert!(
            matches!(refused.health().await, Err(StorageError::Unavailable(_))),
            "{name}: health must fail"
        );
        assert!(
            refused
                .create("/tls/b", Bytes::from_static(b"2"))
                .await
                .is_err(),
            "{name}: the write must be refused"
        );
    }
    // The server is verified too: without the CA, its certificate is not trusted.
    let unverified = connect(&endpoints, Some(EtcdTls::default())).await;
    assert!(unverified.health().await.is_err());
    assert_eq!(trusted.get("/tls/b").await.unwrap(), None);

    // TLS options with a plain endpoint are a configuration error.
    let plain = vec!["http://127.0.0.1:1".to_string()];
    let error = EtcdBackend::connect(
        &plain,
        EtcdOptions {
            tls: Some(tls(&pki, None)),
            ..Default::default()
        },
    )
    .await
    .expect_err("TLS over http:// is refused");
    assert!(error.to_string().contains("plain http://"), "{error}");
}

#[tokio::test]
async fn a_dead_endpoint_among_live_ones_fails_nothing() {
    let etcd = tokio::task::spawn_blocking(|| TestEtcdCluster::start(1))
        .await
        .unwrap();
    // A port nothing listens on: requests the balancer sends there never reach etcd, so
    // writes too are sent again to the live member.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoints = vec![format!("http://127.0.0.1:{dead}"), etcd.endpoint(0)];
    let backend = connect(&endpoints, None).await;
    for i in 0..40 {
        let key = format!("/dead/{i}");
        let created = backend
            .create(&key, Bytes::from_static(b"x"))
            .await
            .expect("a create with one endpoint dead");
        let got = backend
            .get(&key)
            .await
            .expect("a get with one endpoint dead");
        assert_eq!(got.map(|kv| kv.mod_revision), Some(created.mod_revision));
    }
    assert!(backend.health().await.is_ok());
}

/// Writes keys one after another until told to stop, recording each acknowledged write's
/// revision and counting failed ones.
async fn write_until(
    backend: Arc<EtcdBackend>,
    stop: Arc<AtomicBool>,
) -> (BTreeMap<String, i64>, usize) {
    let mut acknowledged = BTreeMap::new();
    let mut failed = 0;
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("/ha/{i:06}");
        match backend.create(&key, Bytes::from(key.clone())).await {
            Ok(kv) => {
                acknowledged.insert(key, kv.mod_revision);
            }
            // Unavailable: outcome unknown (the final check reads etcd). KeyExists: a
            // write whose first attempt was applied (not retried here, so not expected).
            Err(_) => failed += 1,
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (acknowledged, failed)
}

/// Collects the puts under `/ha/` from `start` on, re-watching from the last revision seen
/// when a stream breaks (as the watch cache does), until `until` is seen.
async fn watch_all(backend: Arc<EtcdBackend>, start: i64, until: String) -> Vec<(String, i64)> {
    let mut seen = Vec::new();
    let mut next = start;
    let mut rewatches = 0;
    loop {
        let mut stream = match backend.watch("/ha/", next).await {
            Ok(stream) => stream,
            Err(StorageError::Unavailable(_)) => {
                rewatches += 1;
                assert!(rewatches < 200, "the watch never came back");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(error) => panic!("watch failed: {error}"),
        };
        while let Some(event) = stream.next().await {
            match event {
                Ok(StorageEvent::Put { kv, .. }) => {
                    next = kv.mod_revision + 1;
                    let done = kv.key == until;
                    seen.push((kv.key, kv.mod_revision));
                    if done {
                        return seen;
                    }
                }
                Ok(StorageEvent::Progress { .. }) => {}
                Ok(other) => panic!("unexpected {other:?}"),
                Err(StorageError::Unavailable(_)) => break,
                Err(error) => panic!("watch failed: {error}"),
            }
        }
        rewatches += 1;
        assert!(rewatches < 200, "the watch never came back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_write() {
    let mut etcd = tokio::task::spawn_blocking(|| TestEtcdCluster::start(3))
        .await
        .unwrap();
    let backend = Arc::new(connect(&etcd.endpoints(), None).await);
    let start = backend.current_revision().await.unwrap() + 1;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_until(backend.clone(), stop.clone()));

    tokio::time::sleep(Duration::from_millis(700)).await;
    let leader = etcd.wait_leader(Duration::from_secs(10));
    etcd.kill(leader);
    // The two others elect a new leader; writes go on.
    let new_leader = tokio::task::block_in_place(|| etcd.wait_leader(Duration::from_secs(20)));
    assert_ne!(new_leader, leader);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Reads go on too, whichever member the balancer picks.
    for _ in 0..20 {
        backend
            .get("/ha/000000")
            .await
            .expect("a read while a member is down");
    }
    tokio::task::block_in_place(|| etcd.restart(leader));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed) = writer.await.unwrap();
    eprintln!(
        "leader {leader} killed: {} writes acknowledged, {failed} failed",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() > 50,
        "writes went on: {} acknowledged, {failed} failed",
        acknowledged.len()
    );

    // Every acknowledged write is in etcd, at its revision.
    let page = backend
        .list(ListOptions {
            prefix: "/ha/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let stored: BTreeMap<String, i64> = page
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.mod_revision))
        .collect();
    for (key, revision) in &acknowledged {
        assert_eq!(stored.get(key), Some(revision), "acknowledged {key} lost");
    }

    // A watch from before the fault sees every stored write once, in revision order.
    let last = stored
        .iter()
        .max_by_key(|(_, revision)| **revision)
        .map(|(key, _)| key.clone())
        .unwrap();
    let seen = tokio::time::timeout(
        Duration::from_secs(60),
        watch_all(backend.clone(), start, last),
    )
    .await
    .expect("the watch saw the last write");
    let mut expected: Vec<(String, i64)> = stored.into_iter().collect();
    expected.sort_by_key(|(_, revision)| *revision);
    assert_eq!(seen, expected);
    assert!(
        failed <= acknowledged.len() / 4,
        "most writes succeed across the failover: {failed} failed"
    );
}

#[tokio::test]
async fn compactors_cooperate_through_compact_rev_key() {
    let etcd = tokio::task::spawn_blocking(|| TestEtcdCluster::start(1))
        .await
        .unwrap();
    let a = connect(&etcd.endpoints(), None).await;
    let b = connect(&etcd.endpoints(), None).await;
    let write = |i: usize| {
        let a = &a;
        async move {
            a.create(&format!("/c/{i}"), Bytes::from_static(b"x"))
                .await
                .unwrap()
        }
    };

    // Round 1: a wins the key (version 0 → 1) without compacting (nothing to keep yet);
    // b sees the new clock and does nothing.
    let a1 = a.compact_round(CompactRound::default()).await.unwrap();
    assert_eq!((a1.clock, a1.compacted), (1, None));
    let b1 = b.compact_round(CompactRound::default()).await.unwrap();
    assert_eq!((b1.clock, b1.compacted), (1, None));
    write(1).await;

    // Round 2: a wins again and compacts to the revision of its round 1; b loses.
    let a2 = a.compact_round(a1).await.unwrap();
    assert_eq!((a2.clock, a2.compacted), (2, Some(a1.revision)));
    let b2 = b.compact_round(b1).await.unwrap();
    assert_eq!((b2.clock, b2.compacted), (2, None));
    let after = write(2).await;

    // Round 3: b comes first this time and wins; a loses.
    let b3 = b.compact_round(b2).await.unwrap();
    assert_eq!((b3.clock, b3.compacted), (3, Some(b2.revision)));
    let a3 = a.compact_round(a2).await.unwrap();
    assert_eq!((a3.clock, a3.compacted), (3, None));

    // The key's version is the clock; its value is the last revision compacted to,
    // and etcd refuses reads below it.
    assert_eq!(b.compact_clock().await.unwrap(), 3);
    let key = a.get(COMPACT_REV_KEY).await.unwrap().unwrap();
    assert_eq!(key.value, Bytes::from(b2.revision.to_string()));
    assert!(b2.revision < after.mod_revision);
    match a
        .list(ListOptions {
            prefix: "/c/".into(),
            revision: Some(b2.revision - 1),
            ..Default::default()
        })
        .await
    {
        Err(StorageError::Compacted {
            compact_revision, ..
        }) => assert_eq!(compact_revision, b2.revision),
        other => panic!("expected a compacted read, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_member_is_taken_out_of_rotation() {
    let mut etcd = tokio::task::spawn_blocking(|| TestEtcdCluster::start(3))
        .await
        .unwrap();
    let backend = connect(&etcd.endpoints(), None).await;
    let leader = etcd.wait_leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    etcd.pause(follower);
    // Requests the balancer sends to the hung member time out until its probes have failed
    // enough times in a row to take it out.
    let out_of_rotation = (MEMBER_PROBE_PERIOD + MEMBER_PROBE_TIMEOUT) * MEMBER_FAILURES_TO_REMOVE
        + Duration::from_secs(1);
    tokio::time::sleep(out_of_rotation).await;
    let started = std::time::Instant::now();
    let mut acknowledged = Vec::new();
    for i in 0..40 {
        let key = format!("/paused/{i}");
        let kv = backend
            .create(&key, Bytes::from_static(b"x"))
            .await
            .expect("a create once the hung member is out of rotation");
        let got = backend.get(&key).await.expect("a read likewise");
        assert_eq!(got.map(|kv| kv.mod_revision), Some(kv.mod_revision));
        acknowledged.push((key, kv.mod_revision));
    }
    let elapsed = started.elapsed();
    eprintln!("member {follower} paused: 40 creates and reads in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");

    // Resumed, it has every acknowledged write (read through it alone).
    etcd.resume(follower);
    let alone = connect(&[etcd.endpoint(follower)], None).await;
    for (key, revision) in &acknowledged {
        let kv = alone.get(key).await.unwrap().expect("acknowledged");
        assert_eq!(kv.mod_revision, *revision);
    }
}
