//! The API front end: one entry point that resolves a request's parse into a [`Target`],
//! runs its handler and turns the outcome — an object, a list, a watch stream or an
//! [`ApiError`] — into the HTTP response (errors through [`crate::status_response`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use kubecache_apimachinery::registry::{Registry, Resource};
use kubecache_apimachinery::strategy::Strategy;
use kubecache_cache::ReadPath;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::status::{ApiError, MAX_REQUEST_BODY_BYTES};
use kubecache_core::storage::Backend;
use serde_json::Value;
use tokio::sync::Notify;

use crate::handlers;
use crate::metrics::{self, RequestLabels, RequestMetrics};
use crate::request_info::{self, RequestInfo, ResourceRequest, Target};

/// Everything a handler needs: where objects are written and read, and what is served.
pub struct Api {
    /// The resources served, changing at run time ([`Api::add_resource`]); shared with the
    /// filter chain and the read path's codec.
    pub registry: Arc<Registry>,
    /// Writes go here (etcd transactions or the embedded store).
    pub backend: Arc<dyn Backend>,
    /// GET/LIST/WATCH go here, so the watch cache can take them over.
    pub reads: Arc<dyn ReadPath>,
    /// Key prefix of every object, kube-apiserver's `--etcd-prefix` (`/registry`).
    pub storage_root: String,
    /// Wakes the namespace finalizer when a namespace starts terminating.
    pub namespace_deleted: Notify,
    /// Namespaces this server marked Terminating, with the revision of that write: creates in
    /// them read the namespace at that revision or newer, so the cache cannot let one through
    /// in the moment before it sees the mark (kube's lifecycle admission keeps a similar set).
    pub terminating_namespaces: parking_lot::Mutex<std::collections::HashMap<String, i64>>,
    /// Request counts and latencies, served at `/metrics`.
    pub metrics: RequestMetrics,
    /// The admission chain every write passes through (see [`kubecache_admission`]).
    pub admission: kubecache_admission::Admission,
    /// The OpenAPI documents of what the registry serves.
    pub openapi: kubecache_apimachinery::openapi::Published,
    /// The `--authorization-mode` chain, installed at startup (`authz::install`); the
    /// access review APIs answer with it.
    pub authorizer: std::sync::OnceLock<Arc<crate::authz::Chain>>,
}

impl kubecache_admission::Context for Api {
    fn registry(&self) -> &Registry {
        &self.registry
    }
    fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
    fn reads(&self) -> &dyn ReadPath {
        self.reads.as_ref()
    }
    fn storage_root(&self) -> &str {
        &self.storage_root
    }
    fn admission(&self) -> &kubecache_admission::Admission {
        &self.admission
    }
    fn terminating_namespaces(
        &self,
    ) -> &parking_lot::Mutex<std::collections::HashMap<String, i64>> {
        &self.terminating_namespaces
    }
}

impl kubecache_store::Context for Api {
    fn namespace_deleted(&self) -> &Notify {
        &self.namespace_deleted
    }
}

impl Api {
    /// An API over the built-in resources.
    pub fn new(
        backend: Arc<dyn Backend>,
        reads: Arc<dyn ReadPath>,
        storage_root: &str,
    ) -> Arc<Api> {
        let registry = Arc::new(Registry::builtin());
        Api::with_admission(registry, backend, reads, storage_root, Default::default())
    }

    /// An API serving `registry`'s resources; `reads` must render them with the same registry
    /// (`codec::JsonCodec::new(registry)`).
    pub fn with_admission(
        registry: Arc<Registry>,
        backend: Arc<dyn Backend>,
        reads: Arc<dyn ReadPath>,
        storage_root: &str,
        admission: kubecache_admission::Config,
    ) -> Arc<Api> {
        Arc::new(Api {
            registry,
            backend,
            reads,
            storage_root: storage_root.trim_end_matches('/').to_string(),
            namespace_deleted: Notify::new(),
            terminating_namespaces: Default::default(),
            metrics: RequestMetrics::new(),
            admission: kubecache_admission::Admission::new(admission),
            openapi: Default::default(),
            authorizer: std::sync::OnceLock::new(),
        })
    }

