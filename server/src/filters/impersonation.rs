//! Impersonation (kube-apiserver's `WithImpersonation`): `Impersonate-User`,
//! `Impersonate-Group` (repeatable), `Impersonate-Uid` and `Impersonate-Extra-<key>`
//! headers. Each is authorized for the requesting user with the `impersonate` verb — on
//! `users` (or `serviceaccounts` for `system:serviceaccount:<ns>:<name>`) and `groups` in
//! the core group, on `uids` and `userextras/<key>` in `authentication.k8s.io` — and the
//! rest of the chain then runs as the impersonated user. The headers are removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use kubecache_core::authz::{
    Attributes, Decision, GROUP_AUTHENTICATED, GROUP_UNAUTHENTICATED, USER_ANONYMOUS, UserInfo,
};
use kubecache_core::status::ApiError;

use super::authz::forbidden;
use super::{Chain, user_of};
use crate::audit::AuditHandle;
use crate::status_response;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// What the headers ask for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Requested {
    user: Option<String>,
    groups: Vec<String>,
    uid: Option<String>,
    extra: BTreeMap<String, Vec<String>>,
}

impl Requested {
    fn from_headers(headers: &HeaderMap) -> Result<Option<Requested>, ApiError> {
        let text = |value: &http::HeaderValue| {
            value
                .to_str()
                .map(String::from)
                .map_err(|_| ApiError::bad_request("impersonation headers must be ASCII"))
        };
        let mut requested = Requested::default();
        let mut any = false;
        for (name, value) in headers {
            let name = name.as_str();
            if name == USER {
                requested.user = Some(text(value)?);
            } else if name == GROUP {
                requested.groups.push(text(value)?);
            } else if name == UID {
                requested.uid = Some(text(value)?);
            } else if let Some(key) = name.strip_prefix(EXTRA_PREFIX) {
                requested
                    .extra
                    .entry(percent_decode(key).to_lowercase())
                    .or_default()
                    .push(text(value)?);
            } else {
                continue;
            }
            any = true;
        }
        if !any {
            return Ok(None);
        }
        if requested.user.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, a uid or extra fields without impersonating a user",
            ));
        }
        Ok(Some(requested))
    }

    /// The `impersonate` checks, in kube-apiserver's order.
    fn checks(&self, actor: &UserInfo) -> Vec<Attributes> {
        let check =
            |group: &str, resource: &str, subresource: &str, namespace: &str, name: &str| {
                Attributes {
                    user: actor.clone(),
                    verb: "impersonate".to_string(),
                    resource_request: true,
                    namespace: namespace.to_string(),
                    api_group: group.to_string(),
                    resource: resource.to_string(),
                    subresource: subresource.to_string(),
                    name: name.to_string(),
                    ..Attributes::default()
                }
            };
        let mut checks = Vec::new();
        let user = self.user.as_deref().unwrap_or("");
        match service_account(user) {
            Some((namespace, name)) => {
                checks.push(check("", "serviceaccounts", "", namespace, name))
            }
            None => checks.push(check("", "users", "", "", user)),
        }
        for group in &self.groups {
            checks.push(check("", "groups", "", "", group));
        }
        for (key, values) in &self.extra {
            for value in values {
                checks.push(check(AUTHENTICATION_GROUP, "userextras", key, "", value));
            }
        }
        if let Some(uid) = &self.uid {
            checks.push(check(AUTHENTICATION_GROUP, "uids", "", "", uid));
        }
        checks
    }

    /// The user the request runs as.
    fn into_user(self) -> UserInfo {
        let name = self.user.unwrap_or_default();
        let mut groups = self.groups;
        if groups.is_empty()
            && let Some((namespace, _)) = service_account(&name)
        {
            groups.push("system:serviceaccounts".to_string());
            groups.push(format!("system:serviceaccounts:{namespace}"));
        }
        let implied = if name == USER_ANONYMOUS {
            GROUP_UNAUTHENTICATED
        } else {
            GROUP_AUTHENTICATED
        };
        if !groups.iter().any(|g| g == implied) {
            groups.push(implied.to_string());
        }
        UserInfo {
            name,
            uid: self.uid.unwrap_or_default(),
            groups,
            extra: self.extra,
        }
    }
}

fn service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// `%XX` escapes in an extra key (kube-apiserver unescapes header keys this way).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn layer(State(chain): State<Arc<Chain>>, mut request: Request, next: Next) -> Response {
    let requested = match Requested::from_headers(request.headers()) {
        Ok(Some(requested)) => requested,
        Ok(None) => return next.run(request).await,
        Err(err) => return status_response::negotiated(request.headers(), &err),
    };
    let actor = user_of(request.extensions());
    for check in requested.checks(&actor) {
        match chain.authorizer.authorize(&check).await {
            Decision::Allow => {}
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                return status_response::negotiated(request.headers(), &forbidden(&check, &reason));
            }
        }
    }
    let user = requested.into_user();
    AuditHandle::impersonated(request.extensions(), &user);
    let headers = request.headers_mut();
    let names: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
    request.extensions_mut().insert(user);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_to_checks_and_user() {
        let mut headers = HeaderMap::new();
        headers.insert(USER, "system:serviceaccount:ns:robot".parse().unwrap());
        headers.append(GROUP, "dev".parse().unwrap());
        headers.insert("impersonate-extra-scopes%2Fview", "x".parse().unwrap());
        headers.insert(UID, "u-1".parse().unwrap());
        let requested = Requested::from_headers(&headers).unwrap().unwrap();
        let checks = requested.checks(&UserInfo::default());
        let summary: Vec<_> = checks
            .iter()
            .map(|c| {
                format!(
                    "{}/{}/{}/{}/{}",
                    c.api_group, c.resource, c.subresource, c.namespace, c.name
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                "/serviceaccounts//ns/robot",
                "/groups///dev",
                "authentication.k8s.io/userextras/scopes/view//x",
                "authentication.k8s.io/uids///u-1",
            ]
        );
        let user = requested.into_user();
        assert_eq!(user.groups, vec!["dev", "system:authenticated"]);
        assert_eq!(user.uid, "u-1");
        assert_eq!(user.extra["scopes/view"], vec!["x"]);
    }

    #[test]
    fn groups_without_user_is_bad_request() {
        let mut headers = HeaderMap::new();
        headers.insert(GROUP, "dev".parse().unwrap());
        assert_eq!(Requested::from_headers(&headers).unwrap_err().code, 400);
        assert_eq!(Requested::from_headers(&HeaderMap::new()).unwrap(), None);
    }
}
