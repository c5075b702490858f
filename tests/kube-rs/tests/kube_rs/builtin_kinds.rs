//! kube-rs's typed `Api<K>` over the built-in kinds kubecache serves: one table whose rows are
//! a kind, a small valid object and an invalid one with the field kube's validation names.
//! Each row runs the same cycle ([`crud_cycle`]); the pod and service-account subresources
//! kube-rs has methods for (binding, eviction, token requests) are tested after it.

use std::fmt::Debug;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::autoscaling::{v1 as autoscaling_v1, v2 as autoscaling_v2};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{
    Binding, LimitRange, Pod, PodTemplate, ResourceQuota, Service, ServiceAccount,
};
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::networking::v1::{IPAddress, IngressClass, ServiceCIDR};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::{
    CSIDriver, CSINode, CSIStorageCapacity, StorageClass, VolumeAttachment,
};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{
    Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Cluster, api_error, names, namespace, pod, rv};

/// The label every table object carries; lists and watches select on it.
const SUITE: (&str, &str) = ("suite", "kube-rs-kinds");

/// How long a watch may take to deliver the update and the delete.
const WATCH_DEADLINE: Duration = Duration::from_secs(30);

/// A certificate request (EC P-256, CN=kube-rs); [`csr_request`] encodes it for `spec.request`.
const CSR_PEM: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIHNMHQCAQAwEjEQMA4GA1UEAwwHa3ViZS1yczBZMBMGByqGSM49AgEGCCqGSM49
AwEHA0IABCjOJpPtN5W8eEGjXEWaDZ6JpoxKNZTFFD+sBTAbUN30BPiuOb+blcpD
9G/IzWXrUENTfBML4ZaKGKhCTmabyFqgADAKBggqhkjOPQQDAgNJADBGAiEAlhI0
m4Lm5GIflEopxJ/90LBPs/ai8CKRSQf4hemtDe0CIQD09aeWO323E7nt10q/HN9s
z5X5x6aucbvK6bw2wIQdsw==
-----END CERTIFICATE REQUEST-----
";

/// `metadata` of a table object: `name`, the suite label.
fn labelled(name: &str) -> Value {
    json!({"name": name, "labels": {SUITE.0: SUITE.1}})
}

fn pod_spec() -> Value {
    json!({"containers": [{"name": "main", "image": "nginx:1.25"}]})
}

fn pod_template(app: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}}, "spec": pod_spec()})
}

fn webhook(name: &str, side_effects: &str) -> Value {
    json!({
        "name": name,
        "clientConfig": {"url": format!("https://{name}/hook")},
        "sideEffects": side_effects,
        "admissionReviewVersions": ["v1"],
    })
}

fn csr_request() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(CSR_PEM)
}

