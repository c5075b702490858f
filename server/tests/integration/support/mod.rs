//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod binary;
pub mod kubectl;
pub mod pki;
pub mod secured;
pub mod server;

/// Runs `$scenario(&TestServer)` as two tests: `$embedded` over the embedded store and
/// `$etcd` over a real etcd the test starts.
macro_rules! on_both_stores {
    ($embedded:ident, $etcd:ident, $scenario:ident) => {
        #[tokio::test]
        async fn $embedded() {
            $scenario(&$crate::support::server::TestServer::start().await).await;
        }

        #[tokio::test]
        async fn $etcd() {
            let etcd = kubecache_storage::testing::TestEtcd::start();
            $scenario(&$crate::support::server::TestServer::start_on_etcd(&etcd).await).await;
        }
    };
}
