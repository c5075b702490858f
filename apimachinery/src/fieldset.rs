//! Sets of field paths, as server-side apply records ownership: `metadata.managedFields[].
//! fieldsV1` (kube's "FieldsV1" encoding), and the walks that compute them from objects.
//!
//! A path is a list of elements: a field of an object (`f:name`), an item of a keyed list
//! (`k:{"name":"x"}`, its key fields sorted), an item of a set (`v:"x"`), an item of a list by
//! position (`i:0`). A set is a tree: at each node, the elements that are themselves members
//! and the children below elements. In fieldsV1 an element that is both a member and has
//! children is written with a `".": {}` entry.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kubecache_core::merge_schema::{ListType, Schema};
use serde_json::{Map, Value};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// A field of an object (struct field or map key).
    Field(String),
    /// An item of a keyed list: its key fields as a canonical JSON object (sorted keys).
    Key(String),
    /// An item of a set: its value as JSON.
    Value(String),
    /// An item of a list by position.
    Index(usize),
}

impl Element {
    /// The fieldsV1 key: `f:…`, `k:…`, `v:…`, `i:…`.
    pub fn encode(&self) -> String {
        let prefixed = |prefix: &str, text: &str| {
            let mut out = String::with_capacity(prefix.len() + text.len());
            out.push_str(prefix);
            out.push_str(text);
            out
        };
        match self {
            Element::Field(name) => prefixed("f:", name),
            Element::Key(key) => prefixed("k:", key),
            Element::Value(value) => prefixed("v:", value),
            Element::Index(i) => format!("i:{i}"),
        }
    }

    pub fn decode(text: &str) -> Option<Element> {
        let (kind, rest) = text.split_at_checked(2)?;
        match kind {
            "f:" => Some(Element::Field(rest.to_string())),
            "k:" => {
                let key: Map<String, Value> = serde_json::from_str(rest).ok()?;
                Some(Element::Key(canonical_key(key.into_iter())))
            }
            "v:" => {
                let value: Value = serde_json::from_str(rest).ok()?;
                Some(Element::Value(value.to_string()))
            }
            "i:" => rest.parse().ok().map(Element::Index),
            _ => None,
        }
    }

    /// The key of a keyed list's item, from its key fields (absent ones are skipped).
    pub fn key_of(item: &Value, keys: &[&str]) -> Element {
        let mut fields: Vec<(String, Value)> = keys
            .iter()
            .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Element::Key(canonical_key(fields.into_iter()))
    }
}

fn canonical_key(fields: impl Iterator<Item = (String, Value)>) -> String {
    let mut fields: Vec<(String, Value)> = fields.collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let map: Map<String, Value> = fields.into_iter().collect();
    Value::Object(map).to_string()
}

/// Kube's path notation, as conflicts name fields: `.spec.containers[name="x"].image`.
impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Field(name) => write!(f, ".{name}"),
            Element::Key(key) => {
                let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "[{}]", parts.join(","))
            }
            Element::Value(value) => write!(f, "[={value}]"),
            Element::Index(i) => write!(f, "[{i}]"),
        }
    }
}

pub type Path = Vec<Element>;

