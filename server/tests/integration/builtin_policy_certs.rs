//! The built-in resources of admissionregistration.k8s.io/v1, apiregistration.k8s.io/v1,
//! certificates.k8s.io/v1 and flowcontrol.apiserver.k8s.io/v1, table-driven on the embedded
//! store and on etcd: create (with kube's defaults), get, list, watch, update, delete, and one
//! invalid object each (422 with kube's field cause, nothing written); the CSR's subresources
//! (`approval`, `status`) and their rules; discovery of `certificatesigningrequests/approval`;
//! `kubectl certificate approve|deny` end to end and `kubectl get csr`'s columns.

use crate::support;

use base64::Engine;
use serde_json::{Value, json};
use support::binary::Kubecache;
use support::kubectl::{create, header, lines, stderr};
use support::server::TestServer;

/// A PEM certificate signing request for `common_name`, base64 as JSON carries bytes.
fn csr_request(common_name: &str) -> String {
    let key = rcgen::KeyPair::generate().expect("a key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let pem = params
        .serialize_request(&key)
        .expect("a CSR")
        .pem()
        .expect("PEM");
    base64::engine::general_purpose::STANDARD.encode(pem)
}

fn csr(name: &str) -> Value {
    json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": csr_request(name),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"],
            "expirationSeconds": 3600,
        },
    })
}

fn rule() -> Value {
    json!({"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
           "resources": ["deployments"]})
}

fn webhook_configuration(kind: &str, name: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [{
            "name": "check.example.com",
            "clientConfig": {"service": {"namespace": "default", "name": "hook"}},
            "rules": [rule()],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    })
}

