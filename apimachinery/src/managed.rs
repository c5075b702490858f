//! `metadata.managedFields`: who owns which fields of an object.
//!
//! Every write records its field manager: server-side apply as an `Apply` entry (see
//! [`crate::ssa`]), every other write (create, update, merge/JSON/strategic patch, status
//! and scale writes) as an `Update` entry holding the fields it added or changed, which it
//! takes from every other manager. Fields that no longer exist leave every entry; entries
//! left empty are dropped. A manager is identified as kube does: name, operation and
//! subresource, plus the apiVersion for `Update` entries.
//!
//! The manager name is the `fieldManager` query parameter, or else the User-Agent up to its
//! first `/` (`kubectl/v1.33.1 (linux/amd64) …` → `kubectl`); kubectl itself sends
//! `fieldManager=kubectl-client-side-apply`, `kubectl-edit`, `kubectl-label`, … .

use crate::registry::Resource;
use kubecache_core::merge_schema::Schema;
use kubecache_core::status::{ApiError, Cause};
use serde_json::{Map, Value, json};

use crate::fieldset::{self, Element, FieldSet};
use crate::objects;
use kubecache_core::request::Subresource;

/// The longest `fieldManager` kube accepts.
const MAX_MANAGER_LENGTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manager {
    pub name: String,
    pub operation: Operation,
    pub api_version: String,
    /// `status`, `scale`, or empty for the main resource.
    pub subresource: String,
    pub time: Option<String>,
    pub fields: FieldSet,
}

impl Manager {
    /// Kube's manager identity: the apiVersion counts only for `Update`.
    pub fn same_identity(&self, other: &Manager) -> bool {
        self.name == other.name
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// How a conflict names the manager: `"a"`, `"kubectl-scale" using apps/v1`,
    /// `"x" with subresource "status" using v1`.
    pub fn describe(&self) -> String {
        let mut out = format!("{:?}", self.name);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.name));
        entry.insert("operation".into(), json!(self.operation.as_str()));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = &self.time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            entry.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(entry)
    }

    fn from_json(entry: &Value) -> Option<Manager> {
        let operation = match entry.get("operation")?.as_str()? {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return None,
        };
        if entry.get("fieldsType").and_then(Value::as_str) != Some("FieldsV1") {
            return None;
        }
        Some(Manager {
            name: entry.get("manager")?.as_str()?.to_string(),
            operation,
            api_version: entry.get("apiVersion")?.as_str()?.to_string(),
            subresource: str_field(entry, "subresource"),
            time: entry
                .get("time")
                .and_then(Value::as_str)
                .map(str::to_string),
            fields: FieldSet::from_fields_v1(entry.get("fieldsV1")?)?,
        })
    }
}

fn str_field(entry: &Value, key: &str) -> String {
    entry
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The managers recorded in `object`. Entries kubecache cannot read (not FieldsV1, bad
/// encoding) are dropped, as kube resets invalid managedFields.
pub fn read(object: &Value) -> Vec<Manager> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter_map(Manager::from_json).collect())
        .unwrap_or_default()
}

/// The managers recorded in `object` when every entry is valid.
fn read_valid(object: &Value) -> Option<Vec<Manager>> {
    object
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .map(Manager::from_json)
        .collect()
}

/// Writes `managers` (non-empty ones) into `object` in kube's order (operation, time,
/// manager, apiVersion, subresource); no entry removes the field.
pub fn write(object: &mut Value, managers: &[Manager]) {
    let mut kept: Vec<&Manager> = managers.iter().filter(|m| !m.fields.is_empty()).collect();
    kept.sort_by(|p, q| {
        (
            p.operation.as_str(),
            p.time.as_deref().unwrap_or(""),
            &p.name,
        )
            .cmp(&(
                q.operation.as_str(),
                q.time.as_deref().unwrap_or(""),
                &q.name,
            ))
            .then_with(|| (&p.api_version, &p.subresource).cmp(&(&q.api_version, &q.subresource)))
    });
    let entries: Vec<Value> = kept.into_iter().map(Manager::to_json).collect();
    let meta = objects::metadata_mut(object);
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

/// The schema ownership is computed with: the stored shape's type.
pub fn schema_of(resource: &Resource) -> Schema {
    let stored = resource.stored();
    Schema::of_root(&stored.group, &stored.version, &stored.kind)
}

/// How managedFields names a subresource (empty for the main resource).
pub fn subresource_name(subresource: Option<Subresource>) -> &'static str {
    subresource.map_or("", Subresource::as_str)
}

/// The field manager of a request: its `fieldManager` parameter, or the product name of its
/// User-Agent.
pub fn manager_name(field_manager: Option<&str>, user_agent: &str) -> Result<String, ApiError> {
    if let Some(name) = field_manager {
        validate_manager(name)?;
        return Ok(name.to_string());
    }
    let name = user_agent.split('/').next().unwrap_or("");
    Ok(name.chars().take(MAX_MANAGER_LENGTH).collect())
}

