use serde_json::{Value, json};

use super::structural::check;
use super::*;

fn schema(json: Value) -> Schema {
    Schema::parse(&json).expect("schema parses")
}

/// `field: message`, as kube's `field.Error` prints.
fn messages(causes: &[Cause]) -> Vec<String> {
    causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

fn spec_schema(spec: Value) -> Schema {
    schema(json!({"type": "object", "properties": {"spec": spec}}))
}

fn errors(spec: Value, value: Value) -> Vec<String> {
    messages(&spec_schema(spec).validate(&json!({"spec": value})))
}

#[test]
fn type_mismatch_is_reported_as_kube_words_it() {
    let s = spec_schema(json!({"type": "object", "properties": {"replicas": {"type": "integer"}}}));
    let causes = s.validate(&json!({"spec": {"replicas": "three"}}));
    assert_eq!(
        messages(&causes),
        [
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ]
    );
    assert_eq!(causes[0].reason, "FieldValueTypeInvalid");
}

#[test]
fn integral_floats_are_integers_and_integers_are_numbers() {
    let spec = json!({"type": "object", "properties": {
        "i": {"type": "integer"}, "n": {"type": "number"}}});
    assert!(errors(spec.clone(), json!({"i": 3.0, "n": 3})).is_empty());
    assert_eq!(
        errors(spec, json!({"i": 3.5})),
        [r#"spec.i: Invalid value: "number": spec.i in body must be of type integer: "number""#]
    );
}

#[test]
fn null_is_refused_unless_nullable() {
    let spec = json!({"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "string", "nullable": true}}});
    assert_eq!(
        errors(spec, json!({"a": null, "b": null})),
        [r#"spec.a: Invalid value: "null": spec.a in body must be of type string: "null""#]
    );
}

#[test]
fn int_or_string_accepts_both_and_names_both() {
    let spec =
        json!({"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": true}}});
    assert!(errors(spec.clone(), json!({"port": 80})).is_empty());
    assert!(errors(spec.clone(), json!({"port": "http"})).is_empty());
    assert_eq!(
        errors(spec, json!({"port": true})),
        [
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#
        ]
    );
}

#[test]
fn enum_is_unsupported_value() {
    let spec = json!({"type": "object", "properties": {"mode": {"type": "string", "enum": ["a", "b"]},
        "n": {"type": "integer", "enum": [1, 2]}}});
    assert_eq!(
        errors(spec, json!({"mode": "c", "n": 3})),
        [
            r#"spec.mode: Unsupported value: "c": supported values: "a", "b""#,
            r#"spec.n: Unsupported value: 3: supported values: "1", "2""#
        ]
    );
}

#[test]
fn required_fields() {
    let spec =
        json!({"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}});
    assert_eq!(errors(spec, json!({})), ["spec.name: Required value"]);
    let root = schema(
        json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}}),
    );
    assert_eq!(
        messages(&root.validate(&json!({}))),
        ["spec: Required value"]
    );
}

#[test]
fn string_lengths_count_characters_and_pattern() {
    let spec = json!({"type": "object", "properties": {
        "short": {"type": "string", "maxLength": 3},
        "long": {"type": "string", "minLength": 3},
        "word": {"type": "string", "pattern": "^[a-z]+$"}}});
    assert!(
        errors(
            spec.clone(),
            json!({"short": "äöü", "long": "abc", "word": "abc"})
        )
        .is_empty()
    );
    assert_eq!(
        errors(spec, json!({"short": "abcd", "long": "ab", "word": "A1"})),
        [
            "spec.long: Invalid value: \"ab\": spec.long in body should be at least 3 chars long",
            "spec.short: Too long: may not be more than 3 bytes",
            "spec.word: Invalid value: \"A1\": spec.word in body should match '^[a-z]+$'",
        ]
    );
}

#[test]
fn numeric_bounds_and_multiples() {
    let spec = json!({"type": "object", "properties": {
        "min": {"type": "integer", "minimum": 1},
        "xmax": {"type": "number", "maximum": 1.5, "exclusiveMaximum": true},
        "mult": {"type": "integer", "multipleOf": 5}}});
    assert_eq!(
        errors(spec, json!({"min": 0, "xmax": 1.5, "mult": 7})),
        [
            "spec.min: Invalid value: 0: spec.min in body should be greater than or equal to 1",
            "spec.mult: Invalid value: 7: spec.mult in body should be a multiple of 5",
            "spec.xmax: Invalid value: 1.5: spec.xmax in body should be less than 1.5",
        ]
    );
}

#[test]
fn array_counts_and_uniqueness() {
    let spec = json!({"type": "object", "properties": {
        "few": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "many": {"type": "array", "items": {"type": "string"}, "maxItems": 1},
        "items": {"type": "array", "items": {"type": "integer"}}}});
    assert_eq!(
        errors(
            spec,
            json!({"few": ["a"], "many": ["a", "b"], "items": [1, "x"]})
        ),
        [
            "spec.few: Invalid value: 1: spec.few in body should have at least 2 items",
            r#"spec.items[1]: Invalid value: "string": spec.items[1] in body must be of type integer: "string""#,
            "spec.many: Too many: 2: must have at most 1 item",
        ]
    );
}

#[test]
fn property_counts_and_additional_properties() {
    let spec = json!({"type": "object", "properties": {
        "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1},
        "closed": {"type": "object", "additionalProperties": false, "minProperties": 1}}});
    assert_eq!(
        errors(spec, json!({"labels": {"a": "x", "b": 2}, "closed": {}})),
        [
            "spec.closed: Invalid value: 0: spec.closed in body should have at least 1 properties",
            "spec.labels: Too many: 2: must have at most 1 item",
            r#"spec.labels.b: Invalid value: "integer": spec.labels.b in body must be of type string: "integer""#,
        ]
    );
}

#[test]
fn formats_kube_checks() {
    let spec = json!({"type": "object", "properties": {
        "data": {"type": "string", "format": "byte"},
        "count": {"type": "integer", "format": "int32"},
        "when": {"type": "string", "format": "date-time"}}});
    // kube strips int32 and date-time before validating.
    assert!(errors(spec.clone(), json!({"count": 1, "when": "yesterday"})).is_empty());
    assert_eq!(
        errors(spec, json!({"data": "%%"})),
        [r#"spec.data: Invalid value: "%%": spec.data in body must be of type byte: "%%""#]
    );
}

#[test]
fn composition_keywords() {
    let spec = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
    assert!(errors(spec.clone(), json!({"a": "x"})).is_empty());
    let both = errors(spec.clone(), json!({"a": "x", "b": "y"}));
    assert_eq!(
        both,
        [
            r#": Invalid value: "": "spec" must validate one and only one schema (oneOf). Found 2 valid alternatives"#
        ]
    );
    let none = errors(spec, json!({}));
    assert_eq!(
        none[0],
        r#": Invalid value: "": "spec" must validate one and only one schema (oneOf). Found none valid"#
    );
    assert!(none.contains(&"spec.a: Required value".to_string()));

    let not = json!({"type": "string", "not": {"enum": ["bad"]}});
    assert_eq!(
        errors(not, json!("bad")),
        [r#": Invalid value: "": "spec" must not validate the schema (not)"#]
    );
}

#[test]
fn list_type_set_and_map_duplicates() {
    let spec = json!({"type": "object", "properties": {
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["port", "protocol"],
            "items": {"type": "object", "required": ["port", "protocol"], "properties": {
                "port": {"type": "integer"}, "protocol": {"type": "string"}}}}}});
    let causes = spec_schema(spec).validate(&json!({"spec": {
        "tags": ["a", "b", "a", "a"],
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"},
                  {"protocol": "TCP", "port": 80}]}}));
    assert_eq!(
        messages(&causes),
        [
            r#"spec.tags[2]: Duplicate value: "a""#,
            r#"spec.ports[2]: Duplicate value: {"port":80,"protocol":"TCP"}"#,
        ]
    );
    assert!(causes.iter().all(|c| c.reason == "FieldValueDuplicate"));
}

#[test]
fn embedded_resources_need_api_version_and_kind() {
    let spec = json!({"type": "object", "properties": {"template": {
        "type": "object", "x-kubernetes-embedded-resource": true,
        "x-kubernetes-preserve-unknown-fields": true}}});
    assert_eq!(
        errors(spec.clone(), json!({"template": {"metadata": {}}})),
        [
            "spec.template.apiVersion: Required value",
            "spec.template.kind: Required value"
        ]
    );
    assert_eq!(
        errors(
            spec.clone(),
            json!({"template": {"apiVersion": "a/b/c", "kind": "Pod"}})
        ),
        [
            r#"spec.template.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#
        ]
    );
    assert!(
        errors(
            spec,
            json!({"template": {"apiVersion": "v1", "kind": "Pod"}})
        )
        .is_empty()
    );
}

#[test]
fn pruning_removes_unknown_fields_and_reports_paths() {
    let s = schema(json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "keep": {"type": "string"},
            "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"inner": {"type": "object", "properties": {"x": {"type": "string"}}}}},
            "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
            "pod": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}}}}}));
    let mut object = json!({
        "apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "x"},
        "status": {"phase": "x"},
        "spec": {"keep": "k", "drop": 1,
            "list": [{"a": "1", "b": "2"}],
            "free": {"anything": 1, "inner": {"x": "1", "y": 2}},
            "map": {"k": {"v": "1", "w": "2"}},
            "pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "extra": 1}}});
    let pruned = s.prune(&mut object);
    assert_eq!(
        pruned,
        [
            "spec.drop",
            "spec.free.inner.y",
            "spec.list[0].b",
            "spec.map.k.w",
            "spec.pod.extra",
            "status"
        ]
    );
    assert_eq!(
        object,
        json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "x"},
            "spec": {"keep": "k", "list": [{"a": "1"}],
                "free": {"anything": 1, "inner": {"x": "1"}},
                "map": {"k": {"v": "1"}},
                "pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}})
    );
}

#[test]
fn defaults_fill_absent_and_non_nullable_null_fields() {
    let s = schema(
        json!({"type": "object", "properties": {"spec": {"type": "object",
        "default": {},
        "properties": {
            "replicas": {"type": "integer", "default": 1},
            "mode": {"type": "string", "default": "auto"},
            "gone": {"type": "string"},
            "keep": {"type": "string", "nullable": true},
            "nested": {"type": "object", "default": {"on": true}, "properties": {
                "on": {"type": "boolean"}, "level": {"type": "integer", "default": 3}}},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "weight": {"type": "integer", "default": 10}}}}}}}}),
    );
    let mut object =
        json!({"spec": {"mode": null, "gone": null, "keep": null, "items": [{}, {"weight": 2}]}});
    s.apply_defaults(&mut object);
    assert_eq!(
        object,
        json!({"spec": {"mode": "auto", "keep": null, "replicas": 1,
            "nested": {"on": true, "level": 3},
            "items": [{"weight": 10}, {"weight": 2}]}})
    );
    let mut empty = json!({});
    s.apply_defaults(&mut empty);
    assert_eq!(empty["spec"]["replicas"], json!(1));
    assert_eq!(empty["spec"]["nested"]["level"], json!(3));
}

