//! Validation of a CustomResourceDefinition on create and update, as kube's
//! `ValidateCustomResourceDefinition` and `ValidateCustomResourceDefinitionUpdate` do it.
//!
//! kube validates its internal form of the CRD, into which a v1 object is converted by
//! hoisting: when every version has the same schema (or subresources, printer columns,
//! selectable fields), that value moves to a top-level field and is validated once there. So a
//! single-version CRD's column errors read `spec.additionalPrinterColumns[0].JSONPath` and its
//! schema errors `spec.validation.openAPIV3Schema…`; this module reproduces those paths.
//!
//! Generic `metadata` checks (name syntax, labels, annotations) are the server's; the only
//! metadata rules here are CRD-specific: the name is `<plural>.<group>`, and protected groups
//! need the API approval annotation. The schema's own rules belong to the schema module and
//! plug in at [`schema_causes`].

use std::collections::HashSet;

use base64::Engine;
use kubecache_core::field::{
    duplicate, forbidden, invalid, not_supported, required, required_because,
};
use kubecache_core::status::Cause;
use kubecache_core::validation::{is_dns1035_label, is_dns1123_subdomain, is_valid_port_num};
use serde_json::{Value, json};

use super::{
    API_APPROVED_ANNOTATION, Crd, Names, PrinterColumn, SelectableField, Subresources, Version,
    WebhookClientConfig,
};

const MAX_SELECTABLE_FIELDS: usize = 8;
const PRINTER_COLUMN_TYPES: &str = "boolean,date,integer,number,string";
const PRINTER_COLUMN_FORMATS: &str = "byte,date,date-time,double,float,int32,int64,password";
const ACCEPTED_CONVERSION_REVIEW_VERSIONS: [&str; 2] = ["v1", "v1beta1"];

/// Everything the schema module needs to check one CRD schema.
#[derive(Debug, Clone, Copy)]
pub struct SchemaCheck<'a> {
    /// The `schema` object, `{"openAPIV3Schema": {...}}`.
    pub validation: &'a Value,
    /// Where it is reported: `spec.versions[1].schema`, or `spec.validation` when every version
    /// shares it (kube's hoisting); the schema itself is `<path>.openAPIV3Schema`.
    pub path: &'a str,
    /// The version (any version, for a shared schema) serves `/status`: kube then allows only
    /// some keywords at the schema's root and requires `type: object` there.
    pub status_subresource_enabled: bool,
    /// The CRD before this update, whose schema kube uses to ratchet rules that tightened
    /// over time; `None` on create.
    pub old: Option<&'a Crd>,
}

/// A CRD schema's own rules (kube's `validateCustomResourceDefinitionValidation`): the
/// structural rules, defaults that validate and survive pruning ([`crate::schema::structural`]),
/// and CEL rules that compile within their cost budget ([`crate::cel`]). The root rules for the
/// status subresource and ratcheting against the old CRD are not checked yet (docs/CEL.md,
/// docs/COMPATIBILITY.md).
fn schema_causes(check: &SchemaCheck<'_>) -> Vec<Cause> {
    let Some(schema) = check.validation.get("openAPIV3Schema") else {
        return Vec::new();
    };
    let path = format!("{}.openAPIV3Schema", check.path);
    let mut causes = crate::schema::structural::check(schema, &path);
    if causes.is_empty()
        && let Err(cel) = crate::cel::Rules::compile(schema, &path)
    {
        causes.extend(cel);
    }
    causes
}

