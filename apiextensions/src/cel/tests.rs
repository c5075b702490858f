use serde_json::{Value as Json, json};

use super::*;

/// Every CRD of the fixtures, as JSON.
fn fixture_crds() -> Vec<(String, Json)> {
    crate::fixtures::crds().to_vec()
}

fn fixture(name: &str) -> Json {
    crate::fixtures::crd(name)
}

fn version_schema(crd: &Json) -> &Json {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

fn count_rules(schema: &Json) -> usize {
    match schema {
        Json::Object(fields) => {
            fields
                .get("x-kubernetes-validations")
                .and_then(Json::as_array)
                .map_or(0, Vec::len)
                + fields.values().map(count_rules).sum::<usize>()
        }
        Json::Array(items) => items.iter().map(count_rules).sum(),
        _ => 0,
    }
}

fn compile(schema: &Json) -> Rules {
    Rules::compile(schema, "spec.validation.openAPIV3Schema")
        .unwrap_or_else(|causes| panic!("does not compile: {causes:#?}"))
}

fn compile_errors(schema: &Json) -> Vec<Cause> {
    match Rules::compile(schema, "spec.validation.openAPIV3Schema") {
        Ok(_) => panic!("compiled"),
        Err(causes) => causes,
    }
}

/// A one-rule schema over an object with the given properties.
fn object_rule(properties: Json, rule: Json) -> Json {
    json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": properties, "x-kubernetes-validations": [rule]}
        }
    })
}

#[test]
fn every_fixture_rule_compiles() {
    let mut total = 0;
    for (file, crd) in fixture_crds() {
        for version in crd["spec"]["versions"].as_array().expect("versions") {
            let schema = &version["schema"]["openAPIV3Schema"];
            let rules = Rules::compile(schema, "spec.versions[0].schema.openAPIV3Schema")
                .unwrap_or_else(|causes| panic!("{file}: {causes:#?}"));
            let count = count_rules(schema);
            assert_eq!(rules.is_empty(), count == 0, "{file}");
            total += count;
        }
    }
    assert!(total >= 27, "only {total} rules in the fixtures");
}

#[test]
fn venafi_exactly_one_of() {
    let crd = fixture("cert-manager.io_issuers.yaml");
    let rules = compile(version_schema(&crd));
    let issuer = |venafi: Json| json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "x"}, "spec": {"venafi": venafi}});
    let one = issuer(
        json!({"zone": "z", "tpp": {"url": "https://tpp", "credentialsRef": {"name": "c"}}}),
    );
    assert_eq!(rules.validate(&one, None), vec![]);
    let none = issuer(json!({"zone": "z"}));
    let causes = rules.validate(&none, None);
    assert_eq!(
        causes,
        vec![Cause::new(
            "FieldValueInvalid",
            "spec.venafi",
            "Invalid value: exactly one of tpp, cloud, or ngts must be configured"
        )]
    );
    let two = issuer(
        json!({"zone": "z", "tpp": {"url": "u", "credentialsRef": {"name": "c"}}, "cloud": {"apiTokenSecretRef": {"name": "s"}}}),
    );
    assert_eq!(rules.validate(&two, None).len(), 1);
}

