//! Panic recovery, the outermost layer: a handler that panics answers 500 with a `Status`
//! and the server keeps serving (kube-apiserver's `WithPanicRecovery`). It also gives the
//! request its audit ID (kube-apiserver's `WithAuditInit`, just inside recovery there) —
//! the client's `Audit-ID` header when it sent one, else a new UUID — so that every
//! response, a panic's 500 included, carries `Audit-Id`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::FutureExt;
use http::HeaderValue;
use kubecache_core::status::{ApiError, Reason};

use super::Chain;
use crate::status_response;

/// The request's audit ID (a request extension).
#[derive(Debug, Clone)]
pub struct AuditId(pub String);

pub async fn layer(State(_chain): State<Arc<Chain>>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let audit_id = request
        .headers()
        .get("audit-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.extensions_mut().insert(AuditId(audit_id.clone()));
    let mut response = recover(method, uri, next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&audit_id) {
        response.headers_mut().insert("audit-id", value);
    }
    response
}

async fn recover(
    method: http::Method,
    uri: http::Uri,
    serve: impl std::future::Future<Output = Response>,
) -> Response {
    match AssertUnwindSafe(serve).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(%method, %uri, "panic while serving a request: {message}");
            status_response::json(&ApiError::new(
                500,
                Reason::InternalError,
                "This request caused apiserver to panic. Look in the logs for details.",
            ))
        }
    }
}
