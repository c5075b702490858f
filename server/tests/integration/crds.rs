//! CustomResourceDefinitions end to end, with kubectl and raw HTTP against the real binary,
//! each case once on the embedded store and once on a real etcd: the published CRDs of
//! cert-manager and the Prometheus operator (`shared/fixtures/crds`, found through
//! `KUBECACHE_FIXTURES` or the nearest ancestor that has it) apply with server-side apply and
//! become Established and discoverable; custom objects go through create, Table output,
//! pruning and strict field validation, merge/JSON patch, server-side apply, watch and
//! delete; invalid objects and invalid CRDs get kube's 422 causes; conflicting names are
//! refused; a deleted CRD stops being served and takes its objects with it.

use std::sync::Arc;

use kubecache_core::storage::{Backend, ListOptions};
use kubecache_storage::etcd::{EtcdBackend, EtcdOptions};
use kubecache_storage::testing::TestEtcd;
use serde_json::{Value, json};

use crate::support::binary::{Kubecache, Storage, Streaming};
use crate::support::kubectl::{header, lines, parse, stderr, stdout, wait_gone, wait_until};

/// Runs `$scenario(&Kubecache, &Storage)` as two tests: `$embedded` on the binary's
/// in-memory embedded store, `$etcd` on a real etcd the test starts.
macro_rules! on_both_binaries {
    ($embedded:ident, $etcd:ident, $scenario:ident) => {
        #[test]
        fn $embedded() {
            let server = Kubecache::start();
            $scenario(&server, &Storage::Memory);
        }

        #[test]
        fn $etcd() {
            let etcd = TestEtcd::start();
            let storage = Storage::Etcd(etcd.endpoint());
            let server = Kubecache::start_with(storage.clone());
            $scenario(&server, &storage);
        }
    };
}

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const CERTIFICATES_CRD: &str = "cert-manager/cert-manager.io_certificates.yaml";
const SERVICEMONITORS_CRD: &str = "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml";
const SCRAPECONFIGS_CRD: &str = "prometheus-operator/monitoring.coreos.com_scrapeconfigs.yaml";
const CERTIFICATES: &str = "/apis/cert-manager.io/v1/namespaces/default/certificates";

/// One fixture CRD: its file (for `kubectl -f`) and its contents.
struct Fixture {
    path: String,
    crd: Value,
}

impl Fixture {
    /// The fixture at `relative` (`cert-manager/cert-manager.io_certificates.yaml`).
    fn load(relative: &str) -> Fixture {
        let path = kubecache_apiextensions::fixtures::crd_dir().join(relative);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let crd = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        Fixture {
            path: path.to_str().expect("a UTF-8 path").to_string(),
            crd,
        }
    }

    /// Every fixture (16: cert-manager's 6 and the Prometheus operator's 10).
    fn all() -> Vec<Fixture> {
        let mut relative = Vec::new();
        for project in std::fs::read_dir(kubecache_apiextensions::fixtures::crd_dir())
            .expect("the fixtures directory")
        {
            let project = project.expect("a readable entry").path();
            for file in std::fs::read_dir(&project).expect("a project directory") {
                let path = file.expect("a readable entry").path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    let name = path
                        .strip_prefix(kubecache_apiextensions::fixtures::crd_dir())
                        .expect("under the fixtures dir");
                    relative.push(name.to_str().expect("UTF-8").to_string());
                }
            }
        }
        relative.sort();
        assert_eq!(relative.len(), 16, "fixture CRDs: {relative:?}");
        relative.iter().map(|r| Fixture::load(r)).collect()
    }

    fn name(&self) -> &str {
        self.crd["metadata"]["name"]
            .as_str()
            .expect("metadata.name")
    }

    fn group(&self) -> &str {
        self.crd["spec"]["group"].as_str().expect("spec.group")
    }

    fn names(&self) -> &Value {
        &self.crd["spec"]["names"]
    }

    fn plural(&self) -> &str {
        self.names()["plural"].as_str().expect("plural")
    }

    fn kind(&self) -> &str {
        self.names()["kind"].as_str().expect("kind")
    }

    fn short_names(&self) -> Vec<&str> {
        self.names()["shortNames"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    fn namespaced(&self) -> bool {
        self.crd["spec"]["scope"] == "Namespaced"
    }

    fn served_versions(&self) -> Vec<&Value> {
        self.crd["spec"]["versions"]
            .as_array()
            .expect("spec.versions")
            .iter()
            .filter(|v| v["served"] == true)
            .collect()
    }

    /// The Table header kubectl prints for the storage version: `NAME`, then the printer
    /// columns of priority 0 (all of them with `-o wide`), upper-cased.
    fn table_header(&self, wide: bool) -> Vec<String> {
        let version = self.crd["spec"]["versions"]
            .as_array()
            .expect("spec.versions")
            .iter()
            .find(|v| v["storage"] == true)
            .expect("a storage version");
        let mut columns = vec!["NAME".to_string()];
        let printer = version["additionalPrinterColumns"].as_array();
        match printer {
            Some(printer) => columns.extend(
                printer
                    .iter()
                    .filter(|c| wide || c["priority"].as_i64().unwrap_or(0) == 0)
                    .map(|c| c["name"].as_str().expect("a column name").to_uppercase()),
            ),
            // kube's default columns for a CRD without printer columns.
            None => columns.push("AGE".to_string()),
        }
        columns
    }

    /// `kubectl apply --server-side` of the CRD, then waits for Established.
    fn install(&self, server: &Kubecache) {
        server.kubectl_ok(&["apply", "--server-side", "-f", &self.path]);
        wait_established(server, self.name());
    }
}

/// Polls `kubectl get crd` until the CRD's Established condition is True (bounded by
/// [`crate::support::kubectl::WAIT`]).
fn wait_established(server: &Kubecache, name: &str) {
    wait_until(&format!("{name} Established"), || {
        let output = server.kubectl(&[
            "get",
            "crd",
            name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ]);
        (output.status.success() && stdout(&output).trim() == "True").then_some(())
    });
}

/// A CRD's condition of `condition_type`, read over HTTP.
fn condition(server: &Kubecache, crd: &str, condition_type: &str) -> Value {
    let (status, body) = server.get_json(&format!("{CRDS}/{crd}"));
    assert_eq!(status, 200, "{body}");
    body["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == condition_type))
        .cloned()
        .unwrap_or_else(|| panic!("no {condition_type} condition on {crd}: {body:#}"))
}

/// A request with a JSON body straight to the server: status and body as JSON.
fn send(
    server: &Kubecache,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).expect("serializable");
    let (status, reply) = server.http(method, path, Some(content_type), Some(&bytes));
    let reply = serde_json::from_slice(&reply).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&reply)
        )
    });
    (status, reply)
}

