//! Authorization over a running server: RBAC evaluated live from the stored policy (objects
//! written over HTTP, decisions asked of the installed chain), the bootstrap policy across
//! restarts, ClusterRole aggregation, and the access review APIs over HTTP — on the embedded
//! store and on a real etcd.
//!
//! Changes reach the authorizer through the watch cache, like kube's informers: a test that
//! changes policy polls the decision until it flips, failing only after a generous deadline.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use kubecache_core::authz::{Attributes, Authorizer, Decision, UserInfo};
use kubecache_core::storage::Backend;
use kubecache_server::api::Api;
use kubecache_server::authz::{self, AuthorizationMode, Chain};
use kubecache_server::server::ReadConfig;
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use kubecache_storage::testing::TestEtcd;
use reqwest::Method;
use serde_json::{Value, json};
use support::server::TestServer;

/// How long a policy change may take to reach the authorizer before the test fails.
const PROPAGATION: Duration = Duration::from_secs(15);

struct Rig {
    server: TestServer,
    api: Arc<Api>,
    chain: Arc<Chain>,
}

async fn rig(backend: Arc<dyn Backend>, modes: &[AuthorizationMode]) -> Rig {
    let mut installed = None;
    let server = TestServer::start_configured(backend, ReadConfig::default(), |api| {
        installed = Some((api.clone(), authz::install(api, modes)));
    })
    .await;
    let (api, chain) = installed.expect("configured");
    Rig { server, api, chain }
}

async fn etcd_backend(etcd: &TestEtcd) -> Arc<dyn Backend> {
    Arc::new(
        EtcdBackend::connect(&[etcd.endpoint()], EtcdOptions::default())
            .await
            .expect("connect to etcd"),
    )
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..UserInfo::default()
    }
}

fn alice() -> UserInfo {
    user("alice", &["system:authenticated"])
}

fn can(
    user: UserInfo,
    verb: &str,
    group: &str,
    resource: &str,
    ns: &str,
    name: &str,
) -> Attributes {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    Attributes {
        user,
        verb: verb.into(),
        resource_request: true,
        namespace: ns.into(),
        api_group: group.into(),
        api_version: "v1".into(),
        resource: resource.into(),
        subresource: subresource.into(),
        name: name.into(),
        path: String::new(),
    }
}

fn can_get_url(user: UserInfo, path: &str) -> Attributes {
    Attributes {
        user,
        verb: "get".into(),
        path: path.into(),
        ..Attributes::default()
    }
}

/// Polls until the chain's answer on `attributes` is `allowed`.
async fn eventually(chain: &Chain, attributes: &Attributes, allowed: bool) {
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let decision = chain.authorize(attributes).await;
        if (decision == Decision::Allow) == allowed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected allowed={allowed} within {PROPAGATION:?}, still {decision:?} for {attributes:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls a GET until `check` accepts the body.
async fn eventually_get(server: &TestServer, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let reply = server.get(path).await;
        if reply.status == 200 && check(&reply.body) {
            return reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} never satisfied the check; last: {} {:#}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

fn cluster_role(name: &str, labels: Value, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
           "metadata": {"name": name, "labels": labels}, "rules": rules})
}

fn binding(
    kind: &str,
    ns: Option<&str>,
    name: &str,
    role_kind: &str,
    role: &str,
    subjects: Value,
) -> Value {
    let mut meta = json!({"name": name});
    if let Some(ns) = ns {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
           "subjects": subjects})
}

fn subject_user(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name})
}

fn subject_group(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name})
}

// ---------------------------------------------------------------------------------------
// The live RBAC matrix

