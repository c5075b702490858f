//! `fanout` and `relist-storm`: watchers (kubelets on one node each, informers on all pods)
//! LIST then WATCH from the LIST's resourceVersion; once all are watching, writers create,
//! patch and delete pods at a fixed total rate; at the end every watcher's events are
//! checked against the writes (see `accounting`).
//!
//! A watcher is a small state machine: `Listing` → `Watching` → (stream ended: `Watching`
//! again from the last resourceVersion seen, bookmarks included) or (410 Gone / ERROR:
//! `Listing` again, the time in between being a gap in which missed writes are excused
//! and counted as excused, never silently).
//!
//! Writers: the run's writes are spread round-robin over `slots`; a slot holds one pod at a
//! time and takes it through create → [`PATCHES`] merge patches → delete, then starts a new
//! pod on the next node. Write `k` is due at `k / rate` (open loop); it waits for the previous
//! write of its slot to finish (a patch needs its create), and its latency counts from the
//! due time.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::accounting::{self, Gap, Op, Received, WatcherLog, histogram, record_ns};
use crate::backend::{Backend, Conn, EventKind, ListRv, Scope};
use crate::pacing;
use crate::pod::{DELETE_GEN, op_key};
use crate::report::Results;
use crate::run::Ctx;

/// Merge patches per pod between its create and its delete.
pub const PATCHES: u32 = 2;

/// The shape of a fanout run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub nodes: u32,
    pub informers: u32,
    pub rate: f64,
    pub duration: Duration,
    /// How long watchers may take to receive the last writes' events after writers stop.
    pub drain: Duration,
    /// relist-storm: all watchers start at the same instant.
    pub storm: bool,
    /// Pods created before the watchers start, so that their LISTs carry a realistic load
    /// (and the LIST/WATCH boundary is crossed with history behind it).
    pub preload: u32,
}

/// One watcher's shared state.
struct Watcher {
    scope: Scope,
    log: Mutex<WatcherLog>,
    /// Events of this run received (for the end-of-run drain).
    received: AtomicU64,
    errors: AtomicU64,
    relists: AtomicU64,
    /// When it was first watching (ns since the epoch; 0 = not yet).
    watching_ns: AtomicU64,
}

/// How many watchers of a fanout may be between their first LIST and their first watch at
/// once: thousands of connections and LISTs in the same millisecond measure the setup, not
/// the fan-out (the relist storm measures exactly that, and has no such limit).
const SETUP_CONCURRENCY: usize = 256;

async fn run_watcher(
    backend: Backend,
    watcher: Arc<Watcher>,
    ctx: Ctx,
    setup: Option<Arc<tokio::sync::Semaphore>>,
) {
    let mut setup_permit = match setup {
        Some(setup) => setup.acquire_owned().await.ok(),
        None => None,
    };
    // Before the first LIST the watcher saw nothing; that is a gap until it is watching.
    let mut gap_from = Some(0u64);
    // With HTTP/1.1 the LIST and the WATCH share the watcher's own connection.
    let mut conn = Conn::default();
    'relist: loop {
        if ctx.past_deadline() {
            return;
        }
        let listed = match backend
            .list(Some(&mut conn), watcher.scope, ListRv::Latest, false, true)
            .await
        {
            Ok(listed) => listed,
            Err(e) => {
                note_error(&watcher, &ctx, "LIST", &e.to_string());
                tokio::time::sleep(e.retry_after.unwrap_or(Duration::from_millis(500))).await;
                continue 'relist;
            }
        };
        let mut rv = listed.rv;
        loop {
            let watch = match backend.watch(&mut conn, watcher.scope, rv).await {
                Ok(watch) => watch,
                Err(e) if e.code == Some(410) => {
                    note_error(&watcher, &ctx, "WATCH", &e.to_string());
                    watcher.relists.fetch_add(1, Ordering::Relaxed);
                    gap_from.get_or_insert(ctx.now_ns());
                    continue 'relist;
                }
                Err(e) => {
                    note_error(&watcher, &ctx, "WATCH", &e.to_string());
                    tokio::time::sleep(e.retry_after.unwrap_or(Duration::from_millis(500))).await;
                    continue;
                }
            };
            let now = ctx.now_ns();
            if let Some(from) = gap_from.take() {
                watcher.log.lock().expect("log lock").gaps.push(Gap {
                    from_ns: from,
                    to_ns: now,
                });
            }
            setup_permit.take();
            if watcher.watching_ns.load(Ordering::Relaxed) == 0 {
                watcher.watching_ns.store(now.max(1), Ordering::Relaxed);
                ctx.live.watching.fetch_add(1, Ordering::Relaxed);
            }
            let mut watch = watch;
            'stream: loop {
                let batch = match watch.next().await {
                    Ok(Some(batch)) => batch,
                    // The server ended the watch (its timeout): resume where we were.
                    Ok(None) => break,
                    Err(e) => {
                        note_error(&watcher, &ctx, "WATCH stream", &e.to_string());
                        break;
                    }
                };
                let recv_ns = ctx.now_ns();
                let mut log = watcher.log.lock().expect("log lock");
                for event in batch {
                    match event.kind {
                        EventKind::Bookmark => rv = rv.max(event.rv),
                        EventKind::Error(code) => {
                            drop(log);
                            note_error(&watcher, &ctx, "WATCH event", &format!("ERROR {code}"));
                            if code == 410 {
                                watcher.relists.fetch_add(1, Ordering::Relaxed);
                                gap_from.get_or_insert(ctx.now_ns());
                                continue 'relist;
                            }
                            // Another error: watch again from the last resourceVersion.
                            break 'stream;
                        }
                        EventKind::Added | EventKind::Modified | EventKind::Deleted => {
                            rv = rv.max(event.rv);
                            let Some((_, pod)) = event.pod else {
                                log.foreign += 1;
                                continue;
                            };
                            let generation = if event.kind == EventKind::Deleted {
                                DELETE_GEN
                            } else {
                                event.generation.unwrap_or(DELETE_GEN - 1)
                            };
                            log.events.push(Received {
                                key: op_key(pod, generation),
                                rv: event.rv,
                                recv_ns,
                            });
                            watcher.received.fetch_add(1, Ordering::Relaxed);
                            ctx.live.events.fetch_add(1, Ordering::Relaxed);
                            if event.kind != EventKind::Deleted
                                && let Some(sent) = event.sent_ns
                            {
                                ctx.record_live_latency(recv_ns.saturating_sub(sent));
                            }
                        }
                    }
                }
            }
        }
    }
}

