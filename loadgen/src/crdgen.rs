//! The `crds` scenario's CustomResourceDefinitions: variations of the published
//! cert-manager and Prometheus operator CRDs (`shared/fixtures/crds`), each renamed into a
//! group of its own (`g<k>.bench.example.com`) and with its schema cut to a size between
//! 20 and 50 KiB, so a thousand of them look like the CRDs of a large cluster rather than
//! one CRD copied.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// The label every CRD and object of a run carries (the watch selects on it).
pub const RUN_LABEL: &str = "kubecache-loadgen/run";

/// Smallest and largest schema generated, in bytes of compact JSON.
pub const MIN_SCHEMA: usize = 20 * 1024;
pub const MAX_SCHEMA: usize = 50 * 1024;

/// `$KUBECACHE_FIXTURES/crds` when set, else `shared/fixtures/crds` in the nearest ancestor
/// of the working directory or of this crate's source.
pub fn fixture_dir(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("KUBECACHE_FIXTURES") {
        return Ok(Path::new(&dir).join("crds"));
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors()
        .chain(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors())
        .map(|dir| dir.join("shared/fixtures/crds"))
        .find(|dir| dir.is_dir())
        .ok_or_else(|| {
            "no shared/fixtures/crds in an ancestor directory: pass --fixtures DIR or set \
             KUBECACHE_FIXTURES"
                .to_string()
        })
}

/// One fixture CRD reduced to what the variations need.
#[derive(Clone)]
pub struct Base {
    pub file: String,
    pub kind: String,
    pub plural: String,
    pub scope: String,
    /// The storage version's schema, subresources and printer columns.
    pub schema: Value,
    pub subresources: Option<Value>,
    pub columns: Option<Value>,
}

/// The fixture CRDs (YAML) under `dir`, sorted by file, keeping those whose storage schema
/// is at least [`MIN_SCHEMA`] (smaller ones cannot be cut to the range).
pub fn read_bases(dir: &Path) -> Result<Vec<Base>, String> {
    let mut files = Vec::new();
    let projects = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for project in projects {
        let project = project.map_err(|e| e.to_string())?.path();
        if !project.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&project).map_err(|e| e.to_string())? {
            let path = file.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut bases = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let crd: Value =
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let spec = &crd["spec"];
        let Some(version) = spec["versions"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        else {
            continue;
        };
        let schema = version["schema"]["openAPIV3Schema"].clone();
        if json_len(&schema) < MIN_SCHEMA {
            continue;
        }
        bases.push(Base {
            file: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kind: spec["names"]["kind"]
                .as_str()
                .unwrap_or("Thing")
                .to_string(),
            plural: spec["names"]["plural"]
                .as_str()
                .unwrap_or("things")
                .to_string(),
            scope: spec["scope"].as_str().unwrap_or("Namespaced").to_string(),
            schema,
            subresources: version.get("subresources").cloned(),
            columns: version.get("additionalPrinterColumns").cloned(),
        });
    }
    if bases.is_empty() {
        return Err(format!(
            "no CRD with a schema of {} KiB or more under {}",
            MIN_SCHEMA / 1024,
            dir.display()
        ));
    }
    Ok(bases)
}

/// Generates the run's CRDs; schemas cut from the same base to the same size are cut once.
pub struct Generator {
    bases: Vec<Base>,
    cut: HashMap<(usize, usize), Value>,
    per_group: u32,
    run: String,
}

/// One generated CRD.
pub struct Generated {
    pub name: String,
    pub group: String,
    pub plural: String,
    pub body: Value,
    pub schema_bytes: usize,
}

impl Generator {
    pub fn new(bases: Vec<Base>, per_group: u32, run: &str) -> Generator {
        Generator {
            bases,
            cut: HashMap::new(),
            per_group: per_group.max(1),
            run: run.to_string(),
        }
    }

    /// The group of CRD `i`: `per_group` consecutive CRDs share one.
    pub fn group(&self, i: u32) -> String {
        format!("g{}.bench.example.com", i / self.per_group)
    }

    /// CRD `i`: base `i mod bases`, schema cut to a size spread over 20–50 KiB, one property
    /// of its own, and names of its own.
    pub fn crd(&mut self, i: u32) -> Generated {
        let base_index = i as usize % self.bases.len();
        // 31 sizes, 1 KiB apart, visited in a scattered order.
        let target = MIN_SCHEMA + (i as usize * 17 % 31) * (MAX_SCHEMA - MIN_SCHEMA) / 30;
        let base = &self.bases[base_index];
        let schema = self
            .cut
            .entry((base_index, target))
            .or_insert_with(|| {
                let mut schema = base.schema.clone();
                cut_to(&mut schema, target);
                schema
            })
            .clone();
        let mut schema = schema;
        if let Some(properties) = schema
            .as_object_mut()
            .and_then(|s| s.get_mut("properties"))
            .and_then(Value::as_object_mut)
        {
            properties.insert(
                format!("bench{i}"),
                json!({"type": "string", "description": format!("Field of benchmark CRD {i}.")}),
            );
        }
        let schema_bytes = json_len(&schema);
        let group = self.group(i);
        let kind = format!("{}{i}", base.kind);
        let plural = format!("{}{i}", base.plural);
        let name = format!("{plural}.{group}");
        let mut version = Map::new();
        version.insert("name".into(), json!("v1"));
        version.insert("served".into(), json!(true));
        version.insert("storage".into(), json!(true));
        version.insert("schema".into(), json!({ "openAPIV3Schema": schema }));
        if let Some(subresources) = &base.subresources {
            version.insert("subresources".into(), subresources.clone());
        }
        if let Some(columns) = &base.columns {
            version.insert("additionalPrinterColumns".into(), columns.clone());
        }
        let body = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name, "labels": {RUN_LABEL: self.run}},
            "spec": {
                "group": group,
                "scope": base.scope,
                "names": {
                    "kind": kind,
                    "listKind": format!("{kind}List"),
                    "plural": plural,
                    "singular": plural.trim_end_matches('s'),
                },
                "versions": [Value::Object(version)],
            },
        });
        Generated {
            name,
            group,
            plural,
            body,
            schema_bytes,
        }
    }
}

struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes of `value` as compact JSON.
pub fn json_len(value: &Value) -> usize {
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value).expect("a Value serializes");
    counter.0
}

/// Removes properties from `schema` until its JSON is at most `target` bytes, each time the
/// largest property that removes no more than the excess (descending into larger ones), so
/// the result ends just under the target. What a removal could break is dropped with it: the
/// CEL rules and defaults of the schemas above it, and its entry in `required`; keys of a
/// `x-kubernetes-list-type: map` are never removed.
pub fn cut_to(schema: &mut Value, target: usize) {
    loop {
        let total = json_len(schema);
        if total <= target || !remove_one(schema, total - target, &[]) {
            return;
        }
    }
}

/// A schema's sub-schemas: its properties (removable) and its `items` and
/// `additionalProperties` (not removable, but holding properties). `protected` are
/// properties that must stay.
fn children(node: &Value, protected: &[String]) -> Vec<(Child, usize)> {
    let mut out = Vec::new();
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, schema) in properties {
            if !protected.contains(name) {
                out.push((Child::Property(name.clone()), json_len(schema)));
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(schema) = node.get(key).filter(|s| s.is_object()) {
            out.push((Child::Nested(key), json_len(schema)));
        }
    }
    out
}

enum Child {
    Property(String),
    Nested(&'static str),
}

fn child_mut<'a>(node: &'a mut Value, child: &Child) -> &'a mut Value {
    match child {
        Child::Property(name) => &mut node["properties"][name.as_str()],
        Child::Nested(key) => &mut node[*key],
    }
}

