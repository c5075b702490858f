//! The definitions of a custom resource's kind, from its CRD version's `openAPIV3Schema` (what
//! [`crate::strategy::Strategy::openapi_schema`] gives), shaped as kube's CRD OpenAPI builder
//! (apiextensions-apiserver `pkg/controller/openapi/builder`) publishes them:
//!
//! - the kind's definition is the schema with `metadata` replaced by a reference to
//!   `ObjectMeta`, `apiVersion` and `kind` added (TypeMeta's), each embedded resource
//!   (`x-kubernetes-embedded-resource`) given the same three and `apiVersion`/`kind` required,
//!   `x-kubernetes-int-or-string` spelled out as `anyOf: [integer, string]`, and the kind's
//!   `x-kubernetes-group-version-kind`;
//! - `<Kind>List` holds `items` of that definition and `ListMeta`.
//!
//! For `/openapi/v2` ([`V2`]) the schema first loses what Swagger 2.0 and kubectl's v2
//! validation cannot take (kube's `pkg/controller/openapi/v2`): `allOf`/`anyOf`/`oneOf`/`not`;
//! a nullable field's type, items and properties (and its place in `required`); the items and
//! properties of a field that keeps unknown fields, and the type of such an object; the type
//! of an array left without items; every `default`. A kind that keeps unknown fields at its
//! root is a bare `object` there.

use std::sync::OnceLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::SchemaGenerator;
use serde_json::{Map, Value, json};

use super::schemas::{Kind, LIST_META, OBJECT_META, REF_PREFIX, gvk};

/// Which document the definitions are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/openapi/v3/apis/<group>/<version>` (OpenAPI 3.0, `#/components/schemas/`).
    V3,
    /// `/openapi/v2` (Swagger 2.0, `#/definitions/`).
    V2,
}

const V2_REF_PREFIX: &str = "#/definitions/";
const EMBEDDED_API_VERSION: &str =
    "The versioned schema of this embedded object, group/version (`v1` for the core group).";
const EMBEDDED_KIND: &str = "The kind of this embedded object, in CamelCase.";
const OBJECT_METADATA: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const LIST_METADATA: &str = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The kind's definition and its list's, by definition name, for `target`; `selectable`
/// are the fields a field selector may name besides `metadata.*` (the CRD version's
/// `selectableFields`).
pub fn definitions(
    kind: &Kind,
    plural: &str,
    schema: &Value,
    selectable: &[String],
    target: Target,
) -> Vec<(String, Value)> {
    let mut kind_definition = definition(kind, schema, target);
    if !selectable.is_empty()
        && let Some(object) = kind_definition.as_object_mut()
    {
        // As kube's CRD builder: the declared fields, as field selectors spell them.
        let fields: Vec<Value> = selectable
            .iter()
            .map(|field| json!({ "fieldPath": field }))
            .collect();
        object.insert("x-kubernetes-selectable-fields".to_string(), fields.into());
        object.sort_keys();
    }
    vec![
        (kind.definition.clone(), kind_definition),
        (
            format!("{}List", kind.definition),
            list_definition(kind, plural, target),
        ),
    ]
}

/// The kind's definition.
pub fn definition(kind: &Kind, schema: &Value, target: Target) -> Value {
    let mut out = schema.clone();
    match target {
        Target::V3 => unfold_int_or_string(&mut out),
        Target::V2 if preserves_unknown(&out) => {
            // A kind that keeps everything: kubectl's v2 validation would reject every
            // field not listed, so nothing is listed.
            return json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [kind.gvk()],
            });
        }
        Target::V2 => to_v2(&mut out),
    }
    if let Some(object) = out.as_object_mut() {
        let properties = properties_of(object);
        properties.insert("metadata".to_string(), metadata_ref(target));
        let (api_version, kind_property) = type_meta();
        properties.insert("apiVersion".to_string(), api_version.clone());
        properties.insert("kind".to_string(), kind_property.clone());
        properties.sort_keys();
        if object.get("type").is_none() {
            object.insert("type".to_string(), json!("object"));
        }
    }
    add_embedded(&mut out, target);
    if let Some(object) = out.as_object_mut() {
        object.insert(
            "x-kubernetes-group-version-kind".to_string(),
            json!([kind.gvk()]),
        );
        object.sort_keys();
    }
    out
}

