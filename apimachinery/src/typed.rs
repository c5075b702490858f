//! Typed decoding of built-in objects with `fieldValidation`.
//!
//! Every built-in object in a request body is decoded as its k8s-openapi type, exactly as
//! kube-apiserver decodes into its Go structs: a malformed object is a 400, unknown fields
//! are dropped (and, per `fieldValidation`, warned about or rejected), and what gets stored is
//! the typed object serialized again — never fields the type does not have.

use crate::registry::Resource;
use std::fmt;

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
        path: None,
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

/// Where a value is in the body: a chain of steps up to the root, borrowed from the parser's
/// stack, so that a path is only rendered for a duplicate.
struct PathNode<'a> {
    parent: Option<&'a PathNode<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `metadata.name`, `list[0].x`.
fn render(node: &PathNode<'_>) -> String {
    let mut steps = Vec::new();
    let mut at = Some(node);
    while let Some(n) = at {
        steps.push(n.step);
        at = n.parent;
    }
    let mut out = String::new();
    for step in steps.into_iter().rev() {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => {
                use std::fmt::Write;
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

struct TrackedValue<'a> {
    path: Option<&'a PathNode<'a>>,
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
            let node = PathNode {
                parent: self.path,
                step: Step::Index(items.len()),
            };
            let seed = TrackedValue {
                path: Some(&node),
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
            let node = PathNode {
                parent: self.path,
                step: Step::Key(&key),
            };
            let value = map.next_value_seed(TrackedValue {
                path: Some(&node),
                duplicates: &mut *self.duplicates,
            })?;
            if object.contains_key(&key) {
                self.duplicates.push(render(&node));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Decodes `object` as the typed object of `resource` and serializes it again, with the empty
/// struct fields kube always writes ([`fill_always_present`]). Returns the normalized object
/// and the problems `fieldValidation` should report.
pub fn normalize(resource: &Resource, object: Value) -> Result<(Value, Vec<String>), ApiError> {
    let mut typed = roundtrip(resource, &object).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = &resource.kind,
            version = resource.version
        ))
    })?;
    let mut unknown = Vec::new();
    unknown_fields(&object, &typed, &mut String::new(), &mut unknown);
    omit_empty_metadata(&mut typed);
    fill_always_present(resource, &mut typed);
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

/// Paths present (and not null) in `input` that the typed round trip dropped. `path` is a
/// buffer the walk extends and truncates as it goes.
fn unknown_fields(input: &Value, typed: &Value, path: &mut String, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(input), Value::Object(typed)) => {
            for (key, value) in input {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match typed.get(key) {
                    Some(t) => unknown_fields(value, t, path, out),
                    None if value.is_null() => {}
                    None => out.push(path.clone()),
                }
                path.truncate(len);
            }
        }
        (Value::Array(input), Value::Array(typed)) => {
            for (i, (value, t)) in input.iter().zip(typed).enumerate() {
                use std::fmt::Write;
                let len = path.len();
                let _ = write!(path, "[{i}]");
                unknown_fields(value, t, path, out);
                path.truncate(len);
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

/// Puts an object that [`normalize`] returned, and server code then changed (metadata rules,
/// admission defaults, managedFields), in the form a second typed round trip would give it —
/// without that round trip, which costs as much as the first (a fifth of a create's CPU).
///
/// k8s-openapi serializes `apiVersion` and `kind` first, then every struct field in the byte
/// order of its JSON name, and every map (`BTreeMap`) in key order; `None` fields are left
/// out. So for the kinds whose typed form holds no free-form JSON, the canonical form is the
/// object with every map's keys sorted (the free-form `managedFields[].fieldsV1` left as it is),
/// nulls dropped, `apiVersion` and `kind` first. The server code between the two passes only
/// adds well-typed fields, so the typed check of the first pass still holds. Debug builds
/// (every test) check the result against the real round trip.
///
/// Both also put in the empty struct fields kube-apiserver always writes
/// ([`fill_always_present`]): nulls are dropped first and then put back where Go writes them.
pub fn canonicalize(resource: &Resource, mut object: Value) -> Result<Value, ApiError> {
    if !has_plain_typed_form(resource) {
        let (typed, _) = normalize(resource, object)?;
        return Ok(typed);
    }
    #[cfg(debug_assertions)]
    let expected = normalize(resource, object.clone()).map(|(typed, _)| typed);
    if let Value::Object(root) = &mut object {
        sort_fields(root);
        if root.get("kind").and_then(Value::as_str) != Some(&resource.kind) {
            root.insert("kind".into(), Value::String(resource.kind.clone()));
        }
        let version = resource.api_version();
        if root.get("apiVersion").and_then(Value::as_str) != Some(version.as_str()) {
            root.insert("apiVersion".into(), Value::String(version));
        }
        for key in ["kind", "apiVersion"] {
            if let Some(value) = root.shift_remove(key) {
                root.shift_insert(0, key.into(), value);
            }
        }
    }
    omit_empty_metadata(&mut object);
    fill_always_present(resource, &mut object);
    #[cfg(debug_assertions)]
    {
        let expected = expected.expect("the object was typed before");
        assert!(
            expected == object
                && serde_json::to_string(&expected).ok() == serde_json::to_string(&object).ok(),
            "canonical form differs from the typed round trip:\n{expected}\n{object}"
        );
    }
    Ok(object)
}

/// Adds the empty struct fields kube-apiserver always writes (Go never omits a non-pointer
/// struct field; k8s-openapi drops it when empty): see [`crate::always_present`].
pub fn fill_always_present(resource: &Resource, object: &mut Value) {
    crate::always_present::fill(&resource.api_version(), &resource.kind, object);
}

/// Kinds whose typed form is plain structs and maps: no free-form JSON (a ControllerRevision's
/// `data`, a CRD's schemas) whose key order the round trip keeps. Objects stored in another
/// version's shape (events.k8s.io events, stored as core/v1) are not in their typed form.
fn has_plain_typed_form(resource: &Resource) -> bool {
    let strategy = resource.strategy();
    strategy.typed_form() == crate::strategy::TypedForm::Plain
        && strategy.storage_version().is_none()
}

/// Sorts the keys of `map` and of every object below it, drops null fields; leaves the inside
/// of `fieldsV1` (free-form JSON in the typed form) as it is.
fn sort_fields(map: &mut Map<String, Value>) {
    if map.values().any(Value::is_null) {
        map.retain(|_, value| !value.is_null());
    }
    if !map.keys().is_sorted() {
        map.sort_keys();
    }
    for (key, value) in map.iter_mut() {
        if key == "fieldsV1" {
            continue;
        }
        sort_value(value);
    }
}

fn sort_value(value: &mut Value) {
    match value {
        Value::Object(map) => sort_fields(map),
        Value::Array(items) => items.iter_mut().for_each(sort_value),
        _ => {}
    }
}

fn roundtrip(resource: &Resource, object: &Value) -> Result<Value, serde_json::Error> {
    resource.strategy().round_trip(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn configmaps() -> std::sync::Arc<Resource> {
        Registry::builtin().lookup("", "v1", "configmaps").unwrap()
    }

    #[test]
    fn empty_metadata_collections_are_omitted_like_go() {
        let input = json!({"metadata": {"name": "a", "labels": {}, "annotations": {}, "finalizers": [], "ownerReferences": []}, "data": {}});
        let (typed, unknown) = normalize(&configmaps(), input).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        assert_eq!(
            typed["metadata"],
            json!({"creationTimestamp": null, "name": "a"})
        );
        let kept = json!({"metadata": {"name": "a", "labels": {"x": "y"}, "finalizers": ["f"]}});
        let (typed, _) = normalize(&configmaps(), kept).unwrap();
        assert_eq!(typed["metadata"]["labels"], json!({"x": "y"}));
        assert_eq!(typed["metadata"]["finalizers"], json!(["f"]));
    }

    #[test]
    fn unknown_fields_are_found_and_dropped() {
        let input = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "bogus": 1}, "data": {"k": "v"}, "extra": true});
        let (typed, unknown) = normalize(&configmaps(), input).unwrap();
        assert_eq!(unknown, vec!["metadata.bogus", "extra"]);
        assert!(typed.get("extra").is_none());
        assert_eq!(typed["data"]["k"], "v");
    }

    #[test]
    fn wrong_types_are_bad_requests() {
        let input = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": 5}});
        let err = normalize(&configmaps(), input).unwrap_err();
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

    /// Every map's keys in reverse order, `fieldsV1` left alone: what server code inserting
    /// fields out of order could leave.
    fn scrambled(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .rev()
                    .map(|(k, v)| {
                        let v = if k == "fieldsV1" {
                            v.clone()
                        } else {
                            scrambled(v)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(scrambled).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn canonicalize_gives_the_typed_round_trips_bytes_for_every_kind() {
        let samples: Vec<Value> =
            serde_json::from_str(include_str!("protobuf/samples.json")).unwrap();
        for r in Registry::builtin()
            .snapshot()
            .iter()
            .filter(|r| !r.create_only)
        {
            let Some(sample) = samples
                .iter()
                .find(|s| s["apiVersion"] == r.api_version().as_str() && s["kind"] == r.kind)
            else {
                continue;
            };
            let mut input = scrambled(sample);
            input["metadata"]["generateName"] = Value::Null;
            input["metadata"]["managedFields"] = json!([{"manager": "m", "operation": "Update",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}, "f:data": {".": {}, "f:b": {}, "f:a": {}}, "i:10": {}, "i:2": {}}}]);
            let (expected, _) = normalize(r, input.clone()).unwrap();
            let canonical = canonicalize(r, input).unwrap();
            assert_eq!(
                serde_json::to_string(&canonical).unwrap(),
                serde_json::to_string(&expected).unwrap(),
                "{} {}",
                r.api_version(),
                r.kind
            );
        }
    }

    /// The canonical form is a fixed point: decoding and canonicalizing what is stored gives
    /// the same bytes (so an update that sends back what it read writes nothing), with the
    /// always-present fields in it — for every kind, from its sample and from the sample
    /// without its status (as a create resets it).
    #[test]
    fn the_canonical_form_with_always_present_fields_is_stable_for_every_kind() {
        let samples: Vec<Value> =
            serde_json::from_str(include_str!("protobuf/samples.json")).unwrap();
        let mut filled = 0;
        for r in Registry::builtin()
            .snapshot()
            .iter()
            .filter(|r| !r.create_only)
        {
            let sample = samples
                .iter()
                .find(|s| s["apiVersion"] == r.api_version().as_str() && s["kind"] == r.kind)
                .unwrap_or_else(|| panic!("no sample of {}", &r.kind));
            let mut without_status = sample.clone();
            without_status.as_object_mut().unwrap().remove("status");
            for input in [sample, &without_status] {
                let (decoded, _) = normalize(r, input.clone()).unwrap();
                let once = canonicalize(r, decoded.clone()).unwrap();
                let (again, _) = normalize(r, once.clone()).unwrap();
                let twice = canonicalize(r, again).unwrap();
                assert_eq!(
                    serde_json::to_string(&once).unwrap(),
                    serde_json::to_string(&twice).unwrap(),
                    "{} {}",
                    r.api_version(),
                    r.kind
                );
                let mut stripped = once.clone();
                crate::always_present::strip(&r.api_version(), &r.kind, &mut stripped);
                filled += usize::from(stripped != once);
            }
        }
        assert!(filled > 30, "{filled}");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert_eq!(parse_json(b"{\"a\":").err().unwrap().code, 400);
        assert_eq!(parse_json(b"{} trailing").err().unwrap().code, 400);
    }
}
