//! Admission: what every write passes through between decoding and storage, in
//! kube-apiserver's order — mutating plugins, then validating plugins, then the storage-side
//! allocation of a Service's clusterIP.
//!
//! # How the Store uses it
//!
//! Every write runs it through the `kubecache-store` crate's `Store`, whoever makes it:
//!
//! - create: `objects::prepare_create`, then [`mutate`], then [`admit`], then the storage write,
//!   then [`Admitted::settle`] with the write's outcome;
//! - update / patch (every patch type, after the patch is applied) / scale / status: [`mutate`]
//!   before `objects::prepare_update` (so defaults never bump `generation`), [`admit`] after it,
//!   [`Admitted::settle`] once written;
//! - delete: [`admit_delete`] before, [`removed`] once the object has left storage.
//!
//! `dryRun=All` runs every plugin; only the allocation differs: it checks, and does not keep.
//!
//! # The chain
//!
//! Mutating, in order: [`lifecycle::NamespaceLifecycle`] (kube runs it as a mutating plugin,
//! first, so a create in a missing namespace is a 404 before any validation),
//! [`strategy::Defaulting`] (kube's scheme defaults, which kube applies when decoding, plus the
//! strategies' create-time fields such as a Job's generated selector),
//! [`limit_ranger::LimitRanger`] (LimitRange defaults),
//! [`service_account::ServiceAccount`] (a pod's service account and its token volume),
//! [`priority::Priority`] and [`priority::DefaultTolerationSeconds`], then
//! [`webhook::MutatingAdmissionWebhook`] (kube runs the webhooks after its built-in mutating
//! plugins).
//!
//! Validating, in order: [`strategy::ObjectMeta`], [`strategy::Fields`],
//! [`strategy::Immutable`]; their causes are gathered into one 422 `Invalid`, as kube's
//! strategy validation gathers a `field.ErrorList`. Then, on a valid object only, in kube's
//! order: the validating half of [`limit_ranger`], [`webhook::ValidatingAdmissionWebhook`],
//! then [`quota`] (kube's `ResourceQuota`, the last validating plugin) checks and charges the
//! namespace's quotas, and [`service_ips`] allocates.
//!
//! Which of kube's plugins run is [`plugins`]' (`--enable-admission-plugins`,
//! `--disable-admission-plugins`, `--admission-control-config-file`). Warnings and audit
//! annotations a plugin has for the request go through [`notes`].

pub mod endpoints;
pub mod lifecycle;
pub mod limit_ranger;
pub mod matching;
pub mod notes;
pub mod outbound;
pub mod plugins;
pub mod priority;
pub mod quota;
pub mod service_account;
pub mod service_ips;
pub mod strategy;
pub mod webhook;

use kubecache_apimachinery::registry::{Registry, Resource};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kubecache_cache::ReadPath;
use kubecache_core::authz::UserInfo;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::status::{ApiError, Cause};
use kubecache_core::storage::Backend;
use kubecache_core::storage::StorageError;
use parking_lot::Mutex;
use serde_json::Value;

use kubecache_apimachinery::objects;
use kubecache_core::request::Subresource;

pub use service_ips::{ServiceCidr, ServiceIps};

/// What admission needs from the server it runs in: the served resources and the storage
/// behind them (kube's plugins get the same through informers and clients). The server's
/// `Api` is one; admission never sees handlers, the filter chain or HTTP.
pub trait Context: Send + Sync {
    /// The resources served now.
    fn registry(&self) -> &Registry;
    /// Where objects are written (the IP allocator's records, reads that must be current).
    fn backend(&self) -> &Arc<dyn Backend>;
    /// Where objects are read, through the watch cache when it serves them.
    fn reads(&self) -> &dyn ReadPath;
    /// Key prefix of every object, kube-apiserver's `--etcd-prefix`.
    fn storage_root(&self) -> &str;
    /// This server's chain (its plugins' shared state, like the Service IP allocator).
    fn admission(&self) -> &Admission;
    /// Namespaces this server marked Terminating, with the revision of that write
    /// ([`lifecycle`]).
    fn terminating_namespaces(&self) -> &Mutex<HashMap<String, i64>>;

    /// The storage key of one object of `resource`.
    fn object_key(&self, resource: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
        resource.object_key(self.storage_root(), namespace, name)
    }

