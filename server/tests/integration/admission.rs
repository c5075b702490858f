//! Admission over HTTP: defaults visible on created objects and stable on update, validation
//! errors (code, reason, causes, nothing written), dryRun, NamespaceLifecycle and the Service
//! clusterIP allocator — the storage-dependent ones against the embedded store and a real etcd.

use crate::support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kubecache_admission::Config;
use kubecache_core::storage::Backend;
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use kubecache_storage::testing::TestEtcd;
use serde_json::{Value, json};
use support::server::{JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, TestServer};

const PODS: &str = "/api/v1/namespaces/default/pods";
const SERVICES: &str = "/api/v1/namespaces/default/services";
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";

/// Where a test's objects live; the server can be started (and restarted) over it.
enum Store {
    Embedded(Arc<dyn Backend>),
    Etcd(TestEtcd),
}

impl Store {
    fn embedded() -> Store {
        Store::Embedded(Arc::new(EmbeddedBackend::in_memory()))
    }

    fn etcd() -> Store {
        Store::Etcd(TestEtcd::start())
    }

    /// A connection to the store (a new one for etcd, as a restarted server would open).
    async fn backend(&self) -> Arc<dyn Backend> {
        match self {
            Store::Embedded(backend) => backend.clone(),
            Store::Etcd(etcd) => Arc::new(
                EtcdBackend::connect(&[etcd.endpoint()], EtcdOptions::default())
                    .await
                    .expect("connect to etcd"),
            ),
        }
    }

    async fn server(&self) -> TestServer {
        TestServer::start_with(self.backend().await).await
    }

    async fn server_with(&self, config: Config) -> TestServer {
        TestServer::start_with_admission(self.backend().await, config).await
    }
}

/// Runs `$test(store)` once over the embedded store and once over a real etcd.
macro_rules! on_both_stores {
    ($test:ident) => {
        mod $test {
            #[tokio::test]
            async fn embedded() {
                super::$test(super::Store::embedded()).await
            }

            #[tokio::test]
            async fn etcd() {
                super::$test(super::Store::etcd()).await
            }
        }
    };
}

fn pod(name: &str, containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers}})
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    })
}

fn service(name: &str, cluster_ip: Option<&str>) -> Value {
    let mut body = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
    });
    if let Some(ip) = cluster_ip {
        body["spec"]["clusterIP"] = json!(ip);
    }
    body
}

fn job(name: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {
            "containers": [{"name": "pi", "image": "perl:5.34"}],
            "restartPolicy": "Never",
        }}},
    })
}

/// The single cause of a 422, checked field by field.
#[track_caller]
fn only_cause(body: &Value) -> &Value {
    let causes = body["details"]["causes"]
        .as_array()
        .unwrap_or_else(|| panic!("no causes: {body:#}"));
    assert_eq!(causes.len(), 1, "{body:#}");
    &causes[0]
}

