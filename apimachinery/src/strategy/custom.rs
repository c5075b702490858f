//! The strategy of a custom resource: one per served version of an established
//! CustomResourceDefinition, built from the CRD when the server learns it (the CRD controller
//! in the server registers them). What a built-in strategy knows from Rust types, this one
//! reads from the CRD: identity from `spec.names`, decoding as pruning by the version's
//! structural schema, defaults and validation from the same schema plus its CEL rules, the
//! Table from `additionalPrinterColumns`, the storage version and conversion between versions
//! (`None`: only `apiVersion` changes, as kube's nop converter does; `Webhook`: a
//! [`Converter`] the server gives the strategy, since this crate does no I/O), and the
//! `Warning` of a deprecated version.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use kubecache_apiextensions::cel::Rules;
use kubecache_apiextensions::crd::{Crd, PrinterColumn, Version};
use kubecache_apiextensions::jsonpath::JsonPath;
use kubecache_apiextensions::schema::Schema;
use kubecache_core::registry::{CLUSTER, NAMESPACED, ResourceInfo};
use kubecache_core::status::{ApiError, Cause, Reason};
use serde_json::Value;

use super::{DefaultContext, Strategy, TypedForm};
use crate::openapi::schemas::Kind;
use crate::scale::ScaleView;
use crate::table;
use k8s_openapi::schemars::SchemaGenerator;

/// How a custom resource's objects change version when it is more than rewriting
/// `apiVersion` (kube's `CRConverter`): the CRD's conversion webhook, implemented where the
/// I/O is (the store crate). A [`CustomResource`] without one is kube's nop converter.
pub trait Converter: Send + Sync + 'static {
    /// `object` in `desired` (`group/version`); the error is the whole message (kube's
    /// "conversion webhook for <gvk> failed: ...").
    fn convert(&self, object: Value, desired: String) -> BoxFuture<'_, Result<Value, String>>;
}

/// One served version of a custom resource.
pub struct CustomResource {
    info: ResourceInfo,
    /// The version's structural schema; `None` when it has none (only possible for CRDs
    /// written before v1), which keeps every field.
    schema: Option<Schema>,
    /// The same schema as written in the CRD, what OpenAPI publishes.
    schema_json: Option<Arc<Value>>,
    rules: Option<Rules>,
    columns: Vec<(PrinterColumn, Option<JsonPath>)>,
    /// `(group, version, plural)` of the storage version, when it is another version.
    storage: Option<(String, String, String)>,
    scale: Option<ScalePointers>,
    /// The CRD's conversion webhook; `None`: only `apiVersion` changes.
    converter: Option<Arc<dyn Converter>>,
    /// The `Warning` of a deprecated version.
    warning: Option<String>,
    /// Set (by the CRD controller, shared by the CRD's versions) once the CRD is being
    /// deleted.
    terminating: Arc<AtomicBool>,
}

/// The scale subresource's paths (`.spec.replicas`) as JSON pointers (`/spec/replicas`).
struct ScalePointers {
    spec_replicas: String,
    status_replicas: String,
    label_selector: Option<String>,
}

/// A scale path (`.spec.replicas`, validated with the CRD: a dotted path under `.spec` or
/// `.status`) as a JSON pointer.
fn pointer(path: &str) -> String {
    path.replace('.', "/")
}

/// The version's `selectableFields` as field selectors name them (`.spec.color` →
/// `spec.color`).
fn selectable_fields(version: &Version) -> Vec<String> {
    version
        .selectable_fields
        .iter()
        .map(|field| field.json_path.trim_start_matches('.').to_string())
        .collect()
}

fn strs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

