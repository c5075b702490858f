//! # kubecache-cache
//!
//! The read path between the API handlers and storage. Handlers read through [`ReadPath`]
//! and never call a backend for GET/LIST/WATCH themselves, so the sharded watch cache can
//! take over reads without the handlers changing.
//!
//! Today the only implementation is [`Passthrough`], which forwards every read to the
//! backend (what kube-apiserver does with its cache disabled).

use std::sync::Arc;

use async_trait::async_trait;
use kubecache_core::storage::{
    Backend, KeyValue, ListOptions, ListPage, Result, Revision, WatchStream,
};

/// Where GET, LIST and WATCH are served from.
#[async_trait]
pub trait ReadPath: Send + Sync + 'static {
    /// The key's current value.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// A ranged read, with the same contract as [`Backend::list`].
    async fn list(&self, options: ListOptions) -> Result<ListPage>;

    /// Changes under `prefix` from `start_revision` on, as [`Backend::watch`].
    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream>;

    /// The newest revision reads can be served at.
    async fn current_revision(&self) -> Result<Revision>;
}

/// Serves every read from the backend directly.
#[derive(Clone)]
pub struct Passthrough {
    backend: Arc<dyn Backend>,
}

impl Passthrough {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Passthrough { backend }
    }
}

#[async_trait]
impl ReadPath for Passthrough {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.backend.get(key).await
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        self.backend.list(options).await
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream> {
        self.backend.watch(prefix, start_revision).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.backend.current_revision().await
    }
}
