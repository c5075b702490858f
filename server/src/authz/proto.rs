//! Protobuf request bodies of the review APIs. kubectl's typed clients (`auth can-i`,
//! `auth can-i --list`, `auth whoami`) POST them as `application/vnd.kubernetes.protobuf`:
//! the magic `k8s\0`, then a `runtime.Unknown` (typeMeta = 1, raw = 2) whose `raw` is the
//! review message. This decodes exactly the fields the reviews read into the JSON shape, so
//! one code path serves both encodings; the answer is JSON, which kubectl accepts.
//!
//! A small schema-driven reader of the protobuf wire format (varints and length-delimited
//! fields; other wire types skipped) rather than a generated-code dependency.

use kubecache_core::status::ApiError;
use serde_json::{Map, Value, json};

/// The content type of Kubernetes protobuf bodies.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// How a field is decoded.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    RepeatedStr,
    Message(&'static [Field]),
    /// `map<string, ExtraValue>`: entries {key = 1, value = 2 {items = 1 repeated}}.
    ExtraMap,
}

type Field = (u64, &'static str, Kind);

const OBJECT_META: &[Field] = &[
    (1, "name", Kind::Str),
    (2, "generateName", Kind::Str),
    (3, "namespace", Kind::Str),
];
const RESOURCE_ATTRIBUTES: &[Field] = &[
    (1, "namespace", Kind::Str),
    (2, "verb", Kind::Str),
    (3, "group", Kind::Str),
    (4, "version", Kind::Str),
    (5, "resource", Kind::Str),
    (6, "subresource", Kind::Str),
    (7, "name", Kind::Str),
];
const NON_RESOURCE_ATTRIBUTES: &[Field] = &[(1, "path", Kind::Str), (2, "verb", Kind::Str)];
const SELF_ACCESS_SPEC: &[Field] = &[
    (1, "resourceAttributes", Kind::Message(RESOURCE_ATTRIBUTES)),
    (
        2,
        "nonResourceAttributes",
        Kind::Message(NON_RESOURCE_ATTRIBUTES),
    ),
];
const ACCESS_SPEC: &[Field] = &[
    (1, "resourceAttributes", Kind::Message(RESOURCE_ATTRIBUTES)),
    (
        2,
        "nonResourceAttributes",
        Kind::Message(NON_RESOURCE_ATTRIBUTES),
    ),
    (3, "user", Kind::Str),
    (4, "groups", Kind::RepeatedStr),
    (5, "extra", Kind::ExtraMap),
    (6, "uid", Kind::Str),
];
const RULES_SPEC: &[Field] = &[(1, "namespace", Kind::Str)];

const SELF_ACCESS_REVIEW: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META)),
    (2, "spec", Kind::Message(SELF_ACCESS_SPEC)),
];
const ACCESS_REVIEW: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META)),
    (2, "spec", Kind::Message(ACCESS_SPEC)),
];
const RULES_REVIEW: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META)),
    (2, "spec", Kind::Message(RULES_SPEC)),
];
const SELF_SUBJECT_REVIEW: &[Field] = &[(1, "metadata", Kind::Message(OBJECT_META))];
const TYPE_META: &[Field] = &[(1, "apiVersion", Kind::Str), (2, "kind", Kind::Str)];

fn bad(detail: &str) -> ApiError {
    ApiError::bad_request(format!("cannot decode the protobuf request body: {detail}"))
}

