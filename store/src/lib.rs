//! # kubecache-store
//!
//! Every write of an object, and the server's own writers that make them outside any
//! request (kube-apiserver's `registry/generic` Store, its bootstrap post-start hooks and the
//! kube-controller-manager loops kubecache runs in-process).
//!
//! # Layout
//!
//! - [`Store`] ([`store`]): create, update (the one `GuaranteedUpdate` loop), delete and
//!   deletecollection for any resource, running the metadata rules, admission and
//!   managedFields; a [`Writer`] says who writes and how.
//! - [`namespaces`]: the initial namespaces, and the finalizer that empties and removes a
//!   terminating namespace.
//! - [`crds`]: the CustomResourceDefinition controller (names, conditions, serving each
//!   established CRD's versions, cleanup); [`resources`]: adding and removing served
//!   resources at run time, the read path and the registry in step; [`conversion`]: a CRD's
//!   conversion webhook, the converter its custom resources await.
//! - [`bootstrap`]: the mandatory API Priority and Fairness objects and the local
//!   APIServices kube-apiserver creates at start.
//! - [`service_cidrs`]: the default ServiceCIDR `kubernetes` of the service IP range.
//! - [`service_accounts`]: the `default` ServiceAccount and the `kube-root-ca.crt`
//!   ConfigMap of every namespace (kube-controller-manager's controllers, `--controllers`).
//! - [`resource_quota`]: the quota controller (`status.hard` and `status.used` of every
//!   ResourceQuota; admission charges them, [`kubecache_admission::quota`]).
//! - [`rbac`]: the bootstrap RBAC policy, the ClusterRole aggregation controller and the live
//!   [`rbac::index::PolicyIndex`] both it and the server's RBAC authorizer follow.
//!
//! # What it knows of the server
//!
//! Only the [`Context`] trait: the admission context (registry, backend, read path, storage
//! root, the admission chain) plus the one thing the Store tells the server's background
//! work. It knows nothing of HTTP, handlers or the filter chain: the server's handlers parse
//! a request into a [`Writer`] and call the Store, and the server's `Api` implements
//! [`Context`]. The crate's tests run on a context of their own over an in-memory backend.

pub mod bootstrap;
pub mod conversion;
pub mod crds;
pub mod namespaces;
pub mod rbac;
pub mod resource_quota;
pub mod resources;
pub mod service_accounts;
pub mod service_cidrs;
pub mod storage_format;
pub mod store;

pub use store::{Created, Deleted, Preconditions, Store, Writer, startup_error};

use tokio::sync::Notify;

/// What the Store and the server's own writers need from the server they run in: what
/// admission needs, and a way to wake the namespace finalizer. The server's `Api` is one.
pub trait Context: kubecache_admission::Context {
    /// Woken when a delete marks a namespace Terminating, so the finalizer
    /// ([`namespaces::run_finalizer`]) starts emptying it at once rather than on its next
    /// periodic pass.
    fn namespace_deleted(&self) -> &Notify;
}
