//! What every scenario shares: the run's clock, the live counters behind the progress line,
//! and the once-a-second sampler that prints it and reads /proc.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::accounting::{histogram, record_ns};
use crate::procs::Monitor;

/// Counters updated by writers and watchers while a run is going.
pub struct Live {
    pub writes: AtomicU64,
    pub events: AtomicU64,
    pub lists: AtomicU64,
    pub errors: AtomicU64,
    pub watching: AtomicU64,
    /// Latency from send of the events of the current second (for the progress line).
    pub window: Mutex<Histogram<u64>>,
}

/// One run's shared context.
#[derive(Clone)]
pub struct Ctx {
    /// Time zero of the run; every `*_ns` is measured from here.
    pub epoch: Instant,
    /// Nothing runs past this.
    pub deadline: Instant,
    pub live: Arc<Live>,
    pub monitor: Arc<Mutex<Monitor>>,
}

impl Ctx {
    pub fn new(deadline: Instant, pids: &[u32]) -> Ctx {
        Ctx {
            epoch: Instant::now(),
            deadline,
            live: Arc::new(Live {
                writes: AtomicU64::new(0),
                events: AtomicU64::new(0),
                lists: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                watching: AtomicU64::new(0),
                window: Mutex::new(histogram()),
            }),
            monitor: Arc::new(Mutex::new(Monitor::new(pids))),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn at(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }

    pub fn record_live_latency(&self, ns: u64) {
        record_ns(&mut self.live.window.lock().expect("window lock"), ns);
    }

    pub fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Starts the progress line on stderr (once a second: elapsed, writes/s, events/s,
    /// lists/s, p99 of the last second, watchers watching, errors) and the /proc sampler.
    /// The line is rewritten in place on a terminal and printed once a second otherwise.
    pub fn start_progress(&self, label: String) -> tokio::task::JoinHandle<()> {
        let ctx = self.clone();
        tokio::spawn(async move {
            let tty = std::io::stderr().is_terminal();
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            let mut last = (0u64, 0u64, 0u64, Instant::now());
            loop {
                ticker.tick().await;
                ctx.monitor.lock().expect("monitor lock").sample();
                let live = &ctx.live;
                let writes = live.writes.load(Ordering::Relaxed);
                let events = live.events.load(Ordering::Relaxed);
                let lists = live.lists.load(Ordering::Relaxed);
                let seconds = last.3.elapsed().as_secs_f64().max(1e-3);
                let p99 = {
                    let mut window = live.window.lock().expect("window lock");
                    let p99 = if window.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{:.1}", window.value_at_quantile(0.99) as f64 / 1000.0)
                    };
                    window.reset();
                    p99
                };
                let line = format!(
                    "[{label}] {:>5.0}s  writes/s {:>7.0}  events/s {:>8.0}  lists/s {:>6.1}  p99 {:>8} ms  watching {:>6}  errors {}",
                    ctx.epoch.elapsed().as_secs_f64(),
                    (writes - last.0) as f64 / seconds,
                    (events - last.1) as f64 / seconds,
                    (lists - last.2) as f64 / seconds,
                    p99,
                    live.watching.load(Ordering::Relaxed),
                    live.errors.load(Ordering::Relaxed),
                );
                let mut stderr = std::io::stderr().lock();
                if tty {
                    let _ = write!(stderr, "\r{line}\x1b[K");
                } else {
                    let _ = writeln!(stderr, "{line}");
                }
                let _ = stderr.flush();
                last = (writes, events, lists, Instant::now());
            }
        })
    }

    /// Stops the progress line (ending the terminal line) and takes a last sample.
    pub fn stop_progress(&self, handle: tokio::task::JoinHandle<()>) {
        handle.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        self.monitor.lock().expect("monitor lock").sample();
    }
}
