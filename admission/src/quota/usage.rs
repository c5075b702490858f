//! What an object costs a ResourceQuota (kube's quota evaluators,
//! `pkg/quota/v1/evaluator/core` and `generic.ObjectCountEvaluator`): the resource names each
//! evaluator tracks, an object's usage of them, which objects a quota's scopes select and the
//! constraints a quota puts on a pod. Shared by the admission plugin and the quota controller,
//! so both count alike.

use std::collections::BTreeMap;

use kubecache_core::quantity::Quantity;
use serde_json::{Map, Value};

use crate::Operation;

/// An amount of one resource, with the format kube keeps for it: a quantity written with a
/// binary suffix (`Mi`) stays binary through sums (`256Mi`, not `268435456`).
#[derive(Clone, Debug)]
pub struct Amount {
    pub value: Quantity,
    pub binary: bool,
}

impl Amount {
    pub fn parse(text: &str) -> Option<Amount> {
        Some(Amount {
            value: Quantity::parse(text)?,
            binary: text.ends_with('i'),
        })
    }

    pub fn count(n: i64) -> Amount {
        Amount {
            value: Quantity::from(n),
            binary: false,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.value.sign() == 0
    }

    fn plus(&self, other: &Amount, negate: bool) -> Amount {
        let value = self
            .value
            .combine(&other.value, negate)
            // Beyond i128 at the finest exponent: kube's quantities overflow far earlier.
            .unwrap_or_else(|| self.value.clone());
        // A zero takes the other's format, as Go's `Quantity.Add`.
        let binary = if self.is_zero() {
            other.binary
        } else {
            self.binary
        };
        Amount { value, binary }
    }

    fn max(&self, other: &Amount) -> Amount {
        if other.value.compare(&self.value).is_gt() {
            other.clone()
        } else {
            self.clone()
        }
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.value.canonical(self.binary))
    }
}

/// kube's `ResourceList`, in name order.
pub type ResourceList = BTreeMap<String, Amount>;

/// A `ResourceList` object (`spec.hard`, `status.used`, a container's `requests`); entries
/// that do not parse are left out (validation refused them on write).
pub fn parse_list(value: &Value) -> ResourceList {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, amount)| Some((name.clone(), Amount::parse(amount.as_str()?)?)))
        .collect()
}

pub fn list_to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(name, amount)| (name.clone(), Value::String(amount.to_string())))
            .collect::<Map<_, _>>(),
    )
}

/// `a + b`, each entry keeping the format of `a`'s (kube's `quota.Add`).
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut sum = a.clone();
    for (name, amount) in b {
        let entry = match sum.get(name) {
            Some(existing) => existing.plus(amount, false),
            None => amount.clone(),
        };
        sum.insert(name.clone(), entry);
    }
    sum
}

/// `a - b`, clamped at zero (kube's `SubtractWithNonNegativeResult`), over `a`'s names.
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    a.iter()
        .map(|(name, amount)| {
            let difference = match b.get(name) {
                Some(other) => amount.plus(other, true),
                None => amount.clone(),
            };
            let clamped = if difference.value.sign() < 0 {
                Amount {
                    value: Quantity::from(0),
                    binary: amount.binary,
                }
            } else {
                difference
            };
            (name.clone(), clamped)
        })
        .collect()
}

/// The entries of `list` named in `names` (kube's `quota.Mask`).
pub fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a String>) -> ResourceList {
    names
        .into_iter()
        .filter_map(|name| Some((name.clone(), list.get(name)?.clone())))
        .collect()
}

/// `name=value,…` in name order (kube's `prettyPrint`).
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(name, amount)| format!("{name}={amount}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The object-count name kube gives a resource: `count/pods`, `count/deployments.apps`.
pub fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// The core resources whose count a quota may also name the legacy way (`secrets`).
const LEGACY_COUNTS: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
];

/// The static names the pod evaluator tracks.
const POD_RESOURCES: &[&str] = &[
    "pods",
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];

/// What kube's pod evaluator requires every container to state when a quota limits it.
const POD_REQUIRED: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

const SERVICE_RESOURCES: &[&str] = &[
    "services",
    "count/services",
    "services.loadbalancers",
    "services.nodeports",
];

const CLAIM_RESOURCES: &[&str] = &[
    "persistentvolumeclaims",
    "count/persistentvolumeclaims",
    "requests.storage",
];

