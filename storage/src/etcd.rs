//! The etcd backend: [`Backend`] over etcd's v3 gRPC API (etcd-client 0.21).
//!
//! How the contract maps onto etcd:
//!
//! | [`Backend`] | etcd |
//! |---|---|
//! | `get` | `Range` on the key (linearizable) |
//! | `list` | `Range [start_key or prefix, prefix+1)` with `limit` and `revision`; `count` is etcd's, so it covers the keys from `start_key` on. Unlimited or large reads are split into internal pages of at most [`LIST_CHUNK`] keys, all at the revision of the first page (halved further if a page exceeds the response size limit), so a list is never bounded by the gRPC message size |
//! | `create` | `Txn` if `create_revision(key) == 0` then `Put` → else `KeyExists` |
//! | `update` | `Txn` if `mod_revision(key) == expected && create_revision(key) > 0` then `Put`, `Range(keys_only)` → else `Range(key)`: `Conflict{current}`, or `NotFound` when the key is missing |
//! | `delete` | `DeleteRange(prev_kv)`, or with an expected revision the same `Txn` shape as `update` |
//! | `watch` | one gRPC watch stream per call: `Watch [prefix, prefix+1)` from `start_revision` with `prev_kv` and `progress_notify` |
//! | `current_revision` | `Range(count_only)` on a probe key: the response header's revision |
//! | `compact` | `Compact(revision)` (not physical) |
//!
//! Errors: gRPC `mvcc: required revision has been compacted` → [`StorageError::Compacted`]
//! (etcd does not say up to where, so the compacted revision is learned from a probe watch at
//! revision 1, which etcd cancels with `compact_revision`); `mvcc: required revision is a future
//! revision` → [`StorageError::FutureRevision`] (with the current revision read afterwards);
//! `request is too large` or gRPC's `received message larger than max` on a write →
//! [`StorageError::ValueTooLarge`]; transport failures, `Unavailable`/`DeadlineExceeded`
//! statuses, etcd's `no leader`/`timed out` and our own request timeout →
//! [`StorageError::Unavailable`]; anything else → [`StorageError::Internal`].
//!
//! Timeouts: the gRPC channel connects lazily and, while etcd is down, requests wait for a
//! connection forever; so every request here runs under [`EtcdOptions::request_timeout`] and
//! fails with `Unavailable` when it expires. [`EtcdBackend::connect`] does not contact etcd
//! (the server must start while etcd is down); [`Backend::health`] does.
//!
//! Several members: etcd-client balances requests over all endpoints, so while a member is
//! down some requests reach it and fail. Within the request timeout, reads are sent again
//! after any `Unavailable` (they change nothing), writes only when the request never left
//! this process (no connection to the member), as etcd's Go client (`clientv3`) does: a
//! write that may have been applied is never repeated, its outcome is reported unknown
//! (`Unavailable`). Watches are not retried here: a broken stream ends with `Unavailable`
//! and its consumer re-watches from the last revision it saw (the watch cache does). A
//! member that does not fail but hangs (a stopped process, a partition) would keep taking its
//! share of requests until each times out, so with several endpoints a background task
//! probes every member's `Status` each [`MEMBER_PROBE_PERIOD`] and takes a member that fails
//! [`MEMBER_FAILURES_TO_REMOVE`] probes in a row (no answer within
//! [`MEMBER_PROBE_TIMEOUT`], or no leader) out of the balancer, and puts it back at its
//! first good answer; the last member in rotation is never taken out.
//!
//! TLS: [`EtcdOptions::tls`] (kube-apiserver's `--etcd-cafile`, `--etcd-certfile`,
//! `--etcd-keyfile`) verifies the members against a CA and presents a client certificate;
//! the endpoints are then `https://`.
//!
//! Compaction: [`EtcdBackend::run_compactor`] is kube-apiserver's compactor, with its
//! protocol on the key `compact_rev_key` so that any number of kube-apiservers and kubecache
//! replicas compact once per interval between them (see [`EtcdBackend::compact_round`]).
//!
//! Watches: etcd answers a watch on a compacted revision with `created`, then (up to ~100 ms
//! later, from its sync loop) `canceled` with `compact_revision`. `watch()` therefore waits for
//! `created`, then checks the start revision with a `count_only` range at that revision (same
//! compaction rule as the watch) and, if it is compacted, returns `Err(Compacted)` carrying the
//! revision from etcd's cancel response. A watch that etcd cancels later (compaction overtook a
//! slow watcher) yields one `Err(Compacted)` and ends; a broken stream yields one
//! `Err(Unavailable)` and ends. Watch responses without events (periodic `progress_notify`, or
//! after [`EtcdBackend::request_progress`]) become [`StorageEvent::Progress`].
//!
//! etcd 3.4.23 caveat (etcd#15220, fixed in 3.4.31): a *requested* progress notification
//! (watch id -1) is sent on a side channel with the store's current revision and can overtake
//! events etcd is still replaying to a watch that started in the past (observed here: progress
//! at 2001 arriving before the replay of revisions 2..2001). Mitigation: until such a watch has
//! delivered an event at or after the revision etcd reported when creating it (or received a
//! periodic notification, which etcd sends in order and only to caught-up watchers), a
//! requested notification at `R` is passed on only if the store shows no change under the
//! prefix between the last delivered revision and `R` (no key with a newer mod_revision, same
//! key count); otherwise it is dropped. Progress never goes backwards behind a delivered
//! event. Residual gaps: a key both created and deleted inside that window escapes the check,
//! and a caught-up watch can still see a requested notification overtake events already queued
//! on the server; consumers needing a strict barrier should not rely on requested progress
//! with etcd < 3.4.31.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, Txn, TxnOp,
    TxnOpResponse, TxnResponse, WatchClient, WatchOptions, WatchRequestSender, WatchResponse,
    WatchResponseStream,
};
use futures::StreamExt;
use kubecache_core::storage::{
    Backend, Deleted, KeyValue, ListOptions, ListPage, PrefixState, Result, Revision, StorageError,
    StorageEvent, WatchStream,
};

