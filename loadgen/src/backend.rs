//! The two things a scenario can load: a Kubernetes API server (kubecache or any other) over
//! HTTP, and etcd directly (the `--baseline etcd` run). Both offer the same operations, so a
//! scenario is written once: create / patch / delete a pod, LIST (all pods or one node's) and
//! WATCH from a resourceVersion. Against etcd, a "kubelet" watches the whole pods prefix and
//! filters on the client (etcd has no field selectors), writes are txns with kube's
//! preconditions, and lists are ranges.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The largest etcd range response the baseline accepts (kube-apiserver allows 2 GiB).
const MAX_LIST_RESPONSE_BYTES: usize = 1 << 30;

use bytes::Bytes;
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, WatchOptions};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde::de::IgnoredAny;

pub use crate::client::Conn;
use crate::client::{self, Client, encode_query};
use crate::pod::{Naming, ObjectFields, node_name, patch_json, pod_json};

/// A failed operation, printable.
#[derive(Debug)]
pub struct Error {
    pub message: String,
    /// HTTP status (or 410 for an etcd compaction), when there was one.
    pub code: Option<u16>,
    /// The server asked to come back later.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<client::Error> for Error {
    fn from(e: client::Error) -> Error {
        let retry_after = match &e {
            client::Error::Status(_, retry_after, _) => *retry_after,
            _ => None,
        };
        Error {
            code: e.status().map(|s| s.as_u16()),
            message: e.to_string(),
            retry_after,
        }
    }
}

impl From<etcd_client::Error> for Error {
    fn from(e: etcd_client::Error) -> Error {
        Error {
            message: format!("etcd: {e}"),
            code: None,
            retry_after: None,
        }
    }
}

fn error(message: impl Into<String>) -> Error {
    Error {
        message: message.into(),
        code: None,
        retry_after: None,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a watcher asks for.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// A kubelet: the pods on this node.
    Node(u32),
    /// An informer: every pod.
    All,
}

/// Which resourceVersion a LIST asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListRv {
    /// `resourceVersion=0`: any version the server has (a cache may answer).
    Any,
    /// No resourceVersion: the latest, consistent with storage.
    Latest,
    /// `resourceVersion=N&resourceVersionMatch=Exact`.
    Exact(u64),
}

/// A LIST's result.
pub struct Listed {
    pub rv: u64,
    /// Items (only counted when asked to parse the body).
    pub items: Option<u64>,
    pub bytes: u64,
}

/// What a watch stream delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
    Bookmark,
    /// An ERROR event with this code (410 = the resourceVersion is too old).
    Error(u16),
}

/// One watch event, reduced to what the accounting needs.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub kind: EventKind,
    /// (node, pod) of one of this run's pods; `None` for anything else.
    pub pod: Option<(u32, u32)>,
    pub generation: Option<u32>,
    pub rv: u64,
    pub sent_ns: Option<u64>,
}

#[derive(Clone)]
pub enum Backend {
    Kube(Arc<Kube>),
    Etcd(Arc<Etcd>),
}

pub struct Kube {
    pub client: Client,
    pub naming: Naming,
    /// The watches' `timeoutSeconds`: longer than any run, so a server ends them only early.
    pub watch_timeout: Duration,
}

pub struct Etcd {
    clients: Vec<etcd_client::Client>,
    next: AtomicUsize,
    /// Keys are `<prefix><namespace>/<name>`.
    prefix: String,
    pub naming: Naming,
}

