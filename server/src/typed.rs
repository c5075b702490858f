//! Typed decoding of built-in objects with `fieldValidation`.
//!
//! Every built-in object in a request body is decoded as its k8s-openapi type, exactly as
//! kube-apiserver decodes into its Go structs: a malformed object is a 400, unknown fields
//! are dropped (and, per `fieldValidation`, warned about or rejected), and what gets stored is
//! the typed object serialized again — never fields the type does not have.

use std::fmt;

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::status::ApiError;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// `fieldValidation`: what to do with unknown or duplicate fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and say so in a `Warning` header (kube-apiserver's default).
    Warn,
    /// Reject the request with 400.
    Strict,
}

impl FieldValidation {
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter {other} is invalid: must be one of Ignore, Warn, Strict"
            ))),
        }
    }
}

/// A request body parsed as JSON, with the paths of fields that appeared twice.
pub struct ParsedBody {
    pub value: Value,
    pub duplicate_fields: Vec<String>,
}

/// Parses JSON, remembering duplicate keys (plain serde_json keeps the last one silently).
pub fn parse_json(body: &[u8]) -> Result<ParsedBody, ApiError> {
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = TrackedValue {
        path: String::new(),
        duplicates: &mut duplicates,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|_| v))
    .map_err(|e| ApiError::bad_request(format!("error decoding request body as JSON: {e}")))?;
    Ok(ParsedBody {
        value,
        duplicate_fields: duplicates,
    })
}

struct TrackedValue<'a> {
    path: String,
    duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for TrackedValue<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TrackedValue<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = TrackedValue {
                path: format!("{}[{}]", self.path, items.len()),
                duplicates: &mut *self.duplicates,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            let value = map.next_value_seed(TrackedValue {
                path: path.clone(),
                duplicates: &mut *self.duplicates,
            })?;
            if object.insert(key, value).is_some() {
                self.duplicates.push(path);
            }
        }
        Ok(Value::Object(object))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Decodes `object` as the typed object of `resource` and serializes it again.
/// Returns the normalized object and the problems `fieldValidation` should report.
pub fn normalize(resource: &ResourceInfo, object: Value) -> Result<(Value, Vec<String>), ApiError> {
    let mut typed = roundtrip(resource, &object).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = resource.kind,
            version = resource.version
        ))
    })?;
    let mut unknown = Vec::new();
    unknown_fields(&object, &typed, "", &mut unknown);
    omit_empty_metadata(&mut typed);
    Ok((typed, unknown))
}

/// Applies `fieldValidation` to the problems found while decoding: Strict rejects, Warn
/// returns the warnings to send, Ignore drops them.
pub fn check_fields(
    mode: FieldValidation,
    duplicate_fields: &[String],
    unknown_fields: &[String],
) -> Result<Vec<String>, ApiError> {
    let mut problems: Vec<String> = duplicate_fields
        .iter()
        .map(|f| format!("duplicate field \"{f}\""))
        .collect();
    problems.extend(
        unknown_fields
            .iter()
            .map(|f| format!("unknown field \"{f}\"")),
    );
    match mode {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(problems),
        FieldValidation::Strict if problems.is_empty() => Ok(Vec::new()),
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            problems.join(", ")
        ))),
    }
}