    /// The storage prefix of every object of `resource`.
    fn storage_prefix(&self, resource: &ResourceInfo) -> String {
        resource.storage_prefix(self.storage_root())
    }
}

/// What the request does to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// kube's admission operation name (`CREATE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// What a plugin knows about the write (kube's `admission.Attributes`), made by the
/// `kubecache-store` crate's `Store` for a request or for the server's own writes alike.
pub struct Attributes<'a> {
    pub context: &'a dyn Context,
    pub resource: &'a Resource,
    pub operation: Operation,
    /// Who asks (the server's own writes: `system:apiserver`).
    pub user: &'a UserInfo,
    /// `status` or `scale` for subresource writes.
    pub subresource: Option<Subresource>,
    pub namespace: Option<&'a str>,
    /// The object as stored before this update (updates only).
    pub old: Option<&'a Value>,
    /// `dryRun=All`: plugins run, nothing is kept.
    pub dry_run: bool,
}

impl Attributes<'_> {
    fn kind(&self) -> (&str, &str) {
        (&self.resource.group, &self.resource.kind)
    }
}

/// A plugin that may change the object.
#[async_trait]
pub trait MutatingPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    async fn admit(&self, attrs: &Attributes<'_>, object: &mut Value) -> Result<(), ApiError>;
}

/// A plugin that judges the final object: field problems are causes (gathered into one 422),
/// anything else an error.
#[async_trait]
pub trait ValidatingPlugin: Send + Sync {
    fn name(&self) -> &'static str;
    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        object: &Value,
    ) -> Result<Vec<Cause>, ApiError>;
}

/// Admission settings (kube-apiserver flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// `--service-cluster-ip-range`.
    pub service_cluster_ip_range: ServiceCidr,
    /// How old an IP allocation without a Service must be before startup repair frees it
    /// (a younger one may belong to a create another server is still doing).
    pub orphan_ip_grace: Duration,
    /// `--enable-admission-plugins` / `--disable-admission-plugins`.
    pub plugins: plugins::Enabled,
    /// The ResourceQuota plugin's configuration (`--admission-control-config-file`).
    pub quota: plugins::QuotaConfiguration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service_cluster_ip_range: ServiceCidr::default(),
            orphan_ip_grace: Duration::from_secs(60),
            plugins: plugins::Enabled::default(),
            quota: plugins::QuotaConfiguration::default(),
        }
    }
}

/// The chain, built once per server.
pub struct Admission {
    /// Run in order on create and update; each sees the previous one's result.
    mutating: Vec<Box<dyn MutatingPlugin>>,
    /// Run in order on the mutated object; all of their causes make one 422.
    validating: Vec<Box<dyn ValidatingPlugin>>,
    /// clusterIP allocation (kept in storage, see [`service_ips`]).
    pub service_ips: ServiceIps,
    /// Namespaces whose quota usage is due for a recount (see [`quota`]).
    pub quotas: quota::Quotas,
    /// LimitRanger's validating half runs.
    limit_ranger: bool,
    /// ValidatingAdmissionWebhook runs.
    validating_webhook: bool,
    /// ResourceQuota runs, with this configuration.
    resource_quota: Option<plugins::QuotaConfiguration>,
    /// The admission webhooks' configurations, connections and metrics.
    pub webhooks: webhook::Webhooks,
}

impl Admission {
    pub fn new(config: Config) -> Admission {
        let enabled = |name: &str| config.plugins.is_enabled(name);
        // kube's plugins by their kube name; the scheme defaults always apply.
        let mutating: Vec<(Option<&str>, Box<dyn MutatingPlugin>)> = vec![
            (
                Some("NamespaceLifecycle"),
                Box::new(lifecycle::NamespaceLifecycle),
            ),
            (None, Box::new(strategy::Defaulting)),
            (Some("LimitRanger"), Box::new(limit_ranger::LimitRanger)),
            (
                Some("ServiceAccount"),
                Box::new(service_account::ServiceAccount),
            ),
            (Some("Priority"), Box::new(priority::Priority)),
            (
                Some("DefaultTolerationSeconds"),
                Box::new(priority::DefaultTolerationSeconds),
            ),
            (
                Some("MutatingAdmissionWebhook"),
                Box::new(webhook::MutatingAdmissionWebhook),
            ),
        ];
        Admission {
            mutating: mutating
                .into_iter()
                .filter(|(name, _)| name.is_none_or(enabled))
                .map(|(_, plugin)| plugin)
                .collect(),
            validating: vec![
                Box::new(strategy::ObjectMeta),
                Box::new(strategy::Fields),
                Box::new(strategy::Immutable),
            ],
            service_ips: ServiceIps::new(config.service_cluster_ip_range, config.orphan_ip_grace),
            quotas: quota::Quotas::default(),
            limit_ranger: enabled("LimitRanger"),
            validating_webhook: enabled("ValidatingAdmissionWebhook"),
            resource_quota: enabled("ResourceQuota").then_some(config.quota),
            webhooks: webhook::Webhooks::default(),
        }
    }

