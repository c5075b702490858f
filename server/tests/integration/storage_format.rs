//! kube-apiserver's storage format at the storage boundary (`kubecache_store::storage_format`):
//! values kube-apiserver wrote into etcd served through kubectl and watched as they change,
//! encryption at rest with rotation (ciphertext checked by an independent decryptor: Python's
//! `cryptography`), startup errors for bad flags, and values that cannot be read (KEP-3926:
//! 500s naming the key, other resources unaffected, the unsafe delete).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kubecache_core::authz::{Attributes, Authorizer, Decision, UserInfo};
use kubecache_core::storage::Backend;
use kubecache_server::api::Api;
use kubecache_server::authz::{self, AuthorizationMode};
use kubecache_server::server::ReadConfig;
use kubecache_storage::embedded::EmbeddedBackend;
use kubecache_storage::etcd::EtcdBackend;
use kubecache_storage::testing::TestEtcd;
use kubecache_store::storage_format::{FormattedBackend, StorageFormat};
use serde_json::{Value, json};

use crate::support::binary::{Kubecache, Storage, Streaming, run_bounded};
use crate::support::kubectl::parse;
use crate::support::server::TestServer;

use kubecache_apiextensions::fixtures::kube_storage;

/// `etcdctl put KEY < FILE`, as the fixtures' README loads a value kube-apiserver wrote.
fn etcdctl_put(etcd: &TestEtcd, key: &str, fixture: &str) {
    let file =
        std::fs::File::open(kubecache_apiextensions::fixtures::dir("kube-storage").join(fixture))
            .expect("the fixture");
    let status = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd.endpoint(), "put", key])
        .stdin(file)
        .status()
        .expect("etcdctl (Debian etcd-client; scripts/install-deps.sh installs it)");
    assert!(status.success(), "etcdctl put {key}");
}

/// A raw connection to the test's etcd: values as bytes, exactly as stored (etcdctl's output
/// would need parsing), on a runtime of its own that lives as long as the connection.
struct RawEtcd {
    runtime: tokio::runtime::Runtime,
    backend: Arc<dyn Backend>,
}

impl RawEtcd {
    fn connect(etcd: &TestEtcd) -> RawEtcd {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let backend = runtime.block_on(async {
            Arc::new(
                EtcdBackend::connect(&[etcd.endpoint()], Default::default())
                    .await
                    .expect("connect to etcd"),
            ) as Arc<dyn Backend>
        });
        RawEtcd { runtime, backend }
    }

    fn put(&self, key: &str, value: &[u8]) {
        let value = Bytes::copy_from_slice(value);
        self.runtime
            .block_on(self.backend.create(key, value))
            .expect("put");
    }

    fn get(&self, key: &str) -> Bytes {
        let kv = self.runtime.block_on(self.backend.get(key)).expect("get");
        kv.expect("the key exists").value
    }
}

/// Every leaf of `expected` that `served` has must be equal; returns the leaves it lacks.
fn compare_leaves(path: &str, expected: &Value, served: &Value, missing: &mut Vec<String>) {
    match (expected, served) {
        (Value::Object(fields), Value::Object(served_fields)) => {
            for (name, value) in fields {
                match served_fields.get(name) {
                    Some(served) => {
                        compare_leaves(&format!("{path}.{name}"), value, served, missing)
                    }
                    None => missing.push(format!("{path}.{name}")),
                }
            }
        }
        (Value::Array(items), Value::Array(served_items)) => {
            assert_eq!(items.len(), served_items.len(), "{path}");
            for (i, (item, served)) in items.iter().zip(served_items).enumerate() {
                compare_leaves(&format!("{path}[{i}]"), item, served, missing);
            }
        }
        _ => assert_eq!(expected, served, "{path}"),
    }
}

