//! The storage boundary: what the bytes in etcd are, translated once for everything above.
//!
//! kube-apiserver stores built-in objects as protobuf (`k8s\0` + runtime.Unknown) by default,
//! custom resources as JSON, and may encrypt either (`--encryption-provider-config`).
//! [`FormattedBackend`] wraps the real [`Backend`] and does both directions for every
//! operation:
//! - *writes* arrive as kubecache's JSON (the storage version of the object), are encoded as
//!   `--storage-media-type` says (protobuf for a built-in kind, JSON otherwise) and then
//!   encrypted as the configuration says for the key's resource;
//! - *reads* (get, list, watch events and their previous values, a conflict's current value)
//!   are decrypted by the provider their prefix names and decoded from whichever encoding
//!   they are in (detected per value, as kube's recognizing decoder does), so the watch
//!   cache, the pass-through, the Store and the controllers all see JSON and never know.
//!
//! A value that decodes as neither (corruption, foreign data, a key this server lacks) is
//! never served hollow or skipped: the read fails with [`StorageError::Corrupt`] naming every
//! such key (kube's `corrupt object`, KEP-3926), is logged and counted
//! (`apiserver_storage_decode_errors_total`), and a watch that meets one ends with that error.

pub mod encryption;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use kubecache_apimachinery::registry::Registry;
use kubecache_apimachinery::strategy::DefaultContext;
use kubecache_apimachinery::{protobuf, typed};
use kubecache_core::storage::{
    Backend, CorruptValue, Deleted, KeyValue, ListOptions, ListPage, PrefixState, Result, Revision,
    StorageError, StorageEvent, WatchStream,
};
use parking_lot::Mutex;
use serde_json::Value;

pub use self::encryption::{EncryptionConfig, GroupResource};

/// `--storage-media-type`: how built-in objects are written (reads take either).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MediaType {
    /// `application/vnd.kubernetes.protobuf`, kube-apiserver's default.
    #[default]
    Protobuf,
    /// `application/json`.
    Json,
}

impl MediaType {
    pub fn parse(text: &str) -> std::result::Result<MediaType, String> {
        match text {
            "application/vnd.kubernetes.protobuf" => Ok(MediaType::Protobuf),
            "application/json" => Ok(MediaType::Json),
            other => Err(format!(
                "--storage-media-type {other:?} is not supported: use \
                 application/vnd.kubernetes.protobuf (the default) or application/json"
            )),
        }
    }
}

/// How values are encoded and encrypted at rest.
#[derive(Debug, Clone, Default)]
pub struct StorageFormat {
    pub media_type: MediaType,
    pub encryption: Option<Arc<EncryptionConfig>>,
}

/// Counts of values that could not be read, by resource (`secrets`, `deployments.apps`).
static DECODE_ERRORS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// `apiserver_storage_decode_errors_total`'s series: resource → values that failed.
pub fn decode_error_counts() -> Vec<(String, u64)> {
    DECODE_ERRORS
        .lock()
        .iter()
        .map(|(r, n)| (r.clone(), *n))
        .collect()
}

/// The resource a storage key belongs to, for the encryption configuration.
#[derive(Debug)]
struct KeyResources {
    /// The built-in types, for the typed form of what protobuf decodes to.
    registry: Registry,
    root: String,
    /// Each built-in's storage path (`minions`, `services/specs`) and resource, longest first.
    builtin: Vec<(String, GroupResource)>,
}

impl KeyResources {
    fn new(root: &str) -> KeyResources {
        let registry = Registry::builtin();
        let mut builtin: Vec<(String, GroupResource)> = Vec::new();
        for resource in registry.snapshot().iter().filter(|r| r.is_stored()) {
            let info = resource.stored().info();
            let path = format!("{}/", info.storage_path);
            if !builtin.iter().any(|(p, _)| *p == path) {
                builtin.push((
                    path,
                    GroupResource {
                        group: info.group.clone(),
                        resource: info.resource.clone(),
                    },
                ));
            }
        }
        builtin.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        KeyResources {
            registry,
            root: format!("{}/", root.trim_end_matches('/')),
            builtin,
        }
    }