#[test]
fn prometheus_agent_daemonset_rules() {
    let crd = fixture("monitoring.coreos.com_prometheusagents.yaml");
    let rules = compile(version_schema(&crd));
    let agent = |spec: Json| json!({"metadata": {"name": "a"}, "spec": spec});
    assert_eq!(
        rules.validate(&agent(json!({"mode": "DaemonSet"})), None),
        vec![]
    );
    assert_eq!(rules.validate(&agent(json!({"replicas": 3})), None), vec![]);
    let fields = [
        ("replicas", json!(2)),
        ("storage", json!({})),
        ("shards", json!(2)),
        ("persistentVolumeClaimRetentionPolicy", json!({})),
        ("scrapeConfigSelector", json!({})),
        ("probeSelector", json!({})),
        ("scrapeConfigNamespaceSelector", json!({})),
        ("probeNamespaceSelector", json!({})),
        ("serviceMonitorSelector", json!({})),
        ("serviceMonitorNamespaceSelector", json!({})),
        ("additionalScrapeConfigs", json!({"name": "s", "key": "k"})),
        ("shardingStrategy", json!({})),
    ];
    for (name, value) in fields {
        let mut spec = json!({"mode": "DaemonSet"});
        spec[name] = value;
        let causes = rules.validate(&agent(spec), None);
        let expected = if name == "shards" {
            "shards cannot be greater than 1 when mode is DaemonSet".to_string()
        } else {
            format!("{name} cannot be set when mode is DaemonSet")
        };
        assert_eq!(
            causes,
            vec![Cause::new(
                "FieldValueInvalid",
                "spec",
                format!("Invalid value: {expected}")
            )],
            "{name}"
        );
    }
    // One shard is fine even in DaemonSet mode.
    assert_eq!(
        rules.validate(&agent(json!({"mode": "DaemonSet", "shards": 1})), None),
        vec![]
    );
}

#[test]
fn sharding_topology_rules() {
    for file in [
        "monitoring.coreos.com_prometheuses.yaml",
        "monitoring.coreos.com_prometheusagents.yaml",
    ] {
        let crd = fixture(file);
        let rules = compile(version_schema(&crd));
        let with = |spec: Json| json!({"metadata": {"name": "p"}, "spec": spec});
        let topology = |values: Json| json!({"mode": "Topology", "topology": {"label": "zone", "values": values}});
        let ok = with(json!({"shards": 3, "shardingStrategy": topology(json!(["a", "b", "c"]))}));
        assert_eq!(rules.validate(&ok, None), vec![], "{file}");
        let too_few =
            with(json!({"shards": 2, "shardingStrategy": topology(json!(["a", "b", "c"]))}));
        assert_eq!(
            rules.validate(&too_few, None),
            vec![Cause::new(
                "FieldValueInvalid",
                "spec",
                "Invalid value: shards must be greater than or equal to the number of topology values when sharding strategy mode is Topology"
            )],
            "{file}"
        );
        // Without shards, one is assumed.
        let default_shards = with(json!({"shardingStrategy": topology(json!(["a", "b"]))}));
        assert_eq!(rules.validate(&default_shards, None).len(), 1, "{file}");
        let wrong_mode = with(json!({"shardingStrategy": {"topology": {"label": "zone"}}}));
        assert_eq!(
            rules.validate(&wrong_mode, None),
            vec![Cause::new(
                "FieldValueInvalid",
                "spec.shardingStrategy",
                "Invalid value: topology can only be defined when mode is set to 'Topology'"
            )],
            "{file}"
        );
    }
}

#[test]
fn update_strategy_and_sigv4_rules() {
    for file in [
        "monitoring.coreos.com_prometheuses.yaml",
        "monitoring.coreos.com_prometheusagents.yaml",
        "monitoring.coreos.com_thanosrulers.yaml",
    ] {
        let crd = fixture(file);
        let rules = compile(version_schema(&crd));
        let ok = json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {}},
            "remoteWrite": [{"url": "https://r", "sigv4": {"roleArn": "arn", "externalId": "e"}}]}});
        assert_eq!(rules.validate(&ok, None), vec![], "{file}");
        let bad = json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": {}},
            "remoteWrite": [{"url": "https://r"}, {"url": "https://r", "sigv4": {"externalId": "e"}}]}});
        let mut causes = rules.validate(&bad, None);
        causes.sort_by(|a, b| a.field.cmp(&b.field));
        assert_eq!(
            causes,
            vec![
                Cause::new(
                    "FieldValueInvalid",
                    "spec.remoteWrite[1].sigv4",
                    "Invalid value: externalId can only be used when roleArn is specified"
                ),
                Cause::new(
                    "FieldValueInvalid",
                    "spec.updateStrategy",
                    "Invalid value: rollingUpdate requires type to be RollingUpdate"
                ),
            ],
            "{file}"
        );
    }
    // The same sigv4 rule, deeper: receivers[].snsConfigs[].sigv4.
    let crd = fixture("monitoring.coreos.com_alertmanagerconfigs.yaml");
    let rules = compile(version_schema(&crd));
    let config = |sigv4: Json| json!({"spec": {"receivers": [{"name": "r", "snsConfigs": [{"sigv4": sigv4}]}]}});
    assert_eq!(
        rules.validate(&config(json!({"roleArn": "a", "externalId": "e"})), None),
        vec![]
    );
    let causes = rules.validate(&config(json!({"externalId": "e"})), None);
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, "spec.receivers[0].snsConfigs[0].sigv4");
    // and alerting.alertmanagers[].sigv4 of a Prometheus.
    let crd = fixture("monitoring.coreos.com_prometheuses.yaml");
    let rules = compile(version_schema(&crd));
    let prometheus = json!({"spec": {"alerting": {"alertmanagers": [{"name": "a", "namespace": "n", "port": 9093, "sigv4": {"externalId": "e"}}]}}});
    assert_eq!(
        rules.validate(&prometheus, None)[0].field,
        "spec.alerting.alertmanagers[0].sigv4"
    );
}

