//! Helpers shared by the benchmarks in benches/ (the benchmarks themselves live there): the
//! round statistics, the JSON codec every cache benchmark uses, and the small pieces their
//! fake backends share.

/// (median, min, max) of per-round samples; `samples` is not empty.
pub fn stats(samples: &[f64]) -> (f64, f64, f64) {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let median = (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0;
    (median, v[0], v[v.len() - 1])
}

/// The server's `JsonCodec` for the stored shape, through the same functions
/// (`kubecache_cache::json`): the benches cannot depend on the server crate.
pub struct BenchCodec;

impl kubecache_cache::ObjectCodec for BenchCodec {
    fn attributes(
        &self,
        resource: &kubecache_core::registry::ResourceInfo,
        kv: &kubecache_core::storage::KeyValue,
    ) -> Result<kubecache_cache::ObjectAttrs, kubecache_core::storage::StorageError> {
        kubecache_cache::json::attributes(resource, kv)
    }

    fn encode(
        &self,
        stored: &[u8],
        revision: kubecache_core::storage::Revision,
        _shape: &kubecache_core::registry::ResourceInfo,
    ) -> bytes::Bytes {
        // The stored shape is all the benches serve.
        kubecache_cache::json::with_resource_version(stored, revision)
    }

    fn splice_point(
        &self,
        stored: &[u8],
        _shape: &kubecache_core::registry::ResourceInfo,
    ) -> Option<usize> {
        kubecache_cache::json::splice_point(stored)
    }

    fn bookmark(
        &self,
        shape: &kubecache_core::registry::ResourceInfo,
        revision: kubecache_core::storage::Revision,
        _initial_events_end: bool,
    ) -> bytes::Bytes {
        let bookmark = serde_json::json!({
            "kind": shape.kind,
            "apiVersion": shape.api_version(),
            "metadata": {"resourceVersion": revision.to_string()},
        });
        bytes::Bytes::from(serde_json::to_vec(&bookmark).expect("a JSON value always serializes"))
    }

    fn trigger_field(
        &self,
        resource: &kubecache_core::registry::ResourceInfo,
    ) -> Option<&'static str> {
        (resource.group.is_empty() && resource.resource == "pods").then_some("spec.nodeName")
    }
}

/// What a bench backend answers to a write: it serves the cache's reads and nothing else.
pub fn read_only() -> kubecache_core::storage::StorageError {
    kubecache_core::storage::StorageError::Unavailable("the bench backend is read-only".into())
}

/// A tokio current-thread runtime (timers and I/O on), to drive a cache from a bench.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("current-thread runtime")
}
