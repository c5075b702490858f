//! DELETE of one object and of a collection.
//!
//! The request's `DeleteOptions` are parsed here and the delete done by the
//! [`Store`](kubecache_store::Store): an object with finalizers is only marked
//! (`deletionTimestamp`) and goes away when an update removes its last finalizer; a namespace
//! is marked Terminating and emptied by the namespace finalizer ([`super::namespaces`]);
//! anything else is deleted with a compare-and-swap on the mod_revision that was read, after
//! the client's uid/resourceVersion preconditions.

use bytes::Bytes;
use http::StatusCode;
use kubecache_core::status::{ApiError, Status, StatusDetails};
use serde_json::{Value, json};

use super::path_name;
use super::read::{filter, list_objects};
use crate::call::{Call, Reply};
use kubecache_apimachinery::objects;
use kubecache_store::{Deleted, Preconditions, Store, Writer};

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
        } else if crate::edge::protobuf::is_protobuf(&super::write::content_type(call)) {
            crate::edge::protobuf::decode_delete_options(&call.body)?
        } else {
            kubecache_apimachinery::typed::parse_json(&call.body)?.value
        };
        DeleteOptions::from_value(call, &body)
    }

    /// From a `DeleteOptions` object (a DELETE's body, an Eviction's `deleteOptions`) and the
    /// query parameters.
    pub fn from_value(call: &Call<'_>, body: &Value) -> Result<DeleteOptions, ApiError> {
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

impl DeleteOptions {
    /// Who makes this delete, for the Store.
    pub fn writer(&self, call: &Call<'_>) -> Writer {
        Writer {
            user: call.user.clone(),
            manager: None,
            subresource: None,
            dry_run: self.dry_run,
        }
    }

    pub fn preconditions(&self) -> Preconditions {
        Preconditions {
            uid: self.uid.clone(),
            resource_version: self.resource_version.clone(),
        }
    }
}

pub async fn delete(call: &Call<'_>) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    let options = DeleteOptions::from_call(call)?;
    let name = path_name(call);
    let outcome = Store::new(call.api, resource)
        .delete(
            &options.writer(call),
            call.request.namespace.as_deref(),
            name,
            &options.preconditions(),
        )
        .await?;
    let body = match outcome {
        Deleted::Marked(object) => object,
        Deleted::Removed(object) if resource.strategy().delete_returns_object() => object,
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
    let items: Vec<(Option<&str>, &str)> = listed
        .result
        .objects
        .iter()
        .map(|object| (object.attrs.namespace(), object.attrs.name()))
        .collect();
    let deleted: Vec<Value> = Store::new(call.api, resource)
        .delete_collection(&options.writer(call), &options.preconditions(), &items)
        .await?
        .into_iter()
        .map(|(Deleted::Removed(o) | Deleted::Marked(o))| o)
        .collect();
    Ok(Reply::ok(json!({
        "kind": resource.list_kind(),
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": listed.result.revision.to_string()},
        "items": deleted,
    })))
}
