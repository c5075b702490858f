//! Defaulting (kube's structural `defaulting` package): first nulls of non-nullable fields
//! without a default are dropped, then every absent field with a `default` (and every
//! non-nullable field that is null) gets a deep copy of it, top-down so defaults inside a
//! defaulted object apply too.

use serde_json::Value;

use super::Node;

pub(super) fn apply(root: &Node, object: &mut Value) {
    prune_non_nullable_nulls(Some(root), object);
    default(root, object);
}

fn is_non_nullable_null(value: &Value, node: Option<&Node>) -> bool {
    value.is_null() && node.is_some_and(|n| !n.nullable)
}

fn prune_non_nullable_nulls(node: Option<&Node>, value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, child| {
                let schema = node.and_then(|n| n.field_schema(key));
                if is_non_nullable_null(child, schema)
                    && schema.is_some_and(|s| s.default_value().is_none())
                {
                    return false;
                }
                prune_non_nullable_nulls(schema, child);
                true
            });
        }
        Value::Array(items) => {
            let item_schema = node.and_then(|n| n.items.as_deref());
            for item in items {
                prune_non_nullable_nulls(item_schema, item);
            }
        }
        _ => {}
    }
}

fn default(node: &Node, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, schema) in node.properties.iter() {
                let Some(default) = schema.default_value() else {
                    continue;
                };
                match map.get_mut(&**name) {
                    None => {
                        map.insert(name.to_string(), default.clone());
                    }
                    Some(existing) if is_non_nullable_null(existing, Some(schema)) => {
                        *existing = default.clone();
                    }
                    Some(_) => {}
                }
            }
            for (key, child) in map.iter_mut() {
                if let Some(schema) = node.property(key) {
                    default(schema, child);
                } else if let super::Additional::Schema(schema) = &node.additional_properties {
                    default_null(schema, child);
                    default(schema, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for item in items {
                    default_null(item_schema, item);
                    default(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// A null map value or list item whose schema is not nullable takes the schema's default.
fn default_null(node: &Node, value: &mut Value) {
    if is_non_nullable_null(value, Some(node))
        && let Some(default) = node.default_value()
    {
        *value = default.clone();
    }
}
