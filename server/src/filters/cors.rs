//! CORS for `--cors-allowed-origins` (kube-apiserver's `WithCORS`): a request whose
//! `Origin` matches one of the regular expressions gets the CORS headers, and a preflight
//! (`OPTIONS`) from it is answered 204 here. A request from any other origin goes on
//! without CORS headers — the browser then refuses it. Without the flag nothing is done.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use regex::Regex;

use super::Chain;

const ALLOW_METHODS: &str = "POST, GET, OPTIONS, PUT, DELETE, PATCH";
const ALLOW_HEADERS: &str = "Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization, X-Requested-With, If-Modified-Since";
const EXPOSE_HEADERS: &str = "Date";

/// The allowed origins.
#[derive(Debug)]
pub struct Cors {
    origins: Vec<Regex>,
}

impl Cors {
    /// `None` when no origin is allowed (the layer passes everything through).
    pub fn new(patterns: &[String]) -> Result<Option<Cors>, String> {
        let origins = patterns
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| Regex::new(p).map_err(|e| format!("--cors-allowed-origins {p:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((!origins.is_empty()).then_some(Cors { origins }))
    }

    fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|re| re.is_match(origin))
    }
}

pub async fn layer(State(chain): State<Arc<Chain>>, request: Request, next: Next) -> Response {
    let Some(cors) = &chain.cors else {
        return next.run(request).await;
    };
    let origin = request.headers().get(http::header::ORIGIN).cloned();
    let Some(origin) = origin.filter(|o| o.to_str().is_ok_and(|o| cors.allows(o))) else {
        return next.run(request).await;
    };
    if request.method() == Method::OPTIONS {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        add_headers(response.headers_mut(), origin);
        return response;
    }
    let mut response = next.run(request).await;
    add_headers(response.headers_mut(), origin);
    response
}

fn add_headers(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert("access-control-allow-origin", origin);
    headers.insert(
        "access-control-allow-methods",
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        "access-control-expose-headers",
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    headers.insert(
        "access-control-allow-credentials",
        HeaderValue::from_static("true"),
    );
}