    fn of(&self, key: &str) -> GroupResource {
        let path = key.strip_prefix(&self.root).unwrap_or(key);
        if let Some((_, resource)) = self.builtin.iter().find(|(p, _)| path.starts_with(p)) {
            return resource.clone();
        }
        // A custom resource: `<group>/<resource>/…`.
        let mut segments = path.split('/');
        let first = segments.next().unwrap_or_default();
        match segments.next() {
            Some(resource) if first.contains('.') => GroupResource {
                group: first.to_string(),
                resource: resource.to_string(),
            },
            _ => GroupResource {
                group: String::new(),
                resource: first.to_string(),
            },
        }
    }
}

/// The transformation both ways, shared by every operation of [`FormattedBackend`].
#[derive(Debug)]
struct Codec {
    format: StorageFormat,
    resources: KeyResources,
}

impl Codec {
    /// The bytes to store for kubecache's JSON `value` of `key`.
    fn encode_value(&self, key: &str, value: &[u8]) -> Result<Bytes> {
        let encoded = match self.format.media_type {
            MediaType::Json => None,
            MediaType::Protobuf => protobuf_of(value),
        };
        let plain: &[u8] = encoded.as_deref().unwrap_or(value);
        match &self.format.encryption {
            None => Ok(Bytes::copy_from_slice(plain)),
            Some(config) => config
                .encrypt(&self.resources.of(key), key, plain)
                .map(Bytes::from)
                .map_err(|e| StorageError::Internal(format!("encrypting {key}: {e}"))),
        }
    }

    /// kubecache's JSON of a stored value, or why it cannot be read.
    fn decode_value(&self, kv: &KeyValue) -> std::result::Result<Bytes, CorruptValue> {
        let resource = self.resources.of(&kv.key);
        let plain = match &self.format.encryption {
            None => encryption::identity(&kv.value),
            Some(config) => config.decrypt(&resource, &kv.key, &kv.value),
        };
        let plain = plain.map_err(|e| {
            corrupt(
                kv,
                &resource,
                format!("data from the storage is not transformable revision=0: {e}"),
            )
        })?;
        decode(&self.resources.registry, &plain).map_err(|e| {
            corrupt(
                kv,
                &resource,
                format!("object not decodable revision={}: {e}", kv.mod_revision),
            )
        })
    }

    fn read(&self, kv: KeyValue) -> Result<KeyValue> {
        let value = self
            .decode_value(&kv)
            .map_err(|c| StorageError::Corrupt(vec![c]))?;
        Ok(KeyValue { value, ..kv })
    }

    fn read_all(&self, kvs: Vec<KeyValue>) -> Result<Vec<KeyValue>> {
        let mut corrupt = Vec::new();
        let mut read = Vec::with_capacity(kvs.len());
        for kv in kvs {
            match self.decode_value(&kv) {
                Ok(value) => read.push(KeyValue { value, ..kv }),
                Err(c) => corrupt.push(c),
            }
        }
        if corrupt.is_empty() {
            Ok(read)
        } else {
            Err(StorageError::Corrupt(corrupt))
        }
    }

    /// A conflict carries the current value: decoded too.
    fn read_error(&self, err: StorageError) -> StorageError {
        match err {
            StorageError::Conflict {
                key,
                current: Some(kv),
            } => match self.read(kv) {
                Ok(kv) => StorageError::Conflict {
                    key,
                    current: Some(kv),
                },
                Err(err) => err,
            },
            other => other,
        }
    }