/// The causes kube gives for creating `object`, which must already carry kube's defaults and
/// create-time status ([`super::apply_defaults`], [`super::prepare_for_create`]).
pub fn validate_create(object: &Value) -> Vec<Cause> {
    let crd = match Crd::parse(object) {
        Ok(crd) => crd,
        Err(causes) => return causes,
    };
    let options = Options {
        require_recognized_conversion_review_version: true,
        require_immutable_names: false,
        require_open_api_schema: true,
        // Not established yet: a broken CA bundle only keeps it from being established.
        allow_invalid_ca_bundle: true,
        too_many_selectable_fields_allowed: HashSet::new(),
    };
    let mut causes = Vec::new();
    let plural_group = format!("{}.{}", crd.names.plural, crd.group);
    if !crd.name.is_empty() && crd.name != plural_group {
        causes.push(invalid(
            "metadata.name",
            &json!(crd.name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    causes.extend(validate_object(object, &crd, None, &options));
    causes
}

/// The causes kube gives for replacing `old` with `object` (prepared by
/// [`super::prepare_for_update`]). Rules that tightened over time are relaxed when the old
/// object already broke them, as kube does.
pub fn validate_update(object: &Value, old: &Value) -> Vec<Cause> {
    let crd = match Crd::parse(object) {
        Ok(crd) => crd,
        Err(causes) => return causes,
    };
    let Ok(old_crd) = Crd::parse(old) else {
        return validate_create(object);
    };
    let old_review_versions = old_crd
        .conversion
        .webhook
        .as_ref()
        .map(|w| w.conversion_review_versions.as_slice())
        .unwrap_or_default();
    let options = Options {
        require_recognized_conversion_review_version: old_review_versions.is_empty()
            || old_review_versions
                .iter()
                .any(|v| ACCEPTED_CONVERSION_REVIEW_VERSIONS.contains(&v.as_str())),
        require_immutable_names: old_crd.is_established(),
        require_open_api_schema: all_versions_have_schema(&old_crd),
        allow_invalid_ca_bundle: allow_invalid_ca_bundle(&old_crd),
        too_many_selectable_fields_allowed: too_many_selectable_fields_allowed(&crd, &old_crd),
    };
    validate_object(object, &crd, Some(&old_crd), &options)
}

/// The causes kube gives for a `/status` write: only the accepted names are checked.
pub fn validate_status_update(object: &Value, _old: &Value) -> Vec<Cause> {
    match Crd::parse(object) {
        Ok(crd) => validate_names(&crd.status.accepted_names, "status.acceptedNames"),
        Err(causes) => causes,
    }
}

/// What differs between create and update (kube's `validationOptions`, the parts that are
/// not about schemas).
struct Options {
    require_recognized_conversion_review_version: bool,
    /// Once established, scope and kind are part of stored data.
    require_immutable_names: bool,
    require_open_api_schema: bool,
    allow_invalid_ca_bundle: bool,
    /// Versions (`""` for the hoisted list) that kept more than the maximum of selectable
    /// fields unchanged.
    too_many_selectable_fields_allowed: HashSet<String>,
}

/// The per-version fields kube moves to the top level when all versions agree on them.
struct Hoisted<'a> {
    validation: Option<&'a Value>,
    subresources: Option<&'a Subresources>,
    columns: &'a [PrinterColumn],
    selectable_fields: &'a [SelectableField],
    schema_hoisted: bool,
    subresources_hoisted: bool,
    columns_hoisted: bool,
    selectable_fields_hoisted: bool,
}

impl<'a> Hoisted<'a> {
    fn of(versions: &'a [Version]) -> Hoisted<'a> {
        let Some(first) = versions.first() else {
            return Hoisted {
                validation: None,
                subresources: None,
                columns: &[],
                selectable_fields: &[],
                schema_hoisted: false,
                subresources_hoisted: false,
                columns_hoisted: false,
                selectable_fields_hoisted: false,
            };
        };
        let all = |same: &dyn Fn(&Version) -> bool| versions.iter().all(same);
        Hoisted {
            validation: first.schema.as_ref(),
            subresources: first.subresources.as_ref(),
            columns: &first.additional_printer_columns,
            selectable_fields: &first.selectable_fields,
            schema_hoisted: all(&|v| v.schema == first.schema),
            subresources_hoisted: all(&|v| v.subresources == first.subresources),
            columns_hoisted: all(&|v| {
                v.additional_printer_columns == first.additional_printer_columns
            }),
            selectable_fields_hoisted: all(&|v| v.selectable_fields == first.selectable_fields),
        }
    }

    fn top_validation(&self) -> Option<&'a Value> {
        self.validation.filter(|_| self.schema_hoisted)
    }

    fn top_subresources(&self) -> Option<&'a Subresources> {
        self.subresources.filter(|_| self.subresources_hoisted)
    }

    fn version_schema(&self, version: &'a Version) -> Option<&'a Value> {
        version.schema.as_ref().filter(|_| !self.schema_hoisted)
    }

    fn version_subresources(&self, version: &'a Version) -> Option<&'a Subresources> {
        version
            .subresources
            .as_ref()
            .filter(|_| !self.subresources_hoisted)
    }

    /// The subresources that apply to a version, wherever they live.
    fn subresources_for(&self, version: &'a Version) -> Option<&'a Subresources> {
        if self.subresources_hoisted {
            self.top_subresources()
        } else {
            version.subresources.as_ref()
        }
    }
}

fn validate_object(object: &Value, crd: &Crd, old: Option<&Crd>, options: &Options) -> Vec<Cause> {
    let mut causes = validate_spec(object, crd, old, options);
    if let Some(old) = old {
        if options.require_immutable_names {
            causes.extend(immutable("spec.scope", &crd.scope, &old.scope));
            causes.extend(immutable(
                "spec.names.kind",
                &crd.names.kind,
                &old.names.kind,
            ));
        }
        causes.extend(immutable("spec.group", &crd.group, &old.group));
        causes.extend(immutable(
            "spec.names.plural",
            &crd.names.plural,
            &old.names.plural,
        ));
    }
    causes.extend(validate_names(
        &crd.status.accepted_names,
        "status.acceptedNames",
    ));
    causes.extend(validate_stored_versions(crd));
    causes.extend(validate_api_approval(crd, old));
    let old_preserved = old.is_some_and(|old| old.preserve_unknown_fields);
    if !old_preserved && crd.preserve_unknown_fields {
        causes.push(invalid(
            "spec.preserveUnknownFields",
            &json!(true),
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    causes
}

fn validate_spec(object: &Value, crd: &Crd, old: Option<&Crd>, options: &Options) -> Vec<Cause> {
    let mut causes = Vec::new();
    let hoisted = Hoisted::of(&crd.versions);

    if crd.group.is_empty() {
        causes.push(required("spec.group"));
    } else {
        let problems = is_dns1123_subdomain(&crd.group);
        if !problems.is_empty() {
            causes.push(invalid(
                "spec.group",
                &json!(crd.group),
                &problems.join(","),
            ));
        } else if !crd.group.contains('.') {
            causes.push(invalid(
                "spec.group",
                &json!(crd.group),
                "should be a domain with at least one dot",
            ));
        }
    }

    causes.extend(enum_string(
        "spec.scope",
        &crd.scope,
        &["Cluster", "Namespaced"],
    ));

    let top_has_schema = hoisted
        .top_validation()
        .is_some_and(|v| v.get("openAPIV3Schema").is_some());
    if !top_has_schema {
        for (i, version) in crd.versions.iter().enumerate() {
            let has_schema = hoisted
                .version_schema(version)
                .is_some_and(|v| v.get("openAPIV3Schema").is_some());
            let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
            if options.require_open_api_schema && !has_schema {
                causes.push(required(&path));
            } else if !options.require_open_api_schema
                && !crd.preserve_unknown_fields
                && version.served
                && !has_schema
            {
                causes.push(required_because(
                    &path,
                    "because otherwise all fields are pruned",
                ));
            }
        }
    }

    if crd.preserve_unknown_fields
        && crd.versions.iter().any(|v| {
            v.open_api_v3_schema()
                .is_some_and(|s| schema_has(s, &|s| s.get("default").is_some()))
        })
    {
        causes.push(invalid(
            "spec.preserveUnknownFields",
            &json!(true),
            "must be false in order to use defaults in the schema",
        ));
    }

    let mut storage_count = 0;
    let mut seen = HashSet::new();
    let mut unique = true;
    for (i, version) in crd.versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        if version.storage {
            storage_count += 1;
        }
        unique &= seen.insert(version.name.as_str());
        let problems = is_dns1035_label(&version.name);
        if !problems.is_empty() {
            causes.push(invalid(
                &format!("{path}.name"),
                &json!(version.name),
                &problems.join(","),
            ));
        }
        causes.extend(validate_version(version, &hoisted, &path, old, options));
    }

    let versions_value = object
        .pointer("/spec/versions")
        .cloned()
        .unwrap_or(Value::Null);
    if !unique {
        causes.push(invalid(
            "spec.versions",
            &versions_value,
            "must contain unique version names",
        ));
    }
    if storage_count != 1 {
        causes.push(invalid(
            "spec.versions",
            &versions_value,
            "must have exactly one version marked as storage version",
        ));
    }
    // kube's internal `spec.version` is the first version's name, checked again.
    if let Some(first) = crd.versions.first().filter(|v| !v.name.is_empty()) {
        let problems = is_dns1035_label(&first.name);
        if !problems.is_empty() {
            causes.push(invalid(
                "spec.version",
                &json!(first.name),
                &problems.join(","),
            ));
        }
    }

    for (field, value) in [
        ("plural", &crd.names.plural),
        ("singular", &crd.names.singular),
        ("kind", &crd.names.kind),
        ("listKind", &crd.names.list_kind),
    ] {
        if value.is_empty() {
            causes.push(required(&format!("spec.names.{field}")));
        }
    }
    causes.extend(validate_names(&crd.names, "spec.names"));

    if let Some(validation) = hoisted.top_validation() {
        let any_status = crd
            .versions
            .iter()
            .any(|v| hoisted.subresources_for(v).is_some_and(|s| s.status));
        causes.extend(schema_causes(&SchemaCheck {
            validation,
            path: "spec.validation",
            status_subresource_enabled: any_status,
            old,
        }));
    }
    if let Some(subresources) = hoisted.top_subresources() {
        causes.extend(validate_subresources(subresources, "spec.subresources"));
    }
    if hoisted.columns_hoisted {
        for (i, column) in hoisted.columns.iter().enumerate() {
            let path = format!("spec.additionalPrinterColumns[{i}]");
            causes.extend(validate_column(column, &path));
        }
    }
    if hoisted.selectable_fields_hoisted && !hoisted.selectable_fields.is_empty() {
        match hoisted.top_validation() {
            None => causes.push(invalid(
                "spec.selectableFields",
                &json!(""),
                "may only be set when validations.schema is included",
            )),
            Some(validation) => causes.extend(validate_selectable_fields(
                hoisted.selectable_fields,
                validation.get("openAPIV3Schema"),
                "spec.selectableFields",
                options.too_many_selectable_fields_allowed.contains(""),
            )),
        }
    }

    if crd.conversion.strategy != "None" && crd.preserve_unknown_fields {
        causes.push(invalid(
            "spec.conversion.strategy",
            &json!(crd.conversion.strategy),
            "must be None if spec.preserveUnknownFields is true",
        ));
    }
    causes.extend(validate_conversion(crd, options));
    causes
}

fn validate_version(
    version: &Version,
    hoisted: &Hoisted<'_>,
    path: &str,
    old: Option<&Crd>,
    options: &Options,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let warning_path = format!("{path}.deprecationWarning");
    for problem in deprecation_warning_problems(version) {
        causes.push(invalid(
            &warning_path,
            &json!(version.deprecation_warning),
            &problem,
        ));
    }
    if let Some(validation) = hoisted.version_schema(version) {
        let schema_path = format!("{path}.schema");
        causes.extend(schema_causes(&SchemaCheck {
            validation,
            path: &schema_path,
            status_subresource_enabled: hoisted.subresources_for(version).is_some_and(|s| s.status),
            old,
        }));
    }
    if let Some(subresources) = hoisted.version_subresources(version) {
        causes.extend(validate_subresources(
            subresources,
            &format!("{path}.subresources"),
        ));
    }
    if !hoisted.columns_hoisted {
        for (i, column) in version.additional_printer_columns.iter().enumerate() {
            let column_path = format!("{path}.additionalPrinterColumns[{i}]");
            causes.extend(validate_column(column, &column_path));
        }
    }
    if !hoisted.selectable_fields_hoisted && !version.selectable_fields.is_empty() {
        let fields_path = format!("{path}.selectableFields");
        // kube looks at the version's own schema, which hoisting may have moved away.
        let schema = hoisted
            .version_schema(version)
            .and_then(|v| v.get("openAPIV3Schema"));
        match schema {
            None => causes.push(invalid(
                &fields_path,
                &json!(""),
                "may only be set when `version.schema.openAPIV3Schema` is not included",
            )),
            Some(schema) => causes.extend(validate_selectable_fields(
                &version.selectable_fields,
                Some(schema),
                &fields_path,
                options
                    .too_many_selectable_fields_allowed
                    .contains(&version.name),
            )),
        }
    }
    causes
}

fn deprecation_warning_problems(version: &Version) -> Vec<String> {
    let Some(warning) = &version.deprecation_warning else {
        return Vec::new();
    };
    if !version.deprecated {
        return vec!["can only be set for deprecated versions".to_string()];
    }
    let mut problems = Vec::new();
    if warning.len() > 256 {
        problems.push("must be <= 256 characters long".to_string());
    }
    if warning.is_empty() {
        problems.push("must not be an empty string".to_string());
    }
    // kube also has a "control character" message, but checks printability first, and no
    // control character is printable.
    if let Some((index, _)) = warning.char_indices().find(|(_, c)| !is_printable(*c)) {
        problems.push(format!(
            "must only contain printable UTF-8 characters; non-printable character found at index {index}"
        ));
    }
    problems
}

/// Go's `unicode.IsPrint`: graphic characters and the ASCII space, no other spacing or
/// formatting characters.
fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
}

/// `spec.names` or `status.acceptedNames` (kube's `ValidateCustomResourceDefinitionNames`).
pub fn validate_names(names: &Names, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (field, value) in [("plural", &names.plural), ("singular", &names.singular)] {
        let problems = is_dns1035_label(value);
        if !value.is_empty() && !problems.is_empty() {
            causes.push(invalid(
                &format!("{path}.{field}"),
                &json!(value),
                &problems.join(","),
            ));
        }
    }
    for (field, value) in [("kind", &names.kind), ("listKind", &names.list_kind)] {
        let problems = is_dns1035_label(&value.to_lowercase());
        if !value.is_empty() && !problems.is_empty() {
            causes.push(invalid(
                &format!("{path}.{field}"),
                &json!(value),
                &format!(
                    "may have mixed case, but should otherwise match: {}",
                    problems.join(",")
                ),
            ));
        }
    }
    for (i, short_name) in names.short_names.iter().enumerate() {
        let problems = is_dns1035_label(short_name);
        if !problems.is_empty() {
            causes.push(invalid(
                &format!("{path}.shortNames[{i}]"),
                &json!(short_name),
                &problems.join(","),
            ));
        }
    }
    if !names.kind.is_empty() && names.kind == names.list_kind {
        causes.push(invalid(
            &format!("{path}.listKind"),
            &json!(names.list_kind),
            "kind and listKind may not be the same",
        ));
    }
    for (i, category) in names.categories.iter().enumerate() {
        let problems = is_dns1035_label(category);
        if !problems.is_empty() {
            causes.push(invalid(
                &format!("{path}.categories[{i}]"),
                &json!(category),
                &problems.join(","),
            ));
        }
    }
    causes
}

fn validate_subresources(subresources: &Subresources, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(scale) = &subresources.scale else {
        return causes;
    };
    for (field, value, prefix) in [
        ("specReplicasPath", &scale.spec_replicas_path, "spec"),
        ("statusReplicasPath", &scale.status_replicas_path, "status"),
    ] {
        let field_path = format!("{path}.scale.{field}");
        if value.is_empty() {
            causes.push(required(&field_path));
            continue;
        }
        let problems = simple_json_path_problems(value, &field_path);
        if !problems.is_empty() {
            causes.extend(problems);
        } else if !value.starts_with(&format!(".{prefix}.")) {
            causes.push(invalid(
                &field_path,
                &json!(value),
                &format!("should be a json path under .{prefix}"),
            ));
        }
    }
    if let Some(selector) = scale.label_selector_path.as_ref().filter(|s| !s.is_empty()) {
        let field_path = format!("{path}.scale.labelSelectorPath");
        let problems = simple_json_path_problems(selector, &field_path);
        if !problems.is_empty() {
            causes.extend(problems);
        } else if !selector.starts_with(".spec.") && !selector.starts_with(".status.") {
            causes.push(invalid(
                &field_path,
                &json!(selector),
                "should be a json path under either .spec or .status",
            ));
        }
    }
    causes
}

/// kube's `validateSimpleJSONPath`: only that the path starts with a dot.
fn simple_json_path_problems(value: &str, path: &str) -> Vec<Cause> {
    if value.is_empty() {
        vec![invalid(path, &json!(value), "must not be empty")]
    } else if !value.starts_with('.') {
        vec![invalid(
            path,
            &json!(value),
            "must be a simple json path starting with .",
        )]
    } else {
        Vec::new()
    }
}

fn validate_column(column: &PrinterColumn, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if column.name.is_empty() {
        causes.push(required(&format!("{path}.name")));
    }
    let types_detail = format!("must be one of {PRINTER_COLUMN_TYPES}");
    if column.column_type.is_empty() {
        causes.push(required_because(&format!("{path}.type"), &types_detail));
    } else if !PRINTER_COLUMN_TYPES
        .split(',')
        .any(|t| t == column.column_type)
    {
        causes.push(invalid(
            &format!("{path}.type"),
            &json!(column.column_type),
            &types_detail,
        ));
    }
    if !column.format.is_empty()
        && !PRINTER_COLUMN_FORMATS
            .split(',')
            .any(|f| f == column.format)
    {
        causes.push(invalid(
            &format!("{path}.format"),
            &json!(column.format),
            &format!("must be one of {PRINTER_COLUMN_FORMATS}"),
        ));
    }
    // kube's internal field is named `JSONPath`, and so is the error's path.
    let json_path_field = format!("{path}.JSONPath");
    if column.json_path.is_empty() {
        causes.push(required(&json_path_field));
    } else {
        causes.extend(simple_json_path_problems(
            &column.json_path,
            &json_path_field,
        ));
    }
    causes
}

fn validate_selectable_fields(
    fields: &[SelectableField],
    schema: Option<&Value>,
    path: &str,
    too_many_allowed: bool,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut unique = HashSet::new();
    for (i, field) in fields.iter().enumerate() {
        let field_path = format!("{path}[{i}].jsonPath");
        let value = json!(field.json_path);
        if field.json_path.is_empty() {
            causes.push(required(&field_path));
            continue;
        }
        let resolved = match resolve_field_path(&field.json_path, schema) {
            Ok(resolved) => resolved,
            Err(err) => {
                causes.push(invalid(
                    &field_path,
                    &value,
                    &format!("is an invalid path: {err}"),
                ));
                continue;
            }
        };
        if resolved.root == "metadata" {
            causes.push(invalid(
                &field_path,
                &value,
                "must not point to fields in metadata",
            ));
        }
        let type_allowed = resolved
            .schema
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| matches!(t, "string" | "boolean" | "integer"));
        if !type_allowed {
            causes.push(invalid(
                &field_path,
                &value,
                "must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed.",
            ));
        }
        if !unique.insert(resolved.path) {
            causes.push(duplicate(&field_path, &value));
        }
    }
    if unique.len() > MAX_SELECTABLE_FIELDS && !too_many_allowed {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!(
                "Too many: {}: must have at most {MAX_SELECTABLE_FIELDS} items",
                unique.len()
            ),
        ));
    }
    causes
}

/// A selectable field's path resolved in the schema.
struct ResolvedPath<'a> {
    /// kube's field path string (`spec.labels[key]`), which identifies duplicates.
    path: String,
    root: String,
    schema: Option<&'a Value>,
}

/// kube's `ValidFieldPath` without array notation: `.a.b` or `.a['b']` steps through
/// `properties` (or `additionalProperties`, for map keys).
fn resolve_field_path<'a>(
    json_path: &str,
    schema: Option<&'a Value>,
) -> Result<ResolvedPath<'a>, String> {
    let tokens = field_path_tokens(json_path);
    let mut path = String::new();
    let mut root = String::new();
    let mut current = schema;
    let mut tokens = tokens.into_iter();
    while let Some(token) = tokens.next() {
        let name = match token.as_str() {
            "[" => return Err("array notation is not allowed".to_string()),
            "." => tokens
                .next()
                .ok_or_else(|| "unexpected end of JSON path".to_string())?,
            other => return Err(format!("expected [ or . but got: {other}")),
        };
        let node = current.ok_or_else(|| "does not refer to a valid field".to_string())?;
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            current = Some(
                properties
                    .get(&name)
                    .ok_or_else(|| "does not refer to a valid field".to_string())?,
            );
            if path.is_empty() {
                root = name.clone();
                path = name;
            } else {
                path = format!("{path}.{name}");
            }
        } else if let Some(additional) = node.get("additionalProperties") {
            current = additional.is_object().then_some(additional);
            if path.is_empty() {
                root = format!("[{name}]");
            }
            path = format!("{path}[{name}]");
        } else {
            return Err("does not refer to a valid field".to_string());
        }
    }
    Ok(ResolvedPath {
        path,
        root,
        schema: current,
    })
}