async fn cluster_ip(server: &TestServer, name: &str) -> String {
    let svc = server.get(&format!("{SERVICES}/{name}")).await;
    svc.expect(200)["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_else(|| panic!("no clusterIP: {:#}", svc.body))
        .to_string()
}

// ---- defaulting ----

#[tokio::test]
async fn defaults_are_visible_on_created_pods() {
    let server = TestServer::start().await;
    let mut body = pod(
        "web",
        json!([
            {"name": "latest", "image": "nginx", "ports": [{"containerPort": 80}]},
            {"name": "pinned", "image": "nginx:1.25"},
        ]),
    );
    body["spec"]["volumes"] = json!([{"name": "cfg", "configMap": {"name": "cfg"}}]);
    let created = server.post(PODS, &body).await.expect(201).clone();
    let spec = &created["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
    let tolerations: Vec<&str> = spec["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        tolerations,
        vec![
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable"
        ]
    );
    assert_eq!(spec["tolerations"][0]["tolerationSeconds"], 300);
    let latest = &spec["containers"][0];
    assert_eq!(latest["imagePullPolicy"], "Always");
    assert_eq!(latest["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(latest["terminationMessagePolicy"], "File");
    assert_eq!(latest["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["volumes"][0]["configMap"]["defaultMode"], 420);
    // What is stored is what was answered.
    let mut read = server.get(&format!("{PODS}/web")).await.expect(200).clone();
    read["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let mut answered = created.clone();
    answered["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    assert_eq!(read, answered);
}

#[tokio::test]
async fn defaults_are_visible_on_deployments_services_and_jobs() {
    let server = TestServer::start().await;
    let d = server
        .post(DEPLOYMENTS, &deployment("web"))
        .await
        .expect(201)
        .clone();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    let template = &d["spec"]["template"]["spec"];
    assert_eq!(template["restartPolicy"], "Always");
    assert_eq!(template["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(
        template.get("enableServiceLinks").is_none(),
        "a Pod default, not a template one"
    );

    let s = server
        .post(SERVICES, &service("web", None))
        .await
        .expect(201)
        .clone();
    let spec = &s["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["ports"][0]["targetPort"], 80);
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    let ip = spec["clusterIP"].as_str().unwrap();
    assert!(ip.starts_with("10.0.0."), "{ip}");
    assert_eq!(spec["clusterIPs"], json!([ip]));

    let j = server.post(JOBS, &job("pi")).await.expect(201).clone();
    let spec = &j["spec"];
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    let uid = j["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        spec["selector"]["matchLabels"],
        json!({"batch.kubernetes.io/controller-uid": uid})
    );
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(labels["controller-uid"], uid);
    assert_eq!(j["metadata"]["labels"], *labels);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
}

#[tokio::test]
async fn defaulting_is_idempotent_on_update() {
    let server = TestServer::start().await;
    let created = server
        .post(DEPLOYMENTS, &deployment("web"))
        .await
        .expect(201)
        .clone();
    let path = format!("{DEPLOYMENTS}/web");
    // The manifest as first sent, without the defaults: nothing changes, nothing is written.
    let mut again = deployment("web");
    again["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
    let replaced = server.put(&path, &again).await.expect(200).clone();
    assert_eq!(replaced, created);
    // The object as served: the same.
    let replaced = server.put(&path, &created).await.expect(200).clone();
    assert_eq!(replaced, created);
    // A patch of something else keeps the defaults and the generation.
    let patched = server
        .patch(
            &path,
            MERGE_PATCH,
            &json!({"metadata": {"labels": {"tier": "web"}}}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(patched["spec"], created["spec"]);
    assert_eq!(patched["metadata"]["generation"], 1);
    // A real change still counts.
    let scaled = server
        .patch(&path, MERGE_PATCH, &json!({"spec": {"replicas": 3}}))
        .await
        .expect(200)
        .clone();
    assert_eq!(scaled["metadata"]["generation"], 2);
    assert_eq!(scaled["spec"]["revisionHistoryLimit"], 10);

    // A service PUT without its clusterIP keeps the allocated one (kube's
    // patchAllocatedValues).
    let svc = server
        .post(SERVICES, &service("api", None))
        .await
        .expect(201)
        .clone();
    let ip = svc["spec"]["clusterIP"].clone();
    let put = server
        .put(&format!("{SERVICES}/api"), &service("api", None))
        .await
        .expect(200)
        .clone();
    assert_eq!(put["spec"]["clusterIP"], ip);
    assert_eq!(
        put["metadata"]["resourceVersion"],
        svc["metadata"]["resourceVersion"]
    );
}

// ---- validation ----

#[tokio::test]
async fn duplicate_container_names_are_invalid_and_nothing_is_written() {
    let server = TestServer::start().await;
    let body = pod(
        "dup",
        json!([
            {"name": "a", "image": "nginx"},
            {"name": "a", "image": "nginx"},
        ]),
    );
    let reply = server.post(PODS, &body).await;
    let status = reply.expect_status(422, "Invalid");
    assert_eq!(
        reply.message(),
        "Pod \"dup\" is invalid: spec.containers[1].name: Duplicate value: \"a\""
    );
    assert_eq!(status["details"]["kind"], "Pod");
    assert_eq!(status["details"]["name"], "dup");
    assert_eq!(
        only_cause(status),
        &json!({"reason": "FieldValueDuplicate", "message": "Duplicate value: \"a\"", "field": "spec.containers[1].name"})
    );
    server
        .get(&format!("{PODS}/dup"))
        .await
        .expect_status(404, "NotFound");

    // Across init containers too.
    let mut body = pod("dup2", json!([{"name": "a", "image": "nginx"}]));
    body["spec"]["initContainers"] = json!([{"name": "a", "image": "busybox"}]);
    let reply = server.post(PODS, &body).await;
    assert_eq!(
        only_cause(reply.expect_status(422, "Invalid"))["field"],
        "spec.containers[0].name"
    );
}

#[tokio::test]
async fn ports_labels_and_annotations_are_validated() {
    let server = TestServer::start().await;
    let body = pod(
        "ports",
        json!([{"name": "a", "image": "nginx", "ports": [
            {"containerPort": 70000},
            {"containerPort": 80, "protocol": "ICMP"},
        ]}]),
    );
    let reply = server.post(PODS, &body).await;
    let status = reply.expect_status(422, "Invalid");
    assert_eq!(
        status["details"]["causes"],
        json!([
            {"reason": "FieldValueInvalid", "field": "spec.containers[0].ports[0].containerPort",
             "message": "Invalid value: 70000: must be between 1 and 65535, inclusive"},
            {"reason": "FieldValueNotSupported", "field": "spec.containers[0].ports[1].protocol",
             "message": "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""},
        ])
    );
    assert_eq!(
        reply.message(),
        "Pod \"ports\" is invalid: [spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive, spec.containers[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"]"
    );

    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad"},
        "spec": {"ports": [{"port": 0}]}});
    let reply = server.post(SERVICES, &svc).await;
    let fields: Vec<&str> = reply.expect_status(422, "Invalid")["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    // targetPort defaults to the port, so it is invalid too (as in kube).
    assert_eq!(
        fields,
        vec!["spec.ports[0].port", "spec.ports[0].targetPort"]
    );

    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "labels", "labels": {"ok": "not ok!"}}});
    let reply = server.post(CONFIGMAPS, &cm).await;
    let cause = only_cause(reply.expect_status(422, "Invalid"));
    assert_eq!(cause["field"], "metadata.labels");
    assert_eq!(cause["reason"], "FieldValueInvalid");

    let big = "x".repeat(256 * 1024);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big", "annotations": {"a": big}}});
    let reply = server.post(CONFIGMAPS, &cm).await;
    let cause = only_cause(reply.expect_status(422, "Invalid"));
    assert_eq!(cause["field"], "metadata.annotations");
    assert_eq!(cause["reason"], "FieldValueTooLong");
    for name in ["labels", "big"] {
        server
            .get(&format!("{CONFIGMAPS}/{name}"))
            .await
            .expect_status(404, "NotFound");
    }
}

#[tokio::test]
async fn pod_spec_is_immutable_except_the_mutable_fields() {
    let server = TestServer::start().await;
    server
        .post(
            PODS,
            &pod("web", json!([{"name": "a", "image": "nginx:1"}])),
        )
        .await
        .expect(201);
    let path = format!("{PODS}/web");
    // Images may change (a strategic merge patch by container name).
    let patched = server
        .patch(
            &path,
            STRATEGIC_MERGE_PATCH,
            &json!({"spec": {"containers": [{"name": "a", "image": "nginx:2"}]}}),
        )
        .await
        .expect(200)
        .clone();
    assert_eq!(patched["spec"]["containers"][0]["image"], "nginx:2");
    // Anything else may not: a JSON patch, a merge patch and a PUT.
    let before = server.get(&path).await.expect(200).clone();
    let attempts = [
        server
            .patch(
                &path,
                JSON_PATCH,
                &json!([{"op": "add", "path": "/spec/containers/0/command", "value": ["sh"]}]),
            )
            .await,
        server
            .patch(
                &path,
                MERGE_PATCH,
                &json!({"spec": {"restartPolicy": "Never"}}),
            )
            .await,
        {
            let mut changed = before.clone();
            changed["spec"]["terminationGracePeriodSeconds"] = json!(5);
            server.put(&path, &changed).await
        },
    ];
    for reply in &attempts {
        let cause = only_cause(reply.expect_status(422, "Invalid"));
        assert_eq!(cause["field"], "spec");
        assert_eq!(cause["reason"], "FieldValueForbidden");
        assert!(
            reply
                .message()
                .starts_with("Pod \"web\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
            "{}",
            reply.message()
        );
    }
    assert_eq!(
        server.get(&path).await.expect(200),
        &before,
        "nothing written"
    );
}

#[tokio::test]
async fn immutable_fields_are_refused() {
    let server = TestServer::start().await;
    // ConfigMap and Secret with immutable: true.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen"},
        "data": {"k": "v"}, "immutable": true});
    server.post(CONFIGMAPS, &cm).await.expect(201);
    let reply = server
        .patch(
            &format!("{CONFIGMAPS}/frozen"),
            MERGE_PATCH,
            &json!({"data": {"k": "w"}}),
        )
        .await;
    assert_eq!(
        reply.expect_status(422, "Invalid")["message"],
        "ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let reply = server
        .patch(
            &format!("{CONFIGMAPS}/frozen"),
            MERGE_PATCH,
            &json!({"immutable": false}),
        )
        .await;
    assert_eq!(
        only_cause(reply.expect_status(422, "Invalid"))["field"],
        "immutable"
    );
    // Metadata stays mutable.
    server
        .patch(
            &format!("{CONFIGMAPS}/frozen"),
            MERGE_PATCH,
            &json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .await
        .expect(200);
    assert_eq!(
        server
            .get(&format!("{CONFIGMAPS}/frozen"))
            .await
            .expect(200)["data"]["k"],
        "v"
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "frozen"},
        "data": {"k": "dg=="}, "immutable": true});
    let created = server.post(SECRETS, &secret).await.expect(201).clone();
    assert_eq!(created["type"], "Opaque");
    let reply = server
        .patch(
            &format!("{SECRETS}/frozen"),
            MERGE_PATCH,
            &json!({"data": {"k": "dw=="}}),
        )
        .await;
    assert_eq!(
        only_cause(reply.expect_status(422, "Invalid"))["field"],
        "data"
    );

    // A deployment's selector.
    server
        .post(DEPLOYMENTS, &deployment("web"))
        .await
        .expect(201);
    let reply = server
        .patch(
            &format!("{DEPLOYMENTS}/web"),
            MERGE_PATCH,
            &json!({"spec": {"selector": {"matchLabels": {"app": "other"}},
                "template": {"metadata": {"labels": {"app": "other"}}}}}),
        )
        .await;
    let cause = only_cause(reply.expect_status(422, "Invalid")).clone();
    assert_eq!(cause["field"], "spec.selector");
    assert!(
        cause["message"]
            .as_str()
            .unwrap()
            .ends_with(": field is immutable"),
        "{cause}"
    );

    // A job's selector and template.
    server.post(JOBS, &job("pi")).await.expect(201);
    let reply = server
        .patch(
            &format!("{JOBS}/pi"),
            MERGE_PATCH,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.36"}]}}}}),
        )
        .await;
    assert_eq!(
        only_cause(reply.expect_status(422, "Invalid"))["field"],
        "spec.template"
    );

    // A service's clusterIP.
    server
        .post(SERVICES, &service("web", Some("10.0.0.40")))
        .await
        .expect(201);
    let reply = server
        .patch(
            &format!("{SERVICES}/web"),
            MERGE_PATCH,
            &json!({"spec": {"clusterIP": "10.0.0.41", "clusterIPs": ["10.0.0.41"]}}),
        )
        .await;
    assert_eq!(
        reply.expect_status(422, "Invalid")["message"],
        "Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: [\"10.0.0.41\"]: may not change once set"
    );
    assert_eq!(cluster_ip(&server, "web").await, "10.0.0.40");
}

#[tokio::test]
async fn namespace_lifecycle() {
    let server = TestServer::start().await;
    let reply = server
        .post(
            "/api/v1/namespaces/missing/configmaps",
            &json!({"metadata": {"name": "a"}}),
        )
        .await;
    reply.expect_status(404, "NotFound");
    assert_eq!(reply.message(), "namespaces \"missing\" not found");
    for ns in ["default", "kube-system", "kube-public"] {
        let reply = server.delete(&format!("/api/v1/namespaces/{ns}")).await;
        reply.expect_status(403, "Forbidden");
        assert_eq!(
            reply.message(),
            format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted")
        );
    }
    let default = server.get("/api/v1/namespaces/default").await;
    assert_eq!(default.expect(200)["status"]["phase"], "Active");
}

#[tokio::test]
async fn dry_run_admits_and_writes_nothing() {
    let server = TestServer::start().await;
    let dry = |path: &str| server.url_with(path, &[("dryRun", "All")]);
    let send = |method: reqwest::Method, url: String, content_type: &'static str, body: &Value| {
        let body = serde_json::to_vec(body).unwrap();
        let server = &server;
        async move {
            server
                .send(method, &url, Some(content_type), Some(body))
                .await
        }
    };
    // Validation runs.
    let invalid = pod(
        "dup",
        json!([{"name": "a", "image": "x"}, {"name": "a", "image": "x"}]),
    );
    send(
        reqwest::Method::POST,
        dry(PODS),
        "application/json",
        &invalid,
    )
    .await
    .expect_status(422, "Invalid");
    // Defaulting runs; nothing is stored.
    let reply = send(
        reqwest::Method::POST,
        dry(PODS),
        "application/json",
        &pod("web", json!([{"name": "a", "image": "nginx"}])),
    )
    .await;
    assert_eq!(reply.expect(201)["spec"]["restartPolicy"], "Always");
    server
        .get(&format!("{PODS}/web"))
        .await
        .expect_status(404, "NotFound");
    // A dry-run service shows an IP but keeps none: the IP it asked for is still free.
    let reply = send(
        reqwest::Method::POST,
        dry(SERVICES),
        "application/json",
        &service("web", Some("10.0.0.50")),
    )
    .await;
    assert_eq!(reply.expect(201)["spec"]["clusterIP"], "10.0.0.50");
    let reply = send(
        reqwest::Method::POST,
        dry(SERVICES),
        "application/json",
        &service("auto", None),
    )
    .await;
    assert!(
        reply.expect(201)["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.0.0.")
    );
    server
        .post(SERVICES, &service("other", Some("10.0.0.50")))
        .await
        .expect(201);
    // A taken IP fails a dry run too.
    let reply = send(
        reqwest::Method::POST,
        dry(SERVICES),
        "application/json",
        &service("third", Some("10.0.0.50")),
    )
    .await;
    reply.expect_status(422, "Invalid");
    // Patches: admission runs, nothing changes.
    server.post(DEPLOYMENTS, &deployment("d")).await.expect(201);
    let before = server
        .get(&format!("{DEPLOYMENTS}/d"))
        .await
        .expect(200)
        .clone();
    send(
        reqwest::Method::PATCH,
        dry(&format!("{DEPLOYMENTS}/d")),
        MERGE_PATCH,
        &json!({"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}}}}}),
    )
    .await
    .expect_status(422, "Invalid");
    let ok = send(
        reqwest::Method::PATCH,
        dry(&format!("{DEPLOYMENTS}/d")),
        MERGE_PATCH,
        &json!({"spec": {"replicas": 4}}),
    )
    .await;
    assert_eq!(ok.expect(200)["spec"]["replicas"], 4);
    assert_eq!(
        server.get(&format!("{DEPLOYMENTS}/d")).await.expect(200),
        &before
    );
}

// ---- clusterIP allocation ----

async fn cluster_ips_are_unique_and_reused(store: Store) {
    let server = store.server().await;
    let mut seen = HashSet::new();
    for i in 0..50 {
        let created = server
            .post(SERVICES, &service(&format!("s{i}"), None))
            .await
            .expect(201)
            .clone();
        let ip = created["spec"]["clusterIP"].as_str().unwrap().to_string();
        let last: u32 = ip.strip_prefix("10.0.0.").unwrap().parse().unwrap();
        assert!((1..=254).contains(&last), "{ip}");
        assert!(seen.insert(ip.clone()), "{ip} handed out twice");
    }
    // A requested free IP.
    let free = (1..=254)
        .map(|n| format!("10.0.0.{n}"))
        .find(|ip| !seen.contains(ip))
        .unwrap();
    server
        .post(SERVICES, &service("fixed", Some(&free)))
        .await
        .expect(201);
    assert_eq!(cluster_ip(&server, "fixed").await, free);
    // A taken one.
    let reply = server.post(SERVICES, &service("taken", Some(&free))).await;
    let cause = only_cause(reply.expect_status(422, "Invalid")).clone();
    assert_eq!(cause["field"], "spec.clusterIPs[0]");
    assert_eq!(
        reply.message(),
        format!(
            "Service \"taken\" is invalid: spec.clusterIPs[0]: Invalid value: \"{free}\": failed to allocate IP {free}: provided IP is already allocated"
        )
    );
    server
        .get(&format!("{SERVICES}/taken"))
        .await
        .expect_status(404, "NotFound");
    // Out of the range, or its network and broadcast addresses.
    for ip in ["10.0.1.5", "10.0.0.0", "10.0.0.255", "fd00::1"] {
        let reply = server.post(SERVICES, &service("outside", Some(ip))).await;
        reply.expect_status(422, "Invalid");
        assert!(
            reply.message().ends_with(&format!(
                "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is 10.0.0.0/24"
            )),
            "{}",
            reply.message()
        );
    }
    // Not an IP at all.
    let reply = server
        .post(SERVICES, &service("garbage", Some("10.0.0")))
        .await;
    assert_eq!(
        only_cause(reply.expect_status(422, "Invalid"))["message"],
        "Invalid value: \"10.0.0\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
    );
    // Headless: no IP.
    let headless = server
        .post(SERVICES, &service("headless", Some("None")))
        .await
        .expect(201)
        .clone();
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    // Released on delete, then free for another service.
    server
        .delete(&format!("{SERVICES}/fixed"))
        .await
        .expect(200);
    server
        .post(SERVICES, &service("reuse", Some(&free)))
        .await
        .expect(201);
    // A failed create gives its IP back.
    let reply = server
        .post(SERVICES, &service("s0", Some("10.0.0.3")))
        .await;
    reply.expect_status(409, "AlreadyExists");
    if !seen.contains("10.0.0.3") {
        server
            .post(SERVICES, &service("three", Some("10.0.0.3")))
            .await
            .expect(201);
    }
}
on_both_stores!(cluster_ips_are_unique_and_reused);

async fn allocations_survive_a_restart(store: Store) {
    let server = store.server().await;
    server
        .post(SERVICES, &service("fixed", Some("10.0.0.20")))
        .await
        .expect(201);
    let mut held = HashSet::from(["10.0.0.20".to_string()]);
    for i in 0..10 {
        let name = format!("auto{i}");
        server
            .post(SERVICES, &service(&name, None))
            .await
            .expect(201);
        held.insert(cluster_ip(&server, &name).await);
    }
    drop(server);

    let server = store.server().await;
    server
        .post(SERVICES, &service("again", Some("10.0.0.20")))
        .await
        .expect_status(422, "Invalid");
    for i in 0..30 {
        let name = format!("after{i}");
        server
            .post(SERVICES, &service(&name, None))
            .await
            .expect(201);
        let ip = cluster_ip(&server, &name).await;
        assert!(
            held.insert(ip.clone()),
            "{ip} handed out again after a restart"
        );
    }
    // Deleting after the restart releases too.
    server
        .delete(&format!("{SERVICES}/fixed"))
        .await
        .expect(200);
    server
        .post(SERVICES, &service("again", Some("10.0.0.20")))
        .await
        .expect(201);
}
on_both_stores!(allocations_survive_a_restart);

async fn two_servers_never_share_an_ip(store: Store) {
    // Two servers over one store, each with its own allocation hint: the store decides.
    let a = store.server().await;
    let b = store.server().await;
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let (body_a, body_b) = (
            service(&format!("a{i}"), None),
            service(&format!("b{i}"), None),
        );
        let (ra, rb) = tokio::join!(a.post(SERVICES, &body_a), b.post(SERVICES, &body_b));
        for (reply, ips) in [(ra, &mut from_a), (rb, &mut from_b)] {
            let ip = reply.expect(201)["spec"]["clusterIP"]
                .as_str()
                .unwrap()
                .to_string();
            ips.push(ip);
        }
    }
    let all: HashSet<&String> = from_a.iter().chain(&from_b).collect();
    assert_eq!(all.len(), 40, "{from_a:?} {from_b:?}");
    // An IP one server handed out is taken for the other.
    let reply = b.post(SERVICES, &service("steal", Some(&from_a[0]))).await;
    reply.expect_status(422, "Invalid");
}
on_both_stores!(two_servers_never_share_an_ip);

async fn a_full_range_fails_and_recovers(store: Store) {
    let config = Config {
        service_cluster_ip_range: "10.0.0.0/29".parse().unwrap(),
        ..Default::default()
    };
    let server = store.server_with(config).await;
    for i in 0..6 {
        server
            .post(SERVICES, &service(&format!("s{i}"), None))
            .await
            .expect(201);
    }
    let reply = server.post(SERVICES, &service("s6", None)).await;
    reply.expect_status(500, "InternalError");
    assert_eq!(
        reply.message(),
        "Internal error occurred: failed to allocate a serviceIP: range is full"
    );
    server.delete(&format!("{SERVICES}/s3")).await.expect(200);
    server
        .post(SERVICES, &service("s6", None))
        .await
        .expect(201);
}
on_both_stores!(a_full_range_fails_and_recovers);

async fn startup_repairs_the_allocations(store: Store) {
    let backend = store.backend().await;
    // An IP key without a service (a server died between the two writes), old enough to go,
    // and a Service stored without an IP key (written before the allocator existed).
    let orphan = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
        "metadata": {"name": "10.0.0.30", "creationTimestamp": "2020-01-01T00:00:00Z", "labels": {"ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}},
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "gone"}}});
    backend
        .create(
            "/registry/ipaddresses/10.0.0.30",
            serde_json::to_vec(&orphan).unwrap().into(),
        )
        .await
        .unwrap();
    // An IPAddress another manager holds (created through the API), as old: kept.
    let foreign = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
        "metadata": {"name": "10.0.0.33", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "spec": {"parentRef": {"group": "gateway.networking.k8s.io", "resource": "gateways", "name": "edge"}}});
    backend
        .create(
            "/registry/ipaddresses/10.0.0.33",
            serde_json::to_vec(&foreign).unwrap().into(),
        )
        .await
        .unwrap();
    let legacy = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "legacy", "namespace": "default", "uid": "u", "creationTimestamp": "2020-01-01T00:00:00Z"},
        "spec": {"clusterIP": "10.0.0.31", "clusterIPs": ["10.0.0.31"], "ports": [{"port": 80, "protocol": "TCP"}]}});
    backend
        .create(
            "/registry/services/specs/default/legacy",
            serde_json::to_vec(&legacy).unwrap().into(),
        )
        .await
        .unwrap();
    let config = Config {
        orphan_ip_grace: Duration::from_secs(3600),
        ..Default::default()
    };
    let server = store.server_with(config).await;
    server
        .post(SERVICES, &service("new", Some("10.0.0.30")))
        .await
        .expect(201);
    server
        .post(SERVICES, &service("clash", Some("10.0.0.31")))
        .await
        .expect_status(422, "Invalid");
    server
        .post(SERVICES, &service("foreign", Some("10.0.0.33")))
        .await
        .expect_status(422, "Invalid");
    // The legacy service's IP is released on delete like any other.
    server
        .delete(&format!("{SERVICES}/legacy"))
        .await
        .expect(200);
    server
        .post(SERVICES, &service("clash", Some("10.0.0.31")))
        .await
        .expect(201);
}
on_both_stores!(startup_repairs_the_allocations);

#[tokio::test]
async fn a_young_orphan_is_kept_until_its_grace_period_ends() {
    let store = Store::embedded();
    let backend = store.backend().await;
    let young = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
        "metadata": {"name": "10.0.0.32", "creationTimestamp": chrono_now(), "labels": {"ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}},
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "creating"}}});
    backend
        .create(
            "/registry/ipaddresses/10.0.0.32",
            serde_json::to_vec(&young).unwrap().into(),
        )
        .await
        .unwrap();
    let server = store.server().await;
    server
        .post(SERVICES, &service("late", Some("10.0.0.32")))
        .await
        .expect_status(422, "Invalid");
    drop(server);
    let server = store
        .server_with(Config {
            orphan_ip_grace: Duration::ZERO,
            ..Default::default()
        })
        .await;
    server
        .post(SERVICES, &service("late", Some("10.0.0.32")))
        .await
        .expect(201);
}

fn chrono_now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test]
async fn external_name_services_hold_no_ip_and_type_changes_allocate_and_release() {
    let server = TestServer::start_with_admission(
        Arc::new(EmbeddedBackend::in_memory()),
        Config {
            service_cluster_ip_range: "10.0.0.0/29".parse().unwrap(),
            ..Default::default()
        },
    )
    .await;
    let external = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    let created = server.post(SERVICES, &external).await.expect(201).clone();
    assert!(created["spec"].get("clusterIP").is_none(), "{created:#}");
    // ExternalName → ClusterIP allocates.
    let changed = server
        .patch(
            &format!("{SERVICES}/ext"),
            MERGE_PATCH,
            &json!({"spec": {"type": "ClusterIP", "externalName": null, "ports": [{"port": 80}]}}),
        )
        .await
        .expect(200)
        .clone();
    let ip = changed["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.0.0."), "{changed:#}");
    // ClusterIP → ExternalName releases.
    server
        .patch(
            &format!("{SERVICES}/ext"),
            MERGE_PATCH,
            &json!({"spec": {"type": "ExternalName", "externalName": "db.example.com",
                "clusterIP": null, "clusterIPs": null, "ipFamilies": null, "ipFamilyPolicy": null,
                "internalTrafficPolicy": null}}),
        )
        .await
        .expect(200);
    server
        .post(SERVICES, &service("reuse", Some(&ip)))
        .await
        .expect(201);
}

