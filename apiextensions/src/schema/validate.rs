//! Validation of a custom object against its schema, as kube does on every write: the
//! OpenAPI schema validator (kube-openapi's `validate` package, whose errors apiextensions
//! turns into field errors), then `x-kubernetes-list-type` uniqueness, then the
//! `apiVersion`/`kind` of embedded resources.
//!
//! Two path styles, both kube's: kube-openapi names a field `spec.template.labels.app`
//! (map keys joined with dots) and that name is both the cause's field and part of its
//! message; the list-type and embedded-resource checks use `field.Path`
//! (`spec.ports[0]`, `spec.labels[app]`).

use std::collections::HashMap;

use kubecache_core::field;
use kubecache_core::status::Cause;
use serde_json::{Map, Value};

use super::{Additional, Checks, ListType, Node, Type};

pub(super) fn validate_object(root: &Node, object: &Value) -> Vec<Cause> {
    let mut causes = validate_value(root, object, "");
    list_types(root, object, "", &mut causes);
    embedded_resources(root, object, "", &mut causes);
    causes
}

/// The kube-openapi validation alone, with every field under `prefix` (used for a CRD's
/// `default` values, e.g. `...properties[replicas].default`).
pub(super) fn validate_value(node: &Node, value: &Value, prefix: &str) -> Vec<Cause> {
    let mut validator = Validator {
        prefix,
        causes: Vec::new(),
    };
    validator.node(node, value, "");
    validator.causes
}

struct Validator<'a> {
    /// The field path the kube-openapi names are appended to (empty for an object).
    prefix: &'a str,
    causes: Vec<Cause>,
}