#[test]
fn parse_rejects_invalid_patterns_and_types() {
    let causes = Schema::parse(&json!({"type": "object", "properties": {
        "a": {"type": "string", "pattern": "+"}, "b": {"type": "strin"}}}))
    .unwrap_err();
    assert_eq!(causes.len(), 2);
    assert!(causes[0].field == "properties[a].pattern", "{causes:?}");
    assert!(
        causes[1]
            .message
            .starts_with("Unsupported value: \"strin\"")
    );
}

#[test]
fn nodes_stay_small() {
    // A plain node must stay a few words: a thousand large schemas are kept loaded.
    assert!(
        std::mem::size_of::<Node>() <= 96,
        "{}",
        std::mem::size_of::<Node>()
    );
}

mod structural_rules {
    use super::*;

    const PATH: &str = "spec.versions[0].schema.openAPIV3Schema";

    fn check_spec(spec: Value) -> Vec<String> {
        messages(&check(
            &json!({"type": "object", "properties": {"spec": spec}}),
            PATH,
        ))
    }

    #[test]
    fn types_are_required_on_every_node() {
        assert_eq!(
            messages(&check(
                &json!({"properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
                PATH
            )),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
                "spec.versions[0].schema.openAPIV3Schema.type: Required value: must not be empty at the root",
            ]
        );
        assert_eq!(
            check_spec(json!({"type": "array", "items": {}})),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].items.type: Required value: must not be empty for specified array items"
            ]
        );
        assert!(check_spec(json!({"x-kubernetes-preserve-unknown-fields": true})).is_empty());
        assert!(check_spec(json!({"x-kubernetes-int-or-string": true})).is_empty());
        assert_eq!(
            check_spec(json!({"type": "array"})),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].items: Required value: must be specified"
            ]
        );
    }

    #[test]
    fn value_validations_may_not_carry_structure() {
        let errs = check_spec(
            json!({"type": "object", "properties": {"a": {"type": "string"}},
            "anyOf": [{"type": "object", "properties": {"a": {"description": "x"}}}, {"required": ["b"]}]}),
        );
        assert_eq!(
            errs,
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].anyOf[0].properties[a].description: Forbidden: must be empty to be structural",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural",
            ]
        );
        // kube checks completeness against the value validations of the root.
        let missing = check(
            &json!({"type": "object", "oneOf": [{"properties": {"b": {"minLength": 1}}}]}),
            PATH,
        );
        assert_eq!(
            messages(&missing),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[b]: Required value: because it is defined in spec.versions[0].schema.openAPIV3Schema.oneOf[0].properties[b]"
            ]
        );
        // The int-or-string pattern is allowed.
        assert!(
            check_spec(json!({"x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]}))
            .is_empty()
        );
    }

    #[test]
    fn root_metadata_may_only_restrict_names() {
        let ok = json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"name": {"type": "string", "maxLength": 20}}}}});
        assert!(check(&ok, PATH).is_empty());
        let bad = json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"labels": {"type": "object"}}}}});
        assert_eq!(
            messages(&check(&bad, PATH)),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            ]
        );
    }

    #[test]
    fn additional_properties_rules() {
        assert_eq!(
            check_spec(
                json!({"type": "object", "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"}})
            ),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
            ]
        );
        assert!(messages(&check(&json!({"type": "object", "additionalProperties": true}), PATH))
            .contains(&"spec.versions[0].schema.openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root".to_string()));
    }

    #[test]
    fn preserve_unknown_fields_false_and_nullable_root() {
        assert_eq!(
            check_spec(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false})),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
            ]
        );
        assert_eq!(
            messages(&check(&json!({"type": "object", "nullable": true}), PATH)),
            [
                "spec.versions[0].schema.openAPIV3Schema.nullable: Forbidden: nullable cannot be true at the root"
            ]
        );
    }

    #[test]
    fn list_map_keys_must_be_required_or_defaulted_scalars() {
        let errs = check_spec(json!({"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name", "sub", "missing"],
            "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "sub": {"type": "object"}}}}));
        let p = "spec.versions[0].schema.openAPIV3Schema.properties[spec]";
        assert_eq!(
            errs,
            [
                format!(
                    "{p}.items.properties[sub].type: Invalid value: \"object\": must be a scalar type if parent array's x-kubernetes-list-type is map"
                ),
                format!(
                    "{p}.x-kubernetes-list-map-keys: Invalid value: [\"name\",\"sub\",\"missing\"]: entries must all be names of item properties"
                ),
                format!(
                    "{p}.items.properties[name].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
                ),
                format!(
                    "{p}.items.properties[sub].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
                ),
            ]
        );
        assert_eq!(
            check_spec(json!({"type": "string", "x-kubernetes-list-type": "set"})),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Invalid value: \"string\": must be array if x-kubernetes-list-type is specified"
            ]
        );
    }

    #[test]
    fn defaults_must_validate_and_be_pruned() {
        let p = "spec.versions[0].schema.openAPIV3Schema.properties[spec]";
        assert_eq!(
            check_spec(json!({"type": "object", "properties": {
                "replicas": {"type": "integer", "minimum": 1, "default": 0}}})),
            [format!(
                "{p}.properties[replicas].default: Invalid value: 0:  in body should be greater than or equal to 1"
            )]
        );
        assert_eq!(
            check_spec(json!({"type": "object", "default": {"a": 1, "b": 2},
                "properties": {"a": {"type": "integer"}}})),
            [format!(
                "{p}.default: Invalid value: {{\"a\":1,\"b\":2}}: must not have unknown fields"
            )]
        );
        assert_eq!(
            messages(&check(
                &json!({"type": "object", "properties": {
                "metadata": {"type": "object", "default": {"name": "x"}}}}),
                PATH
            )),
            [
                "spec.versions[0].schema.openAPIV3Schema.properties[metadata].default: Forbidden: must not be set in top-level metadata"
            ]
        );
    }

    #[test]
    fn unsupported_keywords() {
        let p = "spec.versions[0].schema.openAPIV3Schema.properties[spec]";
        assert_eq!(
            check_spec(json!({"type": "array", "uniqueItems": true, "items": {"type": "string"}})),
            [format!(
                "{p}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
            )]
        );
        assert_eq!(
            check_spec(json!({"type": "object", "$ref": "#/x"})),
            [format!("{p}.$ref: Forbidden: $ref is not supported")]
        );
    }
}

