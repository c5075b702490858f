//! kube's `LimitRanger`: the LimitRanges of a namespace applied to the pods and claims
//! created in it.
//!
//! - Mutating (a pod's create): every container and init container without a request or
//!   limit gets the `defaultRequest` / `default` of the `Container` items, and the pod the
//!   `kubernetes.io/limit-ranger` annotation saying what was set.
//! - Validating (after strategy validation, before ResourceQuota): `min`, `max` and
//!   `maxLimitRequestRatio` of `Container` items against each container, of `Pod` items
//!   against the pod's effective requests and limits, and `min`/`max` of
//!   `PersistentVolumeClaim` items against a claim's storage request; every violation of
//!   every LimitRange in one 403, with kube's messages.
//!
//! Updates are not checked (kube checks a pod's in-place resize, which kubecache does not
//! serve). LimitRanges are read from storage, so one created a moment ago applies.

use async_trait::async_trait;
use kubecache_apimachinery::objects;
use kubecache_core::status::ApiError;
use serde_json::{Map, Value, json};

use crate::quota::usage::{self, Amount, ResourceList};
use crate::{Attributes, MutatingPlugin, Operation, forbidden};

/// The annotation naming what the plugin defaulted.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

pub struct LimitRanger;

fn is_pod(attrs: &Attributes<'_>) -> bool {
    attrs.resource.group.is_empty() && attrs.resource.resource == "pods"
}

fn is_claim(attrs: &Attributes<'_>) -> bool {
    attrs.resource.group.is_empty() && attrs.resource.resource == "persistentvolumeclaims"
}

