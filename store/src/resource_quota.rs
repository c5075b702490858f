//! kube-controller-manager's `resourcequota` controller, run in-process: every quota's
//! `status.hard` mirrors its `spec.hard` and `status.used` is counted from the objects it
//! selects (with the evaluators admission charges with, [`kubecache_admission::quota::usage`]).
//!
//! A quota is recounted when it appears or its `spec.hard` changes (it follows a watch of
//! quotas), when an object leaves its namespace (admission marks the namespace,
//! [`kubecache_admission::quota::Quotas::dirty`]), and every quota on a periodic resync that
//! repairs any drift (`--resource-quota-sync-period`, kube's default 5 minutes): pods that
//! reached a terminal phase, a charge whose object was never written by a server that died.
//!
//! Its status writes are compare-and-swaps on the quota's revision, as admission's charges
//! are: a recount that loses a race with a charge starts again from the quota as it is.
//! As in kube, a recount that runs while a charged object is still being written does not see
//! that object; the next recount does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kubecache_admission::quota::{self, usage};
use kubecache_apimachinery::objects;
use kubecache_core::status::{ApiError, storage_error};
use kubecache_core::storage::{KeyValue, ListOptions, StorageError};
use serde_json::Value;
use usage::{Amount, Evaluator, ResourceList};

use crate::Context;
use crate::service_accounts::{Event, watch};

/// The controller's name in `--controllers`.
pub const RESOURCE_QUOTA: &str = "resourcequota";
/// kube-controller-manager's `--resource-quota-sync-period` default.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(300);
/// A watch that ends is started again after this long.
const REWATCH_DELAY: Duration = Duration::from_secs(1);

/// Runs the controller for the server's lifetime.
pub async fn run(context: Arc<impl Context + 'static>, sync_period: Duration) {
    let follow = follow_quotas(context.clone());
    let replenish = async {
        loop {
            let namespaces = context.admission().quotas.dirty().await;
            for namespace in namespaces {
                report(sync_namespace(context.as_ref(), Some(&namespace)).await);
            }
        }
    };
    let resync = async {
        let mut ticks = tokio::time::interval(sync_period);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            report(sync_namespace(context.as_ref(), None).await);
        }
    };
    tokio::join!(follow, replenish, resync);
}

fn report(outcome: Result<(), ApiError>) {
    if let Err(e) = outcome {
        tracing::warn!("resource quota controller: {e}");
    }
}

/// Recounts every quota whose status does not reflect its spec yet, as the watch shows them.
async fn follow_quotas(context: Arc<impl Context + 'static>) {
    loop {
        match watch(context.as_ref(), "resourcequotas").await {
            Ok(mut frames) => {
                while let Some(frame) = frames.next().await {
                    for line in frame.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        let Ok(event) = serde_json::from_slice::<Event>(line) else {
                            continue;
                        };
                        if event.kind == "ERROR" {
                            break;
                        }
                        if event.kind != "DELETED" && !status_is_current(&event.object) {
                            report(sync_quota_named(context.as_ref(), &event.object).await);
                        }
                    }
                }
            }
            Err(e) => tracing::debug!("resource quota controller: watch: {e}"),
        }
        tokio::time::sleep(REWATCH_DELAY).await;
    }
}

/// `status.hard` is `spec.hard` and `status.used` has every hard resource.
fn status_is_current(quota: &Value) -> bool {
    let hard = &quota["spec"]["hard"];
    let used = quota["status"]["used"].as_object();
    quota["status"]["hard"] == *hard
        && hard
            .as_object()
            .into_iter()
            .flatten()
            .all(|(name, _)| used.is_some_and(|u| u.contains_key(name)))
}

/// Recounts every quota of `namespace` (all namespaces when `None`).
pub async fn sync_namespace(
    context: &impl Context,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    let Some(quotas) = context.registry().lookup("", "v1", "resourcequotas") else {
        return Ok(());
    };
    let prefix = quotas.collection_prefix(context.storage_root(), namespace);
    let page = context
        .backend()
        .list(list_all(prefix))
        .await
        .map_err(storage_error)?;
    for kv in page.kvs {
        sync_quota(context, kv).await?;
    }
    Ok(())
}

