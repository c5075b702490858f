//! Fan-out of the store's events to its watchers.
//!
//! A watch snapshots the matching history and registers itself under the same lock, so no
//! event falls between replay and live delivery and none is delivered twice. Events go to
//! watchers through unbounded tokio channels, in revision order, from inside the lock; a
//! watcher whose receiver is gone is dropped at the next delivery.
//!
//! With a write-ahead log, a write's event waits in [`State::undelivered`] until the log
//! writer has made its revision durable ([`State::make_visible`]), so a watcher never sees a
//! revision that a crash could still lose.

use std::ops::Bound;

use futures::StreamExt;
use kubecache_core::storage::{Result, Revision, StorageError, StorageEvent, WatchStream};
use tokio::sync::mpsc;

use super::mvcc::{State, make_event, to_kv};

/// A registered watch.
pub(super) struct Watcher {
    /// Only keys starting with this are delivered.
    pub(super) prefix: String,
    /// Only events at or after this revision are delivered (a watch may start in the future).
    pub(super) start_revision: Revision,
    /// The watch stream's channel; closed when the stream is dropped.
    pub(super) tx: mpsc::UnboundedSender<StorageEvent>,
}

impl State {
    /// Registers a watch of `prefix` from `start_revision` (after the current revision when
    /// `<= 0`) and returns its channel, which already holds the replayed history.
    pub(super) fn watch(
        &mut self,
        prefix: &str,
        start_revision: Revision,
    ) -> Result<mpsc::UnboundedReceiver<StorageEvent>> {
        let (tx, rx) = mpsc::unbounded_channel();
        // etcd: a watch from revision 0 (or below) starts after the current revision.
        let start = if start_revision > 0 {
            start_revision
        } else {
            self.visible_revision + 1
        };
        if start <= self.compact_revision {
            return Err(StorageError::Compacted {
                requested: start,
                compact_revision: self.compact_revision,
            });
        }
        // Replay the visible history; later events reach the watcher through delivery,
        // which also happens under this lock: no gap, no duplicate.
        for event in self.history(prefix, start) {
            let _ = tx.send(event);
        }
        self.watchers.push(Watcher {
            prefix: prefix.into(),
            start_revision: start,
            tx,
        });
        Ok(rx)
    }

    /// Marks every revision up to `revision` durable: visible to readers and delivered.
    pub(super) fn make_visible(&mut self, revision: Revision) {
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
    pub(super) fn history(&self, prefix: &str, start: Revision) -> Vec<StorageEvent> {
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
}

/// The stream a watcher reads its channel through; dropping it closes the channel, and the
/// watcher is removed at the next delivery.
pub(super) fn stream(rx: mpsc::UnboundedReceiver<StorageEvent>) -> WatchStream {
    futures::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        Some((Ok(event), rx))
    })
    .boxed()
}

/// Sends `event` to every watcher it matches, dropping watchers whose stream is gone.
pub(super) fn deliver(watchers: &mut Vec<Watcher>, event: &StorageEvent) {
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kubecache_core::storage::Backend;

    use crate::embedded::EmbeddedBackend;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
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
}
