//! The watchers of one resource, indexed so that an event is offered only to the watchers
//! that could want it, and the fan-out: one shared frame per (kind, view), pushed into each
//! watcher's bounded queue. A watcher whose queue is full is ended on the spot — never
//! waited for — and told where to resume. A view that converts gets a shared
//! [`DeferredFrame`](super::state::DeferredFrame) instead of a frame: conversion may wait, and
//! the shard never does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use kubecache_core::storage::Revision;
use tokio::sync::mpsc;

use super::state::{CacheEvent, FrameCache, Queued};
use crate::object::{Filter, ObjectCodec, Shapes, View};

/// A frame (or what to make it from) and the revision of the event it carries.
pub type Frame = (Revision, Queued);

/// Why the cache ended a watch (stored in [`Ending`]).
pub const ENDED_NOT: i64 = 0;
/// The watcher's queue overflowed: it can resume from its last revision.
pub const ENDED_TOO_SLOW: i64 = 1;
/// The cache relisted after its storage watch was compacted: the client must relist too.
pub const ENDED_EXPIRED: i64 = 2;
/// The resource was removed: the stream ends with no ERROR frame (kube-apiserver's cacher,
/// stopped when a CRD goes, closes its watchers' result channels the same way).
pub const ENDED_REMOVED: i64 = 3;
/// Storage holds a value the cache cannot read, so it cannot list: the stream ends with no
/// ERROR frame, as kube-apiserver's cacher terminates its watchers before it lists again; the
/// client's relist gets the read error.
pub const ENDED_UNREADABLE: i64 = 4;

/// Shared between the shard and a watch's connection: why the shard closed its queue.
#[derive(Debug, Default)]
pub struct Ending(AtomicI64);