/// One kind's cycle through kube-rs's typed API, all in `api` (a namespace or the cluster):
/// create `valid`, get it, list it by label (and not by the negated label), watch from its
/// creation while it is replaced with one more label and then deleted, and see both; then
/// `invalid` is refused with 422 Invalid naming `invalid_field` and nothing is stored.
async fn crud_cycle<K>(api: Api<K>, valid: Value, invalid: Value, invalid_field: &str)
where
    K: Resource + Clone + Debug + DeserializeOwned + Serialize + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let valid: K = serde_json::from_value(valid).expect("a valid object deserializes");
    let name = valid.name_any();
    let pp = PostParams::default();

    let created = api
        .create(&pp, &valid)
        .await
        .unwrap_or_else(|e| panic!("{kind}: create {name}: {e}"));
    assert_eq!(created.name_any(), name, "{kind}");
    assert!(created.uid().is_some(), "{kind}: a uid");
    let got = api
        .get(&name)
        .await
        .unwrap_or_else(|e| panic!("{kind}: get {name}: {e}"));
    assert_eq!(got.uid(), created.uid(), "{kind}");

    let selector = format!("{}={}", SUITE.0, SUITE.1);
    let listed = api
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap_or_else(|e| panic!("{kind}: list: {e}"));
    assert_eq!(names(&listed.items), [name.as_str()], "{kind}");
    let others = api
        .list(&ListParams::default().labels(&format!("{}!={}", SUITE.0, SUITE.1)))
        .await
        .unwrap_or_else(|e| panic!("{kind}: list the others: {e}"));
    assert!(!names(&others.items).contains(&name), "{kind}");

    let watch_from = created.resource_version().expect("a resourceVersion");
    let mut events = api
        .watch(&WatchParams::default().labels(&selector), &watch_from)
        .await
        .unwrap_or_else(|e| panic!("{kind}: watch: {e}"))
        .boxed();

    // A controller may write the object between our read and our replace (the quota
    // controller fills a ResourceQuota's status): retry on conflict with a fresh read, as
    // client-go's RetryOnConflict does.
    let mut current = got.clone();
    let mut attempts = 0;
    let replaced = loop {
        let mut changed = current.clone();
        changed
            .labels_mut()
            .insert("stage".to_string(), "replaced".to_string());
        match api.replace(&name, &pp, &changed).await {
            Ok(replaced) => break replaced,
            Err(kube::Error::Api(status)) if status.code == 409 && attempts < 5 => {
                attempts += 1;
                current = api
                    .get(&name)
                    .await
                    .unwrap_or_else(|e| panic!("{kind}: get {name}: {e}"));
            }
            Err(e) => panic!("{kind}: replace {name}: {e}"),
        }
    };
    assert_eq!(
        replaced.labels().get("stage").map(String::as_str),
        Some("replaced"),
        "{kind}"
    );
    assert!(rv(&replaced) > rv(&created), "{kind}");
    api.delete(&name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{kind}: delete {name}: {e}"));

    // Controllers may write the object too (status, finalizers): the watch must show the
    // replaced labels before the object's deletion ends the stream of its events.
    let mut saw_replace = false;
    let deleted = tokio::time::timeout(WATCH_DEADLINE, async {
        while let Some(event) = events.try_next().await.expect("a watch event") {
            match event {
                WatchEvent::Modified(object) if object.labels().contains_key("stage") => {
                    saw_replace = true;
                }
                WatchEvent::Deleted(object) => return object,
                WatchEvent::Error(status) => panic!("{kind}: watch error {status:?}"),
                _ => {}
            }
        }
        panic!("{kind}: the watch ended before the delete");
    })
    .await
    .unwrap_or_else(|_| panic!("{kind}: no Deleted event within {WATCH_DEADLINE:?}"));
    assert!(saw_replace, "{kind}: the watch showed the replace");
    assert_eq!(deleted.name_any(), name, "{kind}");
    api_error(api.get(&name).await, 404, "NotFound");

    let invalid: K = serde_json::from_value(invalid).expect("the invalid object deserializes");
    let invalid_name = invalid.name_any();
    let status = api_error(api.create(&pp, &invalid).await, 422, "Invalid");
    let fields: Vec<&str> = status
        .details
        .iter()
        .flat_map(|details| &details.causes)
        .map(|cause| cause.field.as_str())
        .collect();
    assert!(fields.contains(&invalid_field), "{kind}: {status:?}");
    api_error(api.get(&invalid_name).await, 404, "NotFound");
}

