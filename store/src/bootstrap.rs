//! Objects kube-apiserver creates at start besides namespaces and the RBAC policy: the
//! mandatory API Priority and Fairness configuration (kube's `apf_controller` ensurer of
//! the `exempt` and `catch-all` FlowSchemas and PriorityLevelConfigurations) and a local
//! APIService per built-in group-version (kube-aggregator's `autoregister` controller, with
//! the `Available` condition its availability controller gives a local APIService). Each
//! is created through the Store when missing and left alone when present, as kube does with
//! objects whose `apf.kubernetes.io/autoupdate-spec` a user turned off (kubecache does not
//! re-apply a changed spec; COMPATIBILITY.md).

use kubecache_apimachinery::objects;
use kubecache_apimachinery::registry::Resource;
use kubecache_core::request::Subresource;
use kubecache_core::status::Reason;
use kubecache_core::storage::StorageError;
use serde_json::{Value, json};

use crate::{Context, Store, Writer};

/// The field manager of these writes (kube's loopback client).
const MANAGER: &str = "kube-apiserver";

/// Creates each of `objects` that does not exist yet; returns the names of those created.
async fn create_missing(
    context: &impl Context,
    resource: &Resource,
    objects: Vec<Value>,
) -> Result<Vec<String>, StorageError> {
    let writer = Writer::internal(MANAGER);
    let mut created = Vec::new();
    for object in objects {
        let name = objects::name(&object).to_string();
        match Store::new(context, resource)
            .create(&writer, None, object)
            .await
        {
            Ok(_) => created.push(name),
            Err(e) if e.reason == Reason::AlreadyExists => {}
            Err(e) => return Err(crate::startup_error(e)),
        }
    }
    Ok(created)
}

fn lookup(context: &impl Context, group: &str, resource: &str) -> std::sync::Arc<Resource> {
    context
        .registry()
        .lookup(group, "v1", resource)
        .unwrap_or_else(|| panic!("{resource}.{group} is a built-in resource"))
}

// ---- API Priority and Fairness ----

const FLOWCONTROL: &str = "flowcontrol.apiserver.k8s.io";

fn apf_metadata(name: &str) -> Value {
    json!({"name": name, "annotations": {"apf.kubernetes.io/autoupdate-spec": "true"}})
}

/// Every request (`*` verbs, groups, resources, namespaces, URLs).
fn everything() -> (Value, Value) {
    (
        json!([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                "clusterScope": true, "namespaces": ["*"]}]),
        json!([{"verbs": ["*"], "nonResourceURLs": ["*"]}]),
    )
}

/// kube's mandatory PriorityLevelConfigurations: `exempt` and `catch-all`.
pub fn mandatory_priority_levels() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "PriorityLevelConfiguration",
            "metadata": apf_metadata("exempt"),
            "spec": {"type": "Exempt",
                     "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}},
        }),
        json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "PriorityLevelConfiguration",
            "metadata": apf_metadata("catch-all"),
            "spec": {"type": "Limited",
                     "limited": {"nominalConcurrencyShares": 5, "lendablePercent": 0,
                                 "limitResponse": {"type": "Reject"}}},
        }),
    ]
}

/// kube's mandatory FlowSchemas: `exempt` (system:masters, precedence 1) and `catch-all`
/// (every authenticated or unauthenticated user, precedence 10000, by user).
pub fn mandatory_flow_schemas() -> Vec<Value> {
    let (resource_rules, non_resource_rules) = everything();
    let group = |name: &str| json!({"kind": "Group", "group": {"name": name}});
    vec![
        json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": apf_metadata("exempt"),
            "spec": {
                "priorityLevelConfiguration": {"name": "exempt"},
                "matchingPrecedence": 1,
                "rules": [{"subjects": [group("system:masters")],
                           "resourceRules": resource_rules,
                           "nonResourceRules": non_resource_rules}],
            },
        }),
        json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": apf_metadata("catch-all"),
            "spec": {
                "priorityLevelConfiguration": {"name": "catch-all"},
                "matchingPrecedence": 10000,
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [{"subjects": [group("system:unauthenticated"),
                                        group("system:authenticated")],
                           "resourceRules": resource_rules,
                           "nonResourceRules": non_resource_rules}],
            },
        }),
    ]
}

/// Creates the mandatory APF objects that are missing (priority levels first, as the
/// schemas name them).
pub async fn ensure_flow_control(context: &impl Context) -> Result<Vec<String>, StorageError> {
    let levels = lookup(context, FLOWCONTROL, "prioritylevelconfigurations");
    let schemas = lookup(context, FLOWCONTROL, "flowschemas");
    let mut created = create_missing(context, &levels, mandatory_priority_levels()).await?;
    created.extend(create_missing(context, &schemas, mandatory_flow_schemas()).await?);
    Ok(created)
}

