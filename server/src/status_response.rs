//! The one place an [`ApiError`] becomes an HTTP response: its code, a `metav1.Status` body
//! in JSON or protobuf, and `Retry-After` when the error has one.
//!
//! Who calls what: [`crate::dispatch::handle`] answers a handler's error in the form the client
//! asked for ([`negotiated`]); so do the filters that refuse a request as kube-apiserver's
//! `ErrorNegotiated` does (authentication 401, authorization and impersonation 403, audit's
//! 413). The timeout (504), the in-flight limit (429) and panic recovery (500) answer in
//! JSON whatever the `Accept` header ([`json`]), as kube-apiserver's do not negotiate either.
//! Watch streams end with an ERROR event instead (a frame, not a response: the codecs').

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use kubecache_core::status::ApiError;

use kubecache_apimachinery::protobuf;

/// An error's `Status` in the form the request's `Accept` header asks for: protobuf when
/// the client takes it before JSON ([`crate::edge::protobuf::wants_protobuf`]), else JSON.
pub fn negotiated(headers: &HeaderMap, err: &ApiError) -> Response {
    if crate::edge::protobuf::wants_protobuf(headers) {
        protobuf_status(err)
    } else {
        json(err)
    }
}

/// An error's `Status` as JSON.
pub fn json(err: &ApiError) -> Response {
    respond(err, err.status().to_body(), "application/json")
}

/// An error's `Status` as protobuf (as JSON in the unlikely case it does not encode).
pub fn protobuf_status(err: &ApiError) -> Response {
    match protobuf::encode_envelope(&err.status().to_value()) {
        Ok(bytes) => respond(err, bytes, protobuf::MEDIA_TYPE),
        Err(_) => json(err),
    }
}

fn respond(err: &ApiError, body: Vec<u8>, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(secs) = err.retry_after_seconds {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

#[cfg(test)]
mod tests {
    use kubecache_core::status::Reason;

    use super::*;

    fn accept(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(value));
        headers
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn json_unless_protobuf_comes_first() {
        let err = ApiError::path_not_found();
        for headers in [
            HeaderMap::new(),
            accept("application/json, application/vnd.kubernetes.protobuf"),
        ] {
            let response = negotiated(&headers, &err);
            assert_eq!(response.status(), 404);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(body(response).await, err.status().to_body());
        }
        let response = negotiated(&accept("application/vnd.kubernetes.protobuf, */*"), &err);
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            protobuf::MEDIA_TYPE
        );
        let bytes = body(response).await;
        assert!(bytes.starts_with(protobuf::MAGIC));
        let decoded = protobuf::decode_envelope(&bytes, None).unwrap();
        assert_eq!(decoded, err.status().to_value());
    }

    #[tokio::test]
    async fn retry_after_in_every_form() {
        let mut err = ApiError::new(429, Reason::TooManyRequests, "slow down");
        err.retry_after_seconds = Some(1);
        for response in [json(&err), protobuf_status(&err)] {
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
        let response = json(&ApiError::path_not_found());
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
