//! The functions a CRD rule can call: CEL's standard ones, and kube's libraries (strings,
//! lists, regex, URLs, quantities, optionals) as kube-apiserver 1.33 offers them to
//! `x-kubernetes-validations`. Every function charges the meter for the data it walks.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta};
use regex::Regex;

use super::eval::{EvalError, EvalResult, Meter, fail, no_such_overload};
use super::value::{Key, Value};
use kubecache_core::quantity::Quantity;

/// Regexes of a rule's literal patterns, compiled once with the rule.
pub(crate) type RegexCache = HashMap<String, Regex>;

/// Biggest compiled regex we accept from a pattern computed at run time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A tenth of a walk over `size` elements: cel-go's cost factor for string traversals.
fn traversal(size: u64) -> u64 {
    size.div_ceil(10)
}

pub(crate) fn call(
    name: &str,
    receiver: Option<Value>,
    args: Vec<Value>,
    meter: &mut Meter,
    regexes: &RegexCache,
) -> EvalResult {
    use Value as V;
    match (name, receiver.as_ref(), args.as_slice()) {
        // --- operators
        ("!_", None, [V::Bool(b)]) => Ok(V::Bool(!b)),
        ("-_", None, [V::Int(i)]) => i.checked_neg().map(V::Int).ok_or_else(overflow),
        ("-_", None, [V::Double(d)]) => Ok(V::Double(-d)),
        ("-_", None, [V::Duration(d)]) => Ok(V::Duration(-*d)),
        ("_==_", None, [a, b]) => {
            meter.charge(traversal(a.size().min(b.size())))?;
            Ok(V::Bool(a.equals(b)))
        }
        ("_!=_", None, [a, b]) => {
            meter.charge(traversal(a.size().min(b.size())))?;
            Ok(V::Bool(!a.equals(b)))
        }
        ("_<_" | "_<=_" | "_>_" | "_>=_", None, [a, b]) => {
            let Some(order) = a.order(b) else {
                return no_such_overload();
            };
            Ok(V::Bool(match name {
                "_<_" => order == Ordering::Less,
                "_<=_" => order != Ordering::Greater,
                "_>_" => order == Ordering::Greater,
                _ => order != Ordering::Less,
            }))
        }
        ("_+_", None, [a, b]) => add(a, b, meter),
        ("_-_", None, [a, b]) => subtract(a, b),
        ("_*_", None, [a, b]) => arithmetic(a, b, i64::checked_mul, u64::checked_mul, |x, y| x * y),
        ("_/_", None, [a, b]) => {
            if matches!(b, V::Int(0) | V::Uint(0)) {
                return fail("division by zero");
            }
            arithmetic(a, b, i64::checked_div, u64::checked_div, |x, y| x / y)
        }
        ("_%_", None, [a, b]) => {
            if matches!(b, V::Int(0) | V::Uint(0)) {
                return fail("modulus by zero");
            }
            arithmetic(a, b, i64::checked_rem, u64::checked_rem, |_, _| f64::NAN)
                .and_then(|v| match v {
                    V::Double(_) => no_such_overload(),
                    v => Ok(v),
                })
        }
        ("_[_]", None, [container, index]) => index_value(container, index),
        ("_[?_]", None, [container, index]) => Ok(V::Optional(
            optional_index(container, index)?.map(Arc::new),
        )),
        ("_?._", None, [container, V::String(field)]) => Ok(V::Optional(
            optional_index(container, &V::String(field.clone()))?.map(Arc::new),
        )),
        ("@in", None, [item, container]) => match container {
            V::List(list) => {
                meter.charge(list.len() as u64)?;
                Ok(V::Bool(list.iter().any(|v| v.equals(item))))
            }
            V::Map(map) => Ok(V::Bool(
                Key::from_value(item).is_some_and(|k| map.contains_key(&k)),
            )),
            _ => no_such_overload(),
        },

        // --- standard functions
        ("size", None, [v]) | ("size", Some(v), []) => match v {
            V::String(s) => Ok(V::Int(s.chars().count() as i64)),
            V::Bytes(_) | V::List(_) | V::Map(_) => Ok(V::Int(v.size() as i64)),
            _ => no_such_overload(),
        },
        ("contains", Some(V::String(s)), [V::String(sub)]) => {
            meter.charge(traversal(s.len() as u64))?;
            Ok(V::Bool(s.contains(sub.as_ref())))
        }
        ("startsWith", Some(V::String(s)), [V::String(p)]) => {
            meter.charge(traversal(p.len() as u64))?;
            Ok(V::Bool(s.starts_with(p.as_ref())))
        }
        ("endsWith", Some(V::String(s)), [V::String(p)]) => {
            meter.charge(traversal(p.len() as u64))?;
            Ok(V::Bool(s.ends_with(p.as_ref())))
        }
        ("matches", Some(V::String(s)), [V::String(p)]) | ("matches", None, [V::String(s), V::String(p)]) => {
            let regex = regex(p, regexes)?;
            meter.charge(traversal(s.len() as u64 * p.len() as u64))?;
            Ok(V::Bool(regex.is_match(s.as_ref())))
        }
        ("int", None, [v]) => to_int(v),
        ("uint", None, [v]) => match v {
            V::Uint(u) => Ok(V::Uint(*u)),
            V::Int(i) => u64::try_from(*i).map(V::Uint).map_err(|_| overflow()),
            V::Double(d) if *d >= 0.0 && *d < 1.8446744073709552e19 => Ok(V::Uint(*d as u64)),
            V::String(s) => s.parse().map(V::Uint).map_err(|_| failed("cannot parse uint")),
            _ => no_such_overload(),
        },
        ("double", None, [v]) => match v {
            V::Double(d) => Ok(V::Double(*d)),
            V::Int(i) => Ok(V::Double(*i as f64)),
            V::Uint(u) => Ok(V::Double(*u as f64)),
            V::String(s) => s.parse().map(V::Double).map_err(|_| failed("cannot parse double")),
            _ => no_such_overload(),
        },
        ("string", None, [v]) => to_string(v),
        ("bool", None, [v]) => match v {
            V::Bool(b) => Ok(V::Bool(*b)),
            V::String(s) => match s.as_ref() {
                "true" | "True" | "TRUE" | "t" | "1" => Ok(V::Bool(true)),
                "false" | "False" | "FALSE" | "f" | "0" => Ok(V::Bool(false)),
                _ => fail("type conversion error"),
            },
            _ => no_such_overload(),
        },
        ("bytes", None, [V::String(s)]) => Ok(V::Bytes(Arc::from(s.as_bytes()))),
        ("dyn", None, [v]) => Ok(v.clone()),
        ("type", None, [v]) => Ok(V::Type(v.type_name())),
        ("timestamp", None, [V::String(s)]) => DateTime::parse_from_rfc3339(s)
            .map(V::Timestamp)
            .map_err(|_| failed(format!("timestamp parse error: {s}"))),
        ("timestamp", None, [V::Timestamp(t)]) => Ok(V::Timestamp(*t)),
        ("duration", None, [V::String(s)]) => parse_duration(s)
            .map(V::Duration)
            .ok_or_else(|| failed(format!("invalid duration: {s}"))),
        ("duration", None, [V::Duration(d)]) => Ok(V::Duration(*d)),
        ("getHours", Some(V::Duration(d)), []) => Ok(V::Int(d.num_hours())),
        ("getMinutes", Some(V::Duration(d)), []) => Ok(V::Int(d.num_minutes())),
        ("getSeconds", Some(V::Duration(d)), []) => Ok(V::Int(d.num_seconds())),
        ("getMilliseconds", Some(V::Duration(d)), []) => Ok(V::Int(d.num_milliseconds())),

        // --- kube's strings library (cel-go ext.Strings, version 2)
        ("charAt", Some(V::String(s)), [V::Int(i)]) => {
            let chars: Vec<char> = s.chars().collect();
            match usize::try_from(*i) {
                Ok(i) if i < chars.len() => Ok(V::string(&chars[i].to_string())),
                Ok(i) if i == chars.len() => Ok(V::string("")),
                _ => fail(format!("index out of range: {i}")),
            }
        }
        ("indexOf" | "lastIndexOf", Some(V::String(s)), [V::String(sub), rest @ ..]) => {
            meter.charge(traversal(s.len() as u64))?;
            string_index(name == "lastIndexOf", s.as_ref(), sub.as_ref(), rest)
        }
        ("lowerAscii", Some(V::String(s)), []) => {
            meter.charge(traversal(s.len() as u64))?;
            Ok(V::string(&s.to_ascii_lowercase()))
        }
        ("upperAscii", Some(V::String(s)), []) => {
            meter.charge(traversal(s.len() as u64))?;
            Ok(V::string(&s.to_ascii_uppercase()))
        }
        ("trim", Some(V::String(s)), []) => Ok(V::string(s.trim())),
        ("replace", Some(V::String(s)), [V::String(from), V::String(to), rest @ ..]) => {
            let limit = match rest {
                [] => -1,
                [V::Int(n)] => *n,
                _ => return no_such_overload(),
            };
            // The result can be longer than the input: charge for what it may become.
            let grows = (to.len() as u64).saturating_sub(from.len() as u64).max(1);
            meter.charge(traversal((s.len() as u64).saturating_mul(grows)))?;
            Ok(V::string(&if limit < 0 {
                s.replace(from.as_ref(), to)
            } else {
                s.replacen(from.as_ref(), to, limit as usize)
            }))
        }
        ("split", Some(V::String(s)), [V::String(separator), rest @ ..]) => {
            meter.charge(s.len() as u64)?;
            let limit = match rest {
                [] => -1,
                [V::Int(n)] => *n,
                _ => return no_such_overload(),
            };
            let parts: Vec<Value> = match limit {
                0 => Vec::new(),
                n if n < 0 => split_all(s.as_ref(), separator.as_ref()),
                n => {
                    if separator.is_empty() {
                        split_all(s.as_ref(), separator.as_ref()).into_iter().take(n as usize).collect()
                    } else {
                        s.splitn(n as usize, separator.as_ref()).map(V::string).collect()
                    }
                }
            };
            Ok(V::List(Arc::new(parts)))
        }
        ("substring", Some(V::String(s)), [V::Int(start), rest @ ..]) => {
            let chars: Vec<char> = s.chars().collect();
            let end = match rest {
                [] => chars.len() as i64,
                [V::Int(end)] => *end,
                _ => return no_such_overload(),
            };
            if *start < 0 || *start as usize > chars.len() {
                return fail(format!("index out of range: {start}"));
            }
            if end < 0 || end as usize > chars.len() {
                return fail(format!("index out of range: {end}"));
            }
            if end < *start {
                return fail(format!("invalid substring range. start: {start}, end: {end}"));
            }
            Ok(V::string(
                &chars[*start as usize..end as usize].iter().collect::<String>(),
            ))
        }
        ("join", Some(V::List(list)), rest) => {
            let separator = match rest {
                [] => "",
                [V::String(s)] => s.as_ref(),
                _ => return no_such_overload(),
            };
            meter.charge(list.len() as u64)?;
            let mut parts = Vec::with_capacity(list.len());
            for item in list.iter() {
                let V::String(s) = item else {
                    return no_such_overload();
                };
                parts.push(s.as_ref());
            }
            Ok(V::string(&parts.join(separator)))
        }
        ("strings.quote", None, [V::String(s)]) => Ok(V::string(&serde_json_quote(s))),

        // --- kube's lists library
        ("isSorted", Some(V::List(list)), []) => {
            meter.charge(list.len() as u64)?;
            for pair in list.windows(2) {
                match pair[0].order(&pair[1]) {
                    Some(Ordering::Greater) => return Ok(V::Bool(false)),
                    Some(_) => {}
                    None => return no_such_overload(),
                }
            }
            Ok(V::Bool(true))
        }
        ("sum", Some(V::List(list)), []) => {
            meter.charge(list.len() as u64)?;
            let mut total = match list.first() {
                Some(V::Double(_)) => V::Double(0.0),
                Some(V::Uint(_)) => V::Uint(0),
                Some(V::Duration(_)) => V::Duration(TimeDelta::zero()),
                _ => V::Int(0),
            };
            for item in list.iter() {
                total = add(&total, item, meter)?;
            }
            Ok(total)
        }
        ("min" | "max", Some(V::List(list)), []) => {
            meter.charge(list.len() as u64)?;
            let Some(first) = list.first() else {
                return fail(format!("{name} called on empty list"));
            };
            let mut best = first;
            for item in list.iter().skip(1) {
                let Some(order) = item.order(best) else {
                    return no_such_overload();
                };
                if (name == "min" && order == Ordering::Less)
                    || (name == "max" && order == Ordering::Greater)
                {
                    best = item;
                }
            }
            Ok(best.clone())
        }
        ("indexOf" | "lastIndexOf", Some(V::List(list)), [item]) => {
            meter.charge(list.len() as u64)?;
            let found = if name == "indexOf" {
                list.iter().position(|v| v.equals(item))
            } else {
                list.iter().rposition(|v| v.equals(item))
            };
            Ok(V::Int(found.map_or(-1, |i| i as i64)))
        }

        // --- kube's regex library
        ("find", Some(V::String(s)), [V::String(p)]) => {
            let regex = regex(p, regexes)?;
            meter.charge(traversal(s.len() as u64 * p.len() as u64))?;
            Ok(V::string(regex.find(s.as_ref()).map_or("", |m| m.as_str())))
        }
        ("findAll", Some(V::String(s)), [V::String(p), rest @ ..]) => {
            let regex = regex(p, regexes)?;
            meter.charge(traversal(s.len() as u64 * p.len() as u64))?;
            let limit = match rest {
                [] => usize::MAX,
                [V::Int(n)] if *n < 0 => usize::MAX,
                [V::Int(n)] => *n as usize,
                _ => return no_such_overload(),
            };
            Ok(V::List(Arc::new(
                regex.find_iter(s.as_ref()).take(limit).map(|m| V::string(m.as_str())).collect(),
            )))
        }

        // --- kube's URL library
        ("url", None, [V::String(s)]) => Url::parse(s)
            .map(|u| V::Url(Arc::new(u)))
            .ok_or_else(|| failed(format!("URL parse error during conversion from string: parse \"{s}\": invalid URI for request"))),
        ("isURL", None, [V::String(s)]) => Ok(V::Bool(Url::parse(s).is_some())),
        ("getScheme", Some(V::Url(u)), []) => Ok(V::string(&u.scheme)),
        ("getHost", Some(V::Url(u)), []) => Ok(V::string(&u.host)),
        ("getHostname", Some(V::Url(u)), []) => Ok(V::string(u.hostname())),
        ("getPort", Some(V::Url(u)), []) => Ok(V::string(u.port())),
        ("getEscapedPath", Some(V::Url(u)), []) => Ok(V::string(&u.path)),
        ("getQuery", Some(V::Url(u)), []) => Ok(u.query_map()),

        // --- kube's quantity library
        ("quantity", None, [V::String(s)]) => Quantity::parse(s)
            .map(|q| V::Quantity(Arc::new(q)))
            .ok_or_else(|| failed("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")),
        ("isQuantity", None, [V::String(s)]) => Ok(V::Bool(Quantity::parse(s).is_some())),
        ("sign", Some(V::Quantity(q)), []) => Ok(V::Int(q.sign())),
        ("isInteger", Some(V::Quantity(q)), []) => Ok(V::Bool(q.as_i64().is_some())),
        ("asInteger", Some(V::Quantity(q)), []) => q
            .as_i64()
            .map(V::Int)
            .ok_or_else(|| failed("cannot convert value to integer")),
        ("asApproximateFloat", Some(V::Quantity(q)), []) => Ok(V::Double(q.as_f64())),
        ("add" | "sub", Some(V::Quantity(q)), [other]) => {
            let other = match other {
                V::Quantity(o) => o.as_ref().clone(),
                V::Int(i) => Quantity::from(*i),
                _ => return no_such_overload(),
            };
            let negate = name == "sub";
            q.combine(&other, negate)
                .map(|q| V::Quantity(Arc::new(q)))
                .ok_or_else(overflow)
        }
        ("isGreaterThan", Some(V::Quantity(q)), [V::Quantity(o)]) => {
            Ok(V::Bool(q.compare(o) == Ordering::Greater))
        }
        ("isLessThan", Some(V::Quantity(q)), [V::Quantity(o)]) => {
            Ok(V::Bool(q.compare(o) == Ordering::Less))
        }
        ("compareTo", Some(V::Quantity(q)), [V::Quantity(o)]) => {
            Ok(V::Int(q.compare(o) as i64))
        }

        // --- optionals
        ("optional.of", None, [v]) => Ok(V::Optional(Some(Arc::new(v.clone())))),
        ("optional.none", None, []) => Ok(V::Optional(None)),
        ("optional.ofNonZeroValue", None, [v]) => Ok(V::Optional(
            (!is_zero(v)).then(|| Arc::new(v.clone())),
        )),
        ("hasValue", Some(V::Optional(o)), []) => Ok(V::Bool(o.is_some())),
        ("value", Some(V::Optional(o)), []) => match o {
            Some(v) => Ok(v.as_ref().clone()),
            None => fail("optional.none() dereference"),
        },
        ("orValue", Some(V::Optional(o)), [fallback]) => {
            Ok(o.as_deref().cloned().unwrap_or_else(|| fallback.clone()))
        }
        ("or", Some(V::Optional(o)), [V::Optional(other)]) => {
            Ok(V::Optional(o.clone().or_else(|| other.clone())))
        }

        (name, receiver, args) => {
            if is_known(name) {
                no_such_overload()
            } else {
                let _ = (receiver, args);
                fail(format!("no such overload: {name}"))
            }
        }
    }
}

