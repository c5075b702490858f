//! Create, update and patch (of objects and of their `status` subresource).
//!
//! Every write decodes the body as the resource's typed object (see [`kubecache_apimachinery::typed`]) and
//! hands it to the [`Store`], which applies the metadata rules, admission and managedFields
//! and writes with optimistic concurrency; these handlers only parse the request and shape
//! the answer. A rejected request writes nothing.

use http::StatusCode;
use http::header::CONTENT_TYPE;
use kubecache_apimachinery::registry::Resource;
use kubecache_core::merge_schema::Schema;
use kubecache_core::request::Subresource;
use kubecache_core::status::ApiError;
use serde_json::Value;

use super::path_name;
use crate::call::{Call, Reply};
use kubecache_apimachinery::objects;
use kubecache_apimachinery::patch::{self, PatchType};
use kubecache_apimachinery::typed::{self, FieldValidation};
use kubecache_store::{Store, Writer};

/// Media types accepted for create and update bodies.
pub const BODY_TYPES: &[&str] = &[
    "application/json",
    kubecache_apimachinery::protobuf::MEDIA_TYPE,
];

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
    if crate::edge::protobuf::is_protobuf(&content_type(call)) {
        let object = crate::edge::protobuf::decode_body(resource, body)?;
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
    let (mut object, unknown) = typed::normalize(resource, object)?;
    let warnings = typed::check_fields(mode, duplicate_fields, &unknown)?;
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

/// Who makes this request's write, for the Store: its user, field manager (none for an
/// apply, which records its own), subresource and dry-run flag.
pub fn writer(call: &Call<'_>, dry_run: bool) -> Result<Writer, ApiError> {
    let manager = if super::apply::is_apply(call) {
        None
    } else {
        Some(super::field_manager(call)?)
    };
    Ok(Writer {
        user: call.user.clone(),
        manager,
        subresource: call.request.subresource,
        dry_run,
    })
}

/// Creates a decoded object (POST, and server-side apply to a missing object).
pub async fn create_decoded(
    call: &Call<'_>,
    object: Value,
    warnings: Vec<String>,
    dry_run: bool,
) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    let writer = writer(call, dry_run)?;
    let created = Store::new(call.api, resource)
        .create(&writer, call.request.namespace.as_deref(), object)
        .await?;
    // The response is the stored JSON with its resourceVersion spliced in, as the watch
    // cache serves the object (`kubecache_cache::json`), rather than serialized again,
    // when nothing else is asked of it.
    if let Some((bytes, revision)) = created.stored
        && warnings.is_empty()
        && resource.strategy().storage_version().is_none()
        && !crate::edge::protobuf::wants_protobuf(&call.headers)
    {
        return Ok(Reply::Encoded {
            status: StatusCode::CREATED,
            body: kubecache_cache::json::with_resource_version(&bytes, revision),
            content_type: "application/json",
        });
    }
    Ok(Reply::Object {
        status: StatusCode::CREATED,
        body: created.object,
        warnings,
    })
}

/// Updates the object the path names through the [`Store`]: `change` maps the current object
/// to its successor, and runs again on a fresh read after a lost race unless the successor
/// names a resourceVersion (the client's precondition: 409). See [`Store::update`].
pub async fn update_object<F>(call: &Call<'_>, dry_run: bool, change: F) -> Result<Value, ApiError>
where
    F: FnMut(&Value) -> Result<Value, ApiError>,
{
    let writer = writer(call, dry_run)?;
    Store::new(call.api, &call.request.resource)
        .update(
            &writer,
            call.request.namespace.as_deref(),
            path_name(call),
            change,
        )
        .await
}

/// The object the client's version of it becomes: the whole object for the main resource,
/// what the strategy takes of it for a subresource (only `.status` by default; a pod's
/// ephemeral containers or resources for `pods/ephemeralcontainers` and `pods/resize`).
pub fn merge_into_current(call: &Call<'_>, current: &Value, submitted: Value) -> Value {
    match call.request.subresource {
        Some(subresource) if subresource != Subresource::Scale => call
            .request
            .resource
            .strategy()
            .merge_subresource_write(subresource, current, &submitted),
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
        body: updated,
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
        let mut shown = current.clone();
        objects::metadata_mut(&mut shown).remove("resourceVersion");
        let patched = patch::apply(patch_type, &shown, &patch_body, schema)?;
        let decoded = finish_decode(call, resource, patched, &[], mode)?;
        warnings = decoded.warnings;
        Ok(merge_into_current(call, current, decoded.object))
    })
    .await?;
    Ok(Reply::Object {
        status: StatusCode::OK,
        body: updated,
        warnings,
    })
}
