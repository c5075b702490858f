//! GET and LIST through the read path, with kube-apiserver's resourceVersion semantics:
//! the query parameters become a [`ReadAt`], the selectors a [`Filter`].

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kubecache_cache::{Filter, ListRequest, ListResult, ReadAt};
use kubecache_core::continue_token::ContinueToken;
use kubecache_core::fields;
use kubecache_core::selector::{FieldSelector, LabelSelector};
use kubecache_core::status::ApiError;
use kubecache_core::storage::StorageError;
use serde_json::json;

use super::list_body::{JsonListChunks, STREAM_ABOVE};
use super::{not_found, object_key};
use crate::call::{Call, Reply};
use kubecache_apimachinery::objects;
use kubecache_core::status::storage_error;

/// `resourceVersion` of a GET or WATCH: unset → latest, `0` → any, `N` → not older than N.
pub fn read_at(call: &Call<'_>) -> Result<ReadAt, ApiError> {
    match call.query.get("resourceVersion").filter(|v| !v.is_empty()) {
        None => Ok(ReadAt::Latest),
        Some(rv) => match objects::parse_resource_version(rv)? {
            0 => Ok(ReadAt::Any),
            n => Ok(ReadAt::NotOlderThan(n)),
        },
    }
}

pub async fn get(call: &Call<'_>) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    let object = call
        .api
        .reads
        .get(resource, &object_key(call), read_at(call)?)
        .await
        .map_err(storage_error)?
        .ok_or_else(|| not_found(call))?;
    let include = crate::edge::table::requested(&call.headers, &call.query)?;
    let reads = &call.api.reads;
    // Conversion into the version asked for happens here, in the request's task (it may
    // wait); the encoders below find it made.
    let objects = std::slice::from_ref(&object);
    // Protobuf from the read path's per-object cache.
    if include.is_none() && crate::edge::protobuf::wants_protobuf(&call.headers) {
        reads
            .convert(objects, resource, true)
            .await
            .map_err(storage_error)?;
        if let Some(reply) = crate::edge::protobuf::object_reply(reads.protobuf(&object, resource))
        {
            return Ok(reply);
        }
    }
    reads
        .convert(objects, resource, false)
        .await
        .map_err(storage_error)?;
    if let Some(include) = include {
        let object = decode(&reads.json(&object, resource))?;
        let metadata = json!({"resourceVersion": object["metadata"]["resourceVersion"]});
        return Ok(crate::edge::table::reply(
            resource,
            vec![object],
            metadata,
            include,
        ));
    }
    Ok(Reply::json_bytes(reads.json(&object, resource)))
}

/// An encoded object parsed back, for printing.
fn decode(json: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(json)
        .map_err(|e| ApiError::internal(format!("stored object is not valid JSON: {e}")))
}

/// The label and field selectors and the namespace of a LIST or WATCH, validated against
/// the resource.
pub fn filter(call: &Call<'_>) -> Result<Filter, ApiError> {
    let labels = LabelSelector::parse(call.query.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(call.query.get("fieldSelector").unwrap_or(""))?;
    fields.validate_fields(&fields::supported(&call.request.resource))?;
    Ok(Filter {
        namespace: call
            .request
            .namespace
            .clone()
            .filter(|_| call.request.resource.namespaced),
        labels,
        fields,
    })
}

/// Where a LIST reads: at which state, from which key.
fn list_start(
    call: &Call<'_>,
    collection_prefix: &str,
    limit: Option<usize>,
) -> Result<(ReadAt, Option<String>, Option<i64>), ApiError> {
    let rv = call.query.get("resourceVersion").filter(|v| !v.is_empty());
    let rv_match = call
        .query
        .get("resourceVersionMatch")
        .filter(|v| !v.is_empty());
    if let Some(token) = call.query.get("continue").filter(|v| !v.is_empty()) {
        if rv.is_some_and(|v| v != "0") || rv_match.is_some() {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let token = ContinueToken::decode(token)?;
        return Ok((
            ReadAt::Exact(token.resource_version),
            Some(token.start_key_under(collection_prefix)),
            token.remaining,
        ));
    }
    let rv = rv.map(objects::parse_resource_version).transpose()?;
    let at = match (rv_match, rv) {
        (Some("Exact"), Some(0)) | (Some("Exact"), None) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch \"Exact\" requires a non-zero resourceVersion",
            ));
        }
        (Some("Exact"), Some(n)) => ReadAt::Exact(n),
        (Some("NotOlderThan"), None) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch \"NotOlderThan\" requires a resourceVersion",
            ));
        }
        (Some("NotOlderThan"), Some(0)) | (None, Some(0)) => ReadAt::Any,
        (Some("NotOlderThan"), Some(n)) => ReadAt::NotOlderThan(n),
        // Legacy semantics: resourceVersion=N with a limit and no match means Exact.
        (None, Some(n)) if limit.is_some() => ReadAt::Exact(n),
        (None, Some(n)) => ReadAt::NotOlderThan(n),
        (None, None) => ReadAt::Latest,
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "invalid resourceVersionMatch {other:?}: must be Exact or NotOlderThan"
            )));
        }
    };
    Ok((at, None, None))
}

fn parse_limit(call: &Call<'_>) -> Result<Option<usize>, ApiError> {
    match call.query.get("limit").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Ok(Some(n as usize)),
            Ok(_) => Ok(None),
            Err(_) => Err(ApiError::bad_request(format!("invalid limit {v:?}"))),
        },
    }
}

/// A LIST's objects, with the continue token for the next page.
pub struct Listed {
    pub result: ListResult,
    pub continue_token: Option<String>,
}