/// The built-in kinds with CRUD that k8s-openapi models and kubecache validates, each
/// through its typed struct (kinds kubecache stores unvalidated are listed in
/// COMPATIBILITY.md's client matrix notes).
pub(super) async fn builtin_kinds_crud(cluster: Cluster) {
    let client = cluster.client();
    let ns = namespace(&client, "kube-rs-kinds").await;
    // The table's rows name their scope: `cluster_api!()` or `ns_api!()`.
    macro_rules! cluster_api {
        () => {
            Api::all(client.clone())
        };
    }
    macro_rules! ns_api {
        () => {
            Api::namespaced(client.clone(), &ns)
        };
    }

    // storage.k8s.io
    crud_cycle::<CSIDriver>(
        cluster_api!(),
        json!({"metadata": labelled("csi.example.com"), "spec": {"attachRequired": true}}),
        json!({"metadata": labelled("bad.example.com"),
               "spec": {"volumeLifecycleModes": ["Bogus"]}}),
        "spec.volumeLifecycleModes",
    )
    .await;
    crud_cycle::<CSINode>(
        cluster_api!(),
        json!({"metadata": labelled("node-1"),
               "spec": {"drivers": [{"name": "csi.example.com", "nodeID": "n1"}]}}),
        json!({"metadata": labelled("node-2"),
               "spec": {"drivers": [{"name": "csi.example.com", "nodeID": ""}]}}),
        "spec.drivers[0].nodeID",
    )
    .await;
    crud_cycle::<CSIStorageCapacity>(
        ns_api!(),
        json!({"metadata": labelled("fast-capacity"), "storageClassName": "fast",
               "capacity": "10Gi"}),
        json!({"metadata": labelled("no-class"), "storageClassName": ""}),
        "storageClassName",
    )
    .await;
    crud_cycle::<VolumeAttachment>(
        cluster_api!(),
        json!({"metadata": labelled("attach-pv-1"),
               "spec": {"attacher": "csi.example.com", "nodeName": "node-1",
                        "source": {"persistentVolumeName": "pv-1"}}}),
        json!({"metadata": labelled("attach-nowhere"),
               "spec": {"attacher": "csi.example.com", "nodeName": "",
                        "source": {"persistentVolumeName": "pv-1"}}}),
        "spec.nodeName",
    )
    .await;
    crud_cycle::<StorageClass>(
        cluster_api!(),
        json!({"metadata": labelled("fast"), "provisioner": "csi.example.com"}),
        json!({"metadata": labelled("no-provisioner"), "provisioner": ""}),
        "provisioner",
    )
    .await;

    // node.k8s.io, networking.k8s.io
    crud_cycle::<RuntimeClass>(
        cluster_api!(),
        json!({"metadata": labelled("gvisor"), "handler": "runsc"}),
        json!({"metadata": labelled("bad-handler"), "handler": "Not_Valid"}),
        "handler",
    )
    .await;
    crud_cycle::<IngressClass>(
        cluster_api!(),
        json!({"metadata": labelled("nginx"), "spec": {"controller": "example.com/ingress"}}),
        json!({"metadata": labelled("bad-controller"),
               "spec": {"controller": "no-slash-no-domain!"}}),
        "spec.controller",
    )
    .await;
    crud_cycle::<IPAddress>(
        cluster_api!(),
        json!({"metadata": labelled("10.0.0.200"),
               "spec": {"parentRef": {"resource": "services", "name": "web",
                                      "namespace": ns}}}),
        json!({"metadata": labelled("10.0.0.201"),
               "spec": {"parentRef": {"resource": "", "name": "web"}}}),
        "spec.parentRef.resource",
    )
    .await;
    crud_cycle::<ServiceCIDR>(
        cluster_api!(),
        json!({"metadata": labelled("extra"), "spec": {"cidrs": ["10.96.0.0/24"]}}),
        json!({"metadata": labelled("not-a-cidr"), "spec": {"cidrs": ["not-a-cidr"]}}),
        "spec.cidrs[0]",
    )
    .await;

    // admissionregistration.k8s.io
    crud_cycle::<MutatingWebhookConfiguration>(
        cluster_api!(),
        json!({"metadata": labelled("mutate"), "webhooks": [webhook("m.example.com", "None")]}),
        json!({"metadata": labelled("bad-effects"),
               "webhooks": [webhook("m.example.com", "Maybe")]}),
        "webhooks[0].sideEffects",
    )
    .await;
    crud_cycle::<ValidatingWebhookConfiguration>(
        cluster_api!(),
        json!({"metadata": labelled("validate"), "webhooks": [webhook("v.example.com", "None")]}),
        json!({"metadata": labelled("bad-name"), "webhooks": [webhook("nodots", "None")]}),
        "webhooks[0].name",
    )
    .await;
    crud_cycle::<ValidatingAdmissionPolicy>(
        cluster_api!(),
        json!({"metadata": labelled("max-replicas"),
               "spec": {"matchConstraints": {"resourceRules": [{
                            "apiGroups": ["apps"], "apiVersions": ["v1"],
                            "operations": ["CREATE"], "resources": ["deployments"]}]},
                        "validations": [{"expression": "object.spec.replicas <= 5"}]}}),
        json!({"metadata": labelled("no-expression"),
               "spec": {"validations": [{"expression": ""}]}}),
        "spec.validations[0].expression",
    )
    .await;
    crud_cycle::<ValidatingAdmissionPolicyBinding>(
        cluster_api!(),
        json!({"metadata": labelled("max-replicas"),
               "spec": {"policyName": "max-replicas", "validationActions": ["Deny"]}}),
        json!({"metadata": labelled("bad-action"),
               "spec": {"policyName": "max-replicas", "validationActions": ["Explode"]}}),
        "spec.validationActions[0]",
    )
    .await;

    // apiregistration.k8s.io, flowcontrol.apiserver.k8s.io, certificates.k8s.io
    crud_cycle::<APIService>(
        cluster_api!(),
        json!({"metadata": labelled("v1beta1.example.com"),
               "spec": {"group": "example.com", "version": "v1beta1",
                        "groupPriorityMinimum": 1000, "versionPriority": 15,
                        "service": {"namespace": ns, "name": "ext", "port": 443},
                        "insecureSkipTLSVerify": true}}),
        json!({"metadata": labelled("v1.example.org"),
               "spec": {"group": "example.org", "version": "v1",
                        "groupPriorityMinimum": 0, "versionPriority": 15}}),
        "spec.groupPriorityMinimum",
    )
    .await;
    crud_cycle::<FlowSchema>(
        cluster_api!(),
        json!({"metadata": labelled("pod-readers"),
               "spec": {"priorityLevelConfiguration": {"name": "global-default"},
                        "matchingPrecedence": 5000,
                        "rules": [{"subjects": [{"kind": "Group",
                                                 "group": {"name": "system:authenticated"}}],
                                   "resourceRules": [{"verbs": ["get"], "apiGroups": [""],
                                                      "resources": ["pods"],
                                                      "namespaces": ["*"]}]}]}}),
        json!({"metadata": labelled("too-late"),
               "spec": {"priorityLevelConfiguration": {"name": "global-default"},
                        "matchingPrecedence": 20000}}),
        "spec.matchingPrecedence",
    )
    .await;
    crud_cycle::<PriorityLevelConfiguration>(
        cluster_api!(),
        json!({"metadata": labelled("batch"),
               "spec": {"type": "Limited",
                        "limited": {"nominalConcurrencyShares": 10,
                                    "limitResponse": {"type": "Reject"}}}}),
        json!({"metadata": labelled("no-limits"), "spec": {"type": "Limited"}}),
        "spec.limited",
    )
    .await;
    crud_cycle::<CertificateSigningRequest>(
        cluster_api!(),
        json!({"metadata": labelled("kube-rs"),
               "spec": {"request": csr_request(), "usages": ["client auth"],
                        "signerName": "example.com/signer"}}),
        json!({"metadata": labelled("no-usages"),
               "spec": {"request": csr_request(), "usages": [],
                        "signerName": "example.com/signer"}}),
        "spec.usages",
    )
    .await;

    // autoscaling
    crud_cycle::<autoscaling_v2::HorizontalPodAutoscaler>(
        ns_api!(),
        json!({"metadata": labelled("web"), "spec": hpa_spec(1, 5)}),
        json!({"metadata": labelled("min-above-max"), "spec": hpa_spec(3, 2)}),
        "spec.maxReplicas",
    )
    .await;

    // core/v1
    crud_cycle::<LimitRange>(
        ns_api!(),
        json!({"metadata": labelled("cpu-defaults"),
               "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"},
                                    "defaultRequest": {"cpu": "100m"}}]}}),
        json!({"metadata": labelled("default-above-max"),
               "spec": {"limits": [{"type": "Container", "default": {"cpu": "100m"},
                                    "max": {"cpu": "50m"}}]}}),
        "spec.limits[0].default[cpu]",
    )
    .await;
    crud_cycle::<ResourceQuota>(
        ns_api!(),
        json!({"metadata": labelled("pods"), "spec": {"hard": {"pods": "10"}}}),
        json!({"metadata": labelled("negative"), "spec": {"hard": {"pods": "-1"}}}),
        "spec.hard[pods]",
    )
    .await;
    crud_cycle::<PodTemplate>(
        ns_api!(),
        json!({"metadata": labelled("web"), "template": pod_template("web")}),
        json!({"metadata": labelled("no-containers"),
               "template": {"spec": {"containers": []}}}),
        "template.spec.containers",
    )
    .await;
    crud_cycle::<Service>(
        ns_api!(),
        json!({"metadata": labelled("web"),
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        json!({"metadata": labelled("port-zero"), "spec": {"ports": [{"port": 0}]}}),
        "spec.ports[0].port",
    )
    .await;
    crud_cycle::<ServiceAccount>(
        ns_api!(),
        json!({"metadata": labelled("builder")}),
        json!({"metadata": labelled("Bad_Name")}),
        "metadata.name",
    )
    .await;

    // apps, batch
    crud_cycle::<StatefulSet>(
        ns_api!(),
        json!({"metadata": labelled("db"),
               "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                        "template": pod_template("db")}}),
        json!({"metadata": labelled("negative"),
               "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "db"}},
                        "template": pod_template("db")}}),
        "spec.replicas",
    )
    .await;
    crud_cycle::<DaemonSet>(
        ns_api!(),
        json!({"metadata": labelled("agent"),
               "spec": {"selector": {"matchLabels": {"app": "agent"}},
                        "template": pod_template("agent")}}),
        json!({"metadata": labelled("mismatch"),
               "spec": {"selector": {"matchLabels": {"app": "other"}},
                        "template": pod_template("agent")}}),
        "spec.template.metadata.labels",
    )
    .await;
    crud_cycle::<Job>(
        ns_api!(),
        json!({"metadata": labelled("once"),
               "spec": {"template": {"spec": {"restartPolicy": "Never",
                                              "containers": pod_spec()["containers"]}}}}),
        json!({"metadata": labelled("always"),
               "spec": {"template": {"spec": {"restartPolicy": "Always",
                                              "containers": pod_spec()["containers"]}}}}),
        "spec.template.spec.restartPolicy",
    )
    .await;
}

fn hpa_spec(min: i32, max: i32) -> Value {
    json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": min,
        "maxReplicas": max,
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
    })
}

