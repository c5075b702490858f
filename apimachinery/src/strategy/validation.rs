//! Validation of the built-in kinds, which their strategies run: the fields kube-apiserver
//! checks on every write (container names, ports, selectors, service ports and IPs), and what
//! an update may not change. Problems are [`Cause`]s worded as kube words them (`field.Error`), so the
//! 422 reads `Pod "x" is invalid: spec.containers[1].name: Duplicate value: "a"`.

use std::collections::HashSet;
use std::net::IpAddr;

use kubecache_core::status::Cause;
use kubecache_core::validation as names;
use serde_json::Value;

pub use kubecache_core::field::{
    duplicate, forbidden, invalid, not_supported, required, required_because, too_long,
};

/// kube's `ValidateImmutableField`.
pub(crate) fn immutable(
    field: &str,
    new: Option<&Value>,
    old: Option<&Value>,
    out: &mut Vec<Cause>,
) {
    if normalized(new) != normalized(old) {
        out.push(invalid(
            field,
            new.unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
}

/// Null and absent are the same value.
fn normalized(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

pub(crate) fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub(crate) fn array_at<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

// ---- field validation ----

/// The per-kind checks the strategies run (`crate::strategy`): one entry point per kind,
/// over the shared checks below (pod specs, selectors, ports).
fn spec_of(object: &Value) -> &Value {
    object.get("spec").unwrap_or(&Value::Null)
}

pub fn pod(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    pod_spec(spec_of(object), "spec", None, &mut out);
    out
}

/// kube's `ValidatePodTemplate`: the template's pod spec, any restart policy.
pub fn pod_template(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = object.pointer("/template/spec").unwrap_or(&Value::Null);
    pod_spec(spec, "template.spec", None, &mut out);
    out
}

pub fn replication_controller(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = spec_of(object);
    if let Some(t) = spec.get("template") {
        pod_spec(
            t.get("spec").unwrap_or(&Value::Null),
            "spec.template.spec",
            None,
            &mut out,
        );
    }
    replicas(spec, &mut out);
    out
}

/// Deployments, ReplicaSets, StatefulSets and DaemonSets (`kind` names which, for messages).
pub fn workload(kind: &str, object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    workload_spec(kind, spec_of(object), &mut out);
    out
}

pub fn job(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let spec = spec_of(object);
    job_template(spec, "spec.template", &mut out);
    selector_matches(spec, "spec", &mut out);
    out
}

pub fn cron_job(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let job = spec_of(object)
        .pointer("/jobTemplate/spec")
        .unwrap_or(&Value::Null);
    job_template(job, "spec.jobTemplate.spec.template", &mut out);
    out
}

pub fn service(object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    service_spec(spec_of(object), &mut out);
    out
}

fn replicas(spec: &Value, out: &mut Vec<Cause>) {
    if let Some(n) = spec
        .get("replicas")
        .and_then(Value::as_i64)
        .filter(|n| *n < 0)
    {
        out.push(invalid(
            "spec.replicas",
            &Value::from(n),
            "must be greater than or equal to 0",
        ));
    }
}

fn workload_spec(kind: &str, spec: &Value, out: &mut Vec<Cause>) {
    if kind != "DaemonSet" {
        replicas(spec, out);
    }
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => out.push(required("spec.selector")),
        Some(selector) => {
            let empty = selector
                .get("matchLabels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
                && array_at(selector, "matchExpressions").is_empty();
            if empty {
                out.push(invalid(
                    "spec.selector",
                    selector,
                    &format!("empty selector is invalid for {}", kind.to_lowercase()),
                ));
            } else {
                selector_matches(spec, "spec", out);
            }
        }
    }
    let template_spec = spec.pointer("/template/spec").unwrap_or(&Value::Null);
    pod_spec(template_spec, "spec.template.spec", Some(&["Always"]), out);
}

/// The template's labels must be selected by the selector.
fn selector_matches(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(selector) = spec.get("selector").filter(|s| s.is_object()) else {
        return;
    };
    let labels = spec
        .pointer("/template/metadata/labels")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    if !selects(selector, &labels) {
        out.push(invalid(
            &format!("{path}.template.metadata.labels"),
            &labels,
            "`selector` does not match template `labels`",
        ));
    }
}

/// Whether a `LabelSelector` selects `labels`.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    let get = |key: &str| labels.get(key).and_then(Value::as_str);
    let by_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| {
            m.iter()
                .all(|(k, v)| get(k).is_some() && get(k) == v.as_str())
        });
    let by_expressions = array_at(selector, "matchExpressions").iter().all(|e| {
        let key = str_at(e, "/key");
        let values: Vec<&str> = array_at(e, "values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        match str_at(e, "/operator") {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

fn job_template(job_spec: &Value, template_path: &str, out: &mut Vec<Cause>) {
    let pod = job_spec.pointer("/template/spec").unwrap_or(&Value::Null);
    pod_spec(
        pod,
        &format!("{template_path}.spec"),
        Some(&["OnFailure", "Never"]),
        out,
    );
}

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// A pod spec at `path`. `restart_policies` narrows the allowed restart policies (workload
/// templates: Always; jobs: OnFailure or Never).
pub fn pod_spec(spec: &Value, path: &str, restart_policies: Option<&[&str]>, out: &mut Vec<Cause>) {
    if !spec.is_object() {
        out.push(required(&format!("{path}.containers")));
        return;
    }
    let mut names_seen: HashSet<String> = HashSet::new();
    if array_at(spec, "containers").is_empty() {
        out.push(required(&format!("{path}.containers")));
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in array_at(spec, list).iter().enumerate() {
            container(c, &format!("{path}.{list}[{i}]"), &mut names_seen, out);
        }
    }
    let mut volumes_seen = HashSet::new();
    for (i, v) in array_at(spec, "volumes").iter().enumerate() {
        let field = format!("{path}.volumes[{i}].name");
        let name = str_at(v, "/name");
        if name.is_empty() {
            out.push(required(&field));
        } else if !volumes_seen.insert(name.to_string()) {
            out.push(duplicate(&field, &Value::from(name)));
        }
    }
    let restart = spec.get("restartPolicy").cloned().unwrap_or(Value::Null);
    let all = ["Always", "OnFailure", "Never"];
    let allowed = restart_policies.unwrap_or(&all);
    if let Some(policy) = restart.as_str()
        && !allowed.contains(&policy)
    {
        out.push(not_supported(
            &format!("{path}.restartPolicy"),
            &restart,
            allowed,
        ));
    }
    let dns = spec.get("dnsPolicy").cloned().unwrap_or(Value::Null);
    let dns_policies = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
    if dns.as_str().is_some_and(|p| !dns_policies.contains(&p)) {
        out.push(not_supported(
            &format!("{path}.dnsPolicy"),
            &dns,
            &dns_policies,
        ));
    }
}

fn container(c: &Value, path: &str, names_seen: &mut HashSet<String>, out: &mut Vec<Cause>) {
    let name = str_at(c, "/name");
    let name_field = format!("{path}.name");
    if name.is_empty() {
        out.push(required(&name_field));
    } else {
        for problem in names::is_dns1123_label(name) {
            out.push(invalid(&name_field, &Value::from(name), &problem));
        }
        if !names_seen.insert(name.to_string()) {
            out.push(duplicate(&name_field, &Value::from(name)));
        }
    }
    if str_at(c, "/image").is_empty() {
        out.push(required(&format!("{path}.image")));
    }
    let mut port_names = HashSet::new();
    for (i, p) in array_at(c, "ports").iter().enumerate() {
        let field = format!("{path}.ports[{i}]");
        let port_name = str_at(p, "/name");
        if !port_name.is_empty() {
            for problem in names::is_valid_port_name(port_name) {
                out.push(invalid(
                    &format!("{field}.name"),
                    &Value::from(port_name),
                    &problem,
                ));
            }
            if !port_names.insert(port_name.to_string()) {
                out.push(duplicate(&format!("{field}.name"), &Value::from(port_name)));
            }
        }
        match p.get("containerPort").and_then(Value::as_i64) {
            None | Some(0) => out.push(required(&format!("{field}.containerPort"))),
            Some(n) => port_number(&format!("{field}.containerPort"), n, out),
        }
        if let Some(n) = p
            .get("hostPort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            port_number(&format!("{field}.hostPort"), n, out);
        }
        protocol(p, &format!("{field}.protocol"), out);
    }
}

fn port_number(field: &str, n: i64, out: &mut Vec<Cause>) {
    for problem in names::is_valid_port_num(n) {
        out.push(invalid(field, &Value::from(n), &problem));
    }
}

fn protocol(port: &Value, field: &str, out: &mut Vec<Cause>) {
    match port.get("protocol") {
        None | Some(Value::Null) => out.push(required(field)),
        Some(p) if p.as_str().is_some_and(|p| PROTOCOLS.contains(&p)) => {}
        Some(p) => out.push(not_supported(field, p, PROTOCOLS)),
    }
}

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn service_spec(spec: &Value, out: &mut Vec<Cause>) {
    let kind = spec.get("type").cloned().unwrap_or(Value::Null);
    let kind_str = kind.as_str().unwrap_or("");
    if !SERVICE_TYPES.contains(&kind_str) {
        out.push(not_supported("spec.type", &kind, SERVICE_TYPES));
    }
    let cluster_ip = str_at(spec, "/clusterIP");
    let headless = cluster_ip == "None";
    if kind_str == "ExternalName" {
        if str_at(spec, "/externalName").is_empty() {
            out.push(required("spec.externalName"));
        }
        if !cluster_ip.is_empty() {
            out.push(forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
    } else if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<IpAddr>().is_err() {
        out.push(invalid(
            "spec.clusterIPs[0]",
            &Value::from(cluster_ip),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    let first = spec.pointer("/clusterIPs/0").and_then(Value::as_str);
    if first.is_some_and(|f| f != cluster_ip) {
        out.push(invalid(
            "spec.clusterIPs",
            spec.get("clusterIPs").unwrap_or(&Value::Null),
            "first value must match `clusterIP`",
        ));
    }
    let ports = array_at(spec, "ports");
    if ports.is_empty() && !headless && kind_str != "ExternalName" {
        out.push(required("spec.ports"));
    }
    let mut seen_names = HashSet::new();
    let mut seen_ports = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        let name = str_at(p, "/name");
        if name.is_empty() {
            if ports.len() > 1 {
                out.push(required(&format!("{field}.name")));
            }
        } else {
            for problem in names::is_dns1123_label(name) {
                out.push(invalid(
                    &format!("{field}.name"),
                    &Value::from(name),
                    &problem,
                ));
            }
            if !seen_names.insert(name.to_string()) {
                out.push(duplicate(&format!("{field}.name"), &Value::from(name)));
            }
        }
        let number = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        port_number(&format!("{field}.port"), number, out);
        protocol(p, &format!("{field}.protocol"), out);
        let key = (number, str_at(p, "/protocol").to_string());
        if !seen_ports.insert(key) {
            out.push(duplicate(
                &field,
                &serde_json::json!({"port": number, "protocol": str_at(p, "/protocol")}),
            ));
        }
        match p.get("targetPort") {
            Some(Value::Number(n)) => {
                port_number(&format!("{field}.targetPort"), n.as_i64().unwrap_or(0), out)
            }
            Some(Value::String(s)) => {
                for problem in names::is_valid_port_name(s) {
                    out.push(invalid(
                        &format!("{field}.targetPort"),
                        &Value::from(s.as_str()),
                        &problem,
                    ));
                }
            }
            _ => {}
        }
    }
}

// ---- updates ----

/// A ConfigMap or Secret with `immutable: true` keeps `data_fields` and the flag.
pub fn immutable_data(new: &Value, old: &Value, data_fields: &[&str]) -> Vec<Cause> {
    let mut out = Vec::new();
    immutable_data_into(new, old, data_fields, &mut out);
    out
}

pub fn secret_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    immutable_data_into(new, old, &["data", "stringData"], &mut out);
    immutable("type", new.get("type"), old.get("type"), &mut out);
    out
}

/// Deployments, ReplicaSets and DaemonSets keep their selector.
pub fn selector_unchanged(new: &Value, old: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    immutable(
        "spec.selector",
        new.pointer("/spec/selector"),
        old.pointer("/spec/selector"),
        &mut out,
    );
    out
}

pub fn pod_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    pod_update_into(new, old, &mut out);
    out
}

pub fn stateful_set_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    stateful_set_update_into(new, old, &mut out);
    out
}

pub fn job_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    job_update_into(new, old, &mut out);
    out
}

pub fn service_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    service_update_into(new, old, &mut out);
    out
}

/// A ConfigMap or Secret with `immutable: true` keeps its data and the flag.
fn immutable_data_into(new: &Value, old: &Value, data_fields: &[&str], out: &mut Vec<Cause>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    const DETAIL: &str = "field is immutable when `immutable` is set";
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        out.push(forbidden("immutable", DETAIL));
    }
    for field in data_fields {
        if normalized(new.get(*field)) != normalized(old.get(*field)) {
            out.push(forbidden(field, DETAIL));
        }
    }
}

const POD_UPDATE_MESSAGE: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// kube's `ValidatePodUpdate`: only images, activeDeadlineSeconds (set or lowered),
/// tolerations (added), a negative terminationGracePeriodSeconds set to 1, and removed
/// scheduling gates may change. `nodeName` is set by `pods/binding`, ephemeral containers by
/// `pods/ephemeralcontainers`, resources by `pods/resize`.
fn pod_update_into(new: &Value, old: &Value, out: &mut Vec<Cause>) {
    let (Some(new_spec), Some(old_spec)) = (new.get("spec"), old.get("spec")) else {
        return;
    };
    let mut candidate = new_spec.clone();
    // Images may change: compare with the old images in place.
    for list in ["containers", "initContainers"] {
        let old_list = array_at(old_spec, list);
        if let Some(items) = candidate.get_mut(list).and_then(Value::as_array_mut)
            && items.len() == old_list.len()
        {
            for (item, old_item) in items.iter_mut().zip(old_list) {
                if let (Some(map), Some(image)) = (item.as_object_mut(), old_item.get("image")) {
                    map.insert("image".into(), image.clone());
                }
            }
        }
    }
    // activeDeadlineSeconds may be set, or lowered; never removed or raised.
    let new_deadline = new_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    let old_deadline = old_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    match (old_deadline, new_deadline) {
        (Some(_), None) => out.push(invalid(
            "spec.activeDeadlineSeconds",
            &Value::Null,
            "must not update from a positive integer to nil value",
        )),
        (Some(o), Some(n)) if n > o => out.push(invalid(
            "spec.activeDeadlineSeconds",
            &Value::from(n),
            "must be less than or equal to previous value",
        )),
        _ => {}
    }
    set_like(&mut candidate, old_spec, "activeDeadlineSeconds");
    // Tolerations may be added, not removed or changed.
    let old_tolerations = array_at(old_spec, "tolerations");
    let new_tolerations = array_at(new_spec, "tolerations");
    if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
        set_like(&mut candidate, old_spec, "tolerations");
    }
    // A negative grace period may become 1.
    let old_grace = old_spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64);
    let new_grace = new_spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64);
    if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
        set_like(&mut candidate, old_spec, "terminationGracePeriodSeconds");
    }
    // Scheduling gates may be removed.
    let old_gates = array_at(old_spec, "schedulingGates");
    if array_at(new_spec, "schedulingGates")
        .iter()
        .all(|g| old_gates.contains(g))
    {
        set_like(&mut candidate, old_spec, "schedulingGates");
    }
    if &candidate != old_spec {
        out.push(forbidden("spec", POD_UPDATE_MESSAGE));
    }
}

