//! `autoscaling`: HorizontalPodAutoscalers, served as `v2` (the storage version, as in kube
//! 1.33) and as `v1` from the same stored objects.
//!
//! `v1` knows one metric, `targetCPUUtilizationPercentage`; kube's conversion
//! (`pkg/apis/autoscaling/v1/conversion.go`) maps it to and from a v2 `Resource` metric for
//! `cpu` with a `Utilization` target, and keeps what `v1` cannot say (the other metrics, the
//! current metrics, the conditions, the behavior) in `autoscaling.alpha.kubernetes.io/*`
//! annotations of the v1 object, so a v1 client that reads and writes an object back loses
//! nothing. The annotations hold what kube writes there: metrics in v1's (v2beta1-like)
//! `MetricSpec`/`MetricStatus` form, conditions as they are, the behavior as Go marshals its
//! internal struct (field names capitalized: `{"ScaleUp":{"StabilizationWindowSeconds":0,…}}`).

use futures::future::BoxFuture;
use k8s_openapi::api::autoscaling::{v1, v2};
use kubecache_core::quantity::Quantity;
use kubecache_core::registry::{ALL, NAMESPACED, ResourceInfo};
use kubecache_core::status::{ApiError, Cause};
use kubecache_core::validation as names;
use serde_json::{Map, Value, json};

use super::validation::{forbidden, invalid, not_supported, required, required_because};
use super::{DefaultContext, Strategy, typed_as};
use crate::table::{self, Printer};

/// v1's annotations for what only v2 can say (kube's `autoscaling` annotation constants).
const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
const ROUND_TRIP_ANNOTATIONS: [&str; 4] = [
    METRICS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    CONDITIONS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
];

/// The CPU utilization an HPA without metrics targets (kube's `DefaultCPUUtilization`).
const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// What both versions declare besides their version (each spells its `ResourceInfo::new`
/// out: the protobuf generator reads the kinds from those calls).
fn identity(info: ResourceInfo) -> ResourceInfo {
    info.short(&["hpa"]).categories(ALL).status()
}

/// `autoscaling/v2`, the stored form.
pub struct HorizontalPodAutoscalers;

impl Strategy for HorizontalPodAutoscalers {
    fn info(&self) -> ResourceInfo {
        identity(ResourceInfo::new(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            "HorizontalPodAutoscaler",
            NAMESPACED,
        ))
    }
    typed_as!(v2::HorizontalPodAutoscaler);
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        default_v2(object);
    }
    fn prepare_for_create(&self, info: &ResourceInfo, object: &mut Value) {
        drop_disabled_fields(object);
        if info.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if !tolerance_in_use(old) {
            drop_disabled_fields(new);
        }
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validate(object)
    }
    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<Cause> {
        validate(new)
    }
    fn validate_status(&self, object: &Value) -> Vec<Cause> {
        validate_status(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::HORIZONTALPODAUTOSCALER
    }
}

/// `autoscaling/v1`: the v2 objects, converted on the way in and out.
pub struct HorizontalPodAutoscalersV1;

