//! Every scenario, small and short, against the real kubecache binary on its embedded store:
//! each must finish with every watcher having received exactly its events in order, no
//! failed request, and non-zero throughput.

mod support;

use support::{Kubecache, assert_correct, loadgen};

fn common(server: &Kubecache) -> Vec<String> {
    vec![
        "--server".to_string(),
        server.url.clone(),
        "--server-pid".to_string(),
        server.pid().to_string(),
        "--check".to_string(),
        "--timeout".to_string(),
        "120".to_string(),
    ]
}

fn run(server: &Kubecache, extra: &[&str]) -> serde_json::Value {
    let mut args = common(server);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    loadgen(&args)
}

#[test]
fn fanout_over_http1_delivers_every_event_to_every_watcher() {
    let server = Kubecache::start();
    let report = run(
        &server,
        &[
            "--http1",
            "fanout",
            "--nodes",
            "12",
            "--informers",
            "2",
            "--rate",
            "30",
            "--duration",
            "3",
        ],
    );
    assert_eq!(report["scenario"], "fanout");
    assert_correct(&report);
    // 12 kubelets see each write once between them, 2 informers see each write: 3× writes.
    // The 60 preloaded pods are in the LISTs, never in the watches (unexpected = 0).
    let writes = report["writes"].as_u64().expect("writes");
    assert_eq!(writes, 90);
    assert_eq!(report["events"]["expected"], 3 * writes);
    assert_eq!(report["watchers"]["watching"], 14);
    let process = &report["processes"][server.pid().to_string()];
    assert!(process["peak_rss_bytes"].as_u64().expect("peak RSS") > 0);
    assert!(process["cpu_seconds"].as_f64().expect("CPU seconds") >= 0.0);
    assert!(report["loadgen"]["bytes_per_watcher"].is_u64());
}

#[test]
fn fanout_over_http2_with_an_html_report() {
    let server = Kubecache::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    let html = dir.path().join("report.html");
    let html_arg = html.to_str().expect("UTF-8 path");
    let report = run(
        &server,
        &[
            "--http2",
            "--h2-connections",
            "2",
            "--html-out",
            html_arg,
            "fanout",
            "--nodes",
            "20",
            "--informers",
            "3",
            "--rate",
            "40",
            "--duration",
            "3",
        ],
    );
    assert_correct(&report);
    let page = std::fs::read_to_string(&html).expect("the HTML report");
    assert_eq!(page.matches("<svg").count(), 2, "two plots");
    assert!(!page.contains("<script"));
}

#[test]
fn list_at_each_resource_version_returns_every_preloaded_pod() {
    let server = Kubecache::start();
    for rv in ["0", "", "exact"] {
        let report = run(
            &server,
            &[
                "list",
                "--objects",
                "300",
                "--clients",
                "2",
                "--rv",
                rv,
                "--duration",
                "2",
            ],
        );
        assert_eq!(report["scenario"], "list");
        assert_eq!(report["errors"]["list"], 0, "rv {rv:?}: {report:#}");
        assert_eq!(report["errors"]["short_lists"], 0, "rv {rv:?}: {report:#}");
        assert_eq!(report["errors"]["write"], 0, "rv {rv:?}: {report:#}");
        assert!(report["lists_per_sec"].as_f64().expect("lists/s") > 0.0);
        assert!(report["list_mb_per_sec"].as_f64().expect("MB/s") > 0.0);
        // 300 pods of ~1 KiB each.
        assert!(report["list_bytes"].as_u64().expect("bytes per list") > 250_000);
        assert!(report["latency_ms"]["p99"].is_f64());
    }
}

#[test]
fn writes_creates_then_updates() {
    let server = Kubecache::start();
    let report = run(
        &server,
        &["--http2", "writes", "--concurrency", "4", "--duration", "2"],
    );
    assert_eq!(report["scenario"], "writes");
    assert_eq!(report["errors"]["write"], 0, "{report:#}");
    assert!(report["creates_per_sec"].as_f64().expect("creates/s") > 0.0);
    assert!(report["updates_per_sec"].as_f64().expect("updates/s") > 0.0);
    assert!(report["write_latency_ms"]["p99"].is_f64());
}

#[test]
fn relist_storm_gets_every_client_watching() {
    let server = Kubecache::start();
    let report = run(
        &server,
        &[
            "relist-storm",
            "--clients",
            "40",
            "--rate",
            "20",
            "--duration",
            "2",
        ],
    );
    assert_eq!(report["scenario"], "relist-storm");
    assert_correct(&report);
    assert_eq!(report["watchers"]["watching"], 40);
    assert!(
        report["storm"]["seconds_to_all_watching"].is_f64(),
        "{report:#}"
    );
    assert_eq!(report["storm"]["errors"], 0);
}

