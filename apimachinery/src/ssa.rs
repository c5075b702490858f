//! Server-side apply (`application/apply-patch+yaml`): merging an applied configuration
//! into the live object, field ownership and conflicts.
//!
//! An apply by manager M of configuration C:
//! 1. merges C into the live object: objects key by key, lists by their list type (keyed
//!    lists by `x-kubernetes-list-map-keys`, sets as a union, atomic lists and values
//!    replaced), from the merge schema;
//! 2. finds conflicts: fields C sets to a different value that another manager owns. Without
//!    `force` they are a 409 naming each field and manager; with it M takes them over;
//! 3. removes the fields M applied last time and omits now, unless another manager owns
//!    them (or something below them);
//! 4. records C's fields as M's `Apply` entry; other entries lose fields that are gone.
//!
//! The first apply to an object without managedFields records its existing fields under
//! `before-first-apply`, as kube does, so they are not removed or silently taken.

use crate::registry::Resource;
use kubecache_core::merge_schema::{ListType, Schema};
use kubecache_core::status::{ApiError, Cause, Reason};
use serde_json::{Map, Value};

use crate::fieldset::{self, Element, FieldSet, Path};
use crate::managed::{self, Manager, Operation};
use crate::objects;

/// Who applies, and how.
pub struct Applier<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub subresource: &'a str,
    pub resource: &'a Resource,
}

/// Parses an apply body: YAML (JSON is YAML too, and takes the fast path).
pub fn parse(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the apply patch is not valid UTF-8"))?;
    let value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| bad_yaml(&e.to_string()))?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| bad_yaml(&e.to_string()))?
    };
    if !value.is_object() {
        return Err(bad_yaml("the applied configuration is not an object"));
    }
    Ok(value)
}

fn bad_yaml(detail: &str) -> ApiError {
    ApiError::bad_request(format!("error decoding YAML: {detail}"))
}

/// Applies `config` to `live` (`None`: the object does not exist yet) and returns the new
/// object, managedFields included.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    applier: &Applier<'_>,
) -> Result<Value, ApiError> {
    let resource = applier.resource;
    let schema = managed::schema_of(resource);
    let live_plain = live.map(managed::without_managed_fields);
    let mut managers = live.map(managed::read).unwrap_or_default();
    if let (Some(plain), true) = (&live_plain, managers.is_empty()) {
        let existing = managed::scope(
            fieldset::applied_fields(plain, schema),
            resource,
            applier.subresource,
        );
        if !existing.is_empty() {
            managers.push(Manager {
                name: "before-first-apply".into(),
                operation: Operation::Update,
                api_version: resource.api_version(),
                subresource: applier.subresource.to_string(),
                time: Some(objects::now_rfc3339()),
                fields: existing,
            });
        }
    }
    let config_plain = managed::without_managed_fields(config);
    let applied = managed::scope(
        fieldset::applied_fields(&config_plain, schema),
        resource,
        applier.subresource,
    );
    let empty = Value::Object(Map::new());
    let base = live_plain.as_ref().unwrap_or(&empty);
    let mut merged = merge(base, &config_plain, schema);

    let me = Manager {
        name: applier.manager.to_string(),
        operation: Operation::Apply,
        api_version: resource.api_version(),
        subresource: applier.subresource.to_string(),
        time: Some(objects::now_rfc3339()),
        fields: applied.clone(),
    };
    let changed = fieldset::changed_fields(live_plain.as_ref(), &merged, schema);
    let contested: Vec<FieldSet> = managers
        .iter()
        .map(|other| {
            if other.same_identity(&me) {
                FieldSet::default()
            } else {
                other.fields.intersection(&applied).intersection(&changed)
            }
        })
        .collect();
    if !applier.force {
        // kubectl moving an object from client-side to server-side apply may take what its
        // last-applied configuration still says, as kube's last-applied manager allows.
        let allowed = match (applier.manager, &live_plain) {
            ("kubectl", Some(live)) => last_applied_fields(live, resource, schema),
            _ => FieldSet::default(),
        };
        let conflicts: Vec<(String, Path)> = managers
            .iter()
            .zip(&contested)
            .flat_map(|(other, paths)| {
                paths
                    .paths()
                    .into_iter()
                    .map(move |path| (other.describe(), path))
            })
            .filter(|(_, path)| !allowed.contains(path))
            .collect();
        if !conflicts.is_empty() {
            return Err(conflict_error(conflicts));
        }
    }
    for (other, taken) in managers.iter_mut().zip(&contested) {
        other.fields = other.fields.difference(taken);
    }

    // Fields this manager applied before and omits now go, unless someone else holds them.
    let previous = managers
        .iter()
        .find(|m| m.same_identity(&me))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    let others = managers
        .iter()
        .filter(|m| !m.same_identity(&me))
        .fold(FieldSet::default(), |acc, m| acc.union(&m.fields));
    let dropped = previous.difference(&applied);
    let mut removals: Vec<Path> = dropped
        .paths()
        .into_iter()
        .filter(|path| !others.contains(path) && !owns_below(&others, path))
        .collect();
    // Shallowest first: removing an item removes its fields (their own removal is then a
    // no-op), and the item is still found by its key.
    removals.sort_by_key(|p| p.len());
    for path in &removals {
        remove_path(&mut merged, path, schema);
    }

    let existing = fieldset::all_paths(&merged, schema);
    managers.retain(|m| !m.same_identity(&me));
    for m in &mut managers {
        m.fields = m.fields.intersection(&existing);
    }
    managers.push(Manager {
        fields: applied.intersection(&existing),
        ..me
    });
    managed::write(&mut merged, &managers);
    Ok(merged)
}

