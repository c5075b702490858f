//! kube's RBAC authorizer over the live [`Policy`]: a request is allowed when a rule of a role
//! bound to the user allows it. ClusterRoleBindings apply everywhere, RoleBindings in their
//! namespace (a RoleBinding may reference a ClusterRole, whose rules then apply in the
//! binding's namespace only). RBAC never denies: without an allowing rule it has no opinion,
//! and the reason lists the bindings that referenced missing roles, as kube's does.

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use kubecache_cache::ReadPath;
use kubecache_core::authz::{Attributes, Decision, UserInfo};

use super::{NonResourceRule, ResourceRule, UserRules};
use kubecache_store::rbac::index::{Policy, PolicyIndex};

/// The RBAC mode of the chain.
pub struct RbacAuthorizer {
    index: Arc<PolicyIndex>,
}

impl RbacAuthorizer {
    pub fn new(reads: Arc<dyn ReadPath>) -> RbacAuthorizer {
        RbacAuthorizer::with_index(PolicyIndex::new(reads))
    }

    pub fn with_index(index: Arc<PolicyIndex>) -> RbacAuthorizer {
        RbacAuthorizer { index }
    }

    pub async fn authorize(&self, attributes: &Attributes) -> Decision {
        let policy = self.index.snapshot().await;
        authorize(&policy, attributes)
    }

    /// The decision and, when allowed, kube's reason ("RBAC: allowed by …").
    pub async fn evaluate(&self, attributes: &Attributes) -> (Decision, String) {
        let policy = self.index.snapshot().await;
        match authorize(&policy, attributes) {
            Decision::Allow => (
                Decision::Allow,
                allowed_by(&policy, attributes).unwrap_or_default(),
            ),
            other => (other, String::new()),
        }
    }

    pub async fn rules_for(&self, user: &UserInfo, namespace: &str) -> UserRules {
        let policy = self.index.snapshot().await;
        rules_for(&policy, user, namespace)
    }
}

/// Decides `attributes` against `policy` (see the module documentation).
pub fn authorize(policy: &Policy, attributes: &Attributes) -> Decision {
    let mut errors = Vec::new();
    let mut allowed = false;
    visit_rules(
        policy,
        &attributes.user,
        &attributes.namespace,
        |_, rule| {
            match rule {
                Ok(rule) => {
                    if rule_allows(attributes, rule) {
                        allowed = true;
                        return false;
                    }
                }
                Err(e) => errors.push(e),
            }
            true
        },
    );
    if allowed {
        Decision::Allow
    } else if errors.is_empty() {
        Decision::NoOpinion(String::new())
    } else {
        Decision::NoOpinion(format!("RBAC: {}", aggregate(errors)))
    }
}

/// The reason kube gives for an RBAC allow: `RBAC: allowed by ClusterRoleBinding "x" of
/// ClusterRole "y" to Group "z"`; `None` when RBAC does not allow.
pub fn allowed_by(policy: &Policy, attributes: &Attributes) -> Option<String> {
    let mut found = None;
    visit_rules(
        policy,
        &attributes.user,
        &attributes.namespace,
        |source, rule| {
            if rule.is_ok_and(|r| rule_allows(attributes, r)) {
                found = Some(format!("RBAC: allowed by {}", source.describe()));
                return false;
            }
            true
        },
    );
    found
}

/// Every rule bound to `user` in `namespace` (cluster-wide rules included).
pub fn rules_for(policy: &Policy, user: &UserInfo, namespace: &str) -> UserRules {
    let mut rules = UserRules::default();
    visit_rules(policy, user, namespace, |_, rule| {
        match rule {
            Ok(rule) => {
                if rule.resources.as_ref().is_some_and(|r| !r.is_empty()) {
                    rules.resource_rules.push(ResourceRule {
                        verbs: rule.verbs.clone(),
                        api_groups: rule.api_groups.clone().unwrap_or_default(),
                        resources: rule.resources.clone().unwrap_or_default(),
                        resource_names: rule.resource_names.clone().unwrap_or_default(),
                    });
                }
                if rule
                    .non_resource_urls
                    .as_ref()
                    .is_some_and(|u| !u.is_empty())
                {
                    rules.non_resource_rules.push(NonResourceRule {
                        verbs: rule.verbs.clone(),
                        non_resource_urls: rule.non_resource_urls.clone().unwrap_or_default(),
                    });
                }
            }
            Err(e) => rules.errors.push(e),
        }
        true
    });
    // kube's RBAC rule resolver reports errors but never marks its answer incomplete.
    rules
}

