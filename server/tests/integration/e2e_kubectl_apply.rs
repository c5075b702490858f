//! End to end: `kubectl apply`, client-side (strategic merge patch computed from the
//! last-applied-configuration annotation) and server-side (apply patches, managedFields,
//! conflicts), against the real `kubecache` binary on its embedded store and on a real etcd.
//!
//! kubectl runs with its default validation and, as on a real cluster, computes the
//! client-side apply patch from kubecache's `/openapi/v3` documents: the patch operations list
//! strategic merge patch, so the merge keys and strategies kubectl uses (containers by
//! `name`, ports by `containerPort`, volumes `merge,retainKeys`, …) are the ones kubecache
//! publishes, not kubectl's compiled-in ones.

use crate::support;

use kubecache_storage::testing::TestEtcd;
use serde_json::Value;
use support::binary::{Kubecache, Storage};

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

const DEPLOYMENT_V1: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels:
    app: web
    tier: front
spec:
  selector:
    matchLabels:
      app: web
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: nginx:1.25
        ports:
        - containerPort: 80
        - containerPort: 443
        env:
        - name: A
          value: a
        - name: B
          value: b
        volumeMounts:
        - name: data
          mountPath: /data
        - name: cfg
          mountPath: /etc/cfg
      - name: sidecar
        image: busybox:1.36
        command: [sleep, infinity]
      volumes:
      - name: data
        emptyDir: {}
      - name: cfg
        configMap:
          name: cfg
";

/// V1 edited: the sidecar, env B, label tier, port 443, volume cfg and its mount removed,
/// the image changed, a new env var, the strategy switched to Recreate (kubectl sends
/// `$retainKeys` so `rollingUpdate` goes).
const DEPLOYMENT_V2: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels:
    app: web
spec:
  selector:
    matchLabels:
      app: web
  strategy:
    type: Recreate
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: main
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - name: A
          value: a
        - name: C
          value: c
        volumeMounts:
        - name: data
          mountPath: /data
      volumes:
      - name: data
        emptyDir: {}
";

const DEPLOYMENT_PATH: &str = "/apis/apps/v1/namespaces/default/deployments/web";

fn get(server: &Kubecache, path: &str) -> Value {
    let (status, body) = server.get_json(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item[key].to_string().trim_matches('"').to_string())
        .collect()
}

