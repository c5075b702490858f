//! Service-account tokens, as kube-apiserver issues and checks them: TokenRequest
//! (`serviceaccounts/{name}/token`) and its claims, the signature checked with the published
//! JWKS, TokenReview for bound, expired, foreign, wrong-audience and legacy tokens, the OIDC
//! discovery documents, the ServiceAccount admission plugin on pods, and the controllers that
//! give every namespace its `default` ServiceAccount and `kube-root-ca.crt` ConfigMap — on
//! the embedded store and on etcd. Then the real binary with the real kubectl:
//! `kubectl create token`, `kubectl auth whoami --token`, 401 once the account is replaced,
//! and the generated signing key surviving a restart.

use crate::support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use kubecache_server::service_accounts::{
    Audiences, Claims, KubernetesClaims, LEGACY_ISSUER, ObjectRef, TokenConfig, Tokens,
};
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::testing::TestEtcd;
use serde_json::{Value, json};
use support::secured::Secured;
use support::server::TestServer;

const ISSUER: &str = "https://issuer.kubecache.test";
/// A second, older issuer: accepted, never issued.
const OLD_ISSUER: &str = "https://old-issuer.kubecache.test";
const NS: &str = "tokens";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/fixtures")
        .join(name)
}

/// The flags of the in-process servers: the RSA fixture key signs, its public key (a
/// separate PEM) verifies, two issuers, the API audiences defaulting to them.
fn token_config() -> TokenConfig {
    TokenConfig {
        signing_key_file: Some(fixture("service-account-rsa.key")),
        key_files: vec![fixture("service-account-rsa.pub")],
        issuers: vec![ISSUER.into(), OLD_ISSUER.into()],
        ..TokenConfig::default()
    }
}

/// The CA bundle the in-process servers publish in `kube-root-ca.crt`.
const ROOT_CA: &str = "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n";

/// An in-process server with every controller and the fixture keys.
async fn start(backend: Arc<dyn kubecache_core::storage::Backend>) -> TestServer {
    let controllers = kubecache_server::server::ControllerConfig {
        enabled: Default::default(),
        root_ca: ROOT_CA.into(),
        ..Default::default()
    };
    TestServer::start_with_controllers(backend, controllers, |api| {
        let tokens = Tokens::load(&token_config()).expect("the fixture keys load");
        let _ = api.tokens.set(Arc::new(tokens));
    })
    .await
}

#[tokio::test]
async fn service_account_tokens_embedded() {
    scenario(&start(Arc::new(EmbeddedBackend::in_memory())).await).await;
}

#[tokio::test]
async fn service_account_tokens_etcd() {
    let etcd = TestEtcd::start();
    let backend = kubecache_storage::etcd::EtcdBackend::connect(
        &[etcd.endpoint()],
        kubecache_storage::etcd::EtcdOptions::default(),
    )
    .await
    .expect("connect to etcd");
    scenario(&start(Arc::new(backend)).await).await;
}

/// A JWT's header and claims, decoded (no checking).
fn decode_jwt(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact serialization: {token}");
    let json = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    };
    (json(parts[0]), json(parts[1]))
}

/// Whether a JWKS key (RSA or P-256) verifies the token's signature — checked with ring from
/// the published key alone, not with the server's code.
fn verifies_with(jwk: &Value, token: &str) -> bool {
    let (signing_input, signature) = token.rsplit_once('.').expect("three parts");
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("base64url signature");
    let b64 = |field: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[field].as_str().unwrap())
            .unwrap()
    };
    match jwk["kty"].as_str() {
        Some("RSA") => ring::signature::RsaPublicKeyComponents {
            n: b64("n"),
            e: b64("e"),
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signing_input.as_bytes(),
            &signature,
        )
        .is_ok(),
        Some("EC") => {
            let mut point = vec![4u8];
            point.extend(b64("x"));
            point.extend(b64("y"));
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(signing_input.as_bytes(), &signature)
            .is_ok()
        }
        other => panic!("unexpected key type {other:?}"),
    }
}

async fn wait_for(server: &TestServer, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.get(path).await;
        if reply.status == 200 {
            return reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never appeared: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn request_token(server: &TestServer, account: &str, spec: Value) -> support::server::Reply {
    server
        .post(
            &format!("/api/v1/namespaces/{NS}/serviceaccounts/{account}/token"),
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
        )
        .await
}

async fn token_for(server: &TestServer, account: &str, spec: Value) -> String {
    let reply = request_token(server, account, spec).await;
    reply.expect(201)["status"]["token"]
        .as_str()
        .expect("a token")
        .to_string()
}

/// TokenReview's status for `token` (and `audiences`, when given).
async fn review(server: &TestServer, token: &str, audiences: Option<&[&str]>) -> Value {
    let mut spec = json!({"token": token});
    if let Some(audiences) = audiences {
        spec["audiences"] = json!(audiences);
    }
    let reply = server
        .post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}),
        )
        .await;
    reply.expect(201)["status"].clone()
}

