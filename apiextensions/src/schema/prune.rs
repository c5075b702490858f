//! Pruning of fields the schema does not specify (kube's `pruning` algorithm). The object's
//! root and every `x-kubernetes-embedded-resource` keep `apiVersion`, `kind` and `metadata`
//! untouched (ObjectMeta has its own rules); under `x-kubernetes-preserve-unknown-fields`
//! unknown fields stay but known ones are still pruned inside.

use serde_json::Value;

use super::{Additional, Node};

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

pub(super) fn prune_object(root: &Node, object: &mut Value) -> Vec<String> {
    let mut pruner = Pruner::default();
    pruner.prune(Some(root), object, true);
    pruner.unknown.sort();
    pruner.unknown
}

/// Prunes a value at a node that is not a resource root (used for `default` values).
pub(super) fn prune_value(node: &Node, value: &mut Value, is_resource: bool) -> Vec<String> {
    let mut pruner = Pruner::default();
    pruner.prune(Some(node), value, is_resource);
    pruner.unknown
}

#[derive(Default)]
struct Pruner {
    /// kube's path of the value being walked: `spec.items[0].name`.
    path: String,
    unknown: Vec<String>,
}

impl Pruner {
    fn push_key(&mut self, key: &str) -> usize {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(key);
        len
    }

    fn push_index(&mut self, i: usize) -> usize {
        let len = self.path.len();
        self.path.push_str(&format!("[{i}]"));
        len
    }

    fn record(&mut self, key: &str) {
        let len = self.push_key(key);
        self.unknown.push(self.path.clone());
        self.path.truncate(len);
    }

    /// `is_resource` marks the root and embedded resources, whose type and object meta are
    /// not pruned here.
    fn prune(&mut self, node: Option<&Node>, value: &mut Value, is_resource: bool) {
        let embedded = is_resource || node.is_some_and(|n| n.embedded_resource);
        if let Some(node) = node
            && node.preserve_unknown_fields
        {
            return self.prune_known(node, value, embedded);
        }
        match value {
            Value::Object(map) => {
                let Some(node) = node else {
                    let keys: Vec<String> = map.keys().cloned().collect();
                    for key in keys {
                        self.record(&key);
                    }
                    map.clear();
                    return;
                };
                let at_root = self.path.is_empty();
                map.retain(|key, child| {
                    if embedded && META_FIELDS.contains(&key.as_str()) {
                        return true;
                    }
                    if let Some(schema) = node.field_schema(key) {
                        let len = self.push_key(key);
                        let child_embedded = schema.embedded_resource;
                        self.prune(Some(schema), child, child_embedded);
                        self.path.truncate(len);
                        return true;
                    }
                    if !(META_FIELDS.contains(&key.as_str()) && at_root) {
                        self.record(key);
                    }
                    false
                });
            }
            Value::Array(items) => {
                let item_schema = node.and_then(|n| n.items.as_deref());
                for (i, item) in items.iter_mut().enumerate() {
                    let len = self.push_index(i);
                    let child_embedded = item_schema.is_some_and(|s| s.embedded_resource);
                    self.prune(item_schema, item, child_embedded);
                    self.path.truncate(len);
                }
            }
            _ => {}
        }
    }

    /// Under preserve-unknown-fields: unknown fields stay, specified ones are pruned inside.
    fn prune_known(&mut self, node: &Node, value: &mut Value, embedded: bool) {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if embedded && META_FIELDS.contains(&key.as_str()) {
                        continue;
                    }
                    let schema = match (node.property(key), &node.additional_properties) {
                        (Some(schema), _) => schema,
                        (None, Additional::Schema(schema)) => schema,
                        _ => continue,
                    };
                    let len = self.push_key(key);
                    self.prune(Some(schema), child, schema.embedded_resource);
                    self.path.truncate(len);
                }
            }
            Value::Array(items) => {
                let Some(item_schema) = node.items.as_deref() else {
                    return;
                };
                for (i, item) in items.iter_mut().enumerate() {
                    let len = self.push_index(i);
                    // kube keeps unknown fields all the way down the items of a preserved list.
                    self.prune_known(item_schema, item, item_schema.embedded_resource);
                    self.path.truncate(len);
                }
            }
            _ => {}
        }
    }
}
