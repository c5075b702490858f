//! Create, update and patch (of objects and of their `status` subresource).
//!
//! Every write decodes the body as the resource's typed object (see [`crate::typed`]),
//! applies the metadata rules of [`crate::objects`] and the admission chain of
//! [`crate::admission`] (defaults, validation, clusterIP allocation), and only then writes, with
//! optimistic concurrency: a create is a transaction on "key absent", an update one on the
//! mod_revision that was read. A rejected request writes nothing.

use crate::registry::Resource;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use kubecache_core::merge_schema::Schema;
use kubecache_core::status::ApiError;
use kubecache_core::storage::{KeyValue, StorageError};
use serde_json::Value;

use super::{not_found, object_key, path_name, present_value, to_storage_shape};
use crate::admission;
use crate::api::{Call, Reply, storage_error};
use crate::objects;
use crate::patch::{self, PatchType};
use crate::request_info::Subresource;
use crate::typed::{self, FieldValidation};

/// Media types accepted for create and update bodies.
pub const BODY_TYPES: &[&str] = &["application/json", crate::protobuf::MEDIA_TYPE];

/// How often an update without a resourceVersion precondition is retried after losing a
/// race to another writer.
const MAX_UPDATE_ATTEMPTS: usize = 16;

/// The request's media type without parameters; a missing Content-Type means JSON (the
/// Python client sends none).
pub fn content_type(call: &Call<'_>) -> String {
    call.headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/json".to_string())
}

/// A body decoded, typed and checked against the URL, ready for metadata rules.
pub struct Decoded {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// Decodes a create/update body (or a patched object) as `resource`'s typed object.
pub fn decode_object(
    call: &Call<'_>,
    resource: &Resource,
    body: &[u8],
    mode: FieldValidation,
) -> Result<Decoded, ApiError> {
    if crate::protobuf::edge::is_protobuf(&content_type(call)) {
        let object = crate::protobuf::edge::decode_body(resource, body)?;
        return finish_decode(call, resource, object, &[], mode);
    }
    let parsed = typed::parse_json(body)?;
    finish_decode(call, resource, parsed.value, &parsed.duplicate_fields, mode)
}

pub fn finish_decode(
    call: &Call<'_>,
    resource: &Resource,
    mut object: Value,
    duplicate_fields: &[String],
    mode: FieldValidation,
) -> Result<Decoded, ApiError> {
    objects::check_type(resource, &mut object)?;
    let (object, unknown) = typed::normalize(resource, object)?;
    let warnings = typed::check_fields(mode, duplicate_fields, &unknown)?;
    let mut object = to_storage_shape(resource, object);
    objects::check_namespace(resource, &mut object, call.request.namespace.as_deref())?;
    Ok(Decoded { object, warnings })
}

pub async fn create(call: &Call<'_>) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    let media = content_type(call);
    if !BODY_TYPES.contains(&media.as_str()) {
        return Err(ApiError::unsupported_media_type(&media, BODY_TYPES));
    }
    let mode = FieldValidation::parse(call.query.get("fieldValidation"))?;
    let dry_run = call.query.dry_run()?;
    let Decoded { object, warnings } = decode_object(call, resource, &call.body, mode)?;
    create_decoded(call, object, warnings, dry_run).await
}

/// Creates a decoded object (POST, and server-side apply to a missing object).
pub async fn create_decoded(
    call: &Call<'_>,
    mut object: Value,
    warnings: Vec<String>,
    dry_run: bool,
) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    objects::prepare_create(resource, &mut object);
    // Admission: mutating plugins (namespace lifecycle, defaulting…), then validation and
    // the clusterIP allocation, settled below once the write's outcome is known. Field
    // ownership is recorded in between, as for updates: the writer owns the defaulted fields,
    // as kube (which defaults while decoding) records them.
    admission::mutate(call, &mut object, None, dry_run).await?;
    super::apply::record_write(call, None, &mut object)?;
    let admitted = admission::admit(call, &mut object, None, dry_run).await?;
    let name = objects::name(&object).to_string();
    let key = call
        .api
        .object_key(resource, call.request.namespace.as_deref(), &name);
    let stored = if dry_run {
        if call
            .api
            .backend
            .get(&key)
            .await
            .map_err(storage_error)?
            .is_some()
        {
            return Err(ApiError::already_exists(
                &resource.group,
                &resource.resource,
                &name,
            ));
        }
        object
    } else {
        let bytes = objects::encode(&object);
        let created = call.api.backend.create(&key, bytes.clone()).await;
        admitted.settle(call.api, created.is_ok()).await;
        let kv = created.map_err(|e| match e {
            StorageError::KeyExists { .. } => {
                ApiError::already_exists(&resource.group, &resource.resource, &name)
            }
            other => storage_error(other),
        })?;
        // The response is the stored JSON with its resourceVersion spliced in, as the watch
        // cache serves the object (`kubecache_cache::json`), rather than serialized again,
        // when nothing else is asked of it.
        if warnings.is_empty()
            && resource.strategy().storage_version().is_none()
            && !crate::protobuf::edge::wants_protobuf(&call.headers)
        {
            return Ok(Reply::Encoded {
                status: StatusCode::CREATED,
                body: kubecache_cache::json::with_resource_version(&bytes, kv.mod_revision),
                content_type: "application/json",
            });
        }
        objects::set_resource_version(&mut object, kv.mod_revision);
        object
    };
    Ok(Reply::Object {
        status: StatusCode::CREATED,
        body: present_value(resource, stored),
        warnings,
    })
}

