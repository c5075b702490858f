//! JSON ↔ protobuf for one message, driven by the generated table: the JSON an object is
//! stored and served in, and the bytes kube's generated.proto messages have on the wire.
//!
//! The encoder writes fields in tag order, repeated scalars unpacked (proto2) and map entries
//! sorted by key, as Go's generated marshallers do; the decoder takes any order, packed or
//! unpacked repeated scalars, and skips unknown fields.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Number, Value};

use super::Error;
use super::descriptors::{JSON_SCHEMA_PROPS, MESSAGES};
use super::table::{Field, Label, Message, Special, Type};
use super::wire::{self, Reader};

/// String fields where an empty string is a value, not an unset field (Go `*string`
/// fields whose empty value means something): everywhere else an empty string decodes as
/// absent, as Go's JSON `omitempty` prints it.
const EMPTY_STRING_IS_A_VALUE: &[(&str, &str)] =
    &[("api.core.v1.PersistentVolumeClaimSpec", "storageClassName")];

pub fn message(index: u16) -> &'static Message {
    &MESSAGES[usize::from(index)]
}

// ---------------------------------------------------------------------------------------
// JSON → protobuf

/// Appends the encoding of `value` (the JSON of `msg`) to `out`.
pub fn encode(msg: &'static Message, value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    match msg.special {
        Special::None => {
            let object = value
                .as_object()
                .ok_or_else(|| Error::new(format!("{}: expected an object", short(msg))))?;
            encode_fields(msg, object, out)
        }
        special => encode_special(msg, special, value, out),
    }
}

fn encode_fields(
    msg: &'static Message,
    object: &Map<String, Value>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    for field in msg.fields {
        if field.label == Label::Inline {
            let Type::Message(inner) = field.ty else {
                unreachable!("inline fields are messages")
            };
            wire::put_nested(out, field.tag, |out| {
                encode_fields(message(inner), object, out)
            })?;
            continue;
        }
        let value = match object.get(field.json) {
            None => continue,
            Some(Value::Null) => {
                if is_zero_struct(field) {
                    wire::put_len(out, field.tag, b"");
                }
                continue;
            }
            Some(value) => value,
        };
        let at = |e: Error| e.at(field.json);
        match field.label {
            Label::Optional | Label::Required | Label::OmitZero => {
                encode_value(field, field.ty, value, out).map_err(at)?
            }
            Label::Repeated => {
                let items = value
                    .as_array()
                    .ok_or_else(|| Error::new("expected an array").at(field.json))?;
                for item in items {
                    encode_value(field, field.ty, item, out).map_err(at)?;
                }
            }
            Label::Map => {
                let entries = value
                    .as_object()
                    .ok_or_else(|| Error::new("expected an object").at(field.json))?;
                let mut keys: Vec<&String> = entries.keys().collect();
                keys.sort();
                for key in keys {
                    let entry = &entries[key.as_str()];
                    wire::put_nested(out, field.tag, |out| {
                        wire::put_len(out, 1, key.as_bytes());
                        let value_field = Field {
                            tag: 2,
                            json: field.json,
                            ty: field.ty,
                            label: Label::Optional,
                        };
                        match entry {
                            Value::Null => encode_default(&value_field, out),
                            v => encode_value(&value_field, field.ty, v, out),
                        }
                    })
                    .map_err(|e| e.at(key).at(field.json))?;
                }
            }
            Label::Inline => unreachable!("handled above"),
        }
    }
    Ok(())
}

/// A `null` of a Time, MicroTime or RawExtension field: in the canonical form, the zero value
/// of a non-pointer Go field (see `crate::always_present`), which Go's generated marshallers
/// write as an empty message, as they write every non-nullable message field. (Nulls are
/// nowhere else in what is served: the typed round trip drops them.)
fn is_zero_struct(field: &Field) -> bool {
    match (field.label, field.ty) {
        (Label::Optional | Label::Required, Type::Message(index)) => matches!(
            message(index).special,
            Special::Time | Special::MicroTime | Special::RawJson
        ),
        _ => false,
    }
}

