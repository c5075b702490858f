//! WATCH: newline-delimited `{"type", "object"}` frames over a chunked (HTTP/1.1) or streamed
//! (HTTP/2) response, produced by the read path.
//!
//! Start: `resourceVersion` unset → synthetic ADDED for the latest state, then changes; `0` →
//! the same from any state at hand; `N` → every change after N. With `sendInitialEvents=true`
//! (and `resourceVersionMatch=NotOlderThan`) the initial ADDED events end with a BOOKMARK
//! annotated `k8s.io/initial-events-end`. A start revision no longer retained answers 200
//! with one ERROR event carrying a 410 Expired Status, as kube-apiserver does.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http::{StatusCode, header};
use kubecache_cache::object::error_frame;
use kubecache_cache::{Filter, FrameStream, ListRequest, ReadAt, WatchRequest, WatchStart};
use kubecache_core::status::{ApiError, Cause};
use kubecache_core::storage::StorageError;

use super::read::filter;
use crate::call::{Call, Reply};
use kubecache_apimachinery::objects;
use kubecache_core::status::storage_error;

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

fn timeout(call: &Call<'_>) -> Result<Duration, ApiError> {
    match call.query.get("timeoutSeconds").filter(|v| !v.is_empty()) {
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {v:?}"))),
        // kube-apiserver: --min-request-timeout (1800 s) times a random factor in [1, 2).
        None => Ok(Duration::from_secs(
            1800 + (uuid::Uuid::new_v4().as_u128() % 1800) as u64,
        )),
    }
}

/// Where the watch starts, from resourceVersion, resourceVersionMatch and sendInitialEvents.
async fn start(call: &Call<'_>, bookmarks: bool) -> Result<(WatchStart, bool), ApiError> {
    let rv = call.query.get("resourceVersion").filter(|v| !v.is_empty());
    let rv = rv.map(objects::parse_resource_version).transpose()?;
    let state_at = |rv: Option<i64>| match rv {
        None => ReadAt::Latest,
        Some(0) => ReadAt::Any,
        Some(n) => ReadAt::NotOlderThan(n),
    };
    if call.query.get("sendInitialEvents").is_none() {
        return Ok(match rv {
            None | Some(0) => (WatchStart::Initial(state_at(rv)), false),
            Some(n) => (WatchStart::After(n), false),
        });
    }
    if call.query.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![Cause::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        ));
    }
    if call.query.flag("sendInitialEvents")? {
        if !bookmarks {
            return Err(ApiError::bad_request(
                "sendInitialEvents requires allowWatchBookmarks=true",
            ));
        }
        return Ok((WatchStart::Initial(state_at(rv)), true));
    }
    // sendInitialEvents=false: changes after the given revision, or from now on.
    let after = match rv {
        Some(n) if n > 0 => n,
        _ => current_revision(call).await?,
    };
    Ok((WatchStart::After(after), false))
}

/// The revision reads are at now: a one-item consistent list, so a write acknowledged before
/// the watch was asked for is not delivered as a change (a cache that lags would otherwise
/// start before it).
async fn current_revision(call: &Call<'_>) -> Result<i64, ApiError> {
    let resource = &call.request.resource;
    let listed = call.api.reads.list(ListRequest {
        resource: resource.info().clone(),
        prefix: call.api.storage_prefix(resource),
        start_key: None,
        limit: Some(1),
        at: ReadAt::Latest,
        filter: Arc::new(Filter::default()),
        remaining_hint: None,
    });
    Ok(listed.await.map_err(storage_error)?.revision)
}

pub async fn watch(call: &Call<'_>) -> Result<Reply, ApiError> {
    let resource = &call.request.resource;
    let bookmarks = call.query.flag("allowWatchBookmarks")?;
    let (start, initial_events_end) = start(call, bookmarks).await?;
    // Protobuf watch frames are encoded by the read path (once per event and view).
    let protobuf = crate::edge::protobuf::watch_wants_protobuf(resource, &call.headers);
    let request = WatchRequest {
        resource: resource.info().clone(),
        prefix: call.api.storage_prefix(resource),
        filter: Arc::new(filter(call)?),
        start,
        initial_events_end,
        // kubectl get -w asks for Tables; each event's object is then a one-row Table.
        table: crate::edge::table::requested(&call.headers, &call.query)?.is_some(),
        protobuf,
        bookmarks,
        bookmark_interval: BOOKMARK_INTERVAL,
        timeout: timeout(call)?,
    };
    let protobuf = protobuf && !request.table;
    let frames: FrameStream = match call.api.reads.watch(request).await {
        Ok(frames) => frames,
        Err(StorageError::Compacted { requested, .. }) => {
            let error = ApiError::expired(format!("too old resource version: {requested}"));
            let frame = if protobuf {
                kubecache_apimachinery::protobuf::error_watch_frame(&error)
            } else {
                error_frame(&error)
            };
            futures::stream::once(async move { frame }).boxed()
        }
        Err(e) => return Err(storage_error(e)),
    };
    let body = frames.map(Ok::<_, std::convert::Infallible>);
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        crate::edge::protobuf::stream_content_type(protobuf),
    );
    Ok(Reply::Stream(response))
}
