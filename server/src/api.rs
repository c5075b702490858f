//! The server's context, handed to the filter chain, the handlers, admission and the Store:
//! the resources served, where objects are written and read, the admission chain, the
//! OpenAPI documents, the authorizer and the request metrics. Requests enter through
//! [`crate::dispatch::handle`].

use std::sync::Arc;

use kubecache_apimachinery::registry::{Registry, Resource};
use kubecache_apimachinery::strategy::Strategy;
use kubecache_cache::ReadPath;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::status::ApiError;
use kubecache_core::storage::Backend;
use tokio::sync::Notify;

use crate::metrics::RequestMetrics;

/// Everything a handler needs: where objects are written and read, and what is served.
pub struct Api {
    /// The resources served, changing at run time ([`Api::add_resource`]); shared with the
    /// filter chain and the read path's codec.
    pub registry: Arc<Registry>,
    /// Writes go here (etcd transactions or the embedded store).
    pub backend: Arc<dyn Backend>,
    /// GET/LIST/WATCH go here, so the watch cache can take them over.
    pub reads: Arc<dyn ReadPath>,
    /// Key prefix of every object, kube-apiserver's `--etcd-prefix` (`/registry`).
    pub storage_root: String,
    /// Wakes the namespace finalizer when a namespace starts terminating.
    pub namespace_deleted: Notify,
    /// Namespaces this server marked Terminating, with the revision of that write: creates in
    /// them read the namespace at that revision or newer, so the cache cannot let one through
    /// in the moment before it sees the mark (kube's lifecycle admission keeps a similar set).
    pub terminating_namespaces: parking_lot::Mutex<std::collections::HashMap<String, i64>>,
    /// Request counts and latencies, served at `/metrics`.
    pub metrics: RequestMetrics,
    /// The admission chain every write passes through (see [`kubecache_admission`]).
    pub admission: kubecache_admission::Admission,
    /// The OpenAPI documents of what the registry serves.
    pub openapi: kubecache_apimachinery::openapi::Published,
    /// The `--authorization-mode` chain, installed at startup (`authz::install`); the
    /// access review APIs answer with it.
    pub authorizer: std::sync::OnceLock<Arc<crate::authz::Chain>>,
    /// The service-account token keys and issuers, set at startup from the flags
    /// ([`Api::tokens`]).
    pub tokens: std::sync::OnceLock<Arc<crate::service_accounts::Tokens>>,
    /// The request authenticators, installed with the filter chain; TokenReview answers
    /// with them.
    pub authenticator: std::sync::OnceLock<Arc<crate::authn::Authenticator>>,
    /// Set when storage is etcd ([`crate::etcd::Etcd::start`]): its storage metrics and
    /// readiness settings.
    pub etcd: std::sync::OnceLock<Arc<crate::etcd::Etcd>>,
    /// How kubelets are reached and which proxy targets are allowed, set at startup from
    /// the `--kubelet-*` flags ([`Api::kubelets`]).
    pub kubelets: std::sync::OnceLock<Arc<crate::kubelet::Kubelets>>,
}

impl kubecache_admission::Context for Api {
    fn registry(&self) -> &Registry {
        &self.registry
    }
    fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
    fn reads(&self) -> &dyn ReadPath {
        self.reads.as_ref()
    }
    fn storage_root(&self) -> &str {
        &self.storage_root
    }
    fn admission(&self) -> &kubecache_admission::Admission {
        &self.admission
    }
    fn terminating_namespaces(
        &self,
    ) -> &parking_lot::Mutex<std::collections::HashMap<String, i64>> {
        &self.terminating_namespaces
    }
}

impl kubecache_store::Context for Api {
    fn namespace_deleted(&self) -> &Notify {
        &self.namespace_deleted
    }
}

impl Api {
    /// An API over the built-in resources.
    pub fn new(
        backend: Arc<dyn Backend>,
        reads: Arc<dyn ReadPath>,
        storage_root: &str,
    ) -> Arc<Api> {
        let registry = Arc::new(Registry::builtin());
        Api::with_admission(registry, backend, reads, storage_root, Default::default())
    }

    /// An API serving `registry`'s resources; `reads` must render them with the same registry
    /// (`codec::JsonCodec::new(registry)`).
    pub fn with_admission(
        registry: Arc<Registry>,
        backend: Arc<dyn Backend>,
        reads: Arc<dyn ReadPath>,
        storage_root: &str,
        admission: kubecache_admission::Config,
    ) -> Arc<Api> {
        Arc::new(Api {
            registry,
            backend,
            reads,
            storage_root: storage_root.trim_end_matches('/').to_string(),
            namespace_deleted: Notify::new(),
            terminating_namespaces: Default::default(),
            metrics: RequestMetrics::new(),
            admission: kubecache_admission::Admission::new(admission),
            openapi: Default::default(),
            authorizer: std::sync::OnceLock::new(),
            tokens: std::sync::OnceLock::new(),
            authenticator: std::sync::OnceLock::new(),
            etcd: std::sync::OnceLock::new(),
            kubelets: std::sync::OnceLock::new(),
        })
    }

    /// The service-account token keys: those set at startup, else (an API built without
    /// the flags, in tests) a key generated for this process and the default issuer.
    pub fn tokens(&self) -> &crate::service_accounts::Tokens {
        self.tokens.get_or_init(|| {
            Arc::new(
                crate::service_accounts::Tokens::load(&Default::default())
                    .expect("a generated key needs no file"),
            )
        })
    }

    /// The kubelet settings: those set at startup, else kube's defaults.
    pub fn kubelets(&self) -> &crate::kubelet::Kubelets {
        self.kubelets.get_or_init(|| {
            Arc::new(
                crate::kubelet::Kubelets::new(&Default::default())
                    .expect("the default kubelet settings read no file"),
            )
        })
    }

    pub fn object_key(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> String {
        resource.object_key(&self.storage_root, namespace, name)
    }

    /// The storage prefix of every object of `resource`.
    pub fn storage_prefix(&self, resource: &ResourceInfo) -> String {
        resource.storage_prefix(&self.storage_root)
    }

    pub fn collection_prefix(&self, resource: &ResourceInfo, namespace: Option<&str>) -> String {
        resource.collection_prefix(&self.storage_root, namespace)
    }

    /// Serves one more resource while running ([`kubecache_store::resources::add`]).
    pub fn add_resource(&self, strategy: Arc<dyn Strategy>) -> Result<Arc<Resource>, ApiError> {
        kubecache_store::resources::add(self, strategy)
    }

    /// Stops serving a resource ([`kubecache_store::resources::remove`]).
    pub async fn remove_resource(
        &self,
        group: &str,
        version: &str,
        name: &str,
    ) -> Option<Arc<Resource>> {
        kubecache_store::resources::remove(self, group, version, name).await
    }
}