impl Etcd {
    pub async fn connect(
        endpoints: &[String],
        connections: usize,
        prefix: &str,
        naming: Naming,
    ) -> Result<Etcd> {
        let mut clients = Vec::new();
        for _ in 0..connections.max(1) {
            let options = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(10))
                .with_timeout(Duration::from_secs(60));
            clients.push(etcd_client::Client::connect(endpoints, Some(options)).await?);
        }
        Ok(Etcd {
            clients,
            next: AtomicUsize::new(0),
            prefix: format!("{}/", prefix.trim_end_matches('/')),
            naming,
        })
    }

    fn client(&self) -> etcd_client::Client {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        self.clients[index].clone()
    }

    fn key(&self, name: &str) -> String {
        format!("{}{}/{}", self.prefix, self.naming.namespace, name)
    }

    /// Removes everything under the prefix (the baseline's own keys).
    pub async fn clear(&self) -> Result<()> {
        self.client()
            .delete(
                self.prefix.clone(),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
            .await?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct ListFields<'a> {
    #[serde(borrow, default)]
    metadata: crate::pod::Meta<'a>,
    #[serde(default)]
    items: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    object: ObjectFields<'a>,
}

impl Backend {
    pub fn naming(&self) -> &Naming {
        match self {
            Backend::Kube(kube) => &kube.naming,
            Backend::Etcd(etcd) => &etcd.naming,
        }
    }

    /// Makes sure the namespace exists (kube admission rejects pods in a missing one).
    pub async fn prepare(&self) -> Result<()> {
        match self {
            Backend::Kube(kube) => {
                let body = format!(
                    r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{}"}}}}"#,
                    kube.naming.namespace
                );
                match kube
                    .client
                    .call(
                        None,
                        Method::POST,
                        "/api/v1/namespaces",
                        Some(("application/json", Bytes::from(body))),
                    )
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.status() == Some(StatusCode::CONFLICT) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Backend::Etcd(_) => Ok(()),
        }
    }

    /// Creates pod `pod` on `node`; returns the new resourceVersion.
    pub async fn create(&self, node: u32, pod: u32, sent_ns: u64) -> Result<u64> {
        let json = pod_json(self.naming(), node, pod, 0, sent_ns);
        match self {
            Backend::Kube(kube) => {
                let path = format!("/api/v1/namespaces/{}/pods", kube.naming.namespace);
                let reply = kube
                    .client
                    .call(
                        None,
                        Method::POST,
                        &path,
                        Some(("application/json", Bytes::from(json))),
                    )
                    .await?;
                reply_rv(&reply.body)
            }
            Backend::Etcd(etcd) => {
                let key = etcd.key(&etcd.naming.pod_name(node, pod));
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key, json, None)]);
                txn_rv(etcd.client().txn(txn).await?)
            }
        }
    }

    /// Moves pod `pod` to `generation` (a merge patch; against etcd a txn replacing the
    /// object if it is still at `prev_rv`). Returns the new resourceVersion.
    pub async fn patch(
        &self,
        node: u32,
        pod: u32,
        generation: u32,
        sent_ns: u64,
        prev_rv: u64,
    ) -> Result<u64> {
        let name = self.naming().pod_name(node, pod);
        match self {
            Backend::Kube(kube) => {
                let path = format!("/api/v1/namespaces/{}/pods/{name}", kube.naming.namespace);
                let body = patch_json(generation, sent_ns);
                let reply = kube
                    .client
                    .call(
                        None,
                        Method::PATCH,
                        &path,
                        Some(("application/merge-patch+json", Bytes::from(body))),
                    )
                    .await?;
                reply_rv(&reply.body)
            }
            Backend::Etcd(etcd) => {
                let key = etcd.key(&name);
                let json = pod_json(&etcd.naming, node, pod, generation, sent_ns);
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        prev_rv as i64,
                    )])
                    .and_then([TxnOp::put(key, json, None)]);
                txn_rv(etcd.client().txn(txn).await?)
            }
        }
    }

    /// Deletes pod `pod` (immediately: grace period 0).
    pub async fn delete(&self, node: u32, pod: u32, prev_rv: u64) -> Result<()> {
        let name = self.naming().pod_name(node, pod);
        match self {
            Backend::Kube(kube) => {
                let path = format!(
                    "/api/v1/namespaces/{}/pods/{name}?gracePeriodSeconds=0",
                    kube.naming.namespace
                );
                kube.client.call(None, Method::DELETE, &path, None).await?;
                Ok(())
            }
            Backend::Etcd(etcd) => {
                let key = etcd.key(&name);
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        prev_rv as i64,
                    )])
                    .and_then([TxnOp::delete(key, None)]);
                txn_rv(etcd.client().txn(txn).await?).map(|_| ())
            }
        }
    }

    /// Deletes every pod of this run (best effort, after the measurements).
    pub async fn cleanup(&self) -> Result<()> {
        match self {
            Backend::Kube(kube) => {
                let selector =
                    encode_query(&format!("{}={}", crate::pod::RUN_LABEL, kube.naming.run));
                let path = format!(
                    "/api/v1/namespaces/{}/pods?labelSelector={selector}&gracePeriodSeconds=0",
                    kube.naming.namespace
                );
                kube.client.call(None, Method::DELETE, &path, None).await?;
                Ok(())
            }
            Backend::Etcd(etcd) => etcd.clear().await,
        }
    }

    /// LISTs the pods of `scope` (kube: cluster-wide with a field selector for a node; the
    /// list scenario lists one namespace). With `parse`, items are counted.
    pub async fn list(
        &self,
        conn: Option<&mut Conn>,
        scope: Scope,
        rv: ListRv,
        namespaced: bool,
        parse: bool,
    ) -> Result<Listed> {
        match self {
            Backend::Kube(kube) => {
                let mut path = if namespaced {
                    format!("/api/v1/namespaces/{}/pods", kube.naming.namespace)
                } else {
                    "/api/v1/pods".to_string()
                };
                let mut params = Vec::new();
                if let Scope::Node(node) = scope {
                    params.push(format!(
                        "fieldSelector={}",
                        encode_query(&format!("spec.nodeName={}", node_name(node)))
                    ));
                }
                match rv {
                    ListRv::Any => params.push("resourceVersion=0".to_string()),
                    ListRv::Latest => {}
                    ListRv::Exact(rv) => {
                        params.push(format!("resourceVersion={rv}&resourceVersionMatch=Exact"))
                    }
                }
                if !params.is_empty() {
                    path.push('?');
                    path.push_str(&params.join("&"));
                }
                let reply = if parse {
                    kube.client.call(conn, Method::GET, &path, None).await?
                } else {
                    kube.client
                        .call_discarding(conn, Method::GET, &path)
                        .await?
                };
                let bytes = reply.len;
                if parse {
                    let fields: ListFields = serde_json::from_slice(&reply.body)
                        .map_err(|e| error(format!("LIST body: {e}")))?;
                    let rv = fields
                        .metadata
                        .rv()
                        .ok_or_else(|| error("LIST without a resourceVersion"))?;
                    Ok(Listed {
                        rv,
                        items: Some(fields.items.len() as u64),
                        bytes,
                    })
                } else {
                    Ok(Listed {
                        rv: 0,
                        items: None,
                        bytes,
                    })
                }
            }
            Backend::Etcd(etcd) => {
                let prefix = match scope {
                    // One namespace: the same range as all of this run's pods.
                    _ if namespaced => format!("{}{}/", etcd.prefix, etcd.naming.namespace),
                    _ => etcd.prefix.clone(),
                };
                let mut options = GetOptions::new().with_prefix();
                match rv {
                    ListRv::Any => options = options.with_serializable(),
                    ListRv::Latest => {}
                    ListRv::Exact(rv) => options = options.with_revision(rv as i64),
                }
                // A LIST of 50,000 ~1 KiB pods is ~60 MB: far above gRPC's default 4 MiB
                // receive limit (as in kubecache's own etcd backend).
                let mut kv = etcd
                    .client()
                    .kv_client()
                    .max_decoding_message_size(MAX_LIST_RESPONSE_BYTES);
                let response = kv.get(prefix, Some(options)).await?;
                let rv = response.header().map(|h| h.revision()).unwrap_or(0) as u64;
                let mut bytes = 0u64;
                let mut items = 0u64;
                for kv in response.kvs() {
                    if let Scope::Node(node) = scope {
                        let of_node =
                            key_pod(&etcd.naming, kv.key()).is_some_and(|(n, _)| n == node);
                        if !of_node {
                            continue;
                        }
                    }
                    bytes += kv.value().len() as u64;
                    items += 1;
                }
                Ok(Listed {
                    rv,
                    items: Some(items),
                    bytes,
                })
            }
        }
    }

    /// Starts a watch of `scope` after resourceVersion `rv`. Returns once the server
    /// accepted it (kube: response headers; etcd: the "created" response).
    pub async fn watch(&self, conn: &mut Conn, scope: Scope, rv: u64) -> Result<Watch> {
        match self {
            Backend::Kube(kube) => {
                let mut path = format!(
                    "/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds={}",
                    kube.watch_timeout.as_secs().max(1)
                );
                if let Scope::Node(node) = scope {
                    path.push_str("&fieldSelector=");
                    path.push_str(&encode_query(&format!("spec.nodeName={}", node_name(node))));
                }
                let body = kube.client.stream(conn, &path).await?;
                Ok(Watch::Kube(KubeWatch {
                    body,
                    buffer: Vec::new(),
                    naming: kube.naming.clone(),
                }))
            }
            Backend::Etcd(etcd) => {
                let options = WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(rv as i64 + 1)
                    .with_progress_notify();
                let mut stream = etcd
                    .client()
                    .watch(etcd.prefix.clone(), Some(options))
                    .await?;
                // The first response says whether the watch was created.
                let first = tokio::time::timeout(Duration::from_secs(60), stream.message())
                    .await
                    .map_err(|_| error("etcd watch: no created response"))??
                    .ok_or_else(|| error("etcd watch closed at once"))?;
                if first.compact_revision() > 0 {
                    return Err(Error {
                        message: format!("etcd watch: compacted at {}", first.compact_revision()),
                        code: Some(410),
                        retry_after: None,
                    });
                }
                if first.canceled() {
                    return Err(error(format!(
                        "etcd watch canceled: {}",
                        first.cancel_reason()
                    )));
                }
                let node = match scope {
                    Scope::Node(node) => Some(node),
                    Scope::All => None,
                };
                Ok(Watch::Etcd(Box::new(EtcdWatch {
                    stream,
                    node,
                    naming: etcd.naming.clone(),
                    pending: etcd_events(&etcd.naming, &first, node),
                })))
            }
        }
    }
}

