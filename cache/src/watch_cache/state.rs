//! One resource's cached state as readers see it: an immutable [`Published`] value that the
//! shard replaces whole after every change. Objects live in a persistent ordered map, so a
//! new version shares all but O(log n) nodes with the previous one; that is what makes it
//! affordable to keep the state after every retained event (Exact reads, continue tokens).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use imbl::{OrdMap, Vector};
use kubecache_core::storage::{Revision, StorageError};

use crate::object::{CachedObject, Filter, ObjectCodec, Shapes, View};

/// Objects by storage key.
pub type Objects = OrdMap<Arc<str>, Arc<CachedObject>>;

/// The life of a resource's cache:
///
/// ```text
///   Pending ──list done──> Ready ──watch compacted──> Ready (relisted; watchers ended with 410)
///      ^                     │
///      └──storage error──────┘ (before the first list only; later errors resume the watch)
///
///   Pending, Ready ──resource removed──> Stopped (watchers' streams ended; state dropped)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// The initial list has not completed: nothing can be served yet.
    Pending,
    /// Objects reflect storage at `revision`; reads and watches are served.
    Ready,
    /// The resource was removed ([`crate::WatchCache::remove_resource`]): the task has ended,
    /// nothing is held, and reads fail.
    Stopped,
}

/// How an event changes what a watcher sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added = 0,
    Modified = 1,
    Deleted = 2,
}

impl EventKind {
    fn name(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }

    /// What a watcher with `filter` sees of a change from `prev` to `object`: an object that
    /// starts matching is ADDED, one that stops matching is DELETED, one that keeps
    /// matching is MODIFIED.
    pub fn for_filter(
        filter: &Filter,
        prev: Option<&CachedObject>,
        object: Option<&CachedObject>,
    ) -> Option<EventKind> {
        let was = prev.is_some_and(|p| filter.matches(&p.attrs));
        let is = object.is_some_and(|o| filter.matches(&o.attrs));
        match (was, is) {
            (false, true) => Some(EventKind::Added),
            (true, true) => Some(EventKind::Modified),
            (true, false) => Some(EventKind::Deleted),
            (false, false) => None,
        }
    }
}

/// One change, with what every watcher needs to filter it. Its frames are not kept here: the
/// fan-out encodes each (kind, view) once per event and shares it among the watchers it
/// reaches ([`FrameCache`]), and a replay from history encodes afresh. History holds tens of
/// thousands of events (75 s of writes), and a kept frame would double each one's size.
#[derive(Debug)]
pub struct CacheEvent {
    pub revision: Revision,
    pub key: Arc<str>,
    /// The new state; `None` for a delete.
    pub object: Option<Arc<CachedObject>>,
    /// The state it replaced.
    pub prev: Option<Arc<CachedObject>>,
    /// When the cache received it (history is kept by age).
    pub received: Instant,
}

impl CacheEvent {
    pub fn new(
        revision: Revision,
        key: Arc<str>,
        object: Option<Arc<CachedObject>>,
        prev: Option<Arc<CachedObject>>,
    ) -> CacheEvent {
        CacheEvent {
            revision,
            key,
            object,
            prev,
            received: Instant::now(),
        }
    }

    pub fn kind_for(&self, filter: &Filter) -> Option<EventKind> {
        EventKind::for_filter(filter, self.prev.as_deref(), self.object.as_deref())
    }

    /// The frame of this event as `kind` in `view`, encoded afresh. DELETED carries the last
    /// state that matched (the previous object) at this event's revision, as kube-apiserver
    /// does.
    pub fn frame(
        &self,
        kind: EventKind,
        view: impl Into<View>,
        codec: &dyn ObjectCodec,
        shapes: &Shapes,
    ) -> Bytes {
        let view = view.into();
        let json = match (kind, &self.object, &self.prev) {
            (EventKind::Deleted, _, Some(prev)) => {
                codec.encode_view(&prev.kv.value, self.revision, view, shapes)
            }
            (_, Some(object), _) => object.encoded(codec, shapes, view),
            // Not reachable: a kind is only derived from the states present.
            _ => Bytes::new(),
        };
        codec.watch_frame(view, kind.name(), &json)
    }

