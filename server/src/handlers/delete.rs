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
use kubecache_core::authz::Attributes;
use kubecache_core::status::{
    ApiError, Cause, Reason, Status, StatusDetails, qualified_resource, storage_error,
};
use kubecache_core::storage::StorageError;
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
    /// `ignoreStoreReadErrorWithClusterBreakingPotential`: remove an object whose stored
    /// value cannot be read (KEP-3926), see [`unsafe_delete`].
    pub ignore_store_read_error: bool,
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
        let ignore_store_read_error = ignore_store_read_error(call, body, propagation)?;
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
            ignore_store_read_error,
        })
    }
}

/// `ignoreStoreReadErrorWithClusterBreakingPotential` from the body or the query, refused
/// with kube's causes beside any option that assumes the object can be read.
fn ignore_store_read_error(
    call: &Call<'_>,
    body: &Value,
    propagation: Option<&str>,
) -> Result<bool, ApiError> {
    const FIELD: &str = "ignoreStoreReadErrorWithClusterBreakingPotential";
    let enabled = match body.get(FIELD) {
        Some(value) => value.as_bool() == Some(true),
        None => call.query.get(FIELD) == Some("true"),
    };
    if !enabled {
        return Ok(false);
    }
    let given = |name: &str| body.get(name).is_some_and(|v| !v.is_null());
    let dry_run = given("dryRun") || call.query.get("dryRun").is_some();
    let conflicts = [
        (dry_run, "dryRun"),
        (propagation.is_some(), "propagationPolicy"),
        (given("orphanDependents"), "orphanDependents"),
        (
            given("gracePeriodSeconds") || call.query.get("gracePeriodSeconds").is_some(),
            "gracePeriodSeconds",
        ),
        (given("preconditions"), "preconditions"),
    ];
    let causes: Vec<Cause> = conflicts
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, option)| {
            Cause::new(
                "FieldValueInvalid",
                FIELD,
                format!("Invalid value: true: cannot be set together with .{option}"),
            )
        })
        .collect();
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            causes,
        ));
    }
    Ok(true)
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
    if options.ignore_store_read_error {
        return unsafe_delete(call, name).await;
    }
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

/// KEP-3926's unsafe delete, as kube-apiserver: only with the `unsafe-delete-ignore-read-errors`
/// verb on the resource, and only for an object whose stored value cannot be read (422
/// otherwise); the key is removed without preconditions, admission or finalizers, since
/// there is no object to apply them to.
async fn unsafe_delete(call: &Call<'_>, name: &str) -> Result<Reply, ApiError> {
    const VERB: &str = "unsafe-delete-ignore-read-errors";
    let resource = &call.request.resource;
    let namespace = call.request.namespace.as_deref();
    let attributes = Attributes {
        user: call.user.clone(),
        verb: VERB.to_string(),
        resource_request: true,
        namespace: namespace.unwrap_or_default().to_string(),
        api_group: resource.group.to_string(),
        api_version: resource.version.to_string(),
        resource: resource.resource.to_string(),
        subresource: String::new(),
        name: name.to_string(),
        path: String::new(),
    };
    let verdict = crate::authz::chain_of(call.api).evaluate(&attributes).await;
    if !verdict.allowed {
        let mut err = ApiError::new(
            403,
            Reason::Forbidden,
            format!(
                "{} {name:?} is forbidden: not permitted to do {VERB:?}, reason: {}",
                qualified_resource(&resource.group, &resource.resource),
                verdict.reason
            ),
        );
        err.name = Some(name.to_string());
        err.group = Some(resource.group.to_string());
        err.kind = Some(resource.resource.to_string());
        return Err(err);
    }
    let key = resource
        .info()
        .object_key(&call.api.storage_root, namespace, name);
    match call.api.backend.get(&key).await {
        Err(StorageError::Corrupt(_)) => {}
        Ok(None) => {
            return Err(ApiError::not_found(
                &resource.group,
                &resource.resource,
                name,
            ));
        }
        Ok(Some(_)) => {
            return Err(ApiError::invalid(
                &resource.group,
                &resource.resource,
                name,
                vec![Cause::new(
                    "FieldValueInvalid",
                    "ignoreStoreReadErrorWithClusterBreakingPotential",
                    "Invalid value: true: is exclusively used to delete corrupt object(s), try \
                     again by removing this option",
                )],
            ));
        }
        Err(other) => return Err(storage_error(other)),
    }
    tracing::warn!(%key, user = %call.user.name, "unsafe delete of an object that cannot be read");
    match call.api.backend.delete(&key, None).await {
        Ok(_) | Err(StorageError::NotFound { .. }) => {}
        Err(other) => return Err(storage_error(other)),
    }
    let status = Status::success(Some(StatusDetails {
        name: name.to_string(),
        kind: resource.kind.to_string(),
        ..StatusDetails::default()
    }));
    Ok(Reply::json_bytes(Bytes::from(status.to_body())))
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
