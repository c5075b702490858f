//! `--baseline etcd`: the same clients against a real etcd in the same run, beside
//! kubecache (here running on that same etcd: the baseline's keys live under their own
//! prefix, so kubecache never sees them).

mod support;

use support::{Etcd, Kubecache, assert_correct, loadgen};

fn run(server: &Kubecache, etcd: &Etcd, extra: &[&str]) -> serde_json::Value {
    let pids = [server.pid().to_string(), etcd.pid().to_string()];
    let mut args = vec![
        "--server",
        &server.url,
        "--server-pid",
        &pids[0],
        "--server-pid",
        &pids[1],
        "--baseline",
        "etcd",
        "--etcd-servers",
        &etcd.endpoint,
        "--check",
        "--timeout",
        "120",
    ];
    args.extend_from_slice(extra);
    loadgen(&args)
}

#[test]
fn fanout_baseline_watches_etcd_and_filters_on_the_client() {
    let etcd = Etcd::start();
    let server = Kubecache::on_etcd(&etcd.endpoint);
    let report = run(
        &server,
        &etcd,
        &[
            "fanout",
            "--nodes",
            "8",
            "--informers",
            "2",
            "--rate",
            "20",
            "--duration",
            "3",
        ],
    );
    assert_correct(&report);
    let baseline = &report["baseline"];
    assert_eq!(baseline["target"], "etcd");
    assert_correct(baseline);
    // Same writes, same expectations on both sides.
    assert_eq!(baseline["events"]["expected"], report["events"]["expected"]);
    assert!(
        report["ratio"]["latency_from_send_ms.p99"].is_f64(),
        "{report:#}"
    );
    let etcd_figures = &baseline["processes"][etcd.pid().to_string()];
    assert!(etcd_figures["peak_rss_bytes"].as_u64().expect("etcd RSS") > 0);
}

#[test]
fn list_and_writes_baselines_report_ratios() {
    let etcd = Etcd::start();
    let server = Kubecache::on_etcd(&etcd.endpoint);
    let report = run(
        &server,
        &etcd,
        &[
            "list",
            "--objects",
            "200",
            "--clients",
            "2",
            "--duration",
            "2",
            "--rv",
            "exact",
        ],
    );
    let baseline = &report["baseline"];
    assert_eq!(baseline["errors"]["list"], 0, "{report:#}");
    assert_eq!(baseline["errors"]["short_lists"], 0, "{report:#}");
    assert!(baseline["lists_per_sec"].as_f64().expect("etcd lists/s") > 0.0);
    assert!(report["ratio"]["list_mb_per_sec"].as_f64().expect("ratio") > 0.0);

    let report = run(
        &server,
        &etcd,
        &["writes", "--concurrency", "4", "--duration", "2"],
    );
    let baseline = &report["baseline"];
    assert_eq!(baseline["errors"]["write"], 0, "{report:#}");
    assert!(
        baseline["creates_per_sec"]
            .as_f64()
            .expect("etcd creates/s")
            > 0.0
    );
    assert!(
        baseline["updates_per_sec"]
            .as_f64()
            .expect("etcd updates/s")
            > 0.0
    );
    assert!(report["ratio"]["creates_per_sec"].as_f64().expect("ratio") > 0.0);
}

#[test]
fn relist_storm_baseline() {
    let etcd = Etcd::start();
    let server = Kubecache::on_etcd(&etcd.endpoint);
    let report = run(
        &server,
        &etcd,
        &[
            "relist-storm",
            "--clients",
            "20",
            "--rate",
            "10",
            "--duration",
            "2",
        ],
    );
    assert_correct(&report);
    assert_correct(&report["baseline"]);
    assert!(report["baseline"]["storm"]["seconds_to_all_watching"].is_f64());
}
