//! Shard executor: tokio current-thread runtimes vs glommio executors.
//!
//! A kubecache shard is one thread that alone mutates the caches placed on it. HTTP handlers
//! and watch connections run on a tokio multi-thread runtime and talk to shards through
//! runtime-agnostic channels (`tokio::sync::mpsc` / `oneshot`). This benchmark runs the SAME
//! shard code on three executors and reports each plus its ratio to tokio current-thread:
//!
//! * `tokio-ct`: a tokio current-thread runtime on a dedicated std thread per shard;
//! * `glommio`: a glommio 0.9 `LocalExecutor` per shard, unpinned (`Placement::Unbound`);
//! * `glommio-pinned`: the same, pinned to CPU `shard % nproc` (`Placement::Fixed`); if
//!   pinning fails the shard runs unpinned and the output says so.
//!
//! Workloads (handlers, producers and consumers run on a tokio multi-thread runtime with
//! 1 worker thread, one runtime per executor under test):
//!
//! * `round_trip`: handler tasks send a request to a shard and await a oneshot reply;
//!   round trips/s with 1 and with 64 concurrent handlers (spread over the shards).
//! * `dispatch`: per shard, a tokio task sends 10,000 events (1 KiB `Bytes` each) through the
//!   shard's inbox; the shard applies each to a `HashMap<String, Bytes>` and pushes a `Bytes`
//!   clone (refcount bump, no copy) into each of 1,000 bounded (1,024) watcher queues drained
//!   by consumer tasks. A sample is one such batch, timed until every consumer has received
//!   every event: events/s, and deliveries/s = events/s x 1,000.
//!
//! Both with 1 and 2 shards; with 2 shards each shard has its own inbox, events and watchers,
//! so the work doubles.
//!
//! Why not criterion: this machine is shared and noisy (bursts of other builds lasting tens of
//! seconds), and criterion measures one configuration after another, so a ratio between two
//! executors compared samples taken up to a minute apart (trial runs with criterion flipped
//! ratios from 0.74 to 1.23 between runs). Here every executor's environment is built up
//! front and the samples are INTERLEAVED: each round takes one sample per executor (order
//! rotated every round), and the ratio reported is the median over rounds of the paired
//! per-round ratio `executor / tokio-ct`.
//!
//! Run: `cargo bench -p kubecache-benches --bench shard_executor` (~2.5 min on 2 cores).
//! Arguments that do not start with `--` filter configurations by substring (e.g. `dispatch`).
//! `KUBECACHE_BENCH_GLOMMIO_SPIN_US=N` gives glommio executors `spin_before_park(N µs)`
//! (default: none, i.e. park at once, as tokio does). Without `--bench` (e.g. `cargo test
//! --benches`) it runs a tiny smoke version of every configuration.

use kubecache_benches::stats;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};

const SHARD_COUNTS: [usize; 2] = [1, 2];
const HANDLER_CONCURRENCY: [usize; 2] = [1, 64];
const WATCHER_QUEUE: usize = 1_024;
const SHARD_INBOX: usize = 1_024;
const EVENT_BYTES: usize = 1_024;
const DISTINCT_KEYS: usize = 1_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Exec {
    TokioCurrentThread,
    Glommio,
    GlommioPinned,
}

/// The baseline comes first: ratios are against it.
const EXECS: [Exec; 3] = [Exec::TokioCurrentThread, Exec::Glommio, Exec::GlommioPinned];

impl Exec {
    fn name(self) -> &'static str {
        match self {
            Exec::TokioCurrentThread => "tokio-ct",
            Exec::Glommio => "glommio",
            Exec::GlommioPinned => "glommio-pinned",
        }
    }
}

/// How much work one run does.
#[derive(Clone, Copy)]
struct Scale {
    events_per_shard: usize,
    watchers_per_shard: usize,
    /// Target duration of one round-trip sample.
    round_trip_sample: Duration,
    round_trip_rounds: usize,
    /// Dispatch rounds: at least `min`, then more until `budget` is spent, at most `max`.
    dispatch_rounds_min: usize,
    dispatch_rounds_max: usize,
    dispatch_budget: Duration,
}

const BENCH: Scale = Scale {
    events_per_shard: 10_000,
    watchers_per_shard: 1_000,
    round_trip_sample: Duration::from_millis(150),
    round_trip_rounds: 10,
    dispatch_rounds_min: 5,
    dispatch_rounds_max: 10,
    dispatch_budget: Duration::from_secs(40),
};

/// Without `--bench`: prove every path works, fast, even in a debug build.
const SMOKE: Scale = Scale {
    events_per_shard: 100,
    watchers_per_shard: 10,
    round_trip_sample: Duration::from_millis(1),
    round_trip_rounds: 1,
    dispatch_rounds_min: 1,
    dispatch_rounds_max: 1,
    dispatch_budget: Duration::ZERO,
};