mod fixtures {
    use super::*;

    /// `(version name, schema)` of every version of a fixture CRD.
    fn schemas(crd: &Value) -> Vec<(String, Value)> {
        crd["spec"]["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap_or_default().to_string(),
                    v["schema"]["openAPIV3Schema"].clone(),
                )
            })
            .collect()
    }

    fn fixture_schema(file: &str, version: &str) -> Schema {
        let crd = crate::fixtures::crd(file.rsplit('/').next().unwrap_or(file));
        let (_, json) = schemas(&crd)
            .into_iter()
            .find(|(name, _)| name == version)
            .expect("version exists");
        Schema::parse(&json).expect("fixture schema parses")
    }

    #[test]
    fn every_fixture_schema_parses_and_is_structural() {
        let files = crate::fixtures::crds();
        let mut versions = 0;
        for (file, crd) in files {
            for (i, (name, json)) in schemas(crd).into_iter().enumerate() {
                let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
                let causes = check(&json, &path);
                assert!(causes.is_empty(), "{file} {name}: {:#?}", messages(&causes));
                Schema::parse(&json).unwrap_or_else(|c| panic!("{file} {name}: {c:?}"));
                versions += 1;
            }
        }
        assert!(versions >= files.len());
    }

    fn certificate() -> Value {
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "example-com", "namespace": "default"},
            "spec": {
                "secretName": "example-com-tls",
                "duration": "2160h",
                "renewBefore": "360h",
                "commonName": "example.com",
                "dnsNames": ["example.com", "www.example.com"],
                "privateKey": {"algorithm": "RSA", "encoding": "PKCS1", "size": 2048, "rotationPolicy": "Always"},
                "usages": ["server auth", "client auth"],
                "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"}
            }
        })
    }

    #[test]
    fn a_real_certificate_validates_clean_and_a_broken_one_does_not() {
        let s = fixture_schema("cert-manager/cert-manager.io_certificates.yaml", "v1");
        let mut good = certificate();
        assert!(s.prune(&mut good).is_empty());
        s.apply_defaults(&mut good);
        assert_eq!(messages(&s.validate(&good)), Vec::<String>::new());

        let mut bad = certificate();
        bad["spec"]["privateKey"]["algorithm"] = json!("DSA");
        bad["spec"]["dnsNames"] = json!("example.com");
        bad["spec"]["issuerRef"]
            .as_object_mut()
            .unwrap()
            .remove("name");
        bad["spec"]["color"] = json!("blue");
        assert_eq!(s.prune(&mut bad), ["spec.color"]);
        let errs = messages(&s.validate(&bad));
        assert!(
            errs.contains(&r#"spec.dnsNames: Invalid value: "string": spec.dnsNames in body must be of type array: "string""#.to_string()),
            "{errs:#?}"
        );
        assert!(
            errs.contains(&r#"spec.privateKey.algorithm: Unsupported value: "DSA": supported values: "RSA", "ECDSA", "Ed25519""#.to_string()),
            "{errs:#?}"
        );
        assert!(
            errs.contains(&"spec.issuerRef.name: Required value".to_string()),
            "{errs:#?}"
        );
    }

    fn service_monitor() -> Value {
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "web", "namespace": "monitoring", "labels": {"team": "web"}},
            "spec": {
                "selector": {"matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]},
                "namespaceSelector": {"matchNames": ["default"]},
                "endpoints": [{
                    "port": "http-metrics",
                    "path": "/metrics",
                    "interval": "30s",
                    "scrapeTimeout": "10s",
                    "scheme": "http",
                    "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod", "action": "replace"}]
                }],
                "jobLabel": "app"
            }
        })
    }

    #[test]
    fn a_real_service_monitor_validates_clean_and_a_broken_one_does_not() {
        let s = fixture_schema(
            "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
            "v1",
        );
        let mut good = service_monitor();
        assert_eq!(s.prune(&mut good), Vec::<String>::new());
        s.apply_defaults(&mut good);
        assert_eq!(messages(&s.validate(&good)), Vec::<String>::new());

        let mut bad = service_monitor();
        bad["spec"]["endpoints"][0]["interval"] = json!("30 seconds");
        bad["spec"]["endpoints"][0]["scheme"] = json!("ftp");
        bad["spec"]["selector"]["matchExpressions"][0]
            .as_object_mut()
            .unwrap()
            .remove("operator");
        let errs = messages(&s.validate(&bad));
        assert!(
            errs.iter().any(|e| e.starts_with(r#"spec.endpoints[0].interval: Invalid value: "30 seconds": spec.endpoints[0].interval in body should match '"#)),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with(r#"spec.endpoints[0].scheme: Unsupported value: "ftp""#)),
            "{errs:#?}"
        );
        assert!(
            errs.contains(
                &"spec.selector.matchExpressions[0].operator: Required value".to_string()
            ),
            "{errs:#?}"
        );
    }

    #[test]
    fn parse_cost_of_the_fixtures() {
        // Not timed: prints the JSON size and the parsed tree's node count so a change in
        // footprint shows up in the test log.
        let mut total_json = 0;
        let mut total_nodes = 0;
        for (file, crd) in crate::fixtures::crds() {
            for (name, json) in schemas(crd) {
                let bytes = serde_json::to_vec(&json).unwrap().len();
                let parsed = Schema::parse(&json).unwrap();
                let nodes = count_nodes(&parsed.root);
                assert!(nodes > 0);
                total_json += bytes;
                total_nodes += nodes;
                println!(
                    "{} {name}: schema {bytes} bytes of JSON, {nodes} nodes, ~{} bytes parsed",
                    file.rsplit('/').next().unwrap_or(file),
                    nodes * std::mem::size_of::<Node>()
                );
            }
        }
        println!(
            "total: {total_json} bytes of JSON, {total_nodes} nodes ({} bytes per node)",
            std::mem::size_of::<Node>()
        );
        assert!(total_nodes > 0);
    }

    fn count_nodes(node: &Node) -> usize {
        let mut count = 1;
        for (_, child) in node.properties.iter() {
            count += count_nodes(child);
        }
        if let Some(items) = &node.items {
            count += count_nodes(items);
        }
        if let Additional::Schema(schema) = &node.additional_properties {
            count += count_nodes(schema);
        }
        if let Some(checks) = &node.checks {
            for branch in checks
                .all_of
                .iter()
                .chain(&checks.any_of[..])
                .chain(&checks.one_of[..])
            {
                count += count_nodes(branch);
            }
        }
        count
    }
}