/// The annotation of a mirror pod (a kubelet's static pod), which kube never lets resize or
/// gain ephemeral containers.
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

fn is_mirror_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_POD_ANNOTATION))
        .is_some()
}

/// The container fields an ephemeral container may not set (kube's
/// `allowedEphemeralContainerFields`, the ones it marks `false`).
const EPHEMERAL_FORBIDDEN_FIELDS: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "lifecycle",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
];
const NOT_FOR_EPHEMERAL: &str = "cannot be set for an Ephemeral Container";

/// kube's `ValidatePodEphemeralContainersUpdate` (the `pods/ephemeralcontainers` write): each
/// ephemeral container sets none of the fields reserved to the pod's own containers and
/// targets one of them, and existing ephemeral containers are neither removed nor changed.
/// Names and images are checked with the whole pod spec ([`pod_spec`]).
pub fn pod_ephemeral_containers_update(new: &Value, old: &Value) -> Vec<Cause> {
    if is_mirror_pod(old) {
        return vec![forbidden(
            "",
            "static pods do not support ephemeral containers",
        )];
    }
    let mut out = Vec::new();
    let spec = spec_of(new);
    let own_names: HashSet<&str> = ["containers", "initContainers"]
        .iter()
        .flat_map(|list| array_at(spec, list))
        .map(|c| str_at(c, "/name"))
        .collect();
    let ephemeral = array_at(spec, "ephemeralContainers");
    for (i, c) in ephemeral.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        for field in EPHEMERAL_FORBIDDEN_FIELDS {
            if c.get(*field).is_some_and(|v| !is_empty_value(v)) {
                out.push(forbidden(&format!("{path}.{field}"), NOT_FOR_EPHEMERAL));
            }
        }
        let target = str_at(c, "/targetContainerName");
        if !target.is_empty() && !own_names.contains(target) {
            out.push(kubecache_core::field::not_found(
                &format!("{path}.targetContainerName"),
                &Value::from(target),
            ));
        }
        for (j, mount) in array_at(c, "volumeMounts").iter().enumerate() {
            for field in ["subPath", "subPathExpr"] {
                if !str_at(mount, &format!("/{field}")).is_empty() {
                    out.push(forbidden(
                        &format!("{path}.volumeMounts[{j}].{field}"),
                        NOT_FOR_EPHEMERAL,
                    ));
                }
            }
        }
    }
    let field = "spec.ephemeralContainers";
    for existing in array_at(spec_of(old), "ephemeralContainers") {
        let name = str_at(existing, "/name");
        match ephemeral.iter().find(|c| str_at(c, "/name") == name) {
            None => out.push(forbidden(
                field,
                &format!("existing ephemeral containers {name:?} may not be removed"),
            )),
            Some(now) if now != existing => out.push(forbidden(
                field,
                &format!("existing ephemeral containers {name:?} may not be changed"),
            )),
            Some(_) => {}
        }
    }
    out
}

