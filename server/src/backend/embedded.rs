//! The embedded backend: an in-process MVCC key/value store with etcd's semantics, optionally
//! made durable by a write-ahead log in a data directory.
//!
//! # Model
//!
//! One global revision, bumped by every successful write. Each key keeps its history as a list
//! of [`Version`]s in revision order: a value with its create/mod revision, or a tombstone at
//! the revision that deleted it. A read at revision R sees, per key, the last version with
//! `mod_revision <= R` (nothing if that is a tombstone), so reads at older revisions work until
//! [`Backend::compact`] drops the versions that are no longer visible at the compaction
//! revision. All state sits behind one `parking_lot` mutex that is never held across an
//! `.await`; critical sections are short (a map lookup, or a walk over one prefix), except
//! compaction, which walks every key (and clones the key map for the snapshot).
//!
//! # Watches
//!
//! A watch snapshots the matching history and registers itself under the same lock, so no
//! event falls between replay and live delivery and none is delivered twice. Events go to
//! watchers through unbounded tokio channels, in revision order, from inside the lock; a
//! watcher whose receiver is gone is dropped at the next delivery.
//!
//! # Durability (with a data directory)
//!
//! Writes are applied to memory under the lock and their log [`Record`] is queued in the same
//! critical section, so the queue is in revision order. A dedicated writer thread takes every
//! queued record at once, appends them to the log file and `fdatasync`s once (group commit),
//! then makes those revisions *visible*: readers, `current_revision` and watchers only ever see
//! revisions that are on disk, and a write is acknowledged only after its record is. Nothing
//! that was shown to a client can therefore be lost by a crash, and a revision number is never
//! reused for different content.
//!
//! The log is a sequence of frames `len: u32 LE | crc32(payload): u32 LE | payload` (see
//! [`Record`] for payloads). On open the log is replayed; a torn or corrupt frame (a crash in
//! the middle of an append) and everything after it is truncated away. Compaction rewrites the
//! log as a snapshot of the retained state, headed by a [`Record::Snapshot`] that carries the
//! current and compacted revisions (so the revision never goes backwards across restarts, even
//! when compaction removed every key), via write-temp-file, fsync, rename, fsync-directory.
//!
//! Not done: the data directory is not locked against a second process opening it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use kubecache_core::storage::{
    Backend, Deleted, KeyValue, ListOptions, ListPage, PrefixState, Result, Revision, StorageError,
    StorageEvent, WatchStream,
};
use parking_lot::{Condvar, Mutex};
use tokio::sync::{mpsc, watch};

/// Name of the write-ahead log inside the data directory.
const WAL_FILE: &str = "wal";
/// Name of the snapshot being written by a compaction, renamed over [`WAL_FILE`] when complete.
const WAL_TMP_FILE: &str = "wal.tmp";
/// Largest value accepted; bigger writes fail with [`StorageError::ValueTooLarge`]. It keeps a
/// record well inside the log's `u32` frame length.
pub const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;

/// The embedded store. See the module documentation for the design.
pub struct EmbeddedBackend {
    /// The store's state, shared with the log writer thread.
    shared: Arc<Shared>,
    /// The write-ahead log, when the store has a data directory; `None` for [`Self::in_memory`].
    log: Option<LogHandle>,
}

/// The async side's handle on the log writer thread.
struct LogHandle {
    /// How far the log is on disk; a write waits here until its revision is durable.
    durable: watch::Receiver<Durability>,
    /// The writer thread, joined on drop so the log is closed once the backend is gone.
    thread: Option<JoinHandle<()>>,
}

/// What the writer thread publishes after each fsync.
#[derive(Debug, Clone, Default)]
struct Durability {
    /// Every revision up to this one is on disk.
    revision: Revision,
    /// Number of the last snapshot written (compare with [`LogQueue::snapshots_requested`]),
    /// so that `compact` returns once its snapshot is on disk.
    snapshots: u64,
    /// Set when a log write failed: the store refuses writes from then on.
    failed: Option<String>,
}

/// State plus the condition variable the writer thread sleeps on.
struct Shared {
    /// Everything mutable; never held across an `.await`.
    state: Mutex<State>,
    /// Wakes the writer thread when records or a snapshot request were queued (or on shutdown).
    wake_writer: Condvar,
}

