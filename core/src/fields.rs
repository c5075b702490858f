//! Field selectors: which fields each resource can be selected by, and their values. Each
//! resource declares its fields in its identity (the built-in strategies list kube-apiserver's,
//! from each registry strategy's `GetAttrs`/field label conversion).

use crate::registry::ResourceInfo;
use serde_json::Value;

const META: &[&str] = &["metadata.name", "metadata.namespace"];

/// Fields a `fieldSelector` may name for `resource`: its name and namespace, and what its
/// identity declares ([`ResourceInfo::selectable_fields`]).
pub fn supported(resource: &ResourceInfo) -> Vec<&str> {
    META.iter()
        .copied()
        .chain(resource.selectable_fields.iter().map(String::as_str))
        .collect()
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
    }

    #[test]
    fn supported_fields_are_metadata_and_what_the_identity_declares() {
        let plain = ResourceInfo::new("", "v1", "pods", "pod", "Pod", NAMESPACED);
        assert_eq!(supported(&plain), ["metadata.name", "metadata.namespace"]);
        let pods = plain.selectable(&["spec.nodeName"]);
        assert_eq!(
            supported(&pods),
            ["metadata.name", "metadata.namespace", "spec.nodeName"]
        );
    }
}
