//! `autoscaling` HorizontalPodAutoscalers (v2 stored, v1 converted), v1 LimitRanges,
//! ResourceQuotas and ComponentStatuses: CRUD, conversion both ways, watches in both
//! versions, status subresources, kube's validation, Tables, and kubectl (`get hpa`,
//! `get quota`, `get limits`, `get componentstatuses`, `autoscale`).

use crate::support;

use serde_json::{Value, json};
use support::binary::{Kubecache, run_bounded};
use support::kubectl::{create, header, lines, parse};
use support::server::TestServer;

const V2: &str = "/apis/autoscaling/v2/namespaces/hpa/horizontalpodautoscalers";
const V1: &str = "/apis/autoscaling/v1/namespaces/hpa/horizontalpodautoscalers";
const LIMITS: &str = "/api/v1/namespaces/hpa/limitranges";
const QUOTAS: &str = "/api/v1/namespaces/hpa/resourcequotas";
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// A v2 autoscaler with what v1 cannot say: other metrics (the CPU target last, where
/// kube's v1 → v2 conversion puts it back) and a behavior.
fn hpa_v2(name: &str) -> Value {
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": 8,
            "metrics": [
                {"type": "Resource", "resource": {"name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "500Mi"}}},
                {"type": "External", "external": {"metric": {"name": "queue",
                    "selector": {"matchLabels": {"q": "jobs"}}},
                    "target": {"type": "Value", "value": "30"}}},
                {"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 60}}},
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}},
        },
    })
}

fn hpa_v1(name: &str, cpu: Option<i64>) -> Value {
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "maxReplicas": 3,
    });
    if let Some(cpu) = cpu {
        spec["targetCPUUtilizationPercentage"] = json!(cpu);
    }
    json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name}, "spec": spec})
}

fn annotation(object: &Value, key: &str) -> Value {
    let text = object["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no annotation {key}: {object:#}"));
    serde_json::from_str(text).expect("annotation is JSON")
}