async fn rbac_live(backend: Arc<dyn Backend>) {
    let Rig { server, chain, .. } = rig(backend, &[AuthorizationMode::Rbac]).await;
    server.create_namespace("dev").await;
    server.create_namespace("prod").await;

    // Roles and bindings of every kind, written through the API.
    server
        .post(
            &format!("{RBAC}/clusterroles"),
            &cluster_role(
                "pod-reader",
                json!({}),
                json!([{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}]),
            ),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("{RBAC}/clusterrolebindings"),
            &binding(
                "ClusterRoleBinding",
                None,
                "readers",
                "ClusterRole",
                "pod-reader",
                json!([subject_group("readers")]),
            ),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("{RBAC}/namespaces/dev/roles"),
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "app-config", "namespace": "dev"},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app"], "verbs": ["get", "list", "update"]},
                              {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["patch"]}]}),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("{RBAC}/namespaces/dev/rolebindings"),
            &binding(
                "RoleBinding",
                Some("dev"),
                "ci",
                "Role",
                "app-config",
                json!([{"kind": "ServiceAccount", "name": "ci"}]),
            ),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("{RBAC}/clusterroles"),
            &cluster_role(
                "urls",
                json!({}),
                json!([{"nonResourceURLs": ["/logs/*", "/metrics"], "verbs": ["get"]}]),
            ),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("{RBAC}/clusterrolebindings"),
            &binding(
                "ClusterRoleBinding",
                None,
                "dev-sas-urls",
                "ClusterRole",
                "urls",
                json!([subject_group("system:serviceaccounts:dev")]),
            ),
        )
        .await
        .expect(201);

    let reader = || user("dora", &["readers", "system:authenticated"]);
    let ci = || {
        user(
            "system:serviceaccount:dev:ci",
            &["system:serviceaccounts", "system:serviceaccounts:dev"],
        )
    };
    let prod_ci = || {
        user(
            "system:serviceaccount:prod:ci",
            &["system:serviceaccounts", "system:serviceaccounts:prod"],
        )
    };
    // Wait for the last object of each kind to arrive (each kind has its own watch); the
    // matrix is then decided at once.
    eventually(&chain, &can(reader(), "list", "", "pods", "", ""), true).await;
    eventually(
        &chain,
        &can(ci(), "get", "", "configmaps", "dev", "app"),
        true,
    )
    .await;
    eventually(&chain, &can_get_url(ci(), "/metrics"), true).await;
    let matrix: Vec<(Attributes, bool)> = vec![
        (can(reader(), "get", "", "pods", "prod", "web"), true),
        (can(reader(), "get", "", "pods/log", "prod", "web"), true),
        (can(reader(), "get", "", "pods/exec", "prod", "web"), false),
        (can(reader(), "delete", "", "pods", "prod", "web"), false),
        (can(reader(), "get", "", "secrets", "prod", "s"), false),
        (
            can(user("dora", &[]), "get", "", "pods", "prod", "web"),
            false,
        ),
        (can(ci(), "get", "", "configmaps", "dev", "app"), true),
        (can(ci(), "update", "", "configmaps", "dev", "app"), true),
        (can(ci(), "get", "", "configmaps", "dev", "other"), false),
        (can(ci(), "list", "", "configmaps", "dev", ""), false),
        (
            can(ci(), "patch", "apps", "deployments/scale", "dev", "web"),
            true,
        ),
        (
            can(ci(), "patch", "apps", "deployments", "dev", "web"),
            false,
        ),
        (can(ci(), "get", "", "configmaps", "prod", "app"), false),
        (can(prod_ci(), "get", "", "configmaps", "dev", "app"), false),
        (can_get_url(ci(), "/logs/kube-apiserver.log"), true),
        (can_get_url(ci(), "/metrics"), true),
        (can_get_url(ci(), "/metrics/slis"), false),
        (can_get_url(prod_ci(), "/metrics"), false),
        // The bootstrap bindings: discovery and public info for every authenticated user,
        // public info for the anonymous one, everything for system:masters.
        (can_get_url(alice(), "/apis/apps/v1"), true),
        (can_get_url(alice(), "/version"), true),
        (can_get_url(UserInfo::anonymous(), "/version"), true),
        (can_get_url(UserInfo::anonymous(), "/apis"), false),
        (
            can(UserInfo::anonymous(), "list", "", "pods", "", ""),
            false,
        ),
        (
            can(
                alice(),
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
            ),
            true,
        ),
        (
            can(
                user("root", &["system:masters"]),
                "delete",
                "",
                "nodes",
                "",
                "n1",
            ),
            true,
        ),
    ];
    for (attributes, allowed) in &matrix {
        let decision = chain.authorize(attributes).await;
        assert_eq!(
            decision == Decision::Allow,
            *allowed,
            "{attributes:?} → {decision:?}"
        );
    }

    // Live: a RoleBinding to the aggregated `edit` ClusterRole takes effect without a
    // restart, in its namespace only, and stops when deleted.
    let create_deploy = can(alice(), "create", "apps", "deployments", "dev", "");
    assert_eq!(
        chain.authorize(&create_deploy).await,
        Decision::Deny(String::new())
    );
    server
        .post(
            &format!("{RBAC}/namespaces/dev/rolebindings"),
            &binding(
                "RoleBinding",
                Some("dev"),
                "alice-edit",
                "ClusterRole",
                "edit",
                json!([subject_user("alice")]),
            ),
        )
        .await
        .expect(201);
    eventually(&chain, &create_deploy, true).await;
    for (attributes, allowed) in [
        (can(alice(), "delete", "", "secrets", "dev", "s"), true),
        (can(alice(), "get", "", "pods", "dev", "p"), true), // from view, through edit
        (
            can(
                alice(),
                "create",
                "rbac.authorization.k8s.io",
                "rolebindings",
                "dev",
                "",
            ),
            false,
        ), // admin only
        (
            can(alice(), "create", "apps", "deployments", "prod", ""),
            false,
        ),
    ] {
        // edit holds view's rules once the aggregation of view has reached edit too.
        eventually(&chain, &attributes, allowed).await;
    }
    server
        .delete(&format!("{RBAC}/namespaces/dev/rolebindings/alice-edit"))
        .await
        .expect(200);
    eventually(&chain, &create_deploy, false).await;

    // Live: changing a role's rules changes decisions.
    let mut role = server
        .get(&format!("{RBAC}/clusterroles/pod-reader"))
        .await
        .expect(200)
        .clone();
    role["rules"][0]["verbs"] = json!(["get"]);
    server
        .put(&format!("{RBAC}/clusterroles/pod-reader"), &role)
        .await
        .expect(200);
    eventually(&chain, &can(reader(), "list", "", "pods", "", ""), false).await;
    assert_eq!(
        chain
            .authorize(&can(reader(), "get", "", "pods", "x", "p"))
            .await,
        Decision::Allow
    );

    // A binding to a role that does not exist: no opinion, with kube's reason.
    server
        .post(
            &format!("{RBAC}/clusterrolebindings"),
            &binding(
                "ClusterRoleBinding",
                None,
                "ghost",
                "ClusterRole",
                "not-there",
                json!([subject_user("carol")]),
            ),
        )
        .await
        .expect(201);
    let carol = can(user("carol", &[]), "get", "", "pods", "", "p");
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let decision = chain.authorize(&carol).await;
        if decision != Decision::Deny(String::new()) {
            assert_eq!(
                decision,
                Decision::Deny(
                    "RBAC: clusterrole.rbac.authorization.k8s.io \"not-there\" not found".into()
                )
            );
            break;
        }
        assert!(Instant::now() < deadline, "the ghost binding never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Aggregation: a ClusterRole labelled aggregate-to-view adds its rules to view (and so
    // to edit and admin); removing the label takes them away again.
    server
        .post(
            &format!("{RBAC}/clusterrolebindings"),
            &binding(
                "ClusterRoleBinding",
                None,
                "alice-view",
                "ClusterRole",
                "view",
                json!([subject_user("alice")]),
            ),
        )
        .await
        .expect(201);
    let widgets = can(alice(), "list", "example.com", "widgets", "dev", "");
    eventually(&chain, &can(alice(), "list", "", "pods", "dev", ""), true).await;
    assert_eq!(
        chain.authorize(&widgets).await,
        Decision::Deny(String::new())
    );
    server
        .post(
            &format!("{RBAC}/clusterroles"),
            &cluster_role(
                "widget-viewer",
                json!({"rbac.authorization.k8s.io/aggregate-to-view": "true"}),
                json!([{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}]),
            ),
        )
        .await
        .expect(201);
    eventually(&chain, &widgets, true).await;
    let has_widgets = |role: &Value| {
        role["rules"]
            .as_array()
            .is_some_and(|rules| rules.iter().any(|r| r["resources"] == json!(["widgets"])))
    };
    eventually_get(&server, &format!("{RBAC}/clusterroles/admin"), has_widgets).await;
    server
        .patch(
            &format!("{RBAC}/clusterroles/widget-viewer"),
            support::server::MERGE_PATCH,
            &json!({"metadata": {"labels": {"rbac.authorization.k8s.io/aggregate-to-view": null}}}),
        )
        .await
        .expect(200);
    eventually(&chain, &widgets, false).await;
    eventually_get(&server, &format!("{RBAC}/clusterroles/view"), |r| {
        !has_widgets(r)
    })
    .await;

    // A user-defined aggregated role.
    server
        .post(
            &format!("{RBAC}/clusterroles"),
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "team"},
                    "aggregationRule": {"clusterRoleSelectors": [{"matchExpressions": [
                        {"key": "team", "operator": "In", "values": ["a", "b"]}]}]}}),
        )
        .await
        .expect(201);
    for (name, team, resource) in [
        ("team-a", "a", "alphas"),
        ("team-b", "b", "betas"),
        ("team-c", "c", "gammas"),
    ] {
        server
            .post(
                &format!("{RBAC}/clusterroles"),
                &cluster_role(
                    name,
                    json!({"team": team}),
                    json!([{"apiGroups": ["t.io"], "resources": [resource], "verbs": ["get"]}]),
                ),
            )
            .await
            .expect(201);
    }
    let team = eventually_get(&server, &format!("{RBAC}/clusterroles/team"), |r| {
        r["rules"].as_array().is_some_and(|rules| rules.len() == 2)
    })
    .await;
    assert_eq!(team["rules"][0]["resources"], json!(["alphas"]), "{team:#}");
    assert_eq!(team["rules"][1]["resources"], json!(["betas"]), "{team:#}");
}

