//! One resource's cache: the task that feeds it from storage (on its shard) and the handle
//! through which every other thread reads it.
//!
//! The task is the only writer. It lists the prefix, then follows one storage watch from the
//! list's revision; each event is applied to a new [`Published`] state, offered to the
//! watchers, and only then published — so a reader that sees revision R finds every frame up
//! to R already queued for its watch. Registrations and other commands arrive on a channel
//! and are handled between events, which is what makes a watch's start gap-free.
//!
//! The task ends when the resource is removed ([`Command::Stop`]): its storage watch is
//! dropped, every watcher's queue is closed with the reason [`ENDED_REMOVED`] (its stream ends
//! after the frames it had queued, with no ERROR frame, as kube-apiserver's cacher does when
//! it stops), and the handle's published state is replaced by an empty `Stopped` one, so that
//! what the cache held is freed as soon as the last in-flight read lets go of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::StreamExt;
use kubecache_core::storage::{
    Backend, KeyValue, ListOptions, Revision, StorageError, StorageEvent,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::Config;
use super::state::{CacheEvent, CacheState, Objects, Published};
use super::watchers::{
    ENDED_EXPIRED, ENDED_REMOVED, ENDED_UNREADABLE, Ending, Frame, WatcherIndex, WatcherStats,
};
use crate::object::{CachedObject, Filter, ObjectAttrs, ObjectCodec, Shapes, View};

/// Where a registered watch starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// With the current objects (revision at least the given one).
    Current(Revision),
    /// With the retained events after a revision.
    After(Revision),
}

/// What a watch starts with, before its queue.
pub enum Initial {
    /// The objects at `revision`, to send as ADDED.
    Objects {
        objects: Objects,
        revision: Revision,
    },
    /// Events to replay.
    Events(Vec<Arc<CacheEvent>>),
}

pub struct Registration {
    pub id: u64,
    pub initial: Initial,
    /// The revision the watch is at once `initial` is sent.
    pub revision: Revision,
    pub queue: mpsc::Receiver<Frame>,
    pub ending: Arc<Ending>,
}

pub enum Command {
    Register {
        filter: Arc<Filter>,
        view: View,
        start: Start,
        reply: oneshot::Sender<Result<Registration, StorageError>>,
    },
    Unregister(u64),
    /// A reader proved that storage did not change under the prefix between `verified_at`
    /// (the cache's revision when it looked) and `to`.
    Advance {
        verified_at: Revision,
        to: Revision,
    },
    /// The resource was removed: end every watch, drop the state, stop, then answer `done`.
    Stop {
        done: oneshot::Sender<()>,
    },
}

/// Counters of one resource's cache.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub events_received: AtomicU64,
    pub relists: AtomicU64,
    pub watchers: Arc<WatcherStats>,
}

/// The thread-safe side of one resource's cache.
pub struct ResourceHandle {
    /// The storage prefix (`/registry/pods/`).
    pub prefix: String,
    /// The API shapes served from this prefix. Replaced whole when one is added (shapes are
    /// only appended, so a watcher's shape number stays valid); objects encode a new shape
    /// lazily, when it is first served.
    shapes: ArcSwap<Shapes>,
    /// The index of the shard whose thread runs this cache.
    pub shard: usize,
    pub published: ArcSwap<Published>,
    /// The published `verified` revision, for readers waiting for one.
    pub revision: watch::Sender<Revision>,
    pub commands: mpsc::UnboundedSender<Command>,
    pub stats: CacheStats,
}

impl ResourceHandle {
    pub fn new(
        prefix: String,
        shapes: Shapes,
        shard: usize,
    ) -> (Arc<ResourceHandle>, mpsc::UnboundedReceiver<Command>) {
        let (commands, receiver) = mpsc::unbounded_channel();
        let handle = Arc::new(ResourceHandle {
            prefix,
            shapes: ArcSwap::from_pointee(shapes),
            shard,
            published: ArcSwap::from_pointee(Published::pending()),
            revision: watch::channel(0).0,
            commands,
            stats: CacheStats::default(),
        });
        (handle, receiver)
    }

    pub fn load(&self) -> Arc<Published> {
        self.published.load_full()
    }

    /// The shapes as of now.
    pub fn shapes(&self) -> Arc<Shapes> {
        self.shapes.load_full()
    }

    /// Serves `resource` too, as the next shape number (nothing if it is served already).
    /// Objects already cached encode it when it is first asked for.
    pub fn add_shape(&self, resource: Arc<kubecache_core::registry::ResourceInfo>) {
        self.shapes.rcu(|shapes| shapes.with(resource.clone()));
    }
}

/// The writer side, owned by the task on the shard.
pub struct ResourceCache {
    handle: Arc<ResourceHandle>,
    backend: Arc<dyn Backend>,
    codec: Arc<dyn ObjectCodec>,
    config: Config,
    watchers: WatcherIndex,
    /// The state being built; `handle.published` is a copy of it as of the last publish.
    current: Published,
}