/// Where a rule came from, for the allow reason.
pub struct Source<'a> {
    binding_kind: &'static str,
    binding_name: &'a str,
    binding_namespace: &'a str,
    role_ref: &'a RoleRef,
    subject: &'a Subject,
}

impl Source<'_> {
    /// kube's wording: `RoleBinding "name/ns" of ClusterRole "view" to User "alice"`.
    pub fn describe(&self) -> String {
        let binding = if self.binding_namespace.is_empty() {
            self.binding_name.to_string()
        } else {
            format!("{}/{}", self.binding_name, self.binding_namespace)
        };
        format!(
            "{} {:?} of {} {:?} to {}",
            self.binding_kind,
            binding,
            self.role_ref.kind,
            self.role_ref.name,
            describe_subject(self.subject, self.binding_namespace)
        )
    }
}

fn describe_subject(subject: &Subject, binding_namespace: &str) -> String {
    if subject.kind == "ServiceAccount" {
        let ns = subject
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(binding_namespace);
        format!("{} {:?}", subject.kind, format!("{}/{}", subject.name, ns))
    } else {
        format!("{} {:?}", subject.kind, subject.name)
    }
}

/// Calls `visit` with each rule that applies to `user` in `namespace` — ClusterRoleBindings
/// first, then the namespace's RoleBindings — or with the error of a role that cannot be
/// resolved. `visit` returns false to stop.
pub fn visit_rules<'p>(
    policy: &'p Policy,
    user: &UserInfo,
    namespace: &str,
    mut visit: impl FnMut(&Source<'p>, Result<&'p PolicyRule, String>) -> bool,
) {
    for binding in policy.cluster_role_bindings.values() {
        let Some(subject) = applies_to(user, binding.subjects.as_deref(), "") else {
            continue;
        };
        let source = Source {
            binding_kind: "ClusterRoleBinding",
            binding_name: binding.metadata.name.as_deref().unwrap_or(""),
            binding_namespace: "",
            role_ref: &binding.role_ref,
            subject,
        };
        if !visit_role(policy, &binding.role_ref, "", &source, &mut visit) {
            return;
        }
    }
    if namespace.is_empty() {
        return;
    }
    for binding in policy.role_bindings_in(namespace) {
        let Some(subject) = applies_to(user, binding.subjects.as_deref(), namespace) else {
            continue;
        };
        let source = Source {
            binding_kind: "RoleBinding",
            binding_name: binding.metadata.name.as_deref().unwrap_or(""),
            binding_namespace: binding.metadata.namespace.as_deref().unwrap_or(""),
            role_ref: &binding.role_ref,
            subject,
        };
        if !visit_role(policy, &binding.role_ref, namespace, &source, &mut visit) {
            return;
        }
    }
}

/// Visits the rules of the role `role_ref` names; false when `visit` asked to stop.
fn visit_role<'p>(
    policy: &'p Policy,
    role_ref: &RoleRef,
    namespace: &str,
    source: &Source<'p>,
    visit: &mut impl FnMut(&Source<'p>, Result<&'p PolicyRule, String>) -> bool,
) -> bool {
    let rules: &'p [PolicyRule] = match role_ref.kind.as_str() {
        "ClusterRole" => match policy.cluster_role(&role_ref.name) {
            Some(role) => role.rules.as_deref().unwrap_or_default(),
            None => {
                return visit(
                    source,
                    Err(format!(
                        "clusterrole.rbac.authorization.k8s.io {:?} not found",
                        role_ref.name
                    )),
                );
            }
        },
        "Role" => match policy.role(namespace, &role_ref.name) {
            Some(role) => role.rules.as_deref().unwrap_or_default(),
            None => {
                return visit(
                    source,
                    Err(format!(
                        "role.rbac.authorization.k8s.io {:?} not found",
                        role_ref.name
                    )),
                );
            }
        },
        other => {
            return visit(
                source,
                Err(format!("unsupported role reference kind: {other:?}")),
            );
        }
    };
    rules.iter().all(|rule| visit(source, Ok(rule)))
}

