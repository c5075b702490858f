//! Server-side printing: GET and LIST answered as a `meta.k8s.io/v1` `Table` when the Accept
//! header asks for one (`application/json;as=Table;v=v1;g=meta.k8s.io`), as kubectl does for
//! `kubectl get`.
//!
//! Each resource with a kube-apiserver printer has a [`Printer`] here — its column
//! definitions and a function turning one object into that row's cells — mirroring
//! `pkg/printers/internalversion/printers.go`; every other resource gets `Name` and `Age`.

use crate::registry::Resource;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    /// A `PartialObjectMetadata` with the object's metadata.
    Metadata,
    /// The full object.
    Object,
}

/// The Table body, with ages computed against `now`.
pub fn render(
    resource: &Resource,
    objects: Vec<Value>,
    metadata: Value,
    include: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let strategy = resource.strategy();
    let columns = strategy.table_columns();
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|object| {
            let cells = strategy.table_cells(&object, now);
            debug_assert_eq!(cells.len(), columns.len());
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Object => row["object"] = object,
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
                    });
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

// ---------------------------------------------------------------------------------------
// Columns and printers.

/// A `TableColumnDefinition`.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: shown with `-o wide`.
    pub priority: u8,
}

impl Column {
    const fn string(name: &'static str, description: &'static str) -> Column {
        Column {
            name,
            kind: "string",
            format: "",
            description,
            priority: 0,
        }
    }

    const fn integer(name: &'static str, description: &'static str) -> Column {
        Column {
            kind: "integer",
            ..Column::string(name, description)
        }
    }

    /// Shown only with `-o wide`.
    const fn wide(self) -> Column {
        Column {
            priority: 1,
            ..self
        }
    }

    pub fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const NAME: Column = Column {
    format: "name",
    ..Column::string(
        "Name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically.",
    )
};
const AGE: Column = Column::string(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);
const CONTAINERS: Column =
    Column::string("Containers", "Names of each container in the template.").wide();
const IMAGES: Column = Column::string(
    "Images",
    "Images referenced by each container in the template.",
)
.wide();
const SELECTOR: Column = Column::string("Selector", "Label selector for the objects.").wide();

/// The cells of one object's row.
type Cells = fn(&Value, DateTime<Utc>) -> Vec<Value>;

/// How one resource is printed.
pub struct Printer {
    pub columns: &'static [Column],
    cells: Cells,
}

/// The printers of the built-in resources, each named by its strategy (`crate::strategy`).
pub static POD: Printer = Printer {
    columns: POD_COLUMNS,
    cells: pod,
};

pub static SERVICE: Printer = Printer {
    columns: SERVICE_COLUMNS,
    cells: service,
};

pub static NODE: Printer = Printer {
    columns: NODE_COLUMNS,
    cells: node,
};

pub static NAMESPACE: Printer = Printer {
    columns: NAMESPACE_COLUMNS,
    cells: namespace,
};

pub static CONFIGMAP: Printer = Printer {
    columns: CONFIGMAP_COLUMNS,
    cells: configmap,
};

pub static SECRET: Printer = Printer {
    columns: SECRET_COLUMNS,
    cells: secret,
};

pub static EVENT: Printer = Printer {
    columns: EVENT_COLUMNS,
    cells: event,
};

pub static SERVICEACCOUNT: Printer = Printer {
    columns: SERVICEACCOUNT_COLUMNS,
    cells: serviceaccount,
};

pub static PVC: Printer = Printer {
    columns: PVC_COLUMNS,
    cells: pvc,
};

pub static PV: Printer = Printer {
    columns: PV_COLUMNS,
    cells: pv,
};

pub static DEPLOYMENT: Printer = Printer {
    columns: DEPLOYMENT_COLUMNS,
    cells: deployment,
};

pub static REPLICASET: Printer = Printer {
    columns: REPLICASET_COLUMNS,
    cells: replicaset,
};

pub static STATEFULSET: Printer = Printer {
    columns: STATEFULSET_COLUMNS,
    cells: statefulset,
};

pub static DAEMONSET: Printer = Printer {
    columns: DAEMONSET_COLUMNS,
    cells: daemonset,
};

pub static JOB: Printer = Printer {
    columns: JOB_COLUMNS,
    cells: job,
};

pub static CRONJOB: Printer = Printer {
    columns: CRONJOB_COLUMNS,
    cells: cronjob,
};

pub static PODTEMPLATE: Printer = Printer {
    columns: PODTEMPLATE_COLUMNS,
    cells: podtemplate,
};

pub static HORIZONTALPODAUTOSCALER: Printer = Printer {
    columns: HPA_COLUMNS,
    cells: horizontal_pod_autoscaler,
};

pub static LIMITRANGE: Printer = Printer {
    columns: LIMITRANGE_COLUMNS,
    cells: limit_range,
};

pub static RESOURCEQUOTA: Printer = Printer {
    columns: RESOURCEQUOTA_COLUMNS,
    cells: resource_quota,
};

pub static COMPONENTSTATUS: Printer = Printer {
    columns: COMPONENTSTATUS_COLUMNS,
    cells: component_status,
};

/// kube-apiserver's default for types without a printer.
pub static DEFAULT: Printer = Printer {
    columns: &[NAME, AGE],
    cells: default_cells,
};

/// The `Name` column every Table starts with.
pub fn name_column() -> Value {
    NAME.to_json()
}

impl Printer {
    /// One object's row cells.
    pub fn cells(&self, object: &Value, now: DateTime<Utc>) -> Vec<Value> {
        (self.cells)(object, now)
    }
}

/// The printer of `resource`.
pub fn printer(resource: &Resource) -> &'static Printer {
    resource.strategy().printer()
}

fn default_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(o), age(o, now)]
}

// --- pods

const POD_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Ready",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    Column::string(
        "Status",
        "The aggregate status of the containers in this pod.",
    ),
    Column::string(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    Column::string(
        "IP",
        "IP address allocated to the pod. Routable at least within the cluster.",
    )
    .wide(),
    Column::string(
        "Node",
        "NodeName is a request to schedule this pod onto a specific node.",
    )
    .wide(),
    Column::string(
        "Nominated Node",
        "nominatedNodeName is set only when this pod preempts other pods on the node.",
    )
    .wide(),
    Column::string(
        "Readiness Gates",
        "If specified, all readiness gates will be evaluated for pod readiness.",
    )
    .wide(),
];

