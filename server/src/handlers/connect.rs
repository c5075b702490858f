//! kube's "connect" subresources, served by passing the request on (`crate::proxy`):
//! `pods/log`, `pods/exec`, `pods/attach`, `pods/portforward` to the kubelet of the pod's
//! node, `pods/{name[:port]}/proxy/...` to the pod, `nodes/{name[:port]}/proxy/...` to the
//! node (its kubelet unless another port is named). Locations, options and errors as kube's
//! `pkg/registry/core/pod/strategy.go` (`LogLocation`, `ExecLocation`, `AttachLocation`,
//! `PortForwardLocation`, `ResourceLocation`) and `pkg/registry/core/node/strategy.go`.
//!
//! These requests are long-running (no request timeout, not counted in max-in-flight:
//! `RequestInfo::is_long_running`) and their bodies are never buffered: the dispatcher
//! hands them here before it reads any body.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use http::request::Parts;
use kubecache_cache::ReadAt;
use kubecache_core::field;
use kubecache_core::request::Subresource;
use kubecache_core::status::{ApiError, Cause, Reason};
use serde_json::{Value, json};

use crate::api::Api;
use crate::call::Query;
use crate::kubelet::{KubeletAddress, join_host_port};
use crate::proxy::{self, Upstream};
use crate::request_info::ResourceRequest;
use crate::streams::translate::{self, Channels};
use kubecache_apimachinery::objects;

/// How much of a kubelet's error body becomes the Status (kube's `maxReadLength`).
const MAX_ERROR_BODY_BYTES: usize = 50_000;

/// Serves a connect subresource with the request's unread body.
pub async fn serve(
    api: &Api,
    request: &ResourceRequest,
    query: &Query,
    parts: Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let name = request.name.as_deref().unwrap_or("");
    let is_pod = request.resource.group.is_empty() && request.resource.resource == "pods";
    match request.subresource {
        Some(Subresource::Log) => log(api, request, name, query, parts).await,
        Some(Subresource::Exec) => stream(api, request, name, query, parts, "exec").await,
        Some(Subresource::Attach) => stream(api, request, name, query, parts, "attach").await,
        Some(Subresource::PortForward) => port_forward(api, request, name, query, parts).await,
        Some(Subresource::Proxy) if is_pod => pod_proxy(api, request, name, parts, body).await,
        Some(Subresource::Proxy) => node_proxy(api, name, parts, body).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The object `name` of `resource` (`pods` in `namespace`, or `nodes`), read at the latest
/// revision.
async fn read(
    api: &Api,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let info = api
        .registry
        .lookup("", "v1", resource)
        .ok_or_else(|| ApiError::internal(format!("{resource} are not registered")))?;
    let key = api.object_key(&info, namespace, name);
    let object = api
        .reads
        .get(&info, &key, ReadAt::Latest)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| ApiError::not_found("", resource, name))?;
    objects::decode(&object.kv)
}

/// The kubelet of the pod's node; a pod not yet on a node is kube's 400.
async fn kubelet_of(api: &Api, pod: &Value, name: &str) -> Result<KubeletAddress, ApiError> {
    let node_name = node_name(pod);
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let node = read(api, "nodes", None, node_name).await?;
    api.kubelets().address(&node)
}

fn node_name(pod: &Value) -> &str {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The kubelet request for `path` with `query`.
fn kubelet_upstream(api: &Api, kubelet: &KubeletAddress, path: String, query: String) -> Upstream {
    let path_and_query = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    Upstream {
        authority: kubelet.authority(),
        host: kubelet.host.clone(),
        tls: Some(api.kubelets().tls.clone()),
        path_and_query,
    }
}

/// The names of a pod's containers, init and ephemeral ones included (kube's
/// `VisitContainers` order).
fn container_names(pod: &Value) -> Vec<&str> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| {
            pod.pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
        })
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect()
}

/// kube's `validateContainer`: the named container must be the pod's; without a name, the
/// pod's only container (kubectl, not the server, reads the
/// `kubectl.kubernetes.io/default-container` annotation).
fn container(pod: &Value, requested: Option<&str>, pod_name: &str) -> Result<String, ApiError> {
    match requested.filter(|c| !c.is_empty()) {
        Some(container) if container_names(pod).contains(&container) => Ok(container.to_string()),
        Some(container) => Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {pod_name}"
        ))),
        None => {
            let containers = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            match containers {
                [only] => Ok(only
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()),
                [] => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}"
                ))),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    container_names(pod).join(" ")
                ))),
            }
        }
    }
}

