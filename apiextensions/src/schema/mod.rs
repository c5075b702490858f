//! A CRD version's `openAPIV3Schema` as kube-apiserver uses it on every custom object:
//! parsed once into a compact [`Schema`] tree, then used to validate ([`Schema::validate`]),
//! prune ([`Schema::prune`]) and default ([`Schema::apply_defaults`]) objects. The rules a
//! schema must follow to be accepted in a CRD at all live in [`structural`].
//!
//! On a write kube decodes the body, prunes unknown fields, applies defaults, then validates;
//! on a read from storage it prunes and defaults again. Callers here do the same:
//! `prune`, then `apply_defaults`, then `validate`.
//!
//! `x-kubernetes-validations` (CEL rules) are not read here: the `cel` module walks the
//! schema JSON itself.
//!
//! Memory: a thousand CRDs with 20–50 KiB schemas are kept loaded, so a node keeps only what
//! validation, pruning and defaulting read (no descriptions), its rarely used keywords sit
//! behind one optional box, properties are a sorted boxed slice rather than a map, and
//! property names are interned process-wide (`name`, `key`, `matchLabels`... are shared by
//! every CRD).

mod default;
mod format;
mod prune;
mod regex_syntax;
pub mod structural;
mod validate;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use kubecache_core::field;
use kubecache_core::status::Cause;
use serde_json::Value;

pub use format::Format;

/// An interned property name; clones are a reference count.
pub type Name = Arc<str>;

/// Shares one allocation per distinct property name across every parsed schema. Names are
/// never freed: their number is bounded by the distinct field names of all CRDs, a few
/// thousand strings.
fn intern(name: &str) -> Name {
    static NAMES: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = names.get(name) {
        return existing.clone();
    }
    let name: Arc<str> = Arc::from(name);
    names.insert(name.clone());
    name
}

/// The JSON type a node allows (`type`, or `x-kubernetes-int-or-string`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// No `type`: anything (allowed under `x-kubernetes-preserve-unknown-fields` and in the
    /// value-validation parts `allOf`/`anyOf`/`oneOf`/`not`).
    Any,
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    /// `x-kubernetes-int-or-string: true`
    IntOrString,
}

impl Type {
    fn parse(name: &str) -> Option<Type> {
        Some(match name {
            "" => Type::Any,
            "object" => Type::Object,
            "array" => Type::Array,
            "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            _ => return None,
        })
    }

    /// As kube-openapi names the allowed types in `must be of type ...`.
    pub fn name(self) -> &'static str {
        match self {
            Type::Any => "",
            Type::Object => "object",
            Type::Array => "array",
            Type::String => "string",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::Boolean => "boolean",
            Type::IntOrString => "integer,string",
        }
    }

    fn allows(self, json_type: &str) -> bool {
        match self {
            Type::Any => true,
            Type::IntOrString => json_type == "integer" || json_type == "string",
            other => other.name() == json_type,
        }
    }
}

/// `x-kubernetes-list-type`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    Atomic,
    Set,
    Map,
}

/// `additionalProperties`
#[derive(Debug, Clone, PartialEq)]
pub enum Additional {
    /// Not given: unknown fields are pruned (or kept under preserve-unknown-fields).
    Unset,
    /// `true` or `false`.
    Allows(bool),
    /// A schema for every value of the map.
    Schema(Box<Node>),
}

/// One node of the schema tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub ty: Type,
    pub nullable: bool,
    pub preserve_unknown_fields: bool,
    pub embedded_resource: bool,
    pub list_type: Option<ListType>,
    /// Sorted by name, for binary search.
    pub properties: Box<[(Name, Node)]>,
    pub items: Option<Box<Node>>,
    pub additional_properties: Additional,
    pub required: Box<[Name]>,
    /// Everything most nodes do not have.
    pub checks: Option<Box<Checks>>,
}