    pub fn object_key(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> String {
        resource.object_key(&self.storage_root, namespace, name)
    }

    /// The storage prefix of every object of `resource`.
    pub fn storage_prefix(&self, resource: &ResourceInfo) -> String {
        resource.storage_prefix(&self.storage_root)
    }

    pub fn collection_prefix(&self, resource: &ResourceInfo, namespace: Option<&str>) -> String {
        resource.collection_prefix(&self.storage_root, namespace)
    }

    /// Serves one more resource while running ([`kubecache_store::resources::add`]).
    pub fn add_resource(&self, strategy: Arc<dyn Strategy>) -> Result<Arc<Resource>, ApiError> {
        kubecache_store::resources::add(self, strategy)
    }

    /// Stops serving a resource ([`kubecache_store::resources::remove`]).
    pub async fn remove_resource(
        &self,
        group: &str,
        version: &str,
        name: &str,
    ) -> Option<Arc<Resource>> {
        kubecache_store::resources::remove(self, group, version, name).await
    }
}

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

/// The single entry point for every request; also where every request is counted and timed
/// (a watch when its stream starts).
pub async fn handle(api: Arc<Api>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let mut labels = RequestLabels::non_resource(request.method());
    let protobuf = crate::edge::protobuf::wants_protobuf(request.headers());
    let mut warning = None;
    let mut response = match dispatch(&api, request, &mut labels, &mut warning).await {
        Ok(Reply::Object {
            status,
            body,
            warnings,
        }) => json_response(status, &body, &warnings),
        Ok(Reply::Encoded {
            status,
            body,
            content_type,
        }) => encoded_response(status, body, content_type),
        Ok(Reply::Stream(response)) => response,
        Err(err) if protobuf => crate::status_response::protobuf_status(&err),
        Err(err) => crate::status_response::json(&err),
    };
    // The resource's own warning (a deprecated custom resource version's) on every answer,
    // errors included, as kube's handler records it before serving.
    if let Some(warning) = warning {
        add_warnings(response.headers_mut(), &[warning]);
    }
    api.metrics
        .record(labels, response.status().as_u16(), started.elapsed());
    response
}

/// Serves a request; sets `labels` once it knows which resource the request is for, and
/// `warning` to the resource's warning ([`Strategy::warning`]).
///
/// [`Strategy::warning`]: kubecache_apimachinery::strategy::Strategy::warning
async fn dispatch(
    api: &Api,
    request: Request<Body>,
    labels: &mut RequestLabels,
    warning: &mut Option<String>,
) -> Result<Reply, ApiError> {
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query())?;
    // Parsed once by the filter chain; parsed here for requests that skipped it.
    let parsed;
    let info = match parts
        .extensions
        .get::<crate::filters::info::RequestContext>()
    {
        Some(context) => &context.info,
        None => {
            parsed = RequestInfo::parse(&parts.method, parts.uri.path(), parts.uri.query());
            &parsed
        }
    };
    let target = request_info::resolve(
        &api.registry.snapshot(),
        &parts.method,
        info,
        query.flag("watch")?,
    )?;
    let request = match target {
        Target::Version => return Ok(Reply::ok(handlers::discovery::version())),
        Target::Healthz | Target::Livez => {
            return Ok(Reply::Stream(text_response(StatusCode::OK, "ok")));
        }
        Target::Readyz => return Ok(Reply::Stream(readyz(api).await)),
        Target::Metrics => {
            let mut response = Response::new(Body::from(metrics::render(api).await));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            return Ok(Reply::Stream(response));
        }
        Target::CoreVersions => {
            let response =
                handlers::discovery::root(&api.registry.snapshot(), true, &parts.headers);
            return Ok(Reply::Stream(response));
        }
        Target::Groups => {
            let response =
                handlers::discovery::root(&api.registry.snapshot(), false, &parts.headers);
            return Ok(Reply::Stream(response));
        }
        Target::Group(group) => {
            return Ok(Reply::ok(handlers::discovery::group(
                &api.registry.snapshot(),
                &group,
            )));
        }
        Target::GroupVersion { group, version } => {
            return Ok(Reply::ok(handlers::discovery::resources(
                &api.registry.snapshot(),
                &group,
                &version,
            )));
        }
        Target::OpenApi(path) => {
            let response = crate::edge::openapi::serve(
                &api.openapi,
                &api.registry,
                &parts.method,
                &path,
                parts.uri.query(),
                &parts.headers,
            )?;
            return Ok(Reply::Stream(response));
        }
        Target::Resource(request) => request,
    };
    *labels = RequestLabels::resource(&request);
    *warning = request.resource.strategy().warning();
    let body = read_body(&parts.headers, body).await?;
    let user = parts
        .extensions
        .get::<kubecache_core::authz::UserInfo>()
        .cloned()
        .unwrap_or_else(kubecache_core::authz::UserInfo::insecure);
    let call = Call {
        api,
        request,
        query,
        headers: parts.headers,
        body,
        user,
    };
    handlers::serve(call).await
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_REQUEST_BODY_BYTES) {
        return Err(ApiError::too_large(MAX_REQUEST_BODY_BYTES));
    }
    axum::body::to_bytes(body, MAX_REQUEST_BODY_BYTES)
        .await
        .map_err(|_| ApiError::too_large(MAX_REQUEST_BODY_BYTES))
}

async fn readyz(api: &Api) -> Response {
    let check = tokio::time::timeout(Duration::from_secs(3), api.reads.ready()).await;
    match check {
        Ok(Ok(())) => text_response(StatusCode::OK, "ok"),
        Ok(Err(e)) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("[-]etcd failed: {e}\nreadyz check failed"),
        ),
        Err(_) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "[-]etcd failed: storage did not answer within 3s\nreadyz check failed",
        ),
    }
}

fn text_response(status: StatusCode, text: &str) -> Response {
    let mut response = Response::new(Body::from(text.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn encoded_response(status: StatusCode, body: Bytes, content_type: &'static str) -> Response {
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
