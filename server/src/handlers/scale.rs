//! The `scale` subresource: an autoscaling/v1 Scale view of an object's replicas and
//! selector, where its strategy keeps them (`.spec.replicas` of deployments, replicasets,
//! statefulsets and replicationcontrollers; a custom resource's scale paths).

use kubecache_core::status::ApiError;
use serde_json::{Value, json};

use super::read::read_at;
use super::write::{content_type, update_object};
use super::{not_found, object_key};
use crate::call::{Call, Reply};
use kubecache_apimachinery::objects;
use kubecache_apimachinery::patch::{self, PatchType};
use kubecache_apimachinery::registry::Resource;
use kubecache_core::merge_schema::Schema;
use kubecache_core::status::storage_error;

/// The Scale of an object, read where its strategy keeps replicas and selector.
fn scale_of(resource: &Resource, object: &Value) -> Value {
    let meta = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let pick = |field: &str| meta.get(field).cloned().unwrap_or(Value::Null);
    let mut metadata = json!({
        "name": pick("name"),
        "namespace": pick("namespace"),
        "uid": pick("uid"),
        "resourceVersion": pick("resourceVersion"),
        "creationTimestamp": pick("creationTimestamp"),
    });
    if let Some(map) = metadata.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    let view = resource.strategy().scale(object);
    let mut status = json!({"replicas": view.status_replicas});
    if let Some(selector) = view.selector {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": view.replicas},
        "status": status,
    })
}

pub async fn get(call: &Call<'_>) -> Result<Reply, ApiError> {
    let object = call
        .api
        .reads
        .get(&call.request.resource, &object_key(call), read_at(call)?)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| not_found(call))?;
    Ok(Reply::ok(scale_of(
        &call.request.resource,
        &objects::decode(&object.kv)?,
    )))
}

/// Checks a submitted Scale and returns the replica count and resourceVersion it asks for.
fn requested(call: &Call<'_>, scale: &Value) -> Result<(i64, Option<String>), ApiError> {
    let wrong_kind = scale
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty() && *k != "Scale");
    if let Some(kind) = wrong_kind {
        return Err(ApiError::bad_request(format!(
            "expected a Scale, got kind {kind:?}"
        )));
    }
    let name = objects::name(scale);
    if !name.is_empty() && Some(name) != call.request.name.as_deref() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            call.request.name.as_deref().unwrap_or("")
        )));
    }
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request("Scale in version \"v1\" cannot be handled as a Scale: spec.replicas must be an integer")
        })?,
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            call.request.name.as_deref().unwrap_or(""),
            vec![kubecache_core::status::Cause::invalid(
                "spec.replicas",
                &replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let rv = objects::meta_str(scale, "resourceVersion")
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    Ok((replicas, rv))
}

/// Sets `.spec.replicas` from a Scale computed from the current object.
async fn write_scale<F>(call: &Call<'_>, mut to_scale: F) -> Result<Reply, ApiError>
where
    F: FnMut(&Value) -> Result<Value, ApiError>,
{
    let dry_run = call.query.dry_run()?;
    let updated = update_object(call, dry_run, |current| {
        let resource = &call.request.resource;
        let scale = to_scale(&scale_of(resource, current))?;
        let (replicas, rv) = requested(call, &scale)?;
        let mut new = current.clone();
        resource.strategy().set_replicas(&mut new, replicas);
        let meta = objects::metadata_mut(&mut new);
        match rv {
            Some(rv) => meta.insert("resourceVersion".into(), json!(rv)),
            None => meta.remove("resourceVersion"),
        };
        Ok(new)
    })
    .await?;
    Ok(Reply::ok(scale_of(&call.request.resource, &updated)))
}

pub async fn update(call: &Call<'_>) -> Result<Reply, ApiError> {
    let media = content_type(call);
    let submitted = if crate::edge::protobuf::is_protobuf(&media) {
        crate::edge::protobuf::decode_scale(&call.body)?
    } else if media == "application/json" {
        kubecache_apimachinery::typed::parse_json(&call.body)?.value
    } else {
        return Err(ApiError::unsupported_media_type(
            &media,
            &[
                "application/json",
                kubecache_apimachinery::protobuf::MEDIA_TYPE,
            ],
        ));
    };
    write_scale(call, |_| Ok(submitted.clone())).await
}

pub async fn patch(call: &Call<'_>) -> Result<Reply, ApiError> {
    let patch_type = PatchType::from_media_type(&content_type(call))?;
    let body = patch::parse(patch_type, &call.body)?;
    write_scale(call, |scale| {
        let mut scale = scale.clone();
        objects::metadata_mut(&mut scale).remove("resourceVersion");
        patch::apply(
            patch_type,
            &scale,
            &body,
            Schema::of_root("autoscaling", "v1", "Scale"),
        )
    })
    .await
}