/// The MVCC state.
struct State {
    /// Per key, its versions in ascending revision order (never empty: emptied keys are
    /// removed). Includes versions not yet durable (`> visible_revision`).
    keys: BTreeMap<String, Vec<Version>>,
    /// Revision of the last applied write (durable or not); the next write gets `revision + 1`.
    revision: Revision,
    /// Revision readers and watchers see: the last durable write. Equal to `revision` in memory.
    visible_revision: Revision,
    /// Versions only visible before this revision have been dropped; reads below it fail.
    compact_revision: Revision,
    /// Registered watches.
    watchers: Vec<Watcher>,
    /// Events of writes that are applied but not yet durable, in revision order; delivered to
    /// watchers when the writer thread makes them visible.
    undelivered: VecDeque<StorageEvent>,
    /// The queue to the log writer; `None` in memory.
    log: Option<LogQueue>,
}

/// Work queued for the log writer thread.
#[derive(Default)]
struct LogQueue {
    /// Records of applied writes not yet handed to the writer, in revision order.
    records: Vec<Record>,
    /// Number of snapshot rewrites asked for by compactions; the writer does one when this is
    /// ahead of what it last wrote (several requests collapse into one snapshot).
    snapshots_requested: u64,
    /// Number of the last snapshot the writer took; lets it tell whether a request is pending.
    snapshots_taken: u64,
    /// The backend is being dropped: the writer finishes queued work and exits.
    shutdown: bool,
    /// A log write failed: further writes are refused, since they could not be made durable.
    failed: Option<String>,
}

/// One version of a key.
#[derive(Debug, Clone)]
struct Version {
    /// Revision of the write that produced this version.
    mod_revision: Revision,
    /// Revision that created the key's current incarnation (0 for tombstones).
    create_revision: Revision,
    /// The value, or `None` for a tombstone (the key was deleted at `mod_revision`).
    value: Option<Bytes>,
}

/// A registered watch.
struct Watcher {
    /// Only keys starting with this are delivered.
    prefix: String,
    /// Only events at or after this revision are delivered (a watch may start in the future).
    start_revision: Revision,
    /// The watch stream's channel; closed when the stream is dropped.
    tx: mpsc::UnboundedSender<StorageEvent>,
}

/// A log record (payload of one frame). Encoding, all integers little-endian:
/// - `Put`:      `1 | mod_revision: i64 | create_revision: i64 | key_len: u32 | key | value_len: u32 | value`
/// - `Delete`:   `2 | revision: i64 | key_len: u32 | key`
/// - `Snapshot`: `3 | revision: i64 | compact_revision: i64`
#[derive(Debug, Clone, PartialEq, Eq)]
enum Record {
    /// A key was created or updated.
    Put {
        key: String,
        value: Bytes,
        create_revision: Revision,
        mod_revision: Revision,
    },
    /// A key was deleted.
    Delete { key: String, revision: Revision },
    /// Head of a snapshot written by compaction: the store's revision and compacted revision.
    Snapshot {
        revision: Revision,
        compact_revision: Revision,
    },
}

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_SNAPSHOT: u8 = 3;
/// Frame header: payload length and crc32.
const FRAME_HEADER: usize = 8;

impl EmbeddedBackend {
    /// A store that lives in memory only.
    pub fn in_memory() -> EmbeddedBackend {
        EmbeddedBackend {
            shared: Arc::new(Shared {
                state: Mutex::new(State::new(None)),
                wake_writer: Condvar::new(),
            }),
            log: None,
        }
    }

    /// Opens (or creates) a durable store in `data_dir`, replaying its log. Blocking: it reads
    /// the whole log; call it at start-up or from `spawn_blocking`.
    pub fn open(data_dir: &Path) -> Result<EmbeddedBackend, StorageError> {
        let io_err = |what: &str, e: io::Error| {
            StorageError::Internal(format!("{what} {}: {e}", data_dir.display()))
        };
        fs::create_dir_all(data_dir).map_err(|e| io_err("creating data dir", e))?;
        match fs::remove_file(data_dir.join(WAL_TMP_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing stale snapshot in", e)),
        }
        let path = data_dir.join(WAL_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_err("opening log in", e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| io_err("reading log in", e))?;
        let (records, valid_len) = decode_log(&data)?;
        if valid_len < data.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = data.len() - valid_len,
                "truncating torn or corrupt tail of the write-ahead log"
            );
            file.set_len(valid_len as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_err("truncating log in", e))?;
        }
        file.seek(SeekFrom::Start(valid_len as u64))
            .map_err(|e| io_err("seeking log in", e))?;
        // Make the log file's own creation durable.
        sync_dir(data_dir).map_err(|e| io_err("syncing", e))?;

        let mut state = State::new(Some(LogQueue::default()));
        for record in records {
            state.replay(record)?;
        }
        state.visible_revision = state.revision;
        let (durable_tx, durable_rx) = watch::channel(Durability {
            revision: state.revision,
            ..Durability::default()
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake_writer: Condvar::new(),
        });
        let writer = LogWriter {
            shared: shared.clone(),
            dir: data_dir.to_path_buf(),
            file,
            durable: durable_tx,
        };
        let thread = std::thread::Builder::new()
            .name("kubecache-wal".into())
            .spawn(move || writer.run())
            .map_err(|e| io_err("starting log writer for", e))?;
        Ok(EmbeddedBackend {
            shared,
            log: Some(LogHandle {
                durable: durable_rx,
                thread: Some(thread),
            }),
        })
    }