    /// [`CacheEvent::frame`] for a view that may need conversion, which may wait: awaited by
    /// the watch's task, never on a shard. The object's converted views are kept on it
    /// ([`CachedObject::converted`]); a DELETED frame's (the last state at this revision) is
    /// made here, once per event and view when it comes through the fan-out
    /// ([`DeferredFrame`]).
    pub async fn converted_frame(
        &self,
        kind: EventKind,
        view: View,
        codec: &dyn ObjectCodec,
        shapes: &Shapes,
    ) -> Result<Bytes, StorageError> {
        if !shapes.converts(view.shape, codec) {
            return Ok(self.frame(kind, view, codec, shapes));
        }
        let json = match (kind, &self.object, &self.prev) {
            (EventKind::Deleted, _, Some(prev)) => {
                codec
                    .convert(&prev.kv.value, self.revision, view, shapes)
                    .await?
            }
            (_, Some(object), _) => object.converted(codec, shapes, view).await?,
            // Not reachable: a kind is only derived from the states present.
            _ => Bytes::new(),
        };
        Ok(codec.watch_frame(view, kind.name(), &json))
    }
}

/// What the fan-out queues for a watcher: the frame itself, or — when the watcher's view
/// converts, which may wait and so is never done on the shard — the event to make it from,
/// shared by every watcher of that (kind, view).
#[derive(Debug, Clone)]
pub enum Queued {
    /// Made by the shard (every view that does not convert, bookmarks, errors).
    Ready(Bytes),
    /// To be made by the watch's task.
    Deferred(Arc<DeferredFrame>),
}

/// A frame the shard leaves to the watchers' tasks: the first one to reach it converts and
/// encodes it, the others await that and share it, so an event is converted once per view
/// however many watch it.
#[derive(Debug)]
pub struct DeferredFrame {
    /// The event (its objects are what is converted; a DELETED carries the previous one).
    event: Arc<CacheEvent>,
    /// What the event is to these watchers (the frame's type).
    kind: EventKind,
    /// The version and format the frame is made in.
    view: View,
    /// The frame once made: the watchers that reach it while it is being made wait here.
    frame: tokio::sync::OnceCell<Bytes>,
}

impl DeferredFrame {
    pub fn new(event: Arc<CacheEvent>, kind: EventKind, view: View) -> DeferredFrame {
        DeferredFrame {
            event,
            kind,
            view,
            frame: tokio::sync::OnceCell::new(),
        }
    }

    /// The frame, made on first use (in the caller's task) and shared. A failed conversion
    /// is not kept: the next watcher tries again.
    pub async fn frame(
        &self,
        codec: &dyn ObjectCodec,
        shapes: &Shapes,
    ) -> Result<Bytes, StorageError> {
        self.frame
            .get_or_try_init(|| {
                self.event
                    .converted_frame(self.kind, self.view, codec, shapes)
            })
            .await
            .cloned()
    }
}

/// The frames of one event during its fan-out: each (kind, view) encoded on first use and
/// shared by every watcher that receives it; dropped with the fan-out. Only the pairs some
/// watcher received are made — a handful per event however many shapes the resource has — so
/// the first few sit inline (no allocation per event) and any more spill into a `Vec`. A view
/// that converts is not encoded here, on the shard: its watchers share a [`DeferredFrame`].
#[derive(Default)]
pub struct FrameCache {
    inline: [Option<(View, EventKind, Queued)>; INLINE_FRAMES],
    spilled: Vec<(View, EventKind, Queued)>,
}

/// Frames a fan-out keeps without allocating.
const INLINE_FRAMES: usize = 4;

