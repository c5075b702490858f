//! The core (legacy) group, `v1`.

use k8s_openapi::api::core::v1 as core;

use kubecache_core::registry::{ALL, CLUSTER, NAMESPACED, ResourceInfo};
use kubecache_core::request::Subresource;
use kubecache_core::status::Cause;
use kubecache_core::validation::NameRule;
use serde_json::{Value, json};

use super::{DefaultContext, Deletion, Strategy, typed_as};
use super::{defaults, quota, validation};
use crate::objects;
use crate::table::{self, Printer};

/// The health of the cluster's components, computed on each read and never stored
/// (kube's `pkg/registry/core/componentstatus`); the server answers its reads.
pub struct ComponentStatuses;

impl Strategy for ComponentStatuses {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "",
            "v1",
            "componentstatuses",
            "componentstatus",
            "ComponentStatus",
            CLUSTER,
        )
        .short(&["cs"])
        .read_only()
    }
    typed_as!(core::ComponentStatus);
    fn printer(&self) -> &'static Printer {
        &table::COMPONENTSTATUS
    }
    fn warning(&self) -> Option<String> {
        Some("v1 ComponentStatus is deprecated in v1.19+".into())
    }
}

pub struct ConfigMaps;

impl Strategy for ConfigMaps {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("", "v1", "configmaps", "configmap", "ConfigMap", NAMESPACED)
            .short(&["cm"])
    }
    typed_as!(core::ConfigMap);
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        validation::immutable_data(new, old, &["data", "binaryData"])
    }
    fn printer(&self) -> &'static Printer {
        &table::CONFIGMAP
    }
}

pub struct Endpoints;

impl Strategy for Endpoints {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("", "v1", "endpoints", "endpoints", "Endpoints", NAMESPACED)
            .short(&["ep"])
            .stored_at("services/endpoints")
    }
    typed_as!(core::Endpoints);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::endpoints(object);
    }
}

pub struct Events;

impl Strategy for Events {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("", "v1", "events", "event", "Event", NAMESPACED)
            .selectable(&[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ])
            .short(&["ev"])
    }
    typed_as!(core::Event);
    fn printer(&self) -> &'static Printer {
        &table::EVENT
    }
}

pub struct LimitRanges;

impl Strategy for LimitRanges {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "",
            "v1",
            "limitranges",
            "limitrange",
            "LimitRange",
            NAMESPACED,
        )
        .short(&["limits"])
    }
    typed_as!(core::LimitRange);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        quota::default_limit_range(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        quota::validate_limit_range(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::LIMITRANGE
    }
}

pub struct Namespaces;

impl Strategy for Namespaces {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("", "v1", "namespaces", "namespace", "Namespace", CLUSTER)
            .selectable(&["status.phase"])
            .short(&["ns"])
            .status()
            .names(NameRule::Label)
    }
    typed_as!(core::Namespace);
    /// A namespace is labelled with its name, gets the `kubernetes` finalizer and starts
    /// Active.
    fn prepare_for_create(&self, _: &ResourceInfo, object: &mut Value) {
        let name = objects::name(object).to_string();
        let labels = objects::metadata_mut(object)
            .entry("labels")
            .or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
        object["spec"] = json!({"finalizers": ["kubernetes"]});
        object["status"] = json!({"phase": "Active"});
    }
    /// A namespace's spec (its finalizers) is the server's, not the client's.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if let Some(spec) = old.get("spec") {
            new["spec"] = spec.clone();
        }
    }
    fn printer(&self) -> &'static Printer {
        &table::NAMESPACE
    }
    fn delete_returns_object(&self) -> bool {
        true
    }
    fn deletion(&self) -> Deletion {
        Deletion::Terminating
    }
    fn mark_deleting(&self, object: &mut Value) {
        object["status"] = serde_json::json!({"phase": "Terminating"});
    }
}

pub struct Nodes;

impl Strategy for Nodes {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("", "v1", "nodes", "node", "Node", CLUSTER)
            .selectable(&["spec.unschedulable"])
            .short(&["no"])
            .status()
            .subresources(&[Subresource::Proxy])
            .stored_at("minions")
    }
    typed_as!(core::Node);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::node(object);
    }
    fn printer(&self) -> &'static Printer {
        &table::NODE
    }
}

pub struct PersistentVolumeClaims;

impl Strategy for PersistentVolumeClaims {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "",
            "v1",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            "PersistentVolumeClaim",
            NAMESPACED,
        )
        .short(&["pvc"])
        .status()
    }
    typed_as!(core::PersistentVolumeClaim);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::pvc(object);
    }
    fn printer(&self) -> &'static Printer {
        &table::PVC
    }
    fn delete_returns_object(&self) -> bool {
        true
    }
}

