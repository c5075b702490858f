//! Shard executor: tokio current-thread runtimes vs glommio executors.
//!
//! A kubecache shard is one thread that alone mutates the caches placed on it. HTTP handlers
//! and watch connections run on a tokio multi-thread runtime and talk to shards through
//! runtime-agnostic channels (`tokio::sync::mpsc` / `oneshot`). This benchmark runs the SAME
//! shard code on three executors and reports each plus its ratio to tokio current-thread:
//!
//! * `tokio-ct`: a `tokio` current-thread runtime on a dedicated std thread per shard;
//! * `glommio`: a glommio 0.9 `LocalExecutor` per shard, unpinned (`Placement::Unbound`);
//! * `glommio-pinned`: the same, pinned to CPU `shard % nproc` (`Placement::Fixed`); if
//!   pinning fails the shard runs unpinned and the summary says so.
//!
//! Workloads (the tokio side is a multi-thread runtime with 1 worker thread):
//!
//! * `round_trip`: handler tasks send a request to a shard and await a oneshot reply;
//!   throughput in round trips/s, with 1 and 64 concurrent handlers.
//! * `dispatch`: per shard, a tokio task sends 10,000 events (~1 KiB `Bytes`) through the
//!   shard's inbox; the shard applies each to a `HashMap<String, Bytes>` and pushes a `Bytes`
//!   clone (refcount bump) into each of 1,000 bounded (1,024) watcher queues drained by
//!   consumer tasks on the tokio runtime. Timed until every consumer has received every
//!   event. Throughput in events/s; deliveries/s = events/s x 1,000.
//!
//! `dispatch` runs `tokio-ct` and `glommio-pinned` only (one iteration is a whole 10,000-event
//! batch, so each configuration costs ~25 s here); set `KUBECACHE_BENCH_ALL_EXECS=1` to add
//! unpinned glommio. Criterion's "Unable to complete 10 samples" warning for `dispatch` is
//! expected: one sample is one batch. `KUBECACHE_BENCH_GLOMMIO_SPIN_US=N` gives glommio
//! executors `spin_before_park(N µs)` (default: none, i.e. park at once, as tokio does).
//!
//! Both with 1 and 2 shards (with 2 shards each shard has its own inbox, events and watchers,
//! so the work doubles). After criterion's report a summary table prints the median and
//! spread of the measured samples and the ratio to `tokio-ct`, all from the same run.
//!
//! Run: `cargo bench -p kubecache-benches --bench shard_executor` (filters work as usual,
//! e.g. `-- dispatch`).

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use tokio::sync::{Notify, mpsc, oneshot};

const SHARD_COUNTS: [usize; 2] = [1, 2];
const HANDLER_CONCURRENCY: [usize; 2] = [1, 64];
const EVENTS_PER_SHARD: usize = 10_000;
const WATCHERS_PER_SHARD: usize = 1_000;
const WATCHER_QUEUE: usize = 1_024;
const SHARD_INBOX: usize = 1_024;
const EVENT_BYTES: usize = 1_024;
const DISTINCT_KEYS: usize = 1_000;
const SAMPLE_SIZE: usize = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Exec {
    TokioCurrentThread,
    Glommio,
    GlommioPinned,
}

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

fn dispatch_execs() -> Vec<Exec> {
    if std::env::var_os("KUBECACHE_BENCH_ALL_EXECS").is_some_and(|v| v == "1") {
        EXECS.to_vec()
    } else {
        vec![Exec::TokioCurrentThread, Exec::GlommioPinned]
    }
}

fn glommio_spin() -> Option<Duration> {
    let us: u64 = std::env::var("KUBECACHE_BENCH_GLOMMIO_SPIN_US")
        .ok()?
        .parse()
        .ok()?;
    (us > 0).then(|| Duration::from_micros(us))
}