/// A map entry's value when JSON says null: the zero value.
fn encode_default(field: &Field, out: &mut Vec<u8>) -> Result<(), Error> {
    match field.ty {
        Type::String | Type::Bytes => wire::put_len(out, field.tag, b""),
        Type::Message(_) => wire::put_len(out, field.tag, b""),
        Type::Bool | Type::Int32 | Type::Int64 => {
            wire::put_key(out, field.tag, wire::VARINT);
            wire::put_varint(out, 0);
        }
        Type::Double => {
            wire::put_key(out, field.tag, wire::FIXED64);
            out.extend_from_slice(&0f64.to_le_bytes());
        }
    }
    Ok(())
}

fn encode_value(field: &Field, ty: Type, value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    let tag = field.tag;
    match ty {
        Type::String => {
            let s = value
                .as_str()
                .ok_or_else(|| Error::new("expected a string"))?;
            wire::put_len(out, tag, s.as_bytes());
        }
        Type::Bytes => {
            let s = value
                .as_str()
                .ok_or_else(|| Error::new("expected a base64 string"))?;
            let bytes = BASE64
                .decode(s)
                .map_err(|e| Error::new(format!("invalid base64: {e}")))?;
            wire::put_len(out, tag, &bytes);
        }
        Type::Bool => {
            let b = value
                .as_bool()
                .ok_or_else(|| Error::new("expected a boolean"))?;
            wire::put_key(out, tag, wire::VARINT);
            wire::put_varint(out, u64::from(b));
        }
        Type::Int32 => {
            let n = integer(value)?;
            let n = i32::try_from(n).map_err(|_| Error::new(format!("{n} overflows int32")))?;
            wire::put_key(out, tag, wire::VARINT);
            // Negative int32s are sign-extended to 64 bits on the wire.
            wire::put_varint(out, i64::from(n) as u64);
        }
        Type::Int64 => {
            let n = integer(value)?;
            wire::put_key(out, tag, wire::VARINT);
            wire::put_varint(out, n as u64);
        }
        Type::Double => {
            let f = value
                .as_f64()
                .ok_or_else(|| Error::new("expected a number"))?;
            wire::put_key(out, tag, wire::FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Type::Message(index) => {
            let inner = message(index);
            wire::put_nested(out, tag, |out| encode(inner, value, out))?;
        }
    }
    Ok(())
}

fn integer(value: &Value) -> Result<i64, Error> {
    if let Some(n) = value.as_i64() {
        return Ok(n);
    }
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        _ => Err(Error::new(format!("expected an integer, got {value}"))),
    }
}

fn encode_special(
    msg: &'static Message,
    special: Special,
    value: &Value,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let text = || {
        value
            .as_str()
            .ok_or_else(|| Error::new(format!("{}: expected a string", short(msg))))
    };
    match special {
        Special::None => unreachable!("plain messages are not special"),
        Special::Time | Special::MicroTime => {
            let t = DateTime::parse_from_rfc3339(text()?)
                .map_err(|e| Error::new(format!("invalid time {value}: {e}")))?;
            let nanos = match special {
                // metav1.Time has second precision in JSON and on the wire.
                Special::Time => 0,
                _ => t.timestamp_subsec_micros() * 1000,
            };
            put_int(out, 1, t.timestamp());
            put_int(out, 2, i64::from(nanos));
        }
        Special::Duration => put_int(out, 1, parse_duration(text()?)?),
        Special::Quantity => {
            let s = match value {
                Value::Number(n) => n.to_string(),
                _ => text()?.to_string(),
            };
            wire::put_len(out, 1, s.as_bytes());
        }
        Special::IntOrString => match value {
            Value::String(s) => {
                put_int(out, 1, 1);
                put_int(out, 2, 0);
                wire::put_len(out, 3, s.as_bytes());
            }
            _ => {
                let n = i32::try_from(integer(value)?)
                    .map_err(|_| Error::new("int-or-string overflows int32"))?;
                put_int(out, 1, 0);
                put_int(out, 2, i64::from(n));
                wire::put_len(out, 3, b"");
            }
        },
        Special::RawJson => {
            let raw = serde_json::to_vec(value).expect("a JSON value always serializes");
            wire::put_len(out, 1, &raw);
        }
        Special::SchemaOrArray => match value {
            Value::Array(items) => {
                for item in items {
                    wire::put_nested(out, 2, |out| encode(message(JSON_SCHEMA_PROPS), item, out))?;
                }
            }
            _ => wire::put_nested(out, 1, |out| encode(message(JSON_SCHEMA_PROPS), value, out))?,
        },
        Special::SchemaOrBool => match value {
            Value::Bool(b) => put_int(out, 1, i64::from(*b)),
            _ => {
                put_int(out, 1, 1);
                wire::put_nested(out, 2, |out| encode(message(JSON_SCHEMA_PROPS), value, out))?;
            }
        },
        Special::SchemaOrStringArray => match value {
            Value::Array(items) => {
                for item in items {
                    let s = item
                        .as_str()
                        .ok_or_else(|| Error::new("expected an array of strings"))?;
                    wire::put_len(out, 2, s.as_bytes());
                }
            }
            _ => wire::put_nested(out, 1, |out| encode(message(JSON_SCHEMA_PROPS), value, out))?,
        },
        Special::StringList => {
            let items = value
                .as_array()
                .ok_or_else(|| Error::new(format!("{}: expected an array", short(msg))))?;
            for item in items {
                let s = item
                    .as_str()
                    .ok_or_else(|| Error::new("expected an array of strings"))?;
                wire::put_len(out, 1, s.as_bytes());
            }
        }
    }
    Ok(())
}

fn put_int(out: &mut Vec<u8>, tag: u32, n: i64) {
    wire::put_key(out, tag, wire::VARINT);
    wire::put_varint(out, n as u64);
}

// ---------------------------------------------------------------------------------------
// protobuf → JSON

/// Decodes `bytes` as `msg`; `None` when its JSON form is absent (a zero Time, an empty
/// RawExtension).
pub fn decode(msg: &'static Message, bytes: &[u8]) -> Result<Option<Value>, Error> {
    match msg.special {
        Special::None => {
            let mut object = Map::new();
            decode_fields(msg, bytes, &mut object)?;
            Ok(Some(Value::Object(object)))
        }
        special => decode_special(msg, special, bytes),
    }
}

fn field_by_tag(msg: &'static Message, tag: u32) -> Option<&'static Field> {
    msg.fields.iter().find(|f| f.tag == tag)
}

fn decode_fields(
    msg: &'static Message,
    bytes: &[u8],
    object: &mut Map<String, Value>,
) -> Result<(), Error> {
    let mut reader = Reader::new(bytes);
    while !reader.done() {
        let (tag, wire_type) = reader.key()?;
        let Some(field) = field_by_tag(msg, tag) else {
            reader.skip(wire_type)?;
            continue;
        };
        let at = |e: Error| {
            e.at(if field.json.is_empty() {
                ""
            } else {
                field.json
            })
        };
        match field.label {
            Label::Inline => {
                let Type::Message(inner) = field.ty else {
                    unreachable!("inline fields are messages")
                };
                expect_wire(wire_type, wire::LEN)?;
                decode_fields(message(inner), reader.bytes()?, object).map_err(at)?;
            }
            Label::Optional | Label::Required | Label::OmitZero => {
                if let Some(v) = decode_value(field.ty, wire_type, &mut reader).map_err(at)? {
                    object.insert(field.json.to_string(), v);
                }
            }
            Label::Repeated => {
                let items = object
                    .entry(field.json.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(items) = items else {
                    unreachable!("repeated fields hold arrays")
                };
                let packed = wire_type == wire::LEN
                    && matches!(
                        field.ty,
                        Type::Bool | Type::Int32 | Type::Int64 | Type::Double
                    );
                if packed {
                    let mut inner = Reader::new(reader.bytes()?);
                    let scalar_wire = if field.ty == Type::Double {
                        wire::FIXED64
                    } else {
                        wire::VARINT
                    };
                    while !inner.done() {
                        if let Some(v) =
                            decode_value(field.ty, scalar_wire, &mut inner).map_err(at)?
                        {
                            items.push(v);
                        }
                    }
                } else if let Some(v) =
                    decode_value(field.ty, wire_type, &mut reader).map_err(at)?
                {
                    items.push(v);
                } else {
                    items.push(Value::Null);
                }
            }
            Label::Map => {
                expect_wire(wire_type, wire::LEN).map_err(at)?;
                let mut entry = Reader::new(reader.bytes()?);
                let (mut key, mut value) = (String::new(), None);
                while !entry.done() {
                    let (tag, wire_type) = entry.key()?;
                    match tag {
                        1 => {
                            expect_wire(wire_type, wire::LEN)?;
                            key = utf8(entry.bytes()?)?;
                        }
                        2 => value = decode_value(field.ty, wire_type, &mut entry).map_err(at)?,
                        _ => entry.skip(wire_type)?,
                    }
                }
                let value = value.unwrap_or_else(|| zero_json(field.ty));
                let map = object
                    .entry(field.json.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(key, value);
                }
            }
        }
    }
    drop_go_zero_values(msg, object);
    Ok(())
}

/// Removes what Go's JSON would not print of what a Go client sends: empty strings (all
/// but a few pointer fields) and the zeros of plain `omitempty` numbers and booleans.
fn drop_go_zero_values(msg: &'static Message, object: &mut Map<String, Value>) {
    for field in msg.fields {
        let zero = match (field.label, object.get(field.json)) {
            (Label::Optional, Some(Value::String(s))) if field.ty == Type::String => {
                s.is_empty() && !EMPTY_STRING_IS_A_VALUE.contains(&(msg.name, field.json))
            }
            (Label::OmitZero, Some(Value::Bool(b))) => !b,
            (Label::OmitZero, Some(Value::Number(n))) => n.as_f64() == Some(0.0),
            _ => false,
        };
        if zero {
            object.remove(field.json);
        }
    }
}

/// The JSON of a map value the entry left out.
fn zero_json(ty: Type) -> Value {
    match ty {
        Type::String | Type::Bytes => Value::String(String::new()),
        Type::Bool => Value::Bool(false),
        Type::Int32 | Type::Int64 => Value::from(0),
        Type::Double => Value::from(0.0),
        Type::Message(_) => Value::Object(Map::new()),
    }
}

fn expect_wire(actual: u8, expected: u8) -> Result<(), Error> {
    if actual == expected {
        Ok(())
    } else {
        Err(Error::new(format!(
            "wire type {actual} where {expected} was expected"
        )))
    }
}

fn utf8(bytes: &[u8]) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::new("string is not valid UTF-8"))
}

fn decode_value(ty: Type, wire_type: u8, reader: &mut Reader<'_>) -> Result<Option<Value>, Error> {
    Ok(Some(match ty {
        Type::String => {
            expect_wire(wire_type, wire::LEN)?;
            Value::String(utf8(reader.bytes()?)?)
        }
        Type::Bytes => {
            expect_wire(wire_type, wire::LEN)?;
            Value::String(BASE64.encode(reader.bytes()?))
        }
        Type::Bool => {
            expect_wire(wire_type, wire::VARINT)?;
            Value::Bool(reader.varint()? != 0)
        }
        Type::Int32 => {
            expect_wire(wire_type, wire::VARINT)?;
            Value::from(reader.varint()? as i64 as i32)
        }
        Type::Int64 => {
            expect_wire(wire_type, wire::VARINT)?;
            Value::from(reader.varint()? as i64)
        }
        Type::Double => {
            expect_wire(wire_type, wire::FIXED64)?;
            let f = f64::from_bits(reader.fixed64()?);
            Value::Number(Number::from_f64(f).ok_or_else(|| Error::new("non-finite double"))?)
        }
        Type::Message(index) => {
            expect_wire(wire_type, wire::LEN)?;
            return decode(message(index), reader.bytes()?);
        }
    }))
}

/// The integer and bytes fields of a small special message, by tag.
#[derive(Default)]
struct Parts<'a> {
    ints: [Option<i64>; 4],
    bytes: [Option<&'a [u8]>; 4],
    repeated: Vec<&'a [u8]>,
}

fn parts<'a>(bytes: &'a [u8], repeated_tag: u32) -> Result<Parts<'a>, Error> {
    let mut parts = Parts::default();
    let mut reader = Reader::new(bytes);
    while !reader.done() {
        let (tag, wire_type) = reader.key()?;
        let slot = tag as usize;
        match wire_type {
            wire::VARINT if slot < 4 => parts.ints[slot] = Some(reader.varint()? as i64),
            wire::LEN if tag == repeated_tag => parts.repeated.push(reader.bytes()?),
            wire::LEN if slot < 4 => parts.bytes[slot] = Some(reader.bytes()?),
            other => reader.skip(other)?,
        }
    }
    Ok(parts)
}