impl CustomResource {
    /// The strategy of `crd` at `version`; an error when the version is not in the CRD or its
    /// schema does not compile (the CRD's validation refuses such a CRD first).
    pub fn new(crd: &Crd, version: &str) -> Result<CustomResource, String> {
        let served = crd
            .version(version)
            .ok_or_else(|| format!("{} has no version {version}", crd.name))?;
        let names = &crd.status.accepted_names;
        let names = if names.plural.is_empty() {
            &crd.names
        } else {
            names
        };
        let mut info = ResourceInfo::new(
            &crd.group,
            version,
            &names.plural,
            &names.singular,
            &names.kind,
            if crd.is_namespaced() {
                NAMESPACED
            } else {
                CLUSTER
            },
        )
        .short(&strs(&names.short_names))
        .categories(&strs(&names.categories))
        .stored_at(&format!("{}/{}", crd.group, names.plural))
        .selectable(&strs(&selectable_fields(served)));
        if crd.has_status_subresource(version) {
            info = info.status();
        }
        let scale = crd.scale(version).map(|scale| ScalePointers {
            spec_replicas: pointer(&scale.spec_replicas_path),
            status_replicas: pointer(&scale.status_replicas_path),
            label_selector: scale.label_selector_path.as_deref().map(pointer),
        });
        if scale.is_some() {
            info = info.scale();
        }
        let schema_json = served.open_api_v3_schema();
        let schema = schema_json
            .map(Schema::parse)
            .transpose()
            .map_err(|causes| format!("{version} schema: {causes:?}"))?;
        let rules = schema_json
            .map(|s| Rules::compile(s, "openAPIV3Schema"))
            .transpose()
            .map_err(|causes| format!("{version} rules: {causes:?}"))?
            .filter(|rules| !rules.is_empty());
        let columns = crd
            .printer_columns(version)
            .into_iter()
            .map(|column| {
                let path = column.compile().ok();
                (column, path)
            })
            .collect();
        let storage = crd
            .storage_version()
            .filter(|stored| stored.name != version)
            .map(|stored| (crd.group.clone(), stored.name.clone(), names.plural.clone()));
        // kube's default: "<group>/<version> <Kind> is deprecated".
        let warning = served.deprecated.then(|| {
            served
                .deprecation_warning
                .clone()
                .unwrap_or_else(|| format!("{}/{version} {} is deprecated", crd.group, names.kind))
        });
        Ok(CustomResource {
            info,
            schema,
            schema_json: schema_json.map(|s| Arc::new(s.clone())),
            rules,
            columns,
            storage,
            scale,
            converter: None,
            warning,
            terminating: Arc::default(),
        })
    }

    /// The strategy converting through `converter` (a `Webhook` CRD's).
    pub fn with_converter(mut self, converter: Arc<dyn Converter>) -> CustomResource {
        self.converter = Some(converter);
        self
    }

    /// The strategy refusing creates once `terminating` is set.
    pub fn with_terminating(mut self, terminating: Arc<AtomicBool>) -> CustomResource {
        self.terminating = terminating;
        self
    }

    /// `object` in `version` of this resource's group: as it is when it is in that version
    /// already, else through the converter (its failure a 500), or with only its
    /// `apiVersion` rewritten when there is none.
    async fn convert(&self, object: Value, version: &str) -> Result<Value, ApiError> {
        let desired = format!("{}/{version}", self.info.group);
        if object.get("apiVersion").and_then(Value::as_str) == Some(desired.as_str()) {
            return Ok(object);
        }
        match &self.converter {
            None => Ok(self.with_api_version(object, version)),
            Some(converter) => converter
                .convert(object, desired)
                .await
                // kube answers an error of no API type as a 500 with its message as is.
                .map_err(|message| ApiError::new(500, Reason::InternalError, message)),
        }
    }

    fn with_api_version(&self, mut object: Value, version: &str) -> Value {
        if let Some(map) = object.as_object_mut() {
            let api_version = format!("{}/{version}", self.info.group);
            map.insert("apiVersion".to_string(), Value::String(api_version));
        }
        object
    }

    /// The schema's and the CEL rules' causes for `object` (with `old` on update).
    fn causes(&self, object: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = self
            .schema
            .as_ref()
            .map(|s| s.validate(object))
            .unwrap_or_default();
        if let Some(rules) = &self.rules {
            causes.extend(rules.validate(object, old));
        }
        causes
    }
}

impl Strategy for CustomResource {
    fn info(&self) -> ResourceInfo {
        self.info.clone()
    }

    /// Decoding a custom object is pruning what its schema does not specify; kube holds it as
    /// nested Go maps, which encode with their keys sorted (nulls kept).
    fn round_trip(&self, object: &Value) -> Result<Value, serde_json::Error> {
        let mut pruned = object.clone();
        if let Some(schema) = &self.schema {
            schema.prune(&mut pruned);
        }
        sort_keys(&mut pruned);
        Ok(pruned)
    }

    /// Free-form: canonicalized by the round trip itself.
    fn typed_form(&self) -> TypedForm {
        TypedForm::FreeForm
    }

