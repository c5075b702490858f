//! # kubecache-core
//!
//! The Kubernetes API vocabulary kubecache is built from, with no I/O:
//!
//! - [`registry`]: the built-in resources (group/version/resource, kind, scope, verbs, short
//!   names, subresources) and where each one lives in storage.
//! - [`request`]: the verb and subresource of a resource request.
//! - [`status`]: `metav1.Status` errors with kube-apiserver's reasons and codes.
//! - [`storage`]: the `Backend` trait every store (etcd, embedded) implements, its key/value
//!   model and typed errors.
//! - [`selector`]: label and field selectors; [`fields`]: which fields each resource can be
//!   selected by, and their values.
//! - [`continue_token`]: the opaque `continue` token of paginated LISTs.
//! - [`field`]: field errors (`Cause`s) worded as kube's `field.Error`.
//! - [`quantity`]: `resource.Quantity` parsing and arithmetic.
//! - [`validation`]: object name rules (DNS-1123 subdomain and label).
//! - [`authz`]: users, request attributes and the `Authorizer` trait.
//! - [`merge_schema`]: how each field of each built-in type merges (strategic merge patch,
//!   server-side apply, OpenAPI list/map extensions), generated from k8s-openapi.

/// The Kubernetes minor version (1.x) whose API kubecache serves: `/version`, discovery and
/// OpenAPI report it.
pub const KUBE_MINOR: &str = "33";

pub mod authz;
pub mod continue_token;
pub mod field;
pub mod fields;
pub mod merge_schema;
pub mod quantity;
pub mod registry;
pub mod request;
pub mod selector;
pub mod status;
pub mod storage;
pub mod validation;