/// A path in kube's notation.
pub fn display(path: &[Element]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Elements at this level that are members themselves.
    members: BTreeSet<Element>,
    /// Sets below elements at this level.
    children: BTreeMap<Element, FieldSet>,
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    pub fn insert(&mut self, path: &[Element]) {
        match path {
            [] => {}
            [last] => {
                if !self.members.contains(last) {
                    self.members.insert(last.clone());
                }
            }
            [first, rest @ ..] => match self.children.get_mut(first) {
                Some(child) => child.insert(rest),
                None => self.children.entry(first.clone()).or_default().insert(rest),
            },
        }
    }

    /// Removes the member `path` (not what is below it), and the levels on its way that are
    /// left empty: the same as the difference with the set holding only `path`.
    pub fn remove_member(&mut self, path: &[Element]) {
        match path {
            [] => {}
            [last] => {
                self.members.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(child) = self.children.get_mut(first) {
                    child.remove_member(rest);
                    if child.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    pub fn contains(&self, path: &[Element]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Every member path, depth first.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        let mut elements: BTreeSet<&Element> = self.members.iter().collect();
        elements.extend(self.children.keys());
        for element in elements {
            prefix.push(element.clone());
            if self.members.contains(element) {
                out.push(prefix.clone());
            }
            if let Some(child) = self.children.get(element) {
                child.collect(prefix, out);
            }
            prefix.pop();
        }
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut result = self.clone();
        result.members.extend(other.members.iter().cloned());
        for (element, child) in &other.children {
            let merged = match result.children.get(element) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            result.children.insert(element.clone(), merged);
        }
        result
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut result = FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                let common = child.intersection(theirs);
                if !common.is_empty() {
                    result.children.insert(element.clone(), common);
                }
            }
        }
        result
    }

    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut result = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            let rest = match other.children.get(element) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                result.children.insert(element.clone(), rest);
            }
        }
        result
    }

    /// Removes `path` and everything below it.
    pub fn remove_subtree(&mut self, path: &[Element]) {
        match path {
            [] => *self = FieldSet::default(),
            [last] => {
                self.members.remove(last);
                self.children.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(child) = self.children.get_mut(first) {
                    child.remove_subtree(rest);
                    if child.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    /// The fieldsV1 JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        let mut elements: BTreeSet<&Element> = self.members.iter().collect();
        elements.extend(self.children.keys());
        for element in elements {
            let mut inner = match self.children.get(element) {
                Some(child) => match child.to_fields_v1() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
                None => Map::new(),
            };
            if self.members.contains(element) && !inner.is_empty() {
                let mut with_dot = Map::new();
                with_dot.insert(".".into(), Value::Object(Map::new()));
                with_dot.extend(inner);
                inner = with_dot;
            }
            map.insert(element.encode(), Value::Object(inner));
        }
        Value::Object(map)
    }

    /// Parses fieldsV1 JSON; `None` when it is not valid.
    pub fn from_fields_v1(value: &Value) -> Option<FieldSet> {
        let mut set = FieldSet::default();
        for (key, inner) in value.as_object()? {
            let element = Element::decode(key)?;
            let inner = inner.as_object()?;
            if inner.is_empty() || inner.contains_key(".") {
                set.members.insert(element.clone());
            }
            let rest: Map<String, Value> = inner
                .iter()
                .filter(|(k, _)| *k != ".")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !rest.is_empty() {
                let child = FieldSet::from_fields_v1(&Value::Object(rest))?;
                set.children.insert(element, child);
            }
        }
        Some(set)
    }
}

/// The list element of `item` in a list of `schema`: its key for keyed lists, its value for
/// sets, its position otherwise.
pub fn list_element(schema: Schema, index: usize, item: &Value) -> Element {
    match schema.list_field() {
        Some(field) if field.list_type == ListType::Map && item.is_object() => {
            Element::key_of(item, field.list_map_keys)
        }
        Some(field) if field.list_type == ListType::Set => Element::Value(item.to_string()),
        _ => Element::Index(index),
    }
}

/// The fields an applied configuration sets (structured-merge-diff's "ToFieldSet"): scalars
/// and atomic values are members; an object's declared fields are members only when null or
/// empty, its map entries always; list items (by key or value) are members and so are their
/// fields.
pub fn applied_fields(value: &Value, schema: Schema) -> FieldSet {
    let mut set = FieldSet::default();
    walk_applied(value, schema, &mut Vec::new(), &mut set);
    set
}

fn is_declared(schema: Schema, key: &str) -> bool {
    matches!(schema, Schema::Struct(d) if d.field(key).is_some())
}

fn walk_applied(value: &Value, schema: Schema, path: &mut Path, set: &mut FieldSet) {
    if schema.is_atomic() && !path.is_empty() {
        set.insert(path);
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(Element::Field(key.clone()));
                let child_schema = schema.child(key);
                walk_applied(child, child_schema, path, set);
                let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                if empty || !is_declared(schema, key) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Value::Array(items) => match schema.list_field() {
            Some(field) if field.list_type != ListType::Atomic => {
                for (i, item) in items.iter().enumerate() {
                    path.push(list_element(schema, i, item));
                    walk_applied(item, schema.item(), path, set);
                    set.insert(path);
                    path.pop();
                }
            }
            _ => set.insert(path),
        },
        _ => set.insert(path),
    }
}

/// A keyed list or a set: its items are owned one by one.
fn is_granular_list(schema: Schema) -> bool {
    schema
        .list_field()
        .is_some_and(|f| f.list_type != ListType::Atomic)
}

/// Every path of `value`, intermediate nodes included: what exists in the object.
pub fn all_paths(value: &Value, schema: Schema) -> FieldSet {
    let mut set = FieldSet::default();
    walk_all(value, schema, &mut Vec::new(), &mut set);
    set
}

fn walk_all(value: &Value, schema: Schema, path: &mut Path, set: &mut FieldSet) {
    if !path.is_empty() {
        set.insert(path);
        if schema.is_atomic() {
            return;
        }
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                path.push(Element::Field(key.clone()));
                walk_all(child, schema.child(key), path, set);
                path.pop();
            }
        }
        Value::Array(items) if is_granular_list(schema) => {
            for (i, item) in items.iter().enumerate() {
                path.push(list_element(schema, i, item));
                walk_all(item, schema.item(), path, set);
                path.pop();
            }
        }
        _ => {}
    }
}