/// One HorizontalPodAutoscaler through autoscaling/v2 and autoscaling/v1 typed APIs: v1 shows
/// the CPU metric as `targetCPUUtilizationPercentage`, and a v1 replace keeps the v2 metrics.
pub(super) async fn hpa_v1_and_v2(cluster: Cluster) {
    let client = cluster.client();
    let ns = namespace(&client, "kube-rs-hpa").await;
    let v2: Api<autoscaling_v2::HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    let v1: Api<autoscaling_v1::HorizontalPodAutoscaler> = Api::namespaced(client, &ns);
    let pp = PostParams::default();
    let hpa = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": hpa_spec(1, 5)}))
        .expect("a valid HPA");
    v2.create(&pp, &hpa).await.expect("create through v2");

    let mut old = v1.get("web").await.expect("get through v1");
    let spec = old.spec.as_mut().expect("a spec");
    assert_eq!(spec.target_cpu_utilization_percentage, Some(70));
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 5));
    spec.max_replicas = 7;
    v1.replace("web", &pp, &old)
        .await
        .expect("replace through v1");

    let new = v2.get("web").await.expect("get through v2");
    let spec = new.spec.expect("a spec");
    assert_eq!(spec.max_replicas, 7);
    let metrics = serde_json::to_value(&spec.metrics).unwrap();
    assert_eq!(metrics, hpa_spec(1, 7)["metrics"]);
    assert_eq!(
        names(&v1.list(&ListParams::default()).await.unwrap().items),
        ["web"]
    );
}

