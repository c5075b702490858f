//! End to end: the real `kubectl` against the `kubecache` binary with OpenAPI v3 served —
//! `apply -f` and `create -f` with kubectl's DEFAULT validation (no `--validate=false`):
//! kubectl reads `/openapi/v3`, finds the `fieldValidation` parameter on the kind's patch
//! operation and leaves validation to the server (`fieldValidation=Strict`), so an unknown
//! field comes back as the server's strict decoding error; a `kind: List` manifest, which
//! kubectl validates itself against `/openapi/v2`; and `kubectl explain`, which renders the
//! component schemas. Each scenario runs on the embedded store and on a real etcd.

use crate::support;

use kubecache_storage::testing::TestEtcd;
use support::binary::{Kubecache, Storage};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

const NAMESPACE: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: oa
";

fn deployment(sidecar: bool) -> String {
    let mut text = String::from(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: oa
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: main
        image: nginx:1.25
",
    );
    if sidecar {
        text.push_str(
            "      - name: sidecar
        image: busybox:1.36
",
        );
    }
    text
}

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: oa
data:
  mode: fast
";

const UNKNOWN_FIELD: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: bogus
  namespace: oa
data:
  a: b
bogus: 1
";

fn list(unknown_field: bool) -> String {
    let extra = if unknown_field { "\n  bogus: 1" } else { "" };
    format!(
        "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {{name: listed, namespace: oa}}
  data: {{a: b}}{extra}
- apiVersion: batch/v1
  kind: Job
  metadata: {{name: listed, namespace: oa}}
  spec:
    template:
      spec:
        restartPolicy: Never
        containers: [{{name: c, image: busybox:1.36}}]
"
    )
}

/// `apply -f` and `create -f` with default validation: created, configured, and an
/// unknown field rejected by the server's strict validation.
fn default_validation(server: &Kubecache) {
    let ns = server.manifest("ns.yaml", NAMESPACE);
    let out = server.kubectl_ok(&["apply", "-f", &ns]);
    assert_eq!(out.trim(), "namespace/oa created");

    // kubectl asks for the document, then sends the object for strict server-side
    // validation (kubectl 1.33 validates client-side only what the server cannot: Lists).
    let web = server.manifest("web.yaml", &deployment(true));
    let output = server.kubectl(&["apply", "-f", &web, "-v=6"]);
    let log = stderr(&output);
    assert!(output.status.success(), "apply failed:\n{log}");
    assert_eq!(stdout(&output).trim(), "deployment.apps/web created");
    assert!(log.contains("/openapi/v3/apis/apps/v1?hash="), "{log}");
    assert!(
        log.contains("fieldManager=kubectl-client-side-apply&fieldValidation=Strict"),
        "{log}"
    );
    assert!(!log.contains("/openapi/v2"), "{log}");

    // Applied again without the sidecar: configured, the sidecar gone.
    let web = server.manifest("web.yaml", &deployment(false));
    let out = server.kubectl_ok(&["apply", "-f", &web]);
    assert_eq!(out.trim(), "deployment.apps/web configured");
    let (status, object) = server.get_json("/apis/apps/v1/namespaces/oa/deployments/web");
    assert_eq!(status, 200, "{object}");
    let names: Vec<&str> = object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main"]);

    let cm = server.manifest("cm.yaml", CONFIGMAP);
    let out = server.kubectl_ok(&["create", "-f", &cm]);
    assert_eq!(out.trim(), "configmap/settings created");
    let (status, object) = server.get_json("/api/v1/namespaces/oa/configmaps/settings");
    assert_eq!(status, 200);
    assert_eq!(object["data"]["mode"], "fast");

    // An unknown field: the server's strict decoding error, nothing written.
    let bad = server.manifest("bad.yaml", UNKNOWN_FIELD);
    for verb in ["apply", "create"] {
        let output = server.kubectl(&[verb, "-f", &bad]);
        assert!(!output.status.success(), "{verb} accepted an unknown field");
        let err = stderr(&output);
        assert!(
            err.contains("Error from server (BadRequest)"),
            "{verb}: {err}"
        );
        assert!(
            err.contains("strict decoding error: unknown field \"bogus\""),
            "{verb}: {err}"
        );
    }
    let (status, _) = server.get_json("/api/v1/namespaces/oa/configmaps/bogus");
    assert_eq!(status, 404);

    // A List is validated by kubectl itself, against /openapi/v2.
    let bad = server.manifest("bad-list.yaml", &list(true));
    for verb in ["apply", "create"] {
        let output = server.kubectl(&[verb, "-f", &bad]);
        assert!(!output.status.success(), "{verb} accepted an unknown field");
        let err = stderr(&output);
        assert!(
            err.contains(
                "ValidationError(ConfigMap): unknown field \"bogus\" in io.k8s.api.core.v1.ConfigMap"
            ),
            "{verb}: {err}"
        );
    }
    let (status, _) = server.get_json("/api/v1/namespaces/oa/configmaps/listed");
    assert_eq!(status, 404);
    let good = server.manifest("list.yaml", &list(false));
    let out = server.kubectl_ok(&["apply", "-f", &good]);
    assert_eq!(
        out.trim(),
        "configmap/listed created\njob.batch/listed created"
    );
    let (status, _) = server.get_json("/apis/batch/v1/namespaces/oa/jobs/listed");
    assert_eq!(status, 200);
}

