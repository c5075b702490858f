//! Strategic merge patch (`application/strategic-merge-patch+json`), driven by the per-type
//! merge schema of [`kubecache_core::merge_schema`].
//!
//! A patch is merged into the current object recursively:
//! - objects merge key by key; a `null` value deletes the key;
//! - lists whose field declares `patchStrategy: merge` merge: lists of objects by their
//!   `patchMergeKey` (an item with `$patch: delete` removes the item with its key), lists of
//!   primitives as a set (union); every other list is replaced by the patch's list;
//! - directives: `$patch: replace | delete | merge` on an object or as a list item,
//!   `$retainKeys` (keys of the object not listed are cleared), `$setElementOrder/<field>`
//!   (the order of the merged list), `$deleteFromPrimitiveList/<field>` (values removed from
//!   a primitive list).
//!
//! Values the patch adds where there was nothing to merge with go through the same merge
//! against an empty value, so their directives and nulls are resolved too. Unknown fields
//! and the inside of opaque values have no schema: objects still merge, lists are replaced.

use kubecache_core::merge_schema::{Field, Schema};
use kubecache_core::status::ApiError;
use serde_json::{Map, Value};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Merges `patch` into `current`, whose type is `schema` (from
/// [`Schema::of_root`]).
pub fn merge(current: &Value, patch: &Value, schema: Schema) -> Result<Value> {
    merge_value(Some(current), patch, schema)
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request(message)
}

fn merge_value(current: Option<&Value>, patch: &Value, schema: Schema) -> Result<Value> {
    match (current, patch) {
        (Some(Value::Object(current)), Value::Object(patch)) => {
            Ok(Value::Object(merge_object(current, patch, schema)?))
        }
        (_, Value::Object(patch)) => Ok(Value::Object(merge_object(&Map::new(), patch, schema)?)),
        (current, Value::Array(patch)) => {
            let current = current
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            Ok(Value::Array(merge_list(current, patch, schema, None)?))
        }
        (_, scalar) => Ok(scalar.clone()),
    }
}

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

fn merge_object(
    current: &Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Schema,
) -> Result<Map<String, Value>> {
    let mut result = match patch.get(PATCH) {
        None => current.clone(),
        Some(Value::String(d)) if d == "merge" => current.clone(),
        Some(Value::String(d)) if d == "replace" => Map::new(),
        Some(Value::String(d)) if d == "delete" => return Ok(Map::new()),
        Some(other) => return Err(bad(format!("Unknown patch type: {other}"))),
    };
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Some(keys) = retain.as_array().filter(|k| k.iter().all(Value::is_string)) else {
            return Err(bad(format!(
                "doesn't support retainKeys with non-string values: {retain}"
            )));
        };
        let retained = |key: &str| keys.iter().any(|k| k.as_str() == Some(key));
        // Every field the patch sets must be retained.
        if patch
            .iter()
            .any(|(key, value)| !value.is_null() && !is_directive(key) && !retained(key))
        {
            return Err(bad("invalid patch format of retainKeys".to_string()));
        }
        result.retain(|key, _| retained(key));
    }
    for (key, values) in patch {
        let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) else {
            continue;
        };
        let Some(values) = values.as_array() else {
            return Err(bad(format!(
                "invalid $deleteFromPrimitiveList for {field}: not a list"
            )));
        };
        if let Some(Value::Array(items)) = result.get_mut(field) {
            items.retain(|item| !values.contains(item));
        }
    }
    let mut orders: Vec<(&str, &[Value])> = Vec::new();
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let Some(order) = order.as_array() else {
            return Err(bad(format!("invalid {key}: not a list")));
        };
        orders.push((field, order));
    }
    let order_of = |field: &str| orders.iter().find(|(f, _)| *f == field).map(|(_, o)| *o);
    for (key, value) in patch {
        if is_directive(key) {
            continue;
        }
        if value.is_null() {
            result.remove(key);
            continue;
        }
        let child = schema.child(key);
        let merged = match (result.get(key), value) {
            (current, Value::Array(items)) if current.is_none_or(Value::is_array) => {
                let current = current
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice);
                Value::Array(merge_list(current, items, child, order_of(key))?)
            }
            (current, value) => merge_value(current, value, child)?,
        };
        result.insert(key.clone(), merged);
    }
    // An order for a list the patch does not change: reorder the live list.
    for (field, order) in &orders {
        if patch.contains_key(*field) {
            continue;
        }
        let merge_key = schema
            .child(field)
            .list_field()
            .and_then(|f| f.patch_merge_key);
        if let Some(Value::Array(items)) = result.get_mut(*field) {
            let live = items.clone();
            *items = normalize_order(std::mem::take(items), order, &live, merge_key);
        }
    }
    Ok(result)
}

