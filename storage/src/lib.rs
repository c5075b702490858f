//! # kubecache-storage
//!
//! Implementations of the storage contract, [`kubecache_core::storage::Backend`] (etcd's
//! model: one global revision, compare-and-swap writes, lists and watches at a revision,
//! compaction):
//!
//! - [`etcd`]: a real etcd over its v3 gRPC API, with kube-apiserver's key layout;
//! - [`embedded`]: an in-process store with etcd's semantics, in three parts: the revisioned
//!   key space and compaction (`embedded::mvcc`), the write-ahead log that makes it durable
//!   with `--data-dir` (`embedded::wal`), and the fan-out of events to its watchers
//!   (`embedded::watch`);
//! - `testing` (cargo feature `testing`): the storage conformance suite every backend passes,
//!   and `TestEtcd`, a real etcd on free loopback ports, for this crate's tests and those of
//!   the crates above it.

pub mod embedded;
pub mod etcd;
#[cfg(feature = "testing")]
pub mod testing;
