//! The storage crate's integration tests, in one test binary: the conformance suite
//! (`kubecache_storage::testing::conformance`) against every backend, and each backend's own
//! behaviour. The etcd tests start a real etcd per test (`testing::TestEtcd`).

mod embedded;
mod etcd;
mod etcd_cluster;
