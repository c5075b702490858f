//! CRD validation, names and printer columns against kube's behavior: the published CRDs of
//! cert-manager and the Prometheus operator, and one failing case per rule.

use chrono::{DateTime, Utc};
use kubecache_core::status::Cause;
use serde_json::{Value, json};

use super::*;

fn fixtures() -> Vec<(String, Value)> {
    crate::fixtures::crds().to_vec()
}

fn fixture(name: &str) -> Value {
    crate::fixtures::crd(name)
}

/// What the server does with a CRD on create, up to validation.
fn prepared(mut object: Value) -> Value {
    apply_defaults(&mut object);
    prepare_for_create(&mut object);
    object
}

fn create_causes(object: Value) -> Vec<Cause> {
    validate_create(&prepared(object))
}

fn update_causes(mut object: Value, old: &Value) -> Vec<Cause> {
    apply_defaults(&mut object);
    prepare_for_update(&mut object, old);
    validate_update(&object, old)
}

/// A minimal valid CRD: one version with a schema.
fn widget() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "size": {"type": "integer"}, "color": {"type": "string"},
                        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                        "parts": {"type": "array", "items": {"type": "string"}}
                    }},
                    "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
                }}}
            }]
        }
    })
}

fn with(mut object: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = object
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{parent}"));
    match target {
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        other => {
            other[key] = value;
        }
    }
    object
}

fn without(mut object: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    object
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key);
    object
}

#[track_caller]
fn assert_cause(causes: &[Cause], field: &str, message: &str) {
    assert!(
        causes
            .iter()
            .any(|c| c.field == field && c.message == message),
        "expected {field}: {message}\ngot: {causes:#?}"
    );
}

#[test]
fn every_fixture_parses_and_validates_clean() {
    for (path, object) in fixtures() {
        let crd = Crd::parse(&object).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(
            crd.name,
            format!("{}.{}", crd.names.plural, crd.group),
            "{path}"
        );
        assert!(crd.storage_version().is_some(), "{path}");
        let causes = create_causes(object.clone());
        assert!(causes.is_empty(), "{path}: {causes:#?}");
        let updated = update_causes(object.clone(), &prepared(object));
        assert!(updated.is_empty(), "{path} (update): {updated:#?}");
    }
}

#[test]
fn the_model_reads_what_the_server_needs() {
    let crd = Crd::parse(&fixture("monitoring.coreos.com_prometheuses.yaml")).unwrap();
    assert!(crd.is_namespaced());
    assert_eq!(crd.names.kind, "Prometheus");
    assert_eq!(crd.names.short_names, vec!["prom"]);
    assert_eq!(crd.storage_version().unwrap().name, "v1");
    let scale = crd.scale("v1").expect("prometheuses scale");
    assert_eq!(scale.spec_replicas_path, ".spec.shards");
    assert_eq!(scale.status_replicas_path, ".status.shards");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector")
    );
    assert!(crd.has_status_subresource("v1"));
    assert_eq!(crd.conversion.strategy, "None");
    assert!(crd.version("v1").unwrap().open_api_v3_schema().is_some());
    let columns = crd.printer_columns("v1");
    assert_eq!(columns[0].name, "Version");
    assert!(
        columns
            .iter()
            .any(|c| c.name == "Paused" && c.priority == 1)
    );

    let certificates = Crd::parse(&fixture("cert-manager.io_certificates.yaml")).unwrap();
    let fields: Vec<&str> = certificates.versions[0]
        .selectable_fields
        .iter()
        .map(|f| f.json_path.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            ".spec.issuerRef.group",
            ".spec.issuerRef.kind",
            ".spec.issuerRef.name"
        ]
    );
}

#[test]
fn defaults_fill_singular_list_kind_conversion_and_stored_versions() {
    let object = without(
        without(widget(), "/spec/names/singular"),
        "/spec/names/listKind",
    );
    let object = prepared(object);
    assert_eq!(object["spec"]["names"]["singular"], "widget");
    assert_eq!(object["spec"]["names"]["listKind"], "WidgetList");
    assert_eq!(object["spec"]["conversion"], json!({"strategy": "None"}));
    assert_eq!(object["status"]["storedVersions"], json!(["v1"]));
    assert_eq!(object["metadata"]["generation"], 1);
    assert!(validate_create(&object).is_empty());
}