#[tokio::test]
async fn rbac_live_embedded() {
    rbac_live(Arc::new(EmbeddedBackend::in_memory())).await;
}

#[tokio::test]
async fn rbac_live_etcd() {
    let etcd = TestEtcd::start();
    rbac_live(etcd_backend(&etcd).await).await;
}

// ---------------------------------------------------------------------------------------
// Bootstrap

const BOOTSTRAP_ROLES: &[&str] = &[
    "admin",
    "cluster-admin",
    "edit",
    "system:aggregate-to-admin",
    "system:aggregate-to-edit",
    "system:aggregate-to-view",
    "system:basic-user",
    "system:discovery",
    "system:kube-scheduler",
    "system:monitoring",
    "system:public-info-viewer",
    "system:service-account-issuer-discovery",
    "view",
];

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

async fn bootstrap(backend: Arc<dyn Backend>) {
    let first = rig(backend.clone(), &[AuthorizationMode::Rbac]).await;
    let server = &first.server;
    let roles = server
        .get(&format!("{RBAC}/clusterroles"))
        .await
        .expect(200)
        .clone();
    assert_eq!(names(&roles), BOOTSTRAP_ROLES);
    let cluster_admin = server
        .get(&format!("{RBAC}/clusterroles/cluster-admin"))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        cluster_admin["rules"],
        json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
               {"nonResourceURLs": ["*"], "verbs": ["*"]}])
    );
    assert_eq!(
        cluster_admin["metadata"]["labels"]["kubernetes.io/bootstrapping"],
        "rbac-defaults"
    );
    assert_eq!(
        cluster_admin["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
        "true"
    );
    // kube-scheduler may bind pods (both forms) and read what placement needs, not evict.
    let scheduler = user("system:kube-scheduler", &["system:authenticated"]);
    for (verb, group, resource) in [
        ("create", "", "pods/binding"),
        ("create", "", "bindings"),
        ("patch", "", "pods/status"),
        ("watch", "policy", "poddisruptionbudgets"),
        ("list", "storage.k8s.io", "csinodes"),
    ] {
        let attributes = can(scheduler.clone(), verb, group, resource, "default", "web");
        eventually(&first.chain, &attributes, true).await;
    }
    for (verb, resource) in [("create", "pods/eviction"), ("update", "pods")] {
        let attributes = can(scheduler.clone(), verb, "", resource, "default", "web");
        let decision = first.chain.authorize(&attributes).await;
        assert_ne!(decision, Decision::Allow, "{attributes:?}");
    }
    let basic = server
        .get(&format!("{RBAC}/clusterroles/system:basic-user"))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        basic["rules"],
        json!([{"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
               {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}])
    );
    let public = server
        .get(&format!("{RBAC}/clusterroles/system:public-info-viewer"))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        public["rules"],
        json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}])
    );
    let edit = server
        .get(&format!("{RBAC}/clusterroles/edit"))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        edit["aggregationRule"],
        json!({"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}}]})
    );
    assert_eq!(
        edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"],
        "true"
    );
    // The aggregated roles are filled by the controller: view's rules are exactly
    // system:aggregate-to-view's; admin has edit's and view's too.
    let to_view = server
        .get(&format!("{RBAC}/clusterroles/system:aggregate-to-view"))
        .await
        .expect(200)
        .clone();
    let view = eventually_get(server, &format!("{RBAC}/clusterroles/view"), |v| {
        v["rules"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    assert_eq!(view["rules"], to_view["rules"]);
    let admin = eventually_get(server, &format!("{RBAC}/clusterroles/admin"), |v| {
        v["rules"].as_array().is_some_and(|r| r.len() > 20)
    })
    .await;
    assert!(
        admin["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == json!(["rolebindings", "roles"])),
        "{admin:#}"
    );

    let bindings = server
        .get(&format!("{RBAC}/clusterrolebindings"))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        names(&bindings),
        [
            "cluster-admin",
            "system:basic-user",
            "system:discovery",
            "system:kube-scheduler",
            "system:monitoring",
            "system:public-info-viewer",
            "system:service-account-issuer-discovery"
        ]
    );
    let subjects = |name: &str| {
        bindings["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["metadata"]["name"] == name)
            .unwrap()["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(subjects("cluster-admin"), ["system:masters"]);
    assert_eq!(subjects("system:discovery"), ["system:authenticated"]);
    assert_eq!(subjects("system:basic-user"), ["system:authenticated"]);
    assert_eq!(
        subjects("system:public-info-viewer"),
        ["system:authenticated", "system:unauthenticated"]
    );
    assert_eq!(subjects("system:monitoring"), ["system:monitoring"]);

    // An operator edits one default role and deletes another.
    let mut discovery = server
        .get(&format!("{RBAC}/clusterroles/system:discovery"))
        .await
        .expect(200)
        .clone();
    discovery["rules"] = json!([{"nonResourceURLs": ["/version"], "verbs": ["get"]}]);
    server
        .put(&format!("{RBAC}/clusterroles/system:discovery"), &discovery)
        .await
        .expect(200);
    server
        .delete(&format!("{RBAC}/clusterroles/system:monitoring"))
        .await
        .expect(200);
    let admin_uid = cluster_admin["metadata"]["uid"].clone();
    drop(first);

    // The second start: the edit survives, the deleted role is back, nothing is duplicated
    // or recreated.
    let second = rig(backend, &[AuthorizationMode::Rbac]).await;
    let server = &second.server;
    let roles = server
        .get(&format!("{RBAC}/clusterroles"))
        .await
        .expect(200)
        .clone();
    assert_eq!(names(&roles), BOOTSTRAP_ROLES);
    let discovery = server
        .get(&format!("{RBAC}/clusterroles/system:discovery"))
        .await
        .expect(200)
        .clone();
    assert_eq!(
        discovery["rules"],
        json!([{"nonResourceURLs": ["/version"], "verbs": ["get"]}])
    );
    let cluster_admin = server
        .get(&format!("{RBAC}/clusterroles/cluster-admin"))
        .await
        .expect(200)
        .clone();
    assert_eq!(cluster_admin["metadata"]["uid"], admin_uid);
    server
        .get(&format!("{RBAC}/clusterroles/system:monitoring"))
        .await
        .expect(200);
    // And the edited role is what decides.
    eventually(&second.chain, &can_get_url(alice(), "/apis"), false).await;
    assert_eq!(
        second
            .chain
            .authorize(&can_get_url(alice(), "/version"))
            .await,
        Decision::Allow
    );
}

#[tokio::test]
async fn bootstrap_embedded() {
    bootstrap(Arc::new(EmbeddedBackend::in_memory())).await;
}

#[tokio::test]
async fn bootstrap_etcd() {
    let etcd = TestEtcd::start();
    bootstrap(etcd_backend(&etcd).await).await;
}

// ---------------------------------------------------------------------------------------
// Review APIs

const AUTHZ: &str = "/apis/authorization.k8s.io/v1";

fn sar(spec: Value) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec})
}

/// Sends a request as `user` straight into the API entry point (as the authentication
/// layer would, with the user in the request's extensions).
async fn as_user(api: &Arc<Api>, user: UserInfo, path: &str, body: &Value) -> (u16, Value) {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    request.extensions_mut().insert(user);
    let response = kubecache_server::dispatch::handle(api.clone(), request).await;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn reviews(backend: Arc<dyn Backend>) {
    let Rig { server, api, chain } = rig(backend, &[AuthorizationMode::Rbac]).await;
    server.create_namespace("dev").await;

    // SubjectAccessReview: no binding yet, then allowed with kube's reason.
    let list_pods = sar(json!({"user": "alice", "groups": ["system:authenticated"],
                               "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "dev"}}));
    let reply = server
        .post(&format!("{AUTHZ}/subjectaccessreviews"), &list_pods)
        .await;
    let body = reply.expect(201);
    assert_eq!(body["status"], json!({"allowed": false}), "{body:#}");
    assert_eq!(body["spec"]["user"], "alice");
    assert_eq!(body["kind"], "SubjectAccessReview");
    server
        .post(
            &format!("{RBAC}/namespaces/dev/rolebindings"),
            &binding(
                "RoleBinding",
                Some("dev"),
                "alice-view",
                "ClusterRole",
                "view",
                json!([subject_user("alice")]),
            ),
        )
        .await
        .expect(201);
    eventually(&chain, &can(alice(), "list", "", "pods", "dev", ""), true).await;
    let reply = server
        .post(&format!("{AUTHZ}/subjectaccessreviews"), &list_pods)
        .await;
    assert_eq!(
        reply.expect(201)["status"],
        json!({"allowed": true,
               "reason": "RBAC: allowed by RoleBinding \"alice-view/dev\" of ClusterRole \"view\" to User \"alice\""})
    );
    // Non-resource attributes, groups only, and masters.
    let reply = server
        .post(&format!("{AUTHZ}/subjectaccessreviews"),
              &sar(json!({"groups": ["system:authenticated"], "nonResourceAttributes": {"verb": "get", "path": "/apis/apps"}})))
        .await;
    assert_eq!(reply.expect(201)["status"]["allowed"], true);
    let reply = server
        .post(&format!("{AUTHZ}/subjectaccessreviews"),
              &sar(json!({"user": "root", "groups": ["system:masters"], "resourceAttributes": {"verb": "delete", "resource": "nodes"}})))
        .await;
    assert_eq!(reply.expect(201)["status"], json!({"allowed": true}));
    // Invalid reviews are 422 Invalid.
    for spec in [
        json!({"resourceAttributes": {"verb": "get", "resource": "pods"}}),
        json!({"user": "alice"}),
        json!({"user": "alice", "resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"verb": "get", "path": "/"}}),
    ] {
        let reply = server
            .post(&format!("{AUTHZ}/subjectaccessreviews"), &sar(spec))
            .await;
        reply.expect_status(422, "Invalid");
    }
    // Create only: other verbs are 405; a wrong kind is 400.
    server
        .get(&format!("{AUTHZ}/subjectaccessreviews"))
        .await
        .expect_status(405, "MethodNotAllowed");
    server
        .post(&format!("{AUTHZ}/subjectaccessreviews"),
              &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}}))
        .await
        .expect_status(400, "BadRequest");

    // LocalSubjectAccessReview: the namespace comes from the path.
    let local = |ns: Option<&str>| {
        let mut attrs = json!({"verb": "get", "resource": "pods", "name": "p"});
        if let Some(ns) = ns {
            attrs["namespace"] = json!(ns);
        }
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
               "metadata": {"namespace": "dev"},
               "spec": {"user": "alice", "resourceAttributes": attrs}})
    };
    let reply = server
        .post(
            &format!("{AUTHZ}/namespaces/dev/localsubjectaccessreviews"),
            &local(None),
        )
        .await;
    let body = reply.expect(201);
    assert_eq!(body["spec"]["resourceAttributes"]["namespace"], "dev");
    assert_eq!(body["status"]["allowed"], true);
    let reply = server
        .post(
            &format!("{AUTHZ}/namespaces/dev/localsubjectaccessreviews"),
            &local(Some("prod")),
        )
        .await;
    reply.expect_status(400, "BadRequest");
    assert_eq!(
        reply.message(),
        "spec.resourceAttributes.namespace must match namespace: dev"
    );
    // The namespace must be in the path.
    server
        .post(&format!("{AUTHZ}/localsubjectaccessreviews"), &local(None))
        .await
        .expect_status(400, "BadRequest");
    let reply = server
        .post(&format!("{AUTHZ}/namespaces/dev/localsubjectaccessreviews"),
              &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
                      "spec": {"user": "alice", "nonResourceAttributes": {"verb": "get", "path": "/"}}}))
        .await;
    reply.expect_status(422, "Invalid");

    // SelfSubjectAccessReview: over the insecure port the user is system:unsecured (a
    // member of system:masters); with a user from authentication, that user.
    let ssar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": {"verb": "delete", "resource": "secrets", "namespace": "dev"}}});
    let reply = server
        .post(&format!("{AUTHZ}/selfsubjectaccessreviews"), &ssar)
        .await;
    assert_eq!(reply.expect(201)["status"], json!({"allowed": true}));
    let (status, body) = as_user(
        &api,
        alice(),
        &format!("{AUTHZ}/selfsubjectaccessreviews"),
        &ssar,
    )
    .await;
    assert_eq!(
        (status, body["status"].clone()),
        (201, json!({"allowed": false}))
    );
    let ssar_get = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                          "spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "dev"}}});
    let (_, body) = as_user(
        &api,
        alice(),
        &format!("{AUTHZ}/selfsubjectaccessreviews"),
        &ssar_get,
    )
    .await;
    assert_eq!(body["status"]["allowed"], true, "{body:#}");

    // SelfSubjectRulesReview: the user's rules in a namespace, cluster-wide ones first.
    let ssrr = |ns: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                                 "spec": {"namespace": ns}})
    };
    let (status, body) = as_user(
        &api,
        alice(),
        &format!("{AUTHZ}/selfsubjectrulesreviews"),
        &ssrr("dev"),
    )
    .await;
    assert_eq!(status, 201, "{body:#}");
    let status_ = &body["status"];
    assert_eq!(status_["incomplete"], false);
    let resource_rules = status_["resourceRules"].as_array().unwrap();
    assert_eq!(
        resource_rules[0],
        json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]})
    );
    assert!(
        resource_rules.iter().any(
            |r| r["resources"].as_array().unwrap().contains(&json!("pods"))
                && r["verbs"] == json!(["get", "list", "watch"])
        ),
        "{body:#}"
    );
    assert!(
        status_["nonResourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["nonResourceURLs"]
                .as_array()
                .unwrap()
                .contains(&json!("/apis/*")))
    );
    let (_, other) = as_user(
        &api,
        alice(),
        &format!("{AUTHZ}/selfsubjectrulesreviews"),
        &ssrr("prod"),
    )
    .await;
    assert!(other["status"]["resourceRules"].as_array().unwrap().len() < resource_rules.len());
    let reply = server
        .post(&format!("{AUTHZ}/selfsubjectrulesreviews"), &ssrr(""))
        .await;
    reply.expect_status(422, "Invalid");

    // SelfSubjectReview (kubectl auth whoami).
    let ssr = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
    let (status, body) = as_user(
        &api,
        alice(),
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &ssr,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        body["status"]["userInfo"],
        json!({"username": "alice", "groups": ["system:authenticated"]})
    );

    // Nothing was stored.
    for resource in [
        "subjectaccessreviews",
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "localsubjectaccessreviews",
    ] {
        let page = server
            .backend
            .list(kubecache_core::storage::ListOptions {
                prefix: format!("/registry/{resource}/"),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.kvs.is_empty(), "{resource} stored something");
    }

    // Discovery lists them, create only.
    let group = server.get(AUTHZ).await.expect(200).clone();
    let listed: Vec<(String, Value)> = group["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["verbs"].clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("localsubjectaccessreviews".to_string(), json!(["create"])),
            ("selfsubjectaccessreviews".to_string(), json!(["create"])),
            ("selfsubjectrulesreviews".to_string(), json!(["create"])),
            ("subjectaccessreviews".to_string(), json!(["create"])),
        ]
    );
}