/// The Pod and Job a kube-apiserver wrote (protobuf in etcd under their keys) are served by
/// kubectl with every field their JSON has; a change is seen by a watch and written back in
/// kube's protobuf.
#[test]
fn values_kube_apiserver_wrote_are_served_and_watched() {
    let etcd = TestEtcd::start();
    let raw = RawEtcd::connect(&etcd);
    etcdctl_put(&etcd, "/registry/pods/default/pi-dqtsw", "pod.bin");
    etcdctl_put(&etcd, "/registry/jobs/default/pi", "job.bin");
    let server = Kubecache::start_with(Storage::Etcd(etcd.endpoint()));

    for (args, json) in [
        (["get", "pod", "pi-dqtsw", "-o", "json"], "pod.json"),
        (["get", "job", "pi", "-o", "json"], "job.json"),
    ] {
        let served = parse(&server.kubectl_ok(&args));
        let expected: Value = serde_json::from_slice(&kube_storage(json)).unwrap();
        let mut missing = Vec::new();
        compare_leaves("", &expected, &served, &mut missing);
        assert_eq!(missing, Vec::<String>::new(), "{args:?}");
    }
    let listed = parse(&server.kubectl_ok(&["get", "pods", "-A", "-o", "json"]));
    assert_eq!(listed["items"][0]["metadata"]["name"], "pi-dqtsw");

    let mut watch = Streaming::spawn(server.kubectl_command(&[
        "get",
        "pods",
        "--watch",
        "--output-watch-events",
        "-o",
        "jsonpath={.type} {.object.metadata.labels.touched}{\"\\n\"}",
    ]));
    watch.wait_for(Duration::from_secs(30), |lines| {
        lines.iter().any(|l| l.starts_with("ADDED"))
    });
    server.kubectl_ok(&["label", "pod", "pi-dqtsw", "touched=yes"]);
    watch.wait_for(Duration::from_secs(30), |lines| {
        lines.iter().any(|l| l == "MODIFIED yes")
    });
    drop(watch.kill());
    let stored = raw.get("/registry/pods/default/pi-dqtsw");
    assert!(stored.starts_with(b"k8s\0"), "written back as protobuf");
}

const SECRET_KEY: &str = "/registry/secrets/default/db";
const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

fn encryption_config(keys: &[(&str, &str)]) -> String {
    encryption_config_with("aescbc", keys)
}

fn encryption_config_with(provider: &str, keys: &[(&str, &str)]) -> String {
    let keys: String = keys
        .iter()
        .map(|(name, secret)| format!("          - name: {name}\n            secret: {secret}\n"))
        .collect();
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n    - {provider}:\n        keys:\n{keys}    \
         - identity: {{}}\n"
    )
}