/// Every function this library defines, for the compile-time check of calls.
pub(crate) const FUNCTIONS: &[&str] = &[
    "!_",
    "-_",
    "_==_",
    "_!=_",
    "_<_",
    "_<=_",
    "_>_",
    "_>=_",
    "_+_",
    "_-_",
    "_*_",
    "_/_",
    "_%_",
    "_[_]",
    "_[?_]",
    "_?._",
    "@in",
    "_&&_",
    "_||_",
    "_?_:_",
    "@not_strictly_false",
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "dyn",
    "type",
    "timestamp",
    "duration",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "join",
    "strings.quote",
    "isSorted",
    "sum",
    "min",
    "max",
    "find",
    "findAll",
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    "quantity",
    "isQuantity",
    "sign",
    "isInteger",
    "asInteger",
    "asApproximateFloat",
    "add",
    "sub",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "hasValue",
    "value",
    "orValue",
    "or",
];

pub(crate) fn is_known(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

fn failed(message: impl Into<String>) -> EvalError {
    EvalError::Failed(message.into())
}

fn overflow() -> EvalError {
    failed("integer overflow")
}

fn regex<'r>(
    pattern: &str,
    cache: &'r RegexCache,
) -> Result<std::borrow::Cow<'r, Regex>, EvalError> {
    if let Some(r) = cache.get(pattern) {
        return Ok(std::borrow::Cow::Borrowed(r));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(std::borrow::Cow::Owned)
        .map_err(|e| failed(format!("error parsing regexp: {e}")))
}