fn glommio_spin() -> Option<Duration> {
    let us: u64 = std::env::var("KUBECACHE_BENCH_GLOMMIO_SPIN_US")
        .ok()?
        .parse()
        .ok()?;
    (us > 0).then(|| Duration::from_micros(us))
}

/// Set when a pinned glommio executor could not be placed and ran unpinned instead.
static PIN_FALLBACK: AtomicBool = AtomicBool::new(false);

// ---------------------------------------------------------------------------------------------
// The shard: identical code on every executor.

enum ShardMsg {
    /// A handler's request; the reply proves the shard saw it.
    Ping {
        seq: u64,
        reply: oneshot::Sender<u64>,
    },
    /// Register a watcher queue.
    Watch(mpsc::Sender<Bytes>),
    /// An etcd watch event: apply, then fan out.
    Event { key: String, value: Bytes },
}

async fn shard_loop(mut inbox: mpsc::Receiver<ShardMsg>) {
    let mut objects: HashMap<String, Bytes> = HashMap::new();
    let mut watchers: Vec<mpsc::Sender<Bytes>> = Vec::new();
    while let Some(msg) = inbox.recv().await {
        match msg {
            ShardMsg::Ping { seq, reply } => {
                let _ = reply.send(seq ^ objects.len() as u64);
            }
            ShardMsg::Watch(tx) => watchers.push(tx),
            ShardMsg::Event { key, value } => {
                objects.insert(key, value.clone());
                for w in &watchers {
                    // Bounded queue: wait for room, never drop (the bench counts deliveries).
                    w.send(value.clone()).await.expect("watcher alive");
                }
            }
        }
    }
}

enum ShardThread {
    Std(std::thread::JoinHandle<()>),
    Glommio(glommio::ExecutorJoinHandle<()>),
}

impl ShardThread {
    fn join(self) {
        match self {
            ShardThread::Std(h) => h.join().expect("tokio shard thread panicked"),
            ShardThread::Glommio(h) => h.join().expect("glommio shard failed"),
        }
    }
}

/// Starts shard `idx`; returns its inbox once the shard's executor is running.
fn start_shard(exec: Exec, idx: usize) -> (mpsc::Sender<ShardMsg>, ShardThread) {
    let (tx, rx) = mpsc::channel(SHARD_INBOX);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let thread = match exec {
        Exec::TokioCurrentThread => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("current-thread runtime");
            let h = std::thread::Builder::new()
                .name(format!("shard-{idx}"))
                .spawn(move || {
                    rt.block_on(async move {
                        let _ = ready_tx.send(());
                        shard_loop(rx).await;
                    });
                })
                .expect("spawn shard thread");
            ShardThread::Std(h)
        }
        Exec::Glommio | Exec::GlommioPinned => {
            let placement = if exec == Exec::GlommioPinned {
                let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
                glommio::Placement::Fixed(idx % ncpu)
            } else {
                glommio::Placement::Unbound
            };
            let mut builder = glommio::LocalExecutorBuilder::new(placement)
                .name(&format!("shard-{idx}"))
                // Shards do no storage I/O: keep the io_uring buffer registration small.
                .io_memory(1 << 20);
            if let Some(spin) = glommio_spin() {
                builder = builder.spin_before_park(spin);
            }
            let spawned = builder.spawn(move || async move {
                let _ = ready_tx.send(());
                shard_loop(rx).await;
            });
            match spawned {
                Ok(h) => ShardThread::Glommio(h),
                Err(e) => panic!("glommio executor did not start: {e}"),
            }
        }
    };
    if ready_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        // The executor died before running the shard (e.g. pinning refused): report why.
        let why = match thread {
            ShardThread::Glommio(h) => match h.join() {
                Err(e) => e.to_string(),
                Ok(()) => "exited early".to_owned(),
            },
            ShardThread::Std(_) => "tokio shard did not start".to_owned(),
        };
        if exec == Exec::GlommioPinned {
            eprintln!("shard {idx}: pinning failed ({why}); running it unpinned");
            PIN_FALLBACK.store(true, Ordering::Relaxed);
            return start_shard(Exec::Glommio, idx);
        }
        panic!("shard {idx} ({}) did not start: {why}", exec.name());
    }
    (tx, thread)
}

// ---------------------------------------------------------------------------------------------
// The environment of one executor under test.

struct Progress {
    remaining: AtomicUsize,
    done: Notify,
}

