//! Starting the server: open the backend, build the [`Api`], serve HTTP until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use std::time::Duration;

use kubecache_apimachinery::registry::Registry;
use kubecache_cache::{Passthrough, ReadPath, Shapes, WatchCache, WatchCacheConfig};
use kubecache_core::storage::{Backend, StorageError};
use kubecache_storage::embedded::EmbeddedBackend;
use tokio::net::TcpListener;

use crate::api::Api;
use crate::dispatch;
use kubecache_apimachinery::codec::JsonCodec;
use kubecache_store::namespaces;
use kubecache_store::rbac::{self, index::PolicyIndex};

/// Where objects are stored.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// etcd, with kube-apiserver's settings ([`crate::etcd`]).
    Etcd(crate::etcd::EtcdConfig),
    /// The embedded store, durable in `data_dir` when one is given.
    Embedded { data_dir: Option<PathBuf> },
}

impl StorageConfig {
    pub fn describe(&self) -> String {
        match self {
            StorageConfig::Etcd(config) => format!("etcd at {}", config.endpoints.join(",")),
            StorageConfig::Embedded {
                data_dir: Some(dir),
            } => {
                format!("embedded, persisted in {}", dir.display())
            }
            StorageConfig::Embedded { data_dir: None } => "embedded, in memory".to_string(),
        }
    }
}

/// An opened backend, and for etcd what runs beside it (compactor, storage metrics).
pub struct OpenedBackend {
    pub backend: Arc<dyn Backend>,
    pub etcd: Option<Arc<crate::etcd::Etcd>>,
}

pub async fn open_backend(config: &StorageConfig) -> Result<OpenedBackend, StorageError> {
    let embedded = |backend: Arc<dyn Backend>| OpenedBackend {
        backend,
        etcd: None,
    };
    Ok(match config {
        StorageConfig::Etcd(config) => {
            let etcd = Arc::new(crate::etcd::Etcd::connect(config.clone()).await?);
            OpenedBackend {
                backend: etcd.backend(),
                etcd: Some(etcd),
            }
        }
        StorageConfig::Embedded { data_dir: None } => {
            embedded(Arc::new(EmbeddedBackend::in_memory()))
        }
        StorageConfig::Embedded {
            data_dir: Some(dir),
        } => embedded(Arc::new(EmbeddedBackend::open(dir)?)),
    })
}

/// The storage prefix of a resource named as `kubecache storage rewrite --resource` takes it:
/// `secrets`, `deployments.apps`, or a custom resource's `widgets.example.com`.
pub fn storage_prefix_of(root: &str, name: &str) -> String {
    let (resource, group) = name.split_once('.').unwrap_or((name, ""));
    let registry = Registry::builtin();
    let builtin = (registry.snapshot().iter())
        .find(|r| r.is_stored() && r.resource == resource && r.group == group)
        .map(|r| r.stored().info().storage_prefix(root));
    builtin.unwrap_or_else(|| format!("{root}/{group}/{resource}/"))
}

/// Where reads are served from.
#[derive(Debug, Clone)]
pub enum ReadConfig {
    /// The sharded watch cache (kube-apiserver's `--watch-cache=true`, the default).
    WatchCache(WatchCacheConfig),
    /// Storage directly (`--watch-cache=false`).
    Storage,
}

impl Default for ReadConfig {
    fn default() -> Self {
        ReadConfig::WatchCache(WatchCacheConfig::default())
    }
}

/// How long startup waits for the caches to fill before serving anyway (readyz tells).
const STARTUP_SYNC_WAIT: Duration = Duration::from_secs(10);

/// Builds the API over a backend: the initial namespaces exist, reads are served as
/// `reads` says, and the namespace finalizer runs.
pub async fn build_api(
    backend: Arc<dyn Backend>,
    storage_root: &str,
    reads: ReadConfig,
) -> Result<Arc<Api>, StorageError> {
    build_api_with(
        backend,
        storage_root,
        reads,
        Default::default(),
        Default::default(),
    )
    .await
}