impl FrameCache {
    pub fn frame(
        &mut self,
        event: &Arc<CacheEvent>,
        kind: EventKind,
        view: View,
        codec: &dyn ObjectCodec,
        shapes: &Shapes,
    ) -> Queued {
        let made = self
            .inline
            .iter()
            .map_while(Option::as_ref)
            .chain(self.spilled.iter())
            .find(|(v, k, _)| *v == view && *k == kind);
        if let Some((_, _, frame)) = made {
            return frame.clone();
        }
        let frame = if shapes.converts(view.shape, codec) {
            Queued::Deferred(Arc::new(DeferredFrame::new(event.clone(), kind, view)))
        } else {
            Queued::Ready(event.frame(kind, view, codec, shapes))
        };
        let entry = (view, kind, frame.clone());
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(free) => *free = Some(entry),
            None => self.spilled.push(entry),
        }
        frame
    }
}

/// How often a retained event keeps the whole state after it (a checkpoint). A read at an
/// older revision starts from the checkpoint at or before it and applies the few events in
/// between; keeping the state after every event would cost each one the path it copied in
/// the persistent map (about as much again as the event itself).
pub const CHECKPOINT_EVERY: usize = 32;

/// A retained event, and on checkpoints the objects right after it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub event: Arc<CacheEvent>,
    pub objects_after: Option<Objects>,
}

/// What an event adds to [`Published::history_bytes`].
fn event_bytes(event: &CacheEvent) -> usize {
    event.object.as_ref().map_or(0, |o| o.kv.value.len())
}

/// `objects` with `event` applied.
fn apply(objects: &mut Objects, event: &CacheEvent) {
    match &event.object {
        Some(object) => objects.insert(event.key.clone(), object.clone()),
        None => objects.remove(&event.key),
    };
}

/// Everything readers see of one resource, replaced whole on every change.
#[derive(Debug, Clone)]
pub struct Published {
    pub state: CacheState,
    /// The revision of the last event applied (or of the list): `objects` are storage's state
    /// at it, and `history` holds every retained event up to it.
    pub revision: Revision,
    /// A revision at or after `revision` that `objects` are proven exact at too: a reader
    /// checked that nothing under the prefix changed in between (see `WatchCache::sync`).
    /// Events up to it may still be on their way (a create and a delete that cancel out), so
    /// history and bookmarks stay at `revision`; reads and watch starts may use `verified`.
    pub verified: Revision,
    pub objects: Objects,
    /// Retained events, oldest first.
    pub history: Vector<Entry>,
    /// The state before the oldest retained event: reads at `base_revision..` are served.
    pub base_revision: Revision,
    pub base_objects: Objects,
    /// Events recorded since the last checkpoint.
    since_checkpoint: usize,
    /// The stored JSON of the object versions history holds (each put's new version).
    history_bytes: usize,
    /// Why a pending cache cannot list (values storage holds that cannot be read): reads fail
    /// with it at once rather than waiting, as kube-apiserver's reads fall through to storage
    /// and fail there while its cacher cannot initialize.
    pub failure: Option<StorageError>,
}

impl Published {
    pub fn pending() -> Published {
        Published {
            state: CacheState::Pending,
            revision: 0,
            verified: 0,
            objects: Objects::new(),
            history: Vector::new(),
            base_revision: 0,
            base_objects: Objects::new(),
            since_checkpoint: 0,
            history_bytes: 0,
            failure: None,
        }
    }

    /// A cache whose list failed with `failure`: nothing is served, reads fail with it.
    pub fn failed(failure: StorageError) -> Published {
        Published {
            failure: Some(failure),
            ..Published::pending()
        }
    }

    /// The state of a removed resource's cache: empty, for readers that still hold its handle.
    pub fn stopped() -> Published {
        Published {
            state: CacheState::Stopped,
            ..Published::pending()
        }
    }

