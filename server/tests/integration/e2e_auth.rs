//! End to end: `kubectl auth can-i`, `auth can-i --list`, `auth whoami` and access reviews
//! sent with `kubectl create -f` / `create --raw` against the real binary run with
//! `--authorization-mode RBAC`, in memory and on a real etcd.
//!
//! Over the insecure port kubectl is `system:unsecured` (in `system:masters`), so its own
//! reviews are allowed; what another user may do is asked with SubjectAccessReviews, whose
//! answer changes as RoleBindings are created and deleted (no restart).

use crate::support;

use std::time::{Duration, Instant};

use kubecache_storage::testing::TestEtcd;
use serde_json::{Value, json};
use support::binary::{Kubecache, Storage};

/// How long a policy change may take to show in a review before the test fails.
const PROPAGATION: Duration = Duration::from_secs(20);

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

const SAR: &str = r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
  "spec": {"user": "alice", "groups": ["system:authenticated"],
           "resourceAttributes": {"namespace": "default", "verb": "create", "group": "apps", "resource": "deployments"}}}"#;

const POLICY: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: alice-edit
  namespace: default
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: edit
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: alice
";

/// The status of alice's review, asked with `kubectl create -f … -o json`.
fn alice_review(server: &Kubecache, manifest: &str) -> Value {
    let out = server.kubectl_ok(&["create", "-f", manifest, "-o", "json", "--validate=false"]);
    parse(&out)["status"].clone()
}

fn until_review(server: &Kubecache, manifest: &str, allowed: bool) -> Value {
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let status = alice_review(server, manifest);
        if status["allowed"] == allowed {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "review never became allowed={allowed}: {status}\nlog:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn can_i(storage: Storage) {
    let server = Kubecache::start_with_args(storage, &["--authorization-mode", "RBAC"]);

    // kubectl's own questions (protobuf SelfSubjectAccessReview / RulesReview / Review).
    assert_eq!(
        server.kubectl_ok(&["auth", "can-i", "list", "pods"]).trim(),
        "yes"
    );
    assert_eq!(
        server
            .kubectl_ok(&["auth", "can-i", "delete", "nodes", "--all-namespaces"])
            .trim(),
        "yes"
    );
    assert_eq!(
        server
            .kubectl_ok(&["auth", "can-i", "get", "/logs/x"])
            .trim(),
        "yes"
    );
    let list = server.kubectl_ok(&["auth", "can-i", "--list", "-n", "default"]);
    let first_rules: Vec<&str> = list.lines().skip(1).take(2).collect();
    assert!(first_rules[0].starts_with("*.*"), "{list}");
    assert!(first_rules[1].contains("[*]"), "{list}");
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    let whoami = parse(&server.kubectl_ok(&["auth", "whoami", "-o", "json"]));
    assert_eq!(whoami["status"]["userInfo"]["username"], "system:unsecured");
    assert_eq!(
        whoami["status"]["userInfo"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );

    // The review resources are discoverable.
    let names = server.kubectl_ok(&[
        "api-resources",
        "--api-group=authorization.k8s.io",
        "-o",
        "name",
    ]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "localsubjectaccessreviews.authorization.k8s.io",
            "selfsubjectaccessreviews.authorization.k8s.io",
            "selfsubjectrulesreviews.authorization.k8s.io",
            "subjectaccessreviews.authorization.k8s.io",
        ]
    );

    // The bootstrap policy is there.
    let roles = server.kubectl_ok(&["get", "clusterroles", "-o", "name"]);
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
    ] {
        assert!(
            roles
                .lines()
                .any(|l| l == format!("clusterrole.rbac.authorization.k8s.io/{role}")),
            "{roles}"
        );
    }

    // What alice may do, asked with SubjectAccessReviews, follows the stored policy.
    let sar = server.manifest("sar.json", SAR);
    assert_eq!(alice_review(&server, &sar), json!({"allowed": false}));
    let policy = server.manifest("policy.yaml", POLICY);
    server.kubectl_ok(&["create", "-f", &policy, "--validate=false"]);
    let status = until_review(&server, &sar, true);
    assert_eq!(
        status["reason"],
        "RBAC: allowed by RoleBinding \"alice-edit/default\" of ClusterRole \"edit\" to User \"alice\""
    );
    let raw = server.kubectl_ok(&[
        "create",
        "--raw",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        "-f",
        &sar,
    ]);
    assert_eq!(parse(&raw)["status"]["allowed"], true);
    server.kubectl_ok(&["delete", "rolebinding", "alice-edit", "-n", "default"]);
    until_review(&server, &sar, false);
}

#[test]
fn can_i_in_memory() {
    can_i(Storage::Memory);
}

#[test]
fn can_i_on_etcd() {
    let etcd = TestEtcd::start();
    can_i(Storage::Etcd(etcd.endpoint()));
}

/// An unknown mode stops the server at startup with a message naming it.
#[test]
fn unknown_mode_is_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kubecache"))
        .args([
            "serve",
            "--insecure-port",
            "0",
            "--authorization-mode",
            "RBAC,Node",
        ])
        .output()
        .expect("run kubecache");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown authorization mode \"Node\""),
        "{stderr}"
    );
}