#[test]
fn crds_are_established_and_custom_objects_compared_with_configmaps() {
    let server = Kubecache::start();
    let report = run(
        &server,
        &[
            "crds",
            "--crds",
            "6",
            "--per-group",
            "2",
            "--objects",
            "20",
            "--watchers",
            "3",
            "--lists",
            "2",
            "--rounds",
            "2",
        ],
    );
    assert_eq!(report["scenario"], "crds");
    assert_eq!(report["established"], 6, "{report:#}");
    assert!(report["established_seconds"].is_number(), "{report:#}");
    assert!(report["served_seconds"].is_number(), "{report:#}");
    assert_eq!(report["create_errors"], 0);
    // Each generated schema was cut into the range (plus the property of its own).
    assert!(report["schema_bytes"]["min"].as_u64().expect("min") >= 16 * 1024);
    assert!(report["schema_bytes"]["max"].as_u64().expect("max") <= 51 * 1024);
    // 6 CRDs two to a group: 3 groups in aggregated discovery, a group's OpenAPI served.
    assert_eq!(report["discovery"]["bench_groups"], 3, "{report:#}");
    assert!(report["openapi_group"]["bytes"].as_u64().expect("bytes") > 0);
    assert!(report["rss_after_bytes"].as_u64().expect("RSS") > 0);
    let objects = &report["objects"];
    assert_eq!(objects["correctness_failures"], 0, "{report:#}");
    for kind in ["configmaps", "custom"] {
        let rounds = objects[kind].as_array().expect("rounds");
        assert_eq!(rounds.len(), 2, "{report:#}");
        for round in rounds {
            assert_eq!(round["rv_mismatches"], 0, "{report:#}");
            assert_eq!(round["missed"], 0, "{report:#}");
            assert!(round["deliveries_per_sec"].as_f64().expect("deliveries") > 0.0);
        }
    }
    assert!(
        objects["ratios"]["fanout"]["median"]
            .as_f64()
            .expect("ratio")
            > 0.0
    );
}

#[test]
fn cluster_brings_every_created_pod_to_running() {
    let server = Kubecache::start();
    let report = run(
        &server,
        &[
            "cluster",
            "--nodes",
            "8",
            "--rate",
            "20",
            "--bursts",
            "2",
            "--duration",
            "3",
            "--drain",
            "20",
        ],
    );
    assert_eq!(report["scenario"], "cluster");
    let pods = &report["pods"];
    assert_eq!(pods["created"], 60, "{report:#}");
    // The controller's own watch saw every pod bound and Running, and exactly the pods the
    // kubelets patched.
    assert_eq!(pods["bound_seen"], 60, "{report:#}");
    assert_eq!(pods["bindings"], 60, "{report:#}");
    assert_eq!(pods["running_seen"], 60, "{report:#}");
    assert_eq!(pods["kubelet_running_patches"], 60, "{report:#}");
    assert_eq!(pods["not_seen_running"], 0, "{report:#}");
    assert_eq!(pods["kubelet_controller_mismatch"], 0, "{report:#}");
    assert_eq!(report["errors"]["watch"], 0, "{report:#}");
    assert_eq!(report["errors"]["request"], 0, "{report:#}");
    assert_eq!(report["create_to_running_ms"]["count"], 60);
    assert!(report["create_to_bound_ms"]["p99"].as_f64().expect("p99") > 0.0);
    // The scheduler renews its lease every 2 s: the run lasts longer than that.
    assert!(
        report["leader_lease_renew_ms"]["count"]
            .as_u64()
            .expect("count")
            >= 1
    );
    let mix = &report["request_mix"];
    for kind in [
        "node create",
        "lease create",
        "kubelet pod watch",
        "kubelet node watch",
        "kubelet token request",
        "kubelet pod status patch",
        "kubelet event",
        "scheduler pod watch",
        "scheduler informer",
        "scheduler binding",
        "controller pod create",
    ] {
        assert!(mix[kind].as_u64().unwrap_or(0) > 0, "{kind}: {report:#}");
    }
    assert_eq!(mix["node create"], 8);
    // One projected token per pod (ServiceAccount admission mounts one).
    assert_eq!(mix["kubelet token request"], 60);
    assert!(report["processes"][server.pid().to_string()]["peak_rss_bytes"].as_u64() > Some(0));
}