fn reply_rv(body: &[u8]) -> Result<u64> {
    let fields: ObjectFields =
        serde_json::from_slice(body).map_err(|e| error(format!("write reply: {e}")))?;
    fields
        .metadata
        .rv()
        .ok_or_else(|| error("write reply without a resourceVersion"))
}

fn txn_rv(response: etcd_client::TxnResponse) -> Result<u64> {
    if !response.succeeded() {
        return Err(Error {
            message: "etcd txn: precondition failed".to_string(),
            code: Some(409),
            retry_after: None,
        });
    }
    Ok(response.header().map(|h| h.revision()).unwrap_or(0) as u64)
}

/// (node, pod) of a key `<prefix><ns>/<name>`.
fn key_pod(naming: &Naming, key: &[u8]) -> Option<(u32, u32)> {
    let key = std::str::from_utf8(key).ok()?;
    naming.parse(key.rsplit('/').next()?)
}

/// A running watch.
pub enum Watch {
    Kube(KubeWatch),
    Etcd(Box<EtcdWatch>),
}

pub struct KubeWatch {
    body: Incoming,
    /// Bytes of an event not complete yet.
    buffer: Vec<u8>,
    naming: Naming,
}

pub struct EtcdWatch {
    stream: etcd_client::WatchStream,
    /// A kubelet's node: other nodes' events are dropped here, on the client.
    node: Option<u32>,
    naming: Naming,
    pending: Vec<Event>,
}

