//! The kubectl client suite: read, discovery and lifecycle commands of the real `kubectl`
//! (/usr/bin/kubectl) against the real `kubecache` binary, each test run on the embedded
//! store (`embedded::NAME`) and on a real etcd (`etcd_store::NAME`).
//!
//! Covered here: `api-versions`, `get -A`, `get -o yaml|wide`, `describe` (pod, deployment,
//! namespace), `diff` (unchanged, changed, new — nothing written), `delete --wait` (with a
//! finalizer removed meanwhile, and without), `wait --for=delete`, and `get --raw` of
//! `/healthz`, `/version` and a pod list, `replace -f` (and its Conflict), and
//! `--dry-run=server` on create and delete. Creation, apply, patch, label, scale and watch are
//! in e2e_kubectl.rs; imperative `create`, `apply --server-side` and `explain` belong to the
//! protobuf, merge and OpenAPI suites.

use crate::support;

use std::process::Child;

use kubecache_storage::testing::TestEtcd;
use serde_json::{Value, json};
use support::binary::{Kubecache, Storage, run_bounded, wait_timeout};
use support::kubectl::{
    WAIT, create, header, lines, parse, server_object, stderr, stdout, wait_gone, wait_until,
};

fn namespace_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
}

fn pod_yaml(namespace: &str, name: &str, app: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    app: {app}
spec:
  containers:
  - name: main
    image: nginx:1.25
    ports:
    - containerPort: 80
"
    )
}

fn deployment_yaml(namespace: &str, name: &str, replicas: u32, image: &str) -> String {
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
        image: {image}
"
    )
}

fn configmap_yaml(namespace: &str, name: &str, color: &str, finalizer: bool) -> String {
    let finalizers = if finalizer {
        "  finalizers:\n  - example.com/hold\n"
    } else {
        ""
    };
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: {namespace}
{finalizers}data:
  color: {color}
"
    )
}

fn create_namespace(server: &Kubecache, name: &str) {
    let out = create(server, &format!("ns-{name}.yaml"), &namespace_yaml(name));
    assert_eq!(out.trim(), format!("namespace/{name} created"));
}

/// Spawns kubectl without waiting for it (output collected when it is reaped).
fn spawn_kubectl(server: &Kubecache, args: &[&str]) -> Child {
    let mut command = server.kubectl_command(args);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn kubectl {args:?}: {e}"))
}

/// Waits (bounded) for a spawned kubectl and returns its output.
fn reap(child: Child, what: &str) -> std::process::Output {
    let mut child = child;
    if wait_timeout(&mut child, WAIT).is_none() {
        let _ = child.kill();
        let output = child.wait_with_output().expect("collect kubectl output");
        panic!(
            "{what}: kubectl still running after {WAIT:?}\nstdout: {}\nstderr: {}",
            stdout(&output),
            stderr(&output)
        );
    }
    child.wait_with_output().expect("collect kubectl output")
}

/// A merge patch straight to the server (not through kubectl), asserting 200.
fn merge_patch(server: &Kubecache, path: &str, patch: Value) -> Value {
    let body = patch.to_string();
    let (status, reply) = server.http(
        "PATCH",
        path,
        Some("application/merge-patch+json"),
        Some(body.as_bytes()),
    );
    let reply: Value = serde_json::from_slice(&reply).expect("a JSON reply");
    assert_eq!(status, 200, "PATCH {path}: {reply}");
    reply
}