    /// Runs `f` on the state under the lock (refusing if the log has failed), wakes the log
    /// writer, and returns `f`'s result with the state's revision at that moment: the caller
    /// must [`Self::settle`] on it before answering, so it never reveals a write that is not
    /// durable yet.
    fn mutate<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> (Result<T>, Revision) {
        let (result, revision) = {
            let mut st = self.shared.state.lock();
            if let Some(failed) = st.log.as_ref().and_then(|q| q.failed.clone()) {
                return (Err(log_failed(&failed)), 0);
            }
            let result = f(&mut st);
            (result, st.revision)
        };
        self.shared.wake_writer.notify_one();
        (result, revision)
    }

    /// Waits until `revision` is durable (immediately without a log).
    async fn settle(&self, revision: Revision) -> Result<()> {
        self.wait_durable(|d| d.revision >= revision).await
    }

    /// Waits until the writer's published [`Durability`] satisfies `done`, or the log failed.
    async fn wait_durable(&self, done: impl Fn(&Durability) -> bool) -> Result<()> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        let mut rx = log.durable.clone();
        let d = rx
            .wait_for(|d| done(d) || d.failed.is_some())
            .await
            .map_err(|_| StorageError::Unavailable("write-ahead log writer stopped".into()))?;
        if done(&d) {
            Ok(())
        } else {
            Err(log_failed(d.failed.as_deref().unwrap_or_default()))
        }
    }

    /// Number of registered watches (dropped ones are pruned at the next write).
    #[cfg(test)]
    fn watcher_count(&self) -> usize {
        self.shared.state.lock().watchers.len()
    }
}

impl fmt::Debug for EmbeddedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.state.lock();
        f.debug_struct("EmbeddedBackend")
            .field("durable", &self.log.is_some())
            .field("revision", &st.visible_revision)
            .field("compact_revision", &st.compact_revision)
            .field("keys", &st.keys.len())
            .field("watchers", &st.watchers.len())
            .finish()
    }
}

impl Drop for EmbeddedBackend {
    fn drop(&mut self) {
        let Some(log) = &mut self.log else { return };
        if let Some(q) = self.shared.state.lock().log.as_mut() {
            q.shutdown = true;
        }
        self.shared.wake_writer.notify_one();
        if let Some(thread) = log.thread.take() {
            // Only queued, unacknowledged records are left; this returns after one fsync.
            let _ = thread.join();
        }
    }
}