/// The suffixes of a storage class's claim names (`gold.storageclass.storage.k8s.io/…`).
const STORAGE_CLASS_INFIX: &str = ".storageclass.storage.k8s.io/";

/// Which of kube's evaluators prices a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluator {
    Pods,
    Services,
    PersistentVolumeClaims,
    /// Any other resource: its object count only (`count/<resource>.<group>`, and the legacy
    /// name of a few core ones).
    Count {
        count: String,
        legacy: Option<String>,
    },
}

impl Evaluator {
    pub fn of(group: &str, plural: &str) -> Evaluator {
        match (group, plural) {
            ("", "pods") => Evaluator::Pods,
            ("", "services") => Evaluator::Services,
            ("", "persistentvolumeclaims") => Evaluator::PersistentVolumeClaims,
            _ => Evaluator::Count {
                count: count_name(group, plural),
                legacy: (group.is_empty() && LEGACY_COUNTS.contains(&plural))
                    .then(|| plural.to_string()),
            },
        }
    }

    /// Whether admission prices this operation (kube's `Handles`): every create; updates
    /// where usage can change (a pod's resize, a Service's type, a claim's expansion).
    pub fn handles(&self, operation: Operation) -> bool {
        match operation {
            Operation::Create => true,
            Operation::Update => !matches!(self, Evaluator::Count { .. }),
            Operation::Delete => false,
        }
    }

    /// Whether the quota resource `name` is one this evaluator tracks (`MatchingResources`).
    pub fn tracks(&self, name: &str) -> bool {
        match self {
            Evaluator::Pods => {
                POD_RESOURCES.contains(&name)
                    || name.starts_with("hugepages-")
                    || name.starts_with("requests.hugepages-")
                    || name
                        .strip_prefix("requests.")
                        .is_some_and(is_extended_resource)
            }
            Evaluator::Services => SERVICE_RESOURCES.contains(&name),
            Evaluator::PersistentVolumeClaims => {
                CLAIM_RESOURCES.contains(&name)
                    || name.split_once(STORAGE_CLASS_INFIX).is_some_and(|(_, r)| {
                        r == "requests.storage" || r == "persistentvolumeclaims"
                    })
            }
            Evaluator::Count { count, legacy } => name == count || legacy.as_deref() == Some(name),
        }
    }

    /// What `object` uses (kube's `Usage`), every name this evaluator knows of it.
    pub fn usage(&self, object: &Value) -> ResourceList {
        match self {
            Evaluator::Pods => pod_usage(object),
            Evaluator::Services => service_usage(object),
            Evaluator::PersistentVolumeClaims => claim_usage(object),
            Evaluator::Count { count, legacy } => {
                let mut usage = ResourceList::new();
                usage.insert(count.clone(), Amount::count(1));
                if let Some(legacy) = legacy {
                    usage.insert(legacy.clone(), Amount::count(1));
                }
                usage
            }
        }
    }

    /// Whether `quota` selects `object`: it limits something this evaluator tracks, and every
    /// one of its scopes matches (kube's `generic.Matches`; scopes concern pods only, so a
    /// scoped quota selects no other object).
    pub fn matches(&self, quota: &Value, object: &Value) -> bool {
        let limits_tracked = quota["spec"]["hard"]
            .as_object()
            .is_some_and(|hard| hard.keys().any(|name| self.tracks(name)));
        limits_tracked
            && scope_selectors(quota)
                .iter()
                .all(|selector| self == &Evaluator::Pods && pod_matches_scope(selector, object))
    }