fn client_side_apply_with_edits_and_removals(server: &Kubecache) {
    let v1 = server.manifest("web-v1.yaml", DEPLOYMENT_V1);
    let out = server.kubectl_ok(&["apply", "-f", &v1]);
    assert_eq!(out.trim(), "deployment.apps/web created");
    let created = get(server, DEPLOYMENT_PATH);
    assert!(
        created["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string(),
        "{created}"
    );

    // Others change the object: fields apply never set are theirs and must survive.
    server.kubectl_ok(&["scale", "deployment/web", "--replicas=5"]);
    server.kubectl_ok(&["label", "deployment/web", "owner=ops"]);
    server.kubectl_ok(&["annotate", "deployment/web", "note=kept"]);

    // Applying the same file again changes nothing.
    let out = server.kubectl_ok(&["apply", "-f", &v1]);
    assert_eq!(out.trim(), "deployment.apps/web unchanged");

    // kubectl builds this patch from kubecache's /openapi/v3 document (the patch operation
    // lists strategic merge patch): the directives below need the published merge keys
    // (containers by name, ports by containerPort) and strategies (strategy: retainKeys).
    let v2 = server.manifest("web-v2.yaml", DEPLOYMENT_V2);
    let output = server.kubectl(&["apply", "-f", &v2, "-v=9"]);
    let log = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "apply failed:\n{log}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "deployment.apps/web configured"
    );
    assert!(log.contains("/openapi/v3/apis/apps/v1?hash="), "{log}");
    let patch = log
        .lines()
        .find(|line| line.contains("Request Body") && line.contains("$setElementOrder/containers"))
        .unwrap_or_else(|| panic!("no strategic merge patch in the log:\n{log}"))
        // (klog quotes the body.)
        .replace("\\\"", "\"");
    assert!(
        patch.contains(r#""$setElementOrder/ports":[{"containerPort":80}]"#),
        "{patch}"
    );
    assert!(patch.contains(r#""$retainKeys":["type"]"#), "{patch}");
    assert!(
        log.contains("application/strategic-merge-patch+json"),
        "{log}"
    );

    let web = get(server, DEPLOYMENT_PATH);
    let labels = &web["metadata"]["labels"];
    assert_eq!(labels["app"], "web", "{web}");
    assert_eq!(
        labels["owner"], "ops",
        "label set by kubectl label is kept: {web}"
    );
    assert!(labels.get("tier").is_none(), "removed label is gone: {web}");
    assert_eq!(web["metadata"]["annotations"]["note"], "kept", "{web}");
    assert_eq!(
        web["spec"]["replicas"], 5,
        "replicas set by kubectl scale kept: {web}"
    );
    assert_eq!(
        web["spec"]["strategy"],
        serde_json::json!({"type": "Recreate"})
    );
    let pod = &web["spec"]["template"]["spec"];
    assert_eq!(names(&pod["containers"], "name"), ["main"], "{web}");
    let main = &pod["containers"][0];
    assert_eq!(main["image"], "nginx:1.27");
    assert_eq!(names(&main["ports"], "containerPort"), ["80"], "{web}");
    assert_eq!(names(&main["env"], "name"), ["A", "C"], "{web}");
    assert_eq!(names(&main["volumeMounts"], "name"), ["data"], "{web}");
    assert_eq!(names(&pod["volumes"], "name"), ["data"], "{web}");
    assert_eq!(pod["volumes"][0]["emptyDir"], serde_json::json!({}));

    // Every writer is recorded in managedFields, replicas under the scale subresource.
    let entries = web["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields");
    let managers: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    for manager in [
        "kubectl-client-side-apply",
        "kubectl-label",
        "kubectl-annotate",
    ] {
        assert!(
            managers.contains(&manager),
            "{manager} missing: {managers:?}"
        );
    }
    let scaler = entries
        .iter()
        .find(|e| e["subresource"] == "scale")
        .expect("an entry for the scale subresource");
    assert_eq!(
        scaler["fieldsV1"],
        serde_json::json!({"f:spec": {"f:replicas": {}}})
    );

    // The annotation now records V2: applying V2 again is a no-op.
    let out = server.kubectl_ok(&["apply", "-f", &v2]);
    assert_eq!(out.trim(), "deployment.apps/web unchanged");

    // Moving to server-side apply: kubectl hands the client-side applier's fields to its
    // server-side manager (a patch of managedFields), so changing them does not conflict.
    let v3 = server.manifest(
        "web-v3.yaml",
        &DEPLOYMENT_V2.replace("nginx:1.27", "nginx:1.28"),
    );
    let out = server.kubectl_ok(&["apply", "--server-side", "-f", &v3]);
    assert_eq!(out.trim(), "deployment.apps/web serverside-applied");
    let web = get(server, DEPLOYMENT_PATH);
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    assert_eq!(web["spec"]["replicas"], 5, "{web}");
    let entries = web["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields");
    let applier = entries
        .iter()
        .find(|e| e["manager"] == "kubectl" && e["operation"] == "Apply")
        .unwrap_or_else(|| panic!("no server-side entry: {web}"));
    assert!(
        applier["fieldsV1"]["f:spec"]["f:template"].is_object(),
        "{web}"
    );

    // A strategic patch from kubectl itself: delete one container by key.
    server.kubectl_ok(&[
        "patch",
        "deployment/web",
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"extra","image":"x"}]}}}}"#,
    ]);
    server.kubectl_ok(&[
        "patch",
        "deployment/web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","$patch":"delete"}]}}}}"#,
    ]);
    let web = get(server, DEPLOYMENT_PATH);
    assert_eq!(
        names(&web["spec"]["template"]["spec"]["containers"], "name"),
        ["extra"],
        "{web}"
    );
}

#[test]
fn client_side_apply_on_embedded() {
    let server = Kubecache::start();
    client_side_apply_with_edits_and_removals(&server);
}

#[test]
fn client_side_apply_on_etcd() {
    let etcd = TestEtcd::start();
    let server = Kubecache::start_with(Storage::Etcd(etcd.endpoint()));
    client_side_apply_with_edits_and_removals(&server);
}

const SSA_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels:
      app: ssa
  template:
    metadata:
      labels:
        app: ssa
    spec:
      containers:
      - name: main
        image: nginx:1.25
