//! kubecache on etcd the way kube-apiserver runs on it (docs/OPERATIONS.md): the connection
//! settings of the `--etcd-*` flags, kube's compactor, the storage metrics under kube's names
//! and the timeout of /readyz's `etcd` check.
//!
//! Metrics (kube's `storage/etcd3/metrics`):
//! - `etcd_request_duration_seconds{operation,group,resource}` (and `etcd_requests_total`,
//!   `etcd_request_errors_total`): every get, list, create, update and delete kubecache sends,
//!   timed around the backend call (retries on other members included). The resource is
//!   resolved from the key at scrape time, so resources added later (CRDs) are named too.
//! - `apiserver_storage_objects{resource}`: the keys under each stored resource's prefix,
//!   counted every `--etcd-count-metric-poll-period` (-1 after a failed count).
//! - `apiserver_storage_size_bytes{storage_cluster_id="etcd-0"}`: etcd's database size, asked
//!   at scrape time.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use kubecache_core::storage::{
    Backend, Deleted, KeyValue, ListOptions, ListPage, PrefixState, Result, Revision, StorageError,
    WatchStream,
};
use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use parking_lot::Mutex;

use crate::api::Api;
use crate::metrics::{Histogram, escape, header, stored_resource};

/// How long a scrape waits for etcd's database size.
const SIZE_TIMEOUT: Duration = Duration::from_secs(1);

/// kube's label for the (only) etcd cluster's size metric.
const STORAGE_CLUSTER_ID: &str = "etcd-0";

/// The settings of the `--etcd-*` flags.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Client URLs (`https://` with TLS).
    pub endpoints: Vec<String>,
    pub options: EtcdOptions,
    /// `--etcd-compaction-interval`; zero: no compaction.
    pub compaction_interval: Duration,
    /// `--etcd-count-metric-poll-period`; zero: no counting.
    pub count_poll_period: Duration,
    /// `--etcd-readycheck-timeout`.
    pub readycheck_timeout: Duration,
}

/// The etcd connection and what runs beside it.
pub struct Etcd {
    config: EtcdConfig,
    client: Arc<EtcdBackend>,
    metrics: Arc<StorageMetrics>,
}

impl Etcd {
    /// Builds the client (without contacting etcd; see [`EtcdBackend::connect`]).
    pub async fn connect(config: EtcdConfig) -> Result<Etcd> {
        let client = EtcdBackend::connect(&config.endpoints, config.options.clone()).await?;
        Ok(Etcd {
            config,
            client: Arc::new(client),
            metrics: Arc::new(StorageMetrics::default()),
        })
    }

