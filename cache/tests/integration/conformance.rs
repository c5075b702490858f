//! Every `ReadPath` conformance case against both read paths over both backends. Each test
//! gets a store of its own (the cases compact it).

use std::sync::Arc;

use kubecache_cache::testing::conformance::{Fixture, Implementation};
use kubecache_core::storage::Backend;
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use kubecache_storage::testing::TestEtcd;

async fn embedded(implementation: Implementation) -> (Fixture, ()) {
    let backend: Arc<dyn Backend> = Arc::new(EmbeddedBackend::in_memory());
    (Fixture::new(backend, implementation).await, ())
}

async fn etcd(implementation: Implementation) -> (Fixture, TestEtcd) {
    let etcd = TestEtcd::start();
    let backend: Arc<dyn Backend> = Arc::new(
        EtcdBackend::connect(&[etcd.endpoint()], EtcdOptions::default())
            .await
            .expect("connect to etcd"),
    );
    (Fixture::new(backend, implementation).await, etcd)
}

mod watch_cache_on_embedded {
    async fn setup() -> (super::Fixture, ()) {
        super::embedded(super::Implementation::WatchCache).await
    }
    kubecache_cache::testing::conformance::read_path_conformance_tests!(setup);
}

mod passthrough_on_embedded {
    async fn setup() -> (super::Fixture, ()) {
        super::embedded(super::Implementation::Passthrough).await
    }
    kubecache_cache::testing::conformance::read_path_conformance_tests!(setup);
}

mod watch_cache_on_etcd {
    async fn setup() -> (super::Fixture, super::TestEtcd) {
        super::etcd(super::Implementation::WatchCache).await
    }
    kubecache_cache::testing::conformance::read_path_conformance_tests!(setup);
}

mod passthrough_on_etcd {
    async fn setup() -> (super::Fixture, super::TestEtcd) {
        super::etcd(super::Implementation::Passthrough).await
    }
    kubecache_cache::testing::conformance::read_path_conformance_tests!(setup);
}
