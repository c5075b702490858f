//! `list` and `writes`: closed-loop throughput scenarios.
//!
//! - `list`: preload P pods (concurrent creates), then K clients LIST them back to back
//!   for the duration. The first LIST of each client is parsed and must hold at least P
//!   items; later ones are only timed and counted in bytes, so the loadgen's JSON parsing
//!   does not compete with the server for the CPU.
//! - `writes`: C workers, each creating pods back to back for the first half of the
//!   duration, then merge-patching the pods it created for the second half.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::accounting::{histogram, record_ns};
use crate::backend::{Backend, Conn, ListRv, Scope};
use crate::report::Results;
use crate::run::Ctx;

/// How many creates are in flight while preloading.
pub const PRELOAD_CONCURRENCY: u32 = 64;
/// Nodes the preloaded pods are spread over.
const PRELOAD_NODES: u32 = 100;

/// Which resourceVersion the `list` clients ask for (the command line's `--rv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RvChoice {
    Zero,
    Unset,
    Exact,
}

/// Creates `objects` pods with `PRELOAD_CONCURRENCY` creates in flight; returns how many
/// failed.
pub async fn preload(backend: &Backend, objects: u32, ctx: &Ctx) -> u64 {
    let next = Arc::new(AtomicU32::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..PRELOAD_CONCURRENCY.min(objects.max(1)) {
        let (backend, next, failed, ctx) =
            (backend.clone(), next.clone(), failed.clone(), ctx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let pod = next.fetch_add(1, Ordering::Relaxed);
                if pod >= objects || ctx.past_deadline() {
                    return;
                }
                let sent = ctx.now_ns();
                let created =
                    retry_throttled(&ctx, || backend.create(pod % PRELOAD_NODES, pod, sent)).await;
                if let Err(e) = created
                    && failed.fetch_add(1, Ordering::Relaxed) < 3
                {
                    eprintln!("kubecache-loadgen: preload create: {e}");
                }
                ctx.live.writes.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    failed.load(Ordering::Relaxed)
}

pub async fn list(
    backend: Backend,
    objects: u32,
    clients: u32,
    rv: RvChoice,
    duration: Duration,
    ctx: &Ctx,
) -> Results {
    let mut results = Results::new("list");
    let preload_start = Instant::now();
    results.write_errors = preload(&backend, objects, ctx).await;
    results.preload_seconds = Some(preload_start.elapsed().as_secs_f64());
    // One consistent LIST tells the revision for `--rv exact` and checks the preload.
    let mut exact = 0;
    match backend
        .list(None, Scope::All, ListRv::Latest, true, true)
        .await
    {
        Ok(listed) => exact = listed.rv,
        Err(e) => {
            eprintln!("kubecache-loadgen: LIST after preload: {e}");
            results.list_errors += 1;
        }
    }
    let rv = match rv {
        RvChoice::Zero => ListRv::Any,
        RvChoice::Unset => ListRv::Latest,
        RvChoice::Exact => ListRv::Exact(exact),
    };
    let end = (Instant::now() + duration).min(ctx.deadline);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (backend, ctx) = (backend.clone(), ctx.clone());
        tasks.push(tokio::spawn(async move {
            let mut latency = histogram();
            let (mut lists, mut bytes, mut errors, mut short) = (0u64, 0u64, 0u64, 0u64);
            let mut first = true;
            let mut conn = Conn::default();
            while Instant::now() < end {
                let sent = Instant::now();
                match backend
                    .list(Some(&mut conn), Scope::All, rv, true, first)
                    .await
                {
                    Ok(listed) => {
                        record_ns(&mut latency, sent.elapsed().as_nanos() as u64);
                        lists += 1;
                        bytes += listed.bytes;
                        ctx.live.lists.fetch_add(1, Ordering::Relaxed);
                        if listed.items.is_some_and(|items| items < objects as u64) {
                            short += 1;
                        }
                        first = false;
                    }
                    Err(e) => {
                        errors += 1;
                        if errors == 1 {
                            eprintln!("\nkubecache-loadgen: LIST: {e}");
                        }
                        ctx.live.errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(e.retry_after.unwrap_or(Duration::from_millis(200)))
                            .await;
                    }
                }
            }
            (latency, lists, bytes, errors, short)
        }));
    }
    let mut latency = histogram();
    let (mut lists, mut bytes) = (0u64, 0u64);
    for task in tasks {
        if let Ok((h, l, b, e, s)) = task.await {
            latency.add(&h).expect("same histogram bounds");
            lists += l;
            bytes += b;
            results.list_errors += e;
            results.short_lists += s;
        }
    }
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    results.lists = lists;
    results.lists_per_sec = Some(lists as f64 / seconds);
    results.list_mb_per_sec = Some(bytes as f64 / seconds / 1e6);
    results.list_bytes = Some(bytes.checked_div(lists).unwrap_or(0));
    results.latency = Some(latency);
    results
}

pub async fn writes(backend: Backend, concurrency: u32, duration: Duration, ctx: &Ctx) -> Results {
    let mut results = Results::new("writes");
    let half = duration / 2;
    let next = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let creates_end = (start + half).min(ctx.deadline);
    let updates_end = (start + duration).min(ctx.deadline);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (backend, next, ctx) = (backend.clone(), next.clone(), ctx.clone());
        tasks.push(tokio::spawn(async move {
            let (mut creates, mut updates) = (histogram(), histogram());
            let mut errors = 0u64;
            // (node, pod, generation, rv) of the pods this worker created.
            let mut mine: Vec<(u32, u32, u32, u64)> = Vec::new();
            while Instant::now() < creates_end {
                let pod = next.fetch_add(1, Ordering::Relaxed);
                let node = pod % PRELOAD_NODES;
                let sent = Instant::now();
                let created =
                    retry_throttled(&ctx, || backend.create(node, pod, ctx.now_ns())).await;
                match created {
                    Ok(rv) => {
                        record_ns(&mut creates, sent.elapsed().as_nanos() as u64);
                        mine.push((node, pod, 0, rv));
                    }
                    Err(e) => note(&ctx, &mut errors, &e),
                }
                ctx.live.writes.fetch_add(1, Ordering::Relaxed);
            }
            let mut i = 0;
            while Instant::now() < updates_end && !mine.is_empty() {
                let (node, pod, generation, rv) = mine[i % mine.len()];
                let sent = Instant::now();
                match backend
                    .patch(node, pod, generation + 1, ctx.now_ns(), rv)
                    .await
                {
                    Ok(rv) => {
                        record_ns(&mut updates, sent.elapsed().as_nanos() as u64);
                        let slot = i % mine.len();
                        mine[slot] = (node, pod, generation + 1, rv);
                    }
                    Err(e) => note(&ctx, &mut errors, &e),
                }
                ctx.live.writes.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            (creates, updates, errors)
        }));
    }
    let (mut creates, mut updates): (Histogram<u64>, Histogram<u64>) = (histogram(), histogram());
    for task in tasks {
        if let Ok((c, u, e)) = task.await {
            creates.add(&c).expect("same bounds");
            updates.add(&u).expect("same bounds");
            results.write_errors += e;
        }
    }
    let half_seconds = half.as_secs_f64().max(1e-9);
    results.creates_per_sec = Some(creates.len() as f64 / half_seconds);
    results.updates_per_sec = Some(updates.len() as f64 / half_seconds);
    results.writes = creates.len() + updates.len();
    results.writes_per_sec = Some(results.writes as f64 / (2.0 * half_seconds));
    let mut all = creates.clone();
    all.add(&updates).expect("same bounds");
    results.write_latency = Some(all);
    results.create_latency = Some(creates);
    results.update_latency = Some(updates);
    results
}

fn note(ctx: &Ctx, errors: &mut u64, e: &crate::backend::Error) {
    *errors += 1;
    let total = ctx.live.errors.fetch_add(1, Ordering::Relaxed);
    if total < 3 {
        eprintln!("\nkubecache-loadgen: write: {e}");
    }
}

/// Runs `write` again after each 429 (waiting its Retry-After) until it is answered
/// otherwise or the run's deadline passes.
async fn retry_throttled<T, F, Fut>(ctx: &Ctx, mut write: F) -> crate::backend::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::backend::Result<T>>,
{
    loop {
        match write().await {
            Err(e) if e.code == Some(429) && !ctx.past_deadline() => {
                tokio::time::sleep(crate::fanout::throttle_delay(&e)).await;
            }
            result => return result,
        }
    }
}