/// The quota `name` in namespace hpa once the resourcequota controller computed its status
/// and `done` holds.
async fn computed_quota(server: &TestServer, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let quota = server
            .get(&format!("{QUOTAS}/{name}"))
            .await
            .expect(200)
            .clone();
        if quota["status"]["used"].is_object() && done(&quota) {
            return quota;
        }
        assert!(tokio::time::Instant::now() < deadline, "{quota:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn causes(body: &Value) -> Vec<String> {
    body["details"]["causes"]
        .as_array()
        .unwrap_or_else(|| panic!("no causes: {body:#}"))
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["field"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

on_both_stores!(
    hpa_v2_and_v1_share_one_object_embedded,
    hpa_v2_and_v1_share_one_object_etcd,
    hpa_v2_and_v1_share_one_object
);

async fn hpa_v2_and_v1_share_one_object(server: &TestServer) {
    server.create_namespace("hpa").await;
    let mut watch_v2 = server.watch(V2, &[("watch", "true")]).await;
    let mut watch_v1 = server.watch(V1, &[("watch", "true")]).await;

    // Created as v2: defaulted as kube (the scaleUp rules of a behavior that has none).
    let created = server.post(V2, &hpa_v2("web")).await.expect(201).clone();
    assert_eq!(created["apiVersion"], "autoscaling/v2");
    let behavior = &created["spec"]["behavior"];
    assert_eq!(behavior["scaleDown"]["selectPolicy"], "Max", "{behavior:#}");
    assert_eq!(behavior["scaleUp"]["stabilizationWindowSeconds"], 0);
    assert_eq!(
        behavior["scaleUp"]["policies"],
        json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}])
    );

    // Read as v1: the CPU target in v1's field, the rest in kube's annotations.
    let v1 = server.get(&format!("{V1}/web")).await.expect(200).clone();
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60, "{v1:#}");
    assert_eq!(v1["spec"]["minReplicas"], 2);
    assert!(v1["spec"].get("metrics").is_none(), "{v1:#}");
    let others = annotation(&v1, "autoscaling.alpha.kubernetes.io/metrics");
    assert_eq!(
        others,
        json!([
            {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "500Mi"}},
            {"type": "External", "external": {"metricName": "queue",
                "metricSelector": {"matchLabels": {"q": "jobs"}}, "targetValue": "30"}},
        ])
    );
    let go_behavior = annotation(&v1, "autoscaling.alpha.kubernetes.io/behavior");
    assert_eq!(go_behavior["ScaleDown"]["StabilizationWindowSeconds"], 120);
    assert_eq!(
        v1["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    // Both watches saw the one create, each in its version.
    let added = watch_v2.expect_event("ADDED", "web").await;
    assert_eq!(added["object"], created);
    let added = watch_v1.expect_event("ADDED", "web").await;
    assert_eq!(added["object"], v1);

    // Written back through v1 (a label added): nothing v2 said is lost.
    let mut relabeled = v1.clone();
    relabeled["metadata"]["labels"]["tier"] = json!("front");
    let updated = server
        .put(&format!("{V1}/web"), &relabeled)
        .await
        .expect(200)
        .clone();
    assert_eq!(updated["spec"], v1["spec"]);
    let back = server.get(&format!("{V2}/web")).await.expect(200).clone();
    assert_eq!(back["spec"], created["spec"], "{back:#}");
    assert_eq!(
        back["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );
    assert!(back["metadata"].get("annotations").is_none(), "{back:#}");
    let modified = watch_v2.expect_event("MODIFIED", "web").await;
    assert_eq!(modified["object"], back);
    let modified = watch_v1.expect_event("MODIFIED", "web").await;
    assert_eq!(
        modified["object"]["spec"]["targetCPUUtilizationPercentage"],
        60
    );

    // Created as v1: read as v2 with the CPU metric, or kube's default 80% without one.
    server.post(V1, &hpa_v1("api", Some(50))).await.expect(201);
    let api = server.get(&format!("{V2}/api")).await.expect(200).clone();
    assert_eq!(
        api["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 50}}}])
    );
    assert_eq!(api["spec"]["minReplicas"], 1);
    server.post(V1, &hpa_v1("bare", None)).await.expect(201);
    let bare = server.get(&format!("{V2}/bare")).await.expect(200).clone();
    assert_eq!(
        bare["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    let bare_v1 = server.get(&format!("{V1}/bare")).await.expect(200).clone();
    assert_eq!(bare_v1["spec"]["targetCPUUtilizationPercentage"], 80);
    let listed = server.get(V1).await.expect(200).clone();
    assert_eq!(listed["kind"], "HorizontalPodAutoscalerList");
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["spec"]["targetCPUUtilizationPercentage"].is_number())
    );

    // The status subresource: written through v2's /status, shown by v1; a main-resource
    // write cannot change it.
    let mut with_status = back.clone();
    with_status["status"] = json!({
        "currentReplicas": 3, "desiredReplicas": 4,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": 75, "averageValue": "150m"}}}],
        "conditions": [{"type": "AbleToScale", "status": "True",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "ReadyForNewScale"}],
    });
    let status = server
        .put(&format!("{V2}/web/status"), &with_status)
        .await
        .expect(200)
        .clone();
    assert_eq!(status["status"]["desiredReplicas"], 4);
    let v1 = server.get(&format!("{V1}/web")).await.expect(200).clone();
    assert_eq!(
        v1["status"]["currentCPUUtilizationPercentage"], 75,
        "{v1:#}"
    );
    assert_eq!(v1["status"]["currentReplicas"], 3);
    let conditions = annotation(&v1, "autoscaling.alpha.kubernetes.io/conditions");
    assert_eq!(conditions[0]["reason"], "ReadyForNewScale");
    let mut sneaky = status.clone();
    sneaky["status"]["desiredReplicas"] = json!(9);
    sneaky["spec"]["maxReplicas"] = json!(9);
    let main = server
        .put(&format!("{V2}/web"), &sneaky)
        .await
        .expect(200)
        .clone();
    assert_eq!(main["spec"]["maxReplicas"], 9);
    assert_eq!(main["status"]["desiredReplicas"], 4, "{main:#}");
    // A v1 status write keeps what the annotations carry.
    let mut v1_status = server.get(&format!("{V1}/web")).await.expect(200).clone();
    v1_status["status"]["currentReplicas"] = json!(5);
    server
        .put(&format!("{V1}/web/status"), &v1_status)
        .await
        .expect(200);
    let after = server.get(&format!("{V2}/web")).await.expect(200).clone();
    assert_eq!(after["status"]["currentReplicas"], 5);
    assert_eq!(
        after["status"]["conditions"],
        with_status["status"]["conditions"]
    );
    assert_eq!(
        after["status"]["currentMetrics"],
        with_status["status"]["currentMetrics"]
    );
    let negative = {
        let mut object = after.clone();
        object["status"]["currentReplicas"] = json!(-1);
        object
    };
    let refused = server.put(&format!("{V2}/web/status"), &negative).await;
    let body = refused.expect_status(422, "Invalid");
    assert_eq!(
        causes(body),
        ["status.currentReplicas: Invalid value: -1: must be greater than or equal to 0"]
    );

    // Invalid in either version: kube's causes, nothing written.
    let mut invalid = hpa_v2("bad");
    invalid["spec"]["minReplicas"] = json!(5);
    invalid["spec"]["maxReplicas"] = json!(2);
    invalid["spec"]["scaleTargetRef"]["name"] = json!("");
    invalid["spec"]["behavior"]["scaleDown"]["selectPolicy"] = json!("Sometimes");
    let reply = server.post(V2, &invalid).await;
    let body = reply.expect_status(422, "Invalid");
    assert_eq!(body["details"]["kind"], "HorizontalPodAutoscaler");
    let got = causes(body);
    for expected in [
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
        "spec.scaleTargetRef.name: Required value",
        "spec.behavior.scaleDown.selectPolicy: Unsupported value: \"Sometimes\": supported values: \"Disabled\", \"Max\", \"Min\"",
    ] {
        assert!(
            got.contains(&expected.to_string()),
            "{expected} not in {got:#?}"
        );
    }
    let reply = server.post(V1, &hpa_v1("bad", Some(0))).await;
    let body = reply.expect_status(422, "Invalid");
    assert_eq!(
        causes(body),
        [
            "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"
        ]
    );
    server
        .get(&format!("{V2}/bad"))
        .await
        .expect_status(404, "NotFound");
    let mut garbled = server.get(&format!("{V1}/api")).await.expect(200).clone();
    garbled["metadata"]["annotations"] =
        json!({"autoscaling.alpha.kubernetes.io/metrics": "not json"});
    let reply = server.put(&format!("{V1}/api"), &garbled).await;
    reply.expect_status(400, "BadRequest");
    assert_eq!(
        server.get(&format!("{V2}/api")).await.expect(200)["metadata"]["resourceVersion"],
        api["metadata"]["resourceVersion"]
    );

    // Deleted through v1: gone from both.
    server.delete(&format!("{V1}/web")).await.expect(200);
    watch_v2.expect_event("ADDED", "api").await;
    watch_v2.expect_event("ADDED", "bare").await;
    let deleted = loop {
        let event = watch_v2.next_event().await;
        if event["type"] == "DELETED" {
            break event;
        }
        assert_eq!(event["type"], "MODIFIED", "{event:#}");
    };
    assert_eq!(deleted["object"]["apiVersion"], "autoscaling/v2");
    assert_eq!(deleted["object"]["metadata"]["name"], "web");
    server
        .get(&format!("{V2}/web"))
        .await
        .expect_status(404, "NotFound");
}

on_both_stores!(
    limit_ranges_and_quotas_embedded,
    limit_ranges_and_quotas_etcd,
    limit_ranges_and_quotas
);

async fn limit_ranges_and_quotas(server: &TestServer) {
    server.create_namespace("hpa").await;

    // LimitRange: a Container limit's defaults come from its max and min.
    let limits = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}});
    let created = server.post(LIMITS, &limits).await.expect(201).clone();
    let item = &created["spec"]["limits"][0];
    assert_eq!(item["default"], json!({"cpu": "2"}), "{created:#}");
    assert_eq!(
        item["defaultRequest"],
        json!({"cpu": "2", "memory": "64Mi"})
    );
    let mut changed = created.clone();
    changed["spec"]["limits"][0]["max"]["cpu"] = json!("4");
    let updated = server
        .put(&format!("{LIMITS}/defaults"), &changed)
        .await
        .expect(200)
        .clone();
    assert_eq!(updated["spec"]["limits"][0]["max"]["cpu"], "4");
    let listed = server.get("/api/v1/limitranges").await.expect(200).clone();
    assert_eq!(listed["kind"], "LimitRangeList");
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let invalid = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bad"},
        "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}},
            {"type": "Pod", "default": {"cpu": "1"}}]}});
    let body = server
        .post(LIMITS, &invalid)
        .await
        .expect_status(422, "Invalid")
        .clone();
    assert_eq!(
        causes(&body),
        [
            "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
            // (the defaults, from max, are set before validation as in kube)
            "spec.limits[0].defaultRequest[cpu]: Invalid value: \"1\": min value 2 is greater than default request value 1",
            "spec.limits[0].default[cpu]: Invalid value: \"1\": min value 2 is greater than default value 1",
            "spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod'",
        ]
    );
    server
        .get(&format!("{LIMITS}/bad"))
        .await
        .expect_status(404, "NotFound");
    server
        .delete(&format!("{LIMITS}/defaults"))
        .await
        .expect(200);
    server
        .get(&format!("{LIMITS}/defaults"))
        .await
        .expect_status(404, "NotFound");

    // ResourceQuota: the status a create carries is dropped, /status sets it, and a
    // main-resource write keeps it.
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"},
        "spec": {"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi"}},
        "status": {"hard": {"pods": "1"}}});
    let created = server.post(QUOTAS, &quota).await.expect(201).clone();
    assert_eq!(created["status"], json!({}), "{created:#}");
    // The resourcequota controller computes the status first; written by hand after it.
    let mut with_status = computed_quota(server, "compute", |_| true).await;
    with_status["status"] = json!({"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi"},
        "used": {"pods": "3", "requests.cpu": "1500m", "limits.memory": "2Gi"}});
    let status = server
        .put(&format!("{QUOTAS}/compute/status"), &with_status)
        .await
        .expect(200)
        .clone();
    assert_eq!(status["status"]["used"]["pods"], "3");
    let mut spec_change = status.clone();
    spec_change["spec"]["hard"]["pods"] = json!("20");
    spec_change["status"]["used"]["pods"] = json!("0");
    let main = server
        .put(&format!("{QUOTAS}/compute"), &spec_change)
        .await
        .expect(200)
        .clone();
    assert_eq!(main["spec"]["hard"]["pods"], "20");
    assert_eq!(main["status"]["used"]["pods"], "3", "{main:#}");
    // The controller recounts the quota whose spec changed.
    let recounted =
        computed_quota(server, "compute", |q| q["status"]["hard"]["pods"] == "20").await;
    assert_eq!(recounted["status"]["used"]["pods"], "0", "{recounted:#}");
    let mut bad_status = recounted.clone();
    bad_status["status"]["used"]["pods"] = json!("-2");
    let body = server
        .put(&format!("{QUOTAS}/compute/status"), &bad_status)
        .await
        .expect_status(422, "Invalid")
        .clone();
    assert_eq!(
        causes(&body),
        ["status.used[pods]: Invalid value: \"-2\": must be greater than or equal to 0"]
    );
    let invalid = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "bad"},
        "spec": {"hard": {"pods": "1.5"}, "scopes": ["BestEffort", "NotBestEffort"]}});
    let body = server
        .post(QUOTAS, &invalid)
        .await
        .expect_status(422, "Invalid")
        .clone();
    assert_eq!(
        causes(&body),
        [
            "spec.hard[pods]: Invalid value: \"1.5\": must be an integer",
            "spec.scopes: Invalid value: [\"BestEffort\",\"NotBestEffort\"]: conflicting scopes",
        ]
    );
    server
        .get(&format!("{QUOTAS}/bad"))
        .await
        .expect_status(404, "NotFound");
    server
        .delete(&format!("{QUOTAS}/compute"))
        .await
        .expect(200);
    server
        .get(&format!("{QUOTAS}/compute"))
        .await
        .expect_status(404, "NotFound");
}