impl Ending {
    pub fn set(&self, reason: i64) {
        self.0.store(reason, Ordering::Release);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Which index list a watcher is in: its most selective exact-match constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IndexKey {
    /// The trigger field (pods: `spec.nodeName`) equals this value.
    Trigger(String),
    /// `metadata.name` equals this value.
    Name(String),
    Namespace(String),
    /// Offered every event.
    All,
}

struct Watcher {
    filter: Arc<Filter>,
    /// Events at or before this revision are not for this watcher (it started after them).
    start: Revision,
    view: View,
    queue: mpsc::Sender<Frame>,
    ending: Arc<Ending>,
    index: IndexKey,
}

/// Counters the cache exposes.
#[derive(Debug, Default)]
pub struct WatcherStats {
    /// Watchers currently registered.
    pub registered: AtomicI64,
    /// Watchers ended because they fell too far behind.
    pub terminated_slow: AtomicU64,
    /// Frames pushed into watcher queues.
    pub frames_sent: AtomicU64,
}

/// All watchers of one resource; owned by its shard, which alone mutates it.
pub struct WatcherIndex {
    next_id: u64,
    watchers: HashMap<u64, Watcher>,
    /// Watchers by the value of the trigger field they select on.
    by_trigger: HashMap<String, HashSet<u64>>,
    by_name: HashMap<String, HashSet<u64>>,
    by_namespace: HashMap<String, HashSet<u64>>,
    /// Watchers offered every event.
    all: Option<HashSet<u64>>,
    /// The field watchers are indexed by besides name and namespace.
    trigger_field: Option<&'static str>,
    stats: Arc<WatcherStats>,
}

impl WatcherIndex {
    pub fn new(trigger_field: Option<&'static str>, stats: Arc<WatcherStats>) -> WatcherIndex {
        WatcherIndex {
            next_id: 1,
            watchers: HashMap::new(),
            by_trigger: HashMap::new(),
            by_name: HashMap::new(),
            by_namespace: HashMap::new(),
            all: None,
            trigger_field,
            stats,
        }
    }

    fn index_key(&self, filter: &Filter) -> IndexKey {
        if let Some(value) = self
            .trigger_field
            .and_then(|f| filter.fields.single_value(f))
        {
            return IndexKey::Trigger(value.to_string());
        }
        if let Some(name) = filter.fields.single_value("metadata.name") {
            return IndexKey::Name(name.to_string());
        }
        match &filter.namespace {
            Some(ns) => IndexKey::Namespace(ns.clone()),
            None => IndexKey::All,
        }
    }

    /// Adds a watcher; returns its id.
    pub fn add(
        &mut self,
        filter: Arc<Filter>,
        view: impl Into<View>,
        queue: mpsc::Sender<Frame>,
        ending: Arc<Ending>,
        start: Revision,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let index = self.index_key(&filter);
        self.list_mut(&index).insert(id);
        self.watchers.insert(
            id,
            Watcher {
                filter,
                start,
                view: view.into(),
                queue,
                ending,
                index,
            },
        );
        self.stats.registered.fetch_add(1, Ordering::Relaxed);
        id
    }

    fn list_mut(&mut self, index: &IndexKey) -> &mut HashSet<u64> {
        match index {
            IndexKey::Trigger(v) => self.by_trigger.entry(v.clone()).or_default(),
            IndexKey::Name(v) => self.by_name.entry(v.clone()).or_default(),
            IndexKey::Namespace(v) => self.by_namespace.entry(v.clone()).or_default(),
            IndexKey::All => self.all.get_or_insert_with(HashSet::new),
        }
    }

    /// Removes a watcher (its connection went away, or the cache ended it).
    pub fn remove(&mut self, id: u64) {
        if let Some(watcher) = self.watchers.remove(&id) {
            self.list_mut(&watcher.index).remove(&id);
            let emptied = match &watcher.index {
                IndexKey::Trigger(v) => self.by_trigger.get(v).is_some_and(HashSet::is_empty),
                IndexKey::Name(v) => self.by_name.get(v).is_some_and(HashSet::is_empty),
                IndexKey::Namespace(v) => self.by_namespace.get(v).is_some_and(HashSet::is_empty),
                IndexKey::All => false,
            };
            if emptied {
                match &watcher.index {
                    IndexKey::Trigger(v) => self.by_trigger.remove(v),
                    IndexKey::Name(v) => self.by_name.remove(v),
                    IndexKey::Namespace(v) => self.by_namespace.remove(v),
                    IndexKey::All => None,
                };
            }
            self.stats.registered.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// Ends every watcher with `reason` (their connections see the queue close).
    pub fn end_all(&mut self, reason: i64) {
        let ids: Vec<u64> = self.watchers.keys().copied().collect();
        for id in ids {
            if let Some(w) = self.watchers.get(&id) {
                w.ending.set(reason);
            }
            self.remove(id);
        }
    }

    /// Watchers that could want `event`: those indexed by a value the old or new state has,
    /// and those not indexed at all.
    fn candidates(&self, event: &CacheEvent) -> Vec<u64> {
        let mut lists: Vec<&HashSet<u64>> = Vec::with_capacity(7);
        lists.extend(self.all.as_ref());
        let states = [&event.object, &event.prev];
        for (i, state) in states.iter().enumerate() {
            let Some(state) = state else { continue };
            // The other state, when it has the same value, was looked up already.
            let other = states[1 - i].as_ref().filter(|_| i == 1);
            if let Some(field) = self.trigger_field {
                let value = state.attrs.field(field).unwrap_or("");
                if other.is_none_or(|o| o.attrs.field(field).unwrap_or("") != value) {
                    lists.extend(self.by_trigger.get(value));
                }
            }
            let name = state.attrs.name();
            if other.is_none_or(|o| o.attrs.name() != name) {
                lists.extend(self.by_name.get(name));
            }
            let ns = state.attrs.namespace().unwrap_or("");
            if other.is_none_or(|o| o.attrs.namespace().unwrap_or("") != ns) {
                lists.extend(self.by_namespace.get(ns));
            }
        }
        lists
            .into_iter()
            .flat_map(|ids| ids.iter().copied())
            .collect()
    }

    /// Offers `event` to every candidate watcher. Never waits: a full queue ends its watcher.
    pub fn dispatch(&mut self, event: &Arc<CacheEvent>, codec: &dyn ObjectCodec, shapes: &Shapes) {
        if self.watchers.is_empty() {
            return;
        }
        let mut ended = Vec::new();
        let mut frames = FrameCache::default();
        for id in self.candidates(event) {
            let Some(watcher) = self.watchers.get(&id) else {
                continue;
            };
            if event.revision <= watcher.start {
                continue;
            }
            let Some(kind) = event.kind_for(&watcher.filter) else {
                continue;
            };
            let frame = frames.frame(event, kind, watcher.view, codec, shapes);
            match watcher.queue.try_send((event.revision, frame)) {
                Ok(()) => {
                    self.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    watcher.ending.set(ENDED_TOO_SLOW);
                    self.stats.terminated_slow.fetch_add(1, Ordering::Relaxed);
                    ended.push(id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => ended.push(id),
            }
        }
        for id in ended {
            self.remove(id);
        }
    }
}