    /// Plugin names, mutating then validating (for docs and tests).
    pub fn plugin_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .mutating
            .iter()
            .map(|p| p.name())
            .chain(self.validating.iter().map(|p| p.name()))
            .collect();
        if self.limit_ranger {
            names.push("LimitRanger");
        }
        if self.validating_webhook {
            names.push(webhook::ValidatingAdmissionWebhook.name());
        }
        if self.resource_quota.is_some() {
            names.push("ResourceQuota");
        }
        names
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(Config::default())
    }
}

/// Runs the mutating plugins on a create or update (`attrs.old`).
pub async fn mutate(attrs: &Attributes<'_>, object: &mut Value) -> Result<(), ApiError> {
    for plugin in &attrs.context.admission().mutating {
        plugin.admit(attrs, object).await?;
    }
    Ok(())
}

/// Runs the validating plugins, then allocates what the object needs from storage (a
/// Service's clusterIP, written into `object`). The caller settles the result after writing.
pub async fn admit(attrs: &Attributes<'_>, object: &mut Value) -> Result<Admitted, ApiError> {
    let invalid = |causes| {
        ApiError::invalid(
            &attrs.resource.group,
            &attrs.resource.kind,
            objects::name(object),
            causes,
        )
    };
    let mut causes = Vec::new();
    let chain = attrs.context.admission();
    for plugin in &chain.validating {
        causes.extend(plugin.validate(attrs, object).await?);
    }
    if !causes.is_empty() {
        return Err(invalid(causes));
    }
    // Admission proper, on a valid object only (kube validates with the strategy first).
    if chain.limit_ranger {
        limit_ranger::validate(attrs, object).await?;
    }
    if chain.validating_webhook {
        let causes = webhook::ValidatingAdmissionWebhook
            .validate(attrs, object)
            .await?;
        if !causes.is_empty() {
            return Err(invalid(causes));
        }
    }
    let charges = match &chain.resource_quota {
        Some(config) => quota::admit(attrs, config, object).await?,
        None => Vec::new(),
    };
    let mut admitted = service_ips::admit(attrs, object).await?;
    admitted.charges = charges;
    canonicalize(attrs.resource, object)?;
    Ok(admitted)
}

/// Serializes the object again through its typed form, so what is stored has the field order
/// of a decoded body whatever the plugins and metadata rules inserted: an update that changes
/// nothing then encodes to the stored bytes and is not written.
fn canonicalize(resource: &Resource, object: &mut Value) -> Result<(), ApiError> {
    // Objects stored in another version's shape (events.k8s.io events, as core/v1) are not
    // in their typed form; they get the stored kind's always-present fields (served
    // converted, as kube's conversion writes them).
    let stored = resource.stored();
    if !std::ptr::eq(stored, resource) {
        kubecache_apimachinery::always_present::fill(&stored.api_version(), &stored.kind, object);
        return Ok(());
    }
    let typed = kubecache_apimachinery::typed::canonicalize(resource, std::mem::take(object))
        .map_err(|e| ApiError::internal(format!("admission produced an invalid object: {e}")))?;
    *object = typed;
    Ok(())
}

/// What [`admit`] allocated, to keep once the write succeeded or give back if it did not.
/// Dropped without [`Admitted::settle`] (a lost race, an error), its allocations are given
/// back in the background.
#[must_use = "settle it after the write"]
#[derive(Default)]
pub struct Admitted {
    /// IPs allocated for this write.
    pub(crate) reserved: Vec<service_ips::Reservation>,
    /// IPs the old object held that the new one gives up (released once written).
    pub(crate) released: Vec<service_ips::Holder>,
    /// Usage charged to quotas for this write.
    pub(crate) charges: Vec<quota::Charge>,
}

