//! How each field of each built-in type merges: the table behind strategic merge patch
//! (`patchStrategy` / `patchMergeKey`), server-side apply (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`) and the matching OpenAPI
//! extensions.
//!
//! The table ([`generated`]) is generated from the k8s-openapi 0.29 crate (Kubernetes 1.33
//! definitions) by `python3 scripts/gen_merge_schema.py`; the test
//! `generated_table_is_current` fails when the committed table differs from the generator's
//! output. The generator reads k8s-openapi's `DeepMerge` impls (list and map strategies),
//! its `Deserialize` impls (JSON names) and struct field types (nested definitions), and
//! takes kube's own type tags (`+listType`, `+listMapKey`, `+patchStrategy`,
//! `+patchMergeKey`, `+mapType`, `+structType`) from the committed `kube_tags.txt` (extracted
//! from the k8s-pb crate) wherever they are known (see docs/COMPATIBILITY.md, "Merge
//! schema").
//!
//! Lookups: [`definition`] by kube definition name (`io.k8s.api.core.v1.PodSpec`), [`root`]
//! by group/version/kind, [`Definition::field`] by JSON name.

#[rustfmt::skip]
mod generated;

/// One definition (an object type) of the built-in API.
#[derive(Debug, PartialEq, Eq)]
pub struct Definition {
    /// Kube's definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub name: &'static str,
    /// A value that is not an object with known fields (Quantity, Time, IntOrString,
    /// RawExtension, JSON …): merged and owned as one scalar.
    pub opaque: bool,
    /// `Atomic` for `+structType=atomic` types (LabelSelector, LocalObjectReference, …):
    /// server-side apply owns them as one value.
    pub struct_type: MapType,
    /// The properties, sorted by JSON name.
    pub fields: &'static [Field],
}

/// One property of a definition.
#[derive(Debug, PartialEq, Eq)]
pub struct Field {
    /// The JSON name (`volumeID`, `$ref`, …).
    pub name: &'static str,
    pub shape: Shape,
    /// The definition of the nested type: the object itself for [`Shape::Struct`] (and
    /// opaque scalars such as Quantity), the item of a list, the value of a map. `None` for
    /// primitives.
    pub type_name: Option<&'static str>,
    /// Lists only: `x-kubernetes-list-type`.
    pub list_type: ListType,
    /// Lists of type [`ListType::Map`]: `x-kubernetes-list-map-keys`.
    pub list_map_keys: &'static [&'static str],
    /// Maps: `x-kubernetes-map-type`; structs: their `structType`.
    pub map_type: MapType,
    /// Strategic merge patch: `x-kubernetes-patch-merge-key` (lists merged by key).
    pub patch_merge_key: Option<&'static str>,
    /// Strategic merge patch: `x-kubernetes-patch-strategy`.
    pub patch_strategy: PatchStrategy,
}

/// What kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A string, number, boolean or opaque value.
    Scalar,
    /// An object of a known definition.
    Struct,
    /// A JSON array.
    List,
    /// A JSON object with arbitrary keys (`map[string]T`).
    Map,
}

/// `x-kubernetes-list-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole (the default).
    Atomic,
    /// Items are unique scalars, merged as a set.
    Set,
    /// Items are objects identified by `list_map_keys`.
    Map,
}

/// `x-kubernetes-map-type` (and `structType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    /// Each key is merged and owned separately (the default).
    Granular,
    /// Replaced and owned as a whole.
    Atomic,
}

/// `x-kubernetes-patch-strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    /// No strategy: maps merge, lists are replaced.
    Replace,
    /// `merge`: lists merge (by `patch_merge_key`, or as a set of primitives).
    Merge,
    /// `retainKeys`: keys the patch does not name (in `$retainKeys`) are cleared.
    RetainKeys,
    /// `merge,retainKeys`.
    MergeRetainKeys,
}

impl PatchStrategy {
    /// The extension's value, as kube writes it; `None` for [`PatchStrategy::Replace`].
    pub fn as_extension(self) -> Option<&'static str> {
        match self {
            PatchStrategy::Replace => None,
            PatchStrategy::Merge => Some("merge"),
            PatchStrategy::RetainKeys => Some("retainKeys"),
            PatchStrategy::MergeRetainKeys => Some("merge,retainKeys"),
        }
    }

    /// Lists under this strategy merge instead of being replaced.
    pub fn merges(self) -> bool {
        matches!(self, PatchStrategy::Merge | PatchStrategy::MergeRetainKeys)
    }

    /// The patch's `$retainKeys` directive applies.
    pub fn retains_keys(self) -> bool {
        matches!(
            self,
            PatchStrategy::RetainKeys | PatchStrategy::MergeRetainKeys
        )
    }
}

impl ListType {
    /// The extension's value: `atomic`, `set` or `map`.
    pub fn as_extension(self) -> &'static str {
        match self {
            ListType::Atomic => "atomic",
            ListType::Set => "set",
            ListType::Map => "map",
        }
    }
}

impl MapType {
    /// The extension's value: `granular` or `atomic`.
    pub fn as_extension(self) -> &'static str {
        match self {
            MapType::Granular => "granular",
            MapType::Atomic => "atomic",
        }
    }
}