/// One resource of the table: where it lives, a valid object, what the server defaults in
/// it, and an invalid one with the field kube names.
struct Case {
    path: &'static str,
    kind: &'static str,
    valid: Value,
    /// (JSON pointer, value) the created object has although the client did not send it.
    defaulted: Vec<(&'static str, Value)>,
    invalid: Value,
    /// The field of the invalid object's cause, and the start of its message.
    cause: (&'static str, &'static str),
}

fn cases() -> Vec<Case> {
    let mut bad_webhook = webhook_configuration("ValidatingWebhookConfiguration", "bad-hooks");
    bad_webhook["webhooks"][0]["clientConfig"] = json!({"url": "http://hook.example.com/x"});
    let mut bad_mutating = webhook_configuration("MutatingWebhookConfiguration", "bad-hooks");
    bad_mutating["webhooks"][0]["timeoutSeconds"] = json!(31);
    let mut bad_csr = csr("bad-csr");
    bad_csr["spec"]["request"] = json!("bm90IGEgQ1NS");
    vec![
        Case {
            path: "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            kind: "MutatingWebhookConfiguration",
            valid: webhook_configuration("MutatingWebhookConfiguration", "hooks"),
            defaulted: vec![
                ("/webhooks/0/reinvocationPolicy", json!("Never")),
                ("/webhooks/0/timeoutSeconds", json!(10)),
                ("/webhooks/0/failurePolicy", json!("Fail")),
                ("/webhooks/0/clientConfig/service/port", json!(443)),
            ],
            invalid: bad_mutating,
            cause: (
                "webhooks[0].timeoutSeconds",
                "Invalid value: 31: the timeout value must be between 1 and 30 seconds",
            ),
        },
        Case {
            path: "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            kind: "ValidatingWebhookConfiguration",
            valid: webhook_configuration("ValidatingWebhookConfiguration", "hooks"),
            defaulted: vec![
                ("/webhooks/0/matchPolicy", json!("Equivalent")),
                ("/webhooks/0/namespaceSelector", json!({})),
                ("/webhooks/0/rules/0/scope", json!("*")),
            ],
            invalid: bad_webhook,
            cause: (
                "webhooks[0].clientConfig.url",
                "Invalid value: \"http\": 'https' is the only allowed URL scheme",
            ),
        },
        Case {
            path: "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
            kind: "ValidatingAdmissionPolicy",
            valid: json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": "replicas"},
                "spec": {
                    "matchConstraints": {"resourceRules": [rule()]},
                    "validations": [{"expression": "object.spec.replicas <= 5"}],
                },
            }),
            defaulted: vec![
                ("/spec/failurePolicy", json!("Fail")),
                ("/spec/matchConstraints/matchPolicy", json!("Equivalent")),
                ("/metadata/generation", json!(1)),
            ],
            invalid: json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": "bad-policy"},
                "spec": {
                    "matchConstraints": {"resourceRules": [rule()]},
                    "validations": [{"expression": "object.spec.replicas <="}],
                },
            }),
            cause: (
                "spec.validations[0].expression",
                "Invalid value: \"object.spec.replicas <=\": compilation failed: ERROR: <input>:1:",
            ),
        },
        Case {
            path: "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
            kind: "ValidatingAdmissionPolicyBinding",
            valid: json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": "replicas"},
                "spec": {"policyName": "replicas", "validationActions": ["Deny"],
                         "paramRef": {"name": "limits", "namespace": "default"}},
            }),
            defaulted: vec![("/spec/paramRef/parameterNotFoundAction", json!("Deny"))],
            invalid: json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": "bad-binding"},
                "spec": {"policyName": "replicas", "validationActions": ["Block"]},
            }),
            cause: (
                "spec.validationActions[0]",
                "Unsupported value: \"Block\": supported values: \"Audit\", \"Deny\", \"Warn\"",
            ),
        },
        Case {
            path: "/apis/apiregistration.k8s.io/v1/apiservices",
            kind: "APIService",
            valid: json!({
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": "v1beta1.metrics.k8s.io"},
                "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                         "groupPriorityMinimum": 100, "versionPriority": 100,
                         "service": {"namespace": "kube-system", "name": "metrics-server"},
                         "insecureSkipTLSVerify": true},
            }),
            defaulted: vec![("/spec/service/port", json!(443))],
            invalid: json!({
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": "v1.custom.example.com"},
                "spec": {"group": "metrics.k8s.io", "version": "v1",
                         "groupPriorityMinimum": 100, "versionPriority": 100},
            }),
            cause: (
                "metadata.name",
                "Invalid value: \"v1.custom.example.com\": must be `spec.version+\".\"+spec.group`",
            ),
        },
        Case {
            path: "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            kind: "CertificateSigningRequest",
            valid: csr("csr-1"),
            // The requester is the server's to record: the plain port's user.
            defaulted: vec![("/spec/username", json!("system:unsecured"))],
            invalid: bad_csr,
            cause: (
                "spec.request",
                "Invalid value: \"bm90IGEgQ1NS\": PEM block type must be CERTIFICATE REQUEST",
            ),
        },
        Case {
            path: "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas",
            kind: "FlowSchema",
            valid: json!({
                "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                "kind": "FlowSchema",
                "metadata": {"name": "nodes"},
                "spec": {"priorityLevelConfiguration": {"name": "system"},
                         "rules": [{"subjects": [{"kind": "Group", "group": {"name": "system:nodes"}}],
                                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]},
            }),
            defaulted: vec![("/spec/matchingPrecedence", json!(1000))],
            invalid: json!({
                "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                "kind": "FlowSchema",
                "metadata": {"name": "bad-schema"},
                "spec": {"priorityLevelConfiguration": {"name": "system"}, "matchingPrecedence": 20000},
            }),
            cause: (
                "spec.matchingPrecedence",
                "Invalid value: 20000: must not be greater than 10000",
            ),
        },
        Case {
            path: "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations",
            kind: "PriorityLevelConfiguration",
            valid: json!({
                "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                "kind": "PriorityLevelConfiguration",
                "metadata": {"name": "batch"},
                "spec": {"type": "Limited", "limited": {"limitResponse": {"type": "Queue", "queuing": {}}}},
            }),
            defaulted: vec![
                ("/spec/limited/nominalConcurrencyShares", json!(30)),
                ("/spec/limited/limitResponse/queuing/queues", json!(64)),
                ("/spec/limited/limitResponse/queuing/handSize", json!(8)),
            ],
            invalid: json!({
                "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                "kind": "PriorityLevelConfiguration",
                "metadata": {"name": "bad-level"},
                "spec": {"type": "Limited"},
            }),
            cause: (
                "spec.limited",
                "Required value: must not be empty when type is Limited",
            ),
        },
    ]
}

