//! The storage contract: a revisioned key/value store with etcd's semantics.
//!
//! Every backend (etcd, embedded) implements [`Backend`] and passes the same conformance
//! suite. The model is etcd's: one global, strictly increasing revision; each key carries the
//! revision that created it and the one that last modified it; writes are compare-and-swap on
//! those revisions; a watch replays every change from a revision onwards, each with the value
//! it replaced.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// etcd's revision: a global counter bumped by every write. Kubernetes calls it resourceVersion.
pub type Revision = i64;

/// One stored object, as it stood at some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created the key (since it last did not exist).
    pub create_revision: Revision,
    /// Revision of the last write to the key: the object's resourceVersion.
    pub mod_revision: Revision,
}

/// A page of a ranged read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
    /// More keys follow the last returned one within the range.
    pub more: bool,
    /// Keys in the range at `revision` from `start_key` on, including the returned ones.
    pub count: i64,
}

/// A prefix summarized at one revision, without reading values: what a cache needs to prove
/// that its copy of the prefix is current (see [`Backend::prefix_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixState {
    /// The revision the summary describes.
    pub revision: Revision,
    /// Keys under the prefix at `revision`.
    pub count: i64,
    /// Of those, keys whose mod_revision is after the `since` revision asked about.
    pub modified_since: i64,
}

/// A ranged read over every key beginning with `prefix`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub prefix: String,
    /// Start at this key (inclusive) instead of the prefix's first key; used by pagination.
    pub start_key: Option<String>,
    /// At most this many keys; `None` or `Some(0)` means all.
    pub limit: Option<usize>,
    /// Read the state at this revision instead of the latest.
    pub revision: Option<Revision>,
}

/// One change delivered by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageEvent {
    /// A key was created or updated; `prev` is the value it replaced, if any.
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// A key was deleted at `revision`; `prev` is its last value.
    Delete {
        key: String,
        revision: Revision,
        prev: Option<KeyValue>,
    },
    /// Nothing changed under the prefix, but the store has reached `revision` (etcd progress
    /// notification). A watcher can advance its revision to it.
    Progress { revision: Revision },
}

impl StorageEvent {
    pub fn revision(&self) -> Revision {
        match self {
            StorageEvent::Put { kv, .. } => kv.mod_revision,
            StorageEvent::Delete { revision, .. } => *revision,
            StorageEvent::Progress { revision } => *revision,
        }
    }
}

/// The result of a successful delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The value the key held just before it was deleted.
    pub prev: KeyValue,
    /// The revision of the delete.
    pub revision: Revision,
}

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The key does not exist (update, delete).
    #[error("key {key} not found")]
    NotFound { key: String },
    /// `create` of a key that exists.
    #[error("key {key} already exists")]
    KeyExists { key: String },
    /// The key's mod_revision is not the one the write expected. `current` is the key's value
    /// now (`None` if it was deleted), so a caller can retry without another read.
    #[error("key {key} was modified concurrently")]
    Conflict {
        key: String,
        current: Option<KeyValue>,
    },
    /// The requested revision has been compacted away.
    #[error("revision {requested} has been compacted (compacted up to {compact_revision})")]
    Compacted {
        requested: Revision,
        compact_revision: Revision,
    },
    /// The requested revision is newer than the store's current revision.
    #[error("revision {requested} is in the future (current is {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// The value is larger than the store accepts.
    #[error("value for key {key} is too large ({size} bytes)")]
    ValueTooLarge { key: String, size: usize },
    /// The store cannot be reached or did not answer in time.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored values that are neither object encoding nor ciphertext this server can
    /// decrypt (corruption, foreign data, a missing key), one per key; every other value of
    /// the read was fine. kube-apiserver's `ErrCodeCorruptObj` (KEP-3926).
    #[error("{}", corrupt_summary(.0))]
    Corrupt(Vec<CorruptValue>),
    /// Anything else: a bug or a corrupted store.
    #[error("storage internal error: {0}")]
    Internal(String),
}

/// A stored value that cannot be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptValue {
    pub key: String,
    pub revision: Revision,
    /// `data from the storage is not transformable` (decryption) or `object not decodable`.
    pub reason: String,
}

impl std::fmt::Display for CorruptValue {
    /// kube-apiserver's StorageError text for a corrupt object (code 7), so a client's message
    /// reads the same.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StorageError: corrupt object, Code: 7, Key: {}, ResourceVersion: 0, \
             AdditionalErrorMsg: {}",
            self.key, self.reason
        )
    }
}

fn corrupt_summary(values: &[CorruptValue]) -> String {
    match values {
        [one] => one.to_string(),
        many => format!(
            "unable to transform or decode {} objects: {{{}}}",
            many.len(),
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Events from a watch, in revision order. A watch that cannot continue yields one `Err`
/// (e.g. [`StorageError::Compacted`]) and ends.
pub type WatchStream = BoxStream<'static, Result<StorageEvent>>;

/// A revisioned key/value store with etcd's semantics. Keys are full paths such as
/// `/registry/pods/default/web`; values are opaque bytes.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The key's current value, or `None`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// A ranged read of the keys under `options.prefix`, in key order.
    /// A revision older than the compacted one fails with `Compacted`, a newer one than the
    /// current with `FutureRevision`.
    async fn list(&self, options: ListOptions) -> Result<ListPage>;

    /// Creates the key; fails with `KeyExists` if it exists (etcd: txn on create_revision == 0).
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Replaces the key's value if its mod_revision is still `expected_mod_revision`
    /// (etcd: txn comparing mod_revision); else `Conflict` with the current value, or
    /// `NotFound` if the key does not exist.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue>;

    /// Deletes the key, only if its mod_revision is `expected_mod_revision` when one is given.
    async fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Deleted>;

    /// Every change to keys under `prefix` with revision >= `start_revision`, then live ones,
    /// each Put/Delete carrying its previous value. A `start_revision` at or below the
    /// compacted revision yields `Err(Compacted)`.
    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream>;

    /// The store's current revision (the revision of the last write).
    async fn current_revision(&self) -> Result<Revision>;

    /// How many keys are under `prefix` at `at` (the current revision when `None`), and how
    /// many of them were written after `since`. A copy of the prefix exact at `since` with
    /// the same count, when none was written after `since`, is exact at the returned revision
    /// too: no key changed, none was created, and (the counts being equal) none was deleted.
    async fn prefix_state(
        &self,
        prefix: &str,
        since: Revision,
        at: Option<Revision>,
    ) -> Result<PrefixState>;

    /// Discards history before `revision`: reads at older revisions and watches starting
    /// before it fail with `Compacted` afterwards.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Ok when the store answers; used by /readyz.
    async fn health(&self) -> Result<()> {
        self.current_revision().await.map(|_| ())
    }
}
