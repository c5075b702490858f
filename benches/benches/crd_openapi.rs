//! What publishing OpenAPI costs while CRDs are registered one after the other (issue 10,
//! point 5: 1,000 CRDs must not cost 1,000 full rebuilds).
//!
//! N custom resources are generated from cert-manager's Certificate CRD (its ~30 KiB
//! `openAPIV3Schema`), ten kinds per group (`Kind<i>` in `g<i/10>.bench.example.com/v1`, as
//! a Crossplane provider spreads its kinds), and registered one by one in a registry that
//! starts with the built-in resources, through the public `Registry` and `Published` the
//! server uses.
//!
//! * **kubecache**: one `Published`, warmed up at the start as the server does; after each
//!   registration, the time to serve the document of the group-version just changed
//!   (`/openapi/v3/apis/<group>/v1`, what kubectl asks for next), then of the index
//!   (`/openapi/v3`). Only what the registration changed is built.
//! * **baseline**: what every registration cost before (one `Documents::build` per registry
//!   generation: every v3 document, the index and `/openapi/v2`), measured as a fresh
//!   `Published` warmed up (which builds exactly those) plus the same document, at a few
//!   registry sizes (each the median of a few rounds). Running it after each of N
//!   registrations would take minutes; the total for N registrations is the sum over
//!   1..=N of the cost interpolated linearly between the sizes measured.
//!
//! Run: `cargo bench -p kubecache-benches --bench crd_openapi` (N = 1,000). Without `--bench`
//! (e.g. `cargo test --benches`) it runs a tiny smoke version (N = 20).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kubecache_apiextensions::crd::Crd;
use kubecache_apimachinery::openapi::Published;
use kubecache_apimachinery::registry::Registry;
use kubecache_apimachinery::strategy::Strategy;
use kubecache_apimachinery::strategy::custom::CustomResource;
use kubecache_benches::stats;
use serde_json::{Value, json};

/// Kinds per group.
const PER_GROUP: usize = 10;

/// The group of the `i`-th custom resource.
fn group(i: usize) -> String {
    format!("g{}.bench.example.com", i / PER_GROUP)
}

/// The `i`-th custom resource: Certificate's schema under another name and group.
fn strategy(template: &Value, i: usize) -> Arc<dyn Strategy> {
    let mut crd = template.clone();
    let group = group(i);
    let (kind, plural) = (format!("Kind{i}"), format!("kind{i}s"));
    crd["metadata"] = json!({"name": format!("{plural}.{group}")});
    crd["spec"]["group"] = json!(group);
    crd["spec"]["names"] = json!({
        "kind": kind,
        "listKind": format!("{kind}List"),
        "plural": plural,
        "singular": format!("kind{i}"),
    });
    let crd = Crd::parse(&crd).expect("a valid generated CRD");
    Arc::new(CustomResource::new(&crd, "v1").expect("its v1 compiles"))
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let started = Instant::now();
    let out = f();
    (started.elapsed(), out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = if bench { 1000 } else { 20 };
    let sizes: Vec<usize> = if bench {
        vec![1, 100, 250, 500, 1000]
    } else {
        vec![1, 10, 20]
    };
    let rounds = if bench { 3 } else { 1 };
    let template = kubecache_apiextensions::fixtures::crd("cert-manager.io_certificates.yaml");
    let schema_bytes = serde_json::to_vec(&template["spec"]["versions"][0]["schema"])
        .expect("JSON")
        .len();
    let strategies: Vec<Arc<dyn Strategy>> = (0..n).map(|i| strategy(&template, i)).collect();
    let path = |i: usize| format!("apis/{}/v1", group(i));

    // kubecache: one Published, each registration followed by its document and the index.
    let registry = Registry::builtin();
    let published = Published::default();
    let (warm, ()) = time(|| published.warm(&registry));
    let builds_before = published.builds();
    let mut document_ms = Vec::with_capacity(n);
    let mut index_ms = Vec::with_capacity(n);
    let started = Instant::now();
    for (i, s) in strategies.iter().enumerate() {
        registry.add(s.clone()).expect("registered");
        let (d, document) = time(|| published.document(&registry, &path(i)));
        assert!(document.is_some(), "{} is served", path(i));
        document_ms.push(ms(d));
        let (d, _) = time(|| published.index(&registry));
        index_ms.push(ms(d));
    }
    let total = started.elapsed();
    let builds = published.builds() - builds_before;
    let (v2, _) = time(|| published.v2(&registry));

    // Baseline: everything built again, at a few sizes.
    let mut baseline: Vec<(usize, f64)> = Vec::new();
    for &size in &sizes {
        let registry = Registry::builtin();
        for s in &strategies[..size] {
            registry.add(s.clone()).expect("registered");
        }
        let samples: Vec<f64> = (0..rounds)
            .map(|_| {
                let published = Published::default();
                let (d, _) = time(|| {
                    published.warm(&registry);
                    published.document(&registry, &path(size - 1))
                });
                ms(d)
            })
            .collect();
        baseline.push((size, stats(&samples).0));
    }
    // The baseline at any size, linear between the sizes measured.
    let at = |k: usize| -> f64 {
        let (mut lo, mut hi) = (baseline[0], baseline[baseline.len() - 1]);
        for pair in baseline.windows(2) {
            if pair[0].0 <= k && k <= pair[1].0 {
                (lo, hi) = (pair[0], pair[1]);
            }
        }
        if hi.0 == lo.0 {
            return lo.1;
        }
        lo.1 + (hi.1 - lo.1) * (k as f64 - lo.0 as f64) / (hi.0 as f64 - lo.0 as f64)
    };
    let baseline_total: f64 = (1..=n).map(at).sum();

    println!();
    println!(
        "crd_openapi: {n} CRDs of {} KiB of schema each, {PER_GROUP} per group; startup warm-up {:.0} ms; {builds} documents built during the registrations",
        schema_bytes / 1024,
        ms(warm)
    );
    println!(
        "| after registration k | kubecache: group-version document | kubecache: index | baseline: rebuild everything | ratio (document + index) / baseline |"
    );
    println!("|---|---|---|---|---|");
    for &size in &sizes {
        // The median over the ten registrations up to `size`, against the baseline at `size`.
        let window = size.saturating_sub(10)..size;
        let d = stats(&document_ms[window.clone()]).0;
        let x = stats(&index_ms[window]).0;
        let b = at(size);
        println!(
            "| {size} | {d:.2} ms | {x:.2} ms | {b:.1} ms | {:.4} |",
            (d + x) / b
        );
    }
    println!(
        "all {n} registrations, each followed by its document and the index: kubecache {:.2} s, baseline {:.1} s (interpolated), ratio {:.4}",
        total.as_secs_f64(),
        baseline_total / 1e3,
        total.as_secs_f64() * 1e3 / baseline_total
    );
    println!(
        "/openapi/v2 with {n} CRDs, built when first asked for: {:.0} ms",
        ms(v2)
    );
}
