//! End to end: the real `kubecache` binary driven by the real `kubectl` (/usr/bin/kubectl),
//! in memory, on its embedded store with a data dir (graceful restart and kill -9), and on a
//! real etcd. Each test asserts on kubectl's output and exit code and on the server's state,
//! read back over plain HTTP.
//!
//! Manifests go through `create -f` / `apply -f` with kubectl's default validation (kubecache
//! serves OpenAPI v2 and v3: kubectl leaves validation to the server's `fieldValidation`);
//! outputs are `-o json|name|jsonpath` and the default server-side Tables.

use crate::support;

use std::time::{Duration, Instant};

use kubecache_storage::testing::TestEtcd;
use serde_json::{Value, json};
use support::binary::{Kubecache, Storage, Streaming};

/// How long a test waits for a watch line or for a deletion to complete.
const WAIT: Duration = Duration::from_secs(20);

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .collect()
}

fn namespace_json(name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}).to_string()
}

fn configmap_json(namespace: &str, name: &str, labels: Value, data: Value) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": data,
    })
    .to_string()
}

fn deployment_yaml(namespace: &str, name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    app: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: nginx:1.25
      - name: sidecar
        image: busybox:1.36
        command: [\"sleep\", \"infinity\"]
"
    )
}

/// `kubectl create -f` of a manifest written to the temp dir; asserts success and returns
/// kubectl's stdout.
fn create(server: &Kubecache, file: &str, contents: &str) -> String {
    let path = server.manifest(file, contents);
    server.kubectl_ok(&["create", "-f", &path])
}

/// Creates namespace `name` and checks kubectl's answer.
fn create_namespace(server: &Kubecache, name: &str) {
    let out = create(server, &format!("ns-{name}.json"), &namespace_json(name));
    assert_eq!(out.trim(), format!("namespace/{name} created"));
}