#[test]
fn scrape_config_at_most_one_auth() {
    let crd = fixture("monitoring.coreos.com_scrapeconfigs.yaml");
    let rules = compile(version_schema(&crd));
    assert_eq!(
        rules.validate(&json!({"spec": {"basicAuth": {}}}), None),
        vec![]
    );
    let causes = rules.validate(&json!({"spec": {"basicAuth": {}, "oauth2": {}}}), None);
    assert_eq!(
        causes,
        vec![Cause::new(
            "FieldValueInvalid",
            "spec",
            "Invalid value: at most one of basicAuth, authorization, or oauth2 can be configured"
        )]
    );
}

#[test]
fn default_message_reason_and_field_path() {
    let schema = object_rule(
        json!({"name": {"type": "string", "maxLength": 10}, "inner": {"type": "object", "properties": {"x": {"type": "integer"}}}}),
        json!({"rule": "self.name.startsWith('a')", "reason": "FieldValueForbidden", "fieldPath": ".name"}),
    );
    let rules = compile(&schema);
    assert_eq!(
        rules.validate(&json!({"spec": {"name": "abc"}}), None),
        vec![]
    );
    assert_eq!(
        rules.validate(&json!({"spec": {"name": "bcd"}}), None),
        vec![Cause::new(
            "FieldValueForbidden",
            "spec.name",
            "Forbidden: failed rule: self.name.startsWith('a')"
        )]
    );
    // A scalar's value is part of the message.
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 1"}]}}});
    let rules = compile(&schema);
    assert_eq!(
        rules.validate(&json!({"n": 0}), None),
        vec![Cause::new(
            "FieldValueInvalid",
            "n",
            "Invalid value: 0: failed rule: self > 1"
        )]
    );
}

#[test]
fn message_expression() {
    let schema = object_rule(
        json!({"replicas": {"type": "integer"}}),
        json!({"rule": "self.replicas <= 5", "messageExpression": "'replicas is ' + string(self.replicas) + ', at most 5'", "message": "static"}),
    );
    let rules = compile(&schema);
    assert_eq!(
        rules.validate(&json!({"spec": {"replicas": 7}}), None),
        vec![Cause::new(
            "FieldValueInvalid",
            "spec",
            "Invalid value: replicas is 7, at most 5"
        )]
    );
    // A messageExpression that fails falls back to the message.
    let schema = object_rule(
        json!({"replicas": {"type": "integer"}}),
        json!({"rule": "self.replicas <= 5", "messageExpression": "self.missing", "message": "static"}),
    );
    let causes = compile_errors(&schema);
    assert_eq!(
        causes[0].field,
        "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].messageExpression"
    );
    assert!(
        causes[0].message.contains(
            "messageExpression compilation failed: ERROR: <input>:1:5: undefined field 'missing'"
        ),
        "{}",
        causes[0].message
    );
    // A messageExpression must be a string.
    let schema = object_rule(
        json!({"r": {"type": "integer"}}),
        json!({"rule": "true", "messageExpression": "1"}),
    );
    assert!(
        compile_errors(&schema)[0]
            .message
            .ends_with("messageExpression must evaluate to a string")
    );
}