pub struct PersistentVolumes;

impl Strategy for PersistentVolumes {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "",
            "v1",
            "persistentvolumes",
            "persistentvolume",
            "PersistentVolume",
            CLUSTER,
        )
        .short(&["pv"])
        .status()
    }
    typed_as!(core::PersistentVolume);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::persistent_volume(object);
    }
    fn printer(&self) -> &'static Printer {
        &table::PV
    }
    fn delete_returns_object(&self) -> bool {
        true
    }
}

/// `v1 bindings`: the create-only, namespaced form of `pods/{name}/binding` (kube's
/// LegacyBindingREST), never stored: a create binds the pod its name names.
pub struct Bindings;

impl Strategy for Bindings {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("", "v1", "bindings", "binding", "Binding", NAMESPACED).create_only()
    }
    typed_as!(core::Binding);
}

pub struct Pods;

impl Strategy for Pods {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("", "v1", "pods", "pod", "Pod", NAMESPACED)
            .selectable(&[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ])
            .short(&["po"])
            .categories(ALL)
            .status()
            .subresources(&[
                Subresource::Binding,
                Subresource::Eviction,
                Subresource::EphemeralContainers,
                Subresource::Resize,
                Subresource::Log,
                Subresource::Exec,
                Subresource::Attach,
                Subresource::PortForward,
                Subresource::Proxy,
            ])
    }
    typed_as!(core::Pod);
    fn trigger_field(&self) -> Option<&'static str> {
        Some("spec.nodeName")
    }
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::pod(object);
    }
    /// A new pod is Pending, with the QoS class its containers' resources give it.
    fn prepare_for_create(&self, _: &ResourceInfo, object: &mut Value) {
        object["status"] = json!({"phase": "Pending", "qosClass": pod_qos_class(object)});
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validation::pod(object)
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        validation::pod_update(new, old)
    }
    fn validate_subresource_update(
        &self,
        subresource: Subresource,
        new: &Value,
        old: &Value,
    ) -> Vec<Cause> {
        match subresource {
            Subresource::EphemeralContainers => {
                validation::pod_ephemeral_containers_update(new, old)
            }
            Subresource::Resize => validation::pod_resize(new, old),
            _ => Vec::new(),
        }
    }
    fn merge_subresource_write(
        &self,
        subresource: Subresource,
        current: &Value,
        submitted: &Value,
    ) -> Value {
        match subresource {
            Subresource::EphemeralContainers => pod_with_ephemeral_containers(current, submitted),
            Subresource::Resize => pod_with_resources(current, submitted),
            _ => crate::objects::apply_status_update(current, submitted),
        }
    }
    fn printer(&self) -> &'static Printer {
        &table::POD
    }
    fn delete_returns_object(&self) -> bool {
        true
    }
}

/// The stored pod with what a `pods/ephemeralcontainers` write may change taken from `new`:
/// `spec.ephemeralContainers` only (kube's `dropNonEphemeralContainerUpdates`).
pub fn pod_with_ephemeral_containers(old: &Value, new: &Value) -> Value {
    pod_with(old, new, |spec, new_spec| {
        set_or_remove(
            spec,
            "ephemeralContainers",
            new_spec.get("ephemeralContainers"),
        );
    })
}

/// The stored pod with what a `pods/resize` write may change taken from `new`: each
/// container's `resources` and `resizePolicy`, matched by name (kube 1.33's
/// `dropNonResizeUpdates`; containers added or removed in `new` are ignored).
pub fn pod_with_resources(old: &Value, new: &Value) -> Value {
    pod_with(old, new, |spec, new_spec| {
        let submitted = new_spec
            .get("containers")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) else {
            return;
        };
        for container in containers {
            let name = container.get("name").cloned();
            if let Some(from) = submitted.iter().find(|c| c.get("name") == name.as_ref()) {
                for field in ["resources", "resizePolicy"] {
                    set_or_remove(container, field, from.get(field));
                }
            }
        }
    })
}

/// `old` with its spec changed by `change` from `new`'s spec, and `new`'s resourceVersion
/// (the client's precondition) when it has one, as a status write takes it.
fn pod_with(old: &Value, new: &Value, change: impl FnOnce(&mut Value, &Value)) -> Value {
    let mut result = old.clone();
    let new_spec = new.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(spec) = result.get_mut("spec") {
        change(spec, &new_spec);
    }
    if let Some(rv) = objects::meta_str(new, "resourceVersion") {
        objects::metadata_mut(&mut result).insert("resourceVersion".into(), json!(rv));
    }
    result
}

