//! kube-apiserver's audit policy (`audit.k8s.io/v1` `Policy`, YAML or JSON): rules tried in
//! order, the first that matches a request gives its level and the stages to omit.

use serde::Deserialize;

use crate::filters::info::RequestInfo;
use kubecache_core::authz::UserInfo;

/// How much of a request is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// The points in a request's life at which an event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }
}

/// A `Policy` document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Stages omitted for every rule.
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
}

/// One `PolicyRule`. Empty lists match everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub level: Level,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupResources {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// What the policy says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
}

impl Policy {
    /// Without `--audit-policy-file`: Metadata for everything.
    pub fn metadata_for_everything() -> Policy {
        Policy {
            rules: vec![Rule {
                level: Level::Metadata,
                users: vec![],
                user_groups: vec![],
                verbs: vec![],
                resources: vec![],
                namespaces: vec![],
                non_resource_urls: vec![],
                omit_stages: vec![],
            }],
            omit_stages: vec![],
        }
    }

    /// Parses a policy file (YAML, or JSON which is YAML too).
    pub fn parse(text: &str) -> Result<Policy, String> {
        let value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| format!("invalid audit policy: {e}"))?;
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind != "Policy" {
            return Err(format!("audit policy: kind must be Policy, not {kind:?}"));
        }
        let api_version = value
            .get("apiVersion")
            .and_then(|k| k.as_str())
            .unwrap_or("");
        if !api_version.starts_with("audit.k8s.io/") {
            return Err(format!(
                "audit policy: apiVersion must be audit.k8s.io/v1, not {api_version:?}"
            ));
        }
        let policy: Policy =
            serde_yaml_ng::from_value(value).map_err(|e| format!("invalid audit policy: {e}"))?;
        if policy.rules.is_empty() {
            return Err("audit policy has no rules".to_string());
        }
        Ok(policy)
    }

    /// The level and omitted stages of a request (None when no rule matches).
    pub fn evaluate(&self, user: &UserInfo, info: &RequestInfo) -> Decision {
        for rule in &self.rules {
            if rule.matches(user, info) {
                let mut level = rule.level;
                // Secret and ConfigMap contents are not recorded unless a rule names them.
                if level > Level::Metadata && is_sensitive(info) && !rule.names_resource(info) {
                    level = Level::Metadata;
                }
                let mut omit_stages = self.omit_stages.clone();
                omit_stages.extend(rule.omit_stages.iter().copied());
                return Decision { level, omit_stages };
            }
        }
        Decision {
            level: Level::None,
            omit_stages: vec![],
        }
    }
}

fn is_sensitive(info: &RequestInfo) -> bool {
    info.is_resource_request
        && info.api_group.is_empty()
        && matches!(info.resource.as_str(), "secrets" | "configmaps")
}

impl Rule {
    fn matches(&self, user: &UserInfo, info: &RequestInfo) -> bool {
        if !self.users.is_empty() && !self.users.contains(&user.name) {
            return false;
        }
        if !self.user_groups.is_empty() && !user.groups.iter().any(|g| self.user_groups.contains(g))
        {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.contains(&info.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return info.is_resource_request && self.matches_resource(info);
        }
        if !self.non_resource_urls.is_empty() {
            return !info.is_resource_request && self.matches_path(&info.path);
        }
        true
    }

    fn matches_resource(&self, info: &RequestInfo) -> bool {
        if !self.namespaces.is_empty() && !self.namespaces.contains(&info.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let combined = if info.subresource.is_empty() {
            info.resource.clone()
        } else {
            format!("{}/{}", info.resource, info.subresource)
        };
        self.resources.iter().any(|group| {
            if group.group != info.api_group {
                return false;
            }
            if group.resources.is_empty() {
                return true;
            }
            if !group.resource_names.is_empty() && !group.resource_names.contains(&info.name) {
                return false;
            }
            group.resources.iter().any(|resource| {
                resource == &combined
                    || resource == "*"
                    || (!info.subresource.is_empty()
                        && resource.strip_prefix("*/") == Some(info.subresource.as_str()))
                    || resource.strip_suffix("/*") == Some(info.resource.as_str())
            })
        })
    }

    fn matches_path(&self, path: &str) -> bool {
        self.non_resource_urls
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => pattern == path,
            })
    }

    /// True when a `resources` entry names this resource literally (not by `*`).
    fn names_resource(&self, info: &RequestInfo) -> bool {
        self.resources.iter().any(|group| {
            group.group == info.api_group
                && group.resources.iter().any(|r| {
                    r == &info.resource || r.split('/').next() == Some(info.resource.as_str())
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    users: ["system:kube-proxy"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["secrets"]
        resourceNames: ["visible"]
  - level: Request
    verbs: ["create", "update"]
    namespaces: ["prod"]
  - level: None
    nonResourceURLs: ["/healthz*", "/version"]
  - level: RequestResponse
    resources:
      - group: "apps"
        resources: ["deployments/*"]
  - level: Metadata
    omitStages: ["ResponseStarted"]
"#;

    fn info(method: Method, path: &str) -> RequestInfo {
        RequestInfo::parse(&method, path, None)
    }

    fn user(name: &str) -> UserInfo {
        UserInfo {
            name: name.to_string(),
            ..UserInfo::default()
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let policy = Policy::parse(POLICY).unwrap();
        let level = |u: &str, m: Method, p: &str| policy.evaluate(&user(u), &info(m, p)).level;
        assert_eq!(
            level("system:kube-proxy", Method::GET, "/api/v1/pods"),
            Level::None
        );
        assert_eq!(
            level("a", Method::GET, "/api/v1/namespaces/x/secrets/visible"),
            Level::RequestResponse
        );
        // A create of a secret in prod matches the namespace rule, which does not name
        // secrets: capped at Metadata.
        assert_eq!(
            level("a", Method::POST, "/api/v1/namespaces/prod/secrets"),
            Level::Metadata
        );
        assert_eq!(
            level("a", Method::POST, "/api/v1/namespaces/prod/pods"),
            Level::Request
        );
        assert_eq!(level("a", Method::GET, "/healthz/etcd"), Level::None);
        assert_eq!(
            level(
                "a",
                Method::GET,
                "/apis/apps/v1/namespaces/x/deployments/d/scale"
            ),
            Level::RequestResponse
        );
        // `deployments/*` covers the resource itself too, as in kube-apiserver.
        assert_eq!(
            level("a", Method::GET, "/apis/apps/v1/namespaces/x/deployments/d"),
            Level::RequestResponse
        );
        assert_eq!(
            level("a", Method::GET, "/apis/apps/v1/namespaces/x/replicasets/d"),
            Level::Metadata
        );
        let decision = policy.evaluate(&user("a"), &info(Method::GET, "/api/v1/pods"));
        assert_eq!(
            decision.omit_stages,
            vec![Stage::RequestReceived, Stage::ResponseStarted]
        );
    }

    #[test]
    fn rejects_other_documents() {
        assert!(Policy::parse("kind: Pod\napiVersion: v1\n").is_err());
        assert!(
            Policy::parse("kind: Policy\napiVersion: audit.k8s.io/v1\nrules: [{level: Loud}]")
                .is_err()
        );
        assert!(
            Policy::parse(
                r#"{"kind":"Policy","apiVersion":"audit.k8s.io/v1","rules":[{"level":"Metadata"}]}"#
            )
            .is_ok()
        );
    }
}