impl Admitted {
    /// Keeps (`written`) or gives back what was allocated.
    pub async fn settle(mut self, context: &dyn Context, written: bool) {
        let reserved = std::mem::take(&mut self.reserved);
        let released = std::mem::take(&mut self.released);
        let charges = std::mem::take(&mut self.charges);
        if written {
            for r in reserved {
                r.keep();
            }
            for charge in charges {
                charge.keep();
            }
            for holder in released {
                context
                    .admission()
                    .service_ips
                    .release(context, &holder)
                    .await;
            }
        } else {
            for r in reserved {
                r.give_back(context).await;
            }
            for charge in charges {
                charge.give_back().await;
            }
        }
    }
}

/// Before a delete: NamespaceLifecycle refuses to delete the immortal namespaces.
pub fn admit_delete(resource: &Resource, name: &str) -> Result<(), ApiError> {
    lifecycle::admit_delete(resource, name)
}

/// After an object left storage: frees what it held, and has its namespace's quota usage
/// recounted.
pub async fn removed(context: &dyn Context, resource: &Resource, object: &Value) {
    if let Some(namespace) = objects::meta_str(object, "namespace") {
        context.admission().quotas.mark_dirty(namespace);
    }
    if resource.group.is_empty() && resource.kind == "Service" {
        for holder in service_ips::holders(context, object) {
            context
                .admission()
                .service_ips
                .release(context, &holder)
                .await;
        }
    }
}

/// At startup: rebuilds the clusterIP allocation map from storage and repairs it.
pub async fn start(context: &dyn Context) -> Result<(), StorageError> {
    context.admission().service_ips.rebuild(context).await
}

/// `<resource> "name" is forbidden: reason` (403), kube's `admission.NewForbidden`.
pub(crate) fn forbidden(attrs: &Attributes<'_>, object: &Value, reason: String) -> ApiError {
    let name = objects::name(object);
    let resource = &attrs.resource.resource;
    let mut err = ApiError::forbidden(format!(
        "{} \"{name}\" is forbidden: {reason}",
        kubecache_core::status::qualified_resource(&attrs.resource.group, resource)
    ));
    err.group = Some(attrs.resource.group.clone());
    err.kind = Some(resource.clone());
    err.name = Some(name.to_string()).filter(|n| !n.is_empty());
    err
}

/// The objects of core `plural` in `namespace` as stored now: a consistent read of storage,
/// for the plugins whose decision must not start from a stale state (quotas, limit ranges).
pub async fn list_stored(
    context: &dyn Context,
    plural: &str,
    namespace: &str,
) -> Result<Vec<kubecache_core::storage::KeyValue>, ApiError> {
    let Some(served) = context.registry().lookup("", "v1", plural) else {
        return Ok(Vec::new());
    };
    let prefix = served.collection_prefix(context.storage_root(), Some(namespace));
    let options = kubecache_core::storage::ListOptions {
        prefix,
        start_key: None,
        limit: None,
        revision: None,
    };
    let page = context
        .backend()
        .list(options)
        .await
        .map_err(kubecache_core::status::storage_error)?;
    Ok(page.kvs)
}

