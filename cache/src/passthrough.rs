//! Reads served from storage directly: every LIST is a ranged read, every WATCH its own storage
//! watch, each frame encoded for its one watcher. This is kube-apiserver with
//! `--watch-cache=false`, and the reference the watch cache is tested against.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::status::ApiError;
use kubecache_core::storage::{
    Backend, KeyValue, ListOptions, Result, Revision, StorageError, StorageEvent, WatchStream,
};
use tokio::sync::mpsc;

use crate::object::{CachedObject, ObjectCodec, View};
use crate::{
    FrameStream, ListRequest, ListResult, ReadAt, ReadPath, WAIT_FOR_REVISION, WatchRequest,
    WatchStart,
};

/// Frames buffered per watch before its producer waits for the connection.
const FRAME_BUFFER: usize = 1024;

/// Reads straight from a backend.
#[derive(Clone)]
pub struct Passthrough {
    backend: Arc<dyn Backend>,
    codec: Arc<dyn ObjectCodec>,
}

impl Passthrough {
    pub fn new(backend: Arc<dyn Backend>, codec: Arc<dyn ObjectCodec>) -> Self {
        Passthrough { backend, codec }
    }

    /// Waits until storage has reached `revision`, else `FutureRevision`.
    async fn wait_for(&self, revision: Revision) -> Result<Revision> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_REVISION;
        loop {
            let current = self.backend.current_revision().await?;
            if current >= revision {
                return Ok(current);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StorageError::FutureRevision {
                    requested: revision,
                    current,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The storage revision a read at `at` uses (`None`: the latest).
    async fn revision_for(&self, at: ReadAt) -> Result<Option<Revision>> {
        match at {
            ReadAt::Latest | ReadAt::Any => Ok(None),
            ReadAt::NotOlderThan(n) => self.wait_for(n).await.map(|_| None),
            ReadAt::Exact(n) => Ok(Some(n)),
        }
    }

    fn cached(&self, resource: &ResourceInfo, kv: KeyValue) -> Result<Arc<CachedObject>> {
        CachedObject::from_kv(self.codec.as_ref(), resource, kv)
    }
}

#[async_trait]
impl ReadPath for Passthrough {
    async fn get(
        &self,
        resource: &ResourceInfo,
        key: &str,
        at: ReadAt,
    ) -> Result<Option<Arc<CachedObject>>> {
        let kv = match self.revision_for(at).await? {
            None => self.backend.get(key).await?,
            Some(revision) => self
                .backend
                .list(ListOptions {
                    prefix: key.to_string(),
                    start_key: None,
                    limit: Some(1),
                    revision: Some(revision),
                })
                .await?
                .kvs
                .into_iter()
                .find(|kv| kv.key == key),
        };
        kv.map(|kv| self.cached(resource, kv)).transpose()
    }

    async fn list(&self, request: ListRequest) -> Result<ListResult> {
        let prefix = request.collection_prefix();
        let mut revision = self.revision_for(request.at).await?;
        let mut start_key = request.start_key.clone();
        let mut objects = Vec::new();
        loop {
            let page = self
                .backend
                .list(ListOptions {
                    prefix: prefix.clone(),
                    start_key: start_key.clone(),
                    limit: request.limit.map(|l| l - objects.len()),
                    revision,
                })
                .await?;
            // Every further page reads the same revision: one consistent snapshot.
            revision = Some(page.revision);
            let returned = page.kvs.len() as i64;
            let last_key = page.kvs.last().map(|kv| kv.key.clone());
            for kv in page.kvs {
                let object = self.cached(&request.resource, kv)?;
                if request.filter.matches(&object.attrs) {
                    objects.push(object);
                }
            }
            let full = request.limit.is_some_and(|l| objects.len() >= l);
            if !page.more || last_key.is_none() || full {
                return Ok(ListResult {
                    objects,
                    revision: page.revision,
                    continue_after: last_key.filter(|_| page.more),
                    remaining: (page.more && request.filter.is_everything())
                        .then(|| page.count - returned),
                });
            }
            start_key = last_key.map(|k| format!("{k}\0"));
        }
    }

    async fn watch(&self, request: WatchRequest) -> Result<FrameStream> {
        let (initial, start) = match request.start {
            WatchStart::Initial(at) => {
                let listed = self
                    .list(ListRequest {
                        resource: request.resource.clone(),
                        prefix: request.prefix.clone(),
                        start_key: None,
                        limit: None,
                        at,
                        filter: request.filter.clone(),
                        remaining_hint: None,
                    })
                    .await?;
                let revision = listed.revision;
                (Some(listed), revision)
            }
            WatchStart::After(revision) => (None, revision),
        };
        let events = self
            .backend
            .watch(&request.collection_prefix(), start + 1)
            .await?;
        let (tx, rx) = mpsc::channel(FRAME_BUFFER);
        let watcher = Watcher {
            codec: self.codec.clone(),
            request,
            tx,
            last_revision: start,
        };
        tokio::spawn(watcher.run(initial, events));
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        })
        .boxed())
    }