impl Strategy for HorizontalPodAutoscalersV1 {
    fn info(&self) -> ResourceInfo {
        identity(ResourceInfo::new(
            "autoscaling",
            "v1",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            "HorizontalPodAutoscaler",
            NAMESPACED,
        ))
    }
    typed_as!(v1::HorizontalPodAutoscaler);
    /// v1's scheme default; the v2 defaults follow in the stored form (`to_storage`).
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        default_min_replicas(&mut object["spec"]);
    }
    /// A new object's status is empty: in v1, the replica counts Go always writes.
    fn prepare_for_create(&self, _info: &ResourceInfo, object: &mut Value) {
        object["status"] = json!({"currentReplicas": 0, "desiredReplicas": 0});
    }
    /// The status an update keeps is the whole v2 status: in v1's shape, its status and
    /// the annotations holding the current metrics and conditions.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        for key in [CURRENT_METRICS_ANNOTATION, CONDITIONS_ANNOTATION] {
            match old
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(key))
            {
                Some(kept) => {
                    let kept = kept.clone();
                    let metadata = &mut new["metadata"];
                    if !metadata["annotations"].is_object() {
                        metadata["annotations"] = json!({});
                    }
                    metadata["annotations"][key] = kept;
                }
                None => {
                    if let Some(annotations) = new
                        .pointer_mut("/metadata/annotations")
                        .and_then(Value::as_object_mut)
                    {
                        annotations.remove(key);
                    }
                }
            }
        }
    }
    /// Validated as kube validates it: in the internal (v2) form.
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validate(&to_v2(object))
    }
    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<Cause> {
        validate(&to_v2(new))
    }
    fn validate_status(&self, object: &Value) -> Vec<Cause> {
        validate_status(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::HORIZONTALPODAUTOSCALER
    }
    /// Printed from the v2 form, as kube prints the internal object whatever the version.
    fn table_cells(&self, object: &Value, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
        self.printer().cells(&to_v2(object), now)
    }
    fn storage_version(&self) -> Option<(&str, &str, &str)> {
        Some(("autoscaling", "v2", "horizontalpodautoscalers"))
    }
    fn to_storage(&self, object: Value) -> Value {
        let mut stored = to_v2(&object);
        default_v2(&mut stored);
        stored
    }
    fn to_served(&self, object: Value) -> Value {
        to_v1(&object)
    }
    /// An annotation that does not hold what kube's conversion reads fails the write, as
    /// kube's decoding of the v1 object fails (400, nothing written).
    fn convert_to_storage(&self, object: Value) -> BoxFuture<'_, Result<Value, ApiError>> {
        let unreadable = ROUND_TRIP_ANNOTATIONS.iter().find(|key| {
            object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(**key))
                .is_some_and(|text| {
                    text.as_str()
                        .is_none_or(|t| serde_json::from_str::<Value>(t).is_err())
                })
        });
        let result = match unreadable {
            Some(key) => Err(ApiError::bad_request(format!(
                "HorizontalPodAutoscaler in version \"v1\" cannot be handled as a HorizontalPodAutoscaler: annotation {key} is not JSON"
            ))),
            None => Ok(self.to_storage(object)),
        };
        Box::pin(std::future::ready(result))
    }
}

// ---- defaults (kube's pkg/apis/autoscaling/v2/defaults.go)

fn default_min_replicas(spec: &mut Value) {
    if let Some(spec) = spec.as_object_mut() {
        spec.entry("minReplicas").or_insert(json!(1));
    }
}

fn default_v2(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    default_min_replicas(spec);
    let no_metrics = spec["metrics"].as_array().is_none_or(Vec::is_empty);
    if no_metrics {
        spec["metrics"] = json!([cpu_utilization_metric(DEFAULT_CPU_UTILIZATION)]);
    }
    if let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) {
        default_rules(
            behavior,
            "scaleUp",
            0,
            json!([
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ]),
        );
        default_rules(
            behavior,
            "scaleDown",
            300,
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        );
    }
}

/// One direction's scaling rules: kube's `GenerateHPAScaleUpRules`/`ScaleDownRules` fill
/// what the rules leave out (all of them when the direction is absent).
fn default_rules(behavior: &mut Value, direction: &str, window: i64, policies: Value) {
    let rules = behavior[direction]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut rules = Value::Object(rules);
    let map = rules.as_object_mut().expect("an object");
    map.entry("stabilizationWindowSeconds")
        .or_insert(json!(window));
    map.entry("selectPolicy").or_insert(json!("Max"));
    if map.get("policies").is_none_or(|p| p.is_null()) {
        map.insert("policies".into(), policies);
    }
    behavior[direction] = rules;
}

fn cpu_utilization_metric(utilization: i64) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": utilization}}})
}

/// `tolerance` needs the alpha `HPAConfigurableTolerance` gate, off in kube 1.33: dropped
/// unless the stored object already uses it (kube's `dropDisabledFields`).
fn drop_disabled_fields(object: &mut Value) {
    for direction in ["scaleUp", "scaleDown"] {
        if let Some(rules) = object
            .pointer_mut(&format!("/spec/behavior/{direction}"))
            .and_then(Value::as_object_mut)
        {
            rules.remove("tolerance");
        }
    }
}

fn tolerance_in_use(object: &Value) -> bool {
    ["scaleUp", "scaleDown"].iter().any(|direction| {
        object
            .pointer(&format!("/spec/behavior/{direction}/tolerance"))
            .is_some_and(|t| !t.is_null())
    })
}

// ---- validation (kube's pkg/apis/autoscaling/validation, v2 form)

const METRIC_SOURCE_TYPES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];

