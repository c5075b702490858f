//! Scheme defaults of the built-in kinds, which their strategies apply: the values
//! kube-apiserver fills in when a built-in object omits them (its scheme defaults — `pkg/apis/*/v1/defaults.go` and the generated defaulters that apply them
//! to every embedded pod template, container, volume and probe), plus the create-time fields
//! kube's strategies add (a Job's generated selector and labels) and the values a Service
//! update keeps from the stored object (kube's `patchAllocatedValues`).
//!
//! kube applies these when decoding every write, so they are applied here on every create,
//! update and patch. Each default only fills a field that is absent (or, where Go tests for
//! its zero value, empty or zero), so defaulting twice changes nothing and a client-side
//! `kubectl apply`, whose patch never names the defaulted fields, does not fight it.

use serde_json::{Map, Value, json};

use crate::objects;

// ---- the defaults of each kind, which its strategy applies ----

pub fn secret(object: &mut Value) {
    set(object, "type", json!("Opaque"));
}

pub fn persistent_volume(object: &mut Value) {
    at(object, "spec", |spec| {
        set(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        set(spec, "volumeMode", json!("Filesystem"));
    });
    set_path(object, &["status", "phase"], json!("Pending"));
}

pub fn endpoints(object: &mut Value) {
    each(object, "subsets", |subset| {
        each(subset, "ports", |p| set(p, "protocol", json!("TCP")))
    });
}

/// A node's allocatable resources default to its capacity.
pub fn node(object: &mut Value) {
    if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
        let capacity = status.get("capacity").filter(|c| c.is_object()).cloned();
        if let (None, Some(capacity)) = (status.get("allocatable"), capacity) {
            status.insert("allocatable".into(), capacity);
        }
    }
}

pub fn replica_set(object: &mut Value) {
    at(object, "spec", |spec| {
        set(spec, "replicas", json!(1));
        template(spec);
    });
}

pub fn endpoint_slice(object: &mut Value) {
    each(object, "ports", |p| set(p, "protocol", json!("TCP")));
}

pub fn priority_class(object: &mut Value) {
    set(object, "preemptionPolicy", json!("PreemptLowerPriority"));
}

pub fn storage_class(object: &mut Value) {
    set(object, "reclaimPolicy", json!("Delete"));
    set(object, "volumeBindingMode", json!("Immediate"));
}

/// kube's `SetDefaults_CSIDriver` (with `SELinuxMountReadWriteOncePod` on, as in 1.33).
pub fn csi_driver(object: &mut Value) {
    // The spec is a Go struct, not a pointer: always there to default.
    if object.is_object() && object.get("spec").is_none_or(Value::is_null) {
        object["spec"] = json!({});
    }
    at(object, "spec", |spec| {
        set(spec, "attachRequired", json!(true));
        set(spec, "podInfoOnMount", json!(false));
        set(spec, "storageCapacity", json!(false));
        set(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
        let no_modes = spec
            .get("volumeLifecycleModes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if no_modes {
            spec["volumeLifecycleModes"] = json!(["Persistent"]);
        }
        set(spec, "requiresRepublish", json!(false));
        set(spec, "seLinuxMount", json!(false));
    });
}

/// An IngressClass's parameters are cluster-scoped unless they say otherwise.
pub fn ingress_class(object: &mut Value) {
    if let Some(parameters) = object
        .pointer_mut("/spec/parameters")
        .filter(|p| p.is_object())
    {
        set(parameters, "scope", json!("Cluster"));
    }
}

// ---- small helpers over JSON objects ----

/// Absent, null, `""`: what a Go zero value looks like after the typed round trip.
fn unset(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// Like [`unset`], and 0 counts as unset too (Go `int32` fields without a pointer).
fn unset_or_zero(value: Option<&Value>) -> bool {
    unset(value) || value.and_then(Value::as_i64) == Some(0)
}

/// Sets `key` of the object `target` to `value` when it is unset.
pub(crate) fn set(target: &mut Value, key: &str, value: Value) {
    if let Some(map) = target.as_object_mut()
        && unset(map.get(key))
    {
        map.insert(key.to_string(), value);
    }
}

pub(crate) fn set_nonzero(target: &mut Value, key: &str, value: Value) {
    if let Some(map) = target.as_object_mut()
        && unset_or_zero(map.get(key))
    {
        map.insert(key.to_string(), value);
    }
}

/// The object at `key`, created empty when absent.
fn object_at<'a>(target: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let map = target.as_object_mut()?;
    let entry = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    Some(entry)
}

/// Sets a nested field, creating the objects on the way.
fn set_path(target: &mut Value, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => set(target, last, value),
        [first, rest @ ..] => {
            if let Some(inner) = object_at(target, first) {
                set_path(inner, rest, value);
            }
        }
    }
}

