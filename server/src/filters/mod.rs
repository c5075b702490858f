//! The filter chain every API request passes through before its handler — kube-apiserver's
//! `DefaultBuildHandlerChain`, in the same order. [`apply`] is the whole chain: it reads top
//! to bottom in the order a request travels (outermost first), one layer per line.
//!
//! Layers share what they learn through request extensions: the request-info layer sets a
//! [`info::RequestContext`], authentication (and then impersonation) the
//! [`kubecache_core::authz::UserInfo`], audit an [`crate::audit::AuditHandle`].

pub mod admission_notes;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod body;
pub mod cache_control;
pub mod cors;
pub mod debug;
pub mod drain;
pub mod impersonation;
pub mod info;
pub mod limits;
pub mod recovery;
pub mod timeout;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};
use kubecache_core::authz::{Authorizer, UserInfo};
use tower::ServiceBuilder;

use crate::api::Api;
use crate::audit::{Auditor, LogOptions, LogWriter, Policy};
use crate::authn::Authenticator;
use crate::authz::AuthorizationMode;

/// The settings of the chain (the security flags of `kubecache serve`).
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// `--authorization-mode`, in order.
    pub authorization_modes: Vec<AuthorizationMode>,
    /// `--token-auth-file`.
    pub token_auth_file: Option<PathBuf>,
    /// `--anonymous-auth`.
    pub anonymous_auth: bool,
    /// `--audit-log-path` and rotation; no audit without it.
    pub audit_log: Option<LogOptions>,
    /// `--audit-policy-file`; Metadata for everything without it.
    pub audit_policy_file: Option<PathBuf>,
    /// `--cors-allowed-origins` (regular expressions); no CORS handling when empty.
    pub cors_allowed_origins: Vec<String>,
    /// `--request-timeout` for requests that are not long-running; zero disables it.
    pub request_timeout: Duration,
    /// `--max-requests-inflight`; zero is unlimited.
    pub max_requests_inflight: usize,
    /// `--max-mutating-requests-inflight`; zero is unlimited.
    pub max_mutating_requests_inflight: usize,
    /// Hidden: routes under `/debug/kubecache/` that panic or sleep, for tests.
    pub debug_routes: bool,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            authorization_modes: vec![AuthorizationMode::AlwaysAllow],
            token_auth_file: None,
            anonymous_auth: true,
            audit_log: None,
            audit_policy_file: None,
            cors_allowed_origins: Vec::new(),
            request_timeout: Duration::from_secs(60),
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            debug_routes: false,
        }
    }
}

/// Everything the layers need, built once from [`ChainOptions`].
pub struct Chain {
    /// The API the layers read through (service-account tokens are checked against it).
    pub api: Arc<Api>,
    pub authenticator: Arc<Authenticator>,
    pub authorizer: Arc<dyn Authorizer>,
    pub auditor: Option<Auditor>,
    pub cors: Option<cors::Cors>,
    pub request_timeout: Duration,
    pub limits: limits::Limits,
    /// In-flight requests and the shutdown signal.
    pub drain: Arc<drain::Drain>,
    pub debug_routes: bool,
}

impl Chain {
    pub fn new(options: &ChainOptions, api: &Arc<Api>) -> Result<Arc<Chain>, String> {
        let authenticator = Arc::new(Authenticator::load(
            options.token_auth_file.as_deref(),
            options.anonymous_auth,
        )?);
        // TokenReview answers with the same authenticators.
        let _ = api.authenticator.set(authenticator.clone());
        let auditor = match &options.audit_log {
            None => None,
            Some(log) => {
                let policy = match &options.audit_policy_file {
                    None => Policy::metadata_for_everything(),
                    Some(path) => {
                        let text = std::fs::read_to_string(path).map_err(|e| {
                            format!("cannot read --audit-policy-file {}: {e}", path.display())
                        })?;
                        Policy::parse(&text)
                            .map_err(|e| format!("--audit-policy-file {}: {e}", path.display()))?
                    }
                };
                let writer = LogWriter::open(log.clone()).map_err(|e| {
                    format!("cannot open --audit-log-path {}: {e}", log.path.display())
                })?;
                Some(Auditor::new(policy, writer))
            }
        };
        let cors = cors::Cors::new(&options.cors_allowed_origins)?;
        Ok(Arc::new(Chain {
            api: api.clone(),
            authenticator,
            // The same chain (and live RBAC index) the access review APIs answer with.
            authorizer: crate::authz::install(api, &options.authorization_modes),
            auditor,
            cors,
            request_timeout: options.request_timeout,
            limits: limits::Limits::new(
                options.max_requests_inflight,
                options.max_mutating_requests_inflight,
            ),
            drain: drain::Drain::new(),
            debug_routes: options.debug_routes,
        }))
    }
}

/// Wraps `router` (the API) in the filter chain. `ServiceBuilder` lists layers outermost
/// first: a request meets them top to bottom, its response bottom to top.
pub fn apply(router: Router, chain: Arc<Chain>) -> Router {
    let router = if chain.debug_routes {
        debug::routes(router)
    } else {
        router
    };
    let state = || chain.clone();
    router.layer(
        ServiceBuilder::new()
            // A body answered before it was read to the end is drained after the response
            // (HTTP/1.1), so the client can finish sending it and read the answer.
            .layer(from_fn(body::layer))
            // `Cache-Control: no-cache, private` unless the response chose its own (a panic's
            // 500 included).
            .layer(from_fn(cache_control::layer))
            // Assign the Audit-Id; a panicking handler becomes a 500 Status, the server lives on.
            .layer(from_fn_with_state(state(), recovery::layer))
            // Parse verb/group/resource/namespace/name once, for every layer and the handler.
            .layer(from_fn(info::layer))
            // Count requests in flight so shutdown can wait for them; end watches on shutdown.
            .layer(from_fn_with_state(state(), drain::layer))
            // 504 for a request, not long-running, past --request-timeout (or its shorter ?timeout=).
            .layer(from_fn_with_state(state(), timeout::layer))
            // Answer CORS preflights and add CORS headers for --cors-allowed-origins.
            .layer(from_fn_with_state(state(), cors::layer))
            // Who is asking: client certificate, bearer token or anonymous (401 otherwise).
            .layer(from_fn_with_state(state(), authn::layer))
            // Record the request (as the authenticated user) per --audit-policy-file.
            .layer(from_fn_with_state(state(), audit::layer))
            // Impersonate-* headers: check the `impersonate` verb, then switch user.
            .layer(from_fn_with_state(state(), impersonation::layer))
            // 429 beyond --max-requests-inflight / --max-mutating-requests-inflight.
            .layer(from_fn_with_state(state(), limits::layer))
            // May this user do this? 403 Forbidden otherwise.
            .layer(from_fn_with_state(state(), authz::layer))
            // Admission's warnings as `Warning` headers, its audit annotations into the event.
            .layer(from_fn(admission_notes::layer)),
    )
}

/// The user of a request: set by authentication; a request that never went through it
/// (a test calling the API directly) is the insecure port's user.
pub fn user_of(extensions: &http::Extensions) -> UserInfo {
    extensions
        .get::<UserInfo>()
        .cloned()
        .unwrap_or_else(UserInfo::insecure)
}
