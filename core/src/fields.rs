//! Field selectors: which fields each resource can be selected by, and their values.
//! The lists are kube-apiserver's (each registry strategy's `GetAttrs`/field label conversion).

use crate::registry::ResourceInfo;
use serde_json::Value;

const META: &[&str] = &["metadata.name", "metadata.namespace"];

/// Fields a `fieldSelector` may name for `resource`.
pub fn supported(resource: &ResourceInfo) -> Vec<&'static str> {
    let extra: &[&str] = match (resource.group.as_str(), resource.resource.as_str()) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "secrets") => &["type"],
        ("", "events") => &[
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
        ],
        ("", "namespaces") => &["status.phase"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "replicationcontrollers") => &["status.replicas"],
        ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    };
    META.iter().chain(extra).copied().collect()
}

/// The value of `field` on `object` as a field selector compares it (strings; booleans and
/// numbers in their Go formatting; absent fields as "").
pub fn value(resource: &ResourceInfo, object: &Value, field: &str) -> Option<String> {
    let value = match (resource.resource.as_str(), field) {
        (_, "metadata.name") => object.pointer("/metadata/name"),
        (_, "metadata.namespace") => object.pointer("/metadata/namespace"),
        ("pods", "status.podIPs") => object.pointer("/status/podIPs/0/ip"),
        ("events", "source") => object
            .pointer("/reportingComponent")
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            .or_else(|| object.pointer("/source/component")),
        (_, field) => {
            let pointer = format!("/{}", field.replace('.', "/"));
            object.pointer(&pointer)
        }
    };
    Some(match value {
        None | Some(Value::Null) => match field {
            "spec.hostNetwork" | "spec.unschedulable" => "false".to_string(),
            "status.replicas" | "status.successful" => "0".to_string(),
            _ => String::new(),
        },
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{NAMESPACED, ResourceInfo};
    use serde_json::json;

    #[test]
    fn pod_fields() {
        let pods = &ResourceInfo::new("", "v1", "pods", "pod", "Pod", NAMESPACED);
        let pod = json!({"metadata": {"name": "p", "namespace": "n"}, "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}});
        assert_eq!(value(pods, &pod, "spec.nodeName").unwrap(), "node-1");
        assert_eq!(value(pods, &pod, "status.phase").unwrap(), "Running");
        assert_eq!(value(pods, &pod, "spec.hostNetwork").unwrap(), "false");
        assert_eq!(value(pods, &pod, "status.podIP").unwrap(), "");
        assert!(supported(pods).contains(&"spec.nodeName"));
    }
}