/// GETs an object over HTTP, asserting 200.
fn server_object(server: &Kubecache, path: &str) -> Value {
    let (status, body) = server.get_json(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Polls until GET `path` answers 404, bounded by [`WAIT`].
fn wait_gone(server: &Kubecache, path: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = server.get_json(path);
        if status == 404 {
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["reason"], "NotFound");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still there after {WAIT:?}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cm_path(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/configmaps/{name}")
}

fn deploy_path(namespace: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
}

#[test]
fn version_reports_server_v1_33() {
    let server = Kubecache::start();
    let out = server.kubectl_ok(&["version"]);
    let server_line = out
        .lines()
        .find(|line| line.starts_with("Server Version:"))
        .unwrap_or_else(|| panic!("no server version in:\n{out}"));
    assert!(
        server_line.starts_with("Server Version: v1.33."),
        "{server_line}"
    );

    let version = parse(&server.kubectl_ok(&["version", "-o", "json"]));
    assert_eq!(version["serverVersion"]["major"], "1");
    assert_eq!(version["serverVersion"]["minor"], "33");
    assert!(
        version["serverVersion"]["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.33."),
        "{version}"
    );
    // What kubectl showed is what the server says.
    let direct = server_object(&server, "/version");
    assert_eq!(direct["gitVersion"], version["serverVersion"]["gitVersion"]);
}

#[test]
fn create_from_json_and_yaml_then_get_in_every_output_format() {
    let server = Kubecache::start();
    create_namespace(&server, "shop");
    create_namespace(&server, "other");

    let cm_yaml = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels:
    app: shop
data:
  color: blue
  size: \"3\"
";
    assert_eq!(
        create(&server, "cm.yaml", cm_yaml).trim(),
        "configmap/settings created"
    );
    assert_eq!(
        create(
            &server,
            "cm-other.json",
            &configmap_json("other", "elsewhere", json!({}), json!({"k": "v"}))
        )
        .trim(),
        "configmap/elsewhere created"
    );
    assert_eq!(
        create(&server, "deploy.yaml", &deployment_yaml("shop", "web", 2)).trim(),
        "deployment.apps/web created"
    );

    // The server holds what was sent.
    let cm = server_object(&server, &cm_path("shop", "settings"));
    assert_eq!(cm["data"], json!({"color": "blue", "size": "3"}));
    assert_eq!(cm["metadata"]["labels"], json!({"app": "shop"}));
    assert!(!cm["metadata"]["uid"].as_str().unwrap().is_empty());
    let deploy = server_object(&server, &deploy_path("shop", "web"));
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    let ns = server_object(&server, "/api/v1/namespaces/shop");
    assert_eq!(ns["status"]["phase"], "Active");

    // -o json
    let got =
        parse(&server.kubectl_ok(&["get", "configmap", "settings", "-n", "shop", "-o", "json"]));
    assert_eq!(got["kind"], "ConfigMap");
    assert_eq!(got["apiVersion"], "v1");
    assert_eq!(got["data"], cm["data"]);
    assert_eq!(got["metadata"]["uid"], cm["metadata"]["uid"]);
    assert_eq!(
        got["metadata"]["resourceVersion"],
        cm["metadata"]["resourceVersion"]
    );
    let list = parse(&server.kubectl_ok(&["get", "cm", "-n", "shop", "-o", "json"]));
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["metadata"]["name"], "settings");
    let deploy_json =
        parse(&server.kubectl_ok(&["get", "deployment", "web", "-n", "shop", "-o", "json"]));
    assert_eq!(deploy_json["apiVersion"], "apps/v1");
    assert_eq!(deploy_json["kind"], "Deployment");
    assert_eq!(deploy_json["spec"]["replicas"], 2);

    // -o name
    assert_eq!(
        server
            .kubectl_ok(&["get", "cm", "-n", "shop", "-o", "name"])
            .trim(),
        "configmap/settings"
    );
    assert_eq!(
        server
            .kubectl_ok(&["get", "deployments", "-n", "shop", "-o", "name"])
            .trim(),
        "deployment.apps/web"
    );
    let namespaces = server.kubectl_ok(&["get", "namespaces", "-o", "name"]);
    for expected in [
        "namespace/default",
        "namespace/kube-system",
        "namespace/shop",
        "namespace/other",
    ] {
        assert!(
            lines(&namespaces).contains(&expected),
            "{expected} missing in:\n{namespaces}"
        );
    }

    // -o jsonpath
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "cm",
            "settings",
            "-n",
            "shop",
            "-o",
            "jsonpath={.data.color}"
        ]),
        "blue"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );
    assert_eq!(
        server.kubectl_ok(&["get", "ns", "shop", "-o", "jsonpath={.status.phase}"]),
        "Active"
    );

    // -A lists every namespace.
    let all = server.kubectl_ok(&[
        "get",
        "configmaps",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
    ]);
    let all = lines(&all);
    assert!(all.contains(&"shop/settings"), "{all:?}");
    assert!(all.contains(&"other/elsewhere"), "{all:?}");
    let (_, everywhere) = server.get_json("/api/v1/configmaps");
    assert_eq!(everywhere["items"].as_array().unwrap().len(), all.len());

    // Errors: a duplicate create and a missing object fail with the API's reasons.
    let path = server.manifest("cm.yaml", cm_yaml);
    let dup = server.kubectl(&["create", "-f", &path]);
    assert_eq!(dup.status.code(), Some(1), "{}", stdout(&dup));
    assert!(stderr(&dup).contains("AlreadyExists"), "{}", stderr(&dup));
    assert!(
        stderr(&dup).contains("\"settings\" already exists"),
        "{}",
        stderr(&dup)
    );
    let missing = server.kubectl(&["get", "cm", "nope", "-n", "shop", "-o", "json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("NotFound"),
        "{}",
        stderr(&missing)
    );
    assert!(
        stderr(&missing).contains("configmaps \"nope\" not found"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn label_selectors_and_chunked_lists() {
    let server = Kubecache::start();
    create_namespace(&server, "sel");
    let objects = [
        ("a1", json!({"tier": "front", "page": "yes"})),
        ("a2", json!({"tier": "front", "page": "yes"})),
        ("b1", json!({"tier": "back", "page": "yes"})),
        ("b2", json!({"tier": "back", "page": "yes"})),
        ("c1", json!({"page": "yes"})),
        ("d1", json!({"other": "x"})),
    ];
    for (name, labels) in &objects {
        create(
            &server,
            &format!("{name}.json"),
            &configmap_json("sel", name, labels.clone(), json!({"n": name})),
        );
    }
    let names = |selector: &str| -> Vec<String> {
        let out = server.kubectl_ok(&["get", "cm", "-n", "sel", "-l", selector, "-o", "name"]);
        lines(&out).iter().map(|line| line.to_string()).collect()
    };
    let expect = |list: &[&str]| -> Vec<String> {
        list.iter()
            .map(|name| format!("configmap/{name}"))
            .collect()
    };
    assert_eq!(names("tier=front"), expect(&["a1", "a2"]));
    assert_eq!(names("tier==back"), expect(&["b1", "b2"]));
    assert_eq!(names("tier!=front,page=yes"), expect(&["b1", "b2", "c1"]));
    assert_eq!(
        names("tier in (front,back)"),
        expect(&["a1", "a2", "b1", "b2"])
    );
    assert_eq!(
        names("tier notin (front),page"),
        expect(&["b1", "b2", "c1"])
    );
    assert_eq!(names("tier"), expect(&["a1", "a2", "b1", "b2"]));
    assert_eq!(names("!tier"), expect(&["c1", "d1"]));
    assert_eq!(names("tier=nothing"), Vec::<String>::new());
    // The server agrees.
    let (_, list) = server.get_json("/api/v1/namespaces/sel/configmaps?labelSelector=tier%3Dfront");
    let served: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(served, ["a1", "a2"]);

    // --chunk-size=2 over the 5 objects labelled page=yes: three pages, all objects, in order.
    let output = server.kubectl(&[
        "get",
        "cm",
        "-n",
        "sel",
        "-l",
        "page=yes",
        "--chunk-size=2",
        "-o",
        "name",
        "-v=6",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        lines(&stdout(&output)),
        [
            "configmap/a1",
            "configmap/a2",
            "configmap/b1",
            "configmap/b2",
            "configmap/c1"
        ]
    );
    let log = stderr(&output);
    let requests: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("verb=\"GET\"") && line.contains("/configmaps?"))
        .collect();
    assert_eq!(requests.len(), 3, "expected three pages:\n{log}");
    assert!(
        requests.iter().all(|line| line.contains("limit=2")),
        "{log}"
    );
    assert_eq!(
        requests
            .iter()
            .filter(|line| line.contains("continue="))
            .count(),
        2,
        "{log}"
    );

    // -o json with chunks still assembles one list.
    let list = parse(&server.kubectl_ok(&[
        "get",
        "cm",
        "-n",
        "sel",
        "-l",
        "page=yes",
        "--chunk-size=2",
        "-o",
        "json",
    ]));
    assert_eq!(list["items"].as_array().unwrap().len(), 5);
}

#[test]
fn label_unlabel_and_annotate() {
    let server = Kubecache::start();
    create_namespace(&server, "lab");
    create(
        &server,
        "cm.json",
        &configmap_json("lab", "cm", json!({"app": "x"}), json!({"k": "v"})),
    );
    let path = cm_path("lab", "cm");

    assert_eq!(
        server
            .kubectl_ok(&["label", "cm", "cm", "-n", "lab", "tier=front"])
            .trim(),
        "configmap/cm labeled"
    );
    let cm = server_object(&server, &path);
    assert_eq!(
        cm["metadata"]["labels"],
        json!({"app": "x", "tier": "front"})
    );

    // Changing an existing label needs --overwrite.
    let refused = server.kubectl(&["label", "cm", "cm", "-n", "lab", "tier=back"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("already has a value"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        server_object(&server, &path)["metadata"]["labels"]["tier"],
        "front"
    );
    server.kubectl_ok(&["label", "cm", "cm", "-n", "lab", "tier=back", "--overwrite"]);
    assert_eq!(
        server_object(&server, &path)["metadata"]["labels"]["tier"],
        "back"
    );

    assert_eq!(
        server
            .kubectl_ok(&["label", "cm", "cm", "-n", "lab", "tier-"])
            .trim(),
        "configmap/cm unlabeled"
    );
    let cm = server_object(&server, &path);
    assert_eq!(cm["metadata"]["labels"], json!({"app": "x"}));

    assert_eq!(
        server
            .kubectl_ok(&[
                "annotate",
                "cm",
                "cm",
                "-n",
                "lab",
                "owner=team-a",
                "note=hello world"
            ])
            .trim(),
        "configmap/cm annotated"
    );
    let cm = server_object(&server, &path);
    assert_eq!(
        cm["metadata"]["annotations"],
        json!({"owner": "team-a", "note": "hello world"})
    );
    server.kubectl_ok(&["annotate", "cm", "cm", "-n", "lab", "note-"]);
    let cm = server_object(&server, &path);
    assert_eq!(cm["metadata"]["annotations"], json!({"owner": "team-a"}));
    // Labelling by selector touches every match.
    create(
        &server,
        "cm2.json",
        &configmap_json("lab", "cm2", json!({"app": "x"}), json!({})),
    );
    let out = server.kubectl_ok(&["label", "cm", "-n", "lab", "-l", "app=x", "batch=1"]);
    assert_eq!(
        lines(&out),
        ["configmap/cm labeled", "configmap/cm2 labeled"]
    );
    assert_eq!(
        server_object(&server, &cm_path("lab", "cm2"))["metadata"]["labels"]["batch"],
        "1"
    );
}

#[test]
fn patch_merge_json_and_strategic() {
    let server = Kubecache::start();
    create_namespace(&server, "pat");
    create(
        &server,
        "cm.json",
        &configmap_json("pat", "cm", json!({}), json!({"a": "1", "b": "2"})),
    );
    create(&server, "deploy.yaml", &deployment_yaml("pat", "web", 1));
    let path = cm_path("pat", "cm");

    // --type merge: add a key, delete one with null.
    let out = server.kubectl_ok(&[
        "patch",
        "cm",
        "cm",
        "-n",
        "pat",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"c":"3","b":null}}"#,
    ]);
    assert_eq!(out.trim(), "configmap/cm patched");
    assert_eq!(
        server_object(&server, &path)["data"],
        json!({"a": "1", "c": "3"})
    );

    // --type json: replace, add, remove.
    server.kubectl_ok(&[
        "patch",
        "cm",
        "cm",
        "-n",
        "pat",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/data/a","value":"10"},{"op":"add","path":"/data/d","value":"4"},{"op":"remove","path":"/data/c"}]"#,
    ]);
    assert_eq!(
        server_object(&server, &path)["data"],
        json!({"a": "10", "d": "4"})
    );
    // A failing test op rejects the whole patch.
    let failed = server.kubectl(&[
        "patch",
        "cm",
        "cm",
        "-n",
        "pat",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/e","value":"5"},{"op":"test","path":"/data/a","value":"wrong"}]"#,
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", stdout(&failed));
    assert_eq!(
        server_object(&server, &path)["data"],
        json!({"a": "10", "d": "4"})
    );

    // Default (strategic merge) on a configmap.
    server.kubectl_ok(&[
        "patch",
        "cm",
        "cm",
        "-n",
        "pat",
        "-p",
        r#"{"data":{"e":"5"}}"#,
    ]);
    assert_eq!(
        server_object(&server, &path)["data"],
        json!({"a": "10", "d": "4", "e": "5"})
    );

    // Strategic merge on a deployment merges containers by name: the sidecar stays.
    let out = server.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-n",
        "pat",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"nginx:1.26"}]}}}}"#,
    ]);
    assert_eq!(out.trim(), "deployment.apps/web patched");
    let deploy = server_object(&server, &deploy_path("pat", "web"));
    let containers = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2, "{containers:?}");
    assert_eq!(containers[0]["name"], "main");
    assert_eq!(containers[0]["image"], "nginx:1.26");
    assert_eq!(containers[1]["name"], "sidecar");
    assert_eq!(containers[1]["image"], "busybox:1.36");
    // ... whereas a merge patch replaces the list.
    server.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-n",
        "pat",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"nginx:1.27"}]}}}}"#,
    ]);
    let deploy = server_object(&server, &deploy_path("pat", "web"));
    let containers = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0]["image"], "nginx:1.27");
    // A patch that changes nothing still succeeds and keeps the resourceVersion.
    let before = server_object(&server, &path)["metadata"]["resourceVersion"].clone();
    let out = server.kubectl_ok(&[
        "patch",
        "cm",
        "cm",
        "-n",
        "pat",
        "-p",
        r#"{"data":{"e":"5"}}"#,
    ]);
    assert_eq!(out.trim(), "configmap/cm patched (no change)");
    assert_eq!(
        server_object(&server, &path)["metadata"]["resourceVersion"],
        before
    );
}