fn add(a: &Value, b: &Value, meter: &mut Meter) -> EvalResult {
    use Value as V;
    match (a, b) {
        (V::String(x), V::String(y)) => {
            meter.charge(traversal((x.len() + y.len()) as u64))?;
            Ok(V::string(&format!("{x}{y}")))
        }
        (V::Bytes(x), V::Bytes(y)) => Ok(V::Bytes(Arc::from([x.as_ref(), y.as_ref()].concat()))),
        (V::List(x), V::List(y)) => {
            meter.charge(traversal((x.len() + y.len()) as u64))?;
            let mut joined = Vec::with_capacity(x.len() + y.len());
            joined.extend(x.iter().cloned());
            joined.extend(y.iter().cloned());
            Ok(V::List(Arc::new(joined)))
        }
        (V::Duration(x), V::Duration(y)) => x.checked_add(y).map(V::Duration).ok_or_else(overflow),
        (V::Timestamp(t), V::Duration(d)) | (V::Duration(d), V::Timestamp(t)) => t
            .checked_add_signed(*d)
            .map(V::Timestamp)
            .ok_or_else(overflow),
        _ => arithmetic(a, b, i64::checked_add, u64::checked_add, |x, y| x + y),
    }
}

fn subtract(a: &Value, b: &Value) -> EvalResult {
    use Value as V;
    match (a, b) {
        (V::Duration(x), V::Duration(y)) => x.checked_sub(y).map(V::Duration).ok_or_else(overflow),
        (V::Timestamp(t), V::Duration(d)) => t
            .checked_sub_signed(*d)
            .map(V::Timestamp)
            .ok_or_else(overflow),
        (V::Timestamp(x), V::Timestamp(y)) => Ok(V::Duration(x.signed_duration_since(*y))),
        _ => arithmetic(a, b, i64::checked_sub, u64::checked_sub, |x, y| x - y),
    }
}