/// `PodLogOptions` from the query, as kube decodes and validates them.
#[derive(Debug, Default, PartialEq)]
struct LogOptions {
    container: Option<String>,
    follow: bool,
    previous: bool,
    timestamps: bool,
    since_seconds: Option<i64>,
    since_time: Option<String>,
    tail_lines: Option<i64>,
    limit_bytes: Option<i64>,
    insecure_skip_tls_verify_backend: bool,
}

impl LogOptions {
    /// Decodes the query: a value of the wrong type is 400 (kube's parameter codec); then
    /// kube's `ValidatePodLogOptions`, 422 with a cause per bad field.
    fn parse(query: &Query, pod_name: &str) -> Result<LogOptions, ApiError> {
        let integer = |name: &str| -> Result<Option<i64>, ApiError> {
            query
                .get(name)
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "invalid value for {name}: {v:?}, expected an integer"
                        ))
                    })
                })
                .transpose()
        };
        let since_time = query
            .get("sinceTime")
            .map(|v| {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| {
                        t.with_timezone(&chrono::Utc)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    })
                    .map_err(|e| {
                        ApiError::bad_request(format!("invalid value for sinceTime: {v:?}: {e}"))
                    })
            })
            .transpose()?;
        let options = LogOptions {
            container: query.get("container").map(str::to_string),
            follow: query.flag("follow")?,
            previous: query.flag("previous")?,
            timestamps: query.flag("timestamps")?,
            since_seconds: integer("sinceSeconds")?,
            since_time,
            tail_lines: integer("tailLines")?,
            limit_bytes: integer("limitBytes")?,
            insecure_skip_tls_verify_backend: query.flag("insecureSkipTLSVerifyBackend")?,
        };
        let causes = options.validate();
        if !causes.is_empty() {
            return Err(ApiError::invalid("", "PodLogOptions", pod_name, causes));
        }
        Ok(options)
    }

    /// kube's `ValidatePodLogOptions`.
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        if let Some(tail) = self.tail_lines.filter(|t| *t < 0) {
            causes.push(field::invalid(
                "tailLines",
                &json!(tail),
                "must be greater than or equal to 0",
            ));
        }
        if let Some(limit) = self.limit_bytes.filter(|l| *l < 1) {
            causes.push(field::invalid(
                "limitBytes",
                &json!(limit),
                "must be greater than 0",
            ));
        }
        match (self.since_seconds, &self.since_time) {
            (Some(_), Some(_)) => causes.push(field::forbidden(
                "",
                "at most one of `sinceTime` or `sinceSeconds` may be specified",
            )),
            (Some(seconds), None) if seconds < 1 => causes.push(field::invalid(
                "sinceSeconds",
                &json!(seconds),
                "must be greater than 0",
            )),
            _ => {}
        }
        causes
    }

    /// The kubelet's query (as kube's `LogLocation` builds it).
    fn kubelet_query(&self) -> String {
        let mut query = Vec::new();
        let flags = [
            ("follow", self.follow),
            ("previous", self.previous),
            ("timestamps", self.timestamps),
        ];
        for (name, on) in flags {
            if on {
                query.push((name.to_string(), "true".to_string()));
            }
        }
        let numbers = [
            ("sinceSeconds", self.since_seconds),
            ("tailLines", self.tail_lines),
            ("limitBytes", self.limit_bytes),
        ];
        for (name, value) in numbers {
            if let Some(value) = value {
                query.push((name.to_string(), value.to_string()));
            }
        }
        if let Some(time) = &self.since_time {
            query.push(("sinceTime".to_string(), time.clone()));
        }
        encode(&query)
    }
}