/// `<Kind>List`, as kube's builder writes it.
fn list_definition(kind: &Kind, plural: &str, target: Target) -> Value {
    let (api_version, kind_property) = type_meta();
    let list_meta = match target {
        Target::V3 => {
            json!({"allOf": [reference(LIST_META, target)], "description": LIST_METADATA})
        }
        Target::V2 => {
            json!({"$ref": format!("{V2_REF_PREFIX}{LIST_META}"), "description": LIST_METADATA})
        }
    };
    json!({
        "description": format!("{}List is a list of {}", kind.kind, kind.kind),
        "properties": {
            "apiVersion": api_version,
            "items": {
                "description": format!("List of {plural}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"),
                "items": reference(&kind.definition, target),
                "type": "array",
            },
            "kind": kind_property,
            "metadata": list_meta,
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [gvk(&kind.group, &kind.version, &format!("{}List", kind.kind))],
    })
}

fn reference(definition: &str, target: Target) -> Value {
    match target {
        Target::V3 => json!({ "$ref": format!("{REF_PREFIX}{definition}") }),
        Target::V2 => json!({ "$ref": format!("{V2_REF_PREFIX}{definition}") }),
    }
}

/// `metadata`: a reference to ObjectMeta with a description (OpenAPI 3.0 ignores the siblings
/// of a `$ref`, hence kube's `allOf` in v3; Swagger 2.0 keeps them).
fn metadata_ref(target: Target) -> Value {
    match target {
        Target::V3 => {
            json!({"allOf": [reference(OBJECT_META, target)], "description": OBJECT_METADATA})
        }
        Target::V2 => {
            json!({"$ref": format!("{V2_REF_PREFIX}{OBJECT_META}"), "description": OBJECT_METADATA})
        }
    }
}

/// TypeMeta's `apiVersion` and `kind` properties, as k8s-openapi describes them (taken from
/// `Status`, a kind with nothing else in them).
fn type_meta() -> &'static (Value, Value) {
    static TYPE_META: OnceLock<(Value, Value)> = OnceLock::new();
    TYPE_META.get_or_init(|| {
        let schema = SchemaGenerator::default().root_schema_for::<meta::Status>();
        let schema = schema.as_value();
        let property = |name: &str| {
            let mut p = schema["properties"][name].clone();
            if p.get("type").is_none() {
                p["type"] = json!("string");
            }
            p
        };
        (property("apiVersion"), property("kind"))
    })
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
}

/// The `properties` of a schema object, created when missing.
fn properties_of(object: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let properties = object
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if !properties.is_object() {
        *properties = Value::Object(Map::new());
    }
    properties.as_object_mut().expect("made an object above")
}

/// Calls `visit` on `schema` and then on every structural node below it (properties, items,
/// additionalProperties), parent first.
fn walk(schema: &mut Value, visit: &mut dyn FnMut(&mut Map<String, Value>)) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    visit(object);
    if let Some(Value::Object(properties)) = object.get_mut("properties") {
        for property in properties.values_mut() {
            walk(property, visit);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child @ Value::Object(_)) = object.get_mut(key) {
            walk(child, visit);
        }
    }
}

/// `x-kubernetes-int-or-string` as a validation clients understand: `anyOf` an integer or a
/// string, unless the schema says so already (kube's `Unfold`).
fn unfold_int_or_string(schema: &mut Value) {
    let int_or_string = json!([{"type": "integer"}, {"type": "string"}]);
    walk(schema, &mut |node| {
        if node.get("x-kubernetes-int-or-string") != Some(&Value::Bool(true)) {
            return;
        }
        let spelled = |v: Option<&Value>| v == Some(&int_or_string);
        if spelled(node.get("anyOf")) {
            return;
        }
        let first_all_of = node
            .get("allOf")
            .and_then(Value::as_array)
            .and_then(|all| all.first());
        if spelled(first_all_of.and_then(|f| f.get("anyOf"))) {
            return;
        }
        if node.get("anyOf").is_none() {
            node.insert("anyOf".to_string(), int_or_string.clone());
        } else {
            let all_of = node.entry("allOf").or_insert_with(|| json!([]));
            if let Some(all_of) = all_of.as_array_mut() {
                all_of.insert(0, json!({ "anyOf": int_or_string.clone() }));
            }
        }
        node.sort_keys();
    });
}

