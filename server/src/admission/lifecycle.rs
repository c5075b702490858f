//! NamespaceLifecycle: content is only created in an existing, active namespace, and the
//! namespaces every cluster needs cannot be deleted (kube-apiserver's plugin of that name; the
//! namespace finalizer that empties a terminating namespace lives in
//! [`crate::handlers::namespaces`]).

use crate::registry::Resource;
use async_trait::async_trait;
use kubecache_core::status::{ApiError, qualified_resource};
use serde_json::Value;

use super::{Attributes, MutatingPlugin, Operation};
use crate::handlers::namespaces;

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
                namespaces::ensure_accepts_content(attrs.api, ns).await
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