/// The largest gRPC response accepted from a `Range` (etcd-client's default is 4 MiB). Larger
/// lists are read in several internal pages.
pub const MAX_RANGE_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// The largest gRPC message accepted on a watch stream. etcd batches up to 1,000 revisions in
/// one watch response and sends messages up to 2 GiB, and a watch cannot be re-paged, so the
/// limit is etcd's own.
pub const MAX_WATCH_RESPONSE_BYTES: usize = i32::MAX as usize;

/// Keys per internal `Range` request of a `list` (halved while a page exceeds
/// [`MAX_RANGE_RESPONSE_BYTES`]).
pub const LIST_CHUNK: usize = 10_000;

/// The key `current_revision` ranges over (count only); any key works, it need not exist.
const PROBE_KEY: &[u8] = b"\0kubecache/revision-probe";

/// Connection settings of an [`EtcdBackend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// How long one TCP connection attempt to an endpoint may take.
    pub connect_timeout: Duration,
    /// How long any single request may take (including waiting for a connection), after which
    /// it fails with [`StorageError::Unavailable`]. For a `list` it bounds each internal page;
    /// for a `watch` it bounds opening the stream, not the stream's lifetime. Retries of a
    /// request (see the module documentation) happen within it.
    pub request_timeout: Duration,
    /// Mutual TLS with the members; `None` for plain `http://` endpoints.
    pub tls: Option<EtcdTls>,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// TLS settings for the connections to etcd, as PEM.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    /// The CA bundle the members' serving certificates are verified with (`--etcd-cafile`);
    /// `None`: the system's roots are not loaded, so this is required in practice.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate chain and its private key (`--etcd-certfile`,
    /// `--etcd-keyfile`), presented to members that require client certificates.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("EtcdTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.client.is_some())
            .finish()
    }
}

impl EtcdTls {
    fn options(&self) -> etcd_client::TlsOptions {
        let mut tls = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.ca_pem {
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &self.client {
            tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
        }
        tls
    }
}

/// How many times a request is sent at most (the first time included), all within the
/// request timeout.
const MAX_ATTEMPTS: u32 = 5;

/// The pause before sending a request again, times the attempt number.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Which failed requests may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idempotence {
    /// A read: sent again after any `Unavailable`.
    Read,
    /// A write: sent again only if it never reached etcd.
    Write,
}

/// How often each member is probed when there are several endpoints.
pub const MEMBER_PROBE_PERIOD: Duration = Duration::from_secs(1);

/// How long a probe waits for a member's status.
pub const MEMBER_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Failed probes in a row after which a member leaves the balancer.
pub const MEMBER_FAILURES_TO_REMOVE: u32 = 2;

/// The key of kube-apiserver's compaction protocol (`compactRevKey` in kube's
/// `storage/etcd3/compact.go`). Its value is the revision the last winner compacted to; its
/// version is the protocol's logical clock.
pub const COMPACT_REV_KEY: &str = "compact_rev_key";

/// A [`Backend`] backed by an etcd cluster. Cheap to share behind an `Arc`; all requests run
/// concurrently over one multiplexed gRPC channel.
pub struct EtcdBackend {
    /// KV client (range, txn, delete, compact) with the raised response size limit.
    kv: KvClient,
    /// Watch client; every `watch()` opens its own gRPC stream with it.
    watch: WatchClient,
    /// Maintenance client (status: the database size).
    maintenance: etcd_client::MaintenanceClient,
    /// Timeouts applied to every request.
    options: EtcdOptions,
    /// Bumped by [`EtcdBackend::request_progress`]; every live watch stream listens and asks
    /// etcd for a progress notification when it changes.
    progress: tokio::sync::watch::Sender<u64>,
    /// The task that takes hung members out of the balancer (several endpoints only);
    /// stopped on drop.
    member_probes: Option<tokio::task::AbortHandle>,
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        if let Some(probes) = &self.member_probes {
            probes.abort();
        }
    }
}