/// The first subject of a binding that names `user` (`binding_namespace` defaults a
/// ServiceAccount subject's namespace in a RoleBinding).
fn applies_to<'b>(
    user: &UserInfo,
    subjects: Option<&'b [Subject]>,
    binding_namespace: &str,
) -> Option<&'b Subject> {
    subjects?
        .iter()
        .find(|subject| match subject.kind.as_str() {
            "User" => user.name == subject.name,
            "Group" => user.in_group(&subject.name),
            "ServiceAccount" => {
                let ns = subject
                    .namespace
                    .as_deref()
                    .filter(|ns| !ns.is_empty())
                    .unwrap_or(binding_namespace);
                !ns.is_empty() && user.name == service_account_username(ns, &subject.name)
            }
            _ => false,
        })
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Whether `rule` allows the request (kube's `RuleAllows`).
pub fn rule_allows(attributes: &Attributes, rule: &PolicyRule) -> bool {
    if !verb_matches(rule, &attributes.verb) {
        return false;
    }
    if attributes.resource_request {
        let combined = if attributes.subresource.is_empty() {
            attributes.resource.clone()
        } else {
            format!("{}/{}", attributes.resource, attributes.subresource)
        };
        api_group_matches(rule, &attributes.api_group)
            && resource_matches(rule, &combined, &attributes.subresource)
            && resource_name_matches(rule, &attributes.name)
    } else {
        non_resource_url_matches(rule, &attributes.path)
    }
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups
        .iter()
        .flatten()
        .any(|g| g == "*" || g == group)
}

/// `*` matches every resource and subresource; `*/scale` matches the scale subresource of
/// every resource; otherwise `resource` or `resource/subresource` exactly.
fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().flatten().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty()
                && r.strip_prefix("*/").is_some_and(|sub| sub == subresource))
    })
}

/// No resourceNames: every name; otherwise one of them (a request without a name — list,
/// create — never matches a rule with resourceNames).
fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => names.iter().any(|n| n == name),
    }
}

