//! admissionregistration.k8s.io/v1: webhook configurations and validating admission policies
//! with their bindings (kube's `pkg/registry/admissionregistration`). They are served only:
//! calling the webhooks and evaluating the policies is the admission chain's, not yet done.
//! Defaults are kube's `pkg/apis/admissionregistration/v1/defaults.go`, validation the rules
//! of its `validation.go` that clients meet (names, client configs, rules, enums, timeouts,
//! CEL expressions that parse).

use std::collections::HashSet;

use k8s_openapi::api::admissionregistration::v1 as api;
use kubecache_apiextensions::cel;
use kubecache_core::registry::{CLUSTER, ResourceInfo};
use kubecache_core::status::Cause;
use kubecache_core::validation as names;
use serde_json::{Value, json};

use super::defaults::{at, each, set};
use super::validation::{
    array_at, duplicate, invalid, not_supported, required, required_because, str_at,
};
use super::{DefaultContext, Strategy, typed_as};
use crate::table::{self, Printer};

const CATEGORY: &[&str] = &["api-extensions"];

pub struct MutatingWebhookConfigurations;

impl Strategy for MutatingWebhookConfigurations {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "mutatingwebhookconfiguration",
            "MutatingWebhookConfiguration",
            CLUSTER,
        )
        .categories(CATEGORY)
    }
    typed_as!(api::MutatingWebhookConfiguration);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        each(object, "webhooks", |hook| {
            webhook_defaults(hook);
            set(hook, "reinvocationPolicy", json!("Never"));
        });
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        webhooks(object, Some(REINVOCATION_POLICIES))
    }
    fn printer(&self) -> &'static Printer {
        &table::WEBHOOK_CONFIGURATION
    }
}

pub struct ValidatingWebhookConfigurations;

impl Strategy for ValidatingWebhookConfigurations {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "validatingwebhookconfiguration",
            "ValidatingWebhookConfiguration",
            CLUSTER,
        )
        .categories(CATEGORY)
    }
    typed_as!(api::ValidatingWebhookConfiguration);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        each(object, "webhooks", webhook_defaults);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        webhooks(object, None)
    }
    fn printer(&self) -> &'static Printer {
        &table::WEBHOOK_CONFIGURATION
    }
}

pub struct ValidatingAdmissionPolicies;

impl Strategy for ValidatingAdmissionPolicies {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicies",
            "validatingadmissionpolicy",
            "ValidatingAdmissionPolicy",
            CLUSTER,
        )
        .categories(CATEGORY)
        .status()
    }
    typed_as!(api::ValidatingAdmissionPolicy);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        at(object, "spec", |spec| {
            set(spec, "failurePolicy", json!("Fail"));
            at(spec, "matchConstraints", match_resources_defaults);
        });
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        policy(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::VALIDATING_ADMISSION_POLICY
    }
}

pub struct ValidatingAdmissionPolicyBindings;

impl Strategy for ValidatingAdmissionPolicyBindings {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicybindings",
            "validatingadmissionpolicybinding",
            "ValidatingAdmissionPolicyBinding",
            CLUSTER,
        )
        .categories(CATEGORY)
    }
    typed_as!(api::ValidatingAdmissionPolicyBinding);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        at(object, "spec", |spec| {
            at(spec, "matchResources", match_resources_defaults);
            at(spec, "paramRef", |r| {
                set(r, "parameterNotFoundAction", json!("Deny"))
            });
        });
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        binding(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::VALIDATING_ADMISSION_POLICY_BINDING
    }
}

// ---- defaults ----

/// `SetDefaults_ValidatingWebhook` / `SetDefaults_MutatingWebhook` (the common part).
fn webhook_defaults(hook: &mut Value) {
    set(hook, "failurePolicy", json!("Fail"));
    set(hook, "matchPolicy", json!("Equivalent"));
    set(hook, "namespaceSelector", json!({}));
    set(hook, "objectSelector", json!({}));
    set(hook, "timeoutSeconds", json!(10));
    each(hook, "rules", |rule| set(rule, "scope", json!("*")));
    at(hook, "clientConfig", |config| {
        at(config, "service", |service| {
            set(service, "port", json!(443))
        })
    });
}

