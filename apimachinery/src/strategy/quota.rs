//! What LimitRange and ResourceQuota objects must say (kube's `ValidateLimitRange`,
//! `ValidateResourceQuota` and `SetDefaults_LimitRangeItem`): resource names that are
//! standard or fully qualified, quantities that parse and are in order, the quota scopes
//! kube knows. Their enforcement (the admission plugins) is not here.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use kubecache_core::quantity::Quantity;
use kubecache_core::status::Cause;
use kubecache_core::validation as names;
use serde_json::{Map, Value, json};

use super::validation::{duplicate, forbidden, invalid, required_because};

/// What kube's decoder says of a quantity it cannot parse.
const QUANTITY_SYNTAX: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// kube's `standardResources` (`IsStandardResourceName`, hugepages aside).
const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

/// kube's `standardQuotaResources`.
const QUOTA_RESOURCES: &[&str] = &[
    "pods",
    "memory",
    "cpu",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// Quota resources counted in whole objects (kube's `IsIntegerResourceName`).
const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// The resources a pod-based scope may limit (kube's `IsResourceQuotaScopeValidForResource`).
const POD_SCOPE_RESOURCES: &[&str] = &[
    "pods",
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
    "VolumeAttributesClass",
];

/// Scopes a quota may not hold together.
const CONFLICTING_SCOPES: [[&str; 2]; 2] = [
    ["BestEffort", "NotBestEffort"],
    ["Terminating", "NotTerminating"],
];

const LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

fn hugepages(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

fn entries(value: &Value) -> impl Iterator<Item = (&String, &Value)> {
    value.as_object().into_iter().flatten()
}

/// kube's `validateResourceName`: a qualified name, and a standard one unless prefixed.
fn resource_name(name: &str, path: &str, out: &mut Vec<Cause>) -> bool {
    let problems = names::is_qualified_name(name);
    for message in &problems {
        out.push(invalid(path, &json!(name), message));
    }
    if !problems.is_empty() {
        return false;
    }
    if !name.contains('/') && !STANDARD_RESOURCES.contains(&name) && !hugepages(name) {
        out.push(invalid(
            path,
            &json!(name),
            "must be a standard resource type or fully qualified",
        ));
    }
    true
}

/// kube's `validateContainerResourceName`, for Pod and Container limits.
fn container_resource_name(name: &str, path: &str, out: &mut Vec<Cause>) {
    let before = out.len();
    if !resource_name(name, path, out) || out.len() > before {
        return;
    }
    let standard =
        ["cpu", "memory", "ephemeral-storage"].contains(&name) || name.starts_with("hugepages-");
    if !name.contains('/') && !standard {
        out.push(invalid(
            path,
            &json!(name),
            "must be a standard resource for containers",
        ));
    }
}

/// The quantity at `path`, or a cause when it does not parse.
fn quantity(value: &Value, path: &str, out: &mut Vec<Cause>) -> Option<Quantity> {
    let parsed = value.as_str().and_then(Quantity::parse);
    if parsed.is_none() {
        out.push(invalid(path, value, QUANTITY_SYNTAX));
    }
    parsed
}

// ---- LimitRange

/// `SetDefaults_LimitRangeItem`: a Container limit's default is its max, its default
/// request its default (else its min).
pub fn default_limit_range(object: &mut Value) {
    let Some(limits) = object
        .pointer_mut("/spec/limits")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for limit in limits.iter_mut().filter(|l| l["type"] == "Container") {
        let fill = |limit: &mut Value, into: &str, from: &str| {
            let from = limit[from].as_object().cloned().unwrap_or_default();
            let mut target = limit[into].as_object().cloned().unwrap_or_default();
            for (name, quantity) in from {
                target.entry(name).or_insert(quantity);
            }
            if !target.is_empty() {
                limit[into] = Value::Object(target);
            }
        };
        fill(limit, "default", "max");
        fill(limit, "defaultRequest", "default");
        fill(limit, "defaultRequest", "min");
    }
}

pub fn validate_limit_range(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let mut types = Vec::new();
    let limits = object
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, limit) in limits.iter().enumerate() {
        let path = format!("spec.limits[{i}]");
        let kind = limit["type"].as_str().unwrap_or("");
        limit_type(kind, &format!("{path}.type"), &mut out);
        if types.contains(&kind) {
            out.push(duplicate(&format!("{path}.type"), &json!(kind)));
        }
        types.push(kind);
        let mut by_field: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        let mut checked = |field: &'static str, out: &mut Vec<Cause>| {
            let mut parsed = Map::new();
            for (name, value) in entries(&limit[field]) {
                let at = format!("{path}.{field}[{name}]");
                if ["Pod", "Container"].contains(&kind) {
                    container_resource_name(name, &at, out);
                } else {
                    resource_name(name, &at, out);
                }
                if quantity(value, &at, out).is_some() {
                    parsed.insert(name.clone(), value.clone());
                }
            }
            by_field.insert(field, parsed);
        };
        checked("max", &mut out);
        checked("min", &mut out);
        if kind == "Pod" {
            for field in ["default", "defaultRequest"] {
                if entries(&limit[field]).next().is_some() {
                    out.push(forbidden(
                        &format!("{path}.{field}"),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        } else {
            checked("default", &mut out);
            checked("defaultRequest", &mut out);
        }
        if kind == "PersistentVolumeClaim"
            && limit.pointer("/min/storage").is_none()
            && limit.pointer("/max/storage").is_none()
        {
            out.push(required_because(
                &format!("{path}.limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            ));
        }
        checked("maxLimitRequestRatio", &mut out);
        limits_in_order(&by_field, &path, &mut out);
    }
    out
}

/// kube's `validateLimitRangeTypeName`.
fn limit_type(kind: &str, path: &str, out: &mut Vec<Cause>) {
    let problems = names::is_qualified_name(kind);
    for message in &problems {
        out.push(invalid(path, &json!(kind), message));
    }
    if problems.is_empty() && !kind.contains('/') && !LIMIT_TYPES.contains(&kind) {
        out.push(invalid(
            path,
            &json!(kind),
            "must be a standard limit type or fully qualified",
        ));
    }
}

/// min ≤ defaultRequest ≤ default ≤ max, and a ratio of at least 1, per resource.
fn limits_in_order(
    by_field: &BTreeMap<&str, Map<String, Value>>,
    path: &str,
    out: &mut Vec<Cause>,
) {
    let get = |field: &str, name: &str| -> Option<(String, Quantity)> {
        let text = by_field.get(field)?.get(name)?.as_str()?;
        Some((text.to_string(), Quantity::parse(text)?))
    };
    let mut resources: Vec<&String> = by_field.values().flat_map(Map::keys).collect();
    resources.sort();
    resources.dedup();
    for name in resources {
        // (lower, upper, the field reported, kube's message); the value reported is the
        // reported field's.
        let pairs = [
            (
                "min",
                "max",
                "min",
                "min value {a} is greater than max value {b}",
            ),
            (
                "min",
                "defaultRequest",
                "defaultRequest",
                "min value {a} is greater than default request value {b}",
            ),
            (
                "defaultRequest",
                "max",
                "defaultRequest",
                "default request value {a} is greater than max value {b}",
            ),
            (
                "defaultRequest",
                "default",
                "defaultRequest",
                "default request value {a} is greater than default limit value {b}",
            ),
            (
                "min",
                "default",
                "default",
                "min value {a} is greater than default value {b}",
            ),
            (
                "default",
                "max",
                "default",
                "default value {a} is greater than max value {b}",
            ),
        ];
        for (lower, upper, field, message) in pairs {
            if let (Some((a, lower_q)), Some((b, upper_q))) = (get(lower, name), get(upper, name))
                && lower_q.compare(&upper_q) == Ordering::Greater
            {
                let reported = if field == lower { &a } else { &b };
                out.push(invalid(
                    &format!("{path}.{field}[{name}]"),
                    &json!(reported),
                    &message.replace("{a}", &a).replace("{b}", &b),
                ));
            }
        }
        if let Some((text, ratio)) = get("maxLimitRequestRatio", name)
            && ratio.compare(&Quantity::from(1)) == Ordering::Less
        {
            out.push(invalid(
                &format!("{path}.maxLimitRequestRatio[{name}]"),
                &json!(text),
                &format!("ratio {text} is less than 1"),
            ));
        }
    }
}

// ---- ResourceQuota

pub fn validate_resource_quota(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = &object["spec"];
    quota_resources(&spec["hard"], "spec.hard", &mut out);
    quota_scopes(spec, &mut out);
    scope_selector(spec, &mut out);
    out.extend(validate_resource_quota_status(object));
    out
}

/// `status.hard` and `status.used`, as a `/status` write sets them.
pub fn validate_resource_quota_status(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    for field in ["hard", "used"] {
        quota_resources(
            &object["status"][field],
            &format!("status.{field}"),
            &mut out,
        );
    }
    out
}

/// kube's `ValidateResourceQuotaResourceName` and `ValidateResourceQuantityValue`.
fn quota_resources(list: &Value, path: &str, out: &mut Vec<Cause>) {
    for (name, value) in entries(list) {
        let at = format!("{path}[{name}]");
        if resource_name(name, &at, out)
            && !name.contains('/')
            && !QUOTA_RESOURCES.contains(&name.as_str())
            && !hugepages(name)
        {
            out.push(invalid(
                &at,
                &json!(name),
                "must be a standard resource for quota",
            ));
        }
        let Some(amount) = quantity(value, &at, out) else {
            continue;
        };
        if amount.sign() < 0 {
            out.push(invalid(&at, value, "must be greater than or equal to 0"));
        }
        let integer = INTEGER_RESOURCES.contains(&name.as_str()) || name.starts_with("count/");
        if integer && amount.as_i64().is_none() {
            out.push(invalid(&at, value, "must be an integer"));
        }
    }
}

fn quota_scopes(spec: &Value, out: &mut Vec<Cause>) {
    let Some(scopes) = spec["scopes"].as_array().filter(|s| !s.is_empty()) else {
        return;
    };
    let value = Value::Array(scopes.clone());
    let mut hard: Vec<&String> = entries(&spec["hard"]).map(|(name, _)| name).collect();
    hard.sort();
    for scope in scopes.iter().map(|s| s.as_str().unwrap_or("")) {
        if !SCOPES.contains(&scope) {
            out.push(invalid("spec.scopes", &value, "unsupported scope"));
        }
        for name in &hard {
            if QUOTA_RESOURCES.contains(&name.as_str()) && !scope_allows(scope, name) {
                out.push(invalid(
                    "spec.scopes",
                    &value,
                    "unsupported scope applied to resource",
                ));
            }
        }
    }
    let held = |scope: &str| scopes.iter().any(|s| s == scope);
    for pair in CONFLICTING_SCOPES {
        if pair.iter().all(|s| held(s)) {
            out.push(invalid("spec.scopes", &value, "conflicting scopes"));
        }
    }
}

fn scope_allows(scope: &str, resource: &str) -> bool {
    match scope {
        "BestEffort" => resource == "pods",
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => POD_SCOPE_RESOURCES.contains(&resource),
        _ => true,
    }
}

/// kube's `validateScopedResourceSelectorRequirement`.
fn scope_selector(spec: &Value, out: &mut Vec<Cause>) {
    let Some(expressions) = spec
        .pointer("/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
    else {
        return;
    };
    let path = "spec.scopeSelector.matchExpressions";
    let mut held = Vec::new();
    for expression in expressions {
        let scope = expression["scopeName"].as_str().unwrap_or("");
        let operator = expression["operator"].as_str().unwrap_or("");
        let values = expression["values"].as_array().map_or(0, Vec::len);
        if !SCOPES.contains(&scope) {
            out.push(invalid(
                &format!("{path}.scopeName"),
                &json!(scope),
                "unsupported scope",
            ));
        }
        let exists_only = [
            "BestEffort",
            "NotBestEffort",
            "Terminating",
            "NotTerminating",
            "CrossNamespacePodAffinity",
        ];
        if exists_only.contains(&scope) && operator != "Exists" {
            out.push(invalid(
                &format!("{path}.operator"),
                &json!(operator),
                "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
            ));
        }
        match operator {
            "In" | "NotIn" if values == 0 => out.push(required_because(
                &format!("{path}.values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            )),
            "Exists" | "DoesNotExist" if values != 0 => out.push(invalid(
                &format!("{path}.values"),
                &expression["values"],
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => out.push(invalid(
                &format!("{path}.operator"),
                &json!(operator),
                "not a valid selector operator",
            )),
        }
        held.push(scope);
    }
    for pair in CONFLICTING_SCOPES {
        if pair.iter().all(|s| held.contains(s)) {
            out.push(invalid(path, &spec["scopeSelector"], "conflicting scopes"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn container_limits_default_from_max_and_min() {
        let mut object = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
            {"type": "Pod", "max": {"cpu": "4"}},
        ]}});
        default_limit_range(&mut object);
        let container = &object["spec"]["limits"][0];
        assert_eq!(container["default"], json!({"cpu": "2"}));
        assert_eq!(
            container["defaultRequest"],
            json!({"cpu": "2", "memory": "64Mi"})
        );
        assert!(object["spec"]["limits"][1].get("default").is_none());
    }

    #[test]
    fn limit_range_causes() {
        let object = json!({"spec": {"limits": [
            {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1", "gpu": "1"}},
            {"type": "Pod", "default": {"cpu": "1"}},
            {"type": "Pod"},
            {"type": "Widget", "max": {"memory": "lots"}},
        ]}});
        let got = messages(&validate_limit_range(&object));
        for expected in [
            "spec.limits[0].max[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
            "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
            "spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod'",
            "spec.limits[2].type: Duplicate value: \"Pod\"",
            "spec.limits[3].type: Invalid value: \"Widget\": must be a standard limit type or fully qualified",
        ] {
            assert!(
                got.contains(&expected.to_string()),
                "{expected} not in {got:#?}"
            );
        }
        assert!(got.iter().any(|m| m.starts_with(
            "spec.limits[3].max[memory]: Invalid value: \"lots\": quantities must match"
        )));
    }

    #[test]
    fn resource_quota_causes() {
        let object = json!({"spec": {
            "hard": {"pods": "1.5", "requests.cpu": "-1", "widgets": "1", "count/deployments.apps": "2"},
            "scopes": ["Terminating", "NotTerminating", "Sometimes"],
        }});
        let got = messages(&validate_resource_quota(&object));
        for expected in [
            "spec.hard[pods]: Invalid value: \"1.5\": must be an integer",
            "spec.hard[requests.cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
            "spec.hard[widgets]: Invalid value: \"widgets\": must be a standard resource for quota",
            "spec.scopes: Invalid value: [\"Terminating\",\"NotTerminating\",\"Sometimes\"]: unsupported scope",
            "spec.scopes: Invalid value: [\"Terminating\",\"NotTerminating\",\"Sometimes\"]: conflicting scopes",
        ] {
            assert!(
                got.contains(&expected.to_string()),
                "{expected} not in {got:#?}"
            );
        }
        assert!(!got.iter().any(|m| m.contains("count/")), "{got:#?}");
    }
}