/// Probes every member (`endpoints[i]` through `probes[i]`, a client of that member alone)
/// and keeps in `client`'s balancer those that answer with a leader (see the module
/// documentation).
async fn tend_members(client: Client, endpoints: Vec<String>, probes: Vec<Client>) {
    let mut in_rotation = vec![true; endpoints.len()];
    let mut failures = vec![0u32; endpoints.len()];
    let mut ticks = tokio::time::interval(MEMBER_PROBE_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let answers = futures::future::join_all(probes.iter().map(|probe| {
            let mut maintenance = probe.maintenance_client();
            async move {
                matches!(
                    tokio::time::timeout(MEMBER_PROBE_TIMEOUT, maintenance.status()).await,
                    Ok(Ok(status)) if status.leader() != 0
                )
            }
        }))
        .await;
        for (i, healthy) in answers.into_iter().enumerate() {
            let endpoint = &endpoints[i];
            if healthy {
                failures[i] = 0;
                if !in_rotation[i] && client.add_endpoint(endpoint).await.is_ok() {
                    in_rotation[i] = true;
                    tracing::info!(endpoint, "etcd member answers again: back in rotation");
                }
                continue;
            }
            failures[i] += 1;
            let others = in_rotation.iter().filter(|&&r| r).count() - usize::from(in_rotation[i]);
            if in_rotation[i]
                && failures[i] >= MEMBER_FAILURES_TO_REMOVE
                && others > 0
                && client.remove_endpoint(endpoint).await.is_ok()
            {
                in_rotation[i] = false;
                tracing::warn!(endpoint, "etcd member does not answer: out of rotation");
            }
        }
    }
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What a compactor knows after a round of [`EtcdBackend::compact_round`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactRound {
    /// The version of [`COMPACT_REV_KEY`] seen (or set) in the round: the protocol's clock.
    pub clock: i64,
    /// etcd's revision during the round: what this compactor compacts to if it wins the next.
    pub revision: Revision,
    /// The revision this compactor compacted etcd to in the round, if it won and compacted.
    pub compacted: Option<Revision>,
}

/// A failed request before it is mapped to a [`StorageError`].
enum RawError {
    /// Our own timeout expired.
    Timeout,
    /// etcd-client reported an error.
    Etcd(etcd_client::Error),
}

/// What a [`RawError`] means.
enum ErrorKind {
    Compacted,
    FutureRevision,
    TooLarge,
    /// The response exceeded our decoding limit.
    ResponseTooLarge,
    Unavailable(String),
    Internal(String),
}

fn classify(error: &RawError) -> ErrorKind {
    match error {
        RawError::Timeout => ErrorKind::Unavailable("etcd request timed out".into()),
        RawError::Etcd(error) => classify_etcd(error),
    }
}

fn classify_etcd(error: &etcd_client::Error) -> ErrorKind {
    use etcd_client::Error as E;
    match error {
        E::GRpcStatus(status) => {
            use tonic_code::*;
            let message = status.message();
            if message.contains("required revision has been compacted") {
                ErrorKind::Compacted
            } else if message.contains("required revision is a future revision") {
                ErrorKind::FutureRevision
            } else if message.contains("request is too large")
                || message.contains("received message larger than max")
            {
                ErrorKind::TooLarge
            } else if message.contains("decoded message length too large") {
                ErrorKind::ResponseTooLarge
            } else {
                let code = status.code() as i32;
                let text = format!("etcd: {message} ({:?})", status.code());
                if matches!(
                    code,
                    UNAVAILABLE | DEADLINE_EXCEEDED | CANCELLED | UNKNOWN | RESOURCE_EXHAUSTED
                ) || message.contains("no leader")
                    || message.contains("timed out")
                    || message.contains("leader changed")
                {
                    ErrorKind::Unavailable(text)
                } else {
                    ErrorKind::Internal(text)
                }
            }
        }
        E::TransportError(_) | E::IoError(_) | E::WatchError(_) | E::EndpointError(_) => {
            ErrorKind::Unavailable(format!("etcd: {error}"))
        }
        _ => ErrorKind::Internal(format!("etcd: {error}")),
    }
}

/// gRPC status codes (numeric, as in the gRPC spec) so that no direct `tonic` dependency is
/// needed.
mod tonic_code {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const UNAVAILABLE: i32 = 14;
}

/// Maps an error of a write to `key` carrying `size` bytes.
fn write_error(error: RawError, key: &str, size: usize) -> StorageError {
    match classify(&error) {
        ErrorKind::TooLarge => StorageError::ValueTooLarge {
            key: key.to_owned(),
            size,
        },
        kind => simple_error(kind),
    }
}

/// Maps the kinds that need no context.
fn simple_error(kind: ErrorKind) -> StorageError {
    match kind {
        ErrorKind::Unavailable(message) => StorageError::Unavailable(message),
        ErrorKind::Internal(message) => StorageError::Internal(message),
        ErrorKind::Compacted => StorageError::Internal("etcd: unexpected compaction error".into()),
        ErrorKind::FutureRevision => {
            StorageError::Internal("etcd: unexpected future revision error".into())
        }
        ErrorKind::TooLarge => StorageError::Internal("etcd: request is too large".into()),
        ErrorKind::ResponseTooLarge => {
            StorageError::Internal("etcd: response exceeds the size limit".into())
        }
    }
}

/// Whether a failed request certainly never reached etcd, so that sending a write again
/// cannot apply it twice: the channel had no connection to the member (etcd's clientv3 retries
/// mutations only in this case).
fn never_sent(error: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match error {
        E::GRpcStatus(status) => {
            status.code() as i32 == tonic_code::UNAVAILABLE && {
                let message = status.message().to_ascii_lowercase();
                message.contains("connect") || message.contains("connection refused")
            }
        }
        E::TransportError(_) => true,
        _ => false,
    }
}

/// Whether `error` allows sending a request of this kind again.
fn retryable(error: &etcd_client::Error, idempotence: Idempotence) -> bool {
    match idempotence {
        Idempotence::Read => matches!(classify_etcd(error), ErrorKind::Unavailable(_)),
        Idempotence::Write => never_sent(error),
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `GetPrefixRangeEnd`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    for i in (0..prefix.len()).rev() {
        if prefix[i] < 0xff {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            return end;
        }
    }
    // No successor (empty or all 0xff): up to the end of the key space.
    vec![0]
}

/// etcd rejects empty keys; the smallest key is "\0".
fn range_start(key: &[u8]) -> Vec<u8> {
    if key.is_empty() {
        vec![0]
    } else {
        key.to_vec()
    }
}

fn key_string(key: Vec<u8>) -> String {
    String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn convert_owned(kv: etcd_client::KeyValue) -> KeyValue {
    let (create_revision, mod_revision) = (kv.create_revision(), kv.mod_revision());
    let (key, value) = kv.into_key_value();
    KeyValue {
        key: key_string(key),
        value: Bytes::from(value),
        create_revision,
        mod_revision,
    }
}

fn convert_ref(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: key_string(kv.key().to_vec()),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

fn header_revision(response: &TxnResponse) -> Result<Revision> {
    response
        .header()
        .map(|h| h.revision())
        .ok_or_else(|| StorageError::Internal("etcd: txn response without header".into()))
}

/// After a failed compare: the key's current value from the `or_else` range, as `Conflict`, or
/// `NotFound` when the key does not exist.
fn conflict_or_not_found(response: &TxnResponse, key: &str) -> StorageError {
    let current = response.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(get) => Some(get.kvs().first().map(convert_ref)),
        _ => None,
    });
    match current {
        Some(Some(current)) => StorageError::Conflict {
            key: key.to_owned(),
            current: Some(current),
        },
        _ => StorageError::NotFound {
            key: key.to_owned(),
        },
    }
}

impl EtcdBackend {
    /// Builds a client for `endpoints` (`http://host:port`, or `host:port`). Does not contact
    /// etcd: the gRPC channel connects lazily and reconnects by itself; use
    /// [`Backend::health`] to probe. Fails only on malformed endpoints.
    pub async fn connect(
        endpoints: &[String],
        options: EtcdOptions,
    ) -> Result<EtcdBackend, StorageError> {
        if endpoints.is_empty() {
            return Err(StorageError::Internal("no etcd endpoints given".into()));
        }
        let mut connect_options = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            // Detects a dead peer under a long-lived watch. etcd refuses pings without an open
            // stream (PermitWithoutStream=false) and faster than every 5 s.
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(false);
        if let Some(tls) = &options.tls {
            if let Some(plain) = endpoints.iter().find(|e| e.starts_with("http://")) {
                return Err(StorageError::Internal(format!(
                    "etcd TLS is configured but endpoint {plain} is plain http://"
                )));
            }
            connect_options = connect_options.with_tls(tls.options());
        }
        // With a scheme, so that the balancer can be told to remove one by its URI.
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("{scheme}://{e}")
                }
            })
            .collect();
        let request_timeout = options.request_timeout;
        let connect = |endpoints: Vec<String>| {
            let options = connect_options.clone();
            async move {
                tokio::time::timeout(request_timeout, Client::connect(&endpoints, Some(options)))
                    .await
                    .map_err(|_| StorageError::Unavailable("timed out connecting to etcd".into()))?
                    .map_err(|e| match e {
                        etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_) => {
                            StorageError::Internal(format!(
                                "invalid etcd endpoints {endpoints:?}: {e}"
                            ))
                        }
                        e => simple_error(classify(&RawError::Etcd(e))),
                    })
            }
        };
        let client = connect(endpoints.clone()).await?;
        let member_probes = if endpoints.len() > 1 {
            let mut probes = Vec::new();
            for endpoint in &endpoints {
                probes.push(connect(vec![endpoint.clone()]).await?);
            }
            Some(
                tokio::spawn(tend_members(client.clone(), endpoints.clone(), probes))
                    .abort_handle(),
            )
        } else {
            None
        };
        let kv = client
            .kv_client()
            .max_decoding_message_size(MAX_RANGE_RESPONSE_BYTES);
        let watch = client
            .watch_client()
            .max_decoding_message_size(MAX_WATCH_RESPONSE_BYTES);
        Ok(EtcdBackend {
            kv,
            watch,
            maintenance: client.maintenance_client(),
            options,
            progress: tokio::sync::watch::Sender::new(0),
            member_probes,
        })
    }

    /// Asks etcd for a progress notification on every watch stream this backend has open;
    /// each answers with a [`StorageEvent::Progress`] (subject to the caveat in the module
    /// documentation). Streams forward the request the next time they are polled.
    pub fn request_progress(&self) {
        self.progress.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// One round of kube-apiserver's compaction protocol (kube's `storage/etcd3/compact.go`).
    /// The version of [`COMPACT_REV_KEY`] is a logical clock shared by every compactor: the
    /// one that still sees the clock at `last.clock` wins the round, advancing it with a
    /// compare-and-swap, and compacts etcd to `last.revision` (etcd's revision at its previous
    /// round, so one interval of history is always kept; nothing at its first round); the
    /// others learn the new clock and compact nothing. With every compactor on the same
    /// interval, etcd is compacted once per interval, whoever wins.
    pub async fn compact_round(&self, last: CompactRound) -> Result<CompactRound> {
        let txn = Txn::new()
            .when([Compare::version(
                COMPACT_REV_KEY,
                CompareOp::Equal,
                last.clock,
            )])
            .and_then([TxnOp::put(COMPACT_REV_KEY, last.revision.to_string(), None)])
            .or_else([TxnOp::get(COMPACT_REV_KEY, None)]);
        let response = self
            .txn(txn)
            .await
            .map_err(|error| simple_error(classify(&error)))?;
        let revision = header_revision(&response)?;
        if !response.succeeded() {
            let clock = response
                .op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.version()),
                    _ => None,
                })
                .unwrap_or(0);
            return Ok(CompactRound {
                clock,
                revision,
                compacted: None,
            });
        }
        let won = CompactRound {
            clock: last.clock + 1,
            revision,
            compacted: None,
        };
        if last.revision == 0 {
            return Ok(won);
        }
        match self.compact(last.revision).await {
            // Someone (an operator, etcd's own auto-compaction) compacted further already.
            Ok(()) | Err(StorageError::Compacted { .. }) => Ok(CompactRound {
                compacted: Some(last.revision),
                ..won
            }),
            Err(error) => Err(error),
        }
    }

    /// The protocol's clock now: the version of [`COMPACT_REV_KEY`] (0 before any round).
    pub async fn compact_clock(&self) -> Result<i64> {
        match self.range(COMPACT_REV_KEY.as_bytes(), None).await {
            Ok(response) => Ok(response.kvs().first().map_or(0, |kv| kv.version())),
            Err(error) => Err(simple_error(classify(&error))),
        }
    }

    /// Compacts etcd every `interval` in cooperation with the other compactors on the same
    /// etcd (see [`EtcdBackend::compact_round`]); runs until the task is dropped.
    pub async fn run_compactor(self: std::sync::Arc<Self>, interval: Duration) {
        let mut last = CompactRound::default();
        loop {
            tokio::time::sleep(interval).await;
            match self.compact_round(last).await {
                Ok(round) => {
                    if let Some(revision) = round.compacted {
                        tracing::info!(revision, "compacted etcd");
                    }
                    last = round;
                }
                Err(error) => tracing::warn!(%error, "etcd compaction failed"),
            }
        }
    }

    /// The size of the database file of the member that answers (etcd's `Status`), as
    /// kube's `apiserver_storage_size_bytes` reports it.
    pub async fn db_size(&self) -> Result<i64> {
        let status = || {
            let mut maintenance = self.maintenance.clone();
            async move { maintenance.status().await }
        };
        match self.call(Idempotence::Read, status).await {
            Ok(status) => Ok(status.db_size()),
            Err(error) => Err(simple_error(classify(&error))),
        }
    }

    /// Runs `request` under the request timeout.
    async fn timed<T>(
        &self,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, RawError> {
        match tokio::time::timeout(self.options.request_timeout, request).await {
            Ok(result) => result.map_err(RawError::Etcd),
            Err(_) => Err(RawError::Timeout),
        }
    }

    /// Sends `request` (built anew for every attempt) until it succeeds, fails in a way
    /// that `idempotence` does not allow to retry, or the request timeout expires.
    async fn call<T, F, Fut>(&self, idempotence: Idempotence, mut request: F) -> Result<T, RawError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.options.request_timeout;
        let mut attempt = 1;
        loop {
            let error = match tokio::time::timeout_at(deadline, request()).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(error)) => error,
                Err(_) => return Err(RawError::Timeout),
            };
            if attempt >= MAX_ATTEMPTS || !retryable(&error, idempotence) {
                return Err(RawError::Etcd(error));
            }
            tracing::debug!(attempt, %error, "etcd request failed; sending it again");
            let pause = tokio::time::Instant::now() + RETRY_BACKOFF * attempt;
            if pause >= deadline {
                return Err(RawError::Etcd(error));
            }
            tokio::time::sleep_until(pause).await;
            attempt += 1;
        }
    }

    /// A `Range`, retried as a read.
    async fn range(
        &self,
        key: &[u8],
        options: Option<GetOptions>,
    ) -> Result<etcd_client::GetResponse, RawError> {
        self.call(Idempotence::Read, || {
            let mut kv = self.kv.clone();
            let options = options.clone();
            async move { kv.get(key, options).await }
        })
        .await
    }

    /// A `Txn`, retried as a write.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, RawError> {
        self.call(Idempotence::Write, || {
            let mut kv = self.kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }

    /// Maps an error of a read at `requested` (0: latest).
    async fn read_error(&self, error: RawError, requested: Revision) -> StorageError {
        match classify(&error) {
            ErrorKind::Compacted => StorageError::Compacted {
                requested,
                compact_revision: self.compacted_revision().await,
            },
            ErrorKind::FutureRevision => StorageError::FutureRevision {
                requested,
                current: self.current_revision().await.unwrap_or(0),
            },
            kind => simple_error(kind),
        }
    }

    /// The revision etcd has compacted up to, or 0 if unknown. etcd's range error does not
    /// carry it; a watch from revision 1 is canceled with it. Only called after an operation
    /// failed as compacted.
    async fn compacted_revision(&self) -> Revision {
        let probe = async {
            let mut client = self.watch.clone();
            let options = WatchOptions::new().with_start_revision(1);
            let (_sender, mut responses) = client.watch(PROBE_KEY, Some(options)).await?.split();
            while let Some(response) = responses.message().await? {
                if response.canceled() {
                    return Ok(response.compact_revision());
                }
            }
            Ok(0)
        };
        self.timed(probe).await.unwrap_or(0)
    }

    /// A count-only range over `[key, end)` at `revision`, to check that it is readable.
    async fn probe_range(
        &self,
        key: Vec<u8>,
        end: Vec<u8>,
        revision: Revision,
    ) -> Result<(), RawError> {
        let options = GetOptions::new()
            .with_range(end)
            .with_revision(revision)
            .with_count_only();
        self.range(&key, Some(options)).await.map(|_| ())
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        match self.range(key.as_bytes(), None).await {
            Ok(mut response) => Ok(response.take_kvs().into_iter().next().map(convert_owned)),
            Err(error) => Err(self.read_error(error, 0).await),
        }
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let prefix = options.prefix.as_bytes();
        let end = prefix_end(prefix);
        let mut cursor = range_start(
            options
                .start_key
                .as_deref()
                .map(str::as_bytes)
                .unwrap_or(prefix),
        );
        let wanted = options.limit.filter(|&limit| limit > 0);
        let mut revision = options.revision.filter(|&r| r > 0).unwrap_or(0);
        let mut served: Option<(Revision, i64)> = None;
        let mut chunk = LIST_CHUNK;
        let mut kvs = Vec::new();
        let mut more;
        loop {
            let remaining = wanted.map_or(usize::MAX, |w| w - kvs.len());
            let page = remaining.min(chunk);
            let get_options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(page as i64)
                .with_revision(revision);
            let mut response = match self.range(&cursor, Some(get_options)).await {
                Ok(response) => response,
                Err(error) => {
                    if matches!(classify(&error), ErrorKind::ResponseTooLarge) && chunk > 1 {
                        chunk /= 2;
                        continue;
                    }
                    return Err(self.read_error(error, revision).await);
                }
            };
            if served.is_none() {
                // The header carries the store's current revision; a read at an explicit
                // revision was served at that one.
                let current = response.header().map_or(0, |h| h.revision());
                if revision == 0 {
                    revision = current;
                }
                served = Some((revision, response.count()));
            }
            more = response.more();
            let page_kvs = response.take_kvs();
            if let Some(last) = page_kvs.last() {
                cursor = last.key().to_vec();
                cursor.push(0);
            }
            kvs.extend(page_kvs.into_iter().map(convert_owned));
            if !more || wanted.is_some_and(|w| kvs.len() >= w) {
                break;
            }
        }
        let (revision, count) = served.unwrap_or((revision, 0));
        Ok(ListPage {
            kvs,
            revision,
            more,
            count,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let size = value.len();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let response = self.txn(txn).await.map_err(|e| write_error(e, key, size))?;
        if !response.succeeded() {
            return Err(StorageError::KeyExists {
                key: key.to_owned(),
            });
        }
        let revision = header_revision(&response)?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue> {
        let size = value.len();
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key, CompareOp::Equal, expected_mod_revision),
                // A missing key has mod_revision 0: never "update" it into existence.
                Compare::create_revision(key, CompareOp::Greater, 0),
            ])
            .and_then([
                TxnOp::put(key, value.to_vec(), None),
                // Reads in a txn see its own writes: the new revisions, without the value.
                TxnOp::get(key, Some(GetOptions::new().with_keys_only())),
            ])
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(txn).await.map_err(|e| write_error(e, key, size))?;
        if !response.succeeded() {
            return Err(conflict_or_not_found(&response, key));
        }
        let revision = header_revision(&response)?;
        let create_revision = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.create_revision()),
                _ => None,
            })
            .ok_or_else(|| StorageError::Internal("etcd: updated key not read back".into()))?;
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: revision,
        })
    }

    async fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Deleted> {
        let delete_options = DeleteOptions::new().with_prev_key();
        let Some(expected) = expected_mod_revision else {
            let mut response = self
                .call(Idempotence::Write, || {
                    let mut kv = self.kv.clone();
                    let options = delete_options.clone();
                    async move { kv.delete(key, Some(options)).await }
                })
                .await
                .map_err(|e| write_error(e, key, 0))?;
            let revision = response.header().map_or(0, |h| h.revision());
            return match response.take_prev_kvs().into_iter().next() {
                Some(prev) => Ok(Deleted {
                    prev: convert_owned(prev),
                    revision,
                }),
                None => Err(StorageError::NotFound {
                    key: key.to_owned(),
                }),
            };
        };
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key, CompareOp::Equal, expected),
                Compare::create_revision(key, CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::delete(key, Some(delete_options))])
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(txn).await.map_err(|e| write_error(e, key, 0))?;
        if !response.succeeded() {
            return Err(conflict_or_not_found(&response, key));
        }
        let revision = header_revision(&response)?;
        let prev = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Delete(mut delete) => delete.take_prev_kvs().into_iter().next(),
                _ => None,
            })
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_owned(),
            })?;
        Ok(Deleted {
            prev: convert_owned(prev),
            revision,
        })
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream> {
        let key = range_start(prefix.as_bytes());
        let end = prefix_end(prefix.as_bytes());
        let start_revision = start_revision.max(0);
        let mut options = WatchOptions::new()
            .with_range(end.clone())
            .with_prev_key()
            .with_progress_notify();
        if start_revision > 0 {
            options = options.with_start_revision(start_revision);
        }
        // Opening a watch changes nothing: retried as a read (another member may answer).
        let open = || {
            let mut client = self.watch.clone();
            let (key, options) = (key.clone(), options.clone());
            async move { client.watch(key, Some(options)).await }
        };
        let (sender, mut responses) = match self.call(Idempotence::Read, open).await {
            Ok(stream) => stream.split(),
            Err(error) => return Err(simple_error(classify(&error))),
        };

        // etcd answers `created` first (or `canceled` right away on some versions).
        let created = match self.timed(responses.message()).await {
            Ok(Some(response)) => response,
            Ok(None) => {
                return Err(StorageError::Unavailable(
                    "etcd closed the watch stream before creating the watch".into(),
                ));
            }
            Err(error) => return Err(simple_error(classify(&error))),
        };
        if created.canceled() {
            return Err(cancel_error(&created, start_revision));
        }
        let created_revision = created.header().map_or(0, |h| h.revision());

        // A compacted start revision is only reported by etcd's sync loop, a little later.
        // A range at the start revision fails exactly when the watch will be canceled.
        let mut pending = VecDeque::new();
        if start_revision > 0
            && let Err(error) = self.probe_range(key, end, start_revision).await
        {
            match classify(&error) {
                ErrorKind::FutureRevision => {}
                ErrorKind::Compacted => {
                    let mut compact_revision = 0;
                    let wait_cancel = async {
                        while let Some(response) = responses.message().await? {
                            if response.canceled() {
                                return Ok(response.compact_revision());
                            }
                        }
                        Ok(0)
                    };
                    if let Ok(revision) = self.timed(wait_cancel).await {
                        compact_revision = revision;
                    }
                    if compact_revision == 0 {
                        compact_revision = self.compacted_revision().await;
                    }
                    return Err(StorageError::Compacted {
                        requested: start_revision,
                        compact_revision,
                    });
                }
                kind => return Err(simple_error(kind)),
            }
        }
        if !created.created() {
            // Not a creation acknowledgement (should not happen): keep what it carries.
            pending.extend(convert_response(&created));
        }

        let state = WatchState {
            sender,
            responses,
            watch_id: created.watch_id(),
            progress: Some(self.progress.subscribe()),
            kv: self.kv.clone(),
            key: range_start(prefix.as_bytes()),
            end: prefix_end(prefix.as_bytes()),
            request_timeout: self.options.request_timeout,
            pending,
            // Events from the start revision on are still to come.
            next_revision: if start_revision > 0 {
                start_revision
            } else {
                created_revision + 1
            },
            caught_up_at: if start_revision > 0 && start_revision <= created_revision {
                Some(created_revision)
            } else {
                None
            },
            done: false,
        };
        Ok(futures::stream::unfold(state, WatchState::next).boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        let options = GetOptions::new().with_count_only();
        match self.range(PROBE_KEY, Some(options)).await {
            Ok(response) => response.header().map(|h| h.revision()).ok_or_else(|| {
                StorageError::Internal("etcd: range response without header".into())
            }),
            Err(error) => Err(simple_error(classify(&error))),
        }
    }

    async fn prefix_state(
        &self,
        prefix: &str,
        since: Revision,
        at: Option<Revision>,
    ) -> Result<PrefixState> {
        // Two ranges at one revision: a count-only one fixes the revision (the header's when
        // none is asked for); a keys-only one filtered by min_mod_revision finds the keys
        // written after `since`. (etcd applies that filter to the returned keys, not to
        // `count`, so the second range cannot be count-only.)
        let end = prefix_end(prefix.as_bytes());
        let requested = at.filter(|&r| r > 0).unwrap_or(0);
        let options = GetOptions::new()
            .with_range(end.clone())
            .with_revision(requested)
            .with_count_only();
        let total = match self.range(prefix.as_bytes(), Some(options)).await {
            Ok(response) => response,
            Err(error) => return Err(self.read_error(error, requested).await),
        };
        let revision = if requested > 0 {
            requested
        } else {
            total.header().map_or(0, |h| h.revision())
        };
        let options = GetOptions::new()
            .with_range(end)
            .with_revision(revision)
            .with_min_mod_revision(since + 1)
            .with_keys_only();
        let modified = match self.range(prefix.as_bytes(), Some(options)).await {
            Ok(response) => response,
            Err(error) => return Err(self.read_error(error, revision).await),
        };
        Ok(PrefixState {
            revision,
            count: total.count(),
            modified_since: modified.kvs().len() as i64,
        })
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let compact = || {
            let mut kv = self.kv.clone();
            async move { kv.compact(revision, None).await }
        };
        match self.call(Idempotence::Write, compact).await {
            Ok(_) => Ok(()),
            Err(error) => Err(self.read_error(error, revision).await),
        }
    }
}

