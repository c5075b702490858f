//! The CustomResourceDefinition object itself (`apiextensions.k8s.io/v1`): a typed model read
//! from JSON, the defaults and preparation kube applies before validating one, its validation
//! ([`validation`]), the names controller's verdict ([`names`]) and the table cells of its
//! printer columns ([`printer`]).
//!
//! The model is the v1 object as kube decodes it: defaults applied (`singular`, `listKind`,
//! `conversion.strategy`, `status.storedVersions`), the schema kept as raw JSON for the
//! schema module.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use kubecache_core::status::Cause;
use serde_json::{Map, Value, json};

pub mod conversion;
pub mod names;
pub mod printer;
pub mod validation;

#[cfg(test)]
mod tests;

pub use names::{NamesStatus, accept_names, reconcile_status};
pub use printer::{PrinterColumn, human_duration};
pub use validation::{validate_create, validate_status_update, validate_update};

/// `metadata.annotations` key that lets a CRD use a protected group (`*.k8s.io`,
/// `*.kubernetes.io`).
pub const API_APPROVED_ANNOTATION: &str = "api-approved.kubernetes.io";

/// A decoded CustomResourceDefinition.
#[derive(Debug, Clone, PartialEq)]
pub struct Crd {
    /// `metadata.name`, which must be `<plural>.<group>`.
    pub name: String,
    /// `metadata.annotations`: only the API approval annotation matters here.
    pub annotations: BTreeMap<String, String>,
    pub group: String,
    pub names: Names,
    /// `Namespaced` or `Cluster` once valid; kept raw so validation can report other values.
    pub scope: String,
    pub versions: Vec<Version>,
    pub conversion: Conversion,
    /// Deprecated v1 field; only `false` may be set on new CRDs.
    pub preserve_unknown_fields: bool,
    pub status: Status,
}

/// `spec.names` and `status.acceptedNames`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
}

/// One entry of `spec.versions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Version {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    pub deprecated: bool,
    pub deprecation_warning: Option<String>,
    /// The `schema` object (`{"openAPIV3Schema": …}`), as sent.
    pub schema: Option<Value>,
    pub subresources: Option<Subresources>,
    pub additional_printer_columns: Vec<PrinterColumn>,
    pub selectable_fields: Vec<SelectableField>,
}

impl Version {
    /// `schema.openAPIV3Schema`, the schema the schema module checks and applies.
    pub fn open_api_v3_schema(&self) -> Option<&Value> {
        self.schema.as_ref()?.get("openAPIV3Schema")
    }
}

/// `subresources`: which of `/status` and `/scale` the version serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subresources {
    /// `subresources.status` is present (it is an empty object).
    pub status: bool,
    pub scale: Option<Scale>,
}

/// `subresources.scale`: where the replica counts and selector live in a custom object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scale {
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
    pub label_selector_path: Option<String>,
}

/// `selectableFields[*]`: a field a field selector may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectableField {
    pub json_path: String,
}

/// `spec.conversion`, defaulted to the `None` strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// `None` or `Webhook` once valid.
    pub strategy: String,
    pub webhook: Option<WebhookConversion>,
}

impl Default for Conversion {
    fn default() -> Self {
        Conversion {
            strategy: "None".to_string(),
            webhook: None,
        }
    }
}

/// `spec.conversion.webhook`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookConversion {
    pub client_config: Option<WebhookClientConfig>,
    pub conversion_review_versions: Vec<String>,
}

/// `spec.conversion.webhook.clientConfig`: exactly one of a URL or a service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookClientConfig {
    pub url: Option<String>,
    pub service: Option<ServiceReference>,
    /// Base64 of PEM CA certificates, as sent.
    pub ca_bundle: Option<String>,
}

/// `clientConfig.service`; the port defaults to 443.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceReference {
    pub namespace: String,
    pub name: String,
    pub path: Option<String>,
    pub port: i64,
}

/// `status`, written by the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub conditions: Vec<Condition>,
    pub accepted_names: Names,
    pub stored_versions: Vec<String>,
}

/// One of `status.conditions` (`NamesAccepted`, `Established`, `Terminating`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: Option<String>,
}

impl Crd {
    /// Reads a v1 CustomResourceDefinition and applies kube's decoding defaults. Fields of the
    /// wrong JSON type are reported as causes (kube rejects such a body before validating it).
    pub fn parse(object: &Value) -> Result<Crd, Vec<Cause>> {
        let mut reader = Reader::default();
        let crd = reader.crd(object);
        if reader.errors.is_empty() {
            Ok(crd)
        } else {
            Err(reader.errors)
        }
    }