/// Go's `url.Values.Encode`: sorted by key.
fn encode(pairs: &[(String, String)]) -> String {
    let mut pairs = pairs.to_vec();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

/// `GET pods/{name}/log`: the kubelet's `/containerLogs/{ns}/{pod}/{container}`, streamed.
/// A pod not yet on a node has no log: an empty 200, as kube.
async fn log(
    api: &Api,
    request: &ResourceRequest,
    name: &str,
    query: &Query,
    parts: Parts,
) -> Result<Response, ApiError> {
    let namespace = request.namespace.as_deref().unwrap_or("");
    let options = LogOptions::parse(query, name)?;
    let pod = read(api, "pods", Some(namespace), name).await?;
    let container = container(&pod, options.container.as_deref(), name)?;
    if node_name(&pod).is_empty() {
        return Ok(Response::new(Body::empty()));
    }
    let kubelet = kubelet_of(api, &pod, name).await?;
    let mut upstream = kubelet_upstream(
        api,
        &kubelet,
        format!("/containerLogs/{namespace}/{name}/{container}"),
        options.kubelet_query(),
    );
    if options.insecure_skip_tls_verify_backend {
        upstream.tls = Some(api.kubelets().insecure_tls.clone());
    }
    let response = proxy::forward(upstream, get_only(parts), Body::empty()).await?;
    checked(response, "pods/log", name).await
}

/// The request as a bodiless GET (the log is read, whatever the client's method).
fn get_only(mut parts: Parts) -> Parts {
    parts.method = http::Method::GET;
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.remove(http::header::CONTENT_TYPE);
    parts
}

/// kube's `GenericHttpResponseChecker`: a kubelet answer outside 2xx becomes a Status (its
/// body the message for 400 and 500, a cause otherwise).
async fn checked(response: Response, resource: &str, name: &str) -> Result<Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = axum::body::to_bytes(response.into_body(), MAX_ERROR_BODY_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).to_string();
    Err(match status {
        StatusCode::BAD_REQUEST => ApiError::bad_request(text),
        StatusCode::INTERNAL_SERVER_ERROR => ApiError::internal(text),
        _ => generic_server_response(status, resource, name, text),
    })
}

/// kube's `NewGenericServerResponse` for an upstream's status.
fn generic_server_response(
    status: StatusCode,
    resource: &str,
    name: &str,
    body: String,
) -> ApiError {
    let (reason, message) = match status {
        StatusCode::NOT_FOUND => (
            Reason::NotFound,
            "the server could not find the requested resource".to_string(),
        ),
        StatusCode::UNAUTHORIZED => (
            Reason::Unauthorized,
            "the server has asked for the client to provide credentials".to_string(),
        ),
        StatusCode::FORBIDDEN => (
            Reason::Forbidden,
            "the server does not allow access to the requested resource".to_string(),
        ),
        StatusCode::SERVICE_UNAVAILABLE => (
            Reason::ServiceUnavailable,
            "the server is currently unable to handle the request".to_string(),
        ),
        StatusCode::GATEWAY_TIMEOUT => (
            Reason::Timeout,
            "the server was unable to return a response in the time allotted, but may still be processing the request".to_string(),
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            Reason::TooManyRequests,
            "the server has received too many requests and has asked us to try again later"
                .to_string(),
        ),
        _ => (
            Reason::InternalError,
            format!(
                "the server responded with the status code {} but did not return more information",
                status.as_u16()
            ),
        ),
    };
    let mut err = ApiError::new(status.as_u16(), reason, message);
    err.kind = Some(resource.to_string());
    err.name = Some(name.to_string());
    if !body.is_empty() {
        err.causes
            .push(Cause::new("UnexpectedServerResponse", "", body));
    }
    err
}

/// `pods/{name}/exec` and `pods/{name}/attach`: an upgraded stream to the kubelet's
/// `/{exec,attach}/{ns}/{pod}/{container}`, the options as kube's `streamParams` sends
/// them.
async fn stream(
    api: &Api,
    request: &ResourceRequest,
    name: &str,
    query: &Query,
    parts: Parts,
    kind: &str,
) -> Result<Response, ApiError> {
    let namespace = request.namespace.as_deref().unwrap_or("");
    let channels = Channels {
        stdin: query.flag("stdin")?,
        stdout: query.flag("stdout")?,
        stderr: query.flag("stderr")?,
        tty: query.flag("tty")?,
    };
    let mut params = Vec::new();
    let flags = [
        ("stdin", channels.stdin),
        ("stdout", channels.stdout),
        ("stderr", channels.stderr),
        ("tty", channels.tty),
    ];
    for (stream, on) in flags {
        if on {
            params.push((stream.to_string(), "1".to_string()));
        }
    }
    if kind == "exec" {
        for command in query.all("command") {
            params.push(("command".to_string(), command.to_string()));
        }
    }
    let pod = read(api, "pods", Some(namespace), name).await?;
    let container = container(&pod, query.get("container"), name)?;
    let kubelet = kubelet_of(api, &pod, name).await?;
    let upstream = kubelet_upstream(
        api,
        &kubelet,
        format!("/{kind}/{namespace}/{name}/{container}"),
        encode(&params),
    );
    // kube translates the v5 WebSocket protocol to SPDY; other upgrades go as they are.
    if translate::offers(&parts.headers, translate::V5_CHANNEL) {
        return translate::exec(upstream, parts, channels).await;
    }
    proxy::forward(upstream, parts, Body::empty()).await
}