/// Paths present (and not null) in `input` that the typed round trip dropped.
fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(input), Value::Object(typed)) => {
            for (key, value) in input {
                let field = join(path, key);
                match typed.get(key) {
                    Some(t) => unknown_fields(value, t, &field, out),
                    None if value.is_null() => {}
                    None => out.push(field),
                }
            }
        }
        (Value::Array(input), Value::Array(typed)) => {
            for (i, (value, t)) in input.iter().zip(typed).enumerate() {
                unknown_fields(value, t, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Go's `omitempty`: kube-apiserver never writes an empty `labels`, `annotations`,
/// `finalizers`, `ownerReferences` or `managedFields` (k8s-openapi keeps `Some(empty)`). Without
/// this, `kubectl diff` of an unchanged manifest (its patch carries `annotations: {}`) would
/// show a difference.
fn omit_empty_metadata(object: &mut Value) {
    const OMIT_EMPTY: [&str; 5] = [
        "labels",
        "annotations",
        "finalizers",
        "ownerReferences",
        "managedFields",
    ];
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        meta.retain(|key, value| {
            let empty = match value {
                Value::Object(map) => map.is_empty(),
                Value::Array(list) => list.is_empty(),
                _ => false,
            };
            !(empty && OMIT_EMPTY.contains(&key.as_str()))
        });
    }
}

fn roundtrip(resource: &ResourceInfo, object: &Value) -> Result<Value, serde_json::Error> {
    fn via<T: serde::de::DeserializeOwned + serde::Serialize>(
        object: &Value,
    ) -> Result<Value, serde_json::Error> {
        let typed: T = T::deserialize(object)?;
        serde_json::to_value(typed)
    }
    use api::core::v1 as core;
    match (resource.group, resource.kind) {
        ("", "ConfigMap") => via::<core::ConfigMap>(object),
        ("", "Endpoints") => via::<core::Endpoints>(object),
        ("", "Event") => via::<core::Event>(object),
        ("", "Namespace") => via::<core::Namespace>(object),
        ("", "Node") => via::<core::Node>(object),
        ("", "PersistentVolumeClaim") => via::<core::PersistentVolumeClaim>(object),
        ("", "PersistentVolume") => via::<core::PersistentVolume>(object),
        ("", "Pod") => via::<core::Pod>(object),
        ("", "ReplicationController") => via::<core::ReplicationController>(object),
        ("", "Secret") => via::<core::Secret>(object),
        ("", "ServiceAccount") => via::<core::ServiceAccount>(object),
        ("", "Service") => via::<core::Service>(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            via::<apiextensions::CustomResourceDefinition>(object)
        }
        ("apps", "ControllerRevision") => via::<api::apps::v1::ControllerRevision>(object),
        ("apps", "DaemonSet") => via::<api::apps::v1::DaemonSet>(object),
        ("apps", "Deployment") => via::<api::apps::v1::Deployment>(object),
        ("apps", "ReplicaSet") => via::<api::apps::v1::ReplicaSet>(object),
        ("apps", "StatefulSet") => via::<api::apps::v1::StatefulSet>(object),
        ("batch", "CronJob") => via::<api::batch::v1::CronJob>(object),
        ("batch", "Job") => via::<api::batch::v1::Job>(object),
        ("coordination.k8s.io", "Lease") => via::<api::coordination::v1::Lease>(object),
        ("discovery.k8s.io", "EndpointSlice") => via::<api::discovery::v1::EndpointSlice>(object),
        ("events.k8s.io", "Event") => via::<api::events::v1::Event>(object),
        ("networking.k8s.io", "Ingress") => via::<api::networking::v1::Ingress>(object),
        ("networking.k8s.io", "NetworkPolicy") => via::<api::networking::v1::NetworkPolicy>(object),
        ("policy", "PodDisruptionBudget") => via::<api::policy::v1::PodDisruptionBudget>(object),
        ("authentication.k8s.io", "SelfSubjectReview") => {
            via::<api::authentication::v1::SelfSubjectReview>(object)
        }
        ("authorization.k8s.io", "LocalSubjectAccessReview") => {
            via::<api::authorization::v1::LocalSubjectAccessReview>(object)
        }
        ("authorization.k8s.io", "SelfSubjectAccessReview") => {
            via::<api::authorization::v1::SelfSubjectAccessReview>(object)
        }
        ("authorization.k8s.io", "SelfSubjectRulesReview") => {
            via::<api::authorization::v1::SelfSubjectRulesReview>(object)
        }
        ("authorization.k8s.io", "SubjectAccessReview") => {
            via::<api::authorization::v1::SubjectAccessReview>(object)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            via::<api::rbac::v1::ClusterRoleBinding>(object)
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => via::<api::rbac::v1::ClusterRole>(object),
        ("rbac.authorization.k8s.io", "RoleBinding") => via::<api::rbac::v1::RoleBinding>(object),
        ("rbac.authorization.k8s.io", "Role") => via::<api::rbac::v1::Role>(object),
        ("scheduling.k8s.io", "PriorityClass") => via::<api::scheduling::v1::PriorityClass>(object),
        ("storage.k8s.io", "StorageClass") => via::<api::storage::v1::StorageClass>(object),
        // Every registered resource has a typed form above; the registry test checks it.
        _ => Ok(object.clone()),
    }
}

/// Kinds whose typed form is known (tested against the registry).
pub fn has_typed_form(resource: &ResourceInfo) -> bool {
    let probe = serde_json::json!({});
    roundtrip(resource, &probe).map_or(true, |v| v != probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubecache_core::registry::Registry;
    use serde_json::json;

    fn configmaps() -> &'static ResourceInfo {
        Registry::builtin().lookup("", "v1", "configmaps").unwrap()
    }

    #[test]
    fn every_registered_resource_has_a_typed_form() {
        for r in Registry::builtin().all() {
            assert!(has_typed_form(r), "{}/{}", r.group, r.resource);
        }
    }

    #[test]
    fn empty_metadata_collections_are_omitted_like_go() {
        let input = json!({"metadata": {"name": "a", "labels": {}, "annotations": {}, "finalizers": [], "ownerReferences": []}, "data": {}});
        let (typed, unknown) = normalize(configmaps(), input).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(typed["metadata"], json!({"name": "a"}));
        let kept = json!({"metadata": {"name": "a", "labels": {"x": "y"}, "finalizers": ["f"]}});
        let (typed, _) = normalize(configmaps(), kept).unwrap();
        assert_eq!(typed["metadata"]["labels"], json!({"x": "y"}));
        assert_eq!(typed["metadata"]["finalizers"], json!(["f"]));
    }

    #[test]
    fn unknown_fields_are_found_and_dropped() {
        let input = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "bogus": 1}, "data": {"k": "v"}, "extra": true});
        let (typed, unknown) = normalize(configmaps(), input).unwrap();
        assert_eq!(unknown, vec!["metadata.bogus", "extra"]);
        assert!(typed.get("extra").is_none());
        assert_eq!(typed["data"]["k"], "v");
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let input = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": 5}});
        let err = normalize(configmaps(), input).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .starts_with("ConfigMap in version \"v1\" cannot be handled as a ConfigMap"),
            "{}",
            err.message
        );
    }

    #[test]
    fn duplicates_are_tracked_and_strict_rejects() {
        let parsed =
            parse_json(br#"{"metadata": {"name": "a", "name": "b"}, "list": [{"x": 1, "x": 2}]}"#)
                .unwrap();
        assert_eq!(parsed.duplicate_fields, vec!["metadata.name", "list[0].x"]);
        assert_eq!(parsed.value["metadata"]["name"], "b");
        let err = check_fields(
            FieldValidation::Strict,
            &parsed.duplicate_fields,
            &["spec.foo".into()],
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "strict decoding error: duplicate field \"metadata.name\", duplicate field \"list[0].x\", unknown field \"spec.foo\""
        );
        assert_eq!(
            check_fields(FieldValidation::Warn, &[], &["a".into()]).unwrap(),
            vec!["unknown field \"a\""]
        );
        assert!(
            check_fields(FieldValidation::Ignore, &[], &["a".into()])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert_eq!(parse_json(b"{\"a\":").err().unwrap().code, 400);
        assert_eq!(parse_json(b"{} trailing").err().unwrap().code, 400);
    }
}
