//! flowcontrol.apiserver.k8s.io/v1: API Priority and Fairness configuration, FlowSchemas and
//! PriorityLevelConfigurations (kube's `pkg/registry/flowcontrol`). Served, defaulted and
//! validated as kube does; kubecache does not classify or queue requests by them (its own
//! limit is the max-in-flight filter).

use k8s_openapi::api::flowcontrol::v1 as api;
use kubecache_core::registry::{CLUSTER, ResourceInfo};
use kubecache_core::status::Cause;
use kubecache_core::validation as names;
use serde_json::{Value, json};

use super::defaults::{at, set, set_nonzero};
use super::validation::{array_at, forbidden, invalid, not_supported, required_because, str_at};
use super::{DefaultContext, Strategy, typed_as};
use crate::table::{self, Printer};

pub struct FlowSchemas;

impl Strategy for FlowSchemas {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "flowcontrol.apiserver.k8s.io",
            "v1",
            "flowschemas",
            "flowschema",
            "FlowSchema",
            CLUSTER,
        )
        .status()
    }
    typed_as!(api::FlowSchema);
    fn tracks_generation(&self) -> bool {
        true
    }
    /// `SetDefaults_FlowSchemaSpec`.
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        at(object, "spec", |spec| {
            set_nonzero(spec, "matchingPrecedence", json!(1000))
        });
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        flow_schema(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::FLOW_SCHEMA
    }
}

pub struct PriorityLevelConfigurations;

impl Strategy for PriorityLevelConfigurations {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "flowcontrol.apiserver.k8s.io",
            "v1",
            "prioritylevelconfigurations",
            "prioritylevelconfiguration",
            "PriorityLevelConfiguration",
            CLUSTER,
        )
        .status()
    }
    typed_as!(api::PriorityLevelConfiguration);
    fn tracks_generation(&self) -> bool {
        true
    }
    /// `SetDefaults_PriorityLevelConfiguration` and the defaults of its parts: 30 nominal
    /// shares for a limited level (0 for an exempt one), nothing lendable, and queues of
    /// 64 × hand 8 × length 50.
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        at(object, "spec", |spec| {
            at(spec, "limited", |limited| {
                set(limited, "nominalConcurrencyShares", json!(30));
                set(limited, "lendablePercent", json!(0));
                at(limited, "limitResponse", |response| {
                    at(response, "queuing", |queuing| {
                        set_nonzero(queuing, "queues", json!(64));
                        set_nonzero(queuing, "handSize", json!(8));
                        set_nonzero(queuing, "queueLengthLimit", json!(50));
                    })
                });
            });
            at(spec, "exempt", |exempt| {
                set(exempt, "nominalConcurrencyShares", json!(0));
                set(exempt, "lendablePercent", json!(0));
            });
        });
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        priority_level(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::PRIORITY_LEVEL_CONFIGURATION
    }
}

const DISTINGUISHER_METHODS: &[&str] = &["ByNamespace", "ByUser"];
const SUBJECT_KINDS: &[&str] = &["Group", "ServiceAccount", "User"];
const PRIORITY_LEVEL_TYPES: &[&str] = &["Exempt", "Limited"];
const LIMIT_RESPONSE_TYPES: &[&str] = &["Queue", "Reject"];
const MAX_MATCHING_PRECEDENCE: i64 = 10_000;
const MAX_QUEUES: i64 = 10_000_000;

