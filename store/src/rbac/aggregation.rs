//! The ClusterRole aggregation controller (kube-controller-manager's
//! `clusterrole-aggregation`): a ClusterRole with an `aggregationRule` gets, as its `rules`,
//! the rules of every other ClusterRole its `clusterRoleSelectors` select — taken in the order
//! of the selected roles' names, each distinct rule once — written back through the Store, and kept
//! up to date as labelled roles come, change and go. It follows a live [`PolicyIndex`] like the
//! RBAC authorizer's and runs whatever `--authorization-mode` says (the objects are API state).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kubecache_core::selector::LabelSelector;
use kubecache_core::status::{ApiError, Reason};
use serde_json::json;

use super::index::{Policy, PolicyIndex};
use crate::{Context, Store, Writer};
use kubecache_apimachinery::objects;

/// Who the controller writes as (kube runs it in kube-controller-manager).
const MANAGER: &str = "kube-controller-manager";

/// Pause before retrying after a failed write (a conflict with a concurrent writer).
const RETRY: Duration = Duration::from_millis(200);

/// Runs for the server's lifetime, following `index` (the server gives it one of its own
/// over the same read path as the authorizer's).
pub async fn run(context: Arc<impl Context>, index: Arc<PolicyIndex>) {
    let mut changes = index.subscribe();
    loop {
        let policy = index.snapshot().await;
        let retry = if index.synced() {
            match reconcile(context.as_ref(), &policy).await {
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

/// Writes the pending updates through the Store, each only over the version it was computed
/// from (that version is the update's resourceVersion precondition).
async fn reconcile(context: &impl Context, policy: &Policy) -> Result<(), ApiError> {
    let resource = context
        .registry()
        .lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
        .expect("clusterroles are registered");
    let store = Store::new(context, &resource);
    let writer = Writer::internal(MANAGER);
    for (name, rules) in pending_updates(policy) {
        let Some(computed_from) = policy
            .cluster_role(&name)
            .and_then(|r| r.metadata.resource_version.clone())
        else {
            continue;
        };
        let updated = store
            .update(&writer, None, &name, |current| {
                let mut object = current.clone();
                object["rules"] = json!(rules);
                objects::metadata_mut(&mut object)
                    .insert("resourceVersion".into(), json!(computed_from));
                Ok(object)
            })
            .await;
        match updated {
            Ok(_) => {
                tracing::info!(clusterrole = %name, rules = rules.len(), "aggregated ClusterRole rules")
            }
            // Gone, or changed since the index saw it: the change's event brings us back.
            Err(e) if e.code == 404 || e.reason == Reason::Conflict => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