/// Go's zero value for what an ephemeral container may not set: absent, null, empty.
fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.values().all(is_empty_value),
        Value::Array(items) => items.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// kube 1.33's `ValidatePodResize` (the `pods/resize` write, which changes only the
/// containers' resources and resize policies): not a static or Windows pod, the QoS class
/// unchanged, and only cpu and memory among the resources changed.
pub fn pod_resize(new: &Value, old: &Value) -> Vec<Cause> {
    if is_mirror_pod(old) {
        return vec![forbidden("", "static pods cannot be resized")];
    }
    if str_at(old, "/spec/os/name") == "windows" {
        return vec![forbidden("", "windows pods cannot be resized")];
    }
    let mut out = Vec::new();
    let old_class = super::core::pod_qos_class(old);
    if super::core::pod_qos_class(new) != old_class {
        out.push(invalid(
            "spec",
            &Value::from(str_at(old, "/status/qosClass")),
            "Pod QOS Class may not change as a result of resizing",
        ));
    }
    let old_containers = array_at(spec_of(old), "containers");
    let new_containers = array_at(spec_of(new), "containers");
    let other_resources = |c: &Value| {
        let mut resources = c.get("resources").cloned().unwrap_or(Value::Null);
        for list in ["requests", "limits"] {
            if let Some(map) = resources.get_mut(list).and_then(Value::as_object_mut) {
                map.retain(|name, _| name != "cpu" && name != "memory");
            }
        }
        resources
    };
    let only_cpu_and_memory = old_containers.len() == new_containers.len()
        && old_containers
            .iter()
            .zip(new_containers)
            .all(|(o, n)| other_resources(o) == other_resources(n));
    if !only_cpu_and_memory {
        out.push(forbidden(
            "spec",
            "only cpu and memory resources are mutable",
        ));
    }
    out
}

