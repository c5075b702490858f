//! LimitRanger end to end (defaults on the created pod, min/max for containers, pods and
//! claims with kube's messages, nothing written when refused, defaults applied before
//! ResourceQuota checks) and the admission plugin flags of the real binary
//! (`--disable-admission-plugins`, `--admission-control-config-file` with `limitedResources`,
//! startup errors).

use serde_json::{Value, json};

use crate::support::binary::{Kubecache, Storage};
use crate::support::server::TestServer;

const PODS: &str = "/api/v1/namespaces/lr/pods";
const CLAIMS: &str = "/api/v1/namespaces/lr/persistentvolumeclaims";

fn pod(name: &str, resources: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx", "resources": resources}]},
    })
}

fn claim(name: &str, storage: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
    })
}

fn limit_range() -> Value {
    json!({
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
        "spec": {"limits": [
            {"type": "Container",
             "default": {"cpu": "500m", "memory": "256Mi"},
             "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
             "max": {"cpu": "1"}, "min": {"cpu": "50m"}},
            {"type": "Pod", "max": {"memory": "1Gi"}},
            {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "5Gi"}},
        ]},
    })
}

async fn defaults_and_refusals(server: &TestServer) {
    server.create_namespace("lr").await;
    server
        .post("/api/v1/namespaces/lr/limitranges", &limit_range())
        .await
        .expect(201);
    let created = server.post(PODS, &pod("plain", json!({}))).await;
    let created = created.expect(201);
    assert_eq!(
        created["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    assert_eq!(
        created["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app"
    );
    // Only what the container lacks is defaulted.
    let partial = server
        .post(
            PODS,
            &pod(
                "partial",
                json!({"requests": {"cpu": "200m"}, "limits": {"cpu": "300m"}}),
            ),
        )
        .await;
    assert_eq!(
        partial.expect(201)["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: memory request for container app; memory limit for container app"
    );

    let refused = server
        .post(PODS, &pod("big", json!({"limits": {"cpu": "2"}})))
        .await;
    assert_eq!(
        refused.expect_status(403, "Forbidden")["message"],
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
    );
    server.get(&format!("{PODS}/big")).await.expect(404);
    let refused = server
        .post(
            PODS,
            &pod("bigger", json!({"limits": {"cpu": "2", "memory": "2Gi"}})),
        )
        .await;
    assert_eq!(
        refused.expect_status(403, "Forbidden")["message"],
        "pods \"bigger\" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, maximum memory usage per Pod is 1Gi, but limit is 2Gi]"
    );
    let refused = server
        .post(PODS, &pod("tiny", json!({"requests": {"cpu": "10m"}})))
        .await;
    assert_eq!(
        refused.expect_status(403, "Forbidden")["message"],
        "pods \"tiny\" is forbidden: minimum cpu usage per Container is 50m, but request is 10m"
    );

    let refused = server.post(CLAIMS, &claim("huge", "10Gi")).await;
    assert_eq!(
        refused.expect_status(403, "Forbidden")["message"],
        "persistentvolumeclaims \"huge\" is forbidden: maximum storage usage per PersistentVolumeClaim is 5Gi, but request is 10Gi"
    );
    let refused = server.post(CLAIMS, &claim("small", "100Mi")).await;
    assert_eq!(
        refused.expect_status(403, "Forbidden")["message"],
        "persistentvolumeclaims \"small\" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 100Mi"
    );
    server.get(&format!("{CLAIMS}/huge")).await.expect(404);
    server.post(CLAIMS, &claim("fits", "2Gi")).await.expect(201);

    // The defaults come before ResourceQuota: a quota on limits.cpu admits a pod that states
    // none, charged its default.
    server
        .post(
            "/api/v1/namespaces/lr/resourcequotas",
            &json!({"metadata": {"name": "q"}, "spec": {"hard": {"limits.cpu": "2"}}}),
        )
        .await
        .expect(201);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let quota = server.get("/api/v1/namespaces/lr/resourcequotas/q").await;
        if quota.body["status"]["used"]["limits.cpu"] == "800m" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", quota.body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server
        .post(PODS, &pod("defaulted", json!({})))
        .await
        .expect(201);
    let quota = server.get("/api/v1/namespaces/lr/resourcequotas/q").await;
    assert_eq!(quota.body["status"]["used"]["limits.cpu"], "1300m");
}

on_both_stores!(
    limit_range_defaults_and_refusals_embedded,
    limit_range_defaults_and_refusals_etcd,
    defaults_and_refusals
);

fn create(server: &Kubecache, path: &str, body: &Value) -> (u16, Value) {
    let (status, bytes) = server.http(
        "POST",
        path,
        Some("application/json"),
        Some(body.to_string().as_bytes()),
    );
    (
        status,
        serde_json::from_slice(&bytes).expect("a JSON answer"),
    )
}

#[test]
fn disabled_plugins_do_not_run() {
    let server = Kubecache::start_with_args(
        Storage::Memory,
        &["--disable-admission-plugins", "LimitRanger,ResourceQuota"],
    );
    server.kubectl_ok(&["create", "namespace", "lr"]);
    let (status, _) = create(&server, "/api/v1/namespaces/lr/limitranges", &limit_range());
    assert_eq!(status, 201);
    let (status, _) = create(
        &server,
        "/api/v1/namespaces/lr/resourcequotas",
        &json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}}),
    );
    assert_eq!(status, 201);
    let (status, created) = create(&server, PODS, &pod("free", json!({"limits": {"cpu": "2"}})));
    assert_eq!(status, 201, "{created}");
    assert!(created["metadata"]["annotations"].is_null(), "{created}");
}