#[async_trait]
impl Backend for EmbeddedBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let st = self.shared.state.lock();
        Ok(st.value_at(key, st.visible_revision))
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let st = self.shared.state.lock();
        let revision = match options.revision {
            Some(r) if r > 0 => r,
            _ => st.visible_revision,
        };
        if revision < st.compact_revision {
            return Err(StorageError::Compacted {
                requested: revision,
                compact_revision: st.compact_revision,
            });
        }
        if revision > st.visible_revision {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current: st.visible_revision,
            });
        }
        let prefix = options.prefix.as_str();
        let start = match options.start_key.as_deref() {
            Some(start) if start > prefix => start,
            _ => prefix,
        };
        let limit = options.limit.filter(|&l| l > 0).unwrap_or(usize::MAX);
        let mut kvs = Vec::new();
        let mut count = 0i64;
        for (key, history) in st
            .keys
            .range::<str, _>((Bound::Included(start), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            let Some(kv) = visible(key, history, revision) else {
                continue;
            };
            count += 1;
            if kvs.len() < limit {
                kvs.push(kv);
            }
        }
        Ok(ListPage {
            more: (kvs.len() as i64) < count,
            kvs,
            revision,
            count,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        check_size(key, &value)?;
        let (result, revision) = self.mutate(|st| {
            if st.latest(key).is_some() {
                return Err(StorageError::KeyExists { key: key.into() });
            }
            Ok(st.write(key, Some(value)).0)
        });
        self.settle(revision).await?;
        result.map(|kv| kv.expect("a put yields a value"))
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue> {
        check_size(key, &value)?;
        let (result, revision) = self.mutate(|st| {
            let current = st
                .latest(key)
                .ok_or_else(|| StorageError::NotFound { key: key.into() })?;
            if current.mod_revision != expected_mod_revision {
                return Err(StorageError::Conflict {
                    key: key.into(),
                    current: Some(current),
                });
            }
            Ok(st.write(key, Some(value)).0)
        });
        self.settle(revision).await?;
        result.map(|kv| kv.expect("a put yields a value"))
    }

    async fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Deleted> {
        let (result, revision) = self.mutate(|st| {
            let current = st
                .latest(key)
                .ok_or_else(|| StorageError::NotFound { key: key.into() })?;
            if expected_mod_revision.is_some_and(|rev| rev != current.mod_revision) {
                return Err(StorageError::Conflict {
                    key: key.into(),
                    current: Some(current),
                });
            }
            let (_, revision) = st.write(key, None);
            Ok(Deleted {
                prev: current,
                revision,
            })
        });
        self.settle(revision).await?;
        result
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream> {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut st = self.shared.state.lock();
            // etcd: a watch from revision 0 (or below) starts after the current revision.
            let start = if start_revision > 0 {
                start_revision
            } else {
                st.visible_revision + 1
            };
            if start <= st.compact_revision {
                return Err(StorageError::Compacted {
                    requested: start,
                    compact_revision: st.compact_revision,
                });
            }
            // Replay the visible history; later events reach the watcher through delivery,
            // which also happens under this lock: no gap, no duplicate.
            for event in st.history(prefix, start) {
                let _ = tx.send(event);
            }
            st.watchers.push(Watcher {
                prefix: prefix.into(),
                start_revision: start,
                tx,
            });
        }
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            let event = rx.recv().await?;
            Some((Ok(event), rx))
        });
        Ok(stream.boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.state.lock().visible_revision)
    }

    async fn prefix_state(
        &self,
        prefix: &str,
        since: Revision,
        at: Option<Revision>,
    ) -> Result<PrefixState> {
        let st = self.shared.state.lock();
        let revision = at.filter(|&r| r > 0).unwrap_or(st.visible_revision);
        if revision < st.compact_revision {
            return Err(StorageError::Compacted {
                requested: revision,
                compact_revision: st.compact_revision,
            });
        }
        if revision > st.visible_revision {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current: st.visible_revision,
            });
        }
        let mut state = PrefixState {
            revision,
            count: 0,
            modified_since: 0,
        };
        for (key, history) in st
            .keys
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            if let Some(kv) = visible(key, history, revision) {
                state.count += 1;
                if kv.mod_revision > since {
                    state.modified_since += 1;
                }
            }
        }
        Ok(state)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let (result, _) = self.mutate(|st| {
            if revision > st.visible_revision {
                return Err(StorageError::FutureRevision {
                    requested: revision,
                    current: st.visible_revision,
                });
            }
            if revision <= st.compact_revision {
                return Err(StorageError::Compacted {
                    requested: revision,
                    compact_revision: st.compact_revision,
                });
            }
            st.compact(revision);
            Ok(st.log.as_mut().map(|q| {
                q.snapshots_requested += 1;
                q.snapshots_requested
            }))
        });
        if let Some(snapshot) = result? {
            self.wait_durable(|d| d.snapshots >= snapshot).await?;
        }
        Ok(())
    }
}

impl State {
    fn new(log: Option<LogQueue>) -> State {
        State {
            keys: BTreeMap::new(),
            revision: 0,
            visible_revision: 0,
            compact_revision: 0,
            watchers: Vec::new(),
            undelivered: VecDeque::new(),
            log,
        }
    }

    /// The key's newest value, including writes not yet durable; what writes compare against.
    fn latest(&self, key: &str) -> Option<KeyValue> {
        let version = self.keys.get(key)?.last()?;
        to_kv(key, version)
    }

    /// The key's value as of `revision`.
    fn value_at(&self, key: &str, revision: Revision) -> Option<KeyValue> {
        visible(key, self.keys.get(key)?, revision)
    }

