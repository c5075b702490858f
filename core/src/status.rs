//! `metav1.Status` errors, built the way kube-apiserver builds them (same reason, code and
//! message shape), so clients that switch on `reason` or print `message` behave as against a
//! real cluster. Handlers return [`ApiError`]; the HTTP edge turns it into a Status body.

use serde::Serialize;

use crate::storage::{CorruptValue, StorageError};
use serde_json::Value;

/// The `reason` field of a failed `Status` (metav1.StatusReason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadyExists,
    Conflict,
    Gone,
    Expired,
    Invalid,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Timeout,
    ServerTimeout,
    InternalError,
    ServiceUnavailable,
    /// A read met values it could not decode (KEP-3926).
    StoreReadError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Expired => "Expired",
            Reason::Invalid => "Invalid",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::Timeout => "Timeout",
            Reason::ServerTimeout => "ServerTimeout",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::StoreReadError => "StoreReadError",
        }
    }
}

/// One entry of `details.causes`: which field was wrong and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: String,
    pub message: String,
    /// JSON path of the field, e.g. `metadata.name`; omitted when empty, as kube does.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl Cause {
    pub fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_string(),
            message: message.into(),
            field: field.to_string(),
        }
    }

    /// `FieldValueInvalid` with kube's `field: Invalid value: "v": detail` message.
    pub fn invalid(field: &str, value: &str, detail: &str) -> Self {
        Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {}: {detail}", quote(value)),
        )
    }

    pub fn required(field: &str) -> Self {
        Cause::new("FieldValueRequired", field, "Required value")
    }

    pub fn forbidden(field: &str, detail: &str) -> Self {
        Cause::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
    }
}

fn quote(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\""))
}

/// A failed API request: everything needed to render a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: Reason,
    pub message: String,
    /// `details.name`
    pub name: Option<String>,
    /// `details.group`
    pub group: Option<String>,
    /// `details.kind`: a resource (`pods`) for NotFound/AlreadyExists/Conflict, a Kind for Invalid.
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds`, also sent as a `Retry-After` header.
    pub retry_after_seconds: Option<u32>,
}

/// `pods` or `deployments.apps`: how kube-apiserver names a resource in messages.
pub fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    pub fn new(code: u16, reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    fn about(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.group = Some(group.to_string());
        self.kind = Some(kind.to_string());
        self.name = (!name.is_empty()).then(|| name.to_string());
        self
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified_resource(group, resource);
        ApiError::new(
            404,
            Reason::NotFound,
            format!("{qualified} \"{name}\" not found"),
        )
        .about(group, resource, name)
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified_resource(group, resource);
        ApiError::new(
            409,
            Reason::AlreadyExists,
            format!("{qualified} \"{name}\" already exists"),
        )
        .about(group, resource, name)
    }

    /// A write lost an optimistic-concurrency race (stale resourceVersion, failed precondition).
    pub fn conflict(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        let qualified = qualified_resource(group, resource);
        ApiError::new(
            409,
            Reason::Conflict,
            format!("Operation cannot be fulfilled on {qualified} \"{name}\": {detail}"),
        )
        .about(group, resource, name)
    }

    /// The stale-resourceVersion conflict, word for word as kube-apiserver says it.
    pub fn modified(group: &str, resource: &str, name: &str) -> Self {
        ApiError::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422: `Kind.group "name" is invalid: cause; cause` (kube names the group kind, the
    /// group left out for the core group).
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summary = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect::<Vec<_>>();
        let summary = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let mut err = ApiError::new(
            422,
            Reason::Invalid,
            format!(
                "{} \"{name}\" is invalid: {summary}",
                qualified_resource(group, kind)
            ),
        )
        .about(group, kind, name);
        err.causes = causes;
        err
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, Reason::BadRequest, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, Reason::Forbidden, message)
    }

    /// 404 for a path that names no resource at all.
    pub fn path_not_found() -> Self {
        ApiError::new(
            404,
            Reason::NotFound,
            "the server could not find the requested resource",
        )
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            Reason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        )
    }

    /// 405 about one resource (kube's NewMethodNotSupported, details naming it), with the
    /// caller's message.
    pub fn method_not_supported(group: &str, resource: &str, message: impl Into<String>) -> Self {
        ApiError::new(405, Reason::MethodNotAllowed, message).about(group, resource, "")
    }

    /// 410 Expired: a resourceVersion or continue token older than what is retained.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, Reason::Expired, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, Reason::Gone, message)
    }

    /// 413 for a request body over the limit, in kube-apiserver's words
    /// (`Request entity too large: limit is 3145728`).
    pub fn too_large(limit_bytes: usize) -> Self {
        ApiError::new(
            413,
            Reason::RequestEntityTooLarge,
            format!("Request entity too large: limit is {limit_bytes}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        ApiError::new(
            415,
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format ({content_type}) - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn not_acceptable(accepted: &[&str]) -> Self {
        ApiError::new(
            406,
            Reason::NotAcceptable,
            format!(
                "only the following media types are accepted: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::new(504, Reason::Timeout, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            500,
            Reason::InternalError,
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, Reason::ServiceUnavailable, message)
    }

    /// The `metav1.Status` of this error.
    pub fn status(&self) -> Status {
        let details = StatusDetails {
            name: self.name.clone().unwrap_or_default(),
            group: self.group.clone().unwrap_or_default(),
            kind: self.kind.clone().unwrap_or_default(),
            uid: String::new(),
            causes: self.causes.clone(),
            retry_after_seconds: self.retry_after_seconds.unwrap_or(0),
        };
        Status {
            status: STATUS_FAILURE.to_string(),
            message: self.message.clone(),
            reason: self.reason.as_str().to_string(),
            details: (!details.is_empty()).then_some(details),
            code: i32::from(self.code),
            ..Status::default()
        }
    }

    /// The `metav1.Status` object for this error, as JSON (in kube's field order).
    pub fn to_status(&self) -> Value {
        self.status().to_value()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.reason.as_str(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// `metav1.Status.status` of a failure.
pub const STATUS_FAILURE: &str = "Failure";
/// `metav1.Status.status` of a success.
pub const STATUS_SUCCESS: &str = "Success";

/// `metav1.Status`: the one place a Status is shaped, for every writer of one (error
/// responses of the handlers and of the filter chain, successful DELETEs, watch ERROR events,
/// and the protobuf edge, which transcodes [`Status::to_value`]).
///
/// The fields serialize in the order of the Go struct (`kind, apiVersion, metadata, status,
/// message, reason, details, code`), with Go's `omitempty` rules: empty strings, a zero
/// code and absent details are left out, `metadata` (a struct, which `omitempty` never
/// omits) is always `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: EmptyListMeta,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: i32,
}