/// What Swagger 2.0 and kubectl's v2 validation cannot take, removed (kube's
/// `ToStructuralOpenAPIV2` and the pruning of defaults).
fn to_v2(schema: &mut Value) {
    walk(schema, &mut |node| {
        for key in ["allOf", "anyOf", "oneOf", "not", "default"] {
            node.shift_remove(key);
        }
        // A property that may be null is not required (it may be sent as null).
        let nullable = |v: &Value| v["nullable"] == Value::Bool(true);
        let nullable_properties: Vec<String> = node
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(_, v)| nullable(v))
            .map(|(k, _)| k.clone())
            .collect();
        let nullable_values = node.get("additionalProperties").is_some_and(nullable);
        if let Some(Value::Array(required)) = node.get_mut("required") {
            required.retain(|f| {
                !nullable_values
                    && !f
                        .as_str()
                        .is_some_and(|f| nullable_properties.iter().any(|p| p == f))
            });
            if required.is_empty() {
                node.shift_remove("required");
            }
        }
        if node.get("nullable") == Some(&Value::Bool(true)) {
            for key in ["type", "nullable", "items", "properties"] {
                node.shift_remove(key);
            }
        }
        let preserves =
            node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if preserves {
            node.shift_remove("items");
            node.shift_remove("properties");
        }
        let kind = node.get("type").and_then(Value::as_str);
        if (kind == Some("array") && node.get("items").is_none())
            || (preserves && kind == Some("object"))
        {
            node.shift_remove("type");
        }
    });
}