fn pod(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let status = &o["status"];
    let total = items(&o["spec"]["containers"]).len();
    let phase = text(status, "/phase");
    let mut reason = match text(status, "/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let mut ready = 0;
    let mut restarts = Restarts::default();
    // Restartable (sidecar) init containers keep counting once the pod is initialized.
    let mut sidecar_restarts = Restarts::default();
    let sidecars: Vec<&str> = items(&o["spec"]["initContainers"])
        .iter()
        .filter(|c| text(c, "/restartPolicy") == "Always")
        .map(|c| text(c, "/name"))
        .collect();

    if has_condition(status, "PodScheduled", "False")
        && condition_reason(status, "PodScheduled") == Some("SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let init_total = items(&o["spec"]["initContainers"]).len();
    let mut initializing = false;
    for (i, c) in items(&status["initContainerStatuses"]).iter().enumerate() {
        restarts.add(c);
        if sidecars.contains(&text(c, "/name")) {
            sidecar_restarts.add(c);
        }
        let terminated = &c["state"]["terminated"];
        let waiting_reason = text(c, "/state/waiting/reason");
        if terminated.is_object() && int(terminated, "/exitCode") == 0 {
            continue;
        }
        if bool_at(c, "/started") && c["state"]["running"].is_object() {
            // A restartable (sidecar) init container that is running.
            continue;
        }
        initializing = true;
        reason = if terminated.is_object() {
            match (text(terminated, "/reason"), int(terminated, "/signal")) {
                ("", 0) => format!("Init:ExitCode:{}", int(terminated, "/exitCode")),
                ("", signal) => format!("Init:Signal:{signal}"),
                (r, _) => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{init_total}")
        };
        break;
    }

    if !initializing || has_condition(status, "Initialized", "True") {
        restarts = sidecar_restarts;
        let mut has_running = false;
        for c in items(&status["containerStatuses"]).iter().rev() {
            restarts.add(c);
            let waiting_reason = text(c, "/state/waiting/reason");
            let terminated = &c["state"]["terminated"];
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if terminated.is_object() {
                reason = match (text(terminated, "/reason"), int(terminated, "/signal")) {
                    ("", 0) => format!("ExitCode:{}", int(terminated, "/exitCode")),
                    ("", signal) => format!("Signal:{signal}"),
                    (r, _) => r.to_string(),
                };
            } else if bool_at(c, "/ready") && c["state"]["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition(status, "Ready", "True") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    let deleting = o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    if deleting && text(status, "/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts_cell = match restarts.last {
        Some(t) if restarts.count != 0 => {
            format!("{} ({} ago)", restarts.count, human_duration(now - t))
        }
        _ => restarts.count.to_string(),
    };

    let ip = items(&status["podIPs"])
        .first()
        .map(|p| text(p, "/ip"))
        .unwrap_or("");
    let gates = items(&o["spec"]["readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_gates = gates
            .iter()
            .filter(|g| has_condition(status, text(g, "/conditionType"), "True"))
            .count();
        format!("{true_gates}/{}", gates.len())
    };
    vec![
        name(o),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        age(o, now),
        json!(or_none(ip)),
        json!(or_none(text(o, "/spec/nodeName"))),
        json!(or_none(text(status, "/nominatedNodeName"))),
        json!(readiness_gates),
    ]
}

/// Container restarts and when the last one ended.
#[derive(Default, Clone, Copy)]
struct Restarts {
    count: i64,
    last: Option<DateTime<Utc>>,
}

impl Restarts {
    fn add(&mut self, container_status: &Value) {
        self.count += int(container_status, "/restartCount");
        let finished = container_status.pointer("/lastState/terminated/finishedAt");
        if let Some(t) = timestamp(finished) {
            self.last = Some(self.last.map_or(t, |last| last.max(t)));
        }
    }
}

// --- workloads

// --- pod templates: no Age column, the containers shown without `-o wide`

const PODTEMPLATE_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Containers", "Names of each container in the template."),
    Column::string(
        "Images",
        "Images referenced by each container in the template.",
    ),
    Column::string("Pod Labels", "The labels for the pod template."),
];

fn podtemplate(o: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = pod_template_containers(&o["template"]["spec"]);
    vec![
        name(o),
        json!(containers),
        json!(images),
        json!(format_labels(&o["template"]["metadata"]["labels"])),
    ]
}

/// Labels as kube's `labels.FormatLabels` prints them: `k=v` sorted by key, comma-joined,
/// `<none>` when there are none.
fn format_labels(labels: &Value) -> String {
    let mut pairs: Vec<(&String, &str)> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort_unstable();
    let printed: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    printed.join(",")
}

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Ready", "Number of the pod with ready state"),
    Column::integer(
        "Up-to-date",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    Column::integer(
        "Available",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn deployment(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let status = &o["status"];
    let (containers, images) = containers_and_images(o);
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            int(status, "/readyReplicas"),
            desired_replicas(o)
        )),
        json!(int(status, "/updatedReplicas")),
        json!(int(status, "/availableReplicas")),
        age(o, now),
        json!(containers),
        json!(images),
        json!(label_selector(&o["spec"]["selector"])),
    ]
}

const REPLICASET_COLUMNS: &[Column] = &[
    NAME,
    Column::integer("Desired", "Number of desired pods."),
    Column::integer(
        "Current",
        "Replicas is the most recently observed number of replicas.",
    ),
    Column::integer(
        "Ready",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn replicaset(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let status = &o["status"];
    let (containers, images) = containers_and_images(o);
    vec![
        name(o),
        json!(desired_replicas(o)),
        json!(int(status, "/replicas")),
        json!(int(status, "/readyReplicas")),
        age(o, now),
        json!(containers),
        json!(images),
        json!(label_selector(&o["spec"]["selector"])),
    ]
}

const STATEFULSET_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Ready", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

fn statefulset(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = containers_and_images(o);
    vec![
        name(o),
        json!(format!(
            "{}/{}",
            int(o, "/status/readyReplicas"),
            desired_replicas(o)
        )),
        age(o, now),
        json!(containers),
        json!(images),
    ]
}

const DAEMONSET_COLUMNS: &[Column] = &[
    NAME,
    Column::integer(
        "Desired",
        "The total number of nodes that should be running the daemon pod.",
    ),
    Column::integer(
        "Current",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    Column::integer(
        "Ready",
        "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
    ),
    Column::integer(
        "Up-to-date",
        "The total number of nodes that are running updated daemon pod",
    ),
    Column::integer(
        "Available",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
    ),
    Column::string(
        "Node Selector",
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn daemonset(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let status = &o["status"];
    let (containers, images) = containers_and_images(o);
    vec![
        name(o),
        json!(int(status, "/desiredNumberScheduled")),
        json!(int(status, "/currentNumberScheduled")),
        json!(int(status, "/numberReady")),
        json!(int(status, "/updatedNumberScheduled")),
        json!(int(status, "/numberAvailable")),
        json!(or_none(&label_set(
            &o["spec"]["template"]["spec"]["nodeSelector"]
        ))),
        age(o, now),
        json!(containers),
        json!(images),
        json!(label_selector(&o["spec"]["selector"])),
    ]
}

const JOB_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Status", "Status of the job."),
    Column::string("Completions", "The completion status of the job"),
    Column::string("Duration", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn job(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let status = &o["status"];
    let spec = &o["spec"];
    let succeeded = int(status, "/succeeded");
    let completions = match spec.get("completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(spec, "/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let job_status = if has_condition(status, "Complete", "True") {
        "Complete"
    } else if has_condition(status, "Failed", "True") {
        "Failed"
    } else if o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating"
    } else if has_condition(status, "Suspended", "True") {
        "Suspended"
    } else if has_condition(status, "FailureTarget", "True") {
        "FailureTarget"
    } else if has_condition(status, "SuccessCriteriaMet", "True") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let duration = match (
        timestamp(status.get("startTime")),
        timestamp(status.get("completionTime")),
    ) {
        (Some(start), Some(end)) => human_duration(end - start),
        (Some(start), None) => human_duration(now - start),
        (None, _) => String::new(),
    };
    let (containers, images) = containers_and_images(o);
    vec![
        name(o),
        json!(job_status),
        json!(completions),
        json!(duration),
        age(o, now),
        json!(containers),
        json!(images),
        json!(label_selector(&spec["selector"])),
    ]
}

const CRONJOB_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Schedule",
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    Column::string(
        "Timezone",
        "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
    ),
    Column::string(
        "Suspend",
        "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.",
    ),
    Column::integer("Active", "A list of pointers to currently running jobs."),
    Column::string(
        "Last Schedule",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn cronjob(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &o["spec"];
    let suspend = match spec.get("suspend").and_then(Value::as_bool) {
        None => "<unset>",
        Some(true) => "True",
        Some(false) => "False",
    };
    let last_schedule = match timestamp(o.pointer("/status/lastScheduleTime")) {
        Some(t) => human_duration(now - t),
        None => "<none>".into(),
    };
    let template = &spec["jobTemplate"]["spec"];
    let (containers, images) = pod_template_containers(&template["template"]["spec"]);
    vec![
        name(o),
        json!(text(spec, "/schedule")),
        json!(or_none(text(spec, "/timeZone"))),
        json!(suspend),
        json!(items(&o["status"]["active"]).len()),
        json!(last_schedule),
        age(o, now),
        json!(containers),
        json!(images),
        json!(label_selector(&template["selector"])),
    ]
}

// --- core resources

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Type", "type determines how the Service is exposed."),
    Column::string(
        "Cluster-IP",
        "clusterIP is the IP address of the service and is usually assigned randomly.",
    ),
    Column::string(
        "External-IP",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    Column::string(
        "Port(s)",
        "The list of ports that are exposed by this service.",
    ),
    AGE,
    Column::string(
        "Selector",
        "Route service traffic to pods with label keys and values matching this selector.",
    )
    .wide(),
];

fn service(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &o["spec"];
    let kind = match text(spec, "/type") {
        "" => "ClusterIP",
        t => t,
    };
    let external_ips: Vec<&str> = items(&spec["externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match kind {
        "ExternalName" => text(spec, "/externalName").to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = items(&o["status"]["loadBalancer"]["ingress"])
                .iter()
                .map(|i| match text(i, "/ip") {
                    "" => text(i, "/hostname"),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            ips.extend(&external_ips);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ => or_none(&external_ips.join(",")).to_string(),
    };
    let ports: Vec<String> = items(&spec["ports"])
        .iter()
        .map(|p| {
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match int(p, "/nodePort") {
                0 => format!("{}/{protocol}", int(p, "/port")),
                node_port => format!("{}:{node_port}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    vec![
        name(o),
        json!(kind),
        json!(or_none(text(spec, "/clusterIP"))),
        json!(external),
        json!(or_none(&ports.join(","))),
        age(o, now),
        json!(or_none(&label_set(&spec["selector"]))),
    ]
}

const NODE_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Status", "The status of the node"),
    Column::string("Roles", "The roles of the node"),
    AGE,
    Column::string("Version", "Kubelet Version reported by the node."),
    Column::string("Internal-IP", "List of addresses reachable to the node.").wide(),
    Column::string("External-IP", "List of addresses reachable to the node.").wide(),
    Column::string("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).").wide(),
    Column::string("Kernel-Version", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).").wide(),
    Column::string("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).").wide(),
];

fn node(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let status = &o["status"];
    let mut states = vec![match condition_status(status, "Ready") {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(o, "/spec/unschedulable") {
        states.push("SchedulingDisabled");
    }
    let mut roles: Vec<&str> = o["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(
            |(key, value)| match key.strip_prefix("node-role.kubernetes.io/") {
                Some(role) => Some(role),
                None if key == "kubernetes.io/role" => value.as_str(),
                None => None,
            },
        )
        .filter(|role| !role.is_empty())
        .collect();
    roles.sort_unstable();
    roles.dedup();
    let address = |kind: &str| {
        items(&status["addresses"])
            .iter()
            .find(|a| text(a, "/type") == kind)
            .map(|a| text(a, "/address"))
            .unwrap_or("<none>")
    };
    let info = &status["nodeInfo"];
    vec![
        name(o),
        json!(states.join(",")),
        json!(or_none(&roles.join(","))),
        age(o, now),
        json!(text(info, "/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(or_unknown(text(info, "/osImage"))),
        json!(or_unknown(text(info, "/kernelVersion"))),
        json!(or_unknown(text(info, "/containerRuntimeVersion"))),
    ]
}

const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Status", "The status of the namespace"),
    AGE,
];

fn namespace(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(o), json!(text(o, "/status/phase")), age(o, now)]
}

const CONFIGMAP_COLUMNS: &[Column] = &[
    NAME,
    Column::integer("Data", "Data contains the configuration data."),
    AGE,
];

fn configmap(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(o),
        json!(entries(&o["data"]) + entries(&o["binaryData"])),
        age(o, now),
    ]
}

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Type", "The type of the secret"),
    Column::integer("Data", "Data contains the secret data."),
    AGE,
];

fn secret(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(o),
        json!(text(o, "/type")),
        json!(entries(&o["data"])),
        age(o, now),
    ]
}

const SERVICEACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    Column::integer(
        "Secrets",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    AGE,
];

fn serviceaccount(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(o), json!(items(&o["secrets"]).len()), age(o, now)]
}

const EVENT_COLUMNS: &[Column] = &[
    Column::string(
        "Last Seen",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    Column::string(
        "Type",
        "Type of this event (Normal, Warning), new types could be added in the future.",
    ),
    Column::string(
        "Reason",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    Column::string("Object", "The object that this event is about."),
    Column::string("Subobject", "The subobject that this event is about.").wide(),
    Column::string("Source", "The component reporting this event.").wide(),
    Column::string(
        "Message",
        "A human-readable description of the status of this operation.",
    ),
    Column::string(
        "First Seen",
        "The time at which the event was first recorded.",
    )
    .wide(),
    Column::integer("Count", "The number of times this event has occurred.").wide(),
    Column {
        format: "name",
        ..Column::string("Name", "Name of the event.").wide()
    },
];

/// Core/v1 events and events.k8s.io/v1 events (whose fields are renamed).
fn event(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let field = |core: &str, events_api: &str| {
        o.pointer(core)
            .filter(|v| !v.is_null())
            .or_else(|| o.pointer(events_api).filter(|v| !v.is_null()))
    };
    let involved = field("/involvedObject", "/regarding")
        .cloned()
        .unwrap_or(Value::Null);
    let since = |v: Option<&Value>| timestamp(v).map(|t| human_duration(now - t));
    let last_seen = since(o.pointer("/series/lastObservedTime"))
        .or_else(|| since(field("/lastTimestamp", "/deprecatedLastTimestamp")))
        .or_else(|| since(o.get("eventTime")))
        .unwrap_or_else(|| "<unknown>".into());
    let first_seen = since(field("/firstTimestamp", "/deprecatedFirstTimestamp"))
        .or_else(|| since(o.get("eventTime")))
        .unwrap_or_else(|| "<unknown>".into());
    let source_component = field("/source/component", "/deprecatedSource/component")
        .and_then(Value::as_str)
        .or_else(|| o.get("reportingComponent").and_then(Value::as_str))
        .or_else(|| o.get("reportingController").and_then(Value::as_str))
        .unwrap_or("");
    let count = field("/series/count", "/deprecatedCount")
        .or_else(|| o.get("count"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    vec![
        json!(last_seen),
        json!(text(o, "/type")),
        json!(text(o, "/reason")),
        json!(format!(
            "{}/{}",
            text(&involved, "/kind").to_lowercase(),
            text(&involved, "/name")
        )),
        json!(text(&involved, "/fieldPath")),
        json!(source_component),
        json!(
            field("/message", "/note")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        json!(first_seen),
        json!(count),
        name(o),
    ]
}

const PVC_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Status", "The phase of the claim."),
    Column::string(
        "Volume",
        "The binding reference to the PersistentVolume backing this claim.",
    ),
    Column::string("Capacity", "The actual resources of the underlying volume."),
    Column::string(
        "Access Modes",
        "The actual access modes the volume backing the PVC has.",
    ),
    Column::string(
        "StorageClass",
        "The name of the StorageClass required by the claim.",
    ),
    Column::string(
        "VolumeAttributesClass",
        "The name of the VolumeAttributesClass the claim uses.",
    ),
    AGE,
    Column::string("VolumeMode", "The volume mode of the claim.").wide(),
];

fn pvc(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &o["spec"];
    let status = &o["status"];
    let phase = if o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating"
    } else {
        text(status, "/phase")
    };
    // Capacity and access modes are shown once the claim is bound.
    let bound = !text(spec, "/volumeName").is_empty();
    let (capacity, modes) = if bound {
        (
            text(status, "/capacity/storage"),
            access_modes(&status["accessModes"]),
        )
    } else {
        ("", String::new())
    };
    vec![
        name(o),
        json!(phase),
        json!(text(spec, "/volumeName")),
        json!(capacity),
        json!(modes),
        json!(storage_class(o)),
        json!(or_unset(text(spec, "/volumeAttributesClassName"))),
        age(o, now),
        json!(or_none(text(spec, "/volumeMode"))),
    ]
}

const PV_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Capacity", "The capacity of the volume."),
    Column::string(
        "Access Modes",
        "The access modes the volume can be mounted with.",
    ),
    Column::string(
        "Reclaim Policy",
        "What happens to the volume when released from its claim.",
    ),
    Column::string("Status", "The phase of the volume."),
    Column::string("Claim", "The claim bound to the volume."),
    Column::string(
        "StorageClass",
        "The name of the StorageClass the volume belongs to.",
    ),
    Column::string(
        "VolumeAttributesClass",
        "The name of the VolumeAttributesClass the volume uses.",
    ),
    Column::string(
        "Reason",
        "A brief CamelCase string that describes any failure.",
    ),
    AGE,
    Column::string("VolumeMode", "The volume mode of the volume.").wide(),
];

fn pv(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &o["spec"];
    let claim = match (
        text(spec, "/claimRef/namespace"),
        text(spec, "/claimRef/name"),
    ) {
        (_, "") => String::new(),
        (ns, name) => format!("{ns}/{name}"),
    };
    let phase = if o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating"
    } else {
        text(o, "/status/phase")
    };
    vec![
        name(o),
        json!(text(spec, "/capacity/storage")),
        json!(access_modes(&spec["accessModes"])),
        json!(text(spec, "/persistentVolumeReclaimPolicy")),
        json!(phase),
        json!(claim),
        json!(storage_class(o)),
        json!(or_unset(text(spec, "/volumeAttributesClassName"))),
        json!(text(o, "/status/reason")),
        age(o, now),
        json!(or_none(text(spec, "/volumeMode"))),
    ]
}

// --- admissionregistration.k8s.io

pub static WEBHOOK_CONFIGURATION: Printer = Printer {
    columns: WEBHOOK_CONFIGURATION_COLUMNS,
    cells: webhook_configuration,
};

const WEBHOOK_CONFIGURATION_COLUMNS: &[Column] = &[
    NAME,
    Column::integer(
        "Webhooks",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    AGE,
];

fn webhook_configuration(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(o), json!(items(&o["webhooks"]).len()), age(o, now)]
}

pub static VALIDATING_ADMISSION_POLICY: Printer = Printer {
    columns: VALIDATING_ADMISSION_POLICY_COLUMNS,
    cells: validating_admission_policy,
};

const VALIDATING_ADMISSION_POLICY_COLUMNS: &[Column] = &[
    NAME,
    Column::integer(
        "Validations",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
    Column::string(
        "ParamKind",
        "ParamKind specifies the kind of resources used to parameterize this policy",
    ),
    AGE,
];

fn validating_admission_policy(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let param_kind = match o.pointer("/spec/paramKind").filter(|p| p.is_object()) {
        Some(kind) => format!("{}/{}", text(kind, "/apiVersion"), text(kind, "/kind")),
        None => "<unset>".into(),
    };
    vec![
        name(o),
        json!(items(&o["spec"]["validations"]).len()),
        json!(param_kind),
        age(o, now),
    ]
}

pub static VALIDATING_ADMISSION_POLICY_BINDING: Printer = Printer {
    columns: VALIDATING_ADMISSION_POLICY_BINDING_COLUMNS,
    cells: validating_admission_policy_binding,
};

const VALIDATING_ADMISSION_POLICY_BINDING_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "PolicyName",
        "PolicyName indicates the policy definition which the policy binding binded to",
    ),
    Column::string(
        "ParamRef",
        "ParamRef indicates the param resource which sets the configration param",
    ),
    AGE,
];

fn validating_admission_policy_binding(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // A named param without a namespace may be cluster-scoped or in the request's namespace:
    // kube prints `*/name` for it.
    let param_ref = match o.pointer("/spec/paramRef").filter(|p| p.is_object()) {
        None => "<unset>".to_string(),
        Some(r) => match (text(r, "/name"), text(r, "/namespace")) {
            ("", _) if r["selector"].is_object() => label_selector(&r["selector"]),
            ("", _) => "<unset>".to_string(),
            (name, "") => format!("*/{name}"),
            (name, namespace) => format!("{namespace}/{name}"),
        },
    };
    vec![
        name(o),
        json!(text(o, "/spec/policyName")),
        json!(param_ref),
        age(o, now),
    ]
}

// --- apiregistration.k8s.io

pub static APISERVICE: Printer = Printer {
    columns: APISERVICE_COLUMNS,
    cells: apiservice,
};

const APISERVICE_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Service",
        "The reference to the service that hosts this API endpoint.",
    ),
    Column::string("Available", "Whether this service is available."),
    AGE,
];

fn apiservice(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let service = match o.pointer("/spec/service").filter(|s| s.is_object()) {
        Some(s) => format!("{}/{}", text(s, "/namespace"), text(s, "/name")),
        None => "Local".into(),
    };
    let available = match condition(&o["status"], "Available") {
        None => "Unknown".to_string(),
        Some(c) => match (text(c, "/status"), text(c, "/reason")) {
            (status, reason) if status != "True" && !reason.is_empty() => {
                format!("{status} ({reason})")
            }
            (status, _) => status.to_string(),
        },
    };
    vec![name(o), json!(service), json!(available), age(o, now)]
}

// --- certificates.k8s.io

pub static CERTIFICATE_SIGNING_REQUEST: Printer = Printer {
    columns: CERTIFICATE_SIGNING_REQUEST_COLUMNS,
    cells: certificate_signing_request,
};

const CERTIFICATE_SIGNING_REQUEST_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    Column::string(
        "SignerName",
        "signerName indicates the requested signer, and is a qualified name.",
    ),
    Column::string("Requestor", "Name of requestor"),
    Column::string(
        "RequestedDuration",
        "expirationSeconds is the requested duration of validity of the issued certificate.",
    ),
    Column::string(
        "Condition",
        "Condition indicates the current condition of the certificate signing request",
    ),
];

fn certificate_signing_request(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let duration = match o.pointer("/spec/expirationSeconds").and_then(Value::as_i64) {
        Some(seconds) => human_duration(chrono::Duration::seconds(seconds)),
        None => "<none>".into(),
    };
    vec![
        name(o),
        age(o, now),
        json!(or_none(text(o, "/spec/signerName"))),
        json!(text(o, "/spec/username")),
        json!(duration),
        json!(csr_condition(&o["status"])),
    ]
}

/// kube's `extractCSRStatus`: Denied over Approved over Pending, then `,Failed` and `,Issued`.
fn csr_condition(status: &Value) -> String {
    let has = |kind: &str| condition(status, kind).is_some();
    let mut printed = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        printed.push_str(",Failed");
    }
    if !text(status, "/certificate").is_empty() {
        printed.push_str(",Issued");
    }
    printed
}

// --- flowcontrol.apiserver.k8s.io

pub static FLOW_SCHEMA: Printer = Printer {
    columns: FLOW_SCHEMA_COLUMNS,
    cells: flow_schema,
};

const FLOW_SCHEMA_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "PriorityLevel",
        "`name` is the name of the priority level configuration being referenced Required.",
    ),
    Column::string(
        "MatchingPrecedence",
        "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request. The chosen FlowSchema is among those with the numerically lowest (which we take to be logically highest) MatchingPrecedence.  Each MatchingPrecedence value must be ranged in [1,10000]. Note that if the precedence is not specified, it will be set to 1000 as default.",
    ),
    Column::string(
        "DistinguisherMethod",
        "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema. `nil` specifies that the distinguisher is disabled and thus will always be the empty string.",
    ),
    AGE,
    Column::string(
        "MissingPL",
        "references a broken or non-existent PriorityLevelConfiguration",
    ),
];

fn flow_schema(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let distinguisher = match text(o, "/spec/distinguisherMethod/type") {
        "" => "*",
        method => method,
    };
    let missing = condition_status(&o["status"], "Dangling").unwrap_or("?");
    vec![
        name(o),
        json!(text(o, "/spec/priorityLevelConfiguration/name")),
        json!(int(o, "/spec/matchingPrecedence")),
        json!(distinguisher),
        age(o, now),
        json!(missing),
    ]
}

pub static PRIORITY_LEVEL_CONFIGURATION: Printer = Printer {
    columns: PRIORITY_LEVEL_CONFIGURATION_COLUMNS,
    cells: priority_level_configuration,
};

const PRIORITY_LEVEL_CONFIGURATION_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Type",
        "`type` indicates whether this priority level is subject to limitation on request execution.  A value of `\"Exempt\"` means that requests of this priority level are not subject to a limit (and thus are never queued) and do not detract from the capacity made available to other priority levels.  A value of `\"Limited\"` means that (a) requests of this priority level _are_ subject to limits and (b) some of the server's limited capacity is made available exclusively to this priority level. Required.",
    ),
    Column::string(
        "NominalConcurrencyShares",
        "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level.",
    ),
    Column::string(
        "Queues",
        "`queues` is the number of queues for this priority level. The queues exist independently at each apiserver. The value must be positive.  Setting it to 1 effectively precludes shufflesharding and thus makes the distinguisher method of associated flow schemas irrelevant.  This field has a default value of 64.",
    ),
    Column::string(
        "HandSize",
        "`handSize` is a small positive number that configures the shuffle sharding of requests into queues.",
    ),
    Column::string(
        "QueueLengthLimit",
        "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time; excess requests are rejected.  This value must be positive.  If not specified, it will be defaulted to 50.",
    ),
    AGE,
];

fn priority_level_configuration(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let limited = o.pointer("/spec/limited").filter(|l| l.is_object());
    let number_or_none = |pointer: &str| match limited.and_then(|l| l.pointer(pointer)) {
        Some(n) if n.is_number() => n.clone(),
        _ => json!("<none>"),
    };
    vec![
        name(o),
        json!(text(o, "/spec/type")),
        number_or_none("/nominalConcurrencyShares"),
        number_or_none("/limitResponse/queuing/queues"),
        number_or_none("/limitResponse/queuing/handSize"),
        number_or_none("/limitResponse/queuing/queueLengthLimit"),
        age(o, now),
    ]
}

// --- horizontalpodautoscalers (printed from the v2 form)

const HPA_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Reference",
        "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count.",
    ),
    Column::string(
        "Targets",
        "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond. If not set, the default metric will be set to 80% average CPU utilization.",
    ),
    Column::string(
        "MinPods",
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available.",
    ),
    Column::string(
        "MaxPods",
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas.",
    ),
    Column::string(
        "Replicas",
        "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler.",
    ),
    AGE,
];

fn horizontal_pod_autoscaler(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &o["spec"];
    let reference = format!(
        "{}/{}",
        text(spec, "/scaleTargetRef/kind"),
        text(spec, "/scaleTargetRef/name")
    );
    let min_pods = spec["minReplicas"]
        .as_i64()
        .map_or("<unset>".to_string(), |m| m.to_string());
    vec![
        name(o),
        json!(reference),
        json!(hpa_metrics(
            items(&spec["metrics"]),
            items(&o["status"]["currentMetrics"])
        )),
        json!(min_pods),
        json!(int(spec, "/maxReplicas")),
        json!(int(o, "/status/currentReplicas")),
        age(o, now),
    ]
}

/// kube's `formatHPAMetrics`: `current/target` per metric, the first two, then `+ N more...`.
fn hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let unknown = || "<unknown>".to_string();
    let quantity = |v: &Value, pointer: &str| or_unknown(text(v, pointer)).to_string();
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let kind = text(spec, "/type");
            let source_key = match kind {
                "External" => "external",
                "Pods" => "pods",
                "Object" => "object",
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                _ => return "<unknown type>".to_string(),
            };
            let source = &spec[source_key];
            let status = statuses
                .get(i)
                .map(|s| &s[source_key])
                .filter(|s| s.is_object());
            let target = &source["target"];
            match source_key {
                "resource" | "containerResource" => {
                    let resource = text(source, "/name");
                    if target["averageValue"].is_string() {
                        let current =
                            status.map_or_else(unknown, |s| quantity(s, "/current/averageValue"));
                        format!("{resource}: {current}/{}", text(target, "/averageValue"))
                    } else {
                        let current = status
                            .and_then(|s| s.pointer("/current/averageUtilization"))
                            .and_then(Value::as_i64)
                            .map_or_else(unknown, |u| format!("{u}%"));
                        let goal = target["averageUtilization"]
                            .as_i64()
                            .map_or("<auto>".to_string(), |u| format!("{u}%"));
                        format!("{resource}: {current}/{goal}")
                    }
                }
                "pods" => {
                    let current =
                        status.map_or_else(unknown, |s| quantity(s, "/current/averageValue"));
                    format!("{current}/{}", text(target, "/averageValue"))
                }
                _ if target["averageValue"].is_string() => {
                    let current = status
                        .filter(|s| s.pointer("/current/averageValue").is_some())
                        .map_or_else(unknown, |s| quantity(s, "/current/averageValue"));
                    format!("{current}/{} (avg)", text(target, "/averageValue"))
                }
                _ => {
                    let current = status.map_or_else(unknown, |s| quantity(s, "/current/value"));
                    format!("{current}/{}", text(target, "/value"))
                }
            }
        })
        .collect();
    const SHOWN: usize = 2;
    if list.len() > SHOWN {
        format!(
            "{} + {} more...",
            list[..SHOWN].join(", "),
            list.len() - SHOWN
        )
    } else {
        list.join(", ")
    }
}

// --- limitranges, resourcequotas, componentstatuses

const LIMITRANGE_COLUMNS: &[Column] = &[
    NAME,
    Column {
        kind: "date",
        ..Column::string(
            "Created At",
            "CreationTimestamp is a timestamp representing the server time when this object was created.",
        )
    },
];

fn limit_range(o: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(o),
        o.pointer("/metadata/creationTimestamp")
            .cloned()
            .unwrap_or(Value::Null),
    ]
}

const RESOURCEQUOTA_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    Column::string(
        "Request",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    Column::string(
        "Limit",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
];

/// kube's `printResourceQuota`: `resource: used/hard` for each enforced resource, sorted,
/// those named `limits.*` in the Limit column.
fn resource_quota(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let status = &o["status"];
    let mut resources: Vec<&String> = status["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    resources.sort();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for resource in resources {
        let used = status["used"][resource.as_str()].as_str().unwrap_or("0");
        let hard = status["hard"][resource.as_str()].as_str().unwrap_or("0");
        let entry = format!("{resource}: {used}/{hard}");
        match resource.split_once('.') {
            Some(("limits", _)) => limits.push(entry),
            _ => requests.push(entry),
        }
    }
    vec![
        name(o),
        age(o, now),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
    ]
}

const COMPONENTSTATUS_COLUMNS: &[Column] = &[
    NAME,
    Column::string("Status", "Status of the component conditions"),
    Column::string("Message", "Message of the component conditions"),
    Column::string("Error", "Error of the component conditions"),
];

/// kube's `printComponentStatus`: the `Healthy` condition.
fn component_status(o: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    let healthy = condition(o, "Healthy");
    let status = match healthy.map(|c| text(c, "/status")) {
        None => "Unknown",
        Some("True") => "Healthy",
        Some(_) => "Unhealthy",
    };
    let field = |key: &str| healthy.map_or("", |c| text(c, key));
    vec![
        name(o),
        json!(status),
        json!(field("/message")),
        json!(field("/error")),
    ]
}

// --- storage.k8s.io, node.k8s.io and networking.k8s.io (their strategies: `strategy::storage`,
// `strategy::node`, `strategy::networking`)

pub static CSIDRIVER: Printer = Printer {
    columns: CSIDRIVER_COLUMNS,
    cells: csi_driver,
};

pub static CSINODE: Printer = Printer {
    columns: CSINODE_COLUMNS,
    cells: csi_node,
};

pub static CSISTORAGECAPACITY: Printer = Printer {
    columns: CSISTORAGECAPACITY_COLUMNS,
    cells: csi_storage_capacity,
};

pub static VOLUMEATTACHMENT: Printer = Printer {
    columns: VOLUMEATTACHMENT_COLUMNS,
    cells: volume_attachment,
};

pub static RUNTIMECLASS: Printer = Printer {
    columns: RUNTIMECLASS_COLUMNS,
    cells: runtime_class,
};

pub static INGRESSCLASS: Printer = Printer {
    columns: INGRESSCLASS_COLUMNS,
    cells: ingress_class,
};

pub static IPADDRESS: Printer = Printer {
    columns: IPADDRESS_COLUMNS,
    cells: ip_address,
};

pub static SERVICECIDR: Printer = Printer {
    columns: SERVICECIDR_COLUMNS,
    cells: service_cidr,
};

const fn boolean(name: &'static str, description: &'static str) -> Column {
    Column {
        kind: "boolean",
        ..Column::string(name, description)
    }
}

const CSIDRIVER_COLUMNS: &[Column] = &[
    NAME,
    boolean(
        "AttachRequired",
        "attachRequired indicates this CSI volume driver requires an attach operation (because it implements the CSI ControllerPublishVolume() method), and that the Kubernetes attach detach controller should call the attach volume interface which checks the volumeattachment status and waits until the volume is attached before proceeding to mounting. The CSI external-attacher coordinates with CSI volume driver and updates the volumeattachment status when the attach operation is complete. If the CSIDriverRegistry feature gate is enabled and the value is specified to false, the attach operation will be skipped. Otherwise the attach operation will be called.\n\nThis field is immutable.",
    ),
    boolean(
        "PodInfoOnMount",
        "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations, if set to true. If set to false, pod information will not be passed on mount. Default is false.\n\nThe CSI driver specifies podInfoOnMount as part of driver deployment. If true, Kubelet will pass pod information as VolumeContext in the CSI NodePublishVolume() calls. The CSI driver is responsible for parsing and validating the information passed in as VolumeContext.\n\nThe following VolumeContext will be passed if podInfoOnMount is set to true. This list might grow, but the prefix will be used. \"csi.storage.k8s.io/pod.name\": pod.Name \"csi.storage.k8s.io/pod.namespace\": pod.Namespace \"csi.storage.k8s.io/pod.uid\": string(pod.UID) \"csi.storage.k8s.io/ephemeral\": \"true\" if the volume is an ephemeral inline volume\n                                defined by a CSIVolumeSource, otherwise \"false\"\n\n\"csi.storage.k8s.io/ephemeral\" is a new feature in Kubernetes 1.16. It is only required for drivers which support both the \"Persistent\" and \"Ephemeral\" VolumeLifecycleMode. Other drivers can leave pod info disabled and/or ignore this field. As Kubernetes 1.15 doesn't support this field, drivers can only support one mode when deployed on such a cluster and the deployment determines which mode that is, for example via a command line parameter of the driver.\n\nThis field was immutable in Kubernetes < 1.29 and now is mutable.",
    ),
    boolean(
        "StorageCapacity",
        "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report by creating CSIStorageCapacity objects with capacity information, if set to true.\n\nThe check can be enabled immediately when deploying a driver. In that case, provisioning new volumes with late binding will pause until the driver deployment has published some suitable CSIStorageCapacity object.\n\nAlternatively, the driver can be deployed with the field unset or false and it can be flipped later when storage capacity information has been published.\n\nThis field was immutable in Kubernetes <= 1.22 and now is mutable.",
    ),
    Column::string(
        "TokenRequests",
        "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication. Kubelet will pass the tokens in VolumeContext in the CSI NodePublishVolume calls. The CSI driver should parse and validate the following VolumeContext: \"csi.storage.k8s.io/serviceAccount.tokens\": {\n  \"<audience>\": {\n    \"token\": <token>,\n    \"expirationTimestamp\": <expiration timestamp in RFC3339>,\n  },\n  ...\n}\n\nNote: Audience in each TokenRequest should be different and at most one token is empty string. To receive a new token after expiry, RequiresRepublish can be used to trigger NodePublishVolume periodically.",
    ),
    boolean(
        "RequiresRepublish",
        "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume. This field defaults to false.\n\nNote: After a successful initial NodePublishVolume call, subsequent calls to NodePublishVolume should only update the contents of the volume. New mount points will not be seen by a running container.",
    ),
    Column::string(
        "Modes",
        "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports. The default if the list is empty is \"Persistent\", which is the usage defined by the CSI specification and implemented in Kubernetes via the usual PV/PVC mechanism.\n\nThe other mode is \"Ephemeral\". In this mode, volumes are defined inline inside the pod spec with CSIVolumeSource and their lifecycle is tied to the lifecycle of that pod. A driver has to be aware of this because it is only going to get a NodePublishVolume call for such a volume.\n\nFor more information about implementing this mode, see https://kubernetes-csi.github.io/docs/ephemeral-local-volumes.html A driver can support one or more of these modes and more modes may be added in the future.\n\nThis field is beta. This field is immutable.",
    ),
    AGE,
];

/// Unset booleans print as kube's defaults would have made them.
fn csi_driver(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &o["spec"];
    let flag = |key: &str, unset: bool| spec[key].as_bool().unwrap_or(unset);
    let modes: Vec<&str> = items(&spec["volumeLifecycleModes"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let token_requests = match spec["tokenRequests"].as_array() {
        None => "<unset>".to_string(),
        Some(requests) => requests
            .iter()
            .map(|r| text(r, "/audience"))
            .collect::<Vec<_>>()
            .join(","),
    };
    vec![
        name(o),
        json!(flag("attachRequired", true)),
        json!(flag("podInfoOnMount", false)),
        json!(flag("storageCapacity", false)),
        json!(token_requests),
        json!(flag("requiresRepublish", false)),
        json!(or_none(&modes.join(","))),
        age(o, now),
    ]
}

const CSINODE_COLUMNS: &[Column] = &[
    NAME,
    Column::integer(
        "Drivers",
        "Drivers indicates the number of CSI drivers registered on the node",
    ),
    AGE,
];

fn csi_node(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(o),
        json!(items(&o["spec"]["drivers"]).len()),
        age(o, now),
    ]
}

const CSISTORAGECAPACITY_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "StorageClassName",
        "storageClassName represents the name of the StorageClass that the reported capacity applies to. It must meet the same requirements as the name of a StorageClass object (non-empty, DNS subdomain). If that object no longer exists, the CSIStorageCapacity object is obsolete and should be removed by its creator. This field is immutable.",
    ),
    Column::string(
        "Capacity",
        "capacity is the value reported by the CSI driver in its GetCapacityResponse for a GetCapacityRequest with topology and parameters that match the previous fields.\n\nThe semantic is currently (CSI spec 1.2) defined as: The available capacity, in bytes, of the storage that can be used to provision volumes. If not set, that information is currently unavailable.",
    ),
];

fn csi_storage_capacity(o: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(o),
        json!(text(o, "/storageClassName")),
        json!(or_unset(text(o, "/capacity"))),
    ]
}