/// What an update changed from `old` to `new` (added or modified values, as the fields a
/// manager takes ownership of). A new map entry or list item is a member together with its
/// fields; a new declared field only through its fields.
pub fn changed_fields(old: Option<&Value>, new: &Value, schema: Schema) -> FieldSet {
    let mut set = FieldSet::default();
    if old.is_none() {
        added_children(new, schema, &mut set);
        return set;
    }
    walk_changed(old, new, schema, &mut Vec::new(), &mut set, false);
    set
}

/// [`walk_changed`] with nothing before (a create), built bottom up: each level's set is made
/// once and hung under its element, instead of inserting every path from the root.
fn added_children(value: &Value, schema: Schema, set: &mut FieldSet) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                added(
                    child,
                    schema.child(key),
                    Element::Field(key.clone()),
                    is_declared(schema, key),
                    set,
                );
            }
        }
        Value::Array(items) if is_granular_list(schema) => {
            for (i, item) in items.iter().enumerate() {
                let element = list_element(schema, i, item);
                set.members.insert(element.clone());
                added(item, schema.item(), element, false, set);
            }
        }
        _ => {}
    }
}

/// Adds `value`, at `element` of `set`, as [`walk_changed`] records a new value.
fn added(value: &Value, schema: Schema, element: Element, declared: bool, set: &mut FieldSet) {
    let member = match value {
        _ if schema.is_atomic() => true,
        Value::Object(map) => !declared || map.is_empty() || !matches!(schema, Schema::Struct(_)),
        Value::Array(_) => !is_granular_list(schema),
        _ => true,
    };
    let leaf = schema.is_atomic()
        || !(value.is_object() || value.is_array())
        || (value.is_array() && !is_granular_list(schema));
    let mut below = FieldSet::default();
    if !leaf {
        added_children(value, schema, &mut below);
    }
    if member {
        set.members.insert(element.clone());
    }
    if !below.is_empty() {
        match set.children.entry(element) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(below);
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                let merged = slot.get().union(&below);
                *slot.get_mut() = merged;
            }
        }
    }
}