/// The keys an array's items must keep.
fn map_keys(node: &Value) -> Vec<String> {
    node.get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn remove_property(node: &mut Value, name: &str) {
    if let Some(properties) = node.get_mut("properties").and_then(Value::as_object_mut) {
        properties.remove(name);
    }
    if let Some(required) = node.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|r| r != name);
    }
}

/// Removes one property under `node` (see [`cut_to`]); `false` when there is none.
fn remove_one(node: &mut Value, excess: usize, protected: &[String]) -> bool {
    if let Some(object) = node.as_object_mut() {
        object.remove("x-kubernetes-validations");
        object.remove("default");
    }
    let mut kids = children(node, protected);
    // Largest first.
    kids.sort_by_key(|kid| std::cmp::Reverse(kid.1));
    for (child, size) in &kids {
        if *size > excess {
            // Too large to remove whole: something inside it, if there is anything.
            let keys = match child {
                Child::Nested("items") => map_keys(node),
                _ => Vec::new(),
            };
            if remove_one(child_mut(node, child), excess, &keys) {
                return true;
            }
            if let Child::Property(name) = child {
                // Nothing removable inside: it goes (overshooting by less than its size).
                remove_property(node, name);
                return true;
            }
            continue;
        }
        if let Child::Property(name) = child {
            // The largest piece that does not remove more than the excess.
            remove_property(node, name);
            return true;
        }
        let keys = match child {
            Child::Nested("items") => map_keys(node),
            _ => Vec::new(),
        };
        if remove_one(child_mut(node, child), excess, &keys) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases() -> Vec<Base> {
        let dir = fixture_dir(None).expect("the fixture CRDs");
        read_bases(&dir).expect("readable fixtures")
    }

    #[test]
    fn generated_crds_are_renamed_and_sized() {
        let mut generator = Generator::new(bases(), 2, "r1");
        let mut sizes = Vec::new();
        for i in 0..40 {
            let crd = generator.crd(i);
            assert_eq!(crd.group, format!("g{}.bench.example.com", i / 2));
            assert_eq!(crd.body["metadata"]["name"], crd.name);
            assert_eq!(crd.body["metadata"]["labels"][RUN_LABEL], "r1");
            let kind = crd.body["spec"]["names"]["kind"].as_str().expect("a kind");
            assert!(kind.ends_with(&i.to_string()), "{kind}");
            // The added property is a few dozen bytes over the cut.
            assert!(crd.schema_bytes <= MAX_SCHEMA + 100, "{}", crd.schema_bytes);
            // Cutting stops just under the target, never far below the range.
            assert!(
                crd.schema_bytes >= MIN_SCHEMA - 4096,
                "{i}: {}",
                crd.schema_bytes
            );
            sizes.push(crd.schema_bytes);
        }
        assert!(sizes.iter().any(|s| *s < 30 * 1024), "{sizes:?}");
        assert!(sizes.iter().any(|s| *s > 40 * 1024), "{sizes:?}");
    }

    #[test]
    fn cutting_keeps_required_and_list_map_keys_consistent() {
        let mut schema = json!({
            "type": "object",
            "x-kubernetes-validations": [{"rule": "has(self.big)"}],
            "required": ["big", "small"],
            "properties": {
                "small": {"type": "string"},
                "big": {"type": "string", "description": "x".repeat(500)},
                "list": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "description": "y".repeat(300)},
                            "other": {"type": "string", "description": "z".repeat(100)},
                        },
                    },
                },
            },
        });
        cut_to(&mut schema, 200);
        assert!(json_len(&schema) <= 200, "{schema}");
        assert!(schema.get("x-kubernetes-validations").is_none());
        let required: Vec<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for name in &required {
            assert!(
                schema["properties"].get(*name).is_some(),
                "{name} in {schema}"
            );
        }
        if let Some(items) = schema["properties"]["list"].get("items") {
            assert!(items["properties"].get("name").is_some(), "{schema}");
        }
    }
}