#[test]
fn transition_rules_need_an_old_value() {
    let schema = object_rule(
        json!({"mode": {"type": "string"}}),
        json!({"rule": "self.mode == oldSelf.mode", "message": "mode is immutable"}),
    );
    let rules = compile(&schema);
    let v1 = json!({"spec": {"mode": "a"}});
    let v2 = json!({"spec": {"mode": "b"}});
    // On create there is no oldSelf: the rule does not run.
    assert_eq!(rules.validate(&v2, None), vec![]);
    assert_eq!(
        rules.validate(&v2, Some(&v1)),
        vec![Cause::new(
            "FieldValueInvalid",
            "spec",
            "Invalid value: mode is immutable"
        )]
    );
    assert_eq!(rules.validate(&v1, Some(&v1)), vec![]);
}

/// An update's two passes together are the one pass with the old object: the rules without
/// `oldSelf` (run as on create) and `validate_transitions` (only the rules with it).
#[test]
fn transitions_alone_are_what_the_old_value_adds() {
    let schema = json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"replicas": {"type": "integer"}},
            "x-kubernetes-validations": [
                {"rule": "self.replicas >= 0", "message": "negative"},
                {"rule": "self.replicas >= oldSelf.replicas", "message": "may not shrink"},
            ],
        }},
    });
    let rules = compile(&schema);
    let old = json!({"spec": {"replicas": 3}});
    let new = json!({"spec": {"replicas": -1}});
    let cause = |message: &str| {
        Cause::new(
            "FieldValueInvalid",
            "spec",
            format!("Invalid value: {message}"),
        )
    };
    assert_eq!(rules.validate(&new, None), vec![cause("negative")]);
    assert_eq!(
        rules.validate_transitions(&new, &old),
        vec![cause("may not shrink")]
    );
    assert_eq!(
        rules.validate(&new, Some(&old)),
        vec![cause("negative"), cause("may not shrink")]
    );
    assert_eq!(rules.validate_transitions(&old, &old), vec![]);
}

