//! # kubecache-server
//!
//! The `kubecache` API server. A request travels:
//!
//! - [`server`]: listeners and the HTTP stack (axum/hyper, HTTP/1.1 and HTTP/2);
//! - [`api`]: the single entry point — resolves the request's [`request_info::RequestInfo`]
//!   (parsed once by the filter chain) into a [`request_info::Target`], calls the handler,
//!   renders the reply; [`negotiation`]: the `Accept` header and the choice of form;
//!   [`status_response`]: every `ApiError` becomes its `Status` response there;
//! - [`admission`]: the mutating then validating chain every write passes before storage;
//! - [`handlers`]: one module per family of verbs; writes go through the [`store`], reads
//!   through the read path (`kubecache_cache::ReadPath`) so the watch cache can serve them;
//! - [`store`]: every write of an object (create, update with the one retry loop, delete),
//!   for the handlers, the bootstrap writers and the controllers alike;
//! - [`strategy`]: what differs per resource (typed form, defaults, validation, create and
//!   update preparation, printer, storage version, delete behaviour), one strategy each;
//! - [`typed`], [`objects`], [`patch`] ([`strategic`]), [`events`]: decoding, metadata rules,
//!   patches, field selectors and the events.k8s.io conversion the handlers share;
//!   [`always_present`]: the empty struct fields kube always writes, in the canonical form;
//! - [`fieldset`], [`managed`], [`ssa`]: field ownership (`managedFields`) and server-side
//!   apply;
//! - [`openapi`]: `/openapi/v3`, the OpenAPI documents generated from k8s-openapi's types;
//! - [`protobuf`]: `application/vnd.kubernetes.protobuf` bodies, responses and watch frames;
//! - [`metrics`]: `/metrics`, request counts and latencies and the watch cache's counters;
//! - [`authz`]: authorization — the `--authorization-mode` chain, live RBAC, the bootstrap
//!   policy, ClusterRole aggregation and the access review APIs;
//! - [`cli`]: the `kubecache` command line.
//! - [`filters`]: the filter chain in front of [`api`] (body drain, Cache-Control, recovery,
//!   request info, shutdown tracking, timeout, CORS, authentication, audit, impersonation, limits, authorization),
//!   with [`authn`], [`authz`], [`audit`]; [`serving`] and [`tls`]: the secure and insecure
//!   listeners and graceful shutdown (see docs/SECURITY.md).

pub mod api;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod cli;
pub mod edge;
pub mod filters;
pub mod handlers;
pub mod metrics;
pub mod negotiation;
pub mod request_info;
pub mod server;
pub mod serving;
pub mod status_response;
pub mod tls;