/// Reads the current object, asks `change` for its successor, and writes it with a
/// compare-and-swap on the mod_revision that was read. A conflict is retried with a fresh
/// read unless the successor names a resourceVersion (then it is the client's precondition
/// and the conflict is theirs: 409). Unchanged objects are not written.
pub async fn update_object<F>(
    call: &Call<'_>,
    dry_run: bool,
    mut change: F,
) -> Result<Value, ApiError>
where
    F: FnMut(&Value) -> Result<Value, ApiError>,
{
    let resource = &call.request.resource;
    let name = path_name(call);
    let key = object_key(call);
    let mut current: Option<KeyValue> = None;
    for _ in 0..MAX_UPDATE_ATTEMPTS {
        let kv = match current.take() {
            Some(kv) => kv,
            None => call
                .api
                .backend
                .get(&key)
                .await
                .map_err(storage_error)?
                .ok_or_else(|| not_found(call))?,
        };
        let old = objects::decode(&kv)?;
        let mut new = change(&old)?;
        let precondition = objects::resource_version(&new)?;
        if precondition.is_some_and(|rv| rv != kv.mod_revision) {
            return Err(ApiError::modified(
                &resource.group,
                &resource.resource,
                name,
            ));
        }
        if objects::name(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                objects::name(&new)
            )));
        }
        let status_write = call.request.subresource == Some(Subresource::Status);
        admission::mutate(call, &mut new, Some(&old), dry_run).await?;
        objects::prepare_update(resource, &old, &mut new, status_write);
        super::apply::record_write(call, Some(&old), &mut new)?;
        objects::set_resource_version(&mut new, kv.mod_revision);
        let admitted = admission::admit(call, &mut new, Some(&old), dry_run).await?;
        let finalized = objects::is_deleting(&new) && objects::finalizers(&new).is_empty();
        let bytes = objects::encode_owned(&mut new);
        if dry_run {
            return Ok(new);
        }
        if finalized {
            return match call.api.backend.delete(&key, Some(kv.mod_revision)).await {
                Ok(deleted) => {
                    admission::removed(call.api, resource, &old).await;
                    // The answer carries the deletion's revision, as the DELETED event does.
                    objects::set_resource_version(&mut new, deleted.revision);
                    Ok(new)
                }
                Err(StorageError::Conflict {
                    current: Some(kv), ..
                }) if precondition.is_none() => {
                    current = Some(kv);
                    continue;
                }
                Err(StorageError::Conflict { .. }) => Err(ApiError::modified(
                    &resource.group,
                    &resource.resource,
                    name,
                )),
                Err(StorageError::NotFound { .. }) => Err(not_found(call)),
                Err(e) => Err(storage_error(e)),
            };
        }
        if bytes == kv.value {
            return Ok(old);
        }
        match call.api.backend.update(&key, bytes, kv.mod_revision).await {
            Ok(written) => {
                admitted.settle(call.api, true).await;
                objects::set_resource_version(&mut new, written.mod_revision);
                return Ok(new);
            }
            Err(StorageError::Conflict {
                current: Some(kv), ..
            }) if precondition.is_none() => {
                current = Some(kv);
            }
            Err(StorageError::Conflict { current: None, .. })
            | Err(StorageError::NotFound { .. }) => {
                return Err(not_found(call));
            }
            Err(StorageError::Conflict { .. }) => {
                return Err(ApiError::modified(
                    &resource.group,
                    &resource.resource,
                    name,
                ));
            }
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

/// The object the client's version of it becomes: the whole object for the main resource,
/// only its `.status` for the status subresource.
fn merge_into_current(call: &Call<'_>, current: &Value, submitted: Value) -> Value {
    match call.request.subresource {
        Some(Subresource::Status) => objects::apply_status_update(current, &submitted),
        _ => submitted,
    }
}

pub async fn update(call: &Call<'_>) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    let media = content_type(call);
    if !BODY_TYPES.contains(&media.as_str()) {
        return Err(ApiError::unsupported_media_type(&media, BODY_TYPES));
    }
    let mode = FieldValidation::parse(call.query.get("fieldValidation"))?;
    let dry_run = call.query.dry_run()?;
    let Decoded { object, warnings } = decode_object(call, resource, &call.body, mode)?;
    // A uid in the body is a precondition (kube's `defaultUpdatedObjectInfo.Preconditions`).
    let uid = objects::meta_str(&object, "uid")
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    let updated = update_object(call, dry_run, |current| {
        let current_uid = objects::meta_str(current, "uid").unwrap_or("");
        if let Some(uid) = uid.as_deref().filter(|u| *u != current_uid) {
            return Err(ApiError::conflict(
                &resource.group,
                &resource.resource,
                path_name(call),
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {current_uid}"
                ),
            ));
        }
        Ok(merge_into_current(call, current, object.clone()))
    })
    .await?;
    Ok(Reply::Object {
        status: StatusCode::OK,
        body: present_value(resource, updated),
        warnings,
    })
}