#[test]
fn versions_sort_by_kube_priority() {
    let mut object = widget();
    let mut versions = Vec::new();
    for name in [
        "v1alpha1", "v1beta1", "foo", "v2", "v1", "v1beta2", "v10", "v2alpha1", "bar",
    ] {
        versions.push(json!({"name": name, "served": true, "storage": name == "v1"}));
    }
    versions.push(json!({"name": "v3", "served": false, "storage": false}));
    object["spec"]["versions"] = Value::Array(versions);
    let crd = Crd::parse(&object).unwrap();
    let order: Vec<&str> = crd
        .served_versions()
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        order,
        [
            "v10", "v2", "v1", "v1beta2", "v1beta1", "v2alpha1", "v1alpha1", "bar", "foo"
        ]
    );
    assert_eq!(crd.preferred_version().unwrap().name, "v10");
}

#[test]
fn name_must_be_plural_dot_group() {
    let causes = create_causes(with(widget(), "/metadata/name", json!("foo")));
    assert_cause(
        &causes,
        "metadata.name",
        r#"Invalid value: "foo": must be spec.names.plural+"."+spec.group"#,
    );
}

#[test]
fn group_rules() {
    let causes = create_causes(with(widget(), "/spec/group", json!("example")));
    assert_cause(
        &causes,
        "spec.group",
        r#"Invalid value: "example": should be a domain with at least one dot"#,
    );
    let causes = create_causes(with(widget(), "/spec/group", json!("Example.com")));
    assert!(causes.iter().any(|c| {
        c.field == "spec.group"
            && c.message
                .starts_with(r#"Invalid value: "Example.com": a lowercase RFC 1123 subdomain"#)
    }));
    let causes = create_causes(with(widget(), "/spec/group", json!("")));
    assert_cause(&causes, "spec.group", "Required value");
}

#[test]
fn names_rules() {
    let dns1035 = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    let object = with(widget(), "/spec/names/plural", json!("Widgets"));
    let object = with(object, "/metadata/name", json!("Widgets.example.com"));
    let causes = create_causes(object);
    assert_cause(
        &causes,
        "spec.names.plural",
        &format!(r#"Invalid value: "Widgets": {dns1035}"#),
    );

    let causes = create_causes(with(widget(), "/spec/names/kind", json!("Wid_get")));
    assert_cause(
        &causes,
        "spec.names.kind",
        &format!(
            r#"Invalid value: "Wid_get": may have mixed case, but should otherwise match: {dns1035}"#
        ),
    );

    let causes = create_causes(with(widget(), "/spec/names/listKind", json!("Widget")));
    assert_cause(
        &causes,
        "spec.names.listKind",
        r#"Invalid value: "Widget": kind and listKind may not be the same"#,
    );

    let causes = create_causes(with(
        widget(),
        "/spec/names/shortNames",
        json!(["ok", "not_ok"]),
    ));
    assert_cause(
        &causes,
        "spec.names.shortNames[1]",
        &format!(r#"Invalid value: "not_ok": {dns1035}"#),
    );
    let causes = create_causes(with(widget(), "/spec/names/categories", json!(["All"])));
    assert_cause(
        &causes,
        "spec.names.categories[0]",
        &format!(r#"Invalid value: "All": {dns1035}"#),
    );

    let nameless = without(widget(), "/spec/names/kind");
    let nameless = without(
        without(nameless, "/spec/names/listKind"),
        "/spec/names/singular",
    );
    let causes = create_causes(nameless);
    assert_cause(&causes, "spec.names.kind", "Required value");
    // Without a kind there are no singular and listKind defaults either.
    assert_cause(&causes, "spec.names.listKind", "Required value");
    assert_cause(&causes, "spec.names.singular", "Required value");
}

#[test]
fn scope_rules() {
    let causes = create_causes(with(widget(), "/spec/scope", json!("Global")));
    assert_cause(
        &causes,
        "spec.scope",
        r#"Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
    );
    let causes = create_causes(without(widget(), "/spec/scope"));
    assert_cause(&causes, "spec.scope", "Required value");
}

fn two_versions() -> Value {
    let mut object = widget();
    let mut second = object["spec"]["versions"][0].clone();
    second["name"] = json!("v2");
    second["storage"] = json!(false);
    object["spec"]["versions"]
        .as_array_mut()
        .unwrap()
        .push(second);
    object
}

#[test]
fn version_rules() {
    let causes = create_causes(with(
        two_versions(),
        "/spec/versions/1/storage",
        json!(true),
    ));
    assert!(causes.iter().any(|c| {
        c.field == "spec.versions"
            && c.message
                .ends_with("must have exactly one version marked as storage version")
    }));

    let causes = create_causes(with(two_versions(), "/spec/versions/1/name", json!("v1")));
    assert!(
        causes.iter().any(|c| c.field == "spec.versions"
            && c.message.ends_with("must contain unique version names"))
    );

    let causes = create_causes(with(widget(), "/spec/versions/0/name", json!("V1")));
    let dns1035 = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    assert_cause(
        &causes,
        "spec.versions[0].name",
        &format!(r#"Invalid value: "V1": {dns1035}"#),
    );
    // kube's internal `spec.version` repeats the first version's name.
    assert_cause(
        &causes,
        "spec.version",
        &format!(r#"Invalid value: "V1": {dns1035}"#),
    );

    let causes = create_causes(with(widget(), "/spec/versions", json!([])));
    assert!(causes.iter().any(|c| c.field == "spec.versions"
        && c.message
            == "Invalid value: []: must have exactly one version marked as storage version"));
    assert_cause(
        &causes,
        "status.storedVersions",
        "Invalid value: []: must have at least one stored version",
    );
}

#[test]
fn deprecation_warning_rules() {
    let object = with(
        widget(),
        "/spec/versions/0/deprecationWarning",
        json!("old"),
    );
    assert_cause(
        &create_causes(object.clone()),
        "spec.versions[0].deprecationWarning",
        r#"Invalid value: "old": can only be set for deprecated versions"#,
    );
    let object = with(object, "/spec/versions/0/deprecated", json!(true));
    assert!(create_causes(object.clone()).is_empty());
    let object = with(object, "/spec/versions/0/deprecationWarning", json!("a\tb"));
    assert_cause(
        &create_causes(object),
        "spec.versions[0].deprecationWarning",
        r#"Invalid value: "a\tb": must only contain printable UTF-8 characters; non-printable character found at index 1"#,
    );
}

#[test]
fn schema_is_required_for_every_version() {
    let causes = create_causes(without(widget(), "/spec/versions/0/schema"));
    assert_cause(
        &causes,
        "spec.versions[0].schema.openAPIV3Schema",
        "Required value",
    );

    // Only the second version lacks it: schemas differ, so nothing is hoisted.
    let causes = create_causes(without(two_versions(), "/spec/versions/1/schema"));
    assert_cause(
        &causes,
        "spec.versions[1].schema.openAPIV3Schema",
        "Required value",
    );
    assert!(
        !causes
            .iter()
            .any(|c| c.field.starts_with("spec.versions[0]"))
    );

    // An old CRD that had versions without schema only needs schemas for served versions.
    let old = prepared(without(widget(), "/spec/versions/0/schema"));
    let causes = update_causes(without(widget(), "/spec/versions/0/schema"), &old);
    assert_cause(
        &causes,
        "spec.versions[0].schema.openAPIV3Schema",
        "Required value: because otherwise all fields are pruned",
    );
}

#[test]
fn preserve_unknown_fields_cannot_be_turned_on() {
    let causes = create_causes(with(widget(), "/spec/preserveUnknownFields", json!(true)));
    assert_cause(
        &causes,
        "spec.preserveUnknownFields",
        "Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
    );
}

#[test]
fn conversion_rules() {
    let webhook = |webhook: Value| {
        with(
            widget(),
            "/spec/conversion",
            json!({"strategy": "Webhook", "webhook": webhook}),
        )
    };

    let causes = create_causes(webhook(json!({"conversionReviewVersions": ["v1"]})));
    assert_cause(
        &causes,
        "spec.conversion.webhookClientConfig",
        "Required value: required when strategy is set to Webhook",
    );

    let causes = create_causes(webhook(json!({
        "clientConfig": {"url": "https://conv.example.com/convert"},
        "conversionReviewVersions": ["v2", "v2"]
    })));
    assert_cause(
        &causes,
        "spec.conversion.conversionReviewVersions[1]",
        r#"Invalid value: "v2": duplicate version"#,
    );
    assert_cause(
        &causes,
        "spec.conversion.conversionReviewVersions",
        r#"Invalid value: ["v2","v2"]: must include at least one of v1, v1beta1"#,
    );

    let causes = create_causes(webhook(
        json!({"clientConfig": {"url": "https://x.example.com"}}),
    ));
    assert_cause(
        &causes,
        "spec.conversion.conversionReviewVersions",
        "Required value",
    );

    let causes = create_causes(webhook(json!({
        "clientConfig": {"url": "http://user@conv.example.com/c?x=1#f"},
        "conversionReviewVersions": ["v1"]
    })));
    let url = "spec.conversion.webhookClientConfig.url";
    assert_cause(
        &causes,
        url,
        r#"Invalid value: "http": 'https' is the only allowed URL scheme; desired format: https://host[/path]"#,
    );
    assert_cause(
        &causes,
        url,
        r#"Invalid value: "user": user information is not permitted in the URL"#,
    );
    assert_cause(
        &causes,
        url,
        r#"Invalid value: "f": fragments are not permitted in the URL"#,
    );
    assert_cause(
        &causes,
        url,
        r#"Invalid value: "x=1": query parameters are not permitted in the URL"#,
    );

    let causes = create_causes(webhook(json!({
        "clientConfig": {"url": "https://a.example.com", "service": {"name": "s", "namespace": "n"}},
        "conversionReviewVersions": ["v1"]
    })));
    assert_cause(
        &causes,
        "spec.conversion.webhookClientConfig",
        "Required value: exactly one of url or service is required",
    );

    let causes = create_causes(webhook(json!({
        "clientConfig": {"service": {"name": "", "namespace": "n", "port": 70000, "path": "/a//b"}},
        "conversionReviewVersions": ["v1beta1"]
    })));
    let service = "spec.conversion.webhookClientConfig.service";
    assert_cause(&causes, &format!("{service}.name"), "Required value");
    assert_cause(
        &causes,
        &format!("{service}.port"),
        "Invalid value: 70000: port is not valid: must be between 1 and 65535, inclusive",
    );
    assert_cause(
        &causes,
        &format!("{service}.path"),
        r#"Invalid value: "/a//b": segment[1] may not be empty"#,
    );

    let causes = create_causes(with(
        widget(),
        "/spec/conversion",
        json!({"strategy": "None", "webhook": {"clientConfig": {"url": "https://x.example.com"}, "conversionReviewVersions": ["v1"]}}),
    ));
    assert_cause(
        &causes,
        "spec.conversion.webhookClientConfig",
        "Forbidden: should not be set when strategy is not set to Webhook",
    );
    assert_cause(
        &causes,
        "spec.conversion.conversionReviewVersions",
        "Forbidden: should not be set when strategy is not set to Webhook",
    );

    let causes = create_causes(with(
        widget(),
        "/spec/conversion",
        json!({"strategy": "Magic"}),
    ));
    assert_cause(
        &causes,
        "spec.conversion.strategy",
        r#"Unsupported value: "Magic": supported values: "None", "Webhook""#,
    );

    let valid = webhook(json!({
        "clientConfig": {"service": {"name": "conv", "namespace": "system", "path": "/convert"}},
        "conversionReviewVersions": ["v1"]
    }));
    assert!(create_causes(valid.clone()).is_empty());
    assert_eq!(
        prepared(valid)["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"],
        443
    );
}

#[test]
fn scale_paths_must_be_under_spec_and_status() {
    let scale = |scale: Value| {
        with(
            widget(),
            "/spec/versions/0/subresources",
            json!({"status": {}, "scale": scale}),
        )
    };
    // One version: its subresources are validated at kube's top-level path.
    let causes = create_causes(scale(json!({
        "specReplicasPath": ".status.replicas",
        "statusReplicasPath": "status.replicas",
        "labelSelectorPath": ".metadata.labels"
    })));
    assert_cause(
        &causes,
        "spec.subresources.scale.specReplicasPath",
        r#"Invalid value: ".status.replicas": should be a json path under .spec"#,
    );
    assert_cause(
        &causes,
        "spec.subresources.scale.statusReplicasPath",
        r#"Invalid value: "status.replicas": must be a simple json path starting with ."#,
    );
    assert_cause(
        &causes,
        "spec.subresources.scale.labelSelectorPath",
        r#"Invalid value: ".metadata.labels": should be a json path under either .spec or .status"#,
    );
    let causes = create_causes(scale(json!({"statusReplicasPath": ".status.replicas"})));
    assert_cause(
        &causes,
        "spec.subresources.scale.specReplicasPath",
        "Required value",
    );

    // Versions that differ keep their own paths.
    let object = with(
        two_versions(),
        "/spec/versions/1/subresources",
        json!({"scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".spec.x"}}),
    );
    assert_cause(
        &create_causes(object),
        "spec.versions[1].subresources.scale.statusReplicasPath",
        r#"Invalid value: ".spec.x": should be a json path under .status"#,
    );
}

#[test]
fn printer_column_rules() {
    let columns = |columns: Value| {
        with(
            widget(),
            "/spec/versions/0/additionalPrinterColumns",
            columns,
        )
    };
    let causes = create_causes(columns(json!([
        {"name": "", "type": "float", "jsonPath": "spec.size"},
        {"name": "B", "type": "integer", "format": "int8", "jsonPath": ".spec.size"},
        {"name": "C", "jsonPath": ""}
    ])));
    assert_cause(
        &causes,
        "spec.additionalPrinterColumns[0].name",
        "Required value",
    );
    assert_cause(
        &causes,
        "spec.additionalPrinterColumns[0].type",
        r#"Invalid value: "float": must be one of boolean,date,integer,number,string"#,
    );
    assert_cause(
        &causes,
        "spec.additionalPrinterColumns[0].JSONPath",
        r#"Invalid value: "spec.size": must be a simple json path starting with ."#,
    );
    assert_cause(
        &causes,
        "spec.additionalPrinterColumns[1].format",
        r#"Invalid value: "int8": must be one of byte,date,date-time,double,float,int32,int64,password"#,
    );
    assert_cause(
        &causes,
        "spec.additionalPrinterColumns[2].type",
        "Required value: must be one of boolean,date,integer,number,string",
    );
    assert_cause(
        &causes,
        "spec.additionalPrinterColumns[2].JSONPath",
        "Required value",
    );

    let object = with(
        two_versions(),
        "/spec/versions/1/additionalPrinterColumns",
        json!([{"name": "Size", "type": "size", "jsonPath": ".spec.size"}]),
    );
    assert_cause(
        &create_causes(object),
        "spec.versions[1].additionalPrinterColumns[0].type",
        r#"Invalid value: "size": must be one of boolean,date,integer,number,string"#,
    );
}

#[test]
fn selectable_field_rules() {
    let fields = |paths: &[&str]| {
        let list: Vec<Value> = paths.iter().map(|p| json!({"jsonPath": p})).collect();
        with(
            widget(),
            "/spec/versions/0/selectableFields",
            Value::Array(list),
        )
    };
    assert!(create_causes(fields(&[".spec.color", ".spec.size", ".spec.tags.a"])).is_empty());

    let causes = create_causes(fields(&[
        ".spec.parts",
        ".spec.missing",
        ".spec.color",
        ".spec['color']",
        "spec.color",
        ".spec.parts[0]",
    ]));
    let at = |i: usize| format!("spec.selectableFields[{i}].jsonPath");
    assert_cause(
        &causes,
        &at(0),
        r#"Invalid value: ".spec.parts": must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed."#,
    );
    assert_cause(
        &causes,
        &at(1),
        r#"Invalid value: ".spec.missing": is an invalid path: does not refer to a valid field"#,
    );
    assert_cause(
        &causes,
        &at(3),
        r#"Invalid value: ".spec['color']": is an invalid path: array notation is not allowed"#,
    );
    assert_cause(
        &causes,
        &at(4),
        r#"Invalid value: "spec.color": is an invalid path: expected [ or . but got: spec"#,
    );

    let causes = create_causes(fields(&[".spec.color", ".spec.color"]));
    assert_cause(&causes, &at(1), r#"Duplicate value: ".spec.color""#);

    let mut object = widget();
    let properties = object
        .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties")
        .unwrap()
        .as_object_mut()
        .unwrap();
    let mut paths = Vec::new();
    for i in 0..9 {
        properties.insert(format!("f{i}"), json!({"type": "string"}));
        paths.push(json!({"jsonPath": format!(".spec.f{i}")}));
    }
    object["spec"]["versions"][0]["selectableFields"] = Value::Array(paths);
    let causes = create_causes(object.clone());
    assert_cause(
        &causes,
        "spec.selectableFields",
        "Too many: 9: must have at most 8 items",
    );
    // An old CRD that already had them all may keep them.
    let mut old = prepared(object.clone());
    old["status"]["conditions"] = json!([{"type": "Established", "status": "True"}]);
    assert!(update_causes(object, &old).is_empty());

    let metadata = with(
        widget(),
        "/spec/versions/0/schema/openAPIV3Schema/properties/metadata",
        json!({"type": "object", "properties": {"name": {"type": "string"}}}),
    );
    let metadata = with(
        metadata,
        "/spec/versions/0/selectableFields",
        json!([{"jsonPath": ".metadata.name"}]),
    );
    assert_cause(
        &create_causes(metadata),
        &at(0),
        r#"Invalid value: ".metadata.name": must not point to fields in metadata"#,
    );
}

#[test]
fn protected_groups_need_api_approval() {
    let object = with(widget(), "/spec/group", json!("widgets.k8s.io"));
    let object = with(object, "/metadata/name", json!("widgets.widgets.k8s.io"));
    let causes = create_causes(object.clone());
    assert_cause(
        &causes,
        "metadata.annotations[api-approved.kubernetes.io]",
        r#"Required value: protected groups must have approval annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111"#,
    );

    let annotated = |value: &str| {
        with(
            object.clone(),
            "/metadata/annotations",
            json!({API_APPROVED_ANNOTATION: value}),
        )
    };
    assert!(
        create_causes(annotated(
            "https://github.com/kubernetes/enhancements/pull/1111"
        ))
        .is_empty()
    );
    assert!(create_causes(annotated("unapproved, experimental")).is_empty());
    assert_cause(
        &create_causes(annotated("yes")),
        "metadata.annotations[api-approved.kubernetes.io]",
        r#"Invalid value: "yes": protected groups must have approval annotation "api-approved.kubernetes.io" with either a URL or a reason starting with "unapproved", see https://github.com/kubernetes/enhancements/pull/1111"#,
    );

    // An approval state that did not change never fails an update.
    let old = prepared(annotated("yes"));
    assert!(update_causes(annotated("no"), &old).is_empty());
}

#[test]
fn stored_versions_must_stay_in_spec_versions() {
    let old = prepared(two_versions());
    let mut old = with(old, "/status/storedVersions", json!(["v1", "v2"]));
    old["status"]["conditions"] = json!([{"type": "Established", "status": "True"}]);
    let mut removed = two_versions();
    removed["spec"]["versions"].as_array_mut().unwrap().pop();
    let causes = update_causes(removed, &old);
    assert_cause(
        &causes,
        "status.storedVersions[1]",
        r#"Invalid value: "v2": missing from spec.versions; v2 was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in v2 and removes v2 from status.storedVersions"#,
    );

    // The storage version must be recorded: prepare_for_update records a new one.
    let switched = with(two_versions(), "/spec/versions/0/storage", json!(false));
    let switched = with(switched, "/spec/versions/1/storage", json!(true));
    let old_v1_only = prepared(two_versions());
    let mut prepared_update = switched.clone();
    apply_defaults(&mut prepared_update);
    prepare_for_update(&mut prepared_update, &old_v1_only);
    assert_eq!(
        prepared_update["status"]["storedVersions"],
        json!(["v1", "v2"])
    );
    assert!(validate_update(&prepared_update, &old_v1_only).is_empty());
    // Without that step the status lacks it.
    let mut unprepared = switched;
    unprepared["status"] = json!({"storedVersions": ["v1"]});
    assert_cause(
        &validate_update(&unprepared, &old_v1_only),
        "status.storedVersions",
        r#"Invalid value: ["v1"]: must have the storage version v2"#,
    );
}

#[test]
fn immutable_fields_on_update() {
    let old = prepared(widget());
    let changed = with(widget(), "/spec/names/plural", json!("gadgets"));
    let changed = with(changed, "/metadata/name", json!("gadgets.example.com"));
    assert_cause(
        &update_causes(changed, &old),
        "spec.names.plural",
        r#"Invalid value: "gadgets": field is immutable"#,
    );
    let changed = with(widget(), "/spec/group", json!("example.org"));
    assert_cause(
        &update_causes(changed, &old),
        "spec.group",
        r#"Invalid value: "example.org": field is immutable"#,
    );

    // Scope and kind may change until the CRD is established.
    let rescoped = with(widget(), "/spec/scope", json!("Cluster"));
    assert!(update_causes(rescoped.clone(), &old).is_empty());
    let mut established = old.clone();
    established["status"]["conditions"] = json!([{"type": "Established", "status": "True"}]);
    assert_cause(
        &update_causes(rescoped, &established),
        "spec.scope",
        r#"Invalid value: "Cluster": field is immutable"#,
    );
    let rekinded = with(widget(), "/spec/names/kind", json!("Gadget"));
    assert_cause(
        &update_causes(rekinded, &established),
        "spec.names.kind",
        r#"Invalid value: "Gadget": field is immutable"#,
    );
}

#[test]
fn update_bumps_generation_only_for_spec_changes() {
    let old = prepared(widget());
    let mut same = widget();
    apply_defaults(&mut same);
    prepare_for_update(&mut same, &old);
    assert_eq!(same["metadata"]["generation"], 1);
    let mut changed = with(widget(), "/spec/versions/0/served", json!(false));
    prepare_for_update(&mut changed, &old);
    assert_eq!(changed["metadata"]["generation"], 2);
}

#[test]
fn wrong_json_types_are_reported() {
    let causes = Crd::parse(&with(widget(), "/spec/versions/0/served", json!("yes"))).unwrap_err();
    assert_eq!(causes[0].field, "spec.versions[0].served");
    assert_eq!(
        causes[0].message,
        r#"Invalid value: "yes": expected boolean"#
    );
}

// ---- names ----

fn crd_with_names(plural: &str, kind: &str, short_names: &[&str], accepted: bool) -> Crd {
    let mut object = widget();
    object["metadata"]["name"] = json!(format!("{plural}.example.com"));
    object["spec"]["names"] = json!({"plural": plural, "kind": kind, "shortNames": short_names});
    apply_defaults(&mut object);
    prepare_for_create(&mut object);
    let mut crd = Crd::parse(&object).unwrap();
    if accepted {
        crd.status.accepted_names = crd.names.clone();
    }
    crd
}

#[test]
fn fresh_names_are_accepted_and_established() {
    let crd = crd_with_names("widgets", "Widget", &["wd"], false);
    let other = crd_with_names("gadgets", "Gadget", &["gd"], true);
    let verdict = accept_names(&crd, &[&other]);
    assert_eq!(verdict.accepted_names, crd.names);
    assert_eq!(verdict.names_accepted.status, "True");
    assert_eq!(verdict.names_accepted.reason, "NoConflicts");
    assert_eq!(verdict.names_accepted.message, "no conflicts found");
    assert_eq!(verdict.established.status, "True");
    assert_eq!(verdict.established.reason, "InitialNamesAccepted");
    assert_eq!(
        verdict.established.message,
        "the initial names have been accepted"
    );
}

#[test]
fn taken_names_conflict() {
    let existing = crd_with_names("widgets", "Widget", &["wd"], true);

    let same_plural = crd_with_names("widgets", "Other", &[], false);
    let mut same_plural = same_plural;
    same_plural.name = "widgets2.example.com".to_string();
    let verdict = accept_names(&same_plural, &[&existing]);
    assert_eq!(verdict.names_accepted.status, "False");
    // The singular ("other") is free; the plural is not.
    assert_eq!(verdict.names_accepted.reason, "PluralConflict");
    assert_eq!(
        verdict.names_accepted.message,
        r#""widgets" is already in use"#
    );
    assert_eq!(verdict.accepted_names.plural, "");
    assert_eq!(verdict.accepted_names.kind, "Other");
    assert_eq!(verdict.established.status, "False");
    assert_eq!(verdict.established.reason, "NotAccepted");

    let same_kind = crd_with_names("gadgets", "Widget", &[], false);
    let verdict = accept_names(&same_kind, &[&existing]);
    assert_eq!(verdict.names_accepted.reason, "ListKindConflict");
    assert_eq!(
        verdict.names_accepted.message,
        r#""WidgetList" is already in use"#
    );
    assert_eq!(verdict.accepted_names.kind, "");

    let mut kind_only = crd_with_names("gadgets", "Widget", &[], false);
    kind_only.names.list_kind = "GadgetList".to_string();
    let verdict = accept_names(&kind_only, &[&existing]);
    assert_eq!(verdict.names_accepted.reason, "KindConflict");
    assert_eq!(
        verdict.names_accepted.message,
        r#""Widget" is already in use"#
    );

    let short = crd_with_names("gadgets", "Gadget", &["wd", "widget", "gd"], false);
    let verdict = accept_names(&short, &[&existing]);
    assert_eq!(verdict.names_accepted.reason, "ShortNamesConflict");
    assert_eq!(
        verdict.names_accepted.message,
        r#"["wd" is already in use, "widget" is already in use]"#
    );
    assert!(verdict.accepted_names.short_names.is_empty());

    // Another group's names do not count.
    let mut elsewhere = crd_with_names("widgets", "Widget", &["wd"], true);
    elsewhere.group = "example.org".to_string();
    let verdict = accept_names(&same_plural, &[&elsewhere]);
    assert_eq!(verdict.names_accepted.status, "True");
}

#[test]
fn reconcile_writes_conditions_and_keeps_transition_times() {
    let mut object = prepared(widget());
    assert!(reconcile_status(&mut object, &[], "2025-01-01T00:00:00Z"));
    let status = &object["status"];
    assert_eq!(status["acceptedNames"]["plural"], "widgets");
    assert_eq!(status["acceptedNames"]["listKind"], "WidgetList");
    let conditions = status["conditions"].as_array().unwrap();
    assert_eq!(conditions[0]["type"], "NamesAccepted");
    assert_eq!(conditions[0]["status"], "True");
    assert_eq!(conditions[1]["type"], "Established");
    assert_eq!(conditions[1]["reason"], "InitialNamesAccepted");
    assert!(Crd::parse(&object).unwrap().is_established());

    // Nothing to do once names are accepted and the CRD established.
    assert!(!reconcile_status(&mut object, &[], "2025-02-01T00:00:00Z"));

    // A new short name taken elsewhere: NamesAccepted flips (new time), Established stays.
    let other = crd_with_names("gadgets", "Gadget", &["wd"], true);
    object["spec"]["names"]["shortNames"] = json!(["wd"]);
    assert!(reconcile_status(
        &mut object,
        &[&other],
        "2025-03-01T00:00:00Z"
    ));
    let conditions = object["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions[0]["status"], "False");
    assert_eq!(conditions[0]["reason"], "ShortNamesConflict");
    assert_eq!(conditions[0]["lastTransitionTime"], "2025-03-01T00:00:00Z");
    assert_eq!(conditions[1]["status"], "True");
    assert_eq!(conditions[1]["lastTransitionTime"], "2025-01-01T00:00:00Z");
}

// ---- printer columns of the fixtures ----

fn at(time: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(time).unwrap().to_utc()
}

fn cells(crd: &Crd, version: &str, object: &Value, now: DateTime<Utc>) -> Vec<(String, Value)> {
    crd.printer_columns(version)
        .iter()
        .map(|c| (c.name.clone(), c.cell(object, now)))
        .collect()
}

#[test]
fn certificate_columns() {
    let crd = Crd::parse(&fixture("cert-manager.io_certificates.yaml")).unwrap();
    let certificate = json!({
        "metadata": {"name": "web", "creationTimestamp": "2025-06-01T10:00:00Z"},
        "spec": {"secretName": "web-tls", "issuerRef": {"name": "letsencrypt"}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "message": "Certificate is up to date and has not expired"}],
            "notAfter": "2025-09-01T10:00:00Z"
        }
    });
    let got = cells(&crd, "v1", &certificate, at("2025-06-01T12:30:00Z"));
    assert_eq!(
        got,
        vec![
            ("Ready".to_string(), json!("True")),
            ("Secret".to_string(), json!("web-tls")),
            ("Issuer".to_string(), json!("letsencrypt")),
            (
                "Status".to_string(),
                json!("Certificate is up to date and has not expired")
            ),
            ("Expiration".to_string(), json!("2025-09-01T10:00:00Z")),
            ("Age".to_string(), json!("150m")),
        ]
    );

    // A fresh certificate with no status yet: null cells, not "<none>".
    let fresh = json!({"metadata": {"creationTimestamp": "2025-06-01T12:29:00Z"}, "spec": {"secretName": "s"}});
    let got = cells(&crd, "v1", &fresh, at("2025-06-01T12:30:00Z"));
    assert_eq!(got[0].1, Value::Null);
    assert_eq!(got[1].1, json!("s"));
    assert_eq!(got[5].1, json!("60s"));
}

#[test]
fn prometheus_columns_and_scale() {
    let crd = Crd::parse(&fixture("monitoring.coreos.com_prometheuses.yaml")).unwrap();
    let prometheus = json!({
        "metadata": {"creationTimestamp": "2025-05-01T12:00:00Z"},
        "spec": {"version": "v2.53.0", "replicas": 2, "shards": 1},
        "status": {
            "availableReplicas": 2, "paused": false, "shards": 1,
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Reconciled", "status": "False"}
            ]
        }
    });
    let got: std::collections::BTreeMap<String, Value> =
        cells(&crd, "v1", &prometheus, at("2025-06-01T12:00:00Z"))
            .into_iter()
            .collect();
    assert_eq!(got["Version"], json!("v2.53.0"));
    assert_eq!(got["Desired"], json!(2));
    assert_eq!(got["Ready"], json!(2));
    assert_eq!(got["Reconciled"], json!("False"));
    assert_eq!(got["Available"], json!("True"));
    assert_eq!(got["Age"], json!("31d"));
    assert_eq!(got["Paused"], json!(false));

    let scale_columns: Vec<String> = crd
        .scale_printer_columns("v1")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(scale_columns, ["Desired", "Available", "Age"]);
}

#[test]
fn versions_without_columns_get_age() {
    let crd = Crd::parse(&widget()).unwrap();
    let columns = crd.printer_columns("v1");
    assert_eq!(columns.len(), 1);
    assert_eq!(columns[0].name, "Age");
    let object = json!({"metadata": {"creationTimestamp": "2025-06-01T11:00:00Z"}});
    assert_eq!(
        columns[0].cell(&object, at("2025-06-03T13:00:00Z")),
        json!("2d2h")
    );
}

#[test]
fn ca_bundles_are_checked_once_established() {
    use base64::Engine;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";
    let webhook = |bundle: String| {
        with(
            widget(),
            "/spec/conversion",
            json!({"strategy": "Webhook", "webhook": {
                "clientConfig": {"url": "https://conv.example.com", "caBundle": bundle},
                "conversionReviewVersions": ["v1"]
            }}),
        )
    };
    // On create a broken bundle only keeps the CRD from being established.
    assert!(create_causes(webhook(encode("garbage"))).is_empty());

    let mut old = prepared(webhook(encode(pem)));
    old["status"]["conditions"] = json!([{"type": "Established", "status": "True"}]);
    assert!(update_causes(webhook(encode(pem)), &old).is_empty());
    let garbage = encode("garbage");
    assert_cause(
        &update_causes(webhook(garbage.clone()), &old),
        "spec.conversion.webhookClientConfig.caBundle",
        &format!("Invalid value: \"{garbage}\": unable to parse bytes as PEM block"),
    );
}