/// `SetDefaults_MatchResources`.
fn match_resources_defaults(resources: &mut Value) {
    set(resources, "matchPolicy", json!("Equivalent"));
    set(resources, "namespaceSelector", json!({}));
    set(resources, "objectSelector", json!({}));
    for rules in ["resourceRules", "excludeResourceRules"] {
        each(resources, rules, |rule| set(rule, "scope", json!("*")));
    }
}

// ---- validation ----

const FAILURE_POLICIES: &[&str] = &["Fail", "Ignore"];
const MATCH_POLICIES: &[&str] = &["Equivalent", "Exact"];
const SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
const REINVOCATION_POLICIES: &[&str] = &["IfNeeded", "Never"];
const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];
const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
const VALIDATION_ACTIONS: &[&str] = &["Audit", "Deny", "Warn"];
const PARAMETER_NOT_FOUND_ACTIONS: &[&str] = &["Allow", "Deny"];
const VALIDATION_REASONS: &[&str] = &[
    "Forbidden",
    "Invalid",
    "RequestEntityTooLarge",
    "Unauthorized",
];

/// An optional enum field: absent is fine, anything else must be one of `supported`.
fn one_of(object: &Value, key: &str, field: &str, supported: &[&str], out: &mut Vec<Cause>) {
    match object.get(key) {
        None | Some(Value::Null) => {}
        Some(v) if v.as_str().is_some_and(|s| supported.contains(&s)) => {}
        Some(v) => out.push(not_supported(field, v, supported)),
    }
}

/// The webhooks of a configuration (`ValidateValidatingWebhookConfiguration`, and the mutating
/// one with its `reinvocationPolicy`): names unique and fully qualified, each webhook valid.
fn webhooks(object: &Value, reinvocation: Option<&[&str]>) -> Vec<Cause> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, hook) in array_at(object, "webhooks").iter().enumerate() {
        let path = format!("webhooks[{i}]");
        let name = str_at(hook, "/name");
        fully_qualified_name(&format!("{path}.name"), name, &mut out);
        if !name.is_empty() && !seen.insert(name) {
            out.push(duplicate(&format!("{path}.name"), &json!(name)));
        }
        webhook(hook, &path, &mut out);
        if let Some(policies) = reinvocation {
            one_of(
                hook,
                "reinvocationPolicy",
                &format!("{path}.reinvocationPolicy"),
                policies,
                &mut out,
            );
        }
        review_versions(hook, &format!("{path}.admissionReviewVersions"), &mut out);
    }
    out
}

