//! Storage backends implementing [`kubecache_core::storage::Backend`].

pub mod embedded;
pub mod etcd;