fn discovery_and_raw(server: &Kubecache) {
    // api-versions: exactly the group versions of /api and /apis.
    let out = server.kubectl_ok(&["api-versions"]);
    let listed: Vec<&str> = lines(&out);
    let mut expected = vec!["v1".to_string()];
    let groups = server_object(server, "/apis");
    for group in groups["groups"].as_array().expect("groups") {
        for version in group["versions"].as_array().expect("versions") {
            expected.push(version["groupVersion"].as_str().unwrap().to_string());
        }
    }
    expected.sort();
    let mut sorted: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(sorted, expected, "{out}");
    for must in ["v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1"] {
        assert!(listed.contains(&must), "{must} missing:\n{out}");
    }

    // --raw, no discovery involved.
    assert_eq!(server.kubectl_ok(&["get", "--raw", "/healthz"]), "ok");
    let version = parse(&server.kubectl_ok(&["get", "--raw", "/version"]));
    assert_eq!(version["major"], "1");
    assert_eq!(version["minor"], "33");
    assert_eq!(version, server_object(server, "/version"));

    create(server, "pod.yaml", &pod_yaml("default", "raw-0", "raw"));
    let pods = parse(&server.kubectl_ok(&["get", "--raw", "/api/v1/namespaces/default/pods"]));
    assert_eq!(pods["kind"], "PodList");
    assert_eq!(pods["apiVersion"], "v1");
    let names: Vec<&str> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["raw-0"]);
    assert!(pods["metadata"]["resourceVersion"].as_str().is_some());

    // An error through --raw is the server's Status, and kubectl exits 1.
    let missing = server.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/nope"]);
    assert_eq!(missing.status.code(), Some(1), "{}", stdout(&missing));
    assert!(
        stderr(&missing).contains("NotFound"),
        "{}",
        stderr(&missing)
    );
}

fn get_all_namespaces_yaml_and_wide(server: &Kubecache) {
    create_namespace(server, "shop");
    create_namespace(server, "blog");
    create(server, "p1.yaml", &pod_yaml("shop", "cart-0", "cart"));
    create(server, "p2.yaml", &pod_yaml("blog", "posts-0", "posts"));
    create(
        server,
        "d1.yaml",
        &deployment_yaml("shop", "cart", 2, "nginx:1.25"),
    );

    // -A: a NAMESPACE column, rows from every namespace.
    let out = server.kubectl_ok(&["get", "pods", "-A"]);
    assert_eq!(
        header(&out),
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    let rows: Vec<Vec<&str>> = lines(&out)[1..]
        .iter()
        .map(|line| line.split_whitespace().collect())
        .collect();
    let mut pairs: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    pairs.sort();
    assert_eq!(pairs, [("blog", "posts-0"), ("shop", "cart-0")], "{out}");
    assert!(
        rows.iter().all(|r| r[2] == "0/1" && r[3] == "Pending"),
        "{out}"
    );
    let out = server.kubectl_ok(&["get", "deployments", "--all-namespaces"]);
    assert_eq!(
        header(&out),
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE"
        ],
        "{out}"
    );
    assert_eq!(
        lines(&out)[1].split_whitespace().collect::<Vec<_>>()[..3],
        ["shop", "cart", "0/2"]
    );

    // -o wide: the priority-1 columns.
    let out = server.kubectl_ok(&["get", "deployments", "-n", "shop", "-o", "wide"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ],
        "{out}"
    );
    let row: Vec<&str> = lines(&out)[1].split_whitespace().collect();
    assert_eq!(row[0], "cart");
    assert_eq!(row[5..], ["main", "nginx:1.25", "app=cart"], "{out}");
    let out = server.kubectl_ok(&["get", "pods", "-A", "-o", "wide"]);
    let columns = header(&out);
    assert_eq!(columns[..2], ["NAMESPACE", "NAME"], "{out}");
    for column in ["IP", "NODE", "NOMINATED", "READINESS"] {
        assert!(columns.iter().any(|c| c == column), "{column} in {out}");
    }

    // -o yaml: the stored object, field for field.
    let stored = server_object(server, "/api/v1/namespaces/shop/pods/cart-0");
    let out = server.kubectl_ok(&["get", "pod", "cart-0", "-n", "shop", "-o", "yaml"]);
    let yaml = lines(&out);
    for line in [
        "apiVersion: v1".to_string(),
        "kind: Pod".to_string(),
        "  name: cart-0".to_string(),
        "  namespace: shop".to_string(),
        format!(
            "  resourceVersion: \"{}\"",
            stored["metadata"]["resourceVersion"].as_str().unwrap()
        ),
        format!("  uid: {}", stored["metadata"]["uid"].as_str().unwrap()),
        "    app: cart".to_string(),
        "  - image: nginx:1.25".to_string(),
        "  phase: Pending".to_string(),
    ] {
        assert!(yaml.contains(&line.as_str()), "{line:?} missing in:\n{out}");
    }
    // A list across namespaces is a v1 List.
    let out = server.kubectl_ok(&["get", "pods", "-A", "-o", "yaml"]);
    assert!(out.starts_with("apiVersion: v1\nitems:\n"), "{out}");
    assert!(out.contains("\nkind: List\n"), "{out}");
    assert_eq!(out.matches("\n  kind: Pod\n").count(), 2, "{out}");
}