/// `Api<Pod>::create_subresource("binding")` assigns a node once (then 409 Conflict);
/// `Api::evict` deletes a pod unless a PodDisruptionBudget forbids it (429 TooManyRequests).
pub(super) async fn pod_binding_and_eviction(cluster: Cluster) {
    let client = cluster.client();
    let ns = namespace(&client, "kube-rs-evict").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    for (name, app) in [("web-1", "web"), ("db-1", "db")] {
        pods.create(&pp, &pod(name, app))
            .await
            .expect("create a pod");
    }

    let binding: Binding = serde_json::from_value(json!({
        "metadata": {"name": "web-1"},
        "target": {"kind": "Node", "name": "node-1"},
    }))
    .expect("a binding");
    let bound: kube::core::Status = pods
        .create_subresource("binding", "web-1", &pp, &binding)
        .await
        .expect("bind web-1");
    assert_eq!(
        bound.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    let web = pods.get("web-1").await.expect("get web-1");
    assert_eq!(web.spec.unwrap().node_name.as_deref(), Some("node-1"));
    let again: kube::Result<kube::core::Status> = pods
        .create_subresource("binding", "web-1", &pp, &binding)
        .await;
    api_error(again, 409, "Conflict");

    // As a kubelet and the disruption controller would: db-1 runs and is ready, and its
    // budget (observed) allows no disruption. A Pending pod would be evicted regardless.
    let merge = |status: Value| Patch::Merge(json!({"status": status}));
    pods.patch_status(
        "db-1",
        &PatchParams::default(),
        &merge(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})),
    )
    .await
    .expect("db-1 runs");
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client, &ns);
    let budget = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
    }))
    .expect("a budget");
    let budget = budgets
        .create(&pp, &budget)
        .await
        .expect("create the budget");
    budgets
        .patch_status(
            "db",
            &PatchParams::default(),
            &merge(json!({"observedGeneration": budget.metadata.generation,
                          "disruptionsAllowed": 0, "currentHealthy": 1,
                          "desiredHealthy": 1, "expectedPods": 1})),
        )
        .await
        .expect("the budget's status");
    // kube's default client retries a 429 for minutes; a client without retries sees it.
    let mut config = kube::Config::new(cluster.server.base.parse().expect("a valid URL"));
    config.default_retry = false;
    let no_retry = Client::try_from(config).expect("a kube client");
    api_error(
        Api::<Pod>::namespaced(no_retry, &ns)
            .evict("db-1", &EvictParams::default())
            .await,
        429,
        "TooManyRequests",
    );
    assert!(pods.get("db-1").await.is_ok(), "the budget kept db-1");

    let evicted = pods
        .evict("web-1", &EvictParams::default())
        .await
        .expect("evict web-1");
    assert_eq!(
        evicted.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    // A pod bound to a node is deleted gracefully: it is gone or terminating.
    match pods.get("web-1").await {
        Ok(web) => assert!(web.metadata.deletion_timestamp.is_some(), "{web:?}"),
        Err(error) => {
            api_error::<Pod>(Err(error), 404, "NotFound");
        }
    }
}

/// `Api<ServiceAccount>::create_token_request` answers a signed token for the account's
/// audiences, and 404 NotFound for an account that does not exist.
pub(super) async fn service_account_token_request(cluster: Cluster) {
    let client = cluster.client();
    let ns = namespace(&client, "kube-rs-tokens").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client, &ns);
    let pp = PostParams::default();
    let account = serde_json::from_value(json!({"metadata": {"name": "builder"}})).unwrap();
    accounts
        .create(&pp, &account)
        .await
        .expect("create the account");

    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["kube-rs".to_string()],
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let answered = accounts
        .create_token_request("builder", &pp, &request)
        .await
        .expect("a token request");
    assert_eq!(answered.spec.audiences, ["kube-rs"]);
    assert_eq!(answered.spec.expiration_seconds, Some(600));
    let status = answered.status.expect("a status");
    assert_eq!(
        status.token.split('.').count(),
        3,
        "a JWT: {}",
        status.token
    );
    api_error(
        accounts
            .create_token_request("missing", &pp, &request)
            .await,
        404,
        "NotFound",
    );
}
