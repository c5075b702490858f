//! The cache crate's integration tests, in one test binary: the `ReadPath` conformance suite
//! (`kubecache_cache::testing::conformance`) against the watch cache and the pass-through,
//! each over the embedded store (in memory) and a real etcd (one per test, `TestEtcd`).

mod conformance;
