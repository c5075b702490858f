//! The ClusterRole aggregation controller (kube-controller-manager's
//! `clusterrole-aggregation`): a ClusterRole with an `aggregationRule` gets, as its `rules`,
//! the rules of every other ClusterRole its `clusterRoleSelectors` select — taken in the order
//! of the selected roles' names, each distinct rule once — written back into storage, and kept
//! up to date as labelled roles come, change and go. It follows the same live index as the
//! RBAC authorizer and runs whatever `--authorization-mode` says (the objects are API state).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kubecache_core::selector::LabelSelector;
use kubecache_core::storage::StorageError;
use serde_json::json;

use super::index::{Policy, PolicyIndex};
use crate::api::Api;
use crate::objects;

/// Pause before retrying after a failed write (a conflict with a concurrent writer).
const RETRY: Duration = Duration::from_millis(200);

/// Runs for the server's lifetime.
pub async fn run(api: Arc<Api>) {
    let index = PolicyIndex::with_root(api.reads.clone(), &api.storage_root);
    let mut changes = index.subscribe();
    loop {
        let policy = index.snapshot().await;
        let retry = if index.synced() {
            match reconcile(&api, &policy).await {
                Ok(()) => false,
                Err(e) => {
                    tracing::debug!("ClusterRole aggregation will retry: {e}");
                    true
                }
            }
        } else {
            true
        };
        if retry {
            tokio::time::sleep(RETRY).await;
        } else if changes.changed().await.is_err() {
            return;
        }
    }
}

/// The rules each aggregated ClusterRole should have, for the roles whose rules differ.
pub fn pending_updates(policy: &Policy) -> Vec<(String, Vec<PolicyRule>)> {
    let mut updates = Vec::new();
    for (name, role) in policy.cluster_roles.iter() {
        let Some(rule) = role.aggregation_rule.as_ref() else {
            continue;
        };
        let selectors: Vec<LabelSelector> = rule
            .cluster_role_selectors
            .iter()
            .flatten()
            .filter_map(|s| {
                let value = serde_json::to_value(s).ok()?;
                LabelSelector::from_label_selector_json(&value).ok()
            })
            .collect();
        let mut rules: Vec<PolicyRule> = Vec::new();
        // BTreeMap iteration is in name order, kube's order of the selected roles.
        for (other_name, other) in policy.cluster_roles.iter() {
            if other_name == name || !selects(&selectors, other) {
                continue;
            }
            for r in other.rules.iter().flatten() {
                if !rules.contains(r) {
                    rules.push(r.clone());
                }
            }
        }
        if role.rules.as_deref().unwrap_or_default() != rules.as_slice() {
            updates.push((name.clone(), rules));
        }
    }
    updates
}

fn selects(selectors: &[LabelSelector], role: &ClusterRole) -> bool {
    let empty = BTreeMap::new();
    let labels = role.metadata.labels.as_ref().unwrap_or(&empty);
    selectors
        .iter()
        .any(|s| s.matches_with(|key| labels.get(key).map(String::as_str)))
}

/// Writes the pending updates, each only over the version it was computed from.
async fn reconcile(api: &Api, policy: &Policy) -> Result<(), StorageError> {
    let resource = api
        .registry
        .lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
        .expect("clusterroles are registered");
    for (name, rules) in pending_updates(policy) {
        let key = api.object_key(&resource, None, &name);
        let Some(kv) = api.backend.get(&key).await? else {
            continue;
        };
        let Ok(mut object) = objects::decode(&kv) else {
            continue;
        };
        let computed_from = policy
            .cluster_role(&name)
            .and_then(|r| r.metadata.resource_version.as_deref())
            .and_then(|rv| rv.parse::<i64>().ok());
        if computed_from != Some(kv.mod_revision) {
            // The index has not seen the latest version yet; its event will bring us back.
            continue;
        }
        object["rules"] = json!(rules);
        api.backend
            .update(&key, objects::encode(&object), kv.mod_revision)
            .await?;
        tracing::info!(clusterrole = %name, rules = rules.len(), "aggregated ClusterRole rules");
    }
    Ok(())
}