/// A Status's `metadata`: an empty ListMeta, `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
struct EmptyListMeta {}

impl Default for Status {
    fn default() -> Self {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyListMeta {},
            status: String::new(),
            message: String::new(),
            reason: String::new(),
            details: None,
            code: 0,
        }
    }
}

/// `metav1.StatusDetails`, fields in the Go struct's order (`name, group, kind, uid, causes,
/// retryAfterSeconds`), each left out when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusDetails {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// A resource (`pods`) for most reasons, a Kind for Invalid.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "is_zero_u32")]
    pub retry_after_seconds: u32,
}

impl StatusDetails {
    fn is_empty(&self) -> bool {
        *self == StatusDetails::default()
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

impl Status {
    /// A `Success` Status (what a DELETE answers for most resources), without a code, as
    /// kube-apiserver's registry returns it.
    pub fn success(details: Option<StatusDetails>) -> Status {
        Status {
            status: STATUS_SUCCESS.to_string(),
            details,
            ..Status::default()
        }
    }

    /// The Status as a JSON value; its fields keep kube's order (serde_json preserves the
    /// insertion order in this workspace).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a Status always serializes")
    }

    /// Compact JSON, no trailing newline: the form embedded in a watch event's `object`.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Status always serializes")
    }

    /// The body of an HTTP response: compact JSON ending with a newline, as kube-apiserver's
    /// JSON encoder (Go's `json.Encoder`) writes it.
    pub fn to_body(&self) -> Vec<u8> {
        let mut body = self.to_json();
        body.push(b'\n');
        body
    }
}

/// Request bodies larger than this are refused with 413, as kube-apiserver does (3 MiB).
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Maps a storage failure that no handler interpreted more specifically.
pub fn storage_error(err: StorageError) -> ApiError {
    match err {
        StorageError::Compacted { .. } => {
            ApiError::expired(format!("too old resource version: {err}"))
        }
        StorageError::FutureRevision { requested, current } => {
            too_large_resource_version(requested, current)
        }
        StorageError::Unavailable(msg) => {
            ApiError::unavailable(format!("storage is unavailable: {msg}"))
        }
        StorageError::ValueTooLarge { .. } => ApiError::too_large(MAX_REQUEST_BODY_BYTES),
        other => ApiError::internal(other.to_string()),
    }
}

