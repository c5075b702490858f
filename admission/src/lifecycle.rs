//! NamespaceLifecycle: content is only created in an existing, active namespace, and the
//! namespaces every cluster needs cannot be deleted (kube-apiserver's plugin of that name; the
//! namespace finalizer that empties a terminating namespace lives in
//! `kubecache_store::namespaces`).

use async_trait::async_trait;
use kubecache_apimachinery::registry::Resource;
use kubecache_cache::ReadAt;
use kubecache_core::status::{ApiError, Cause, qualified_resource};
use serde_json::Value;

use super::{Attributes, Context, MutatingPlugin, Operation};
use kubecache_core::status::storage_error;

/// Namespaces that may not be deleted (kube's `immortalNamespaces`).
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

pub struct NamespaceLifecycle;

#[async_trait]
impl MutatingPlugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    /// Creates only: 404 when the namespace does not exist, 403 when it is terminating.
    /// Updates and deletes inside a terminating namespace go on (the finalizer needs them).
    async fn admit(&self, attrs: &Attributes<'_>, _object: &mut Value) -> Result<(), ApiError> {
        match (attrs.operation, attrs.namespace) {
            (Operation::Create, Some(ns)) if attrs.resource.namespaced => {
                ensure_accepts_content(attrs.context, ns).await
            }
            _ => Ok(()),
        }
    }
}

/// 403 for a delete of an immortal namespace.
pub fn admit_delete(resource: &Resource, name: &str) -> Result<(), ApiError> {
    if resource.group.is_empty()
        && resource.kind == "Namespace"
        && IMMORTAL_NAMESPACES.contains(&name)
    {
        let mut err = ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: this namespace may not be deleted",
            qualified_resource(&resource.group, &resource.resource)
        ));
        err.name = Some(name.to_string());
        err.kind = Some(resource.resource.to_string());
        return Err(err);
    }
    Ok(())
}

/// 404 when the namespace does not exist, 403 when it is terminating.
async fn ensure_accepts_content(context: &dyn Context, namespace: &str) -> Result<(), ApiError> {
    let namespaces = context
        .registry()
        .lookup("", "v1", "namespaces")
        .expect("namespaces are built in");
    let key = context.object_key(&namespaces, None, namespace);
    // Cached state first; a namespace it does not know yet may have just been created, so a
    // miss is confirmed with a consistent read (kube's lifecycle admission does the same).
    let marked = context
        .terminating_namespaces()
        .lock()
        .get(namespace)
        .copied();
    let first = marked.map_or(ReadAt::Any, ReadAt::NotOlderThan);
    let mut found = None;
    let mut consistent = false;
    for at in [first, ReadAt::Latest] {
        found = context
            .reads()
            .get(&namespaces, &key, at)
            .await
            .map_err(storage_error)?;
        consistent = at == ReadAt::Latest;
        if found.is_some() {
            break;
        }
    }
    let mut cached = found.ok_or_else(|| ApiError::not_found("", "namespaces", namespace))?;
    if is_deleting(&cached.kv)? && !consistent {
        // A terminating namespace may be gone by now (its finalizer done): a create into it
        // then gets the 404 a consistent read gives, not a 403 from a cache a moment behind.
        cached = context
            .reads()
            .get(&namespaces, &key, ReadAt::Latest)
            .await
            .map_err(storage_error)?
            .ok_or_else(|| ApiError::not_found("", "namespaces", namespace))?;
    }
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