/// `pods/{name}/portforward`: an upgraded stream to the kubelet's `/portForward/{ns}/{pod}`.
async fn port_forward(
    api: &Api,
    request: &ResourceRequest,
    name: &str,
    query: &Query,
    parts: Parts,
) -> Result<Response, ApiError> {
    let namespace = request.namespace.as_deref().unwrap_or("");
    let mut ports = Vec::new();
    for value in query.all("ports") {
        for port in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| ApiError::bad_request(format!("invalid port {port:?}")))?;
            ports.push(port.to_string());
        }
    }
    let pod = read(api, "pods", Some(namespace), name).await?;
    let kubelet = kubelet_of(api, &pod, name).await?;
    let params = if ports.is_empty() {
        Vec::new()
    } else {
        vec![("port".to_string(), ports.join(","))]
    };
    let upstream = kubelet_upstream(
        api,
        &kubelet,
        format!("/portForward/{namespace}/{name}"),
        encode(&params),
    );
    if translate::offers(&parts.headers, translate::PORT_FORWARD_TUNNEL) {
        return translate::tunnel(upstream, parts).await;
    }
    proxy::forward(upstream, parts, Body::empty()).await
}

/// Go's `SplitSchemeNamePort`: `name`, `name:port` or `scheme:name:port` (scheme `http` or
/// `https`; a port name or number).
fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    let valid = !name.is_empty() && matches!(scheme, "" | "http" | "https");
    valid.then_some((scheme, name, port))
}

/// What follows `{name}/proxy` in the request's path (kube's proxy "path" option), with
/// the request's query.
fn proxied_path(parts: &Parts, id: &str) -> (String, Option<String>) {
    let path = parts.uri.path();
    let marker = format!("/{id}/proxy");
    let rest = path
        .find(&marker)
        .map(|at| &path[at + marker.len()..])
        .unwrap_or("");
    (rest.to_string(), parts.uri.query().map(str::to_string))
}

/// The upstream request target for a proxied path, or kube's redirect of a GET of the bare
/// `.../proxy` to `.../proxy/` (kubernetes#4958).
fn proxy_target(parts: &Parts, id: &str) -> Result<String, Response> {
    let (rest, query) = proxied_path(parts, id);
    if rest.is_empty() && matches!(parts.method, http::Method::GET | http::Method::HEAD) {
        let location = match &query {
            Some(query) => format!("{}/?{query}", parts.uri.path()),
            None => format!("{}/", parts.uri.path()),
        };
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
        if let Ok(location) = http::HeaderValue::from_str(&location) {
            response
                .headers_mut()
                .insert(http::header::LOCATION, location);
        }
        return Err(response);
    }
    let path = if rest.is_empty() {
        "/".to_string()
    } else {
        rest
    };
    Ok(match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    })
}

/// `pods/{[scheme:]name[:port]}/proxy/...`: to the pod's first IP, on the named port or
/// its first container port (kube's `ResourceLocation`).
async fn pod_proxy(
    api: &Api,
    request: &ResourceRequest,
    id: &str,
    parts: Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {id:?}")))?;
    let namespace = request.namespace.as_deref().unwrap_or("");
    let pod = read(api, "pods", Some(namespace), name).await?;
    let port = if port.is_empty() {
        first_container_port(&pod)
    } else {
        Some(port.to_string())
    };
    let ip = pod
        .pointer("/status/podIPs/0/ip")
        .and_then(Value::as_str)
        .unwrap_or("");
    let parsed: Option<std::net::IpAddr> = ip.parse().ok();
    let kubelets = api.kubelets();
    let allowed = parsed.is_some_and(|ip| {
        kubelets.allow_loopback_proxy_targets || crate::kubelet::is_proxyable(ip)
    });
    if !allowed {
        return Err(ApiError::bad_request("address not allowed"));
    }
    let port = match port {
        None => 80,
        Some(port) => port_number(&pod, &port)?,
    };
    let target = match proxy_target(&parts, id) {
        Ok(target) => target,
        Err(redirect) => return Ok(redirect),
    };
    let upstream = Upstream {
        authority: join_host_port(ip, port),
        host: ip.to_string(),
        tls: (scheme == "https").then(|| kubelets.insecure_tls.clone()),
        path_and_query: target,
    };
    proxy::forward(upstream, parts, body).await
}

