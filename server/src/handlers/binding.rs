//! Binding a pod to a node: `POST pods/{name}/binding` and `POST bindings` (the older,
//! create-only collection whose Binding names the pod), as kube's `BindingREST` and
//! `LegacyBindingREST` (pkg/registry/core/pod/storage/storage.go).
//!
//! A binding sets `spec.nodeName` only while it is empty, merges the Binding's annotations
//! into the pod's and marks the pod `PodScheduled=True`, in one read-modify-write of the
//! pod through the Store (optimistic concurrency: a lost race is retried on the fresh pod,
//! which a second binding then finds bound: 409). The answer is a `Status` of success.

use http::StatusCode;
use kubecache_core::request::Subresource;
use kubecache_core::status::{ApiError, Cause, Status};
use serde_json::{Map, Value, json};

use super::path_name;
use super::write::{BODY_TYPES, content_type, decode_object, writer};
use crate::call::{Call, Reply};
use kubecache_apimachinery::objects;
use kubecache_apimachinery::strategy::core::set_pod_condition;
use kubecache_apimachinery::typed::FieldValidation;
use kubecache_store::Store;

/// `POST pods/{name}/binding` (the Binding must name the pod of the path) and `POST bindings`.
pub async fn create(call: &Call<'_>) -> Result<Reply, ApiError> {
    let binding = decode_binding(call)?;
    let pod_name = objects::name(&binding).to_string();
    if call.request.subresource == Some(Subresource::Binding) && pod_name != path_name(call) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    let causes = validate(&binding);
    if !causes.is_empty() {
        return Err(ApiError::invalid("", "Binding", &pod_name, causes));
    }
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let annotations = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    assign_pod(call, &pod_name, node, &annotations).await?;
    Ok(created_status())
}

/// The request body as a v1 Binding (JSON or protobuf), its namespace checked against the
/// path's.
fn decode_binding(call: &Call<'_>) -> Result<Value, ApiError> {
    let media = content_type(call);
    if !BODY_TYPES.contains(&media.as_str()) {
        return Err(ApiError::unsupported_media_type(&media, BODY_TYPES));
    }
    let bindings = call
        .api
        .registry
        .lookup("", "v1", "bindings")
        .ok_or_else(|| ApiError::internal("the bindings resource is not registered"))?;
    let mode = FieldValidation::parse(call.query.get("fieldValidation"))?;
    Ok(decode_object(call, &bindings, &call.body, mode)?.object)
}

/// kube's `ValidatePodBinding`: a target name, and a target kind of `Node` or none.
fn validate(binding: &Value) -> Vec<Cause> {
    use kubecache_core::field::{not_supported, required};
    let mut causes = Vec::new();
    let kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        causes.push(not_supported(
            "target.kind",
            &json!(kind),
            &["Node", "<empty>"],
        ));
    }
    let name = binding.pointer("/target/name").and_then(Value::as_str);
    if name.is_none_or(str::is_empty) {
        causes.push(required("target.name"));
    }
    causes
}

/// kube's `assignPod`: the pod bound to `node` if it is not bound yet and not being deleted.
async fn assign_pod(
    call: &Call<'_>,
    pod_name: &str,
    node: &str,
    annotations: &Map<String, Value>,
) -> Result<(), ApiError> {
    let pods = call
        .api
        .registry
        .lookup("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("the pods resource is not registered"))?;
    let mut writer = writer(call, call.query.dry_run()?)?;
    writer.subresource = Some(Subresource::Binding);
    // A refusal found on the pod is a conflict on `pods/binding`, as kube reports it.
    let refused = |detail: String| ApiError::conflict("", "pods/binding", pod_name, &detail);
    Store::new(call.api, &pods)
        .update(
            &writer,
            call.request.namespace.as_deref(),
            pod_name,
            |current| {
                if objects::is_deleting(current) {
                    return Err(refused(format!(
                        "pod {pod_name} is being deleted, cannot be assigned to a host"
                    )));
                }
                let bound = current
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !bound.is_empty() {
                    return Err(refused(format!(
                        "pod {pod_name} is already assigned to node {bound:?}"
                    )));
                }
                let mut pod = current.clone();
                // The pod is written as read: a lost race is retried on the fresh pod.
                objects::metadata_mut(&mut pod).remove("resourceVersion");
                pod["spec"]["nodeName"] = json!(node);
                if !annotations.is_empty() {
                    let meta = objects::metadata_mut(&mut pod);
                    let merged = meta
                        .entry("annotations")
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                        .ok_or_else(|| ApiError::internal("pod annotations are not a map"))?;
                    for (key, value) in annotations {
                        merged.insert(key.clone(), value.clone());
                    }
                }
                set_pod_condition(&mut pod, "PodScheduled", "True", None, None);
                Ok(pod)
            },
        )
        .await?;
    Ok(())
}

/// What kube answers a successful create of a subresource that returns no object: a
/// `Status` of success with code 201.
pub fn created_status() -> Reply {
    let mut status = Status::success(None);
    status.code = 201;
    Reply::Object {
        status: StatusCode::CREATED,
        body: status.to_value(),
        warnings: Vec::new(),
    }
}