fn validate_manager(name: &str) -> Result<(), ApiError> {
    let cause = if name.chars().count() > MAX_MANAGER_LENGTH {
        Some(Cause::new(
            "FieldValueTooLong",
            "fieldManager",
            format!("Too long: may not be more than {MAX_MANAGER_LENGTH} bytes"),
        ))
    } else if name.chars().any(|c| c.is_control()) {
        Some(Cause::invalid(
            "fieldManager",
            name,
            "must only contain printable characters",
        ))
    } else {
        None
    };
    match cause {
        Some(cause) => Err(patch_options_invalid(cause)),
        None => Ok(()),
    }
}

/// `PatchOptions.meta.k8s.io "" is invalid: …` (422), as kube rejects bad options.
pub fn patch_options_invalid(cause: Cause) -> ApiError {
    ApiError::invalid("meta.k8s.io", "PatchOptions", "", vec![cause])
}

/// Paths no manager owns (kube strips them from every set), relative to the object.
const STRIPPED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "creationTimestamp"],
    &["metadata", "selfLink"],
    &["metadata", "uid"],
    &["metadata", "generation"],
    &["metadata", "resourceVersion"],
];

/// Limits a field set to what a write to `subresource` of `resource` may own: never the
/// server's metadata; `.status` only through the status subresource when there is one.
pub fn scope(mut set: FieldSet, resource: &Resource, subresource: &str) -> FieldSet {
    let field = |names: &[&str]| -> Vec<Element> {
        names
            .iter()
            .map(|n| Element::Field(n.to_string()))
            .collect()
    };
    set.remove_subtree(&field(&["metadata", "managedFields"]));
    for path in STRIPPED {
        set.remove_member(&field(path));
    }
    if resource.status_subresource && subresource.is_empty() {
        set.remove_subtree(&field(&["status"]));
    }
    if subresource == "status" {
        set = all_under(&set, &field(&["status"]));
    }
    set
}

/// The part of `set` at or below `prefix`.
fn all_under(set: &FieldSet, prefix: &[Element]) -> FieldSet {
    let mut result = FieldSet::default();
    for path in set.paths() {
        if path.starts_with(prefix) {
            result.insert(&path);
        }
    }
    result
}

/// `object` without `metadata.managedFields`, for comparisons.
pub fn without_managed_fields(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    copy
}

