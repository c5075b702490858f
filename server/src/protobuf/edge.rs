//! Where protobuf meets HTTP: which requests get protobuf responses (Accept negotiation),
//! decoding protobuf request bodies, and rendering replies, errors and watch streams.

use crate::registry::Resource;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use kubecache_core::status::ApiError;
use serde_json::Value;

use super::{MEDIA_TYPE, STREAM_MEDIA_TYPE};
use crate::api::{Reply, add_warnings, json_response};
use crate::negotiation::{Accept, Offer};

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
    wants_protobuf(headers) && super::message_for(&resource.api_version(), &resource.kind).is_some()
}

/// Whether the request body is protobuf.
pub fn is_protobuf(media_type: &str) -> bool {
    media_type == MEDIA_TYPE
}

/// A protobuf request body as the JSON object of `resource` (kind and apiVersion from the
/// envelope, else from the URL). Malformed bytes are a 400; a type without a protobuf form
/// (custom resources) a 415, as kube-apiserver answers for CRDs.
pub fn decode_body(resource: &Resource, body: &[u8]) -> Result<Value, ApiError> {
    let api_version = resource.api_version();
    if super::message_for(&api_version, &resource.kind).is_none() {
        return Err(ApiError::unsupported_media_type(
            MEDIA_TYPE,
            &["application/json", "application/yaml"],
        ));
    }
    super::decode_envelope(body, Some((&api_version, &resource.kind))).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = &resource.kind,
            version = resource.version
        ))
    })
}

/// A DeleteOptions body in protobuf, as JSON.
pub fn decode_delete_options(body: &[u8]) -> Result<Value, ApiError> {
    super::decode_envelope(body, Some(("meta.k8s.io/v1", "DeleteOptions")))
        .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))
}

/// An autoscaling/v1 Scale body in protobuf (the scale subresource), as JSON.
pub fn decode_scale(body: &[u8]) -> Result<Value, ApiError> {
    super::decode_envelope(body, Some(("autoscaling/v1", "Scale"))).map_err(|e| {
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
        }) => match super::encode_envelope(&body) {
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
                .and_then(|value| super::encode_envelope(&value).ok());
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
        .starts_with(super::MAGIC)
        .then(|| Reply::Stream(protobuf_response(StatusCode::OK, encoded.to_vec())))
}

/// A list of objects the read path encoded in protobuf, as the reply.
pub fn list_reply(resource: &Resource, metadata: &Value, items: &[Bytes]) -> Option<Reply> {
    let list = super::list_envelope(
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

/// One protobuf watch frame for an object the codec encoded: already enveloped protobuf, or
/// JSON (bookmarks, error Statuses), transcoded here. What cannot be encoded becomes an
/// ERROR event, so the client learns why its watch ends.
pub fn watch_frame(event_type: &str, object: &[u8]) -> Bytes {
    let frame = if object.starts_with(super::MAGIC) {
        Ok(super::raw_watch_frame(event_type, object))
    } else {
        serde_json::from_slice::<Value>(object)
            .map_err(|e| super::Error::new(e.to_string()))
            .and_then(|object| super::watch_frame(event_type, &object))
    };
    Bytes::from(frame.unwrap_or_else(|e| {
        let status = ApiError::internal(format!("cannot encode watch event: {e}"));
        super::watch_frame("ERROR", &status.status().to_value()).expect("a Status always encodes")
    }))
}

/// A one-event protobuf watch stream: an ERROR with `err`'s Status.
pub fn error_frame(err: &ApiError) -> Bytes {
    Bytes::from(
        super::watch_frame("ERROR", &err.status().to_value()).expect("a Status always encodes"),
    )
}

/// A watch response's content type.
pub fn stream_content_type(protobuf: bool) -> HeaderValue {
    HeaderValue::from_static(if protobuf {
        STREAM_MEDIA_TYPE
    } else {
        "application/json"
    })
}
