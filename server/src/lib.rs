//! # kubecache-server
pub mod backend;