impl Definition {
    /// The property with this JSON name.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        let fields: &'static [Field] = self.fields;
        fields
            .binary_search_by(|f| f.name.cmp(name))
            .ok()
            .map(|i| &fields[i])
    }
}

impl Field {
    /// The definition of the nested object (struct, list item or map value), when it is an
    /// object with known fields.
    pub fn nested(&self) -> Option<&'static Definition> {
        self.type_name
            .and_then(definition)
            .filter(|definition| !definition.opaque)
    }
}

/// The schema of one value while walking an object: what its children are and how it
/// merges. Built from the table; `Unknown` below opaque values and unknown fields (maps
/// merge key by key there, lists are replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Nothing is known: a custom type, an unknown field, the inside of a RawExtension.
    Unknown,
    /// A primitive or an opaque value (Quantity, Time, IntOrString, …).
    Scalar,
    /// An object of a known definition.
    Struct(&'static Definition),
    /// A `map[string]T` field; its values have the field's nested type.
    Map(&'static Field),
    /// A list field; its items have the field's nested type.
    List(&'static Field),
}

impl Schema {
    /// The schema of a root type.
    pub fn of_root(group: &str, version: &str, kind: &str) -> Schema {
        root(group, version, kind).map_or(Schema::Unknown, Schema::Struct)
    }

    /// The schema of a value of this field.
    pub fn of_field(field: &'static Field) -> Schema {
        match field.shape {
            Shape::Scalar => Schema::Scalar,
            Shape::Struct => field.nested().map_or(Schema::Scalar, Schema::Struct),
            Shape::Map => Schema::Map(field),
            Shape::List => Schema::List(field),
        }
    }

    /// The schema of the value under `key` of this object.
    pub fn child(self, key: &str) -> Schema {
        match self {
            Schema::Struct(definition) => definition
                .field(key)
                .map_or(Schema::Unknown, Schema::of_field),
            Schema::Map(field) => Self::element(field),
            _ => Schema::Unknown,
        }
    }

    /// The schema of this list's items.
    pub fn item(self) -> Schema {
        match self {
            Schema::List(field) => Self::element(field),
            _ => Schema::Unknown,
        }
    }

    fn element(field: &'static Field) -> Schema {
        match field.type_name.and_then(definition) {
            Some(definition) if !definition.opaque => Schema::Struct(definition),
            Some(_) => Schema::Scalar,
            // Primitive items and values, or nested lists (`map[string][]string`).
            None => Schema::Unknown,
        }
    }

    /// The list field, when this is a list.
    pub fn list_field(self) -> Option<&'static Field> {
        match self {
            Schema::List(field) => Some(field),
            _ => None,
        }
    }

    /// Owned and replaced as one value by server-side apply: a scalar, an atomic struct or
    /// map, an atomic list.
    pub fn is_atomic(self) -> bool {
        match self {
            Schema::Scalar => true,
            Schema::Struct(definition) => definition.struct_type == MapType::Atomic,
            Schema::Map(field) => field.map_type == MapType::Atomic,
            Schema::List(field) => field.list_type == ListType::Atomic,
            Schema::Unknown => false,
        }
    }
}

/// kube's own type tags as declared in its sources (`kube_tags.txt`: `D` definition lines,
/// `S` type tags, `F` field tags, tab-separated). The table above folds them with
/// defaults; this keeps what was *declared*, which is what kube's OpenAPI publishes
/// (`+listType=atomic` is published, an untagged list is not).
pub const KUBE_TAGS: &str = include_str!("merge_schema/kube_tags.txt");

/// Every built-in definition, sorted by name.
pub fn definitions() -> &'static [Definition] {
    generated::DEFINITIONS
}

/// The definition with this kube name (`io.k8s.api.apps.v1.DeploymentSpec`).
pub fn definition(name: &str) -> Option<&'static Definition> {
    let all = generated::DEFINITIONS;
    all.binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &all[i])
}

/// The root definition of a kind (`("apps", "v1", "Deployment")`; the core group is `""`).
pub fn root(group: &str, version: &str, kind: &str) -> Option<&'static Definition> {
    generated::ROOTS
        .iter()
        .find(|(g, v, k, _)| *g == group && *v == version && *k == kind)
        .and_then(|(_, _, _, name)| definition(name))
}