/// Runs `f` on the object at `key` if there is one.
pub(crate) fn at(target: &mut Value, key: &str, f: impl FnOnce(&mut Value)) {
    if let Some(inner) = target.get_mut(key).filter(|v| v.is_object()) {
        f(inner);
    }
}

/// Runs `f` on every element of the array at `key`.
pub(crate) fn each(target: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = target.get_mut(key).and_then(Value::as_array_mut) {
        items.iter_mut().for_each(&mut f);
    }
}

// ---- pods and pod templates ----

/// `SetDefaults_Pod`: only on Pods, not on templates.
pub fn pod(object: &mut Value) {
    at(object, "spec", |spec| {
        pod_spec(spec);
        for list in ["containers", "initContainers"] {
            each(spec, list, requests_from_limits);
        }
        set(spec, "enableServiceLinks", json!(true));
        if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
            for list in ["containers", "initContainers"] {
                each(spec, list, |c| {
                    each(c, "ports", |p| {
                        let port = p.get("containerPort").cloned().unwrap_or(Value::Null);
                        set_nonzero(p, "hostPort", port);
                    })
                });
            }
        }
    });
}

/// A container with limits but no request for a resource requests its limit.
fn requests_from_limits(container: &mut Value) {
    let Some(limits) = container
        .pointer("/resources/limits")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    let Some(resources) = object_at(container, "resources") else {
        return;
    };
    let Some(requests) = object_at(resources, "requests").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}

/// The `spec.template` of a workload: its pod spec.
fn template(spec: &mut Value) {
    at(spec, "template", |t| at(t, "spec", pod_spec));
}

/// A PodTemplate: its `template` is defaulted like a workload's (`SetDefaults_PodSpec`, not
/// `SetDefaults_Pod`).
pub fn pod_template(object: &mut Value) {
    template(object);
}

/// `SetDefaults_PodSpec` and the defaults of everything a pod spec embeds.
pub fn pod_spec(spec: &mut Value) {
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    set(spec, "restartPolicy", json!("Always"));
    set(spec, "securityContext", json!({}));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "schedulerName", json!("default-scheduler"));
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        each(spec, list, container);
    }
    each(spec, "volumes", volume);
}

/// `SetDefaults_Container` plus ports, probes, lifecycle handlers and env field refs.
fn container(c: &mut Value) {
    if unset(c.get("imagePullPolicy")) {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        set(c, "imagePullPolicy", json!(policy));
    }
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    each(c, "ports", |p| set(p, "protocol", json!("TCP")));
    for probe_field in ["livenessProbe", "readinessProbe", "startupProbe"] {
        at(c, probe_field, probe);
    }
    at(c, "lifecycle", |l| {
        for hook in ["postStart", "preStop"] {
            at(l, hook, |h| at(h, "httpGet", http_get));
        }
    });
    each(c, "env", |e| {
        at(e, "valueFrom", |from| {
            at(from, "fieldRef", |f| set(f, "apiVersion", json!("v1")))
        })
    });
}

/// The tag kube's `ParseImageName` finds: the one after the last `:` of the name part, none
/// with only a digest, and `latest` with neither. An empty image has no tag.
pub fn image_tag(image: &str) -> &str {
    if image.is_empty() {
        return "";
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => &name[last_slash + i + 1..],
        None if digest.is_some() => "",
        None => "latest",
    }
}

fn probe(p: &mut Value) {
    set_nonzero(p, "timeoutSeconds", json!(1));
    set_nonzero(p, "periodSeconds", json!(10));
    set_nonzero(p, "successThreshold", json!(1));
    set_nonzero(p, "failureThreshold", json!(3));
    at(p, "httpGet", http_get);
}

