//! The rules a CRD version's `schema.openAPIV3Schema` must follow, checked as kube's
//! apiextensions validation checks them on create and update of a `apiextensions.k8s.io/v1`
//! CRD (new CRDs: structural, pruned defaults, atomic set items, map keys required or
//! defaulted). In kube's order: `nullable` at the root; the structural-schema rules
//! (sorted by message, as kube sorts them) or, when those pass, the `default` values; then
//! the per-node OpenAPI rules.
//!
//! Not checked here: `x-kubernetes-validations` (the `cel` module compiles and checks
//! rules), the restriction of root fields when the status subresource is enabled, and
//! defaults inside embedded resources' `metadata` (kube validates them as ObjectMeta).

use kubecache_core::field;
use kubecache_core::status::Cause;
use serde_json::{Map, Value};

use super::{Node, Schema, child, index, key, prune, validate};

/// The causes kube would report for `schema` at `path` (e.g.
/// `spec.versions[0].schema.openAPIV3Schema`); empty when the schema is acceptable.
pub fn check(schema: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Value::Object(root) = schema else {
        return vec![field::invalid(path, schema, "must be a schema object")];
    };
    if truthy(root, "nullable") {
        causes.push(field::forbidden(
            &child(path, "nullable"),
            "nullable cannot be true at the root",
        ));
    }

    let mut structural = Vec::new();
    invariants(root, Level::Root, path, &mut structural);
    completeness(root, path, &mut structural);
    structural.sort_by_key(error_string);
    let structural_ok = structural.is_empty();
    causes.extend(structural);

    let mut openapi = Vec::new();
    openapi_rules(root, path, Context::root(), &mut openapi);

    let parsed = Schema::parse(schema);
    if structural_ok {
        match &parsed {
            Ok(parsed) => defaults(&parsed.root, root, path, true, false, &mut causes),
            Err(parse_causes) if openapi.is_empty() && causes.is_empty() => {
                // Shown only when nothing else explains the schema, as kube does with
                // its structural-schema conversion errors.
                causes.extend(parse_causes.iter().map(|c| Cause {
                    field: if c.field.is_empty() {
                        path.to_string()
                    } else {
                        format!("{path}.{}", c.field)
                    },
                    ..c.clone()
                }));
            }
            Err(_) => {}
        }
    }
    causes.extend(openapi);
    causes
}

/// `field.Error.Error()`: what kube sorts structural errors by.
fn error_string(cause: &Cause) -> String {
    format!("{}: {}", cause.field, cause.message)
}

fn required(path: &str, detail: &str) -> Cause {
    Cause::new(
        "FieldValueRequired",
        path,
        format!("Required value: {detail}"),
    )
}

fn truthy(schema: &Map<String, Value>, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn text<'a>(schema: &'a Map<String, Value>, name: &str) -> &'a str {
    schema.get(name).and_then(Value::as_str).unwrap_or("")
}

fn object<'a>(schema: &'a Map<String, Value>, name: &str) -> Option<&'a Map<String, Value>> {
    schema.get(name).and_then(Value::as_object)
}

fn properties(schema: &Map<String, Value>) -> impl Iterator<Item = (&String, &Map<String, Value>)> {
    object(schema, "properties")
        .into_iter()
        .flat_map(|props| props.iter())
        .filter_map(|(name, s)| s.as_object().map(|s| (name, s)))
}

fn schema_list<'a>(schema: &'a Map<String, Value>, name: &str) -> Vec<&'a Map<String, Value>> {
    schema
        .get(name)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// The structural part of a node: its `type` and the generic keywords must be set in the