/// Splits at `.`, `[` and `]` (each its own token); a token starting with `'` runs to the
/// next unescaped `'`.
fn field_path_tokens(path: &str) -> Vec<String> {
    let bytes = path.as_bytes();
    let mut tokens = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let mut end = start;
        if bytes[start] == b'\'' {
            end += 1;
            while end < bytes.len() && !(bytes[end] == b'\'' && bytes[end - 1] != b'\\') {
                end += 1;
            }
            end = (end + 1).min(bytes.len());
        } else if matches!(bytes[start], b'.' | b'[' | b']') {
            end += 1;
        } else {
            while end < bytes.len() && !matches!(bytes[end], b'.' | b'[' | b']') {
                end += 1;
            }
        }
        tokens.push(path[start..end].to_string());
        start = end;
    }
    tokens
}

fn validate_conversion(crd: &Crd, options: &Options) -> Vec<Cause> {
    let mut causes = Vec::new();
    let conversion = &crd.conversion;
    causes.extend(enum_string(
        "spec.conversion.strategy",
        &conversion.strategy,
        &["None", "Webhook"],
    ));
    let client_config = conversion
        .webhook
        .as_ref()
        .and_then(|w| w.client_config.as_ref());
    let review_versions = conversion
        .webhook
        .as_ref()
        .map(|w| w.conversion_review_versions.as_slice())
        .unwrap_or_default();
    // kube's internal form flattens `webhook.clientConfig` and `webhook.conversionReviewVersions`
    // into `conversion`, and reports them there.
    let config_path = "spec.conversion.webhookClientConfig";
    let versions_path = "spec.conversion.conversionReviewVersions";
    if conversion.strategy != "Webhook" {
        if client_config.is_some() {
            causes.push(forbidden(
                config_path,
                "should not be set when strategy is not set to Webhook",
            ));
        }
        if !review_versions.is_empty() {
            causes.push(forbidden(
                versions_path,
                "should not be set when strategy is not set to Webhook",
            ));
        }
        return causes;
    }
    match client_config {
        None => causes.push(required_because(
            config_path,
            "required when strategy is set to Webhook",
        )),
        Some(config) => causes.extend(validate_client_config(config, config_path, options)),
    }
    causes.extend(validate_conversion_review_versions(
        review_versions,
        options.require_recognized_conversion_review_version,
        versions_path,
    ));
    causes
}