/// Reads the collection the call names, filtered by its selectors, honouring
/// resourceVersion, resourceVersionMatch, limit and continue.
pub async fn list_objects(call: &Call<'_>, filter: Filter) -> Result<Listed, ApiError> {
    let resource = &call.request.resource;
    let prefix = call.api.storage_prefix(resource);
    let request = ListRequest {
        resource: resource.info().clone(),
        prefix,
        start_key: None,
        limit: parse_limit(call)?,
        at: ReadAt::Latest,
        filter: Arc::new(filter),
        remaining_hint: None,
    };
    let collection_prefix = request.collection_prefix();
    let (at, start_key, remaining_hint) = list_start(call, &collection_prefix, request.limit)?;
    let result = call
        .api
        .reads
        .list(ListRequest {
            at,
            start_key,
            remaining_hint,
            ..request
        })
        .await
        .map_err(|e| list_error(call, e))?;
    let continue_token = result.continue_after.as_ref().map(|last| {
        ContinueToken::after(&last[collection_prefix.len()..], result.revision)
            .with_remaining(result.remaining)
            .encode()
    });
    Ok(Listed {
        result,
        continue_token,
    })
}

fn list_error(call: &Call<'_>, err: StorageError) -> ApiError {
    match err {
        StorageError::Compacted { .. } if call.query.get("continue").is_some() => {
            ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter.",
            )
        }
        StorageError::Compacted { requested, .. } => {
            ApiError::expired(format!("too old resource version: {requested}"))
        }
        StorageError::Corrupt(values) => {
            let resource = &call.request.resource;
            kubecache_core::status::store_read_error(&resource.group, &resource.resource, &values)
        }
        other => storage_error(other),
    }
}

pub async fn list(call: &Call<'_>) -> Result<Reply, ApiError> {
    let include = crate::edge::table::requested(&call.headers, &call.query)?;
    let listed = list_objects(call, filter(call)?).await?;
    let resource = &call.request.resource;
    let objects = &listed.result.objects;
    // Conversion into the version asked for happens here, in the request's task (it may
    // wait), before the body is written; the encoders find it made.
    let convert = |protobuf| call.api.reads.convert(objects, resource, protobuf);
    if include.is_none() && crate::edge::protobuf::wants_protobuf(&call.headers) {
        convert(true).await.map_err(storage_error)?;
        let items: Vec<Bytes> = (objects.iter())
            .map(|o| call.api.reads.protobuf(o, resource))
            .collect();
        if let Some(reply) =
            crate::edge::protobuf::list_reply(resource, &list_metadata(&listed), &items)
        {
            return Ok(reply);
        }
    }
    convert(false).await.map_err(storage_error)?;
    match include {
        None => Ok(json_list_reply(call, listed)),
        Some(include) => {
            let objects = objects
                .iter()
                .map(|o| decode(&call.api.reads.json(o, resource)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(crate::edge::table::reply(
                resource,
                objects,
                list_metadata(&listed),
                include,
            ))
        }
    }
}

/// A list's `metadata`: `{resourceVersion, continue, remainingItemCount}`.
fn list_metadata(listed: &Listed) -> serde_json::Value {
    let mut metadata = json!({"resourceVersion": listed.result.revision.to_string()});
    if let Some(token) = &listed.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = listed.result.remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    metadata
}

/// The list object without its items, serialized: `{kind, apiVersion, metadata}`.
fn list_head(call: &Call<'_>, listed: &Listed) -> Vec<u8> {
    let resource = &call.request.resource;
    let head = json!({
        "kind": resource.list_kind(),
        "apiVersion": resource.api_version(),
        "metadata": list_metadata(listed),
    });
    serde_json::to_vec(&head).expect("a JSON value always serializes")
}

/// The size of a list body, estimated: the stored lengths plus the resourceVersion field.
fn estimated_size(head: &[u8], listed: &Listed) -> usize {
    let objects = &listed.result.objects;
    head.len() + objects.iter().map(|o| o.kv.value.len() + 48).sum::<usize>() + 16
}

/// A JSON list reply: small lists as one buffer, large ones streamed in chunks as they are
/// sent (see [`list_body`](super::list_body)); the bytes are the same either way.
fn json_list_reply(call: &Call<'_>, listed: Listed) -> Reply {
    let head = list_head(call, &listed);
    let size = estimated_size(&head, &listed);
    if size <= STREAM_ABOVE {
        return Reply::json_bytes(list_body(call, &listed, &head, size));
    }
    let chunks = JsonListChunks::new(
        call.api.reads.clone(),
        call.request.resource.info().clone(),
        &head,
        listed.result.objects,
    );
    Reply::Stream(chunks.into_response())
}

/// `{kind: PodList, apiVersion, metadata: {resourceVersion, continue, remainingItemCount},
/// items}`, assembled from the objects' encoded JSON without decoding them again. `head` is
/// [`list_head`]'s, `size` the body's [`estimated_size`].
fn list_body(call: &Call<'_>, listed: &Listed, head: &[u8], size: usize) -> Bytes {
    let resource = &call.request.resource;
    let objects = &listed.result.objects;
    // The items are written straight from the cache (the served JSON is not kept per object).
    let mut body = BytesMut::with_capacity(size);
    // `{...head...}` without its closing brace, then `,"items":[...]}`.
    body.put_slice(&head[..head.len() - 1]);
    body.put_slice(b",\"items\":[");
    (call.api.reads).write_json_items(objects, resource, &mut body, usize::MAX, false);
    body.put_slice(b"]}");
    body.freeze()
}
