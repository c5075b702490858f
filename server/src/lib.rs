//! # kubecache-server
//!
//! The `kubecache` API server. A request travels:
//!
//! - [`server`]: listeners and the HTTP stack (axum/hyper, HTTP/1.1 and HTTP/2);
//! - [`api`]: the single entry point — parses the path into a [`request_info::Target`],
//!   calls the handler, renders the reply or the `Status` error;
//! - [`handlers`]: one module per family of verbs; writes go to the storage backend, reads
//!   through the read path (`kubecache_cache::ReadPath`) so the watch cache can serve them;
//! - [`typed`], [`objects`], [`patch`], [`events`]: decoding, metadata rules,
//!   patches, field selectors and the events.k8s.io conversion the handlers share;
//! - [`backend`]: the etcd and embedded implementations of the storage `Backend`;
//! - [`metrics`]: `/metrics`, request counts and latencies and the watch cache's counters;
//! - [`authz`]: authorization — the `--authorization-mode` chain, live RBAC, the bootstrap
//!   policy, ClusterRole aggregation and the access review APIs;
//! - [`cli`]: the `kubecache` command line.

pub mod api;
pub mod authz;
pub mod backend;
pub mod cli;
pub mod codec;
pub mod events;
pub mod handlers;
pub mod metrics;
pub mod objects;
pub mod patch;
pub mod request_info;
pub mod server;
pub mod table;
pub mod typed;
