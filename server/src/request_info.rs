//! Request info: what an API path names, parsed once per request (kube-apiserver's
//! `RequestInfoFactory`). The handlers, and later the filter chain (authorization, audit,
//! limits), read this instead of re-parsing the URL.

use crate::registry::Resource;
use crate::registry::Snapshot;
use http::Method;
use kubecache_core::status::ApiError;
use std::sync::Arc;

/// The verb of a resource request, in kube-apiserver's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// Verbs that write.
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    }
}

/// A subresource kubecache serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
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
    Resource(ResourceRequest),
}

/// Parses method, path and the `watch` query flag into a [`Target`].
/// Unknown paths and resources are 404; verbs a path cannot take are 405.
pub fn parse(
    registry: &Snapshot,
    method: &Method,
    path: &str,
    watch_param: bool,
) -> Result<Target, ApiError> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        ["version"] => return Ok(Target::Version),
        ["healthz", ..] => return Ok(Target::Healthz),
        ["livez", ..] => return Ok(Target::Livez),
        ["readyz", ..] => return Ok(Target::Readyz),
        ["metrics"] => return Ok(Target::Metrics),
        ["openapi", rest @ ..] => return Ok(Target::OpenApi(rest.join("/"))),
        ["api"] => return Ok(Target::CoreVersions),
        ["apis"] => return Ok(Target::Groups),
        ["api", version] => {
            return known_group_version(registry, "", version);
        }
        ["apis", group] => {
            return if registry.groups().iter().any(|(g, _)| g == group) {
                Ok(Target::Group(group.to_string()))
            } else {
                Err(ApiError::path_not_found())
            };
        }
        ["apis", group, version] => return known_group_version(registry, group, version),
        _ => {}
    }
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    // The legacy `/watch/` prefix turns GET into WATCH.
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    // `namespaces/{ns}/{resource}/...` scopes a request to a namespace; `namespaces/{name}`
    // and `namespaces/{name}/status|finalize` name a namespace object itself.
    let (namespace, rest): (Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, tail @ ..]
            if !tail.is_empty() && !matches!(tail[0], "status" | "finalize") =>
        {
            (Some(*ns), tail)
        }
        ["namespaces", ns, ..] => (Some(*ns), rest),
        _ => (None, rest),
    };
    let (resource_name, name, sub) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return Err(ApiError::path_not_found()),
    };
    let resource = registry
        .lookup(group, version, resource_name)
        .ok_or_else(ApiError::path_not_found)?;
    // For namespaced resources the path's namespace scopes them; for cluster-scoped ones a
    // namespace in the path is an error, except `namespaces/{name}` which names the object.
    let namespace = if resource.namespaced {
        namespace.map(str::to_string)
    } else if namespace.is_some() && resource_name != "namespaces" {
        return Err(ApiError::path_not_found());
    } else {
        None
    };
    let subresource = match sub {
        None => None,
        Some("status") if resource.status_subresource => Some(Subresource::Status),
        Some("scale") if resource.scale_subresource => Some(Subresource::Scale),
        Some(_) => return Err(ApiError::path_not_found()),
    };
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
        Method::POST if name.is_none() && !legacy_watch => Verb::Create,
        Method::PUT if name.is_some() && !legacy_watch => Verb::Update,
        Method::PATCH if name.is_some() && !legacy_watch => Verb::Patch,
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
    if subresource.is_some() && !matches!(verb, Verb::Get | Verb::Update | Verb::Patch) {
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

    fn resource(method: Method, path: &str, watch: bool) -> ResourceRequest {
        match parse(
            &crate::registry::Registry::builtin().snapshot(),
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
        let reg = crate::registry::Registry::builtin().snapshot();
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
}

/// The parse of a request done once by the filter chain's request-info layer and handed
/// to [`crate::api::handle`] as a request extension (errors included, answered there).
#[derive(Debug, Clone)]
pub struct Parsed(pub Result<Target, ApiError>);

impl Parsed {
    pub fn of(registry: &Snapshot, method: &Method, path: &str, query: Option<&str>) -> Parsed {
        let watch = crate::api::Query::parse(query).and_then(|q| q.flag("watch"));
        Parsed(watch.and_then(|watch| parse(registry, method, path, watch)))
    }
}