    /// A watch event with its values decoded. As kube-apiserver's etcd watcher: a value that
    /// cannot be read ends the watch with the error (a reader relists and learns of it); the
    /// previous value of an update is dropped instead, since only deletes need it.
    fn event(&self, event: StorageEvent) -> Result<StorageEvent> {
        Ok(match event {
            StorageEvent::Put { kv, prev } => StorageEvent::Put {
                kv: self.read(kv)?,
                prev: prev.and_then(|prev| self.read(prev).ok()),
            },
            StorageEvent::Delete {
                key,
                revision,
                prev,
            } => StorageEvent::Delete {
                key,
                revision,
                prev: prev.map(|prev| self.read(prev)).transpose()?,
            },
            progress @ StorageEvent::Progress { .. } => progress,
        })
    }
}

/// Records and logs an unreadable value.
fn corrupt(kv: &KeyValue, resource: &GroupResource, reason: String) -> CorruptValue {
    let name = if resource.group.is_empty() {
        resource.resource.clone()
    } else {
        format!("{}.{}", resource.resource, resource.group)
    };
    *DECODE_ERRORS.lock().entry(name).or_default() += 1;
    tracing::error!(key = %kv.key, revision = kv.mod_revision, %reason, "stored value cannot be read");
    CorruptValue {
        key: kv.key.clone(),
        revision: kv.mod_revision,
        reason,
    }
}

/// The protobuf envelope of a built-in object; `None` for a custom resource (always JSON, as
/// in kube-apiserver) or what the encoder cannot express, which stays JSON: kube-apiserver
/// reads JSON values of any resource too.
fn protobuf_of(value: &[u8]) -> Option<Vec<u8>> {
    let object: Value = serde_json::from_slice(value).ok()?;
    let api_version = object.get("apiVersion")?.as_str()?;
    let kind = object.get("kind")?.as_str()?;
    protobuf::message_for(api_version, kind)?;
    match protobuf::encode_envelope(&object) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::warn!(%api_version, %kind, error = %e, "stored as JSON: no protobuf form");
            None
        }
    }
}

/// The scheme defaults an object read from storage gets, as kube-apiserver's storage codec
/// defaults what it decodes: a value an older kube-apiserver wrote lacks fields added since,
/// and an update compares against the defaulted object.
const READ_DEFAULTS: DefaultContext<'static> = DefaultContext {
    create: false,
    old: None,
    ip_family: "IPv4",
};

