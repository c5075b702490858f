//! `POST pods/{name}/eviction`: a policy/v1 Eviction (policy/v1beta1 accepted too, as kube
//! does) deletes the pod when its PodDisruptionBudget allows it, as kube's `EvictionREST`
//! (pkg/registry/core/pod/storage/eviction.go).
//!
//! - A pod that is terminal, Pending or already being deleted is deleted without looking at
//!   budgets (it disrupts nothing more).
//! - Otherwise the budgets of its namespace that select it are found: none → delete; more
//!   than one → 500, as kube; one → an unready pod is deleted when the budget's
//!   `unhealthyPodEvictionPolicy` is `AlwaysAllow` or the budget is healthy without it;
//!   else the budget must allow a disruption: `status.disruptionsAllowed` is decremented and
//!   the pod recorded in `status.disruptedPods`, a `/status` write of the budget through the
//!   Store (optimistic concurrency: a lost race checks the fresh budget again), or the
//!   eviction is refused with 429 and kube's message and cause.
//! - The pod is then marked `DisruptionTarget=True` and deleted with the Eviction's
//!   `deleteOptions`; a delete that guards against the pod having become ready meanwhile
//!   (a resourceVersion precondition the handler adds) and loses is a 429, so the client
//!   retries, as kube's.

use kubecache_apimachinery::objects;
use kubecache_apimachinery::registry::Resource;
use kubecache_apimachinery::strategy::core::set_pod_condition;
use kubecache_apimachinery::strategy::validation::selects;
use kubecache_cache::{Filter, ListRequest, ReadAt};
use kubecache_core::request::Subresource;
use kubecache_core::selector::{FieldSelector, LabelSelector};
use kubecache_core::status::{ApiError, Cause, Reason, storage_error};
use kubecache_store::{Store, Writer};
use serde_json::{Value, json};
use std::sync::Arc;

use super::binding::created_status;
use super::delete::DeleteOptions;
use super::path_name;
use super::write::{BODY_TYPES, content_type};
use crate::call::{Call, Reply};

/// The Eviction versions kube accepts on `pods/eviction` (its `AcceptsGroupVersion`).
const EVICTION_VERSIONS: &[&str] = &["policy/v1", "policy/v1beta1"];
/// kube's `MaxDisruptedPodSize`: evictions the budget's controller has not yet confirmed.
const MAX_DISRUPTED_PODS: usize = 2000;
/// How often a pod delete is tried again after the pod changed under it (kube's
/// `EvictionsRetry` has 20 steps).
const DELETE_ATTEMPTS: usize = 20;
const VIOLATES_BUDGET: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

