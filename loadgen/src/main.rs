//! `kubecache-loadgen`: loads a Kubernetes API server the way a cluster does (kubelets and
//! informers watching, writers creating/patching/deleting pods, clients listing) and reports
//! latency, throughput and correctness, optionally beside the same load sent straight to
//! etcd.
//!
//! # Layout
//! - `client`: hyper 1 connections over TCP or rustls, HTTP/1.1 (a connection per watch)
//!   or HTTP/2 (streams multiplexed on a few connections).
//! - `backend`: the operations a scenario uses, against a kube API server or etcd.
//! - `fanout`: the `fanout` and `relist-storm` scenarios (watchers + paced writers).
//! - `throughput`: the `list` and `writes` scenarios.
//! - `crds`, `crdgen`: the `crds` scenario (1,000 CRDs, custom objects beside ConfigMaps)
//!   and the CRDs it generates from the fixture CRDs.
//! - `admission`: the `admission` scenario (pod creates with 0, 1 and 3 validating
//!   webhooks served by the loadgen, and with a ResourceQuota, in one run).
//! - `cluster`: the `cluster` scenario (simulated kubelets, kube-scheduler and a
//!   Deployment-like controller; pods from creation to Running).
//! - `watch_lines`: a watch response split into its JSON lines.
//! - `accounting`: which events each watcher had to see, and latencies.
//! - `pacing`: the open-loop write schedule.
//! - `procs`: CPU and RSS from /proc; the open-file limit.
//! - `run`: the run's clock, live counters and progress line.
//! - `report`: summary table, JSON and HTML.

mod accounting;
mod admission;
mod backend;
mod client;
mod cluster;
mod crdgen;
mod crds;
mod fanout;
mod pacing;
mod pod;
mod procs;
mod report;
mod run;
mod throughput;
mod watch_lines;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use backend::Backend;
use report::Results;
use run::Ctx;

#[derive(Parser, Debug)]
#[command(name = "kubecache-loadgen", version, about)]
struct Cli {
    /// The API server: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Bearer token sent with every request.
    #[arg(long, global = true, env = "KUBECACHE_LOADGEN_TOKEN")]
    token: Option<String>,
    /// PEM bundle of the CA that signed the server's certificate.
    #[arg(long, global = true, value_name = "FILE")]
    certificate_authority: Option<PathBuf>,
    /// Do not verify the server's certificate.
    #[arg(long, global = true)]
    insecure_skip_tls_verify: bool,
    /// HTTP/1.1: one connection per watch, like kubelets (the default).
    #[arg(long, global = true, conflicts_with = "http2")]
    http1: bool,
    /// HTTP/2: requests multiplexed on a few connections, like client-go.
    #[arg(long, global = true)]
    http2: bool,
    /// HTTP/2 connections (0: one per 100 watchers, at least 1).
    #[arg(long, global = true, default_value_t = 0)]
    h2_connections: usize,
    /// Namespace of the pods the loadgen writes (created if missing).
    #[arg(long, global = true, default_value = "kubecache-loadgen")]
    namespace: String,
    /// Run the same clients directly against etcd too, and report the ratio.
    #[arg(long, global = true, value_parser = ["etcd"])]
    baseline: Option<String>,
    /// etcd for `--baseline etcd` (comma-separated client URLs).
    #[arg(long, global = true, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Key prefix the baseline writes under (kept apart from kubecache's own keys).
    #[arg(long, global = true, default_value = "/kubecache-loadgen/pods")]
    etcd_prefix: String,
    /// A process to report CPU seconds and peak RSS for (repeatable).
    #[arg(long = "server-pid", global = true, value_name = "PID")]
    server_pids: Vec<u32>,
    /// Write the report as JSON.
    #[arg(long, global = true, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Write a self-contained HTML report with plots.
    #[arg(long, global = true, value_name = "FILE")]
    html_out: Option<PathBuf>,
    /// Per-request timeout in seconds (LISTs of 50,000 pods need a few).
    #[arg(long, global = true, default_value_t = 60)]
    request_timeout: u64,
    /// Hard limit for each run (kubecache, then baseline) in seconds; 0 = 2 × duration + 180.
    #[arg(long, global = true, default_value_t = 0)]
    timeout: u64,
    /// Allow a server or etcd that is not on a loopback address.
    #[arg(long, global = true)]
    allow_remote: bool,
    /// Keep the pods this run wrote.
    #[arg(long, global = true)]
    no_cleanup: bool,
    /// Exit with status 1 if any watcher missed, duplicated or reordered an event, or any
    /// request failed.
    #[arg(long, global = true)]
    check: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug, Clone)]
