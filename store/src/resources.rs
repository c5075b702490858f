//! Resources that come and go while serving (custom resources, a test's): the read path and
//! the registry kept in step. A resource is cached before it is published, so no request
//! finds it before its reads can be served, and unpublished before its cache is dropped.

use std::sync::Arc;

use kubecache_admission::Context;
use kubecache_apimachinery::registry::Resource;
use kubecache_apimachinery::strategy::Strategy;
use kubecache_core::status::ApiError;

/// Serves one more resource: the read path starts caching it (or serving it as one more
/// version of objects it caches), then the registry publishes it. Discovery, OpenAPI and the
/// RBAC resource lists follow the registry's generation.
pub fn add<C: Context + ?Sized>(
    context: &C,
    strategy: Arc<dyn Strategy>,
) -> Result<Arc<Resource>, ApiError> {
    let info = Arc::new(strategy.info());
    let invalid = |message: String| ApiError::bad_request(message);
    let registry = context.registry();
    if !info.is_stored() {
        return registry.add(strategy).map_err(|e| invalid(e.to_string()));
    }
    let sharing = registry
        .snapshot()
        .sharing_storage(&info.storage_path)
        .any(|r| r.is_stored());
    if sharing {
        context.reads().add_shape(info.clone())
    } else {
        let shapes = kubecache_cache::Shapes::new(vec![info.clone()]);
        context
            .reads()
            .add_resource(context.storage_prefix(&info), shapes)
    }
    .map_err(|e| invalid(format!("{}: {e}", info.resource)))?;
    registry.add(strategy).map_err(|e| invalid(e.to_string()))
}

/// Stops serving a resource: the registry drops it first (new requests get 404), then its
/// cache ends its watches (streams close cleanly, as kube-apiserver ends the watches of a
/// deleted CRD) and is freed, unless other versions of the same objects are still served.
/// Requests already running finish with the resource they resolved.
pub async fn remove<C: Context + ?Sized>(
    context: &C,
    group: &str,
    version: &str,
    name: &str,
) -> Option<Arc<Resource>> {
    let registry = context.registry();
    let removed = registry.remove(group, version, name)?;
    let still_shared = registry
        .snapshot()
        .sharing_storage(&removed.storage_path)
        .any(|r| r.is_stored());
    if removed.is_stored() && !still_shared {
        // NotFound: it was never cached (a read path without caches).
        let _ = context.reads().remove_resource(removed.info()).await;
    }
    Some(removed)
}
