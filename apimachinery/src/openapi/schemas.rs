//! The component schemas: every definition of the built-in API, generated from the typed
//! k8s-openapi 1.33 structs through their `schemars` implementations (which carry kube's
//! definition names, descriptions, types, formats and required lists), then put in the
//! shape kube-apiserver publishes in its OpenAPI v3 documents:
//!
//! - references point at `#/components/schemas/<kube definition name>`;
//! - a reference with siblings (a property's own description) becomes
//!   `{"allOf": [{"$ref": …}], "description": …}`, since OpenAPI 3.0 ignores siblings of `$ref`;
//! - top-level kinds carry `x-kubernetes-group-version-kind`;
//! - `<Kind>List` definitions (k8s-openapi has one generic `List<T>` instead) are built from
//!   the kind's definition and `ListMeta`;
//! - the merge and list-type extensions come from the merge-schema table, through
//!   [`merge_extensions`] (properties) and [`definition_extensions`] (atomic structs).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use k8s_openapi::Resource;
use k8s_openapi::api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use kubecache_core::merge_schema::{self, ListType, MapType, Shape};
use kubecache_core::registry::ResourceInfo;
use serde_json::{Map, Value, json};

/// Where references point, as in kube's documents.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// A group/version/kind and the definition that describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Kube's definition name, e.g. `io.k8s.api.core.v1.Pod`.
    pub definition: String,
    /// A built-in type (a k8s-openapi struct): it has a protobuf form and merge keys, so its
    /// operations offer protobuf and strategic merge patch. A free-form kind (a resource
    /// added at run time without a schema) offers neither, as kube's custom resources.
    pub built_in: bool,
}

impl Kind {
    /// The kind of `T`, with its definition (and those it refers to) added to `generator`.
    pub fn generate<T: Resource + JsonSchema>(generator: &mut SchemaGenerator) -> Kind {
        generator.subschema_for::<T>();
        Kind::of::<T>()
    }

    fn of<T: Resource + JsonSchema>() -> Kind {
        Kind {
            group: T::GROUP.to_string(),
            version: T::VERSION.to_string(),
            kind: T::KIND.to_string(),
            definition: T::schema_name().into_owned(),
            built_in: true,
        }
    }

    /// The kind of a resource whose strategy has no Rust type (a custom resource, or a
    /// resource added at run time without a schema), named as kube names a custom resource's
    /// definition: the group's labels reversed, the version, the kind
    /// (`com.example.v1.Widget`).
    pub fn free_form(resource: &ResourceInfo) -> Kind {
        let mut labels: Vec<&str> = resource
            .group
            .split('.')
            .filter(|l| !l.is_empty())
            .collect();
        labels.reverse();
        labels.push(&resource.version);
        labels.push(&resource.kind);
        Kind {
            group: resource.group.clone(),
            version: resource.version.clone(),
            kind: resource.kind.clone(),
            definition: labels.join("."),
            built_in: false,
        }
    }

    /// The `x-kubernetes-group-version-kind` entry of this kind.
    pub fn gvk(&self) -> Value {
        gvk(&self.group, &self.version, &self.kind)
    }
}