impl Watch {
    /// The next batch of events; `Ok(None)` when the server ended the watch.
    pub async fn next(&mut self) -> Result<Option<Vec<Event>>> {
        match self {
            Watch::Kube(watch) => loop {
                let Some(frame) = watch.body.frame().await else {
                    return Ok(None);
                };
                let frame = frame.map_err(|e| error(format!("watch stream: {e}")))?;
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                watch.buffer.extend_from_slice(&data);
                let events = parse_events(&mut watch.buffer, &watch.naming)?;
                if !events.is_empty() {
                    return Ok(Some(events));
                }
            },
            Watch::Etcd(watch) => {
                if !watch.pending.is_empty() {
                    return Ok(Some(std::mem::take(&mut watch.pending)));
                }
                loop {
                    let Some(response) = watch.stream.message().await? else {
                        return Ok(None);
                    };
                    if response.compact_revision() > 0 {
                        return Ok(Some(vec![error_event(410)]));
                    }
                    if response.canceled() {
                        return Ok(Some(vec![error_event(500)]));
                    }
                    let events = etcd_events(&watch.naming, &response, watch.node);
                    if !events.is_empty() {
                        return Ok(Some(events));
                    }
                }
            }
        }
    }
}

fn error_event(code: u16) -> Event {
    Event {
        kind: EventKind::Error(code),
        pod: None,
        generation: None,
        rv: 0,
        sent_ns: None,
    }
}

