//! The strategy of a custom resource: one per served version of an established
//! CustomResourceDefinition, built from the CRD when the server learns it (the CRD controller
//! in the server registers them). What a built-in strategy knows from Rust types, this one
//! reads from the CRD: identity from `spec.names`, decoding as pruning by the version's
//! structural schema, defaults and validation from the same schema plus its CEL rules, the
//! Table from `additionalPrinterColumns`, and the storage version (conversion `None`: only
//! `apiVersion` changes between versions, as kube's nop converter does).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kubecache_apiextensions::cel::Rules;
use kubecache_apiextensions::crd::{Crd, PrinterColumn};
use kubecache_apiextensions::jsonpath::JsonPath;
use kubecache_apiextensions::schema::Schema;
use kubecache_core::registry::{CLUSTER, NAMESPACED, ResourceInfo};
use kubecache_core::status::Cause;
use serde_json::Value;

use super::{DefaultContext, Strategy, TypedForm};
use crate::openapi::schemas::Kind;
use crate::table;
use k8s_openapi::schemars::SchemaGenerator;

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
        .stored_at(&format!("{}/{}", crd.group, names.plural));
        if crd.has_status_subresource(version) {
            info = info.status();
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
        Ok(CustomResource {
            info,
            schema,
            schema_json: schema_json.map(|s| Arc::new(s.clone())),
            rules,
            columns,
            storage,
        })
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
        let Some(rules) = &self.rules else {
            return Vec::new();
        };
        let without_old = rules.validate(new, None);
        rules
            .validate(new, Some(old))
            .into_iter()
            .filter(|cause| !without_old.contains(cause))
            .collect()
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