/// One object through the read path, as kube's plugins read through informers: the cached
/// state first, a miss confirmed with a consistent read (it may have just been created).
pub async fn read_object(
    context: &dyn Context,
    group: &str,
    version: &str,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let Some(served) = context.registry().lookup(group, version, resource) else {
        return Ok(None);
    };
    let key = context.object_key(&served, namespace, name);
    for at in [
        kubecache_cache::ReadAt::Any,
        kubecache_cache::ReadAt::Latest,
    ] {
        let found = context
            .reads()
            .get(&served, &key, at)
            .await
            .map_err(kubecache_core::status::storage_error)?;
        if let Some(found) = found {
            return serde_json::from_slice(&found.kv.value)
                .map(Some)
                .map_err(|e| {
                    ApiError::internal(format!("object at {key} is not valid JSON: {e}"))
                });
        }
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use kubecache_cache::Passthrough;
    use kubecache_storage::embedded::EmbeddedBackend;

    use super::*;
    use kubecache_apimachinery::codec::JsonCodec;

    /// A context over an empty in-memory store (no namespaces), reads straight from storage:
    /// what admission needs and nothing of the server.
    pub struct TestContext {
        registry: Registry,
        backend: Arc<dyn Backend>,
        reads: Passthrough,
        admission: Admission,
        terminating: Mutex<HashMap<String, i64>>,
    }

    impl Context for TestContext {
        fn registry(&self) -> &Registry {
            &self.registry
        }
        fn backend(&self) -> &Arc<dyn Backend> {
            &self.backend
        }
        fn reads(&self) -> &dyn ReadPath {
            &self.reads
        }
        fn storage_root(&self) -> &str {
            "/registry"
        }
        fn admission(&self) -> &Admission {
            &self.admission
        }
        fn terminating_namespaces(&self) -> &Mutex<HashMap<String, i64>> {
            &self.terminating
        }
    }

    pub fn context() -> Arc<TestContext> {
        let backend: Arc<dyn Backend> = Arc::new(EmbeddedBackend::in_memory());
        let registry = Registry::builtin();
        let reads = Passthrough::new(
            backend.clone(),
            Arc::new(JsonCodec::new(Arc::new(Registry::builtin()))),
        );
        Arc::new(TestContext {
            registry,
            backend,
            reads,
            admission: Admission::default(),
            terminating: Mutex::default(),
        })
    }

    /// A create (no `old`) or update of a `resource` in namespace `default`.
    pub fn attrs<'a>(
        context: &'a TestContext,
        resource: &str,
        old: Option<&'a Value>,
    ) -> Attributes<'a> {
        let resource = context
            .registry()
            .snapshot()
            .iter()
            .find(|r| r.resource == resource)
            .expect("a registered resource")
            .clone();
        // Attributes borrow their resource for the request's lifetime; a test's is its own.
        let resource: &'a Resource = Box::leak(Box::new(resource));
        let namespaced = resource.namespaced;
        Attributes {
            context,
            resource,
            operation: if old.is_some() {
                Operation::Update
            } else {
                Operation::Create
            },
            user: Box::leak(Box::new(UserInfo::default())),
            subresource: None,
            namespace: namespaced.then_some("default"),
            old,
            dry_run: false,
        }
    }

    #[test]
    fn the_chain_runs_mutating_then_validating_plugins_in_kube_order() {
        assert_eq!(
            Admission::default().plugin_names(),
            vec![
                "NamespaceLifecycle",
                "Defaulting",
                "LimitRanger",
                "ServiceAccount",
                "Priority",
                "DefaultTolerationSeconds",
                "MutatingAdmissionWebhook",
                "ObjectMetaValidation",
                "FieldValidation",
                "ImmutableFields",
                "LimitRanger",
                "ValidatingAdmissionWebhook",
                "ResourceQuota",
            ]
        );
    }

    #[tokio::test]
    async fn namespace_lifecycle() {
        let context = context();
        let mut cm = serde_json::json!({"metadata": {"name": "a", "namespace": "default"}});
        // No namespace exists in this store: a create is refused, an update is not.
        let err = lifecycle::NamespaceLifecycle
            .admit(&attrs(&context, "configmaps", None), &mut cm)
            .await
            .unwrap_err();
        assert_eq!(err.code, 404);
        assert_eq!(err.message, "namespaces \"default\" not found");
        let old = cm.clone();
        lifecycle::NamespaceLifecycle
            .admit(&attrs(&context, "configmaps", Some(&old)), &mut cm)
            .await
            .unwrap();
        // Cluster-scoped objects are not in a namespace.
        let mut ns = serde_json::json!({"metadata": {"name": "x"}});
        lifecycle::NamespaceLifecycle
            .admit(&attrs(&context, "namespaces", None), &mut ns)
            .await
            .unwrap();
        let namespaces = context.registry().lookup("", "v1", "namespaces").unwrap();
        assert_eq!(
            admit_delete(&namespaces, "kube-system").unwrap_err().code,
            403
        );
        assert!(admit_delete(&namespaces, "team-a").is_ok());
        let configmaps = context.registry().lookup("", "v1", "configmaps").unwrap();
        assert!(admit_delete(&configmaps, "default").is_ok());
    }
}