#[tokio::test]
async fn reviews_embedded() {
    reviews(Arc::new(EmbeddedBackend::in_memory())).await;
}

#[tokio::test]
async fn reviews_etcd() {
    let etcd = TestEtcd::start();
    reviews(etcd_backend(&etcd).await).await;
}

/// kubectl's typed clients send reviews as protobuf.
#[tokio::test]
async fn protobuf_self_subject_access_review() {
    let Rig { server, .. } = rig(
        Arc::new(EmbeddedBackend::in_memory()),
        &[AuthorizationMode::Rbac],
    )
    .await;
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let attributes = [field(2, b"list"), field(5, b"pods")].concat();
    let review = field(2, &field(1, &attributes));
    let type_meta = [
        field(1, b"authorization.k8s.io/v1"),
        field(2, b"SelfSubjectAccessReview"),
    ]
    .concat();
    let body_bytes = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &review)].concat();
    let reply = server
        .send(
            Method::POST,
            &server.url(&format!("{AUTHZ}/selfsubjectaccessreviews")),
            Some("application/vnd.kubernetes.protobuf"),
            Some(body_bytes.clone()),
        )
        .await;
    let body = reply.expect(201);
    assert_eq!(
        body["spec"]["resourceAttributes"],
        json!({"verb": "list", "resource": "pods"})
    );
    assert_eq!(body["status"]["allowed"], true);
    // Asked first for protobuf (as kubectl does), the answer is protobuf too.
    let response = server
        .client
        .post(server.url(&format!("{AUTHZ}/selfsubjectaccessreviews")))
        .header("Content-Type", "application/vnd.kubernetes.protobuf")
        .header("Accept", "application/vnd.kubernetes.protobuf, */*")
        .body(body_bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.kubernetes.protobuf"
    );
    let answer = response.bytes().await.unwrap();
    let answer = kubecache_apimachinery::protobuf::decode_envelope(&answer, None).unwrap();
    assert_eq!(answer["kind"], "SelfSubjectAccessReview");
    assert_eq!(answer["status"]["allowed"], true);
    let reply = server
        .send(
            Method::POST,
            &server.url(&format!("{AUTHZ}/selfsubjectaccessreviews")),
            Some("application/vnd.kubernetes.protobuf"),
            Some(b"garbage".to_vec()),
        )
        .await;
    reply.expect_status(400, "BadRequest");
}

