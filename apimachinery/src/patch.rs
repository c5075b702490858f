//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge
//! patch.
//!
//! Strategic merge patch is [`crate::strategic`], driven by the type's merge schema; types
//! without one (custom resources) refuse it with 415, as kube-apiserver does.

use kubecache_core::merge_schema::Schema;
use kubecache_core::status::{ApiError, Reason};
use serde_json::Value;

use crate::{strategic, typed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
}

/// The patch media types served, as a 415 lists them.
pub const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

impl PatchType {
    pub fn from_media_type(media: &str) -> Result<PatchType, ApiError> {
        match media {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::StrategicMerge),
            other => Err(ApiError::unsupported_media_type(other, PATCH_TYPES)),
        }
    }
}

/// Parses a patch body once (it is applied again on every optimistic-concurrency retry).
pub fn parse(patch_type: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let value = typed::parse_json(body)?.value;
    match patch_type {
        PatchType::Json if !value.is_array() => Err(ApiError::bad_request(
            "a JSON patch must be an array of operations",
        )),
        PatchType::Merge | PatchType::StrategicMerge if !value.is_object() => {
            Err(ApiError::bad_request("a merge patch must be a JSON object"))
        }
        _ => Ok(value),
    }
}

fn unprocessable(message: String) -> ApiError {
    ApiError::new(422, Reason::Invalid, message)
}

/// The patch types a type without a merge schema accepts (kube's list for custom resources).
pub const SCHEMALESS_PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

/// Refuses strategic merge patch on a type without a merge schema (415, as kube-apiserver
/// answers for custom resources).
pub fn check_schema(patch_type: PatchType, schema: Schema) -> Result<(), ApiError> {
    if patch_type == PatchType::StrategicMerge && schema == Schema::Unknown {
        return Err(ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json",
            SCHEMALESS_PATCH_TYPES,
        ));
    }
    Ok(())
}

/// Applies a parsed patch to `current`, whose merge schema is `schema`.
pub fn apply(
    patch_type: PatchType,
    current: &Value,
    patch: &Value,
    schema: Schema,
) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                unprocessable(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
        }
        PatchType::Merge => json_patch::merge(&mut doc, patch),
        PatchType::StrategicMerge => {
            check_schema(patch_type, schema)?;
            doc = strategic::merge(current, patch, schema)?;
        }
    }
    if !doc.is_object() {
        return Err(ApiError::bad_request(
            "the patched object is not a JSON object",
        ));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Schema {
        Schema::of_root("", "v1", "Pod")
    }

    #[test]
    fn strategic_merge_without_a_schema_is_415() {
        let err = apply(
            PatchType::StrategicMerge,
            &json!({}),
            &json!({}),
            Schema::Unknown,
        )
        .unwrap_err();
        assert_eq!(err.code, 415);
        assert!(err.message.contains("application/apply-patch+yaml"));
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let current = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}});
        let merged = apply(PatchType::StrategicMerge, &current, &patch, pod()).unwrap();
        assert_eq!(
            merged["spec"]["containers"],
            json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}, {"name": "c", "image": "w"}])
        );
        let delete = json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}});
        let merged = apply(PatchType::StrategicMerge, &merged, &delete, pod()).unwrap();
        assert_eq!(merged["spec"]["containers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn strategic_merge_maps_and_nulls() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"$patch": "replace", "n": "m"}});
        let merged = apply(PatchType::StrategicMerge, &current, &patch, pod()).unwrap();
        assert_eq!(
            merged,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "data": {"n": "m"}})
        );
    }

    #[test]
    fn json_patch_test_failure_is_unprocessable() {
        let current = json!({"a": 1});
        let patch = json!([{"op": "test", "path": "/a", "value": 2}]);
        assert_eq!(
            apply(PatchType::Json, &current, &patch, Schema::Unknown)
                .unwrap_err()
                .code,
            422
        );
        let patch = json!([{"op": "replace", "path": "/a", "value": 2}]);
        assert_eq!(
            apply(PatchType::Json, &current, &patch, Schema::Unknown).unwrap(),
            json!({"a": 2})
        );
    }

    #[test]
    fn unknown_patch_type_is_415() {
        assert_eq!(
            PatchType::from_media_type("application/apply-patch+yaml")
                .unwrap_err()
                .code,
            415
        );
    }
}