/// `kubectl ... -o json` of one object.
fn kubectl_json(server: &Kubecache, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    parse(&server.kubectl_ok(&args))
}

/// Asserts a 422 Invalid `Status` about `kind`/`name` whose causes are exactly `causes`
/// (`(reason, field, message)`), each also quoted in the message.
#[track_caller]
fn assert_invalid(
    status: u16,
    body: &Value,
    group: &str,
    kind: &str,
    name: &str,
    causes: &[(&str, &str, &str)],
) {
    assert_eq!(status, 422, "{body:#}");
    assert_eq!(body["kind"], "Status", "{body:#}");
    assert_eq!(body["reason"], "Invalid", "{body:#}");
    assert_eq!(body["code"], 422, "{body:#}");
    assert_eq!(body["details"]["group"], group, "{body:#}");
    assert_eq!(body["details"]["kind"], kind, "{body:#}");
    assert_eq!(body["details"]["name"], name, "{body:#}");
    let expected: Vec<Value> = causes
        .iter()
        .map(|(reason, field, message)| json!({"reason": reason, "field": field, "message": message}))
        .collect();
    assert_eq!(body["details"]["causes"], json!(expected), "{body:#}");
    let message = body["message"].as_str().expect("a message");
    assert!(
        message.starts_with(&format!("{kind}.{group} \"{name}\" is invalid: ")),
        "{message}"
    );
    for (_, field, cause) in causes {
        assert!(message.contains(&format!("{field}: {cause}")), "{message}");
    }
}

/// Every fixture CRD applies with server-side apply (some are too big for client-side
/// apply's annotation) and becomes Established; kubectl api-resources, legacy discovery and
/// aggregated discovery list each of them with its kind, scope and short names.
fn fixtures_establish_and_are_discovered(server: &Kubecache, _: &Storage) {
    let fixtures = Fixture::all();
    for fixture in &fixtures {
        server.kubectl_ok(&["apply", "--server-side", "-f", &fixture.path]);
    }
    for fixture in &fixtures {
        wait_established(server, fixture.name());
        let accepted = condition(server, fixture.name(), "NamesAccepted");
        assert_eq!(
            (&accepted["status"], &accepted["reason"]),
            (&json!("True"), &json!("NoConflicts")),
            "{}: {accepted}",
            fixture.name()
        );
    }

    // kubectl api-resources: NAME SHORTNAMES APIVERSION NAMESPACED KIND.
    let listed = server.kubectl_ok(&["api-resources"]);
    for fixture in &fixtures {
        let row: Vec<&str> = lines(&listed)
            .into_iter()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|row| row[0] == fixture.plural() && row.last() == Some(&fixture.kind()))
            .unwrap_or_else(|| {
                panic!(
                    "{} not in kubectl api-resources:\n{listed}",
                    fixture.plural()
                )
            });
        let short_names = fixture.short_names().join(",");
        let api_version = if short_names.is_empty() {
            assert_eq!(row.len(), 4, "{row:?}");
            row[1]
        } else {
            assert_eq!((row.len(), row[1]), (5, short_names.as_str()), "{row:?}");
            row[2]
        };
        let (group, _) = api_version.split_once('/').expect("group/version");
        assert_eq!(group, fixture.group(), "{row:?}");
        let namespaced = row[row.len() - 2];
        assert_eq!(namespaced, fixture.namespaced().to_string(), "{row:?}");
    }

    // Legacy discovery: /apis/<group>/<version> of every served version.
    for fixture in &fixtures {
        for version in fixture.served_versions() {
            let version = version["name"].as_str().expect("a version name");
            let path = format!("/apis/{}/{version}", fixture.group());
            let (status, list) = server.get_json(&path);
            assert_eq!(status, 200, "{path}: {list}");
            assert_eq!(list["kind"], "APIResourceList", "{list}");
            let entry = list["resources"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["name"] == fixture.plural()))
                .unwrap_or_else(|| panic!("{} not in {path}: {list:#}", fixture.plural()));
            assert_eq!(entry["kind"], fixture.kind(), "{entry}");
            assert_eq!(entry["namespaced"], fixture.namespaced(), "{entry}");
            assert_eq!(
                entry["shortNames"].as_array().map(Vec::len).unwrap_or(0),
                fixture.short_names().len(),
                "{entry}"
            );
            assert_eq!(
                entry["categories"],
                fixture.names()["categories"],
                "{entry}"
            );
        }
    }

    // Aggregated discovery of /apis.
    let (status, body) = server.http_accepting("GET", "/apis", AGGREGATED, None, None);
    assert_eq!(status, 200);
    let aggregated: Value = serde_json::from_slice(&body).expect("aggregated discovery is JSON");
    assert_eq!(aggregated["kind"], "APIGroupDiscoveryList", "{aggregated}");
    for fixture in &fixtures {
        let group = aggregated["items"]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .find(|g| g["metadata"]["name"] == fixture.group())
            })
            .unwrap_or_else(|| panic!("group {} not in aggregated discovery", fixture.group()));
        for version in fixture.served_versions() {
            let entry = group["versions"]
                .as_array()
                .and_then(|v| v.iter().find(|v| v["version"] == version["name"]))
                .and_then(|v| v["resources"].as_array())
                .and_then(|r| r.iter().find(|r| r["resource"] == fixture.plural()))
                .unwrap_or_else(|| {
                    panic!(
                        "{}/{} not in aggregated discovery: {group:#}",
                        fixture.plural(),
                        version["name"]
                    )
                });
            assert_eq!(entry["responseKind"]["kind"], fixture.kind(), "{entry}");
            let scope = if fixture.namespaced() {
                "Namespaced"
            } else {
                "Cluster"
            };
            assert_eq!(entry["scope"], scope, "{entry}");
            let short_names: Vec<&str> = entry["shortNames"]
                .as_array()
                .map(|n| n.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert_eq!(short_names, fixture.short_names(), "{entry}");
        }
    }

    // The Prometheus operator's group has v1 and v1alpha1 (from different CRDs): kube prefers
    // v1 however the CRDs were added.
    let (status, group) = server.get_json("/apis/monitoring.coreos.com");
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["preferredVersion"]["version"], "v1", "{group}");
    assert_eq!(group["versions"][0]["version"], "v1", "{group}");
    let monitoring = aggregated["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|g| g["metadata"]["name"] == "monitoring.coreos.com")
        })
        .expect("monitoring.coreos.com in aggregated discovery");
    assert_eq!(monitoring["versions"][0]["version"], "v1", "{monitoring:#}");
}