#[test]
fn transition_rules_correlate_map_lists_by_key_only() {
    let item = json!({"type": "object", "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.size >= oldSelf.size", "message": "cannot shrink"}]});
    let schema = json!({"type": "object", "properties": {"volumes": {"type": "array", "maxItems": 10,
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": item}}});
    let rules = compile(&schema);
    let old = json!({"volumes": [{"name": "a", "size": 5}, {"name": "b", "size": 5}]});
    let new = json!({"volumes": [{"name": "b", "size": 4}, {"name": "a", "size": 6}, {"name": "c", "size": 1}]});
    assert_eq!(
        rules.validate(&new, Some(&old)),
        vec![Cause::new(
            "FieldValueInvalid",
            "volumes[0]",
            "Invalid value: cannot shrink"
        )]
    );
    // The items of an atomic list do not correlate: oldSelf is refused there.
    let mut atomic = schema.clone();
    atomic["properties"]["volumes"]["x-kubernetes-list-type"] = json!("atomic");
    let causes = compile_errors(&atomic);
    assert_eq!(
        causes[0].field,
        "spec.validation.openAPIV3Schema.properties[volumes].items.x-kubernetes-validations[0].rule"
    );
    assert!(causes[0].message.contains("oldSelf cannot be used on the uncorrelatable portion of the schema within spec.validation.openAPIV3Schema.properties[volumes]"), "{}", causes[0].message);
}

#[test]
fn transition_rules_correlate_map_values() {
    let schema = json!({"type": "object", "properties": {"labels": {"type": "object", "maxProperties": 100,
        "additionalProperties": {"type": "string", "maxLength": 63, "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutable"}]}}}});
    let rules = compile(&schema);
    let old = json!({"labels": {"a": "1", "b": "2"}});
    let new = json!({"labels": {"a": "1", "b": "3", "c": "4"}});
    assert_eq!(
        rules.validate(&new, Some(&old)),
        vec![Cause::new(
            "FieldValueInvalid",
            "labels[b]",
            "Invalid value: \"3\": immutable"
        )]
    );
}

#[test]
fn optional_old_self() {
    let schema = object_rule(
        json!({"x": {"type": "integer"}}),
        json!({"rule": "oldSelf.hasValue() ? self.x >= oldSelf.value().x : self.x < 10", "optionalOldSelf": true}),
    );
    let rules = compile(&schema);
    // On create oldSelf is optional.none(): the rule runs.
    assert_eq!(rules.validate(&json!({"spec": {"x": 5}}), None), vec![]);
    assert_eq!(rules.validate(&json!({"spec": {"x": 50}}), None).len(), 1);
    assert_eq!(
        rules.validate(
            &json!({"spec": {"x": 50}}),
            Some(&json!({"spec": {"x": 40}}))
        ),
        vec![]
    );
    assert_eq!(
        rules
            .validate(
                &json!({"spec": {"x": 30}}),
                Some(&json!({"spec": {"x": 40}}))
            )
            .len(),
        1
    );
    // Set without oldSelf in the rule, it is refused.
    let schema = object_rule(
        json!({"x": {"type": "integer"}}),
        json!({"rule": "self.x > 0", "optionalOldSelf": true}),
    );
    assert_eq!(
        compile_errors(&schema),
        vec![Cause::new(
            "FieldValueInvalid",
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].optionalOldSelf",
            "Invalid value: true: may not be set if oldSelf is not used in rule"
        )]
    );
}

#[test]
fn rules_that_do_not_compile() {
    let schema = object_rule(
        json!({"a": {"type": "string"}}),
        json!({"rule": "self.a ==", "message": "m"}),
    );
    let causes = compile_errors(&schema);
    assert_eq!(causes.len(), 1);
    assert_eq!(
        causes[0].field,
        "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    );
    assert!(
        causes[0].message.starts_with(
            "Invalid value: apiextensions.ValidationRule{Rule:\"self.a ==\", Message:\"m\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:10: Syntax error:"
        ),
        "{}",
        causes[0].message
    );
    assert!(
        causes[0].message.contains("\n | self.a ==\n | .........^"),
        "{}",
        causes[0].message
    );

    let undeclared = object_rule(
        json!({"a": {"type": "string"}}),
        json!({"rule": "other.a == 'x'"}),
    );
    assert!(compile_errors(&undeclared)[0].message.ends_with("compilation failed: ERROR: <input>:1:1: undeclared reference to 'other' (in container '')\n | other.a == 'x'\n | ^"));
    let undefined = object_rule(
        json!({"a": {"type": "string"}}),
        json!({"rule": "self.b == 'x'"}),
    );
    assert!(
        compile_errors(&undefined)[0]
            .message
            .contains("undefined field 'b'")
    );
    let not_bool = object_rule(json!({"a": {"type": "string"}}), json!({"rule": "self.a"}));
    assert!(
        compile_errors(&not_bool)[0]
            .message
            .ends_with(": cel expression must evaluate to a bool")
    );
    let unknown_function = object_rule(
        json!({"a": {"type": "string"}}),
        json!({"rule": "self.a.frobnicate()"}),
    );
    assert!(
        compile_errors(&unknown_function)[0]
            .message
            .contains("undeclared reference to 'frobnicate'")
    );
    let bad_reason = object_rule(
        json!({"a": {"type": "string"}}),
        json!({"rule": "true", "reason": "Nope"}),
    );
    assert_eq!(
        compile_errors(&bad_reason)[0].reason,
        "FieldValueNotSupported"
    );
    let bad_path = object_rule(
        json!({"a": {"type": "string"}}),
        json!({"rule": "true", "fieldPath": ".b"}),
    );
    assert!(
        compile_errors(&bad_path)[0]
            .message
            .ends_with("must be a valid path")
    );
    // Preserve-unknown-fields objects take any field.
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "x-kubernetes-validations": [{"rule": "self.anything == 1"}]});
    assert!(Rules::compile(&open, "p").is_ok());
}

