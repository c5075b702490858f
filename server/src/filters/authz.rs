//! The authorization layer (kube-apiserver's `WithAuthorization`): asks the
//! `--authorization-mode` chain about the request; anything but Allow is a 403 with
//! kube-apiserver's message (`pods is forbidden: User "alice" cannot list resource "pods"
//! in API group "" in the namespace "default"`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kubecache_core::authz::{Attributes, Decision, UserInfo};
use kubecache_core::status::{ApiError, qualified_resource};

use super::info::{RequestInfo, context_of};
use super::{Chain, user_of};
use crate::audit::AuditHandle;
use crate::status_response;

/// Audit annotation keys kube-apiserver uses.
pub const DECISION_ANNOTATION: &str = "authorization.k8s.io/decision";
pub const REASON_ANNOTATION: &str = "authorization.k8s.io/reason";

pub async fn layer(State(chain): State<Arc<Chain>>, request: Request, next: Next) -> Response {
    let context = context_of(request.extensions());
    let attributes = attributes(user_of(request.extensions()), &context.info);
    let (allowed, reason) = match chain.authorizer.authorize(&attributes).await {
        Decision::Allow => (true, String::new()),
        Decision::Deny(reason) | Decision::NoOpinion(reason) => (false, reason),
    };
    let extensions = request.extensions();
    AuditHandle::annotate(
        extensions,
        DECISION_ANNOTATION,
        if allowed { "allow" } else { "forbid" },
    );
    AuditHandle::annotate(extensions, REASON_ANNOTATION, &reason);
    if !allowed {
        tracing::debug!(user = %attributes.user.name, verb = %attributes.verb, path = %attributes.path, "forbidden: {reason}");
        return status_response::negotiated(request.headers(), &forbidden(&attributes, &reason));
    }
    next.run(request).await
}

/// The authorizer's view of a request.
pub fn attributes(user: UserInfo, info: &RequestInfo) -> Attributes {
    Attributes {
        user,
        verb: info.verb.clone(),
        resource_request: info.is_resource_request,
        namespace: info.namespace.clone(),
        api_group: info.api_group.clone(),
        api_version: info.api_version.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        name: info.name.clone(),
        path: info.path.clone(),
    }
}

/// kube-apiserver's 403 for a denied request (`responsewriters.Forbidden`): the forbidden
/// message, the authorizer's reason after a colon when there is one.
pub fn forbidden(attributes: &Attributes, reason: &str) -> ApiError {
    let mut detail = forbidden_message(attributes);
    if !reason.is_empty() {
        detail = format!("{detail}: {reason}");
    }
    let message = if !attributes.resource_request || attributes.resource.is_empty() {
        format!("forbidden: {detail}")
    } else {
        let resource = qualified_resource(&attributes.api_group, &attributes.resource);
        if attributes.name.is_empty() {
            format!("{resource} is forbidden: {detail}")
        } else {
            format!("{resource} {:?} is forbidden: {detail}", attributes.name)
        }
    };
    let mut err = ApiError::forbidden(message);
    if attributes.resource_request {
        err.group = Some(attributes.api_group.clone());
        err.kind = Some(attributes.resource.clone()).filter(|k| !k.is_empty());
        err.name = Some(attributes.name.clone()).filter(|n| !n.is_empty());
    }
    err
}

fn forbidden_message(attributes: &Attributes) -> String {
    let user = &attributes.user.name;
    if !attributes.resource_request {
        return format!(
            "User {user:?} cannot {} path {:?}",
            attributes.verb, attributes.path
        );
    }
    let mut resource = attributes.resource.clone();
    if !attributes.subresource.is_empty() {
        resource = format!("{resource}/{}", attributes.subresource);
    }
    if attributes.namespace.is_empty() {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            attributes.verb, attributes.api_group
        )
    } else {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            attributes.verb, attributes.api_group, attributes.namespace
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn user(name: &str) -> UserInfo {
        UserInfo {
            name: name.to_string(),
            ..UserInfo::default()
        }
    }

    #[test]
    fn kube_messages() {
        let info = RequestInfo::parse(&Method::GET, "/api/v1/namespaces/default/pods", None);
        let err = forbidden(&attributes(user("alice"), &info), "");
        assert_eq!(
            err.message,
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let info = RequestInfo::parse(
            &Method::PUT,
            "/apis/apps/v1/namespaces/a/deployments/web/scale",
            None,
        );
        let err = forbidden(&attributes(user("bob"), &info), "Everything is forbidden.");
        assert_eq!(
            err.message,
            r#"deployments.apps "web" is forbidden: User "bob" cannot update resource "deployments/scale" in API group "apps" in the namespace "a": Everything is forbidden."#
        );
        let info = RequestInfo::parse(&Method::GET, "/api/v1/nodes", None);
        let err = forbidden(&attributes(user("c"), &info), "");
        assert!(
            err.message.ends_with("at the cluster scope"),
            "{}",
            err.message
        );
        let info = RequestInfo::parse(&Method::GET, "/healthz", None);
        let err = forbidden(&attributes(user("c"), &info), "");
        assert_eq!(
            err.message,
            r#"forbidden: User "c" cannot get path "/healthz""#
        );
    }
}