const VOLUMEATTACHMENT_COLUMNS: &[Column] = &[
    NAME,
    Column {
        format: "name",
        ..Column::string(
            "Attacher",
            "attacher indicates the name of the volume driver that MUST handle this request. This is the name returned by GetPluginName().",
        )
    },
    Column::string(
        "PV",
        "persistentVolumeName represents the name of the persistent volume to attach.",
    ),
    Column::string(
        "Node",
        "nodeName represents the node that the volume should be attached to.",
    ),
    boolean(
        "Attached",
        "attached indicates the volume is successfully attached. This field must only be set by the entity completing the attach operation, i.e. the external-attacher.",
    ),
    AGE,
];

fn volume_attachment(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(o),
        json!(text(o, "/spec/attacher")),
        json!(text(o, "/spec/source/persistentVolumeName")),
        json!(text(o, "/spec/nodeName")),
        json!(bool_at(o, "/status/attached")),
        age(o, now),
    ]
}

/// kube describes the handler with ObjectMeta's (missing) doc of `handler`: empty.
const RUNTIMECLASS_COLUMNS: &[Column] = &[NAME, Column::string("Handler", ""), AGE];

fn runtime_class(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name(o), json!(text(o, "/handler")), age(o, now)]
}

const INGRESSCLASS_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Controller",
        "Controller that is responsible for handling this class",
    ),
    Column::string(
        "Parameters",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

/// Parameters print as `Kind[.apiGroup]/name`.
fn ingress_class(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = &o["spec"]["parameters"];
    let reference = if parameters.is_object() {
        let mut kind = text(parameters, "/kind").to_string();
        if let Some(group) = parameters["apiGroup"].as_str() {
            kind = format!("{kind}.{group}");
        }
        format!("{kind}/{}", text(parameters, "/name"))
    } else {
        "<none>".to_string()
    };
    vec![
        name(o),
        json!(text(o, "/spec/controller")),
        json!(reference),
        age(o, now),
    ]
}

/// No Age column: kube's printer has none.
const IPADDRESS_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "ParentRef",
        "ParentRef references the resource that an IPAddress is attached to. An IPAddress must reference a parent object.",
    ),
];

