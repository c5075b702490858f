//! DELETE of one object and of a collection.
//!
//! An object with finalizers is only marked (`deletionTimestamp`) and goes away when an update
//! removes its last finalizer; a namespace is marked Terminating and emptied by the
//! namespace finalizer ([`super::namespaces`]); anything else is deleted with a compare-and-swap
//! on the mod_revision that was read, after the client's uid/resourceVersion preconditions.

use crate::registry::Resource;
use bytes::Bytes;
use http::StatusCode;
use kubecache_core::status::{ApiError, Status, StatusDetails};
use kubecache_core::storage::StorageError;
use serde_json::{Value, json};

use super::read::{filter, list_objects};
use super::{path_name, present_value};
use crate::api::{Api, Call, Reply, storage_error};
use crate::objects;
use crate::strategy::Deletion;

/// The parts of `DeleteOptions` kubecache acts on.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// From the body (a `DeleteOptions` object, possibly empty) and the query parameters.
    pub fn from_call(call: &Call<'_>) -> Result<DeleteOptions, ApiError> {
        let body: Value = if call.body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else if crate::protobuf::edge::is_protobuf(&super::write::content_type(call)) {
            crate::protobuf::edge::decode_delete_options(&call.body)?
        } else {
            crate::typed::parse_json(&call.body)?.value
        };
        if !body.is_object() {
            return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
        }
        let propagation = body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .or(call.query.get("propagationPolicy"));
        let unsupported = propagation
            .filter(|p| !p.is_empty() && !matches!(*p, "Orphan" | "Background" | "Foreground"));
        if let Some(policy) = unsupported {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![kubecache_core::status::Cause::new(
                    "FieldValueNotSupported",
                    "propagationPolicy",
                    format!(
                        "Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                )],
            ));
        }
        let dry_run_values: Vec<&str> = body
            .get("dryRun")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let dry_run = call.query.dry_run()?
            || match dry_run_values.as_slice() {
                [] => false,
                ["All"] => true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid dryRun value: {other:?}: supported values: \"All\""
                    )));
                }
            };
        let preconditions = body.get("preconditions");
        let field = |name: &str| {
            preconditions
                .and_then(|p| p.get(name))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Ok(DeleteOptions {
            uid: field("uid"),
            resource_version: field("resourceVersion"),
            dry_run,
        })
    }
}

/// What became of the object a delete named.
pub enum Deleted {
    /// Removed from storage; the object as it was last.
    Removed(Value),
    /// Marked for deletion (finalizers pending or namespace terminating).
    Marked(Value),
}

const MAX_DELETE_ATTEMPTS: usize = 16;

/// Deletes one object, honouring preconditions and finalizers, retrying lost races.
pub async fn delete_object(
    api: &Api,
    resource: &Resource,
    namespace: Option<&str>,
    name: &str,
    options: &DeleteOptions,
) -> Result<Deleted, ApiError> {
    crate::admission::admit_delete(resource, name)?;
    let strategy = resource.strategy();
    let key = api.object_key(resource, namespace, name);
    let not_found = || ApiError::not_found(&resource.group, &resource.resource, name);
    for _ in 0..MAX_DELETE_ATTEMPTS {
        let kv = api
            .backend
            .get(&key)
            .await
            .map_err(storage_error)?
            .ok_or_else(not_found)?;
        let mut object = objects::decode(&kv)?;
        let uid = objects::meta_str(&object, "uid").unwrap_or("");
        if let Some(expected) = options.uid.as_deref().filter(|u| *u != uid) {
            return Err(ApiError::conflict(
                &resource.group,
                &resource.resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {expected}, UID in object meta: {uid}"
                ),
            ));
        }
        let rv = kv.mod_revision.to_string();
        if let Some(expected) = options.resource_version.as_deref().filter(|v| *v != rv) {
            return Err(ApiError::conflict(
                &resource.group,
                &resource.resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {expected}, ResourceVersion in object meta: {rv}"
                ),
            ));
        }
        let terminating = strategy.deletion() == Deletion::Terminating;
        let graceful = terminating || !objects::finalizers(&object).is_empty();
        if graceful {
            if objects::is_deleting(&object) {
                return Ok(Deleted::Marked(object));
            }
            let meta = objects::metadata_mut(&mut object);
            meta.insert("deletionTimestamp".into(), json!(objects::now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if terminating {
                object["status"] = json!({"phase": "Terminating"});
            }
            if options.dry_run {
                return Ok(Deleted::Marked(object));
            }
            match api
                .backend
                .update(&key, objects::encode(&object), kv.mod_revision)
                .await
            {
                Ok(written) => {
                    objects::set_resource_version(&mut object, written.mod_revision);
                    if terminating {
                        api.terminating_namespaces
                            .lock()
                            .insert(name.to_string(), written.mod_revision);
                        api.namespace_deleted.notify_one();
                    }
                    return Ok(Deleted::Marked(object));
                }
                Err(StorageError::Conflict { .. }) => continue,
                Err(StorageError::NotFound { .. }) => return Err(not_found()),
                Err(e) => return Err(storage_error(e)),
            }
        }
        if options.dry_run {
            return Ok(Deleted::Removed(object));
        }
        match api.backend.delete(&key, Some(kv.mod_revision)).await {
            Ok(deleted) => {
                crate::admission::removed(api, resource, &object).await;
                // The answer carries the deletion's revision, as the DELETED event does.
                objects::set_resource_version(&mut object, deleted.revision);
                return Ok(Deleted::Removed(object));
            }
            Err(StorageError::Conflict { .. }) => continue,
            Err(StorageError::NotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(storage_error(e)),
        }
    }
    Err(ApiError::conflict(
        &resource.group,
        &resource.resource,
        name,
        "too many concurrent writers; please retry",
    ))
}

pub async fn delete(call: &Call<'_>) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    let options = DeleteOptions::from_call(call)?;
    let name = path_name(call);
    let outcome = delete_object(
        call.api,
        resource,
        call.request.namespace.as_deref(),
        name,
        &options,
    )
    .await?;
    let body = match outcome {
        Deleted::Marked(object) => present_value(resource, object),
        Deleted::Removed(object) if resource.strategy().delete_returns_object() => {
            present_value(resource, object)
        }
        Deleted::Removed(object) => {
            let status = Status::success(Some(StatusDetails {
                name: name.to_string(),
                group: resource.group.to_string(),
                kind: resource.resource.to_string(),
                uid: objects::meta_str(&object, "uid").unwrap_or("").to_string(),
                ..StatusDetails::default()
            }));
            return Ok(Reply::json_bytes(Bytes::from(status.to_body())));
        }
    };
    Ok(Reply::Object {
        status: StatusCode::OK,
        body,
        warnings: Vec::new(),
    })
}

pub async fn delete_collection(call: &Call<'_>) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    let options = DeleteOptions::from_call(call)?;
    let listed = list_objects(call, filter(call)?).await?;
    let mut deleted = Vec::new();
    for object in &listed.result.objects {
        let name = object.attrs.name();
        let namespace = object.attrs.namespace();
        match delete_object(call.api, resource, namespace, name, &options).await {
            Ok(Deleted::Removed(o)) | Ok(Deleted::Marked(o)) => {
                deleted.push(present_value(resource, o))
            }
            // Someone else deleted it first: it is gone either way.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::ok(json!({
        "kind": resource.list_kind(),
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": listed.result.revision.to_string()},
        "items": deleted,
    })))
}
