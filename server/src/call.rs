//! What a handler is given and what it answers: one parsed resource request ([`Call`]), its
//! query ([`Query`]), the [`Reply`], and the JSON responses the dispatcher and the edge build
//! from replies.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use kubecache_core::status::ApiError;
use serde_json::Value;

use crate::api::Api;
use crate::request_info::ResourceRequest;

/// The query string, decoded.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(Query(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter (`command=sh&command=-c`), in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value for {name}: {other:?}, expected true or false"
            ))),
        }
    }

    /// `dryRun=All` (the only value kube-apiserver accepts).
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dryRun value: {other:?}: supported values: \"All\""
            ))),
        }
    }
}

/// One resource request with everything parsed out of it.
pub struct Call<'a> {
    pub api: &'a Api,
    pub request: ResourceRequest,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Who is asking: the `UserInfo` authentication put in the request's extensions, or the
    /// insecure-port user when there is none.
    pub user: kubecache_core::authz::UserInfo,
}

/// What a handler answers.
pub enum Reply {
    /// A JSON object with this status and `Warning` headers.
    Object {
        status: StatusCode,
        body: Value,
        warnings: Vec<String>,
    },
    /// A body already encoded (objects and lists served from the read path, Tables), with
    /// its media type.
    Encoded {
        status: StatusCode,
        body: Bytes,
        content_type: &'static str,
    },
    /// A streaming response (watch).
    Stream(Response),
}

impl Reply {
    pub fn json_bytes(body: Bytes) -> Reply {
        Reply::Encoded {
            status: StatusCode::OK,
            body,
            content_type: "application/json",
        }
    }

    pub fn ok(body: Value) -> Reply {
        Reply::Object {
            status: StatusCode::OK,
            body,
            warnings: Vec::new(),
        }
    }
}

pub fn text_response(status: StatusCode, text: &str) -> Response {
    let mut response = Response::new(Body::from(text.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub fn encoded_response(status: StatusCode, body: Bytes, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn json_response(status: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let bytes = serde_json::to_vec(body).expect("a JSON value always serializes");
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    add_warnings(headers, warnings);
    response
}

/// `Warning: 299 - "..."` headers, one per warning (a warning that is no header value is
/// left out).
pub fn add_warnings(headers: &mut HeaderMap, warnings: &[String]) {
    for warning in warnings {
        let text = format!(
            "299 - {}",
            serde_json::to_string(warning).unwrap_or_default()
        );
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.append("Warning", value);
        }
    }
}