#[test]
fn scale_deployment() {
    let server = Kubecache::start();
    create_namespace(&server, "sc");
    create(&server, "deploy.yaml", &deployment_yaml("sc", "web", 1));
    let path = deploy_path("sc", "web");

    let out = server.kubectl_ok(&["scale", "deployment", "web", "-n", "sc", "--replicas=3"]);
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    assert_eq!(server_object(&server, &path)["spec"]["replicas"], 3);
    let scale = server_object(&server, &format!("{path}/scale"));
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);

    // --current-replicas is a precondition.
    server.kubectl_ok(&[
        "scale",
        "deployment/web",
        "-n",
        "sc",
        "--current-replicas=3",
        "--replicas=4",
    ]);
    assert_eq!(server_object(&server, &path)["spec"]["replicas"], 4);
    let refused = server.kubectl(&[
        "scale",
        "deployment/web",
        "-n",
        "sc",
        "--current-replicas=3",
        "--replicas=5",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("Expected replicas to be 3, was 4"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(server_object(&server, &path)["spec"]["replicas"], 4);
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "sc",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "4"
    );
    // Scaling to zero.
    server.kubectl_ok(&["scale", "deployment", "web", "-n", "sc", "--replicas=0"]);
    assert_eq!(server_object(&server, &path)["spec"]["replicas"], 0);
}

#[test]
fn apply_creates_then_modifies() {
    let server = Kubecache::start();
    create_namespace(&server, "ap");
    let v1 = "apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
  namespace: ap
  labels:
    stage: one
data:
  keep: same
  change: before
  drop: soon
";
    let path = server.manifest("applied.yaml", v1);
    let out = server.kubectl_ok(&["apply", "-f", &path]);
    assert_eq!(out.trim(), "configmap/applied created");
    let cm = server_object(&server, &cm_path("ap", "applied"));
    assert_eq!(
        cm["data"],
        json!({"keep": "same", "change": "before", "drop": "soon"})
    );
    let last_applied =
        cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("apply records the last applied configuration");
    assert_eq!(parse(last_applied)["data"]["change"], "before");
    let uid = cm["metadata"]["uid"].clone();

    // Applying the same file again changes nothing.
    let out = server.kubectl_ok(&["apply", "-f", &path]);
    assert_eq!(out.trim(), "configmap/applied unchanged");

    // Change a value, drop a key, change a label: the three-way merge removes `drop`.
    let v2 = "apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
  namespace: ap
  labels:
    stage: two
data:
  keep: same
  change: after
  new: added
";
    let path = server.manifest("applied.yaml", v2);
    let out = server.kubectl_ok(&["apply", "-f", &path]);
    assert_eq!(out.trim(), "configmap/applied configured");
    let cm = server_object(&server, &cm_path("ap", "applied"));
    assert_eq!(
        cm["data"],
        json!({"keep": "same", "change": "after", "new": "added"})
    );
    assert_eq!(cm["metadata"]["labels"], json!({"stage": "two"}));
    assert_eq!(
        cm["metadata"]["uid"], uid,
        "apply must update, not recreate"
    );
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "cm",
            "applied",
            "-n",
            "ap",
            "-o",
            "jsonpath={.data.change}"
        ]),
        "after"
    );

    // A deployment: apply, then apply with other replicas and image.
    let path = server.manifest("deploy.yaml", &deployment_yaml("ap", "web", 1));
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &path]).trim(),
        "deployment.apps/web created"
    );
    let changed = deployment_yaml("ap", "web", 5).replace("nginx:1.25", "nginx:1.26");
    let path = server.manifest("deploy.yaml", &changed);
    assert_eq!(
        server.kubectl_ok(&["apply", "-f", &path]).trim(),
        "deployment.apps/web configured"
    );
    let deploy = server_object(&server, &deploy_path("ap", "web"));
    assert_eq!(deploy["spec"]["replicas"], 5);
    let containers = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["image"], "nginx:1.26");
    assert_eq!(containers[1]["image"], "busybox:1.36");
}