/// The in-process controllers (`--controllers`) and the CA bundle `kube-root-ca.crt`
/// publishes.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub enabled: kubecache_store::service_accounts::Controllers,
    pub root_ca: String,
    /// `--resource-quota-sync-period`: how often every quota is recounted.
    pub quota_sync_period: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            enabled: Default::default(),
            root_ca: String::new(),
            quota_sync_period: kubecache_store::resource_quota::DEFAULT_SYNC_PERIOD,
        }
    }
}

impl ControllerConfig {
    /// From `--controllers` (comma separated) and the CA bundle to publish.
    pub fn parse(controllers: &str, root_ca: &str) -> Result<ControllerConfig, String> {
        let items: Vec<String> = controllers.split(',').map(String::from).collect();
        Ok(ControllerConfig {
            enabled: kubecache_store::service_accounts::Controllers::parse(&items)?,
            root_ca: root_ca.to_string(),
            ..Default::default()
        })
    }
}

/// [`build_api`] with admission settings (`--service-cluster-ip-range`) and controllers.
pub async fn build_api_with(
    backend: Arc<dyn Backend>,
    storage_root: &str,
    reads: ReadConfig,
    admission: kubecache_admission::Config,
    controllers: ControllerConfig,
) -> Result<Arc<Api>, StorageError> {
    let registry = Arc::new(Registry::builtin());
    let codec = Arc::new(JsonCodec::new(registry.clone()));
    let read_path: Arc<dyn ReadPath> = match reads {
        ReadConfig::Storage => Arc::new(Passthrough::new(backend.clone(), codec)),
        ReadConfig::WatchCache(config) => {
            let snapshot = registry.snapshot();
            let mut resources = Vec::new();
            for resource in snapshot.iter().filter(|r| r.is_stored()) {
                if resources.iter().any(|(_, shapes): &(String, Shapes)| {
                    shapes.primary().storage_path == resource.storage_path
                }) {
                    continue;
                }
                let sharing = snapshot
                    .sharing_storage(&resource.storage_path)
                    .map(|r| r.info().clone())
                    .collect();
                resources.push((
                    resource.storage_prefix(storage_root.trim_end_matches('/')),
                    Shapes::new(sharing),
                ));
            }
            Arc::new(WatchCache::start(backend.clone(), codec, resources, config))
        }
    };
    let api = Api::with_admission(registry, backend, read_path, storage_root, admission);
    // Build the OpenAPI documents off the request path (kubectl apply asks for them first).
    let building = api.clone();
    tokio::task::spawn_blocking(move || building.openapi.warm(&building.registry));
    namespaces::bootstrap(api.as_ref()).await?;
    kubecache_admission::start(api.as_ref()).await?;
    kubecache_store::service_cidrs::bootstrap(api.as_ref()).await?;
    rbac::bootstrap::ensure(api.as_ref()).await?;
    kubecache_store::bootstrap::ensure_flow_control(api.as_ref()).await?;
    kubecache_store::bootstrap::ensure_api_services(api.as_ref()).await?;
    let deadline = tokio::time::Instant::now() + STARTUP_SYNC_WAIT;
    while api.reads.ready().await.is_err() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::spawn(namespaces::run_finalizer(api.clone()));
    let aggregated = PolicyIndex::with_root(api.reads.clone(), &api.storage_root);
    tokio::spawn(rbac::aggregation::run(api.clone(), aggregated));
    tokio::spawn(kubecache_store::crds::run(api.clone()));
    if controllers
        .enabled
        .enabled(kubecache_store::resource_quota::RESOURCE_QUOTA)
    {
        tokio::spawn(kubecache_store::resource_quota::run(
            api.clone(),
            controllers.quota_sync_period,
        ));
    }
    tokio::spawn(kubecache_store::service_accounts::run(
        api.clone(),
        controllers.enabled,
        controllers.root_ca,
    ));
    Ok(api)
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .fallback(|State(api): State<Arc<Api>>, request: Request| dispatch::handle(api, request))
        .with_state(api)
}

/// Serves the API on `listener` (plain HTTP, as the insecure port: every request runs as
/// `system:unsecured`) behind the default filter chain until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let chain =
        crate::filters::Chain::new(&Default::default(), &api).map_err(std::io::Error::other)?;
    axum::serve(listener, crate::filters::apply(router(api), chain))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The address a listener bound, for messages.
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound listener has an address")
}