/// The keywords few nodes carry, kept out of line so a plain node stays small.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub format: Option<Format>,
    pub enumeration: Option<Box<[Value]>>,
    pub pattern: Option<Pattern>,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub unique_items: bool,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub default: Option<Value>,
    pub list_map_keys: Box<[Name]>,
    pub all_of: Box<[Node]>,
    pub one_of: Box<[Node]>,
    pub any_of: Box<[Node]>,
    pub not: Option<Box<Node>>,
}

impl PartialEq for Checks {
    fn eq(&self, other: &Self) -> bool {
        self.format == other.format
            && self.enumeration == other.enumeration
            && self.pattern.as_ref().map(|p| &p.source) == other.pattern.as_ref().map(|p| &p.source)
            && self.minimum == other.minimum
            && self.exclusive_minimum == other.exclusive_minimum
            && self.maximum == other.maximum
            && self.exclusive_maximum == other.exclusive_maximum
            && self.multiple_of == other.multiple_of
            && self.min_length == other.min_length
            && self.max_length == other.max_length
            && self.min_items == other.min_items
            && self.max_items == other.max_items
            && self.unique_items == other.unique_items
            && self.min_properties == other.min_properties
            && self.max_properties == other.max_properties
            && self.default == other.default
            && self.list_map_keys == other.list_map_keys
            && self.all_of == other.all_of
            && self.one_of == other.one_of
            && self.any_of == other.any_of
            && self.not == other.not
    }
}

/// A `pattern`, compiled once. `source` is what kube prints in `should match '...'`.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: Box<str>,
    pub regex: regex::Regex,
}

/// A parsed `openAPIV3Schema`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub root: Node,
}

impl Schema {
    /// Parses a JSONSchemaProps tree. Fails with causes (paths relative to the schema, e.g.
    /// `properties[spec].pattern`) on what cannot be represented: wrong JSON types for
    /// keywords, unknown `type`, a `pattern` that does not compile.
    pub fn parse(json: &Value) -> Result<Schema, Vec<Cause>> {
        let mut causes = Vec::new();
        let root = Node::parse(json, "", &mut causes);
        if causes.is_empty() {
            Ok(Schema { root })
        } else {
            Err(causes)
        }
    }

    /// Validates a custom object (the whole object, `metadata` included; `metadata` of the
    /// root is left to ObjectMeta validation). Causes are kube's: first the OpenAPI schema's,
    /// then `x-kubernetes-list-type` set/map duplicates, then embedded resources'
    /// `apiVersion`/`kind`.
    pub fn validate(&self, object: &Value) -> Vec<Cause> {
        validate::validate_object(&self.root, object)
    }

    /// Removes fields the schema does not specify; returns their paths (`spec.foo`,
    /// `spec.items[0].bar`), sorted, as kube reports them in `unknown field "..."`.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        prune::prune_object(&self.root, object)
    }

    /// Applies `default`s where fields are absent (or null where not nullable), after
    /// dropping nulls of non-nullable fields that have no default, as kube's defaulter does.
    pub fn apply_defaults(&self, object: &mut Value) {
        default::apply(&self.root, object)
    }
}

/// Field path of a schema keyword, kube's `field.Path` form.
fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn key(path: &str, name: &str) -> String {
    format!("{path}[{name}]")
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn as_bool(json: &Value, name: &str, path: &str, causes: &mut Vec<Cause>) -> bool {
    match json.get(name) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            causes.push(field::invalid(
                &child(path, name),
                other,
                "must be a boolean",
            ));
            false
        }
    }
}

fn as_f64(json: &Value, name: &str, path: &str, causes: &mut Vec<Cause>) -> Option<f64> {
    match json.get(name)? {
        Value::Null => None,
        Value::Number(n) => n.as_f64(),
        other => {
            causes.push(field::invalid(
                &child(path, name),
                other,
                "must be a number",
            ));
            None
        }
    }
}

