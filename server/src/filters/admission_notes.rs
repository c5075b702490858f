//! Runs the handler inside an admission [`notes`] scope, then adds what admission gathered to
//! the response: each warning as a `Warning: 299` header (after the handler's own), each audit
//! annotation to the request's audit event (kube's admission annotations land there too).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use kubecache_admission::notes;

use crate::audit::AuditHandle;
use crate::call::add_warnings;

pub async fn layer(request: Request, next: Next) -> Response {
    let audit = request.extensions().get::<AuditHandle>().cloned();
    let (mut response, gathered) = notes::scope(next.run(request)).await;
    add_warnings(response.headers_mut(), &gathered.warnings);
    if let Some(audit) = audit {
        let mut event = audit.0.lock();
        for (key, value) in gathered.audit_annotations {
            event.annotations.entry(key).or_insert(value);
        }
    }
    response
}
