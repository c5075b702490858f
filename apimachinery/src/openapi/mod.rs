//! OpenAPI: `/openapi/v3` (the index of group-version documents) and
//! `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>` (one OpenAPI 3.0 document per
//! group-version kubecache serves), as kube-apiserver publishes them (kube-openapi's
//! `handler3`), and `/openapi/v2`.
//!
//! - [`schemas`]: the component schemas, generated from k8s-openapi's typed definitions;
//! - [`custom`]: a custom resource's definitions, from its CRD version's schema;
//! - [`paths`]: the operations of each resource;
//! - [`v2`]: `/openapi/v2`, the definitions as Swagger 2.0 (JSON and protobuf), which
//!   kubectl needs to validate `kind: List` manifests.
//!
//! Each document is built the first time it is needed and kept until what it describes
//! changes ([`Published`]: a CRD registered rebuilds its group-version's document, not every
//! document; the server warms them all up at startup), and the server's `edge::openapi`
//! serves them as shared bytes. The v3 documents are JSON only: kube-apiserver also serves them as protobuf,
//! which no client of this server asks for (client-go's `openapi3` root, kubectl's
//! validation, `apply` and `explain` all ask for JSON); a request accepting only protobuf
//! gets 406.

pub mod custom;
pub mod paths;
pub mod schemas;
pub mod v2;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::registry::{Registry, Resource, Snapshot};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use custom::Target;
use kubecache_core::KUBE_MINOR;
use paths::PathSet;
use schemas::{Components, Kind};

/// One served document: its bytes and their content hash.
#[derive(Debug, Clone)]
pub struct Document {
    pub body: Bytes,
    /// Upper-case hex content hash, the `?hash=` of the index and (quoted) the `Etag`.
    pub hash: String,
}

impl Document {
    fn new(value: &Value) -> Document {
        Document::from_bytes(serde_json::to_vec(value).expect("a JSON value serializes"))
    }

    fn from_bytes(body: Vec<u8>) -> Document {
        let hash = content_hash(&body);
        Document {
            body: Bytes::from(body),
            hash,
        }
    }
}

/// `/openapi/v2`, in both encodings.
#[derive(Debug)]
pub struct V2 {
    /// As JSON.
    pub json: Document,
    /// As gnostic's protobuf.
    pub protobuf: Document,
}

/// The documents of what a registry serves, each built the first time it is asked for and
/// kept until what it describes changes:
///
/// - the built-in definitions ([`Components`]) are generated again only when the resources
///   without an OpenAPI schema change (never, once the server runs: custom resources have
///   their schemas);
/// - a group-version's document is kept with the resources it was built from and built
///   again only when they are no longer the ones served there (a custom resource added,
///   removed or replaced in that group-version), so registering 1,000 CRDs one after the
///   other builds each group-version's document once it is asked for, not 1,000 times;
/// - the index and `/openapi/v2` are built when asked for after any change (the index from
///   the kept documents, building only those missing).
///
/// One build at a time: requests that arrive during a build wait for it rather than each
/// building the same documents.
#[derive(Default)]
pub struct Published {
    state: parking_lot::Mutex<State>,
}

#[derive(Default)]
struct State {
    base: Option<Arc<Base>>,
    /// The registry generation `base` was last found current at.
    base_checked: Option<u64>,
    /// Path under `/openapi/v3/` → its document, with the resources it was built from.
    documents: HashMap<String, Built>,
    /// `/openapi/v3` at a registry generation.
    index: Option<(u64, Document)>,
    v2: Option<(u64, Arc<V2>)>,
    /// Documents built so far, v3 and v2 (what tests and the bench count).
    builds: u64,
}

/// The definitions shared by every document.
struct Base {
    /// The served resources without an OpenAPI schema, which the definitions were generated
    /// for (their order included: it is the order of the kinds).
    members: Vec<Arc<Resource>>,
    components: Components,
    /// `components` in Swagger 2.0 form, converted the first time `/openapi/v2` is built.
    v2: OnceLock<Map<String, Value>>,
}

