//! PATCH with `application/apply-patch+yaml`: server-side apply (see [`kubecache_apimachinery::ssa`]); every
//! other write's `metadata.managedFields` entry is recorded by the [`kubecache_store::Store`].
//!
//! An apply to an object that does not exist creates it (201), through the same create path
//! as POST. `fieldManager` is required; `force=true` takes conflicting fields over.

use http::StatusCode;
use kubecache_core::status::{ApiError, Cause, Reason};

use super::path_name;
use super::write::{self, content_type, finish_decode, update_object};
use crate::call::{Call, Reply};
use kubecache_apimachinery::managed;
use kubecache_apimachinery::objects;
use kubecache_apimachinery::ssa::{self, Applier};
use kubecache_apimachinery::typed::FieldValidation;

/// The server-side apply media type.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// This request is a server-side apply.
pub fn is_apply(call: &Call<'_>) -> bool {
    call.request.verb == kubecache_core::request::Verb::Patch && content_type(call) == APPLY_PATCH
}

/// Kube's PatchOptions rule: `force` only with apply.
pub fn check_patch_options(call: &Call<'_>) -> Result<(), ApiError> {
    if !is_apply(call) && call.query.get("force").is_some() {
        return Err(managed::patch_options_invalid(Cause::forbidden(
            "force",
            "may not be specified for non-apply patch",
        )));
    }
    Ok(())
}

pub async fn apply(call: &Call<'_>) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    let manager = match call.query.get("fieldManager") {
        Some(name) if !name.is_empty() => super::field_manager(call)?,
        _ => {
            return Err(managed::patch_options_invalid(Cause::new(
                "FieldValueRequired",
                "fieldManager",
                "Required value: is required for apply patch",
            )));
        }
    };
    let force = call.query.flag("force")?;
    let mode = FieldValidation::parse(call.query.get("fieldValidation"))?;
    let dry_run = call.query.dry_run()?;
    let config = ssa::parse(&call.body)?;
    let subresource = managed::subresource_name(call.request.subresource);
    let applier = Applier {
        manager: &manager,
        force,
        subresource,
        resource,
    };
    let mut warnings = Vec::new();
    let updated = update_object(call, dry_run, |current| {
        // A resourceVersion in the configuration is the applier's precondition.
        let mut shown = current.clone();
        objects::metadata_mut(&mut shown).remove("resourceVersion");
        let merged = ssa::apply(Some(&shown), &config, &applier)?;
        let decoded = finish_decode(call, resource, merged, &[], mode)?;
        warnings = decoded.warnings;
        Ok(match call.request.subresource {
            None => decoded.object,
            Some(_) => {
                // Only what the subresource may change changes (`.status`, a pod's ephemeral
                // containers or resources), but the ownership recorded is the new one.
                let managed = decoded.object.pointer("/metadata/managedFields").cloned();
                let mut result = write::merge_into_current(call, current, decoded.object);
                let meta = objects::metadata_mut(&mut result);
                match managed {
                    Some(managed) => meta.insert("managedFields".into(), managed),
                    None => meta.remove("managedFields"),
                };
                result
            }
        })
    })
    .await;
    match updated {
        Ok(object) => Ok(Reply::Object {
            status: StatusCode::OK,
            body: object,
            warnings,
        }),
        Err(err)
            if err.reason == Reason::NotFound
                && call.request.subresource.is_none()
                && err.name.as_deref() == Some(path_name(call)) =>
        {
            let created = ssa::apply(None, &config, &applier)?;
            let decoded = finish_decode(call, resource, created, &[], mode)?;
            if objects::name(&decoded.object) != path_name(call) {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({})",
                    objects::name(&decoded.object),
                    path_name(call)
                )));
            }
            write::create_decoded(call, decoded.object, decoded.warnings, dry_run).await
        }
        Err(err) => Err(err),
    }
}