/// Polls TokenReview until it says `authenticated` (the read path may lag a write a moment).
async fn review_until(server: &TestServer, token: &str, authenticated: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = review(server, token, None).await;
        if status["authenticated"].as_bool().unwrap_or(false) == authenticated {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "TokenReview never said authenticated={authenticated}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn crafting() -> Tokens {
    Tokens::load(&token_config()).expect("the fixture keys load")
}

async fn scenario(server: &TestServer) {
    // The controllers: a new namespace gets `default` and `kube-root-ca.crt`.
    server.create_namespace(NS).await;
    let account = wait_for(
        server,
        &format!("/api/v1/namespaces/{NS}/serviceaccounts/default"),
    )
    .await;
    let account_uid = account["metadata"]["uid"].as_str().unwrap().to_string();
    let root_ca = wait_for(
        server,
        &format!("/api/v1/namespaces/{NS}/configmaps/kube-root-ca.crt"),
    )
    .await;
    assert_eq!(root_ca["data"], json!({"ca.crt": ROOT_CA}));
    assert!(
        root_ca["metadata"]["annotations"]["kubernetes.io/description"]
            .as_str()
            .unwrap()
            .contains("kube-apiserver")
    );

    // A TokenRequest: kube's claims, signed by the key /openid/v1/jwks publishes.
    let before = chrono::Utc::now().timestamp();
    let reply = request_token(
        server,
        "default",
        json!({"audiences": ["api", "vault"], "expirationSeconds": 1200}),
    )
    .await;
    let answer = reply.expect(201);
    assert_eq!(answer["kind"], "TokenRequest");
    assert_eq!(answer["metadata"]["name"], "default");
    let token = answer["status"]["token"].as_str().unwrap().to_string();
    let (header, claims) = decode_jwt(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], json!(["api", "vault"]));
    assert_eq!(claims["sub"], format!("system:serviceaccount:{NS}:default"));
    let iat = claims["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= before + 5, "iat {iat} vs {before}");
    assert_eq!(claims["nbf"].as_i64(), Some(iat));
    assert_eq!(claims["exp"].as_i64(), Some(iat + 1200));
    assert_eq!(
        claims["kubernetes.io"],
        json!({"namespace": NS, "serviceaccount": {"name": "default", "uid": account_uid}})
    );
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    let expires = chrono::DateTime::parse_from_rfc3339(
        answer["status"]["expirationTimestamp"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(expires.timestamp(), iat + 1200);

    let jwks = server.get("/openid/v1/jwks").await;
    assert_eq!(
        jwks.headers.get("content-type").unwrap(),
        "application/jwk-set+json"
    );
    let keys = jwks.body["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], header["kid"]);
    assert_eq!(keys[0]["alg"], "RS256");
    assert!(verifies_with(&keys[0], &token));
    let (input, signature) = token.rsplit_once('.').unwrap();
    let tampered = format!("{input}x.{signature}");
    assert!(!verifies_with(&keys[0], &tampered));

    let discovery = server.get("/.well-known/openid-configuration").await;
    assert_eq!(discovery.status, 200);
    assert_eq!(discovery.body["issuer"], ISSUER);
    assert!(
        discovery.body["jwks_uri"]
            .as_str()
            .unwrap()
            .ends_with("/openid/v1/jwks")
    );
    assert_eq!(
        discovery.body["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(
        discovery.body["response_types_supported"],
        json!(["id_token"])
    );

    // Discovery names the subresource and the review, create only.
    let core = server.get("/api/v1").await;
    let token_resource = core.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .cloned()
        .expect("serviceaccounts/token is listed");
    assert_eq!(token_resource["kind"], "TokenRequest");
    assert_eq!(token_resource["group"], "authentication.k8s.io");
    assert_eq!(token_resource["verbs"], json!(["create"]));
    let authentication = server.get("/apis/authentication.k8s.io/v1").await;
    assert!(
        authentication.body["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "tokenreviews" && r["verbs"] == json!(["create"])),
        "{}",
        authentication.body
    );

    // TokenReview: the service account's user, for the audiences asked.
    let status = review(server, &token, Some(&["vault"])).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["audiences"], json!(["vault"]));
    let user = &status["user"];
    assert_eq!(
        user["username"],
        format!("system:serviceaccount:{NS}:default")
    );
    assert_eq!(user["uid"], account_uid.as_str());
    assert_eq!(
        user["groups"],
        json!([
            "system:serviceaccounts",
            format!("system:serviceaccounts:{NS}"),
            "system:authenticated"
        ])
    );
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/credential-id"],
        json!([format!("JTI={}", claims["jti"].as_str().unwrap())])
    );
    // Not for the API (its audiences are the issuers), nor another audience.
    let status = review(server, &token, None).await;
    assert_eq!(status["authenticated"], Value::Null, "{status}");
    assert!(
        status["error"].as_str().unwrap().contains("audiences"),
        "{status}"
    );

    // Defaults: an hour, for the API's audiences (the issuers).
    let reply = request_token(server, "default", json!({})).await;
    let answer = reply.expect(201);
    assert_eq!(answer["spec"]["expirationSeconds"], 3600);
    assert_eq!(answer["spec"]["audiences"], json!([ISSUER, OLD_ISSUER]));
    let api_token = answer["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(
        review(server, &api_token, None).await["authenticated"],
        true
    );

    // Refusals: a missing account, too short a lifetime, a mismatched name.
    request_token(server, "ghost", json!({}))
        .await
        .expect_status(404, "NotFound");
    let reply = request_token(server, "default", json!({"expirationSeconds": 599})).await;
    let status = reply.expect_status(422, "Invalid");
    assert_eq!(status["details"]["kind"], "TokenRequest");
    assert_eq!(
        status["details"]["causes"][0]["field"],
        "spec.expirationSeconds"
    );
    let reply = server
        .post(
            &format!("/api/v1/namespaces/{NS}/serviceaccounts/default/token"),
            &json!({"metadata": {"name": "other"}, "spec": {}}),
        )
        .await;
    reply.expect_status(422, "Invalid");
    server
        .get(&format!(
            "/api/v1/namespaces/{NS}/serviceaccounts/default/token"
        ))
        .await
        .expect_status(405, "MethodNotAllowed");

    // The ServiceAccount admission plugin: `default`, and the projected token volume in
    // every container.
    let pod = server
        .post(
            &format!("/api/v1/namespaces/{NS}/pods"),
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                    "spec": {"initContainers": [{"name": "init", "image": "busybox"}],
                             "containers": [{"name": "app", "image": "nginx"}]}}),
        )
        .await;
    let pod = pod.expect(201).clone();
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    let volume = &pod["spec"]["volumes"][0];
    let volume_name = volume["name"].as_str().unwrap();
    assert!(
        volume_name.starts_with("kube-api-access-") && volume_name.len() == 21,
        "{volume}"
    );
    assert_eq!(
        volume["projected"]["sources"],
        json!([
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ])
    );
    for list in ["initContainers", "containers"] {
        assert_eq!(
            pod["spec"][list][0]["volumeMounts"],
            json!([{"name": volume_name, "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]),
            "{list}"
        );
    }
    let quiet = server
        .post(
            &format!("/api/v1/namespaces/{NS}/pods"),
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "quiet"},
                    "spec": {"automountServiceAccountToken": false,
                             "containers": [{"name": "app", "image": "nginx"}]}}),
        )
        .await;
    assert!(quiet.expect(201)["spec"].get("volumes").is_none());
    let refused = server
        .post(
            &format!("/api/v1/namespaces/{NS}/pods"),
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lost"},
                    "spec": {"serviceAccountName": "ghost",
                             "containers": [{"name": "app", "image": "nginx"}]}}),
        )
        .await;
    let status = refused.expect_status(403, "Forbidden");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains(&format!("error looking up service account {NS}/ghost")),
        "{status}"
    );
    server
        .get(&format!("/api/v1/namespaces/{NS}/pods/lost"))
        .await
        .expect_status(404, "NotFound");

    // A token bound to the pod: named in the claims and the user's extra; refused for a
    // pod that is not there, another uid, or a pod of another account.
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let bound = token_for(
        server,
        "default",
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web"}}),
    )
    .await;
    let (_, claims) = decode_jwt(&bound);
    assert_eq!(
        claims["kubernetes.io"]["pod"],
        json!({"name": "web", "uid": pod_uid})
    );
    let status = review(server, &bound, None).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["web"])
    );
    assert_eq!(
        status["user"]["extra"]["authentication.kubernetes.io/pod-uid"],
        json!([pod_uid])
    );
    request_token(
        server,
        "default",
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "not-the-uid"}}),
    )
    .await
    .expect_status(409, "Conflict");
    request_token(
        server,
        "default",
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "nowhere"}}),
    )
    .await
    .expect_status(404, "NotFound");
    request_token(
        server,
        "default",
        json!({"boundObjectRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}),
    )
    .await
    .expect_status(400, "BadRequest");
    server
        .post(
            &format!("/api/v1/namespaces/{NS}/serviceaccounts"),
            &json!({"metadata": {"name": "robot"}}),
        )
        .await
        .expect(201);
    request_token(
        server,
        "robot",
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web"}}),
    )
    .await
    .expect_status(400, "BadRequest");

    // A token bound to a node lives as long as the node; a pod on a node names it too.
    let node = server
        .post(
            "/api/v1/nodes",
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker"}}),
        )
        .await;
    let node_uid = node.expect(201)["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let node_token = token_for(
        server,
        "default",
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Node", "name": "worker"}}),
    )
    .await;
    let (_, claims) = decode_jwt(&node_token);
    assert_eq!(
        claims["kubernetes.io"]["node"],
        json!({"name": "worker", "uid": node_uid})
    );
    let status = review(server, &node_token, None).await;
    assert_eq!(
        status["user"]["extra"]["authentication.kubernetes.io/node-name"],
        json!(["worker"])
    );
    let placed = server
        .post(
            &format!("/api/v1/namespaces/{NS}/pods"),
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "placed"},
                    "spec": {"nodeName": "worker", "containers": [{"name": "app", "image": "nginx"}]}}),
        )
        .await;
    placed.expect(201);
    let placed_token = token_for(
        server,
        "default",
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "placed"}}),
    )
    .await;
    let (_, claims) = decode_jwt(&placed_token);
    assert_eq!(
        claims["kubernetes.io"]["node"],
        json!({"name": "worker", "uid": node_uid})
    );
    server.delete("/api/v1/nodes/worker").await.expect(200);
    review_until(server, &node_token, false).await;
    // The pod's token depends on the pod, not on the node it names.
    assert_eq!(
        review(server, &placed_token, None).await["authenticated"],
        true
    );

    // Deleting the pod ends its token.
    server
        .delete_with(
            &format!("/api/v1/namespaces/{NS}/pods/web"),
            &json!({"gracePeriodSeconds": 0}),
        )
        .await
        .expect(200);
    let status = review_until(server, &bound, false).await;
    assert!(
        status["error"].as_str().unwrap().contains("invalidated"),
        "{status}"
    );
    // The unbound token lives on.
    assert_eq!(
        review(server, &api_token, None).await["authenticated"],
        true
    );

    // Expired (beyond the minute of leeway), foreign-issuer, old-issuer and malformed tokens.
    let keys = crafting();
    let now = chrono::Utc::now().timestamp();
    let valid_claims = |iss: &str, exp: i64| Claims {
        aud: Audiences(vec![ISSUER.into()]),
        exp: Some(exp),
        iat: Some(exp - 600),
        nbf: Some(exp - 600),
        iss: iss.into(),
        sub: format!("system:serviceaccount:{NS}:default"),
        kubernetes: Some(KubernetesClaims {
            namespace: NS.into(),
            serviceaccount: ObjectRef {
                name: "default".into(),
                uid: account_uid.clone(),
            },
            ..KubernetesClaims::default()
        }),
        ..Claims::default()
    };
    let expired = keys.sign(&valid_claims(ISSUER, now - 120)).unwrap();
    let status = review(server, &expired, None).await;
    assert_ne!(status["authenticated"], true);
    assert!(
        status["error"].as_str().unwrap().contains("expired"),
        "{status}"
    );
    let old = keys.sign(&valid_claims(OLD_ISSUER, now + 600)).unwrap();
    assert_eq!(review(server, &old, None).await["authenticated"], true);
    let foreign = keys
        .sign(&valid_claims("https://elsewhere.test", now + 600))
        .unwrap();
    assert_ne!(review(server, &foreign, None).await["authenticated"], true);
    for malformed in ["abc", "a.b.c", &format!("{input}.AAAA")] {
        assert_ne!(review(server, malformed, None).await["authenticated"], true);
    }
    server
        .post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {}}),
        )
        .await
        .expect_status(400, "BadRequest");

    // A legacy token, valid while its Secret holds it.
    let legacy = keys
        .sign(&Claims {
            iss: LEGACY_ISSUER.into(),
            sub: format!("system:serviceaccount:{NS}:default"),
            legacy_namespace: Some(NS.into()),
            legacy_secret_name: Some("default-token".into()),
            legacy_service_account_name: Some("default".into()),
            legacy_service_account_uid: Some(account_uid.clone()),
            ..Claims::default()
        })
        .unwrap();
    server
        .post(
            &format!("/api/v1/namespaces/{NS}/secrets"),
            &json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "default-token",
                                 "annotations": {"kubernetes.io/service-account.name": "default"}},
                    "type": "kubernetes.io/service-account-token",
                    "data": {"token": STANDARD.encode(&legacy)}}),
        )
        .await
        .expect(201);
    let status = review_until(server, &legacy, true).await;
    assert_eq!(
        status["user"]["username"],
        format!("system:serviceaccount:{NS}:default")
    );
    server
        .delete(&format!("/api/v1/namespaces/{NS}/secrets/default-token"))
        .await
        .expect(200);
    review_until(server, &legacy, false).await;

    // The controller puts `default` back (a new uid: the old tokens end).
    server
        .delete(&format!("/api/v1/namespaces/{NS}/serviceaccounts/default"))
        .await
        .expect(200);
    let again = wait_for(
        server,
        &format!("/api/v1/namespaces/{NS}/serviceaccounts/default"),
    )
    .await;
    assert_ne!(again["metadata"]["uid"], account_uid.as_str());
    let status = review_until(server, &api_token, false).await;
    assert!(
        status["error"].as_str().unwrap().contains("UID"),
        "{status}"
    );
}