    pub fn is_namespaced(&self) -> bool {
        self.scope == "Namespaced"
    }

    pub fn version(&self, name: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.name == name)
    }

    /// The one version marked `storage` (the first, should a broken CRD mark several).
    pub fn storage_version(&self) -> Option<&Version> {
        self.versions.iter().find(|v| v.storage)
    }

    /// Served versions, most preferred first, as discovery lists them (GA before beta before
    /// alpha, higher numbers first, versions that are not kube-like last and alphabetical).
    pub fn served_versions(&self) -> Vec<&Version> {
        let mut served: Vec<&Version> = self.versions.iter().filter(|v| v.served).collect();
        served.sort_by(|a, b| compare_kube_aware_versions(&b.name, &a.name));
        served
    }

    /// The version discovery names as preferred.
    pub fn preferred_version(&self) -> Option<&Version> {
        self.served_versions().into_iter().next()
    }

    pub fn subresources(&self, version: &str) -> Option<&Subresources> {
        self.version(version)?.subresources.as_ref()
    }

    pub fn has_status_subresource(&self, version: &str) -> bool {
        self.subresources(version).is_some_and(|s| s.status)
    }

    /// The scale subresource's paths (`.spec.replicas`, `.status.replicas`, selector).
    pub fn scale(&self, version: &str) -> Option<&Scale> {
        self.subresources(version)?.scale.as_ref()
    }

    /// The printer columns a Table of this version shows after `Name`: the CRD's
    /// `additionalPrinterColumns`, or kube's single `Age` column when it declares none.
    pub fn printer_columns(&self, version: &str) -> Vec<PrinterColumn> {
        let declared = self
            .version(version)
            .map(|v| v.additional_printer_columns.clone())
            .unwrap_or_default();
        if declared.is_empty() {
            vec![PrinterColumn::age()]
        } else {
            declared
        }
    }

    /// The columns of a Table of `/scale` objects: desired and actual replicas when the version
    /// has a scale subresource, then `Age`.
    pub fn scale_printer_columns(&self, version: &str) -> Vec<PrinterColumn> {
        let mut columns = Vec::new();
        if let Some(scale) = self.scale(version) {
            if !scale.spec_replicas_path.is_empty() {
                columns.push(PrinterColumn::new(
                    "Desired",
                    "integer",
                    ".spec.replicas",
                    "Number of desired replicas",
                ));
            }
            if !scale.status_replicas_path.is_empty() {
                columns.push(PrinterColumn::new(
                    "Available",
                    "integer",
                    ".status.replicas",
                    "Number of actual replicas",
                ));
            }
        }
        columns.push(PrinterColumn::age());
        columns
    }

    pub fn condition(&self, condition_type: &str) -> Option<&Condition> {
        self.status
            .conditions
            .iter()
            .find(|c| c.condition_type == condition_type)
    }

    /// The condition is present with status `True`.
    pub fn is_condition_true(&self, condition_type: &str) -> bool {
        self.condition(condition_type)
            .is_some_and(|c| c.status == "True")
    }

    /// Custom objects are served only once the CRD is established.
    pub fn is_established(&self) -> bool {
        self.is_condition_true("Established")
    }
}

/// kube's `version.CompareKubeAwareVersionStrings`: `Greater` when `a` has the higher priority
/// (`v2` > `v1` > `v1beta2` > `v1beta1` > `v1alpha1` > non-kube versions, the latter in reverse
/// alphabetical order).
pub fn compare_kube_aware_versions(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    match (parse_kube_version(a), parse_kube_version(b)) {
        (None, None) => b.cmp(a),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => a.cmp(&b),
    }
}

/// `(stability, major, minor)` of `v<major>[(alpha|beta)<minor>]`; stability 0 alpha, 1 beta,
/// 2 GA, so tuples order by priority.
fn parse_kube_version(version: &str) -> Option<(u8, u64, u64)> {
    let rest = version.strip_prefix('v')?;
    let major_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if major_len == 0 {
        return None;
    }
    let major = rest[..major_len].parse().ok()?;
    let tail = &rest[major_len..];
    if tail.is_empty() {
        return Some((2, major, 0));
    }
    let (stability, minor) = if let Some(minor) = tail.strip_prefix("alpha") {
        (0, minor)
    } else {
        (1, tail.strip_prefix("beta")?)
    };
    if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stability, major, minor.parse().ok()?))
}

