//! Authorization: the `--authorization-mode` chain (AlwaysAllow, AlwaysDeny, RBAC) and the
//! authorization review APIs. The bootstrap policy, the ClusterRole aggregation controller and
//! the live policy index are in [`kubecache_store::rbac`]: they write and read stored objects,
//! no requests.
//!
//! - [`build`] / [`build_chain`]: the chain of modes, evaluated in order; the first Allow or
//!   Deny wins, and when every mode has no opinion the request is denied. Members of
//!   `system:masters` are allowed before any mode is asked (kube-apiserver's privileged-group
//!   authorizer).
//! - [`rbac`]: kube's RBAC rule evaluation over a live [`PolicyIndex`] that follows the
//!   stored Role/ClusterRole/RoleBinding/ClusterRoleBinding objects through the read path.
//! - [`reviews`]: SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview,
//!   SelfSubjectRulesReview (authorization.k8s.io/v1) and SelfSubjectReview
//!   (authentication.k8s.io/v1): create-only, answered by the chain, never stored.

pub mod rbac;
pub mod reviews;

use std::sync::Arc;

use async_trait::async_trait;
use kubecache_cache::ReadPath;
use kubecache_core::authz::{Attributes, Authorizer, Decision, GROUP_MASTERS, UserInfo};
use kubecache_core::status::{ApiError, qualified_resource};
use kubecache_store::rbac::index::PolicyIndex;

use crate::api::Api;

/// One `--authorization-mode` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    AlwaysAllow,
    AlwaysDeny,
    Rbac,
}

impl AuthorizationMode {
    /// The flag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationMode::AlwaysAllow => "AlwaysAllow",
            AuthorizationMode::AlwaysDeny => "AlwaysDeny",
            AuthorizationMode::Rbac => "RBAC",
        }
    }
}

/// Parses `--authorization-mode`: a comma-separated list of AlwaysAllow, AlwaysDeny, RBAC
/// (kube-apiserver's spelling, case-sensitive). Empty or unknown entries and repeats are
/// errors, as in kube-apiserver.
pub fn parse_modes(flag: &str) -> Result<Vec<AuthorizationMode>, String> {
    let mut modes = Vec::new();
    for entry in flag.split(',').map(str::trim) {
        let mode = match entry {
            "AlwaysAllow" => AuthorizationMode::AlwaysAllow,
            "AlwaysDeny" => AuthorizationMode::AlwaysDeny,
            "RBAC" => AuthorizationMode::Rbac,
            "" => return Err("--authorization-mode: empty authorization mode".to_string()),
            other => {
                return Err(format!(
                    "--authorization-mode: unknown authorization mode {other:?} \
                     (supported: AlwaysAllow, AlwaysDeny, RBAC)"
                ));
            }
        };
        if modes.contains(&mode) {
            return Err(format!(
                "--authorization-mode: mode {:?} given more than once",
                mode.as_str()
            ));
        }
        modes.push(mode);
    }
    Ok(modes)
}

/// The authorizer of `modes`, in order, with `system:masters` always allowed.
pub fn build(modes: &[AuthorizationMode], reads: Arc<dyn ReadPath>) -> Arc<dyn Authorizer> {
    build_chain(modes, reads)
}

/// [`build`], keeping the concrete type: the review APIs also ask it for a user's rules
/// (SelfSubjectRulesReview). Build it once and share it (the RBAC mode keeps a live index).
pub fn build_chain(modes: &[AuthorizationMode], reads: Arc<dyn ReadPath>) -> Arc<Chain> {
    build_chain_at(modes, reads, "/registry")
}

/// [`build_chain`] for objects stored under `storage_root` (`--etcd-prefix`).
pub fn build_chain_at(
    modes: &[AuthorizationMode],
    reads: Arc<dyn ReadPath>,
    storage_root: &str,
) -> Arc<Chain> {
    let links = modes
        .iter()
        .map(|mode| match mode {
            AuthorizationMode::AlwaysAllow => Link::AlwaysAllow,
            AuthorizationMode::AlwaysDeny => Link::AlwaysDeny,
            AuthorizationMode::Rbac => Link::Rbac(rbac::RbacAuthorizer::with_index(
                PolicyIndex::with_root(reads.clone(), storage_root),
            )),
        })
        .collect();
    Arc::new(Chain { links })
}

