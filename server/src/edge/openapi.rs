//! Serving the OpenAPI documents: `GET /openapi/v3` (the index), `/openapi/v3/<document>`
//! and `/openapi/v2`, with kube-openapi's caching rules. Each index entry carries a content
//! hash of its document (`?hash=`): asked for with the current hash, a document is served as
//! immutable for a year; with an outdated hash the client is redirected (301) to the current
//! one; without a hash it is served with its `Etag` only. `If-None-Match` gets a 304. The
//! documents themselves are built by [`kubecache_apimachinery::openapi`].

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use kubecache_core::status::ApiError;

use crate::negotiation::{Accept, Offer};
use kubecache_apimachinery::openapi::{Document, Published, server_relative_url};
use kubecache_apimachinery::registry::Registry;

const JSON: &str = "application/json";
/// The protobuf media types of `/openapi/v2` (the first is what client-go sends).
const V2_PROTOBUF: &[&str] = &[
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// Serves `GET /openapi/<rest>`: `v3`, `v3/<document>` or `v2`, from the documents
/// `published` for `registry` (each built when first asked for).
pub fn serve(
    published: &Published,
    registry: &Registry,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::method_not_allowed());
    }
    let rest = match rest {
        "v2" => return serve_v2(published, registry, headers),
        "v3" => {
            let index = published.index(registry);
            return Ok(document_response(&index, JSON, headers, false));
        }
        other => other
            .strip_prefix("v3/")
            .ok_or_else(ApiError::path_not_found)?,
    };
    let document = published
        .document(registry, rest)
        .ok_or_else(ApiError::path_not_found)?;
    if negotiate(headers, &[JSON]).is_none() {
        return Err(ApiError::not_acceptable(&[JSON]));
    }
    let hash = query
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "hash").map(|(_, v)| v))
        .filter(|h| !h.is_empty());
    match hash {
        Some(hash) if hash != document.hash => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
            let location = server_relative_url(rest, &document.hash);
            response.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&location).expect("a path and a hex hash are a header"),
            );
            Ok(response)
        }
        Some(_) => Ok(document_response(&document, JSON, headers, true)),
        None => Ok(document_response(&document, JSON, headers, false)),
    }
}

/// `/openapi/v2`: protobuf when asked for (kubectl), else JSON.
fn serve_v2(
    published: &Published,
    registry: &Registry,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let offers = [JSON, V2_PROTOBUF[0], V2_PROTOBUF[1]];
    let chosen = negotiate(headers, &offers).ok_or_else(|| ApiError::not_acceptable(&offers))?;
    let documents = published.v2(registry);
    match chosen {
        JSON => Ok(document_response(&documents.json, JSON, headers, false)),
        // Answered with the `.v1.0` spelling: Go's mime parser (client-go checks the
        // response's type) rejects the `@` of the one client-go asks for; kube does the same.
        _ => Ok(document_response(
            &documents.protobuf,
            V2_PROTOBUF[1],
            headers,
            false,
        )),
    }
}

/// The first of `offers` the client takes ([`crate::negotiation`]), whatever the ranges'
/// parameters (JSON also answers `*/*` and `application/*`; no header takes the first offer).
fn negotiate(headers: &HeaderMap, offers: &[&'static str]) -> Option<&'static str> {
    let offers: Vec<Offer> = offers.iter().map(|o| Offer::any(o)).collect();
    Accept::from_headers(headers)
        .choose(&offers)
        .map(|o| o.media_type)
}

/// A document with its `Etag`, `304 Not Modified` when `If-None-Match` names it, and, when
/// asked for by its current hash, the headers that let every cache keep it.
fn document_response(
    document: &Document,
    content_type: &'static str,
    headers: &HeaderMap,
    immutable: bool,
) -> Response {
    let etag = format!("\"{}\"", document.hash);
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if not_modified {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        Response::new(Body::from(document.body.clone()))
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("a quoted hex hash is a header"),
    );
    out.insert(header::VARY, HeaderValue::from_static("Accept"));
    if immutable {
        out.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, immutable"),
        );
        let expires = chrono::Utc::now() + chrono::Duration::days(365);
        let expires = expires.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        if let Ok(value) = HeaderValue::from_str(&expires) {
            out.insert(header::EXPIRES, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let with = |accept: &str, offers: &[&'static str]| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            negotiate(&h, offers)
        };
        let json = &[JSON];
        assert_eq!(negotiate(&HeaderMap::new(), json), Some(JSON));
        assert_eq!(with("application/json", json), Some(JSON));
        assert_eq!(with("*/*", json), Some(JSON));
        assert_eq!(
            with(
                "application/com.github.proto-openapi.spec.v3@v1.0+protobuf, application/json;q=0.9",
                json
            ),
            Some(JSON)
        );
        assert_eq!(
            with(
                "application/com.github.proto-openapi.spec.v3@v1.0+protobuf",
                json
            ),
            None
        );
        assert_eq!(with("application/json;q=0", json), None);
        assert_eq!(with("text/html", json), None);
        let v2 = &[JSON, V2_PROTOBUF[0], V2_PROTOBUF[1]];
        assert_eq!(with(V2_PROTOBUF[0], v2), Some(V2_PROTOBUF[0]));
        assert_eq!(with("*/*", v2), Some(JSON));
    }
}