/// `kubectl explain` prints the field documentation from the component schemas.
fn explain(server: &Kubecache) {
    let out = server.kubectl_ok(&["explain", "pod.spec.containers"]);
    assert!(
        out.starts_with("KIND:       Pod\nVERSION:    v1\n"),
        "{out}"
    );
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
    // The field's own description, then its type's.
    assert!(
        out.contains("List of containers belonging to the pod. Containers cannot currently be"),
        "{out}"
    );
    assert!(
        out.contains("A single application container that you want to run within a pod."),
        "{out}"
    );
    assert!(out.contains("\n  name\t<string> -required-\n"), "{out}");
    assert!(out.contains("\n  image\t<string>\n"), "{out}");
    assert!(out.contains("\n  ports\t<[]ContainerPort>\n"), "{out}");
    assert!(
        out.contains("\n  resources\t<ResourceRequirements>\n"),
        "{out}"
    );

    let out = server.kubectl_ok(&["explain", "deployment.spec", "--recursive"]);
    assert!(
        out.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n"),
        "{out}"
    );
    assert!(out.contains("FIELD: spec <DeploymentSpec>"), "{out}");
    assert!(
        out.contains("\n  selector\t<LabelSelector> -required-\n"),
        "{out}"
    );
    assert!(
        out.contains("\n  template\t<PodTemplateSpec> -required-\n"),
        "{out}"
    );
    assert!(
        out.contains("\n      containers\t<[]Container> -required-\n"),
        "{out}"
    );
    assert!(out.contains("\n      maxSurge\t<IntOrString>\n"), "{out}");

    let out = server.kubectl_ok(&["explain", "svc"]);
    assert!(
        out.starts_with("KIND:       Service\nVERSION:    v1\n"),
        "{out}"
    );
    assert!(out.contains("\n  spec\t<ServiceSpec>\n"), "{out}");
    assert!(out.contains("\n  metadata\t<ObjectMeta>\n"), "{out}");

    let out = server.kubectl_ok(&["explain", "pod.spec.containers.resources.limits"]);
    assert!(out.contains("FIELD: limits <map[string]Quantity>"), "{out}");

    // A field that does not exist: kubectl's own error.
    let output = server.kubectl(&["explain", "pod.spec.nonsense"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("field \"nonsense\" does not exist"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn default_validation_on_the_embedded_store() {
    let server = Kubecache::start();
    default_validation(&server);
}

#[test]
fn default_validation_on_etcd() {
    let etcd = TestEtcd::start();
    let server = Kubecache::start_with(Storage::Etcd(etcd.endpoint()));
    default_validation(&server);
}

#[test]
fn explain_on_the_embedded_store() {
    let server = Kubecache::start();
    explain(&server);
}

#[test]
fn explain_on_etcd() {
    let etcd = TestEtcd::start();
    let server = Kubecache::start_with(Storage::Etcd(etcd.endpoint()));
    explain(&server);
}
