//! `metav1.Status` errors, built the way kube-apiserver builds them (same reason, code and
//! message shape), so clients that switch on `reason` or print `message` behave as against a
//! real cluster. Handlers return [`ApiError`]; the HTTP edge turns it into a Status body.

use serde::Serialize;
use serde_json::{Value, json};

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

    /// 422: `Kind "name" is invalid: cause; cause`.
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
            format!("{kind} \"{name}\" is invalid: {summary}"),
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

    /// 410 Expired: a resourceVersion or continue token older than what is retained.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, Reason::Expired, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, Reason::Gone, message)
    }

    pub fn too_large(limit_bytes: usize) -> Self {
        ApiError::new(
            413,
            Reason::RequestEntityTooLarge,
            format!("the request is too large: limit is {limit_bytes} bytes"),
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

    /// The `metav1.Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.name {
            details.insert("name".into(), json!(name));
        }
        // `group` is omitempty in metav1.StatusDetails: the core group leaves it out.
        if let Some(group) = self.group.as_ref().filter(|group| !group.is_empty()) {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &self.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !self.causes.is_empty() {
            details.insert("causes".into(), json!(self.causes));
        }
        if let Some(secs) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code,
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
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

/// The `Status` a successful DELETE of a collection or namespace returns.
pub fn success_status(details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
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
    }
}