/// kube's `ValidateFlowSchemaSpec`.
fn flow_schema(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let precedence = spec
        .get("matchingPrecedence")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    const PRECEDENCE: &str = "spec.matchingPrecedence";
    if precedence <= 0 {
        out.push(invalid(
            PRECEDENCE,
            &json!(precedence),
            "must be a positive value",
        ));
    } else if precedence > MAX_MATCHING_PRECEDENCE {
        out.push(invalid(
            PRECEDENCE,
            &json!(precedence),
            &format!("must not be greater than {MAX_MATCHING_PRECEDENCE}"),
        ));
    }
    if precedence == 1 && str_at(object, "/metadata/name") != "exempt" {
        out.push(invalid(
            PRECEDENCE,
            &json!(precedence),
            "only the schema named 'exempt' may have matchingPrecedence 1",
        ));
    }
    if let Some(method) = spec.get("distinguisherMethod").filter(|m| m.is_object())
        && !DISTINGUISHER_METHODS.contains(&str_at(method, "/type"))
    {
        out.push(not_supported(
            "spec.distinguisherMethod.type",
            &method["type"],
            DISTINGUISHER_METHODS,
        ));
    }
    let level = str_at(spec, "/priorityLevelConfiguration/name");
    if level.is_empty() {
        out.push(required_because(
            "spec.priorityLevelConfiguration.name",
            "must reference a priority level",
        ));
    } else {
        for problem in names::is_path_segment_name(level) {
            out.push(invalid(
                "spec.priorityLevelConfiguration.name",
                &json!(level),
                &problem,
            ));
        }
    }
    for (i, rule) in array_at(spec, "rules").iter().enumerate() {
        policy_rules(rule, &format!("spec.rules[{i}]"), &mut out);
    }
    out
}

/// `ValidateFlowSchemaPolicyRulesWithSubjects`.
fn policy_rules(rule: &Value, path: &str, out: &mut Vec<Cause>) {
    let subjects = array_at(rule, "subjects");
    if subjects.is_empty() {
        out.push(required_because(
            &format!("{path}.subjects"),
            "subjects must contain at least one value",
        ));
    }
    for (i, subject) in subjects.iter().enumerate() {
        self::subject(subject, &format!("{path}.subjects[{i}]"), out);
    }
    let resource_rules = array_at(rule, "resourceRules");
    let non_resource_rules = array_at(rule, "nonResourceRules");
    if resource_rules.is_empty() && non_resource_rules.is_empty() {
        out.push(required_because(
            path,
            "at least one of resourceRules and nonResourceRules has to be non-empty",
        ));
    }
    for (i, r) in resource_rules.iter().enumerate() {
        let at = format!("{path}.resourceRules[{i}]");
        verbs(r, &at, out);
        for (key, detail) in [
            (
                "apiGroups",
                "resource rules must supply at least one api group",
            ),
            (
                "resources",
                "resource rules must supply at least one resource",
            ),
        ] {
            if array_at(r, key).is_empty() {
                out.push(required_because(&format!("{at}.{key}"), detail));
            }
        }
        let cluster_scope = r.get("clusterScope").and_then(Value::as_bool) == Some(true);
        if !cluster_scope && array_at(r, "namespaces").is_empty() {
            out.push(required_because(
                &format!("{at}.namespaces"),
                "resource rules that are not cluster scoped must supply at least one namespace",
            ));
        }
    }
    for (i, r) in non_resource_rules.iter().enumerate() {
        let at = format!("{path}.nonResourceRules[{i}]");
        verbs(r, &at, out);
        if array_at(r, "nonResourceURLs").is_empty() {
            out.push(required_because(
                &format!("{at}.nonResourceURLs"),
                "nonResourceURLs must contain at least one value",
            ));
        }
    }
}

fn verbs(rule: &Value, path: &str, out: &mut Vec<Cause>) {
    let verbs = array_at(rule, "verbs");
    let field = format!("{path}.verbs");
    if verbs.is_empty() {
        out.push(required_because(
            &field,
            "verbs must contain at least one value",
        ));
    } else if verbs.len() > 1 && verbs.iter().any(|v| v == "*") {
        out.push(invalid(
            &field,
            &Value::Array(verbs.to_vec()),
            "if '*' is present, must not specify other verbs",
        ));
    }
}