    /// The backend the server writes and reads through: etcd, with every request timed.
    pub fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(Metered {
            inner: self.client.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// How long /readyz waits for etcd.
    pub fn readycheck_timeout(&self) -> Duration {
        self.config.readycheck_timeout
    }

    /// Attaches to `api` (metrics, readiness) and starts the compactor and the object
    /// counter, as configured.
    pub fn start(self: &Arc<Self>, api: &Arc<Api>) {
        let _ = api.etcd.set(self.clone());
        if !self.config.compaction_interval.is_zero() {
            tokio::spawn(
                self.client
                    .clone()
                    .run_compactor(self.config.compaction_interval),
            );
        }
        if !self.config.count_poll_period.is_zero() {
            tokio::spawn(count_objects(
                api.clone(),
                self.metrics.clone(),
                self.config.count_poll_period,
            ));
        }
    }

    /// Appends the storage metrics.
    pub async fn render_metrics(&self, api: &Api, out: &mut String) {
        self.metrics.render(api, out);
        header(
            out,
            "apiserver_storage_size_bytes",
            "gauge",
            "Size of the storage database file physically allocated in bytes.",
        );
        if let Ok(Ok(size)) = tokio::time::timeout(SIZE_TIMEOUT, self.client.db_size()).await {
            let _ = writeln!(
                out,
                "apiserver_storage_size_bytes{{storage_cluster_id=\"{STORAGE_CLUSTER_ID}\"}} {size}"
            );
        }
    }
}

/// Counts the keys of every stored resource every `period` (kube counts per resource with a
/// count-only range; here a one-key list, whose `count` is etcd's).
async fn count_objects(api: Arc<Api>, metrics: Arc<StorageMetrics>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    loop {
        ticks.tick().await;
        let mut counted: BTreeMap<String, i64> = BTreeMap::new();
        let snapshot = api.registry.snapshot();
        for resource in snapshot.iter().filter(|r| r.is_stored()) {
            let name = resource_label(&resource.info().group, &resource.info().resource);
            if counted.contains_key(&name) {
                continue;
            }
            let prefix = resource.storage_prefix(&api.storage_root);
            let count = match api
                .backend
                .list(ListOptions {
                    prefix,
                    limit: Some(1),
                    ..Default::default()
                })
                .await
            {
                Ok(page) => page.count,
                Err(_) => -1,
            };
            counted.insert(name, count);
        }
        *metrics.objects.lock() = counted;
    }
}

/// kube's `GroupResource.String()`: `pods`, `deployments.apps`.
fn resource_label(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// What one operation on one storage path did.
#[derive(Debug, Default)]
struct RequestSeries {
    latency: Histogram,
    errors: u64,
}

/// The storage metrics' state.
#[derive(Debug, Default)]
pub struct StorageMetrics {
    /// By (operation, the key's first two path segments under the root): resolved to a
    /// resource at scrape time.
    requests: Mutex<HashMap<(&'static str, String), RequestSeries>>,
    /// The last count per resource label.
    objects: Mutex<BTreeMap<String, i64>>,
}

impl StorageMetrics {
    fn record(&self, operation: &'static str, key: &str, elapsed: Duration, failed: bool) {
        let mut requests = self.requests.lock();
        let series = requests
            .entry((operation, key_path(key).to_string()))
            .or_default();
        series.latency.observe(elapsed);
        series.errors += u64::from(failed);
    }

    fn render(&self, api: &Api, out: &mut String) {
        let registry = api.registry.snapshot();
        let root = format!("{}/", api.storage_root);
        // Paths that are not a resource's (yet) keep their path as resource name.
        let mut merged: BTreeMap<(&'static str, String, String), RequestSeries> = BTreeMap::new();
        for ((operation, path), series) in self.requests.lock().iter() {
            let path = path.strip_prefix(&root).unwrap_or(path);
            let (group, resource) = stored_resource(&registry, path)
                .unwrap_or_else(|| (String::new(), path.to_string()));
            let entry = merged.entry((operation, group, resource)).or_default();
            entry.latency.merge(&series.latency);
            entry.errors += series.errors;
        }
        let labels = |(operation, group, resource): &(&str, String, String)| {
            format!(
                "operation=\"{operation}\",group=\"{}\",resource=\"{}\"",
                escape(group),
                escape(resource)
            )
        };
        header(
            out,
            "etcd_request_duration_seconds",
            "histogram",
            "Etcd request latency in seconds for each operation and object type.",
        );
        for (key, series) in &merged {
            series
                .latency
                .render(out, "etcd_request_duration_seconds", &labels(key));
        }
        header(
            out,
            "etcd_requests_total",
            "counter",
            "Etcd request counts for each operation and object type.",
        );
        for (key, series) in &merged {
            let _ = writeln!(
                out,
                "etcd_requests_total{{{}}} {}",
                labels(key),
                series.latency.count()
            );
        }
        header(
            out,
            "etcd_request_errors_total",
            "counter",
            "Etcd failed request counts for each operation and object type.",
        );
        for (key, series) in merged.iter().filter(|(_, s)| s.errors > 0) {
            let _ = writeln!(
                out,
                "etcd_request_errors_total{{{}}} {}",
                labels(key),
                series.errors
            );
        }
        header(
            out,
            "apiserver_storage_objects",
            "gauge",
            "Number of stored objects at the time of last check split by kind. In case of a \
             fetching error, the value will be -1.",
        );
        for (resource, count) in self.objects.lock().iter() {
            let _ = writeln!(
                out,
                "apiserver_storage_objects{{resource=\"{}\"}} {count}",
                escape(resource)
            );
        }
    }
}

/// The storage path a key is under, with the root (`/registry/pods` of
/// `/registry/pods/default/web`): one segment, or two where kube's layout nests them (a
/// group's resources, `example.com/widgets`; `services/specs`, `services/endpoints`). One
/// entry per stored resource, whatever the number of objects;
/// [`StorageMetrics::render`] names its resource.
fn key_path(key: &str) -> &str {
    let root_end = key
        .get(1..)
        .and_then(|k| k.find('/'))
        .map_or(key.len(), |i| i + 1);
    let rest = &key[(root_end + 1).min(key.len())..];
    let mut segments = rest.split('/');
    let first = segments.next().unwrap_or("");
    let nested = first.contains('.') || first == "services";
    let length = match segments.next() {
        Some(second) if nested => first.len() + 1 + second.len(),
        _ => first.len(),
    };
    &key[..(root_end + 1 + length).min(key.len())]
}

/// The etcd backend with every request timed into [`StorageMetrics`] (kube's operation
/// names).
struct Metered {
    inner: Arc<EtcdBackend>,
    metrics: Arc<StorageMetrics>,
}

impl Metered {
    async fn timed<T>(
        &self,
        operation: &'static str,
        key: &str,
        request: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = request.await;
        // A refused precondition is an answer, not a failed request.
        let failed = matches!(
            result,
            Err(StorageError::Unavailable(_) | StorageError::Internal(_))
        );
        self.metrics
            .record(operation, key, started.elapsed(), failed);
        result
    }
}

#[async_trait]
impl Backend for Metered {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.timed("get", key, self.inner.get(key)).await
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let prefix = options.prefix.clone();
        self.timed("list", &prefix, self.inner.list(options)).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        self.timed("create", key, self.inner.create(key, value))
            .await
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue> {
        self.timed(
            "update",
            key,
            self.inner.update(key, value, expected_mod_revision),
        )
        .await
    }

    async fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Deleted> {
        self.timed("delete", key, self.inner.delete(key, expected_mod_revision))
            .await
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream> {
        self.inner.watch(prefix, start_revision).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn prefix_state(
        &self,
        prefix: &str,
        since: Revision,
        at: Option<Revision>,
    ) -> Result<PrefixState> {
        self.inner.prefix_state(prefix, since, at).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn health(&self) -> Result<()> {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_are_storage_paths() {
        assert_eq!(key_path("/registry/pods/default/web"), "/registry/pods");
        assert_eq!(key_path("/registry/pods/"), "/registry/pods");
        assert_eq!(key_path("/registry/namespaces/x"), "/registry/namespaces");
        assert_eq!(
            key_path("/registry/services/specs/default/kubernetes"),
            "/registry/services/specs"
        );
        assert_eq!(
            key_path("/registry/example.com/widgets/ns/w"),
            "/registry/example.com/widgets"
        );
        assert_eq!(key_path("/registry/example.com/"), "/registry/example.com/");
        assert_eq!(key_path("/registry"), "/registry");
    }

    #[test]
    fn resource_labels_are_kubes() {
        assert_eq!(resource_label("", "pods"), "pods");
        assert_eq!(resource_label("apps", "deployments"), "deployments.apps");
    }
}