/// kube-openapi's JSON type name for a value. Integers are JSON numbers without a fraction
/// or exponent, as kube's JSON decoder makes them `int64`.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A float as Go's `%v` prints it.
pub(super) fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let exponent_form = format!("{f:e}");
    let (mantissa, exponent) = exponent_form
        .split_once('e')
        .expect("exponent formatting has an e");
    let exponent: i32 = exponent.parse().unwrap_or(0);
    // Go's %v is %g with the shortest digits, which switches to exponent form from 1e+06
    // and below 1e-04.
    if (-4..6).contains(&exponent) {
        format!("{f}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// A bound printed as kube does: as an integer when the data is an integer (kube compares
/// `int64`s then), else as a Go float.
fn bound(bound: f64, integer_data: bool) -> String {
    if integer_data {
        format!("{}", bound as i64)
    } else {
        go_float(bound)
    }
}

impl Validator<'_> {
    fn field(&self, name: &str) -> String {
        let name = name.strip_prefix('.').unwrap_or(name);
        match (self.prefix.is_empty(), name.is_empty()) {
            (_, true) => self.prefix.to_string(),
            (true, false) => name.to_string(),
            (false, false) => format!("{}.{name}", self.prefix),
        }
    }

    fn invalid(&mut self, name: &str, value: &Value, detail: String) {
        let field = self.field(name);
        self.causes.push(field::invalid(&field, value, &detail));
    }

    fn type_invalid(&mut self, name: &str, value: &str, detail: String) {
        let field = self.field(name);
        self.causes.push(Cause::new(
            "FieldValueTypeInvalid",
            &field,
            format!(
                "Invalid value: {}: {detail}",
                field::render(&Value::String(value.to_string()))
            ),
        ));
    }

    fn too_many(&mut self, name: &str, actual: usize, max: u64) {
        let field = self.field(name);
        let noun = if max == 1 { "item" } else { "items" };
        self.causes.push(Cause::new(
            "FieldValueTooMany",
            &field,
            format!("Too many: {actual}: must have at most {max} {noun}"),
        ));
    }

    /// Errors that are not field errors in kube-openapi (anyOf/oneOf/allOf/not) land on the
    /// validation's root path with an empty value.
    fn composite(&mut self, message: String) {
        let field = self.prefix.to_string();
        self.causes.push(field::invalid(
            &field,
            &Value::String(String::new()),
            &message,
        ));
    }

    fn node(&mut self, node: &Node, value: &Value, path: &str) {
        let checks = node.checks.as_deref();
        let data_type = json_type(value);
        if value.is_null() {
            if node.ty != Type::Any && !node.nullable {
                self.type_mismatch(node, path, "null");
            }
            if let Some(checks) = checks {
                self.enumeration(checks, value, path);
            }
            return;
        }
        self.type_check(node, value, data_type, path);
        if let Some(checks) = checks {
            self.composition(checks, value, path);
            if let Value::String(s) = value {
                self.string(checks, value, s, path);
            }
            if let Value::Number(_) = value {
                self.number(checks, value, path);
            }
        }
        if let Value::Array(items) = value {
            self.array(node, checks, items, path);
        }
        if let Some(checks) = checks {
            self.enumeration(checks, value, path);
        }
        if let Value::Object(map) = value {
            self.object(node, checks, map, path);
        }
    }

    fn type_mismatch(&mut self, node: &Node, path: &str, data_type: &str) {
        self.type_invalid(
            path,
            data_type,
            format!(
                "{path} in body must be of type {}: \"{data_type}\"",
                node.ty.name()
            ),
        );
    }

    fn type_check(&mut self, node: &Node, value: &Value, data_type: &str, path: &str) {
        let float_is_integer = data_type == "number"
            && value
                .as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
            && matches!(node.ty, Type::Integer | Type::IntOrString);
        let integer_is_number = data_type == "integer" && node.ty == Type::Number;
        if !(node.ty.allows(data_type) || float_is_integer || integer_is_number) {
            self.type_mismatch(node, path, data_type);
        }
    }

    fn composition(&mut self, checks: &Checks, value: &Value, path: &str) {
        let quoted = serde_json::to_string(path).unwrap_or_default();
        if !checks.any_of.is_empty() {
            let results: Vec<Vec<Cause>> = checks
                .any_of
                .iter()
                .map(|branch| self.nested(branch, value, path))
                .collect();
            if !results.iter().any(Vec::is_empty) {
                self.composite(format!(
                    "{quoted} must validate at least one schema (anyOf)"
                ));
                // kube-openapi adds the failures of the branch that matched best; the branch
                // with the fewest failures stands in for its match count.
                if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                    self.causes.extend(best);
                }
            }
        }
        if !checks.one_of.is_empty() {
            let results: Vec<Vec<Cause>> = checks
                .one_of
                .iter()
                .map(|branch| self.nested(branch, value, path))
                .collect();
            let valid = results.iter().filter(|r| r.is_empty()).count();
            if valid != 1 {
                let detail = if valid == 0 {
                    "Found none valid".to_string()
                } else {
                    format!("Found {valid} valid alternatives")
                };
                self.composite(format!(
                    "{quoted} must validate one and only one schema (oneOf). {detail}"
                ));
                if valid == 0
                    && let Some(best) = results.into_iter().min_by_key(Vec::len)
                {
                    self.causes.extend(best);
                }
            }
        }
        if !checks.all_of.is_empty() {
            let mut valid = 0;
            for branch in checks.all_of.iter() {
                let result = self.nested(branch, value, path);
                if result.is_empty() {
                    valid += 1;
                }
                self.causes.extend(result);
            }
            if valid != checks.all_of.len() {
                let detail = if valid == 0 { ". None validated" } else { "" };
                self.composite(format!(
                    "{quoted} must validate all the schemas (allOf){detail}"
                ));
            }
        }
        if let Some(not) = &checks.not
            && self.nested(not, value, path).is_empty()
        {
            self.composite(format!("{quoted} must not validate the schema (not)"));
        }
    }

    fn nested(&self, node: &Node, value: &Value, path: &str) -> Vec<Cause> {
        let mut nested = Validator {
            prefix: self.prefix,
            causes: Vec::new(),
        };
        nested.node(node, value, path);
        nested.causes
    }

    /// kube-openapi stops at the first failing string check.
    fn string(&mut self, checks: &Checks, value: &Value, s: &str, path: &str) {
        let length = || s.chars().count() as u64;
        if let Some(max) = checks.max_length
            && length() > max
        {
            let field = self.field(path);
            let noun = if max == 1 { "byte" } else { "bytes" };
            self.causes.push(Cause::new(
                "FieldValueTooLong",
                &field,
                format!("Too long: may not be more than {max} {noun}"),
            ));
            return;
        }
        if let Some(min) = checks.min_length
            && length() < min
        {
            self.invalid(
                path,
                value,
                format!("{path} in body should be at least {min} chars long"),
            );
            return;
        }
        if let Some(pattern) = &checks.pattern
            && !pattern.regex.is_match(s)
        {
            self.invalid(
                path,
                value,
                format!("{path} in body should match '{}'", pattern.source),
            );
            return;
        }
        if let Some(format) = checks.format
            && !format.accepts(s)
        {
            self.type_invalid(
                path,
                s,
                format!(
                    "{path} in body must be of type {}: {}",
                    format.name(),
                    field::render(value)
                ),
            );
        }
    }

    fn number(&mut self, checks: &Checks, value: &Value, path: &str) {
        let integer_data = json_type(value) == "integer";
        let data = value.as_f64().unwrap_or_default();
        let shown = if integer_data {
            value.clone()
        } else {
            // Go prints float64 data with %v.
            Value::String(go_float(data))
        };
        let render_invalid = |this: &mut Self, detail: String| {
            let field = this.field(path);
            let rendered = match &shown {
                Value::String(s) => s.clone(),
                other => field::render(other),
            };
            this.causes.push(Cause::new(
                "FieldValueInvalid",
                &field,
                format!("Invalid value: {rendered}: {detail}"),
            ));
        };
        if let Some(factor) = checks.multiple_of {
            let fails = if factor <= 0.0 {
                render_invalid(
                    self,
                    format!(
                        "factor MultipleOf declared for {path} must be positive: {}",
                        go_float(factor)
                    ),
                );
                false
            } else if integer_data && factor.fract() == 0.0 {
                value.as_i64().is_some_and(|n| n % (factor as i64) != 0)
            } else {
                // kube-openapi's arithmetic, kept for identical rounding.
                let ratio = if factor < 1.0 {
                    (1.0 / factor) * data
                } else {
                    data / factor
                };
                ratio.fract() != 0.0
            };
            if fails {
                render_invalid(
                    self,
                    format!(
                        "{path} in body should be a multiple of {}",
                        bound(factor, integer_data && factor.fract() == 0.0)
                    ),
                );
            }
        }
        if let Some(max) = checks.maximum {
            let exceeded = if checks.exclusive_maximum {
                data >= max
            } else {
                data > max
            };
            if exceeded {
                let relation = if checks.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                render_invalid(
                    self,
                    format!(
                        "{path} in body should be {relation} {}",
                        bound(max, integer_data)
                    ),
                );
            }
        }
        if let Some(min) = checks.minimum {
            let below = if checks.exclusive_minimum {
                data <= min
            } else {
                data < min
            };
            if below {
                let relation = if checks.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                render_invalid(
                    self,
                    format!(
                        "{path} in body should be {relation} {}",
                        bound(min, integer_data)
                    ),
                );
            }
        }
    }

    fn array(&mut self, node: &Node, checks: Option<&Checks>, items: &[Value], path: &str) {
        if let Some(item_schema) = &node.items {
            for (i, item) in items.iter().enumerate() {
                self.node(item_schema, item, &format!("{path}[{i}]"));
            }
        }
        let Some(checks) = checks else { return };
        if let Some(min) = checks.min_items
            && (items.len() as u64) < min
        {
            self.invalid(
                path,
                &Value::from(items.len()),
                format!("{path} in body should have at least {min} items"),
            );
        }
        if let Some(max) = checks.max_items
            && items.len() as u64 > max
        {
            self.too_many(path, items.len(), max);
        }
        if checks.unique_items && has_duplicates(items) {
            self.invalid(
                path,
                &Value::String(String::new()),
                format!("{path} in body shouldn't contain duplicates"),
            );
        }
    }

    fn enumeration(&mut self, checks: &Checks, value: &Value, path: &str) {
        let Some(allowed) = &checks.enumeration else {
            return;
        };
        if allowed.is_empty() || (!value.is_null() && allowed.iter().any(|a| json_equal(a, value)))
        {
            return;
        }
        let supported: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let supported: Vec<&str> = supported.iter().map(String::as_str).collect();
        let field = self.field(path);
        self.causes
            .push(field::not_supported(&field, value, &supported));
    }

    fn object(
        &mut self,
        node: &Node,
        checks: Option<&Checks>,
        map: &Map<String, Value>,
        path: &str,
    ) {
        let child = |name: &str| {
            if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            }
        };
        if let Some(checks) = checks {
            if let Some(min) = checks.min_properties
                && (map.len() as u64) < min
            {
                self.invalid(
                    path,
                    &Value::from(map.len()),
                    format!("{path} in body should have at least {min} properties"),
                );
            }
            if let Some(max) = checks.max_properties
                && map.len() as u64 > max
            {
                self.too_many(path, map.len(), max);
            }
        }
        match &node.additional_properties {
            Additional::Allows(false) => {
                for key in map.keys() {
                    if node.property(key).is_none() {
                        self.invalid(
                            path,
                            &Value::String(key.clone()),
                            format!("{path}.{key} in body is a forbidden property"),
                        );
                    }
                }
            }
            Additional::Schema(schema) => {
                for (key, value) in map {
                    if node.property(key).is_none() {
                        self.node(schema, value, &format!("{path}.{key}"));
                    }
                }
            }
            Additional::Unset | Additional::Allows(true) => {}
        }
        for (name, schema) in node.properties.iter() {
            if let Some(value) = map.get(&**name) {
                self.node(schema, value, &child(name));
            }
        }
        for name in node.required.iter() {
            if !map.contains_key(&**name) {
                let field = self.field(&format!("{path}.{name}"));
                self.causes.push(field::required(&field));
            }
        }
    }
}