#[test]
fn limited_resources_require_a_covering_quota() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admission.yaml");
    std::fs::write(
        &file,
        "apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ResourceQuota
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: ResourceQuotaConfiguration
    limitedResources:
    - resource: pods
      matchContains: [cpu]
      matchScopes:
      - scopeName: PriorityClass
        operator: In
        values: [cluster-services]
",
    )
    .unwrap();
    let server = Kubecache::start_with_args(
        Storage::Memory,
        &["--admission-control-config-file", file.to_str().unwrap()],
    );
    server.kubectl_ok(&["create", "namespace", "lr"]);
    let (status, refused) = create(
        &server,
        PODS,
        &pod("cpu", json!({"requests": {"cpu": "1"}})),
    );
    assert_eq!(status, 403);
    assert_eq!(
        refused["message"],
        "pods \"cpu\" is forbidden: insufficient quota to consume: cpu,requests.cpu"
    );
    // No cpu consumed: nothing to cover.
    let (status, _) = create(
        &server,
        PODS,
        &pod("memory", json!({"requests": {"memory": "1Mi"}})),
    );
    assert_eq!(status, 201);
    let (status, _) = create(
        &server,
        "/apis/scheduling.k8s.io/v1/priorityclasses",
        &json!({"metadata": {"name": "cluster-services"}, "value": 1000}),
    );
    assert_eq!(status, 201);
    let mut critical = pod("critical", json!({}));
    critical["spec"]["priorityClassName"] = json!("cluster-services");
    let (status, refused) = create(&server, PODS, &critical);
    assert_eq!(status, 403);
    assert_eq!(
        refused["message"],
        "pods \"critical\" is forbidden: insufficient quota to match these scopes: [{PriorityClass In [cluster-services]}]"
    );
}

#[test]
fn bad_admission_flags_stop_the_server_at_startup() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_kubecache"))
            .args(["serve", "--insecure-port", "0", "--secure-port", "0"])
            .args(args)
            .output()
            .expect("run kubecache");
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run(&["--enable-admission-plugins", "NamespaceLifecycle,Nope"]);
    assert!(
        stderr.contains("enable-admission-plugins plugin \"Nope\" is unknown"),
        "{stderr}"
    );
    let stderr = run(&[
        "--enable-admission-plugins",
        "LimitRanger",
        "--disable-admission-plugins",
        "LimitRanger",
    ]);
    assert!(
        stderr.contains(
            "[LimitRanger] in enable-admission-plugins and disable-admission-plugins overlapped"
        ),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admission.yaml");
    std::fs::write(
        &file,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: ResourceQuota\n  configuration: {apiVersion: apiserver.config.k8s.io/v1, kind: ResourceQuotaConfiguration, limitedResources: [{matchContains: [cpu]}]}\n",
    )
    .unwrap();
    let stderr = run(&["--admission-control-config-file", file.to_str().unwrap()]);
    assert!(
        stderr.contains("--admission-control-config-file"),
        "{stderr}"
    );
    assert!(stderr.contains("missing field `resource`"), "{stderr}");
}