fn validate_client_config(
    config: &WebhookClientConfig,
    path: &str,
    options: &Options,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    match (&config.url, &config.service) {
        (Some(url), None) => causes.extend(validate_webhook_url(url, &format!("{path}.url"))),
        (None, Some(service)) => {
            let path = format!("{path}.service");
            if service.name.is_empty() {
                causes.push(required(&format!("{path}.name")));
            }
            if service.namespace.is_empty() {
                causes.push(required(&format!("{path}.namespace")));
            }
            let problems = is_valid_port_num(service.port);
            if !problems.is_empty() {
                causes.push(invalid(
                    &format!("{path}.port"),
                    &json!(service.port),
                    &format!("port is not valid: {}", problems.join(", ")),
                ));
            }
            if let Some(url_path) = &service.path {
                causes.extend(validate_service_path(url_path, &format!("{path}.path")));
            }
        }
        _ => causes.push(required_because(
            path,
            "exactly one of url or service is required",
        )),
    }
    if let Some(bundle) = config.ca_bundle.as_ref().filter(|b| !b.is_empty())
        && !options.allow_invalid_ca_bundle
        && let Some(problem) = ca_bundle_problem(bundle)
    {
        causes.push(invalid(
            &format!("{path}.caBundle"),
            &json!(bundle),
            &problem,
        ));
    }
    causes
}