/// The parent as `resource[.group][/namespace]/name`, lowercased as kube's
/// `GroupResource.String()` is.
fn ip_address(o: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    let parent = &o["spec"]["parentRef"];
    let reference = if parent.is_object() {
        let mut reference = match text(parent, "/group") {
            "" => text(parent, "/resource").to_lowercase(),
            group => format!("{}.{group}", text(parent, "/resource")).to_lowercase(),
        };
        let namespace = text(parent, "/namespace");
        if !namespace.is_empty() {
            reference = format!("{reference}/{namespace}");
        }
        format!("{reference}/{}", text(parent, "/name"))
    } else {
        String::new()
    };
    vec![name(o), json!(reference)]
}

const SERVICECIDR_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "CIDRs",
        "CIDRs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or \"2001:db8::/64\") from which to assign service cluster IPs. Max of two CIDRs is allowed, one of each IP family. This field is immutable.",
    ),
    AGE,
];

fn service_cidr(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let cidrs: Vec<&str> = items(&o["spec"]["cidrs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    vec![name(o), json!(cidrs.join(",")), age(o, now)]
}

pub static STORAGECLASS: Printer = Printer {
    columns: STORAGECLASS_COLUMNS,
    cells: storage_class_row,
};

pub static INGRESS: Printer = Printer {
    columns: INGRESS_COLUMNS,
    cells: ingress,
};

pub static NETWORKPOLICY: Printer = Printer {
    columns: NETWORKPOLICY_COLUMNS,
    cells: network_policy,
};

const STORAGECLASS_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Provisioner",
        "provisioner indicates the type of the provisioner.",
    ),
    Column::string(
        "ReclaimPolicy",
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.",
    ),
    Column::string(
        "VolumeBindingMode",
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.",
    ),
    Column::string(
        "AllowVolumeExpansion",
        "allowVolumeExpansion shows whether the storage class allow volume expand.",
    ),
    AGE,
];