#[test]
fn rules_over_the_cost_budget_are_refused() {
    // A nested comprehension over lists without maxItems: quadratic in ~1M items.
    let schema = json!({"type": "object", "properties": {"names": {"type": "array", "items": {"type": "string", "maxLength": 8},
        "x-kubernetes-validations": [{"rule": "self.all(x, self.all(y, x == y || x != y))"}]}}});
    let causes = compile_errors(&schema);
    assert_eq!(
        causes,
        vec![Cause::new(
            "FieldValueForbidden",
            "spec.validation.openAPIV3Schema.properties[names].x-kubernetes-validations[0].rule",
            "Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
        )]
    );
    // With maxItems the same rule fits.
    let mut bounded = schema.clone();
    bounded["properties"]["names"]["maxItems"] = json!(100);
    assert!(Rules::compile(&bounded, "p").is_ok());
}

#[test]
fn a_runtime_heavy_rule_is_cut_off() {
    // Bounded at compile time by maxItems, but cubic in the items at run time.
    let schema = json!({"type": "object", "properties": {"xs": {"type": "array", "maxItems": 200, "items": {"type": "integer"},
        "x-kubernetes-validations": [{"rule": "self.all(a, self.all(b, self.all(c, a + b + c > -1)))", "message": "m"}]}}});
    // The estimate (200³ steps) is over the static limit, so kube would refuse it...
    assert!(Rules::compile(&schema, "p").is_err());
    // ...and a smaller maxItems passes it, while the run-time meter still stops it when
    // the per-call limit is reached.
    let mut smaller = schema.clone();
    smaller["properties"]["xs"]["maxItems"] = json!(80);
    let rules = compile(&smaller);
    let xs: Vec<i64> = (0..80).collect();
    let started = std::time::Instant::now();
    let causes = rules.validate(&json!({"xs": xs}), None);
    assert_eq!(
        causes,
        vec![Cause::new(
            "FieldValueInvalid",
            "xs",
            "Invalid value: \"array\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: m"
        )]
    );
    let short: Vec<i64> = (0..10).collect();
    assert_eq!(rules.validate(&json!({"xs": short}), None), vec![]);
    println!("cut off after {:?}", started.elapsed());
}

#[test]
fn runtime_errors_are_reported() {
    let schema = object_rule(
        json!({"m": {"type": "object", "additionalProperties": {"type": "string"}}}),
        json!({"rule": "self.m['k'] == 'v'"}),
    );
    let rules = compile(&schema);
    assert_eq!(
        rules.validate(&json!({"spec": {"m": {}}}), None),
        vec![Cause::new(
            "FieldValueInvalid",
            "spec",
            "Invalid value: \"object\": no such key: k evaluating rule: self.m['k'] == 'v'"
        )]
    );
}

/// Evaluates `rule` with `self` = `value` typed by `schema`.
fn eval(rule: &str, schema: Json, value: Json) -> bool {
    let mut schema = schema;
    schema["x-kubernetes-validations"] = json!([{"rule": rule}]);
    let wrapper = json!({"type": "object", "properties": {"v": schema}});
    let rules = Rules::compile(&wrapper, "p").unwrap_or_else(|c| panic!("{rule}: {c:#?}"));
    let causes = rules.validate(&json!({"v": value}), None);
    for cause in &causes {
        assert!(
            cause.message.ends_with(&format!("failed rule: {rule}")),
            "{rule}: {cause:?}"
        );
    }
    causes.is_empty()
}