fn validate(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = &object["spec"];
    let min = spec["minReplicas"].as_i64();
    if let Some(min) = min.filter(|m| *m < 1) {
        out.push(invalid(
            "spec.minReplicas",
            &json!(min),
            "must be greater than or equal to 1",
        ));
    }
    let max = spec["maxReplicas"].as_i64().unwrap_or(0);
    if max < 1 {
        out.push(invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|min| max < min) {
        out.push(invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    object_reference(&spec["scaleTargetRef"], "spec.scaleTargetRef", &mut out);
    for (i, metric) in items(&spec["metrics"]).iter().enumerate() {
        metric_spec(metric, &format!("spec.metrics[{i}]"), &mut out);
    }
    if spec["behavior"].is_object() {
        for direction in ["scaleUp", "scaleDown"] {
            let rules = &spec["behavior"][direction];
            if rules.is_object() {
                scaling_rules(rules, &format!("spec.behavior.{direction}"), &mut out);
            }
        }
    }
    out
}

/// kube's `ValidateHorizontalPodAutoscalerStatusUpdate`: replica counts not negative (the
/// same fields in both versions).
fn validate_status(object: &Value) -> Vec<Cause> {
    ["currentReplicas", "desiredReplicas"]
        .iter()
        .filter_map(|key| {
            let count = object["status"][key].as_i64().filter(|n| *n < 0)?;
            Some(invalid(
                &format!("status.{key}"),
                &json!(count),
                "must be greater than or equal to 0",
            ))
        })
        .collect()
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// kube's `ValidateCrossVersionObjectReference`: kind and name required, path segments.
fn object_reference(reference: &Value, path: &str, out: &mut Vec<Cause>) {
    for key in ["kind", "name"] {
        let value = text(reference, key);
        if value.is_empty() {
            out.push(required(&format!("{path}.{key}")));
        }
        for message in names::is_path_segment_name(value) {
            out.push(invalid(&format!("{path}.{key}"), &json!(value), &message));
        }
    }
}

/// The metric source named by `type` must be the one given, and only it.
fn metric_spec(metric: &Value, path: &str, out: &mut Vec<Cause>) {
    let kind = text(metric, "type");
    if kind.is_empty() {
        out.push(required_because(
            &format!("{path}.type"),
            "must specify a metric source type",
        ));
    }
    if !METRIC_SOURCE_TYPES.contains(&kind) {
        out.push(not_supported(
            &format!("{path}.type"),
            &json!(kind),
            METRIC_SOURCE_TYPES,
        ));
    }
    let sources = [
        "object",
        "pods",
        "resource",
        "containerResource",
        "external",
    ];
    let present: Vec<&str> = sources
        .iter()
        .copied()
        .filter(|s| metric[*s].is_object())
        .collect();
    if let Some(first) = present.first() {
        let source = &metric[*first];
        let source_path = format!("{path}.{first}");
        match *first {
            "resource" | "containerResource" => {
                resource_source(source, &source_path, *first == "containerResource", out)
            }
            _ => {
                if *first == "object" {
                    object_reference(
                        &source["describedObject"],
                        &format!("{source_path}.describedObject"),
                        out,
                    );
                }
                let name = source.pointer("/metric/name").and_then(Value::as_str);
                if name.is_none_or(str::is_empty) {
                    out.push(required_because(
                        &format!("{source_path}.metric.name"),
                        "must specify a metric name",
                    ));
                }
                metric_target(&source["target"], &format!("{source_path}.target"), out);
            }
        }
    }
    let mut expected = kind.to_string();
    if let Some(first) = expected.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    if METRIC_SOURCE_TYPES.contains(&kind) && !present.contains(&expected.as_str()) {
        out.push(required_because(
            &format!("{path}.{expected}"),
            "must populate information for the given metric source",
        ));
    }
    for other in present.iter().filter(|s| **s != expected) {
        if present.len() > 1 {
            out.push(forbidden(
                &format!("{path}.{other}"),
                "must populate the given metric source only",
            ));
        }
    }
}

fn resource_source(source: &Value, path: &str, container: bool, out: &mut Vec<Cause>) {
    if text(source, "name").is_empty() {
        out.push(required_because(
            &format!("{path}.name"),
            "must specify a resource name",
        ));
    }
    if container && text(source, "container").is_empty() {
        out.push(required_because(
            &format!("{path}.container"),
            "must specify a container",
        ));
    }
    let target = &source["target"];
    metric_target(target, &format!("{path}.target"), out);
    let utilization = !target["averageUtilization"].is_null();
    let value = !target["averageValue"].is_null();
    if !utilization && !value {
        out.push(required_because(
            &format!("{path}.target.averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if utilization && value {
        out.push(forbidden(
            &format!("{path}.target.averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
}

/// kube's `validateMetricTarget`.
fn metric_target(target: &Value, path: &str, out: &mut Vec<Cause>) {
    let kind = text(target, "type");
    if kind.is_empty() {
        out.push(required_because(
            &format!("{path}.type"),
            "must specify a metric target type",
        ));
    }
    if !["Utilization", "Value", "AverageValue"].contains(&kind) {
        out.push(invalid(
            &format!("{path}.type"),
            &json!(kind),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    if let Some(utilization) = target["averageUtilization"].as_i64().filter(|u| *u < 1) {
        out.push(invalid(
            &format!("{path}.averageUtilization"),
            &json!(utilization),
            "must be greater than 0",
        ));
    }
    for key in ["value", "averageValue"] {
        if let Some(quantity) = target[key].as_str()
            && Quantity::parse(quantity).is_none_or(|q| q.sign() != 1)
        {
            out.push(invalid(
                &format!("{path}.{key}"),
                &json!(quantity),
                "must be positive",
            ));
        }
    }
}

/// kube's `validateScalingRules` (`MaxStabilizationWindowSeconds` 3600, `MaxPeriodSeconds`
/// 1800).
fn scaling_rules(rules: &Value, path: &str, out: &mut Vec<Cause>) {
    if let Some(window) = rules["stabilizationWindowSeconds"].as_i64() {
        let field = format!("{path}.stabilizationWindowSeconds");
        if window < 0 {
            out.push(invalid(
                &field,
                &json!(window),
                "must be greater than or equal to zero",
            ));
        } else if window > 3600 {
            out.push(invalid(
                &field,
                &json!(window),
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(select) = rules["selectPolicy"].as_str()
        && !["Disabled", "Max", "Min"].contains(&select)
    {
        out.push(not_supported(
            &format!("{path}.selectPolicy"),
            &json!(select),
            &["Disabled", "Max", "Min"],
        ));
    }
    let policies = items(&rules["policies"]);
    if policies.is_empty() {
        out.push(required_because(
            &format!("{path}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, policy) in policies.iter().enumerate() {
        let at = format!("{path}.policies[{i}]");
        let kind = text(policy, "type");
        if !["Percent", "Pods"].contains(&kind) {
            out.push(not_supported(
                &format!("{at}.type"),
                &json!(kind),
                &["Percent", "Pods"],
            ));
        }
        let value = policy["value"].as_i64().unwrap_or(0);
        if value <= 0 {
            out.push(invalid(
                &format!("{at}.value"),
                &json!(value),
                "must be greater than zero",
            ));
        }
        let period = policy["periodSeconds"].as_i64().unwrap_or(0);
        if period <= 0 {
            out.push(invalid(
                &format!("{at}.periodSeconds"),
                &json!(period),
                "must be greater than zero",
            ));
        } else if period > 1800 {
            out.push(invalid(
                &format!("{at}.periodSeconds"),
                &json!(period),
                "must be less than or equal to 1800",
            ));
        }
    }
}

// ---- conversion (kube's pkg/apis/autoscaling/v1/conversion.go)

fn is_cpu_resource(metric: &Value) -> bool {
    text(metric, "type") == "Resource" && metric.pointer("/resource/name") == Some(&json!("cpu"))
}

/// A CPU target v1's `targetCPUUtilizationPercentage` says (what the metrics annotation
/// leaves out).
fn is_cpu_utilization(metric: &Value) -> bool {
    is_cpu_resource(metric) && !metric["resource"]["target"]["averageUtilization"].is_null()
}

/// A stored (v2) object in v1's shape.
pub fn to_v1(object: &Value) -> Value {
    let mut out = object.clone();
    out["apiVersion"] = json!("autoscaling/v1");
    drop_round_trip_annotations(&mut out);
    let spec = &object["spec"];
    let metrics = items(&spec["metrics"]);
    let mut v1_spec = Map::new();
    v1_spec.insert(
        "scaleTargetRef".into(),
        reference_v1(&spec["scaleTargetRef"]),
    );
    copy(&mut v1_spec, spec, "minReplicas");
    copy(&mut v1_spec, spec, "maxReplicas");
    if let Some(cpu) = metrics.iter().find(|m| is_cpu_resource(m))
        && let Some(utilization) = cpu.pointer("/resource/target/averageUtilization")
        && !utilization.is_null()
    {
        v1_spec.insert("targetCPUUtilizationPercentage".into(), utilization.clone());
    }
    out["spec"] = Value::Object(v1_spec);
    let others: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_utilization(m))
        .map(metric_spec_to_v1)
        .collect();
    if !others.is_empty() {
        set_annotation(&mut out, METRICS_ANNOTATION, &Value::Array(others));
    }
    if let Some(behavior) = spec.get("behavior").filter(|b| !b.is_null()) {
        set_annotation(
            &mut out,
            BEHAVIOR_ANNOTATION,
            &go_field_names(behavior, true),
        );
    }
    // v1's status is a Go struct whose replica counts are not `omitempty`: always written.
    let status = &object["status"];
    let current = items(&status["currentMetrics"]);
    let mut v1_status = Map::new();
    for key in ["observedGeneration", "lastScaleTime"] {
        copy(&mut v1_status, status, key);
    }
    for key in ["currentReplicas", "desiredReplicas"] {
        v1_status.insert(key.into(), json!(status[key].as_i64().unwrap_or(0)));
    }
    if let Some(utilization) = current
        .iter()
        .filter(|m| is_cpu_resource(m))
        .filter_map(|m| m.pointer("/resource/current/averageUtilization"))
        .rfind(|u| !u.is_null())
    {
        v1_status.insert(
            "currentCPUUtilizationPercentage".into(),
            utilization.clone(),
        );
    }
    out["status"] = Value::Object(v1_status);
    if !current.is_empty() {
        let converted = current.iter().map(metric_status_to_v1).collect();
        set_annotation(
            &mut out,
            CURRENT_METRICS_ANNOTATION,
            &Value::Array(converted),
        );
    }
    let conditions = items(&status["conditions"]);
    if !conditions.is_empty() {
        set_annotation(
            &mut out,
            CONDITIONS_ANNOTATION,
            &Value::Array(conditions.to_vec()),
        );
    }
    out
}

/// A v1 object in the stored (v2) shape, the annotations it carries folded back in.
pub fn to_v2(object: &Value) -> Value {
    let mut out = object.clone();
    out["apiVersion"] = json!("autoscaling/v2");
    let spec = &object["spec"];
    let mut v2_spec = Map::new();
    v2_spec.insert(
        "scaleTargetRef".into(),
        reference_v1(&spec["scaleTargetRef"]),
    );
    copy(&mut v2_spec, spec, "minReplicas");
    copy(&mut v2_spec, spec, "maxReplicas");
    let cpu = spec["targetCPUUtilizationPercentage"]
        .as_i64()
        .map(cpu_utilization_metric);
    // kube puts the annotation's metrics first and the CPU target after them.
    let mut metrics: Vec<Value> = annotation(object, METRICS_ANNOTATION)
        .map(|others| items(&others).iter().map(metric_spec_to_v2).collect())
        .unwrap_or_default();
    metrics.extend(cpu);
    if metrics.is_empty() {
        metrics.push(cpu_utilization_metric(DEFAULT_CPU_UTILIZATION));
    }
    v2_spec.insert("metrics".into(), Value::Array(metrics));
    if let Some(behavior) = annotation(object, BEHAVIOR_ANNOTATION) {
        v2_spec.insert("behavior".into(), go_field_names(&behavior, false));
    }
    out["spec"] = Value::Object(v2_spec);
    if let Some(status) = object.get("status").filter(|s| s.is_object()) {
        let mut v2_status = Map::new();
        for key in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            copy(&mut v2_status, status, key);
        }
        // v2's `currentReplicas` is `omitempty`, v1's is not.
        if v2_status.get("currentReplicas") == Some(&json!(0)) {
            v2_status.remove("currentReplicas");
        }
        let current = match annotation(object, CURRENT_METRICS_ANNOTATION) {
            Some(current) => Some(items(&current).iter().map(metric_status_to_v2).collect()),
            None => status["currentCPUUtilizationPercentage"].as_i64().map(|u| {
                vec![json!({"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": u}}})]
            }),
        };
        if let Some(current) = current {
            v2_status.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(conditions) = annotation(object, CONDITIONS_ANNOTATION) {
            v2_status.insert("conditions".into(), conditions);
        }
        out["status"] = Value::Object(v2_status);
    }
    drop_round_trip_annotations(&mut out);
    out
}

fn copy(out: &mut Map<String, Value>, from: &Value, key: &str) {
    if let Some(value) = from.get(key).filter(|v| !v.is_null()) {
        out.insert(key.into(), value.clone());
    }
}

/// A CrossVersionObjectReference keeps the same fields in both versions.
fn reference_v1(reference: &Value) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!(text(reference, "kind")));
    out.insert("name".into(), json!(text(reference, "name")));
    copy(&mut out, reference, "apiVersion");
    Value::Object(out)
}

fn annotation(object: &Value, key: &str) -> Option<Value> {
    let text = object
        .pointer("/metadata/annotations")?
        .get(key)?
        .as_str()?;
    serde_json::from_str(text).ok()
}

fn set_annotation(object: &mut Value, key: &str, value: &Value) {
    let metadata = &mut object["metadata"];
    if !metadata["annotations"].is_object() {
        metadata["annotations"] = json!({});
    }
    metadata["annotations"][key] = json!(value.to_string());
}

/// kube's `DropRoundTripHorizontalPodAutoscalerAnnotations`: only what the conversion wrote
/// is kept (an emptied map is dropped, as Go's `omitempty`).
fn drop_round_trip_annotations(object: &mut Value) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(annotations) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let before = annotations.len();
    for key in ROUND_TRIP_ANNOTATIONS {
        annotations.remove(key);
    }
    if annotations.is_empty() && before > 0 {
        metadata.remove("annotations");
    }
}

/// The behavior as Go's `encoding/json` writes kube's internal struct, which has no json
/// tags: every key capitalized (`capitalize`), and read back case-insensitively.
fn go_field_names(value: &Value, capitalize: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let mut key = key.clone();
                    if let Some(first) = key.get_mut(..1) {
                        if capitalize {
                            first.make_ascii_uppercase();
                        } else {
                            first.make_ascii_lowercase();
                        }
                    }
                    (key, go_field_names(value, capitalize))
                })
                .collect(),
        ),
        Value::Array(values) => Value::Array(
            values
                .iter()
                .map(|v| go_field_names(v, capitalize))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The metric identifier's name and selector as v1 names them.
fn identifier_to_v1(out: &mut Map<String, Value>, source: &Value, selector_key: &str) {
    out.insert(
        "metricName".into(),
        json!(
            source
                .pointer("/metric/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
    );
    if let Some(selector) = source.pointer("/metric/selector").filter(|s| !s.is_null()) {
        out.insert(selector_key.into(), selector.clone());
    }
}

fn identifier_to_v2(source: &Value, selector_key: &str) -> Value {
    let mut metric = Map::new();
    metric.insert("name".into(), json!(text(source, "metricName")));
    copy_as(&mut metric, source, selector_key, "selector");
    Value::Object(metric)
}

fn copy_as(out: &mut Map<String, Value>, from: &Value, key: &str, as_key: &str) {
    if let Some(value) = from.get(key).filter(|v| !v.is_null()) {
        out.insert(as_key.into(), value.clone());
    }
}

/// A Go `resource.Quantity` that is not a pointer: written `"0"` when unset.
fn quantity_or_zero(from: &Value, key: &str) -> Value {
    from.get(key)
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or(json!("0"))
}

/// A v2 `MetricSpec` as v1's annotation holds it.
fn metric_spec_to_v1(metric: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(text(metric, "type")));
    for (key, source) in metric.as_object().into_iter().flatten() {
        let target = &source["target"];
        let mut v1 = Map::new();
        match key.as_str() {
            "object" => {
                v1.insert("target".into(), reference_v1(&source["describedObject"]));
                identifier_to_v1(&mut v1, source, "selector");
                v1.insert("targetValue".into(), quantity_or_zero(target, "value"));
                copy(&mut v1, target, "averageValue");
            }
            "pods" => {
                identifier_to_v1(&mut v1, source, "selector");
                v1.insert(
                    "targetAverageValue".into(),
                    quantity_or_zero(target, "averageValue"),
                );
            }
            "resource" | "containerResource" => {
                v1.insert("name".into(), json!(text(source, "name")));
                copy_as(
                    &mut v1,
                    target,
                    "averageUtilization",
                    "targetAverageUtilization",
                );
                copy_as(&mut v1, target, "averageValue", "targetAverageValue");
                if key == "containerResource" {
                    v1.insert("container".into(), json!(text(source, "container")));
                }
            }
            "external" => {
                identifier_to_v1(&mut v1, source, "metricSelector");
                copy_as(&mut v1, target, "value", "targetValue");
                copy_as(&mut v1, target, "averageValue", "targetAverageValue");
            }
            _ => continue,
        }
        out.insert(key.clone(), Value::Object(v1));
    }
    Value::Object(out)
}

/// A v1 annotation's `MetricSpec` in v2's shape.
fn metric_spec_to_v2(metric: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(text(metric, "type")));
    for (key, source) in metric.as_object().into_iter().flatten() {
        let v2 = match key.as_str() {
            "object" => {
                let kind = if source["averageValue"].is_null() {
                    "Value"
                } else {
                    "AverageValue"
                };
                let mut target = Map::new();
                target.insert("type".into(), json!(kind));
                target.insert("value".into(), quantity_or_zero(source, "targetValue"));
                copy(&mut target, source, "averageValue");
                json!({"describedObject": reference_v1(&source["target"]),
                    "metric": identifier_to_v2(source, "selector"), "target": target})
            }
            "pods" => json!({"metric": identifier_to_v2(source, "selector"),
                "target": {"type": "AverageValue",
                    "averageValue": quantity_or_zero(source, "targetAverageValue")}}),
            "resource" | "containerResource" => {
                let utilization = !source["targetAverageUtilization"].is_null();
                let mut target = Map::new();
                target.insert(
                    "type".into(),
                    json!(if utilization {
                        "Utilization"
                    } else {
                        "AverageValue"
                    }),
                );
                copy_as(&mut target, source, "targetAverageValue", "averageValue");
                copy_as(
                    &mut target,
                    source,
                    "targetAverageUtilization",
                    "averageUtilization",
                );
                let mut v2 = Map::new();
                v2.insert("name".into(), json!(text(source, "name")));
                if key == "containerResource" {
                    v2.insert("container".into(), json!(text(source, "container")));
                }
                v2.insert("target".into(), Value::Object(target));
                Value::Object(v2)
            }
            "external" => {
                let value = !source["targetValue"].is_null();
                let mut target = Map::new();
                target.insert(
                    "type".into(),
                    json!(if value { "Value" } else { "AverageValue" }),
                );
                copy_as(&mut target, source, "targetValue", "value");
                copy_as(&mut target, source, "targetAverageValue", "averageValue");
                json!({"metric": identifier_to_v2(source, "metricSelector"), "target": target})
            }
            _ => continue,
        };
        out.insert(key.clone(), v2);
    }
    Value::Object(out)
}

/// A v2 `MetricStatus` as v1's annotation holds it.
fn metric_status_to_v1(metric: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(text(metric, "type")));
    for (key, source) in metric.as_object().into_iter().flatten() {
        let current = &source["current"];
        let mut v1 = Map::new();
        match key.as_str() {
            "object" => {
                v1.insert("target".into(), reference_v1(&source["describedObject"]));
                identifier_to_v1(&mut v1, source, "selector");
                v1.insert("currentValue".into(), quantity_or_zero(current, "value"));
                copy(&mut v1, current, "averageValue");
            }
            "pods" => {
                identifier_to_v1(&mut v1, source, "selector");
                v1.insert(
                    "currentAverageValue".into(),
                    quantity_or_zero(current, "averageValue"),
                );
            }
            "resource" | "containerResource" => {
                v1.insert("name".into(), json!(text(source, "name")));
                copy_as(
                    &mut v1,
                    current,
                    "averageUtilization",
                    "currentAverageUtilization",
                );
                v1.insert(
                    "currentAverageValue".into(),
                    quantity_or_zero(current, "averageValue"),
                );
                if key == "containerResource" {
                    v1.insert("container".into(), json!(text(source, "container")));
                }
            }
            "external" => {
                identifier_to_v1(&mut v1, source, "metricSelector");
                v1.insert("currentValue".into(), quantity_or_zero(current, "value"));
                copy_as(&mut v1, current, "averageValue", "currentAverageValue");
            }
            _ => continue,
        }
        out.insert(key.clone(), Value::Object(v1));
    }
    Value::Object(out)
}

/// A v1 annotation's `MetricStatus` in v2's shape.
fn metric_status_to_v2(metric: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(text(metric, "type")));
    for (key, source) in metric.as_object().into_iter().flatten() {
        let v2 = match key.as_str() {
            "object" => {
                let mut current = Map::new();
                current.insert("value".into(), quantity_or_zero(source, "currentValue"));
                copy(&mut current, source, "averageValue");
                json!({"describedObject": reference_v1(&source["target"]),
                    "metric": identifier_to_v2(source, "selector"), "current": current})
            }
            "pods" => json!({"metric": identifier_to_v2(source, "selector"),
                "current": {"averageValue": quantity_or_zero(source, "currentAverageValue")}}),
            "resource" | "containerResource" => {
                let mut current = Map::new();
                current.insert(
                    "averageValue".into(),
                    quantity_or_zero(source, "currentAverageValue"),
                );
                copy_as(
                    &mut current,
                    source,
                    "currentAverageUtilization",
                    "averageUtilization",
                );
                let mut v2 = Map::new();
                v2.insert("name".into(), json!(text(source, "name")));
                if key == "containerResource" {
                    v2.insert("container".into(), json!(text(source, "container")));
                }
                v2.insert("current".into(), Value::Object(current));
                Value::Object(v2)
            }
            "external" => {
                let mut current = Map::new();
                current.insert("value".into(), quantity_or_zero(source, "currentValue"));
                copy_as(&mut current, source, "currentAverageValue", "averageValue");
                json!({"metric": identifier_to_v2(source, "metricSelector"), "current": current})
            }
            _ => continue,
        };
        out.insert(key.clone(), v2);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_object() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"},
                        "target": {"type": "AverageValue", "averageValue": "1k"}}},
                    {"type": "External", "external": {"metric": {"name": "queue",
                        "selector": {"matchLabels": {"q": "jobs"}}},
                        "target": {"type": "Value", "value": "30"}}},
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 60}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120, "selectPolicy": "Min",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}},
            },
            "status": {
                "currentReplicas": 3, "desiredReplicas": 4,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 75, "averageValue": "150m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True",
                    "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "ReadyForNewScale"}],
            },
        })
    }

    #[test]
    fn v2_to_v1_to_v2_is_lossless() {
        let v2 = v2_object();
        let v1 = to_v1(&v2);
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 75);
        assert!(v1["spec"].get("metrics").is_none());
        let annotations = v1["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(annotations["team"], "a");
        let behavior: Value =
            serde_json::from_str(annotations[BEHAVIOR_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(behavior["ScaleDown"]["StabilizationWindowSeconds"], 120);
        let metrics: Value =
            serde_json::from_str(annotations[METRICS_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(metrics[0]["resource"]["targetAverageValue"], "500Mi");
        assert_eq!(metrics[1]["pods"]["metricName"], "qps");
        assert_eq!(
            metrics[2]["external"]["metricSelector"]["matchLabels"]["q"],
            "jobs"
        );
        assert_eq!(to_v2(&v1), v2);
    }

    #[test]
    fn v1_without_target_gets_the_default_cpu_metric() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "a"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "a"}, "maxReplicas": 3}});
        let v2 = to_v2(&v1);
        assert_eq!(v2["spec"]["metrics"], json!([cpu_utilization_metric(80)]));
        assert!(v2["metadata"].get("annotations").is_none());
    }

    #[test]
    fn v2_defaults_fill_behavior_rules() {
        let mut object = json!({"spec": {"maxReplicas": 3,
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 10}}}});
        default_v2(&mut object);
        let spec = &object["spec"];
        assert_eq!(spec["minReplicas"], 1);
        assert_eq!(
            spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"],
            10
        );
        assert_eq!(spec["behavior"]["scaleUp"]["selectPolicy"], "Max");
        assert_eq!(
            spec["behavior"]["scaleUp"]["policies"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            300
        );
    }

    #[test]
    fn validation_words_causes_as_kube() {
        let object = json!({"spec": {"scaleTargetRef": {"kind": "Deployment"},
            "minReplicas": 5, "maxReplicas": 2,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 0}}}]}});
        let causes: Vec<String> = validate(&object)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(causes.contains(&"spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`".to_string()), "{causes:?}");
        assert!(
            causes.contains(&"spec.scaleTargetRef.name: Required value".to_string()),
            "{causes:?}"
        );
        assert!(
            causes
                .iter()
                .any(|c| c.starts_with("spec.metrics[0].resource.target.averageUtilization")),
            "{causes:?}"
        );
    }
}