fn patch_directive(item: &Value) -> Option<&str> {
    item.get(PATCH).and_then(Value::as_str)
}

/// Merges a patch list into the live list. Merged lists are ordered as kube orders them:
/// the patch's items in `order` (the `$setElementOrder` list, else the patch list), the
/// live-only items in their live order, interleaved where the live list orders both.
fn merge_list(
    current: &[Value],
    patch: &[Value],
    schema: Schema,
    order: Option<&[Value]>,
) -> Result<Vec<Value>> {
    let item_schema = schema.item();
    let replaced = || -> Result<Vec<Value>> {
        patch
            .iter()
            .filter(|item| patch_directive(item).is_none())
            .map(|item| merge_value(None, item, item_schema))
            .collect()
    };
    let Some(field) = schema.list_field().filter(|f| f.patch_strategy.merges()) else {
        return replaced();
    };
    if patch
        .iter()
        .any(|item| patch_directive(item) == Some("replace"))
    {
        return replaced();
    }
    if patch.iter().chain(current).any(Value::is_array) {
        return Err(ApiError::new(
            422,
            kubecache_core::status::Reason::Invalid,
            "lists of lists are not supported".to_string(),
        ));
    }
    let merge_key = field.patch_merge_key;
    let merged = match merge_key {
        Some(key) => merge_keyed(current, patch, field, key, item_schema)?,
        None => {
            let mut result: Vec<Value> = Vec::new();
            for item in current.iter().chain(patch) {
                if !result.contains(item) {
                    result.push(item.clone());
                }
            }
            result
        }
    };
    let patch_items: Vec<Value> = patch
        .iter()
        .filter(|item| patch_directive(item).is_none())
        .cloned()
        .collect();
    Ok(normalize_order(
        merged,
        order.unwrap_or(&patch_items),
        current,
        merge_key,
    ))
}

fn merge_keyed(
    current: &[Value],
    patch: &[Value],
    field: &Field,
    key: &str,
    item_schema: Schema,
) -> Result<Vec<Value>> {
    let mut result = current.to_vec();
    for item in patch {
        if !item.is_object() {
            return Err(bad(format!(
                "the list {} merges by {key}, but an item is not an object: {item}",
                field.name
            )));
        }
        let Some(id) = item.get(key) else {
            return Err(bad(format!(
                "map: {item} does not contain declared merge key: {key}"
            )));
        };
        let directive = patch_directive(item);
        if directive == Some("delete") {
            result.retain(|old| old.get(key) != Some(id));
            continue;
        }
        match result.iter().position(|old| old.get(key) == Some(id)) {
            Some(i) => result[i] = merge_value(Some(&result[i]), item, item_schema)?,
            None => result.push(merge_value(None, item, item_schema)?),
        }
    }
    Ok(result)
}

