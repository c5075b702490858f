//! Which admission requests a webhook (or, later, a ValidatingAdmissionPolicy binding) applies
//! to, as kube's `webhook/predicates` and `generic` matching decide: its `rules`, its
//! `namespaceSelector`, its `objectSelector` and its `matchPolicy`. Written to be shared by
//! every policy kind that carries these fields: [`Criteria::parse`] reads them from the
//! object (a webhook, or a policy's `matchConstraints`), [`Criteria::matches`] answers for one
//! write.
//!
//! The admission configuration objects themselves are never matched ([`exempt`]), as kube
//! exempts them so that a broken webhook cannot lock out its own repair.

use std::sync::Arc;

use kubecache_apimachinery::registry::Resource;
use kubecache_core::selector::LabelSelector;
use kubecache_core::status::ApiError;
use serde_json::Value;

use crate::{Attributes, read_object};

/// `scope` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// `*` (the default).
    Any,
    Cluster,
    Namespaced,
}

/// One of `rules`: kube's `RuleWithOperations`.
#[derive(Debug, Clone)]
pub struct Rule {
    operations: Vec<String>,
    api_groups: Vec<String>,
    api_versions: Vec<String>,
    resources: Vec<String>,
    scope: Scope,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

impl Rule {
    pub fn parse(rule: &Value) -> Rule {
        Rule {
            operations: strings(&rule["operations"]),
            api_groups: strings(&rule["apiGroups"]),
            api_versions: strings(&rule["apiVersions"]),
            resources: strings(&rule["resources"]),
            scope: match rule["scope"].as_str() {
                Some("Cluster") => Scope::Cluster,
                Some("Namespaced") => Scope::Namespaced,
                _ => Scope::Any,
            },
        }
    }

    /// Whether the rule names this request: operation (`*` for all, CONNECT included), group,
    /// version, `resource[/subresource]` (`*` is every resource but no subresource, `*/*`
    /// everything, `pods/*` every subresource of pods, `*/status` every status) and scope
    /// (by whether the request has a namespace, as kube decides).
    pub fn matches(&self, request: &Request<'_>) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        any(&self.operations, request.operation)
            && any(&self.api_groups, request.group)
            && any(&self.api_versions, request.version)
            && self.matches_resource(request.resource, request.subresource)
            && match self.scope {
                Scope::Any => true,
                Scope::Cluster => !request.namespaced,
                Scope::Namespaced => request.namespaced,
            }
    }

    fn matches_resource(&self, resource: &str, subresource: &str) -> bool {
        let full = if subresource.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{subresource}")
        };
        self.resources.iter().any(|r| {
            if r == "*/*" || r == &full || (r == "*" && subresource.is_empty()) {
                return true;
            }
            match r.split_once('/') {
                Some((res, "*")) => res == resource && !subresource.is_empty(),
                Some(("*", sub)) => sub == subresource,
                _ => false,
            }
        })
    }
}

/// What the rules are checked against: one write, in one group/version.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub resource: &'a str,
    /// Empty for the main resource.
    pub subresource: &'a str,
    /// The request has a namespace.
    pub namespaced: bool,
}

/// Everything that decides whether a webhook (or policy) is called.
#[derive(Debug, Clone)]
pub struct Criteria {
    rules: Vec<Rule>,
    namespace_selector: LabelSelector,
    object_selector: LabelSelector,
    /// `matchPolicy: Equivalent` (the default): a request for another version of the same
    /// resource matches too.
    equivalent: bool,
}