/// How [`ResourceCache::follow`] ended.
enum Followed {
    /// The storage watch was compacted: list again.
    Relist,
    /// The resource was removed (with whom to tell once stopped), or the channel ended.
    Stop(Option<oneshot::Sender<()>>),
}

/// Backoff between attempts to reach storage again.
const RETRY: Duration = Duration::from_millis(500);

/// How often history is trimmed by age when no events arrive.
const TRIM_INTERVAL: Duration = Duration::from_secs(5);

impl ResourceCache {
    pub fn new(
        handle: Arc<ResourceHandle>,
        backend: Arc<dyn Backend>,
        codec: Arc<dyn ObjectCodec>,
        config: Config,
    ) -> ResourceCache {
        let trigger = codec.trigger_field(handle.shapes.load().primary());
        let watchers = WatcherIndex::new(trigger, handle.stats.watchers.clone());
        ResourceCache {
            handle,
            backend,
            codec,
            config,
            watchers,
            current: Published::pending(),
        }
    }

    fn cached(&self, kv: KeyValue) -> Arc<CachedObject> {
        let attrs = self
            .codec
            .attributes(self.handle.shapes.load().primary(), &kv)
            // An object the codec cannot read is still served; it matches no selector that
            // names a label or field.
            .unwrap_or_else(|_| ObjectAttrs::default());
        CachedObject::new(kv, attrs)
    }

    fn publish(&mut self) {
        self.handle.published.store(Arc::new(self.current.clone()));
        let revision = self.current.verified;
        self.handle.revision.send_if_modified(|r| {
            let changed = *r != revision;
            *r = revision;
            changed
        });
    }

