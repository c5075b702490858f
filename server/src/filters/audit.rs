//! The audit layer (kube-apiserver's `WithAudit`): decides the request's level from the
//! policy, as the authenticated user (before impersonation), and writes its events:
//! `RequestReceived` on arrival, `ResponseStarted` when a long-running response (a watch)
//! starts, `ResponseComplete` when the response is done (for a watch, when its stream
//! ends), `Panic` when the handler panicked (the panic then goes on to recovery).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::{FutureExt, StreamExt};
use kubecache_core::authz::UserInfo;
use kubecache_core::status::ApiError;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::info::{RequestContext, context_of};
use super::{Chain, user_of};
use crate::audit::{AuditHandle, Event, Level, Stage, object_ref};
use crate::authn::Connection;
use crate::status_response;
use kubecache_core::status::MAX_REQUEST_BODY_BYTES;

pub async fn layer(State(chain): State<Arc<Chain>>, request: Request, next: Next) -> Response {
    let Some(auditor) = &chain.auditor else {
        return next.run(request).await;
    };
    let context = context_of(request.extensions());
    let user = user_of(request.extensions());
    let decision = auditor.decide(&user, &context.info);
    if decision.level == Level::None {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let level = decision.level;
    let mut event = new_event(&context, user, &parts, decision);
    let body = if level >= Level::Request {
        let Ok(bytes) = axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES).await else {
            return status_response::negotiated(
                &parts.headers,
                &ApiError::too_large(MAX_REQUEST_BODY_BYTES),
            );
        };
        event.request_object = serde_json::from_slice::<Value>(&bytes).ok();
        Body::from(bytes)
    } else {
        body
    };
    let handle = AuditHandle(Arc::new(Mutex::new(event)));
    parts.extensions.insert(handle.clone());
    auditor.emit(&handle.0.lock(), Stage::RequestReceived);

    let request = Request::from_parts(parts, body);
    let response = match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            {
                let mut event = handle.0.lock();
                event.response_status = Some(json!({
                    "metadata": {},
                    "status": "Failure",
                    "message": "This request caused apiserver to panic. Look in the logs for details.",
                    "reason": "InternalError",
                    "code": 500,
                }));
                auditor.emit(&event, Stage::Panic);
            }
            std::panic::resume_unwind(panic);
        }
    };
    let code = response.status().as_u16();
    handle.0.lock().response_status = Some(json!({"metadata": {}, "code": code}));

    if context.info.is_long_running() && response.status().is_success() {
        auditor.emit(&handle.0.lock(), Stage::ResponseStarted);
        let (parts, body) = response.into_parts();
        let complete = CompleteOnDrop {
            chain: chain.clone(),
            handle,
        };
        let stream = body.into_data_stream().map(move |chunk| {
            let _ = &complete;
            chunk
        });
        return Response::from_parts(parts, Body::from_stream(stream));
    }

    // A failure's Status (small) is recorded at every level; bodies only at RequestResponse.
    let record_body = level >= Level::RequestResponse;
    let response = if code >= 400 || record_body {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let value = serde_json::from_slice::<Value>(&bytes).ok();
        let mut event = handle.0.lock();
        if let Some(status) = value.as_ref().filter(|v| v["kind"] == "Status") {
            // A metav1.Status in the Go struct's field order, `code` last, as kube logs it.
            let mut recorded = serde_json::Map::new();
            recorded.insert("metadata".into(), json!({}));
            for key in ["status", "message", "reason", "details"] {
                if let Some(field) = status.get(key) {
                    recorded.insert(key.into(), field.clone());
                }
            }
            recorded.insert("code".into(), json!(code));
            event.response_status = Some(Value::Object(recorded));
        }
        if record_body {
            event.response_object = value;
        }
        Response::from_parts(parts, Body::from(bytes))
    } else {
        response
    };
    auditor.emit(&handle.0.lock(), Stage::ResponseComplete);
    response
}

/// The event of a request, before its response.
fn new_event(
    context: &RequestContext,
    user: UserInfo,
    parts: &http::request::Parts,
    decision: crate::audit::policy::Decision,
) -> Event {
    Event {
        level: decision.level,
        omit_stages: decision.omit_stages,
        audit_id: context.audit_id.clone(),
        request_uri: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        verb: context.info.verb.clone(),
        user,
        impersonated_user: None,
        source_ips: source_ips(parts),
        user_agent: parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        object_ref: object_ref(&context.info),
        response_status: None,
        request_object: None,
        response_object: None,
        received: context.received,
        annotations: Default::default(),
    }
}

/// kube-apiserver's `WithFailedAuthenticationAudit`: a request refused 401 by the
/// authentication layer (so before the audit layer) still gets a `ResponseStarted` event,
/// with no user, saying which credentials were tried.
pub fn failed_authentication(chain: &Chain, request: &Request) {
    let Some(auditor) = &chain.auditor else {
        return;
    };
    let context = context_of(request.extensions());
    let user = UserInfo::default();
    let decision = auditor.decide(&user, &context.info);
    if decision.level == Level::None {
        return;
    }
    let (parts, ()) = clone_parts(request);
    let mut event = new_event(&context, user, &parts, decision);
    let mut attempted = Vec::new();
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match authorization.trim().split_once(' ') {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("basic") => attempted.push("basic"),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => attempted.push("bearer"),
        _ => {}
    }
    if parts
        .extensions
        .get::<Connection>()
        .is_some_and(|c| c.client_certs.is_some())
    {
        attempted.push("x509");
    }
    let message = if attempted.is_empty() {
        "Authentication failed, no credentials provided".to_string()
    } else {
        format!("Authentication failed, attempted: {}", attempted.join(", "))
    };
    event.response_status = Some(json!({"metadata": {}, "message": message, "code": 401}));
    auditor.emit(&event, Stage::ResponseStarted);
}

/// The head of a request (method, URI, headers and the extensions the chain reads).
fn clone_parts(request: &Request) -> (http::request::Parts, ()) {
    let mut builder = http::Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone());
    if let Some(headers) = builder.headers_mut() {
        *headers = request.headers().clone();
    }
    let mut head = builder.body(()).expect("a copied request head is valid");
    if let Some(connection) = request.extensions().get::<Connection>() {
        head.extensions_mut().insert(connection.clone());
    }
    head.into_parts()
}

/// Writes `ResponseComplete` when a streamed response ends (or its client goes away).
struct CompleteOnDrop {
    chain: Arc<Chain>,
    handle: AuditHandle,
}

impl Drop for CompleteOnDrop {
    fn drop(&mut self) {
        if let Some(auditor) = &self.chain.auditor {
            auditor.emit(&self.handle.0.lock(), Stage::ResponseComplete);
        }
    }
}

/// `X-Forwarded-For` entries, then `X-Real-Ip`, then the peer address (kube's order).
fn source_ips(parts: &http::request::Parts) -> Vec<String> {
    let mut ips: Vec<String> = Vec::new();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    if let Some(forwarded) = header("x-forwarded-for") {
        ips.extend(
            forwarded
                .split(',')
                .map(str::trim)
                .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
                .map(String::from),
        );
    }
    if let Some(real) = header("x-real-ip").filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        && !ips.contains(&real)
    {
        ips.push(real);
    }
    if let Some(connection) = parts.extensions.get::<Connection>() {
        let remote = connection.remote.ip().to_string();
        if !ips.contains(&remote) {
            ips.push(remote);
        }
    }
    ips
}