/// Records an ordinary write (create when `old` is `None`, update, patch) by `manager`:
/// it owns what it added or changed, others lose it; fields gone leave every entry.
pub fn record_update(
    resource: &Resource,
    subresource: &str,
    manager: &str,
    old: Option<&Value>,
    new: &mut Value,
) {
    let schema = schema_of(resource);
    // The empty structs and zero times the canonical form always has are nobody's doing:
    // ownership is computed without them (and they are put back at the end).
    let (api_version, kind) = crate::always_present::stored_kind(resource);
    let stripped = crate::always_present::strip(&api_version, &kind, new);
    // Managed fields the write itself sets (valid and non-empty, on the main resource) are
    // the new basis, as kube lets clients edit them (kubectl's client-side to server-side
    // apply migration does); otherwise the live object's are kept.
    let mut managers = read_valid(new)
        .filter(|m| !m.is_empty() && subresource.is_empty())
        .unwrap_or_else(|| old.map(read).unwrap_or_default());
    // The fields are compared without managedFields: `new`'s are taken out (`write` puts the
    // result back); `old`'s are never visited, as the walk follows `new`'s fields.
    objects::metadata_mut(new).shift_remove("managedFields");
    let changed = scope(
        fieldset::changed_fields(old, new, schema),
        resource,
        subresource,
    );
    // What exists limits the entries already there: a create has none to limit (unless the
    // client sent some), so it skips the second walk.
    let existing = if managers.is_empty() {
        FieldSet::default()
    } else {
        fieldset::all_paths(new, schema)
    };
    let me = Manager {
        name: manager.to_string(),
        operation: Operation::Update,
        api_version: resource.api_version(),
        subresource: subresource.to_string(),
        time: Some(objects::now_rfc3339()),
        fields: FieldSet::default(),
    };
    let mut found = false;
    for m in &mut managers {
        if m.same_identity(&me) {
            found = true;
            if !changed.is_empty() {
                m.fields = m.fields.union(&changed);
                m.time = me.time.clone();
            }
        } else {
            m.fields = m.fields.difference(&changed);
        }
        m.fields = m.fields.intersection(&existing);
    }
    if !found && !changed.is_empty() {
        managers.push(Manager {
            fields: changed,
            ..me
        });
    }
    write(new, &managers);
    if stripped {
        crate::always_present::fill(&api_version, &kind, new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn deployments() -> std::sync::Arc<Resource> {
        Registry::builtin()
            .lookup("apps", "v1", "deployments")
            .unwrap()
    }

    #[test]
    fn updates_take_changed_fields_from_others() {
        let resource = &deployments();
        let mut created = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "uid": "u", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "paused": false},
            "status": {"replicas": 1},
        });
        record_update(resource, "", "kubectl-create", None, &mut created);
        let managers = read(&created);
        assert_eq!(managers.len(), 1);
        assert_eq!(
            managers[0].fields.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:paused": {}, "f:replicas": {}}}),
            "server metadata and status are not owned"
        );
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(3);
        record_update(resource, "scale", "kubectl", Some(&created), &mut scaled);
        let managers = read(&scaled);
        assert_eq!(managers.len(), 2);
        let by_name = |managers: &[Manager], name: &str| -> Manager {
            managers.iter().find(|m| m.name == name).unwrap().clone()
        };
        assert_eq!(
            by_name(&managers, "kubectl-create").fields.to_fields_v1()["f:spec"],
            json!({"f:paused": {}})
        );
        let scaler = by_name(&managers, "kubectl");
        assert_eq!(scaler.subresource, "scale");
        assert_eq!(
            scaler.fields.to_fields_v1(),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(
            scaler.describe(),
            r#""kubectl" with subresource "scale" using apps/v1"#
        );
        // Removing a field drops it everywhere; an unchanged write adds no entry.
        let mut unlabeled = scaled.clone();
        unlabeled["metadata"]["labels"] = json!({});
        record_update(resource, "", "other", Some(&scaled), &mut unlabeled);
        let v1 = by_name(&read(&unlabeled), "kubectl-create")
            .fields
            .to_fields_v1();
        assert_eq!(v1["f:metadata"], json!({"f:labels": {}}));
        let mut same = unlabeled.clone();
        record_update(resource, "", "nobody", Some(&unlabeled), &mut same);
        assert!(read(&same).iter().all(|m| m.name != "nobody"));
    }

    #[test]
    fn managed_fields_a_write_sets_are_its_basis() {
        let resource = &deployments();
        let mut live = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}});
        record_update(resource, "", "kubectl-client-side-apply", None, &mut live);
        // A patch that hands the entry to another manager (kubectl's migration to SSA).
        let mut migrated = live.clone();
        migrated["metadata"]["managedFields"][0]["manager"] = json!("kubectl");
        migrated["metadata"]["managedFields"][0]["operation"] = json!("Apply");
        record_update(resource, "", "kubectl", Some(&live), &mut migrated);
        let managers = read(&migrated);
        assert_eq!(managers.len(), 1);
        assert_eq!(
            (managers[0].name.as_str(), managers[0].operation),
            ("kubectl", Operation::Apply)
        );
        // Invalid or empty managedFields in the write keep the live ones.
        let mut cleared = live.clone();
        cleared["metadata"]["managedFields"] = json!([]);
        record_update(resource, "", "x", Some(&live), &mut cleared);
        assert_eq!(read(&cleared)[0].name, "kubectl-client-side-apply");
        let mut broken = live.clone();
        broken["metadata"]["managedFields"][0]["operation"] = json!("Bogus");
        record_update(resource, "", "x", Some(&live), &mut broken);
        assert_eq!(read(&broken)[0].name, "kubectl-client-side-apply");
    }

    #[test]
    fn entries_are_written_in_kube_order() {
        let entry = |name: &str, operation, time: &str| Manager {
            name: name.into(),
            operation,
            api_version: "v1".into(),
            subresource: String::new(),
            time: Some(time.into()),
            fields: FieldSet::from_fields_v1(&json!({"f:data": {}})).unwrap(),
        };
        let mut object = json!({"metadata": {}});
        write(
            &mut object,
            &[
                entry("b", Operation::Update, "2026-01-01T00:00:02Z"),
                entry("z", Operation::Apply, "2026-01-01T00:00:09Z"),
                entry("a", Operation::Update, "2026-01-01T00:00:02Z"),
                entry("c", Operation::Update, "2026-01-01T00:00:01Z"),
            ],
        );
        let names: Vec<String> = read(&object).into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["z", "c", "a", "b"]);
    }

    #[test]
    fn invalid_entries_are_dropped_and_entries_round_trip() {
        let object = json!({"metadata": {"managedFields": [
            {"manager": "a", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}}}},
            {"manager": "b", "operation": "Bogus", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {}},
            {"manager": "c", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV2", "fieldsV1": {}},
        ]}});
        let managers = read(&object);
        assert_eq!(managers.len(), 1);
        let mut copy = json!({"metadata": {}});
        write(&mut copy, &managers);
        assert_eq!(
            copy["metadata"]["managedFields"][0],
            object["metadata"]["managedFields"][0]
        );
    }

    #[test]
    fn long_manager_names_are_invalid() {
        let err = validate_manager(&"x".repeat(129)).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(validate_manager("kubectl-edit").is_ok());
    }
}