fn note_error(watcher: &Watcher, ctx: &Ctx, what: &str, message: &str) {
    let before = watcher.errors.fetch_add(1, Ordering::Relaxed);
    let total = ctx.live.errors.fetch_add(1, Ordering::Relaxed);
    if before == 0 && total < 5 {
        eprintln!("\nkubecache-loadgen: {what}: {message}");
    }
}

/// A writer slot: the pod it currently owns.
#[derive(Default)]
struct Slot {
    pod: Option<(u32, u32)>,
    generation: u32,
    rv: u64,
}

struct Writers {
    backend: Backend,
    nodes: u32,
    next_pod: AtomicU32,
    ops: Mutex<Vec<Op>>,
    latency: Mutex<Histogram<u64>>,
    errors: AtomicU64,
    /// 429 answers (each retried after its Retry-After).
    throttled: AtomicU64,
}

/// How long to wait after a 429: its Retry-After, at most 10 s, else 1 s.
pub fn throttle_delay(e: &crate::backend::Error) -> Duration {
    e.retry_after
        .unwrap_or(Duration::from_secs(1))
        .min(Duration::from_secs(10))
}

impl Writers {
    async fn write(&self, slot: &tokio::sync::Mutex<Slot>, sent_ns: u64, ctx: &Ctx) {
        let mut slot = slot.lock().await;
        let (node, pod, generation) = match slot.pod {
            None => {
                let pod = self.next_pod.fetch_add(1, Ordering::Relaxed);
                (pod % self.nodes.max(1), pod, 0)
            }
            Some((node, pod)) if slot.generation < PATCHES => (node, pod, slot.generation + 1),
            Some((node, pod)) => (node, pod, DELETE_GEN),
        };
        let result = loop {
            let result = match generation {
                0 => self.backend.create(node, pod, sent_ns).await.map(Some),
                DELETE_GEN => self.backend.delete(node, pod, slot.rv).await.map(|_| None),
                _ => self
                    .backend
                    .patch(node, pod, generation, sent_ns, slot.rv)
                    .await
                    .map(Some),
            };
            // 429: the server asks to come back later; the wait counts as latency.
            match result {
                Err(e) if e.code == Some(429) && !ctx.past_deadline() => {
                    self.throttled.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(throttle_delay(&e)).await;
                }
                result => break result,
            }
        };
        let ack_ns = ctx.now_ns();
        let ok = result.is_ok();
        match result {
            Ok(Some(rv)) => {
                *slot = Slot {
                    pod: Some((node, pod)),
                    generation,
                    rv,
                }
            }
            Ok(None) => *slot = Slot::default(),
            Err(e) => {
                let before = self.errors.fetch_add(1, Ordering::Relaxed);
                ctx.live.errors.fetch_add(1, Ordering::Relaxed);
                if before < 3 {
                    eprintln!("\nkubecache-loadgen: write: {e}");
                }
                // Start over with a new pod rather than guess what happened to this one.
                if generation == 0 || generation == DELETE_GEN {
                    *slot = Slot::default();
                }
            }
        }
        record_ns(
            &mut self.latency.lock().expect("latency lock"),
            ack_ns.saturating_sub(sent_ns),
        );
        self.ops.lock().expect("ops lock").push(Op {
            key: op_key(pod, generation),
            node,
            sent_ns,
            ack_ns,
            ok,
        });
        ctx.live.writes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs one fanout (or relist-storm) against `backend`.
pub async fn run(backend: Backend, plan: &Plan, ctx: &Ctx) -> Results {
    let mut results = Results::new(if plan.storm { "relist-storm" } else { "fanout" });
    if plan.preload > 0 {
        let preload_start = Instant::now();
        results.write_errors += crate::throughput::preload(&backend, plan.preload, ctx).await;
        results.preload_seconds = Some(preload_start.elapsed().as_secs_f64());
    }
    let rss_before = crate::procs::sample(None).map(|s| s.rss_bytes).unwrap_or(0);
    let watchers: Vec<Arc<Watcher>> = (0..plan.nodes)
        .map(Scope::Node)
        .chain((0..plan.informers).map(|_| Scope::All))
        .map(|scope| {
            Arc::new(Watcher {
                scope,
                log: Mutex::new(WatcherLog::default()),
                received: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                relists: AtomicU64::new(0),
                watching_ns: AtomicU64::new(0),
            })
        })
        .collect();

    // Start the watchers: all at once for a storm, otherwise at most SETUP_CONCURRENCY
    // setting up at a time.
    let storm_start = Instant::now();
    let storm_start_ns = ctx.now_ns();
    let barrier = Arc::new(tokio::sync::Barrier::new(watchers.len() + 1));
    let setup = Arc::new(tokio::sync::Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = Vec::with_capacity(watchers.len());
    for watcher in &watchers {
        let (backend, watcher, ctx) = (backend.clone(), watcher.clone(), ctx.clone());
        let barrier = plan.storm.then(|| barrier.clone());
        let setup = (!plan.storm).then(|| setup.clone());
        tasks.push(tokio::spawn(async move {
            if let Some(barrier) = barrier {
                barrier.wait().await;
            }
            run_watcher(backend, watcher, ctx, setup).await
        }));
    }
    if plan.storm {
        barrier.wait().await;
    }
    let all = watchers.len() as u64;
    while ctx.live.watching.load(Ordering::Relaxed) < all && !ctx.past_deadline() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let watching = ctx.live.watching.load(Ordering::Relaxed);
    if plan.storm {
        let times: Vec<f64> = watchers
            .iter()
            .filter_map(|w| {
                let ns = w.watching_ns.load(Ordering::Relaxed);
                (ns > 0).then(|| ns.saturating_sub(storm_start_ns) as f64 / 1e9)
            })
            .collect();
        results.storm_seconds_to_all_watching =
            (watching == all).then(|| storm_start.elapsed().as_secs_f64());
        results.storm_errors = Some(
            watchers
                .iter()
                .map(|w| w.errors.load(Ordering::Relaxed))
                .sum(),
        );
        let mut sorted = times;
        sorted.sort_by(|a, b| a.total_cmp(b));
        results.storm_watching_p50_s = sorted.get(sorted.len() / 2).copied();
    }
    results.watchers = all;
    results.watchers_watching = watching;
    let rss_watching = crate::procs::sample(None).map(|s| s.rss_bytes).unwrap_or(0);
    results.loadgen_bytes_per_watcher = rss_watching.saturating_sub(rss_before).checked_div(all);

    // The writers.
    let slot_count = (plan.rate.ceil() as usize).clamp(16, 100_000);
    let slots: Arc<Vec<tokio::sync::Mutex<Slot>>> = Arc::new(
        (0..slot_count)
            .map(|_| tokio::sync::Mutex::new(Slot::default()))
            .collect(),
    );
    let writers = Arc::new(Writers {
        backend: backend.clone(),
        nodes: plan.nodes,
        // Preloaded pods are 0..preload; the writers' pods come after them.
        next_pod: AtomicU32::new(plan.preload),
        ops: Mutex::new(Vec::new()),
        latency: Mutex::new(histogram()),
        errors: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
    });
    let writers_start_ns = ctx.now_ns();
    let writers_start = ctx.at(writers_start_ns);
    let total = pacing::total(plan.duration, plan.rate);
    let mut in_flight = Vec::with_capacity(total as usize);
    for k in 0..total {
        let due = writers_start + pacing::due(k, plan.rate);
        if due >= ctx.deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let sent_ns = due.duration_since(ctx.epoch).as_nanos() as u64;
        let (writers, slots, ctx) = (writers.clone(), slots.clone(), ctx.clone());
        in_flight.push(tokio::spawn(async move {
            let slot = &slots[k as usize % slots.len()];
            writers.write(slot, sent_ns, &ctx).await
        }));
    }
    for task in in_flight {
        let _ = task.await;
    }
    let writes_end_ns = ctx.now_ns();

    // Drain: wait until every watcher has as many events as it should (bounded).
    let ops = std::mem::take(&mut *writers.ops.lock().expect("ops lock"));
    let mut per_node = vec![0u64; plan.nodes as usize];
    let mut all_ok = 0u64;
    for op in ops.iter().filter(|op| op.ok) {
        all_ok += 1;
        if let Some(count) = per_node.get_mut(op.node as usize) {
            *count += 1;
        }
    }
    let drain_until = (Instant::now() + plan.drain).min(ctx.deadline);
    loop {
        let behind = watchers.iter().any(|w| {
            let want = match w.scope {
                Scope::Node(node) => per_node[node as usize],
                Scope::All => all_ok,
            };
            w.received.load(Ordering::Relaxed) < want
        });
        if !behind || Instant::now() >= drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }

    // Account.
    let logs: Vec<WatcherLog> = watchers
        .iter()
        .map(|w| std::mem::take(&mut *w.log.lock().expect("log lock")))
        .collect();
    let scoped: Vec<(Option<u32>, &WatcherLog)> = watchers
        .iter()
        .zip(&logs)
        .map(|(w, log)| {
            let scope = match w.scope {
                Scope::Node(node) => Some(node),
                Scope::All => None,
            };
            (scope, log)
        })
        .collect();
    let (counts, _each, latencies) = accounting::evaluate(&ops, &scoped, writers_start_ns);
    let write_seconds = (writes_end_ns.saturating_sub(writers_start_ns) as f64 / 1e9).max(1e-9);
    results.events = Some(counts);
    results.writes = ops.len() as u64;
    results.write_errors += writers.errors.load(Ordering::Relaxed);
    results.throttled = writers.throttled.load(Ordering::Relaxed);
    results.watch_errors = watchers
        .iter()
        .map(|w| w.errors.load(Ordering::Relaxed))
        .sum();
    results.relists = watchers
        .iter()
        .map(|w| w.relists.load(Ordering::Relaxed))
        .sum();
    results.foreign_events = logs.iter().map(|l| l.foreign).sum();
    results.writes_per_sec = Some(ops.len() as f64 / plan.duration.as_secs_f64().max(1e-9));
    results.events_per_sec = Some(counts.received as f64 / write_seconds);
    results.latency = Some(latencies.from_ack);
    results.latency_from_send = Some(latencies.from_send);
    results.per_second = latencies.per_second;
    results.write_latency = Some(writers.latency.lock().expect("latency lock").clone());
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Kube;
    use crate::client::{Client, Target, TlsOptions};
    use crate::pod::{Naming, pod_json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A scripted API server: answers LISTs with resourceVersion 10 then 20, and watches
    /// with (1) an event and a 410 ERROR, (2) a 429, (3) an event, a bookmark and a 500
    /// ERROR, (4) an event, kept open. Requests without `Authorization: Bearer s3cret` get 401.
    async fn scripted_server(naming: Naming, requests: Arc<Mutex<Vec<String>>>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let (mut lists, mut watches) = (0, 0);
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                        break;
                    }
                    head.push(byte[0]);
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let authorized = String::from_utf8_lossy(&head)
                    .to_ascii_lowercase()
                    .contains("\r\nauthorization: bearer s3cret\r\n");
                if !authorized {
                    // Every request must carry --token.
                    let _ = socket
                        .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    continue;
                }
                requests.lock().expect("lock").push(line.clone());
                let event = |kind: &str, pod: u32, rv: u64| {
                    let object = pod_json(&naming, 0, pod, 0, 1).replacen(
                        "\"namespace\"",
                        &format!("\"resourceVersion\":\"{rv}\",\"namespace\""),
                        1,
                    );
                    format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n")
                };
                let ok =
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n";
                let response = if !line.contains("watch=true") {
                    lists += 1;
                    let body = format!(
                        r#"{{"kind":"PodList","metadata":{{"resourceVersion":"{}"}},"items":[]}}"#,
                        lists * 10
                    );
                    format!("{ok}Content-Length: {}\r\n\r\n{body}", body.len())
                } else {
                    watches += 1;
                    match watches {
                        1 => format!(
                            "{ok}\r\n{}{{\"type\":\"ERROR\",\"object\":{{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\"}}}}\n",
                            event("ADDED", 1, 11)
                        ),
                        2 => "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_string(),
                        3 => format!(
                            "{ok}\r\n{}{{\"type\":\"BOOKMARK\",\"object\":{{\"kind\":\"Pod\",\"metadata\":{{\"resourceVersion\":\"30\"}}}}}}\n{{\"type\":\"ERROR\",\"object\":{{\"kind\":\"Status\",\"code\":500}}}}\n",
                            event("ADDED", 2, 21)
                        ),
                        _ => format!("{ok}\r\n{}", event("ADDED", 3, 31)),
                    }
                };
                let _ = socket.write_all(response.as_bytes()).await;
                if watches >= 3 && line.contains("watch=true") {
                    // Keep the watch open; on the third, one more event follows the ERROR a
                    // little later, which the watcher must not read (it watches again).
                    let late = (watches == 3).then(|| event("ADDED", 8, 29));
                    tokio::spawn(async move {
                        if let Some(late) = late {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let _ = socket.write_all(late.as_bytes()).await;
                        }
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        drop(socket);
                    });
                }
            }
        });
        url
    }

