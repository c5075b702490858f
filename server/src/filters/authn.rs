//! The authentication layer: sets the request's [`UserInfo`] (see [`crate::authn`]).
//! Requests on the insecure port run as `system:unsecured` (in `system:masters`); on the
//! secure port a bad credential, or none with `--anonymous-auth=false`, is a 401. The
//! `Authorization` header is removed once used, as kube-apiserver does.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kubecache_core::authz::UserInfo;
use kubecache_core::status::{ApiError, Reason};

use super::Chain;
use crate::authn::Connection;
use crate::status_response;

pub async fn layer(State(chain): State<Arc<Chain>>, mut request: Request, next: Next) -> Response {
    let user = match request.extensions().get::<Connection>() {
        Some(connection) if connection.secure => {
            match chain
                .authenticator
                .authenticate(&chain.api, request.headers(), connection)
                .await
            {
                Ok(user) => user,
                Err(e) => {
                    tracing::debug!(uri = %request.uri(), "unable to authenticate the request: {e}");
                    super::audit::failed_authentication(&chain, &request);
                    return status_response::negotiated(
                        request.headers(),
                        &ApiError::new(401, Reason::Unauthorized, "Unauthorized"),
                    );
                }
            }
        }
        _ => UserInfo::insecure(),
    };
    request.headers_mut().remove(http::header::AUTHORIZATION);
    request.extensions_mut().insert(user);
    next.run(request).await
}