#[test]
fn delete_configmap_deployment_and_namespace() {
    let server = Kubecache::start();
    create_namespace(&server, "del");
    create(
        &server,
        "cm.json",
        &configmap_json("del", "cm", json!({}), json!({"k": "v"})),
    );
    create(
        &server,
        "cm2.json",
        &configmap_json("del", "cm2", json!({}), json!({"k": "v"})),
    );
    create(&server, "deploy.yaml", &deployment_yaml("del", "web", 1));
    create(&server, "deploy2.yaml", &deployment_yaml("del", "api", 1));

    let out = server.kubectl_ok(&["delete", "configmap", "cm", "-n", "del", "--timeout=20s"]);
    assert_eq!(out.trim(), "configmap \"cm\" deleted");
    wait_gone(&server, &cm_path("del", "cm"));
    let missing = server.kubectl(&["delete", "configmap", "cm", "-n", "del"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("NotFound"),
        "{}",
        stderr(&missing)
    );
    assert_eq!(
        server
            .kubectl_ok(&[
                "delete",
                "configmap",
                "cm",
                "-n",
                "del",
                "--ignore-not-found"
            ])
            .trim(),
        ""
    );

    let out = server.kubectl_ok(&["delete", "deployment", "web", "-n", "del", "--timeout=20s"]);
    assert_eq!(out.trim(), "deployment.apps \"web\" deleted");
    wait_gone(&server, &deploy_path("del", "web"));
    server_object(&server, &deploy_path("del", "api"));

    // Deleting the namespace waits until it and its contents are gone.
    let started = Instant::now();
    let out = server.kubectl_ok(&["delete", "namespace", "del", "--timeout=30s"]);
    assert_eq!(out.trim(), "namespace \"del\" deleted");
    assert!(started.elapsed() < Duration::from_secs(30));
    wait_gone(&server, "/api/v1/namespaces/del");
    let (_, cms) = server.get_json("/api/v1/namespaces/del/configmaps");
    assert_eq!(cms["items"], json!([]), "{cms}");
    let (_, deploys) = server.get_json("/apis/apps/v1/namespaces/del/deployments");
    assert_eq!(deploys["items"], json!([]), "{deploys}");
    let gone = server.kubectl(&["get", "namespace", "del", "-o", "name"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        stderr(&gone).contains("namespaces \"del\" not found"),
        "{}",
        stderr(&gone)
    );
}

/// The objects of `kubectl get -w -o json --output-watch-events` lines as (type, name, data).
fn watch_events(lines: &[String]) -> Vec<(String, String, Value)> {
    lines
        .iter()
        .filter(|line| line.starts_with('{'))
        .map(|line| {
            let event = parse(line);
            (
                event["type"].as_str().unwrap_or_default().to_string(),
                event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                event["object"].clone(),
            )
        })
        .collect()
}

fn has_event(lines: &[String], kind: &str, name: &str) -> bool {
    watch_events(lines)
        .iter()
        .any(|(t, n, _)| t == kind && n == name)
}

#[test]
fn watch_with_kubectl_get_w() {
    let server = Kubecache::start();
    create_namespace(&server, "w");
    create(
        &server,
        "first.json",
        &configmap_json("w", "first", json!({}), json!({"v": "0"})),
    );

    // A watcher that runs until killed.
    let mut watcher = Streaming::spawn(server.kubectl_command(&[
        "get",
        "configmaps",
        "-n",
        "w",
        "-w",
        "-o",
        "json",
        "--output-watch-events",
    ]));
    watcher.wait_for(WAIT, |lines| has_event(lines, "ADDED", "first"));
    // A watcher that stops by itself: --request-timeout bounds the watch request.
    let bounded = Streaming::spawn(server.kubectl_command(&[
        "get",
        "configmaps",
        "-n",
        "w",
        "-w",
        "-o",
        "name",
        "--request-timeout=4s",
    ]));

    // Writes made while watching.
    server.kubectl_ok(&["label", "cm", "first", "-n", "w", "seen=yes"]);
    create(
        &server,
        "second.json",
        &configmap_json("w", "second", json!({}), json!({"v": "1"})),
    );
    server.kubectl_ok(&["delete", "cm", "second", "-n", "w"]);

    let seen = watcher
        .wait_for(WAIT, |lines| has_event(lines, "DELETED", "second"))
        .to_vec();
    let events = watch_events(&seen);
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|(t, n, _)| (t.clone(), n.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("ADDED".to_string(), "first".to_string()),
            ("MODIFIED".to_string(), "first".to_string()),
            ("ADDED".to_string(), "second".to_string()),
            ("DELETED".to_string(), "second".to_string()),
        ],
        "{seen:?}"
    );
    assert_eq!(events[1].2["metadata"]["labels"]["seen"], "yes");
    // Events carry increasing resourceVersions, the last one matching the server's.
    let rvs: Vec<u64> = events
        .iter()
        .map(|(_, _, object)| {
            object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(rvs.windows(2).all(|pair| pair[0] < pair[1]), "{rvs:?}");
    let first = server_object(&server, &cm_path("w", "first"));
    assert_eq!(
        first["metadata"]["resourceVersion"],
        events[1].2["metadata"]["resourceVersion"]
    );
    let rest = watcher.kill();
    assert!(rest.len() >= seen.len());

    let (status, lines, stderr) = bounded.finish(WAIT);
    let status = status.expect("kubectl get -w --request-timeout=4s did not stop by itself");
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        lines.iter().any(|line| line == "configmap/first"),
        "{lines:?}"
    );
}

#[test]
fn etcd_backed_objects_survive_a_restart() {
    let etcd = TestEtcd::start();
    let mut server = Kubecache::start_with(Storage::Etcd(etcd.endpoint()));
    create_namespace(&server, "persist");
    create(
        &server,
        "cm.json",
        &configmap_json("persist", "cm", json!({"app": "p"}), json!({"k": "v"})),
    );
    create(
        &server,
        "deploy.yaml",
        &deployment_yaml("persist", "web", 1),
    );
    server.kubectl_ok(&[
        "scale",
        "deployment",
        "web",
        "-n",
        "persist",
        "--replicas=2",
    ]);
    server.kubectl_ok(&[
        "patch",
        "cm",
        "cm",
        "-n",
        "persist",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"k2":"v2"}}"#,
    ]);
    let cm_before = server_object(&server, &cm_path("persist", "cm"));
    let deploy_before = server_object(&server, &deploy_path("persist", "web"));

    server.stop_graceful();
    server.restart();

    let cm = parse(&server.kubectl_ok(&["get", "cm", "cm", "-n", "persist", "-o", "json"]));
    assert_eq!(cm["data"], json!({"k": "v", "k2": "v2"}));
    assert_eq!(cm["metadata"]["uid"], cm_before["metadata"]["uid"]);
    assert_eq!(
        cm["metadata"]["resourceVersion"],
        cm_before["metadata"]["resourceVersion"]
    );
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "persist",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "2"
    );
    let deploy = server_object(&server, &deploy_path("persist", "web"));
    assert_eq!(deploy["metadata"]["uid"], deploy_before["metadata"]["uid"]);
    assert_eq!(
        server
            .kubectl_ok(&["get", "cm", "-n", "persist", "-l", "app=p", "-o", "name"])
            .trim(),
        "configmap/cm"
    );
    assert_eq!(
        server.kubectl_ok(&["get", "ns", "persist", "-o", "jsonpath={.status.phase}"]),
        "Active"
    );

    // A kill -9 loses nothing either, and the restarted server keeps writing.
    server.kubectl_ok(&["label", "cm", "cm", "-n", "persist", "after=restart"]);
    server.restart();
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "cm",
            "cm",
            "-n",
            "persist",
            "-o",
            "jsonpath={.metadata.labels.after}"
        ]),
        "restart"
    );
    server.kubectl_ok(&["delete", "ns", "persist", "--timeout=30s"]);
    wait_gone(&server, "/api/v1/namespaces/persist");
}

