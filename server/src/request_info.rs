//! What a request names, parsed once per request.
//!
//! [`RequestInfo::parse`] reads the method, path and query the way kube-apiserver's
//! `RequestInfoFactory` does, without the registry: authorization, audit and the limits
//! describe any request with it, including one for a resource that does not exist (which
//! is authorized, 403, before it is found missing, 404). The filter chain's request-info
//! layer ([`crate::filters::info`]) parses every request once. [`resolve`] turns that parse
//! into the handler's [`Target`] by looking its resource up in the registry: a lookup, not
//! a second parse.

use http::Method;
use kubecache_apimachinery::registry::Resource;
use kubecache_apimachinery::registry::Snapshot;
use kubecache_core::request::{Subresource, Verb};
use kubecache_core::status::ApiError;
use std::sync::Arc;

/// Verbs that come first in the path (`/api/v1/watch/...`, `/api/v1/proxy/...`).
const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];
/// Subresources of a namespace itself (`/api/v1/namespaces/x/status`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];
/// Verbs and subresources whose requests are long-running: exempt from the request
/// timeout and the in-flight limits, ended (not waited for) on shutdown.
const LONG_RUNNING_VERBS: [&str; 2] = ["watch", "proxy"];
const LONG_RUNNING_SUBRESOURCES: [&str; 5] = ["attach", "exec", "proxy", "log", "portforward"];

/// What a request asks for, as authorization and audit see it (kube-apiserver's
/// `RequestInfo`).
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
    /// The object's name; for a list or watch narrowed by `fieldSelector=metadata.name=`,
    /// that name (what authorization checks). [`resolve`] reads the path's name from `parts`.
    pub name: String,
    /// The path's segments, empty ones dropped. For a resource request, from the resource
    /// on: after the API prefix, group and version, a leading `watch` or `proxy` and a
    /// scoping `namespaces/{ns}` (kube's `Parts`: `pods`, `web`, `status`). For any other
    /// request, all of them (`apis`, `apps`).
    pub parts: Vec<String>,
}

