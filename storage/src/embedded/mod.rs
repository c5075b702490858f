//! The embedded backend: an in-process MVCC key/value store with etcd's semantics, optionally
//! made durable by a write-ahead log in a data directory.
//!
//! It is split along its concerns:
//!
//! - `mvcc`: the revisioned key space — one global revision, every key's versions, reads at
//!   a revision, compaction;
//! - `wal`: the write-ahead log in the data directory — group-committed appends with
//!   `fdatasync`, recovery on open, snapshots on compaction;
//! - `watch`: the fan-out of events to the store's watchers, replay then live, with no gap
//!   and no duplicate.
//!
//! This module ties them together: [`EmbeddedBackend`] holds the state behind one mutex
//! (shared with the log writer thread) and implements [`Backend`]. A write is applied to the
//! state under the lock, then acknowledged once its revision is durable.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use kubecache_core::storage::{
    Backend, Deleted, KeyValue, ListOptions, ListPage, PrefixState, Result, Revision, StorageError,
    WatchStream,
};
use parking_lot::{Condvar, Mutex};

use mvcc::State;
use wal::{Durability, LogHandle, LogQueue, log_failed};

mod mvcc;
mod wal;
mod watch;

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

/// State plus the condition variable the writer thread sleeps on.
struct Shared {
    /// Everything mutable; never held across an `.await`.
    state: Mutex<State>,
    /// Wakes the writer thread when records or a snapshot request were queued (or on shutdown).
    wake_writer: Condvar,
}

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
        let (file, records) = wal::open(data_dir)?;
        let mut state = State::new(Some(LogQueue::default()));
        for record in records {
            state.replay(record)?;
        }
        state.visible_revision = state.revision;
        let revision = state.revision;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake_writer: Condvar::new(),
        });
        let log = LogHandle::start(shared.clone(), data_dir, file, revision)?;
        Ok(EmbeddedBackend {
            shared,
            log: Some(log),
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
        self.shared.state.lock().list(options)
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
        let rx = self.shared.state.lock().watch(prefix, start_revision)?;
        Ok(watch::stream(rx))
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
        self.shared.state.lock().prefix_state(prefix, since, at)
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

fn check_size(key: &str, value: &Bytes) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(StorageError::ValueTooLarge {
            key: key.into(),
            size: value.len(),
        });
    }
    Ok(())
}