/// The definition of a free-form kind: an object whose fields are all kept
/// (`x-kubernetes-preserve-unknown-fields`), with the type and object metadata every kind
/// has — what kube publishes for a custom resource whose schema keeps unknown fields at its
/// root. (`/openapi/v2` drops the properties, as kube does: kubectl's v2 validation would
/// otherwise reject every other field.)
fn free_form_schema(kind: &Kind) -> Value {
    json!({
        "description": format!(
            "{} of {}/{}, served without a schema: every field is kept as sent.",
            kind.kind, kind.group, kind.version
        ),
        "properties": {
            "apiVersion": {
                "description": "The versioned schema of this representation of an object.",
                "type": "string",
            },
            "kind": {
                "description": "The REST resource this object represents, in CamelCase.",
                "type": "string",
            },
            "metadata": {
                "allOf": [reference(OBJECT_META)],
                "description": "Standard object's metadata.",
            },
        },
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

pub fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// Definition names of the meta types every group-version document uses.
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";
pub const API_VERSIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions";
pub const API_GROUP_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList";
pub const API_GROUP: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup";
pub const VERSION_INFO: &str = "io.k8s.apimachinery.pkg.version.Info";
pub const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The extensions that tell clients how a property merges (`x-kubernetes-list-type`,
/// `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`, `x-kubernetes-patch-merge-key`,
/// `x-kubernetes-patch-strategy`), for property `property` (JSON name) of definition
/// `definition` (kube name, e.g. `io.k8s.api.core.v1.PodSpec`), from the merge-schema table
/// (`kubecache_core::merge_schema`), the same one strategic merge patch and server-side
/// apply run on.
///
/// kube publishes an extension where its type declares the tag, so where kube's declared
/// tags are known (`merge_schema::KUBE_TAGS`, a field line for this property) an extension
/// is emitted only when declared: `x-kubernetes-list-type: atomic` for a `+listType=atomic`
/// list but nothing for an untagged list (both merge the same), `x-kubernetes-map-type` for
/// a declared `+mapType`/`+structType` (`granular` included), `x-kubernetes-patch-strategy:
/// replace` where declared (PodDisruptionBudgetSpec.selector). The values come from the
/// table, which folds the same tags. For the few properties without a tag line (fields of
/// embedded Go structs k8s-pb flattens, e.g. `RuleWithOperations.apiGroups`) the table's
/// non-default values are emitted: a list type other than atomic, an atomic map, a patch
/// strategy — so an untagged atomic list kube marks `atomic` lacks the extension here, with
/// the same merge behavior.
///
/// The patch merge key and strategy are what kubectl builds client-side apply patches from
/// (it reads them from `/openapi/v3` once a patch operation lists strategic merge patch, see
/// [`publishes_merge_keys`]). The v2 definitions carry the same extensions.
pub fn merge_extensions(definition: &str, property: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(field) = merge_schema::definition(definition).and_then(|d| d.field(property)) else {
        return out;
    };
    let declared = declared_tags().fields.get(&(definition, property));
    let has = |tag: &str| declared.is_some_and(|tags| tags.iter().any(|(k, _)| *k == tag));
    let tag_value =
        |tag: &str| declared.and_then(|tags| tags.iter().find(|(k, _)| *k == tag).map(|(_, v)| *v));
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_string(), value);
    };
    match field.shape {
        Shape::List => {
            let list_type = match declared {
                Some(_) => has("listType"),
                None => field.list_type != ListType::Atomic,
            };
            if list_type {
                put(
                    "x-kubernetes-list-type",
                    json!(field.list_type.as_extension()),
                );
            }
            if field.list_type == ListType::Map && !field.list_map_keys.is_empty() {
                put("x-kubernetes-list-map-keys", json!(field.list_map_keys));
            }
        }
        Shape::Map => {
            let map_type = match declared {
                Some(_) => has("mapType"),
                None => field.map_type == MapType::Atomic,
            };
            if map_type {
                put(
                    "x-kubernetes-map-type",
                    json!(field.map_type.as_extension()),
                );
            }
        }
        // A struct's own `+structType` is published on its definition
        // ([`definition_extensions`]); a tag on the field itself goes on the property.
        Shape::Struct => {
            if let Some(value) = tag_value("structType") {
                put("x-kubernetes-map-type", json!(value));
            }
        }
        Shape::Scalar => {}
    }
    if let Some(key) = field.patch_merge_key {
        put("x-kubernetes-patch-merge-key", json!(key));
    }
    match field.patch_strategy.as_extension() {
        Some(strategy) => put("x-kubernetes-patch-strategy", json!(strategy)),
        None if tag_value("patchStrategy") == Some("replace") => {
            put("x-kubernetes-patch-strategy", json!("replace"));
        }
        None => {}
    }
    out
}

/// The extensions of a definition itself: `x-kubernetes-map-type: atomic` for a
/// `+structType=atomic` type (LabelSelector, LocalObjectReference, OwnerReference, …), as
/// kube publishes it. Opaque values (Quantity, Time, …) carry none.
pub fn definition_extensions(definition: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let declared = declared_tags();
    let struct_type = match declared.types.get(definition) {
        Some(tags) => tags
            .iter()
            .find(|(k, _)| *k == "structType")
            .map(|(_, v)| *v),
        None if declared.definitions.contains(definition) => None,
        None => merge_schema::definition(definition)
            .filter(|d| !d.opaque && d.struct_type == MapType::Atomic)
            .map(|d| d.struct_type.as_extension()),
    };
    if let Some(value) = struct_type {
        out.insert("x-kubernetes-map-type".to_string(), json!(value));
    }
    out
}

/// kube's declared tags, parsed from `merge_schema::KUBE_TAGS` once.
struct DeclaredTags {
    /// Definitions whose tags are known.
    definitions: HashSet<&'static str>,
    /// Definition → its own tags (`structType=atomic`).
    types: HashMap<&'static str, Vec<(&'static str, &'static str)>>,
    /// (definition, JSON name) → the field's tags (possibly none).
    fields: HashMap<(&'static str, &'static str), Vec<(&'static str, &'static str)>>,
}

fn declared_tags() -> &'static DeclaredTags {
    static TAGS: OnceLock<DeclaredTags> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = DeclaredTags {
            definitions: HashSet::new(),
            types: HashMap::new(),
            fields: HashMap::new(),
        };
        let pairs = |parts: &[&'static str]| -> Vec<(&'static str, &'static str)> {
            parts.iter().filter_map(|p| p.split_once('=')).collect()
        };
        for line in merge_schema::KUBE_TAGS.lines() {
            let parts: Vec<&'static str> = line.split('\t').collect();
            match parts.as_slice() {
                ["D", name] => {
                    tags.definitions.insert(name);
                }
                ["S", name, rest @ ..] => {
                    tags.types.insert(name, pairs(rest));
                }
                ["F", name, field, rest @ ..] => {
                    tags.fields.insert((name, field), pairs(rest));
                }
                _ => {}
            }
        }
        tags
    })
}