on_both_binaries!(
    fixture_crds_establish_and_are_discovered_on_embedded,
    fixture_crds_establish_and_are_discovered_on_etcd,
    fixtures_establish_and_are_discovered
);

/// One kind of custom object driven through its life with kubectl.
struct Lifecycle {
    crd: &'static str,
    /// The resource's plural and a short name kubectl resolves.
    plural: &'static str,
    short_name: &'static str,
    /// A valid object named `{name}` in `default` (YAML, `{name}` substituted).
    object: &'static str,
    /// A field path the schema does not know (and the JSON to put there).
    unknown_field: (&'static str, &'static str),
    /// A JSON merge patch and a jsonpath that reads back what it set.
    merge_patch: (&'static str, &'static str, &'static str),
    /// A JSON patch and a jsonpath that reads back what it set.
    json_patch: (&'static str, &'static str, &'static str),
    /// The object, for server-side apply, with one spec field changed (`{name}` substituted),
    /// and a jsonpath reading it back.
    applied: (&'static str, &'static str, &'static str),
    /// What a different value of a patched field looks like in an apply that conflicts with
    /// kubectl-patch's ownership.
    conflicting_apply: &'static str,
}

impl Lifecycle {
    fn object(&self, name: &str) -> String {
        self.object.replace("{name}", name)
    }
}

const CERTIFICATE: Lifecycle = Lifecycle {
    crd: CERTIFICATES_CRD,
    plural: "certificates",
    short_name: "cert",
    object: "apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {name}
  namespace: default
spec:
  secretName: {name}-tls
  dnsNames: [web.example.com]
  issuerRef:
    name: ca
    kind: Issuer
",
    unknown_field: ("spec.bogus", "{\"spec\":{\"bogus\":1}}"),
    merge_patch: (
        "{\"spec\":{\"secretName\":\"web-tls-2\"}}",
        "{.spec.secretName}",
        "web-tls-2",
    ),
    json_patch: (
        "[{\"op\":\"add\",\"path\":\"/spec/dnsNames/-\",\"value\":\"www.example.com\"}]",
        "{.spec.dnsNames}",
        "[\"web.example.com\",\"www.example.com\"]",
    ),
    applied: (
        "apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {name}
  namespace: default
spec:
  secretName: web-tls-2
  duration: 2160h
  issuerRef:
    name: ca
    kind: Issuer
",
        "{.spec.duration}",
        "2160h",
    ),
    conflicting_apply: "apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {name}
  namespace: default
spec:
  secretName: another
  issuerRef:
    name: ca
",
};

const SERVICE_MONITOR: Lifecycle = Lifecycle {
    crd: SERVICEMONITORS_CRD,
    plural: "servicemonitors",
    short_name: "smon",
    object: "apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {name}
  namespace: default
  labels: {team: a}
spec:
  selector:
    matchLabels: {app: web}
  endpoints:
  - port: http
    interval: 30s
",
    unknown_field: (
        "spec.selector.bogus",
        "{\"spec\":{\"selector\":{\"bogus\":1}}}",
    ),
    merge_patch: (
        "{\"spec\":{\"jobLabel\":\"app\"}}",
        "{.spec.jobLabel}",
        "app",
    ),
    json_patch: (
        "[{\"op\":\"replace\",\"path\":\"/spec/endpoints/0/interval\",\"value\":\"10s\"}]",
        "{.spec.endpoints[0].interval}",
        "10s",
    ),
    applied: (
        "apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {name}
  namespace: default
spec:
  jobLabel: app
  sampleLimit: 100
  selector:
    matchLabels: {app: web}
  endpoints:
  - port: http
    interval: 10s
",
        "{.spec.sampleLimit}",
        "100",
    ),
    conflicting_apply: "apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {name}
  namespace: default
spec:
  jobLabel: other
  selector:
    matchLabels: {app: web}
  endpoints:
  - port: http
",
};

/// A JSON value as a string, merged into `base` (an object as YAML) at the top.
fn with_unknown_field(base: &str, patch: &str) -> String {
    let mut object: Value = serde_yaml_ng::from_str(base).expect("YAML");
    let patch: Value = serde_json::from_str(patch).expect("JSON");
    merge(&mut object, &patch);
    serde_json::to_string(&object).expect("serializable")
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn jsonpath(server: &Kubecache, resource: &str, name: &str, path: &str) -> String {
    server.kubectl_ok(&[
        "get",
        resource,
        name,
        "-n",
        "default",
        "-o",
        &format!("jsonpath={path}"),
    ])
}

/// Create, Table output, pruning and strict validation, merge and JSON patch, server-side
/// apply (with a conflict), watch and delete of one custom kind.
fn custom_object_lifecycle(server: &Kubecache, case: &Lifecycle) {
    let fixture = Fixture::load(case.crd);
    fixture.install(server);
    let resource = case.plural;

    // A watch from the start: kubectl prints EVENT NAME ... rows as they come.
    let mut watch = Streaming::spawn(server.kubectl_command(&[
        "get",
        resource,
        "-n",
        "default",
        "-w",
        "--output-watch-events",
    ]));

    // Create, and read back as a Table with the CRD's printer columns.
    let file = server.manifest("web.yaml", &case.object("web"));
    let created = server.kubectl_ok(&["create", "-f", &file]);
    assert!(created.contains("/web created"), "{created}");
    let table = server.kubectl_ok(&["get", case.short_name, "-n", "default"]);
    assert_eq!(header(&table), fixture.table_header(false), "{table}");
    let rows = lines(&table);
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[1].starts_with("web "), "{table}");
    let wide = server.kubectl_ok(&["get", resource, "web", "-n", "default", "-o", "wide"]);
    assert_eq!(header(&wide), fixture.table_header(true), "{wide}");
    if resource == "certificates" {
        // The Secret column is `.spec.secretName`.
        assert_eq!(
            lines(&table)[1].split_whitespace().nth(1),
            Some("web-tls"),
            "{table}"
        );
    }

    // An unknown field: strict validation refuses it with kube's BadRequest; ignored, it
    // is pruned.
    let (unknown_path, unknown_json) = case.unknown_field;
    let with_unknown = with_unknown_field(&case.object("pruned"), unknown_json);
    let file = server.manifest("unknown.json", &with_unknown);
    let strict = server.kubectl(&["create", "--validate=strict", "-f", &file]);
    assert!(
        !strict.status.success(),
        "strict create of an unknown field succeeded"
    );
    let message = stderr(&strict);
    assert!(
        message.contains(&format!(
            "Error from server (BadRequest): error when creating \"{file}\": strict decoding error: unknown field \"{unknown_path}\""
        )),
        "{message}"
    );
    let (status, _) = server.get_json(&format!(
        "/apis/{}/v1/namespaces/default/{resource}/pruned",
        fixture.group()
    ));
    assert_eq!(status, 404, "a refused object was stored");
    server.kubectl_ok(&["create", "--validate=false", "-f", &file]);
    let yaml = server.kubectl_ok(&["get", resource, "pruned", "-n", "default", "-o", "yaml"]);
    let pruned: Value = serde_yaml_ng::from_str(&yaml).expect("kubectl -o yaml prints YAML");
    let expected: Value = serde_yaml_ng::from_str(&case.object("pruned")).expect("YAML");
    assert_eq!(pruned["spec"], expected["spec"], "{yaml}");
    assert_eq!(pruned["metadata"]["generation"], 1, "{yaml}");
    assert!(pruned["metadata"]["uid"].is_string(), "{yaml}");

    // JSON merge patch, then JSON patch: spec changes bump the generation.
    let (patch, path, value) = case.merge_patch;
    server.kubectl_ok(&[
        "patch",
        resource,
        "web",
        "-n",
        "default",
        "--type=merge",
        "-p",
        patch,
    ]);
    assert_eq!(jsonpath(server, resource, "web", path), value);
    let (patch, path, value) = case.json_patch;
    server.kubectl_ok(&[
        "patch",
        resource,
        "web",
        "-n",
        "default",
        "--type=json",
        "-p",
        patch,
    ]);
    assert_eq!(jsonpath(server, resource, "web", path), value);
    assert_eq!(
        jsonpath(server, resource, "web", "{.metadata.generation}"),
        "3"
    );
    // Strategic merge patch is for built-in kinds only.
    let smp = server.kubectl(&[
        "patch",
        resource,
        "web",
        "-n",
        "default",
        "-p",
        case.merge_patch.0,
    ]);
    assert!(!smp.status.success());
    assert!(
        stderr(&smp).contains("application/strategic-merge-patch+json is not supported"),
        "{}",
        stderr(&smp)
    );

    // Server-side apply: a field kubectl-patch owns with a different value conflicts; the
    // same values plus a new field apply.
    let file = server.manifest(
        "conflict.yaml",
        &case.conflicting_apply.replace("{name}", "web"),
    );
    let conflict = server.kubectl(&["apply", "--server-side", "-f", &file]);
    assert!(!conflict.status.success(), "a conflicting apply succeeded");
    assert!(
        stderr(&conflict).contains("conflict"),
        "{}",
        stderr(&conflict)
    );
    assert!(
        stderr(&conflict).contains("kubectl-patch"),
        "{}",
        stderr(&conflict)
    );
    let (applied, path, value) = case.applied;
    let file = server.manifest("applied.yaml", &applied.replace("{name}", "web"));
    server.kubectl_ok(&["apply", "--server-side", "-f", &file]);
    assert_eq!(jsonpath(server, resource, "web", path), value);
    let object = kubectl_json(
        server,
        &[
            "get",
            resource,
            "web",
            "-n",
            "default",
            "--show-managed-fields",
        ],
    );
    let managers: Vec<(&str, &str)> = object["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or(""),
                m["operation"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(managers.contains(&("kubectl", "Apply")), "{managers:?}");
    assert!(
        managers.contains(&("kubectl-patch", "Update")),
        "{managers:?}"
    );

    // Delete.
    server.kubectl_ok(&["delete", resource, "web", "pruned", "-n", "default"]);
    wait_gone(
        server,
        &format!(
            "/apis/{}/v1/namespaces/default/{resource}/web",
            fixture.group()
        ),
    );

    // The watch saw it all: web and pruned added, web modified, both deleted.
    let seen = watch.wait_for(crate::support::kubectl::WAIT, |seen| {
        seen.iter().filter(|l| l.starts_with("DELETED")).count() == 2
    });
    let events: Vec<(String, String)> = seen
        .iter()
        .skip(1)
        .map(|l| {
            let mut columns = l.split_whitespace();
            let event = columns.next().unwrap_or("").to_string();
            (event, columns.next().unwrap_or("").to_string())
        })
        .collect();
    assert_eq!(header(&seen[0])[..2], ["EVENT", "NAME"], "{seen:?}");
    let of = |name: &str| -> Vec<&str> {
        events
            .iter()
            .filter(|(_, n)| n == name)
            .map(|(e, _)| e.as_str())
            .collect()
    };
    // Three writes changed web after its create (merge, JSON patch, apply).
    assert_eq!(
        of("web"),
        ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED"],
        "{seen:?}"
    );
    assert_eq!(of("pruned"), ["ADDED", "DELETED"], "{seen:?}");
    watch.kill();
}

fn certificate_lifecycle(server: &Kubecache, _: &Storage) {
    custom_object_lifecycle(server, &CERTIFICATE);
}

fn service_monitor_lifecycle(server: &Kubecache, _: &Storage) {
    custom_object_lifecycle(server, &SERVICE_MONITOR);
}

on_both_binaries!(
    certificate_lifecycle_on_embedded,
    certificate_lifecycle_on_etcd,
    certificate_lifecycle
);
on_both_binaries!(
    service_monitor_lifecycle_on_embedded,
    service_monitor_lifecycle_on_etcd,
    service_monitor_lifecycle
);

fn certificate(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Objects the schema refuses get kube's 422 with its field paths and messages, and are not
/// stored; strategic merge patch is 415 for custom resources.
fn invalid_objects_are_refused(server: &Kubecache, _: &Storage) {
    Fixture::load(CERTIFICATES_CRD).install(server);
    Fixture::load(SCRAPECONFIGS_CRD).install(server);
    let post = |path: &str, body: &Value| send(server, "POST", path, "application/json", body);

    let (status, body) = post(
        CERTIFICATES,
        &certificate(
            "wrong-type",
            json!({"secretName": 5, "issuerRef": {"name": "ca"}}),
        ),
    );
    assert_invalid(
        status,
        &body,
        "cert-manager.io",
        "Certificate",
        "wrong-type",
        &[(
            "FieldValueTypeInvalid",
            "spec.secretName",
            "Invalid value: \"integer\": spec.secretName in body must be of type string: \"integer\"",
        )],
    );

    let (status, body) = post(
        CERTIFICATES,
        &certificate("missing", json!({"issuerRef": {}})),
    );
    assert_invalid(
        status,
        &body,
        "cert-manager.io",
        "Certificate",
        "missing",
        &[
            (
                "FieldValueRequired",
                "spec.issuerRef.name",
                "Required value",
            ),
            ("FieldValueRequired", "spec.secretName", "Required value"),
        ],
    );

    let (status, body) = post(
        CERTIFICATES,
        &certificate(
            "enum",
            json!({"secretName": "s", "issuerRef": {"name": "ca"}, "privateKey": {"algorithm": "DSA"}}),
        ),
    );
    assert_invalid(
        status,
        &body,
        "cert-manager.io",
        "Certificate",
        "enum",
        &[(
            "FieldValueNotSupported",
            "spec.privateKey.algorithm",
            "Unsupported value: \"DSA\": supported values: \"RSA\", \"ECDSA\", \"Ed25519\"",
        )],
    );

    // A CEL rule of the Prometheus operator: at most one authentication method.
    let scrape_configs = "/apis/monitoring.coreos.com/v1alpha1/namespaces/default/scrapeconfigs";
    let (status, body) = post(
        scrape_configs,
        &json!({
            "apiVersion": "monitoring.coreos.com/v1alpha1",
            "kind": "ScrapeConfig",
            "metadata": {"name": "two-auths"},
            "spec": {"basicAuth": {}, "authorization": {"type": "Bearer"}},
        }),
    );
    assert_invalid(
        status,
        &body,
        "monitoring.coreos.com",
        "ScrapeConfig",
        "two-auths",
        &[(
            "FieldValueInvalid",
            "spec",
            "Invalid value: at most one of basicAuth, authorization, or oauth2 can be configured",
        )],
    );
    // One method is fine.
    let (status, body) = post(
        scrape_configs,
        &json!({
            "apiVersion": "monitoring.coreos.com/v1alpha1",
            "kind": "ScrapeConfig",
            "metadata": {"name": "one-auth"},
            "spec": {"authorization": {"type": "Bearer"}},
        }),
    );
    assert_eq!(status, 201, "{body:#}");

    for name in ["wrong-type", "missing", "enum"] {
        let (status, _) = server.get_json(&format!("{CERTIFICATES}/{name}"));
        assert_eq!(status, 404, "invalid {name} was stored");
    }
    let (status, list) = server.get_json(CERTIFICATES);
    assert_eq!((status, &list["items"]), (200, &json!([])), "{list}");

    // An update is validated too: a merge patch that breaks the schema is refused.
    let (status, body) = post(
        CERTIFICATES,
        &certificate(
            "valid",
            json!({"secretName": "s", "issuerRef": {"name": "ca"}}),
        ),
    );
    assert_eq!(status, 201, "{body:#}");
    let path = format!("{CERTIFICATES}/valid");
    let (status, body) = send(
        server,
        "PATCH",
        &path,
        "application/merge-patch+json",
        &json!({"spec": {"secretName": null, "isCA": "yes"}}),
    );
    assert_invalid(
        status,
        &body,
        "cert-manager.io",
        "Certificate",
        "valid",
        &[
            (
                "FieldValueTypeInvalid",
                "spec.isCA",
                "Invalid value: \"string\": spec.isCA in body must be of type boolean: \"string\"",
            ),
            ("FieldValueRequired", "spec.secretName", "Required value"),
        ],
    );
    let (status, body) = send(
        server,
        "PATCH",
        &path,
        "application/strategic-merge-patch+json",
        &json!({"spec": {"secretName": "t"}}),
    );
    assert_eq!(status, 415, "{body:#}");
    assert_eq!(body["reason"], "UnsupportedMediaType", "{body:#}");
    assert_eq!(
        body["message"],
        "the body of the request was in an unknown format (application/strategic-merge-patch+json) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        "{body:#}"
    );
    let (_, stored) = server.get_json(&path);
    assert_eq!(stored["spec"]["secretName"], "s", "{stored}");
    assert_eq!(stored["metadata"]["generation"], 1, "{stored}");
}

on_both_binaries!(
    invalid_custom_objects_are_refused_on_embedded,
    invalid_custom_objects_are_refused_on_etcd,
    invalid_objects_are_refused
);

/// A CRD of cert-manager's group whose plural is a short name Certificate already holds:
/// NamesAccepted False (PluralConflict), not Established, not served; Certificate unharmed.
fn conflicting_names_are_not_accepted(server: &Kubecache, _: &Storage) {
    Fixture::load(CERTIFICATES_CRD).install(server);
    let conflicting = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "cert.cert-manager.io"},
        "spec": {
            "group": "cert-manager.io",
            "scope": "Namespaced",
            "names": {"plural": "cert", "singular": "certx", "kind": "Cert"},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    });
    let (status, body) = send(server, "POST", CRDS, "application/json", &conflicting);
    assert_eq!(status, 201, "{body:#}");
    let accepted = wait_until("cert.cert-manager.io NamesAccepted decided", || {
        let accepted = condition_or_none(server, "cert.cert-manager.io", "NamesAccepted")?;
        (accepted["status"] != "Unknown").then_some(accepted)
    });
    assert_eq!(accepted["status"], "False", "{accepted}");
    assert_eq!(accepted["reason"], "PluralConflict", "{accepted}");
    assert_eq!(
        accepted["message"], "\"cert\" is already in use",
        "{accepted}"
    );
    let established = condition(server, "cert.cert-manager.io", "Established");
    assert_eq!(
        (&established["status"], &established["reason"]),
        (&json!("False"), &json!("NotAccepted")),
        "{established}"
    );

    // Not served: no path, not in discovery; `kubectl get cert` still means certificates.
    let (status, body) = server.get_json("/apis/cert-manager.io/v1/namespaces/default/cert");
    assert_eq!(status, 404, "{body}");
    let (_, list) = server.get_json("/apis/cert-manager.io/v1");
    let names: Vec<&str> = list["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(!names.contains(&"cert"), "{names:?}");
    assert!(names.contains(&"certificates"), "{names:?}");
    let file = server.manifest("c.yaml", &CERTIFICATE.object("c"));
    server.kubectl_ok(&["create", "-f", &file]);
    let got = server.kubectl_ok(&["get", "cert", "c", "-n", "default", "-o", "name"]);
    assert_eq!(got.trim(), "certificate.cert-manager.io/c");
}

fn condition_or_none(server: &Kubecache, crd: &str, condition_type: &str) -> Option<Value> {
    let (status, body) = server.get_json(&format!("{CRDS}/{crd}"));
    assert_eq!(status, 200, "{body}");
    body["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == condition_type)
        .cloned()
}

on_both_binaries!(
    conflicting_crd_names_are_not_accepted_on_embedded,
    conflicting_crd_names_are_not_accepted_on_etcd,
    conflicting_names_are_not_accepted
);

/// The keys under `prefix` in etcd (`None` for the in-memory store, which the test cannot
/// reach from outside the process).
fn etcd_keys(storage: &Storage, prefix: &str) -> Option<Vec<String>> {
    let Storage::Etcd(endpoint) = storage else {
        return None;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let backend: Arc<dyn Backend> = Arc::new(
            EtcdBackend::connect(std::slice::from_ref(endpoint), EtcdOptions::default())
                .await
                .expect("connect to etcd"),
        );
        let page = backend
            .list(ListOptions {
                prefix: prefix.to_string(),
                ..ListOptions::default()
            })
            .await
            .expect("list etcd");
        Some(page.kvs.into_iter().map(|kv| kv.key).collect())
    })
}

/// Deleting a CRD stops serving its resource and deletes its objects: once recreated, the
/// resource is empty.
fn deleting_a_crd_removes_its_objects(server: &Kubecache, storage: &Storage) {
    let fixture = Fixture::load(CERTIFICATES_CRD);
    fixture.install(server);
    for name in ["a", "b"] {
        let file = server.manifest(&format!("{name}.yaml"), &CERTIFICATE.object(name));
        server.kubectl_ok(&["create", "-f", &file]);
    }
    let prefix = "/registry/cert-manager.io/certificates/";
    if let Some(keys) = etcd_keys(storage, prefix) {
        assert_eq!(
            keys,
            [format!("{prefix}default/a"), format!("{prefix}default/b")]
        );
    }

    server.kubectl_ok(&["delete", "crd", fixture.name()]);
    wait_gone(server, &format!("{CERTIFICATES}/a"));
    wait_gone(server, CERTIFICATES);
    wait_gone(server, &format!("{CRDS}/{}", fixture.name()));
    let (_, list) = server.get_json("/apis/cert-manager.io/v1");
    let names: Vec<&str> = list["resources"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(!names.contains(&"certificates"), "{list}");
    if let Some(keys) = etcd_keys(storage, prefix) {
        assert_eq!(keys, Vec::<String>::new());
    }

    fixture.install(server);
    let listed = server.kubectl(&["get", "certificates", "-A", "-o", "name"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(stdout(&listed), "", "old objects came back");
    let (status, list) = server.get_json(CERTIFICATES);
    assert_eq!((status, &list["items"]), (200, &json!([])), "{list}");
}

on_both_binaries!(
    deleting_a_crd_removes_its_objects_on_embedded,
    deleting_a_crd_removes_its_objects_on_etcd,
    deleting_a_crd_removes_its_objects
);

/// kube's cleanup on a CRD's DELETE: the CRD stays, marked with the
/// `customresourcecleanup.apiextensions.k8s.io` finalizer and a `Terminating` condition, while
/// an object of it waits for its own finalizer; once that finalizer is removed, the object
/// and then the CRD go.
fn crd_deletion_waits_for_its_objects_finalizers(server: &Kubecache, _: &Storage) {
    let fixture = Fixture::load(CERTIFICATES_CRD);
    fixture.install(server);
    let mut held: Value =
        serde_yaml_ng::from_str(&CERTIFICATE.object("held")).expect("the manifest is YAML");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let (status, body) = send(server, "POST", CERTIFICATES, "application/json", &held);
    assert_eq!(status, 201, "{body}");
    let file = server.manifest("free.yaml", &CERTIFICATE.object("free"));
    server.kubectl_ok(&["create", "-f", &file]);

    let crd_path = format!("{CRDS}/{}", fixture.name());
    let (status, deleted) = server.http("DELETE", &crd_path, None, None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&deleted));
    // The object without a finalizer goes; the held one is marked and stays.
    wait_gone(server, &format!("{CERTIFICATES}/free"));
    wait_until("the held certificate marked for deletion", || {
        let (status, object) = server.get_json(&format!("{CERTIFICATES}/held"));
        (status == 200 && object["metadata"]["deletionTimestamp"].is_string()).then_some(())
    });
    let (status, crd) = server.get_json(&crd_path);
    assert_eq!(status, 200, "the CRD waits for its objects: {crd}");
    assert!(crd["metadata"]["deletionTimestamp"].is_string(), "{crd}");
    assert_eq!(
        crd["metadata"]["finalizers"],
        json!(["customresourcecleanup.apiextensions.k8s.io"])
    );
    let terminating = condition(server, fixture.name(), "Terminating");
    assert_eq!(
        (
            &terminating["status"],
            &terminating["reason"],
            &terminating["message"]
        ),
        (
            &json!("True"),
            &json!("InstanceDeletionInProgress"),
            &json!("CustomResource deletion is in progress")
        )
    );
    // While it terminates, a new object is refused as kube's CRD handler refuses it.
    let late: Value =
        serde_yaml_ng::from_str(&CERTIFICATE.object("late")).expect("the manifest is YAML");
    let (status, body) = send(server, "POST", CERTIFICATES, "application/json", &late);
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["reason"], "MethodNotAllowed", "{body}");
    assert_eq!(
        body["message"],
        "create not allowed while custom resource definition is terminating"
    );
    assert_eq!(
        server.get_json(&format!("{CERTIFICATES}/late")).0,
        404,
        "nothing written"
    );

    let release = json!({"metadata": {"finalizers": null}});
    let (status, body) = send(
        server,
        "PATCH",
        &format!("{CERTIFICATES}/held"),
        "application/merge-patch+json",
        &release,
    );
    assert_eq!(status, 200, "{body}");
    wait_gone(server, &format!("{CERTIFICATES}/held"));
    wait_gone(server, &crd_path);
}

on_both_binaries!(
    crd_deletion_waits_for_finalizers_on_embedded,
    crd_deletion_waits_for_finalizers_on_etcd,
    crd_deletion_waits_for_its_objects_finalizers
);

fn widget_crd(versions: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": versions,
        },
    })
}

/// CRDs kube refuses: no storage version, a schema that is not structural, a rule that does
/// not compile. Each is a 422 with kube's causes, and nothing is stored.
fn invalid_crds_are_refused(server: &Kubecache, _: &Storage) {
    let create = |crd: &Value| send(server, "POST", CRDS, "application/json", crd);

    let (status, body) = create(&widget_crd(json!([{
        "name": "v1", "served": true, "storage": false,
        "schema": {"openAPIV3Schema": {"type": "object"}},
    }])));
    assert_eq!(status, 422, "{body:#}");
    assert_eq!(body["reason"], "Invalid", "{body:#}");
    let causes = body["details"]["causes"].as_array().expect("causes");
    assert_eq!(causes[0]["field"], "spec.versions", "{body:#}");
    assert_eq!(causes[0]["reason"], "FieldValueInvalid", "{body:#}");
    let message = causes[0]["message"].as_str().expect("a message");
    assert!(
        message.ends_with(": must have exactly one version marked as storage version"),
        "{message}"
    );

    let (status, body) = create(&widget_crd(json!([{
        "name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "not": {"type": "object", "properties": {"a": {"type": "string"}}},
            }},
        }},
    }])));
    assert_invalid(
        status,
        &body,
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "widgets.example.com",
        &[
            (
                "FieldValueForbidden",
                "spec.validation.openAPIV3Schema.properties[spec].not.properties[a].type",
                "Forbidden: must be empty to be structural",
            ),
            (
                "FieldValueForbidden",
                "spec.validation.openAPIV3Schema.properties[spec].not.type",
                "Forbidden: must be empty to be structural",
            ),
        ],
    );