async fn sync_quota_named(context: &impl Context, quota: &Value) -> Result<(), ApiError> {
    let namespace = objects::meta_str(quota, "namespace").unwrap_or_default();
    let name = objects::name(quota);
    let Some(quotas) = context.registry().lookup("", "v1", "resourcequotas") else {
        return Ok(());
    };
    let key = context.object_key(&quotas, Some(namespace), name);
    // The event may be stale: a status written since (by another server's controller, or by
    // hand) is not counted over.
    match context.backend().get(&key).await.map_err(storage_error)? {
        Some(kv) if !status_is_current(&objects::decode(&kv)?) => sync_quota(context, kv).await,
        _ => Ok(()),
    }
}

/// Writes one quota's status from a fresh count, again on a lost race.
async fn sync_quota(context: &impl Context, mut kv: KeyValue) -> Result<(), ApiError> {
    loop {
        let quota = objects::decode(&kv)?;
        let namespace = objects::meta_str(&quota, "namespace").unwrap_or_default();
        let hard = usage::parse_list(&quota["spec"]["hard"]);
        let used = count_usage(context, namespace, &quota, &hard).await?;
        let mut next = quota::with_used(&quota, &used);
        next["status"]["hard"] = quota["spec"]["hard"].clone();
        if next["status"]["hard"].is_null() {
            next["status"]["hard"] = serde_json::json!({});
        }
        if next["status"] == quota["status"] {
            return Ok(());
        }
        match context
            .backend()
            .update(&kv.key, objects::encode_owned(&mut next), kv.mod_revision)
            .await
        {
            Ok(_) => return Ok(()),
            Err(StorageError::Conflict {
                current: Some(current),
                ..
            }) => kv = current,
            Err(StorageError::Conflict { current: None, .. })
            | Err(StorageError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(storage_error(e)),
        }
    }
}

/// What the objects of `namespace` that `quota` selects use of each `hard` resource (zero
/// for those none uses).
async fn count_usage(
    context: &impl Context,
    namespace: &str,
    quota: &Value,
    hard: &ResourceList,
) -> Result<ResourceList, ApiError> {
    let mut used = ResourceList::new();
    for (group, plural) in counted_resources(hard) {
        let Some(served) = served(context, &group, &plural) else {
            continue;
        };
        let evaluator = Evaluator::of(&group, &plural);
        let prefix = served.collection_prefix(context.storage_root(), Some(namespace));
        let page = context
            .backend()
            .list(list_all(prefix))
            .await
            .map_err(storage_error)?;
        for kv in page.kvs {
            let Ok(object) = serde_json::from_slice::<Value>(&kv.value) else {
                continue;
            };
            if evaluator.matches(quota, &object) {
                let charged = usage::mask(&evaluator.usage(&object), hard.keys());
                used = usage::add(&used, &charged);
            }
        }
    }
    for name in hard.keys() {
        used.entry(name.clone()).or_insert_with(|| Amount::count(0));
    }
    Ok(used)
}

/// The resources (group, plural) whose objects the `hard` names count.
fn counted_resources(hard: &ResourceList) -> BTreeSet<(String, String)> {
    let core = |plural: &str| (String::new(), plural.to_string());
    let mut resources = BTreeSet::new();
    for name in hard.keys() {
        for plural in ["pods", "services", "persistentvolumeclaims"] {
            if Evaluator::of("", plural).tracks(name) {
                resources.insert(core(plural));
            }
        }
        if let Some(counted) = name.strip_prefix("count/") {
            let (plural, group) = counted.split_once('.').unwrap_or((counted, ""));
            resources.insert((group.to_string(), plural.to_string()));
        } else if Evaluator::of("", name).tracks(name) {
            // A legacy count name (`secrets`, `configmaps`…).
            resources.insert(core(name));
        }
    }
    resources
}

/// Any served version of `group`/`plural` (they share storage).
fn served(
    context: &impl Context,
    group: &str,
    plural: &str,
) -> Option<Arc<kubecache_apimachinery::registry::Resource>> {
    context
        .registry()
        .snapshot()
        .iter()
        .find(|r| r.group == group && r.resource == plural && r.is_stored())
        .cloned()
}

fn list_all(prefix: String) -> ListOptions {
    ListOptions {
        prefix,
        start_key: None,
        limit: None,
        revision: None,
    }
}