/// Go's `reflect.DeepEqual` after kube-openapi's numeric conversion: 1 and 1.0 are equal.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// A value's canonical JSON (object keys sorted, as Go's encoder writes them), the identity
/// kube uses to find duplicates in sets.
pub(super) fn canonical(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(key).unwrap_or_default());
                    out.push(':');
                    write(&map[key], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn has_duplicates(items: &[Value]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items[..i].iter().any(|b| json_equal(a, b)))
}

/// Indices of the second occurrence of every repeated identity (kube reports each repeated
/// value once, at its first repetition).
fn repeated(identities: impl Iterator<Item = String>) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, identity) in identities.enumerate() {
        let count = seen.entry(identity).or_insert(0);
        *count += 1;
        if *count == 2 {
            out.push(i);
        }
    }
    out
}

/// `x-kubernetes-list-type: set|map` uniqueness (kube's `listtype` validation).
fn list_types(node: &Node, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if let Some(schema) = node.property(key) {
                    list_types(schema, child, &super::child(path, key), causes);
                } else if let Additional::Schema(schema) = &node.additional_properties {
                    list_types(schema, child, &super::key(path, key), causes);
                }
            }
        }
        Value::Array(items) => {
            match node.list_type {
                Some(ListType::Set) if items.len() > 1 => {
                    for i in repeated(items.iter().map(canonical)) {
                        causes.push(field::duplicate(&super::index(path, i), &items[i]));
                    }
                }
                Some(ListType::Map) => list_map(node, items, path, causes),
                _ => {}
            }
            if let Some(item_schema) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    list_types(item_schema, item, &super::index(path, i), causes);
                }
            }
        }
        _ => {}
    }
}

