//! `--request-timeout` for requests that are not long-running: past it the request is
//! abandoned and answered 504 (kube-apiserver's `WithTimeoutForNonLongRunningRequests`).
//! Watches, proxies, exec, attach, log and port-forward are exempt.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kubecache_core::status::ApiError;

use super::Chain;
use super::info::context_of;
use crate::api::error_response;

pub async fn layer(State(chain): State<Arc<Chain>>, request: Request, next: Next) -> Response {
    if chain.request_timeout.is_zero() || context_of(request.extensions()).info.is_long_running() {
        return next.run(request).await;
    }
    match tokio::time::timeout(chain.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error_response(&ApiError::timeout(
            "request did not complete within requested timeout - context deadline exceeded",
        )),
    }
}