/// Makes `target[key]` what `source[key]` is (absent when absent).
fn set_like(target: &mut Value, source: &Value, key: &str) {
    let Some(map) = target.as_object_mut() else {
        return;
    };
    match source.get(key) {
        Some(v) => {
            map.insert(key.into(), v.clone());
        }
        None => {
            map.remove(key);
        }
    }
}

/// StatefulSet fields an update may change (kube's `ValidateStatefulSetUpdate`).
const STATEFULSET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

fn stateful_set_update_into(new: &Value, old: &Value, out: &mut Vec<Cause>) {
    let strip = |spec: Option<&Value>| {
        let mut spec = spec.cloned().unwrap_or(Value::Null);
        if let Some(map) = spec.as_object_mut() {
            map.retain(|k, _| !STATEFULSET_MUTABLE.contains(&k.as_str()));
        }
        spec
    };
    if strip(new.get("spec")) != strip(old.get("spec")) {
        out.push(forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

fn job_update_into(new: &Value, old: &Value, out: &mut Vec<Cause>) {
    immutable(
        "spec.selector",
        new.pointer("/spec/selector"),
        old.pointer("/spec/selector"),
        out,
    );
    // A suspended job that never started may change its template (kube narrows this to the
    // scheduling directives); otherwise the template is fixed.
    let suspended = old.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
        && old.pointer("/status/startTime").is_none_or(Value::is_null);
    if !suspended {
        immutable(
            "spec.template",
            new.pointer("/spec/template"),
            old.pointer("/spec/template"),
            out,
        );
    }
    if old.pointer("/spec/completionMode").and_then(Value::as_str) != Some("Indexed") {
        immutable(
            "spec.completions",
            new.pointer("/spec/completions"),
            old.pointer("/spec/completions"),
            out,
        );
    }
}

/// A service's clusterIP may not change once set, unless it becomes or stops being an
/// ExternalName service.
fn service_update_into(new: &Value, old: &Value, out: &mut Vec<Cause>) {
    let external = |o: &Value| str_at(o, "/spec/type") == "ExternalName";
    if external(new) || external(old) {
        return;
    }
    let old_ip = str_at(old, "/spec/clusterIP");
    let new_ip = str_at(new, "/spec/clusterIP");
    if !old_ip.is_empty() && new_ip != old_ip {
        // kube shows the new clusterIPs list as the value.
        let ips = new
            .pointer("/spec/clusterIPs")
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new()));
        out.push(invalid(
            "spec.clusterIPs[0]",
            &ips,
            "may not change once set",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn strategy(group: &str, kind: &str) -> std::sync::Arc<crate::registry::Resource> {
        Registry::builtin().by_kind(group, "v1", kind).unwrap()
    }

    /// What the server checks on a write of a `group`/`kind` object.
    fn validate_fields(group: &str, kind: &str, object: &Value) -> Vec<Cause> {
        strategy(group, kind).strategy().validate(object)
    }

    fn validate_update(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<Cause> {
        strategy(group, kind).strategy().validate_update(new, old)
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn container_names_are_unique_across_init_and_app_containers() {
        let pod = json!({"spec": {
            "initContainers": [{"name": "a", "image": "x"}],
            "containers": [{"name": "b", "image": "x"}, {"name": "a", "image": "x"}, {"name": "b", "image": "x"}],
            "restartPolicy": "Always",
        }});
        let causes = validate_fields("", "Pod", &pod);
        assert_eq!(
            messages(&causes),
            vec![
                "spec.containers[1].name: Duplicate value: \"a\"",
                "spec.containers[2].name: Duplicate value: \"b\"",
            ]
        );
        assert!(causes.iter().all(|c| c.reason == "FieldValueDuplicate"));
    }

    #[test]
    fn container_fields() {
        let pod = json!({"spec": {"containers": [{"name": "Bad", "ports": [
            {"containerPort": 70000, "protocol": "TCP"},
            {"containerPort": 80, "protocol": "ICMP", "name": "http"},
            {"protocol": "TCP", "name": "http"},
        ]}]}});
        let causes = validate_fields("", "Pod", &pod);
        let fields: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("spec.containers[0].name", "FieldValueInvalid"),
                ("spec.containers[0].image", "FieldValueRequired"),
                (
                    "spec.containers[0].ports[0].containerPort",
                    "FieldValueInvalid"
                ),
                (
                    "spec.containers[0].ports[1].protocol",
                    "FieldValueNotSupported"
                ),
                ("spec.containers[0].ports[2].name", "FieldValueDuplicate"),
                (
                    "spec.containers[0].ports[2].containerPort",
                    "FieldValueRequired"
                ),
            ]
        );
        assert_eq!(
            causes[2].message,
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            causes[3].message,
            "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        );
        assert_eq!(
            validate_fields("", "Pod", &json!({"spec": {}}))[0].field,
            "spec.containers"
        );
    }

    #[test]
    fn workload_selectors_and_job_restart_policy() {
        let deploy = json!({"spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Always"}}}});
        let causes = validate_fields("apps", "Deployment", &deploy);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
        let no_selector =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(
            validate_fields("apps", "Deployment", &no_selector)[0].field,
            "spec.selector"
        );
        let job = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Always"}}}});
        let causes = validate_fields("batch", "Job", &job);
        assert_eq!(
            messages(&causes),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
            ]
        );
        let expr = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}, {"key": "b", "operator": "DoesNotExist"}]});
        assert!(selects(&expr, &json!({"a": "x"})));
        assert!(!selects(&expr, &json!({"a": "x", "b": "y"})));
    }

    #[test]
    fn service_fields() {
        let svc = json!({"spec": {"type": "ClusterIP", "clusterIP": "nope", "ports": [
            {"port": 80, "protocol": "TCP"}, {"port": 0, "protocol": "TCP", "name": "b"}]}});
        let fields: Vec<String> = validate_fields("", "Service", &svc)
            .iter()
            .map(|c| c.field.clone())
            .collect();
        assert_eq!(
            fields,
            vec![
                "spec.clusterIPs[0]",
                "spec.ports[0].name",
                "spec.ports[1].port"
            ]
        );
    }

    #[test]
    fn pod_updates() {
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}], "tolerations": [{"key": "k"}], "activeDeadlineSeconds": 100}});
        let image = json!({"spec": {"containers": [{"name": "a", "image": "x:2"}], "tolerations": [{"key": "k"}, {"key": "n"}], "activeDeadlineSeconds": 50}});
        assert!(validate_update("", "Pod", &image, &old).is_empty());
        let other = json!({"spec": {"containers": [{"name": "a", "image": "x:1", "command": ["sh"]}], "tolerations": [{"key": "k"}], "activeDeadlineSeconds": 100}});
        let causes = validate_update("", "Pod", &other, &old);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec");
        assert_eq!(causes[0].reason, "FieldValueForbidden");
        // Binding is `pods/binding`'s: an update may not set nodeName.
        let bound = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}], "tolerations": [{"key": "k"}], "activeDeadlineSeconds": 100, "nodeName": "n1"}});
        let causes = validate_update("", "Pod", &bound, &old);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec");
        let removed = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}], "activeDeadlineSeconds": 200}});
        let fields: Vec<String> = validate_update("", "Pod", &removed, &old)
            .iter()
            .map(|c| c.field.clone())
            .collect();
        assert_eq!(fields, vec!["spec.activeDeadlineSeconds", "spec"]);
    }

    #[test]
    fn ephemeral_containers_are_only_added() {
        let debugger = json!({"name": "dbg", "image": "busybox", "targetContainerName": "a"});
        let old = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "ephemeralContainers": [debugger]}});
        let added = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "ephemeralContainers": [
            debugger, {"name": "two", "image": "busybox"}]}});
        assert!(pod_ephemeral_containers_update(&added, &old).is_empty());
        let changed = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "ephemeralContainers": [
            {"name": "dbg", "image": "alpine", "targetContainerName": "a"},
            {"name": "three", "image": "busybox", "targetContainerName": "b", "readinessProbe": {"exec": {"command": ["true"]}}}]}});
        let fields: Vec<(String, String)> = pod_ephemeral_containers_update(&changed, &old)
            .into_iter()
            .map(|c| (c.field, c.reason))
            .collect();
        assert_eq!(
            fields,
            [
                (
                    "spec.ephemeralContainers[1].readinessProbe".into(),
                    "FieldValueForbidden".into()
                ),
                (
                    "spec.ephemeralContainers[1].targetContainerName".into(),
                    "FieldValueNotFound".into()
                ),
                (
                    "spec.ephemeralContainers".into(),
                    "FieldValueForbidden".into()
                ),
            ]
        );
        let removed = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        assert_eq!(pod_ephemeral_containers_update(&removed, &old).len(), 1);
        let mut mirror = old.clone();
        mirror["metadata"] = json!({"annotations": {MIRROR_POD_ANNOTATION: "x"}});
        assert_eq!(
            pod_ephemeral_containers_update(&added, &mirror)[0].field,
            ""
        );
    }

    #[test]
    fn resize_keeps_the_qos_class_and_other_resources() {
        let pod = |requests: Value, limits: Value| json!({"spec": {"containers": [{"name": "a", "image": "x", "resources": {"requests": requests, "limits": limits}}]}});
        let old = pod(json!({"cpu": "1"}), json!({"cpu": "2"}));
        assert!(pod_resize(&pod(json!({"cpu": "1500m"}), json!({"cpu": "2"})), &old).is_empty());
        let guaranteed = pod(
            json!({"cpu": "2", "memory": "1Gi"}),
            json!({"cpu": "2", "memory": "1Gi"}),
        );
        assert_eq!(pod_resize(&guaranteed, &old)[0].field, "spec");
        let gpu = pod(
            json!({"cpu": "1", "nvidia.com/gpu": "1"}),
            json!({"cpu": "2"}),
        );
        let causes = pod_resize(&gpu, &old);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert!(
            causes[0].message.contains("only cpu and memory"),
            "{causes:?}"
        );
    }

    #[test]
    fn immutable_objects() {
        let old = json!({"immutable": true, "data": {"a": "1"}});
        let changed = json!({"immutable": false, "data": {"a": "2"}});
        assert_eq!(
            messages(&validate_update("", "ConfigMap", &changed, &old)),
            vec![
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        assert!(validate_update("", "ConfigMap", &old, &old).is_empty());
        let secret_type = validate_update(
            "",
            "Secret",
            &json!({"type": "kubernetes.io/tls"}),
            &json!({"type": "Opaque"}),
        );
        assert_eq!(
            messages(&secret_type),
            vec!["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
        );
        let d_old = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}});
        let d_new = json!({"spec": {"selector": {"matchLabels": {"a": "c"}}}});
        let causes = validate_update("apps", "Deployment", &d_new, &d_old);
        assert_eq!(causes[0].field, "spec.selector");
        assert!(causes[0].message.ends_with("field is immutable"));
        let s_old = json!({"spec": {"serviceName": "a", "replicas": 1}});
        let s_new = json!({"spec": {"serviceName": "b", "replicas": 3}});
        assert_eq!(
            validate_update("apps", "StatefulSet", &s_new, &s_old)[0].field,
            "spec"
        );
        let scaled = json!({"spec": {"serviceName": "a", "replicas": 3}});
        assert!(validate_update("apps", "StatefulSet", &scaled, &s_old).is_empty());
        let svc_old = json!({"spec": {"clusterIP": "10.0.0.5"}});
        let svc_new = json!({"spec": {"clusterIP": "10.0.0.6", "clusterIPs": ["10.0.0.6"]}});
        assert_eq!(
            messages(&validate_update("", "Service", &svc_new, &svc_old)),
            vec!["spec.clusterIPs[0]: Invalid value: [\"10.0.0.6\"]: may not change once set"]
        );
    }
}