fn as_count(json: &Value, name: &str, path: &str, causes: &mut Vec<Cause>) -> Option<u64> {
    match json.get(name)? {
        Value::Null => None,
        Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
        other => {
            causes.push(field::invalid(
                &child(path, name),
                other,
                "must be a non-negative integer",
            ));
            None
        }
    }
}

fn as_names(json: &Value, name: &str, path: &str, causes: &mut Vec<Cause>) -> Box<[Name]> {
    match json.get(name) {
        None | Some(Value::Null) => Box::default(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(s) => Some(intern(s)),
                other => {
                    causes.push(field::invalid(
                        &index(&child(path, name), i),
                        other,
                        "must be a string",
                    ));
                    None
                }
            })
            .collect(),
        Some(other) => {
            causes.push(field::invalid(
                &child(path, name),
                other,
                "must be a list of strings",
            ));
            Box::default()
        }
    }
}

fn parse_list(json: &Value, name: &str, path: &str, causes: &mut Vec<Cause>) -> Box<[Node]> {
    match json.get(name) {
        None | Some(Value::Null) => Box::default(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| Node::parse(item, &index(&child(path, name), i), causes))
            .collect(),
        Some(other) => {
            causes.push(field::invalid(
                &child(path, name),
                other,
                "must be a list of schemas",
            ));
            Box::default()
        }
    }
}

impl Node {
    /// A node with no constraints (what an absent schema means).
    pub fn any() -> Node {
        Node {
            ty: Type::Any,
            nullable: false,
            preserve_unknown_fields: false,
            embedded_resource: false,
            list_type: None,
            properties: Box::default(),
            items: None,
            additional_properties: Additional::Unset,
            required: Box::default(),
            checks: None,
        }
    }

