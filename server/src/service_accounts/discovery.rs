//! The service-account issuer's OIDC discovery documents, as kube-apiserver serves them:
//! `/.well-known/openid-configuration` and `/openid/v1/jwks` (the verifying keys), so a
//! relying party can check kubecache's tokens without calling it.

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde_json::json;

use super::Tokens;
use crate::call::encoded_response;

/// The JWKS path, also named by the discovery document.
pub const JWKS_PATH: &str = "/openid/v1/jwks";

/// `/.well-known/openid-configuration`. `jwks_uri` is `--service-account-jwks-uri`, else
/// this server's JWKS at the host the client asked for (kube uses its external address).
pub fn openid_configuration(tokens: &Tokens, uri: &Uri, headers: &HeaderMap) -> Response {
    let jwks_uri = match tokens.jwks_uri.as_deref() {
        Some(uri) => uri.to_string(),
        None => {
            // HTTP/2 names the host in the request's authority, HTTP/1.1 in `Host`.
            let host = uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
                .unwrap_or("localhost");
            format!("https://{host}{JWKS_PATH}")
        }
    };
    let mut algorithms: Vec<&str> = tokens
        .verifying_keys()
        .iter()
        .map(|k| k.algorithm.as_str())
        .collect();
    algorithms.sort_unstable();
    algorithms.dedup();
    let document = json!({
        "issuer": tokens.issuer(),
        "jwks_uri": jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
    });
    cacheable(document, "application/json")
}

/// `/openid/v1/jwks`: every verifying key as a JSON Web Key.
pub fn jwks(tokens: &Tokens) -> Response {
    let keys: Vec<_> = tokens.verifying_keys().iter().map(|k| k.jwk()).collect();
    cacheable(json!({ "keys": keys }), "application/jwk-set+json")
}

/// kube lets clients and proxies cache both documents for an hour.
fn cacheable(document: serde_json::Value, content_type: &'static str) -> Response {
    let mut response = encoded_response(
        StatusCode::OK,
        Bytes::from(document.to_string()),
        content_type,
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}
