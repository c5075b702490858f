//! WATCH: a stream of newline-delimited `{"type", "object"}` frames over chunked HTTP.
//!
//! Start: `resourceVersion` unset or `0` → synthetic ADDED for every current object, then
//! live changes; `N` → every change after N. With `sendInitialEvents=true` the initial
//! ADDED events end with a BOOKMARK annotated `k8s.io/initial-events-end`. A start revision
//! that was compacted away ends the stream with an ERROR event carrying a 410 Expired Status.
//! Selectors have enter/leave semantics: an object that starts matching is ADDED, one that
//! stops matching is DELETED.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use kubecache_core::registry::ResourceInfo;
use kubecache_core::status::ApiError;
use kubecache_core::storage::{Revision, StorageError, StorageEvent};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::present_value;
use super::read::{Listed, Selectors, list_objects, wait_for_revision};
use crate::api::{Call, Reply, storage_error};
use crate::objects;

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// Frames buffered per watch before the producer waits for the connection.
const FRAME_BUFFER: usize = 256;

fn frame(event_type: &str, object: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(&json!({"type": event_type, "object": object}))
        .expect("a JSON value always serializes");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark(resource: &ResourceInfo, revision: Revision, initial_events_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": resource.kind, "apiVersion": resource.api_version(), "metadata": metadata})
}

fn timeout(call: &Call<'_>) -> Result<Duration, ApiError> {
    match call.query.get("timeoutSeconds").filter(|v| !v.is_empty()) {
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {v:?}"))),
        // kube-apiserver: --min-request-timeout (1800 s) times a random factor in [1, 2).
        None => Ok(Duration::from_secs(
            1800 + (uuid::Uuid::new_v4().as_u128() % 1800) as u64,
        )),
    }
}

pub async fn watch(call: &Call<'_>) -> Result<Reply, ApiError> {
    let resource = call.request.resource;
    let selectors = Selectors::from_call(call)?;
    let timeout = timeout(call)?;
    let bookmarks = call.query.flag("allowWatchBookmarks")?;
    let send_initial = call.query.flag("sendInitialEvents")?;
    let rv = call.query.get("resourceVersion").filter(|v| !v.is_empty());
    let rv = rv.map(objects::parse_resource_version).transpose()?;
    if call.query.get("sendInitialEvents").is_some() {
        if call.query.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                vec![kubecache_core::status::Cause::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                )],
            ));
        }
        if send_initial && !bookmarks {
            return Err(ApiError::bad_request(
                "sendInitialEvents requires allowWatchBookmarks=true",
            ));
        }
    }

    // The initial state, when the client asked for one.
    let initial: Option<Listed> = if send_initial || rv.is_none() || rv == Some(0) {
        if let Some(n) = rv.filter(|n| *n > 0) {
            wait_for_revision(call, n).await?;
        }
        let initial_call = Call {
            api: call.api,
            request: call.request.clone(),
            query: crate::api::Query::default(),
            headers: call.headers.clone(),
            body: Bytes::new(),
        };
        Some(list_objects(&initial_call, &selectors).await?)
    } else {
        None
    };
    let start_revision = match (&initial, rv) {
        (Some(listed), _) => listed.revision + 1,
        (None, Some(n)) => n + 1,
        (None, None) => unreachable!("no resourceVersion always lists first"),
    };

    let prefix = call
        .api
        .collection_prefix(resource, call.request.namespace.as_deref());
    let (tx, rx) = mpsc::channel::<Bytes>(FRAME_BUFFER);
    match call.api.reads.watch(&prefix, start_revision).await {
        Ok(events) => {
            let watcher = Watcher {
                resource,
                selectors,
                tx,
                last_revision: start_revision - 1,
            };
            tokio::spawn(watcher.run(events, initial, send_initial, bookmarks, timeout));
        }
        Err(StorageError::Compacted { requested, .. }) => {
            let status = ApiError::expired(format!(
                "too old resource version: {} ({requested})",
                requested - 1
            ));
            let _ = tx.try_send(frame("ERROR", &status.to_status()));
        }
        Err(e) => return Err(storage_error(e)),
    }
    Ok(Reply::Stream(stream_response(rx)))
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|frame| (Ok::<_, Infallible>(frame), rx))
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// One client's watch: turns storage events into frames for its connection.
struct Watcher {
    resource: &'static ResourceInfo,
    selectors: Selectors,
    /// The connection's frame queue; closed when the client goes away.
    tx: mpsc::Sender<Bytes>,
    /// The newest revision sent, for bookmarks.
    last_revision: Revision,
}

impl Watcher {
    fn matches(&self, object: &Value) -> bool {
        self.selectors.matches(self.resource, object)
    }

    async fn send(&self, event_type: &str, object: Value) -> bool {
        let object = present_value(self.resource, object);
        self.tx.send(frame(event_type, &object)).await.is_ok()
    }

    async fn run(
        mut self,
        mut events: kubecache_core::storage::WatchStream,
        initial: Option<Listed>,
        send_initial_bookmark: bool,
        bookmarks: bool,
        timeout: Duration,
    ) {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        if let Some(listed) = initial {
            for object in listed.items {
                if !self.send("ADDED", object).await {
                    return;
                }
            }
            self.last_revision = listed.revision;
            if send_initial_bookmark {
                let mark = bookmark(self.resource, listed.revision, true);
                if self.tx.send(frame("BOOKMARK", &mark)).await.is_err() {
                    return;
                }
            }
        }
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = self.tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let mark = bookmark(self.resource, self.last_revision, false);
                    if self.tx.send(frame("BOOKMARK", &mark)).await.is_err() {
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
                        let err = match e {
                            StorageError::Compacted { .. } => ApiError::expired(format!("too old resource version: {e}")),
                            other => storage_error(other),
                        };
                        let _ = self.tx.send(frame("ERROR", &err.to_status())).await;
                        return;
                    }
                },
            }
        }
    }

    /// Sends what `event` means for this watcher's selectors; false once the client is gone.
    async fn on_event(&mut self, event: StorageEvent) -> bool {
        self.last_revision = event.revision();
        let decode = |kv: &kubecache_core::storage::KeyValue| objects::decode(kv).ok();
        match event {
            StorageEvent::Progress { .. } => true,
            StorageEvent::Put { kv, prev } => {
                let Some(object) = decode(&kv) else {
                    return true;
                };
                let was = prev
                    .as_ref()
                    .and_then(decode)
                    .is_some_and(|o| self.matches(&o));
                let is = self.matches(&object);
                match (was, is) {
                    (false, true) => self.send("ADDED", object).await,
                    (true, true) => self.send("MODIFIED", object).await,
                    (true, false) => self.send("DELETED", object).await,
                    (false, false) => true,
                }
            }
            StorageEvent::Delete { revision, prev, .. } => {
                let Some(mut object) = prev.as_ref().and_then(decode) else {
                    return true;
                };
                if !self.matches(&object) {
                    return true;
                }
                objects::set_resource_version(&mut object, revision);
                self.send("DELETED", object).await
            }
        }
    }
}