pub async fn patch(call: &Call<'_>) -> Result<Reply, ApiError> {
    super::apply::check_patch_options(call)?;
    if super::apply::is_apply(call) {
        return super::apply::apply(call).await;
    }
    let resource = &call.request.resource;
    let media = content_type(call);
    let patch_type = PatchType::from_media_type(&media)?;
    let mode = FieldValidation::parse(call.query.get("fieldValidation"))?;
    let dry_run = call.query.dry_run()?;
    let schema = Schema::of_root(&resource.group, &resource.version, &resource.kind);
    patch::check_schema(patch_type, schema)?;
    let patch_body = patch::parse(patch_type, &call.body)?;
    let mut warnings = Vec::new();
    let updated = update_object(call, dry_run, |current| {
        // The patch sees the object without its resourceVersion: one the patch sets is the
        // client's precondition; otherwise a lost race is retried on the fresh object.
        let mut shown = present_value(resource, current.clone());
        objects::metadata_mut(&mut shown).remove("resourceVersion");
        let patched = patch::apply(patch_type, &shown, &patch_body, schema)?;
        let decoded = finish_decode(call, resource, patched, &[], mode)?;
        warnings = decoded.warnings;
        Ok(merge_into_current(call, current, decoded.object))
    })
    .await?;
    Ok(Reply::Object {
        status: StatusCode::OK,
        body: present_value(resource, updated),
        warnings,
    })
}