    /// Applies a put (`Some(value)`) or delete (`None`) at the next revision, queues its log
    /// record, and delivers its event now (in memory) or once durable (with a log). Returns
    /// the new value for a put, and the write's revision.
    fn write(&mut self, key: &str, value: Option<Bytes>) -> (Option<KeyValue>, Revision) {
        let revision = self.revision + 1;
        self.revision = revision;
        let prev = self.latest(key);
        let version = Version {
            mod_revision: revision,
            create_revision: match (&value, &prev) {
                (None, _) => 0,
                (Some(_), Some(prev)) => prev.create_revision,
                (Some(_), None) => revision,
            },
            value,
        };
        let kv = to_kv(key, &version);
        let event = make_event(key, &version, prev);
        if let Some(q) = &mut self.log {
            q.records.push(match &version.value {
                Some(value) => Record::Put {
                    key: key.into(),
                    value: value.clone(),
                    create_revision: version.create_revision,
                    mod_revision: revision,
                },
                None => Record::Delete {
                    key: key.into(),
                    revision,
                },
            });
            self.undelivered.push_back(event);
        } else {
            self.visible_revision = revision;
            deliver(&mut self.watchers, &event);
        }
        self.keys.entry(key.to_owned()).or_default().push(version);
        (kv, revision)
    }

    /// Marks every revision up to `revision` durable: visible to readers and delivered.
    fn make_visible(&mut self, revision: Revision) {
        self.visible_revision = self.visible_revision.max(revision);
        while let Some(event) = self.undelivered.front() {
            if event.revision() > revision {
                break;
            }
            let event = self.undelivered.pop_front().expect("front exists");
            deliver(&mut self.watchers, &event);
        }
    }

    /// Visible changes under `prefix` from `start` on, in revision order, each with its prev.
    fn history(&self, prefix: &str, start: Revision) -> Vec<StorageEvent> {
        let mut events = Vec::new();
        for (key, history) in self
            .keys
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
        {
            for (i, version) in history.iter().enumerate() {
                if version.mod_revision < start || version.mod_revision > self.visible_revision {
                    continue;
                }
                let prev = i.checked_sub(1).and_then(|p| to_kv(key, &history[p]));
                events.push(make_event(key, version, prev));
            }
        }
        events.sort_by_key(StorageEvent::revision);
        events
    }

    /// Drops every version not visible at `revision` or later, and empty keys.
    fn compact(&mut self, revision: Revision) {
        self.keys.retain(|_, history| {
            // Versions at or below `revision`: only the newest stays, and only if live.
            let at_or_below = history.partition_point(|v| v.mod_revision <= revision);
            if at_or_below > 0 {
                let keep_from = if history[at_or_below - 1].value.is_some() {
                    at_or_below - 1
                } else {
                    at_or_below
                };
                history.drain(..keep_from);
            }
            !history.is_empty()
        });
        self.compact_revision = revision;
    }

    /// Applies one record read back from the log.
    fn replay(&mut self, record: Record) -> Result<()> {
        let (key, version) = match record {
            Record::Snapshot {
                revision,
                compact_revision,
            } => {
                self.revision = self.revision.max(revision);
                self.compact_revision = self.compact_revision.max(compact_revision);
                return Ok(());
            }
            Record::Put {
                key,
                value,
                create_revision,
                mod_revision,
            } => (
                key,
                Version {
                    mod_revision,
                    create_revision,
                    value: Some(value),
                },
            ),
            Record::Delete { key, revision } => (
                key,
                Version {
                    mod_revision: revision,
                    create_revision: 0,
                    value: None,
                },
            ),
        };
        let history = self.keys.entry(key).or_default();
        if history
            .last()
            .is_some_and(|last| last.mod_revision >= version.mod_revision)
        {
            return Err(StorageError::Internal(format!(
                "write-ahead log out of order at revision {}",
                version.mod_revision
            )));
        }
        self.revision = self.revision.max(version.mod_revision);
        history.push(version);
        Ok(())
    }
}

/// The key's value as of `revision`, given its history.
fn visible(key: &str, history: &[Version], revision: Revision) -> Option<KeyValue> {
    let n = history.partition_point(|v| v.mod_revision <= revision);
    to_kv(key, history.get(n.checked_sub(1)?)?)
}

fn to_kv(key: &str, version: &Version) -> Option<KeyValue> {
    Some(KeyValue {
        key: key.to_owned(),
        value: version.value.clone()?,
        create_revision: version.create_revision,
        mod_revision: version.mod_revision,
    })
}

fn make_event(key: &str, version: &Version, prev: Option<KeyValue>) -> StorageEvent {
    match to_kv(key, version) {
        Some(kv) => StorageEvent::Put { kv, prev },
        None => StorageEvent::Delete {
            key: key.to_owned(),
            revision: version.mod_revision,
            prev,
        },
    }
}

