//! The etcd backend against a real etcd (one per test): etcd-specific behaviour, then the
//! shared conformance suite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use kubecache_core::storage::{Backend, ListOptions, StorageError, StorageEvent, WatchStream};
use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use kubecache_storage::testing::{TestEtcd, conformance};

/// How long a test waits for one watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

async fn backend(etcd: &TestEtcd) -> EtcdBackend {
    EtcdBackend::connect(&[etcd.endpoint()], EtcdOptions::default())
        .await
        .expect("connect to etcd")
}

async fn next_event(stream: &mut WatchStream) -> Result<StorageEvent, StorageError> {
    tokio::time::timeout(EVENT_TIMEOUT, stream.next())
        .await
        .expect("timed out waiting for a watch event")
        .expect("watch stream ended")
}

fn value(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

#[tokio::test]
async fn crud_roundtrip() {
    let etcd = TestEtcd::start();
    let b = backend(&etcd).await;
    let created = b.create("/r/a", value("1")).await.unwrap();
    assert_eq!(created.create_revision, created.mod_revision);
    assert_eq!(b.get("/r/a").await.unwrap(), Some(created.clone()));
    assert!(matches!(
        b.create("/r/a", value("x")).await,
        Err(StorageError::KeyExists { .. })
    ));

    let updated = b
        .update("/r/a", value("2"), created.mod_revision)
        .await
        .unwrap();
    assert_eq!(updated.create_revision, created.create_revision);
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(b.get("/r/a").await.unwrap(), Some(updated.clone()));

    match b.update("/r/a", value("3"), created.mod_revision).await {
        Err(StorageError::Conflict { key, current }) => {
            assert_eq!(key, "/r/a");
            assert_eq!(current, Some(updated.clone()));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(matches!(
        b.update("/r/missing", value("3"), 0).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        b.delete("/r/a", Some(created.mod_revision)).await,
        Err(StorageError::Conflict {
            current: Some(_),
            ..
        })
    ));
    let deleted = b.delete("/r/a", Some(updated.mod_revision)).await.unwrap();
    assert_eq!(deleted.prev, updated);
    assert!(deleted.revision > updated.mod_revision);
    assert_eq!(b.current_revision().await.unwrap(), deleted.revision);
    assert!(matches!(
        b.delete("/r/a", None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        b.delete("/r/a", Some(0)).await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(b.get("/r/a").await.unwrap(), None);
}

#[tokio::test]
async fn watch_on_compacted_revision_fails_from_watch() {
    let etcd = TestEtcd::start();
    let b = backend(&etcd).await;
    let first = b.create("/w/a", value("1")).await.unwrap();
    let mut last = first.clone();
    for i in 0..5 {
        last = b
            .update("/w/a", value(&i.to_string()), last.mod_revision)
            .await
            .unwrap();
    }
    b.compact(last.mod_revision).await.unwrap();
    match b.watch("/w/", first.mod_revision).await {
        Err(StorageError::Compacted {
            requested,
            compact_revision,
        }) => {
            assert_eq!(requested, first.mod_revision);
            assert_eq!(compact_revision, last.mod_revision);
        }
        Ok(_) => panic!("expected Compacted, got a stream"),
        Err(other) => panic!("expected Compacted, got {other:?}"),
    }
    // At the compacted revision itself the history is still complete.
    let mut stream = b.watch("/w/", last.mod_revision).await.unwrap();
    match next_event(&mut stream).await.unwrap() {
        StorageEvent::Put { kv, .. } => assert_eq!(kv, last),
        other => panic!("expected the put at the compacted revision, got {other:?}"),
    }
}

#[tokio::test]
async fn list_at_compacted_or_future_revision_fails() {
    let etcd = TestEtcd::start();
    let b = backend(&etcd).await;
    let first = b.create("/l/a", value("1")).await.unwrap();
    let second = b
        .update("/l/a", value("2"), first.mod_revision)
        .await
        .unwrap();
    b.create("/l/b", value("1")).await.unwrap();
    let at_first = b
        .list(ListOptions {
            prefix: "/l/".into(),
            revision: Some(first.mod_revision),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(at_first.revision, first.mod_revision);
    assert_eq!(at_first.kvs, vec![first.clone()]);

    b.compact(second.mod_revision).await.unwrap();
    match b
        .list(ListOptions {
            prefix: "/l/".into(),
            revision: Some(first.mod_revision),
            ..Default::default()
        })
        .await
    {
        Err(StorageError::Compacted {
            requested,
            compact_revision,
        }) => {
            assert_eq!(requested, first.mod_revision);
            assert_eq!(compact_revision, second.mod_revision);
        }
        other => panic!("expected Compacted, got {other:?}"),
    }
    let current = b.current_revision().await.unwrap();
    match b
        .list(ListOptions {
            prefix: "/l/".into(),
            revision: Some(current + 10),
            ..Default::default()
        })
        .await
    {
        Err(StorageError::FutureRevision {
            requested,
            current: now,
        }) => {
            assert_eq!(requested, current + 10);
            assert_eq!(now, current);
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    assert!(matches!(
        b.compact(first.mod_revision).await,
        Err(StorageError::Compacted { .. })
    ));
}

#[tokio::test]
async fn list_larger_than_4mib() {
    let etcd = TestEtcd::start();
    let b = backend(&etcd).await;
    let big = Bytes::from(vec![b'x'; 1024 * 1024]);
    for i in 0..6 {
        b.create(&format!("/big/{i}"), big.clone()).await.unwrap();
    }
    let page = b
        .list(ListOptions {
            prefix: "/big/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.kvs.len(), 6);
    assert_eq!(page.count, 6);
    assert!(!page.more);
    assert!(page.kvs.iter().all(|kv| kv.value == big));
}

#[tokio::test]
async fn list_pages_beyond_internal_chunk() {
    let etcd = TestEtcd::start();
    let b = Arc::new(backend(&etcd).await);
    let total = kubecache_storage::etcd::LIST_CHUNK + 50;
    futures::stream::iter(0..total)
        .map(|i| {
            let b = b.clone();
            async move {
                b.create(&format!("/many/{i:06}"), value("v"))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    b.create("/manz", value("outside")).await.unwrap();

    let all = b
        .list(ListOptions {
            prefix: "/many/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.kvs.len(), total);
    assert_eq!(all.count, total as i64);
    assert!(!all.more);
    assert!(all.kvs.windows(2).all(|w| w[0].key < w[1].key));

    let limited = b
        .list(ListOptions {
            prefix: "/many/".into(),
            limit: Some(total - 20),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.kvs.len(), total - 20);
    assert!(limited.more);
    assert_eq!(limited.count, total as i64);

    // A continuation: count covers the keys from start_key on.
    let rest = b
        .list(ListOptions {
            prefix: "/many/".into(),
            start_key: Some(format!("{}\0", limited.kvs.last().unwrap().key)),
            limit: Some(500),
            revision: Some(limited.revision),
        })
        .await
        .unwrap();
    assert_eq!(rest.kvs.len(), 20);
    assert_eq!(rest.count, 20);
    assert!(!rest.more);
    assert_eq!(rest.revision, limited.revision);
}

#[tokio::test]
async fn value_too_large() {
    let etcd = TestEtcd::start();
    let b = backend(&etcd).await;
    let huge = Bytes::from(vec![b'x'; 5 * 1024 * 1024]);
    match b.create("/huge", huge.clone()).await {
        Err(StorageError::ValueTooLarge { key, size }) => {
            assert_eq!(key, "/huge");
            assert_eq!(size, huge.len());
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    let small = b.create("/huge", value("1")).await.unwrap();
    assert!(matches!(
        b.update("/huge", huge, small.mod_revision).await,
        Err(StorageError::ValueTooLarge { .. })
    ));
}

#[tokio::test]
async fn watch_delivers_puts_and_deletes_with_prev() {
    let etcd = TestEtcd::start();
    let b = backend(&etcd).await;
    let start = b.current_revision().await.unwrap() + 1;
    let a1 = b.create("/wp/a", value("1")).await.unwrap();
    b.create("/other", value("1")).await.unwrap();
    let mut stream = b.watch("/wp/", start).await.unwrap();
    let a2 = b
        .update("/wp/a", value("2"), a1.mod_revision)
        .await
        .unwrap();
    let deleted = b.delete("/wp/a", None).await.unwrap();

    assert_eq!(
        next_event(&mut stream).await.unwrap(),
        StorageEvent::Put {
            kv: a1.clone(),
            prev: None
        }
    );
    assert_eq!(
        next_event(&mut stream).await.unwrap(),
        StorageEvent::Put {
            kv: a2.clone(),
            prev: Some(a1)
        }
    );
    assert_eq!(
        next_event(&mut stream).await.unwrap(),
        StorageEvent::Delete {
            key: "/wp/a".into(),
            revision: deleted.revision,
            prev: Some(a2)
        }
    );
}

#[tokio::test]
async fn request_progress_yields_progress() {
    let etcd = TestEtcd::start();
    let b = backend(&etcd).await;
    b.create("/elsewhere/x", value("1")).await.unwrap();
    let mut stream = b.watch("/quiet/", 0).await.unwrap();
    let rev = b
        .create("/elsewhere/y", value("1"))
        .await
        .unwrap()
        .mod_revision;
    b.request_progress();
    // The request is sent when the stream is polled.
    match next_event(&mut stream).await.unwrap() {
        StorageEvent::Progress { revision } => assert!(revision >= rev),
        other => panic!("expected Progress, got {other:?}"),
    }

    // A watch that starts in the past and has nothing to replay: progress is verified, then
    // passed on.
    let past = rev - 1;
    let mut stream = b.watch("/quiet/", past).await.unwrap();
    let now = b.current_revision().await.unwrap();
    b.request_progress();
    match next_event(&mut stream).await.unwrap() {
        StorageEvent::Progress { revision } => assert!(revision >= now),
        other => panic!("expected Progress, got {other:?}"),
    }
}

#[tokio::test]
async fn request_progress_does_not_overtake_replayed_events() {
    let etcd = TestEtcd::start();
    let b = Arc::new(backend(&etcd).await);
    let start = b.current_revision().await.unwrap() + 1;
    let n = 2000;
    futures::stream::iter(0..n)
        .map(|i| {
            let b = b.clone();
            async move {
                b.create(&format!("/replay/{i:05}"), value("v"))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let mut stream = b.watch("/replay/", start).await.unwrap();
    b.request_progress();
    let mut last = 0;
    let mut events = 0;
    while events < n {
        match next_event(&mut stream).await.unwrap() {
            StorageEvent::Put { kv, .. } => {
                assert!(
                    kv.mod_revision > last,
                    "event behind a progress notification"
                );
                last = kv.mod_revision;
                events += 1;
            }
            StorageEvent::Progress { revision } => {
                assert!(revision >= last);
                last = revision;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn dead_endpoint_is_unavailable_quickly() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = EtcdOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let started = Instant::now();
    let b = EtcdBackend::connect(&[format!("http://127.0.0.1:{port}")], options)
        .await
        .expect("connect does not contact etcd");
    assert!(matches!(
        b.health().await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        b.get("/x").await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(matches!(
        b.watch("/x/", 0).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn survives_etcd_restart() {
    let mut etcd = TestEtcd::start();
    let options = EtcdOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let b = EtcdBackend::connect(&[etcd.endpoint()], options)
        .await
        .unwrap();
    let a = b.create("/rs/a", value("1")).await.unwrap();
    let mut stream = b.watch("/rs/", a.mod_revision + 1).await.unwrap();

    etcd.stop();
    assert!(matches!(
        b.health().await,
        Err(StorageError::Unavailable(_))
    ));
    // The watch reports the broken stream once, then ends.
    assert!(matches!(
        next_event(&mut stream).await,
        Err(StorageError::Unavailable(_))
    ));
    assert!(stream.next().await.is_none());

    etcd.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while b.health().await.is_err() {
        assert!(Instant::now() < deadline, "backend did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.get("/rs/a").await.unwrap(), Some(a.clone()));
    let mut stream = b.watch("/rs/", a.mod_revision + 1).await.unwrap();
    let b2 = b.create("/rs/b", value("1")).await.unwrap();
    assert_eq!(
        next_event(&mut stream).await.unwrap(),
        StorageEvent::Put { kv: b2, prev: None }
    );
}

/// Every conformance case, each against its own etcd.
mod conformance_cases {
    use super::*;

    async fn setup() -> (Arc<dyn Backend>, TestEtcd) {
        let etcd = TestEtcd::start();
        let backend: Arc<dyn Backend> = Arc::new(backend(&etcd).await);
        (backend, etcd)
    }

    conformance::conformance_tests!(setup);
}

/// The whole suite in sequence against one etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_run_all_on_one_etcd() {
    let etcd = TestEtcd::start();
    let backend: Arc<dyn Backend> = Arc::new(backend(&etcd).await);
    conformance::run_all(backend, &conformance::unique_prefix("all")).await;
}
