//! Test support for every crate that tests against storage (cargo feature `testing`):
//!
//! - [`conformance`]: the storage contract written once as cases that run against any
//!   [`Backend`](kubecache_core::storage::Backend) (this crate runs them against etcd and the
//!   embedded store, in memory and durable);
//! - [`TestEtcd`]: a real etcd on two free loopback ports with a temporary data dir;
//! - [`TestEtcdCluster`]: a real N-member etcd cluster, optionally over mutual TLS with
//!   generated certificates ([`TestPki`]), whose members tests kill and restart.

mod cluster;
pub mod conformance;
mod etcd;

pub use cluster::{TestEtcdCluster, TestPki};
pub use etcd::TestEtcd;
