//! `Cache-Control: no-cache, private` on every response that does not set its own, as
//! kube-apiserver's `WithCacheControl`: every answer depends on who asked (authentication,
//! authorization) and on the moment, so no shared cache may keep it. The OpenAPI documents
//! addressed by their content hash set their own (`public, immutable`).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, header};

const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache, private");

pub async fn layer(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(NO_CACHE);
    response
}