    let (status, body) = create(&widget_crd(json!([{
        "name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"replicas": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.replicas >"}],
            }},
        }},
    }])));
    assert_eq!(status, 422, "{body:#}");
    let causes = body["details"]["causes"].as_array().expect("causes");
    assert_eq!(causes.len(), 1, "{body:#}");
    assert_eq!(
        causes[0]["field"],
        "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule",
        "{body:#}"
    );
    assert_eq!(causes[0]["reason"], "FieldValueInvalid", "{body:#}");
    let message = causes[0]["message"].as_str().expect("a message");
    assert!(
        message.contains(": compilation failed: ERROR: <input>:1:16: Syntax error:"),
        "{message}"
    );

    let (status, _) = server.get_json(&format!("{CRDS}/widgets.example.com"));
    assert_eq!(status, 404, "an invalid CRD was stored");
    let (status, _) = server.get_json("/apis/example.com/v1");
    assert_eq!(status, 404);
    let listed = server.kubectl_ok(&["get", "crd", "-o", "name"]);
    assert_eq!(listed, "", "{listed}");
}

on_both_binaries!(
    invalid_crds_are_refused_on_embedded,
    invalid_crds_are_refused_on_etcd,
    invalid_crds_are_refused
);

/// Two replicas over one etcd: a CRD created through one is served by the other (each
/// learns it from its own watch), objects written through either are read through both, and
/// deleting the CRD through the second stops both from serving it.
#[test]
fn replicas_over_one_etcd_serve_the_same_crds() {
    let etcd = TestEtcd::start();
    let storage = Storage::Etcd(etcd.endpoint());
    let first = Kubecache::start_with(storage.clone());
    let second = Kubecache::start_with(storage);
    let fixture = Fixture::load(CERTIFICATES_CRD);
    fixture.install(&first);
    wait_until("the second replica serves certificates", || {
        let (status, _) = second.get_json(CERTIFICATES);
        (status == 200).then_some(())
    });
    let file = second.manifest("a.yaml", &CERTIFICATE.object("a"));
    second.kubectl_ok(&["create", "-f", &file]);
    wait_until(
        "the first replica reads the object the second wrote",
        || {
            let (status, object) = first.get_json(&format!("{CERTIFICATES}/a"));
            (status == 200 && object["spec"]["secretName"].is_string()).then_some(())
        },
    );
    second.kubectl_ok(&["delete", "crd", fixture.name()]);
    for server in [&first, &second] {
        wait_gone(server, CERTIFICATES);
        wait_gone(server, &format!("{CRDS}/{}", fixture.name()));
    }
}