/// Arithmetic on two numbers of the same type: CEL has no implicit conversions.
fn arithmetic(
    a: &Value,
    b: &Value,
    int: fn(i64, i64) -> Option<i64>,
    uint: fn(u64, u64) -> Option<u64>,
    double: fn(f64, f64) -> f64,
) -> EvalResult {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => int(*x, *y).map(Value::Int).ok_or_else(overflow),
        (Value::Uint(x), Value::Uint(y)) => uint(*x, *y).map(Value::Uint).ok_or_else(overflow),
        (Value::Double(x), Value::Double(y)) => Ok(Value::Double(double(*x, *y))),
        _ => no_such_overload(),
    }
}

fn index_value(container: &Value, index: &Value) -> EvalResult {
    match (container, index) {
        (Value::List(list), Value::Int(_) | Value::Uint(_) | Value::Double(_)) => {
            let position = match index {
                Value::Int(i) => *i,
                Value::Uint(u) => i64::try_from(*u).unwrap_or(i64::MAX),
                Value::Double(d) if d.fract() == 0.0 => *d as i64,
                _ => return no_such_overload(),
            };
            usize::try_from(position)
                .ok()
                .and_then(|i| list.get(i))
                .cloned()
                .ok_or_else(|| failed(format!("index out of bounds: {position}")))
        }
        (Value::Map(map), key) => {
            let Some(k) = Key::from_value(key) else {
                return no_such_overload();
            };
            map.get(&k).cloned().ok_or_else(|| {
                failed(format!(
                    "no such key: {}",
                    match key {
                        Value::String(s) => s.to_string(),
                        other => to_string(other).map_or_else(
                            |_| String::new(),
                            |v| match v {
                                Value::String(s) => s.to_string(),
                                _ => String::new(),
                            }
                        ),
                    }
                ))
            })
        }
        (Value::Optional(None), _) => Ok(Value::Optional(None)),
        (Value::Optional(Some(inner)), index) => {
            Ok(Value::Optional(optional_index(inner, index)?.map(Arc::new)))
        }
        _ => no_such_overload(),
    }
}

