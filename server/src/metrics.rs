//! `/metrics`: the Prometheus text exposition format (0.0.4), with kube-apiserver's metric
//! names where it has one.
//!
//! - Requests: [`RequestMetrics`] counts every request [`crate::dispatch::handle`] answers
//!   (`apiserver_request_total`) and times it (`apiserver_request_duration_seconds`), labelled
//!   as kube-apiserver labels them. A WATCH is counted when its stream starts and not timed.
//! - The watch cache: the read path's [`ResourceCacheStats`], one series per cached resource,
//!   read at scrape time.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use http::Method;
use kubecache_admission::webhook::metrics as webhook_metrics;
use kubecache_apimachinery::registry::Snapshot;
use kubecache_cache::ResourceCacheStats;
use parking_lot::Mutex;

use crate::api::Api;
use crate::request_info::ResourceRequest;
use kubecache_core::request::{Subresource, Verb};

/// The Content-Type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// kube-apiserver's buckets of `apiserver_request_duration_seconds`.
pub const DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// How long a scrape waits for storage's current revision (for the lag gauge).
const REVISION_TIMEOUT: Duration = Duration::from_millis(500);

/// The labels of a request, as kube-apiserver's request metrics have them (all but `code`
/// and `component`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestLabels {
    /// kube's REST verb: GET, LIST, WATCH, POST, PUT, PATCH, DELETE, DELETECOLLECTION; the
    /// HTTP method for non-resource requests.
    pub verb: &'static str,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: &'static str,
    /// `resource`, `namespace` or `cluster`; empty for non-resource requests.
    pub scope: &'static str,
}

impl RequestLabels {
    /// A request that names no resource (discovery, health, version, metrics, or a path
    /// that names nothing served).
    pub fn non_resource(method: &Method) -> RequestLabels {
        let verb = match *method {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        RequestLabels {
            verb,
            group: String::new(),
            version: String::new(),
            resource: String::new(),
            subresource: "",
            scope: "",
        }
    }

    /// A resource request (kube's `CleanVerb` and `CleanScope`).
    pub fn resource(request: &ResourceRequest) -> RequestLabels {
        let verb = match request.verb {
            Verb::Get => "GET",
            Verb::List => "LIST",
            Verb::Watch => "WATCH",
            Verb::Create => "POST",
            Verb::Update => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
            Verb::DeleteCollection => "DELETECOLLECTION",
        };
        let scope = if request.name.is_some() || request.verb == Verb::Create {
            "resource"
        } else if request.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        };
        RequestLabels {
            verb,
            group: request.resource.group.clone(),
            version: request.resource.version.clone(),
            resource: request.resource.resource.clone(),
            subresource: request.subresource.map_or("", Subresource::as_str),
            scope,
        }
    }

    fn is_watch(&self) -> bool {
        self.verb == "WATCH"
    }
}

/// Latency observations in kube's request buckets ([`DURATION_BUCKETS`]), which kube also
/// uses for `etcd_request_duration_seconds`.
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is above every bound.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[bucket] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    /// Adds `other`'s observations to these.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Appends the `_bucket`, `_sum` and `_count` lines of metric `name` with `labels`
    /// (`a="x",b="y"`, already escaped).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, n) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The counters of one label set.
#[derive(Debug, Default)]
struct Series {
    /// Requests by response code.
    codes: BTreeMap<u16, u64>,
    latency: Histogram,
}

/// Request counters and latencies, updated once per request.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    series: Mutex<HashMap<RequestLabels, Series>>,
}

impl RequestMetrics {
    pub fn new() -> RequestMetrics {
        RequestMetrics::default()
    }

    /// Records one answered request. WATCH requests are counted, not timed (their stream
    /// has just started).
    pub fn record(&self, labels: RequestLabels, code: u16, elapsed: Duration) {
        let mut series = self.series.lock();
        let watch = labels.is_watch();
        let entry = series.entry(labels).or_default();
        *entry.codes.entry(code).or_default() += 1;
        if !watch {
            entry.latency.observe(elapsed);
        }
    }