/// The chain in order: AlwaysDeny denies explicitly (the review says `denied`), but never
/// system:masters; AlwaysAllow after RBAC allows what RBAC has no opinion on.
#[tokio::test]
async fn modes_in_order() {
    let Rig { server, chain, api } = rig(
        Arc::new(EmbeddedBackend::in_memory()),
        &[AuthorizationMode::AlwaysDeny],
    )
    .await;
    let reply = server
        .post(
            &format!("{AUTHZ}/subjectaccessreviews"),
            &sar(
                json!({"user": "alice", "resourceAttributes": {"verb": "get", "resource": "pods"}}),
            ),
        )
        .await;
    assert_eq!(
        reply.expect(201)["status"],
        json!({"allowed": false, "denied": true, "reason": "Everything is forbidden."})
    );
    assert_eq!(
        chain
            .authorize(&can(
                user("root", &["system:masters"]),
                "get",
                "",
                "pods",
                "",
                ""
            ))
            .await,
        Decision::Allow
    );

    let modes = authz::parse_modes("RBAC,AlwaysAllow").unwrap();
    let chain = authz::build(&modes, api.reads.clone());
    assert_eq!(
        chain
            .authorize(&can(alice(), "delete", "", "pods", "x", "p"))
            .await,
        Decision::Allow
    );
    let modes = authz::parse_modes("AlwaysDeny,AlwaysAllow").unwrap();
    let chain = authz::build(&modes, api.reads.clone());
    assert_eq!(
        chain
            .authorize(&can(alice(), "get", "", "pods", "", ""))
            .await,
        Decision::Deny("Everything is forbidden.".into())
    );
}
