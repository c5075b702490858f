//! Where protobuf meets HTTP: which requests get protobuf responses (Accept negotiation),
//! decoding protobuf request bodies, and rendering replies, errors and watch streams.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use kubecache_apimachinery::registry::Resource;
use kubecache_core::status::ApiError;
use serde_json::Value;

use crate::call::{Reply, add_warnings, json_response};
use crate::negotiation::{Accept, Offer};
use kubecache_apimachinery::protobuf::{self as transcoder, MEDIA_TYPE, STREAM_MEDIA_TYPE};

/// Whether the client takes protobuf before JSON ([`crate::negotiation`]): JSON is offered
/// first, for `*/*`, `application/*` and `application/json` with any parameters (Tables
/// are JSON); protobuf for `application/vnd.kubernetes.protobuf` without a conversion
/// (`as=Table` is served in JSON only). Without `Accept`: JSON.
pub fn wants_protobuf(headers: &HeaderMap) -> bool {
    const OFFERS: [Offer; 2] = [Offer::any("application/json"), Offer::plain(MEDIA_TYPE)];
    Accept::from_headers(headers).choose(&OFFERS) == Some(&OFFERS[1])
}

/// Whether a watch of `resource` streams protobuf: the client takes it before JSON and the
/// kind has a protobuf form. A kind without one (a resource added at run time) streams JSON,
/// which a client asking for protobuf also takes, as GET and LIST answer it (never a stream
/// of ERROR frames for events that cannot be encoded).
pub fn watch_wants_protobuf(resource: &Resource, headers: &HeaderMap) -> bool {
    wants_protobuf(headers)
        && transcoder::message_for(&resource.api_version(), &resource.kind).is_some()
}

/// Whether the request body is protobuf.
pub fn is_protobuf(media_type: &str) -> bool {
    media_type == MEDIA_TYPE
}

/// A protobuf request body as the JSON object of `resource` (kind and apiVersion from the
/// envelope, else from the URL). Malformed bytes are a 400; a type without a protobuf form
/// (custom resources) a 415, as kube-apiserver answers for CRDs.
pub fn decode_body(resource: &Resource, body: &[u8]) -> Result<Value, ApiError> {
    decode_message(&resource.api_version(), &resource.kind, body)
}

/// A protobuf request body of `kind` at `api_version` (a subresource's own kind, such as a
/// TokenRequest), as JSON; errors as [`decode_body`].
pub fn decode_message(api_version: &str, kind: &str, body: &[u8]) -> Result<Value, ApiError> {
    if transcoder::message_for(api_version, kind).is_none() {
        return Err(ApiError::unsupported_media_type(
            MEDIA_TYPE,
            &["application/json", "application/yaml"],
        ));
    }
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    transcoder::decode_envelope(body, Some((api_version, kind))).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}"
        ))
    })
}

/// A DeleteOptions body in protobuf, as JSON.
pub fn decode_delete_options(body: &[u8]) -> Result<Value, ApiError> {
    transcoder::decode_envelope(body, Some(("meta.k8s.io/v1", "DeleteOptions")))
        .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))
}

/// A protobuf body of a kind that is not the resource's own (a subresource's: an Eviction),
/// as JSON.
pub fn decode_as(body: &[u8], api_version: &str, kind: &str) -> Result<Value, ApiError> {
    transcoder::decode_envelope(body, Some((api_version, kind))).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{api_version}\" cannot be handled as a {kind}: {e}"
        ))
    })
}

/// An autoscaling/v1 Scale body in protobuf (the scale subresource), as JSON.
pub fn decode_scale(body: &[u8]) -> Result<Value, ApiError> {
    transcoder::decode_envelope(body, Some(("autoscaling/v1", "Scale"))).map_err(|e| {
        ApiError::bad_request(format!(
            "Scale in version \"v1\" cannot be handled as a Scale: {e}"
        ))
    })
}

/// Renders a handler's outcome in protobuf where it has a protobuf form; what has none
/// (Tables, non-built-in kinds) stays JSON, as a client that asks for protobuf also accepts.
pub fn render(outcome: Result<Reply, ApiError>) -> Result<Reply, ApiError> {
    match outcome {
        Ok(Reply::Object {
            status,
            body,
            warnings,
        }) => match transcoder::encode_envelope(&body) {
            Ok(bytes) => {
                let mut response = protobuf_response(status, bytes);
                add_warnings(response.headers_mut(), &warnings);
                Ok(Reply::Stream(response))
            }
            Err(_) => Ok(Reply::Stream(json_response(status, &body, &warnings))),
        },
        Ok(Reply::Encoded {
            status,
            body,
            content_type: "application/json",
        }) => {
            let encoded = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|value| transcoder::encode_envelope(&value).ok());
            Ok(match encoded {
                Some(bytes) => Reply::Stream(protobuf_response(status, bytes)),
                None => Reply::Encoded {
                    status,
                    body,
                    content_type: "application/json",
                },
            })
        }
        Err(err) => Ok(Reply::Stream(crate::status_response::protobuf_status(&err))),
        other => other,
    }
}

/// An object the read path encoded in protobuf, as the reply (`None` when it fell back to
/// JSON, a type without a protobuf form).
pub fn object_reply(encoded: Bytes) -> Option<Reply> {
    encoded
        .starts_with(transcoder::MAGIC)
        .then(|| Reply::Stream(protobuf_response(StatusCode::OK, encoded.to_vec())))
}

/// A list of objects the read path encoded in protobuf, as the reply.
pub fn list_reply(resource: &Resource, metadata: &Value, items: &[Bytes]) -> Option<Reply> {
    let list = transcoder::list_envelope(
        &resource.api_version(),
        &resource.list_kind(),
        metadata,
        items,
    );
    list.ok()
        .map(|bytes| Reply::Stream(protobuf_response(StatusCode::OK, bytes)))
}

fn protobuf_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    response
}

/// A watch response's content type.
pub fn stream_content_type(protobuf: bool) -> HeaderValue {
    HeaderValue::from_static(if protobuf {
        STREAM_MEDIA_TYPE
    } else {
        "application/json"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let accept = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
            wants_protobuf(&headers)
        };
        assert!(accept(
            "application/vnd.kubernetes.protobuf,application/json"
        ));
        assert!(accept("application/vnd.kubernetes.protobuf;stream=watch"));
        assert!(!accept(
            "application/json, application/vnd.kubernetes.protobuf"
        ));
        assert!(accept(
            "application/json;q=0.5, application/vnd.kubernetes.protobuf"
        ));
        assert!(!accept("*/*"));
        assert!(!accept(
            "application/vnd.kubernetes.protobuf;q=0, application/json"
        ));
        assert!(!accept(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!accept(
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(accept("text/html, application/vnd.kubernetes.protobuf"));
        assert!(!wants_protobuf(&HeaderMap::new()));
    }
}
