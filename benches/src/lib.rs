//! Helpers shared by the benchmarks in benches/ (the benchmarks themselves live there).

/// (median, min, max) of per-round samples; `samples` is not empty.
pub fn stats(samples: &[f64]) -> (f64, f64, f64) {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let median = (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0;
    (median, v[0], v[v.len() - 1])
}