/// Every root type: (group, version, kind, definition name).
pub fn roots() -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
    generated::ROOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(definition_name: &str, field: &str) -> &'static Field {
        definition(definition_name)
            .unwrap_or_else(|| panic!("{definition_name} is in the table"))
            .field(field)
            .unwrap_or_else(|| panic!("{definition_name} has {field}"))
    }

    #[test]
    fn generated_table_is_current() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let output = std::process::Command::new("python3")
            .arg(format!("{root}/scripts/gen_merge_schema.py"))
            .arg("--stdout")
            .output()
            .expect("python3 runs the generator");
        assert!(
            output.status.success(),
            "generator failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let committed = include_str!("merge_schema/generated.rs");
        assert!(
            String::from_utf8_lossy(&output.stdout) == committed,
            "core/src/merge_schema/generated.rs is stale: run `python3 scripts/gen_merge_schema.py`"
        );
    }

    #[test]
    fn tables_are_sorted_for_binary_search() {
        let all = definitions();
        assert!(all.windows(2).all(|w| w[0].name < w[1].name));
        for d in all {
            assert!(
                d.fields.windows(2).all(|w| w[0].name < w[1].name),
                "{}",
                d.name
            );
            for f in d.fields {
                if let Some(name) = f.type_name {
                    assert!(
                        definition(name).is_some(),
                        "{}.{} -> {name}",
                        d.name,
                        f.name
                    );
                }
            }
        }
    }

    #[test]
    fn pod_spec_strategies() {
        let pod = root("", "v1", "Pod").unwrap();
        assert_eq!(pod.name, "io.k8s.api.core.v1.Pod");
        assert_eq!(
            pod.field("spec").unwrap().type_name,
            Some("io.k8s.api.core.v1.PodSpec")
        );
        assert!(pod.field("apiVersion").is_some() && pod.field("kind").is_some());
        let containers = field("io.k8s.api.core.v1.PodSpec", "containers");
        assert_eq!(containers.list_type, ListType::Map);
        assert_eq!(containers.list_map_keys, ["name"]);
        assert_eq!(containers.patch_merge_key, Some("name"));
        assert_eq!(
            containers.nested().unwrap().name,
            "io.k8s.api.core.v1.Container"
        );
        let volumes = field("io.k8s.api.core.v1.PodSpec", "volumes");
        assert_eq!(
            volumes.patch_strategy.as_extension(),
            Some("merge,retainKeys")
        );
        let tolerations = field("io.k8s.api.core.v1.PodSpec", "tolerations");
        assert_eq!(tolerations.list_type, ListType::Atomic);
        assert_eq!(tolerations.patch_strategy, PatchStrategy::Replace);
        assert_eq!(
            field("io.k8s.api.core.v1.PodSpec", "nodeSelector").map_type,
            MapType::Atomic
        );
        let ports = field("io.k8s.api.core.v1.Container", "ports");
        assert_eq!(ports.list_map_keys, ["containerPort", "protocol"]);
        assert_eq!(ports.patch_merge_key, Some("containerPort"));
        let mounts = field("io.k8s.api.core.v1.Container", "volumeMounts");
        assert_eq!(mounts.patch_merge_key, Some("mountPath"));
        assert_eq!(
            field("io.k8s.api.core.v1.Container", "args").list_type,
            ListType::Atomic
        );
    }

    #[test]
    fn kube_tags_override_deep_merge() {
        // SMP merges job conditions by type, SSA owns them as one list.
        let conditions = field("io.k8s.api.batch.v1.JobStatus", "conditions");
        assert_eq!(conditions.list_type, ListType::Atomic);
        assert_eq!(conditions.patch_merge_key, Some("type"));
        // listType=map without a patch strategy: SSA keys it, SMP replaces it.
        let claims = field("io.k8s.api.core.v1.ResourceRequirements", "claims");
        assert_eq!(claims.list_map_keys, ["name"]);
        assert_eq!(claims.patch_strategy, PatchStrategy::Replace);
        // Embedded EphemeralContainerCommon fields keep their tags.
        let env = field("io.k8s.api.core.v1.EphemeralContainer", "env");
        assert_eq!(env.patch_merge_key, Some("name"));
        assert_eq!(
            definition("io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference")
                .unwrap()
                .struct_type,
            MapType::Atomic
        );
        assert_eq!(
            field("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints").list_map_keys,
            ["topologyKey", "whenUnsatisfiable"]
        );
    }

    #[test]
    fn metadata_and_apps_strategies() {
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        assert_eq!(field(meta, "finalizers").list_type, ListType::Set);
        assert_eq!(
            field(meta, "finalizers").patch_strategy,
            PatchStrategy::Merge
        );
        assert_eq!(field(meta, "labels").shape, Shape::Map);
        assert_eq!(field(meta, "ownerReferences").patch_merge_key, Some("uid"));
        let strategy = field("io.k8s.api.apps.v1.DeploymentSpec", "strategy");
        assert_eq!(strategy.patch_strategy.as_extension(), Some("retainKeys"));
        assert_eq!(
            field("io.k8s.api.apps.v1.DeploymentSpec", "selector")
                .nested()
                .unwrap()
                .struct_type,
            MapType::Atomic
        );
        assert_eq!(
            field(
                "io.k8s.api.core.v1.AWSElasticBlockStoreVolumeSource",
                "volumeID"
            )
            .shape,
            Shape::Scalar
        );
        let quantity = field("io.k8s.api.core.v1.ResourceRequirements", "limits");
        assert_eq!(quantity.shape, Shape::Map);
        assert!(quantity.nested().is_none(), "Quantity is opaque");
        assert!(root("apps", "v1", "Nope").is_none());
        assert_eq!(
            root("apps", "v1", "Deployment").unwrap().name,
            "io.k8s.api.apps.v1.Deployment"
        );
    }
}
