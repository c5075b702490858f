//! Starting the server: open the backend, build the [`Api`], serve HTTP until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use kubecache_cache::Passthrough;
use kubecache_core::storage::{Backend, StorageError};
use tokio::net::TcpListener;

use crate::api::{self, Api};
use crate::backend::embedded::EmbeddedBackend;
use crate::backend::etcd::EtcdBackend;
use crate::codec::JsonCodec;
use crate::handlers::namespaces;

/// Where objects are stored.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// etcd at these client URLs.
    Etcd { endpoints: Vec<String> },
    /// The embedded store, durable in `data_dir` when one is given.
    Embedded { data_dir: Option<PathBuf> },
}

impl StorageConfig {
    pub fn describe(&self) -> String {
        match self {
            StorageConfig::Etcd { endpoints } => format!("etcd at {}", endpoints.join(",")),
            StorageConfig::Embedded {
                data_dir: Some(dir),
            } => {
                format!("embedded, persisted in {}", dir.display())
            }
            StorageConfig::Embedded { data_dir: None } => "embedded, in memory".to_string(),
        }
    }
}

pub async fn open_backend(config: &StorageConfig) -> Result<Arc<dyn Backend>, StorageError> {
    Ok(match config {
        StorageConfig::Etcd { endpoints } => {
            Arc::new(EtcdBackend::connect(endpoints, Default::default()).await?)
        }
        StorageConfig::Embedded { data_dir: None } => Arc::new(EmbeddedBackend::in_memory()),
        StorageConfig::Embedded {
            data_dir: Some(dir),
        } => Arc::new(EmbeddedBackend::open(dir)?),
    })
}

/// Builds the API over a backend: reads pass through to it for now, the initial namespaces
/// exist, and the namespace finalizer runs.
pub async fn build_api(
    backend: Arc<dyn Backend>,
    storage_root: &str,
) -> Result<Arc<Api>, StorageError> {
    let reads = Arc::new(Passthrough::new(backend.clone(), Arc::new(JsonCodec)));
    let api = Api::new(backend, reads, storage_root);
    namespaces::bootstrap(&api).await?;
    tokio::spawn(namespaces::run_finalizer(api.clone()));
    Ok(api)
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .fallback(|State(api): State<Arc<Api>>, request: Request| api::handle(api, request))
        .with_state(api)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The address a listener bound, for messages.
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound listener has an address")
}