    /// Appends `apiserver_request_total` and `apiserver_request_duration_seconds`.
    pub fn render(&self, out: &mut String) {
        struct Snapshot {
            labels: RequestLabels,
            codes: Vec<(u16, u64)>,
            latency: Histogram,
        }
        let mut snapshot: Vec<Snapshot> = {
            let series = self.series.lock();
            series
                .iter()
                .map(|(labels, s)| Snapshot {
                    labels: labels.clone(),
                    codes: s.codes.iter().map(|(c, n)| (*c, *n)).collect(),
                    latency: s.latency.clone(),
                })
                .collect()
        };
        snapshot.sort_by(|a, b| a.labels.cmp(&b.labels));

        header(
            out,
            "apiserver_request_total",
            "counter",
            "Counter of apiserver requests broken out for each verb, group, version, resource, \
             subresource, scope, component, and HTTP response code.",
        );
        for s in &snapshot {
            for (code, n) in &s.codes {
                let labels = request_labels(&s.labels, Some(*code));
                let _ = writeln!(out, "apiserver_request_total{{{labels}}} {n}");
            }
        }

        header(
            out,
            "apiserver_request_duration_seconds",
            "histogram",
            "Response latency distribution in seconds for each verb, group, version, resource, \
             subresource, scope and component.",
        );
        for s in snapshot.iter().filter(|s| s.latency.count() > 0) {
            let labels = request_labels(&s.labels, None);
            s.latency
                .render(out, "apiserver_request_duration_seconds", &labels);
        }
    }
}

fn request_labels(labels: &RequestLabels, code: Option<u16>) -> String {
    let mut out = format!(
        "verb=\"{}\",group=\"{}\",version=\"{}\",resource=\"{}\",subresource=\"{}\",\
         scope=\"{}\",component=\"apiserver\"",
        escape(labels.verb),
        escape(&labels.group),
        escape(&labels.version),
        escape(&labels.resource),
        escape(labels.subresource),
        escape(labels.scope),
    );
    if let Some(code) = code {
        let _ = write!(out, ",code=\"{code}\"");
    }
    out
}