/// Builds the chain of `modes` for `api` and makes it the one the review APIs answer with
/// (call once at startup; the filter chain should use the returned chain too, so one live
/// RBAC index serves both). Returns the chain already set if there is one.
pub fn install(api: &Api, modes: &[AuthorizationMode]) -> Arc<Chain> {
    api.authorizer
        .get_or_init(|| build_chain_at(modes, api.reads.clone(), &api.storage_root))
        .clone()
}

/// The chain the review APIs answer with: the one installed at startup, else
/// kube-apiserver's default mode (AlwaysAllow).
pub fn chain_of(api: &Api) -> Arc<Chain> {
    install(api, &[AuthorizationMode::AlwaysAllow])
}

/// The authorizers of `--authorization-mode`, in order.
pub struct Chain {
    links: Vec<Link>,
}

enum Link {
    AlwaysAllow,
    AlwaysDeny,
    Rbac(rbac::RbacAuthorizer),
}

/// kube-apiserver's AlwaysDeny reason.
const ALWAYS_DENY_REASON: &str = "Everything is forbidden.";

/// A chain's answer with kube's distinctions, as the access reviews report it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// A mode denied explicitly (AlwaysDeny); false when no mode had an opinion.
    pub denied: bool,
    /// The deciding mode's reason, or every mode's reason for having no opinion.
    pub reason: String,
}

impl Chain {
    /// Asks the modes in order: members of `system:masters` are allowed first; then the
    /// first Allow or Deny wins.
    pub async fn evaluate(&self, attributes: &Attributes) -> Verdict {
        if attributes.user.in_group(GROUP_MASTERS) {
            return Verdict {
                allowed: true,
                ..Verdict::default()
            };
        }
        let mut reasons: Vec<String> = Vec::new();
        for link in &self.links {
            match link {
                Link::AlwaysAllow => {
                    return Verdict {
                        allowed: true,
                        ..Verdict::default()
                    };
                }
                Link::AlwaysDeny => {
                    return Verdict {
                        allowed: false,
                        denied: true,
                        reason: ALWAYS_DENY_REASON.to_string(),
                    };
                }
                Link::Rbac(rbac) => match rbac.evaluate(attributes).await {
                    (Decision::Allow, reason) => {
                        return Verdict {
                            allowed: true,
                            denied: false,
                            reason,
                        };
                    }
                    (Decision::Deny(reason), _) => {
                        return Verdict {
                            allowed: false,
                            denied: true,
                            reason,
                        };
                    }
                    (Decision::NoOpinion(reason), _) => {
                        if !reason.is_empty() {
                            reasons.push(reason);
                        }
                    }
                },
            }
        }
        Verdict {
            allowed: false,
            denied: false,
            reason: reasons.join("\n"),
        }
    }
}

#[async_trait]
impl Authorizer for Chain {
    /// [`Chain::evaluate`]; when no mode has an opinion the request is denied.
    async fn authorize(&self, attributes: &Attributes) -> Decision {
        if attributes.user.in_group(GROUP_MASTERS) {
            return Decision::Allow;
        }
        let mut reasons: Vec<String> = Vec::new();
        for link in &self.links {
            let decision = match link {
                Link::AlwaysAllow => Decision::Allow,
                Link::AlwaysDeny => Decision::Deny(ALWAYS_DENY_REASON.to_string()),
                Link::Rbac(rbac) => rbac.authorize(attributes).await,
            };
            match decision {
                Decision::NoOpinion(reason) => {
                    if !reason.is_empty() {
                        reasons.push(reason);
                    }
                }
                decided => return decided,
            }
        }
        Decision::Deny(reasons.join("\n"))
    }
}