fn decode_special(
    msg: &'static Message,
    special: Special,
    bytes: &[u8],
) -> Result<Option<Value>, Error> {
    let schema = |b: &[u8]| decode(message(JSON_SCHEMA_PROPS), b);
    Ok(match special {
        Special::None => unreachable!("plain messages are not special"),
        Special::Time | Special::MicroTime => {
            if bytes.is_empty() {
                // Go's zero Time: null in JSON, left out here.
                return Ok(None);
            }
            let p = parts(bytes, 0)?;
            let seconds = p.ints[1].unwrap_or(0);
            let nanos = p.ints[2].unwrap_or(0) as i32;
            let (nanos, format) = match special {
                Special::Time => (0, SecondsFormat::Secs),
                _ => ((nanos / 1000) * 1000, SecondsFormat::Micros),
            };
            let t = DateTime::<Utc>::from_timestamp(seconds, nanos.max(0) as u32)
                .ok_or_else(|| Error::new(format!("{}: time out of range", short(msg))))?;
            Some(Value::String(t.to_rfc3339_opts(format, true)))
        }
        Special::Duration => Some(Value::String(format_duration(
            parts(bytes, 0)?.ints[1].unwrap_or(0),
        ))),
        Special::Quantity => {
            let p = parts(bytes, 0)?;
            Some(Value::String(utf8(p.bytes[1].unwrap_or(b"0"))?))
        }
        Special::IntOrString => {
            let p = parts(bytes, 0)?;
            if p.ints[1] == Some(1) {
                Some(Value::String(utf8(p.bytes[3].unwrap_or(b""))?))
            } else {
                Some(Value::from(p.ints[2].unwrap_or(0) as i32))
            }
        }
        Special::RawJson => match parts(bytes, 0)?.bytes[1] {
            None | Some(b"") => None,
            Some(raw) if raw.starts_with(super::MAGIC) => Some(super::decode_envelope(raw, None)?),
            Some(raw) => Some(
                serde_json::from_slice(raw)
                    .map_err(|e| Error::new(format!("embedded object is not JSON: {e}")))?,
            ),
        },
        Special::SchemaOrArray => {
            let p = parts(bytes, 2)?;
            if !p.repeated.is_empty() {
                let items = p
                    .repeated
                    .iter()
                    .map(|b| schema(b).map(|v| v.unwrap_or(Value::Null)))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(Value::Array(items))
            } else {
                p.bytes[1].map(schema).transpose()?.flatten()
            }
        }
        Special::SchemaOrBool => {
            let p = parts(bytes, 0)?;
            match p.bytes[2] {
                Some(b) => schema(b)?,
                None => Some(Value::Bool(p.ints[1].unwrap_or(0) != 0)),
            }
        }
        Special::SchemaOrStringArray => {
            let p = parts(bytes, 2)?;
            if !p.repeated.is_empty() {
                let items = p
                    .repeated
                    .iter()
                    .map(|b| utf8(b).map(Value::String))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(Value::Array(items))
            } else {
                p.bytes[1].map(schema).transpose()?.flatten()
            }
        }
        Special::StringList => Some(Value::Array(
            parts(bytes, 1)?
                .repeated
                .iter()
                .map(|b| utf8(b).map(Value::String))
                .collect::<Result<Vec<_>, _>>()?,
        )),
    })
}

fn short(msg: &Message) -> &'static str {
    msg.name.rsplit('.').next().unwrap_or(msg.name)
}

// ---------------------------------------------------------------------------------------
// Go durations (`1h2m3.5s`)

const UNITS: &[(&str, i64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration string into nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, Error> {
    let invalid = || Error::new(format!("invalid duration {text:?}"));
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == &rest[..unit_len])
            .map(|(_, s)| *s)
            .ok_or_else(invalid)?;
        total += number * scale as f64;
        rest = &rest[unit_len..];
    }
    let total = total.round() as i64;
    Ok(if negative { -total } else { total })
}

/// Formats nanoseconds as Go's `time.Duration.String` does.
pub fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let fraction = |value: u64, unit: u64| {
        let whole = value / unit;
        let frac = value % unit;
        if frac == 0 {
            whole.to_string()
        } else {
            let digits = unit.to_string().len() - 1;
            let frac = format!("{frac:0digits$}");
            format!("{whole}.{}", frac.trim_end_matches('0'))
        }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", fraction(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(n, 1_000_000));
    }
    let hours = n / 3_600_000_000_000;
    let minutes = (n / 60_000_000_000) % 60;
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}