/// The fields of the live object's `kubectl.kubernetes.io/last-applied-configuration` that
/// still have the values it gives (empty without the annotation, or for another version).
fn last_applied_fields(live: &Value, resource: &Resource, schema: Schema) -> FieldSet {
    let Some(last) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
    else {
        return FieldSet::default();
    };
    if last.get("apiVersion").and_then(Value::as_str) != Some(resource.api_version().as_str()) {
        return FieldSet::default();
    }
    let differing = fieldset::changed_fields(Some(live), &last, schema);
    fieldset::applied_fields(&last, schema).difference(&differing)
}

/// Some path strictly below `path` is in `set`.
fn owns_below(set: &FieldSet, path: &[Element]) -> bool {
    set.paths()
        .iter()
        .any(|p| p.len() > path.len() && p.starts_with(path))
}

/// The 409 kube answers: `Apply failed with 1 conflict: conflict with "a": .spec.replicas`,
/// or for several, one block per manager (sorted) listing its fields.
fn conflict_error(conflicts: Vec<(String, Path)>) -> ApiError {
    let message = if let [(manager, path)] = conflicts.as_slice() {
        format!(
            "Apply failed with 1 conflict: conflict with {manager}: {}",
            fieldset::display(path)
        )
    } else {
        let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for manager in managers {
            lines.push(format!("conflicts with {manager}:"));
            for (_, path) in conflicts.iter().filter(|(m, _)| m == manager) {
                lines.push(format!("- {}", fieldset::display(path)));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let mut err = ApiError::new(409, Reason::Conflict, message);
    err.causes = conflicts
        .iter()
        .map(|(manager, path)| {
            Cause::new(
                "FieldManagerConflict",
                &fieldset::display(path),
                format!("conflict with {manager}"),
            )
        })
        .collect();
    err
}

/// Merges an applied configuration into `live` by the merge schema.
pub fn merge(live: &Value, config: &Value, schema: Schema) -> Value {
    if schema.is_atomic() {
        return config.clone();
    }
    match (live, config) {
        (Value::Object(live), Value::Object(config)) => {
            let mut result = live.clone();
            for (key, value) in config {
                if value.is_null() {
                    result.remove(key);
                    continue;
                }
                let merged = match result.get(key) {
                    Some(old) => merge(old, value, schema.child(key)),
                    None => value.clone(),
                };
                result.insert(key.clone(), merged);
            }
            Value::Object(result)
        }
        (Value::Array(live), Value::Array(config)) => match schema.list_field() {
            Some(field) if field.list_type == ListType::Map => Value::Array(merge_keyed(
                live,
                config,
                field.list_map_keys,
                schema.item(),
            )),
            Some(field) if field.list_type == ListType::Set => {
                let mut result = live.clone();
                for item in config {
                    if !result.contains(item) {
                        result.push(item.clone());
                    }
                }
                Value::Array(result)
            }
            _ => Value::Array(config.clone()),
        },
        (_, config) => config.clone(),
    }
}

/// Merges a keyed list as structured-merge-diff orders it: live-only items keep their
/// places, items of the configuration come in its order (merged with their live version),
/// an item both have is placed where the configuration's order reaches it.
fn merge_keyed(live: &[Value], config: &[Value], keys: &[&str], item: Schema) -> Vec<Value> {
    let key = |value: &Value| Element::key_of(value, keys);
    let live_keys: Vec<Element> = live.iter().map(key).collect();
    let config_keys: Vec<Element> = config.iter().map(key).collect();
    let in_config = |k: &Element| config_keys.contains(k);
    let live_item = |k: &Element| live_keys.iter().position(|l| l == k).map(|i| &live[i]);
    // The shared items, in the configuration's order.
    let mut shared = config_keys
        .iter()
        .filter(|k| live_keys.contains(k))
        .peekable();
    let mut merged_keys: Vec<&Element> = Vec::new();
    let mut result = Vec::with_capacity(live.len() + config.len());
    let (mut l, mut r) = (0, 0);
    while l < live.len() || r < config.len() {
        if l < live.len() && r < config.len() {
            if live_keys[l] == config_keys[r] {
                result.push(merge(&live[l], &config[r], item));
                merged_keys.push(&config_keys[r]);
                if shared.peek() == Some(&&config_keys[r]) {
                    shared.next();
                }
                l += 1;
                r += 1;
                continue;
            }
            if in_config(&live_keys[l]) && shared.peek() != Some(&&live_keys[l]) {
                l += 1;
                continue;
            }
        }
        if l < live.len() {
            if !in_config(&live_keys[l]) {
                result.push(live[l].clone());
                l += 1;
                continue;
            }
            if merged_keys.contains(&&live_keys[l]) {
                l += 1;
                continue;
            }
        }
        if r < config.len() {
            let k = &config_keys[r];
            result.push(match live_item(k) {
                Some(old) => merge(old, &config[r], item),
                None => config[r].clone(),
            });
            merged_keys.push(k);
            if shared.peek() == Some(&k) {
                shared.next();
            }
            r += 1;
        }
    }
    result
}

/// Removes the value at `path` from `object` (no-op when it is not there). A list or map
/// the removal leaves empty goes too, as structured-merge-diff drops it.
fn remove_path(object: &mut Value, path: &[Element], schema: Schema) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let emptied = |value: &Value| match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    };
    match (object, first) {
        (Value::Object(map), Element::Field(name)) => {
            if rest.is_empty() {
                map.remove(name);
            } else if let Some(child) = map.get_mut(name) {
                remove_path(child, rest, schema.child(name));
                if emptied(child) {
                    map.remove(name);
                }
            }
        }
        (Value::Array(items), element) => {
            let position = items
                .iter()
                .enumerate()
                .position(|(i, item)| fieldset::list_element(schema, i, item) == *element);
            if let Some(i) = position {
                if rest.is_empty() {
                    items.remove(i);
                } else {
                    remove_path(&mut items[i], rest, schema.item());
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn deployments() -> &'static Resource {
        static DEPLOYMENTS: std::sync::LazyLock<std::sync::Arc<Resource>> =
            std::sync::LazyLock::new(|| {
                Registry::builtin()
                    .lookup("apps", "v1", "deployments")
                    .unwrap()
            });
        &DEPLOYMENTS
    }

    fn applier(manager: &str, force: bool) -> Applier<'_> {
        Applier {
            manager,
            force,
            subresource: "",
            resource: deployments(),
        }
    }

    fn config(replicas: u32, containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}},
        })
    }

    #[test]
    fn yaml_and_json_bodies_parse() {
        let yaml = parse(b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"1\"\n").unwrap();
        assert_eq!(
            yaml,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}})
        );
        assert_eq!(parse(br#"{"a": 1}"#).unwrap(), json!({"a": 1}));
        assert_eq!(parse(b"- 1\n").unwrap_err().code, 400);
        assert_eq!(parse(b"a: [").unwrap_err().code, 400);
    }

    #[test]
    fn apply_creates_and_records_the_applier() {
        let created = apply(
            None,
            &config(2, json!([{"name": "a", "image": "x"}])),
            &applier("a", false),
        )
        .unwrap();
        assert_eq!(created["spec"]["replicas"], 2);
        let managers = managed::read(&created);
        assert_eq!(managers.len(), 1);
        assert_eq!(managers[0].operation, Operation::Apply);
        assert_eq!(
            managers[0].fields.to_fields_v1()["f:spec"]["f:template"]["f:spec"]["f:containers"],
            json!({r#"k:{"name":"a"}"#: {".": {}, "f:image": {}, "f:name": {}}})
        );
    }

    #[test]
    fn conflicts_unless_forced_and_shared_values_do_not_conflict() {
        let live = apply(
            None,
            &config(2, json!([{"name": "a", "image": "x"}])),
            &applier("a", false),
        )
        .unwrap();
        // Same values: b shares ownership, no conflict.
        let shared = apply(Some(&live), &config(2, json!([])), &applier("b", false)).unwrap();
        assert_eq!(managed::read(&shared).len(), 2);
        let err = apply(
            Some(&live),
            &config(3, json!([{"name": "a", "image": "y"}])),
            &applier("b", false),
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(err.reason, Reason::Conflict);
        assert_eq!(
            err.message,
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"a\"].image"
        );
        assert_eq!(err.causes.len(), 2);
        assert_eq!(err.causes[0].reason, "FieldManagerConflict");
        assert_eq!(err.causes[0].message, "conflict with \"a\"");
        let err = apply(Some(&live), &config(3, json!([])), &applier("b", false)).unwrap_err();
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
        );

        let forced = apply(Some(&live), &config(3, json!([])), &applier("b", true)).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let managers = managed::read(&forced);
        let a = managers.iter().find(|m| m.name == "a").unwrap();
        let b = managers.iter().find(|m| m.name == "b").unwrap();
        assert!(
            a.fields.to_fields_v1()["f:spec"]
                .get("f:replicas")
                .is_none()
        );
        assert!(
            b.fields.to_fields_v1()["f:spec"]
                .get("f:replicas")
                .is_some()
        );
    }

    #[test]
    fn omitted_fields_are_removed_unless_others_own_them() {
        let live = apply(
            None,
            &config(
                2,
                json!([{"name": "a", "image": "x"}, {"name": "s", "image": "y"}]),
            ),
            &applier("a", false),
        )
        .unwrap();
        // Someone else sets a label with an update.
        let mut labeled = live.clone();
        labeled["metadata"]["labels"]["owner"] = json!("ops");
        managed::record_update(
            deployments(),
            "",
            "kubectl-label",
            Some(&live),
            &mut labeled,
        );
        // a drops the sidecar, its replicas and its label app.
        let mut next = config(2, json!([{"name": "a", "image": "x"}]));
        next["spec"].as_object_mut().unwrap().remove("replicas");
        next["metadata"].as_object_mut().unwrap().remove("labels");
        let result = apply(Some(&labeled), &next, &applier("a", false)).unwrap();
        assert_eq!(
            result["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "x"}])
        );
        assert!(result["spec"].get("replicas").is_none(), "{result}");
        assert_eq!(result["metadata"]["labels"], json!({"owner": "ops"}));
        // A map the removals leave empty goes with them.
        let bare = apply(
            Some(&result),
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
            &applier("a", false),
        )
        .unwrap();
        assert!(bare.get("spec").is_none(), "{bare}");
    }

    #[test]
    fn first_apply_to_an_unmanaged_object_keeps_its_fields() {
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4, "paused": true}});
        let err = apply(Some(&live), &config(2, json!([])), &applier("a", false)).unwrap_err();
        assert!(
            err.message.contains("before-first-apply"),
            "{}",
            err.message
        );
        let ok = apply(Some(&live), &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"minReadySeconds": 5}}), &applier("a", false)).unwrap();
        assert_eq!(ok["spec"]["paused"], true);
        assert_eq!(ok["spec"]["minReadySeconds"], 5);
    }

    #[test]
    fn kubectl_takes_over_what_its_last_applied_configuration_still_says() {
        let last = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2, "paused": false}});
        let mut live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last.to_string()}},
            "spec": {"replicas": 2, "paused": true},
        });
        managed::record_update(
            deployments(),
            "",
            "kubectl-client-side-apply",
            None,
            &mut live,
        );
        let config = |replicas: u32, paused: bool| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": replicas, "paused": paused}});
        // replicas still matches the annotation: kubectl may take it; another manager may not.
        let taken = apply(Some(&live), &config(3, true), &applier("kubectl", false)).unwrap();
        assert_eq!(taken["spec"]["replicas"], 3);
        let err = apply(Some(&live), &config(3, true), &applier("other", false)).unwrap_err();
        assert_eq!(err.code, 409);
        // paused was changed since the last apply: still a conflict, also for kubectl.
        let err = apply(Some(&live), &config(2, false), &applier("kubectl", false)).unwrap_err();
        assert!(err.message.ends_with(".spec.paused"), "{}", err.message);
    }

    #[test]
    fn keyed_lists_keep_live_only_items_in_place() {
        let schema = Schema::of_root("", "v1", "Pod");
        let names = |v: &Value| -> Vec<String> {
            v["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        };
        let pod = |names: &[&str]| {
            let containers: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
            json!({"spec": {"containers": containers}})
        };
        let merged = merge(&pod(&["a", "x", "b"]), &pod(&["a", "b", "c"]), schema);
        assert_eq!(names(&merged), ["a", "x", "b", "c"]);
        let merged = merge(&pod(&["a", "x", "b"]), &pod(&["b", "a"]), schema);
        assert_eq!(names(&merged), ["x", "b", "a"]);
        let merged = merge(&pod(&["x"]), &pod(&["n"]), schema);
        assert_eq!(names(&merged), ["x", "n"]);
    }

    #[test]
    fn sets_union_and_atomic_values_replace() {
        let schema = Schema::of_root("apps", "v1", "Deployment");
        let live = json!({"metadata": {"finalizers": ["a"]}, "spec": {"selector": {"matchLabels": {"x": "1", "y": "2"}}}});
        let config = json!({"metadata": {"finalizers": ["b"]}, "spec": {"selector": {"matchLabels": {"x": "1"}}}});
        assert_eq!(
            merge(&live, &config, schema),
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"selector": {"matchLabels": {"x": "1"}}}})
        );
    }
}