// ---- what kube does to the object before validating it ----

/// kube's v1 decoding defaults, written into the object: `names.singular` (lowercase kind),
/// `names.listKind` (`<Kind>List`), `conversion.strategy: None`, the webhook service port
/// 443, and `status.storedVersions` (the storage version) when empty.
pub fn apply_defaults(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if names
            .get("singular")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if names
            .get("listKind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
            && !kind.is_empty()
        {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    match spec.get_mut("conversion") {
        Some(Value::Object(conversion)) => {
            if let Some(service) = conversion
                .get_mut("webhook")
                .and_then(|w| w.get_mut("clientConfig"))
                .and_then(|c| c.get_mut("service"))
                .and_then(Value::as_object_mut)
            {
                service.entry("port").or_insert(json!(443));
            }
        }
        _ => {
            spec.insert("conversion".into(), json!({"strategy": "None"}));
        }
    }
    let storage = storage_version_name(object);
    let status = status_mut(object);
    let empty = status
        .get("storedVersions")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if empty && let Some(storage) = storage {
        status.insert("storedVersions".into(), json!([storage]));
    }
}

/// The finalizer a CRD carries while its objects are deleted (kube's
/// `CustomResourceCleanupFinalizer`).
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// What kube's CRD storage does on the first DELETE of a CRD: adds [`CLEANUP_FINALIZER`] and
/// sets the `Terminating` condition; the CRD is removed once the finalizer is.
pub fn mark_deleting(object: &mut Value, now: &str) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
        if let Some(list) = finalizers.as_array_mut()
            && !list.iter().any(|f| f == CLEANUP_FINALIZER)
        {
            list.push(json!(CLEANUP_FINALIZER));
        }
    }
    let status = object
        .as_object_mut()
        .map(|o| o.entry("status").or_insert_with(|| json!({})));
    if let Some(status) = status {
        names::set_condition(
            status,
            &Condition {
                condition_type: "Terminating".to_string(),
                status: "True".to_string(),
                reason: "InstanceDeletionInProgress".to_string(),
                message: "CustomResource deletion is in progress".to_string(),
                last_transition_time: None,
            },
            now,
        );
    }
}

/// kube's `PrepareForCreate`: the status is the server's (cleared, then the storage version
/// recorded in `storedVersions`) and `metadata.generation` starts at 1. Run after
/// [`apply_defaults`] and before [`validate_create`].
pub fn prepare_for_create(object: &mut Value) {
    if let Some(obj) = object.as_object_mut() {
        obj.insert("status".into(), json!({}));
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("generation".into(), json!(1));
    }
    record_storage_version(object);
}

/// kube's `PrepareForUpdate`: the status stays the old object's (plus the new storage version
/// in `storedVersions`), and `metadata.generation` goes up when the spec changed. Run after
/// [`apply_defaults`] and before [`validate_update`].
pub fn prepare_for_update(object: &mut Value, old: &Value) {
    let old_status = old.get("status").cloned().unwrap_or_else(|| json!({}));
    if let Some(obj) = object.as_object_mut() {
        obj.insert("status".into(), old_status);
    }
    let old_generation = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let generation = if object.get("spec") != old.get("spec") {
        old_generation + 1
    } else {
        old_generation
    };
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("generation".into(), json!(generation));
    }
    record_storage_version(object);
}

/// kube's status-update `PrepareForUpdate`: a `/status` write cannot change the spec.
pub fn prepare_for_status_update(object: &mut Value, old: &Value) {
    if let (Some(obj), Some(spec)) = (object.as_object_mut(), old.get("spec")) {
        obj.insert("spec".into(), spec.clone());
    }
}

fn storage_version_name(object: &Value) -> Option<String> {
    object
        .pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name")?.as_str().map(str::to_string))
}

fn status_mut(object: &mut Value) -> &mut Map<String, Value> {
    let obj = object.as_object_mut().expect("a CRD is a JSON object");
    let status = obj.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    status.as_object_mut().expect("just made an object")
}