struct Env {
    /// Handlers, producers and watch consumers: tokio multi-thread, 1 worker.
    rt: tokio::runtime::Runtime,
    inboxes: Vec<mpsc::Sender<ShardMsg>>,
    threads: Vec<ShardThread>,
    /// Dispatch only: per-shard event batches, watchers per shard, the consumers' progress.
    events: Vec<Arc<Vec<(String, Bytes)>>>,
    watchers_per_shard: usize,
    progress: Arc<Progress>,
}

impl Env {
    fn new(exec: Exec, shards: usize) -> Env {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("multi-thread runtime");
        let (inboxes, threads) = (0..shards).map(|i| start_shard(exec, i)).unzip();
        Env {
            rt,
            inboxes,
            threads,
            events: Vec::new(),
            watchers_per_shard: 0,
            progress: Arc::new(Progress {
                remaining: AtomicUsize::new(0),
                done: Notify::new(),
            }),
        }
    }

    /// Dispatch setup: watcher queues + consumer tasks per shard, and each shard's batch.
    fn with_watchers(mut self, scale: Scale) -> Env {
        self.watchers_per_shard = scale.watchers_per_shard;
        for (s, inbox) in self.inboxes.iter().enumerate() {
            for _ in 0..scale.watchers_per_shard {
                let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
                self.rt
                    .spawn(consume(rx, scale.events_per_shard, self.progress.clone()));
                inbox
                    .blocking_send(ShardMsg::Watch(tx))
                    .expect("shard alive");
            }
            let batch = (0..scale.events_per_shard)
                .map(|i| {
                    let key = format!("/registry/pods/ns-{s}/pod-{:04}", i % DISTINCT_KEYS);
                    let mut value = vec![b'x'; EVENT_BYTES];
                    value[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    (key, Bytes::from(value))
                })
                .collect();
            self.events.push(Arc::new(batch));
        }
        self
    }

    /// `n` round trips spread over `handlers` concurrent handler tasks and all shards.
    fn round_trips(&self, n: u64, handlers: usize) -> Duration {
        let inboxes = self.inboxes.clone();
        self.rt.block_on(async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..handlers)
                .map(|h| {
                    let per = n / handlers as u64 + u64::from((h as u64) < n % handlers as u64);
                    let inboxes = inboxes.clone();
                    tokio::spawn(async move {
                        for i in 0..per {
                            let shard = &inboxes[(h + i as usize) % inboxes.len()];
                            let (reply, rx) = oneshot::channel();
                            shard
                                .send(ShardMsg::Ping { seq: i, reply })
                                .await
                                .expect("shard alive");
                            black_box(rx.await.expect("reply"));
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("handler task");
            }
            start.elapsed()
        })
    }

    /// One batch into every shard, timed until every consumer has received all of it.
    fn dispatch(&self) -> Duration {
        let watchers = self.watchers_per_shard * self.inboxes.len();
        self.rt.block_on(async {
            let start = Instant::now();
            self.progress.remaining.store(watchers, Ordering::Release);
            let producers: Vec<_> = self
                .inboxes
                .iter()
                .zip(&self.events)
                .map(|(inbox, events)| {
                    let (inbox, events) = (inbox.clone(), events.clone());
                    tokio::spawn(async move {
                        for (key, value) in events.iter() {
                            let msg = ShardMsg::Event {
                                key: key.clone(),
                                value: value.clone(),
                            };
                            inbox.send(msg).await.expect("shard alive");
                        }
                    })
                })
                .collect();
            self.progress.done.notified().await;
            for p in producers {
                p.await.expect("producer task");
            }
            start.elapsed()
        })
    }

    fn shutdown(self) {
        let Env {
            rt,
            inboxes,
            threads,
            ..
        } = self;
        drop(inboxes); // shard loops end, dropping the watcher senders
        for t in threads {
            t.join();
        }
        rt.shutdown_timeout(Duration::from_secs(5));
    }
}

async fn consume(mut rx: mpsc::Receiver<Bytes>, per_batch: usize, progress: Arc<Progress>) {
    let (mut n, mut bytes) = (0, 0usize);
    while let Some(b) = rx.recv().await {
        bytes += b.len();
        n += 1;
        if n == per_batch {
            n = 0;
            if progress.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                progress.done.notify_one();
            }
        }
    }
    black_box(bytes);
}

// ---------------------------------------------------------------------------------------------
// Interleaved measurement and the report.

#[derive(Clone, Copy)]
enum Workload {
    RoundTrip { handlers: usize },
    Dispatch,
}

struct Config {
    name: String,
    label: String,
    shards: usize,
    workload: Workload,
}

fn configs() -> Vec<Config> {
    let mut out = Vec::new();
    for shards in SHARD_COUNTS {
        for handlers in HANDLER_CONCURRENCY {
            out.push(Config {
                name: format!("round_trip/shards={shards}/handlers={handlers}"),
                label: format!("round trips/s, {handlers} handler(s)"),
                shards,
                workload: Workload::RoundTrip { handlers },
            });
        }
    }
    for shards in SHARD_COUNTS {
        out.push(Config {
            name: format!("dispatch/shards={shards}"),
            label: "dispatch events/s".to_owned(),
            shards,
            workload: Workload::Dispatch,
        });
    }
    out
}

fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Measures one configuration on every executor, interleaved; returns the report's rows.
fn run_config(cfg: &Config, scale: Scale) -> Vec<String> {
    let started = Instant::now();
    let envs: Vec<Env> = EXECS
        .iter()
        .map(|&exec| {
            let env = Env::new(exec, cfg.shards);
            match cfg.workload {
                Workload::Dispatch => env.with_watchers(scale),
                Workload::RoundTrip { .. } => env,
            }
        })
        .collect();

    // Warm up each environment; for round trips also size a sample to ~round_trip_sample.
    let mut sample_len = vec![0u64; envs.len()];
    for (i, env) in envs.iter().enumerate() {
        match cfg.workload {
            Workload::RoundTrip { handlers } => {
                let probe = 2_000;
                let d = env.round_trips(probe, handlers);
                let rate = probe as f64 / d.as_secs_f64().max(1e-9);
                sample_len[i] = ((rate * scale.round_trip_sample.as_secs_f64()) as u64).max(100);
            }
            Workload::Dispatch => {
                env.dispatch();
            }
        }
    }

    // rates[exec][round], elements per second.
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); envs.len()];
    let measuring = Instant::now();
    let mut round = 0;
    loop {
        let (min, max, budget) = match cfg.workload {
            Workload::RoundTrip { .. } => (scale.round_trip_rounds, scale.round_trip_rounds, None),
            Workload::Dispatch => (
                scale.dispatch_rounds_min,
                scale.dispatch_rounds_max,
                Some(scale.dispatch_budget),
            ),
        };
        let over_budget = budget.is_none_or(|b| measuring.elapsed() >= b);
        if round >= max || (round >= min && over_budget) {
            break;
        }
        for k in 0..envs.len() {
            let i = (k + round) % envs.len(); // rotate the order every round
            let env = &envs[i];
            let rate = match cfg.workload {
                Workload::RoundTrip { handlers } => {
                    let d = env.round_trips(sample_len[i], handlers);
                    sample_len[i] as f64 / d.as_secs_f64()
                }
                Workload::Dispatch => {
                    let d = env.dispatch();
                    (scale.events_per_shard * cfg.shards) as f64 / d.as_secs_f64()
                }
            };
            rates[i].push(rate);
        }
        round += 1;
    }
    for env in envs {
        env.shutdown();
    }
    eprintln!(
        "{}: {round} interleaved rounds in {:.1?}",
        cfg.name,
        started.elapsed()
    );

