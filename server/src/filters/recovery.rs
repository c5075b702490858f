//! Panic recovery, the outermost layer: a handler that panics answers 500 with a `Status`
//! and the server keeps serving (kube-apiserver's `WithPanicRecovery`).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::FutureExt;
use kubecache_core::status::{ApiError, Reason};

use super::Chain;
use crate::api::error_response;

pub async fn layer(State(_chain): State<Arc<Chain>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(%method, %uri, "panic while serving a request: {message}");
            error_response(&ApiError::new(
                500,
                Reason::InternalError,
                "This request caused apiserver to panic. Look in the logs for details.",
            ))
        }
    }
}