pub async fn create(call: &Call<'_>) -> Result<Reply, ApiError> {
    let eviction = decode_eviction(call)?;
    if objects::name(&eviction) != path_name(call) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let options =
        DeleteOptions::from_value(call, eviction.get("deleteOptions").unwrap_or(&json!({})))?;
    let pods = resource(call, "", "pods")?;
    let name = path_name(call);
    // Pods whose budget does not matter are deleted at once; a delete that loses a race
    // with a change of the pod looks at the pod again (unless the client pinned its
    // resourceVersion).
    let mut attempts = 0;
    let pod = loop {
        attempts += 1;
        let pod = read_pod(call, &pods, name).await?;
        if !can_ignore_budget(&pod) {
            break pod;
        }
        let mut guarded = options.clone();
        if options.resource_version.is_none() && !is_terminal_or_deleting(&pod) {
            guarded.resource_version =
                objects::meta_str(&pod, "resourceVersion").map(str::to_string);
        }
        match mark_and_delete(call, &pods, name, &guarded).await {
            Err(e)
                if e.reason == Reason::Conflict
                    && options.resource_version.is_none()
                    && attempts < DELETE_ATTEMPTS =>
            {
                continue;
            }
            outcome => return outcome.map(|_| created_status()),
        }
    };
    let budgets = budgets_selecting(call, &pod).await?;
    let budget = match budgets.as_slice() {
        [] => None,
        [budget] => Some(budget),
        _ => {
            return Err(ApiError::new(
                500,
                Reason::InternalError,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let mut options = options;
    let mut guarded_by_handler = false;
    if let Some(budget) = budget {
        if !is_ready(&pod) && unhealthy_may_go(budget) {
            // An unready pod does not count towards the budget: deleted without spending it,
            // as long as it has not become ready meanwhile.
            if options.resource_version.is_none() {
                options.resource_version =
                    objects::meta_str(&pod, "resourceVersion").map(str::to_string);
                guarded_by_handler = true;
            }
        } else {
            spend_budget(call, budget, name, options.dry_run).await?;
        }
    }
    match mark_and_delete(call, &pods, name, &options).await {
        Err(e) if e.reason == Reason::Conflict && guarded_by_handler => Err(still_processing(
            objects::name(budget.expect("guarded by a budget")),
        )),
        outcome => outcome.map(|_| created_status()),
    }
}

/// The body as an Eviction (JSON or protobuf) of an accepted version.
fn decode_eviction(call: &Call<'_>) -> Result<Value, ApiError> {
    let media = content_type(call);
    let eviction = if crate::edge::protobuf::is_protobuf(&media) {
        crate::edge::protobuf::decode_as(&call.body, "policy/v1", "Eviction")?
    } else if BODY_TYPES.contains(&media.as_str()) {
        kubecache_apimachinery::typed::parse_json(&call.body)?.value
    } else {
        return Err(ApiError::unsupported_media_type(&media, BODY_TYPES));
    };
    let api_version = eviction.get("apiVersion").and_then(Value::as_str);
    let kind = eviction.get("kind").and_then(Value::as_str);
    let wrong_version =
        api_version.is_some_and(|v| !v.is_empty() && !EVICTION_VERSIONS.contains(&v));
    if wrong_version || kind.is_some_and(|k| !k.is_empty() && k != "Eviction") {
        return Err(ApiError::bad_request(format!(
            "expected an Eviction of {}, got {} {}",
            EVICTION_VERSIONS.join(" or "),
            api_version.unwrap_or(""),
            kind.unwrap_or("")
        )));
    }
    // Typed as kube decodes it: wrong field types are a 400 (v1beta1's fields are v1's).
    let mut typed = eviction.clone();
    if let Some(map) = typed.as_object_mut() {
        map.insert("apiVersion".into(), json!("policy/v1"));
        map.insert("kind".into(), json!("Eviction"));
    }
    serde_json::from_value::<k8s_openapi::api::policy::v1::Eviction>(typed).map_err(|e| {
        ApiError::bad_request(format!(
            "Eviction in version \"v1\" cannot be handled as a Eviction: {e}"
        ))
    })?;
    Ok(eviction)
}

fn resource(call: &Call<'_>, group: &str, plural: &str) -> Result<Arc<Resource>, ApiError> {
    call.api
        .registry
        .lookup(group, "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))
}

/// The pod as stored now.
async fn read_pod(call: &Call<'_>, pods: &Resource, name: &str) -> Result<Value, ApiError> {
    let key = call
        .api
        .object_key(pods, call.request.namespace.as_deref(), name);
    let object = call
        .api
        .reads
        .get(pods, &key, ReadAt::Latest)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    objects::decode(&object.kv)
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_terminal_or_deleting(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed") || objects::is_deleting(pod)
}

/// kube's `canIgnorePDB`: terminal, Pending or already deleting.
fn can_ignore_budget(pod: &Value) -> bool {
    is_terminal_or_deleting(pod) || phase(pod) == "Pending"
}

/// kube's `IsPodReady`: the Ready condition is True.
fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn status_count(budget: &Value, field: &str) -> i64 {
    budget
        .pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// An unready pod may go without spending the budget: `AlwaysAllow`, or (the default,
/// `IfHealthyBudget`) the budget is healthy without it.
fn unhealthy_may_go(budget: &Value) -> bool {
    let policy = budget
        .pointer("/spec/unhealthyPodEvictionPolicy")
        .and_then(Value::as_str);
    let desired = status_count(budget, "desiredHealthy");
    policy == Some("AlwaysAllow")
        || (status_count(budget, "currentHealthy") >= desired && desired > 0)
}

/// The PodDisruptionBudgets of the pod's namespace whose selector selects it (a budget
/// without a selector selects nothing; an empty one, every pod).
async fn budgets_selecting(call: &Call<'_>, pod: &Value) -> Result<Vec<Value>, ApiError> {
    let budgets = resource(call, "policy", "poddisruptionbudgets")?;
    let filter = Filter {
        namespace: call.request.namespace.clone(),
        labels: LabelSelector::parse("")?,
        fields: FieldSelector::parse("")?,
    };
    let listed = call
        .api
        .reads
        .list(ListRequest {
            resource: budgets.info().clone(),
            prefix: call.api.storage_prefix(&budgets),
            start_key: None,
            limit: None,
            at: ReadAt::Latest,
            filter: Arc::new(filter),
            remaining_hint: None,
        })
        .await
        .map_err(storage_error)?;
    let labels = pod
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut selecting = Vec::new();
    for object in &listed.objects {
        let budget = objects::decode(&object.kv)?;
        if budget
            .pointer("/spec/selector")
            .is_some_and(|selector| selector.is_object() && selects(selector, &labels))
        {
            selecting.push(budget);
        }
    }
    Ok(selecting)
}

/// kube's `createTooManyRequestsError`: the budget's status is behind its spec.
fn still_processing(budget: &str) -> ApiError {
    let mut err = ApiError::new(429, Reason::TooManyRequests, VIOLATES_BUDGET);
    err.causes.push(Cause::new(
        "DisruptionBudget",
        "",
        format!("The disruption budget {budget} is still being processed by the server."),
    ));
    err.retry_after_seconds = Some(10);
    err
}

/// kube's `checkAndDecrement`: the budget allows one more disruption, spent on this pod and
/// recorded in `disruptedPods` (not on a dry run, which only checks).
async fn spend_budget(
    call: &Call<'_>,
    budget: &Value,
    pod_name: &str,
    dry_run: bool,
) -> Result<(), ApiError> {
    let spend = |current: &Value| -> Result<Value, ApiError> {
        let name = objects::name(current);
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if status_count(current, "observedGeneration") < generation {
            return Err(still_processing(name));
        }
        let allowed = status_count(current, "disruptionsAllowed");
        let refused = |detail: &str| {
            ApiError::forbidden(format!(
                "poddisruptionbudget.policy {name:?} is forbidden: {detail}"
            ))
        };
        if allowed < 0 {
            return Err(refused("pdb disruptions allowed is negative"));
        }
        let disrupted = current
            .pointer("/status/disruptedPods")
            .and_then(Value::as_object)
            .map_or(0, serde_json::Map::len);
        if disrupted > MAX_DISRUPTED_PODS {
            return Err(refused(
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ));
        }
        if allowed == 0 {
            let mut err = ApiError::new(429, Reason::TooManyRequests, VIOLATES_BUDGET);
            err.causes.push(Cause::new(
                "DisruptionBudget",
                "",
                format!(
                    "The disruption budget {name} needs {} healthy pods and has {} currently",
                    status_count(current, "desiredHealthy"),
                    status_count(current, "currentHealthy")
                ),
            ));
            return Err(err);
        }
        let mut next = current.clone();
        objects::metadata_mut(&mut next).remove("resourceVersion");
        let status = next
            .as_object_mut()
            .expect("a budget is an object")
            .entry("status")
            .or_insert_with(|| json!({}));
        status["disruptionsAllowed"] = json!(allowed - 1);
        if allowed == 1 {
            set_disruption_allowed_false(status);
        }
        let disrupted = status
            .as_object_mut()
            .expect("status is an object")
            .entry("disruptedPods")
            .or_insert_with(|| json!({}));
        disrupted[pod_name] = json!(objects::now_rfc3339());
        Ok(next)
    };
    if dry_run {
        return spend(budget).map(|_| ());
    }
    let budgets = resource(call, "policy", "poddisruptionbudgets")?;
    let writer = Writer {
        subresource: Some(Subresource::Status),
        ..super::write::writer(call, false)?
    };
    Store::new(call.api, &budgets)
        .update(
            &writer,
            call.request.namespace.as_deref(),
            objects::name(budget),
            spend,
        )
        .await?;
    Ok(())
}

/// kube's `UpdateDisruptionAllowedCondition` once no disruption is left.
fn set_disruption_allowed_false(status: &mut Value) {
    let observed = status
        .get("observedGeneration")
        .cloned()
        .unwrap_or(json!(0));
    let condition = json!({
        "type": "DisruptionAllowed",
        "status": "False",
        "reason": "InsufficientPods",
        "message": "",
        "observedGeneration": observed,
        "lastTransitionTime": objects::now_rfc3339(),
    });
    let conditions = status
        .as_object_mut()
        .expect("status is an object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionAllowed"))
    {
        Some(existing) if existing.get("status").and_then(Value::as_str) == Some("False") => {}
        Some(existing) => *existing = condition,
        None => list.push(condition),
    }
}

/// kube's `addConditionAndDeletePod`: the pod marked `DisruptionTarget=True` (its
/// preconditions checked on the pod as read), then deleted with the eviction's options.
async fn mark_and_delete(
    call: &Call<'_>,
    pods: &Resource,
    name: &str,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let namespace = call.request.namespace.as_deref();
    let mut options = options.clone();
    if !options.dry_run {
        let writer = Writer {
            subresource: Some(Subresource::Status),
            ..super::write::writer(call, false)?
        };
        let marked = Store::new(call.api, pods)
            .update(&writer, namespace, name, |current| {
                options.preconditions().check(pods, name, current)?;
                let mut pod = current.clone();
                objects::metadata_mut(&mut pod).remove("resourceVersion");
                set_pod_condition(
                    &mut pod,
                    "DisruptionTarget",
                    "True",
                    Some("EvictionByEvictionAPI"),
                    Some("Eviction API: evicting"),
                );
                Ok(pod)
            })
            .await?;
        // The precondition now names the revision this handler wrote.
        if options.resource_version.is_some() {
            options.resource_version =
                objects::meta_str(&marked, "resourceVersion").map(str::to_string);
        }
    }
    Store::new(call.api, pods)
        .delete(
            &options.writer(call),
            namespace,
            name,
            &options.preconditions(),
        )
        .await?;
    Ok(())
}