#[tokio::test]
async fn component_statuses_are_computed_and_read_only() {
    let server = TestServer::start().await;
    let list = server.get("/api/v1/componentstatuses").await;
    assert!(
        list.warnings()
            .iter()
            .any(|w| w.contains("v1 ComponentStatus is deprecated in v1.19+")),
        "{:?}",
        list.warnings()
    );
    let body = list.expect(200);
    assert_eq!(body["kind"], "ComponentStatusList");
    assert_eq!(
        body["items"],
        json!([{"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": "etcd-0"},
            "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]}])
    );
    let one = server.get("/api/v1/componentstatuses/etcd-0").await;
    assert_eq!(one.expect(200)["metadata"]["name"], "etcd-0");
    server
        .get("/api/v1/componentstatuses/scheduler")
        .await
        .expect_status(404, "NotFound");
    let create = server
        .post(
            "/api/v1/componentstatuses",
            &json!({"metadata": {"name": "x"}}),
        )
        .await;
    assert_eq!(create.status, 405, "{:#}", create.body);
    let discovery = server.get("/api/v1").await.expect(200).clone();
    let cs = discovery["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "componentstatuses")
        .expect("componentstatuses in discovery")
        .clone();
    assert_eq!(cs["verbs"], json!(["get", "list"]));
    assert_eq!(cs["shortNames"], json!(["cs"]));
    assert_eq!(cs["namespaced"], false);
}

#[tokio::test]
async fn tables_have_kubes_columns() {
    // Without the resourcequota controller: the quota's status is written by hand.
    let controllers = kubecache_server::server::ControllerConfig::parse(
        &format!("{},-resourcequota", support::server::TEST_CONTROLLERS),
        "",
    )
    .unwrap();
    let backend = std::sync::Arc::new(kubecache_storage::embedded::EmbeddedBackend::in_memory());
    let server = TestServer::start_with_controllers(backend, controllers, |_| {}).await;
    server.create_namespace("hpa").await;
    server.post(V2, &hpa_v2("web")).await.expect(201);
    server.post(V1, &hpa_v1("api", Some(50))).await.expect(201);
    let table = |path: &'static str| {
        let server = &server;
        async move {
            let response = server
                .client
                .get(server.url(path))
                .header("Accept", TABLE_ACCEPT)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status().as_u16(), 200);
            let table: Value = response.json().await.expect("JSON");
            let columns: Vec<String> = table["columnDefinitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect();
            let cells: Vec<Value> = table["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["cells"].clone())
                .collect();
            (columns, cells)
        }
    };
    for path in [V2, V1] {
        let (columns, cells) = table(path).await;
        assert_eq!(
            columns,
            [
                "Name",
                "Reference",
                "Targets",
                "MinPods",
                "MaxPods",
                "Replicas",
                "Age"
            ]
        );
        // Printed from the v2 form whatever the version asked.
        assert_eq!(
            cells[0].as_array().unwrap()[..6],
            [
                json!("api"),
                json!("Deployment/api"),
                json!("cpu: <unknown>/50%"),
                json!("1"),
                json!(3),
                json!(0)
            ]
        );
        assert_eq!(
            cells[1][2],
            "memory: <unknown>/500Mi, <unknown>/30 + 1 more..."
        );
    }
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "compute"},
        "spec": {"hard": {"pods": "10", "limits.memory": "8Gi"}}});
    let mut with_status = server.post(QUOTAS, &quota).await.expect(201).clone();
    with_status["status"] =
        json!({"hard": {"pods": "10", "limits.memory": "8Gi"}, "used": {"pods": "3"}});
    server
        .put(&format!("{QUOTAS}/compute/status"), &with_status)
        .await
        .expect(200);
    let (columns, cells) = table(QUOTAS).await;
    assert_eq!(columns, ["Name", "Age", "Request", "Limit"]);
    assert_eq!(cells[0][2], "pods: 3/10");
    assert_eq!(cells[0][3], "limits.memory: 0/8Gi");
    let (columns, cells) = table("/api/v1/componentstatuses").await;
    assert_eq!(columns, ["Name", "Status", "Message", "Error"]);
    assert_eq!(cells, [json!(["etcd-0", "Healthy", "ok", ""])]);
}

