//! The conformance suite against the embedded backend, in memory and with a data directory,
//! plus durability across a clean restart.

use std::sync::Arc;

use bytes::Bytes;
use kubecache_core::storage::{Backend, ListOptions};
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::testing::conformance;

/// Every conformance case against a fresh in-memory store.
mod in_memory {
    use super::*;

    async fn setup() -> (Arc<dyn Backend>, ()) {
        (Arc::new(EmbeddedBackend::in_memory()), ())
    }

    conformance::conformance_tests!(setup);
}

/// Every conformance case against a fresh store with a write-ahead log in a temp dir.
mod durable {
    use super::*;

    async fn setup() -> (Arc<dyn Backend>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = EmbeddedBackend::open(dir.path()).expect("open embedded backend");
        (Arc::new(backend), dir)
    }

    conformance::conformance_tests!(setup);
}

/// The whole suite, run in sequence against one shared store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_durable_store() {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(EmbeddedBackend::open(dir.path()).unwrap());
    conformance::run_all(backend, "/all/").await;
}

/// Keys written with a data dir are all there, with the same revisions, after drop + reopen.
#[tokio::test]
async fn data_survives_restart() {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let (written, revision) = {
        let backend = EmbeddedBackend::open(dir.path()).unwrap();
        let mut written = Vec::new();
        for i in 0..N {
            let key = format!("/durable/{i:04}");
            let kv = backend
                .create(&key, Bytes::from(format!("value-{i}")))
                .await
                .unwrap();
            written.push(if i % 3 == 0 {
                backend
                    .update(&key, Bytes::from(format!("updated-{i}")), kv.mod_revision)
                    .await
                    .unwrap()
            } else {
                kv
            });
        }
        let gone = written.pop().unwrap();
        backend.delete(&gone.key, None).await.unwrap();
        (written, backend.current_revision().await.unwrap())
    };

    let backend = EmbeddedBackend::open(dir.path()).unwrap();
    assert_eq!(backend.current_revision().await.unwrap(), revision);
    let page = backend
        .list(ListOptions {
            prefix: "/durable/".into(),
            ..ListOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(page.kvs, written);
    assert_eq!(page.revision, revision);
    let next = backend
        .create("/durable/next", Bytes::from_static(b"n"))
        .await
        .unwrap();
    assert_eq!(next.mod_revision, revision + 1);
}