/// Decrypts a kube value with Python's `cryptography`, an implementation independent of the
/// server's: aescbc is `prefix`, a 16-byte IV, AES-CBC with PKCS#7; aesgcm is `prefix`, a
/// 12-byte nonce, AES-GCM whose additional data is the etcd key.
fn python_decrypt(
    cipher: &str,
    stored: &[u8],
    prefix: &str,
    key_b64: &str,
    etcd_key: &str,
) -> Vec<u8> {
    let script = r#"
import base64, sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import padding
cipher, prefix, key, etcd_key = sys.argv[1], sys.argv[2].encode(), base64.b64decode(sys.argv[3]), sys.argv[4]
data = sys.stdin.buffer.read()
assert data.startswith(prefix), data[:40]
body = data[len(prefix):]
if cipher == "aescbc":
    decryptor = Cipher(algorithms.AES(key), modes.CBC(body[:16])).decryptor()
    padded = decryptor.update(body[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    plain = unpadder.update(padded) + unpadder.finalize()
else:
    plain = AESGCM(key).decrypt(body[:12], body[12:], etcd_key.encode())
sys.stdout.buffer.write(plain)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, cipher, prefix, key_b64, etcd_key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stored).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn kubecache_with_config(etcd: &TestEtcd, dir: &std::path::Path, config: &str) -> Kubecache {
    let path = dir.join("encryption.yaml");
    std::fs::write(&path, config).unwrap();
    Kubecache::start_with_args(
        Storage::Etcd(etcd.endpoint()),
        &["--encryption-provider-config", path.to_str().unwrap()],
    )
}

/// Secrets encrypted at rest with kube's aescbc layout; rotation: key2 added first, every
/// Secret rewritten (`kubecache storage rewrite`), key1 removed, and everything still reads.
#[test]
fn secrets_are_encrypted_at_rest_and_keys_rotate() {
    let etcd = TestEtcd::start();
    let raw = RawEtcd::connect(&etcd);
    let dir = tempfile::tempdir().unwrap();
    let mut server =
        kubecache_with_config(&etcd, dir.path(), &encryption_config(&[("key1", KEY1)]));
    server.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2",
    ]);
    server.kubectl_ok(&["create", "configmap", "plain", "--from-literal=a=b"]);
    let stored = raw.get(SECRET_KEY);
    let plain = python_decrypt(
        "aescbc",
        &stored,
        "k8s:enc:aescbc:v1:key1:",
        KEY1,
        SECRET_KEY,
    );
    assert!(plain.starts_with(b"k8s\0"), "a protobuf Secret inside");
    assert!(
        plain.windows(b"hunter2".len()).any(|w| w == b"hunter2"),
        "the secret's value is in the plaintext"
    );
    assert!(
        raw.get("/registry/configmaps/default/plain")
            .starts_with(b"k8s\0")
    );
    server.stop_graceful();

    // Rotation, step 1: key2 writes, key1 still reads.
    let rotating = encryption_config(&[("key2", KEY2), ("key1", KEY1)]);
    let mut server = kubecache_with_config(&etcd, dir.path(), &rotating);
    let path = dir.path().join("encryption.yaml");
    let rewrite = run_bounded(
        {
            let mut command = Command::new(env!("CARGO_BIN_EXE_kubecache"));
            command.args([
                "storage",
                "rewrite",
                "--resource",
                "secrets",
                "--etcd-servers",
                &etcd.endpoint(),
                "--encryption-provider-config",
                path.to_str().unwrap(),
            ]);
            command
        },
        Duration::from_secs(60),
    );
    let out = String::from_utf8_lossy(&rewrite.stdout);
    assert!(
        rewrite.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&rewrite.stderr)
    );
    assert!(out.contains("secrets: "), "{out}");
    let stored = raw.get(SECRET_KEY);
    let plain = python_decrypt(
        "aescbc",
        &stored,
        "k8s:enc:aescbc:v1:key2:",
        KEY2,
        SECRET_KEY,
    );
    assert!(plain.windows(7).any(|w| w == b"hunter2"));
    server.stop_graceful();

    // Step 2: key1 gone; everything reads.
    let server = kubecache_with_config(&etcd, dir.path(), &encryption_config(&[("key2", KEY2)]));
    let secret = parse(&server.kubectl_ok(&["get", "secret", "db", "-o", "json"]));
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    server.kubectl_ok(&["get", "secrets", "-A"]);
}

/// aesgcm's layout, with the etcd key as additional data: decrypted by Python under the key it
/// was written at, refused under another.
#[test]
fn aesgcm_binds_values_to_their_keys() {
    let etcd = TestEtcd::start();
    let raw = RawEtcd::connect(&etcd);
    let dir = tempfile::tempdir().unwrap();
    let server = kubecache_with_config(
        &etcd,
        dir.path(),
        &encryption_config_with("aesgcm", &[("gcm1", KEY1)]),
    );
    server.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal=password=hunter2",
    ]);
    let stored = raw.get(SECRET_KEY);
    let plain = python_decrypt(
        "aesgcm",
        &stored,
        "k8s:enc:aesgcm:v1:gcm1:",
        KEY1,
        SECRET_KEY,
    );
    assert!(plain.starts_with(b"k8s\0") && plain.windows(7).any(|w| w == b"hunter2"));
    // The same bytes under another key do not decrypt: the value is bound to its key.
    raw.put("/registry/secrets/default/moved", &stored);
    let output = server.kubectl(&["get", "secret", "moved"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("data from the storage is not transformable"),
        "{stderr}"
    );
    server.kubectl_ok(&["get", "secret", "db"]);
}