/// A document and the resources it describes.
struct Built {
    members: Vec<Arc<Resource>>,
    document: Document,
}

/// The same resources, the same strategies (a resource replaced is another `Arc`; holding
/// them keeps the comparison sound).
fn same(a: &[Arc<Resource>], b: &[Arc<Resource>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b))
}

/// What a path under `/openapi/v3/` names.
enum Path<'a> {
    /// `api`, `apis`, `version`.
    Root(&'a str),
    /// `apis/<group>`.
    Group(&'a str),
    /// `api/<version>`, `apis/<group>/<version>`.
    GroupVersion(&'a str, &'a str),
}

impl<'a> Path<'a> {
    fn parse(path: &'a str) -> Option<Path<'a>> {
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            [root @ ("api" | "apis" | "version")] => Some(Path::Root(root)),
            ["api", version] => Some(Path::GroupVersion("", version)),
            ["apis", group] if !group.is_empty() => Some(Path::Group(group)),
            ["apis", group, version] if !group.is_empty() => {
                Some(Path::GroupVersion(group, version))
            }
            _ => None,
        }
    }
}

impl Published {
    /// `/openapi/v3`: every document's path and hash.
    pub fn index(&self, registry: &Registry) -> Document {
        let snapshot = registry.snapshot();
        self.state.lock().index(&snapshot)
    }

    /// The document at `path` under `/openapi/v3/` (`api/v1`, `apis/apps/v1`, `apis`, …), or
    /// `None` when nothing is served there.
    pub fn document(&self, registry: &Registry, path: &str) -> Option<Document> {
        let snapshot = registry.snapshot();
        self.state.lock().document(&snapshot, path)
    }

    /// `/openapi/v2`.
    pub fn v2(&self, registry: &Registry) -> Arc<V2> {
        let snapshot = registry.snapshot();
        self.state.lock().v2(&snapshot)
    }

    /// Builds every document (the server does at startup, so the first clients need not wait).
    pub fn warm(&self, registry: &Registry) {
        let snapshot = registry.snapshot();
        let mut state = self.state.lock();
        state.index(&snapshot);
        state.v2(&snapshot);
    }

    /// How many documents were built so far (each v3 document, each `/openapi/v2`).
    pub fn builds(&self) -> u64 {
        self.state.lock().builds
    }
}

impl State {
    /// The built-in definitions for `snapshot`, generated again (and every document
    /// dropped) when the resources without a schema are no longer those they were made for.
    fn base(&mut self, snapshot: &Snapshot) -> Arc<Base> {
        if let Some(base) = &self.base
            && self.base_checked == Some(snapshot.generation())
        {
            return base.clone();
        }
        let members: Vec<Arc<Resource>> = snapshot
            .iter()
            .filter(|r| r.strategy().openapi_schema().is_none())
            .cloned()
            .collect();
        self.base_checked = Some(snapshot.generation());
        if let Some(base) = &self.base
            && same(&base.members, &members)
        {
            return base.clone();
        }
        let base = Arc::new(Base {
            members,
            components: Components::generate(snapshot),
            v2: OnceLock::new(),
        });
        self.base = Some(base.clone());
        self.documents.clear();
        self.index = None;
        self.v2 = None;
        base
    }

    fn document(&mut self, snapshot: &Snapshot, path: &str) -> Option<Document> {
        let parsed = Path::parse(path)?;
        let members: Vec<Arc<Resource>> = match parsed {
            Path::Root(_) => Vec::new(),
            Path::Group(group) => {
                if !snapshot.iter().any(|r| r.group == group) || group.is_empty() {
                    return None;
                }
                Vec::new()
            }
            Path::GroupVersion(group, version) => {
                let members: Vec<_> = snapshot.in_group_version(group, version).cloned().collect();
                if members.is_empty() {
                    return None;
                }
                members
            }
        };
        let base = self.base(snapshot);
        if let Some(built) = self.documents.get(path)
            && same(&built.members, &members)
        {
            return Some(built.document.clone());
        }
        let components = &base.components;
        let document = match parsed {
            Path::Root("api") => root_document(
                components,
                "/api/",
                "getCoreAPIVersions",
                "core",
                schemas::API_VERSIONS,
            ),
            Path::Root("apis") => root_document(
                components,
                "/apis/",
                "getAPIVersions",
                "apis",
                schemas::API_GROUP_LIST,
            ),
            Path::Root(_) => root_document(
                components,
                "/version/",
                "getCodeVersion",
                "version",
                schemas::VERSION_INFO,
            ),
            Path::Group(group) => {
                let word = paths::group_word(group);
                root_document(
                    components,
                    &format!("/apis/{group}/"),
                    &format!("get{}APIGroup", paths::capitalize(&word)),
                    &word,
                    schemas::API_GROUP,
                )
            }
            Path::GroupVersion(group, version) => Document::new(&group_version_document(
                components, &members, group, version,
            )),
        };
        self.builds += 1;
        self.documents.insert(
            path.to_string(),
            Built {
                members,
                document: document.clone(),
            },
        );
        Some(document)
    }

    fn index(&mut self, snapshot: &Snapshot) -> Document {
        if let Some((generation, index)) = &self.index
            && *generation == snapshot.generation()
        {
            return index.clone();
        }
        let mut paths = vec!["api".to_string(), "apis".to_string(), "version".to_string()];
        for (group, versions) in snapshot.groups() {
            if !group.is_empty() {
                paths.push(format!("apis/{group}"));
            }
            paths.extend(versions.iter().map(|v| gv_path(&group, v)));
        }
        let mut index = Map::new();
        for path in &paths {
            if let Some(document) = self.document(snapshot, path) {
                index.insert(
                    path.clone(),
                    json!({"serverRelativeURL": server_relative_url(path, &document.hash)}),
                );
            }
        }
        // What is no longer served goes.
        self.documents.retain(|path, _| index.contains_key(path));
        index.sort_keys();
        let index = Document::new(&json!({ "paths": index }));
        self.index = Some((snapshot.generation(), index.clone()));
        index
    }

    fn v2(&mut self, snapshot: &Snapshot) -> Arc<V2> {
        if let Some((generation, v2)) = &self.v2
            && *generation == snapshot.generation()
        {
            return v2.clone();
        }
        let base = self.base(snapshot);
        let mut definitions = base
            .v2
            .get_or_init(|| v2::definitions(&base.components.schemas))
            .clone();
        for resource in snapshot.iter() {
            if let Some(schema) = resource.strategy().openapi_schema() {
                let kind = Kind::free_form(resource);
                definitions.extend(custom::definitions(
                    &kind,
                    &resource.resource,
                    &schema,
                    &resource.selectable_fields,
                    Target::V2,
                ));
            }
        }
        let swagger = v2::document(definitions, &format!("v1.{KUBE_MINOR}.0"));
        let built = Arc::new(V2 {
            protobuf: Document::from_bytes(v2::protobuf(&swagger)),
            json: Document::new(&swagger),
        });
        self.builds += 1;
        self.v2 = Some((snapshot.generation(), built.clone()));
        built
    }
}

/// `api/v1` or `apis/<group>/<version>`: the key of the index and the document's path under
/// `/openapi/v3/`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub fn server_relative_url(path: &str, hash: &str) -> String {
    format!("/openapi/v3/{path}?hash={hash}")
}