fn walk_changed(
    old: Option<&Value>,
    new: &Value,
    schema: Schema,
    path: &mut Path,
    set: &mut FieldSet,
    declared: bool,
) {
    if old == Some(new) {
        return;
    }
    let leaf = schema.is_atomic() || !(new.is_object() || new.is_array());
    if leaf && !path.is_empty() {
        set.insert(path);
        return;
    }
    match new {
        Value::Object(map) => {
            let old_map = old.and_then(Value::as_object);
            if old_map.is_none()
                && !path.is_empty()
                && (!declared || map.is_empty() || !matches!(schema, Schema::Struct(_)))
            {
                set.insert(path);
            }
            for (key, child) in map {
                path.push(Element::Field(key.clone()));
                let before = old_map.and_then(|m| m.get(key));
                walk_changed(
                    before,
                    child,
                    schema.child(key),
                    path,
                    set,
                    is_declared(schema, key),
                );
                path.pop();
            }
        }
        Value::Array(items) => {
            if !is_granular_list(schema) {
                set.insert(path);
                return;
            }
            let old_items: Vec<(Element, &Value)> = old
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| (list_element(schema, i, item), item))
                        .collect()
                })
                .unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                let element = list_element(schema, i, item);
                let before = old_items
                    .iter()
                    .find(|(e, _)| *e == element)
                    .map(|(_, v)| *v);
                path.push(element);
                if before.is_none() {
                    set.insert(path);
                }
                walk_changed(before, item, schema.item(), path, set, false);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_fields_are_what_the_update_walk_records_from_nothing() {
        let samples: Vec<Value> =
            serde_json::from_str(include_str!("protobuf/samples.json")).unwrap();
        let mut checked = 0;
        for sample in &samples {
            let version = sample["apiVersion"].as_str().unwrap();
            let (group, version) = version.split_once('/').unwrap_or(("", version));
            let schema = Schema::of_root(group, version, sample["kind"].as_str().unwrap());
            let mut walked = FieldSet::default();
            walk_changed(None, sample, schema, &mut Vec::new(), &mut walked, false);
            assert_eq!(changed_fields(None, sample, schema), walked, "{sample}");
            checked += usize::from(!walked.is_empty());
        }
        assert!(checked > 10, "{checked}");
    }

    fn deployment() -> Schema {
        Schema::of_root("apps", "v1", "Deployment")
    }

    fn path(elements: &[&str]) -> Path {
        elements
            .iter()
            .map(|e| Element::decode(e).unwrap())
            .collect()
    }

    #[test]
    fn fields_v1_round_trip_with_dot_members() {
        let encoded = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"main\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}},
        });
        let set = FieldSet::from_fields_v1(&encoded).unwrap();
        assert!(set.contains(&path(&["f:metadata", "f:labels"])));
        assert!(set.contains(&path(&["f:metadata", "f:labels", "f:app"])));
        assert!(!set.contains(&path(&["f:metadata"])));
        assert!(set.contains(&path(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            r#"k:{"name":"main"}"#
        ])));
        assert_eq!(set.to_fields_v1(), encoded);
        assert!(FieldSet::from_fields_v1(&json!({"x:bad": {}})).is_none());
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_none());
    }

    #[test]
    fn keys_are_canonical_and_display_as_kube_does() {
        let item = json!({"protocol": "TCP", "containerPort": 80, "name": "http"});
        let key = Element::key_of(&item, &["containerPort", "protocol"]);
        assert_eq!(key.encode(), r#"k:{"containerPort":80,"protocol":"TCP"}"#);
        let decoded = Element::decode(r#"k:{"protocol":"TCP","containerPort":80}"#).unwrap();
        assert_eq!(decoded, key);
        let p = vec![
            Element::Field("spec".into()),
            Element::Field("containers".into()),
            Element::key_of(&json!({"name": "x"}), &["name"]),
            Element::Field("image".into()),
        ];
        assert_eq!(display(&p), r#".spec.containers[name="x"].image"#);
        assert_eq!(display(&[Element::Value("\"a\"".into())]), r#"[="a"]"#);
    }

    #[test]
    fn applied_fields_follow_to_field_set() {
        let config = json!({
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "main", "image": "x", "args": ["a"]}]}},
            },
        });
        let set = applied_fields(&config, deployment());
        let v1 = set.to_fields_v1();
        assert_eq!(v1["f:metadata"]["f:labels"], json!({"f:app": {}}));
        assert_eq!(v1["f:spec"]["f:replicas"], json!({}));
        // LabelSelector is an atomic struct: owned as one value.
        assert_eq!(v1["f:spec"]["f:selector"], json!({}));
        assert_eq!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"main"}"#],
            json!({".": {}, "f:args": {}, "f:image": {}, "f:name": {}})
        );
        let finalizers = json!({"metadata": {"finalizers": ["a"]}});
        assert!(applied_fields(&finalizers, deployment()).contains(&path(&[
            "f:metadata",
            "f:finalizers",
            "v:\"a\""
        ])));
    }

    #[test]
    fn changed_fields_of_an_update() {
        let old = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let new = json!({"metadata": {"name": "web", "labels": {"x": "1"}}, "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}}});
        let set = changed_fields(Some(&old), &new, deployment());
        let v1 = set.to_fields_v1();
        assert_eq!(
            v1,
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:x": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:template": {"f:spec": {"f:containers": {r#"k:{"name":"b"}"#: {".": {}, "f:image": {}, "f:name": {}}}}}
                }
            })
        );
        assert!(changed_fields(Some(&old), &old, deployment()).is_empty());
    }

    #[test]
    fn set_algebra() {
        let a = applied_fields(
            &json!({"spec": {"replicas": 1, "paused": true}}),
            deployment(),
        );
        let b = applied_fields(&json!({"spec": {"replicas": 2}}), deployment());
        assert_eq!(a.intersection(&b), b);
        assert_eq!(
            a.difference(&b).paths(),
            vec![path(&["f:spec", "f:paused"])]
        );
        assert_eq!(b.union(&a), a);
        let mut c = a.clone();
        c.remove_subtree(&path(&["f:spec"]));
        assert!(c.is_empty());
        let all = all_paths(&json!({"spec": {"replicas": 1}}), deployment());
        assert!(all.contains(&path(&["f:spec"])) && all.contains(&path(&["f:spec", "f:replicas"])));
    }
}