    fn parse(json: &Value, path: &str, causes: &mut Vec<Cause>) -> Node {
        let mut node = Node::any();
        let Value::Object(_) = json else {
            causes.push(field::invalid(path, json, "must be a schema object"));
            return node;
        };
        match json.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(name)) => match Type::parse(name) {
                Some(ty) => node.ty = ty,
                None => causes.push(field::not_supported(
                    &child(path, "type"),
                    &Value::String(name.clone()),
                    &["array", "boolean", "integer", "number", "object", "string"],
                )),
            },
            Some(other) => causes.push(field::invalid(
                &child(path, "type"),
                other,
                "must be a string",
            )),
        }
        if as_bool(json, "x-kubernetes-int-or-string", path, causes) {
            node.ty = Type::IntOrString;
        }
        node.nullable = as_bool(json, "nullable", path, causes);
        node.preserve_unknown_fields =
            as_bool(json, "x-kubernetes-preserve-unknown-fields", path, causes);
        node.embedded_resource = as_bool(json, "x-kubernetes-embedded-resource", path, causes);
        node.list_type = match json.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("atomic") => Some(ListType::Atomic),
            Some("set") => Some(ListType::Set),
            Some("map") => Some(ListType::Map),
            _ => None,
        };

        if let Some(properties) = json.get("properties") {
            match properties {
                Value::Object(map) => {
                    let props_path = child(path, "properties");
                    let mut parsed: Vec<(Name, Node)> = map
                        .iter()
                        .map(|(name, schema)| {
                            (
                                intern(name),
                                Node::parse(schema, &key(&props_path, name), causes),
                            )
                        })
                        .collect();
                    parsed.sort_by(|a, b| a.0.cmp(&b.0));
                    node.properties = parsed.into_boxed_slice();
                }
                Value::Null => {}
                other => causes.push(field::invalid(
                    &child(path, "properties"),
                    other,
                    "must be an object",
                )),
            }
        }
        match json.get("items") {
            None | Some(Value::Null) => {}
            Some(items @ Value::Object(_)) => {
                node.items = Some(Box::new(Node::parse(items, &child(path, "items"), causes)))
            }
            Some(other) => causes.push(field::forbidden(
                &child(path, "items"),
                if other.is_array() {
                    "items must be a schema object and not an array"
                } else {
                    "must be a schema object"
                },
            )),
        }
        node.additional_properties = match json.get("additionalProperties") {
            None | Some(Value::Null) => Additional::Unset,
            Some(Value::Bool(allows)) => Additional::Allows(*allows),
            Some(schema) => Additional::Schema(Box::new(Node::parse(
                schema,
                &child(path, "additionalProperties"),
                causes,
            ))),
        };
        node.required = as_names(json, "required", path, causes);

        let mut checks = Checks {
            format: json
                .get("format")
                .and_then(Value::as_str)
                .and_then(Format::parse),
            minimum: as_f64(json, "minimum", path, causes),
            exclusive_minimum: as_bool(json, "exclusiveMinimum", path, causes),
            maximum: as_f64(json, "maximum", path, causes),
            exclusive_maximum: as_bool(json, "exclusiveMaximum", path, causes),
            multiple_of: as_f64(json, "multipleOf", path, causes),
            min_length: as_count(json, "minLength", path, causes),
            max_length: as_count(json, "maxLength", path, causes),
            min_items: as_count(json, "minItems", path, causes),
            max_items: as_count(json, "maxItems", path, causes),
            unique_items: as_bool(json, "uniqueItems", path, causes),
            min_properties: as_count(json, "minProperties", path, causes),
            max_properties: as_count(json, "maxProperties", path, causes),
            default: json.get("default").cloned(),
            list_map_keys: as_names(json, "x-kubernetes-list-map-keys", path, causes),
            all_of: parse_list(json, "allOf", path, causes),
            one_of: parse_list(json, "oneOf", path, causes),
            any_of: parse_list(json, "anyOf", path, causes),
            not: json
                .get("not")
                .filter(|not| !not.is_null())
                .map(|not| Box::new(Node::parse(not, &child(path, "not"), causes))),
            ..Checks::default()
        };
        match json.get("enum") {
            None | Some(Value::Null) => {}
            Some(Value::Array(values)) => {
                checks.enumeration = Some(values.clone().into_boxed_slice())
            }
            Some(other) => causes.push(field::invalid(
                &child(path, "enum"),
                other,
                "must be a list",
            )),
        }
        match json.get("pattern") {
            None | Some(Value::Null) => {}
            Some(Value::String(source)) => match regex_syntax::compile(source) {
                Ok(regex) => {
                    checks.pattern = Some(Pattern {
                        source: source.as_str().into(),
                        regex,
                    })
                }
                Err(error) => causes.push(field::invalid(
                    &child(path, "pattern"),
                    &Value::String(source.clone()),
                    &format!("must be a valid regular expression, but isn't: {error}"),
                )),
            },
            Some(other) => causes.push(field::invalid(
                &child(path, "pattern"),
                other,
                "must be a string",
            )),
        }
        if checks != Checks::default() {
            node.checks = Some(Box::new(checks));
        }
        node
    }

    /// The schema of property `name`, if specified.
    pub fn property(&self, name: &str) -> Option<&Node> {
        self.properties
            .binary_search_by(|(candidate, _)| (**candidate).cmp(name))
            .ok()
            .map(|i| &self.properties[i].1)
    }

    /// The schema for the value of key `name` of an object: its property, else the
    /// `additionalProperties` schema.
    pub fn field_schema(&self, name: &str) -> Option<&Node> {
        self.property(name).or(match &self.additional_properties {
            Additional::Schema(schema) => Some(schema),
            _ => None,
        })
    }

    pub fn default_value(&self) -> Option<&Value> {
        self.checks.as_ref()?.default.as_ref()
    }

    pub fn list_map_keys(&self) -> &[Name] {
        self.checks.as_ref().map_or(&[], |c| &c.list_map_keys)
    }
}

#[cfg(test)]
mod tests;