/// The real binary on its secure port and the real kubectl: `create token`, then
/// `auth whoami` with it; the generated ES256 key is kept in --cert-dir, so a token
/// survives a restart; 401 once the account it names is gone.
#[test]
fn kubectl_create_token_then_auth_whoami() {
    let data = tempfile::tempdir().expect("data dir");
    let certs = data.path().join("certs");
    let data_dir = data.path().join("store");
    let flags = ["--data-dir", data_dir.to_str().unwrap()];
    let mut server = Secured::start_with_certs(false, &flags, Some(certs.clone()));
    // The binary runs every controller by default.
    server.kubectl_ok("admin", &["create", "namespace", "sa-e2e"]);
    let wait_for = |server: &Secured, args: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let output = server.kubectl("admin", args);
            if output.status.success() {
                return String::from_utf8(output.stdout).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {args:?} never succeeded"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(
        &server,
        &["get", "serviceaccount", "default", "-n", "sa-e2e"],
    );
    // kube-root-ca.crt holds the CA the clients trust.
    let published = wait_for(
        &server,
        &[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            "sa-e2e",
            "-o",
            "json",
        ],
    );
    let published: Value = serde_json::from_str(&published).unwrap();
    assert_eq!(
        published["data"]["ca.crt"].as_str().unwrap(),
        std::fs::read_to_string(certs.join("ca.crt")).unwrap()
    );

    let token = server
        .kubectl_ok("admin", &["create", "token", "default", "-n", "sa-e2e"])
        .trim()
        .to_string();
    let (header, _) = decode_jwt(&token);
    assert_eq!(header["alg"], "ES256");
    let whoami = |server: &Secured| {
        server.kubectl(
            "stranger",
            &["auth", "whoami", "--token", &token, "-o", "json"],
        )
    };
    let output = whoami(&server);
    assert!(
        output.status.success(),
        "{}\n{}",
        support::secured::stderr(&output),
        server.log()
    );
    let me: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        me["status"]["userInfo"]["username"],
        "system:serviceaccount:sa-e2e:default"
    );
    assert_eq!(
        me["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:sa-e2e",
            "system:authenticated"
        ])
    );
    let jwks = server.kubectl_ok("admin", &["get", "--raw", "/openid/v1/jwks"]);
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    assert!(verifies_with(&jwks["keys"][0], &token));

    // The generated key is kept: the token still works after a restart.
    server.stop();
    let server = Secured::start_with_certs(false, &flags, Some(certs.clone()));
    let output = whoami(&server);
    assert!(
        output.status.success(),
        "after a restart: {}\n{}",
        support::secured::stderr(&output),
        server.log()
    );

    // A replaced account (the controller makes a new `default`) ends the token: 401.
    server.kubectl_ok(
        "admin",
        &["delete", "serviceaccount", "default", "-n", "sa-e2e"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = whoami(&server);
        if !output.status.success() {
            assert!(
                support::secured::stderr(&output).contains("Unauthorized"),
                "{}",
                support::secured::stderr(&output)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old token still authenticates"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(
        &server,
        &["get", "serviceaccount", "default", "-n", "sa-e2e"],
    );
}