/// kubectl of the minor kubecache serves (1.33), when installed beside the default one.
fn kubectl_1_33(server: &Kubecache, args: &[&str]) -> String {
    const KUBECTL_1_33: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
    let mut command = server.kubectl_command(args);
    if std::path::Path::new(KUBECTL_1_33).is_file() {
        let mut versioned = std::process::Command::new(KUBECTL_1_33);
        versioned.args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => versioned.env(key, value),
                None => versioned.env_remove(key),
            };
        }
        command = versioned;
    }
    let output = run_bounded(command, support::binary::KUBECTL_TIMEOUT);
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn kubectl_autoscale_get_hpa_quota_limits_and_componentstatuses() {
    let server = Kubecache::start();
    create(
        &server,
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: hpa\n",
    );
    create(
        &server,
        "deploy.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
  namespace: hpa
spec:
  replicas: 1
  selector:
    matchLabels:
      app: x
  template:
    metadata:
      labels:
        app: x
    spec:
      containers:
      - name: main
        image: nginx:1.25
",
    );
    let out = kubectl_1_33(
        &server,
        &[
            "autoscale",
            "deployment",
            "x",
            "-n",
            "hpa",
            "--min=1",
            "--max=3",
            "--cpu-percent=50",
        ],
    );
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/x autoscaled"),
        "{out}"
    );
    let hpa = parse(&server.kubectl_ok(&["get", "hpa", "x", "-n", "hpa", "-o", "json"]));
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"})
    );
    assert_eq!(hpa["spec"]["maxReplicas"], 3);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    let v1 = parse(&server.kubectl_ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "x",
        "-n",
        "hpa",
        "-o",
        "json",
    ]));
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);

    let out = server.kubectl_ok(&["get", "hpa", "-n", "hpa"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines(&out)[1].split_whitespace().collect();
    assert_eq!(
        row[..6],
        ["x", "Deployment/x", "cpu:", "<unknown>/50%", "1", "3"],
        "{out}"
    );

    create(
        &server,
        "quota.yaml",
        "apiVersion: v1
kind: ResourceQuota
metadata:
  name: compute
  namespace: hpa
spec:
  hard:
    pods: \"10\"
---
apiVersion: v1
kind: LimitRange
metadata:
  name: defaults
  namespace: hpa
spec:
  limits:
  - type: Container
    max:
      cpu: \"2\"
",
    );
    let out = server.kubectl_ok(&["get", "quota", "-n", "hpa"]);
    assert_eq!(header(&out), ["NAME", "AGE", "REQUEST", "LIMIT"]);
    assert!(lines(&out)[1].starts_with("compute"), "{out}");
    let out = server.kubectl_ok(&["get", "limits", "-n", "hpa"]);
    assert_eq!(header(&out), ["NAME", "CREATED", "AT"]);
    assert!(lines(&out)[1].starts_with("defaults"), "{out}");
    let out = server.kubectl_ok(&["get", "componentstatuses"]);
    assert_eq!(header(&out), ["NAME", "STATUS", "MESSAGE", "ERROR"]);
    let row: Vec<&str> = lines(&out)[1].split_whitespace().collect();
    assert_eq!(row, ["etcd-0", "Healthy", "ok"], "{out}");
}

/// apps/v1 as kube 1.33 serves it: status for daemonsets, replicasets and statefulsets; scale
/// for replicasets and statefulsets only (a DaemonSet has no replica count).
#[tokio::test]
async fn apps_workloads_have_kubes_status_and_scale_subresources() {
    let server = TestServer::start().await;
    let discovery = server.get("/apis/apps/v1").await.expect(200).clone();
    let names: Vec<&str> = discovery["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for expected in [
        "daemonsets/status",
        "replicasets/scale",
        "replicasets/status",
        "statefulsets/scale",
        "statefulsets/status",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    assert!(!names.contains(&"daemonsets/scale"), "{names:?}");

    server.create_namespace("apps").await;
    let template = json!({"metadata": {"labels": {"app": "w"}},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]}});
    let selector = json!({"matchLabels": {"app": "w"}});
    for (resource, kind, extra) in [
        ("replicasets", "ReplicaSet", json!({})),
        ("statefulsets", "StatefulSet", json!({"serviceName": "w"})),
    ] {
        let path = format!("/apis/apps/v1/namespaces/apps/{resource}");
        let mut spec = json!({"replicas": 1, "selector": selector, "template": template});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let object = json!({"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": "w"}, "spec": spec});
        server.post(&path, &object).await.expect(201);
        let scale = server
            .get(&format!("{path}/w/scale"))
            .await
            .expect(200)
            .clone();
        assert_eq!(scale["kind"], "Scale", "{scale:#}");
        assert_eq!(scale["spec"]["replicas"], 1);
        let mut more = scale.clone();
        more["spec"]["replicas"] = json!(4);
        server
            .put(&format!("{path}/w/scale"), &more)
            .await
            .expect(200);
        let scaled = server.get(&format!("{path}/w")).await.expect(200).clone();
        assert_eq!(scaled["spec"]["replicas"], 4, "{kind}");
    }
    let daemonsets = "/apis/apps/v1/namespaces/apps/daemonsets";
    let daemonset = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "w"},
        "spec": {"selector": selector, "template": template}});
    server.post(daemonsets, &daemonset).await.expect(201);
    server
        .get(&format!("{daemonsets}/w/status"))
        .await
        .expect(200);
    let scale = server.get(&format!("{daemonsets}/w/scale")).await;
    assert_eq!(scale.status, 404, "{:#}", scale.body);
}
