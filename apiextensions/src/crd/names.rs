//! Which names a CRD gets to serve under, as kube's naming and establishing controllers
//! decide: a name (plural, singular, short names; kind, list kind) is accepted unless another
//! CRD of the same group has already been accepted with it. Once the names are accepted the
//! CRD is established and its custom objects are served.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{Condition, Crd, Names};

/// The naming controller's verdict on one CRD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesStatus {
    /// `status.acceptedNames`: each requested name that is free or already this CRD's.
    pub accepted_names: Names,
    /// `NamesAccepted`: `True`/`NoConflicts`, or `False` with the last conflict found.
    pub names_accepted: Condition,
    /// `Established`: `True`/`InitialNamesAccepted` once the names are accepted (and stays
    /// `True` after that); `False`/`NotAccepted` before.
    pub established: Condition,
}

/// Decides `crd`'s accepted names against the accepted names of the CRDs in `group_crds` (the
/// CRDs known to the server; those of other groups are ignored, and `crd` itself may be
/// among them, as it is in kube's informer). Conflicts are checked in kube's order (plural,
/// singular, short names, kind, list kind); the condition reports the last one.
pub fn accept_names(crd: &Crd, group_crds: &[&Crd]) -> NamesStatus {
    let mut used_resources: HashSet<&str> = HashSet::new();
    let mut used_kinds: HashSet<&str> = HashSet::new();
    let own = std::iter::once(crd);
    for other in own.chain(group_crds.iter().copied()) {
        if other.group != crd.group {
            continue;
        }
        // The stored copy of this CRD is the one being decided.
        let accepted = if other.name == crd.name {
            &crd.status.accepted_names
        } else {
            &other.status.accepted_names
        };
        used_resources.insert(&accepted.plural);
        used_resources.insert(&accepted.singular);
        used_resources.extend(accepted.short_names.iter().map(String::as_str));
        used_kinds.insert(&accepted.kind);
        used_kinds.insert(&accepted.list_kind);
    }

    let requested = &crd.spec_names();
    let current = &crd.status.accepted_names;
    let mut names = current.clone();
    let mut conflict: Option<(&str, String)> = None;

    match fresh_or_own(&requested.plural, &current.plural, &used_resources) {
        Ok(()) => names.plural = requested.plural.clone(),
        Err(message) => conflict = Some(("PluralConflict", message)),
    }
    match fresh_or_own(&requested.singular, &current.singular, &used_resources) {
        Ok(()) => names.singular = requested.singular.clone(),
        Err(message) => conflict = Some(("SingularConflict", message)),
    }
    if requested.short_names != current.short_names {
        let taken: Vec<String> = requested
            .short_names
            .iter()
            .filter(|name| !current.short_names.contains(name))
            .filter_map(|name| fresh_or_own(name, "", &used_resources).err())
            .collect();
        if taken.is_empty() {
            names.short_names = requested.short_names.clone();
        } else {
            conflict = Some(("ShortNamesConflict", aggregate(&taken)));
        }
    }
    match fresh_or_own(&requested.kind, &current.kind, &used_kinds) {
        Ok(()) => names.kind = requested.kind.clone(),
        Err(message) => conflict = Some(("KindConflict", message)),
    }
    match fresh_or_own(&requested.list_kind, &current.list_kind, &used_kinds) {
        Ok(()) => names.list_kind = requested.list_kind.clone(),
        Err(message) => conflict = Some(("ListKindConflict", message)),
    }
    names.categories = requested.categories.clone();

    let names_accepted = match conflict {
        Some((reason, message)) => condition("NamesAccepted", "False", reason, &message),
        None => condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
    };
    let established = if crd.is_established() {
        crd.condition("Established").cloned().unwrap_or_default()
    } else if names_accepted.status == "True" {
        // The naming controller says `Installing`; the establishing controller then turns it
        // `True` at once (there is nothing to wait for here).
        condition(
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        )
    } else {
        crd.condition("Established").cloned().unwrap_or_else(|| {
            condition(
                "Established",
                "False",
                "NotAccepted",
                "not all names are accepted",
            )
        })
    };
    NamesStatus {
        accepted_names: names,
        names_accepted,
        established,
    }
}

/// Runs [`accept_names`] and writes the verdict into `object["status"]`: `acceptedNames`,
/// then the `NamesAccepted` and `Established` conditions (appended in that order when new; a
/// condition keeps its `lastTransitionTime` unless its status changes). `now` is an RFC 3339
/// timestamp. Returns whether the status changed; kube skips CRDs whose accepted names already
/// equal their spec's.
pub fn reconcile_status(object: &mut Value, group_crds: &[&Crd], now: &str) -> bool {
    let Ok(crd) = Crd::parse(object) else {
        return false;
    };
    if crd.spec_names() == crd.status.accepted_names && crd.is_established() {
        return false;
    }
    let verdict = accept_names(&crd, group_crds);
    let before = object.get("status").cloned();
    let Some(obj) = object.as_object_mut() else {
        return false;
    };
    let status = obj.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    status["acceptedNames"] = names_json(&verdict.accepted_names);
    set_condition(status, &verdict.names_accepted, now);
    set_condition(status, &verdict.established, now);
    object.get("status").cloned() != before
}

/// kube's `SetCRDCondition`: replaces the condition of the same type (keeping its
/// `lastTransitionTime` when the status is unchanged and the time is set) or appends it.
pub fn set_condition(status: &mut Value, condition: &Condition, now: &str) {
    let conditions = status
        .as_object_mut()
        .expect("status is an object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("just made an array");
    let existing = list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(&condition.condition_type));
    match existing {
        None => list.push(json!({
            "type": condition.condition_type,
            "status": condition.status,
            "lastTransitionTime": now,
            "reason": condition.reason,
            "message": condition.message,
        })),
        Some(existing) => {
            let same_status =
                existing.get("status").and_then(Value::as_str) == Some(&condition.status);
            let has_time = existing
                .get("lastTransitionTime")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty());
            if !same_status || !has_time {
                existing["lastTransitionTime"] = json!(now);
            }
            existing["status"] = json!(condition.status);
            existing["reason"] = json!(condition.reason);
            existing["message"] = json!(condition.message);
        }
    }
}

impl Crd {
    /// `spec.names` (a copy, so [`accept_names`] can compare it with the accepted ones).
    fn spec_names(&self) -> Names {
        self.names.clone()
    }
}

fn condition(condition_type: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        condition_type: condition_type.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: None,
    }
}

/// kube's `equalToAcceptedOrFresh`.
fn fresh_or_own(requested: &str, accepted: &str, used: &HashSet<&str>) -> Result<(), String> {
    if requested == accepted || !used.contains(requested) {
        Ok(())
    } else {
        Err(format!("{requested:?} is already in use"))
    }
}

/// apimachinery's aggregate error text: one message bare, several as `[a, b]`.
fn aggregate(messages: &[String]) -> String {
    match messages {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// `acceptedNames` in the v1 field order, empty lists and singular left out.
fn names_json(names: &Names) -> Value {
    let mut value = serde_json::Map::new();
    value.insert("plural".into(), json!(names.plural));
    if !names.singular.is_empty() {
        value.insert("singular".into(), json!(names.singular));
    }
    if !names.short_names.is_empty() {
        value.insert("shortNames".into(), json!(names.short_names));
    }
    value.insert("kind".into(), json!(names.kind));
    if !names.list_kind.is_empty() {
        value.insert("listKind".into(), json!(names.list_kind));
    }
    if !names.categories.is_empty() {
        value.insert("categories".into(), json!(names.categories));
    }
    Value::Object(value)
}