/// The review of kind `kind` in a protobuf body, as the JSON it would have been sent as.
pub fn review_json(kind: &str, body: &[u8]) -> Result<Value, ApiError> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf magic prefix"))?;
    let mut type_meta = Value::Null;
    let mut raw: &[u8] = &[];
    let mut reader = Reader(unknown);
    while let Some((field, value)) = reader.field()? {
        match (field, value) {
            (1, Wire::Bytes(bytes)) => type_meta = message(bytes, TYPE_META)?,
            (2, Wire::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let schema = match kind {
        "SelfSubjectAccessReview" => SELF_ACCESS_REVIEW,
        "SubjectAccessReview" | "LocalSubjectAccessReview" => ACCESS_REVIEW,
        "SelfSubjectRulesReview" => RULES_REVIEW,
        "SelfSubjectReview" => SELF_SUBJECT_REVIEW,
        _ => return Err(bad(&format!("{kind} has no protobuf form here"))),
    };
    let mut object = message(raw, schema)?;
    if let (Some(map), Some(meta)) = (object.as_object_mut(), type_meta.as_object()) {
        for (k, v) in meta {
            map.insert(k.clone(), v.clone());
        }
    }
    Ok(object)
}

enum Wire<'a> {
    Varint,
    Bytes(&'a [u8]),
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .0
                .split_first()
                .ok_or_else(|| bad("truncated varint"))?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("varint too long"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], ApiError> {
        if self.0.len() < len {
            return Err(bad("truncated field"));
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    /// The next field number and value; `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Wire<'a>)>, ApiError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let value = match tag & 7 {
            0 => {
                self.varint()?;
                Wire::Varint
            }
            1 => {
                self.take(8)?;
                Wire::Varint
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| bad("length too large"))?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Varint
            }
            other => return Err(bad(&format!("unsupported wire type {other}"))),
        };
        Ok(Some((tag >> 3, value)))
    }
}

fn string(bytes: &[u8]) -> Result<Value, ApiError> {
    std::str::from_utf8(bytes)
        .map(|s| json!(s))
        .map_err(|_| bad("a string field is not UTF-8"))
}

fn message(bytes: &[u8], schema: &[Field]) -> Result<Value, ApiError> {
    let mut object = Map::new();
    let mut reader = Reader(bytes);
    while let Some((number, value)) = reader.field()? {
        let Wire::Bytes(bytes) = value else {
            continue;
        };
        let Some(&(_, name, kind)) = schema.iter().find(|(n, _, _)| *n == number) else {
            continue;
        };
        match kind {
            Kind::Str => {
                object.insert(name.into(), string(bytes)?);
            }
            Kind::RepeatedStr => {
                let list = object.entry(name).or_insert_with(|| json!([]));
                if let Some(list) = list.as_array_mut() {
                    list.push(string(bytes)?);
                }
            }
            Kind::Message(fields) => {
                object.insert(name.into(), message(bytes, fields)?);
            }
            Kind::ExtraMap => {
                let entry = message(
                    bytes,
                    &[
                        (1, "key", Kind::Str),
                        (
                            2,
                            "value",
                            Kind::Message(&[(1, "items", Kind::RepeatedStr)]),
                        ),
                    ],
                )?;
                let key = entry["key"].as_str().unwrap_or("").to_string();
                let items = entry["value"]["items"].clone();
                let items = if items.is_null() { json!([]) } else { items };
                let map = object.entry(name).or_insert_with(|| json!({}));
                if let Some(map) = map.as_object_mut() {
                    map.insert(key, items);
                }
            }
        }
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a length-delimited field (test helper).
    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_a_self_subject_access_review() {
        let attributes = [field(1, b"default"), field(2, b"list"), field(5, b"pods")].concat();
        let spec = field(1, &attributes);
        let review = [field(1, &[]), field(2, &spec)].concat();
        let type_meta = [
            field(1, b"authorization.k8s.io/v1"),
            field(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let mut body = MAGIC.to_vec();
        body.extend(field(1, &type_meta));
        body.extend(field(2, &review));
        body.extend(field(4, b"")); // contentType, ignored
        let json = review_json("SelfSubjectAccessReview", &body).unwrap();
        assert_eq!(json["kind"], "SelfSubjectAccessReview");
        assert_eq!(json["apiVersion"], "authorization.k8s.io/v1");
        assert_eq!(
            json["spec"]["resourceAttributes"],
            json!({"namespace": "default", "verb": "list", "resource": "pods"})
        );
    }

    #[test]
    fn decodes_subjects_and_extra() {
        let extra_entry = [field(1, b"scopes"), field(2, &field(1, b"a"))].concat();
        let spec = [
            field(3, b"alice"),
            field(4, b"dev"),
            field(4, b"ops"),
            field(5, &extra_entry),
        ]
        .concat();
        let mut body = MAGIC.to_vec();
        body.extend(field(2, &field(2, &spec)));
        let json = review_json("SubjectAccessReview", &body).unwrap();
        assert_eq!(json["spec"]["user"], "alice");
        assert_eq!(json["spec"]["groups"], json!(["dev", "ops"]));
        assert_eq!(json["spec"]["extra"], json!({"scopes": ["a"]}));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            review_json("SubjectAccessReview", b"{}").unwrap_err().code,
            400
        );
        let truncated = [MAGIC, &[0x12, 0x40, 1]].concat();
        assert_eq!(
            review_json("SubjectAccessReview", &truncated)
                .unwrap_err()
                .code,
            400
        );
    }
}