/// Whether the merge extensions are published: the probe is `PodSpec.containers`, merged
/// by `name` in every Kubernetes version. Strategic merge patch is listed among the patch
/// operations' media types only then: kubectl 1.33 computes client-side apply patches from
/// this document when a patch operation lists it, and without merge keys it would replace
/// lists (containers, env, …) instead of merging them.
pub fn publishes_merge_keys() -> bool {
    merge_extensions("io.k8s.api.core.v1.PodSpec", "containers")
        .contains_key("x-kubernetes-patch-merge-key")
}

/// Every definition of the built-in API, by name, in kube's published form.
#[derive(Debug)]
pub struct Components {
    /// Definition name → schema.
    pub schemas: Map<String, Value>,
    /// Every kind served (and autoscaling/v1 Scale), with its definition.
    pub kinds: Vec<Kind>,
}

impl Components {
    /// Generates every definition. The kinds are those of the resources `served` (each
    /// strategy's OpenAPI kind, or a free-form one for a stored resource whose strategy has
    /// none) and autoscaling/v1 `Scale`; a resource whose strategy gives an OpenAPI schema
    /// instead (a custom resource) is left to [`super::custom`], per group-version.
    pub fn generate(served: &crate::registry::Snapshot) -> Components {
        let mut settings = SchemaSettings::draft2020_12();
        settings.definitions_path = "/components/schemas".into();
        settings.meta_schema = None;
        let mut generator = SchemaGenerator::new(settings);
        let mut kinds: Vec<Kind> = Vec::new();
        let mut free_form: Vec<Kind> = Vec::new();
        for resource in served.iter() {
            match resource.strategy().openapi_kind(&mut generator) {
                Some(kind) => kinds.push(kind),
                None if resource.strategy().openapi_schema().is_some() => {}
                None if !resource.create_only => free_form.push(Kind::free_form(resource)),
                None => {}
            }
        }
        // What a free-form kind refers to.
        generator.subschema_for::<meta::ObjectMeta>();
        // The scale subresource's kind.
        kinds.push(Kind::generate::<api::autoscaling::v1::Scale>(
            &mut generator,
        ));
        // What operations take and return besides the kinds themselves.
        generator.subschema_for::<meta::Status>();
        generator.subschema_for::<meta::DeleteOptions>();
        generator.subschema_for::<meta::Patch>();
        generator.subschema_for::<meta::WatchEvent<RawExtension>>();
        generator.subschema_for::<meta::APIResourceList>();
        generator.subschema_for::<meta::ListMeta>();
        // The discovery documents (`/api`, `/apis`, `/apis/<group>`) and `/version`.
        generator.subschema_for::<meta::APIVersions>();
        generator.subschema_for::<meta::APIGroupList>();
        generator.subschema_for::<meta::APIGroup>();
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::version::Info>();

        let mut schemas = generator.take_definitions(false);
        for (name, schema) in schemas.iter_mut() {
            wrap_refs(schema);
            add_merge_extensions(name, schema);
        }
        for kind in free_form {
            schemas.insert(kind.definition.clone(), free_form_schema(&kind));
            kinds.push(kind);
        }
        for kind in &kinds {
            let schema = schemas
                .get_mut(&kind.definition)
                .expect("every kind's definition was generated");
            mark_kind(schema, kind);
        }
        for kind in &kinds {
            if kind.kind == "Scale" {
                continue;
            }
            let list = list_schema(&schemas[&kind.definition], kind);
            schemas.insert(format!("{}List", kind.definition), list);
        }
        schemas.sort_keys();
        Components { schemas, kinds }
    }

