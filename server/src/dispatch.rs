//! The API front end: one entry point that resolves a request's parse into a [`Target`],
//! runs its handler and turns the outcome — an object, a list, a watch stream or an
//! [`ApiError`] — into the HTTP response (errors through [`crate::status_response`]).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use kubecache_core::status::{ApiError, MAX_REQUEST_BODY_BYTES};

use crate::api::Api;
use crate::call::{
    Call, Query, Reply, add_warnings, encoded_response, json_response, text_response,
};
use crate::handlers;
use crate::metrics::{self, RequestLabels};
use crate::request_info::{self, RequestInfo, Target};

/// The single entry point for every request; also where every request is counted and timed
/// (a watch when its stream starts).
pub async fn handle(api: Arc<Api>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let mut labels = RequestLabels::non_resource(request.method());
    let protobuf = crate::edge::protobuf::wants_protobuf(request.headers());
    let mut warning = None;
    let mut response = match dispatch(&api, request, &mut labels, &mut warning).await {
        Ok(Reply::Object {
            status,
            body,
            warnings,
        }) => json_response(status, &body, &warnings),
        Ok(Reply::Encoded {
            status,
            body,
            content_type,
        }) => encoded_response(status, body, content_type),
        Ok(Reply::Stream(response)) => response,
        Err(err) if protobuf => crate::status_response::protobuf_status(&err),
        Err(err) => crate::status_response::json(&err),
    };
    // The resource's own warning (a deprecated custom resource version's) on every answer,
    // errors included, as kube's handler records it before serving.
    if let Some(warning) = warning {
        add_warnings(response.headers_mut(), &[warning]);
    }
    api.metrics
        .record(labels, response.status().as_u16(), started.elapsed());
    response
}

/// Serves a request; sets `labels` once it knows which resource the request is for, and
/// `warning` to the resource's warning ([`Strategy::warning`]).
///
/// [`Strategy::warning`]: kubecache_apimachinery::strategy::Strategy::warning
async fn dispatch(
    api: &Api,
    request: Request<Body>,
    labels: &mut RequestLabels,
    warning: &mut Option<String>,
) -> Result<Reply, ApiError> {
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query())?;
    // Parsed once by the filter chain; parsed here for requests that skipped it.
    let parsed;
    let info = match parts
        .extensions
        .get::<crate::filters::info::RequestContext>()
    {
        Some(context) => &context.info,
        None => {
            parsed = RequestInfo::parse(&parts.method, parts.uri.path(), parts.uri.query());
            &parsed
        }
    };
    let target = request_info::resolve(
        &api.registry.snapshot(),
        &parts.method,
        info,
        query.flag("watch")?,
    )?;
    let request = match target {
        Target::Version => return Ok(Reply::ok(handlers::discovery::version())),
        Target::Healthz | Target::Livez => {
            return Ok(Reply::Stream(text_response(StatusCode::OK, "ok")));
        }
        Target::Readyz => {
            let response = crate::readyz::serve(api, parts.uri.path(), &query).await;
            return Ok(Reply::Stream(response));
        }
        Target::Metrics => {
            let mut response = Response::new(Body::from(metrics::render(api).await));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            return Ok(Reply::Stream(response));
        }
        Target::CoreVersions => {
            let response =
                handlers::discovery::root(&api.registry.snapshot(), true, &parts.headers);
            return Ok(Reply::Stream(response));
        }
        Target::Groups => {
            let response =
                handlers::discovery::root(&api.registry.snapshot(), false, &parts.headers);
            return Ok(Reply::Stream(response));
        }
        Target::Group(group) => {
            return Ok(Reply::ok(handlers::discovery::group(
                &api.registry.snapshot(),
                &group,
            )));
        }
        Target::GroupVersion { group, version } => {
            return Ok(Reply::ok(handlers::discovery::resources(
                &api.registry.snapshot(),
                &group,
                &version,
            )));
        }
        Target::OpenApi(path) => {
            let response = crate::edge::openapi::serve(
                &api.openapi,
                &api.registry,
                &parts.method,
                &path,
                parts.uri.query(),
                &parts.headers,
            )?;
            return Ok(Reply::Stream(response));
        }
        Target::OpenIdConfiguration => {
            return Ok(Reply::Stream(
                crate::service_accounts::discovery::openid_configuration(
                    api.tokens(),
                    &parts.uri,
                    &parts.headers,
                ),
            ));
        }
        Target::Jwks => {
            return Ok(Reply::Stream(crate::service_accounts::discovery::jwks(
                api.tokens(),
            )));
        }
        Target::Resource(request) => request,
    };
    *labels = RequestLabels::resource(&request);
    *warning = request.resource.strategy().warning();
    if request.subresource.is_some_and(|s| s.is_connect()) {
        // Passed on with its body unread: streamed, never buffered, maybe upgraded.
        let response = handlers::connect::serve(api, &request, &query, parts, body).await?;
        return Ok(Reply::Stream(response));
    }
    let body = read_body(&parts.headers, body).await?;
    let user = parts
        .extensions
        .get::<kubecache_core::authz::UserInfo>()
        .cloned()
        .unwrap_or_else(kubecache_core::authz::UserInfo::insecure);
    let call = Call {
        api,
        request,
        query,
        headers: parts.headers,
        body,
        user,
    };
    handlers::serve(call).await
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_REQUEST_BODY_BYTES) {
        return Err(ApiError::too_large(MAX_REQUEST_BODY_BYTES));
    }
    axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large(MAX_REQUEST_BODY_BYTES))
}