/// The `spec.limits` items of every LimitRange in the namespace of the write, when the
/// plugin concerns it (a pod or claim create).
async fn limit_items(attrs: &Attributes<'_>, claims_too: bool) -> Result<Vec<Value>, ApiError> {
    let concerned = attrs.operation == Operation::Create
        && attrs.subresource.is_none()
        && (is_pod(attrs) || (claims_too && is_claim(attrs)));
    let Some(namespace) = attrs.namespace.filter(|_| concerned) else {
        return Ok(Vec::new());
    };
    let mut items = Vec::new();
    for kv in crate::list_stored(attrs.context, "limitranges", namespace).await? {
        let range = objects::decode(&kv)?;
        items.extend(
            range["spec"]["limits"]
                .as_array()
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    Ok(items)
}

#[async_trait]
impl MutatingPlugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }

    async fn admit(&self, attrs: &Attributes<'_>, pod: &mut Value) -> Result<(), ApiError> {
        let items = limit_items(attrs, false).await?;
        let mut requests = Map::new();
        let mut limits = Map::new();
        for item in items.iter().filter(|item| item["type"] == "Container") {
            requests.extend(
                item["defaultRequest"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            limits.extend(item["default"].as_object().cloned().unwrap_or_default());
        }
        if requests.is_empty() && limits.is_empty() {
            return Ok(());
        }
        let mut notes = Vec::new();
        for (field, label) in [
            ("containers", "container"),
            ("initContainers", "init container"),
        ] {
            let Some(containers) = pod["spec"][field].as_array_mut() else {
                continue;
            };
            for container in containers {
                let name = container["name"].as_str().unwrap_or_default().to_string();
                let resources = &mut container["resources"];
                let set_requests = fill_missing(resources, "requests", &requests);
                let set_limits = fill_missing(resources, "limits", &limits);
                if !set_requests.is_empty() {
                    notes.push(format!(
                        "{} request for {label} {name}",
                        set_requests.join(", ")
                    ));
                }
                if !set_limits.is_empty() {
                    notes.push(format!(
                        "{} limit for {label} {name}",
                        set_limits.join(", ")
                    ));
                }
            }
        }
        if !notes.is_empty() {
            let meta = objects::metadata_mut(pod);
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            annotations[ANNOTATION] =
                json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
        }
        Ok(())
    }
}

/// Sets each of `defaults` the container's `resources[field]` lacks; the names set, sorted.
fn fill_missing(resources: &mut Value, field: &str, defaults: &Map<String, Value>) -> Vec<String> {
    if defaults.is_empty() {
        return Vec::new();
    }
    if !resources.is_object() {
        *resources = json!({});
    }
    if !resources[field].is_object() {
        resources[field] = json!({});
    }
    let stated = resources[field]
        .as_object_mut()
        .expect("made an object above");
    let mut set: Vec<String> = Vec::new();
    for (name, amount) in defaults {
        if !stated.contains_key(name) {
            stated.insert(name.clone(), amount.clone());
            set.push(name.clone());
        }
    }
    set.sort();
    set
}

/// The validating half: every violation, as one 403.
pub async fn validate(attrs: &Attributes<'_>, object: &Value) -> Result<(), ApiError> {
    let items = limit_items(attrs, true).await?;
    let mut problems = Vec::new();
    for item in &items {
        let kind = item["type"].as_str().unwrap_or_default();
        let min = usage::parse_list(&item["min"]);
        let max = usage::parse_list(&item["max"]);
        let ratio = usage::parse_list(&item["maxLimitRequestRatio"]);
        match kind {
            "Container" if is_pod(attrs) => {
                for field in ["containers", "initContainers"] {
                    for container in object["spec"][field].as_array().into_iter().flatten() {
                        let requests = usage::parse_list(&container["resources"]["requests"]);
                        let limits = usage::parse_list(&container["resources"]["limits"]);
                        check(kind, &min, &max, &ratio, &requests, &limits, &mut problems);
                    }
                }
            }
            "Pod" if is_pod(attrs) => {
                let requests = usage::pod_resources(object, "requests");
                let limits = usage::pod_resources(object, "limits");
                check(kind, &min, &max, &ratio, &requests, &limits, &mut problems);
            }
            "PersistentVolumeClaim" if is_claim(attrs) => {
                let requests = usage::parse_list(&object["spec"]["resources"]["requests"]);
                for (name, enforced) in &min {
                    problems.extend(min_problem(
                        kind,
                        name,
                        enforced,
                        &requests,
                        &ResourceList::new(),
                    ));
                }
                // What a claim asks for is its request; its limits are not user input.
                for (name, enforced) in &max {
                    match requests.get(name) {
                        None => problems.push(format!(
                            "maximum {name} usage per {kind} is {enforced}.  No request is specified"
                        )),
                        Some(request) if request.value.compare(&enforced.value).is_gt() => problems
                            .push(format!(
                                "maximum {name} usage per {kind} is {enforced}, but request is {request}"
                            )),
                        Some(_) => {}
                    }
                }
            }
            _ => {}
        }
    }
    problems.dedup();
    match problems.len() {
        0 => Ok(()),
        1 => Err(forbidden(attrs, object, problems.remove(0))),
        // Go's `utilerrors.NewAggregate`.
        _ => Err(forbidden(
            attrs,
            object,
            format!("[{}]", problems.join(", ")),
        )),
    }
}

/// The min, max and ratio constraints of one item against these requests and limits.
fn check(
    kind: &str,
    min: &ResourceList,
    max: &ResourceList,
    ratio: &ResourceList,
    requests: &ResourceList,
    limits: &ResourceList,
    problems: &mut Vec<String>,
) {
    for (name, enforced) in min {
        problems.extend(min_problem(kind, name, enforced, requests, limits));
    }
    for (name, enforced) in max {
        match (requests.get(name), limits.get(name)) {
            (_, None) => problems.push(format!(
                "maximum {name} usage per {kind} is {enforced}.  No limit is specified"
            )),
            (_, Some(limit)) if limit.value.compare(&enforced.value).is_gt() => problems.push(
                format!("maximum {name} usage per {kind} is {enforced}, but limit is {limit}"),
            ),
            (Some(request), _) if request.value.compare(&enforced.value).is_gt() => problems.push(
                format!("maximum {name} usage per {kind} is {enforced}, but request is {request}"),
            ),
            _ => {}
        }
    }
    for (name, enforced) in ratio {
        let request = requests.get(name).filter(|r| !r.is_zero());
        let limit = limits.get(name).filter(|l| !l.is_zero());
        let (Some(request), Some(limit)) = (request, limit) else {
            let missing = if request.is_none() {
                "request"
            } else {
                "limit"
            };
            problems.push(format!(
                "{name} max limit to request ratio per {kind} is {enforced}, but no {missing} is specified or {missing} is 0"
            ));
            continue;
        };
        let observed = limit.value.as_f64() / request.value.as_f64();
        if observed > enforced.value.as_f64() {
            problems.push(format!(
                "{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:.6}"
            ));
        }
    }
}

fn min_problem(
    kind: &str,
    name: &str,
    enforced: &Amount,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let Some(request) = requests.get(name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if request.value.compare(&enforced.value).is_lt() {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but request is {request}"
        ));
    }
    let limit = limits.get(name)?;
    limit
        .value
        .compare(&enforced.value)
        .is_lt()
        .then(|| format!("minimum {name} usage per {kind} is {enforced}, but limit is {limit}"))
}
