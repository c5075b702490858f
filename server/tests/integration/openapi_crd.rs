//! OpenAPI for custom resources, end to end: the `kubecache` binary with a fixture CRD
//! (cert-manager's Certificate) applied server-side and Established; `/openapi/v3` lists its
//! group-version, whose document has the CRD's schema as the kind's definition (metadata a
//! reference to ObjectMeta, the group-version-kind, the List kind, the paths); `/openapi/v2`
//! has it in Swagger's form; and the real kubectl uses them: `kubectl explain` names the
//! schema's fields, `create --validate=strict` and `apply` (client-side and server-side)
//! leave validation to the server, which rejects an unknown field, and a `kind: List`
//! manifest is validated by kubectl itself against `/openapi/v2`. On the embedded store and
//! on a real etcd.

use crate::support;

use kubecache_storage::testing::TestEtcd;
use serde_json::Value;
use support::binary::{Kubecache, Storage};

const CRD: &str = "certificates.cert-manager.io";
const GROUP_VERSION: &str = "apis/cert-manager.io/v1";
const DEFINITION: &str = "io.cert-manager.v1.Certificate";

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn fixture_path() -> String {
    kubecache_apiextensions::fixtures::crd_dir()
        .join("cert-manager/cert-manager.io_certificates.yaml")
        .display()
        .to_string()
}

const NAMESPACE: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: certs
";

fn certificate(secret: &str, extra: &str) -> String {
    format!(
        "apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: web
  namespace: certs
spec:
  secretName: {secret}
  dnsNames: [web.example.com]
  issuerRef:
    name: ca
    kind: Issuer{extra}
"
    )
}

fn certificate_list(extra: &str) -> String {
    format!(
        "apiVersion: v1
kind: List
items:
- apiVersion: cert-manager.io/v1
  kind: Certificate
  metadata: {{name: listed, namespace: certs}}
  spec:
    secretName: listed
    issuerRef: {{name: ca}}{extra}
"
    )
}

/// The CRD applied and Established.
fn install(server: &Kubecache) {
    let out = server.kubectl_ok(&["apply", "--server-side", "-f", &fixture_path()]);
    assert_eq!(
        out.trim(),
        format!("customresourcedefinition.apiextensions.k8s.io/{CRD} serverside-applied")
    );
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{CRD}"),
        "--timeout=60s",
    ]);
}