// ---- local APIServices ----

/// kube's group and version priorities of its built-in group-versions (kube-apiserver's
/// `DefaultGenericAPIServicePriorities` and the controlplane's additions): the group-versions
/// a local APIService is made for. A group-version not listed gets none, as in kube (a
/// custom resource's group never does).
const PRIORITIES: &[(&str, &str, i64, i64)] = &[
    ("", "v1", 18000, 1),
    ("apps", "v1", 17800, 15),
    ("events.k8s.io", "v1", 17750, 15),
    ("authentication.k8s.io", "v1", 17700, 15),
    ("authorization.k8s.io", "v1", 17600, 15),
    ("autoscaling", "v1", 17500, 15),
    ("autoscaling", "v2", 17500, 30),
    ("batch", "v1", 17400, 15),
    ("certificates.k8s.io", "v1", 17300, 15),
    ("networking.k8s.io", "v1", 17200, 15),
    ("policy", "v1", 17100, 15),
    ("rbac.authorization.k8s.io", "v1", 17000, 15),
    ("storage.k8s.io", "v1", 16800, 15),
    ("apiextensions.k8s.io", "v1", 16700, 15),
    ("admissionregistration.k8s.io", "v1", 16700, 15),
    ("scheduling.k8s.io", "v1", 16600, 15),
    ("coordination.k8s.io", "v1", 16500, 15),
    ("node.k8s.io", "v1", 16300, 15),
    ("discovery.k8s.io", "v1", 16200, 15),
    ("flowcontrol.apiserver.k8s.io", "v1", 16100, 21),
    ("resource.k8s.io", "v1beta1", 15900, 15),
];

/// The local APIService of every served built-in group-version kube has a priority for.
pub fn local_api_services(served: &[(String, Vec<String>)]) -> Vec<Value> {
    let mut out = Vec::new();
    for (group, versions) in served {
        for version in versions {
            let Some((_, _, group_priority, version_priority)) = PRIORITIES
                .iter()
                .find(|(g, v, _, _)| g == group && v == version)
            else {
                continue;
            };
            out.push(json!({
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {
                    "name": format!("{version}.{group}"),
                    "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"},
                },
                "spec": {
                    "group": group,
                    "version": version,
                    "groupPriorityMinimum": group_priority,
                    "versionPriority": version_priority,
                },
            }));
        }
    }
    out
}

/// Creates the missing local APIServices and marks each `Available` (a `/status` write, as
/// kube's availability controller does for a local APIService).
pub async fn ensure_api_services(context: &impl Context) -> Result<Vec<String>, StorageError> {
    let resource = lookup(context, "apiregistration.k8s.io", "apiservices");
    let served = context.registry().snapshot().groups();
    let created = create_missing(context, &resource, local_api_services(&served)).await?;
    let writer = Writer {
        subresource: Some(Subresource::Status),
        ..Writer::internal(MANAGER)
    };
    let now = objects::now_rfc3339();
    for name in &created {
        Store::new(context, &resource)
            .update(&writer, None, name, |current| {
                let mut next = current.clone();
                next["status"] = json!({"conditions": [{
                    "type": "Available",
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": "Local",
                    "message": "Local APIServices are always available",
                }]});
                Ok(next)
            })
            .await
            .map_err(crate::startup_error)?;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubecache_apimachinery::registry::Registry;

    /// Every object is valid by its own strategy (the bootstrap would fail at start
    /// otherwise), and every built-in group-version with a priority gets its APIService.
    #[test]
    fn the_bootstrap_objects_are_valid() {
        let registry = Registry::builtin();
        let snapshot = registry.snapshot();
        let services = local_api_services(&snapshot.groups());
        let names: Vec<&str> = services.iter().map(objects::name).collect();
        assert!(names.contains(&"v1."), "{names:?}");
        assert!(names.contains(&"v1.certificates.k8s.io"), "{names:?}");
        assert!(
            names.contains(&"v1.flowcontrol.apiserver.k8s.io"),
            "{names:?}"
        );
        let check = |resource: &str, group: &str, objects: Vec<Value>| {
            let strategy = snapshot.lookup(group, "v1", resource).unwrap().strategy();
            for object in objects {
                assert_eq!(strategy.validate(&object), [], "{object:#}");
            }
        };
        check("apiservices", "apiregistration.k8s.io", services);
        check(
            "prioritylevelconfigurations",
            FLOWCONTROL,
            mandatory_priority_levels(),
        );
        check("flowschemas", FLOWCONTROL, mandatory_flow_schemas());
    }
}