fn optional_index(container: &Value, index: &Value) -> Result<Option<Value>, EvalError> {
    match container {
        Value::Optional(None) => Ok(None),
        Value::Optional(Some(inner)) => optional_index(inner, index),
        Value::Map(map) => Ok(Key::from_value(index).and_then(|k| map.get(&k).cloned())),
        Value::List(list) => match index {
            Value::Int(i) => Ok(usize::try_from(*i).ok().and_then(|i| list.get(i)).cloned()),
            _ => no_such_overload(),
        },
        _ => no_such_overload(),
    }
}

fn to_int(v: &Value) -> EvalResult {
    match v {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Uint(u) => i64::try_from(*u).map(Value::Int).map_err(|_| overflow()),
        Value::Double(d)
            if d.is_finite() && *d > -9.223_372_036_854_776e18 && *d < 9.223_372_036_854_776e18 =>
        {
            Ok(Value::Int(d.trunc() as i64))
        }
        Value::Double(_) => Err(overflow()),
        Value::String(s) => s
            .parse()
            .map(Value::Int)
            .map_err(|_| failed("cannot parse int")),
        Value::Timestamp(t) => Ok(Value::Int(t.timestamp())),
        Value::Duration(d) => Ok(Value::Int(d.num_seconds())),
        _ => no_such_overload(),
    }
}