enum Scenario {
    /// N kubelets (own pods) and M informers (all pods) watching while writers write.
    Fanout {
        #[arg(long, default_value_t = 100)]
        nodes: u32,
        #[arg(long, default_value_t = 2)]
        informers: u32,
        /// Total writes per second (creates, patches, deletes).
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Seconds of writing.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Seconds watchers may take to catch up after the writers stop.
        #[arg(long, default_value_t = 15)]
        drain: u64,
        /// Pods created before the watchers LIST (the informers' LISTs carry them).
        #[arg(long, default_value_t = 0)]
        objects: u32,
    },
    /// Preload P pods, then K clients LIST them back to back.
    List {
        #[arg(long, default_value_t = 1000)]
        objects: u32,
        #[arg(long, default_value_t = 4)]
        clients: u32,
        /// `0` (any, cache), `""` or `unset` (consistent), `exact` (the preload's revision).
        #[arg(long, default_value = "0")]
        rv: String,
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// C workers creating, then updating, pods back to back.
    Writes {
        #[arg(long, default_value_t = 32)]
        concurrency: u32,
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// K informers LIST then WATCH at the same instant; then a short write phase checks
    /// that every one of them receives every event.
    RelistStorm {
        #[arg(long, default_value_t = 100)]
        clients: u32,
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[arg(long, default_value_t = 5)]
        duration: u64,
        #[arg(long, default_value_t = 15)]
        drain: u64,
        /// Pods created before the storm (every client's LIST returns them).
        #[arg(long, default_value_t = 0)]
        objects: u32,
    },
    /// Creates N generated CRDs (20–50 KiB schemas, varied from the fixture CRDs), times
    /// until all are Established and served, the RSS per CRD, discovery and OpenAPI; then
    /// compares custom objects with ConfigMaps (creates, LISTs, watch fan-out, deletes).
    Crds {
        #[arg(long, default_value_t = 1000)]
        crds: u32,
        /// CRDs per API group (`g<k>.bench.example.com`).
        #[arg(long, default_value_t = 1)]
        per_group: u32,
        /// Concurrent clients creating the CRDs.
        #[arg(long, default_value_t = 4)]
        clients: u32,
        /// Objects of each kind per round.
        #[arg(long, default_value_t = 2000)]
        objects: u32,
        /// Concurrent writers of objects.
        #[arg(long, default_value_t = 16)]
        concurrency: u32,
        /// Watchers of each kind in the fan-out.
        #[arg(long, default_value_t = 50)]
        watchers: u32,
        /// LISTs of all objects per kind and round.
        #[arg(long, default_value_t = 10)]
        lists: u32,
        /// Rounds of the object comparison (the order alternates).
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Seconds to wait for every CRD to be Established.
        #[arg(long, default_value_t = 300)]
        establish_timeout: u64,
        /// The fixture CRDs (default: $KUBECACHE_FIXTURES/crds, or shared/fixtures/crds in
        /// an ancestor directory).
        #[arg(long, value_name = "DIR")]
        fixtures: Option<PathBuf>,
    },
    /// Pod creates through admission, phase by phase: no webhook, 1 and 3 validating
    /// webhooks (HTTPS, served by the loadgen on loopback), a ResourceQuota in the
    /// namespace, no webhook again.
    Admission {
        /// Workers creating pods back to back.
        #[arg(long, default_value_t = 16)]
        concurrency: u32,
        /// Seconds per phase.
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// A simulated cluster: N kubelets, one kube-scheduler, a controller creating pods at a
    /// rate; pods/s from creation to Running and the latencies on the way.
    Cluster {
        #[arg(long, default_value_t = 1000)]
        nodes: u32,
        /// Pods created per second.
        #[arg(long, default_value_t = 300.0)]
        rate: f64,
        /// Bursts per second the creates come in.
        #[arg(long, default_value_t = 1)]
        bursts: u32,
        /// Seconds of creating.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Seconds the last pods may take to reach Running.
        #[arg(long, default_value_t = 30)]
        drain: u64,
    },
}

impl Scenario {
    fn seconds(&self) -> u64 {
        match self {
            Scenario::Fanout {
                duration, drain, ..
            } => duration + drain,
            Scenario::List { duration, .. } => *duration,
            Scenario::Writes { duration, .. } => *duration,
            // Bounded by its own phases; 2 × this + 180 s is the default hard limit.
            Scenario::Crds { .. } => 300,
            Scenario::Admission { duration, .. } => 5 * *duration + 15,
            // Kubelets register before the creates start: a minute covers 1,000 of them.
            Scenario::Cluster {
                duration, drain, ..
            } => duration + drain + 60,
            Scenario::RelistStorm {
                duration, drain, ..
            } => duration + drain,
        }
    }

    fn watchers(&self) -> usize {
        match self {
            Scenario::Fanout {
                nodes, informers, ..
            } => (*nodes + *informers) as usize,
            Scenario::RelistStorm { clients, .. } => *clients as usize,
            Scenario::Crds { watchers, .. } => *watchers as usize,
            // Two watches per kubelet, the scheduler's 14 and the controller's.
            Scenario::Cluster { nodes, .. } => 2 * *nodes as usize + 15,
            _ => 0,
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let files = procs::raise_nofile();
    let watchers = cli.scenario.watchers();
    if (files as usize) < watchers + 256 {
        eprintln!(
            "kubecache-loadgen: warning: the open-file limit is {files}, too low for {watchers} watches"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the tokio runtime");
    let code = runtime.block_on(async_main(cli));
    // Watch connections may still be open: do not wait for them.
    runtime.shutdown_background();
    std::process::exit(code);
}

fn fail(message: impl std::fmt::Display) -> i32 {
    eprintln!("kubecache-loadgen: {message}");
    2
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn async_main(cli: Cli) -> i32 {
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 & 0xff_ffff_ffff)
            .unwrap_or(0)
    );
    let naming = pod::Naming::new(&run_id, &cli.namespace);
    let watchers = cli.scenario.watchers();
    let h2_connections = if cli.h2_connections > 0 {
        cli.h2_connections
    } else {
        watchers.div_ceil(client::STREAMS_PER_CONNECTION).max(1)
    };
    let timeout = if cli.timeout > 0 {
        Duration::from_secs(cli.timeout)
    } else {
        Duration::from_secs(2 * cli.scenario.seconds() + 180)
    };
    let target = match client::Target::parse(
        &cli.server,
        cli.token.clone(),
        client::TlsOptions {
            ca_file: cli.certificate_authority.as_deref(),
            insecure: cli.insecure_skip_tls_verify,
        },
        cli.http2,
        Duration::from_secs(cli.request_timeout),
    ) {
        Ok(target) => target,
        Err(e) => return fail(e),
    };
    if !cli.allow_remote && !is_loopback(&target.host) && !target.address.ip().is_loopback() {
        return fail(format!(
            "{} is not a loopback address (pass --allow-remote to load it anyway)",
            cli.server
        ));
    }
    if let Scenario::Crds { .. } = &cli.scenario {
        let client = Arc::new(client::Client::new(target, h2_connections));
        return run_crds(&cli, client, &run_id, timeout).await;
    }
    if let Scenario::Cluster { .. } = &cli.scenario {
        return run_cluster(&cli, target, &run_id, timeout).await;
    }
    let kube = Arc::new(backend::Kube {
        client: client::Client::new(target, h2_connections),
        naming: naming.clone(),
        watch_timeout: timeout + Duration::from_secs(60),
    });
    if let Scenario::Admission { .. } = &cli.scenario {
        return run_admission(&cli, kube, timeout).await;
    }
    let kube = Backend::Kube(kube);
    eprintln!(
        "kubecache-loadgen: run {run_id}, {} against {} over {}",
        scenario_name(&cli.scenario),
        cli.server,
        if cli.http2 { "HTTP/2" } else { "HTTP/1.1" }
    );
    let main = match run_one(&cli, kube, "kubecache", timeout).await {
        Ok(results) => results,
        Err(code) => return code,
    };
    let mut baseline_failed = None;
    let baseline = if cli.baseline.is_some() {
        if cli.etcd_servers.is_empty() {
            return fail("--baseline etcd needs --etcd-servers URL");
        }
        for url in &cli.etcd_servers {
            let host = url
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_string))
                .unwrap_or_default();
            if !cli.allow_remote && !is_loopback(&host) {
                return fail(format!("etcd {url} is not on a loopback address"));
            }
        }
        let etcd = match backend::Etcd::connect(
            &cli.etcd_servers,
            h2_connections,
            &cli.etcd_prefix,
            naming.clone(),
        )
        .await
        {
            Ok(etcd) => etcd,
            Err(e) => return fail(e),
        };
        let etcd = Backend::Etcd(Arc::new(etcd));
        // Leftovers of an earlier, interrupted baseline would show up in its LISTs.
        if let Err(e) = etcd.cleanup().await {
            return fail(format!("clearing {}: {e}", cli.etcd_prefix));
        }
        eprintln!("kubecache-loadgen: baseline: the same clients against etcd");
        match run_one(&cli, etcd, "etcd", timeout).await {
            Ok(results) => Some(results),
            // etcd alone may not survive a load kubecache carries (e.g. 5,000 prefix
            // watchers): kubecache's figures are still reported, with the baseline's failure.
            Err(_) => {
                baseline_failed = Some(format!(
                    "the etcd baseline did not complete within {timeout:?}"
                ));
                None
            }
        }
    } else {
        None
    };
    println!("{}", report::summary(&main, baseline.as_ref()));
    if let Some(reason) = &baseline_failed {
        println!("baseline: {reason}");
    }
    let mut json = report::report_json(&main, baseline.as_ref());
    if let Some(reason) = &baseline_failed {
        json["baseline"] = serde_json::json!({ "error": reason });
    }
    if let Some(path) = &cli.json_out {
        let text = serde_json::to_string_pretty(&json).expect("serializable report");
        if let Err(e) = std::fs::write(path, text + "\n") {
            return fail(format!("write {}: {e}", path.display()));
        }
    }
    if let Some(path) = &cli.html_out
        && let Err(e) = std::fs::write(path, report::html(&main, baseline.as_ref()))
    {
        return fail(format!("write {}: {e}", path.display()));
    }
    if cli.check {
        let clean = |r: &Results| {
            let c = r.events.unwrap_or_default();
            c.missed == 0
                && c.duplicated == 0
                && c.out_of_order == 0
                && c.unexpected == 0
                && r.write_errors == 0
                && r.watch_errors == 0
                && r.list_errors == 0
                && r.short_lists == 0
        };
        if !clean(&main)
            || baseline.as_ref().is_some_and(|b| !clean(b))
            || baseline_failed.is_some()
        {
            eprintln!("kubecache-loadgen: --check failed: see the error counts above");
            return 1;
        }
    }
    0
}

/// The `crds` scenario: its own report (no etcd baseline: ConfigMaps in the same run are its
/// baseline).
async fn run_crds(cli: &Cli, client: Arc<client::Client>, run_id: &str, timeout: Duration) -> i32 {
    let Scenario::Crds {
        crds,
        per_group,
        clients,
        objects,
        concurrency,
        watchers,
        lists,
        rounds,
        establish_timeout,
        fixtures,
    } = cli.scenario.clone()
    else {
        unreachable!("called for the crds scenario")
    };
    if cli.baseline.is_some() {
        return fail("crds compares custom objects with ConfigMaps in the same run: no --baseline");
    }
    let plan = crds::Plan {
        crds,
        per_group,
        clients,
        objects,
        concurrency,
        watchers,
        lists,
        rounds,
        fixtures,
        run: run_id.to_string(),
        namespace: cli.namespace.clone(),
        server_pid: cli.server_pids.first().copied(),
        establish_timeout: Duration::from_secs(establish_timeout),
        deadline: Instant::now() + timeout,
        cleanup: !cli.no_cleanup,
    };
    let report =
        match tokio::time::timeout(timeout + Duration::from_secs(150), crds::run(client, plan))
            .await
        {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => return fail(format!("crds: {e}")),
            Err(_) => return fail(format!("crds: the run did not finish within {timeout:?}")),
        };
    println!("{}", crds::summary(&report));
    if let Some(path) = &cli.json_out {
        let text = serde_json::to_string_pretty(&report).expect("serializable report");
        if let Err(e) = std::fs::write(path, text + "\n") {
            return fail(format!("write {}: {e}", path.display()));
        }
    }
    if let Some(path) = &cli.html_out {
        let page = format!(
            "<!doctype html><meta charset=utf-8><title>kubecache-loadgen crds</title><pre>{}</pre>\n",
            crds::summary(&report)
                .replace('&', "&amp;")
                .replace('<', "&lt;")
        );
        if let Err(e) = std::fs::write(path, page) {
            return fail(format!("write {}: {e}", path.display()));
        }
    }
    let clean = report["create_errors"] == 0
        && report["serve_errors"] == 0
        && report["established_seconds"].is_number()
        && report["objects"]["correctness_failures"] == 0;
    if cli.check && !clean {
        eprintln!("kubecache-loadgen: --check failed: see the error counts above");
        return 1;
    }
    0
}

/// The `admission` scenario: its own report (its first phase, no webhook, is its baseline).
async fn run_admission(cli: &Cli, kube: Arc<backend::Kube>, timeout: Duration) -> i32 {
    let Scenario::Admission {
        concurrency,
        duration,
    } = cli.scenario.clone()
    else {
        unreachable!("called for the admission scenario")
    };
    if cli.baseline.is_some() {
        return fail("admission has no etcd baseline: its baseline is its no-webhook phase");
    }
    let plan = admission::Plan {
        concurrency,
        duration: Duration::from_secs(duration),
        cleanup: !cli.no_cleanup,
    };
    let phases = match tokio::time::timeout(timeout, admission::run(kube, plan)).await {
        Ok(Ok(phases)) => phases,
        Ok(Err(e)) => return fail(format!("admission: {e}")),
        Err(_) => {
            return fail(format!(
                "admission: the run did not finish within {timeout:?}"
            ));
        }
    };
    println!("{}", admission::summary(&phases));
    if let Some(path) = &cli.json_out {
        let json = serde_json::to_string_pretty(&phases).expect("serializable report");
        if let Err(e) = std::fs::write(path, json + "\n") {
            return fail(format!("write {}: {e}", path.display()));
        }
    }
    let failed = phases
        .iter()
        .any(|p| p.errors > 0 || p.reviews != p.creates * u64::from(p.webhooks));
    if cli.check && failed {
        eprintln!(
            "kubecache-loadgen: --check failed: errors, or reviews that do not match the creates"
        );
        return 1;
    }
    0
}

/// The `cluster` scenario: its own report; no etcd baseline (see docs/PERFORMANCE.md).
async fn run_cluster(cli: &Cli, target: client::Target, run_id: &str, timeout: Duration) -> i32 {
    let Scenario::Cluster {
        nodes,
        rate,
        bursts,
        duration,
        drain,
    } = cli.scenario.clone()
    else {
        unreachable!("called for the cluster scenario")
    };
    if cli.baseline.is_some() {
        return fail(
            "cluster has no etcd baseline: bindings, status patches and field-selected watches are API-server work",
        );
    }
    let plan = cluster::Plan {
        nodes,
        rate,
        bursts,
        duration: Duration::from_secs(duration),
        drain: Duration::from_secs(drain),
        run: run_id.to_string(),
        namespace: cli.namespace.clone(),
        server_pids: cli.server_pids.clone(),
        deadline: Instant::now() + timeout,
        cleanup: !cli.no_cleanup,
    };
    let report = match tokio::time::timeout(
        timeout + Duration::from_secs(60),
        cluster::run(target, plan),
    )
    .await
    {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => return fail(format!("cluster: {e}")),
        Err(_) => {
            return fail(format!(
                "cluster: the run did not finish within {timeout:?}"
            ));
        }
    };
    let text = cluster::summary(&report);
    println!("{text}");
    if let Some(path) = &cli.json_out {
        let json = serde_json::to_string_pretty(&report).expect("serializable report");
        if let Err(e) = std::fs::write(path, json + "\n") {
            return fail(format!("write {}: {e}", path.display()));
        }
    }
    if let Some(path) = &cli.html_out {
        let page = format!(
            "<!doctype html><meta charset=utf-8><title>kubecache-loadgen cluster</title><pre>{}</pre>\n",
            text.replace('&', "&amp;").replace('<', "&lt;")
        );
        if let Err(e) = std::fs::write(path, page) {
            return fail(format!("write {}: {e}", path.display()));
        }
    }
    let pods = &report["pods"];
    let clean = report["errors"]["watch"] == 0
        && report["errors"]["request"] == 0
        && pods["created"].as_u64().unwrap_or(0) > 0
        && pods["not_seen_running"] == 0
        && pods["kubelet_controller_mismatch"] == 0;
    if cli.check && !clean {
        eprintln!("kubecache-loadgen: --check failed: see the error counts above");
        return 1;
    }
    0
}

fn scenario_name(scenario: &Scenario) -> &'static str {
    match scenario {
        Scenario::Fanout { .. } => "fanout",
        Scenario::List { .. } => "list",
        Scenario::Writes { .. } => "writes",
        Scenario::RelistStorm { .. } => "relist-storm",
        Scenario::Crds { .. } => "crds",
        Scenario::Cluster { .. } => "cluster",
        Scenario::Admission { .. } => "admission",
    }
}

/// Runs the scenario against one backend, bounded by `timeout`, then cleans up.
async fn run_one(
    cli: &Cli,
    backend: Backend,
    label: &str,
    timeout: Duration,
) -> Result<Results, i32> {
    if let Err(e) = backend.prepare().await {
        return Err(fail(format!(
            "{label}: preparing namespace {}: {e}",
            cli.namespace
        )));
    }
    let deadline = Instant::now() + timeout;
    let ctx = Ctx::new(deadline, &cli.server_pids);
    let progress = ctx.start_progress(label.to_string());
    let start = Instant::now();
    let scenario = async {
        match cli.scenario.clone() {
            Scenario::Fanout {
                nodes,
                informers,
                rate,
                duration,
                drain,
                objects,
            } => {
                let plan = fanout::Plan {
                    nodes,
                    informers,
                    rate,
                    duration: Duration::from_secs(duration),
                    drain: Duration::from_secs(drain),
                    storm: false,
                    preload: objects,
                };
                fanout::run(backend.clone(), &plan, &ctx).await
            }
            Scenario::RelistStorm {
                clients,
                rate,
                duration,
                drain,
                objects,
            } => {
                let plan = fanout::Plan {
                    nodes: 0,
                    informers: clients,
                    rate,
                    duration: Duration::from_secs(duration),
                    drain: Duration::from_secs(drain),
                    storm: true,
                    preload: objects,
                };
                fanout::run(backend.clone(), &plan, &ctx).await
            }
            Scenario::List {
                objects,
                clients,
                rv,
                duration,
            } => {
                let rv = match rv.as_str() {
                    "0" => throughput::RvChoice::Zero,
                    "" | "\"\"" | "unset" => throughput::RvChoice::Unset,
                    "exact" => throughput::RvChoice::Exact,
                    other => {
                        eprintln!("kubecache-loadgen: --rv {other:?}: use 0, \"\" or exact");
                        return None;
                    }
                };
                let duration = Duration::from_secs(duration);
                throughput::list(backend.clone(), objects, clients, rv, duration, &ctx).await
            }
            Scenario::Writes {
                concurrency,
                duration,
            } => {
                throughput::writes(
                    backend.clone(),
                    concurrency,
                    Duration::from_secs(duration),
                    &ctx,
                )
                .await
            }
            Scenario::Crds { .. } => unreachable!("run by run_crds"),
            Scenario::Cluster { .. } => unreachable!("run by run_cluster"),
            Scenario::Admission { .. } => unreachable!("run by run_admission"),
        }
        .into()
    };
    let outcome = tokio::time::timeout(timeout + Duration::from_secs(30), scenario).await;
    ctx.stop_progress(progress);
    let mut results = match outcome {
        Ok(Some(results)) => results,
        Ok(None) => return Err(2),
        Err(_) => {
            return Err(fail(format!(
                "{label}: the run did not finish within {timeout:?}"
            )));
        }
    };
    results.target = label.to_string();
    results.duration_seconds = start.elapsed().as_secs_f64();
    results.processes = ctx.monitor.lock().expect("monitor lock").usage.clone();
    if !cli.no_cleanup {
        match tokio::time::timeout(Duration::from_secs(120), backend.cleanup()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("kubecache-loadgen: {label}: cleanup: {e}"),
            Err(_) => eprintln!("kubecache-loadgen: {label}: cleanup timed out"),
        }
    }
    Ok(results)
}
