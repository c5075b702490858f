//! The server's namespace writers: the initial namespaces, created at start, and the
//! finalizer (kube-controller-manager's namespace controller) that empties a namespace a
//! delete marked Terminating, then removes it. The other half of the lifecycle, refusing
//! content in a missing or terminating namespace, is admission's
//! (`kubecache_admission::lifecycle`).

use kubecache_apimachinery::registry::Resource;
use std::sync::Arc;
use std::time::Duration;

use kubecache_core::status::ApiError;
use kubecache_core::storage::{ListOptions, StorageError};
use serde_json::json;

use crate::{Context, Deleted, Preconditions, Store, Writer};
use kubecache_apimachinery::objects;
use kubecache_core::status::storage_error;

/// Namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Who the namespace finalizer writes as (kube runs it in kube-controller-manager).
const CONTROLLER: &str = "kube-controller-manager";

/// How often terminating namespaces are looked at again while they still hold content.
const FINALIZE_RETRY: Duration = Duration::from_secs(2);

fn namespaces(context: &impl Context) -> Arc<Resource> {
    context
        .registry()
        .lookup("", "v1", "namespaces")
        .expect("namespaces are always registered")
}

/// The field manager of the server's own namespace writes (kube's, whose loopback client
/// is named after the binary).
const MANAGER: &str = "kube-apiserver";

/// Creates the initial namespaces that do not exist yet, through the Store like any create.
pub async fn bootstrap(context: &impl Context) -> Result<(), StorageError> {
    let namespaces = namespaces(context);
    let store = Store::new(context, &namespaces);
    let writer = Writer::internal(MANAGER);
    for name in INITIAL_NAMESPACES {
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match store.create(&writer, None, object).await {
            Ok(_) => {}
            Err(e) if e.reason == kubecache_core::status::Reason::AlreadyExists => {}
            Err(e) => return Err(crate::startup_error(e)),
        }
    }
    Ok(())
}

/// Runs for the server's lifetime: empties and removes terminating namespaces, when woken
/// by a namespace deletion and periodically (content with finalizers goes away later).
pub async fn run_finalizer(context: Arc<impl Context>) {
    loop {
        let pending = match finalize_terminating(context.as_ref()).await {
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
            _ = context.namespace_deleted().notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass over terminating namespaces; true while some remain.
async fn finalize_terminating(context: &impl Context) -> Result<bool, ApiError> {
    let resource = namespaces(context);
    let page = context
        .backend()
        .list(ListOptions {
            prefix: context.storage_prefix(&resource),
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
        if empty_namespace(context, &name).await? {
            remove_namespace(context, &name).await?;
        }
    }
    Ok(pending)
}

/// Deletes everything in the namespace; true when nothing is left.
async fn empty_namespace(context: &impl Context, namespace: &str) -> Result<bool, ApiError> {
    let mut empty = true;
    let mut seen_paths = Vec::new();
    for resource in context
        .registry()
        .snapshot()
        .iter()
        .filter(|r| r.namespaced)
    {
        if seen_paths.contains(&resource.storage_path) {
            continue;
        }
        seen_paths.push(resource.storage_path.clone());
        let page = context
            .backend()
            .list(ListOptions {
                prefix: resource.collection_prefix(context.storage_root(), Some(namespace)),
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
        let deleted = Store::new(context, resource)
            .delete_collection(
                &Writer::internal(CONTROLLER),
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
async fn remove_namespace(context: &impl Context, name: &str) -> Result<(), ApiError> {
    let removed = Store::new(context, &namespaces(context))
        .remove_finalized(&Writer::internal(CONTROLLER), None, name)
        .await;
    match removed {
        Ok(Deleted::Removed(_)) => {
            // Gone: a miss in the cache is now confirmed by a consistent read instead.
            context.terminating_namespaces().lock().remove(name);
            Ok(())
        }
        Ok(Deleted::Marked(_)) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