fn to_string(v: &Value) -> EvalResult {
    Ok(Value::string(&match v {
        Value::String(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| failed("invalid UTF-8"))?,
        Value::Timestamp(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        Value::Duration(d) => format_duration(d),
        _ => return no_such_overload(),
    }))
}

fn format_duration(d: &TimeDelta) -> String {
    let nanos = d.num_nanoseconds().unwrap_or(i64::MAX);
    let seconds = nanos as f64 / 1e9;
    format!("{seconds}s")
}

fn serde_json_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Double(d) => *d == 0.0,
        Value::String(_) | Value::Bytes(_) | Value::List(_) | Value::Map(_) => v.size() == 0,
        Value::Duration(d) => d.is_zero(),
        _ => false,
    }
}

fn split_all(s: &str, separator: &str) -> Vec<Value> {
    if separator.is_empty() {
        s.chars().map(|c| Value::string(&c.to_string())).collect()
    } else {
        s.split(separator).map(Value::string).collect()
    }
}

/// `indexOf`/`lastIndexOf` on strings, counted in code points as cel-go counts them.
fn string_index(last: bool, s: &str, sub: &str, rest: &[Value]) -> EvalResult {
    let chars: Vec<char> = s.chars().collect();
    let needle: Vec<char> = sub.chars().collect();
    let offset = match rest {
        [] => None,
        [Value::Int(i)] => Some(*i),
        _ => return no_such_overload(),
    };
    if let Some(o) = offset
        && (o < 0 || o as usize > chars.len())
    {
        return fail(format!("index out of range: {o}"));
    }
    let fits =
        |at: usize| at + needle.len() <= chars.len() && chars[at..at + needle.len()] == needle[..];
    let found = if last {
        let start = offset.map_or(chars.len(), |o| o as usize);
        (0..=start.min(chars.len())).rev().find(|&at| fits(at))
    } else {
        let start = offset.unwrap_or(0) as usize;
        (start..=chars.len()).find(|&at| fits(at))
    };
    Ok(Value::Int(found.map_or(-1, |i| i as i64)))
}