/// Sends `event` to every watcher it matches, dropping watchers whose stream is gone.
fn deliver(watchers: &mut Vec<Watcher>, event: &StorageEvent) {
    let key = match event {
        StorageEvent::Put { kv, .. } => kv.key.as_str(),
        StorageEvent::Delete { key, .. } => key.as_str(),
        StorageEvent::Progress { .. } => return,
    };
    watchers.retain(|w| {
        if w.tx.is_closed() {
            return false;
        }
        if key.starts_with(&w.prefix) && event.revision() >= w.start_revision {
            return w.tx.send(event.clone()).is_ok();
        }
        true
    });
}

fn check_size(key: &str, value: &Bytes) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StorageError::ValueTooLarge {
            key: key.into(),
            size: value.len(),
        });
    }
    Ok(())
}

fn log_failed(reason: &str) -> StorageError {
    StorageError::Internal(format!("write-ahead log failed: {reason}"))
}

/// The writer thread: owns the log file.
struct LogWriter {
    /// The state, for taking queued records and making revisions visible.
    shared: Arc<Shared>,
    /// The data directory, for snapshot rewrites.
    dir: PathBuf,
    /// The log, positioned at its end.
    file: File,
    /// Where durability progress is published to waiting writes.
    durable: watch::Sender<Durability>,
}

/// One unit of work for the writer thread.
enum Job {
    /// Append these records (all revisions up to `through`) and fsync.
    Append {
        records: Vec<Record>,
        through: Revision,
    },
    /// Rewrite the log as this state (which includes every revision up to `through`).
    Snapshot {
        keys: BTreeMap<String, Vec<Version>>,
        through: Revision,
        compact_revision: Revision,
        number: u64,
    },
}

impl LogWriter {
    fn run(mut self) {
        while let Some(job) = self.next_job() {
            let (through, snapshot) = match &job {
                Job::Append { through, .. } => (*through, None),
                Job::Snapshot {
                    through, number, ..
                } => (*through, Some(*number)),
            };
            let written = match job {
                Job::Append { records, .. } => self.append(&records),
                Job::Snapshot {
                    keys,
                    through,
                    compact_revision,
                    ..
                } => self.snapshot(&keys, through, compact_revision),
            };
            if let Err(e) = written {
                let reason = e.to_string();
                tracing::error!(error = %reason, "write-ahead log write failed; refusing writes");
                if let Some(q) = self.shared.state.lock().log.as_mut() {
                    q.failed = Some(reason.clone());
                }
                self.durable.send_modify(|d| d.failed = Some(reason));
                return;
            }
            self.shared.state.lock().make_visible(through);
            self.durable.send_modify(|d| {
                d.revision = d.revision.max(through);
                if let Some(number) = snapshot {
                    d.snapshots = d.snapshots.max(number);
                }
            });
        }
    }

    /// Waits for work; `None` on shutdown once the queue is empty.
    fn next_job(&self) -> Option<Job> {
        let mut st = self.shared.state.lock();
        loop {
            let through = st.revision;
            let compact_revision = st.compact_revision;
            let q = st.log.as_mut().expect("the writer runs only with a log");
            if q.snapshots_requested > q.snapshots_taken {
                // The snapshot covers the queued records: they are in `keys` already.
                q.snapshots_taken = q.snapshots_requested;
                q.records.clear();
                let number = q.snapshots_taken;
                return Some(Job::Snapshot {
                    keys: st.keys.clone(),
                    through,
                    compact_revision,
                    number,
                });
            }
            if !q.records.is_empty() {
                return Some(Job::Append {
                    records: std::mem::take(&mut q.records),
                    through,
                });
            }
            if q.shutdown {
                return None;
            }
            self.shared.wake_writer.wait(&mut st);
        }
    }

    fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let mut buf = Vec::new();
        for record in records {
            encode_frame(record, &mut buf);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()
    }

