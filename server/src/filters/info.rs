//! The request-info layer: parses each request once into kube-apiserver's registry-
//! independent [`RequestInfo`] ([`crate::request_info`]) for authorization, audit, the
//! limits and the handler (which resolves it against the registry), and notes when the
//! request arrived.

use chrono::{DateTime, Utc};

pub use crate::request_info::RequestInfo;

/// Set by the request-info layer on every request: the parse above, when the request
/// arrived and the audit ID it is known by (the `Audit-Id` response header).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub info: RequestInfo,
    pub received: DateTime<Utc>,
    pub audit_id: String,
}

/// The request-info layer: parses the request once for every layer after it and the
/// handler, and notes when it arrived.
pub async fn layer(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let info = RequestInfo::parse(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    let audit_id = request
        .extensions()
        .get::<super::recovery::AuditId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    request.extensions_mut().insert(RequestContext {
        info,
        received: Utc::now(),
        audit_id,
    });
    next.run(request).await
}

/// The request context the request-info layer set (a default one outside the chain).
pub fn context_of(extensions: &http::Extensions) -> RequestContext {
    extensions
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_else(|| RequestContext {
            info: RequestInfo::default(),
            received: Utc::now(),
            audit_id: String::new(),
        })
}
