//! Namespace lifecycle: content may only be created in an existing, active namespace; a
//! deleted namespace turns Terminating, the finalizer empties it, then removes it (what
//! kube-apiserver's NamespaceLifecycle admission and the namespace controller do together).

use crate::registry::Resource;
use std::sync::Arc;
use std::time::Duration;

use kubecache_cache::ReadAt;
use kubecache_core::status::{ApiError, Cause};
use kubecache_core::storage::{ListOptions, StorageError};
use serde_json::json;

use crate::api::{Api, storage_error};
use crate::objects;
use crate::store::{Context, Deleted, Preconditions, Store};

/// Namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Who the namespace finalizer writes as (kube runs it in kube-controller-manager).
const CONTROLLER: &str = "kube-controller-manager";

/// How often terminating namespaces are looked at again while they still hold content.
const FINALIZE_RETRY: Duration = Duration::from_secs(2);

fn namespaces(api: &Api) -> Arc<Resource> {
    api.registry
        .lookup("", "v1", "namespaces")
        .expect("namespaces are always registered")
}

/// 404 when the namespace does not exist, 403 when it is terminating.
pub async fn ensure_accepts_content(api: &Api, namespace: &str) -> Result<(), ApiError> {
    let key = api.object_key(&namespaces(api), None, namespace);
    // Cached state first; a namespace it does not know yet may have just been created, so a
    // miss is confirmed with a consistent read (kube's lifecycle admission does the same).
    let marked = api.terminating_namespaces.lock().get(namespace).copied();
    let first = marked.map_or(ReadAt::Any, ReadAt::NotOlderThan);
    let mut found = None;
    for at in [first, ReadAt::Latest] {
        found = api
            .reads
            .get(&namespaces(api), &key, at)
            .await
            .map_err(storage_error)?;
        if found.is_some() {
            break;
        }
    }
    let cached = found.ok_or_else(|| ApiError::not_found("", "namespaces", namespace))?;
    if is_deleting(&cached.kv)? {
        let mut err = ApiError::forbidden(format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        ));
        err.causes = vec![Cause::new(
            "NamespaceTerminating",
            "metadata.namespace",
            format!("namespace {namespace} is being terminated"),
        )];
        return Err(err);
    }
    Ok(())
}

/// Whether a stored namespace has a `deletionTimestamp`: read without building the object,
/// as every create in the namespace asks.
fn is_deleting(kv: &kubecache_core::storage::KeyValue) -> Result<bool, ApiError> {
    #[derive(serde::Deserialize)]
    struct Stored {
        #[serde(default)]
        metadata: Option<Meta>,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(default, rename = "deletionTimestamp")]
        deletion_timestamp: Option<serde::de::IgnoredAny>,
    }
    let stored: Stored = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("object at {} is not valid JSON: {e}", kv.key)))?;
    Ok(stored
        .metadata
        .is_some_and(|m| m.deletion_timestamp.is_some()))
}

/// The field manager of the server's own namespace writes (kube's, whose loopback client
/// is named after the binary).
const MANAGER: &str = "kube-apiserver";

/// Creates the initial namespaces that do not exist yet, through the Store like any create.
pub async fn bootstrap(api: &Api) -> Result<(), StorageError> {
    let namespaces = namespaces(api);
    let store = Store::new(api, &namespaces);
    let ctx = Context::internal(MANAGER);
    for name in INITIAL_NAMESPACES {
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match store.create(&ctx, None, object).await {
            Ok(_) => {}
            Err(e) if e.reason == kubecache_core::status::Reason::AlreadyExists => {}
            Err(e) => return Err(crate::store::startup_error(e)),
        }
    }
    Ok(())
}

/// Runs for the server's lifetime: empties and removes terminating namespaces, when woken
/// by a namespace deletion and periodically (content with finalizers goes away later).
pub async fn run_finalizer(api: Arc<Api>) {
    loop {
        let pending = match finalize_terminating(&api).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!("namespace finalizer: {e}");
                true
            }
        };
        let wait = if pending {
            FINALIZE_RETRY
        } else {
            Duration::from_secs(60)
        };
        tokio::select! {
            _ = api.namespace_deleted.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass over terminating namespaces; true while some remain.
async fn finalize_terminating(api: &Api) -> Result<bool, ApiError> {
    let resource = namespaces(api);
    let page = api
        .backend
        .list(ListOptions {
            prefix: resource.storage_prefix(&api.storage_root),
            ..Default::default()
        })
        .await
        .map_err(storage_error)?;
    let mut pending = false;
    for kv in page.kvs {
        let object = objects::decode(&kv)?;
        if !objects::is_deleting(&object) {
            continue;
        }
        pending = true;
        let name = objects::name(&object).to_string();
        if empty_namespace(api, &name).await? {
            remove_namespace(api, &name).await?;
        }
    }
    Ok(pending)
}

/// Deletes everything in the namespace; true when nothing is left.
async fn empty_namespace(api: &Api, namespace: &str) -> Result<bool, ApiError> {
    let mut empty = true;
    let mut seen_paths = Vec::new();
    for resource in api.registry.snapshot().iter().filter(|r| r.namespaced) {
        if seen_paths.contains(&resource.storage_path) {
            continue;
        }
        seen_paths.push(resource.storage_path.clone());
        let page = api
            .backend
            .list(ListOptions {
                prefix: api.collection_prefix(resource, Some(namespace)),
                ..Default::default()
            })
            .await
            .map_err(storage_error)?;
        let mut names = Vec::with_capacity(page.kvs.len());
        for kv in &page.kvs {
            names.push(objects::name(&objects::decode(kv)?).to_string());
        }
        let items: Vec<(Option<&str>, &str)> = names
            .iter()
            .map(|name| (Some(namespace), name.as_str()))
            .collect();
        let deleted = Store::new(api, resource)
            .delete_collection(
                &Context::internal(CONTROLLER),
                &Preconditions::default(),
                &items,
            )
            .await?;
        if deleted.iter().any(|d| matches!(d, Deleted::Marked(_))) {
            empty = false;
        }
    }
    Ok(empty)
}

/// Removes the namespace once its own finalizers allow it.
async fn remove_namespace(api: &Api, name: &str) -> Result<(), ApiError> {
    let removed = Store::new(api, &namespaces(api))
        .remove_finalized(&Context::internal(CONTROLLER), None, name)
        .await;
    match removed {
        Ok(Deleted::Removed(_)) => {
            // Gone: a miss in the cache is now confirmed by a consistent read instead.
            api.terminating_namespaces.lock().remove(name);
            Ok(())
        }
        Ok(Deleted::Marked(_)) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
