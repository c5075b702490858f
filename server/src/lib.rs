//! # kubecache-server
//!
//! The `kubecache` API server. A request travels:
//!
//! - [`server`]: listeners and the HTTP stack (axum/hyper, HTTP/1.1 and HTTP/2);
//! - [`api`]: the single entry point — resolves the request's [`request_info::RequestInfo`]
//!   (parsed once by the filter chain) into a [`request_info::Target`], calls the handler,
//!   renders the reply; [`negotiation`]: the `Accept` header and the choice of form;
//!   [`status_response`]: every `ApiError` becomes its `Status` response there;
//! - [`handlers`]: one module per family of verbs; writes go through the
//!   [`kubecache_store::Store`] (which also holds the bootstrap writers and the controllers,
//!   written against `kubecache_store::Context`, which [`api::Api`] implements), reads through
//!   the read path (`kubecache_cache::ReadPath`) so the watch cache can serve them;
//! - below the server, crates that know nothing of HTTP, each depending only on those to its
//!   left (docs/ARCHITECTURE.md draws the graph): `kubecache_core` ← `kubecache_cache` (the
//!   read path) ← `kubecache_apimachinery` (strategies, registry, typed decoding, metadata
//!   rules, patches and server-side apply, printers, protobuf, OpenAPI) ←
//!   `kubecache_admission` (the chain every write passes before storage) ← `kubecache_store`
//!   (the Store, bootstrap writers, controllers); `kubecache_storage` (etcd, the embedded
//!   store) needs only core;
//! - [`proxy`] and [`kubelet`]: the connect subresources (logs, exec, attach,
//!   port-forward, the pod and node proxies) passed on to kubelets and pods, streamed;
//!   [`streams`]: WebSocket and SPDY/3.1 framing and kube's translation between them;
//! - [`metrics`]: `/metrics`, request counts and latencies and the watch cache's counters;
//! - [`authz`]: authorization — the `--authorization-mode` chain, RBAC over the live policy
//!   index (`kubecache_store::rbac`) and the access review APIs;
//! - [`service_accounts`]: service-account tokens (TokenRequest, their authentication,
//!   the OIDC discovery documents);
//! - [`cli`]: the `kubecache` command line.
//! - [`filters`]: the filter chain in front of [`api`] (body drain, Cache-Control, recovery,
//!   request info, shutdown tracking, timeout, CORS, authentication, audit, impersonation, limits, authorization),
//!   with [`authn`], [`authz`], [`audit`]; [`serving`] and [`tls`]: the secure and insecure
//!   listeners and graceful shutdown (see docs/SECURITY.md).

pub mod api;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod call;
pub mod cli;
pub mod dispatch;
pub mod edge;
pub mod etcd;
pub mod filters;
pub mod handlers;
pub mod kubelet;
pub mod metrics;
pub mod negotiation;
pub mod proxy;
pub mod readyz;
pub mod request_info;
pub mod server;
pub mod service_accounts;
pub mod serving;
pub mod status_response;
pub mod streams;
pub mod tls;