/// Startup refuses a storage media type other than JSON and protobuf, and an encryption
/// configuration that does not parse (naming the line) or names a KMS provider.
#[test]
fn bad_storage_flags_are_startup_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = dir.path().join("bad.yaml");
    std::fs::write(
        &bad_yaml,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets\n",
    )
    .unwrap();
    let kms = dir.path().join("kms.yaml");
    std::fs::write(
        &kms,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
         - resources: [secrets]\n  providers:\n  - kms: {name: vault, endpoint: unix:///k.sock}\n",
    )
    .unwrap();
    for (args, expected) in [
        (
            vec!["--storage-media-type", "application/yaml"],
            "--storage-media-type \"application/yaml\" is not supported",
        ),
        (
            vec!["--encryption-provider-config", bad_yaml.to_str().unwrap()],
            "line 5",
        ),
        (
            vec!["--encryption-provider-config", kms.to_str().unwrap()],
            "KMS providers are not supported",
        ),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubecache"));
        command.args(["serve", "--insecure-port", "0", "--secure-port", "0"]);
        command.args(&args);
        let output = run_bounded(command, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} started");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// The body of `GET path` once it answers `code` (the watch cache follows storage a moment
/// later).
async fn reply_with(server: &TestServer, path: &str, code: u16) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = server.get(path).await;
        if reply.status == code {
            return reply.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} still answers {}: {:#}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server on `raw` behind the storage boundary (protobuf, no encryption).
async fn formatted_server(raw: Arc<dyn Backend>) -> TestServer {
    let backend = FormattedBackend::new(raw, "/registry", StorageFormat::default());
    TestServer::start_with(Arc::new(backend)).await
}

/// A value under /registry that is neither protobuf, JSON nor ciphertext: GET of it and LIST
/// of its resource fail with kube's 500s naming the key, other resources keep working, it is
/// counted, and the unsafe delete (with its authorization and its refusal for a readable
/// object) removes it, after which the resource lists again.
async fn unreadable_values(raw: Arc<dyn Backend>) {
    let server = formatted_server(raw.clone()).await;
    let cm =
        |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    let configmaps = "/api/v1/namespaces/default/configmaps";
    server.post(configmaps, &cm("good")).await.expect(201);
    let key = "/registry/configmaps/default/bad";
    raw.create(key, Bytes::from_static(b"\x00\x01 not an object"))
        .await
        .unwrap();

    let reply = server.get(&format!("{configmaps}/bad")).await;
    let status = reply.expect_status(500, "InternalError");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Internal error occurred: StorageError: corrupt object, Code: 7, Key: \
             /registry/configmaps/default/bad, ResourceVersion: 0, AdditionalErrorMsg: object \
             not decodable revision="
        ),
        "{message}"
    );

    // The watch cache saw the event, failed to list, and serves the error instead of a list
    // without the object.
    for list in [configmaps, "/api/v1/configmaps"] {
        let status = reply_with(&server, list, 500).await;
        assert_eq!(status["reason"], "StoreReadError");
        assert_eq!(
            status["message"],
            "failed to read one or more configmaps from the storage"
        );
        assert_eq!(status["details"]["name"], "list");
        assert_eq!(status["details"]["kind"], "configmaps");
        let causes = status["details"]["causes"].as_array().unwrap();
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0]["reason"], "UnexpectedServerResponse");
        assert_eq!(causes[0]["field"], key);
    }
    // Readable objects of the resource still GET; other resources are untouched.
    server.get(&format!("{configmaps}/good")).await.expect(200);
    server
        .get("/api/v1/namespaces/default/secrets")
        .await
        .expect(200);
    server
        .post(
            "/api/v1/namespaces/default/secrets",
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        )
        .await
        .expect(201);
    let metrics = server.get("/metrics").await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap_or_default()
            .contains("apiserver_storage_decode_errors_total{resource=\"configmaps\"}"),
    );

    // The unsafe delete: refused for a readable object and beside other options.
    let unsafe_delete = json!({"ignoreStoreReadErrorWithClusterBreakingPotential": true});
    let reply = server
        .delete_with(&format!("{configmaps}/good"), &unsafe_delete)
        .await;
    let status = reply.expect_status(422, "Invalid");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("is exclusively used to delete corrupt object(s)")
    );
    let reply = server
        .delete_with(
            &format!("{configmaps}/bad"),
            &json!({"ignoreStoreReadErrorWithClusterBreakingPotential": true, "gracePeriodSeconds": 0}),
        )
        .await;
    let status = reply.expect_status(422, "Invalid");
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "Invalid value: true: cannot be set together with .gracePeriodSeconds"
    );
    let reply = server
        .delete_with(&format!("{configmaps}/bad"), &unsafe_delete)
        .await;
    let status = reply.expect(200);
    assert_eq!(status["status"], "Success");
    assert_eq!(status["details"]["name"], "bad");
    assert!(raw.get(key).await.unwrap().is_none());
    let list = reply_with(&server, configmaps, 200).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["good"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_values_embedded() {
    unreadable_values(Arc::new(EmbeddedBackend::in_memory())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_values_etcd() {
    let etcd = TestEtcd::start();
    let raw = EtcdBackend::connect(&[etcd.endpoint()], Default::default())
        .await
        .expect("connect to etcd");
    unreadable_values(Arc::new(raw)).await;
}

/// DELETE `path` with `body` as `user`, straight into the API entry point (as the
/// authentication layer would hand it over).
async fn delete_as(api: &Arc<Api>, user: &UserInfo, path: &str, body: &Value) -> (u16, Value) {
    let mut request = http::Request::builder()
        .method("DELETE")
        .uri(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    request.extensions_mut().insert(user.clone());
    let response = kubecache_server::dispatch::handle(api.clone(), request).await;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// Under RBAC the unsafe delete needs the `unsafe-delete-ignore-read-errors` verb on the
/// resource, beyond `delete`: 403 naming the verb without it.
#[tokio::test(flavor = "multi_thread")]
async fn unsafe_delete_needs_its_verb() {
    let raw: Arc<dyn Backend> = Arc::new(EmbeddedBackend::in_memory());
    let backend = FormattedBackend::new(raw.clone(), "/registry", StorageFormat::default());
    let mut installed = None;
    let server = TestServer::start_configured(Arc::new(backend), ReadConfig::default(), |api| {
        installed = Some((api.clone(), authz::install(api, &[AuthorizationMode::Rbac])));
    })
    .await;
    let (api, chain) = installed.expect("configured");
    let key = "/registry/configmaps/default/bad";
    raw.create(key, Bytes::from_static(b"garbage"))
        .await
        .unwrap();
    let alice = UserInfo {
        name: "alice".into(),
        groups: vec!["system:authenticated".into()],
        ..UserInfo::default()
    };
    let role = |verbs: &[&str]| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "configmap-deleter"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}]})
    };
    let roles = "/apis/rbac.authorization.k8s.io/v1/clusterroles";
    server.post(roles, &role(&["delete"])).await.expect(201);
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "alice-deletes"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "configmap-deleter"},
        "subjects": [{"kind": "User", "name": "alice"}]});
    server
        .post(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &binding,
        )
        .await
        .expect(201);
    let asked = |verb: &str| Attributes {
        user: alice.clone(),
        verb: verb.into(),
        resource_request: true,
        namespace: "default".into(),
        api_version: "v1".into(),
        resource: "configmaps".into(),
        name: "bad".into(),
        ..Attributes::default()
    };
    let allowed = |verb: &'static str| {
        let (chain, attributes) = (chain.clone(), asked(verb));
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            while chain.authorize(&attributes).await != Decision::Allow {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{verb} never allowed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    allowed("delete").await;
    let path = "/api/v1/namespaces/default/configmaps/bad";
    let option = json!({"ignoreStoreReadErrorWithClusterBreakingPotential": true});
    let (code, status) = delete_as(&api, &alice, path, &option).await;
    assert_eq!(code, 403, "{status:#}");
    assert_eq!(status["reason"], "Forbidden");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("configmaps \"bad\" is forbidden: not permitted to do \"unsafe-delete-ignore-read-errors\""),
        "{status:#}"
    );
    assert!(raw.get(key).await.unwrap().is_some());

    let mut updated = role(&["delete", "unsafe-delete-ignore-read-errors"]);
    let current = server.get(&format!("{roles}/configmap-deleter")).await;
    updated["metadata"]["resourceVersion"] = current.body["metadata"]["resourceVersion"].clone();
    server
        .put(&format!("{roles}/configmap-deleter"), &updated)
        .await
        .expect(200);
    allowed("unsafe-delete-ignore-read-errors").await;
    let (code, status) = delete_as(&api, &alice, path, &option).await;
    assert_eq!(code, 200, "{status:#}");
    assert!(raw.get(key).await.unwrap().is_none());
}