    fn json(&self, object: &CachedObject, resource: &ResourceInfo) -> Bytes {
        self.codec
            .encode(&object.kv.value, object.kv.mod_revision, resource)
    }

    fn protobuf(&self, object: &CachedObject, resource: &ResourceInfo) -> Bytes {
        self.codec
            .encode_protobuf(&object.kv.value, object.kv.mod_revision, resource)
    }

    async fn ready(&self) -> Result<()> {
        self.backend.health().await
    }
}

/// One client's watch over its own storage watch.
struct Watcher {
    codec: Arc<dyn ObjectCodec>,
    request: WatchRequest,
    /// The connection's frames; closed when the client goes away.
    tx: mpsc::Sender<Bytes>,
    /// The newest revision the client has been brought to, for bookmarks.
    last_revision: Revision,
}

impl Watcher {
    async fn send(&self, frame: Bytes) -> bool {
        self.tx.send(frame).await.is_ok()
    }

    /// How this watcher wants its frames.
    fn view(&self) -> View {
        View {
            shape: 0,
            table: self.request.table,
            protobuf: self.request.protobuf,
        }
    }

    fn object_frame(&self, event_type: &str, stored: &[u8], revision: Revision) -> Bytes {
        let resource = &*self.request.resource;
        let encoded = if self.request.table {
            self.codec.encode_table(stored, revision, resource)
        } else if self.request.protobuf {
            self.codec.encode_protobuf(stored, revision, resource)
        } else {
            self.codec.encode(stored, revision, resource)
        };
        self.codec.watch_frame(self.view(), event_type, &encoded)
    }

    fn error_frame(&self, error: &ApiError) -> Bytes {
        let status = error.status().to_json();
        self.codec.watch_frame(self.view(), "ERROR", &status)
    }

    fn bookmark(&self, initial_events_end: bool) -> Bytes {
        let bookmark = self.codec.bookmark(
            &self.request.resource,
            self.last_revision,
            initial_events_end,
        );
        self.codec.watch_frame(self.view(), "BOOKMARK", &bookmark)
    }

    fn matches(&self, kv: &KeyValue) -> bool {
        self.codec
            .attributes(&self.request.resource, kv)
            .is_ok_and(|attrs| self.request.filter.matches(&attrs))
    }

    async fn run(mut self, initial: Option<ListResult>, mut events: WatchStream) {
        let started = tokio::time::Instant::now();
        let deadline = tokio::time::sleep(self.request.timeout);
        tokio::pin!(deadline);
        // With bookmarks, one goes out shortly before the timeout so the client resumes from
        // a fresh revision.
        let last_bookmark_at =
            started + self.request.timeout.saturating_sub(Duration::from_secs(2));
        let mut ticker = tokio::time::interval_at(
            started + self.request.bookmark_interval.min(self.request.timeout),
            self.request.bookmark_interval,
        );
        let mut final_bookmark_sent = false;
        if let Some(listed) = initial {
            for object in &listed.objects {
                let frame = self.object_frame("ADDED", &object.kv.value, object.kv.mod_revision);
                if !self.send(frame).await {
                    return;
                }
            }
            self.last_revision = listed.revision;
            if self.request.initial_events_end && !self.send(self.bookmark(true)).await {
                return;
            }
        }
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                _ = ticker.tick(), if self.request.bookmarks => {
                    if !self.send(self.bookmark(false)).await {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(last_bookmark_at), if self.request.bookmarks && !final_bookmark_sent => {
                    final_bookmark_sent = true;
                    if !self.send(self.bookmark(false)).await {
                        return;
                    }
                }
                event = events.next() => match event {
                    None => return,
                    Some(Ok(event)) => {
                        if !self.on_event(event).await {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        let error = match e {
                            StorageError::Compacted { .. } => ApiError::expired(format!("too old resource version: {e}")),
                            other => ApiError::internal(other.to_string()),
                        };
                        let _ = self.send(self.error_frame(&error)).await;
                        return;
                    }
                },
            }
        }
    }

    /// Sends what `event` means for this watcher's filter (enter → ADDED, leave → DELETED);
    /// false once the client is gone.
    async fn on_event(&mut self, event: StorageEvent) -> bool {
        self.last_revision = event.revision();
        match event {
            StorageEvent::Progress { .. } => true,
            StorageEvent::Put { kv, prev } => {
                let was = prev.as_ref().is_some_and(|p| self.matches(p));
                let is = self.matches(&kv);
                match (was, is) {
                    (false, true) => {
                        self.send(self.object_frame("ADDED", &kv.value, kv.mod_revision))
                            .await
                    }
                    (true, true) => {
                        self.send(self.object_frame("MODIFIED", &kv.value, kv.mod_revision))
                            .await
                    }
                    (true, false) => {
                        let prev = prev.expect("matched, so present");
                        self.send(self.object_frame("DELETED", &prev.value, kv.mod_revision))
                            .await
                    }
                    (false, false) => true,
                }
            }
            StorageEvent::Delete { revision, prev, .. } => match prev {
                Some(prev) if self.matches(&prev) => {
                    self.send(self.object_frame("DELETED", &prev.value, revision))
                        .await
                }
                _ => true,
            },
        }
    }
}