    let base = &rates[0];
    EXECS
        .iter()
        .zip(&rates)
        .map(|(exec, r)| {
            let (median, lo, hi) = stats(r);
            let ratios: Vec<f64> = r.iter().zip(base).map(|(x, b)| x / b).collect();
            let (rm, rlo, rhi) = stats(&ratios);
            let deliveries = match cfg.workload {
                Workload::Dispatch => human(median * scale.watchers_per_shard as f64),
                Workload::RoundTrip { .. } => "-".to_owned(),
            };
            format!(
                "| {} | {} | {} | {} | {}–{} | {rm:.2} ({rlo:.2}–{rhi:.2}) | {deliveries} |",
                cfg.label,
                cfg.shards,
                exec.name(),
                human(median),
                human(lo),
                human(hi),
            )
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scale = if args.iter().any(|a| a == "--bench") {
        BENCH
    } else {
        SMOKE
    };
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let selected: Vec<Config> = configs()
        .into_iter()
        .filter(|c| filters.is_empty() || filters.iter().any(|f| c.name.contains(f)))
        .collect();
    if selected.is_empty() {
        return;
    }

    let mut rows = Vec::new();
    for cfg in &selected {
        rows.extend(run_config(cfg, scale));
    }

    let ncpu = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "shard executor (nproc={ncpu}; {} events x {} watchers per shard; glommio spin_before_park: {:?}){}",
        scale.events_per_shard,
        scale.watchers_per_shard,
        glommio_spin(),
        if PIN_FALLBACK.load(Ordering::Relaxed) {
            "; NOTE: pinning failed, glommio-pinned ran unpinned"
        } else {
            ""
        }
    );
    println!(
        "median and min–max over interleaved rounds; ratio = median (min–max) over rounds of executor / tokio-ct in the same round"
    );
    println!();
    println!(
        "| workload | shards | executor | median | min–max | ratio vs tokio-ct | deliveries/s (median) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