/// The default class is named `NAME (default)`; unset fields print as kube's defaults.
fn storage_class_row(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let annotations = &o["metadata"]["annotations"];
    let is_default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|key| annotations[*key] == "true");
    let name = text(o, "/metadata/name");
    let name = if is_default {
        format!("{name} (default)")
    } else {
        name.to_string()
    };
    let or = |value: &'static str, unset: &'static str| match text(o, value) {
        "" => unset.to_string(),
        set => set.to_string(),
    };
    vec![
        json!(name),
        json!(text(o, "/provisioner")),
        json!(or("/reclaimPolicy", "Delete")),
        json!(or("/volumeBindingMode", "Immediate")),
        json!(bool_at(o, "/allowVolumeExpansion")),
        age(o, now),
    ]
}

const INGRESS_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Class",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    Column::string(
        "Hosts",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    Column::string(
        "Address",
        "Address is a list containing ingress points for the load-balancer",
    ),
    Column::string("Ports", "Ports of TLS configurations that open"),
    AGE,
];

/// kube's `printIngress`: at most three hosts (`*` for none), the load balancer's IPs and
/// hostnames clipped to 16 bytes, `80` or `80, 443` with TLS.
fn ingress(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    const MAX_HOSTS: usize = 3;
    const ADDRESS_WIDTH: usize = 16;
    let rules = items(&o["spec"]["rules"]);
    let (mut hosts, mut more) = (Vec::new(), false);
    for rule in rules {
        more |= hosts.len() == MAX_HOSTS;
        let host = text(rule, "/host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts = match (hosts.is_empty(), more) {
        (true, _) => "*".to_string(),
        (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - MAX_HOSTS),
        (false, false) => hosts.join(","),
    };
    let mut addresses: Vec<&str> = items(&o["status"]["loadBalancer"]["ingress"])
        .iter()
        .map(|point| match text(point, "/ip") {
            "" => text(point, "/hostname"),
            ip => ip,
        })
        .filter(|address| !address.is_empty())
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let mut address = addresses.join(",");
    if address.len() > ADDRESS_WIDTH {
        address = format!("{}...", &address[..ADDRESS_WIDTH - 3]);
    }
    let ports = if items(&o["spec"]["tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(o),
        json!(or_none(text(o, "/spec/ingressClassName"))),
        json!(hosts),
        json!(address),
        json!(ports),
        age(o, now),
    ]
}

const NETWORKPOLICY_COLUMNS: &[Column] = &[
    NAME,
    Column::string(
        "Pod-Selector",
        "Selects the pods to which this NetworkPolicy object applies.  The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods.  In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.",
    ),
    AGE,
];

fn network_policy(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name(o),
        json!(or_none(&label_selector(&o["spec"]["podSelector"]))),
        age(o, now),
    ]
}

// ---------------------------------------------------------------------------------------
// Field helpers.

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn bool_at(v: &Value, pointer: &str) -> bool {
    v.pointer(pointer).and_then(Value::as_bool).unwrap_or(false)
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The number of keys of a map (`data`).
fn entries(v: &Value) -> usize {
    v.as_object().map_or(0, Map::len)
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

fn or_unset(s: &str) -> &str {
    if s.is_empty() { "<unset>" } else { s }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "<unknown>" } else { s }
}

fn name(o: &Value) -> Value {
    json!(text(o, "/metadata/name"))
}

/// The `Age` cell: the time since `metadata.creationTimestamp`.
fn age(o: &Value, now: DateTime<Utc>) -> Value {
    match timestamp(o.pointer("/metadata/creationTimestamp")) {
        Some(created) => json!(human_duration(now - created)),
        None => json!("<unknown>"),
    }
}

fn timestamp(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    items(&status["conditions"])
        .iter()
        .find(|c| text(c, "/type") == kind)
}

fn condition_status<'a>(status: &'a Value, kind: &str) -> Option<&'a str> {
    condition(status, kind).map(|c| text(c, "/status"))
}