/// Set when a pinned glommio executor could not be placed and ran unpinned instead.
static PIN_FALLBACK: AtomicBool = AtomicBool::new(false);

/// Every `iter_custom` call: (iterations, elapsed), keyed by "group/exec/params".
/// Criterion's measurement samples are the last `SAMPLE_SIZE` calls of each key.
static SAMPLES: Mutex<BTreeMap<String, Vec<(u64, Duration)>>> = Mutex::new(BTreeMap::new());

fn record(key: &str, iters: u64, elapsed: Duration) {
    SAMPLES
        .lock()
        .expect("samples lock")
        .entry(key.to_owned())
        .or_default()
        .push((iters, elapsed));
}

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
// The environment of one benchmark configuration.

struct Progress {
    remaining: AtomicUsize,
    done: Notify,
}

struct Env {
    /// Handlers, producers and watch consumers: tokio multi-thread, 1 worker.
    rt: tokio::runtime::Runtime,
    inboxes: Vec<mpsc::Sender<ShardMsg>>,
    threads: Vec<ShardThread>,
    /// Dispatch only: per-shard event batches and the consumers' progress.
    events: Vec<Arc<Vec<(String, Bytes)>>>,
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
            progress: Arc::new(Progress {
                remaining: AtomicUsize::new(0),
                done: Notify::new(),
            }),
        }
    }

    /// Dispatch setup: 1,000 watcher queues + consumer tasks per shard, and the event batch.
    fn with_watchers(mut self) -> Env {
        for (s, inbox) in self.inboxes.iter().enumerate() {
            for _ in 0..WATCHERS_PER_SHARD {
                let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
                self.rt
                    .spawn(consume(rx, EVENTS_PER_SHARD, self.progress.clone()));
                inbox
                    .blocking_send(ShardMsg::Watch(tx))
                    .expect("shard alive");
            }
            let batch = (0..EVENTS_PER_SHARD)
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

    fn round_trips(&self, iters: u64, handlers: usize) -> Duration {
        let inboxes = self.inboxes.clone();
        self.rt.block_on(async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..handlers)
                .map(|h| {
                    let n =
                        iters / handlers as u64 + u64::from((h as u64) < iters % handlers as u64);
                    let inboxes = inboxes.clone();
                    tokio::spawn(async move {
                        for i in 0..n {
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

    /// `iters` batches of `EVENTS_PER_SHARD` events into every shard, timed until every
    /// consumer has received all of them.
    fn dispatch(&self, iters: u64) -> Duration {
        let watchers = WATCHERS_PER_SHARD * self.inboxes.len();
        self.rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
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
// Criterion plumbing.

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, warm_up: Duration, measure: Duration) {
    group
        .sample_size(SAMPLE_SIZE)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(warm_up)
        .measurement_time(measure);
}

/// Runs one configuration; the environment is built only if criterion's filter selects it.
fn run_config(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    exec: Exec,
    params: &str,
    setup: impl Fn() -> Env,
    routine: impl Fn(&Env, u64) -> Duration,
) {
    let key = format!("{group_name}/{}/{params}", exec.name());
    let mut env: Option<Env> = None;
    group.bench_function(format!("{}/{params}", exec.name()), |b| {
        let env = env.get_or_insert_with(&setup);
        b.iter_custom(|iters| {
            let elapsed = routine(env, iters);
            record(&key, iters, elapsed);
            elapsed
        });
    });
    if let Some(env) = env {
        env.shutdown();
    }
}

fn bench_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    configure(
        &mut group,
        Duration::from_millis(300),
        Duration::from_millis(1500),
    );
    group.throughput(Throughput::Elements(1));
    for shards in SHARD_COUNTS {
        for handlers in HANDLER_CONCURRENCY {
            for exec in EXECS {
                run_config(
                    &mut group,
                    "round_trip",
                    exec,
                    &format!("shards={shards}/handlers={handlers}"),
                    || Env::new(exec, shards),
                    |env, iters| env.round_trips(iters, handlers),
                );
            }
        }
    }
    group.finish();
}

fn bench_dispatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("dispatch");
    for shards in SHARD_COUNTS {
        // One iteration = EVENTS_PER_SHARD events into every shard.
        // A short target time keeps criterion at one batch per sample (it warns about it).
        configure(&mut group, Duration::from_millis(1), Duration::from_secs(1));
        group.throughput(Throughput::Elements((EVENTS_PER_SHARD * shards) as u64));
        for exec in dispatch_execs() {
            run_config(
                &mut group,
                "dispatch",
                exec,
                &format!("shards={shards}"),
                || Env::new(exec, shards).with_watchers(),
                |env, iters| env.dispatch(iters),
            );
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// Summary: medians of criterion's measurement samples and ratios, from this run only.

/// (median, min, max) of per-sample throughput, in elements per second.
fn rates(samples: &[(u64, Duration)], elements_per_iter: f64) -> Option<(f64, f64, f64)> {
    let measured = &samples[samples.len().saturating_sub(SAMPLE_SIZE)..];
    let mut r: Vec<f64> = measured
        .iter()
        .filter(|(_, d)| !d.is_zero())
        .map(|(iters, d)| *iters as f64 * elements_per_iter / d.as_secs_f64())
        .collect();
    if r.is_empty() {
        return None;
    }
    r.sort_by(f64::total_cmp);
    let median = (r[(r.len() - 1) / 2] + r[r.len() / 2]) / 2.0;
    Some((median, r[0], r[r.len() - 1]))
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

fn print_summary() {
    let samples = SAMPLES.lock().expect("samples lock");
    if samples.is_empty() {
        return;
    }
    let ncpu = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "== shard executor summary (nproc={ncpu}; median [min-max] of {SAMPLE_SIZE} samples; ratio = median / tokio-ct median) =="
    );
    if let Some(spin) = glommio_spin() {
        println!("glommio executors: spin_before_park({spin:?})");
    }
    if PIN_FALLBACK.load(Ordering::Relaxed) {
        println!("NOTE: pinning failed for at least one shard; glommio-pinned ran unpinned there");
    }
    println!(
        "| workload | shards | executor | median /s | spread /s | ratio vs tokio-ct | deliveries/s (median) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut rows: Vec<(String, String, usize, f64, bool)> = Vec::new();
    for shards in SHARD_COUNTS {
        for handlers in HANDLER_CONCURRENCY {
            rows.push((
                format!("round trips, {handlers} handler(s)"),
                format!("round_trip/{{}}/shards={shards}/handlers={handlers}"),
                shards,
                1.0,
                false,
            ));
        }
    }
    for shards in SHARD_COUNTS {
        rows.push((
            "dispatch events".to_owned(),
            format!("dispatch/{{}}/shards={shards}"),
            shards,
            (EVENTS_PER_SHARD * shards) as f64,
            true,
        ));
    }
    for (label, pattern, shards, per_iter, deliveries) in rows {
        let stats = |exec: Exec| {
            samples
                .get(&pattern.replace("{}", exec.name()))
                .and_then(|s| rates(s, per_iter))
        };
        let base = stats(Exec::TokioCurrentThread).map(|s| s.0);
        for exec in EXECS {
            let Some((median, lo, hi)) = stats(exec) else {
                continue;
            };
            let ratio = base.map_or("-".to_owned(), |b| format!("{:.2}", median / b));
            let deliv = if deliveries {
                human(median * WATCHERS_PER_SHARD as f64)
            } else {
                "-".to_owned()
            };
            println!(
                "| {label} | {shards} | {} | {} | {}-{} | {ratio} | {deliv} |",
                exec.name(),
                human(median),
                human(lo),
                human(hi),
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_round_trip(&mut c);
    bench_dispatch(&mut c);
    c.final_summary();
    print_summary();
}