/// The OpenAPI document of one group-version, whose resources are `resources`: their paths
/// and every definition they use (a custom resource's from its schema, [`custom`]).
fn group_version_document(
    components: &Components,
    resources: &[Arc<Resource>],
    group: &str,
    version: &str,
) -> Value {
    let mut paths = PathSet::new(group, version);
    let mut roots: Vec<String> = [
        schemas::STATUS,
        schemas::DELETE_OPTIONS,
        schemas::PATCH,
        schemas::WATCH_EVENT,
        schemas::API_RESOURCE_LIST,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut custom_definitions = Map::new();
    let scale = components.kind("autoscaling", "v1", "Scale");
    for resource in resources {
        let kind = match resource.strategy().openapi_schema() {
            Some(schema) => {
                let kind = Kind::free_form(resource);
                custom_definitions.extend(custom::definitions(
                    &kind,
                    &resource.resource,
                    &schema,
                    &resource.selectable_fields,
                    Target::V3,
                ));
                kind
            }
            // Never a path without its schema (`every_served_resource_has_a_kind` checks
            // that this does not happen).
            None => match components.kind(group, version, &resource.kind) {
                Some(kind) => kind.clone(),
                None => continue,
            },
        };
        paths.add_resource(resource, &kind, scale);
        roots.push(kind.definition.clone());
        roots.push(format!("{}List", kind.definition));
        if resource.scale_subresource {
            roots.extend(scale.map(|s| s.definition.clone()));
        }
    }
    let mut paths = paths.paths;
    paths.sort_keys();
    document(
        components.closure_with(&custom_definitions, roots.iter().map(String::as_str)),
        Value::Object(paths),
    )
}

/// A document with a single `GET` path (discovery and `/version`).
fn root_document(
    components: &Components,
    path: &str,
    operation_id: &str,
    tag: &str,
    definition: &str,
) -> Document {
    let operation = json!({
        "description": "get discovery information",
        "operationId": operation_id,
        "responses": {
            "200": {
                "content": {"application/json": {"schema": schemas::reference(definition)}},
                "description": "OK",
            },
            "401": {"description": "Unauthorized"},
        },
        "tags": [tag],
    });
    let mut paths = Map::new();
    paths.insert(path.to_string(), json!({ "get": operation }));
    Document::new(&document(
        components.closure([definition]),
        Value::Object(paths),
    ))
}

/// An OpenAPI 3.0 document.
fn document(schemas: Map<String, Value>, paths: Value) -> Value {
    json!({
        "components": {"schemas": schemas},
        "info": {"title": "Kubernetes", "version": format!("v1.{KUBE_MINOR}.0")},
        "openapi": "3.0.0",
        "paths": paths,
    })
}

/// The 128-bit FNV-1a hash of `bytes` in upper-case hex: a content hash that is stable
/// across processes and builds (kube-apiserver uses SHA-512; any stable content hash does,
/// nothing here is adversarial).
pub fn content_hash(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut hash = OFFSET;
    for byte in bytes {
        hash ^= u128::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    format!("{hash:032X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_is_fnv1a_128() {
        // The FNV-1a 128 test vectors.
        assert_eq!(content_hash(b""), "6C62272E07BB014262B821756295C58D");
        assert_eq!(content_hash(b"a"), "D228CB696F1A8CAF78912B704E4A8964");
    }

    /// The custom resource of a fixture CRD at its first version.
    fn custom(file: &str) -> Arc<dyn crate::strategy::Strategy> {
        let crd =
            kubecache_apiextensions::crd::Crd::parse(&kubecache_apiextensions::fixtures::crd(file))
                .unwrap();
        let version = crd.versions[0].name.clone();
        Arc::new(crate::strategy::custom::CustomResource::new(&crd, &version).unwrap())
    }

    fn json_of(document: &Document) -> Value {
        serde_json::from_slice(&document.body).unwrap()
    }

    #[test]
    fn a_custom_resource_is_published_from_its_schema() {
        let registry = Registry::builtin();
        registry
            .add(custom("cert-manager.io_certificates.yaml"))
            .unwrap();
        let published = Published::default();
        let index = json_of(&published.index(&registry));
        let url = index["paths"]["apis/cert-manager.io/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/cert-manager.io/v1?hash="));
        assert!(index["paths"]["apis/cert-manager.io"].is_object());
        let document = json_of(
            &published
                .document(&registry, "apis/cert-manager.io/v1")
                .unwrap(),
        );
        let schemas = &document["components"]["schemas"];
        let certificate = &schemas["io.cert-manager.v1.Certificate"];
        assert_eq!(
            certificate["properties"]["spec"]["properties"]["issuerRef"]["properties"]["name"]["type"],
            "string"
        );
        assert!(schemas["io.cert-manager.v1.CertificateList"].is_object());
        // Every reference resolves within the document.
        let mut refs = Vec::new();
        schemas::tests::collect(&document, &mut refs);
        assert!(refs.iter().any(|r| r.ends_with("v1.ObjectMeta")));
        for name in refs {
            assert!(schemas.get(&name).is_some(), "dangling {name}");
        }
        // The paths of every verb, /status included, JSON only, no strategic merge patch.
        let paths = &document["paths"];
        let item = &paths["/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}"];
        for verb in ["get", "put", "patch", "delete"] {
            assert_eq!(
                item[verb]["x-kubernetes-group-version-kind"]["kind"], "Certificate",
                "{verb}"
            );
        }
        let patch_types = item["patch"]["requestBody"]["content"].as_object().unwrap();
        assert!(patch_types.contains_key("application/apply-patch+yaml"));
        assert!(!patch_types.contains_key("application/strategic-merge-patch+json"));
        assert!(
            paths["/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}/status"]
                ["patch"]
                .is_object()
        );
        assert!(paths["/apis/cert-manager.io/v1/certificates"]["get"].is_object());
        // /openapi/v2 has it too, in Swagger's form.
        let v2: Value = serde_json::from_slice(&published.v2(&registry).json.body).unwrap();
        let certificate = &v2["definitions"]["io.cert-manager.v1.Certificate"];
        assert_eq!(
            certificate["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(v2["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
    }

    #[test]
    fn a_registration_rebuilds_only_its_group_version() {
        let registry = Registry::builtin();
        let published = Published::default();
        published.warm(&registry);
        let after_warm = published.builds();
        let apps = published.document(&registry, "apis/apps/v1").unwrap();
        assert_eq!(published.builds(), after_warm, "kept");

        registry
            .add(custom("cert-manager.io_certificates.yaml"))
            .unwrap();
        // Nothing is built until asked for; another group's document is kept.
        assert_eq!(published.builds(), after_warm);
        let again = published.document(&registry, "apis/apps/v1").unwrap();
        assert_eq!(again.hash, apps.hash);
        assert_eq!(published.builds(), after_warm);
        let first = published
            .document(&registry, "apis/cert-manager.io/v1")
            .unwrap();
        assert_eq!(published.builds(), after_warm + 1);

        // A second kind in the same group-version rebuilds that document only; the index
        // builds what it lacks (the group's discovery document).
        registry
            .add(custom("cert-manager.io_issuers.yaml"))
            .unwrap();
        let second = published
            .document(&registry, "apis/cert-manager.io/v1")
            .unwrap();
        assert_ne!(first.hash, second.hash);
        assert_eq!(published.builds(), after_warm + 2);
        let index = json_of(&published.index(&registry));
        assert_eq!(published.builds(), after_warm + 3);
        assert!(
            index["paths"]["apis/cert-manager.io/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .ends_with(&second.hash)
        );

        // Removed: not served, not listed.
        registry.remove("cert-manager.io", "v1", "certificates");
        registry.remove("cert-manager.io", "v1", "issuers");
        assert!(
            published
                .document(&registry, "apis/cert-manager.io/v1")
                .is_none()
        );
        let index = json_of(&published.index(&registry));
        assert!(index["paths"].get("apis/cert-manager.io/v1").is_none());
        assert!(index["paths"].get("apis/apps/v1").is_some());
    }

    #[test]
    fn every_served_resource_has_a_kind() {
        let snapshot = Registry::builtin().snapshot();
        let components = Components::generate(&snapshot);
        for r in snapshot.iter() {
            assert!(
                components.kind(&r.group, &r.version, &r.kind).is_some(),
                "{}/{} {} has no schema",
                &r.group,
                &r.version,
                r.kind
            );
        }
    }
}
