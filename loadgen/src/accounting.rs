//! Correctness and latency bookkeeping.
//!
//! Writers append every write they make to the [`OpLog`] (scheduled time, ack time, node).
//! Each watcher appends every non-bookmark event it receives to its own [`WatcherLog`]. After
//! the run, [`account`] compares the two: the writers know which events each watcher must
//! see (a kubelet: the writes to pods on its node; an informer: all writes), so each watcher
//! gets expected / received / missed / duplicated / out-of-order / unexpected counts, and
//! every received event gets its latency from the write's send and from its acknowledgement.

use std::collections::{HashMap, HashSet};

use hdrhistogram::Histogram;

use crate::pod::OpKey;

/// One acknowledged (or failed) write.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    pub key: OpKey,
    pub node: u32,
    /// When the write was due (open-loop schedule), ns since the run's epoch. Latency "from
    /// send" counts from here, so a server that makes writers queue shows it as latency.
    pub sent_ns: u64,
    /// When its response arrived.
    pub ack_ns: u64,
    /// Whether it succeeded (failed writes are not expected by anyone).
    pub ok: bool,
}

/// One event as a watcher saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub key: OpKey,
    pub rv: u64,
    pub recv_ns: u64,
}

/// A window in which a watcher was not watching (an error and the relist after it): writes
/// acknowledged in it are excused if missed, since the relist's LIST covered them.
#[derive(Clone, Copy, Debug)]
pub struct Gap {
    pub from_ns: u64,
    pub to_ns: u64,
}

/// What one watcher saw.
#[derive(Default, Debug)]
pub struct WatcherLog {
    pub events: Vec<Received>,
    pub gaps: Vec<Gap>,
    /// Events about objects of other runs or other writers (ignored).
    pub foreign: u64,
}

/// Correctness counts (per watcher, and summed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub expected: u64,
    pub received: u64,
    pub missed: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Events no write of this run explains for this watcher (wrong node, before the LIST…).
    pub unexpected: u64,
    /// Expected events not received but excused by a relist gap.
    pub excused: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.expected += other.expected;
        self.received += other.received;
        self.missed += other.missed;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
        self.excused += other.excused;
    }
}

/// Compares what a watcher received with what it should have.
///
/// `expected` are the writes the watcher must see (with their ack times, for the gaps).
/// A received event is a duplicate if its write was already received; otherwise it is
/// out of order if its resourceVersion is not above every earlier one, and unexpected if
/// its write is not in `expected`. An expected write not received is missed, unless it was
/// acknowledged inside one of the watcher's gaps.
pub fn account(expected: &[(OpKey, u64)], log: &WatcherLog) -> Counts {
    let expected_keys: HashSet<OpKey> = expected.iter().map(|(key, _)| *key).collect();
    let mut counts = Counts {
        expected: expected.len() as u64,
        received: log.events.len() as u64,
        ..Counts::default()
    };
    let mut seen = HashSet::with_capacity(log.events.len());
    let mut max_rv = 0u64;
    for event in &log.events {
        if !seen.insert(event.key) {
            counts.duplicated += 1;
            continue;
        }
        if event.rv <= max_rv {
            counts.out_of_order += 1;
        }
        max_rv = max_rv.max(event.rv);
        if !expected_keys.contains(&event.key) {
            counts.unexpected += 1;
        }
    }
    for (key, ack_ns) in expected {
        if seen.contains(key) {
            continue;
        }
        let in_gap = log
            .gaps
            .iter()
            .any(|gap| gap.from_ns <= *ack_ns && *ack_ns <= gap.to_ns);
        if in_gap {
            counts.excused += 1;
        } else {
            counts.missed += 1;
        }
    }
    counts
}

/// A latency histogram in microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Records `ns` nanoseconds (clamped into the histogram's range).
pub fn record_ns(histogram: &mut Histogram<u64>, ns: u64) {
    let us = (ns / 1_000).clamp(1, 600_000_000);
    histogram.record(us).expect("value clamped into range");
}

/// Event latencies of a run: overall and per second of the run (for the plot).
pub struct Latencies {
    pub from_send: Histogram<u64>,
    pub from_ack: Histogram<u64>,
    /// Per second since the writers started: latency from send.
    pub per_second: Vec<Histogram<u64>>,
}