fn list_map(node: &Node, items: &[Value], path: &str, causes: &mut Vec<Cause>) {
    for (i, item) in items.iter().enumerate() {
        if !item.is_null() && !item.is_object() {
            causes.push(field::invalid(
                &super::index(path, i),
                item,
                "must be an object for an array of list-type map",
            ));
            return;
        }
    }
    if items.len() <= 1 {
        return;
    }
    let mut keys: Vec<&str> = node.list_map_keys().iter().map(|k| &**k).collect();
    keys.sort_unstable();
    let key_objects: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut key = Map::new();
            for name in &keys {
                if let Some(v) = item.get(*name) {
                    key.insert(name.to_string(), v.clone());
                }
            }
            Value::Object(key)
        })
        .collect();
    for i in repeated(key_objects.iter().map(canonical)) {
        causes.push(field::duplicate(&super::index(path, i), &key_objects[i]));
    }
}

/// `apiVersion` and `kind` of every `x-kubernetes-embedded-resource` (kube's objectmeta
/// validation; the embedded `metadata` itself is left to the caller's ObjectMeta rules).
fn embedded_resources(node: &Node, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    match value {
        Value::Object(map) => {
            if node.embedded_resource {
                embedded_type_meta(map, path, causes);
            }
            for (key, child) in map {
                if let Some(schema) = node.property(key) {
                    embedded_resources(schema, child, &super::child(path, key), causes);
                } else if let Additional::Schema(schema) = &node.additional_properties {
                    embedded_resources(schema, child, &super::key(path, key), causes);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    embedded_resources(item_schema, item, &super::index(path, i), causes);
                }
            }
        }
        _ => {}
    }
}

pub(super) fn embedded_type_meta(map: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    let api_version_path = super::child(path, "apiVersion");
    let kind_path = super::child(path, "kind");
    match map.get("apiVersion") {
        None => causes.push(field::required(&api_version_path)),
        Some(Value::String(v)) if v.is_empty() => causes.push(field::invalid(
            &api_version_path,
            &Value::String(v.clone()),
            "must not be empty",
        )),
        Some(Value::String(v)) if v.matches('/').count() > 1 => causes.push(field::invalid(
            &api_version_path,
            &Value::String(v.clone()),
            &format!("unexpected GroupVersion string: {v}"),
        )),
        Some(Value::String(_)) => {}
        Some(other) => causes.push(field::invalid(&api_version_path, other, "must be a string")),
    }
    match map.get("kind") {
        None => causes.push(field::required(&kind_path)),
        Some(Value::String(k)) if k.is_empty() => causes.push(field::invalid(
            &kind_path,
            &Value::String(k.clone()),
            "must not be empty",
        )),
        Some(Value::String(k)) => {
            let errors = dns1035_label(&k.to_lowercase());
            if !errors.is_empty() {
                causes.push(field::invalid(
                    &kind_path,
                    &Value::String(k.clone()),
                    &format!(
                        "may have mixed case, but should otherwise match: {}",
                        errors.join(",")
                    ),
                ));
            }
        }
        Some(other) => causes.push(field::invalid(&kind_path, other, "must be a string")),
    }
}

/// apimachinery's `IsDNS1035Label` messages.
fn dns1035_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_string());
    }
    let bytes = value.as_bytes();
    let valid = !bytes.is_empty()
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[bytes.len() - 1] != b'-';
    if !valid {
        errors.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    errors
}