fn etcd_events(
    naming: &Naming,
    response: &etcd_client::WatchResponse,
    node: Option<u32>,
) -> Vec<Event> {
    let mut events = Vec::with_capacity(response.events().len());
    for event in response.events() {
        let Some(kv) = event.kv() else { continue };
        let pod = key_pod(naming, kv.key());
        if let Some(node) = node
            && pod.is_none_or(|(n, _)| n != node)
        {
            continue;
        }
        let (kind, generation, sent_ns) = match event.event_type() {
            etcd_client::EventType::Put => {
                let fields: ObjectFields = serde_json::from_slice(kv.value()).unwrap_or_default();
                let kind = if kv.create_revision() == kv.mod_revision() {
                    EventKind::Added
                } else {
                    EventKind::Modified
                };
                (
                    kind,
                    fields.metadata.generation(),
                    fields.metadata.sent_ns(),
                )
            }
            etcd_client::EventType::Delete => (EventKind::Deleted, None, None),
        };
        events.push(Event {
            kind,
            pod,
            generation,
            rv: kv.mod_revision() as u64,
            sent_ns,
        });
    }
    events
}

/// Parses every complete watch event in `buffer` and keeps the incomplete rest. Kube frames
/// a JSON watch as one object per line; the parser does not rely on the newlines, only on
/// JSON's own framing, so objects split across chunks or packed into one both work.
pub fn parse_events(buffer: &mut Vec<u8>, naming: &Naming) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    let mut consumed = 0;
    {
        let mut stream = serde_json::Deserializer::from_slice(buffer).into_iter::<RawEvent>();
        loop {
            match stream.next() {
                None => {
                    consumed = buffer.len();
                    break;
                }
                Some(Ok(raw)) => {
                    consumed = stream.byte_offset();
                    events.push(event_of(&raw, naming));
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(error(format!("watch event: {e}"))),
            }
        }
    }
    buffer.drain(..consumed);
    Ok(events)
}

fn event_of(raw: &RawEvent<'_>, naming: &Naming) -> Event {
    let meta = &raw.object.metadata;
    let kind = match raw.kind.as_ref() {
        "ADDED" => EventKind::Added,
        "MODIFIED" => EventKind::Modified,
        "DELETED" => EventKind::Deleted,
        "BOOKMARK" => EventKind::Bookmark,
        _ => EventKind::Error(raw.object.code.unwrap_or(500)),
    };
    Event {
        kind,
        pod: meta.name.as_deref().and_then(|name| naming.parse(name)),
        generation: meta.generation(),
        rv: meta.rv().unwrap_or(0),
        sent_ns: meta.sent_ns(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_events_are_parsed_across_chunk_boundaries() {
        let naming = Naming::new("r1", "loadgen");
        let added = format!(
            r#"{{"type":"ADDED","object":{}}}"#,
            pod_json(&naming, 3, 9, 0, 77)
        );
        let bookmark =
            r#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"12"}}}"#;
        let error = r#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}"#;
        let stream = format!("{added}\n{bookmark}\n{error}\n");
        // Feed it in awkward pieces: events come out only once complete.
        let mut buffer = Vec::new();
        let mut events = Vec::new();
        for chunk in stream.as_bytes().chunks(37) {
            buffer.extend_from_slice(chunk);
            events.extend(parse_events(&mut buffer, &naming).expect("valid stream"));
        }
        assert!(buffer.iter().all(u8::is_ascii_whitespace));
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].kind, EventKind::Added);
        assert_eq!(events[0].pod, Some((3, 9)));
        assert_eq!(events[0].generation, Some(0));
        assert_eq!(events[0].sent_ns, Some(77));
        assert_eq!(events[1].kind, EventKind::Bookmark);
        assert_eq!(events[1].rv, 12);
        assert_eq!(events[2].kind, EventKind::Error(410));
        // Garbage is an error, not a hang.
        let mut bad = b"{\"type\": ]".to_vec();
        assert!(parse_events(&mut bad, &naming).is_err());
    }
}