/// A Go duration string (`1h30m`, `1.5s`, `300ms`), as CEL's `duration()` reads it.
pub(crate) fn parse_duration(text: &str) -> Option<TimeDelta> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(TimeDelta::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_end == 0 {
            return None;
        }
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total_nanos += number * unit;
    }
    if total_nanos > i64::MAX as f64 {
        return None;
    }
    let nanos = total_nanos as i64;
    Some(TimeDelta::nanoseconds(if negative {
        -nanos
    } else {
        nanos
    }))
}

/// A URL as Go's `url.ParseRequestURI` accepts it: absolute (`scheme:...`) or an absolute
/// path; no fragment.
#[derive(Clone, Debug)]
pub(crate) struct Url {
    pub(crate) raw: String,
    scheme: String,
    host: String,
    path: String,
    query: String,
}

impl Url {
    pub(crate) fn parse(text: &str) -> Option<Url> {
        if text.is_empty() || text.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return None;
        }
        let (rest, query) = match text.split_once('?') {
            Some((r, q)) => (r, q.to_string()),
            None => (text, String::new()),
        };
        let (scheme, rest) = if rest.starts_with('/') {
            (String::new(), rest)
        } else {
            let (scheme, rest) = rest.split_once(':')?;
            let mut chars = scheme.chars();
            if !chars.next()?.is_ascii_alphabetic()
                || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                return None;
            }
            (scheme.to_string(), rest)
        };
        let (host, path) = match rest.strip_prefix("//") {
            Some(authority_and_path) => {
                let end = authority_and_path
                    .find('/')
                    .unwrap_or(authority_and_path.len());
                let authority = &authority_and_path[..end];
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                (host.to_string(), authority_and_path[end..].to_string())
            }
            None if !scheme.is_empty() && !rest.starts_with('/') => {
                // `mailto:x`: opaque, no host nor path.
                (String::new(), String::new())
            }
            None => (String::new(), rest.to_string()),
        };
        if host.starts_with('[') && !host.contains(']') {
            return None;
        }
        Some(Url {
            raw: text.to_string(),
            scheme,
            host,
            path,
            query,
        })
    }

    fn hostname(&self) -> &str {
        if let Some(bracketed) = self.host.strip_prefix('[') {
            return bracketed.split(']').next().unwrap_or("");
        }
        self.host.split(':').next().unwrap_or("")
    }

    fn port(&self) -> &str {
        let after_ipv6 = self.host.rsplit(']').next().unwrap_or("");
        after_ipv6.rsplit_once(':').map_or("", |(_, port)| port)
    }

    fn query_map(&self) -> Value {
        let mut map: std::collections::BTreeMap<Key, Vec<Value>> = Default::default();
        for pair in self.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.entry(Key::String(Arc::from(k)))
                .or_default()
                .push(Value::string(v));
        }
        Value::Map(Arc::new(
            map.into_iter()
                .map(|(k, v)| (k, Value::List(Arc::new(v))))
                .collect(),
        ))
    }
}
