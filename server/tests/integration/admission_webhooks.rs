//! Admission webhooks against a real HTTPS webhook: `tests/webhook/admission_webhook.py`,
//! its own process, with a certificate the test makes (rcgen) for `127.0.0.1` and
//! `webhook.default.svc`, its CA in the configurations' `caBundle`. A mutating webhook adds a
//! label by JSONPatch (with a warning and an audit annotation), a validating one refuses; one
//! hangs (timeout under Ignore and Fail), one is down; selectors by object and namespace
//! labels; a Service with an EndpointSlice leading to the loopback server; dry runs against
//! side effects; metrics; connections reused. A refused write leaves no object.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::support::server::TestServer;

const MUTATING: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
const VALIDATING: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";

/// The webhook process; killed on drop.
struct Webhook {
    child: Child,
    port: u16,
    ca_pem: String,
    /// Holds the certificate files.
    _dir: tempfile::TempDir,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Webhook {
    fn start() -> Webhook {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "admission-webhook-ca");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["webhook.default.svc".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("tls.crt");
        let key_file = dir.path().join("tls.key");
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/webhook/admission_webhook.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&cert_file)
            .arg(&key_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the webhook (python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the webhook's PORT line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the webhook printed {line:?}"));
        Webhook {
            child,
            port,
            ca_pem: ca.pem(),
            _dir: dir,
        }
    }

    fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }

    fn url(&self, path: &str) -> Value {
        json!({"url": format!("https://127.0.0.1:{}{path}", self.port), "caBundle": self.ca_bundle()})
    }

    /// What the webhook counted: connections that carried a review, reviews, the last one.
    async fn stats(&self) -> Value {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        client
            .get(format!("https://127.0.0.1:{}/stats", self.port))
            .send()
            .await
            .expect("GET /stats")
            .json()
            .await
            .expect("stats JSON")
    }
}

/// A webhook on configmaps CREATE (and UPDATE), with `extra` fields.
fn hook(name: &str, client_config: Value, extra: Value) -> Value {
    let mut hook = json!({
        "name": name,
        "clientConfig": client_config,
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                   "resources": ["configmaps"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    for (key, value) in extra.as_object().unwrap() {
        hook[key] = value.clone();
    }
    hook
}

fn configuration(kind: &str, name: &str, hooks: Vec<Value>) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": hooks,
    })
}

fn configmap(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}})
}

fn configmaps(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/configmaps")
}