/// `kubectl describe` output: every `section` line must start a line. Runs of spaces inside a
/// line are compared as one, since describe aligns its columns to the longest label present.
fn assert_sections(out: &str, sections: &[&str]) {
    for section in sections {
        let section = squeeze(section);
        assert!(
            out.lines().any(|line| squeeze(line).starts_with(&section)),
            "no line starting with {section:?} in:\n{out}"
        );
    }
}

/// The line with its indentation kept and every inner run of whitespace made one space.
fn squeeze(line: &str) -> String {
    let indent = line.len() - line.trim_start().len();
    format!(
        "{}{}",
        &line[..indent],
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

fn describe_pod_deployment_namespace(server: &Kubecache) {
    create_namespace(server, "desc");
    create(server, "pod.yaml", &pod_yaml("desc", "web-0", "web"));
    create(
        server,
        "deploy.yaml",
        &deployment_yaml("desc", "web", 3, "nginx:1.26"),
    );

    let out = server.kubectl_ok(&["describe", "pod", "web-0", "-n", "desc"]);
    assert_sections(
        &out,
        &[
            "Name:         web-0",
            "Namespace:    desc",
            "Labels:       app=web",
            "Status:       Pending",
            "Containers:",
            "  main:",
            "Volumes:",
            "QoS Class:        BestEffort",
            "Events:",
        ],
    );
    // The port's protocol is defaulted to TCP by admission, as kube-apiserver does.
    assert_sections(&out, &["    Image: nginx:1.25", "    Port: 80/TCP"]);

    let out = server.kubectl_ok(&["describe", "deployment", "web", "-n", "desc"]);
    assert_sections(
        &out,
        &[
            "Name:               web",
            "Namespace:          desc",
            "CreationTimestamp:",
            "Labels:             app=web",
            "Selector:           app=web",
            "Replicas:           3 desired",
            "Pod Template:",
            "  Containers:",
            "Events:",
        ],
    );
    assert_sections(
        &out,
        &["    Image: nginx:1.26", "StrategyType: RollingUpdate"],
    );

    // By label selector, several objects are described one after the other.
    let out = server.kubectl_ok(&["describe", "pods", "-n", "desc", "-l", "app=web"]);
    assert_eq!(out.matches("\nNamespace:").count(), 1, "{out}");

    let out = server.kubectl_ok(&["describe", "namespace", "desc"]);
    assert_sections(
        &out,
        &[
            "Name:         desc",
            "Labels:       kubernetes.io/metadata.name=desc",
            "Status:       Active",
        ],
    );
    let missing = server.kubectl(&["describe", "pod", "nope", "-n", "desc"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("pods \"nope\" not found"),
        "{}",
        stderr(&missing)
    );
}

fn diff_shows_changes_and_writes_nothing(server: &Kubecache) {
    create_namespace(server, "diff");
    let deploy = deployment_yaml("diff", "web", 2, "nginx:1.25");
    create(server, "deploy.yaml", &deploy);
    create(
        server,
        "cm.yaml",
        &configmap_yaml("diff", "settings", "blue", false),
    );
    let path = "/apis/apps/v1/namespaces/diff/deployments/web";
    let before = server_object(server, path);

    // Unchanged manifests: exit 0, no output.
    let same = server.manifest("same.yaml", &deploy);
    let out = server.kubectl(&["diff", "-f", &same]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    // Changed: exit 1 and a unified diff of the live and the dry-run-merged objects.
    let changed = server.manifest(
        "changed.yaml",
        &format!(
            "{}---\n{}",
            deployment_yaml("diff", "web", 3, "nginx:1.26"),
            configmap_yaml("diff", "settings", "green", false)
        ),
    );
    let out = server.kubectl(&["diff", "-f", &changed]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "-  replicas: 2",
        "+  replicas: 3",
        "-      - image: nginx:1.25",
        "+      - image: nginx:1.26",
        "-  color: blue",
        "+  color: green",
        "-  generation: 1",
        "+  generation: 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in:\n{text}"
        );
    }
    assert!(text.contains("apps.v1.Deployment.diff.web"), "{text}");
    assert!(text.contains("v1.ConfigMap.diff.settings"), "{text}");

    // A new object: shown as created, not created.
    let new = server.manifest("new.yaml", &configmap_yaml("diff", "fresh", "red", false));
    let out = server.kubectl(&["diff", "-f", &new]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(
        stdout(&out).lines().any(|l| l == "+  name: fresh"),
        "{}",
        stdout(&out)
    );

    // Nothing was written.
    let after = server_object(server, path);
    assert_eq!(after, before);
    let cm = server_object(server, "/api/v1/namespaces/diff/configmaps/settings");
    assert_eq!(cm["data"], json!({"color": "blue"}));
    let (status, _) = server.get_json("/api/v1/namespaces/diff/configmaps/fresh");
    assert_eq!(status, 404);
}

fn delete_waits_for_finalizers(server: &Kubecache) {
    create_namespace(server, "fin");
    create(
        server,
        "held.yaml",
        &configmap_yaml("fin", "held", "x", true),
    );
    let path = "/api/v1/namespaces/fin/configmaps/held";

    // `delete` (waiting is the default) blocks while a finalizer holds the object ...
    let child = spawn_kubectl(
        server,
        &[
            "delete",
            "configmap",
            "held",
            "-n",
            "fin",
            "--wait=true",
            "--timeout=60s",
        ],
    );
    let marked = wait_until("deletionTimestamp set", || {
        let object = server_object(server, path);
        object["metadata"]["deletionTimestamp"]
            .is_string()
            .then_some(object)
    });
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!(["example.com/hold"])
    );
    let mut child = child;
    assert!(
        child.try_wait().expect("poll kubectl").is_none(),
        "kubectl delete --wait returned while the finalizer still held the object"
    );
    // ... and returns once the finalizer is removed and the object is gone.
    merge_patch(server, path, json!({"metadata": {"finalizers": null}}));
    let out = reap(child, "delete --wait");
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "configmap \"held\" deleted");
    wait_gone(server, path);

    // Without a finalizer: deleted at once, for a deployment and a pod.
    create(
        server,
        "deploy.yaml",
        &deployment_yaml("fin", "web", 1, "nginx:1.25"),
    );
    create(server, "pod.yaml", &pod_yaml("fin", "web-0", "web"));
    let out = server.kubectl_ok(&[
        "delete",
        "deployment/web",
        "pod/web-0",
        "-n",
        "fin",
        "--wait",
        "--timeout=60s",
    ]);
    assert_eq!(
        lines(&out),
        ["deployment.apps \"web\" deleted", "pod \"web-0\" deleted"],
        "{out}"
    );
    for gone in [
        "/apis/apps/v1/namespaces/fin/deployments/web",
        "/api/v1/namespaces/fin/pods/web-0",
    ] {
        let (status, body) = server.get_json(gone);
        assert_eq!(status, 404, "{gone}: {body}");
    }

    // --wait=false returns at once, leaving the object marked.
    create(
        server,
        "held2.yaml",
        &configmap_yaml("fin", "held2", "x", true),
    );
    let out = server.kubectl_ok(&["delete", "configmap", "held2", "-n", "fin", "--wait=false"]);
    assert_eq!(out.trim(), "configmap \"held2\" deleted");
    let object = server_object(server, "/api/v1/namespaces/fin/configmaps/held2");
    assert!(
        object["metadata"]["deletionTimestamp"].is_string(),
        "{object}"
    );
}

/// Watches of configmaps open now (the watch cache's `apiserver_registered_watchers`).
fn configmap_watchers(server: &Kubecache) -> i64 {
    let metrics = server.kubectl_ok(&["get", "--raw", "/metrics"]);
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("apiserver_registered_watchers{")
                && line.contains("resource=\"configmaps\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<i64>().ok())
        .sum()
}

fn wait_for_delete(server: &Kubecache) {
    create_namespace(server, "wait");
    create(
        server,
        "held.yaml",
        &configmap_yaml("wait", "held", "x", true),
    );
    let path = "/api/v1/namespaces/wait/configmaps/held";

    let watching = configmap_watchers(server);
    let mut child = spawn_kubectl(
        server,
        &[
            "wait",
            "--for=delete",
            "configmap/held",
            "-n",
            "wait",
            "--timeout=60s",
        ],
    );
    // Delete only once kubectl watches: had it not read the object yet, it would find nothing
    // and report nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while configmap_watchers(server) <= watching {
        assert!(
            std::time::Instant::now() < deadline,
            "kubectl wait never watched"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = server.kubectl_ok(&["delete", "configmap", "held", "-n", "wait", "--wait=false"]);
    assert_eq!(out.trim(), "configmap \"held\" deleted");
    assert!(
        child.try_wait().expect("poll kubectl").is_none(),
        "kubectl wait --for=delete returned while the object existed"
    );
    merge_patch(server, path, json!({"metadata": {"finalizers": []}}));
    let out = reap(child, "wait --for=delete");
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "configmap/held condition met");
    wait_gone(server, path);

    // An object that is not there is already deleted.
    let out = run_bounded(
        server.kubectl_command(&[
            "wait",
            "--for=delete",
            "configmap/never",
            "-n",
            "wait",
            "--timeout=10s",
        ]),
        WAIT,
    );
    assert!(out.status.success(), "stderr: {}", stderr(&out));

    // A timeout while the object stays: exit 1 naming it.
    create(
        server,
        "stays.yaml",
        &configmap_yaml("wait", "stays", "x", false),
    );
    let out = run_bounded(
        server.kubectl_command(&[
            "wait",
            "--for=delete",
            "configmap/stays",
            "-n",
            "wait",
            "--timeout=1s",
        ]),
        WAIT,
    );
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(&out));
    assert!(
        stderr(&out).contains("timed out waiting"),
        "{}",
        stderr(&out)
    );
}

fn replace_and_server_side_dry_run(server: &Kubecache) {
    create_namespace(server, "rep");
    create(
        server,
        "deploy.yaml",
        &deployment_yaml("rep", "web", 1, "nginx:1.25"),
    );
    let path = "/apis/apps/v1/namespaces/rep/deployments/web";

    // replace -f of the live object (it carries its resourceVersion): a PUT.
    let live = server.kubectl_ok(&["get", "deployment", "web", "-n", "rep", "-o", "json"]);
    let mut edited = parse(&live);
    edited["spec"]["replicas"] = json!(4);
    let file = server.manifest("live.json", &edited.to_string());
    let out = server.kubectl_ok(&["replace", "-f", &file]);
    assert_eq!(out.trim(), "deployment.apps/web replaced");
    assert_eq!(server_object(server, path)["spec"]["replicas"], 4);
    // The same file again is stale: Conflict, exit 1.
    let stale = server.kubectl(&["replace", "-f", &file]);
    assert_eq!(stale.status.code(), Some(1), "{}", stdout(&stale));
    assert!(stderr(&stale).contains("Conflict"), "{}", stderr(&stale));

    // --dry-run=server: create and delete answer as if done; nothing changes.
    let before = server_object(server, path);
    let cm = server.manifest("cm.yaml", &configmap_yaml("rep", "dry", "x", false));
    let out = server.kubectl_ok(&["create", "-f", &cm, "--dry-run=server"]);
    assert_eq!(out.trim(), "configmap/dry created (server dry run)");
    let (status, _) = server.get_json("/api/v1/namespaces/rep/configmaps/dry");
    assert_eq!(status, 404);
    let out = server.kubectl_ok(&[
        "delete",
        "deployment",
        "web",
        "-n",
        "rep",
        "--dry-run=server",
    ]);
    assert_eq!(
        out.trim(),
        "deployment.apps \"web\" deleted (server dry run)"
    );
    assert_eq!(server_object(server, path), before);
}

/// Runs each test body against the binary in memory and on a real etcd.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Kubecache::start());
                }
            )*
        }
        mod etcd_store {
            $(
                #[test]
                fn $test() {
                    let etcd = super::TestEtcd::start();
                    let server = super::Kubecache::start_with(super::Storage::Etcd(etcd.endpoint()));
                    super::$test(&server);
                }
            )*
        }
    };
}

on_both_stores!(
    discovery_and_raw,
    get_all_namespaces_yaml_and_wide,
    describe_pod_deployment_namespace,
    diff_shows_changes_and_writes_nothing,
    delete_waits_for_finalizers,
    wait_for_delete,
    replace_and_server_side_dry_run,
);