/// `utilvalidation.IsFullyQualifiedName`.
fn fully_qualified_name(field: &str, name: &str, out: &mut Vec<Cause>) {
    if name.is_empty() {
        out.push(required(field));
        return;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let problems = names::is_dns1123_subdomain(name);
    if !problems.is_empty() {
        out.push(invalid(field, &json!(name), &problems.join(",")));
    } else if name.split('.').count() < 3 {
        out.push(invalid(
            field,
            &json!(name),
            "should be a domain with at least three segments separated by dots",
        ));
    }
}

fn webhook(hook: &Value, path: &str, out: &mut Vec<Cause>) {
    for (j, rule) in array_at(hook, "rules").iter().enumerate() {
        rule_with_operations(rule, &format!("{path}.rules[{j}]"), out);
    }
    let field = |name: &str| format!("{path}.{name}");
    one_of(
        hook,
        "failurePolicy",
        &field("failurePolicy"),
        FAILURE_POLICIES,
        out,
    );
    one_of(
        hook,
        "matchPolicy",
        &field("matchPolicy"),
        MATCH_POLICIES,
        out,
    );
    if hook.get("sideEffects").is_none_or(Value::is_null) {
        out.push(required_because(
            &field("sideEffects"),
            &format!("must specify one of {}", SIDE_EFFECTS.join(", ")),
        ));
    }
    one_of(
        hook,
        "sideEffects",
        &field("sideEffects"),
        SIDE_EFFECTS,
        out,
    );
    if let Some(timeout) = hook.get("timeoutSeconds").and_then(Value::as_i64)
        && !(1..=30).contains(&timeout)
    {
        out.push(invalid(
            &field("timeoutSeconds"),
            &json!(timeout),
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    client_config(
        hook.get("clientConfig").unwrap_or(&Value::Null),
        &field("clientConfig"),
        out,
    );
    match_conditions(hook, path, out);
}

/// `validateAdmissionReviewVersions`: required, unique DNS-1035 labels, one of them known.
fn review_versions(hook: &Value, field: &str, out: &mut Vec<Cause>) {
    let versions = array_at(hook, "admissionReviewVersions");
    if versions.is_empty() {
        out.push(required_because(
            field,
            &format!("must specify one of {}", REVIEW_VERSIONS.join(", ")),
        ));
        return;
    }
    let mut seen = HashSet::new();
    let mut known = false;
    for (i, version) in versions.iter().enumerate() {
        let v = version.as_str().unwrap_or("");
        let at = format!("{field}[{i}]");
        if !seen.insert(v) {
            out.push(invalid(&at, version, "duplicate version"));
            continue;
        }
        for problem in names::is_dns1035_label(v) {
            out.push(invalid(&at, version, &problem));
        }
        known |= REVIEW_VERSIONS.contains(&v);
    }
    if !known {
        out.push(invalid(
            field,
            &Value::Array(versions.to_vec()),
            &format!(
                "must include at least one of {}",
                REVIEW_VERSIONS.join(", ")
            ),
        ));
    }
}

/// Exactly one of `url` (https, with a host, no user, query or fragment) and `service`.
fn client_config(config: &Value, field: &str, out: &mut Vec<Cause>) {
    let url = config.get("url").and_then(Value::as_str);
    let service = config.get("service").filter(|s| s.is_object());
    match (url, service) {
        (Some(url), None) => webhook_url(&format!("{field}.url"), url, out),
        (None, Some(service)) => webhook_service(&format!("{field}.service"), service, out),
        _ => out.push(required_because(
            field,
            "exactly one of url or service is required",
        )),
    }
}

/// `webhook.ValidateWebhookURL` with https forced.
fn webhook_url(field: &str, url: &str, out: &mut Vec<Cause>) {
    const FORM: &str = "; desired format: https://host[/path]";
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if scheme != "https" {
        out.push(invalid(
            field,
            &json!(scheme),
            &format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = rest.split('/').next().unwrap_or("");
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if scheme.is_empty() || host.is_empty() {
        out.push(invalid(
            field,
            &json!(if scheme.is_empty() { "" } else { host }),
            &format!("host must be specified{FORM}"),
        ));
    }
    if let Some(user) = user {
        out.push(invalid(
            field,
            &json!(user),
            "user information is not permitted in the URL",
        ));
    }
    if !fragment.is_empty() {
        out.push(invalid(
            field,
            &json!(fragment),
            "fragments are not permitted in the URL",
        ));
    }
    if !query.is_empty() {
        out.push(invalid(
            field,
            &json!(query),
            "query parameters are not permitted in the URL",
        ));
    }
}

/// `webhook.ValidateWebhookService`: name, namespace, a valid port and a path of segments.
fn webhook_service(field: &str, service: &Value, out: &mut Vec<Cause>) {
    if str_at(service, "/name").is_empty() {
        out.push(required_because(
            &format!("{field}.name"),
            "service name is required",
        ));
    }
    if str_at(service, "/namespace").is_empty() {
        out.push(required_because(
            &format!("{field}.namespace"),
            "service namespace is required",
        ));
    }
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
    let problems = names::is_valid_port_num(port);
    if !problems.is_empty() {
        out.push(invalid(
            &format!("{field}.port"),
            &json!(port),
            &format!("port is not valid: {}", problems.join(", ")),
        ));
    }
    let path = str_at(service, "/path");
    let path_field = format!("{field}.path");
    if path.is_empty() || path == "/" {
        return;
    }
    if !path.starts_with('/') {
        out.push(invalid(&path_field, &json!(path), "must start with a '/'"));
        return;
    }
    let trimmed = path.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    for (i, segment) in trimmed.split('/').enumerate() {
        if segment.is_empty() {
            out.push(invalid(
                &path_field,
                &json!(path),
                &format!("segment[{i}] may not be empty"),
            ));
        } else {
            for problem in names::is_dns1123_subdomain(segment) {
                out.push(invalid(
                    &path_field,
                    &json!(path),
                    &format!("segment[{i}]: {problem}"),
                ));
            }
        }
    }
}

/// `validateRuleWithOperations`: operations, then the rule itself.
fn rule_with_operations(rule: &Value, path: &str, out: &mut Vec<Cause>) {
    let operations = array_at(rule, "operations");
    let field = format!("{path}.operations");
    if operations.is_empty() {
        out.push(required(&field));
    }
    if operations.len() > 1 && operations.iter().any(|o| o == "*") {
        out.push(invalid(
            &field,
            &Value::Array(operations.to_vec()),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, operation) in operations.iter().enumerate() {
        if !operation.as_str().is_some_and(|o| OPERATIONS.contains(&o)) {
            out.push(not_supported(
                &format!("{field}[{i}]"),
                operation,
                OPERATIONS,
            ));
        }
    }
    rule_of(rule, path, out);
}

/// `validateRule`: groups, versions and resources required, `*` alone, a known scope.
fn rule_of(rule: &Value, path: &str, out: &mut Vec<Cause>) {
    for (key, what) in [("apiGroups", "API groups"), ("apiVersions", "API versions")] {
        let values = array_at(rule, key);
        let field = format!("{path}.{key}");
        if values.is_empty() {
            out.push(required(&field));
        }
        if values.len() > 1 && values.iter().any(|v| v == "*") {
            out.push(invalid(
                &field,
                &Value::Array(values.to_vec()),
                &format!("if '*' is present, must not specify other {what}"),
            ));
        }
        if key == "apiVersions" {
            for (i, v) in values.iter().enumerate() {
                if v == "" {
                    out.push(required(&format!("{field}[{i}]")));
                }
            }
        }
    }
    let resources = array_at(rule, "resources");
    let field = format!("{path}.resources");
    if resources.is_empty() {
        out.push(required(&field));
    }
    for (i, resource) in resources.iter().enumerate() {
        if resource == "" {
            out.push(required(&format!("{field}[{i}]")));
        }
    }
    for wildcard in ["*", "*/*"] {
        if resources.len() > 1 && resources.iter().any(|r| r == wildcard) {
            out.push(invalid(
                &field,
                &Value::Array(resources.to_vec()),
                &format!("if '{wildcard}' is present, must not specify other resources"),
            ));
        }
    }
    one_of(rule, "scope", &format!("{path}.scope"), SCOPES, out);
}

/// A CEL expression: required, and it must parse.
fn expression(object: &Value, field: &str, out: &mut Vec<Cause>) {
    let source = str_at(object, "/expression");
    if source.trim().is_empty() {
        out.push(required(field));
    } else if let Some(error) = cel::syntax_error(source) {
        out.push(invalid(
            field,
            &json!(source),
            &format!("compilation failed: {error}"),
        ));
    }
}

/// `validateMatchConditions`: unique qualified names and expressions that compile.
fn match_conditions(object: &Value, path: &str, out: &mut Vec<Cause>) {
    let mut seen = HashSet::new();
    for (i, condition) in array_at(object, "matchConditions").iter().enumerate() {
        let at = format!("{path}.matchConditions[{i}]");
        let name = str_at(condition, "/name");
        if name.is_empty() {
            out.push(required(&format!("{at}.name")));
        } else {
            for problem in names::is_qualified_name(name) {
                out.push(invalid(&format!("{at}.name"), &json!(name), &problem));
            }
            if !seen.insert(name) {
                out.push(duplicate(&format!("{at}.name"), &json!(name)));
            }
        }
        expression(condition, &format!("{at}.expression"), out);
    }
}

/// `validateMatchResources`: each rule a valid named rule, the match policy known.
fn match_resources(resources: &Value, path: &str, out: &mut Vec<Cause>) {
    one_of(
        resources,
        "matchPolicy",
        &format!("{path}.matchPolicy"),
        MATCH_POLICIES,
        out,
    );
    for key in ["resourceRules", "excludeResourceRules"] {
        for (i, rule) in array_at(resources, key).iter().enumerate() {
            rule_with_operations(rule, &format!("{path}.{key}[{i}]"), out);
        }
    }
}

/// `ValidateValidatingAdmissionPolicy`.
fn policy(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    one_of(
        spec,
        "failurePolicy",
        "spec.failurePolicy",
        FAILURE_POLICIES,
        &mut out,
    );
    if let Some(param_kind) = spec.get("paramKind").filter(|p| p.is_object()) {
        let api_version = str_at(param_kind, "/apiVersion");
        if api_version.is_empty() {
            out.push(required("spec.paramKind.apiVersion"));
        } else if api_version.split('/').count() > 2 || api_version.ends_with('/') {
            out.push(invalid(
                "spec.paramKind.apiVersion",
                &json!(api_version),
                &format!("unexpected GroupVersion string: {api_version}"),
            ));
        }
        if str_at(param_kind, "/kind").is_empty() {
            out.push(required("spec.paramKind.kind"));
        }
    }
    match spec.get("matchConstraints").filter(|m| m.is_object()) {
        None => out.push(required("spec.matchConstraints")),
        Some(constraints) => {
            if array_at(constraints, "resourceRules").is_empty() {
                out.push(required("spec.matchConstraints.resourceRules"));
            }
            match_resources(constraints, "spec.matchConstraints", &mut out);
        }
    }
    let validations = array_at(spec, "validations");
    if validations.is_empty() && array_at(spec, "auditAnnotations").is_empty() {
        out.push(required_because(
            "spec.validations",
            "validations or auditAnnotations must contain at least one item",
        ));
    }
    for (i, validation) in validations.iter().enumerate() {
        let at = format!("spec.validations[{i}]");
        expression(validation, &format!("{at}.expression"), &mut out);
        if str_at(validation, "/message").contains('\n') {
            out.push(invalid(
                &format!("{at}.message"),
                &validation["message"],
                "message must not contain line breaks",
            ));
        }
        one_of(
            validation,
            "reason",
            &format!("{at}.reason"),
            VALIDATION_REASONS,
            &mut out,
        );
    }
    for (i, annotation) in array_at(spec, "auditAnnotations").iter().enumerate() {
        let at = format!("spec.auditAnnotations[{i}]");
        if str_at(annotation, "/key").is_empty() {
            out.push(required(&format!("{at}.key")));
        }
        let source = str_at(annotation, "/valueExpression");
        if source.trim().is_empty() {
            out.push(required(&format!("{at}.valueExpression")));
        } else if let Some(error) = cel::syntax_error(source) {
            out.push(invalid(
                &format!("{at}.valueExpression"),
                &json!(source),
                &format!("compilation failed: {error}"),
            ));
        }
    }
    for (i, variable) in array_at(spec, "variables").iter().enumerate() {
        let at = format!("spec.variables[{i}]");
        let name = str_at(variable, "/name");
        if name.is_empty() {
            out.push(required(&format!("{at}.name")));
        } else if !is_cel_identifier(name) {
            out.push(invalid(
                &format!("{at}.name"),
                &json!(name),
                "name is not a valid CEL identifier",
            ));
        }
        expression(variable, &format!("{at}.expression"), &mut out);
    }
    match_conditions(spec, "spec", &mut out);
    out
}

/// A CEL identifier: a letter or `_`, then letters, digits or `_`.
fn is_cel_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `ValidateValidatingAdmissionPolicyBinding`.
fn binding(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    if str_at(spec, "/policyName").is_empty() {
        out.push(required("spec.policyName"));
    }
    if let Some(param_ref) = spec.get("paramRef").filter(|p| p.is_object()) {
        let has_name = !str_at(param_ref, "/name").is_empty();
        let has_selector = param_ref.get("selector").is_some_and(Value::is_object);
        if has_name == has_selector {
            out.push(required_because(
                "spec.paramRef",
                "one of name or selector must be specified",
            ));
        }
        if param_ref
            .get("parameterNotFoundAction")
            .is_none_or(Value::is_null)
        {
            out.push(required("spec.paramRef.parameterNotFoundAction"));
        }
        one_of(
            param_ref,
            "parameterNotFoundAction",
            "spec.paramRef.parameterNotFoundAction",
            PARAMETER_NOT_FOUND_ACTIONS,
            &mut out,
        );
    }
    if let Some(resources) = spec.get("matchResources").filter(|m| m.is_object()) {
        match_resources(resources, "spec.matchResources", &mut out);
    }
    let actions = array_at(spec, "validationActions");
    if actions.is_empty() {
        out.push(required_because(
            "spec.validationActions",
            "at least one validation action is required",
        ));
    }
    let mut seen = HashSet::new();
    for (i, action) in actions.iter().enumerate() {
        let field = format!("spec.validationActions[{i}]");
        if !action
            .as_str()
            .is_some_and(|a| VALIDATION_ACTIONS.contains(&a))
        {
            out.push(not_supported(&field, action, VALIDATION_ACTIONS));
        } else if !seen.insert(action.as_str().unwrap_or("")) {
            out.push(duplicate(&field, action));
        }
    }
    if seen.contains("Deny") && seen.contains("Warn") {
        out.push(invalid(
            "spec.validationActions",
            &Value::Array(actions.to_vec()),
            "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook_configuration(hook: Value) -> Value {
        let mut object = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "hooks"},
            "webhooks": [hook],
        });
        ValidatingWebhookConfigurations.default(
            &mut object,
            &DefaultContext {
                create: true,
                old: None,
                ip_family: "IPv4",
            },
        );
        object
    }

    fn fields(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(|c| c.field.clone()).collect()
    }

    #[test]
    fn a_webhook_is_defaulted_and_validated_as_kube_does() {
        let valid = webhook_configuration(json!({
            "name": "check.example.com",
            "clientConfig": {"service": {"namespace": "default", "name": "hook"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"]}],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }));
        assert_eq!(valid["webhooks"][0]["timeoutSeconds"], 10);
        assert_eq!(valid["webhooks"][0]["clientConfig"]["service"]["port"], 443);
        assert_eq!(valid["webhooks"][0]["rules"][0]["scope"], "*");
        assert_eq!(
            ValidatingWebhookConfigurations.validate(&valid),
            Vec::<Cause>::new()
        );

        let invalid = webhook_configuration(json!({
            "name": "check",
            "clientConfig": {"url": "http://example.com/x?y=1",
                             "service": {"namespace": "default", "name": "hook"}},
            "rules": [{"operations": ["*", "CREATE"], "apiGroups": [], "apiVersions": ["v1"],
                       "resources": ["pods"]}],
            "failurePolicy": "Sometimes",
            "timeoutSeconds": 31,
        }));
        let causes = ValidatingWebhookConfigurations.validate(&invalid);
        assert_eq!(
            fields(&causes),
            [
                "webhooks[0].name",
                "webhooks[0].rules[0].operations",
                "webhooks[0].rules[0].apiGroups",
                "webhooks[0].failurePolicy",
                "webhooks[0].sideEffects",
                "webhooks[0].timeoutSeconds",
                "webhooks[0].clientConfig",
                "webhooks[0].admissionReviewVersions",
            ]
        );
        assert_eq!(
            causes[0].message,
            "Invalid value: \"check\": should be a domain with at least three segments separated by dots"
        );
        assert_eq!(
            causes[6].message,
            "Required value: exactly one of url or service is required"
        );
    }

    #[test]
    fn webhook_urls_must_be_https_without_query_or_user() {
        let mut out = Vec::new();
        webhook_url("u", "http://user@host/p?q=1#f", &mut out);
        let messages: Vec<&str> = out.iter().map(|c| c.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
                "Invalid value: \"user\": user information is not permitted in the URL",
                "Invalid value: \"f\": fragments are not permitted in the URL",
                "Invalid value: \"q=1\": query parameters are not permitted in the URL",
            ]
        );
        let mut out = Vec::new();
        webhook_url("u", "https://hook.example.com:8443/validate", &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn policy_expressions_must_parse_and_bindings_name_actions() {
        let policy = json!({"spec": {
            "matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": ["apps"],
                                  "apiVersions": ["v1"], "resources": ["deployments"]}]},
            "validations": [{"expression": "object.spec.replicas <="}],
        }});
        let causes = ValidatingAdmissionPolicies.validate(&policy);
        assert_eq!(fields(&causes), ["spec.validations[0].expression"]);
        assert!(
            causes[0]
                .message
                .contains("compilation failed: ERROR: <input>:1:"),
            "{causes:?}"
        );
        let binding = json!({"spec": {"policyName": "p", "validationActions": ["Deny", "Warn"]}});
        let causes = ValidatingAdmissionPolicyBindings.validate(&binding);
        assert_eq!(fields(&causes), ["spec.validationActions"]);
        let binding = json!({"spec": {"validationActions": []}});
        assert_eq!(
            fields(&ValidatingAdmissionPolicyBindings.validate(&binding)),
            ["spec.policyName", "spec.validationActions"]
        );
    }
}
