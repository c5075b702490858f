//! CEL values, and JSON turned into them with the schema's help, as kube's
//! `UnstructuredToVal` does: `integer` is int, `number` is double, `format: date-time` a
//! timestamp, `format: duration` a duration, `format: byte` bytes; int-or-string and
//! preserve-unknown-fields values keep whatever JSON shape they have.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, TimeDelta};
use serde_json::Value as Json;

use super::library::Url;
use kubecache_core::quantity::Quantity;

#[derive(Clone, Debug)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(Arc<str>),
    Bytes(Arc<[u8]>),
    List(Arc<Vec<Value>>),
    Map(Arc<BTreeMap<Key, Value>>),
    Timestamp(DateTime<FixedOffset>),
    Duration(TimeDelta),
    /// `optional_type`: `None` is `optional.none()`.
    Optional(Option<Arc<Value>>),
    Quantity(Arc<Quantity>),
    Url(Arc<Url>),
    /// A type value, as `type(x)` returns it: its CEL name.
    Type(&'static str),
}

/// A map key: CEL allows bool, int, uint and string keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Bool(bool),
    Int(i64),
    Uint(u64),
    String(Arc<str>),
}

impl Key {
    pub(crate) fn from_value(value: &Value) -> Option<Key> {
        Some(match value {
            Value::Bool(b) => Key::Bool(*b),
            Value::Int(i) => Key::Int(*i),
            Value::Uint(u) => Key::Uint(*u),
            Value::String(s) => Key::String(s.clone()),
            _ => return None,
        })
    }

    pub(crate) fn to_value(&self) -> Value {
        match self {
            Key::Bool(b) => Value::Bool(*b),
            Key::Int(i) => Value::Int(*i),
            Key::Uint(u) => Value::Uint(*u),
            Key::String(s) => Value::String(s.clone()),
        }
    }
}

/// The type names a rule can write as values: `type(x) == string`.
pub(crate) const TYPE_NAMES: &[&str] = &[
    "bool",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

impl Value {
    pub(crate) fn string(s: &str) -> Value {
        Value::String(Arc::from(s))
    }

    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null_type",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Timestamp(_) => "google.protobuf.Timestamp",
            Value::Duration(_) => "google.protobuf.Duration",
            Value::Optional(_) => "optional_type",
            Value::Quantity(_) => "kubernetes.Quantity",
            Value::Url(_) => "kubernetes.URL",
            Value::Type(_) => "type",
        }
    }

    /// What the runtime cost of walking this value is proportional to: bytes of a string,
    /// elements of a list or map.
    pub(crate) fn size(&self) -> u64 {
        match self {
            Value::String(s) => s.len() as u64,
            Value::Bytes(b) => b.len() as u64,
            Value::List(l) => l.len() as u64,
            Value::Map(m) => m.len() as u64,
            _ => 1,
        }
    }

    /// CEL's heterogeneous equality: numbers compare by value across int, uint and double.
    pub(crate) fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.equals(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.get(k).is_some_and(|other| v.equals(other)))
            }
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Duration(a), Value::Duration(b)) => a == b,
            (Value::Optional(a), Value::Optional(b)) => match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => a.equals(b),
                _ => false,
            },
            (Value::Quantity(a), Value::Quantity(b)) => a.compare(b) == Ordering::Equal,
            (Value::Url(a), Value::Url(b)) => a.raw == b.raw,
            (Value::Type(a), Value::Type(b)) => a == b,
            _ => matches!(numeric_order(self, other), Some(Ordering::Equal)),
        }
    }

    /// The order of `<`, `<=`, `>`, `>=`; `None` when the two are not comparable.
    pub(crate) fn order(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Bytes(a), Value::Bytes(b)) => Some(a.cmp(b)),
            (Value::Timestamp(a), Value::Timestamp(b)) => Some(a.cmp(b)),
            (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
            _ => numeric_order(self, other),
        }
    }
}

fn numeric_order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Uint(a), Value::Uint(b)) => Some(a.cmp(b)),
        (Value::Int(a), Value::Uint(b)) => Some(i128::from(*a).cmp(&i128::from(*b))),
        (Value::Uint(a), Value::Int(b)) => Some(i128::from(*a).cmp(&i128::from(*b))),
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
        (Value::Double(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Value::Int(a), Value::Double(b)) => (*a as f64).partial_cmp(b),
        (Value::Double(a), Value::Uint(b)) => a.partial_cmp(&(*b as f64)),
        (Value::Uint(a), Value::Double(b)) => (*a as f64).partial_cmp(b),
        _ => None,
    }
}

/// The schema node a JSON value is typed by: `None` where the schema says nothing
/// (preserve-unknown-fields content, int-or-string), so the value keeps its JSON shape.
pub(crate) fn from_json(json: &Json, schema: Option<&Json>) -> Value {
    let schema_type = schema.and_then(|s| s.get("type")).and_then(Json::as_str);
    let format = schema.and_then(|s| s.get("format")).and_then(Json::as_str);
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if schema_type == Some("number") {
                return Value::Double(n.as_f64().unwrap_or(f64::NAN));
            }
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::Uint(u)
            } else {
                Value::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => {
            if schema_type == Some("string") {
                match format {
                    Some("date-time") => {
                        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                            return Value::Timestamp(t);
                        }
                    }
                    Some("duration") => {
                        if let Some(d) = super::library::parse_duration(s) {
                            return Value::Duration(d);
                        }
                    }
                    Some("byte") => {
                        if let Some(bytes) = decode_base64(s) {
                            return Value::Bytes(Arc::from(bytes));
                        }
                    }
                    _ => {}
                }
            }
            Value::string(s)
        }
        Json::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            Value::List(Arc::new(
                items.iter().map(|i| from_json(i, item_schema)).collect(),
            ))
        }
        Json::Object(fields) => {
            let properties = schema.and_then(|s| s.get("properties"));
            let additional = schema
                .and_then(|s| s.get("additionalProperties"))
                .filter(|a| a.is_object());
            let map = fields
                .iter()
                .map(|(k, v)| {
                    let child = properties.and_then(|p| p.get(k)).or(additional);
                    (Key::String(Arc::from(k.as_str())), from_json(v, child))
                })
                .collect();
            Value::Map(Arc::new(map))
        }
    }
}

/// Standard base64, as kube's `format: byte` reads it; `None` if it is not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.bytes() {
        let sextet = ALPHABET.iter().position(|&c| c == byte)? as u32;
        buffer = (buffer << 6) | sextet;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}