/// `# HELP` and `# TYPE` of a metric family.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', "\\\\"));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value, escaped as the text format wants.
pub fn escape(value: &str) -> String {
    if !value.contains(['\\', '"', '\n']) {
        return value.to_string();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// kube's name of the resource a cache prefix holds (`pods`, `deployments.apps`): the
/// first resource the registry serves from that storage path, else the path itself.
fn cache_resource(registry: &Snapshot, storage_root: &str, prefix: &str) -> String {
    let path = prefix
        .strip_prefix(storage_root)
        .unwrap_or(prefix)
        .trim_matches('/');
    match stored_resource(registry, path) {
        Some((group, resource)) if group.is_empty() => resource,
        Some((group, resource)) => format!("{resource}.{group}"),
        None => path.to_string(),
    }
}

/// The (group, resource) stored under a storage path (`pods`, `deployments`,
/// `example.com/widgets`): the first resource the registry serves from it.
pub fn stored_resource(registry: &Snapshot, storage_path: &str) -> Option<(String, String)> {
    registry
        .sharing_storage(storage_path)
        .next()
        .map(|r| (r.group.to_string(), r.resource.to_string()))
}

/// One cache metric: its family and how to read it off a resource's stats.
struct CacheMetric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    extra_labels: &'static str,
    value: fn(&ResourceCacheStats) -> i64,
}

const CACHE_METRICS: &[CacheMetric] = &[
    CacheMetric {
        name: "apiserver_watch_cache_events_received_total",
        kind: "counter",
        help: "Counter of events received in watch cache broken by resource type.",
        extra_labels: "",
        value: |s| s.events_received as i64,
    },
    CacheMetric {
        name: "apiserver_registered_watchers",
        kind: "gauge",
        help: "Number of currently registered watchers for a given resource.",
        extra_labels: "",
        value: |s| s.watchers,
    },
    CacheMetric {
        name: "apiserver_watch_events_total",
        kind: "counter",
        help: "Number of events sent in watch clients.",
        extra_labels: "",
        value: |s| s.frames_sent as i64,
    },
    CacheMetric {
        name: "apiserver_watch_cache_resource_version",
        kind: "gauge",
        help: "Current resource version of watch cache broken by resource type.",
        extra_labels: "",
        value: |s| s.revision,
    },
    CacheMetric {
        name: "kubecache_watch_cache_ready",
        kind: "gauge",
        help: "1 when the resource's cache has listed and serves reads, else 0.",
        extra_labels: "",
        value: |s| i64::from(s.ready),
    },
    CacheMetric {
        name: "kubecache_watch_cache_objects",
        kind: "gauge",
        help: "Objects held by the resource's cache.",
        extra_labels: "",
        value: |s| s.objects as i64,
    },
    CacheMetric {
        name: "kubecache_watch_cache_history_events",
        kind: "gauge",
        help: "Events retained in the resource's cache history.",
        extra_labels: "",
        value: |s| s.history_events as i64,
    },
    CacheMetric {
        name: "kubecache_watch_cache_relists_total",
        kind: "counter",
        help: "Times the resource's cache relisted storage after losing its watch (the first \
               list not included).",
        extra_labels: "",
        value: |s| s.relists as i64,
    },
    CacheMetric {
        name: "kubecache_terminated_watchers_total",
        kind: "counter",
        help: "Watchers the cache ended, by reason.",
        extra_labels: ",reason=\"too_slow\"",
        value: |s| s.watchers_terminated_slow as i64,
    },
];

/// Appends the watch cache's metrics (nothing when reads are not cached).
fn render_cache(
    out: &mut String,
    registry: &Snapshot,
    storage_root: &str,
    stats: &[ResourceCacheStats],
    storage_revision: Option<i64>,
) {
    if stats.is_empty() {
        return;
    }
    let mut named: Vec<(String, &ResourceCacheStats)> = stats
        .iter()
        .map(|s| (cache_resource(registry, storage_root, &s.prefix), s))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let (labels, stats): (Vec<String>, Vec<&ResourceCacheStats>) = named
        .into_iter()
        .map(|(resource, s)| {
            (
                format!("resource=\"{}\",shard=\"{}\"", escape(&resource), s.shard),
                s,
            )
        })
        .unzip();
    for metric in CACHE_METRICS {
        header(out, metric.name, metric.kind, metric.help);
        for (s, labels) in stats.iter().zip(&labels) {
            let _ = writeln!(
                out,
                "{}{{{labels}{}}} {}",
                metric.name,
                metric.extra_labels,
                (metric.value)(s)
            );
        }
    }
    if let Some(current) = storage_revision {
        header(
            out,
            "kubecache_watch_cache_lag_revisions",
            "gauge",
            "Storage's current revision minus the cache's revision (an idle resource's cache \
             catches up when it is next read, so this includes writes to other resources).",
        );
        for (s, labels) in stats.iter().zip(&labels) {
            let _ = writeln!(
                out,
                "kubecache_watch_cache_lag_revisions{{{labels}}} {}",
                (current - s.revision).max(0)
            );
        }
    }
    let mut per_shard: BTreeMap<usize, u64> = BTreeMap::new();
    for s in &stats {
        *per_shard.entry(s.shard).or_default() += s.frames_sent;
    }
    header(
        out,
        "kubecache_shard_events_dispatched_total",
        "counter",
        "Frames the shard pushed to watchers, all resources on it together.",
    );
    for (shard, frames) in per_shard {
        let _ = writeln!(
            out,
            "kubecache_shard_events_dispatched_total{{shard=\"{shard}\"}} {frames}"
        );
    }
}

/// kube's admission webhook metrics ([`kubecache_admission::webhook::metrics`]).
fn render_webhooks(out: &mut String, counted: &webhook_metrics::Snapshot) {
    let call = |(name, kind, operation, rejected): &webhook_metrics::CallLabels| {
        format!(
            "name=\"{}\",operation=\"{operation}\",rejected=\"{rejected}\",type=\"{kind}\"",
            escape(name)
        )
    };
    header(
        out,
        "apiserver_admission_webhook_admission_duration_seconds",
        "histogram",
        "Admission webhook latency histogram in seconds, identified by name and broken out for \
         each operation and API resource and type (validate or admit).",
    );
    for (labels, histogram) in &counted.durations {
        let labels = call(labels);
        let mut cumulative = 0;
        for (bound, n) in webhook_metrics::DURATION_BUCKETS
            .iter()
            .zip(&histogram.buckets)
        {
            cumulative += n;
            let _ = writeln!(
                out,
                "apiserver_admission_webhook_admission_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let name = "apiserver_admission_webhook_admission_duration_seconds";
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
            histogram.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", histogram.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", histogram.count);
    }
    header(
        out,
        "apiserver_admission_webhook_request_total",
        "counter",
        "Admission webhook request total, identified by name and broken out for each admission \
         type (validating or mutating) and operation. Additional labels specify whether the \
         request was rejected or not and an HTTP status code.",
    );
    for ((labels, code), n) in &counted.requests {
        let labels = call(labels);
        let _ = writeln!(
            out,
            "apiserver_admission_webhook_request_total{{code=\"{code}\",{labels}}} {n}"
        );
    }
    header(
        out,
        "apiserver_admission_webhook_rejection_count",
        "counter",
        "Admission webhook rejection count, identified by name and broken out for each admission \
         type (validating or admit) and operation. Additional labels specify an error type and \
         rejection code.",
    );
    for ((name, kind, operation, why, code), n) in &counted.rejections {
        let _ = writeln!(
            out,
            "apiserver_admission_webhook_rejection_count{{error_type=\"{}\",name=\"{}\",\
             operation=\"{operation}\",rejection_code=\"{code}\",type=\"{kind}\"}} {n}",
            why.as_str(),
            escape(name)
        );
    }
}

/// The whole exposition, as `/metrics` serves it.
pub async fn render(api: &Api) -> String {
    let mut out = String::with_capacity(16 * 1024);
    api.metrics.render(&mut out);
    if let Some(etcd) = api.etcd.get() {
        etcd.render_metrics(api, &mut out).await;
    }
    render_webhooks(&mut out, &api.admission.webhooks.metrics.snapshot());
    let stats = api.reads.metrics();
    let storage_revision = if stats.is_empty() {
        None
    } else {
        match tokio::time::timeout(REVISION_TIMEOUT, api.backend.current_revision()).await {
            Ok(Ok(revision)) => Some(revision),
            _ => None,
        }
    };
    render_cache(
        &mut out,
        &api.registry.snapshot(),
        &api.storage_root,
        &stats,
        storage_revision,
    );
    render_decode_errors(&mut out);
    out
}

/// kube-apiserver's `apiserver_storage_decode_errors_total`: stored values that could not be
/// decrypted or decoded, by resource (see `kubecache_store::storage_format`).
fn render_decode_errors(out: &mut String) {
    header(
        out,
        "apiserver_storage_decode_errors_total",
        "counter",
        "Number of stored object decoding errors split by object type",
    );
    for (resource, count) in kubecache_store::storage_format::decode_error_counts() {
        let _ = writeln!(
            out,
            "apiserver_storage_decode_errors_total{{resource=\"{resource}\"}} {count}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let metrics = RequestMetrics::new();
        let labels = RequestLabels::non_resource(&Method::GET);
        metrics.record(labels.clone(), 200, Duration::from_millis(1));
        metrics.record(labels.clone(), 200, Duration::from_millis(30));
        metrics.record(labels.clone(), 500, Duration::from_secs(100));
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains(
            "apiserver_request_total{verb=\"GET\",group=\"\",version=\"\",resource=\"\",\
             subresource=\"\",scope=\"\",component=\"apiserver\",code=\"200\"} 2"
        ));
        assert!(out.contains("le=\"0.005\"} 1\n"));
        assert!(out.contains("le=\"0.05\"} 2\n"));
        assert!(out.contains("le=\"60\"} 2\n"));
        assert!(out.contains("le=\"+Inf\"} 3\n"));
        assert!(out.contains("apiserver_request_duration_seconds_count{"));
    }

    #[test]
    fn cache_resource_names_are_kubes() {
        let registry = kubecache_apimachinery::registry::Registry::builtin().snapshot();
        assert_eq!(
            cache_resource(&registry, "/registry", "/registry/pods/"),
            "pods"
        );
        assert_eq!(
            cache_resource(&registry, "/registry", "/registry/deployments/"),
            "deployments.apps"
        );
        assert_eq!(
            cache_resource(&registry, "/registry", "/registry/unknown/"),
            "unknown"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