/// A CRD version's `selectableFields` (1.32+) are field selectors of its objects: LIST (from
/// the watch cache, and with `resourceVersion` unset, from storage) and WATCH select by them,
/// kubectl included; an undeclared field is refused as kube refuses it.
fn selectable_fields_select(server: &Kubecache, _: &Storage) {
    let mut crd = widget_crd(json!([{
        "name": "v1", "served": true, "storage": true,
        "selectableFields": [{"jsonPath": ".spec.color"}],
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "color": {"type": "string"}, "size": {"type": "integer"}}}}}},
    }]));
    crd["metadata"]["name"] = json!("widgets.example.com");
    let (status, body) = send(server, "POST", CRDS, "application/json", &crd);
    assert_eq!(status, 201, "{body}");
    wait_established(server, "widgets.example.com");
    let widgets = "/apis/example.com/v1/namespaces/default/widgets";
    for (name, color) in [("a", "red"), ("b", "blue"), ("c", "red")] {
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"color": color, "size": 1}});
        let (status, body) = send(server, "POST", widgets, "application/json", &widget);
        assert_eq!(status, 201, "{body}");
    }
    let names = |query: &str| -> Vec<String> {
        let (status, list) = server.get_json(&format!("{widgets}?{query}"));
        assert_eq!(status, 200, "{list}");
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|w| w["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("fieldSelector=spec.color%3Dred"), ["a", "c"]);
    assert_eq!(
        names("fieldSelector=spec.color%3Dred&resourceVersion=0"),
        ["a", "c"]
    );
    assert_eq!(names("fieldSelector=spec.color!%3Dred"), ["b"]);
    let listed = server.kubectl_ok(&[
        "get",
        "widgets",
        "--field-selector",
        "spec.color=blue",
        "-o",
        "name",
    ]);
    assert_eq!(listed.trim(), "widget.example.com/b");
    let (status, refused) = server.get_json(&format!("{widgets}?fieldSelector=spec.size%3D1"));
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["message"], "field label not supported: spec.size",
        "{refused}"
    );
}

on_both_binaries!(
    selectable_fields_select_on_embedded,
    selectable_fields_select_on_etcd,
    selectable_fields_select
);