impl Criteria {
    /// Reads `rules`, `namespaceSelector`, `objectSelector` and `matchPolicy` (an absent
    /// selector selects everything). The object is validated when written, so what fails
    /// here is reported, not ignored.
    pub fn parse(object: &Value) -> Result<Criteria, String> {
        let selector = |field: &str| match object.get(field) {
            None | Some(Value::Null) => Ok(LabelSelector::everything()),
            Some(selector) => LabelSelector::from_label_selector_json(selector)
                .map_err(|e| format!("{field}: {}", e.message)),
        };
        Ok(Criteria {
            rules: object["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Rule::parse)
                .collect(),
            namespace_selector: selector("namespaceSelector")?,
            object_selector: selector("objectSelector")?,
            equivalent: object["matchPolicy"] != "Exact",
        })
    }

    /// Whether the write `attrs` of `object` matches; with the resource the call must be made
    /// in (`attrs.resource`, or an equivalent version that the rules name: then the object is
    /// converted to it).
    pub async fn matches(
        &self,
        attrs: &Attributes<'_>,
        object: &Value,
    ) -> Result<Option<Arc<Resource>>, ApiError> {
        if exempt(attrs.resource) || !self.matches_object(object, attrs.old) {
            return Ok(None);
        }
        let Some(resource) = self.matching_resource(attrs) else {
            return Ok(None);
        };
        if !self.matches_namespace(attrs, object).await? {
            return Ok(None);
        }
        Ok(Some(resource))
    }

    /// The rules against the request's own version, then (Equivalent) against the other
    /// served versions of the same group and resource.
    fn matching_resource(&self, attrs: &Attributes<'_>) -> Option<Arc<Resource>> {
        let subresource = attrs.subresource.map(|s| s.as_str()).unwrap_or_default();
        let named_by_rules = |resource: &Resource| {
            let request = Request {
                operation: attrs.operation.as_str(),
                group: &resource.group,
                version: &resource.version,
                resource: &resource.resource,
                subresource,
                namespaced: attrs.namespace.is_some_and(|ns| !ns.is_empty()),
            };
            self.rules.iter().any(|rule| rule.matches(&request))
        };
        let asked = attrs.context.registry().lookup(
            &attrs.resource.group,
            &attrs.resource.version,
            &attrs.resource.resource,
        )?;
        if named_by_rules(&asked) {
            return Some(asked);
        }
        if !self.equivalent {
            return None;
        }
        let snapshot = attrs.context.registry().snapshot();
        snapshot
            .iter()
            .filter(|r| {
                r.group == asked.group && r.resource == asked.resource && r.version != asked.version
            })
            .find(|r| named_by_rules(r))
            .cloned()
    }

    /// `objectSelector` against the new object's labels or the old one's.
    fn matches_object(&self, object: &Value, old: Option<&Value>) -> bool {
        self.object_selector.is_empty()
            || (!object.is_null() && self.object_selector.matches_object(object))
            || old.is_some_and(|old| self.object_selector.matches_object(old))
    }

    /// `namespaceSelector` against the labels of the request's namespace: a cluster-scoped
    /// object other than a Namespace always matches; a Namespace is judged by its own labels.
    async fn matches_namespace(
        &self,
        attrs: &Attributes<'_>,
        object: &Value,
    ) -> Result<bool, ApiError> {
        if self.namespace_selector.is_empty() {
            return Ok(true);
        }
        let is_namespace =
            attrs.resource.group.is_empty() && attrs.resource.resource == "namespaces";
        if is_namespace {
            let own = if object.is_null() {
                attrs.old.unwrap_or(object)
            } else {
                object
            };
            return Ok(self.namespace_selector.matches_object(own));
        }
        let Some(namespace) = attrs.namespace.filter(|ns| !ns.is_empty()) else {
            return Ok(true);
        };
        let found = read_object(attrs.context, "", "v1", "namespaces", None, namespace).await?;
        match found {
            Some(found) => Ok(self.namespace_selector.matches_object(&found)),
            None => Err(ApiError::not_found("", "namespaces", namespace)),
        }
    }
}

/// kube's `IsExemptAdmissionConfigurationResource`: admission's own configuration is never
/// sent to webhooks or policies.
pub fn exempt(resource: &Resource) -> bool {
    resource.group == "admissionregistration.k8s.io"
        && matches!(
            resource.resource.as_str(),
            "validatingwebhookconfigurations"
                | "mutatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
                | "mutatingadmissionpolicies"
                | "mutatingadmissionpolicybindings"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request<'a>(operation: &'a str, resource: &'a str, subresource: &'a str) -> Request<'a> {
        Request {
            operation,
            group: "",
            version: "v1",
            resource,
            subresource,
            namespaced: true,
        }
    }

    fn rule(resources: &[&str]) -> Rule {
        Rule::parse(&json!({
            "operations": ["CREATE", "UPDATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": resources,
        }))
    }

    #[test]
    fn resources_and_subresources_match_as_kube_matches_them() {
        let pods = request("CREATE", "pods", "");
        let status = request("UPDATE", "pods", "status");
        assert!(rule(&["pods"]).matches(&pods));
        assert!(!rule(&["pods"]).matches(&status));
        assert!(rule(&["*"]).matches(&pods));
        assert!(!rule(&["*"]).matches(&status));
        assert!(rule(&["*/*"]).matches(&status));
        assert!(rule(&["pods/*"]).matches(&status));
        assert!(!rule(&["pods/*"]).matches(&pods));
        assert!(rule(&["*/status"]).matches(&status));
        assert!(rule(&["pods/status"]).matches(&status));
        assert!(!rule(&["pods/scale"]).matches(&status));
        assert!(!rule(&["configmaps"]).matches(&pods));
    }

    #[test]
    fn operations_groups_versions_and_scope() {
        let pods = request("DELETE", "pods", "");
        assert!(!rule(&["pods"]).matches(&pods));
        let everything = Rule::parse(&json!({
            "operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"],
            "resources": ["*"], "scope": "Namespaced",
        }));
        assert!(everything.matches(&pods));
        assert!(everything.matches(&request("CONNECT", "pods", "")));
        let cluster = Request {
            namespaced: false,
            ..request("CREATE", "namespaces", "")
        };
        assert!(!everything.matches(&cluster));
        let apps = Request {
            group: "apps",
            ..request("CREATE", "pods", "")
        };
        assert!(!rule(&["pods"]).matches(&apps));
        let v2 = Request {
            version: "v2",
            ..request("CREATE", "pods", "")
        };
        assert!(!rule(&["pods"]).matches(&v2));
    }

    #[test]
    fn object_selector_takes_the_new_or_the_old_labels() {
        let criteria = Criteria::parse(&json!({
            "rules": [],
            "objectSelector": {"matchLabels": {"hook": "on"}},
        }))
        .unwrap();
        let on = json!({"metadata": {"labels": {"hook": "on"}}});
        let off = json!({"metadata": {"labels": {"hook": "off"}}});
        assert!(criteria.matches_object(&on, None));
        assert!(!criteria.matches_object(&off, None));
        assert!(criteria.matches_object(&off, Some(&on)));
        let everything = Criteria::parse(&json!({"rules": []})).unwrap();
        assert!(everything.matches_object(&off, None));
        assert!(everything.equivalent);
        let exact = Criteria::parse(&json!({"matchPolicy": "Exact"})).unwrap();
        assert!(!exact.equivalent);
    }
}