fn http_get(h: &mut Value) {
    set(h, "path", json!("/"));
    set(h, "scheme", json!("HTTP"));
}

/// File mode 0644, the default of secret, configMap, downwardAPI and projected volumes.
const DEFAULT_MODE: i64 = 0o644;

fn volume(v: &mut Value) {
    let has_source = v
        .as_object()
        .is_some_and(|m| m.iter().any(|(k, val)| k != "name" && !val.is_null()));
    if !has_source && let Some(map) = v.as_object_mut() {
        map.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        at(v, source, |s| set(s, "defaultMode", json!(DEFAULT_MODE)));
    }
    at(v, "downwardAPI", downward_items);
    at(v, "projected", |p| {
        each(p, "sources", |s| {
            at(s, "serviceAccountToken", |t| {
                set(t, "expirationSeconds", json!(3600))
            });
            at(s, "downwardAPI", downward_items);
        })
    });
    at(v, "hostPath", |h| set(h, "type", json!("")));
    at(v, "ephemeral", |e| {
        at(e, "volumeClaimTemplate", |t| at(t, "spec", pvc_spec))
    });
}

fn downward_items(d: &mut Value) {
    each(d, "items", |i| {
        at(i, "fieldRef", |f| set(f, "apiVersion", json!("v1")))
    });
}

pub fn pvc(object: &mut Value) {
    at(object, "spec", pvc_spec);
    set_path(object, &["status", "phase"], json!("Pending"));
}

fn pvc_spec(spec: &mut Value) {
    set(spec, "volumeMode", json!("Filesystem"));
}

// ---- workloads ----

pub fn replication_controller(object: &mut Value) {
    let template_labels = object
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    at(object, "spec", |spec| {
        set(spec, "replicas", json!(1));
        if let Some(labels) = &template_labels {
            let empty = spec
                .get("selector")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            if empty {
                spec["selector"] = labels.clone();
            }
        }
        template(spec);
    });
    if let Some(labels) = template_labels {
        copy_labels_if_empty(object, labels);
    }
}

/// Sets `metadata.labels` when the object has none.
fn copy_labels_if_empty(object: &mut Value, labels: Value) {
    let meta = objects::metadata_mut(object);
    let empty = meta
        .get("labels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    if empty && labels.as_object().is_some_and(|l| !l.is_empty()) {
        meta.insert("labels".into(), labels);
    }
}

