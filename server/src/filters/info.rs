//! Request info for the filter chain: kube-apiserver's `RequestInfoFactory`, parsed once
//! from the method, path and query without the registry, so authorization, audit and the
//! limits can describe any request — including one for a resource that does not exist,
//! which must be authorized (403) before it is found missing (404).

use chrono::{DateTime, Utc};
use http::Method;

/// Verbs that come first in the path (`/api/v1/watch/...`, `/api/v1/proxy/...`).
const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];
/// Subresources of a namespace itself (`/api/v1/namespaces/x/status`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];
/// Verbs and subresources whose requests are long-running: exempt from the request
/// timeout and the in-flight limits, ended (not waited for) on shutdown.
const LONG_RUNNING_VERBS: [&str; 2] = ["watch", "proxy"];
const LONG_RUNNING_SUBRESOURCES: [&str; 5] = ["attach", "exec", "proxy", "log", "portforward"];

/// What a request asks for, as authorization and audit see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// False for discovery, health, version, metrics and any other non-resource path.
    pub is_resource_request: bool,
    pub path: String,
    /// Kubernetes verb for resource requests; the lower-cased HTTP method otherwise.
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl RequestInfo {
    /// Parses a request the way kube-apiserver does.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> RequestInfo {
        let mut info = RequestInfo {
            path: path.to_string(),
            verb: method.as_str().to_ascii_lowercase(),
            ..RequestInfo::default()
        };
        let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if parts.len() < 3 || !(parts[0] == "api" || parts[0] == "apis") {
            return info;
        }
        info.api_prefix = parts[0].to_string();
        parts.remove(0);
        if info.api_prefix == "apis" {
            if parts.len() < 3 {
                return info;
            }
            info.api_group = parts.remove(0).to_string();
        }
        info.is_resource_request = true;
        info.api_version = parts.remove(0).to_string();
        if SPECIAL_VERBS.contains(&parts[0]) {
            if parts.len() < 2 {
                // `/api/v1/watch`: nothing to watch; answered 404 further in.
                info.is_resource_request = false;
                return info;
            }
            info.verb = parts.remove(0).to_string();
        } else {
            info.verb = match *method {
                Method::POST => "create",
                Method::GET | Method::HEAD => "get",
                Method::PUT => "update",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => "",
            }
            .to_string();
        }
        if parts[0] == "namespaces" && parts.len() > 1 {
            info.namespace = parts[1].to_string();
            if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
                parts.drain(..2);
            }
        }
        if parts.len() >= 3 && info.verb != "proxy" {
            info.subresource = parts[2].to_string();
        }
        if parts.len() >= 2 {
            info.name = parts[1].to_string();
        }
        info.resource = parts[0].to_string();
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
        let param = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if info.name.is_empty() && info.verb == "get" {
            info.verb = if matches!(param("watch"), Some("true" | "1")) {
                "watch"
            } else {
                "list"
            }
            .to_string();
        }
        if info.name.is_empty() && matches!(info.verb.as_str(), "list" | "watch") {
            // A list or watch narrowed to one object by `metadata.name=` is about that name.
            if let Some(selector) = param("fieldSelector") {
                for term in selector.split(',') {
                    if let Some(name) = term
                        .strip_prefix("metadata.name==")
                        .or_else(|| term.strip_prefix("metadata.name="))
                    {
                        info.name = name.to_string();
                    }
                }
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }
        info
    }

    /// Watches, proxies, exec/attach/log/portforward: requests that may stay open.
    pub fn is_long_running(&self) -> bool {
        self.is_resource_request
            && (LONG_RUNNING_VERBS.contains(&self.verb.as_str())
                || LONG_RUNNING_SUBRESOURCES.contains(&self.subresource.as_str()))
    }

    /// Verbs counted against `--max-mutating-requests-inflight`.
    pub fn is_mutating(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection" | "post" | "put"
        )
    }
}

/// Set by the request-info layer on every request: the parse above, when the request
/// arrived and the audit ID it is known by (the `Audit-Id` response header).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub info: RequestInfo,
    pub received: DateTime<Utc>,
    pub audit_id: String,
}

/// The request-info layer: parses the request once for every layer after it (and for the
/// handler: [`crate::request_info::Parsed`]) and notes when it arrived.
pub async fn layer(
    axum::extract::State(chain): axum::extract::State<std::sync::Arc<super::Chain>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let info = RequestInfo::parse(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    let audit_id = request
        .extensions()
        .get::<super::recovery::AuditId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let parsed = crate::request_info::Parsed::of(
        &chain.registry.snapshot(),
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    request.extensions_mut().insert(parsed);
    request.extensions_mut().insert(RequestContext {
        info,
        received: Utc::now(),
        audit_id,
    });
    next.run(request).await
}

/// The request context the request-info layer set (a default one outside the chain).
pub fn context_of(extensions: &http::Extensions) -> RequestContext {
    extensions
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_else(|| RequestContext {
            info: RequestInfo::default(),
            received: Utc::now(),
            audit_id: String::new(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, uri: &str) -> RequestInfo {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        RequestInfo::parse(&method, path, Some(query))
    }

    #[test]
    fn resource_requests() {
        let info = parse(Method::GET, "/api/v1/namespaces/default/pods");
        assert_eq!(
            (
                info.verb.as_str(),
                info.namespace.as_str(),
                info.resource.as_str()
            ),
            ("list", "default", "pods")
        );
        let info = parse(
            Method::GET,
            "/apis/apps/v1/namespaces/a/deployments/web/scale",
        );
        assert_eq!(info.api_group, "apps");
        assert_eq!(info.name, "web");
        assert_eq!(info.subresource, "scale");
        assert_eq!(info.verb, "get");
        let info = parse(Method::GET, "/api/v1/pods?watch=true");
        assert_eq!(info.verb, "watch");
        assert!(info.is_long_running());
        let info = parse(Method::GET, "/api/v1/watch/namespaces/a/pods/x");
        assert_eq!((info.verb.as_str(), info.name.as_str()), ("watch", "x"));
        let info = parse(Method::DELETE, "/api/v1/namespaces/a/configmaps");
        assert_eq!(info.verb, "deletecollection");
        let info = parse(Method::PUT, "/api/v1/namespaces/a/finalize");
        assert_eq!(
            (
                info.resource.as_str(),
                info.name.as_str(),
                info.subresource.as_str()
            ),
            ("namespaces", "a", "finalize")
        );
        let info = parse(
            Method::GET,
            "/api/v1/namespaces/a/pods?fieldSelector=metadata.name%3Dp",
        );
        assert_eq!((info.verb.as_str(), info.name.as_str()), ("list", "p"));
    }

    #[test]
    fn non_resource_requests() {
        for path in ["/api", "/api/v1", "/apis/apps/v1", "/healthz", "/version"] {
            let info = parse(Method::GET, path);
            assert!(!info.is_resource_request, "{path}");
            assert_eq!(info.verb, "get");
        }
    }
}