on_both_stores!(
    every_kind_is_served_end_to_end_embedded,
    every_kind_is_served_end_to_end_etcd,
    every_kind_is_served_end_to_end
);

async fn every_kind_is_served_end_to_end(server: &TestServer) {
    for case in cases() {
        let name = case.valid["metadata"]["name"].as_str().unwrap().to_string();
        let item = format!("{}/{name}", case.path);
        // Watched from now: the objects created at start are not this test's.
        let before = server.get(case.path).await.expect(200).clone();
        let from = before["metadata"]["resourceVersion"].as_str().unwrap();
        let mut watch = server
            .watch(case.path, &[("watch", "true"), ("resourceVersion", from)])
            .await;

        let created = server
            .post(case.path, &case.valid)
            .await
            .expect(201)
            .clone();
        assert_eq!(created["kind"], case.kind, "{created:#}");
        for (pointer, value) in &case.defaulted {
            assert_eq!(
                created.pointer(pointer),
                Some(value),
                "{} {pointer}: {created:#}",
                case.kind
            );
        }
        let added = watch.expect_event("ADDED", &name).await;
        assert_eq!(added["object"], created);

        assert_eq!(server.get(&item).await.expect(200), &created);
        let list = server.get(case.path).await;
        let list = list.expect(200);
        assert_eq!(list["kind"], format!("{}List", case.kind));
        assert!(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["metadata"]["name"] == name.as_str()),
            "{list:#}"
        );

        let mut labeled = created.clone();
        labeled["metadata"]["labels"] = json!({"team": "platform"});
        let updated = server.put(&item, &labeled).await.expect(200).clone();
        assert_eq!(updated["metadata"]["labels"], json!({"team": "platform"}));
        let modified = watch.expect_event("MODIFIED", &name).await;
        assert_eq!(modified["object"], updated);

        // The invalid object: kube's cause, and nothing written.
        let bad_name = case.invalid["metadata"]["name"].as_str().unwrap();
        let reply = server.post(case.path, &case.invalid).await;
        let body = reply.expect_status(422, "Invalid");
        assert_eq!(body["details"]["kind"], case.kind, "{body:#}");
        let (field, message) = case.cause;
        assert!(
            body["details"]["causes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["field"] == field
                    && c["message"].as_str().unwrap().starts_with(message)),
            "{} wants {field}: {message}; got {body:#}",
            case.kind
        );
        server
            .get(&format!("{}/{bad_name}", case.path))
            .await
            .expect_status(404, "NotFound");

        server.delete(&item).await.expect(200);
        let deleted = watch.expect_event("DELETED", &name).await;
        assert_eq!(
            deleted["object"]["metadata"]["uid"],
            created["metadata"]["uid"]
        );
        server.get(&item).await.expect_status(404, "NotFound");
    }
}

fn condition(kind: &str, reason: &str) -> Value {
    json!({"type": kind, "status": "True", "reason": reason, "message": reason})
}

on_both_stores!(
    csr_subresources_follow_kubes_rules_embedded,
    csr_subresources_follow_kubes_rules_etcd,
    csr_subresources_follow_kubes_rules
);

