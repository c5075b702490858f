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
/// (`kubecache_cache::json`): the benches cannot depend on the server crate. The cache crate's
/// tests use the same codec.
pub use kubecache_cache::testing::TestCodec as BenchCodec;

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