fn condition_reason<'a>(status: &'a Value, kind: &str) -> Option<&'a str> {
    condition(status, kind).map(|c| text(c, "/reason"))
}

fn has_condition(status: &Value, kind: &str, value: &str) -> bool {
    condition_status(status, kind) == Some(value)
}

/// `spec.replicas`, defaulted to 1 as kube-apiserver does.
fn desired_replicas(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// The comma-joined container names and images of a workload's pod template.
fn containers_and_images(o: &Value) -> (String, String) {
    pod_template_containers(&o["spec"]["template"]["spec"])
}

fn pod_template_containers(pod_spec: &Value) -> (String, String) {
    let containers = items(&pod_spec["containers"]);
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// A `map[string]string` selector as `k=v,k2=v2` (sorted), empty when there is none.
fn label_set(v: &Value) -> String {
    let mut pairs: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort_unstable();
    pairs.join(",")
}

/// A `LabelSelector` as `metav1.LabelSelectorAsSelector(...).String()` prints it;
/// `<none>` when there is no selector.
fn label_selector(selector: &Value) -> String {
    if !selector.is_object() {
        return "<none>".into();
    }
    let mut requirements: Vec<(String, String)> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))))
        .collect();
    for expression in items(&selector["matchExpressions"]) {
        let key = text(expression, "/key");
        let mut values: Vec<&str> = items(&expression["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let values = values.join(",");
        let printed = match text(expression, "/operator") {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        requirements.push((key.to_string(), printed));
    }
    requirements.sort();
    requirements
        .into_iter()
        .map(|(_, printed)| printed)
        .collect::<Vec<_>>()
        .join(",")
}

/// `RWO,ROX,RWX,RWOP` as kubectl abbreviates access modes.
fn access_modes(modes: &Value) -> String {
    let modes: Vec<&str> = items(modes).iter().filter_map(Value::as_str).collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| modes.contains(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// `spec.storageClassName`, or the beta annotation older objects carry.
fn storage_class(o: &Value) -> &str {
    match text(o, "/spec/storageClassName") {
        "" => o
            .pointer("/metadata/annotations")
            .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
            .and_then(Value::as_str)
            .unwrap_or(""),
        class => class,
    }
}

/// apimachinery's `duration.HumanDuration`: `45s`, `5m10s`, `3h`, `2d4h`, `3y`.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let years = hours / 24 / 365;
        match (hours / 24) % 365 {
            0 => format!("{years}y"),
            days => format!("{years}y{days}d"),
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use chrono::Duration;

    #[test]
    fn human_durations() {
        let cases = [
            (Duration::seconds(-5), "<invalid>"),
            (Duration::milliseconds(-1500), "0s"),
            (Duration::seconds(0), "0s"),
            (Duration::seconds(119), "119s"),
            (Duration::seconds(120), "2m"),
            (Duration::seconds(310), "5m10s"),
            (Duration::minutes(179), "179m"),
            (Duration::minutes(180), "3h"),
            (Duration::minutes(7 * 60 + 30), "7h30m"),
            (Duration::hours(47), "47h"),
            (Duration::hours(48), "2d"),
            (Duration::hours(52), "2d4h"),
            (Duration::days(30), "30d"),
            (Duration::days(365 * 2 + 10), "2y10d"),
            (Duration::days(365 * 9), "9y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn selectors_print_like_kube() {
        let selector = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "gone", "operator": "DoesNotExist"},
            ],
        });
        assert_eq!(label_selector(&selector), "app=web,!gone,tier in (a,b)");
        assert_eq!(label_selector(&Value::Null), "<none>");
    }

    #[test]
    fn running_pod_with_restarts() {
        let now = Utc::now();
        let created = (now - Duration::hours(3)).to_rfc3339();
        let finished = (now - Duration::minutes(5)).to_rfc3339();
        let pod_json = json!({
            "metadata": {"name": "p", "creationTimestamp": created},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": "10.0.0.1"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                     "lastState": {"terminated": {"finishedAt": finished}}},
                    {"name": "b", "ready": false, "restartCount": 0,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                ],
            },
        });
        let cells = pod(&pod_json, now);
        assert_eq!(
            cells,
            vec![
                json!("p"),
                json!("1/2"),
                json!("CrashLoopBackOff"),
                json!("2 (5m ago)"),
                json!("3h"),
                json!("10.0.0.1"),
                json!("n1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn every_printer_fills_every_column() {
        for info in crate::registry::Registry::builtin().snapshot().iter() {
            let printer = printer(info);
            let cells = (printer.cells)(&json!({}), Utc::now());
            assert_eq!(cells.len(), printer.columns.len());
        }
    }

    #[test]
    fn storage_and_networking_rows_print_as_kubes() {
        let now = Utc::now();
        let class = json!({"metadata": {"name": "fast",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "ebs.csi.aws.com"});
        assert_eq!(
            storage_class_row(&class, now)[..5],
            [
                json!("fast (default)"),
                json!("ebs.csi.aws.com"),
                json!("Delete"),
                json!("Immediate"),
                json!(false)
            ]
        );
        let ingress_json = json!({"metadata": {"name": "web"}, "spec": {
            "rules": [{"host": ""}, {"host": "a.example.com"}, {"host": "b.example.com"},
                      {"host": "c.example.com"}, {"host": "d.example.com"}],
            "tls": [{"hosts": ["a.example.com"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}, {"hostname": "lb.example.com"}]}}});
        assert_eq!(
            ingress(&ingress_json, now)[..5],
            [
                json!("web"),
                json!("<none>"),
                json!("a.example.com,b.example.com,c.example.com + 2 more..."),
                json!("203.0.113.10,..."),
                json!("80, 443"),
            ]
        );
        let policy = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
        assert_eq!(network_policy(&policy, now)[1], json!("<none>"));
        let ip = json!({"metadata": {"name": "10.0.0.7"}, "spec": {"parentRef": {
            "group": "Gateway.networking.k8s.io", "resource": "Gateways", "namespace": "Edge", "name": "Web"}}});
        assert_eq!(
            ip_address(&ip, now),
            [
                json!("10.0.0.7"),
                json!("gateways.gateway.networking.k8s.io/Edge/Web")
            ]
        );
        let driver =
            json!({"metadata": {"name": "csi.example.com"}, "spec": {"tokenRequests": []}});
        assert_eq!(
            csi_driver(&driver, now)[1..7],
            [
                json!(true),
                json!(false),
                json!(false),
                json!(""),
                json!(false),
                json!("<none>")
            ]
        );
    }
}