/// node itself, never only inside `allOf`/`anyOf`/`oneOf`/`not`.
fn invariants(s: &Map<String, Value>, level: Level, path: &str, out: &mut Vec<Cause>) {
    let ty = text(s, "type");
    let int_or_string = truthy(s, "x-kubernetes-int-or-string");
    let preserve = truthy(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = truthy(s, "x-kubernetes-embedded-resource");
    let items = object(s, "items");
    if ty == "array" && items.is_none() {
        out.push(required(&child(path, "items"), "must be specified"));
    }
    if let Some(items) = items {
        invariants(items, Level::Item, &child(path, "items"), out);
    }
    for (name, prop) in properties(s) {
        invariants(
            prop,
            Level::Field,
            &key(&child(path, "properties"), name),
            out,
        );
    }
    let additional = s.get("additionalProperties").filter(|v| !v.is_null());
    if let Some(additional) = additional {
        if level == Level::Root {
            out.push(field::forbidden(
                &child(path, "additionalProperties"),
                "must not be used at the root",
            ));
        }
        if let Value::Object(additional) = additional {
            invariants(
                additional,
                Level::Field,
                &child(path, "additionalProperties"),
                out,
            );
        }
    }
    if int_or_string && preserve {
        out.push(field::invalid(
            &child(path, "x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if int_or_string && embedded {
        out.push(field::invalid(
            &child(path, "x-kubernetes-embedded-resource"),
            &Value::Bool(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    value_validation(
        s,
        is_int_or_string_any_of(s),
        is_int_or_string_all_of(s),
        path,
        out,
    );

    let check_metadata = level == Level::Root || embedded;
    if embedded && ty != "object" {
        if ty.is_empty() {
            out.push(required(
                &child(path, "type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            out.push(field::invalid(
                &child(path, "type"),
                &Value::String(ty.to_string()),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if ty.is_empty() && !int_or_string && !preserve {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(required(&child(path, "type"), detail));
    }
    if embedded && additional.is_some() {
        out.push(field::forbidden(
            &child(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if level == Level::Root && !ty.is_empty() && ty != "object" {
        out.push(field::invalid(
            &child(path, "type"),
            &Value::String(ty.to_string()),
            "must be object at the root",
        ));
    }
    let props_path = child(path, "properties");
    if check_metadata {
        for meta_field in ["kind", "apiVersion"] {
            if let Some(prop) = object(s, "properties").and_then(|p| p.get(meta_field)) {
                let prop_type = prop.get("type").and_then(Value::as_str).unwrap_or("");
                if prop_type != "string" {
                    out.push(field::invalid(
                        &child(&key(&props_path, meta_field), "type"),
                        &Value::String(prop_type.to_string()),
                        "must be string",
                    ));
                }
            }
        }
    }
    if let Some(metadata) = object(s, "properties").and_then(|p| object(p, "metadata")) {
        let metadata_path = key(&props_path, "metadata");
        let metadata_type = text(metadata, "type");
        if check_metadata && metadata_type != "object" {
            out.push(field::invalid(
                &child(&metadata_path, "type"),
                &Value::String(metadata_type.to_string()),
                "must be object",
            ));
        }
        if level == Level::Root && !metadata_restricts_only_names(metadata) {
            out.push(field::forbidden(
                &metadata_path,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    if embedded && !preserve && properties(s).next().is_none() {
        out.push(required(
            &child(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// The root's `metadata` may only say it is an object and restrict `name`/`generateName`.
fn metadata_restricts_only_names(metadata: &Map<String, Value>) -> bool {
    metadata
        .iter()
        .all(|(keyword, value)| match keyword.as_str() {
            "type" | "default" => true,
            "properties" => value
                .as_object()
                .is_some_and(|props| props.keys().all(|k| k == "name" || k == "generateName")),
            _ => value.is_null() || is_zero(value),
        })
}

/// Go's zero values: a keyword set to its zero value is the same as absent.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    }
}

/// `anyOf: [{type: integer}, {type: string}]`, the int-or-string pattern kube allows types in.
fn is_int_or_string_any_of(s: &Map<String, Value>) -> bool {
    s.get("anyOf").is_some_and(|any_of| {
        any_of == &serde_json::json!([{"type": "integer"}, {"type": "string"}])
    })
}

fn is_int_or_string_all_of(s: &Map<String, Value>) -> bool {
    schema_list(s, "allOf")
        .first()
        .is_some_and(|first| is_int_or_string_any_of(first))
}

fn value_validation(
    s: &Map<String, Value>,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    path: &str,
    out: &mut Vec<Cause>,
) {
    if !skip_any_of {
        for (i, branch) in schema_list(s, "anyOf").into_iter().enumerate() {
            nested(branch, false, &index(&child(path, "anyOf"), i), out);
        }
    }
    for (i, branch) in schema_list(s, "allOf").into_iter().enumerate() {
        nested(
            branch,
            skip_first_all_of_any_of && i == 0,
            &index(&child(path, "allOf"), i),
            out,
        );
    }
    for (i, branch) in schema_list(s, "oneOf").into_iter().enumerate() {
        nested(branch, false, &index(&child(path, "oneOf"), i), out);
    }
    if let Some(not) = object(s, "not") {
        nested(not, false, &child(path, "not"), out);
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
        && let Err(error) = super::regex_syntax::compile(pattern)
    {
        out.push(field::invalid(
            &child(path, "pattern"),
            &Value::String(pattern.to_string()),
            &format!("must be a valid regular expression, but isn't: {error}"),
        ));
    }
}

/// A node inside `allOf`/`anyOf`/`oneOf`/`not`: value validations only.
fn nested(v: &Map<String, Value>, skip_any_of: bool, path: &str, out: &mut Vec<Cause>) {
    value_validation(v, skip_any_of, false, path, out);
    if let Some(items) = object(v, "items") {
        nested(items, false, &child(path, "items"), out);
    }
    let props_path = child(path, "properties");
    for (name, prop) in properties(v) {
        nested(prop, false, &key(&props_path, name), out);
    }
    let forbidden_if = |present: bool, name: &str, detail: &str, out: &mut Vec<Cause>| {
        if present {
            out.push(field::forbidden(&child(path, name), detail));
        }
    };
    let set = |name: &str| v.get(name).is_some_and(|value| !is_zero(value));
    forbidden_if(set("type"), "type", "must be empty to be structural", out);
    forbidden_if(
        v.get("additionalProperties").is_some_and(|a| !a.is_null()),
        "additionalProperties",
        "must be undefined to be structural",
        out,
    );
    forbidden_if(
        v.get("default").is_some_and(|d| !d.is_null()),
        "default",
        "must be undefined to be structural",
        out,
    );
    forbidden_if(set("title"), "title", "must be empty to be structural", out);
    forbidden_if(
        set("description"),
        "description",
        "must be empty to be structural",
        out,
    );
    forbidden_if(
        set("nullable"),
        "nullable",
        "must be false to be structural",
        out,
    );
    for extension in [
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        forbidden_if(
            set(extension),
            extension,
            "must be false to be structural",
            out,
        );
    }
    forbidden_if(
        set("x-kubernetes-list-map-keys"),
        "x-kubernetes-list-map-keys",
        "must be empty to be structural",
        out,
    );
    for extension in ["x-kubernetes-list-type", "x-kubernetes-map-type"] {
        forbidden_if(
            v.get(extension).is_some_and(|x| !x.is_null()),
            extension,
            "must be undefined to be structural",
            out,
        );
    }
    forbidden_if(
        set("x-kubernetes-validations"),
        "x-kubernetes-validations",
        "must be empty to be structural",
        out,
    );
    if object(v, "properties").is_some_and(|p| p.contains_key("metadata")) {
        out.push(field::forbidden(
            &key(&props_path, "metadata"),
            "must not be specified in a nested context",
        ));
    }
}

/// Every field a value validation talks about must also be specified structurally.
fn completeness(s: &Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    value_validation_completeness(s, Some(s), path, path, out);
}

fn value_validation_completeness(
    v: &Map<String, Value>,
    s: Option<&Map<String, Value>>,
    s_path: &str,
    v_path: &str,
    out: &mut Vec<Cause>,
) {
    if let Some(not) = object(v, "not") {
        nested_completeness(not, s, s_path, &child(v_path, "not"), out);
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        for (i, branch) in schema_list(v, keyword).into_iter().enumerate() {
            nested_completeness(branch, s, s_path, &index(&child(v_path, keyword), i), out);
        }
    }
}

fn nested_completeness(
    v: &Map<String, Value>,
    s: Option<&Map<String, Value>>,
    s_path: &str,
    v_path: &str,
    out: &mut Vec<Cause>,
) {
    let Some(s) = s else {
        out.push(required(
            s_path,
            &format!("because it is defined in {v_path}"),
        ));
        return;
    };
    value_validation_completeness(v, Some(s), s_path, v_path, out);
    if let Some(items) = object(v, "items") {
        nested_completeness(
            items,
            object(s, "items"),
            &child(s_path, "items"),
            &child(v_path, "items"),
            out,
        );
    }
    for (name, prop) in properties(v) {
        let s_prop_path = key(&child(s_path, "properties"), name);
        let v_prop_path = key(&child(v_path, "properties"), name);
        match object(s, "properties").and_then(|p| object(p, name)) {
            Some(s_prop) => {
                nested_completeness(prop, Some(s_prop), &s_prop_path, &v_prop_path, out)
            }
            None => out.push(required(
                &s_prop_path,
                &format!("because it is defined in {v_prop_path}"),
            )),
        }
    }
}

/// Each `default` must survive pruning unchanged and validate against its own node
/// (kube's `ValidateDefaults`). Walks properties and items, not additionalProperties, as
/// kube does.
fn defaults(
    node: &Node,
    json: &Map<String, Value>,
    path: &str,
    is_resource: bool,
    inside_meta: bool,
    out: &mut Vec<Cause>,
) {
    let is_resource = is_resource || node.embedded_resource;
    if let Some(default) = node.default_value() {
        // Defaults inside an embedded resource's ObjectMeta are validated as metadata by
        // kube; top-level metadata defaults are refused by the OpenAPI rules.
        if !inside_meta {
            let default_path = child(path, "default");
            let mut pruned = default.clone();
            prune::prune_value(node, &mut pruned, is_resource);
            if &pruned != default {
                out.push(field::invalid(
                    &default_path,
                    default,
                    "must not have unknown fields",
                ));
            }
            let mut meta_causes = Vec::new();
            if is_resource && let Value::Object(map) = default {
                validate::embedded_type_meta(map, &default_path, &mut meta_causes);
            }
            if !meta_causes.is_empty() {
                out.extend(meta_causes);
            } else {
                out.extend(validate::validate_value(node, default, &default_path));
            }
        }
    }
    if let (Some(items), Some(items_json)) = (&node.items, object(json, "items")) {
        defaults(
            items,
            items_json,
            &child(path, "items"),
            false,
            inside_meta,
            out,
        );
    }
    let props_path = child(path, "properties");
    for (name, prop_json) in properties(json) {
        let Some(prop) = node.property(name) else {
            continue;
        };
        let meta = is_resource && matches!(name.as_str(), "metadata" | "apiVersion" | "kind");
        defaults(
            prop,
            prop_json,
            &key(&props_path, name),
            false,
            inside_meta || meta,
            out,
        );
    }
}

/// What `ValidateCustomResourceDefinitionOpenAPISchema` carries down the tree.
#[derive(Clone)]
struct Context {
    is_root: bool,
    allow_defaults: bool,
    disallow_defaults_reason: String,
    inside_resource_meta: bool,
}

impl Context {
    fn root() -> Context {
        Context {
            is_root: true,
            allow_defaults: true,
            disallow_defaults_reason: String::new(),
            inside_resource_meta: false,
        }
    }

    fn nested(&self) -> Context {
        Context {
            is_root: false,
            ..self.clone()
        }
    }

    fn without_defaults(&self, reason: String) -> Context {
        Context {
            allow_defaults: false,
            disallow_defaults_reason: reason,
            ..self.clone()
        }
    }
}

const OPENAPI_V3_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// The per-node rules of kube's OpenAPI schema validation for CRDs.
fn openapi_rules(s: &Map<String, Value>, path: &str, ctx: Context, out: &mut Vec<Cause>) {
    let ty = text(s, "type");
    if !ty.is_empty() && !OPENAPI_V3_TYPES.contains(&ty) {
        out.push(field::not_supported(
            &child(path, "type"),
            &Value::String(ty.to_string()),
            &OPENAPI_V3_TYPES,
        ));
    }
    if s.get("default").is_some_and(|d| !d.is_null()) && !ctx.allow_defaults {
        let mut detail = "must not be set".to_string();
        if !ctx.disallow_defaults_reason.is_empty() {
            detail = format!("{detail} {}", ctx.disallow_defaults_reason);
        }
        out.push(field::forbidden(&child(path, "default"), &detail));
    }
    let unsupported = [
        ("id", "id is not supported"),
        ("additionalItems", "additionalItems is not supported"),
        ("patternProperties", "patternProperties is not supported"),
        ("definitions", "definitions is not supported"),
        ("dependencies", "dependencies is not supported"),
        ("$ref", "$ref is not supported"),
    ];
    for (keyword, detail) in unsupported {
        if s.get(keyword).is_some_and(|v| !is_zero(v)) {
            out.push(field::forbidden(&child(path, keyword), detail));
        }
    }
    if ty == "null" {
        out.push(field::forbidden(
            &child(path, "type"),
            "type cannot be set to null, use nullable as an alternative",
        ));
    }
    if s.get("items").is_some_and(Value::is_array) {
        out.push(field::forbidden(
            &child(path, "items"),
            "items must be a schema object and not an array",
        ));
    }
    if ctx.inside_resource_meta && truthy(s, "x-kubernetes-embedded-resource") {
        out.push(field::forbidden(
            &child(path, "x-kubernetes-embedded-resource"),
            "must not be used inside of resource meta",
        ));
    }
    if truthy(s, "uniqueItems") {
        out.push(field::forbidden(
            &child(path, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }

    let has_properties = object(s, "properties").is_some_and(|p| !p.is_empty());
    if let Some(additional) = s.get("additionalProperties").filter(|a| !a.is_null()) {
        if has_properties && additional != &Value::Bool(true) {
            out.push(field::forbidden(
                &child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if let Value::Object(additional) = additional {
            let mut sub = ctx.nested();
            if ctx.inside_resource_meta {
                sub = sub.without_defaults(
                    "inside additionalProperties applying to object metadata".to_string(),
                );
            }
            openapi_rules(additional, &child(path, "additionalProperties"), sub, out);
        }
    }
    let embedded = truthy(s, "x-kubernetes-embedded-resource");
    for (name, prop) in properties(s) {
        let mut sub = ctx.nested();
        if (ctx.is_root || embedded) && matches!(name.as_str(), "metadata" | "kind" | "apiVersion")
        {
            sub.inside_resource_meta = true;
            if ctx.is_root {
                sub = sub.without_defaults(format!("in top-level {name}"));
            }
        }
        openapi_rules(prop, &key(&child(path, "properties"), name), sub, out);
    }
    if let Some(not) = object(s, "not") {
        openapi_rules(not, &child(path, "not"), ctx.nested(), out);
    }
    for keyword in ["allOf", "oneOf", "anyOf"] {
        for (i, branch) in schema_list(s, keyword).into_iter().enumerate() {
            openapi_rules(branch, &index(&child(path, keyword), i), ctx.nested(), out);
        }
    }
    match s.get("items") {
        Some(Value::Object(items)) => {
            openapi_rules(items, &child(path, "items"), ctx.nested(), out)
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Value::Object(item) = item {
                    openapi_rules(item, &index(&child(path, "items"), i), ctx.nested(), out);
                }
            }
        }
        _ => {}
    }
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        out.push(field::invalid(
            &child(path, "x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(false),
            "must be true or undefined",
        ));
    }
    list_and_map_types(s, ty, path, out);
}

fn list_and_map_types(s: &Map<String, Value>, ty: &str, path: &str, out: &mut Vec<Cause>) {
    let map_type = s.get("x-kubernetes-map-type").and_then(Value::as_str);
    if map_type.is_some() && ty != "object" {
        type_must_be(ty, "object", "x-kubernetes-map-type", path, out);
    }
    if let Some(map_type) = map_type
        && map_type != "atomic"
        && map_type != "granular"
    {
        out.push(field::not_supported(
            &child(path, "x-kubernetes-map-type"),
            &Value::String(map_type.to_string()),
            &["atomic", "granular"],
        ));
    }
    let list_type = s.get("x-kubernetes-list-type").and_then(Value::as_str);
    let items = object(s, "items");
    if list_type.is_some() && ty != "array" {
        type_must_be(ty, "array", "x-kubernetes-list-type", path, out);
    } else if let (Some("set"), Some(items)) = (list_type, items) {
        let items_path = child(path, "items");
        match text(items, "type") {
            "array" => {
                if let Some(inner) = items.get("x-kubernetes-list-type").and_then(Value::as_str)
                    && inner != "atomic"
                {
                    out.push(field::invalid(
                        &child(&items_path, "x-kubernetes-list-type"),
                        &Value::String(inner.to_string()),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    ));
                }
            }
            "object"
                if items.get("x-kubernetes-map-type").and_then(Value::as_str) != Some("atomic") =>
            {
                // kube prints the (list-type) value it has at hand, usually null.
                let shown = items
                    .get("x-kubernetes-list-type")
                    .cloned()
                    .unwrap_or(Value::Null);
                out.push(field::invalid(
                    &child(&items_path, "x-kubernetes-map-type"),
                    &shown,
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                ));
            }
            _ => {}
        }
    }
    if let Some(list_type) = list_type
        && !matches!(list_type, "atomic" | "set" | "map")
    {
        out.push(field::not_supported(
            &child(path, "x-kubernetes-list-type"),
            &Value::String(list_type.to_string()),
            &["atomic", "set", "map"],
        ));
    }
    let map_keys: Vec<&str> = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !map_keys.is_empty() {
        match list_type {
            None => out.push(required(
                &child(path, "x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some("map") => {}
            Some(other) => out.push(field::invalid(
                &child(path, "x-kubernetes-list-type"),
                &Value::String(other.to_string()),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
        }
    }
    let keys_json = s
        .get("x-kubernetes-list-map-keys")
        .cloned()
        .unwrap_or(Value::Null);
    if list_type == Some("map") {
        let items_path = child(path, "items");
        if map_keys.is_empty() {
            out.push(required(
                &child(path, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match s.get("items") {
            None | Some(Value::Null) => out.push(required(
                &items_path,
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(Value::Array(_)) => out.push(field::invalid(
                &items_path,
                &s["items"],
                "must only have a single schema if x-kubernetes-list-type is map",
            )),
            _ => {}
        }
        if let Some(items) = items {
            let item_type = text(items, "type");
            if item_type != "object" {
                out.push(field::invalid(
                    &child(&items_path, "type"),
                    &Value::String(item_type.to_string()),
                    "must be object if parent array's x-kubernetes-list-type is map",
                ));
            } else {
                let mut seen: Vec<&str> = Vec::new();
                for map_key in &map_keys {
                    match object(items, "properties").and_then(|p| object(p, map_key)) {
                        Some(prop) => {
                            if matches!(text(prop, "type"), "array" | "object") {
                                out.push(field::invalid(
                                    &child(&key(&child(&items_path, "properties"), map_key), "type"),
                                    &Value::String(item_type.to_string()),
                                    "must be a scalar type if parent array's x-kubernetes-list-type is map",
                                ));
                            }
                        }
                        None => out.push(field::invalid(
                            &child(path, "x-kubernetes-list-map-keys"),
                            &keys_json,
                            "entries must all be names of item properties",
                        )),
                    }
                    if seen.contains(map_key) {
                        out.push(field::invalid(
                            &child(path, "x-kubernetes-list-map-keys"),
                            &keys_json,
                            "must not contain duplicate entries",
                        ));
                    }
                    seen.push(map_key);
                }
            }
        }
    }
    map_list_keys_map_set(s, list_type, &map_keys, path, out);
}

fn type_must_be(ty: &str, wanted: &str, extension: &str, path: &str, out: &mut Vec<Cause>) {
    let detail = format!("must be {wanted} if {extension} is specified");
    if ty.is_empty() {
        out.push(required(&child(path, "type"), &detail));
    } else {
        out.push(field::invalid(
            &child(path, "type"),
            &Value::String(ty.to_string()),
            &detail,
        ));
    }
}

/// Set and map list items may not be nullable; map keys must be required or defaulted.
fn map_list_keys_map_set(
    s: &Map<String, Value>,
    list_type: Option<&str>,
    map_keys: &[&str],
    path: &str,
    out: &mut Vec<Cause>,
) {
    let (Some(items), Some(list_type @ ("set" | "map"))) = (object(s, "items"), list_type) else {
        return;
    };
    let items_path = child(path, "items");
    if truthy(items, "nullable") {
        out.push(field::forbidden(
            &child(&items_path, "nullable"),
            &format!("cannot be nullable when x-kubernetes-list-type is {list_type}"),
        ));
    }
    if list_type != "map" {
        return;
    }
    let required_names: Vec<&str> = items
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for map_key in map_keys {
        let Some(prop) = object(items, "properties").and_then(|p| object(p, map_key)) else {
            continue;
        };
        let prop_path = key(&child(&items_path, "properties"), map_key);
        if !required_names.contains(map_key) && prop.get("default").is_none_or(Value::is_null) {
            out.push(required(
                &child(&prop_path, "default"),
                "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
            ));
        }
        if truthy(prop, "nullable") {
            out.push(field::forbidden(
                &child(&prop_path, "nullable"),
                "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
            ));
        }
    }
}