/// `ValidateFlowSchemaSubject`: the member named by `kind` is given, the others are not.
fn subject(subject: &Value, path: &str, out: &mut Vec<Cause>) {
    let kind = str_at(subject, "/kind");
    let member = match kind {
        "User" => "user",
        "Group" => "group",
        "ServiceAccount" => "serviceAccount",
        _ => {
            out.push(not_supported(
                &format!("{path}.kind"),
                &subject["kind"],
                SUBJECT_KINDS,
            ));
            return;
        }
    };
    for other in ["user", "group", "serviceAccount"] {
        if other != member && subject.get(other).is_some_and(|v| !v.is_null()) {
            let expected = match other {
                "user" => "User",
                "group" => "Group",
                _ => "ServiceAccount",
            };
            out.push(forbidden(
                &format!("{path}.{other}"),
                &format!("{other} is forbidden when subject kind is not '{expected}'"),
            ));
        }
    }
    let field = format!("{path}.{member}");
    let Some(value) = subject.get(member).filter(|v| v.is_object()) else {
        out.push(required_because(
            &field,
            &format!("{member} is required when subject kind is '{kind}'"),
        ));
        return;
    };
    match member {
        "user" if str_at(value, "/name").is_empty() => out.push(required_because(
            &format!("{field}.name"),
            "username is required",
        )),
        "group" if str_at(value, "/name").is_empty() => out.push(required_because(
            &format!("{field}.name"),
            "name is required",
        )),
        "serviceAccount" => {
            if str_at(value, "/name").is_empty() {
                out.push(required_because(
                    &format!("{field}.name"),
                    "name is required",
                ));
            }
            if str_at(value, "/namespace").is_empty() {
                out.push(required_because(
                    &format!("{field}.namespace"),
                    "must specify namespace for service account",
                ));
            }
        }
        _ => {}
    }
}

/// kube's `ValidatePriorityLevelConfigurationSpec`.
fn priority_level(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let present = |key: &str| spec.get(key).is_some_and(|v| !v.is_null());
    match str_at(spec, "/type") {
        "Exempt" => {
            if present("limited") {
                out.push(forbidden(
                    "spec.limited",
                    "must be nil if the type is not Limited",
                ));
            }
            if let Some(exempt) = spec.get("exempt").filter(|e| e.is_object()) {
                shares_and_percent(exempt, "spec.exempt", &mut out);
            }
        }
        "Limited" => {
            if present("exempt") {
                out.push(forbidden(
                    "spec.exempt",
                    "must be nil if the type is Limited",
                ));
            }
            match spec.get("limited").filter(|l| l.is_object()) {
                None => out.push(required_because(
                    "spec.limited",
                    "must not be empty when type is Limited",
                )),
                Some(limited) => self::limited(limited, &mut out),
            }
        }
        _ => out.push(not_supported(
            "spec.type",
            spec.get("type").unwrap_or(&json!("")),
            PRIORITY_LEVEL_TYPES,
        )),
    }
    out
}

fn shares_and_percent(config: &Value, path: &str, out: &mut Vec<Cause>) {
    if let Some(shares) = config
        .get("nominalConcurrencyShares")
        .and_then(Value::as_i64)
        && shares < 0
    {
        out.push(invalid(
            &format!("{path}.nominalConcurrencyShares"),
            &json!(shares),
            "must be a non-negative integer",
        ));
    }
    if let Some(percent) = config.get("lendablePercent").and_then(Value::as_i64)
        && !(0..=100).contains(&percent)
    {
        out.push(invalid(
            &format!("{path}.lendablePercent"),
            &json!(percent),
            "must be between 0 and 100, inclusive",
        ));
    }
}

fn limited(limited: &Value, out: &mut Vec<Cause>) {
    shares_and_percent(limited, "spec.limited", out);
    if let Some(limit) = limited.get("borrowingLimitPercent").and_then(Value::as_i64)
        && limit < 0
    {
        out.push(invalid(
            "spec.limited.borrowingLimitPercent",
            &json!(limit),
            "if specified, must be a non-negative integer",
        ));
    }
    let response = limited.get("limitResponse").unwrap_or(&Value::Null);
    let queuing = response.get("queuing").filter(|q| q.is_object());
    match str_at(response, "/type") {
        "Reject" if queuing.is_some() => out.push(forbidden(
            "spec.limited.limitResponse.queuing",
            "must be nil if limited.limitResponse.type is not Limited",
        )),
        "Reject" => {}
        "Queue" => match queuing {
            None => out.push(required_because(
                "spec.limited.limitResponse.queuing",
                "must not be empty if limited.limitResponse.type is Limited",
            )),
            Some(queuing) => self::queuing(queuing, out),
        },
        _ => out.push(not_supported(
            "spec.limited.limitResponse.type",
            response.get("type").unwrap_or(&json!("")),
            LIMIT_RESPONSE_TYPES,
        )),
    }
}