/// Every embedded resource (`x-kubernetes-embedded-resource`) gets `apiVersion`, `kind` and
/// `metadata`, the first two required; in v2 not where unknown fields are kept (listing them
/// would make kubectl refuse the others).
fn add_embedded(schema: &mut Value, target: Target) {
    walk(schema, &mut |node| {
        let is = |key: &str| node.get(key) == Some(&Value::Bool(true));
        if !is("x-kubernetes-embedded-resource")
            || (target == Target::V2 && is("x-kubernetes-preserve-unknown-fields"))
        {
            return;
        }
        let (api_version, kind) = type_meta();
        let described = |p: &Value, text: &str| {
            let mut p = p.clone();
            p["description"] = json!(text);
            p
        };
        let properties = properties_of(node);
        properties.insert(
            "apiVersion".to_string(),
            described(api_version, EMBEDDED_API_VERSION),
        );
        properties.insert("kind".to_string(), described(kind, EMBEDDED_KIND));
        properties.insert("metadata".to_string(), metadata_ref(target));
        properties.sort_keys();
        let required = node.entry("required").or_insert_with(|| json!([]));
        if let Some(required) = required.as_array_mut() {
            for field in ["kind", "apiVersion"] {
                if !required.iter().any(|r| r == field) {
                    required.push(json!(field));
                }
            }
        }
        node.sort_keys();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubecache_apiextensions::crd::Crd;
    use kubecache_apiextensions::fixtures;

    /// The kind and v1 schema of a fixture CRD (`cert-manager.io_certificates.yaml`).
    fn fixture(file: &str) -> (Kind, String, Value) {
        let crd = Crd::parse(&fixtures::crd(file)).expect("a valid fixture");
        let version = crd.versions[0].name.clone();
        let schema = crd.version(&version).unwrap().open_api_v3_schema().unwrap();
        let kind = Kind {
            group: crd.group.clone(),
            version,
            kind: crd.names.kind.clone(),
            definition: String::new(),
            built_in: false,
        };
        let mut labels: Vec<&str> = kind.group.split('.').collect();
        labels.reverse();
        let definition = format!("{}.{}.{}", labels.join("."), kind.version, kind.kind);
        (
            Kind { definition, ..kind },
            crd.names.plural.clone(),
            schema.clone(),
        )
    }

    fn kind(name: &str) -> Kind {
        Kind {
            group: "example.com".into(),
            version: "v1".into(),
            kind: name.into(),
            definition: format!("com.example.v1.{name}"),
            built_in: false,
        }
    }

    #[test]
    fn certificate_v3_is_the_schema_with_kube_metadata() {
        let (kind, plural, schema) = fixture("cert-manager.io_certificates.yaml");
        assert_eq!(kind.definition, "io.cert-manager.v1.Certificate");
        let definitions = definitions(&kind, &plural, &schema, &[], Target::V3);
        let names: Vec<&str> = definitions.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "io.cert-manager.v1.Certificate",
                "io.cert-manager.v1.CertificateList"
            ]
        );
        let certificate = &definitions[0].1;
        assert_eq!(
            certificate["x-kubernetes-group-version-kind"],
            json!([{"group": "cert-manager.io", "kind": "Certificate", "version": "v1"}])
        );
        let properties = &certificate["properties"];
        assert_eq!(
            properties["metadata"]["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}])
        );
        assert_eq!(properties["apiVersion"]["type"], "string");
        assert!(
            properties["kind"]["description"]
                .as_str()
                .unwrap()
                .contains("REST resource"),
            "{}",
            properties["kind"]
        );
        // The CRD's own fields, as written.
        let issuer_ref = &properties["spec"]["properties"]["issuerRef"];
        assert_eq!(
            issuer_ref,
            &schema["properties"]["spec"]["properties"]["issuerRef"]
        );
        assert_eq!(issuer_ref["required"], json!(["name"]));
        assert_eq!(
            properties["spec"]["required"],
            schema["properties"]["spec"]["required"]
        );
        let list = &definitions[1].1;
        assert_eq!(
            list["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/io.cert-manager.v1.Certificate"
        );
        assert_eq!(
            list["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
        );
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            "CertificateList"
        );
        assert!(
            list["properties"]["items"]["description"]
                .as_str()
                .unwrap()
                .starts_with("List of certificates.")
        );
    }

    #[test]
    fn certificate_v2_has_swagger_references_and_no_defaults() {
        let (kind, plural, schema) = fixture("acme.cert-manager.io_challenges.yaml");
        let text = serde_json::to_string(&schema).unwrap();
        assert!(text.contains("\"default\""), "the fixture has defaults");
        assert!(text.contains("\"anyOf\""), "the fixture has anyOf");
        let v2 = definitions(&kind, &plural, &schema, &[], Target::V2);
        let text = serde_json::to_string(&v2).unwrap();
        assert!(!text.contains("\"default\""));
        assert!(!text.contains("\"anyOf\""));
        assert!(!text.contains("#/components/"));
        let challenge = &v2[0].1;
        assert_eq!(
            challenge["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        // The webhook's free-form `config` keeps nothing kubectl would check against.
        let config = &challenge["properties"]["spec"]["properties"]["solver"]["properties"]["dns01"]
            ["properties"]["webhook"]["properties"]["config"];
        assert_eq!(config["x-kubernetes-preserve-unknown-fields"], true);
        assert!(config.get("type").is_none(), "{config}");
        // An int-or-string keeps its marker, without the anyOf v2 cannot express.
        let v3 = definitions(&kind, &plural, &schema, &[], Target::V3);
        assert!(serde_json::to_string(&v3).unwrap().contains("\"anyOf\""));
    }

    #[test]
    fn selectable_fields_are_published_on_the_kind_only() {
        let (kind, plural, schema) = fixture("cert-manager.io_certificates.yaml");
        let selectable = ["spec.secretName".to_string(), "spec.commonName".to_string()];
        for target in [Target::V3, Target::V2] {
            let definitions = definitions(&kind, &plural, &schema, &selectable, target);
            assert_eq!(
                definitions[0].1["x-kubernetes-selectable-fields"],
                json!([{"fieldPath": "spec.secretName"}, {"fieldPath": "spec.commonName"}])
            );
            assert!(
                definitions[1]
                    .1
                    .get("x-kubernetes-selectable-fields")
                    .is_none(),
                "not on the list"
            );
        }
        let without = definitions(&kind, &plural, &schema, &[], Target::V3);
        assert!(without[0].1.get("x-kubernetes-selectable-fields").is_none());
    }

    #[test]
    fn int_or_string_is_spelled_out_in_v3() {
        let schema = json!({
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": true},
                "spelled": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "other": {"x-kubernetes-int-or-string": true, "anyOf": [{"pattern": "^a"}]},
            },
        });
        let out = definition(&kind("Widget"), &schema, Target::V3);
        let p = &out["properties"];
        let spelled = json!([{"type": "integer"}, {"type": "string"}]);
        assert_eq!(p["port"]["anyOf"], spelled);
        assert_eq!(p["spelled"], schema["properties"]["spelled"]);
        assert_eq!(p["other"]["anyOf"], json!([{"pattern": "^a"}]));
        assert_eq!(p["other"]["allOf"], json!([{ "anyOf": spelled }]));
        let v2 = definition(&kind("Widget"), &schema, Target::V2);
        assert_eq!(
            v2["properties"]["port"],
            json!({"x-kubernetes-int-or-string": true})
        );
    }

    #[test]
    fn v2_drops_what_swagger_cannot_express() {
        let schema = json!({
            "type": "object",
            "required": ["a", "b", "spec"],
            "properties": {
                "a": {"type": "string", "nullable": true},
                "b": {"type": "string", "default": "x", "oneOf": [{"pattern": "^x"}]},
                "spec": {
                    "type": "object",
                    "not": {"required": ["z"]},
                    "properties": {
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"k": {"type": "string"}}},
                        "list": {"type": "array", "x-kubernetes-preserve-unknown-fields": true, "items": {"type": "string"}},
                        "maybe": {"type": "array", "nullable": true, "items": {"type": "string"}},
                        "labels": {"type": "object", "required": ["x"], "additionalProperties": {"type": "string", "nullable": true}},
                    },
                },
            },
        });
        let v2 = definition(&kind("Widget"), &schema, Target::V2);
        let p = &v2["properties"];
        // A nullable property is untyped and not required.
        assert_eq!(p["a"], json!({}));
        assert_eq!(v2["required"], json!(["b", "spec"]));
        assert_eq!(p["b"], json!({"type": "string"}));
        let spec = &p["spec"];
        assert!(spec.get("not").is_none());
        assert_eq!(
            spec["properties"]["free"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(
            spec["properties"]["list"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(spec["properties"]["maybe"], json!({}));
        assert!(spec["properties"]["labels"].get("required").is_none());
        // v3 keeps all of it.
        let v3 = definition(&kind("Widget"), &schema, Target::V3);
        assert_eq!(v3["properties"]["a"]["nullable"], true);
        assert_eq!(v3["properties"]["b"]["default"], "x");
        assert_eq!(
            v3["required"],
            json!(["a", "b", "spec"]),
            "the CRD's required list"
        );
    }

    #[test]
    fn a_kind_keeping_unknown_fields_is_a_bare_object_in_v2() {
        let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let v2 = definition(&kind("Blob"), &schema, Target::V2);
        assert_eq!(
            v2,
            json!({
                "type": "object",
                "x-kubernetes-group-version-kind": [{"group": "example.com", "kind": "Blob", "version": "v1"}],
            })
        );
        let v3 = definition(&kind("Blob"), &schema, Target::V3);
        assert_eq!(v3["x-kubernetes-preserve-unknown-fields"], true);
        assert!(v3["properties"]["metadata"].is_object());
    }

    #[test]
    fn embedded_resources_get_type_and_object_meta() {
        let schema = json!({
            "type": "object",
            "properties": {
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
                "raw": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
            },
        });
        let v3 = definition(&kind("Widget"), &schema, Target::V3);
        let template = &v3["properties"]["template"];
        assert_eq!(template["required"], json!(["kind", "apiVersion"]));
        assert_eq!(template["properties"]["apiVersion"]["type"], "string");
        assert_eq!(
            template["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(v3["properties"]["raw"]["properties"]["kind"].is_object());
        let v2 = definition(&kind("Widget"), &schema, Target::V2);
        assert_eq!(
            v2["properties"]["template"]["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        // Where unknown fields are kept, v2 lists nothing.
        assert!(v2["properties"]["raw"].get("properties").is_none());
        assert!(v2["properties"]["raw"].get("required").is_none());
    }
}