    /// kube's pod `Constraints`: when a quota limits cpu or memory, every container must
    /// state the request or limit it limits. `Err` is the message after `failed quota: …: `.
    pub fn constraints(&self, limited: &[String], object: &Value) -> Result<(), String> {
        if self != &Evaluator::Pods {
            return Ok(());
        }
        let required: Vec<&String> = limited
            .iter()
            .filter(|name| POD_REQUIRED.contains(&name.as_str()))
            .collect();
        let mut missing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for container in
            containers(object, "containers").chain(containers(object, "initContainers"))
        {
            let stated = compute_usage(
                &parse_list(&container["resources"]["requests"]),
                &parse_list(&container["resources"]["limits"]),
            );
            for name in &required {
                if !stated.contains_key(name.as_str()) {
                    let names = missing.entry(name.as_str()).or_default();
                    names.push(container["name"].as_str().unwrap_or_default());
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .into_iter()
            .map(|(name, mut containers)| {
                containers.sort_unstable();
                containers.dedup();
                format!("{name} for: {}", containers.join(","))
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }
}

/// kube's `IsExtendedResourceName`: a qualified name outside `kubernetes.io/`.
fn is_extended_resource(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> + 'a {
    pod["spec"][field].as_array().into_iter().flatten()
}

/// The quota names a container's (or pod's) requests and limits fill (kube's
/// `podComputeUsageHelper`).
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut usage = ResourceList::new();
    for native in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(amount) = requests.get(native) {
            usage.insert(native.to_string(), amount.clone());
            usage.insert(format!("requests.{native}"), amount.clone());
        }
        if let Some(amount) = limits.get(native) {
            usage.insert(format!("limits.{native}"), amount.clone());
        }
    }
    for (name, amount) in requests {
        if name.starts_with("hugepages-") {
            usage.insert(name.clone(), amount.clone());
            usage.insert(format!("requests.{name}"), amount.clone());
        }
        if is_extended_resource(name) {
            usage.insert(format!("requests.{name}"), amount.clone());
        }
    }
    usage
}

/// The pod's effective requests or limits (`field`), kube's `PodRequests`/`PodLimits`: the
/// containers' sum plus the sidecars', or the largest an init container needs while it runs
/// (with the sidecars started before it), whichever is more; then the pod overhead (for
/// limits, only on resources that have one).
pub fn pod_resources(pod: &Value, field: &str) -> ResourceList {
    let of = |container: &Value| parse_list(&container["resources"][field]);
    let mut containers_sum = ResourceList::new();
    for container in containers(pod, "containers") {
        containers_sum = add(&containers_sum, &of(container));
    }
    let mut sidecars = ResourceList::new();
    let mut init_peak = ResourceList::new();
    for init in containers(pod, "initContainers") {
        let running = if init["restartPolicy"] == "Always" {
            sidecars = add(&sidecars, &of(init));
            sidecars.clone()
        } else {
            add(&sidecars, &of(init))
        };
        for (name, amount) in running {
            let peak = match init_peak.get(&name) {
                Some(existing) => existing.max(&amount),
                None => amount,
            };
            init_peak.insert(name, peak);
        }
    }
    let mut total = add(&containers_sum, &sidecars);
    for (name, amount) in init_peak {
        let larger = match total.get(&name) {
            Some(existing) => existing.max(&amount),
            None => amount,
        };
        total.insert(name, larger);
    }
    let overhead = parse_list(&pod["spec"]["overhead"]);
    if field == "limits" {
        let present: Vec<String> = total.keys().cloned().collect();
        add(&total, &mask(&overhead, &present))
    } else {
        add(&total, &overhead)
    }
}

/// Whether a pod still counts against compute quota (kube's `QuotaV1Pod`): not once it
/// reached a terminal phase.
fn pod_is_live(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded") | Some("Failed")
    )
}

fn pod_usage(pod: &Value) -> ResourceList {
    // count/pods counts every pod in storage; `pods` and compute only the live ones.
    let mut usage = ResourceList::new();
    usage.insert("count/pods".into(), Amount::count(1));
    if !pod_is_live(pod) {
        return usage;
    }
    usage.insert("pods".into(), Amount::count(1));
    let computed = compute_usage(
        &pod_resources(pod, "requests"),
        &pod_resources(pod, "limits"),
    );
    usage.extend(computed);
    usage
}

fn service_usage(service: &Value) -> ResourceList {
    let spec = &service["spec"];
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut usage = ResourceList::new();
    usage.insert("services".into(), Amount::count(1));
    usage.insert("count/services".into(), Amount::count(1));
    let (load_balancers, node_ports) = match spec["type"].as_str() {
        Some("NodePort") => (0, ports.len()),
        Some("LoadBalancer") => {
            // Without node-port allocation only the ports that name one take one.
            let node_ports = if spec["allocateLoadBalancerNodePorts"] == false {
                ports
                    .iter()
                    .filter(|p| p["nodePort"].as_i64().unwrap_or(0) != 0)
                    .count()
            } else {
                ports.len()
            };
            (1, node_ports)
        }
        _ => (0, 0),
    };
    usage.insert(
        "services.loadbalancers".into(),
        Amount::count(load_balancers),
    );
    usage.insert(
        "services.nodeports".into(),
        Amount::count(node_ports as i64),
    );
    usage
}

fn claim_usage(claim: &Value) -> ResourceList {
    let mut usage = ResourceList::new();
    usage.insert("persistentvolumeclaims".into(), Amount::count(1));
    usage.insert("count/persistentvolumeclaims".into(), Amount::count(1));
    let class = claim["spec"]["storageClassName"]
        .as_str()
        .or_else(|| {
            claim["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].as_str()
        })
        .filter(|class| !class.is_empty());
    if let Some(class) = class {
        usage.insert(
            format!("{class}{STORAGE_CLASS_INFIX}persistentvolumeclaims"),
            Amount::count(1),
        );
    }
    let storage = claim["spec"]["resources"]["requests"]["storage"]
        .as_str()
        .and_then(Amount::parse);
    if let Some(storage) = storage {
        if let Some(class) = class {
            usage.insert(
                format!("{class}{STORAGE_CLASS_INFIX}requests.storage"),
                storage.clone(),
            );
        }
        usage.insert("requests.storage".into(), storage);
    }
    usage
}

/// One scope of a quota as a selector (kube's `ScopedResourceSelectorRequirement`): plain
/// `spec.scopes` are `Exists`.
#[derive(Debug)]
struct ScopeSelector {
    scope: String,
    operator: String,
    values: Vec<String>,
}

fn scope_selectors(quota: &Value) -> Vec<ScopeSelector> {
    let spec = &quota["spec"];
    let mut selectors: Vec<ScopeSelector> = spec["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|scope| ScopeSelector {
            scope: scope.to_string(),
            operator: "Exists".to_string(),
            values: Vec::new(),
        })
        .collect();
    for expression in spec["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        selectors.push(ScopeSelector::of(expression));
    }
    selectors
}

impl ScopeSelector {
    /// A `ScopedResourceSelectorRequirement` object.
    fn of(expression: &Value) -> ScopeSelector {
        ScopeSelector {
            scope: expression["scopeName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            operator: expression["operator"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            values: expression["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
        }
    }
}

/// Of the `limited` scope selectors (the ResourceQuota configuration's `matchScopes`), those
/// the pod matches that no quota in `quotas` covers with a scope of the same name (kube's
/// `MatchingScopes` and `UncoveredQuotaScopes`), each as Go prints it (`{PriorityClass In
/// [high]}`).
pub fn uncovered_scopes(limited: &[Value], pod: &Value, quotas: &[&Value]) -> Vec<String> {
    let covering: Vec<String> = quotas
        .iter()
        .flat_map(|quota| scope_selectors(quota))
        .map(|selector| selector.scope)
        .collect();
    limited
        .iter()
        .map(ScopeSelector::of)
        .filter(|selector| pod_matches_scope(selector, pod) && !covering.contains(&selector.scope))
        .map(|s| format!("{{{} {} [{}]}}", s.scope, s.operator, s.values.join(" ")))
        .collect()
}

/// kube's `podMatchesScopeFunc`.
fn pod_matches_scope(selector: &ScopeSelector, pod: &Value) -> bool {
    let spec = &pod["spec"];
    match selector.scope.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let class = spec["priorityClassName"].as_str().unwrap_or_default();
            match selector.operator.as_str() {
                "In" => selector.values.iter().any(|v| v == class),
                "NotIn" => !selector.values.iter().any(|v| v == class),
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        _ => false,
    }
}

/// A pod with an active deadline (kube's Terminating scope).
fn is_terminating(pod: &Value) -> bool {
    pod["spec"]["activeDeadlineSeconds"]
        .as_i64()
        .is_some_and(|seconds| seconds >= 0)
}

/// QoS class BestEffort: no container requests or limits cpu or memory.
fn is_best_effort(pod: &Value) -> bool {
    containers(pod, "containers")
        .chain(containers(pod, "initContainers"))
        .all(|container| {
            ["requests", "limits"].iter().all(|field| {
                let list = parse_list(&container["resources"][*field]);
                ["cpu", "memory"]
                    .iter()
                    .all(|name| list.get(*name).is_none_or(Amount::is_zero))
            })
        })
}

/// A pod (anti-)affinity term that names namespaces or a namespace selector.
fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let affinity = &pod["spec"]["affinity"];
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let required = affinity[*kind]["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten();
        let preferred = affinity[*kind]["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|weighted| &weighted["podAffinityTerm"]);
        required.chain(preferred).any(|term| {
            term["namespaces"].as_array().is_some_and(|n| !n.is_empty())
                || term.get("namespaceSelector").is_some_and(|s| !s.is_null())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(name: &str, requests: Value, limits: Value) -> Value {
        json!({"name": name, "resources": {"requests": requests, "limits": limits}})
    }

    #[test]
    fn pod_usage_takes_the_larger_of_containers_and_init_containers_plus_overhead() {
        let pod = json!({"spec": {
            "containers": [
                container("a", json!({"cpu": "100m", "memory": "64Mi"}), json!({"cpu": "200m"})),
                container("b", json!({"cpu": "300m", "memory": "64Mi"}), json!({})),
            ],
            "initContainers": [container("init", json!({"cpu": "1", "memory": "32Mi"}), json!({}))],
            "overhead": {"cpu": "10m"},
        }});
        let usage = Evaluator::Pods.usage(&pod);
        assert_eq!(
            pretty(&usage),
            "count/pods=1,cpu=1010m,limits.cpu=210m,memory=128Mi,pods=1,requests.cpu=1010m,requests.memory=128Mi"
        );
        let done = json!({"spec": pod["spec"], "status": {"phase": "Succeeded"}});
        assert_eq!(pretty(&Evaluator::Pods.usage(&done)), "count/pods=1");
    }

    #[test]
    fn services_claims_and_counts() {
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            pretty(&Evaluator::of("", "services").usage(&lb)),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=2"
        );
        let claim = json!({"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1Gi"}}}});
        let claims = Evaluator::of("", "persistentvolumeclaims");
        assert_eq!(
            pretty(&claims.usage(&claim)),
            "count/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/persistentvolumeclaims=1,gold.storageclass.storage.k8s.io/requests.storage=1Gi,persistentvolumeclaims=1,requests.storage=1Gi"
        );
        assert!(claims.tracks("gold.storageclass.storage.k8s.io/requests.storage"));
        let widgets = Evaluator::of("example.com", "widgets");
        assert!(widgets.tracks("count/widgets.example.com"));
        assert!(!widgets.tracks("pods"));
        assert!(Evaluator::of("", "secrets").tracks("secrets"));
        assert!(!widgets.handles(Operation::Update));
    }

    #[test]
    fn scopes_select_pods() {
        let quota = |scopes: Value, selector: Value| json!({"spec": {"hard": {"pods": "1"}, "scopes": scopes, "scopeSelector": selector}});
        let best_effort =
            json!({"spec": {"containers": [{"name": "a"}], "priorityClassName": "high"}});
        let burstable = json!({"spec": {"containers": [container("a", json!({"cpu": "1"}), json!({}))], "activeDeadlineSeconds": 5}});
        let pods = Evaluator::Pods;
        assert!(pods.matches(&quota(json!(["BestEffort"]), json!(null)), &best_effort));
        assert!(!pods.matches(&quota(json!(["BestEffort"]), json!(null)), &burstable));
        assert!(pods.matches(
            &quota(json!(["Terminating", "NotBestEffort"]), json!(null)),
            &burstable
        ));
        let in_high = json!({"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]});
        assert!(pods.matches(&quota(json!(null), in_high.clone()), &best_effort));
        assert!(!pods.matches(&quota(json!(null), in_high), &burstable));
        let scoped_count =
            json!({"spec": {"hard": {"count/secrets": "1"}, "scopes": ["BestEffort"]}});
        assert!(!Evaluator::of("", "secrets").matches(&scoped_count, &json!({})));
    }

    #[test]
    fn constraints_name_the_containers_missing_what_a_quota_limits() {
        let pod = json!({"spec": {"containers": [
            container("a", json!({"cpu": "1"}), json!({})),
            container("b", json!({}), json!({})),
        ]}});
        let limited = vec![
            "limits.cpu".to_string(),
            "requests.cpu".to_string(),
            "pods".to_string(),
        ];
        assert_eq!(
            Evaluator::Pods.constraints(&limited, &pod).unwrap_err(),
            "must specify limits.cpu for: a,b; requests.cpu for: b"
        );
    }
}