    /// A freshly listed state at `revision`, without history.
    pub fn listed(objects: Objects, revision: Revision) -> Published {
        Published {
            state: CacheState::Ready,
            revision,
            verified: revision,
            base_objects: objects.clone(),
            objects,
            history: Vector::new(),
            base_revision: revision,
            since_checkpoint: 0,
            history_bytes: 0,
            failure: None,
        }
    }

    /// The objects exactly at `revision`, if retained: up to the last event applied, and at
    /// `verified`.
    pub fn objects_at(&self, revision: Revision) -> Result<Objects, StorageError> {
        if revision < self.base_revision {
            return Err(StorageError::Compacted {
                requested: revision,
                compact_revision: self.base_revision,
            });
        }
        // Between the last event applied and a later verified revision the state is unknown:
        // events that cancel out by `verified` may still be on their way.
        if revision > self.revision && revision != self.verified {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current: self.revision,
            });
        }
        if revision >= self.revision {
            return Ok(self.objects.clone());
        }
        // The last retained event at or before `revision`.
        let after = self
            .history
            .binary_search_by(|e| e.event.revision.cmp(&revision))
            .map_or_else(|insert_at| insert_at.checked_sub(1), Some);
        let Some(last) = after else {
            return Ok(self.base_objects.clone());
        };
        // From the checkpoint at or before it (or the base), forward through the events.
        let checkpoint = (0..=last)
            .rev()
            .find_map(|i| self.history[i].objects_after.clone().map(|o| (i + 1, o)));
        let (first, mut objects) = checkpoint.unwrap_or_else(|| (0, self.base_objects.clone()));
        for entry in self.history.iter().skip(first).take(last + 1 - first) {
            apply(&mut objects, &entry.event);
        }
        Ok(objects)
    }

    /// Appends an applied event (`objects` already include it) to history, with a checkpoint
    /// of the objects on every [`CHECKPOINT_EVERY`]th.
    pub fn record(&mut self, event: Arc<CacheEvent>) {
        self.since_checkpoint += 1;
        let checkpoint = self.since_checkpoint >= CHECKPOINT_EVERY;
        if checkpoint {
            self.since_checkpoint = 0;
        }
        self.history_bytes += event_bytes(&event);
        self.history.push_back(Entry {
            event,
            objects_after: checkpoint.then(|| self.objects.clone()),
        });
    }

    /// The stored JSON of the object versions retained events hold.
    pub fn history_bytes(&self) -> usize {
        self.history_bytes
    }

    /// Drops the oldest retained event: the base moves past it.
    pub fn drop_oldest(&mut self) -> Option<Arc<CacheEvent>> {
        let oldest = self.history.pop_front()?;
        self.history_bytes -= event_bytes(&oldest.event);
        self.base_revision = oldest.event.revision;
        match oldest.objects_after {
            Some(objects) => self.base_objects = objects,
            None => apply(&mut self.base_objects, &oldest.event),
        }
        Some(oldest.event)
    }

    /// Retained events after `revision`, oldest first; `Compacted` when some are gone.
    pub fn events_after(&self, revision: Revision) -> Result<Vec<Arc<CacheEvent>>, StorageError> {
        if revision < self.base_revision {
            return Err(StorageError::Compacted {
                requested: revision,
                compact_revision: self.base_revision,
            });
        }
        let first = self
            .history
            .binary_search_by(|e| e.event.revision.cmp(&(revision + 1)))
            .unwrap_or_else(|i| i);
        Ok(self
            .history
            .iter()
            .skip(first)
            .map(|e| e.event.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::ObjectAttrs;
    use kubecache_core::storage::KeyValue;

    fn object(key: &str, revision: Revision) -> Arc<CachedObject> {
        CachedObject::new(
            KeyValue {
                key: key.into(),
                value: Bytes::from_static(b"{}"),
                create_revision: revision,
                mod_revision: revision,
            },
            ObjectAttrs::default(),
        )
    }

    fn apply(p: &mut Published, key: &str, revision: Revision, delete: bool) {
        let key: Arc<str> = key.into();
        let prev = p.objects.get(&key).cloned();
        let new = (!delete).then(|| object(&key, revision));
        match &new {
            Some(o) => p.objects.insert(key.clone(), o.clone()),
            None => p.objects.remove(&key),
        };
        p.revision = revision;
        p.verified = revision;
        p.record(Arc::new(CacheEvent::new(revision, key, new, prev)));
    }

    #[test]
    fn reads_at_retained_revisions() {
        let mut p = Published::listed(Objects::new(), 10);
        apply(&mut p, "a", 11, false);
        apply(&mut p, "b", 13, false);
        apply(&mut p, "a", 14, true);
        assert_eq!(p.objects_at(10).unwrap().len(), 0);
        assert_eq!(p.objects_at(12).unwrap().len(), 1);
        assert_eq!(p.objects_at(13).unwrap().len(), 2);
        assert_eq!(p.objects_at(14).unwrap().len(), 1);
        assert!(matches!(
            p.objects_at(9),
            Err(StorageError::Compacted { .. })
        ));
        assert!(matches!(
            p.objects_at(15),
            Err(StorageError::FutureRevision { .. })
        ));
        p.verified = 16;
        assert_eq!(p.objects_at(16).unwrap().len(), 1, "proven exact at 16");
        assert!(
            matches!(p.objects_at(15), Err(StorageError::FutureRevision { .. })),
            "unknown between the last event and the verified revision"
        );
        let revisions =
            |events: Vec<Arc<CacheEvent>>| events.iter().map(|e| e.revision).collect::<Vec<_>>();
        assert_eq!(revisions(p.events_after(10).unwrap()), vec![11, 13, 14]);
        assert_eq!(revisions(p.events_after(12).unwrap()), vec![13, 14]);
        assert_eq!(
            revisions(p.events_after(14).unwrap()),
            Vec::<Revision>::new()
        );
    }

    #[test]
    fn reads_between_checkpoints_replay_from_the_one_before() {
        let mut p = Published::listed(Objects::new(), 1);
        // Keys k0..k9 created, then rewritten and some deleted, over several checkpoints.
        let mut revision = 1;
        let mut expected = Vec::new();
        for round in 0..(3 * CHECKPOINT_EVERY / 10 + 2) {
            for k in 0..10 {
                revision += 1;
                apply(
                    &mut p,
                    &format!("k{k}"),
                    revision,
                    round % 3 == 2 && k % 2 == 0,
                );
                let keys: Vec<String> = p.objects.keys().map(|k| k.to_string()).collect();
                expected.push((revision, keys, p.objects.clone()));
            }
        }
        assert!(
            p.history
                .iter()
                .filter(|e| e.objects_after.is_some())
                .count()
                >= 3,
            "checkpoints were taken"
        );
        let check = |p: &Published, from: usize| {
            for (revision, keys, objects) in &expected[from..] {
                let at = p.objects_at(*revision).unwrap();
                let got: Vec<String> = at.keys().map(|k| k.to_string()).collect();
                assert_eq!(&got, keys, "keys at {revision}");
                for (key, object) in objects.iter() {
                    assert!(Arc::ptr_eq(object, &at[key]), "{key} at {revision}");
                }
            }
        };
        check(&p, 0);
        // Dropping the oldest events moves the base forward through them, checkpoint or not.
        for dropped in 1..=(CHECKPOINT_EVERY + 5) {
            p.drop_oldest().expect("an event to drop");
            assert_eq!(p.base_revision, expected[dropped - 1].0);
            assert_eq!(
                p.objects_at(p.base_revision).unwrap().len(),
                expected[dropped - 1].1.len()
            );
        }
        check(&p, CHECKPOINT_EVERY + 5);
        assert!(matches!(
            p.objects_at(expected[CHECKPOINT_EVERY + 3].0),
            Err(StorageError::Compacted { .. })
        ));
    }
}