    fn openapi_kind(&self, _generator: &mut SchemaGenerator) -> Option<Kind> {
        None
    }

    fn openapi_schema(&self) -> Option<Arc<Value>> {
        self.schema_json.clone()
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value, _context: &DefaultContext<'_>) {
        if let Some(schema) = &self.schema {
            schema.apply_defaults(object);
        }
    }

    fn validate(&self, object: &Value) -> Vec<Cause> {
        self.causes(object, None)
    }

    /// The rules that compare with `oldSelf`; the rest ran in [`Strategy::validate`].
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        self.rules
            .as_ref()
            .map(|rules| rules.validate_transitions(new, old))
            .unwrap_or_default()
    }

    fn table_columns(&self) -> Vec<Value> {
        let mut columns = vec![table::name_column()];
        columns.extend(self.columns.iter().map(|(column, _)| column.definition()));
        columns
    }

    fn table_cells(&self, object: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let name = object
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or_default();
        let mut cells = vec![name];
        cells.extend(self.columns.iter().map(|(column, path)| match path {
            Some(path) => column.cell_with(path, object, now),
            None => Value::Null,
        }));
        cells
    }

    /// Replicas and selector where the CRD's scale paths say; a missing value is 0 (kube's
    /// `scaleFromCustomResource`).
    fn scale(&self, object: &Value) -> ScaleView {
        let Some(paths) = &self.scale else {
            return crate::scale::builtin(object);
        };
        let int = |pointer: &str| object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
        ScaleView {
            replicas: int(&paths.spec_replicas),
            status_replicas: int(&paths.status_replicas),
            selector: paths
                .label_selector
                .as_deref()
                .and_then(|p| object.pointer(p))
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }

    /// Sets the value at the spec replicas path, creating the objects on the way.
    fn set_replicas(&self, object: &mut Value, replicas: i64) {
        let Some(paths) = &self.scale else {
            return crate::scale::set_builtin_replicas(object, replicas);
        };
        let mut at = object;
        for field in paths.spec_replicas.split('/').filter(|f| !f.is_empty()) {
            if !at.is_object() {
                *at = Value::Object(Default::default());
            }
            at = at
                .as_object_mut()
                .expect("made an object above")
                .entry(field.to_string())
                .or_insert(Value::Null);
        }
        *at = Value::from(replicas);
    }

    /// kube's custom resource store answers a DELETE with the object.
    fn delete_returns_object(&self) -> bool {
        true
    }

    fn storage_version(&self) -> Option<(&str, &str, &str)> {
        self.storage
            .as_ref()
            .map(|(g, v, r)| (g.as_str(), v.as_str(), r.as_str()))
    }

    fn to_storage(&self, object: Value) -> Value {
        match &self.storage {
            Some((_, version, _)) => self.with_api_version(object, version),
            None => object,
        }
    }

    fn to_served(&self, object: Value) -> Value {
        if self.storage.is_some() {
            self.with_api_version(object, &self.info.version)
        } else {
            object
        }
    }

    /// Through the webhook when there is one; what it returns is pruned and defaulted by
    /// this version's schema, as kube does after converting an object read from storage.
    fn convert_to_served(&self, object: Value) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let webhook = self.converter.is_some();
            let mut object = self.convert(object, &self.info.version).await?;
            if webhook && let Some(schema) = &self.schema {
                schema.prune(&mut object);
                schema.apply_defaults(&mut object);
                sort_keys(&mut object);
            }
            Ok(object)
        })
    }

    fn convert_to_storage(&self, object: Value) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            match &self.storage {
                Some((_, version, _)) => self.convert(object, version).await,
                None => Ok(object),
            }
        })
    }

    fn warning(&self) -> Option<String> {
        self.warning.clone()
    }

    fn refuse_create(&self) -> Option<ApiError> {
        self.terminating.load(Ordering::Acquire).then(|| {
            ApiError::method_not_supported(
                &self.info.group,
                &self.info.resource,
                "create not allowed while custom resource definition is terminating",
            )
        })
    }
}