/// Creates a webhook configuration and waits until the watch cache (where admission reads
/// configurations) has it.
async fn create_configuration(server: &TestServer, collection: &str, configuration: &Value) {
    server.post(collection, configuration).await.expect(201);
    let name = configuration["metadata"]["name"].as_str().unwrap();
    let path = format!("{collection}/{name}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server
        .get_with(&path, &[("resourceVersion", "0")])
        .await
        .status
        != 200
    {
        assert!(Instant::now() < deadline, "{path} never reached the cache");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// POSTs `body` until it is answered `code` (what a webhook sees follows the watch cache,
/// shortly after a write), for at most 5 s; the last answer.
async fn post_until(
    server: &TestServer,
    path: &str,
    body: &Value,
    code: u16,
) -> crate::support::server::Reply {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = server.post(path, body).await;
        if reply.status == code || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Mutation by JSONPatch (warning, audit annotation), refusal by object and by namespace
/// labels, metrics, connection reuse.
async fn mutate_and_refuse(server: &TestServer) {
    let webhook = Webhook::start();
    server.create_namespace("hooks").await;
    create_configuration(
        server,
        MUTATING,
        &configuration(
            "MutatingWebhookConfiguration",
            "label",
            vec![hook(
                "label.example.com",
                webhook.url("/mutate-label"),
                json!({}),
            )],
        ),
    )
    .await;
    let created = server
        .post(
            &configmaps("hooks"),
            &configmap("mutated", json!({"app": "a"})),
        )
        .await;
    let body = created.expect(201);
    assert_eq!(
        body["metadata"]["labels"]["webhook-mutated"], "true",
        "{body:#}"
    );
    assert_eq!(body["metadata"]["labels"]["app"], "a");
    assert_eq!(
        created.warnings(),
        vec!["299 - \"mutated by the test webhook\"".to_string()]
    );
    // What the webhook was sent: kube's AdmissionReview v1.
    let review = webhook.stats().await["last"].clone();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    let request = &review["request"];
    assert_eq!(request["operation"], "CREATE");
    assert_eq!(request["namespace"], "hooks");
    assert_eq!(request["name"], "mutated");
    assert_eq!(
        request["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(
        request["resource"],
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    );
    assert_eq!(request["requestKind"], request["kind"]);
    assert_eq!(request["dryRun"], false);
    assert_eq!(request["options"]["kind"], "CreateOptions");
    assert!(request["userInfo"]["username"].is_string());
    assert!(request["uid"].as_str().is_some_and(|u| !u.is_empty()));

    // Refused by object labels: nothing written.
    create_configuration(
        server,
        VALIDATING,
        &configuration(
            "ValidatingWebhookConfiguration",
            "deny",
            vec![hook(
                "deny.example.com",
                webhook.url("/deny"),
                json!({"objectSelector": {"matchLabels": {"deny": "yes"}}}),
            )],
        ),
    )
    .await;
    let refused = server
        .post(
            &configmaps("hooks"),
            &configmap("refused", json!({"deny": "yes"})),
        )
        .await;
    refused.expect_status(403, "Forbidden");
    assert_eq!(
        refused.message(),
        "admission webhook \"deny.example.com\" denied the request: no thanks"
    );
    server
        .get(&format!("{}/refused", configmaps("hooks")))
        .await
        .expect(404);
    // An update that adds the label is refused too; without it, allowed.
    server
        .post(
            &configmaps("hooks"),
            &configmap("allowed", json!({"deny": "no"})),
        )
        .await
        .expect(201);
    let mut relabelled = configmap("allowed", json!({"deny": "yes"}));
    relabelled["metadata"]["resourceVersion"] = json!(null);
    server
        .put(&format!("{}/allowed", configmaps("hooks")), &relabelled)
        .await
        .expect_status(403, "Forbidden");

    // Refused by namespace labels.
    server
        .post(
            "/api/v1/namespaces",
            &json!({"metadata": {"name": "locked", "labels": {"hooks": "deny"}}}),
        )
        .await
        .expect(201);
    create_configuration(
        server,
        VALIDATING,
        &configuration(
            "ValidatingWebhookConfiguration",
            "deny-namespace",
            vec![hook(
                "deny-namespace.example.com",
                webhook.url("/deny"),
                json!({"namespaceSelector": {"matchLabels": {"hooks": "deny"}}}),
            )],
        ),
    )
    .await;
    let refused = server
        .post(&configmaps("locked"), &configmap("in-locked", json!({})))
        .await;
    assert!(
        refused
            .message()
            .starts_with("admission webhook \"deny-namespace.example.com\" denied the request"),
        "{:#}",
        refused.body
    );
    server
        .post(&configmaps("hooks"), &configmap("in-hooks", json!({})))
        .await
        .expect(201);

    // Many writes, few connections: they are kept and reused.
    for i in 0..10 {
        server
            .post(
                &configmaps("hooks"),
                &configmap(&format!("many-{i}"), json!({})),
            )
            .await
            .expect(201);
    }
    let stats = webhook.stats().await;
    assert!(
        stats["reviews"].as_u64().unwrap() >= 14,
        "every create was reviewed: {stats}"
    );
    assert!(
        stats["connections"].as_u64().unwrap() <= 3,
        "connections are reused: {stats}"
    );

    let metrics = server.get("/metrics").await.body;
    let metrics = metrics.as_str().expect("text");
    assert!(
        metrics.contains(
            "apiserver_admission_webhook_request_total{code=\"200\",name=\"label.example.com\",\
             operation=\"CREATE\",rejected=\"false\",type=\"admit\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "apiserver_admission_webhook_rejection_count{error_type=\"no_error\",\
         name=\"deny.example.com\",operation=\"CREATE\",rejection_code=\"403\",type=\"validating\"} 1"
    ));
    assert!(metrics.contains(
        "apiserver_admission_webhook_admission_duration_seconds_count{name=\"deny.example.com\",\
         operation=\"CREATE\",rejected=\"true\",type=\"validating\"}"
    ));
}

/// A webhook that hangs past its timeout and one that is down, under Ignore and Fail.
async fn failure_policies(server: &TestServer) {
    let webhook = Webhook::start();
    server.create_namespace("failing").await;
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let down_config = json!({
        "url": format!("https://127.0.0.1:{down}/"),
        "caBundle": webhook.ca_bundle(),
    });
    let by_label = |value: &str| json!({"matchLabels": {"case": value}});
    create_configuration(
        server,
        VALIDATING,
            &configuration(
                "ValidatingWebhookConfiguration",
                "failing",
                vec![
                    hook(
                        "hang-ignore.example.com",
                        webhook.url("/hang"),
                        json!({"timeoutSeconds": 1, "failurePolicy": "Ignore",
                               "objectSelector": by_label("hang-ignore")}),
                    ),
                    hook(
                        "hang-fail.example.com",
                        webhook.url("/hang"),
                        json!({"timeoutSeconds": 1, "failurePolicy": "Fail",
                               "objectSelector": by_label("hang-fail")}),
                    ),
                    hook(
                        "down-ignore.example.com",
                        down_config.clone(),
                        json!({"failurePolicy": "Ignore", "objectSelector": by_label("down-ignore")}),
                    ),
                    hook(
                        "down-fail.example.com",
                        down_config,
                        json!({"objectSelector": by_label("down-fail")}),
                    ),
                    hook(
                        "bad-bundle.example.com",
                        json!({"url": format!("https://127.0.0.1:{}/allow", webhook.port),
                               "caBundle": base64::engine::general_purpose::STANDARD.encode("not a certificate")}),
                        json!({"objectSelector": by_label("bad-bundle")}),
                    ),
                ],
            ),
    )
    .await;

    let started = Instant::now();
    server
        .post(
            &configmaps("failing"),
            &configmap("a", json!({"case": "hang-ignore"})),
        )
        .await
        .expect(201);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "waited for the timeout only: {took:?}"
    );

    let failed = server
        .post(
            &configmaps("failing"),
            &configmap("b", json!({"case": "hang-fail"})),
        )
        .await;
    failed.expect_status(500, "InternalError");
    assert_eq!(
        failed.message(),
        format!(
            "Internal error occurred: failed calling webhook \"hang-fail.example.com\": failed to \
             call webhook: Post \"https://127.0.0.1:{}/hang?timeout=1s\": context deadline exceeded",
            webhook.port
        )
    );
    server
        .get(&format!("{}/b", configmaps("failing")))
        .await
        .expect(404);

    server
        .post(
            &configmaps("failing"),
            &configmap("c", json!({"case": "down-ignore"})),
        )
        .await
        .expect(201);
    let failed = server
        .post(
            &configmaps("failing"),
            &configmap("d", json!({"case": "down-fail"})),
        )
        .await;
    failed.expect_status(500, "InternalError");
    assert!(
        failed.message().starts_with(&format!(
            "Internal error occurred: failed calling webhook \"down-fail.example.com\": failed to \
             call webhook: Post \"https://127.0.0.1:{down}/?timeout=10s\": dial tcp 127.0.0.1:{down}:"
        )),
        "{}",
        failed.message()
    );
    server
        .get(&format!("{}/d", configmaps("failing")))
        .await
        .expect(404);
    // A caBundle that is no certificate: every call fails, as failurePolicy says.
    let failed = server
        .post(
            &configmaps("failing"),
            &configmap("e", json!({"case": "bad-bundle"})),
        )
        .await;
    failed.expect_status(500, "InternalError");
    assert!(
        failed
            .message()
            .ends_with("tls: invalid peer certificate: UnknownIssuer"),
        "{}",
        failed.message()
    );

    let metrics = server.get("/metrics").await.body;
    assert!(
        metrics.as_str().unwrap().contains(
            "apiserver_admission_webhook_rejection_count{error_type=\"calling_webhook_error\",\
             name=\"hang-fail.example.com\",operation=\"CREATE\",rejection_code=\"503\",\
             type=\"validating\"} 1"
        ),
        "{metrics}"
    );
}

/// `clientConfig.service`: the Service's EndpointSlice leads to the loopback webhook.
async fn service_reference(server: &TestServer) {
    let webhook = Webhook::start();
    server
        .post(
            "/api/v1/namespaces/default/services",
            &json!({"metadata": {"name": "webhook"},
                    "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}),
        )
        .await
        .expect(201);
    let config = json!({"service": {"namespace": "default", "name": "webhook", "path": "/mutate-label"},
                        "caBundle": webhook.ca_bundle()});
    create_configuration(
        server,
        MUTATING,
        &configuration(
            "MutatingWebhookConfiguration",
            "by-service",
            vec![hook("service.example.com", config, json!({}))],
        ),
    )
    .await;
    // No endpoint yet: the call fails (Fail), naming the service URL as kube does.
    let failed = server
        .post(&configmaps("default"), &configmap("early", json!({})))
        .await;
    failed.expect_status(500, "InternalError");
    assert_eq!(
        failed.message(),
        "Internal error occurred: failed calling webhook \"service.example.com\": failed to call \
         webhook: Post \"https://webhook.default.svc:443/mutate-label?timeout=10s\": no endpoints \
         available for service \"webhook\""
    );
    server
        .post(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            &json!({
                "metadata": {"name": "webhook-abc", "labels": {"kubernetes.io/service-name": "webhook"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
                "ports": [{"name": "https", "port": webhook.port, "protocol": "TCP"}],
            }),
        )
        .await
        .expect(201);
    // Once the slice is seen (as kube's informers see it, shortly).
    let created = post_until(
        server,
        &configmaps("default"),
        &configmap("through-service", json!({})),
        201,
    )
    .await;
    assert_eq!(
        created.expect(201)["metadata"]["labels"]["webhook-mutated"],
        "true"
    );
}

/// Dry runs: called with `dryRun: true` when side-effect free; a stored webhook with side
/// effects (which v1 no longer accepts on write) refuses them, as kube does.
async fn dry_run_and_side_effects(server: &TestServer) {
    let webhook = Webhook::start();
    server.create_namespace("dry").await;
    let mut some = configuration(
        "ValidatingWebhookConfiguration",
        "side-effects",
        vec![hook(
            "some.example.com",
            webhook.url("/allow"),
            json!({"sideEffects": "Some"}),
        )],
    );
    server
        .post(VALIDATING, &some)
        .await
        .expect_status(422, "Invalid");
    // As an object written by an older kube-apiserver would be stored.
    some["metadata"]["uid"] = json!("7d3c9f8e-0000-4000-8000-000000000001");
    some["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    server
        .backend
        .create(
            "/registry/validatingwebhookconfigurations/side-effects",
            serde_json::to_vec(&some).unwrap().into(),
        )
        .await
        .unwrap();
    let path = format!("{}?dryRun=All", configmaps("dry"));
    let refused = post_until(server, &path, &configmap("dry", json!({})), 400).await;
    refused.expect_status(400, "BadRequest");
    assert_eq!(
        refused.message(),
        "admission webhook \"some.example.com\" does not support dry run"
    );
    // Not a dry run: called, allowed.
    server
        .post(&configmaps("dry"), &configmap("real", json!({})))
        .await
        .expect(201);
    server
        .delete(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/side-effects",
        )
        .await
        .expect(200);
    create_configuration(
        server,
        VALIDATING,
        &configuration(
            "ValidatingWebhookConfiguration",
            "dry-safe",
            vec![hook(
                "dry-safe.example.com",
                webhook.url("/allow"),
                json!({"sideEffects": "NoneOnDryRun"}),
            )],
        ),
    )
    .await;
    // Once the new configuration is seen, the dry run reaches the webhook.
    let deadline = Instant::now() + Duration::from_secs(5);
    let review = loop {
        server
            .post(&path, &configmap("dry-ok", json!({})))
            .await
            .expect(201);
        let review = webhook.stats().await["last"].clone();
        if review["request"]["name"] == "dry-ok" || Instant::now() > deadline {
            break review;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(review["request"]["dryRun"], true);
    assert_eq!(review["request"]["options"]["dryRun"], json!(["All"]));
    server
        .get(&format!("{}/dry-ok", configmaps("dry")))
        .await
        .expect(404);
}

/// `matchConditions` (CEL on the object and the request), `reinvocationPolicy: IfNeeded`,
/// and `matchPolicy: Equivalent` (an autoscaling/v1 write sent as the autoscaling/v2 object
/// the rule names; `Exact` does not match it).
async fn conditions_reinvocation_equivalence(server: &TestServer) {
    let webhook = Webhook::start();
    server.create_namespace("cel").await;
    create_configuration(
        server,
        VALIDATING,
        &configuration(
            "ValidatingWebhookConfiguration",
            "conditions",
            vec![hook(
                "conditions.example.com",
                webhook.url("/deny"),
                json!({"matchConditions": [
                    {"name": "creates", "expression": "request.operation == 'CREATE'"},
                    {"name": "named", "expression": "object.metadata.name.startsWith('deny-')"},
                ]}),
            )],
        ),
    )
    .await;
    server
        .post(&configmaps("cel"), &configmap("deny-me", json!({})))
        .await
        .expect_status(403, "Forbidden");
    server
        .post(&configmaps("cel"), &configmap("keep-me", json!({})))
        .await
        .expect(201);
    server
        .delete(&format!("{VALIDATING}/conditions"))
        .await
        .expect(200);

    // "a-allow" (IfNeeded) runs first; "b-label" then changes the object: "a-allow" is
    // called again, once.
    let on = |label: &str| json!({"objectSelector": {"matchLabels": {"case": label}}});
    let mut reinvoked = hook("a-allow.example.com", webhook.url("/allow"), on("reinvoke"));
    reinvoked["reinvocationPolicy"] = json!("IfNeeded");
    create_configuration(
        server,
        MUTATING,
        &configuration("MutatingWebhookConfiguration", "a-allow", vec![reinvoked]),
    )
    .await;
    create_configuration(
        server,
        MUTATING,
        &configuration(
            "MutatingWebhookConfiguration",
            "b-label",
            vec![hook(
                "b-label.example.com",
                webhook.url("/mutate-label"),
                on("reinvoke"),
            )],
        ),
    )
    .await;
    let before = webhook.stats().await["paths"].clone();
    server
        .post(
            &configmaps("cel"),
            &configmap("twice", json!({"case": "reinvoke"})),
        )
        .await
        .expect(201);
    let after = webhook.stats().await["paths"].clone();
    let calls = |stats: &Value, path: &str| stats[path].as_u64().unwrap_or(0);
    assert_eq!(
        calls(&after, "/allow") - calls(&before, "/allow"),
        2,
        "{after}"
    );
    assert_eq!(
        calls(&after, "/mutate-label") - calls(&before, "/mutate-label"),
        1
    );

    // Equivalent versions: the rule names autoscaling/v2 only.
    let hpa_rule = json!([{"operations": ["CREATE"], "apiGroups": ["autoscaling"],
                           "apiVersions": ["v2"], "resources": ["horizontalpodautoscalers"]}]);
    let mut equivalent = hook("equivalent.example.com", webhook.url("/allow"), json!({}));
    equivalent["rules"] = hpa_rule.clone();
    let mut exact = hook(
        "exact.example.com",
        webhook.url("/deny"),
        json!({"matchPolicy": "Exact"}),
    );
    exact["rules"] = hpa_rule;
    create_configuration(
        server,
        VALIDATING,
        &configuration(
            "ValidatingWebhookConfiguration",
            "hpa",
            vec![equivalent, exact],
        ),
    )
    .await;
    let hpa = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50},
    });
    server
        .post(
            "/apis/autoscaling/v1/namespaces/cel/horizontalpodautoscalers",
            &hpa,
        )
        .await
        .expect(201);
    let request = webhook.stats().await["last"]["request"].clone();
    assert_eq!(
        request["kind"],
        json!({"group": "autoscaling", "version": "v2", "kind": "HorizontalPodAutoscaler"})
    );
    assert_eq!(request["requestKind"]["version"], "v1");
    assert_eq!(request["object"]["apiVersion"], "autoscaling/v2");
    assert_eq!(
        request["object"]["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50,
        "{request:#}"
    );
    // Exact: the v2 rule does not catch a v1 write, so the denying webhook was not called;
    // a v2 write meets both.
    let mut v2 = hpa.clone();
    v2["apiVersion"] = json!("autoscaling/v2");
    v2["metadata"]["name"] = json!("web2");
    v2["spec"] = json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                        "maxReplicas": 3});
    server
        .post(
            "/apis/autoscaling/v2/namespaces/cel/horizontalpodautoscalers",
            &v2,
        )
        .await
        .expect_status(403, "Forbidden");
}

on_both_stores!(
    webhook_conditions_reinvocation_equivalence_embedded,
    webhook_conditions_reinvocation_equivalence_etcd,
    conditions_reinvocation_equivalence
);
on_both_stores!(
    webhooks_mutate_and_refuse_embedded,
    webhooks_mutate_and_refuse_etcd,
    mutate_and_refuse
);
on_both_stores!(
    webhook_failure_policies_embedded,
    webhook_failure_policies_etcd,
    failure_policies
);
on_both_stores!(
    webhook_service_reference_embedded,
    webhook_service_reference_etcd,
    service_reference
);
on_both_stores!(
    webhook_dry_run_embedded,
    webhook_dry_run_etcd,
    dry_run_and_side_effects
);

/// kubectl against the real binary: a mutating webhook's warning reaches kubectl's stderr,
/// a refusal its error.
#[test]
fn kubectl_sees_webhook_warnings_and_refusals() {
    use crate::support::binary::{Kubecache, Storage};
    use crate::support::kubectl::{create, server_object, stderr, wait_until};

    let webhook = Webhook::start();
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_log = audit_dir.path().join("audit.log");
    let server = Kubecache::start_with_args(
        Storage::Memory,
        &["--audit-log-path", audit_log.to_str().unwrap()],
    );
    let mut label = configuration(
        "MutatingWebhookConfiguration",
        "label",
        vec![hook(
            "label.example.com",
            webhook.url("/mutate-label"),
            json!({}),
        )],
    );
    label["webhooks"][0]["objectSelector"] = json!({"matchLabels": {"hooked": "yes"}});
    create(&server, "label.json", &label.to_string());
    let deny = configuration(
        "ValidatingWebhookConfiguration",
        "deny",
        vec![hook(
            "deny.example.com",
            webhook.url("/deny"),
            json!({"objectSelector": {"matchLabels": {"deny": "yes"}}}),
        )],
    );
    create(&server, "deny.json", &deny.to_string());
    let hooked = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "hooked", "labels": {"hooked": "yes"}}});
    for name in [
        "mutatingwebhookconfigurations/label",
        "validatingwebhookconfigurations/deny",
    ] {
        let path = format!("/apis/admissionregistration.k8s.io/v1/{name}?resourceVersion=0");
        wait_until("the configuration reaches the cache", || {
            (server.get_json(&path).0 == 200).then_some(())
        });
    }
    let file = server.manifest("hooked.json", &hooked.to_string());
    let output = server.kubectl(&["create", "-f", &file]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Warning: mutated by the test webhook"),
        "{}",
        stderr(&output)
    );
    let stored = server_object(&server, "/api/v1/namespaces/default/configmaps/hooked");
    assert_eq!(stored["metadata"]["labels"]["webhook-mutated"], "true");
    // The webhook's audit annotation, under its name, in the request's audit event.
    let annotated = wait_until("the create's audit event", || {
        let log = std::fs::read_to_string(&audit_log).unwrap_or_default();
        log.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|event| {
                event["stage"] == "ResponseComplete"
                    && event["annotations"]["label.example.com/mutated"] == "label"
            })
    });
    assert_eq!(annotated["verb"], "create", "{annotated:#}");
    assert_eq!(annotated["objectRef"]["resource"], "configmaps");
    assert_eq!(annotated["responseStatus"]["code"], 201);

    let refused = json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "refused", "labels": {"deny": "yes"}}});
    let file = server.manifest("refused.json", &refused.to_string());
    let output = server.kubectl(&["create", "-f", &file]);
    assert!(!output.status.success());
    assert!(
        stderr(&output)
            .contains("admission webhook \"deny.example.com\" denied the request: no thanks"),
        "{}",
        stderr(&output)
    );
}