async fn csr_subresources_follow_kubes_rules(server: &TestServer) {
    const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    let created = server.post(CSRS, &csr("node")).await.expect(201).clone();
    // A client cannot create an approved request, nor claim another requester.
    assert_eq!(created["status"], json!({}), "{created:#}");

    // The main resource cannot approve, nor change the spec.
    let mut approved = created.clone();
    approved["status"]["conditions"] = json!([condition("Approved", "Test")]);
    approved["spec"]["usages"] = json!(["server auth"]);
    let through_main = server
        .put(&format!("{CSRS}/node"), &approved)
        .await
        .expect(200)
        .clone();
    assert_eq!(through_main["status"], json!({}));
    assert_eq!(through_main["spec"], created["spec"]);

    // The status subresource cannot approve either.
    let body = server
        .put(&format!("{CSRS}/node/status"), &approved)
        .await
        .expect_status(422, "Invalid")
        .clone();
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "Forbidden: updates may not add a condition of type \"Approved\"",
        "{body:#}"
    );

    // The approval subresource does: only the conditions change, with their timestamps.
    let reply = server
        .put(&format!("{CSRS}/node/approval"), &approved)
        .await;
    let after = reply.expect(200).clone();
    assert_eq!(after["spec"], created["spec"]);
    let conditions = after["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0]["type"], "Approved");
    assert!(conditions[0]["lastUpdateTime"].is_string(), "{after:#}");
    assert!(conditions[0]["lastTransitionTime"].is_string(), "{after:#}");
    assert_eq!(
        server
            .get(&format!("{CSRS}/node/approval"))
            .await
            .expect(200),
        &after
    );

    // Approved and Denied exclude each other; an approval is never withdrawn.
    let mut both = after.clone();
    both["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(condition("Denied", "Test"));
    let body = server
        .put(&format!("{CSRS}/node/approval"), &both)
        .await
        .expect_status(422, "Invalid")
        .clone();
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "status.conditions[1].type"
    );
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"
    );
    let withdrawn = server
        .patch(
            &format!("{CSRS}/node/approval"),
            "application/merge-patch+json",
            &json!({"status": {"conditions": []}}),
        )
        .await;
    let body = withdrawn.expect_status(422, "Invalid");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "Forbidden: updates may not remove a condition of type \"Approved\""
    );

    // The signer issues through status: the certificate once, the approval kept.
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["node".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem();
    let issued = base64::engine::general_purpose::STANDARD.encode(certificate);
    let reply = server
        .patch(
            &format!("{CSRS}/node/status"),
            "application/merge-patch+json",
            &json!({"status": {"certificate": issued}}),
        )
        .await;
    let signed = reply.expect(200).clone();
    assert_eq!(signed["status"]["certificate"], issued.as_str());
    assert_eq!(
        signed["status"]["conditions"],
        after["status"]["conditions"]
    );
    let reply = server
        .patch(
            &format!("{CSRS}/node/status"),
            "application/merge-patch+json",
            &json!({"status": {"certificate": "bm90IGEgY2VydA=="}}),
        )
        .await;
    assert_eq!(
        reply.expect_status(422, "Invalid")["details"]["causes"][0]["field"],
        "status.certificate"
    );

    // kube's field selector of CSRs: the signer.
    for (signer, count) in [
        ("kubernetes.io/kube-apiserver-client", 1),
        ("example.com/x", 0),
    ] {
        let selector = format!("spec.signerName={signer}");
        let list = server.get_with(CSRS, &[("fieldSelector", &selector)]).await;
        assert_eq!(
            list.expect(200)["items"].as_array().unwrap().len(),
            count,
            "{selector}"
        );
    }

    // Discovery lists the approval subresource as kube does.
    let discovery = server.get("/apis/certificates.k8s.io/v1").await;
    let names: Vec<&str> = discovery.expect(200)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "certificatesigningrequests",
            "certificatesigningrequests/approval",
            "certificatesigningrequests/status"
        ]
    );
    // Other resources have no approval subresource.
    server
        .get("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/x/approval")
        .await
        .expect(404);
}

const CSR_YAML: &str = "apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: NAME
spec:
  request: REQUEST
  signerName: example.com/signer
  expirationSeconds: 7200
  usages:
  - client auth
";

