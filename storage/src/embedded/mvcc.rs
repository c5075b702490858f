//! The revisioned key space: the store's state, writes at the next revision, reads at any
//! revision since the last compaction, and compaction.
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
//! [`Backend::compact`]: kubecache_core::storage::Backend::compact

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use bytes::Bytes;
use kubecache_core::storage::{
    KeyValue, ListOptions, ListPage, PrefixState, Result, Revision, StorageError, StorageEvent,
};

use super::wal::{LogQueue, Record};
use super::watch::{Watcher, deliver};

/// The MVCC state.
pub(super) struct State {
    /// Per key, its versions in ascending revision order (never empty: emptied keys are
    /// removed). Includes versions not yet durable (`> visible_revision`).
    pub(super) keys: BTreeMap<String, Vec<Version>>,
    /// Revision of the last applied write (durable or not); the next write gets `revision + 1`.
    pub(super) revision: Revision,
    /// Revision readers and watchers see: the last durable write. Equal to `revision` in memory.
    pub(super) visible_revision: Revision,
    /// Versions only visible before this revision have been dropped; reads below it fail.
    pub(super) compact_revision: Revision,
    /// Registered watches.
    pub(super) watchers: Vec<Watcher>,
    /// Events of writes that are applied but not yet durable, in revision order; delivered to
    /// watchers when the writer thread makes them visible.
    pub(super) undelivered: VecDeque<StorageEvent>,
    /// The queue to the log writer; `None` in memory.
    pub(super) log: Option<LogQueue>,
}

/// One version of a key.
#[derive(Debug, Clone)]
pub(super) struct Version {
    /// Revision of the write that produced this version.
    pub(super) mod_revision: Revision,
    /// Revision that created the key's current incarnation (0 for tombstones).
    pub(super) create_revision: Revision,
    /// The value, or `None` for a tombstone (the key was deleted at `mod_revision`).
    pub(super) value: Option<Bytes>,
}

impl State {
    pub(super) fn new(log: Option<LogQueue>) -> State {
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
    pub(super) fn latest(&self, key: &str) -> Option<KeyValue> {
        let version = self.keys.get(key)?.last()?;
        to_kv(key, version)
    }

    /// The key's value as of `revision`.
    pub(super) fn value_at(&self, key: &str, revision: Revision) -> Option<KeyValue> {
        visible(key, self.keys.get(key)?, revision)
    }

    /// Applies a put (`Some(value)`) or delete (`None`) at the next revision, queues its log
    /// record, and delivers its event now (in memory) or once durable (with a log). Returns
    /// the new value for a put, and the write's revision.
    pub(super) fn write(
        &mut self,
        key: &str,
        value: Option<Bytes>,
    ) -> (Option<KeyValue>, Revision) {
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

    /// Drops every version not visible at `revision` or later, and empty keys.
    pub(super) fn compact(&mut self, revision: Revision) {
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

    /// A page of the keys under `options.prefix` at `options.revision` (the visible revision
    /// when unset), from `options.start_key` on.
    pub(super) fn list(&self, options: ListOptions) -> Result<ListPage> {
        let revision = match options.revision {
            Some(r) if r > 0 => r,
            _ => self.visible_revision,
        };
        if revision < self.compact_revision {
            return Err(StorageError::Compacted {
                requested: revision,
                compact_revision: self.compact_revision,
            });
        }
        if revision > self.visible_revision {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current: self.visible_revision,
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
        for (key, history) in self
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

    /// Key count and changes since `since` under `prefix`, at `at` (the visible revision when
    /// unset).
    pub(super) fn prefix_state(
        &self,
        prefix: &str,
        since: Revision,
        at: Option<Revision>,
    ) -> Result<PrefixState> {
        let revision = at.filter(|&r| r > 0).unwrap_or(self.visible_revision);
        if revision < self.compact_revision {
            return Err(StorageError::Compacted {
                requested: revision,
                compact_revision: self.compact_revision,
            });
        }
        if revision > self.visible_revision {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current: self.visible_revision,
            });
        }
        let mut state = PrefixState {
            revision,
            count: 0,
            modified_since: 0,
        };
        for (key, history) in self
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
}

/// The key's value as of `revision`, given its history.
pub(super) fn visible(key: &str, history: &[Version], revision: Revision) -> Option<KeyValue> {
    let n = history.partition_point(|v| v.mod_revision <= revision);
    to_kv(key, history.get(n.checked_sub(1)?)?)
}

pub(super) fn to_kv(key: &str, version: &Version) -> Option<KeyValue> {
    Some(KeyValue {
        key: key.to_owned(),
        value: version.value.clone()?,
        create_revision: version.create_revision,
        mod_revision: version.mod_revision,
    })
}

pub(super) fn make_event(key: &str, version: &Version, prev: Option<KeyValue>) -> StorageEvent {
    match to_kv(key, version) {
        Some(kv) => StorageEvent::Put { kv, prev },
        None => StorageEvent::Delete {
            key: key.to_owned(),
            revision: version.mod_revision,
            prev,
        },
    }
}