/// kube's `ValidateWebhookURL` with `https` required.
fn validate_webhook_url(url: &str, path: &str) -> Vec<Cause> {
    const FORM: &str = "; desired format: https://host[/path]";
    let parts = match split_url(url) {
        Ok(parts) => parts,
        Err(err) => {
            return vec![required_because(
                path,
                &format!("url must be a valid URL: parse {url:?}: {err}{FORM}"),
            )];
        }
    };
    let mut causes = Vec::new();
    if parts.scheme != "https" {
        causes.push(invalid(
            path,
            &json!(parts.scheme),
            &format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    if parts.host.is_empty() {
        causes.push(invalid(
            path,
            &json!(parts.host),
            &format!("host must be specified{FORM}"),
        ));
    }
    if let Some(user) = parts.user {
        causes.push(invalid(
            path,
            &json!(user),
            "user information is not permitted in the URL",
        ));
    }
    if !parts.fragment.is_empty() {
        causes.push(invalid(
            path,
            &json!(parts.fragment),
            "fragments are not permitted in the URL",
        ));
    }
    if !parts.query.is_empty() {
        causes.push(invalid(
            path,
            &json!(parts.query),
            "query parameters are not permitted in the URL",
        ));
    }
    causes
}

struct UrlParts<'a> {
    scheme: &'a str,
    user: Option<&'a str>,
    host: &'a str,
    query: &'a str,
    fragment: &'a str,
}

/// The parts of a URL as Go's `url.Parse` splits them.
fn split_url(url: &str) -> Result<UrlParts<'_>, &'static str> {
    let (rest, fragment) = url.split_once('#').unwrap_or((url, ""));
    let scheme_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .filter(|&end| rest[end..].starts_with(':'));
    let (scheme, rest) = match scheme_len {
        Some(0) => return Err("missing protocol scheme"),
        Some(end) if rest.as_bytes()[0].is_ascii_alphabetic() => (&rest[..end], &rest[end + 1..]),
        _ => ("", rest),
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (mut user, mut host) = (None, "");
    if let Some(authority) = rest.strip_prefix("//") {
        let authority = authority.split('/').next().unwrap_or("");
        match authority.rsplit_once('@') {
            Some((userinfo, h)) => {
                user = Some(userinfo);
                host = h;
            }
            None => host = authority,
        }
    }
    Ok(UrlParts {
        scheme,
        user,
        host,
        query,
        fragment,
    })
}

/// kube's `ValidateWebhookService` checks of `service.path`.
fn validate_service_path(url_path: &str, path: &str) -> Vec<Cause> {
    if url_path.is_empty() || url_path == "/" {
        return Vec::new();
    }
    let value = json!(url_path);
    if url_path == "//" {
        return vec![invalid(path, &value, "segment[0] may not be empty")];
    }
    let mut causes = Vec::new();
    if !url_path.starts_with('/') {
        causes.push(invalid(path, &value, "must start with a '/'"));
    }
    let trimmed = &url_path[url_path.chars().next().map_or(0, char::len_utf8)..];
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    for (i, step) in trimmed.split('/').enumerate() {
        if step.is_empty() {
            causes.push(invalid(
                path,
                &value,
                &format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for problem in is_dns1123_subdomain(step) {
            causes.push(invalid(path, &value, &format!("segment[{i}]: {problem}")));
        }
    }
    causes
}

/// Why a `caBundle` holds no usable CA certificate, in client-go's words, or `None`. The PEM
/// structure is checked; the certificates' DER is not parsed.
fn ca_bundle_problem(bundle: &str) -> Option<String> {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(bundle) else {
        return Some("unable to parse bytes as PEM block".to_string());
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut rest = text.as_ref();
    let mut certificates = 0;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = after.find(&end_marker) else {
            break;
        };
        let body: String = after[label_end + 5..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if label == "CERTIFICATE" {
            if base64::engine::general_purpose::STANDARD
                .decode(&body)
                .is_err()
            {
                return Some("unable to parse bytes as PEM block".to_string());
            }
            certificates += 1;
        }
        rest = &after[end + end_marker.len()..];
    }
    (certificates == 0).then(|| {
        if text.contains("-----BEGIN ") {
            "no valid certificate authority data seen".to_string()
        } else {
            "unable to parse bytes as PEM block".to_string()
        }
    })
}

fn validate_conversion_review_versions(
    versions: &[String],
    require_recognized: bool,
    path: &str,
) -> Vec<Cause> {
    if versions.is_empty() {
        return vec![required(path)];
    }
    let mut causes = Vec::new();
    let mut seen = HashSet::new();
    for (i, version) in versions.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        if !seen.insert(version.as_str()) {
            causes.push(invalid(&item_path, &json!(version), "duplicate version"));
            continue;
        }
        for problem in is_dns1035_label(version) {
            causes.push(invalid(&item_path, &json!(version), &problem));
        }
    }
    let recognized = versions
        .iter()
        .any(|v| ACCEPTED_CONVERSION_REVIEW_VERSIONS.contains(&v.as_str()));
    if require_recognized && !recognized {
        causes.push(invalid(
            path,
            &json!(versions),
            &format!(
                "must include at least one of {}",
                ACCEPTED_CONVERSION_REVIEW_VERSIONS.join(", ")
            ),
        ));
    }
    causes
}

/// `status.storedVersions`: every version ever stored must stay in `spec.versions`, and the
/// storage version must be recorded.
fn validate_stored_versions(crd: &Crd) -> Vec<Cause> {
    let path = "status.storedVersions";
    let stored = &crd.status.stored_versions;
    if stored.is_empty() {
        return vec![invalid(
            path,
            &json!(stored),
            "must have at least one stored version",
        )];
    }
    let mut causes = Vec::new();
    for version in crd.versions.iter().filter(|v| v.storage) {
        if !stored.contains(&version.name) {
            causes.push(invalid(
                path,
                &json!(stored),
                &format!("must have the storage version {}", version.name),
            ));
        }
    }
    for (i, name) in stored.iter().enumerate() {
        // A repeated entry is checked once, at its last index, as kube's map of them does.
        let last = stored.iter().rposition(|s| s == name) == Some(i);
        if last && crd.version(name).is_none() {
            causes.push(invalid(
                &format!("{path}[{i}]"),
                &json!(name),
                &format!(
                    "missing from spec.versions; {name} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {name} and removes {name} from status.storedVersions"
                ),
            ));
        }
    }
    causes
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApprovalState {
    Invalid,
    Approved,
    Bypassed,
    Missing,
}

/// kube's `GetAPIApprovalState`.
fn api_approval_state(crd: &Crd) -> (ApprovalState, String) {
    let annotation = crd
        .annotations
        .get(API_APPROVED_ANNOTATION)
        .map(String::as_str)
        .unwrap_or("");
    let is_url = split_url(annotation)
        .is_ok_and(|u| !u.scheme.is_empty() && !u.host.is_empty() && annotation.contains("://"));
    if annotation.is_empty() {
        (
            ApprovalState::Missing,
            format!(
                "protected groups must have approval annotation {API_APPROVED_ANNOTATION:?}, see https://github.com/kubernetes/enhancements/pull/1111"
            ),
        )
    } else if annotation.starts_with("unapproved") {
        (
            ApprovalState::Bypassed,
            format!("not approved: {annotation:?}"),
        )
    } else if is_url {
        (ApprovalState::Approved, format!("approved in {annotation}"))
    } else {
        (
            ApprovalState::Invalid,
            format!(
                "protected groups must have approval annotation {API_APPROVED_ANNOTATION:?} with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111"
            ),
        )
    }
}

/// Groups kube keeps for community-approved APIs.
pub fn is_protected_group(group: &str) -> bool {
    group == "k8s.io"
        || group.ends_with(".k8s.io")
        || group == "kubernetes.io"
        || group.ends_with(".kubernetes.io")
}

fn validate_api_approval(crd: &Crd, old: Option<&Crd>) -> Vec<Cause> {
    if !is_protected_group(&crd.group) {
        return Vec::new();
    }
    let (state, reason) = api_approval_state(crd);
    // An unchanged approval never fails, so controllers that only edit the spec keep working.
    if old.is_some_and(|old| api_approval_state(old).0 == state) {
        return Vec::new();
    }
    let path = format!("metadata.annotations[{API_APPROVED_ANNOTATION}]");
    let value = json!(
        crd.annotations
            .get(API_APPROVED_ANNOTATION)
            .cloned()
            .unwrap_or_default()
    );
    match state {
        ApprovalState::Approved | ApprovalState::Bypassed => Vec::new(),
        ApprovalState::Missing => vec![required_because(&path, &reason)],
        ApprovalState::Invalid => vec![invalid(&path, &value, &reason)],
    }
}

// ---- what the old object relaxes on update ----

fn all_versions_have_schema(crd: &Crd) -> bool {
    crd.versions
        .iter()
        .all(|v| v.open_api_v3_schema().is_some())
}

fn allow_invalid_ca_bundle(old: &Crd) -> bool {
    if !old.is_established() {
        return true;
    }
    old.conversion
        .webhook
        .as_ref()
        .and_then(|w| w.client_config.as_ref())
        .and_then(|c| c.ca_bundle.as_ref())
        .filter(|b| !b.is_empty())
        .is_some_and(|b| ca_bundle_problem(b).is_some())
}

fn too_many_selectable_fields_allowed(crd: &Crd, old: &Crd) -> HashSet<String> {
    let mut allowed = HashSet::new();
    let new_hoisted = Hoisted::of(&crd.versions);
    let old_hoisted = Hoisted::of(&old.versions);
    if new_hoisted.selectable_fields_hoisted
        && old_hoisted.selectable_fields_hoisted
        && old_hoisted.selectable_fields.len() > MAX_SELECTABLE_FIELDS
        && new_hoisted.selectable_fields == old_hoisted.selectable_fields
    {
        allowed.insert(String::new());
    }
    for version in &crd.versions {
        if let Some(old_version) = old.version(&version.name)
            && old_version.selectable_fields.len() > MAX_SELECTABLE_FIELDS
            && old_version.selectable_fields == version.selectable_fields
        {
            allowed.insert(version.name.clone());
        }
    }
    allowed
}

// ---- small helpers ----

fn immutable(path: &str, new: &str, old: &str) -> Option<Cause> {
    (new != old).then(|| invalid(path, &json!(new), "field is immutable"))
}

/// kube's `validateEnumStrings` for a required field.
fn enum_string(path: &str, value: &str, accepted: &[&str]) -> Option<Cause> {
    if value.is_empty() {
        Some(required(path))
    } else if accepted.contains(&value) {
        None
    } else {
        Some(not_supported(path, &json!(value), accepted))
    }
}

/// Whether `predicate` holds for the schema or any schema nested in it (kube's `SchemaHas`).
fn schema_has(schema: &Value, predicate: &dyn Fn(&Value) -> bool) -> bool {
    if !schema.is_object() {
        return false;
    }
    if predicate(schema) {
        return true;
    }
    let nested_maps = [
        "properties",
        "patternProperties",
        "definitions",
        "dependencies",
    ];
    let nested_lists = ["allOf", "anyOf", "oneOf"];
    let nested_single = ["not", "additionalProperties", "additionalItems"];
    nested_maps.iter().any(|key| {
        schema
            .get(*key)
            .and_then(Value::as_object)
            .is_some_and(|map| map.values().any(|s| schema_has(s, predicate)))
    }) || nested_lists.iter().any(|key| {
        schema
            .get(*key)
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|s| schema_has(s, predicate)))
    }) || nested_single
        .iter()
        .any(|key| schema.get(*key).is_some_and(|s| schema_has(s, predicate)))
        || match schema.get("items") {
            Some(Value::Array(list)) => list.iter().any(|s| schema_has(s, predicate)),
            Some(single) => schema_has(single, predicate),
            None => false,
        }
}