";

/// Manager B's configuration: only the replica count.
const SSA_REPLICAS: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
  namespace: default
spec:
  replicas: 4
";

/// The managedFields entry of `manager`.
fn managed_entry<'a>(object: &'a Value, manager: &str) -> Option<&'a Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

fn server_side_apply_conflict_then_force(server: &Kubecache) {
    let a = server.manifest("ssa.yaml", SSA_DEPLOYMENT);
    let out = server.kubectl_ok(&["apply", "--server-side", "-f", &a]);
    assert_eq!(out.trim(), "deployment.apps/ssa serverside-applied");
    let b = server.manifest("ssa-b.yaml", SSA_REPLICAS);
    let refused = server.kubectl(&["apply", "--server-side", "--field-manager=b", "-f", &b]);
    assert!(!refused.status.success(), "the conflicting apply must fail");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#),
        "{stderr}"
    );
    let path = "/apis/apps/v1/namespaces/default/deployments/ssa";
    assert_eq!(get(server, path)["spec"]["replicas"], 2);

    let out = server.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=b",
        "--force-conflicts",
        "-f",
        &b,
    ]);
    assert_eq!(out.trim(), "deployment.apps/ssa serverside-applied");
    let shown = server.kubectl_ok(&[
        "get",
        "deployment/ssa",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let object = parse(&shown);
    assert_eq!(object["spec"]["replicas"], 4);
    let b_entry = managed_entry(&object, "b").expect("b is a manager");
    assert_eq!(b_entry["operation"], "Apply");
    assert_eq!(
        b_entry["fieldsV1"],
        serde_json::json!({"f:spec": {"f:replicas": {}}})
    );
    let a_entry = managed_entry(&object, "kubectl").expect("kubectl is still a manager");
    assert!(
        a_entry["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "{object}"
    );
    assert!(
        a_entry["fieldsV1"]["f:spec"].get("f:template").is_some(),
        "{object}"
    );
    let yaml = server.kubectl_ok(&[
        "get",
        "deployment/ssa",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    assert!(
        yaml.contains("managedFields:") && yaml.contains("manager: b"),
        "{yaml}"
    );
    let hidden = server.kubectl_ok(&["get", "deployment/ssa", "-o", "yaml"]);
    assert!(
        !hidden.contains("managedFields:"),
        "kubectl hides them by default"
    );

    // A drops replicas (now b's) and adds a container, then removes it again: what A alone
    // owned goes, b's replicas stay.
    let without_replicas = SSA_DEPLOYMENT.replace("  replicas: 2\n", "");
    let with_side = format!("{without_replicas}      - name: side\n        image: busybox:1.36\n");
    let a2 = server.manifest("ssa-2.yaml", &with_side);
    server.kubectl_ok(&["apply", "--server-side", "-f", &a2]);
    let object = get(server, path);
    assert_eq!(
        names(&object["spec"]["template"]["spec"]["containers"], "name"),
        ["main", "side"]
    );
    let a3 = server.manifest("ssa-3.yaml", &without_replicas);
    server.kubectl_ok(&["apply", "--server-side", "-f", &a3]);
    let object = get(server, path);
    assert_eq!(
        names(&object["spec"]["template"]["spec"]["containers"], "name"),
        ["main"],
        "{object}"
    );
    assert_eq!(
        object["spec"]["replicas"], 4,
        "b still owns replicas: {object}"
    );

    // kubectl label records its own manager.
    server.kubectl_ok(&["label", "deployment/ssa", "team=x"]);
    let object = get(server, path);
    let label = managed_entry(&object, "kubectl-label").expect("kubectl-label entry");
    assert_eq!(label["operation"], "Update");
    assert_eq!(
        label["fieldsV1"],
        serde_json::json!({"f:metadata": {"f:labels": {".": {}, "f:team": {}}}})
    );
}

#[test]
fn server_side_apply_on_embedded() {
    let server = Kubecache::start();
    server_side_apply_conflict_then_force(&server);
}

#[test]
fn server_side_apply_on_etcd() {
    let etcd = TestEtcd::start();
    let server = Kubecache::start_with(Storage::Etcd(etcd.endpoint()));
    server_side_apply_conflict_then_force(&server);
}
