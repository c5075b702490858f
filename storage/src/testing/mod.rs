//! Test support for every crate that tests against storage (cargo feature `testing`):
//!
//! - [`conformance`]: the storage contract written once as cases that run against any
//!   [`Backend`](kubecache_core::storage::Backend) (this crate runs them against etcd and the
//!   embedded store, in memory and durable);
//! - [`TestEtcd`]: a real etcd on two free loopback ports with a temporary data dir.

pub mod conformance;
mod etcd;

pub use etcd::TestEtcd;