/// Sorts the keys of every object in `value`, as Go encodes a map.
fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A CRD of two versions (v1 stored), with status, scale and a printer column.
    fn widgets() -> Crd {
        let schema = json!({"openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "size": {"type": "integer", "minimum": 1, "default": 3},
                    "color": {"type": "string", "enum": ["red", "blue"]},
                },
                "x-kubernetes-validations": [{"rule": "self.size <= 10", "message": "too big"}]},
                "status": {"type": "object", "properties": {
                    "count": {"type": "integer"}, "selector": {"type": "string"}}},
            },
        }});
        let version = |name: &str, storage: bool| {
            json!({"name": name, "served": true, "storage": storage, "schema": schema,
                   "subresources": {"status": {}, "scale": {
                       "specReplicasPath": ".spec.size",
                       "statusReplicasPath": ".status.count",
                       "labelSelectorPath": ".status.selector"}},
                   "additionalPrinterColumns": [
                       {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]})
        };
        Crd::parse(&json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                               "shortNames": ["wd"], "categories": ["all"]},
                     "versions": [version("v1", true), version("v2", false)]},
        }))
        .expect("a valid CRD")
    }

    #[test]
    fn identity_and_storage_come_from_the_crd() {
        let v2 = CustomResource::new(&widgets(), "v2").unwrap();
        let info = v2.info();
        assert_eq!(
            (
                info.group.as_str(),
                info.version.as_str(),
                info.resource.as_str()
            ),
            ("example.com", "v2", "widgets")
        );
        assert_eq!(info.kind, "Widget");
        assert!(info.namespaced && info.status_subresource && info.scale_subresource);
        assert_eq!(info.short_names, vec!["wd"]);
        assert_eq!(
            info.storage_prefix("/registry"),
            "/registry/example.com/widgets/"
        );
        assert_eq!(v2.storage_version(), Some(("example.com", "v1", "widgets")));
        let stored = v2.to_storage(json!({"apiVersion": "example.com/v2", "kind": "Widget"}));
        assert_eq!(stored["apiVersion"], "example.com/v1");
        assert_eq!(v2.to_served(stored)["apiVersion"], "example.com/v2");
        let v1 = CustomResource::new(&widgets(), "v1").unwrap();
        assert_eq!(v1.storage_version(), None);
        assert!(CustomResource::new(&widgets(), "v3").is_err());
    }

    #[test]
    fn the_schema_prunes_defaults_and_validates() {
        let v1 = CustomResource::new(&widgets(), "v1").unwrap();
        let submitted = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "a"}, "spec": {"color": "red", "extra": 1}, "zzz": true});
        let decoded = v1.round_trip(&submitted).unwrap();
        assert_eq!(
            decoded,
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
                   "metadata": {"name": "a"}, "spec": {"color": "red"}})
        );
        let keys: Vec<&String> = decoded.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["apiVersion", "kind", "metadata", "spec"],
            "sorted, as Go maps"
        );
        let mut defaulted = decoded.clone();
        let context = DefaultContext {
            create: true,
            old: None,
            ip_family: "IPv4",
        };
        v1.default(&mut defaulted, &context);
        assert_eq!(defaulted["spec"]["size"], 3);
        assert!(v1.validate(&defaulted).is_empty());
        let bad = json!({"spec": {"size": 11, "color": "green"}});
        let messages: Vec<String> = v1
            .validate(&bad)
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(
            messages
                .iter()
                .any(|m| m.starts_with("spec.color: Unsupported value: \"green\"")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m == "spec: Invalid value: too big"),
            "{messages:?}"
        );
    }

    #[test]
    fn scale_and_table_follow_the_crd() {
        let v1 = CustomResource::new(&widgets(), "v1").unwrap();
        let mut object = json!({"metadata": {"name": "a"},
            "spec": {"size": 4}, "status": {"count": 2, "selector": "app=a"}});
        let view = v1.scale(&object);
        assert_eq!(
            view,
            ScaleView {
                replicas: 4,
                status_replicas: 2,
                selector: Some("app=a".to_string())
            }
        );
        v1.set_replicas(&mut object, 7);
        assert_eq!(object["spec"]["size"], 7);
        let mut empty = json!({});
        v1.set_replicas(&mut empty, 1);
        assert_eq!(empty, json!({"spec": {"size": 1}}));
        assert_eq!(
            v1.scale(&json!({})).replicas,
            0,
            "kube: a missing value is 0"
        );
        let columns = v1.table_columns();
        let names: Vec<&str> = columns
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Size"]);
        assert_eq!(
            v1.table_cells(&object, Utc::now()),
            vec![json!("a"), json!(7)]
        );
    }
}