fn set_or_remove(target: &mut Value, key: &str, value: Option<&Value>) {
    let Some(map) = target.as_object_mut() else {
        return;
    };
    match value {
        Some(v) => {
            map.insert(key.into(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

/// Sets a pod condition as kube's `UpdatePodCondition`: a new type is appended, an existing
/// one replaced, its `lastTransitionTime` now unless its status is unchanged.
pub fn set_pod_condition(
    pod: &mut Value,
    condition_type: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    let mut condition = json!({
        "type": condition_type,
        "status": status,
        "lastProbeTime": null,
        "lastTransitionTime": objects::now_rfc3339(),
    });
    if let Some(reason) = reason {
        condition["reason"] = json!(reason);
    }
    if let Some(message) = message {
        condition["message"] = json!(message);
    }
    let Some(pod) = pod.as_object_mut() else {
        return;
    };
    let status_map = pod.entry("status").or_insert_with(|| json!({}));
    if !status_map.is_object() {
        *status_map = json!({});
    }
    let conditions = status_map
        .as_object_mut()
        .expect("status is an object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("conditions is an array");
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(condition_type))
    {
        Some(existing) => {
            if existing.get("status").and_then(Value::as_str) == Some(status) {
                condition["lastTransitionTime"] = existing
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            *existing = condition;
        }
        None => list.push(condition),
    }
}

/// The pod's QoS class from its containers' requests and limits (simplified from
/// kube's `GetPodQOS`: equal cpu and memory requests and limits everywhere → Guaranteed).
pub(crate) fn pod_qos_class(pod: &Value) -> &'static str {
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for resource in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// A pod template kept as an object of its own (kube's `pkg/registry/core/podtemplate`).
pub struct PodTemplates;

impl Strategy for PodTemplates {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "",
            "v1",
            "podtemplates",
            "podtemplate",
            "PodTemplate",
            NAMESPACED,
        )
    }
    typed_as!(core::PodTemplate);
    /// Generation 1 on create, bumped when the template changes.
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::pod_template(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validation::pod_template(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::PODTEMPLATE
    }
}

pub struct ReplicationControllers;

impl Strategy for ReplicationControllers {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "",
            "v1",
            "replicationcontrollers",
            "replicationcontroller",
            "ReplicationController",
            NAMESPACED,
        )
        .selectable(&["status.replicas"])
        .short(&["rc"])
        .categories(ALL)
        .status()
        .scale()
        .stored_at("controllers")
    }
    typed_as!(core::ReplicationController);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::replication_controller(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validation::replication_controller(object)
    }
}

/// Its `status` (the enforced `hard` and the `used` amounts) is written through `/status`
/// only, by the quota controller.
pub struct ResourceQuotas;

impl Strategy for ResourceQuotas {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "",
            "v1",
            "resourcequotas",
            "resourcequota",
            "ResourceQuota",
            NAMESPACED,
        )
        .short(&["quota"])
        .status()
    }
    typed_as!(core::ResourceQuota);
    fn validate(&self, object: &Value) -> Vec<Cause> {
        quota::validate_resource_quota(object)
    }
    fn validate_status(&self, object: &Value) -> Vec<Cause> {
        quota::validate_resource_quota_status(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::RESOURCEQUOTA
    }
}

pub struct Secrets;

impl Strategy for Secrets {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("", "v1", "secrets", "secret", "Secret", NAMESPACED).selectable(&["type"])
    }
    typed_as!(core::Secret);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::secret(object);
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        validation::secret_update(new, old)
    }
    fn printer(&self) -> &'static Printer {
        &table::SECRET
    }
}

pub struct ServiceAccounts;

impl Strategy for ServiceAccounts {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "",
            "v1",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            NAMESPACED,
        )
        .short(&["sa"])
        .subresources(&[Subresource::Token])
    }
    typed_as!(core::ServiceAccount);
    fn printer(&self) -> &'static Printer {
        &table::SERVICEACCOUNT
    }
    fn delete_returns_object(&self) -> bool {
        true
    }
}

pub struct Services;

impl Strategy for Services {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("", "v1", "services", "service", "Service", NAMESPACED)
            .short(&["svc"])
            .categories(ALL)
            .status()
            .stored_at("services/specs")
            .names(NameRule::Dns1035Label)
    }
    typed_as!(core::Service);
    fn default(&self, object: &mut Value, context: &DefaultContext<'_>) {
        if let Some(old) = context.old {
            defaults::keep_allocated_values(object, old);
        }
        defaults::service(object, context.ip_family);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validation::service(object)
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        validation::service_update(new, old)
    }
    fn printer(&self) -> &'static Printer {
        &table::SERVICE
    }
    fn delete_returns_object(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        let best = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(pod_qos_class(&best), "BestEffort");
        let guaranteed = json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(pod_qos_class(&guaranteed), "Guaranteed");
        let burstable = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(pod_qos_class(&burstable), "Burstable");
    }
}