/// Kube's element order for a merged list: items named by `order` sorted as it sorts them,
/// the others in their `live` order, and the two merged: a live-only item goes first when
/// the live list has it before the next ordered item.
fn normalize_order(
    merged: Vec<Value>,
    order: &[Value],
    live: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let id = |item: &Value| -> Option<Value> {
        match merge_key {
            Some(key) => item.get(key).cloned(),
            None => Some(item.clone()),
        }
    };
    let position = |list: &[Value], item: &Value| -> Option<usize> {
        let wanted = id(item)?;
        list.iter()
            .position(|other| id(other).as_ref() == Some(&wanted))
    };
    let (mut ordered, mut live_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| position(order, item).is_some());
    ordered.sort_by_key(|item| position(order, item));
    live_only.sort_by_key(|item| position(live, item));
    let mut result = Vec::with_capacity(ordered.len() + live_only.len());
    let (mut left, mut right) = (
        live_only.into_iter().peekable(),
        ordered.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
            (Some(l), Some(r)) => match (position(live, l), position(live, r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        result.extend(next);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Schema {
        Schema::of_root("apps", "v1", "Deployment")
    }

    fn pod() -> Schema {
        Schema::of_root("", "v1", "Pod")
    }

    fn spec(containers: Value) -> Value {
        json!({"spec": {"containers": containers}})
    }

    #[test]
    fn containers_merge_by_name_and_delete_directive_removes() {
        let current = spec(json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]));
        let patch = spec(json!([{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]));
        let merged = merge(&current, &patch, pod()).unwrap();
        assert_eq!(
            merged,
            spec(
                json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}, {"name": "c", "image": "w"}])
            )
        );
        let delete = spec(json!([{"name": "a", "$patch": "delete"}]));
        let merged = merge(&merged, &delete, pod()).unwrap();
        assert_eq!(
            merged,
            spec(json!([{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]))
        );
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let current = spec(json!([{"name": "a", "args": ["1", "2"], "image": "x"}]));
        let patch = spec(json!([{"name": "a", "args": ["3"]}]));
        let merged = merge(&current, &patch, pod()).unwrap();
        assert_eq!(
            merged,
            spec(json!([{"name": "a", "args": ["3"], "image": "x"}]))
        );
        // tolerations declare no patch strategy: replaced although they are objects.
        let current = json!({"spec": {"tolerations": [{"key": "a"}]}});
        let patch = json!({"spec": {"tolerations": [{"key": "b"}]}});
        assert_eq!(merge(&current, &patch, pod()).unwrap(), patch);
    }

    #[test]
    fn ports_merge_by_container_port_and_service_ports_by_port() {
        let current =
            spec(json!([{"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 81}]}]));
        let patch = spec(json!([{"name": "a", "ports": [{"containerPort": 81, "name": "m"}]}]));
        let merged = merge(&current, &patch, pod()).unwrap();
        assert_eq!(
            merged["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80}, {"containerPort": 81, "name": "m"}])
        );
        let service = Schema::of_root("", "v1", "Service");
        let current = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}});
        assert_eq!(
            merge(&current, &patch, service).unwrap()["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
        );
    }

    #[test]
    fn missing_merge_key_is_bad_request() {
        let err = merge(&spec(json!([])), &spec(json!([{"image": "x"}])), pod()).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message
                .contains("does not contain declared merge key: name")
        );
    }

    #[test]
    fn primitive_sets_union_and_delete_from_primitive_list() {
        let current = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {"finalizers": ["b", "c"]}});
        let merged = merge(&current, &patch, pod()).unwrap();
        assert_eq!(merged, json!({"metadata": {"finalizers": ["a", "b", "c"]}}));
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "c"]}});
        assert_eq!(
            merge(&merged, &patch, pod()).unwrap(),
            json!({"metadata": {"finalizers": ["b"]}})
        );
    }

    #[test]
    fn nulls_delete_and_maps_merge() {
        let current = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let patch = json!({"metadata": {"labels": {"a": null, "c": "3"}}});
        assert_eq!(
            merge(&current, &patch, pod()).unwrap(),
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}})
        );
        // A null under a key that is new is dropped, not stored.
        let patch = json!({"metadata": {"annotations": {"x": null, "y": "1"}}});
        assert_eq!(
            merge(&current, &patch, pod()).unwrap()["metadata"]["annotations"],
            json!({"y": "1"})
        );
    }

    #[test]
    fn patch_replace_and_delete_on_maps() {
        let current = json!({"data": {"k": "v", "l": "w"}, "metadata": {"labels": {"a": "1"}}});
        let patch = json!({"data": {"$patch": "replace", "n": "m"}, "metadata": {"labels": {"$patch": "delete"}}});
        let configmap = Schema::of_root("", "v1", "ConfigMap");
        assert_eq!(
            merge(&current, &patch, configmap).unwrap(),
            json!({"data": {"n": "m"}, "metadata": {"labels": {}}})
        );
        let err = merge(&current, &json!({"data": {"$patch": "nope"}}), configmap).unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn patch_replace_on_a_merging_list() {
        let current = spec(json!([{"name": "a"}, {"name": "b"}]));
        let patch = spec(json!([{"name": "c"}, {"$patch": "replace"}]));
        assert_eq!(
            merge(&current, &patch, pod()).unwrap(),
            spec(json!([{"name": "c"}]))
        );
    }

    #[test]
    fn patch_merge_directive_is_a_plain_merge() {
        let current = json!({"metadata": {"labels": {"a": "1"}}});
        let patch = json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}});
        assert_eq!(
            merge(&current, &patch, pod()).unwrap(),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}})
        );
    }

    #[test]
    fn retain_keys_clears_unlisted_keys() {
        // What kubectl sends when a deployment switches from RollingUpdate to Recreate.
        let current = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        assert_eq!(
            merge(&current, &patch, deployment()).unwrap(),
            json!({"spec": {"strategy": {"type": "Recreate"}}})
        );
        let current = json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}});
        let patch = json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}});
        assert_eq!(
            merge(&current, &patch, pod()).unwrap(),
            json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}})
        );
        let bad = json!({"spec": {"strategy": {"$retainKeys": [1]}}});
        assert_eq!(merge(&current, &bad, deployment()).unwrap_err().code, 400);
        // A field the patch sets must be in $retainKeys.
        let bad = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
        let err = merge(&current, &bad, deployment()).unwrap_err();
        assert_eq!(err.message, "invalid patch format of retainKeys");
    }

    #[test]
    fn set_element_order_orders_the_merged_list() {
        let current = spec(json!([{"name": "a"}, {"name": "x"}, {"name": "b"}]));
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}],
            "containers": [{"name": "c"}]
        }});
        // x is not named by the order: it goes before b, which the live list has after it.
        assert_eq!(
            merge(&current, &patch, pod()).unwrap(),
            spec(json!([{"name": "x"}, {"name": "b"}, {"name": "c"}, {"name": "a"}]))
        );
        // Without a $setElementOrder the patch list orders its items; a new item goes before
        // live-only items the live list has after the patched ones.
        let current = spec(json!([{"name": "a"}, {"name": "b"}, {"name": "z"}]));
        let patch =
            spec(json!([{"name": "b", "image": "1"}, {"name": "n"}, {"name": "a", "image": "2"}]));
        assert_eq!(
            merge(&current, &patch, pod()).unwrap(),
            spec(
                json!([{"name": "b", "image": "1"}, {"name": "n"}, {"name": "a", "image": "2"}, {"name": "z"}])
            )
        );
        let current = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}});
        assert_eq!(
            merge(&current, &patch, pod()).unwrap(),
            json!({"metadata": {"finalizers": ["b", "a"]}})
        );
    }

    #[test]
    fn unknown_fields_merge_maps_and_replace_lists() {
        let current = json!({"spec": {"x": {"a": 1, "l": [1, 2]}}});
        let patch = json!({"spec": {"x": {"b": 2, "l": [3]}}});
        assert_eq!(
            merge(&current, &patch, Schema::Unknown).unwrap(),
            json!({"spec": {"x": {"a": 1, "b": 2, "l": [3]}}})
        );
    }

    #[test]
    fn new_values_have_their_directives_resolved() {
        let current = json!({"spec": {}});
        let patch = spec(
            json!([{"name": "a", "env": [{"name": "E", "value": "1"}, {"name": "F", "$patch": "delete"}], "x": null}]),
        );
        assert_eq!(
            merge(&current, &patch, pod()).unwrap(),
            spec(json!([{"name": "a", "env": [{"name": "E", "value": "1"}]}]))
        );
    }
}