/// kube-apiserver's 403 for a request the chain did not allow: `pods "web" is forbidden: User
/// "alice" cannot get resource "pods" in API group "" in the namespace "dev"`, then `: ` and
/// the chain's reason when it gave one; `forbidden: User "x" cannot get path "/metrics"` for
/// non-resource requests. For the request filter chain.
pub fn forbidden(attributes: &Attributes, reason: &str) -> ApiError {
    let user = &attributes.user.name;
    let verb = &attributes.verb;
    let mut message = if attributes.resource_request {
        let mut resource = attributes.resource.clone();
        if !attributes.subresource.is_empty() {
            resource = format!("{resource}/{}", attributes.subresource);
        }
        let group = &attributes.api_group;
        if attributes.namespace.is_empty() {
            format!(
                "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} at the cluster scope"
            )
        } else {
            format!(
                "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} in the namespace {:?}",
                attributes.namespace
            )
        }
    } else {
        format!("User {user:?} cannot {verb} path {:?}", attributes.path)
    };
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    let prefix = if !attributes.resource_request || attributes.resource.is_empty() {
        "forbidden".to_string()
    } else {
        let qualified = qualified_resource(&attributes.api_group, &attributes.resource);
        if attributes.name.is_empty() {
            format!("{qualified} is forbidden")
        } else {
            format!("{qualified} {:?} is forbidden", attributes.name)
        }
    };
    let mut err = ApiError::forbidden(format!("{prefix}: {message}"));
    if attributes.resource_request {
        err.group = Some(attributes.api_group.clone());
        err.kind = Some(attributes.resource.clone());
        err.name = (!attributes.name.is_empty()).then(|| attributes.name.clone());
    }
    err
}

/// What a user may do in a namespace, as SelfSubjectRulesReview reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRules {
    pub resource_rules: Vec<ResourceRule>,
    pub non_resource_rules: Vec<NonResourceRule>,
    /// Some rules could not be evaluated (a mode that cannot list rules, or errors).
    pub incomplete: bool,
    /// Why rules are missing.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NonResourceRule {
    pub verbs: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

impl Chain {
    /// The rules every mode grants `user` in `namespace` (cluster-wide ones included), in
    /// chain order, as kube's union rule resolver collects them.
    pub async fn rules_for(&self, user: &UserInfo, namespace: &str) -> UserRules {
        let mut rules = UserRules::default();
        for link in &self.links {
            match link {
                Link::AlwaysAllow => {
                    let all = vec!["*".to_string()];
                    rules.resource_rules.push(ResourceRule {
                        verbs: all.clone(),
                        api_groups: all.clone(),
                        resources: all.clone(),
                        resource_names: Vec::new(),
                    });
                    rules.non_resource_rules.push(NonResourceRule {
                        verbs: all.clone(),
                        non_resource_urls: all,
                    });
                }
                Link::AlwaysDeny => {}
                Link::Rbac(rbac) => {
                    let found = rbac.rules_for(user, namespace).await;
                    rules.resource_rules.extend(found.resource_rules);
                    rules.non_resource_rules.extend(found.non_resource_rules);
                    rules.incomplete |= found.incomplete;
                    rules.errors.extend(found.errors);
                }
            }
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_in_order() {
        assert_eq!(
            parse_modes("RBAC,AlwaysDeny").unwrap(),
            vec![AuthorizationMode::Rbac, AuthorizationMode::AlwaysDeny]
        );
        assert_eq!(
            parse_modes("AlwaysAllow").unwrap(),
            vec![AuthorizationMode::AlwaysAllow]
        );
        let err = parse_modes("RBAC,Webhook").unwrap_err();
        assert!(err.contains("\"Webhook\""), "{err}");
        assert!(parse_modes("rbac").is_err());
        assert!(parse_modes("RBAC,,AlwaysAllow").is_err());
        assert!(parse_modes("RBAC,RBAC").is_err());
    }

    #[test]
    fn forbidden_messages_are_kubes() {
        let alice = UserInfo {
            name: "alice".into(),
            ..UserInfo::default()
        };
        let mut a = Attributes {
            user: alice.clone(),
            verb: "get".into(),
            resource_request: true,
            namespace: "dev".into(),
            api_group: "apps".into(),
            resource: "deployments".into(),
            subresource: "scale".into(),
            name: "web".into(),
            ..Attributes::default()
        };
        let err = forbidden(&a, "");
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "deployments.apps \"web\" is forbidden: User \"alice\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"dev\""
        );
        a.namespace.clear();
        a.name.clear();
        a.subresource.clear();
        a.api_group.clear();
        a.resource = "nodes".into();
        a.verb = "list".into();
        assert_eq!(
            forbidden(
                &a,
                "RBAC: clusterrole.rbac.authorization.k8s.io \"x\" not found"
            )
            .message,
            "nodes is forbidden: User \"alice\" cannot list resource \"nodes\" in API group \"\" at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io \"x\" not found"
        );
        let url = Attributes {
            user: alice,
            verb: "get".into(),
            path: "/metrics".into(),
            ..Attributes::default()
        };
        assert_eq!(
            forbidden(&url, "").message,
            "forbidden: User \"alice\" cannot get path \"/metrics\""
        );
    }
}