    /// The kind at `group`/`version` named `kind`.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&Kind> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.kind == kind)
    }

    /// The definitions named in `roots` and every definition they reference, transitively,
    /// sorted by name.
    pub fn closure<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> Map<String, Value> {
        self.closure_with(&Map::new(), roots)
    }

    /// [`Components::closure`] over these definitions and `extra` (a group-version's custom
    /// kinds), taken first.
    pub fn closure_with<'a>(
        &self,
        extra: &Map<String, Value>,
        roots: impl IntoIterator<Item = &'a str>,
    ) -> Map<String, Value> {
        let lookup = |name: &str| extra.get(name).or_else(|| self.schemas.get(name));
        let mut seen = BTreeSet::new();
        let mut pending: Vec<String> = roots.into_iter().map(str::to_string).collect();
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(schema) = lookup(&name) {
                collect_refs(schema, &mut pending);
            }
        }
        seen.into_iter()
            .filter_map(|name| lookup(&name).map(|s| (name, s.clone())))
            .collect()
    }
}

/// `{"$ref": "#/components/schemas/<name>"}`.
pub fn reference(definition: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{definition}") })
}

/// Rewrites every `$ref` that has siblings into kube's `allOf: [{$ref}]` form.
fn wrap_refs(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            for value in object.values_mut() {
                wrap_refs(value);
            }
            // (JSONSchemaProps has a *property* named `$ref`: only a string is a reference.)
            if object.len() > 1 && matches!(object.get("$ref"), Some(Value::String(_))) {
                let target = object.shift_remove("$ref");
                object.insert("allOf".to_string(), json!([{ "$ref": target }]));
                object.sort_keys();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_refs),
        _ => {}
    }
}

/// Adds [`definition_extensions`] to a definition and [`merge_extensions`] to each of its
/// properties.
fn add_merge_extensions(definition: &str, schema: &mut Value) {
    let own = definition_extensions(definition);
    if let (false, Some(object)) = (own.is_empty(), schema.as_object_mut()) {
        object.extend(own);
        object.sort_keys();
    }
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (property, value) in properties.iter_mut() {
        let extensions = merge_extensions(definition, property);
        if let (false, Some(object)) = (extensions.is_empty(), value.as_object_mut()) {
            object.extend(extensions);
            object.sort_keys();
        }
    }
}

/// Marks a top-level kind: its group-version-kind, and no `metadata` in `required`
/// (k8s-openapi lists it because its Rust field is not optional; kube does not).
fn mark_kind(schema: &mut Value, kind: &Kind) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(required)) = object.get_mut("required") {
        required.retain(|field| field != "metadata");
        if required.is_empty() {
            object.shift_remove("required");
        }
    }
    object.insert(
        "x-kubernetes-group-version-kind".to_string(),
        json!([kind.gvk()]),
    );
}