    #[tokio::test]
    async fn a_watcher_relists_after_410_waits_after_429_and_resumes_after_other_errors() {
        let naming = Naming::new("t1", "loadgen");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let url = scripted_server(naming.clone(), requests.clone()).await;
        let target = Target::parse(
            &url,
            Some("s3cret".to_string()),
            TlsOptions {
                ca_file: None,
                insecure: false,
            },
            false,
            Duration::from_secs(5),
        )
        .expect("target");
        let backend = Backend::Kube(Arc::new(Kube {
            client: Client::new(target, 1),
            naming,
            watch_timeout: Duration::from_secs(60),
        }));
        let ctx = Ctx::new(Instant::now() + Duration::from_secs(30), &[]);
        let watcher = Arc::new(Watcher {
            scope: Scope::Node(0),
            log: Mutex::new(WatcherLog::default()),
            received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            relists: AtomicU64::new(0),
            watching_ns: AtomicU64::new(0),
        });
        let task = tokio::spawn(run_watcher(backend, watcher.clone(), ctx.clone(), None));
        let give_up = Instant::now() + Duration::from_secs(20);
        while watcher.received.load(Ordering::Relaxed) < 3 && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Long enough for the late event after the ERROR to arrive if it were read.
        tokio::time::sleep(Duration::from_millis(400)).await;
        task.abort();
        let log = watcher.log.lock().expect("log");
        let got: Vec<(crate::pod::OpKey, u64)> = log.events.iter().map(|e| (e.key, e.rv)).collect();
        assert_eq!(
            got,
            vec![(op_key(1, 0), 11), (op_key(2, 0), 21), (op_key(3, 0), 31)],
            "requests: {:?}",
            requests.lock().expect("lock")
        );
        assert_eq!(watcher.relists.load(Ordering::Relaxed), 1);
        assert_eq!(
            watcher.errors.load(Ordering::Relaxed),
            3,
            "the 410, the 429 and the 500"
        );
        assert_eq!(
            log.gaps.len(),
            2,
            "before the first watch and around the relist"
        );
        let requests = requests.lock().expect("lock");
        let watches: Vec<&String> = requests
            .iter()
            .filter(|r| r.contains("watch=true"))
            .collect();
        assert!(watches[0].contains("resourceVersion=10"), "{watches:?}");
        assert!(watches[1].contains("resourceVersion=20"), "{watches:?}");
        assert!(watches[2].contains("resourceVersion=20"), "{watches:?}");
        // After the 500, from the bookmark's resourceVersion, without a LIST.
        assert!(watches[3].contains("resourceVersion=30"), "{watches:?}");
        assert_eq!(requests.len() - watches.len(), 2, "two LISTs: {requests:?}");
        assert!(watches[0].contains("fieldSelector=spec.nodeName%3Dlg-node-0"));
        assert!(watches[0].contains("allowWatchBookmarks=true"));
    }
}
