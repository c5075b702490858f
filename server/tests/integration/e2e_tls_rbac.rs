//! End to end over TLS with RBAC: the real binary on its secure port with
//! `--authorization-mode RBAC`, `--token-auth-file` and `--client-ca-file`, driven by the real
//! kubectl with token users (alice, in `devs`) and client-certificate users (carol with O=ops,
//! root with O=system:masters): `auth can-i` (a namespaced Role via RoleBinding, then a
//! ClusterRoleBinding created live flips the answer), `auth can-i --list`, `auth whoami`, a
//! Forbidden `get`, and `--as` impersonation allowed for root and refused for alice. The
//! policy itself is written with imperative `kubectl create role|rolebinding|
//! clusterrolebinding` (protobuf bodies). In memory and on a real etcd.

use crate::support;

use std::process::Output;
use std::time::{Duration, Instant};

use kubecache_storage::testing::TestEtcd;
use support::secured::{Secured, stderr};

/// How long a policy change may take to reach the authorizer before the test fails.
const PROPAGATION: Duration = Duration::from_secs(20);

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `kubectl auth can-i` as `context`: Some(true) for "yes" (exit 0), Some(false) for "no"
/// (exit 1); None for an error (neither answer).
fn can_i(server: &Secured, context: &str, args: &[&str]) -> Option<bool> {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    let output = server.kubectl(context, &full);
    match (output.status.code(), stdout(&output).as_str()) {
        (Some(0), "yes") => Some(true),
        (Some(1), "no") => Some(false),
        _ => None,
    }
}

fn run(extra: &[&str]) {
    let mut args = vec!["--authorization-mode", "RBAC"];
    args.extend_from_slice(extra);
    let server = Secured::start(false, &args);

    // root (client certificate, O=system:masters) writes the policy.
    server.kubectl_ok("root", &["create", "namespace", "team"]);
    server.kubectl_ok(
        "root",
        &[
            "create",
            "role",
            "pod-reader",
            "-n",
            "team",
            "--verb=get,list",
            "--resource=pods",
        ],
    );
    server.kubectl_ok(
        "root",
        &[
            "create",
            "rolebinding",
            "alice-reads",
            "-n",
            "team",
            "--role=pod-reader",
            "--user=alice",
        ],
    );

    // alice (token): allowed in team by the RoleBinding, nowhere else.
    assert_eq!(
        can_i(&server, "alice", &["list", "pods", "-n", "team"]),
        Some(true),
        "{}",
        server.log()
    );
    assert_eq!(
        can_i(&server, "alice", &["list", "pods", "-n", "default"]),
        Some(false)
    );
    assert_eq!(
        can_i(&server, "alice", &["delete", "pods", "-n", "team"]),
        Some(false)
    );
    server.kubectl_ok("alice", &["get", "pods", "-n", "team"]);
    let forbidden = server.kubectl("alice", &["get", "pods", "-n", "default"]);
    assert!(!forbidden.status.success());
    assert!(
        stderr(&forbidden).contains(
            "Error from server (Forbidden): pods is forbidden: User \"alice\" cannot list \
             resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        stderr(&forbidden)
    );

    // can-i --list: the Role's rules in team (plus the bootstrap self-review rules).
    let list = server.kubectl_ok("alice", &["auth", "can-i", "--list", "-n", "team"]);
    let pods = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some("pods"))
        .unwrap_or_else(|| panic!("no pods rule in:\n{list}"));
    assert!(pods.contains("[get list]"), "{list}");
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    let list = server.kubectl_ok("alice", &["auth", "can-i", "--list", "-n", "default"]);
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().next() == Some("pods")),
        "{list}"
    );

    // whoami: the token user and the certificate users as authentication saw them.
    let alice = server.kubectl_ok("alice", &["auth", "whoami", "-o", "json"]);
    let alice: serde_json::Value = serde_json::from_str(&alice).unwrap();
    assert_eq!(alice["status"]["userInfo"]["username"], "alice");
    assert_eq!(alice["status"]["userInfo"]["uid"], "uid-alice");
    let groups = alice["status"]["userInfo"]["groups"].to_string();
    assert!(
        groups.contains("devs") && groups.contains("system:authenticated"),
        "{groups}"
    );
    let carol = server.kubectl_ok("carol", &["auth", "whoami"]);
    assert!(carol.contains("carol") && carol.contains("ops"), "{carol}");
    let root = server.kubectl_ok("root", &["auth", "whoami"]);
    assert!(root.contains("system:masters"), "{root}");

    // The certificate user without bindings is denied.
    assert_eq!(
        can_i(&server, "carol", &["list", "pods", "-n", "team"]),
        Some(false)
    );

    // Impersonation: root (system:masters) may ask as alice and gets alice's answers; alice
    // may not impersonate root.
    assert_eq!(
        can_i(
            &server,
            "root",
            &["list", "pods", "-n", "team", "--as", "alice"]
        ),
        Some(true)
    );
    assert_eq!(
        can_i(
            &server,
            "root",
            &["list", "pods", "-n", "default", "--as", "alice"]
        ),
        Some(false)
    );
    let refused = server.kubectl(
        "alice",
        &[
            "auth", "can-i", "list", "pods", "-n", "team", "--as", "root",
        ],
    );
    assert!(!refused.status.success());
    assert_ne!(stdout(&refused), "yes");
    assert!(
        stderr(&refused).contains("cannot impersonate resource \"users\""),
        "{}",
        stderr(&refused)
    );

    // A ClusterRoleBinding created live flips alice's answer in default, no restart; the
    // group binding does the same for the certificate user.
    server.kubectl_ok(
        "root",
        &[
            "create",
            "clusterrolebinding",
            "alice-view",
            "--clusterrole=view",
            "--user=alice",
        ],
    );
    server.kubectl_ok(
        "root",
        &[
            "create",
            "clusterrolebinding",
            "ops-view",
            "--clusterrole=view",
            "--group=ops",
        ],
    );
    let deadline = Instant::now() + PROPAGATION;
    while can_i(&server, "alice", &["list", "pods", "-n", "default"]) != Some(true) {
        assert!(
            Instant::now() < deadline,
            "the ClusterRoleBinding never reached alice; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.kubectl_ok("alice", &["get", "pods", "-n", "default"]);
    let deadline = Instant::now() + PROPAGATION;
    while can_i(&server, "carol", &["list", "pods", "-n", "default"]) != Some(true) {
        assert!(
            Instant::now() < deadline,
            "the group ClusterRoleBinding never reached carol; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // view does not grant delete.
    assert_eq!(
        can_i(&server, "alice", &["delete", "pods", "-n", "default"]),
        Some(false)
    );
}

#[test]
fn kubectl_tls_rbac_in_memory() {
    run(&[]);
}

#[test]
fn kubectl_tls_rbac_on_etcd() {
    let etcd = TestEtcd::start();
    let endpoint = etcd.endpoint();
    run(&["--etcd-servers", &endpoint]);
}
