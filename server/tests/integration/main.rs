//! The server's integration tests, in one test binary: each module was once its own
//! `tests/*.rs` target, and every target linked the whole dependency graph again (~230 MB
//! of debug binary each). One binary links once; nextest still runs every test in its own
//! process.

#[macro_use]
mod support;

mod admission;
mod admission_webhooks;
mod always_present;
mod api;
mod api_resources;
mod apply_http;
mod authz;
mod builtin_core_autoscaling;
mod builtin_policy_certs;
mod builtin_storage_network;
mod crd_controller;
mod crd_conversion;
mod crds;
mod discovery;
mod e2e_auth;
mod e2e_kubectl;
mod e2e_kubectl_apply;
mod e2e_kubectl_openapi;
mod e2e_kubectl_protobuf;
mod e2e_kubectl_suite;
mod e2e_tls_rbac;
mod etcd_replicas;
mod fidelity;
mod kubelet_streams;
mod limit_range;
mod list_stream;
mod metrics;
mod openapi;
mod openapi_crd;
mod oversized_body;
mod pod_subresources;
mod podtemplates;
mod protobuf;
mod resource_quota;
mod runtime_resource;
mod security;
mod security_e2e;
mod service_account_tokens;
mod serving;
mod status_bytes;
mod storage_format;
mod table;
mod versions;
mod watch_cache;
mod watch_cache_dynamic;
mod watch_cache_model;
mod watch_cache_storage_faults;
mod write_revisions;