#[test]
fn library_functions() {
    let string = json!({"type": "string", "maxLength": 64});
    let strings =
        json!({"type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 64}});
    let ints = json!({"type": "array", "maxItems": 10, "items": {"type": "integer"}});
    let cases: &[(&str, &Json, Json, bool)] = &[
        ("self.matches('^[a-z]+$')", &string, json!("abc"), true),
        ("self.matches('^[a-z]+$')", &string, json!("aBc"), false),
        (
            "self.startsWith('ab') && self.endsWith('c') && self.contains('b')",
            &string,
            json!("abc"),
            true,
        ),
        (
            "self.lowerAscii() == 'abc' && self.upperAscii() == 'ABC'",
            &string,
            json!("aBc"),
            true,
        ),
        ("self.split(',') == ['a', 'b']", &string, json!("a,b"), true),
        (
            "self.split(',').join('-') == 'a-b'",
            &string,
            json!("a,b"),
            true,
        ),
        (
            "self.replace('a', 'x') == 'xbx'",
            &string,
            json!("aba"),
            true,
        ),
        ("self.trim() == 'a'", &string, json!("  a "), true),
        (
            "self.indexOf('b') == 1 && self.lastIndexOf('a') == 2",
            &string,
            json!("aba"),
            true,
        ),
        (
            "self.substring(1, 3) == 'bc' && self.substring(2) == 'c'",
            &string,
            json!("abc"),
            true,
        ),
        ("self.charAt(1) == 'b'", &string, json!("abc"), true),
        (
            "self.all(x, x.size() < 3)",
            &strings,
            json!(["a", "bb"]),
            true,
        ),
        (
            "self.all(x, x.size() < 3)",
            &strings,
            json!(["a", "bbb"]),
            false,
        ),
        (
            "self.exists(x, x == 'b')",
            &strings,
            json!(["a", "b"]),
            true,
        ),
        (
            "self.exists_one(x, x == 'a')",
            &strings,
            json!(["a", "a"]),
            false,
        ),
        (
            "self.map(x, x + '!') == ['a!', 'b!']",
            &strings,
            json!(["a", "b"]),
            true,
        ),
        (
            "self.filter(x, x != 'a').size() == 1",
            &strings,
            json!(["a", "b"]),
            true,
        ),
        ("self.isSorted()", &ints, json!([1, 2, 2, 5]), true),
        ("self.isSorted()", &ints, json!([2, 1]), false),
        (
            "self.sum() == 6 && self.min() == 1 && self.max() == 3",
            &ints,
            json!([3, 1, 2]),
            true,
        ),
        (
            "self.indexOf(2) == 1 && self.lastIndexOf(9) == -1",
            &ints,
            json!([1, 2]),
            true,
        ),
        ("size(self) == 2 && 1 in self", &ints, json!([1, 2]), true),
        (
            "isURL(self) && url(self).getHostname() == 'example.com' && url(self).getPort() == '8443' && url(self).getScheme() == 'https'",
            &string,
            json!("https://example.com:8443/p?q=1"),
            true,
        ),
        (
            "url(self).getEscapedPath() == '/p' && url(self).getQuery()['q'] == ['1']",
            &string,
            json!("https://example.com/p?q=1"),
            true,
        ),
        ("isURL(self)", &string, json!("not a url"), false),
        (
            "isQuantity(self) && quantity(self).isGreaterThan(quantity('1Gi'))",
            &string,
            json!("1500Mi"),
            true,
        ),
        (
            "quantity(self).isLessThan(quantity('1G'))",
            &string,
            json!("1Gi"),
            false,
        ),
        (
            "quantity(self).compareTo(quantity('100m')) == 0 && quantity(self).asApproximateFloat() == 0.1",
            &string,
            json!("0.1"),
            true,
        ),
        (
            "quantity(self).add(quantity('512Mi')) == quantity('1Gi') && quantity(self).isInteger() && quantity(self).asInteger() == 536870912",
            &string,
            json!("512Mi"),
            true,
        ),
        ("isQuantity(self)", &string, json!("12 apples"), false),
        (
            "self.find('[0-9]+') == '42' && self.findAll('[a-z]') == ['a', 'b']",
            &string,
            json!("a42b"),
            true,
        ),
        (
            "duration(self) == duration('90m')",
            &string,
            json!("1h30m"),
            true,
        ),
        (
            "timestamp(self) < timestamp('2030-01-01T00:00:00Z')",
            &string,
            json!("2024-05-01T10:00:00Z"),
            true,
        ),
    ];
    for (rule, schema, value, expected) in cases {
        assert_eq!(
            eval(rule, (*schema).clone(), value.clone()),
            *expected,
            "{rule} on {value}"
        );
    }
}

#[test]
fn optionals_and_schema_typed_values() {
    let object = json!({"type": "object", "properties": {
        "a": {"type": "object", "properties": {"b": {"type": "string"}}},
        "when": {"type": "string", "format": "date-time"},
        "every": {"type": "string", "format": "duration"},
        "ratio": {"type": "number"},
        "port": {"x-kubernetes-int-or-string": true},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    }});
    let cases: &[(&str, Json, bool)] = &[
        ("self.?a.?b.orValue('none') == 'none'", json!({}), true),
        (
            "self.?a.?b.orValue('none') == 'x'",
            json!({"a": {"b": "x"}}),
            true,
        ),
        ("self.?a.hasValue()", json!({}), false),
        ("self[?'a'].hasValue()", json!({"a": {}}), true),
        (
            "self.when < timestamp('2025-01-01T00:00:00Z')",
            json!({"when": "2024-01-01T00:00:00Z"}),
            true,
        ),
        ("self.every > duration('1m')", json!({"every": "5m"}), true),
        ("self.ratio == 2.0", json!({"ratio": 2}), true),
        (
            "type(self.port) == string || self.port > 0",
            json!({"port": 8080}),
            true,
        ),
        ("type(self.port) == string", json!({"port": "http"}), true),
        (
            "self.extra.whatever.nested == 1",
            json!({"extra": {"whatever": {"nested": 1}}}),
            true,
        ),
    ];
    for (rule, value, expected) in cases {
        assert_eq!(
            eval(rule, object.clone(), value.clone()),
            *expected,
            "{rule} on {value}"
        );
    }
}

#[test]
fn root_metadata_only_has_name_and_generate_name() {
    let schema = json!({"type": "object", "properties": {"metadata": {"type": "object"}},
        "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('a') && self.kind == 'K'"}]});
    let rules = compile(&schema);
    assert_eq!(
        rules.validate(
            &json!({"kind": "K", "metadata": {"name": "abc", "labels": {"x": "y"}}}),
            None
        ),
        vec![]
    );
    assert_eq!(
        rules
            .validate(&json!({"kind": "K", "metadata": {"name": "bcd"}}), None)
            .len(),
        1
    );
    // Labels are not declared to rules: kube refuses the rule.
    let labels = json!({"type": "object", "properties": {"metadata": {"type": "object"}},
        "x-kubernetes-validations": [{"rule": "has(self.metadata.labels)"}]});
    assert!(
        compile_errors(&labels)[0]
            .message
            .contains("undefined field 'labels'")
    );
}

#[test]
fn expressions_over_named_json_variables() {
    use crate::cel::Expression;
    let object = json!({"metadata": {"name": "deny-me", "labels": {"a": "b"}}});
    let request = json!({"operation": "CREATE"});
    let expression = Expression::compile(
        "request.operation == 'CREATE' && object.metadata.name.startsWith('deny-')",
    )
    .unwrap();
    assert_eq!(
        expression.eval_bool(&[("object", &object), ("request", &request)]),
        Ok(true)
    );
    let other = json!({"metadata": {"name": "keep"}});
    assert_eq!(
        expression.eval_bool(&[("object", &other), ("request", &request)]),
        Ok(false)
    );
    // Not a bool, a missing field, a syntax error: errors.
    assert!(
        Expression::compile("object.metadata.name")
            .unwrap()
            .eval_bool(&[("object", &object)])
            .is_err()
    );
    assert!(
        Expression::compile("object.spec.x == 1")
            .unwrap()
            .eval_bool(&[("object", &object)])
            .is_err()
    );
    assert!(Expression::compile("object.(").is_err());
}
