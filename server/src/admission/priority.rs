//! Pod admission plugins kube-apiserver enables by default that fill in pod fields:
//! Priority (`spec.priority` and `spec.preemptionPolicy` from the pod's PriorityClass) and
//! DefaultTolerationSeconds (tolerate not-ready and unreachable nodes for 300 s).

use async_trait::async_trait;
use kubecache_core::status::ApiError;
use serde_json::{Value, json};

use super::{Attributes, MutatingPlugin, Operation};
use crate::api::storage_error;
use crate::objects;

/// The PriorityClasses every cluster has (kube's `SystemPriorityClasses`).
const SYSTEM_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

pub struct Priority;

fn is_pod(attrs: &Attributes<'_>) -> bool {
    attrs.kind() == ("", "Pod") && attrs.subresource.is_none()
}

#[async_trait]
impl MutatingPlugin for Priority {
    fn name(&self) -> &'static str {
        "Priority"
    }

    async fn admit(&self, attrs: &Attributes<'_>, pod: &mut Value) -> Result<(), ApiError> {
        if !is_pod(attrs) || pod.get("spec").is_none_or(|s| !s.is_object()) {
            return Ok(());
        }
        if let Some(old) = attrs.old {
            // Computed on create; an update that leaves them out keeps them.
            for field in ["priority", "preemptionPolicy"] {
                if pod["spec"].get(field).is_none_or(Value::is_null)
                    && let Some(value) = old.pointer(&format!("/spec/{field}"))
                {
                    pod["spec"][field] = value.clone();
                }
            }
            return Ok(());
        }
        let class = pod
            .pointer("/spec/priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (priority, preemption) = if class.is_empty() {
            (0, "PreemptLowerPriority".to_string())
        } else if let Some((_, value)) = SYSTEM_CLASSES.iter().find(|(n, _)| *n == class) {
            (*value, "PreemptLowerPriority".to_string())
        } else {
            let found = lookup_class(attrs, &class).await?.ok_or_else(|| {
                forbidden(
                    pod,
                    &format!("no PriorityClass with name {class} was found"),
                )
            })?;
            let value = found.get("value").and_then(Value::as_i64).unwrap_or(0);
            let preemption = found
                .get("preemptionPolicy")
                .and_then(Value::as_str)
                .unwrap_or("PreemptLowerPriority")
                .to_string();
            (value, preemption)
        };
        let given = pod.pointer("/spec/priority").and_then(Value::as_i64);
        if given.is_some_and(|p| p != priority) {
            return Err(forbidden(
                pod,
                &format!(
                    "the integer value of priority ({}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name",
                    given.unwrap_or_default()
                ),
            ));
        }
        pod["spec"]["priority"] = json!(priority);
        if pod["spec"]
            .get("preemptionPolicy")
            .is_none_or(Value::is_null)
        {
            pod["spec"]["preemptionPolicy"] = json!(preemption);
        }
        Ok(())
    }
}

async fn lookup_class(attrs: &Attributes<'_>, name: &str) -> Result<Option<Value>, ApiError> {
    let Some(resource) = attrs
        .api
        .registry
        .lookup("scheduling.k8s.io", "v1", "priorityclasses")
    else {
        return Ok(None);
    };
    let key = attrs.api.object_key(resource, None, name);
    match attrs.api.backend.get(&key).await.map_err(storage_error)? {
        Some(kv) => Ok(Some(objects::decode(&kv)?)),
        None => Ok(None),
    }
}

fn forbidden(pod: &Value, reason: &str) -> ApiError {
    let name = objects::name(pod);
    let mut err = ApiError::forbidden(format!("pods \"{name}\" is forbidden: {reason}"));
    err.kind = Some("pods".into());
    err.name = Some(name.to_string()).filter(|n| !n.is_empty());
    err
}

pub struct DefaultTolerationSeconds;

/// The taints pods tolerate for 300 s by default, so a short node outage does not evict them.
const DEFAULT_TOLERATED_TAINTS: &[&str] = &[
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

#[async_trait]
impl MutatingPlugin for DefaultTolerationSeconds {
    fn name(&self) -> &'static str {
        "DefaultTolerationSeconds"
    }

    async fn admit(&self, attrs: &Attributes<'_>, pod: &mut Value) -> Result<(), ApiError> {
        if !is_pod(attrs) || attrs.operation == Operation::Delete {
            return Ok(());
        }
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if !tolerations.is_array() {
            *tolerations = json!([]);
        }
        let list = tolerations.as_array_mut().expect("just made an array");
        for taint in DEFAULT_TOLERATED_TAINTS {
            let tolerated = list.iter().any(|t| {
                let key = t.get("key").and_then(Value::as_str).unwrap_or("");
                let operator = t.get("operator").and_then(Value::as_str).unwrap_or("");
                let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
                (key == *taint || (key.is_empty() && operator == "Exists"))
                    && (effect.is_empty() || effect == "NoExecute")
            });
            if !tolerated {
                list.push(json!({
                    "key": taint,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }));
            }
        }
        Ok(())
    }
}