/// The expected writes of every watcher and all latencies, from the op log and the watcher
/// logs. `scopes[i]` is `Some(node)` for a kubelet, `None` for an informer.
pub fn evaluate(
    ops: &[Op],
    watchers: &[(Option<u32>, &WatcherLog)],
    writers_start_ns: u64,
) -> (Counts, Vec<Counts>, Latencies) {
    let mut by_node: HashMap<u32, Vec<(OpKey, u64)>> = HashMap::new();
    let mut all = Vec::with_capacity(ops.len());
    let mut by_key: HashMap<OpKey, &Op> = HashMap::with_capacity(ops.len());
    for op in ops.iter().filter(|op| op.ok) {
        by_node
            .entry(op.node)
            .or_default()
            .push((op.key, op.ack_ns));
        all.push((op.key, op.ack_ns));
        by_key.insert(op.key, op);
    }
    let mut total = Counts::default();
    let mut each = Vec::with_capacity(watchers.len());
    let mut latencies = Latencies {
        from_send: histogram(),
        from_ack: histogram(),
        per_second: Vec::new(),
    };
    let empty = Vec::new();
    for (scope, log) in watchers {
        let expected = match scope {
            Some(node) => by_node.get(node).unwrap_or(&empty),
            None => &all,
        };
        let counts = account(expected, log);
        total.add(&counts);
        each.push(counts);
        for event in &log.events {
            let Some(op) = by_key.get(&event.key) else {
                continue;
            };
            let from_send = event.recv_ns.saturating_sub(op.sent_ns);
            record_ns(&mut latencies.from_send, from_send);
            record_ns(
                &mut latencies.from_ack,
                event.recv_ns.saturating_sub(op.ack_ns),
            );
            let second = (event.recv_ns.saturating_sub(writers_start_ns) / 1_000_000_000) as usize;
            if second < 100_000 {
                while latencies.per_second.len() <= second {
                    latencies.per_second.push(histogram());
                }
                record_ns(&mut latencies.per_second[second], from_send);
            }
        }
    }
    (total, each, latencies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::op_key;

    fn received(key: OpKey, rv: u64) -> Received {
        Received {
            key,
            rv,
            recv_ns: rv * 10,
        }
    }

    #[test]
    fn a_perfect_watcher_has_no_errors() {
        let expected: Vec<_> = (0..5).map(|i| (op_key(i, 0), 100)).collect();
        let log = WatcherLog {
            events: (0..5)
                .map(|i| received(op_key(i, 0), 10 + i as u64))
                .collect(),
            ..WatcherLog::default()
        };
        let counts = account(&expected, &log);
        assert_eq!(
            counts,
            Counts {
                expected: 5,
                received: 5,
                ..Counts::default()
            }
        );
    }

    #[test]
    fn missed_duplicated_out_of_order_and_unexpected_are_told_apart() {
        let expected: Vec<_> = (0..4).map(|i| (op_key(i, 0), 100)).collect();
        let log = WatcherLog {
            events: vec![
                received(op_key(0, 0), 10),
                received(op_key(2, 0), 30),
                received(op_key(1, 0), 20), // older than 30: out of order
                received(op_key(2, 0), 30), // again: duplicate
                received(op_key(9, 0), 40), // nobody wrote this for us
            ],
            ..WatcherLog::default()
        };
        let counts = account(&expected, &log);
        assert_eq!(counts.expected, 4);
        assert_eq!(counts.received, 5);
        assert_eq!(counts.missed, 1, "pod 3 never arrived");
        assert_eq!(counts.duplicated, 1);
        assert_eq!(counts.out_of_order, 1);
        assert_eq!(counts.unexpected, 1);
        assert_eq!(counts.excused, 0);
    }

    #[test]
    fn equal_resource_versions_are_out_of_order() {
        let expected = vec![(op_key(0, 0), 1), (op_key(0, 1), 2)];
        let log = WatcherLog {
            events: vec![received(op_key(0, 0), 5), received(op_key(0, 1), 5)],
            ..WatcherLog::default()
        };
        assert_eq!(account(&expected, &log).out_of_order, 1);
    }

    #[test]
    fn writes_acknowledged_during_a_relist_gap_are_excused_not_missed() {
        let expected = vec![
            (op_key(0, 0), 100),
            (op_key(1, 0), 500),
            (op_key(2, 0), 900),
        ];
        let log = WatcherLog {
            events: vec![received(op_key(0, 0), 10)],
            gaps: vec![Gap {
                from_ns: 400,
                to_ns: 600,
            }],
            foreign: 0,
        };
        let counts = account(&expected, &log);
        assert_eq!(counts.excused, 1);
        assert_eq!(counts.missed, 1);
    }

    #[test]
    fn evaluate_expects_node_writes_for_kubelets_and_all_for_informers() {
        let op = |pod: u32, node: u32, ok: bool| Op {
            key: op_key(pod, 0),
            node,
            sent_ns: 1_000_000,
            ack_ns: 2_000_000,
            ok,
        };
        let ops = vec![op(0, 0, true), op(1, 1, true), op(2, 1, false)];
        let ev = |pod: u32, rv: u64| Received {
            key: op_key(pod, 0),
            rv,
            recv_ns: 5_000_000,
        };
        let kubelet0 = WatcherLog {
            events: vec![ev(0, 1)],
            ..WatcherLog::default()
        };
        let kubelet1 = WatcherLog::default();
        let informer = WatcherLog {
            events: vec![ev(0, 1), ev(1, 2)],
            ..WatcherLog::default()
        };
        let (total, each, latencies) = evaluate(
            &ops,
            &[
                (Some(0), &kubelet0),
                (Some(1), &kubelet1),
                (None, &informer),
            ],
            0,
        );
        assert_eq!(each[0].missed, 0);
        assert_eq!(each[1].missed, 1, "the failed write is not expected");
        assert_eq!(each[2].expected, 2);
        assert_eq!(total.expected, 4);
        assert_eq!(total.received, 3);
        assert_eq!(latencies.from_send.len(), 3);
        // 5 ms - 1 ms from send, 5 ms - 2 ms from ack.
        assert_eq!(latencies.from_send.max() / 1000, 4);
        assert_eq!(latencies.from_ack.max() / 1000, 3);
        assert_eq!(latencies.per_second.len(), 1);
    }
}