/// Appends the storage version to `status.storedVersions` when it is not there yet.
fn record_storage_version(object: &mut Value) {
    let Some(storage) = storage_version_name(object) else {
        return;
    };
    if !object.is_object() {
        return;
    }
    let status = status_mut(object);
    let stored = status.entry("storedVersions").or_insert_with(|| json!([]));
    if !stored.is_array() {
        *stored = json!([]);
    }
    let list = stored.as_array_mut().expect("just made an array");
    if !list.iter().any(|v| v.as_str() == Some(storage.as_str())) {
        list.push(json!(storage));
    }
}

// ---- reading JSON into the model ----

/// Reads fields, recording a cause for each of the wrong JSON type.
#[derive(Default)]
struct Reader {
    errors: Vec<Cause>,
}

impl Reader {
    fn wrong_type(&mut self, path: &str, value: &Value, expected: &str) {
        self.errors.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: {}: expected {expected}",
                kubecache_core::field::render(value)
            ),
        ));
    }

    /// The field, or `None` when absent or null.
    fn field<'v>(object: &'v Value, key: &str) -> Option<&'v Value> {
        object.get(key).filter(|v| !v.is_null())
    }

    fn opt_string(&mut self, object: &Value, key: &str, path: &str) -> Option<String> {
        let value = Self::field(object, key)?;
        match value.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.wrong_type(&join(path, key), value, "string");
                None
            }
        }
    }

    fn string(&mut self, object: &Value, key: &str, path: &str) -> String {
        self.opt_string(object, key, path).unwrap_or_default()
    }

    fn boolean(&mut self, object: &Value, key: &str, path: &str) -> bool {
        let Some(value) = Self::field(object, key) else {
            return false;
        };
        value.as_bool().unwrap_or_else(|| {
            self.wrong_type(&join(path, key), value, "boolean");
            false
        })
    }

    fn integer(&mut self, object: &Value, key: &str, path: &str) -> Option<i64> {
        let value = Self::field(object, key)?;
        let int = value.as_i64();
        if int.is_none() {
            self.wrong_type(&join(path, key), value, "integer");
        }
        int
    }

    fn object<'v>(&mut self, object: &'v Value, key: &str, path: &str) -> Option<&'v Value> {
        let value = Self::field(object, key)?;
        if value.is_object() {
            Some(value)
        } else {
            self.wrong_type(&join(path, key), value, "object");
            None
        }
    }

    fn array<'v>(&mut self, object: &'v Value, key: &str, path: &str) -> &'v [Value] {
        let Some(value) = Self::field(object, key) else {
            return &[];
        };
        match value.as_array() {
            Some(items) => items,
            None => {
                self.wrong_type(&join(path, key), value, "array");
                &[]
            }
        }
    }

    fn strings(&mut self, object: &Value, key: &str, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self.array(object, key, path).iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_string()),
                None => self.wrong_type(&format!("{}[{i}]", join(path, key)), item, "string"),
            }
        }
        out
    }

    fn crd(&mut self, object: &Value) -> Crd {
        let empty = json!({});
        let metadata = self.object(object, "metadata", "").unwrap_or(&empty);
        let spec = self.object(object, "spec", "").unwrap_or(&empty);
        let status = self.object(object, "status", "").unwrap_or(&empty);

        let mut annotations = BTreeMap::new();
        if let Some(map) = self
            .object(metadata, "annotations", "metadata")
            .and_then(Value::as_object)
        {
            for (key, value) in map {
                annotations.insert(key.clone(), value.as_str().unwrap_or("").to_string());
            }
        }

        let names_value = self.object(spec, "names", "spec").unwrap_or(&empty);
        let mut names = self.names(names_value, "spec.names");
        if names.singular.is_empty() {
            names.singular = names.kind.to_lowercase();
        }
        if names.list_kind.is_empty() && !names.kind.is_empty() {
            names.list_kind = format!("{}List", names.kind);
        }

        let versions = self
            .array(spec, "versions", "spec")
            .iter()
            .enumerate()
            .map(|(i, v)| self.version(v, &format!("spec.versions[{i}]")))
            .collect::<Vec<_>>();

        let conversion = match self.object(spec, "conversion", "spec") {
            Some(conversion) => self.conversion(conversion),
            None => Conversion::default(),
        };

        let accepted = self
            .object(status, "acceptedNames", "status")
            .unwrap_or(&empty);
        let mut stored_versions = self.strings(status, "storedVersions", "status");
        if stored_versions.is_empty()
            && let Some(storage) = versions.iter().find(|v| v.storage)
        {
            stored_versions.push(storage.name.clone());
        }
        let conditions = self
            .array(status, "conditions", "status")
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let path = format!("status.conditions[{i}]");
                Condition {
                    condition_type: self.string(c, "type", &path),
                    status: self.string(c, "status", &path),
                    reason: self.string(c, "reason", &path),
                    message: self.string(c, "message", &path),
                    last_transition_time: self.opt_string(c, "lastTransitionTime", &path),
                }
            })
            .collect();

        Crd {
            name: self.string(metadata, "name", "metadata"),
            annotations,
            group: self.string(spec, "group", "spec"),
            names,
            scope: self.string(spec, "scope", "spec"),
            versions,
            conversion,
            preserve_unknown_fields: self.boolean(spec, "preserveUnknownFields", "spec"),
            status: Status {
                conditions,
                accepted_names: self.names(accepted, "status.acceptedNames"),
                stored_versions,
            },
        }
    }

    fn names(&mut self, value: &Value, path: &str) -> Names {
        Names {
            plural: self.string(value, "plural", path),
            singular: self.string(value, "singular", path),
            kind: self.string(value, "kind", path),
            list_kind: self.string(value, "listKind", path),
            short_names: self.strings(value, "shortNames", path),
            categories: self.strings(value, "categories", path),
        }
    }

    fn version(&mut self, value: &Value, path: &str) -> Version {
        let subresources = self
            .object(value, "subresources", path)
            .map(|s| self.subresources(s, &join(path, "subresources")));
        let columns_path = join(path, "additionalPrinterColumns");
        let additional_printer_columns = self
            .array(value, "additionalPrinterColumns", path)
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let path = format!("{columns_path}[{i}]");
                PrinterColumn {
                    name: self.string(c, "name", &path),
                    column_type: self.string(c, "type", &path),
                    format: self.string(c, "format", &path),
                    description: self.string(c, "description", &path),
                    priority: self.integer(c, "priority", &path).unwrap_or(0),
                    json_path: self.string(c, "jsonPath", &path),
                }
            })
            .collect();
        let fields_path = join(path, "selectableFields");
        let selectable_fields = self
            .array(value, "selectableFields", path)
            .iter()
            .enumerate()
            .map(|(i, f)| SelectableField {
                json_path: self.string(f, "jsonPath", &format!("{fields_path}[{i}]")),
            })
            .collect();
        Version {
            name: self.string(value, "name", path),
            served: self.boolean(value, "served", path),
            storage: self.boolean(value, "storage", path),
            deprecated: self.boolean(value, "deprecated", path),
            deprecation_warning: self.opt_string(value, "deprecationWarning", path),
            schema: self.object(value, "schema", path).cloned(),
            subresources,
            additional_printer_columns,
            selectable_fields,
        }
    }

    fn subresources(&mut self, value: &Value, path: &str) -> Subresources {
        let status = self.object(value, "status", path).is_some();
        let scale = self.object(value, "scale", path).map(|scale| {
            let path = join(path, "scale");
            Scale {
                spec_replicas_path: self.string(scale, "specReplicasPath", &path),
                status_replicas_path: self.string(scale, "statusReplicasPath", &path),
                label_selector_path: self.opt_string(scale, "labelSelectorPath", &path),
            }
        });
        Subresources { status, scale }
    }

    fn conversion(&mut self, value: &Value) -> Conversion {
        let path = "spec.conversion";
        let webhook = self.object(value, "webhook", path).map(|webhook| {
            let path = "spec.conversion.webhook";
            let client_config = self.object(webhook, "clientConfig", path).map(|config| {
                let path = "spec.conversion.webhook.clientConfig";
                let service = self.object(config, "service", path).map(|service| {
                    let path = "spec.conversion.webhook.clientConfig.service";
                    ServiceReference {
                        namespace: self.string(service, "namespace", path),
                        name: self.string(service, "name", path),
                        path: self.opt_string(service, "path", path),
                        port: self.integer(service, "port", path).unwrap_or(443),
                    }
                });
                WebhookClientConfig {
                    url: self.opt_string(config, "url", path),
                    service,
                    ca_bundle: self.opt_string(config, "caBundle", path),
                }
            });
            WebhookConversion {
                client_config,
                conversion_review_versions: self.strings(webhook, "conversionReviewVersions", path),
            }
        });
        Conversion {
            strategy: self.string(value, "strategy", path),
            webhook,
        }
    }
}

/// `parent.child`, or `child` at the root.
fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}
