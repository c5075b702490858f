//! Who is asking and what they ask for: the vocabulary shared by authentication (which
//! produces a [`UserInfo`]), impersonation, audit and authorization (which decides on
//! [`Attributes`]). Mirrors kube-apiserver's `user.Info` and `authorizer.Attributes`.

use std::collections::BTreeMap;

use async_trait::async_trait;

/// Group every authenticated user is in.
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";
/// Group of the anonymous user.
pub const GROUP_UNAUTHENTICATED: &str = "system:unauthenticated";
/// Members are allowed everything, whatever the authorizer chain says.
pub const GROUP_MASTERS: &str = "system:masters";
/// The user of requests without credentials when anonymous auth is on.
pub const USER_ANONYMOUS: &str = "system:anonymous";
/// The user of requests on the insecure (plain HTTP, loopback) port, as in kube-apiserver
/// before that port was removed: trusted, in `system:masters`.
pub const USER_INSECURE: &str = "system:unsecured";

/// An authenticated (or impersonated) user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: USER_ANONYMOUS.to_string(),
            groups: vec![GROUP_UNAUTHENTICATED.to_string()],
            ..UserInfo::default()
        }
    }

    /// Requests on the insecure port, and requests that carry no `UserInfo` extension (tests
    /// that call the API directly), run as this user.
    pub fn insecure() -> UserInfo {
        UserInfo {
            name: USER_INSECURE.to_string(),
            groups: vec![GROUP_MASTERS.to_string(), GROUP_AUTHENTICATED.to_string()],
            ..UserInfo::default()
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// One request as an authorizer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection,
    /// impersonate, … for resource requests; the lower-cased HTTP method for the others.
    pub verb: String,
    /// False for non-resource URLs such as `/healthz` or `/apis`.
    pub resource_request: bool,
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The request path, used for non-resource requests.
    pub path: String,
}

/// An authorizer's answer. `NoOpinion` passes the question to the next authorizer in
/// `--authorization-mode`; when none allows, the request is forbidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
    NoOpinion(String),
}

/// Decides whether a request may proceed.
#[async_trait]
pub trait Authorizer: Send + Sync {
    async fn authorize(&self, attributes: &Attributes) -> Decision;
}