#[test]
fn kubectl_certificate_approve_and_deny() {
    let server = Kubecache::start();
    for name in ["alice", "bob"] {
        let manifest = CSR_YAML
            .replace("NAME", name)
            .replace("REQUEST", &csr_request(name));
        let out = create(&server, &format!("{name}.yaml"), &manifest);
        assert!(
            out.contains(&format!(
                "certificatesigningrequest.certificates.k8s.io/{name} created"
            )),
            "{out}"
        );
    }

    let table = server.kubectl_ok(&["get", "csr"]);
    assert_eq!(
        header(&table),
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ],
        "{table}"
    );
    let rows = lines(&table);
    let alice: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(alice[0], "alice", "{table}");
    assert_eq!(
        alice[2..],
        ["example.com/signer", "system:unsecured", "120m", "Pending"],
        "{table}"
    );

    let out = server.kubectl_ok(&["certificate", "approve", "alice"]);
    assert_eq!(
        out.trim(),
        "certificatesigningrequest.certificates.k8s.io/alice approved"
    );
    let out = server.kubectl_ok(&["certificate", "deny", "bob"]);
    assert_eq!(
        out.trim(),
        "certificatesigningrequest.certificates.k8s.io/bob denied"
    );
    let table = server.kubectl_ok(&["get", "csr", "--no-headers"]);
    let conditions: Vec<&str> = lines(&table)
        .iter()
        .map(|row| row.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(conditions, ["Approved", "Denied"], "{table}");

    let (_, alice) =
        server.get_json("/apis/certificates.k8s.io/v1/certificatesigningrequests/alice");
    let condition = &alice["status"]["conditions"][0];
    assert_eq!(condition["type"], "Approved");
    assert_eq!(condition["reason"], "KubectlApprove");
    assert!(condition["lastTransitionTime"].is_string(), "{alice:#}");

    // Approving again changes nothing; approving the denied one is refused.
    server.kubectl_ok(&["certificate", "approve", "alice"]);
    let refused = server.kubectl(&["certificate", "approve", "bob"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("already Denied"),
        "{}",
        stderr(&refused)
    );
}

/// What kube-apiserver creates at start: a local APIService per built-in group-version,
/// available, and the mandatory APF objects, printed with kube's columns.
#[test]
fn kubectl_sees_the_bootstrap_apiservices_and_flow_control() {
    let server = Kubecache::start();
    let out = server.kubectl_ok(&["get", "apiservices"]);
    assert_eq!(
        header(&out),
        ["NAME", "SERVICE", "AVAILABLE", "AGE"],
        "{out}"
    );
    let rows: Vec<Vec<&str>> = lines(&out)
        .iter()
        .skip(1)
        .map(|row| row.split_whitespace().collect())
        .collect();
    for name in [
        "v1.",
        "v1.apps",
        "v1.certificates.k8s.io",
        "v1.flowcontrol.apiserver.k8s.io",
    ] {
        let row = rows
            .iter()
            .find(|row| row[0] == name)
            .unwrap_or_else(|| panic!("no APIService {name}: {out}"));
        assert_eq!(row[1..3], ["Local", "True"], "{out}");
    }
    let (_, core) = server.get_json("/apis/apiregistration.k8s.io/v1/apiservices/v1.");
    assert_eq!(core["spec"]["groupPriorityMinimum"], 18000, "{core:#}");
    assert_eq!(
        core["metadata"]["labels"]["kube-aggregator.kubernetes.io/automanaged"],
        "onstart"
    );

    let out = server.kubectl_ok(&["get", "flowschemas"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "PRIORITYLEVEL",
            "MATCHINGPRECEDENCE",
            "DISTINGUISHERMETHOD",
            "AGE",
            "MISSINGPL"
        ],
        "{out}"
    );
    let rows: Vec<Vec<&str>> = lines(&out)
        .iter()
        .skip(1)
        .map(|row| row.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(
        rows[0][..4],
        ["catch-all", "catch-all", "10000", "ByUser"],
        "{out}"
    );
    assert_eq!(rows[1][..4], ["exempt", "exempt", "1", "*"], "{out}");

    let out = server.kubectl_ok(&["get", "prioritylevelconfigurations"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "TYPE",
            "NOMINALCONCURRENCYSHARES",
            "QUEUES",
            "HANDSIZE",
            "QUEUELENGTHLIMIT",
            "AGE"
        ],
        "{out}"
    );
    let rows: Vec<Vec<&str>> = lines(&out)
        .iter()
        .skip(1)
        .map(|row| row.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..6],
        ["catch-all", "Limited", "5", "<none>", "<none>", "<none>"],
        "{out}"
    );
    assert_eq!(
        rows[1][..6],
        ["exempt", "Exempt", "<none>", "<none>", "<none>", "<none>"],
        "{out}"
    );
}