/// The error for a watch etcd canceled.
fn cancel_error(response: &WatchResponse, requested: Revision) -> StorageError {
    if response.compact_revision() > 0 {
        StorageError::Compacted {
            requested,
            compact_revision: response.compact_revision(),
        }
    } else {
        StorageError::Unavailable(format!(
            "etcd canceled the watch: {}",
            response.cancel_reason()
        ))
    }
}

/// The events of one watch response (no progress handling).
fn convert_response(response: &WatchResponse) -> Vec<Result<StorageEvent>> {
    response
        .events()
        .iter()
        .filter_map(|event| {
            let kv = event.kv()?;
            let prev = event.prev_kv().map(convert_ref);
            Some(Ok(match event.event_type() {
                etcd_client::EventType::Put => StorageEvent::Put {
                    kv: convert_ref(kv),
                    prev,
                },
                etcd_client::EventType::Delete => StorageEvent::Delete {
                    key: key_string(kv.key().to_vec()),
                    revision: kv.mod_revision(),
                    prev,
                },
            }))
        })
        .collect()
}

/// The state of one watch stream, driven by [`futures::stream::unfold`]. Dropping it closes
/// the gRPC stream (which cancels the watch in etcd).
struct WatchState {
    /// Sends progress requests on the gRPC stream; dropping it ends the request side.
    sender: WatchRequestSender,
    /// etcd's responses.
    responses: WatchResponseStream,
    /// The id etcd gave the watch; periodic progress notifications carry it, requested ones
    /// (etcd < 3.4.31) carry -1.
    watch_id: i64,
    /// Progress requests from [`EtcdBackend::request_progress`]; `None` once the backend is
    /// gone.
    progress: Option<tokio::sync::watch::Receiver<u64>>,
    /// Verifies requested progress notifications while the watch may be catching up.
    kv: KvClient,
    /// The watched range `[key, end)`.
    key: Vec<u8>,
    /// End of the watched range.
    end: Vec<u8>,
    /// Timeout of each verification request.
    request_timeout: Duration,
    /// Converted items not yet handed out.
    pending: VecDeque<Result<StorageEvent>>,
    /// The revision the next event will carry at least: the start revision, then the last
    /// delivered event's (or progress notification's) revision + 1. Reported as `requested`
    /// if etcd cancels the watch.
    next_revision: Revision,
    /// While `Some(r)`: the watch started in the past and has not yet delivered an event at or
    /// after `r` (etcd's revision when the watch was created), so etcd may still be replaying
    /// history to it, and a requested progress notification may overtake that replay
    /// (etcd#15220); such notifications are verified against the store before being passed on.
    caught_up_at: Option<Revision>,
    /// An error was handed out (or the stream ended): the stream is over.
    done: bool,
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<StorageEvent>, WatchState)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                if item.is_err() {
                    self.done = true;
                    self.pending.clear();
                }
                return Some((item, self));
            }
            if self.done {
                return None;
            }
            let progress_changed = async {
                match self.progress.as_mut() {
                    Some(receiver) => receiver.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                message = self.responses.message() => match message {
                    Ok(Some(response)) => {
                        if let Some(revision) = self.handle(response)
                            && self.verify_progress(revision).await
                        {
                            self.caught_up_at = None;
                            self.push_progress(revision);
                        }
                    }
                    Ok(None) => self.pending.push_back(Err(StorageError::Unavailable(
                        "etcd closed the watch stream".into(),
                    ))),
                    Err(error) => self.pending.push_back(Err(simple_error(classify(
                        &RawError::Etcd(error),
                    )))),
                },
                alive = progress_changed => {
                    if !alive {
                        self.progress = None;
                    } else if let Err(error) = self.sender.request_progress().await {
                        self.pending.push_back(Err(simple_error(classify(
                            &RawError::Etcd(error),
                        ))));
                    }
                }
            }
        }
    }

    /// Queues the events of `response`. Returns a progress revision that still needs
    /// verifying.
    fn handle(&mut self, response: WatchResponse) -> Option<Revision> {
        if response.canceled() {
            self.pending
                .push_back(Err(cancel_error(&response, self.next_revision)));
            return None;
        }
        if response.created() {
            return None;
        }
        if response.events().is_empty() {
            let revision = response.header().map_or(0, |h| h.revision());
            if self.caught_up_at.is_none() || response.watch_id() == self.watch_id {
                // Periodic notifications (our watch id) are only sent to watchers that have
                // caught up, in order with their events.
                self.caught_up_at = None;
                self.push_progress(revision);
                return None;
            }
            return Some(revision);
        }
        for item in convert_response(&response) {
            if let Ok(event) = &item {
                let revision = event.revision();
                self.next_revision = self.next_revision.max(revision + 1);
                if self.caught_up_at.is_some_and(|r| revision >= r) {
                    self.caught_up_at = None;
                }
            }
            self.pending.push_back(item);
        }
        None
    }

    /// Passes on a progress notification unless it would go backwards.
    fn push_progress(&mut self, revision: Revision) {
        if revision >= self.next_revision - 1 {
            self.pending
                .push_back(Ok(StorageEvent::Progress { revision }));
            self.next_revision = revision + 1;
        }
    }

    /// Whether the range has no events in `[next_revision, revision]`: no key in it was
    /// modified in that window as of `revision`, and it holds as many keys at `revision` as
    /// before the window (so nothing was deleted either). Misses only a key both created and
    /// deleted inside the window; a failed check just drops the notification.
    async fn verify_progress(&self, revision: Revision) -> bool {
        let before = self.next_revision - 1;
        if revision < before {
            return false;
        }
        if revision == before {
            return true;
        }
        let check = async {
            let mut kv = self.kv.clone();
            let modified = kv
                .get(
                    self.key.clone(),
                    Some(
                        GetOptions::new()
                            .with_range(self.end.clone())
                            .with_revision(revision)
                            .with_min_mod_revision(self.next_revision)
                            .with_keys_only()
                            .with_limit(1),
                    ),
                )
                .await?;
            if !modified.kvs().is_empty() {
                return Ok(false);
            }
            let count_at = |at: Revision| {
                let mut kv = self.kv.clone();
                let key = self.key.clone();
                let options = GetOptions::new()
                    .with_range(self.end.clone())
                    .with_revision(at)
                    .with_count_only();
                async move { kv.get(key, Some(options)).await.map(|r| r.count()) }
            };
            let count_before = if before > 0 {
                count_at(before).await?
            } else {
                0
            };
            Ok::<_, etcd_client::Error>(count_before == count_at(revision).await?)
        };
        matches!(
            tokio::time::timeout(self.request_timeout, check).await,
            Ok(Ok(true))
        )
    }
}