// ---- end to end: the binary, its flag, and kubectl ----

#[test]
fn kubectl_sees_defaults_cluster_ips_from_the_flag_and_kube_errors() {
    use support::binary::{Kubecache, Storage};
    let server = Kubecache::start_with_args(
        Storage::Memory,
        &["--service-cluster-ip-range", "10.96.0.0/16"],
    );
    let svc = server.manifest(
        "svc.json",
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        .to_string(),
    );
    assert_eq!(
        server.kubectl_ok(&["create", "-f", &svc]).trim(),
        "service/web created"
    );
    let ip = server.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.96."), "{ip}");
    let table = server.kubectl_ok(&["get", "svc", "web"]);
    assert!(table.contains(&ip) && table.contains("80/TCP"), "{table}");

    // apply twice: the second finds nothing to change although the server added defaults.
    let pod = server.manifest(
        "pod.json",
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
        .to_string(),
    );
    let apply = ["apply", "-f", pod.as_str()];
    assert_eq!(server.kubectl_ok(&apply).trim(), "pod/web created");
    assert_eq!(server.kubectl_ok(&apply).trim(), "pod/web unchanged");
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.spec.restartPolicy} {.spec.containers[0].imagePullPolicy}"
        ]),
        "Always Always"
    );

    let dup = server.manifest(
        "dup.json",
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dup", "namespace": "default"},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "x"}]}})
        .to_string(),
    );
    let out = server.kubectl(&["create", "-f", &dup]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "The Pod \"dup\" is invalid: spec.containers[1].name: Duplicate value: \"a\""
        ),
        "{stderr}"
    );
    let out = server.kubectl(&["delete", "namespace", "default"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("namespaces \"default\" is forbidden: this namespace may not be deleted"),
        "{stderr}"
    );
}

#[test]
fn a_bad_service_range_stops_the_binary() {
    for range in ["10.0.0.0/8", "nonsense", "10.0.0.0/24,fd00::/108"] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kubecache"));
        command.args([
            "serve",
            "--insecure-port",
            "0",
            "--service-cluster-ip-range",
            range,
        ]);
        let out = support::binary::run_bounded(command, Duration::from_secs(20));
        assert!(!out.status.success(), "{range} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--service-cluster-ip-range"),
            "{range}: {stderr}"
        );
    }
}

#[tokio::test]
async fn deleting_a_namespace_releases_its_services_ips() {
    let server = TestServer::start().await;
    server.create_namespace("team").await;
    server
        .post(
            "/api/v1/namespaces/team/services",
            &service("web", Some("10.0.0.60")),
        )
        .await
        .expect(201);
    server.delete("/api/v1/namespaces/team").await.expect(200);
    // The namespace finalizer empties it in the background; wait (bounded) until it is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.get("/api/v1/namespaces/team").await.status != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "the namespace was not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
        .post(SERVICES, &service("web", Some("10.0.0.60")))
        .await
        .expect(201);
}
