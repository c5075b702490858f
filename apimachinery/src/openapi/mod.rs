//! OpenAPI: `/openapi/v3` (the index of group-version documents) and
//! `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>` (one OpenAPI 3.0 document per
//! group-version kubecache serves), as kube-apiserver publishes them (kube-openapi's
//! `handler3`), and `/openapi/v2`.
//!
//! - [`schemas`]: the component schemas, generated from k8s-openapi's typed definitions;
//! - [`paths`]: the operations of each resource;
//! - [`v2`]: `/openapi/v2`, the definitions as Swagger 2.0 (JSON and protobuf), which
//!   kubectl needs to validate `kind: List` manifests.
//!
//! The documents are built once per registry generation, the first time they are needed (the
//! server warms them up at startup), and the server's `edge::openapi` serves them as shared
//! bytes. The v3 documents are JSON only: kube-apiserver also serves them as protobuf,
//! which no client of this server asks for (client-go's `openapi3` root, kubectl's
//! validation, `apply` and `explain` all ask for JSON); a request accepting only protobuf
//! gets 406.

pub mod paths;
pub mod schemas;
pub mod v2;

use std::sync::Arc;

use crate::registry::{Registry, Snapshot};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use kubecache_core::KUBE_MINOR;
use paths::PathSet;
use schemas::Components;

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

/// Every OpenAPI document kubecache serves.
#[derive(Debug)]
pub struct Documents {
    /// `/openapi/v3`.
    pub index: Document,
    /// Path under `/openapi/v3/` → its document, in discovery order: a document per
    /// group-version (`api/v1`, `apis/apps/v1`), and, as kube-apiserver has them, one per
    /// discovery path (`api`, `apis`, `apis/apps`) and one for `version`.
    pub documents: Vec<(String, Document)>,
    /// `/openapi/v2` as JSON.
    pub v2_json: Document,
    /// `/openapi/v2` as gnostic's protobuf.
    pub v2_protobuf: Document,
}

/// The documents of what a registry serves, rebuilt when its generation moves on (a resource
/// added or removed) and shared by every request until then.
#[derive(Default)]
pub struct Published {
    built: parking_lot::Mutex<Option<(u64, Arc<Documents>)>>,
}

impl Published {
    /// The documents of `registry` as it is now. One build at a time: requests that arrive
    /// during a build wait for it rather than each building the same documents.
    pub fn get(&self, registry: &Registry) -> Arc<Documents> {
        let snapshot = registry.snapshot();
        let mut built = self.built.lock();
        if let Some((generation, documents)) = &*built
            && *generation == snapshot.generation()
        {
            return documents.clone();
        }
        let documents = Arc::new(Documents::build(&snapshot));
        *built = Some((snapshot.generation(), documents.clone()));
        documents
    }
}

impl Documents {
    pub fn build(registry: &Snapshot) -> Documents {
        let components = Components::generate(registry);
        let groups = registry.groups();
        let gv_document = |group: &str, version: &str| {
            let document = group_version_document(registry, &components, group, version);
            (gv_path(group, version), Document::new(&document))
        };
        // Kube's order: `api`, `api/v1`, `apis`, then each `apis/<group>` and its versions.
        let mut documents = vec![(
            "api".to_string(),
            root_document(
                &components,
                "/api/",
                "getCoreAPIVersions",
                "core",
                schemas::API_VERSIONS,
            ),
        )];
        for (_, versions) in groups.iter().filter(|(g, _)| g.is_empty()) {
            documents.extend(versions.iter().map(|v| gv_document("", v)));
        }
        documents.push((
            "apis".to_string(),
            root_document(
                &components,
                "/apis/",
                "getAPIVersions",
                "apis",
                schemas::API_GROUP_LIST,
            ),
        ));
        for (group, versions) in groups.iter().filter(|(g, _)| !g.is_empty()) {
            let word = paths::group_word(group);
            documents.push((
                format!("apis/{group}"),
                root_document(
                    &components,
                    &format!("/apis/{group}/"),
                    &format!("get{}APIGroup", paths::capitalize(&word)),
                    &word,
                    schemas::API_GROUP,
                ),
            ));
            documents.extend(versions.iter().map(|v| gv_document(group, v)));
        }
        documents.push((
            "version".to_string(),
            root_document(
                &components,
                "/version/",
                "getCodeVersion",
                "version",
                schemas::VERSION_INFO,
            ),
        ));
        let mut index = Map::new();
        for (path, document) in &documents {
            index.insert(
                path.clone(),
                json!({"serverRelativeURL": server_relative_url(path, &document.hash)}),
            );
        }
        index.sort_keys();
        let index = Document::new(&json!({ "paths": index }));
        let swagger = v2::document(&components.schemas, &format!("v1.{KUBE_MINOR}.0"));
        Documents {
            index,
            documents,
            v2_protobuf: Document::from_bytes(v2::protobuf(&swagger)),
            v2_json: Document::new(&swagger),
        }
    }

    /// The document at `path` (`api/v1`, `apis/apps/v1`, `apis`, …).
    pub fn document(&self, path: &str) -> Option<&Document> {
        self.documents
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, d)| d)
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

/// The OpenAPI document of one group-version: its resources' paths and every definition
/// they use.
fn group_version_document(
    registry: &Snapshot,
    components: &Components,
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
    let scale = components.kind("autoscaling", "v1", "Scale");
    for resource in registry.in_group_version(group, version) {
        let Some(kind) = components.kind(group, version, &resource.kind) else {
            // Never a path without its schema (`every_served_resource_has_a_kind` checks
            // that this does not happen).
            continue;
        };
        paths.add_resource(resource, kind, scale);
        roots.push(kind.definition.clone());
        roots.push(format!("{}List", kind.definition));
        if resource.scale_subresource {
            roots.extend(scale.map(|s| s.definition.clone()));
        }
    }
    let mut paths = paths.paths;
    paths.sort_keys();
    document(
        components.closure(roots.iter().map(String::as_str)),
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
