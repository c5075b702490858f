//! The `scale` subresource's view of an object: its desired and observed replicas and the
//! label selector of what it scales. Built-in kinds keep them at `.spec.replicas`,
//! `.status.replicas` and `.spec.selector` ([`builtin`]); a custom resource declares its
//! own paths.

use serde_json::{Value, json};

/// What an autoscaling/v1 Scale shows of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleView {
    pub replicas: i64,
    pub status_replicas: i64,
    /// The selector in its string form (`app=web,tier in (a,b)`).
    pub selector: Option<String>,
}

/// Deployments, replicasets, statefulsets, replicationcontrollers: `.spec.replicas` (1 when
/// unset, the scheme default), `.status.replicas`, `.spec.selector`.
pub fn builtin(object: &Value) -> ScaleView {
    ScaleView {
        replicas: object
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1),
        status_replicas: object
            .pointer("/status/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        selector: selector_string(object),
    }
}

/// Sets `.spec.replicas`.
pub fn set_builtin_replicas(object: &mut Value, replicas: i64) {
    object["spec"]["replicas"] = json!(replicas);
}

/// `spec.selector` as a label selector string (`matchLabels` for apps/v1 types, a plain map
/// for replicationcontrollers).
fn selector_string(object: &Value) -> Option<String> {
    let selector = object.pointer("/spec/selector")?;
    let labels = selector
        .get("matchLabels")
        .unwrap_or(selector)
        .as_object()?;
    let mut parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    if let Some(expressions) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in expressions {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(match e.get("operator").and_then(Value::as_str) {
                Some("In") => format!("{key} in ({})", values.join(",")),
                Some("NotIn") => format!("{key} notin ({})", values.join(",")),
                Some("Exists") => key.to_string(),
                Some("DoesNotExist") => format!("!{key}"),
                _ => continue,
            });
        }
    }
    parts.sort();
    Some(parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view() {
        let deployment = json!({"metadata": {"name": "web", "namespace": "d", "resourceVersion": "5"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}}}, "status": {"replicas": 2}});
        let view = builtin(&deployment);
        assert_eq!(view.replicas, 3);
        assert_eq!(view.status_replicas, 2);
        assert_eq!(view.selector.as_deref(), Some("app=web,tier=fe"));
        assert_eq!(builtin(&json!({})).replicas, 1, "the scheme default");
    }
}