#[test]
fn embedded_data_survives_a_graceful_restart() {
    let data = tempfile::tempdir().expect("data dir");
    let mut server = Kubecache::start_with(Storage::DataDir(data.path().to_path_buf()));
    create_namespace(&server, "keep");
    create(
        &server,
        "cm.json",
        &configmap_json("keep", "cm", json!({"app": "k"}), json!({"k": "v"})),
    );
    create(&server, "deploy.yaml", &deployment_yaml("keep", "web", 1));
    server.kubectl_ok(&["scale", "deployment", "web", "-n", "keep", "--replicas=3"]);
    create(
        &server,
        "gone.json",
        &configmap_json("keep", "gone", json!({}), json!({})),
    );
    server.kubectl_ok(&["delete", "cm", "gone", "-n", "keep"]);
    let cm_before = server_object(&server, &cm_path("keep", "cm"));
    let list_before = server_object(&server, "/api/v1/namespaces/keep/configmaps");

    server.stop_graceful();
    server.restart();

    let cm = parse(&server.kubectl_ok(&["get", "cm", "cm", "-n", "keep", "-o", "json"]));
    assert_eq!(cm["data"], json!({"k": "v"}));
    assert_eq!(cm["metadata"]["uid"], cm_before["metadata"]["uid"]);
    assert_eq!(
        cm["metadata"]["resourceVersion"],
        cm_before["metadata"]["resourceVersion"]
    );
    assert_eq!(
        server.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "keep",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
    assert_eq!(
        server
            .kubectl_ok(&["get", "cm", "-n", "keep", "-o", "name"])
            .trim(),
        "configmap/cm"
    );
    // The resourceVersion clock carries on from where it was.
    let list = server_object(&server, "/api/v1/namespaces/keep/configmaps");
    let rv = |v: &Value| -> u64 {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(rv(&list) >= rv(&list_before), "{list} vs {list_before}");
    server.kubectl_ok(&["label", "cm", "cm", "-n", "keep", "more=1"]);
    let after = server_object(&server, &cm_path("keep", "cm"));
    assert!(rv(&after) > rv(&list_before));
}

#[test]
fn embedded_every_acknowledged_write_survives_kill_9() {
    let data = tempfile::tempdir().expect("data dir");
    let mut server = Kubecache::start_with(Storage::DataDir(data.path().to_path_buf()));
    create_namespace(&server, "crash");

    // ~50 writes, alternating kubectl and plain HTTP: creates, updates and deletes. After
    // each acknowledged write, `expected` holds what the server must have: name -> (data,
    // resourceVersion) or absent.
    let mut expected: std::collections::BTreeMap<String, (Value, String)> = Default::default();
    let mut deleted: Vec<String> = Vec::new();
    for i in 0..50u32 {
        let via_http = i % 2 == 1;
        if i % 10 == 7 {
            // Delete the most recent object created.
            let name = format!("cm-{}", i - 1);
            if via_http {
                let (status, body) = server.http("DELETE", &cm_path("crash", &name), None, None);
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            } else {
                server.kubectl_ok(&["delete", "cm", &name, "-n", "crash", "--wait=false"]);
            }
            expected.remove(&name);
            deleted.push(name);
        } else if i % 5 == 4 {
            // Update an earlier object.
            let name = format!("cm-{}", i - 4);
            let patch = json!({"data": {"updated": i.to_string()}}).to_string();
            let rv = if via_http {
                let (status, body) = server.http(
                    "PATCH",
                    &cm_path("crash", &name),
                    Some("application/merge-patch+json"),
                    Some(patch.as_bytes()),
                );
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                parse(&String::from_utf8_lossy(&body))["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string()
            } else {
                server.kubectl_ok(&[
                    "patch",
                    "cm",
                    &name,
                    "-n",
                    "crash",
                    "--type",
                    "merge",
                    "-p",
                    &patch,
                    "-o",
                    "jsonpath={.metadata.resourceVersion}",
                ])
            };
            let entry = expected.get_mut(&name).expect("updated object exists");
            entry.0["updated"] = json!(i.to_string());
            entry.1 = rv;
        } else {
            let name = format!("cm-{i}");
            let data = json!({"i": i.to_string()});
            let manifest =
                configmap_json("crash", &name, json!({"n": i.to_string()}), data.clone());
            let rv = if via_http {
                let (status, body) = server.http(
                    "POST",
                    "/api/v1/namespaces/crash/configmaps",
                    Some("application/json"),
                    Some(manifest.as_bytes()),
                );
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                parse(&String::from_utf8_lossy(&body))["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string()
            } else {
                let path = server.manifest("crash.json", &manifest);
                server.kubectl_ok(&[
                    "create",
                    "-f",
                    &path,
                    "-o",
                    "jsonpath={.metadata.resourceVersion}",
                ])
            };
            assert!(!rv.is_empty());
            expected.insert(name, (data, rv));
        }
    }
    // SIGKILL right after the last acknowledgement.
    server.kill9();
    server.restart();

    let list = server_object(&server, "/api/v1/namespaces/crash/configmaps");
    let items = list["items"].as_array().unwrap();
    let found: std::collections::BTreeMap<String, (Value, String)> = items
        .iter()
        .map(|item| {
            (
                item["metadata"]["name"].as_str().unwrap().to_string(),
                (
                    item["data"].clone(),
                    item["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(
        found,
        expected,
        "after kill -9; server log:\n{}",
        server.log()
    );
    for name in &deleted {
        let (status, _) = server.get_json(&cm_path("crash", name));
        assert_eq!(status, 404, "{name} was deleted before the crash");
    }
    // kubectl sees the same, and the server takes writes again.
    let names = server.kubectl_ok(&["get", "cm", "-n", "crash", "-o", "name"]);
    assert_eq!(lines(&names).len(), expected.len());
    server.kubectl_ok(&["label", "cm", "cm-0", "-n", "crash", "after=crash"]);
    let cm = server_object(&server, &cm_path("crash", "cm-0"));
    assert_eq!(cm["metadata"]["labels"]["after"], "crash");
    let last_rv: u64 = expected
        .values()
        .map(|(_, rv)| rv.parse::<u64>().unwrap())
        .max()
        .unwrap();
    let new_rv: u64 = cm["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        new_rv > last_rv,
        "resourceVersion went back: {new_rv} <= {last_rv}"
    );
}

/// The request paths (without query) of kubectl's `-v=6` GET log lines.
fn logged_get_paths(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains("verb=\"GET\""))
        .filter_map(|line| {
            let url = line.split("url=\"").nth(1)?.split('"').next()?;
            let path = url.split_once("://").map_or(url, |(_, rest)| {
                rest.find('/').map_or("/", |slash| &rest[slash..])
            });
            Some(path.split('?').next().unwrap_or(path).to_string())
        })
        .collect()
}

#[test]
fn api_resources_uses_aggregated_discovery() {
    let server = Kubecache::start();
    // A fresh server has a fresh --cache-dir: kubectl must discover over HTTP.
    let output = server.kubectl(&["api-resources", "-v=6"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let deployments = lines(&out)
        .into_iter()
        .find(|line| line.split_whitespace().next() == Some("deployments"))
        .unwrap_or_else(|| panic!("no deployments in:\n{out}"));
    let columns: Vec<&str> = deployments.split_whitespace().collect();
    assert_eq!(
        columns,
        ["deployments", "deploy", "apps/v1", "true", "Deployment"],
        "{out}"
    );
    assert!(
        lines(&out).iter().any(|line| line.starts_with("pods ")),
        "{out}"
    );

    let log = stderr(&output);
    // kubectl fetches both concurrently: compare in sorted order.
    let mut discovery: Vec<String> = logged_get_paths(&log)
        .into_iter()
        .filter(|path| {
            path == "/api"
                || path == "/apis"
                || path.starts_with("/api/")
                || path.starts_with("/apis/")
        })
        .collect();
    discovery.sort();
    assert_eq!(
        discovery,
        ["/api", "/apis"],
        "discovery should be the two aggregated requests:\n{log}"
    );
}

#[test]
fn get_prints_server_side_tables() {
    let server = Kubecache::start();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.25"}]},
    });
    assert_eq!(
        create(&server, "pod.json", &pod.to_string()).trim(),
        "pod/web-0 created"
    );
    let header_of = |out: &str| -> Vec<String> {
        let header = lines(out).first().copied().unwrap_or("").to_string();
        header.split_whitespace().map(str::to_string).collect()
    };

    // The server's Table: its columns, not just NAME and AGE.
    let out = server.kubectl_ok(&["get", "pods"]);
    assert_eq!(
        header_of(&out),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = lines(&out)[1].split_whitespace().collect();
    assert_eq!(row[..4], ["web-0", "0/1", "Pending", "0"], "{out}");

    // -o wide adds the priority-1 columns.
    let out = server.kubectl_ok(&["get", "pods", "-o", "wide"]);
    let header = header_of(&out);
    assert_eq!(header[..3], ["NAME", "READY", "STATUS"], "{out}");
    for column in ["IP", "NODE", "NOMINATED", "READINESS"] {
        assert!(header.iter().any(|c| c == column), "{column} in {out}");
    }

    // Across namespaces kubectl adds NAMESPACE from each row's object.
    create_namespace(&server, "shop");
    create(
        &server,
        "cm.json",
        &configmap_json("shop", "settings", json!({}), json!({"a": "1", "b": "2"})),
    );
    let out = server.kubectl_ok(&["get", "cm", "-A"]);
    assert_eq!(
        header_of(&out),
        ["NAMESPACE", "NAME", "DATA", "AGE"],
        "{out}"
    );
    let row = lines(&out)
        .into_iter()
        .find(|line| line.contains("settings"))
        .unwrap_or_else(|| panic!("no settings row in:\n{out}"));
    let row: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(row[..3], ["shop", "settings", "2"], "{out}");
}