pub fn deployment(object: &mut Value) {
    at(object, "spec", |spec| {
        set(spec, "replicas", json!(1));
        if let Some(strategy) = object_at(spec, "strategy") {
            set(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate"
                && let Some(rolling) = object_at(strategy, "rollingUpdate")
            {
                set(rolling, "maxUnavailable", json!("25%"));
                set(rolling, "maxSurge", json!("25%"));
            }
        }
        set(spec, "revisionHistoryLimit", json!(10));
        set(spec, "progressDeadlineSeconds", json!(600));
        template(spec);
    });
}

pub fn daemon_set(object: &mut Value) {
    at(object, "spec", |spec| {
        if let Some(strategy) = object_at(spec, "updateStrategy") {
            set(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate"
                && let Some(rolling) = object_at(strategy, "rollingUpdate")
            {
                set(rolling, "maxUnavailable", json!(1));
                set(rolling, "maxSurge", json!(0));
            }
        }
        set(spec, "revisionHistoryLimit", json!(10));
        template(spec);
    });
}

pub fn stateful_set(object: &mut Value) {
    at(object, "spec", |spec| {
        set(spec, "podManagementPolicy", json!("OrderedReady"));
        if let Some(strategy) = object_at(spec, "updateStrategy") {
            if unset(strategy.get("type")) {
                strategy["type"] = json!("RollingUpdate");
                object_at(strategy, "rollingUpdate");
            }
            if strategy["type"] == "RollingUpdate" {
                at(strategy, "rollingUpdate", |r| set(r, "partition", json!(0)));
            }
        }
        if let Some(policy) = object_at(spec, "persistentVolumeClaimRetentionPolicy") {
            set(policy, "whenDeleted", json!("Retain"));
            set(policy, "whenScaled", json!("Retain"));
        }
        set(spec, "replicas", json!(1));
        set(spec, "revisionHistoryLimit", json!(10));
        template(spec);
        each(spec, "volumeClaimTemplates", pvc);
    });
}

pub fn job(object: &mut Value) {
    at(object, "spec", job_spec);
    if let Some(labels) = object
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned()
    {
        copy_labels_if_empty(object, labels);
    }
}

fn job_spec(spec: &mut Value) {
    if unset(spec.get("completions")) && unset(spec.get("parallelism")) {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set(spec, "parallelism", json!(1));
    let backoff = if unset(spec.get("backoffLimitPerIndex")) {
        6
    } else {
        i64::from(i32::MAX)
    };
    set(spec, "backoffLimit", json!(backoff));
    set(spec, "completionMode", json!("NonIndexed"));
    set(spec, "suspend", json!(false));
    let replacement = if unset(spec.get("podFailurePolicy")) {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    set(spec, "podReplacementPolicy", json!(replacement));
    template(spec);
}

/// Label keys of a Job's generated selector (current and legacy names).
pub const JOB_CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_JOB_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

/// kube's Job `PrepareForCreate`: unless `manualSelector` is true, the pod template gets the
/// job-name and controller-uid labels and the selector selects the controller-uid. The Job's
/// own labels, if it has none, are the template's (what kube shows, having defaulted again on
/// read).
pub fn generate_job_selector(object: &mut Value) {
    if object.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let uid = objects::meta_str(object, "uid").unwrap_or("").to_string();
    let name = objects::name(object).to_string();
    let Some(spec) = object_at(object, "spec") else {
        return;
    };
    if let Some(labels) = object_at(spec, "template")
        .and_then(|t| object_at(t, "metadata"))
        .and_then(|m| object_at(m, "labels"))
        .and_then(Value::as_object_mut)
    {
        for key in [LEGACY_JOB_NAME, JOB_NAME] {
            labels.entry(key).or_insert_with(|| json!(name));
        }
        for key in [LEGACY_JOB_CONTROLLER_UID, JOB_CONTROLLER_UID] {
            labels.entry(key).or_insert_with(|| json!(uid));
        }
    }
    if let Some(match_labels) = object_at(spec, "selector")
        .and_then(|s| object_at(s, "matchLabels"))
        .and_then(Value::as_object_mut)
    {
        match_labels
            .entry(JOB_CONTROLLER_UID)
            .or_insert_with(|| json!(uid));
    }
    if let Some(labels) = object.pointer("/spec/template/metadata/labels").cloned() {
        copy_labels_if_empty(object, labels);
    }
}

pub fn cron_job(object: &mut Value) {
    at(object, "spec", |spec| {
        set(spec, "concurrencyPolicy", json!("Allow"));
        set(spec, "suspend", json!(false));
        set(spec, "successfulJobsHistoryLimit", json!(3));
        set(spec, "failedJobsHistoryLimit", json!(1));
        at(spec, "jobTemplate", |t| at(t, "spec", template));
    });
}

// ---- services and networking ----

pub fn service(object: &mut Value, ip_family: &str) {
    let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    set(spec, "sessionAffinity", json!("None"));
    let affinity = spec["sessionAffinity"].as_str().unwrap_or("").to_string();
    if affinity == "None" {
        if let Some(map) = spec.as_object_mut() {
            map.remove("sessionAffinityConfig");
        }
    } else if affinity == "ClientIP"
        && spec
            .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
            .is_none_or(Value::is_null)
    {
        spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10800}});
    }
    set(spec, "type", json!("ClusterIP"));
    let kind = spec["type"].as_str().unwrap_or("").to_string();
    each(spec, "ports", |p| {
        set(p, "protocol", json!("TCP"));
        let port = p.get("port").cloned().unwrap_or(Value::Null);
        set_nonzero(p, "targetPort", port);
    });
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible = matches!(kind.as_str(), "NodePort" | "LoadBalancer")
        || (kind == "ClusterIP" && has_external_ips);
    if externally_accessible {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    // What kube's service storage normalizes: clusterIP and clusterIPs agree, and every
    // service that is not an ExternalName has IP families.
    let cluster_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let first_of_ips = spec
        .pointer("/clusterIPs/0")
        .and_then(Value::as_str)
        .map(str::to_string);
    match (cluster_ip.is_empty(), first_of_ips) {
        (false, None) => spec["clusterIPs"] = json!([cluster_ip]),
        (true, Some(first)) => spec["clusterIP"] = json!(first),
        _ => {}
    }
    if kind != "ExternalName" {
        let headless = cluster_ip == "None";
        let has_selector = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_some_and(|s| !s.is_empty());
        let policy = if headless && !has_selector {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        set(spec, "ipFamilyPolicy", json!(policy));
        let no_families = spec
            .get("ipFamilies")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if no_families {
            spec["ipFamilies"] = json!([ip_family]);
        }
    }
}

/// kube's `patchAllocatedValues`: an update that leaves out the clusterIP of a service that
/// keeps needing one (old clients, `kubectl replace` of a manifest) keeps the allocated one.
pub fn keep_allocated_values(new: &mut Value, old: &Value) {
    let needs_ip =
        |o: &Value| o.pointer("/spec/type").and_then(Value::as_str) != Some("ExternalName");
    if !needs_ip(old) || !needs_ip(new) {
        return;
    }
    let Some(spec) = new.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if unset(spec.get("clusterIP")) && spec.pointer("/clusterIPs/0").is_none() {
        for field in ["clusterIP", "clusterIPs"] {
            if let Some(value) = old.pointer(&format!("/spec/{field}")) {
                spec[field] = value.clone();
            }
        }
    }
}

pub fn network_policy(object: &mut Value) {
    at(object, "spec", |spec| {
        for direction in ["ingress", "egress"] {
            each(spec, direction, |rule| {
                each(rule, "ports", |p| set(p, "protocol", json!("TCP")))
            });
        }
        let no_types = spec
            .get("policyTypes")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if no_types {
            let mut types = vec![json!("Ingress")];
            let has_egress = spec
                .get("egress")
                .and_then(Value::as_array)
                .is_some_and(|e| !e.is_empty());
            if has_egress {
                types.push(json!("Egress"));
            }
            spec["policyTypes"] = Value::Array(types);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::strategy::DefaultContext;

    /// The defaults the server applies to an update of a `group`/`kind` object.
    fn apply(group: &str, kind: &str, object: &mut Value) {
        let info = Registry::builtin().by_kind(group, "v1", kind).unwrap();
        let context = DefaultContext {
            create: false,
            old: None,
            ip_family: "IPv4",
        };
        info.strategy().default(object, &context);
    }

    fn defaulted(group: &str, kind: &str, mut object: Value) -> Value {
        apply(group, kind, &mut object);
        let again = {
            let mut copy = object.clone();
            apply(group, kind, &mut copy);
            copy
        };
        assert_eq!(object, again, "defaulting is idempotent");
        object
    }

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("nginx:latest"), "latest");
        assert_eq!(image_tag("nginx:1.25"), "1.25");
        assert_eq!(image_tag("registry:5000/nginx"), "latest");
        assert_eq!(image_tag("registry:5000/nginx:1"), "1");
        assert_eq!(image_tag("nginx@sha256:abc"), "");
        assert_eq!(image_tag("nginx:1@sha256:abc"), "1");
        assert_eq!(image_tag(""), "");
    }

    #[test]
    fn pod_defaults() {
        let pod = defaulted(
            "",
            "Pod",
            json!({"spec": {
                "containers": [
                    {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
                     "resources": {"limits": {"cpu": "1"}},
                     "livenessProbe": {"httpGet": {"port": 80}}},
                    {"name": "b", "image": "nginx:1.25", "imagePullPolicy": "Never"},
                ],
                "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}],
            }}),
        );
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        let a = &spec["containers"][0];
        assert_eq!(a["imagePullPolicy"], "Always");
        assert_eq!(a["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(a["terminationMessagePolicy"], "File");
        assert_eq!(a["ports"][0]["protocol"], "TCP");
        assert_eq!(a["resources"]["requests"]["cpu"], "1");
        assert_eq!(a["livenessProbe"]["timeoutSeconds"], 1);
        assert_eq!(a["livenessProbe"]["periodSeconds"], 10);
        assert_eq!(a["livenessProbe"]["failureThreshold"], 3);
        assert_eq!(a["livenessProbe"]["httpGet"]["path"], "/");
        assert_eq!(a["livenessProbe"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "Never");
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["secret"]["defaultMode"], 420);
        assert!(spec["volumes"][1].get("emptyDir").is_none());
    }

    #[test]
    fn templates_get_pod_spec_defaults_but_not_pod_ones() {
        let d = defaulted(
            "apps",
            "Deployment",
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "nginx:1", "resources": {"limits": {"cpu": "1"}}}
            ]}}}}),
        );
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert!(pod.get("enableServiceLinks").is_none());
        assert!(pod["containers"][0]["resources"].get("requests").is_none());
        let recreate = defaulted(
            "apps",
            "Deployment",
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        );
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn workload_defaults() {
        let ds = defaulted("apps", "DaemonSet", json!({"spec": {}}));
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        let sts = defaulted(
            "apps",
            "StatefulSet",
            json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {}}]}}),
        );
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            sts["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        let rs = defaulted("apps", "ReplicaSet", json!({"spec": {}}));
        assert_eq!(rs["spec"]["replicas"], 1);
        let rc = defaulted(
            "",
            "ReplicationController",
            json!({"spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}),
        );
        assert_eq!(rc["spec"]["selector"], json!({"a": "b"}));
        assert_eq!(rc["metadata"]["labels"], json!({"a": "b"}));
    }

    #[test]
    fn job_defaults_and_selector() {
        let job = defaulted("batch", "Job", json!({"spec": {"template": {"spec": {}}}}));
        let spec = &job["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        let parallel = defaulted("batch", "Job", json!({"spec": {"parallelism": 3}}));
        assert!(parallel["spec"].get("completions").is_none());

        let mut job =
            json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {}}}});
        generate_job_selector(&mut job);
        assert_eq!(
            job["spec"]["selector"]["matchLabels"],
            json!({JOB_CONTROLLER_UID: "u-1"})
        );
        let labels = &job["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels[JOB_NAME], "pi");
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(job["metadata"]["labels"], *labels);
        let mut manual = json!({"metadata": {"name": "m", "uid": "u"}, "spec": {"manualSelector": true, "template": {}}});
        generate_job_selector(&mut manual);
        assert!(manual["spec"].get("selector").is_none());

        let cron = defaulted(
            "batch",
            "CronJob",
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {}}}}}}),
        );
        assert_eq!(cron["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cron["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cron["spec"]["failedJobsHistoryLimit"], 1);
        let job_spec = &cron["spec"]["jobTemplate"]["spec"];
        assert_eq!(job_spec["template"]["spec"]["restartPolicy"], "Always");
        assert!(job_spec.get("backoffLimit").is_none());
    }

    #[test]
    fn service_defaults() {
        let svc = defaulted(
            "",
            "Service",
            json!({"spec": {"selector": {"a": "b"}, "ports": [{"port": 80}, {"port": 81, "targetPort": "http"}]}}),
        );
        let spec = &svc["spec"];
        assert_eq!(spec["type"], "ClusterIP");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["ports"][0]["targetPort"], 80);
        assert_eq!(spec["ports"][1]["targetPort"], "http");
        assert!(spec.get("externalTrafficPolicy").is_none());

        let lb = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "clusterIP": "10.0.0.9"}}),
        );
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(
            lb["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        assert_eq!(lb["spec"]["clusterIPs"], json!(["10.0.0.9"]));

        let headless = defaulted("", "Service", json!({"spec": {"clusterIP": "None"}}));
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
        let external = defaulted(
            "",
            "Service",
            json!({"spec": {"type": "ExternalName", "externalName": "x.example"}}),
        );
        assert!(external["spec"].get("ipFamilies").is_none());
        assert!(external["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn service_update_keeps_allocated_ip() {
        let old = json!({"spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"]}});
        let mut new = json!({"spec": {"ports": [{"port": 80}]}});
        keep_allocated_values(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.0.0.7");
        let mut external = json!({"spec": {"type": "ExternalName"}});
        keep_allocated_values(&mut external, &old);
        assert!(external["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn other_defaults() {
        assert_eq!(defaulted("", "Secret", json!({}))["type"], "Opaque");
        let np = defaulted(
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"spec": {"egress": [{"ports": [{"port": 53}]}]}}),
        );
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        let pvc = defaulted("", "PersistentVolumeClaim", json!({"spec": {}}));
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc["status"]["phase"], "Pending");
    }
}