/// JSON from either encoding, told apart by the first bytes as kube's decoders do. What
/// protobuf decodes to is defaulted and put in the typed form kubecache stores (what protobuf
/// does not carry, such as the `apiVersion` of a StatefulSet's claim templates, filled in as
/// kube's conversion does), so a value reads the same whichever encoding it was written in.
fn decode(registry: &Registry, plain: &[u8]) -> std::result::Result<Bytes, String> {
    if plain.starts_with(protobuf::MAGIC) {
        let object = protobuf::decode_envelope(plain, None).map_err(|e| e.to_string())?;
        let version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = version.split_once('/').unwrap_or(("", version));
        let kind = object["kind"].as_str().unwrap_or_default();
        let object = match registry.by_kind(group, version, kind) {
            Some(resource) => {
                let mut defaulted = object.clone();
                resource.strategy().default(&mut defaulted, &READ_DEFAULTS);
                match typed::normalize(&resource, defaulted) {
                    Ok((typed, _)) => typed,
                    Err(_) => object,
                }
            }
            None => object,
        };
        return Ok(Bytes::from(
            serde_json::to_vec(&object).expect("a JSON value always serializes"),
        ));
    }
    let text = plain.trim_ascii_start();
    if !text.starts_with(b"{") {
        return Err(
            "neither a protobuf envelope (k8s\\0) nor a JSON object: unrecognized encoding".into(),
        );
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(plain).map_err(|e| e.to_string())?;
    Ok(Bytes::copy_from_slice(plain))
}

/// A [`Backend`] whose values are encoded and encrypted at rest (see the module docs).
pub struct FormattedBackend {
    inner: Arc<dyn Backend>,
    codec: Arc<Codec>,
}

impl FormattedBackend {
    /// Wraps `inner`, whose keys are under `storage_root` (`/registry`).
    pub fn new(inner: Arc<dyn Backend>, storage_root: &str, format: StorageFormat) -> Self {
        FormattedBackend {
            inner,
            codec: Arc::new(Codec {
                format,
                resources: KeyResources::new(storage_root),
            }),
        }
    }

    /// Rewrites every readable value under `prefix` in the current format with the current
    /// key (kube's "update every object" after a key rotation): each key is read and written
    /// back by compare-and-swap, so a concurrent write wins and needs no rewrite. Values that
    /// cannot be read are left alone and reported.
    pub async fn rewrite(&self, prefix: &str) -> Result<Rewritten> {
        let mut done = Rewritten::default();
        let mut start_key = None;
        loop {
            let page = self
                .inner
                .list(ListOptions {
                    prefix: prefix.to_string(),
                    start_key: start_key.take(),
                    limit: Some(500),
                    revision: None,
                })
                .await?;
            for kv in &page.kvs {
                let json = match self.codec.decode_value(kv) {
                    Ok(json) => json,
                    Err(corrupt) => {
                        done.unreadable.push(corrupt);
                        continue;
                    }
                };
                match self.update(&kv.key, json, kv.mod_revision).await {
                    Ok(_) => done.rewritten += 1,
                    // Written or deleted since: already in the current format, or gone.
                    Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => {
                        done.skipped += 1
                    }
                    Err(e) => return Err(e),
                }
            }
            match page.kvs.last() {
                Some(last) if page.more => start_key = Some(format!("{}\0", last.key)),
                _ => return Ok(done),
            }
        }
    }
}

/// What [`FormattedBackend::rewrite`] did.
#[derive(Debug, Default)]
pub struct Rewritten {
    pub rewritten: usize,
    /// Changed or deleted by someone else meanwhile.
    pub skipped: usize,
    pub unreadable: Vec<CorruptValue>,
}

#[async_trait]
impl Backend for FormattedBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        match self.inner.get(key).await? {
            Some(kv) => self.codec.read(kv).map(Some),
            None => Ok(None),
        }
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let page = self.inner.list(options).await?;
        Ok(ListPage {
            kvs: self.codec.read_all(page.kvs)?,
            ..page
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let stored = self.codec.encode_value(key, &value)?;
        let kv = self.inner.create(key, stored).await?;
        self.codec.read(kv)
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: Revision,
    ) -> Result<KeyValue> {
        let stored = self.codec.encode_value(key, &value)?;
        match self.inner.update(key, stored, expected_mod_revision).await {
            Ok(kv) => self.codec.read(kv),
            Err(err) => Err(self.codec.read_error(err)),
        }
    }

    async fn delete(&self, key: &str, expected_mod_revision: Option<Revision>) -> Result<Deleted> {
        let deleted = self
            .inner
            .delete(key, expected_mod_revision)
            .await
            .map_err(|e| self.codec.read_error(e))?;
        // The delete happened: a value that cannot be read (the unsafe delete of a corrupt
        // object) is handed back empty rather than failing a write that took effect.
        let prev = match self.codec.read(deleted.prev.clone()) {
            Ok(prev) => prev,
            Err(_) => KeyValue {
                value: Bytes::new(),
                ..deleted.prev
            },
        };
        Ok(Deleted { prev, ..deleted })
    }

    async fn watch(&self, prefix: &str, start_revision: Revision) -> Result<WatchStream> {
        let events = self.inner.watch(prefix, start_revision).await?;
        let codec = self.codec.clone();
        let decoded = events.scan(false, move |failed, event| {
            let out = if *failed {
                None
            } else {
                let event = event.and_then(|e| codec.event(e));
                *failed = event.is_err();
                Some(event)
            };
            futures::future::ready(out)
        });
        Ok(decoded.boxed())
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn prefix_state(
        &self,
        prefix: &str,
        since: Revision,
        at: Option<Revision>,
    ) -> Result<PrefixState> {
        self.inner.prefix_state(prefix, since, at).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn health(&self) -> Result<()> {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests;