/// `ValidatePriorityLevelQueuingConfiguration`, without the shuffle-sharding entropy bound.
fn queuing(queuing: &Value, out: &mut Vec<Cause>) {
    const PATH: &str = "spec.limited.limitResponse.queuing";
    let number = |key: &str| queuing.get(key).and_then(Value::as_i64).unwrap_or(0);
    let (queues, hand_size, length) = (
        number("queues"),
        number("handSize"),
        number("queueLengthLimit"),
    );
    if length <= 0 {
        out.push(invalid(
            &format!("{PATH}.queueLengthLimit"),
            &json!(length),
            "must be positive",
        ));
    }
    if queues <= 0 {
        out.push(invalid(
            &format!("{PATH}.queues"),
            &json!(queues),
            "must be positive",
        ));
    } else if queues > MAX_QUEUES {
        out.push(invalid(
            &format!("{PATH}.queues"),
            &json!(queues),
            &format!("must not be greater than {MAX_QUEUES}"),
        ));
    }
    if hand_size <= 0 {
        out.push(invalid(
            &format!("{PATH}.handSize"),
            &json!(hand_size),
            "must be positive",
        ));
    } else if hand_size > queues {
        out.push(invalid(
            &format!("{PATH}.handSize"),
            &json!(hand_size),
            &format!("should not be greater than queues ({queues})"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(strategy: &dyn Strategy, mut object: Value) -> Value {
        strategy.default(
            &mut object,
            &DefaultContext {
                create: true,
                old: None,
                ip_family: "IPv4",
            },
        );
        object
    }

    #[test]
    fn priority_levels_are_defaulted_and_checked() {
        let level = defaulted(
            &PriorityLevelConfigurations,
            json!({"metadata": {"name": "l"}, "spec": {"type": "Limited", "limited": {
                "limitResponse": {"type": "Queue", "queuing": {}}}}}),
        );
        assert_eq!(level["spec"]["limited"]["nominalConcurrencyShares"], 30);
        assert_eq!(
            level["spec"]["limited"]["limitResponse"]["queuing"],
            json!({"queues": 64, "handSize": 8, "queueLengthLimit": 50})
        );
        assert_eq!(PriorityLevelConfigurations.validate(&level), []);
        let bad = json!({"spec": {"type": "Limited", "limited": {"limitResponse": {
            "type": "Queue", "queuing": {"queues": 4, "handSize": 8, "queueLengthLimit": 1}}}}});
        let causes = PriorityLevelConfigurations.validate(&bad);
        assert_eq!(
            causes[0].message,
            "Invalid value: 8: should not be greater than queues (4)"
        );
        let causes = PriorityLevelConfigurations.validate(&json!({"spec": {"type": "Other"}}));
        assert_eq!(causes[0].field, "spec.type");
    }

    #[test]
    fn flow_schemas_need_a_level_subjects_and_rules() {
        let schema = defaulted(
            &FlowSchemas,
            json!({"metadata": {"name": "s"}, "spec": {
                "priorityLevelConfiguration": {"name": "global-default"},
                "rules": [{"subjects": [{"kind": "User", "user": {"name": "alice"}}],
                           "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}]}}),
        );
        assert_eq!(schema["spec"]["matchingPrecedence"], 1000);
        assert_eq!(FlowSchemas.validate(&schema), []);
        let bad = json!({"metadata": {"name": "s"}, "spec": {"matchingPrecedence": 1,
            "rules": [{"subjects": [{"kind": "Group", "user": {"name": "a"}}]}]}});
        let fields: Vec<String> = FlowSchemas
            .validate(&bad)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.matchingPrecedence",
                "spec.priorityLevelConfiguration.name",
                "spec.rules[0].subjects[0].user",
                "spec.rules[0].subjects[0].group",
                "spec.rules[0]",
            ]
        );
    }
}
