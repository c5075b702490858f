//! The deadline of requests that are not long-running (kube-apiserver's
//! `WithRequestDeadline` and `WithTimeoutForNonLongRunningRequests`): `--request-timeout`, or
//! the request's own `?timeout=` when it is shorter; past it the request is abandoned and
//! answered 504. Watches, proxies, exec, attach, log and port-forward are exempt.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kubecache_core::status::ApiError;

use super::Chain;
use super::info::context_of;
use crate::status_response;

pub async fn layer(State(chain): State<Arc<Chain>>, request: Request, next: Next) -> Response {
    if context_of(request.extensions()).info.is_long_running() {
        return next.run(request).await;
    }
    let deadline = match requested_timeout(request.uri().query()) {
        Ok(Some(requested)) if chain.request_timeout.is_zero() => requested,
        Ok(Some(requested)) => requested.min(chain.request_timeout),
        Ok(None) => chain.request_timeout,
        Err(err) => return status_response::json(&err),
    };
    if deadline.is_zero() {
        return next.run(request).await;
    }
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => status_response::json(&ApiError::timeout(
            "request did not complete within requested timeout - context deadline exceeded",
        )),
    }
}

/// The `timeout` query parameter (a Go duration); a zero or negative one is ignored, as
/// in kube-apiserver.
fn requested_timeout(query: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
    let Some((_, value)) = pairs.iter().find(|(k, _)| k == "timeout") else {
        return Ok(None);
    };
    if value.is_empty() || value.starts_with('-') {
        return Ok(None);
    }
    match crate::cli::parse_duration(value) {
        Ok(duration) if duration.is_zero() => Ok(None),
        Ok(duration) => Ok(Some(duration)),
        Err(e) => Err(ApiError::bad_request(format!(
            "invalid timeout specified in the request URL - {e}"
        ))),
    }
}
