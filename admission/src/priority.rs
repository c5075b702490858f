//! Pod admission plugins kube-apiserver enables by default that fill in pod fields:
//! Priority (`spec.priority` and `spec.preemptionPolicy` from the pod's PriorityClass) and
//! DefaultTolerationSeconds (tolerate not-ready and unreachable nodes for 300 s).

use async_trait::async_trait;
use kubecache_core::status::ApiError;
use serde_json::{Value, json};

use super::{Attributes, MutatingPlugin, Operation};
use kubecache_apimachinery::objects;
use kubecache_core::status::storage_error;

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
    let Some(resource) =
        attrs
            .context
            .registry()
            .lookup("scheduling.k8s.io", "v1", "priorityclasses")
    else {
        return Ok(None);
    };
    let key = attrs.context.object_key(&resource, None, name);
    match attrs
        .context
        .backend()
        .get(&key)
        .await
        .map_err(storage_error)?
    {
        Some(kv) => Ok(Some(objects::decode(&kv)?)),
        None => Ok(None),
    }
}

/// `pods "name" is forbidden: reason` (403), as kube's admission plugins refuse a pod.
pub(crate) fn forbidden(pod: &Value, reason: &str) -> ApiError {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Context as _;
    use crate::tests::{attrs, context};

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    #[tokio::test]
    async fn priority_from_the_class() {
        let context = context();
        let create = attrs(&context, "pods", None);
        let mut plain = pod(json!({}));
        Priority.admit(&create, &mut plain).await.unwrap();
        assert_eq!(plain["spec"]["priority"], 0);
        assert_eq!(plain["spec"]["preemptionPolicy"], "PreemptLowerPriority");

        let mut critical = pod(json!({"priorityClassName": "system-node-critical"}));
        Priority.admit(&create, &mut critical).await.unwrap();
        assert_eq!(critical["spec"]["priority"], 2_000_001_000);

        let mut unknown = pod(json!({"priorityClassName": "nope"}));
        let err = Priority.admit(&create, &mut unknown).await.unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: no PriorityClass with name nope was found"
        );

        let class =
            json!({"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"});
        context
            .backend()
            .create(
                "/registry/priorityclasses/high",
                serde_json::to_vec(&class).unwrap().into(),
            )
            .await
            .unwrap();
        let mut high = pod(json!({"priorityClassName": "high"}));
        Priority.admit(&create, &mut high).await.unwrap();
        assert_eq!(high["spec"]["priority"], 1000);
        assert_eq!(high["spec"]["preemptionPolicy"], "Never");
        let mut wrong = pod(json!({"priorityClassName": "high", "priority": 5}));
        assert_eq!(
            Priority.admit(&create, &mut wrong).await.unwrap_err().code,
            403
        );

        // An update that leaves them out keeps them.
        let old = high.clone();
        let update = attrs(&context, "pods", Some(&old));
        let mut bare = pod(json!({"priorityClassName": "high"}));
        Priority.admit(&update, &mut bare).await.unwrap();
        assert_eq!(bare["spec"]["priority"], 1000);
        assert_eq!(bare["spec"]["preemptionPolicy"], "Never");
    }

    #[tokio::test]
    async fn default_tolerations() {
        let context = context();
        let create = attrs(&context, "pods", None);
        let mut plain = pod(json!({}));
        DefaultTolerationSeconds
            .admit(&create, &mut plain)
            .await
            .unwrap();
        assert_eq!(plain["spec"]["tolerations"].as_array().unwrap().len(), 2);
        let again = plain.clone();
        DefaultTolerationSeconds
            .admit(&create, &mut plain)
            .await
            .unwrap();
        assert_eq!(plain, again, "idempotent");
        let mut everything = pod(json!({"tolerations": [{"operator": "Exists"}]}));
        DefaultTolerationSeconds
            .admit(&create, &mut everything)
            .await
            .unwrap();
        assert_eq!(
            everything["spec"]["tolerations"].as_array().unwrap().len(),
            1
        );
        let mut one = pod(json!({"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
        ]}));
        DefaultTolerationSeconds
            .admit(&create, &mut one)
            .await
            .unwrap();
        let keys: Vec<&str> = one["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            vec![
                "node.kubernetes.io/unreachable",
                "node.kubernetes.io/not-ready"
            ]
        );
    }
}