    /// Writes the state as a new log next to the old one, then atomically replaces it.
    fn snapshot(
        &mut self,
        keys: &BTreeMap<String, Vec<Version>>,
        revision: Revision,
        compact_revision: Revision,
    ) -> io::Result<()> {
        let tmp_path = self.dir.join(WAL_TMP_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)?;
        let mut out = BufWriter::new(file);
        let mut buf = Vec::new();
        encode_frame(
            &Record::Snapshot {
                revision,
                compact_revision,
            },
            &mut buf,
        );
        for (key, history) in keys {
            for version in history {
                let record = match &version.value {
                    Some(value) => Record::Put {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: version.create_revision,
                        mod_revision: version.mod_revision,
                    },
                    None => Record::Delete {
                        key: key.clone(),
                        revision: version.mod_revision,
                    },
                };
                encode_frame(&record, &mut buf);
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp_path, self.dir.join(WAL_FILE))?;
        sync_dir(&self.dir)?;
        // The renamed file is the log now, positioned at its end.
        self.file = file;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Appends `record` as one frame.
fn encode_frame(record: &Record, out: &mut Vec<u8>) {
    let header_at = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    let payload_at = out.len();
    let put_str = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s);
    };
    match record {
        Record::Put {
            key,
            value,
            create_revision,
            mod_revision,
        } => {
            out.push(OP_PUT);
            out.extend_from_slice(&mod_revision.to_le_bytes());
            out.extend_from_slice(&create_revision.to_le_bytes());
            put_str(out, key.as_bytes());
            put_str(out, value);
        }
        Record::Delete { key, revision } => {
            out.push(OP_DELETE);
            out.extend_from_slice(&revision.to_le_bytes());
            put_str(out, key.as_bytes());
        }
        Record::Snapshot {
            revision,
            compact_revision,
        } => {
            out.push(OP_SNAPSHOT);
            out.extend_from_slice(&revision.to_le_bytes());
            out.extend_from_slice(&compact_revision.to_le_bytes());
        }
    }
    let len = (out.len() - payload_at) as u32;
    let crc = crc32fast::hash(&out[payload_at..]);
    out[header_at..header_at + 4].copy_from_slice(&len.to_le_bytes());
    out[header_at + 4..payload_at].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the log's records and returns them with the length of the valid prefix of `data`.
/// Decoding stops at the first frame that is incomplete or fails its checksum (a torn write);
/// a frame whose checksum holds but whose payload is malformed is an error, not a torn tail.
fn decode_log(data: &[u8]) -> Result<(Vec<Record>, usize)> {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = data.get(at..at + FRAME_HEADER) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let start = at + FRAME_HEADER;
        // An empty payload never occurs (and a zero-filled tail would pass the crc).
        let Some(payload) = data.get(start..start + len).filter(|_| len > 0) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let record = decode_record(payload).ok_or_else(|| {
            StorageError::Internal(format!("malformed write-ahead log record at offset {at}"))
        })?;
        records.push(record);
        at = start + len;
    }
    Ok((records, at))
}

fn decode_record(payload: &[u8]) -> Option<Record> {
    let mut r = Reader(payload);
    let record = match r.u8()? {
        OP_PUT => {
            let mod_revision = r.i64()?;
            let create_revision = r.i64()?;
            let key = r.string()?;
            let value = Bytes::copy_from_slice(r.sized()?);
            Record::Put {
                key,
                value,
                create_revision,
                mod_revision,
            }
        }
        OP_DELETE => {
            let revision = r.i64()?;
            Record::Delete {
                key: r.string()?,
                revision,
            }
        }
        OP_SNAPSHOT => Record::Snapshot {
            revision: r.i64()?,
            compact_revision: r.i64()?,
        },
        _ => return None,
    };
    r.0.is_empty().then_some(record)
}

/// A cursor over a record payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn sized(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(len)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.sized()?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn wal_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join(WAL_FILE)
    }

    #[test]
    fn records_round_trip() {
        let records = vec![
            Record::Snapshot {
                revision: 7,
                compact_revision: 3,
            },
            Record::Put {
                key: "/a".into(),
                value: b("one"),
                create_revision: 4,
                mod_revision: 8,
            },
            Record::Delete {
                key: "/a".into(),
                revision: 9,
            },
        ];
        let mut buf = Vec::new();
        for r in &records {
            encode_frame(r, &mut buf);
        }
        assert_eq!(decode_log(&buf).unwrap(), (records, buf.len()));
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let mut buf = Vec::new();
        encode_frame(
            &Record::Delete {
                key: "/a".into(),
                revision: 1,
            },
            &mut buf,
        );
        let good = buf.len();
        buf.extend_from_slice(&[0; 64]);
        let (records, valid) = decode_log(&buf).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(valid, good);
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = EmbeddedBackend::open(dir.path()).unwrap();
            for k in ["/k/1", "/k/2", "/k/3"] {
                store.create(k, b(k)).await.unwrap();
            }
        }
        // Cut the last record in half, as a crash during its append would.
        let len = fs::metadata(wal_path(&dir)).unwrap().len();
        let file = OpenOptions::new().write(true).open(wal_path(&dir)).unwrap();
        file.set_len(len - 5).unwrap();
        drop(file);

        let store = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), 2);
        assert_eq!(store.get("/k/1").await.unwrap().unwrap().value, b("/k/1"));
        assert_eq!(store.get("/k/2").await.unwrap().unwrap().mod_revision, 2);
        assert_eq!(store.get("/k/3").await.unwrap(), None);
        // The torn bytes are gone, so new records follow the good ones.
        let kv = store.create("/k/4", b("4")).await.unwrap();
        assert_eq!(kv.mod_revision, 3);
        drop(store);

        // Garbage appended after good records is dropped as well.
        let mut file = OpenOptions::new()
            .append(true)
            .open(wal_path(&dir))
            .unwrap();
        file.write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7])
            .unwrap();
        drop(file);
        let store = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), 3);
        assert_eq!(store.get("/k/4").await.unwrap().unwrap().value, b("4"));
        drop(store);
        let (records, valid) = decode_log(&fs::read(wal_path(&dir)).unwrap()).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(valid as u64, fs::metadata(wal_path(&dir)).unwrap().len());
    }

    #[tokio::test]
    async fn reopen_after_compaction_keeps_revision_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, last) = {
            let store = EmbeddedBackend::open(dir.path()).unwrap();
            let mut kv = store.create("/c/kept", b("v0")).await.unwrap();
            for i in 1..50 {
                kv = store
                    .update("/c/kept", b(&format!("v{i}")), kv.mod_revision)
                    .await
                    .unwrap();
            }
            store.create("/c/gone", b("x")).await.unwrap();
            let gone = store.delete("/c/gone", None).await.unwrap();
            let size_before = fs::metadata(wal_path(&dir)).unwrap().len();
            store.compact(gone.revision).await.unwrap();
            assert!(fs::metadata(wal_path(&dir)).unwrap().len() < size_before);
            // Writes after the compaction are appended to the snapshot.
            store.create("/c/after", b("a")).await.unwrap();
            let deleted = store.delete("/c/after", None).await.unwrap();
            (kv, deleted.revision)
        };

        let store = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), last);
        assert_eq!(store.get("/c/kept").await.unwrap(), Some(kept.clone()));
        assert_eq!(store.get("/c/gone").await.unwrap(), None);
        assert_eq!(store.get("/c/after").await.unwrap(), None);
        let old = ListOptions {
            prefix: "/c/".into(),
            revision: Some(kept.mod_revision),
            ..ListOptions::default()
        };
        assert!(matches!(
            store.list(old).await,
            Err(StorageError::Compacted { .. })
        ));
        // The history after the compaction survived too: the delete of /c/after replays.
        let mut watch = store.watch("/c/after", last).await.unwrap();
        let event = watch.next().await.unwrap().unwrap();
        assert!(
            matches!(event, StorageEvent::Delete { revision, prev: Some(_), .. } if revision == last)
        );
        assert_eq!(
            store.create("/c/new", b("n")).await.unwrap().mod_revision,
            last + 1
        );
        drop(watch);
        drop(store);

        // Compacting away every key still keeps the revision.
        let store = EmbeddedBackend::open(dir.path()).unwrap();
        store.delete("/c/kept", None).await.unwrap();
        let gone = store.delete("/c/new", None).await.unwrap();
        store.compact(gone.revision).await.unwrap();
        drop(store);
        let store = EmbeddedBackend::open(dir.path()).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), gone.revision);
        let page = store.list(ListOptions::default()).await.unwrap();
        assert_eq!(page.count, 0);
        assert_eq!(
            store.create("/c/x", b("x")).await.unwrap().create_revision,
            gone.revision + 1
        );
    }

    #[tokio::test]
    async fn dropped_watcher_is_removed() {
        let store = EmbeddedBackend::in_memory();
        let watch = store.watch("/w/", 0).await.unwrap();
        assert_eq!(store.watcher_count(), 1);
        drop(watch);
        store.create("/other", b("x")).await.unwrap();
        assert_eq!(store.watcher_count(), 0);
    }

    #[tokio::test]
    async fn group_commit_acknowledges_concurrent_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedBackend::open(dir.path()).unwrap());
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.create(&format!("/g/{i:02}"), b("v")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(store.current_revision().await.unwrap(), 64);
        drop(store);
        let store = EmbeddedBackend::open(dir.path()).unwrap();
        let page = store
            .list(ListOptions {
                prefix: "/g/".into(),
                ..ListOptions::default()
            })
            .await
            .unwrap();
        assert_eq!(page.count, 64);
    }
}