    /// Runs until the resource is removed ([`Command::Stop`]) or its shard stops.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let done = self.serve(&mut commands).await;
        // Removed: no watcher, no reader waits on this cache any longer.
        self.watchers.end_all(ENDED_REMOVED);
        self.handle.published.store(Arc::new(Published::stopped()));
        // Readers waiting for a revision look again and find the cache stopped.
        self.handle.revision.send_modify(|_| {});
        // Commands still queued (registrations racing the removal) are dropped unanswered:
        // their senders see the cache stopping.
        drop(commands);
        drop(self);
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    /// Lists and follows storage until a [`Command::Stop`] (returned) or the command
    /// channel's end.
    async fn serve(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Option<oneshot::Sender<()>> {
        let mut first = true;
        loop {
            // List: the cache's state at one revision.
            let listed = loop {
                let list = self.backend.list(ListOptions {
                    prefix: self.handle.prefix.clone(),
                    ..Default::default()
                });
                tokio::select! {
                    result = list => match result {
                        Ok(page) => break page,
                        Err(failure @ StorageError::Corrupt(_)) => {
                            self.fail(failure);
                            tokio::time::sleep(RETRY).await;
                        }
                        Err(_) => tokio::time::sleep(RETRY).await,
                    },
                    command = commands.recv() => match command {
                        Some(command) => if let Some(done) = self.on_command(command) {
                            return Some(done);
                        },
                        None => return None,
                    },
                }
            };
            let mut objects = Objects::new();
            for kv in listed.kvs {
                let key: Arc<str> = kv.key.as_str().into();
                objects.insert(key, self.cached(kv));
            }
            self.current = Published::listed(objects, listed.revision);
            if !first {
                // A gap is never served silently: watchers that may have missed events relist.
                self.handle.stats.relists.fetch_add(1, Ordering::Relaxed);
                self.watchers.end_all(ENDED_EXPIRED);
            }
            first = false;
            self.publish();
            match self.follow(commands).await {
                Followed::Relist => {}
                Followed::Stop(done) => return done,
            }
        }
    }

    /// The list failed on values that cannot be read: the cache serves nothing until it lists
    /// again (never a list with objects missing), its watchers end, and reads fail with
    /// `failure`, which names the keys.
    fn fail(&mut self, failure: StorageError) {
        if self.current.state == CacheState::Ready {
            self.watchers.end_all(ENDED_UNREADABLE);
        }
        self.current = Published::failed(failure);
        self.publish();
    }

    /// Follows storage from the cache's revision until it must relist (its revision was
    /// compacted away) or stop.
    async fn follow(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) -> Followed {
        let mut trim = tokio::time::interval(TRIM_INTERVAL);
        loop {
            let from = self.current.revision + 1;
            let mut events = match self.backend.watch(&self.handle.prefix, from).await {
                Ok(events) => events,
                Err(StorageError::Compacted { .. }) => return Followed::Relist,
                Err(_) => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            loop {
                tokio::select! {
                    command = commands.recv() => match command {
                        Some(command) => if let Some(done) = self.on_command(command) {
                            return Followed::Stop(Some(done));
                        },
                        None => return Followed::Stop(None),
                    },
                    event = events.next() => match event {
                        Some(Ok(event)) => self.apply(event),
                        // A value that cannot be read: a relist finds out which, as
                        // kube-apiserver's reflector does after its watch fails.
                        Some(Err(StorageError::Compacted { .. } | StorageError::Corrupt(_))) => {
                            return Followed::Relist;
                        }
                        // Storage went away (restart, leader change, network): resume from
                        // the last revision applied.
                        Some(Err(_)) | None => {
                            tokio::time::sleep(RETRY).await;
                            break;
                        }
                    },
                    _ = trim.tick() => {
                        if self.trim() {
                            self.publish();
                        }
                    }
                }
            }
        }
    }

    /// Handles a command; a [`Command::Stop`] is handed back for the task to stop.
    fn on_command(&mut self, command: Command) -> Option<oneshot::Sender<()>> {
        match command {
            Command::Register {
                filter,
                view,
                start,
                reply,
            } => {
                let _ = reply.send(self.register(filter, view, start));
            }
            Command::Unregister(id) => self.watchers.remove(id),
            Command::Advance { verified_at, to } => {
                // Only if no event was applied since the check: then the objects are still
                // the ones proven exact at `to`.
                if self.current.state == CacheState::Ready
                    && self.current.revision == verified_at
                    && to > self.current.verified
                {
                    self.current.verified = to;
                    self.publish();
                }
            }
            Command::Stop { done } => return Some(done),
        }
        None
    }

    fn register(
        &mut self,
        filter: Arc<Filter>,
        view: View,
        start: Start,
    ) -> Result<Registration, StorageError> {
        if self.current.state != CacheState::Ready {
            return Err(StorageError::Unavailable(format!(
                "the cache of {} is initializing",
                self.handle.prefix
            )));
        }
        let verified = self.current.verified;
        let (initial, start) = match start {
            Start::Current(at_least) | Start::After(at_least) if at_least > verified => {
                return Err(StorageError::FutureRevision {
                    requested: at_least,
                    current: verified,
                });
            }
            Start::Current(_) => (
                Initial::Objects {
                    objects: self.current.objects.clone(),
                    revision: verified,
                },
                verified,
            ),
            Start::After(after) => (Initial::Events(self.current.events_after(after)?), after),
        };
        let revision = start.max(self.current.revision);
        let (queue, receiver) = mpsc::channel(self.config.watcher_queue);
        let ending = Arc::new(Ending::default());
        // Events at or before `start` are in the initial frames or, when the start is a
        // verified revision, cancel out (see `Published::verified`): only later ones go live.
        let id = self
            .watchers
            .add(filter, view, queue, ending.clone(), start);
        Ok(Registration {
            id,
            initial,
            revision,
            queue: receiver,
            ending,
        })
    }

    fn apply(&mut self, event: StorageEvent) {
        let (key, object, revision) = match event {
            StorageEvent::Progress { .. } => return,
            StorageEvent::Put { kv, .. } => {
                let key: Arc<str> = kv.key.as_str().into();
                let revision = kv.mod_revision;
                (key, Some(self.cached(kv)), revision)
            }
            StorageEvent::Delete { key, revision, .. } => (key.as_str().into(), None, revision),
        };
        if revision <= self.current.revision {
            // Already reflected (a resumed watch may repeat its first event).
            return;
        }
        self.handle
            .stats
            .events_received
            .fetch_add(1, Ordering::Relaxed);
        let prev = match &object {
            Some(object) => self.current.objects.insert(key.clone(), object.clone()),
            None => self.current.objects.remove(&key),
        };
        if object.is_none() && prev.is_none() {
            // A delete of a key the cache never had: nothing changes but the revision.
            self.current.revision = revision;
            self.current.verified = revision;
            self.publish();
            return;
        }
        let event = Arc::new(CacheEvent::new(revision, key, object, prev));
        self.current.revision = revision;
        self.current.verified = revision;
        self.current.record(event.clone());
        self.trim();
        self.watchers
            .dispatch(&event, self.codec.as_ref(), &self.handle.shapes.load());
        self.publish();
    }

    /// Drops history beyond the retention bounds: at least `history_min_events` events and
    /// at least `history_window` of time are kept, never more than `history_max_events`, and
    /// beyond the minimum count never more than `history_max_bytes` of object versions.
    /// Returns whether anything was dropped.
    fn trim(&mut self) -> bool {
        let mut trimmed = false;
        let now = Instant::now();
        while let Some(oldest) = self.current.history.front() {
            let len = self.current.history.len();
            let too_many = len > self.config.history_max_events
                || (len > self.config.history_min_events
                    && self.current.history_bytes() > self.config.history_max_bytes);
            let old = len > self.config.history_min_events
                && now.duration_since(oldest.event.received) > self.config.history_window;
            if !too_many && !old {
                break;
            }
            self.current.drop_oldest();
            trimmed = true;
        }
        trimmed
    }
}