/// The `<Kind>List` definition of a kind, shaped like kube's.
fn list_schema(item: &Value, kind: &Kind) -> Value {
    let property = |name: &str| item["properties"][name].clone();
    json!({
        "description": format!("{}List is a list of {} objects.", kind.kind, kind.kind),
        "properties": {
            "apiVersion": property("apiVersion"),
            "items": {
                "description": format!("The {} objects.", kind.kind),
                "items": reference(&kind.definition),
                "type": "array",
            },
            "kind": property("kind"),
            "metadata": {
                "allOf": [reference(LIST_META)],
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            },
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [gvk(&kind.group, &kind.version, &format!("{}List", kind.kind))],
    })
}

/// Pushes the definition name of every `$ref` in `schema`.
fn collect_refs(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix(REF_PREFIX) {
                            out.push(name.to_string());
                        }
                    }
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The definition names `document` refers to.
    pub fn collect(document: &Value, out: &mut Vec<String>) {
        collect_refs(document, out);
    }

    fn components() -> &'static Components {
        static COMPONENTS: std::sync::OnceLock<Components> = std::sync::OnceLock::new();
        COMPONENTS
            .get_or_init(|| Components::generate(&crate::registry::Registry::builtin().snapshot()))
    }

    #[test]
    fn definitions_have_kube_names_and_refs() {
        let c = components();
        let pod = &c.schemas["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        assert!(pod.get("required").is_none(), "{pod}");
        assert_eq!(
            pod["properties"]["spec"]["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}])
        );
        assert!(
            pod["properties"]["spec"]["description"]
                .as_str()
                .unwrap()
                .starts_with("Specification of the desired behavior of the pod.")
        );
        let containers = &c.schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["type"], "array");
        assert_eq!(
            containers["items"],
            json!({"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"})
        );
        assert_eq!(
            c.schemas["io.k8s.api.core.v1.PodSpec"]["required"],
            json!(["containers"])
        );
    }

    #[test]
    fn every_reference_resolves() {
        let c = components();
        let mut refs = Vec::new();
        for schema in c.schemas.values() {
            collect_refs(schema, &mut refs);
        }
        assert!(refs.len() > 100);
        for name in refs {
            assert!(
                c.schemas.contains_key(&name),
                "dangling reference to {name}"
            );
        }
        let text = serde_json::to_string(&c.schemas).unwrap();
        assert!(!text.contains("$defs"), "a reference outside components");
    }

    #[test]
    fn a_property_named_ref_is_not_a_reference() {
        let props = &components().schemas["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"]
            ["properties"];
        assert_eq!(props["$ref"], json!({"type": "string"}));
        // (`allOf` is one of its properties too: the array of subschemas.)
        assert_eq!(props["allOf"]["type"], "array");
    }

    #[test]
    fn lists_are_synthesized() {
        let c = components();
        let list = &c.schemas["io.k8s.api.apps.v1.DeploymentList"];
        assert_eq!(
            list["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "DeploymentList", "version": "v1"}])
        );
        assert_eq!(
            list["properties"]["items"]["items"]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.Deployment"
        );
        assert_eq!(list["required"], json!(["items"]));
    }

    #[test]
    fn closure_follows_references() {
        let c = components();
        let apps = c.closure(["io.k8s.api.apps.v1.Deployment"]);
        assert!(apps.contains_key("io.k8s.api.core.v1.PodSpec"));
        assert!(apps.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(apps.contains_key("io.k8s.apimachinery.pkg.api.resource.Quantity"));
        assert!(!apps.contains_key("io.k8s.api.core.v1.Pod"));
        assert!(!apps.contains_key("io.k8s.api.core.v1.ConfigMap"));
    }

    #[test]
    fn merge_extensions_are_kubes() {
        let c = components();
        let prop = |d: &str, p: &str| c.schemas[d]["properties"][p].clone();
        let containers = prop("io.k8s.api.core.v1.PodSpec", "containers");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        // Declared `+listType=atomic` is published, with no patch strategy.
        let args = prop("io.k8s.api.core.v1.Container", "args");
        assert_eq!(args["x-kubernetes-list-type"], "atomic");
        let tolerations = prop("io.k8s.api.core.v1.PodSpec", "tolerations");
        assert_eq!(tolerations["x-kubernetes-list-type"], "atomic");
        assert!(tolerations.get("x-kubernetes-patch-strategy").is_none());
        assert!(tolerations.get("x-kubernetes-patch-merge-key").is_none());
        assert_eq!(
            prop("io.k8s.api.core.v1.PodSpec", "nodeSelector")["x-kubernetes-map-type"],
            "atomic"
        );
        assert!(
            prop("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "labels")
                .get("x-kubernetes-map-type")
                .is_none()
        );
        assert_eq!(
            prop("io.k8s.api.core.v1.PersistentVolumeSpec", "claimRef")["x-kubernetes-map-type"],
            "granular"
        );
        assert_eq!(
            prop("io.k8s.api.policy.v1.PodDisruptionBudgetSpec", "selector")["x-kubernetes-patch-strategy"],
            "replace"
        );
        assert_eq!(
            c.schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
            "atomic"
        );
        assert!(
            c.schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]
                .get("x-kubernetes-map-type")
                .is_none()
        );
        assert!(publishes_merge_keys());
    }
}