/// A LIST that met undecodable values: kube-apiserver's `StoreReadError` (500) naming each
/// key as a cause, so the list is never served with objects silently missing.
pub fn store_read_error(group: &str, resource: &str, corrupt: &[CorruptValue]) -> ApiError {
    let mut err = ApiError::new(
        500,
        Reason::StoreReadError,
        format!(
            "failed to read one or more {} from the storage",
            qualified_resource(group, resource)
        ),
    );
    err.group = Some(group.to_string());
    err.kind = Some(resource.to_string());
    err.name = Some("list".to_string());
    err.causes = corrupt
        .iter()
        .map(|value| Cause::new("UnexpectedServerResponse", &value.key, value.to_string()))
        .collect();
    err
}

/// kube-apiserver's `NewTooLargeResourceVersionError`: a 504 Timeout to retry after a second,
/// with the `ResourceVersionTooLarge` cause by which client-go recognises it
/// (`IsTooLargeResourceVersion`).
pub fn too_large_resource_version(requested: i64, current: i64) -> ApiError {
    let mut err = ApiError::timeout(format!(
        "Timeout: Too large resource version: {requested}, current: {current}"
    ));
    err.retry_after_seconds = Some(1);
    err.causes = vec![Cause::new(
        "ResourceVersionTooLarge",
        "",
        "Too large resource version",
    )];
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_qualified_resource() {
        let err = ApiError::not_found("apps", "deployments", "web");
        assert_eq!(err.message, "deployments.apps \"web\" not found");
        let status = err.to_status();
        assert_eq!(status["code"], 404);
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["details"]["kind"], "deployments");
        assert_eq!(status["details"]["group"], "apps");
    }

    #[test]
    fn invalid_lists_causes() {
        let err = ApiError::invalid(
            "",
            "ConfigMap",
            "Bad",
            vec![Cause::invalid("metadata.name", "Bad", "must be lowercase")],
        );
        assert_eq!(
            err.message,
            "ConfigMap \"Bad\" is invalid: metadata.name: Invalid value: \"Bad\": must be lowercase"
        );
        assert_eq!(
            err.to_status()["details"]["causes"][0]["field"],
            "metadata.name"
        );
        // Outside the core group the message names the group kind, as kube's NewInvalid.
        let grouped = ApiError::invalid("apps", "Deployment", "web", vec![]);
        assert!(
            grouped
                .message
                .starts_with("Deployment.apps \"web\" is invalid: "),
            "{}",
            grouped.message
        );
    }

    /// The exact bytes of kube-apiserver's 409 for a second create (as client tests compare
    /// them): `details` before `code`, and the body ends with a newline.
    #[test]
    fn a_status_body_is_kubes_bytes() {
        let body = ApiError::already_exists("", "configmaps", "dup")
            .status()
            .to_body();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            concat!(
                r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#,
                r#""message":"configmaps \"dup\" already exists","reason":"AlreadyExists","#,
                r#""details":{"name":"dup","kind":"configmaps"},"code":409}"#,
                "\n"
            )
        );
    }

    #[test]
    fn details_keep_go_field_order_and_leave_out_what_is_empty() {
        let mut err = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            vec![Cause::required("spec.selector")],
        );
        err.retry_after_seconds = Some(3);
        let json = String::from_utf8(err.status().to_json()).unwrap();
        assert!(
            json.contains(
                r#""details":{"name":"web","group":"apps","kind":"Deployment","causes":[{"reason":"FieldValueRequired","message":"Required value","field":"spec.selector"}],"retryAfterSeconds":3},"code":422}"#
            ),
            "{json}"
        );
        assert!(!json.ends_with('\n'));
        // No details at all: the key is left out, `code` follows `reason`.
        let json = String::from_utf8(ApiError::path_not_found().status().to_json()).unwrap();
        assert!(
            json.ends_with(r#""reason":"NotFound","code":404}"#),
            "{json}"
        );
    }

    #[test]
    fn success_has_no_code_and_details_in_go_order() {
        let status = Status::success(Some(StatusDetails {
            name: "cm".into(),
            kind: "configmaps".into(),
            uid: "u-1".into(),
            ..StatusDetails::default()
        }));
        assert_eq!(
            String::from_utf8(status.to_body()).unwrap(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Success\",\"details\":{\"name\":\"cm\",\"kind\":\"configmaps\",\"uid\":\"u-1\"}}\n"
        );
        let keys: Vec<String> = status
            .to_value()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            ["kind", "apiVersion", "metadata", "status", "details"]
        );
    }
}