fn first_container_port(pod: &Value) -> Option<String> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|c| c.pointer("/ports/0/containerPort").and_then(Value::as_i64))
        .map(|p| p.to_string())
}

/// A port number, or the number of a container port of that name.
fn port_number(pod: &Value, port: &str) -> Result<u16, ApiError> {
    if let Ok(number) = port.parse::<u16>() {
        return Ok(number);
    }
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|p| p.get("name").and_then(Value::as_str) == Some(port))
        .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {port:?}")))
}

/// `nodes/{[scheme:]name[:port]}/proxy/...`: the node's kubelet (HTTPS, the kubelet client
/// certificate) when no other port is named, else that port of the node's address (kube's
/// node `ResourceLocation`). `nodes/{name}/proxy/logs/...` is the kubelet's node log.
async fn node_proxy(api: &Api, id: &str, parts: Parts, body: Body) -> Result<Response, ApiError> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid node request {id:?}")))?;
    let node = read(api, "nodes", None, name).await?;
    let kubelets = api.kubelets();
    let kubelet = kubelets.address(&node)?;
    kubelets.check_proxy_target(&kubelet.host).await?;
    let target = match proxy_target(&parts, id) {
        Ok(target) => target,
        Err(redirect) => return Ok(redirect),
    };
    let kubelet_port = kubelet.port.to_string();
    let upstream = if port.is_empty() || port == kubelet_port {
        kubelet_upstream(api, &kubelet, target, String::new())
    } else {
        let port: u16 = port
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid node request {id:?}")))?;
        Upstream {
            authority: join_host_port(&kubelet.host, port),
            host: kubelet.host.clone(),
            tls: (scheme == "https").then(|| kubelets.insecure_tls.clone()),
            path_and_query: target,
        }
    };
    proxy::forward(upstream, parts, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Query {
        Query::parse(Some(q)).unwrap()
    }

    #[test]
    fn log_options_reach_the_kubelet_in_kube_order() {
        let options = LogOptions::parse(
            &query("follow=true&tailLines=10&timestamps=1&limitBytes=5&sinceSeconds=3"),
            "p",
        )
        .unwrap();
        assert_eq!(
            options.kubelet_query(),
            "follow=true&limitBytes=5&sinceSeconds=3&tailLines=10&timestamps=true"
        );
    }

    #[test]
    fn bad_log_options_are_kube_errors() {
        let err = LogOptions::parse(&query("tailLines=x"), "p").unwrap_err();
        assert_eq!(err.code, 400);
        let err = LogOptions::parse(
            &query("tailLines=-1&limitBytes=0&sinceSeconds=1&sinceTime=2024-01-01T00:00:00Z"),
            "p",
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        let fields: Vec<&str> = err.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["tailLines", "limitBytes", ""]);
        let err = LogOptions::parse(&query("sinceSeconds=0"), "p").unwrap_err();
        assert_eq!(err.causes[0].field, "sinceSeconds");
    }

    #[test]
    fn the_default_container_is_the_only_one() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(container(&one, None, "p").unwrap(), "app");
        let two = json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}],
        }});
        let err = container(&two, None, "p").unwrap_err();
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [init a b]"
        );
        assert_eq!(container(&two, Some("init"), "p").unwrap(), "init");
        let err = container(&two, Some("c"), "p").unwrap_err();
        assert_eq!(err.message, "container c is not valid for pod p");
    }

    #[test]
    fn proxy_ids_split_as_go() {
        assert_eq!(split_scheme_name_port("web"), Some(("", "web", "")));
        assert_eq!(
            split_scheme_name_port("web:8080"),
            Some(("", "web", "8080"))
        );
        assert_eq!(
            split_scheme_name_port("https:web:443"),
            Some(("https", "web", "443"))
        );
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }
}
