//! Test support for the read path (cargo feature `testing`), for this crate's tests and those
//! of the crates above it:
//!
//! - [`TestCodec`]: the server's JSON codec for the stored shape, through the same functions
//!   ([`crate::json`]), for tests and benches that cannot depend on the server crate;
//! - [`conformance`]: the `ReadPath` conformance suite, one list of cases run against the
//!   watch cache and the pass-through over any backend.

pub mod conformance;

use bytes::Bytes;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::storage::{KeyValue, Revision, StorageError};

use crate::{ObjectAttrs, ObjectCodec};

/// The server's `JsonCodec` for the stored shape: objects are served as stored with their
/// `metadata.resourceVersion` spliced in, bookmarks are kube's (annotated
/// `k8s.io/initial-events-end` after the initial events), and pods' watchers are indexed by
/// `spec.nodeName` as the server's pod strategy asks.
pub struct TestCodec;

impl ObjectCodec for TestCodec {
    fn attributes(
        &self,
        resource: &ResourceInfo,
        kv: &KeyValue,
    ) -> Result<ObjectAttrs, StorageError> {
        crate::json::attributes(resource, kv)
    }

    fn encode(&self, stored: &[u8], revision: Revision, _shape: &ResourceInfo) -> Bytes {
        // The stored shape is all the tests serve.
        crate::json::with_resource_version(stored, revision)
    }

    fn splice_point(&self, stored: &[u8], _shape: &ResourceInfo) -> Option<usize> {
        crate::json::splice_point(stored)
    }

    fn bookmark(
        &self,
        shape: &ResourceInfo,
        revision: Revision,
        initial_events_end: bool,
    ) -> Bytes {
        let mut metadata = serde_json::json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = serde_json::json!({"k8s.io/initial-events-end": "true"});
        }
        let bookmark = serde_json::json!({
            "kind": shape.kind,
            "apiVersion": shape.api_version(),
            "metadata": metadata,
        });
        Bytes::from(serde_json::to_vec(&bookmark).expect("a JSON value always serializes"))
    }

    fn trigger_field(&self, resource: &ResourceInfo) -> Option<&'static str> {
        (resource.group.is_empty() && resource.resource == "pods").then_some("spec.nodeName")
    }
}