/// The index lists the group-version, and its document has the kind's definition.
fn documents(server: &Kubecache) {
    let (status, index) = server.get_json("/openapi/v3");
    assert_eq!(status, 200, "{index}");
    let url = index["paths"][GROUP_VERSION]["serverRelativeURL"]
        .as_str()
        .unwrap_or_else(|| panic!("{GROUP_VERSION} not in the index: {index}"))
        .to_string();
    assert!(
        index["paths"]["apis/cert-manager.io"].is_object(),
        "{index}"
    );
    let (status, document) = server.get_json(&url);
    assert_eq!(status, 200, "{document}");
    let schemas = &document["components"]["schemas"];
    let certificate = &schemas[DEFINITION];
    assert_eq!(
        certificate["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "cert-manager.io", "kind": "Certificate", "version": "v1"}])
    );
    assert_eq!(
        certificate["properties"]["metadata"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    let issuer_ref = &certificate["properties"]["spec"]["properties"]["issuerRef"];
    assert_eq!(
        issuer_ref["required"],
        serde_json::json!(["name"]),
        "{issuer_ref}"
    );
    assert_eq!(issuer_ref["properties"]["kind"]["type"], "string");
    assert!(schemas[&format!("{DEFINITION}List")].is_object());
    assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object());
    let status_path = &document["paths"]["/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}/status"];
    assert!(status_path["patch"].is_object(), "{}", document["paths"]);

    let (status, v2) = server.get_json("/openapi/v2");
    assert_eq!(status, 200);
    let definition: &Value = &v2["definitions"][DEFINITION];
    assert_eq!(
        definition["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(
        definition["properties"]["spec"]["properties"]["issuerRef"]["required"],
        serde_json::json!(["name"])
    );
}

/// `kubectl explain` renders the CRD's schema.
fn explain(server: &Kubecache) {
    let out = server.kubectl_ok(&["explain", "certificate.spec.issuerRef"]);
    assert!(
        out.starts_with("GROUP:      cert-manager.io\nKIND:       Certificate\nVERSION:    v1\n"),
        "{out}"
    );
    assert!(out.contains("FIELD: issuerRef <Object>"), "{out}");
    assert!(
        out.contains("Reference to the issuer responsible for issuing the certificate."),
        "{out}"
    );
    assert!(out.contains("\n  name\t<string> -required-\n"), "{out}");
    assert!(out.contains("\n  kind\t<string>\n"), "{out}");
    assert!(out.contains("\n  group\t<string>\n"), "{out}");

    let out = server.kubectl_ok(&["explain", "certificates.spec"]);
    assert!(
        out.contains("\n  secretName\t<string> -required-\n"),
        "{out}"
    );
    assert!(out.contains("\n  dnsNames\t<[]string>\n"), "{out}");
    let out = server.kubectl_ok(&["explain", "certificate"]);
    assert!(out.contains("\n  metadata\t<ObjectMeta>\n"), "{out}");
    assert!(out.contains("\n  status\t<Object>\n"), "{out}");

    let output = server.kubectl(&["explain", "certificate.spec.nonsense"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("field \"nonsense\" does not exist"),
        "{}",
        stderr(&output)
    );
}

/// kubectl's validation and apply (client-side and server-side) against the kind.
fn writes(server: &Kubecache) {
    server.kubectl_ok(&["apply", "-f", &server.manifest("ns.yaml", NAMESPACE)]);

    // An unknown field: kubectl leaves strict validation to the server, which refuses it.
    let bad = server.manifest("bad.yaml", &certificate("web-tls", "\n  bogus: 1"));
    for args in [
        vec!["create", "--validate=strict", "-f", &bad],
        vec!["apply", "-f", &bad],
        vec!["apply", "--server-side", "-f", &bad],
    ] {
        let output = server.kubectl(&args);
        assert!(
            !output.status.success(),
            "{args:?} accepted an unknown field"
        );
        let err = stderr(&output);
        assert!(
            err.contains("Error from server (BadRequest)"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("unknown field \"spec.bogus\""),
            "{args:?}: {err}"
        );
    }
    let (status, _) = server.get_json("/apis/cert-manager.io/v1/namespaces/certs/certificates/web");
    assert_eq!(status, 404);

    let good = server.manifest("good.yaml", &certificate("web-tls", ""));
    let out = server.kubectl_ok(&["create", "--validate=strict", "-f", &good]);
    assert_eq!(out.trim(), "certificate.cert-manager.io/web created");
    server.kubectl_ok(&["delete", "-f", &good]);

    // Client-side apply, twice (the second a JSON merge patch from the last-applied state).
    let out = server.kubectl_ok(&["apply", "-f", &good]);
    assert_eq!(out.trim(), "certificate.cert-manager.io/web created");
    let changed = server.manifest("changed.yaml", &certificate("web-tls-2", ""));
    let out = server.kubectl_ok(&["apply", "-f", &changed]);
    assert_eq!(out.trim(), "certificate.cert-manager.io/web configured");
    let (status, object) =
        server.get_json("/apis/cert-manager.io/v1/namespaces/certs/certificates/web");
    assert_eq!(status, 200, "{object}");
    assert_eq!(object["spec"]["secretName"], "web-tls-2");

    // Server-side apply, taking the field over.
    let out = server.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &good]);
    assert_eq!(
        out.trim(),
        "certificate.cert-manager.io/web serverside-applied"
    );
    let (_, object) = server.get_json("/apis/cert-manager.io/v1/namespaces/certs/certificates/web");
    assert_eq!(object["spec"]["secretName"], "web-tls");

    // A List is validated by kubectl against /openapi/v2.
    let bad = server.manifest("bad-list.yaml", &certificate_list("\n    bogus: 1"));
    let output = server.kubectl(&["apply", "-f", &bad]);
    assert!(
        !output.status.success(),
        "a List with an unknown field was applied"
    );
    let err = stderr(&output);
    assert!(err.contains("unknown field \"bogus\""), "{err}");
    assert!(err.contains(DEFINITION), "{err}");
    let good = server.manifest("list.yaml", &certificate_list(""));
    let out = server.kubectl_ok(&["apply", "-f", &good]);
    assert_eq!(out.trim(), "certificate.cert-manager.io/listed created");
}

fn scenario(server: &Kubecache) {
    install(server);
    documents(server);
    explain(server);
    writes(server);
}

#[test]
fn custom_resource_openapi_on_the_embedded_store() {
    let server = Kubecache::start();
    scenario(&server);
}

#[test]
fn custom_resource_openapi_on_etcd() {
    let etcd = TestEtcd::start();
    let server = Kubecache::start_with(Storage::Etcd(etcd.endpoint()));
    scenario(&server);
}