impl RequestInfo {
    /// Parses a request the way kube-apiserver does.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> RequestInfo {
        let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut info = RequestInfo {
            path: path.to_string(),
            verb: method.as_str().to_ascii_lowercase(),
            parts: segments.iter().map(|p| p.to_string()).collect(),
            ..RequestInfo::default()
        };
        // `/api/{version}/...` or `/apis/{group}/{version}/...`, with something after it.
        let (prefix, group, version, mut rest) = match segments.as_slice() {
            ["api", version, rest @ ..] if !rest.is_empty() => ("api", "", *version, rest),
            ["apis", group, version, rest @ ..] if !rest.is_empty() => {
                ("apis", *group, *version, rest)
            }
            _ => return info,
        };
        info.api_prefix = prefix.to_string();
        info.api_group = group.to_string();
        info.api_version = version.to_string();
        if SPECIAL_VERBS.contains(&rest[0]) {
            if rest.len() < 2 {
                // `/api/v1/watch`: nothing to watch; answered 404 further in.
                return info;
            }
            info.verb = rest[0].to_string();
            rest = &rest[1..];
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
        info.is_resource_request = true;
        // `namespaces/{ns}/{resource}/...` scopes a request to a namespace;
        // `namespaces/{name}` and `namespaces/{name}/status|finalize` name a namespace itself.
        if rest[0] == "namespaces" && rest.len() > 1 {
            info.namespace = rest[1].to_string();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        info.parts = rest.iter().map(|p| p.to_string()).collect();
        info.resource = rest[0].to_string();
        if rest.len() >= 2 {
            info.name = rest[1].to_string();
        }
        if rest.len() >= 3 && info.verb != "proxy" {
            info.subresource = rest[2].to_string();
        }
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

/// A request for a resource (as opposed to discovery, health or version).
#[derive(Debug, Clone)]
pub struct ResourceRequest {
    pub verb: Verb,
    pub resource: Arc<Resource>,
    /// The namespace from the path; `None` for cluster-scoped resources and all-namespace
    /// collections.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<Subresource>,
}

/// What a request path names.
#[derive(Debug, Clone)]
pub enum Target {
    Version,
    Healthz,
    Livez,
    Readyz,
    /// `/metrics` (Prometheus text format)
    Metrics,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    GroupVersion {
        group: String,
        version: String,
    },
    /// `/openapi/...`: what follows `/openapi/` (`v2`, `v3`, `v3/apis/apps/v1`, …)
    OpenApi(String),
    /// `/.well-known/openid-configuration` (the service-account issuer's discovery)
    OpenIdConfiguration,
    /// `/openid/v1/jwks`
    Jwks,
    Resource(ResourceRequest),
}

/// The handler's [`Target`]: the parsed request looked up in the registry, with the
/// `watch` query flag (which also makes a GET of one object a watch).
/// Unknown paths and resources are 404; verbs a path cannot take are 405.
pub fn resolve(
    registry: &Snapshot,
    method: &Method,
    info: &RequestInfo,
    watch_param: bool,
) -> Result<Target, ApiError> {
    if !info.is_resource_request {
        return non_resource(registry, &info.parts);
    }
    if info.verb == "proxy" {
        return Err(ApiError::path_not_found());
    }
    // The parse calls a resource request `watch` for the legacy `/watch/` prefix (whatever
    // the method), and for a GET of a collection with `?watch=`, which is a watch anyway.
    let legacy_watch = info.verb == "watch";
    let (name, sub) = match info.parts.as_slice() {
        [_] => (None, None),
        [_, name] => (Some(name.as_str()), None),
        [_, name, sub] => (Some(name.as_str()), Some(sub.as_str())),
        // `pods/{name}/proxy/{path...}`: the path is the proxied request's.
        [_, name, sub, ..] if sub == Subresource::Proxy.as_str() => {
            (Some(name.as_str()), Some(sub.as_str()))
        }
        _ => return Err(ApiError::path_not_found()),
    };
    let resource = lookup(registry, info).ok_or_else(ApiError::path_not_found)?;
    // For namespaced resources the path's namespace scopes them; for cluster-scoped ones a
    // namespace in the path is an error, except `namespaces/{name}` which names the object.
    let namespace = (!info.namespace.is_empty()).then_some(info.namespace.as_str());
    let namespace = if resource.namespaced {
        namespace.map(str::to_string)
    } else if namespace.is_some() && info.resource != "namespaces" {
        return Err(ApiError::path_not_found());
    } else {
        None
    };
    let subresource = match sub {
        None => None,
        Some("status") if resource.status_subresource => Some(Subresource::Status),
        Some("scale") if resource.scale_subresource => Some(Subresource::Scale),
        Some(other) => match Subresource::parse(other) {
            Some(sub) if resource.subresources.contains(&sub) => Some(sub),
            _ => return Err(ApiError::path_not_found()),
        },
    };
    // A subresource that takes a POST (`pods/{name}/binding`) creates under an object's name.
    let creates_under_name = subresource.is_some_and(|s| s.verbs().contains(&"create"));
    let verb = match *method {
        Method::GET | Method::HEAD => {
            if legacy_watch || (watch_param && subresource.is_none()) {
                Verb::Watch
            } else if name.is_some() {
                Verb::Get
            } else {
                Verb::List
            }
        }
        Method::POST if (name.is_none() || creates_under_name) && !legacy_watch => Verb::Create,
        Method::PUT if name.is_some() && !legacy_watch => Verb::Update,
        Method::PATCH if name.is_some() && !legacy_watch => Verb::Patch,
        Method::DELETE if !legacy_watch && subresource.is_some_and(|s| s.is_connect()) => {
            Verb::Delete
        }
        Method::DELETE if !legacy_watch && subresource.is_none() => {
            if name.is_some() {
                Verb::Delete
            } else {
                Verb::DeleteCollection
            }
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    if subresource.is_none() && !resource.supports(verb.as_str()) {
        return Err(ApiError::method_not_allowed());
    }
    if subresource.is_some_and(|s| !s.verbs().contains(&verb.as_str())) {
        return Err(ApiError::method_not_allowed());
    }
    Ok(Target::Resource(ResourceRequest {
        verb,
        resource: resource.clone(),
        namespace,
        name: name.map(str::to_string),
        subresource,
    }))
}

/// The registry's entry for the resource a request names: the one registry lookup of a
/// resource request.
fn lookup(registry: &Snapshot, info: &RequestInfo) -> Option<Arc<Resource>> {
    registry
        .lookup(&info.api_group, &info.api_version, &info.resource)
        .cloned()
}

/// The target of a path that names no resource: version, health, metrics, OpenAPI and
/// discovery; anything else is 404.
fn non_resource(registry: &Snapshot, parts: &[String]) -> Result<Target, ApiError> {
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["version"] => Ok(Target::Version),
        ["healthz", ..] => Ok(Target::Healthz),
        ["livez", ..] => Ok(Target::Livez),
        ["readyz", ..] => Ok(Target::Readyz),
        ["metrics"] => Ok(Target::Metrics),
        ["openapi", rest @ ..] => Ok(Target::OpenApi(rest.join("/"))),
        [".well-known", "openid-configuration"] => Ok(Target::OpenIdConfiguration),
        ["openid", "v1", "jwks"] => Ok(Target::Jwks),
        ["api"] => Ok(Target::CoreVersions),
        ["apis"] => Ok(Target::Groups),
        ["api", version] => known_group_version(registry, "", version),
        ["apis", group] => {
            if registry.groups().iter().any(|(g, _)| g == group) {
                Ok(Target::Group(group.to_string()))
            } else {
                Err(ApiError::path_not_found())
            }
        }
        ["apis", group, version] => known_group_version(registry, group, version),
        _ => Err(ApiError::path_not_found()),
    }
}

fn known_group_version(
    registry: &Snapshot,
    group: &str,
    version: &str,
) -> Result<Target, ApiError> {
    if registry.in_group_version(group, version).next().is_some() {
        Ok(Target::GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        })
    } else {
        Err(ApiError::path_not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse then resolve, as a request goes through the filter chain and the handler.
    fn parse(
        registry: &Snapshot,
        method: &Method,
        path: &str,
        watch: bool,
    ) -> Result<Target, ApiError> {
        let query = if watch { "watch=true" } else { "" };
        let info = RequestInfo::parse(method, path, Some(query));
        resolve(registry, method, &info, watch)
    }

    fn resource(method: Method, path: &str, watch: bool) -> ResourceRequest {
        match parse(
            &kubecache_apimachinery::registry::Registry::builtin().snapshot(),
            &method,
            path,
            watch,
        )
        .unwrap()
        {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn namespaced_paths() {
        let r = resource(Method::GET, "/api/v1/namespaces/default/pods/web", false);
        assert_eq!((r.verb, r.resource.resource.as_str()), (Verb::Get, "pods"));
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        let r = resource(Method::GET, "/api/v1/pods", false);
        assert_eq!((r.verb, r.namespace), (Verb::List, None));
        let r = resource(
            Method::PATCH,
            "/apis/apps/v1/namespaces/ns/deployments/d/scale",
            false,
        );
        assert_eq!(r.subresource, Some(Subresource::Scale));
    }

    #[test]
    fn pod_subresources_only_where_served() {
        let r = resource(Method::POST, "/api/v1/namespaces/a/pods/web/binding", false);
        assert_eq!(
            (r.verb, r.subresource),
            (Verb::Create, Some(Subresource::Binding))
        );
        let r = resource(
            Method::POST,
            "/api/v1/namespaces/a/pods/web/eviction",
            false,
        );
        assert_eq!(
            (r.verb, r.subresource),
            (Verb::Create, Some(Subresource::Eviction))
        );
        let r = resource(
            Method::PATCH,
            "/api/v1/namespaces/a/pods/web/ephemeralcontainers",
            false,
        );
        assert_eq!(r.subresource, Some(Subresource::EphemeralContainers));
        let r = resource(Method::PUT, "/api/v1/namespaces/a/pods/web/resize", false);
        assert_eq!(r.subresource, Some(Subresource::Resize));
        let reg = kubecache_apimachinery::registry::Registry::builtin().snapshot();
        let code = |method: Method, path: &str| parse(&reg, &method, path, false).unwrap_err().code;
        assert_eq!(
            code(Method::GET, "/api/v1/namespaces/a/pods/web/binding"),
            405
        );
        assert_eq!(
            code(Method::POST, "/api/v1/namespaces/a/pods/web/resize"),
            405
        );
        assert_eq!(
            code(Method::POST, "/api/v1/namespaces/a/services/web/binding"),
            404
        );
    }

    #[test]
    fn namespaces_name_themselves() {
        let r = resource(Method::GET, "/api/v1/namespaces/kube-system", false);
        assert_eq!(r.resource.resource, "namespaces");
        assert_eq!(r.name.as_deref(), Some("kube-system"));
        assert_eq!(r.namespace, None);
        let r = resource(Method::PUT, "/api/v1/namespaces/x/status", false);
        assert_eq!(r.subresource, Some(Subresource::Status));
    }

    #[test]
    fn watch_forms() {
        assert_eq!(
            resource(Method::GET, "/api/v1/watch/namespaces/a/pods", false).verb,
            Verb::Watch
        );
        assert_eq!(
            resource(Method::GET, "/api/v1/namespaces/a/pods", true).verb,
            Verb::Watch
        );
        assert_eq!(
            resource(Method::DELETE, "/api/v1/namespaces/a/pods", false).verb,
            Verb::DeleteCollection
        );
    }

    #[test]
    fn errors() {
        let reg = kubecache_apimachinery::registry::Registry::builtin().snapshot();
        assert_eq!(
            parse(&reg, &Method::GET, "/api/v1/widgets", false)
                .unwrap_err()
                .code,
            404
        );
        assert_eq!(
            parse(&reg, &Method::POST, "/api/v1/namespaces/a/pods/x", false)
                .unwrap_err()
                .code,
            405
        );
        assert_eq!(
            parse(
                &reg,
                &Method::GET,
                "/api/v1/namespaces/a/configmaps/x/status",
                false
            )
            .unwrap_err()
            .code,
            404
        );
        assert_eq!(
            parse(&reg, &Method::GET, "/api/v1/namespaces/a/nodes", false)
                .unwrap_err()
                .code,
            404
        );
        assert_eq!(
            parse(&reg, &Method::DELETE, "/api/v1/namespaces", false)
                .unwrap_err()
                .code,
            405
        );
        assert!(matches!(
            parse(&reg, &Method::GET, "/apis/apps", false).unwrap(),
            Target::Group(_)
        ));
    }

    fn parsed(method: Method, uri: &str) -> RequestInfo {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        RequestInfo::parse(&method, path, Some(query))
    }

    #[test]
    fn resource_requests() {
        let info = parsed(Method::GET, "/api/v1/namespaces/default/pods");
        assert_eq!(
            (
                info.verb.as_str(),
                info.namespace.as_str(),
                info.resource.as_str()
            ),
            ("list", "default", "pods")
        );
        let info = parsed(
            Method::GET,
            "/apis/apps/v1/namespaces/a/deployments/web/scale",
        );
        assert_eq!(info.api_group, "apps");
        assert_eq!(info.name, "web");
        assert_eq!(info.subresource, "scale");
        assert_eq!(info.verb, "get");
        let info = parsed(Method::GET, "/api/v1/pods?watch=true");
        assert_eq!(info.verb, "watch");
        assert!(info.is_long_running());
        let info = parsed(Method::GET, "/api/v1/watch/namespaces/a/pods/x");
        assert_eq!((info.verb.as_str(), info.name.as_str()), ("watch", "x"));
        let info = parsed(Method::DELETE, "/api/v1/namespaces/a/configmaps");
        assert_eq!(info.verb, "deletecollection");
        let info = parsed(Method::PUT, "/api/v1/namespaces/a/finalize");
        assert_eq!(
            (
                info.resource.as_str(),
                info.name.as_str(),
                info.subresource.as_str()
            ),
            ("namespaces", "a", "finalize")
        );
        let info = parsed(
            Method::GET,
            "/api/v1/namespaces/a/pods?fieldSelector=metadata.name%3Dp",
        );
        assert_eq!((info.verb.as_str(), info.name.as_str()), ("list", "p"));
    }

    #[test]
    fn non_resource_requests() {
        for path in ["/api", "/api/v1", "/apis/apps/v1", "/healthz", "/version"] {
            let info = parsed(Method::GET, path);
            assert!(!info.is_resource_request, "{path}");
            assert_eq!(info.verb, "get");
        }
    }

    #[test]
    fn parts_start_at_the_resource() {
        let info = parsed(
            Method::GET,
            "/apis/apps/v1/namespaces/a/deployments/web/scale",
        );
        assert_eq!(info.parts, ["deployments", "web", "scale"]);
        let info = parsed(Method::GET, "/api/v1/watch/namespaces/a/pods");
        assert_eq!(
            (info.namespace.as_str(), info.parts.as_slice()),
            ("a", &["pods".to_string()][..])
        );
        let info = parsed(Method::GET, "/api/v1/namespaces/a/status");
        assert_eq!(info.parts, ["namespaces", "a", "status"]);
        // Anything else keeps every segment, for the non-resource targets.
        assert_eq!(parsed(Method::GET, "/apis/apps").parts, ["apis", "apps"]);
        assert_eq!(
            parsed(Method::GET, "/api/v1/watch").parts,
            ["api", "v1", "watch"]
        );
        // Empty segments are dropped, so what is authorized is what is served.
        let info = parsed(Method::GET, "//api/v1//namespaces/a//pods/");
        assert_eq!(
            (
                info.resource.as_str(),
                info.namespace.as_str(),
                info.verb.as_str()
            ),
            ("pods", "a", "list")
        );
    }

    #[test]
    fn an_unknown_resource_is_a_resource_request_that_resolves_to_404() {
        let info = parsed(Method::GET, "/apis/example.com/v1/namespaces/a/widgets/w");
        assert!(info.is_resource_request);
        assert_eq!(
            (info.verb.as_str(), info.resource.as_str()),
            ("get", "widgets")
        );
        let err = resolve(
            &kubecache_apimachinery::registry::Registry::builtin().snapshot(),
            &Method::GET,
            &info,
            false,
        )
        .unwrap_err();
        assert_eq!(err.code, 404);
    }

    #[test]
    fn the_target_reads_the_path_not_the_authorized_name() {
        // Authorization sees the name a field selector narrows to; the handler still lists.
        let (method, path) = (Method::GET, "/api/v1/namespaces/a/pods");
        let info = RequestInfo::parse(&method, path, Some("fieldSelector=metadata.name%3Dp"));
        assert_eq!(info.name, "p");
        match resolve(
            &kubecache_apimachinery::registry::Registry::builtin().snapshot(),
            &method,
            &info,
            false,
        )
        .unwrap()
        {
            Target::Resource(r) => assert_eq!((r.verb, r.name), (Verb::List, None)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn watch_verbs() {
        let reg = kubecache_apimachinery::registry::Registry::builtin().snapshot();
        // `?watch=` on a GET of one object watches it; on a subresource it is ignored.
        let r = resource(Method::GET, "/api/v1/namespaces/a/pods/x", true);
        assert_eq!((r.verb, r.name.as_deref()), (Verb::Watch, Some("x")));
        let r = resource(Method::GET, "/api/v1/namespaces/a/pods/x/status", true);
        assert_eq!(r.verb, Verb::Get);
        assert_eq!(
            resource(Method::GET, "/api/v1/watch/pods", false).verb,
            Verb::Watch
        );
        // The legacy prefix takes GET only, and no subresource.
        for (method, path) in [
            (Method::POST, "/api/v1/watch/namespaces/a/pods"),
            (Method::DELETE, "/api/v1/watch/namespaces/a/pods/x"),
            (Method::PUT, "/api/v1/watch/namespaces/a/pods/x"),
            (Method::GET, "/api/v1/watch/namespaces/a/pods/x/status"),
        ] {
            let err = parse(&reg, &method, path, false).unwrap_err();
            assert_eq!(err.code, 405, "{method} {path}");
        }
    }

    #[test]
    fn paths_the_parse_reads_but_nothing_serves() {
        let reg = kubecache_apimachinery::registry::Registry::builtin().snapshot();
        for path in [
            // Too deep: kube's parse keeps the first subresource, the handler has none.
            "/api/v1/namespaces/a/pods/x/status/more",
            "/api/v1/proxy/namespaces/a/pods/x",
            "/api/v1/watch",
            "/api/v1/namespaces/a/pods/x/log/more",
            "/api/v1/namespaces/a/services/x/proxy/",
            "/apis/nope",
            "/apis/apps/v9",
            "/api/v9",
            "/nothing/here",
        ] {
            let err = parse(&reg, &Method::GET, path, false).unwrap_err();
            assert_eq!(err.code, 404, "{path}");
        }
        let info = parsed(Method::GET, "/api/v1/namespaces/a/pods/x/status/more");
        assert_eq!(info.subresource, "status");
        assert_eq!(
            parsed(Method::GET, "/api/v1/proxy/namespaces/a/pods/x").verb,
            "proxy"
        );
    }

    #[test]
    fn proxy_paths_keep_their_tail_and_take_every_verb() {
        let reg = kubecache_apimachinery::registry::Registry::builtin().snapshot();
        for (method, verb) in [
            (Method::GET, Verb::Get),
            (Method::POST, Verb::Create),
            (Method::PUT, Verb::Update),
            (Method::PATCH, Verb::Patch),
            (Method::DELETE, Verb::Delete),
        ] {
            let path = "/api/v1/namespaces/a/pods/x:8080/proxy/some/deep/path/";
            let Target::Resource(request) = parse(&reg, &method, path, false).unwrap() else {
                panic!("a resource request");
            };
            assert_eq!(request.verb, verb);
            assert_eq!(request.subresource, Some(Subresource::Proxy));
            assert_eq!(request.name.as_deref(), Some("x:8080"));
        }
        // Logs are read only; exec takes GET (WebSocket) and POST (SPDY).
        let err = parse(
            &reg,
            &Method::POST,
            "/api/v1/namespaces/a/pods/x/log",
            false,
        );
        assert_eq!(err.unwrap_err().code, 405);
        for method in [Method::GET, Method::POST] {
            assert!(parse(&reg, &method, "/api/v1/namespaces/a/pods/x/exec", false).is_ok());
        }
        let err = parse(
            &reg,
            &Method::DELETE,
            "/api/v1/namespaces/a/pods/x/exec",
            false,
        );
        assert_eq!(err.unwrap_err().code, 405);
    }

    #[test]
    fn non_resource_targets() {
        let reg = kubecache_apimachinery::registry::Registry::builtin().snapshot();
        let target = |path: &str| parse(&reg, &Method::GET, path, false).unwrap();
        assert!(matches!(target("/version"), Target::Version));
        assert!(matches!(target("/healthz/etcd"), Target::Healthz));
        assert!(matches!(target("/livez"), Target::Livez));
        assert!(matches!(target("/readyz"), Target::Readyz));
        assert!(matches!(target("/metrics"), Target::Metrics));
        assert!(matches!(target("/api"), Target::CoreVersions));
        assert!(matches!(target("/apis/"), Target::Groups));
        assert!(matches!(
            target("/openapi/v3/apis/apps/v1"),
            Target::OpenApi(rest) if rest == "v3/apis/apps/v1"
        ));
        assert!(matches!(
            target("/api/v1"),
            Target::GroupVersion { group, version } if group.is_empty() && version == "v1"
        ));
        assert!(matches!(
            target("/apis/apps/v1"),
            Target::GroupVersion { group, version } if group == "apps" && version == "v1"
        ));
    }
}