/// `*` matches every path; a trailing `*` matches by prefix.
fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().flatten().any(|url| {
        url == "*"
            || url == path
            || url
                .strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// Several errors as Go's `utilerrors.NewAggregate` prints them, without repeats.
fn aggregate(mut errors: Vec<String>) -> String {
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.clone()));
    if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("[{}]", errors.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;

    fn objects<T: serde::de::DeserializeOwned>(
        items: &[Value],
    ) -> kubecache_store::rbac::index::Objects<T> {
        let mut map = BTreeMap::new();
        for item in items {
            let name = item["metadata"]["name"].as_str().unwrap();
            let key = match item["metadata"]["namespace"].as_str() {
                Some(ns) => format!("{ns}/{name}"),
                None => name.to_string(),
            };
            map.insert(key, Arc::new(serde_json::from_value(item.clone()).unwrap()));
        }
        Arc::new(map)
    }

    fn subject(kind: &str, name: &str) -> Value {
        match kind {
            "ServiceAccount" => {
                let (ns, name) = name.split_once(':').unwrap();
                json!({"kind": kind, "name": name, "namespace": ns})
            }
            _ => json!({"kind": kind, "name": name, "apiGroup": "rbac.authorization.k8s.io"}),
        }
    }

    fn binding(
        ns: Option<&str>,
        name: &str,
        role_kind: &str,
        role: &str,
        subjects: &[Value],
    ) -> Value {
        let mut meta = json!({"name": name});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        json!({
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": subjects,
        })
    }

    fn policy() -> Policy {
        Policy {
            cluster_roles: objects(&[
                json!({"metadata": {"name": "reader"}, "rules": [
                    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
                ]}),
                json!({"metadata": {"name": "scaler"}, "rules": [
                    {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update", "patch"]},
                ]}),
                json!({"metadata": {"name": "health"}, "rules": [
                    {"nonResourceURLs": ["/healthz", "/logs/*"], "verbs": ["get"]},
                ]}),
                json!({"metadata": {"name": "one-config"}, "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app"], "verbs": ["get", "list", "update"]},
                ]}),
                json!({"metadata": {"name": "everything-apps"}, "rules": [
                    {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]},
                ]}),
            ]),
            roles: objects(&[
                json!({"metadata": {"name": "status-writer", "namespace": "dev"}, "rules": [
                    {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update"]},
                ]}),
            ]),
            cluster_role_bindings: objects(&[
                binding(
                    None,
                    "readers",
                    "ClusterRole",
                    "reader",
                    &[subject("Group", "readers")],
                ),
                binding(
                    None,
                    "bob-health",
                    "ClusterRole",
                    "health",
                    &[subject("User", "bob")],
                ),
                binding(
                    None,
                    "ghost",
                    "ClusterRole",
                    "missing",
                    &[subject("User", "carol")],
                ),
                binding(
                    None,
                    "sa-apps",
                    "ClusterRole",
                    "everything-apps",
                    &[subject("ServiceAccount", "ci:deployer")],
                ),
                // A ServiceAccount subject without a namespace never matches cluster-wide.
                binding(
                    None,
                    "sa-nons",
                    "ClusterRole",
                    "reader",
                    &[json!({"kind": "ServiceAccount", "name": "deployer"})],
                ),
            ]),
            role_bindings: objects(&[
                binding(
                    Some("dev"),
                    "alice-scaler",
                    "ClusterRole",
                    "scaler",
                    &[subject("User", "alice")],
                ),
                binding(
                    Some("dev"),
                    "alice-status",
                    "Role",
                    "status-writer",
                    &[subject("User", "alice")],
                ),
                binding(
                    Some("dev"),
                    "alice-config",
                    "ClusterRole",
                    "one-config",
                    &[subject("User", "alice")],
                ),
                binding(
                    Some("dev"),
                    "all-sas",
                    "ClusterRole",
                    "reader",
                    &[subject("Group", "system:serviceaccounts:dev")],
                ),
                // A ServiceAccount subject without a namespace means the binding's namespace.
                binding(
                    Some("dev"),
                    "dev-builder",
                    "ClusterRole",
                    "everything-apps",
                    &[json!({"kind": "ServiceAccount", "name": "builder"})],
                ),
                binding(
                    Some("dev"),
                    "broken",
                    "Role",
                    "nope",
                    &[subject("User", "carol")],
                ),
            ]),
        }
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    fn resource(
        user: UserInfo,
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            user,
            verb: verb.into(),
            resource_request: true,
            namespace: ns.into(),
            api_group: group.into(),
            api_version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    fn url(user: UserInfo, verb: &str, path: &str) -> Attributes {
        Attributes {
            user,
            verb: verb.into(),
            path: path.into(),
            ..Attributes::default()
        }
    }

    #[test]
    fn the_matrix() {
        let p = policy();
        let alice = || user("alice", &["system:authenticated"]);
        let reader = || user("dora", &["readers"]);
        let sa = |ns: &str, name: &str| {
            user(
                &service_account_username(ns, name),
                &[
                    "system:serviceaccounts",
                    &format!("system:serviceaccounts:{ns}"),
                ],
            )
        };
        let cases: Vec<(Attributes, bool)> = vec![
            // Groups through a ClusterRoleBinding: everywhere, only the verbs listed.
            (resource(reader(), "list", "", "pods", "", "", ""), true),
            (resource(reader(), "get", "", "pods", "", "any", "p"), true),
            (
                resource(reader(), "delete", "", "pods", "", "any", "p"),
                false,
            ),
            (
                resource(reader(), "get", "", "pods", "log", "any", "p"),
                true,
            ),
            (
                resource(reader(), "get", "", "pods", "exec", "any", "p"),
                false,
            ),
            (
                resource(reader(), "get", "apps", "pods", "", "any", "p"),
                false,
            ),
            (
                resource(user("dora", &[]), "get", "", "pods", "", "any", "p"),
                false,
            ),
            // RoleBinding → ClusterRole: only in the binding's namespace; `*/scale`.
            (
                resource(
                    alice(),
                    "update",
                    "apps",
                    "deployments",
                    "scale",
                    "dev",
                    "web",
                ),
                true,
            ),
            (
                resource(
                    alice(),
                    "patch",
                    "apps",
                    "statefulsets",
                    "scale",
                    "dev",
                    "db",
                ),
                true,
            ),
            (
                resource(
                    alice(),
                    "update",
                    "apps",
                    "deployments",
                    "scale",
                    "prod",
                    "web",
                ),
                false,
            ),
            (
                resource(alice(), "update", "apps", "deployments", "", "dev", "web"),
                false,
            ),
            (
                resource(
                    alice(),
                    "update",
                    "apps",
                    "deployments",
                    "status",
                    "dev",
                    "web",
                ),
                false,
            ),
            // RoleBinding → Role, a subresource.
            (
                resource(alice(), "update", "", "pods", "status", "dev", "p"),
                true,
            ),
            (
                resource(alice(), "update", "", "pods", "", "dev", "p"),
                false,
            ),
            // resourceNames: that name only, never a list or a create.
            (
                resource(alice(), "get", "", "configmaps", "", "dev", "app"),
                true,
            ),
            (
                resource(alice(), "get", "", "configmaps", "", "dev", "other"),
                false,
            ),
            (
                resource(alice(), "list", "", "configmaps", "", "dev", ""),
                false,
            ),
            // Non-resource URLs, exact and by prefix.
            (url(user("bob", &[]), "get", "/healthz"), true),
            (url(user("bob", &[]), "get", "/healthz/etcd"), false),
            (url(user("bob", &[]), "get", "/logs/kube.log"), true),
            (url(user("bob", &[]), "post", "/healthz"), false),
            (url(alice(), "get", "/healthz"), false),
            // Service accounts, by username and by group; wildcards.
            (
                resource(
                    sa("ci", "deployer"),
                    "delete",
                    "apps",
                    "deployments",
                    "",
                    "x",
                    "d",
                ),
                true,
            ),
            (
                resource(
                    sa("ci", "deployer"),
                    "create",
                    "apps",
                    "replicasets",
                    "scale",
                    "x",
                    "",
                ),
                true,
            ),
            (
                resource(sa("ci", "deployer"), "get", "", "pods", "", "x", "p"),
                false,
            ),
            (
                resource(
                    sa("other", "deployer"),
                    "delete",
                    "apps",
                    "deployments",
                    "",
                    "x",
                    "d",
                ),
                false,
            ),
            (
                resource(sa("dev", "anyone"), "get", "", "pods", "", "dev", "p"),
                true,
            ),
            (
                resource(sa("dev", "anyone"), "get", "", "pods", "", "prod", "p"),
                false,
            ),
            (
                resource(
                    sa("dev", "builder"),
                    "create",
                    "apps",
                    "deployments",
                    "",
                    "dev",
                    "",
                ),
                true,
            ),
            (
                resource(
                    sa("prod", "builder"),
                    "create",
                    "apps",
                    "deployments",
                    "",
                    "dev",
                    "",
                ),
                false,
            ),
        ];
        for (attributes, expected) in cases {
            let decision = authorize(&p, &attributes);
            assert_eq!(
                decision == Decision::Allow,
                expected,
                "{attributes:?} → {decision:?}"
            );
        }
    }

    #[test]
    fn reasons_are_kubes() {
        let p = policy();
        let carol = user("carol", &[]);
        // Both missing roles are reported, cluster-wide first.
        assert_eq!(
            authorize(
                &p,
                &resource(carol.clone(), "get", "", "pods", "", "dev", "p")
            ),
            Decision::NoOpinion(
                "RBAC: [clusterrole.rbac.authorization.k8s.io \"missing\" not found, \
                 role.rbac.authorization.k8s.io \"nope\" not found]"
                    .into()
            )
        );
        assert_eq!(
            authorize(&p, &resource(carol, "get", "", "pods", "", "", "p")),
            Decision::NoOpinion(
                "RBAC: clusterrole.rbac.authorization.k8s.io \"missing\" not found".into()
            )
        );
        assert_eq!(
            authorize(
                &p,
                &resource(user("x", &[]), "get", "", "pods", "", "", "p")
            ),
            Decision::NoOpinion(String::new())
        );
        let a = resource(user("dora", &["readers"]), "get", "", "pods", "", "", "p");
        assert_eq!(
            allowed_by(&p, &a).unwrap(),
            "RBAC: allowed by ClusterRoleBinding \"readers\" of ClusterRole \"reader\" to Group \"readers\""
        );
        let sa = user("system:serviceaccount:dev:builder", &[]);
        let a = resource(sa, "get", "apps", "deployments", "", "dev", "d");
        assert_eq!(
            allowed_by(&p, &a).unwrap(),
            "RBAC: allowed by RoleBinding \"dev-builder/dev\" of ClusterRole \"everything-apps\" to ServiceAccount \"builder/dev\""
        );
    }

    #[test]
    fn rules_for_lists_cluster_and_namespace_rules() {
        let p = policy();
        let rules = rules_for(&p, &user("alice", &["readers"]), "dev");
        let resources: Vec<Vec<String>> = rules
            .resource_rules
            .iter()
            .map(|r| r.resources.clone())
            .collect();
        // Cluster-wide first, then the namespace's bindings in name order.
        let expected: Vec<Vec<&str>> = vec![
            vec!["pods", "pods/log"],
            vec!["configmaps"],
            vec!["*/scale"],
            vec!["pods/status"],
        ];
        assert_eq!(resources, expected);
        assert_eq!(rules.resource_rules[1].resource_names, vec!["app"]);
        assert!(rules.errors.is_empty());
        let carol = rules_for(&p, &user("carol", &[]), "dev");
        assert_eq!(carol.errors.len(), 2);
    }
}
