//! The `ConversionReview` a conversion webhook is sent and the checks its answer must pass,
//! without the HTTP (the server's store crate sends it): kube's webhook converter
//! (`apiextensions-apiserver/pkg/apiserver/conversion`).
//!
//! The request is `apiextensions.k8s.io/v1` unless the CRD's `conversionReviewVersions`
//! names `v1beta1` first (the first version kube supports wins). The answer must be the same
//! review version, carry the request's `uid` (v1 only: kube never checked it for v1beta1),
//! `result.status: Success`, and one converted object per object sent, each in the desired
//! apiVersion and of the same kind. Of the metadata a webhook returns only labels and
//! annotations are kept (validated when changed); everything else is the original's.

use serde_json::{Map, Value, json};

use kubecache_core::validation::{is_label_value, is_qualified_name};

/// The `apiextensions.k8s.io` version of the review a webhook gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewVersion {
    V1,
    V1beta1,
}

impl ReviewVersion {
    /// The first of `conversionReviewVersions` kube supports; `None` when there is none.
    pub fn choose(versions: &[String]) -> Option<ReviewVersion> {
        versions.iter().find_map(|v| match v.as_str() {
            "v1" => Some(ReviewVersion::V1),
            "v1beta1" => Some(ReviewVersion::V1beta1),
            _ => None,
        })
    }

    fn api_version(self) -> &'static str {
        match self {
            ReviewVersion::V1 => "apiextensions.k8s.io/v1",
            ReviewVersion::V1beta1 => "apiextensions.k8s.io/v1beta1",
        }
    }
}

/// The review asking for `objects` in `desired` (`group/version`).
pub fn review_request(
    version: ReviewVersion,
    uid: &str,
    desired: &str,
    objects: &[Value],
) -> Value {
    json!({
        "apiVersion": version.api_version(),
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
    })
}

/// The converted objects of a webhook's answer `body`, checked against the request (`uid`,
/// `desired`, the `originals` sent) and with the originals' metadata restored; the error is
/// the part of kube's message after "conversion webhook for <gvk> failed: " (or the whole
/// message of a check on the objects, which kube words on its own).
pub fn review_response(
    version: ReviewVersion,
    body: &[u8],
    uid: &str,
    desired: &str,
    originals: &[Value],
) -> Result<Vec<Value>, ReviewError> {
    let review: Value = serde_json::from_slice(body).map_err(|e| {
        ReviewError::Call(format!("the server returned a body that is not JSON: {e}"))
    })?;
    if version == ReviewVersion::V1 {
        let api_version = review["apiVersion"].as_str().unwrap_or_default();
        let kind = review["kind"].as_str().unwrap_or_default();
        if api_version != version.api_version() || kind != "ConversionReview" {
            return Err(ReviewError::Call(format!(
                "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got {api_version}, Kind={kind}"
            )));
        }
    }
    let Some(response) = review.get("response").filter(|r| r.is_object()) else {
        return Err(ReviewError::Call("no response provided".to_string()));
    };
    if version == ReviewVersion::V1 {
        let got = response["uid"].as_str().unwrap_or_default();
        if got != uid {
            return Err(ReviewError::Call(format!(
                "expected response.uid={uid:?}, got {got:?}"
            )));
        }
    }
    let status = response["result"]["status"].as_str().unwrap_or_default();
    if status != "Success" {
        let message = response["result"]["message"].as_str().unwrap_or_default();
        return Err(ReviewError::Call(if message.is_empty() {
            format!("response.result.status was '{status}', not 'Success'")
        } else {
            message.to_string()
        }));
    }
    let converted = match &response["convertedObjects"] {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        _ => {
            return Err(ReviewError::Call(
                "response.convertedObjects is not a list".to_string(),
            ));
        }
    };
    if converted.len() != originals.len() {
        return Err(ReviewError::Count(format!(
            "returned {} objects, expected {}",
            converted.len(),
            originals.len()
        )));
    }
    converted
        .into_iter()
        .zip(originals)
        .enumerate()
        .map(|(index, (converted, original))| checked(index, converted, original, desired))
        .collect()
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewError {
    /// The call or the review failed: kube's "conversion webhook for <gvk> failed: <this>".
    Call(String),
    /// Not one object per object sent: kube's "conversion webhook for <gvk> <this>".
    Count(String),
    /// A converted object is wrong: kube's "conversion for <gvk> <this>".
    Objects(String),
}

impl ReviewError {
    /// kube's whole message for an object of `gvk` (`example.com/v1, Kind=Widget`).
    pub fn message(&self, gvk: &str) -> String {
        match self {
            ReviewError::Call(why) => format!("conversion webhook for {gvk} failed: {why}"),
            ReviewError::Count(why) => format!("conversion webhook for {gvk} {why}"),
            ReviewError::Objects(why) => format!("conversion for {gvk} {why}"),
        }
    }
}

/// One converted object: the desired apiVersion, the original's kind, and the original's
/// metadata but for labels and annotations (kube's `validateConvertedObject` and
/// `restoreObjectMeta`).
fn checked(
    index: usize,
    mut converted: Value,
    original: &Value,
    desired: &str,
) -> Result<Value, ReviewError> {
    let invalid = |why: String| {
        ReviewError::Objects(format!(
            "returned invalid converted object at index {index}: {why}"
        ))
    };
    let Some(object) = converted.as_object_mut() else {
        return Err(invalid("not an object".to_string()));
    };
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != desired {
        return Err(invalid(format!(
            "invalid groupVersion (expected {desired}, received {api_version})"
        )));
    }
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let original_kind = original["kind"].as_str().unwrap_or_default();
    if kind != original_kind {
        return Err(invalid(format!(
            "invalid kind (expected {original_kind}, received {kind})"
        )));
    }
    let returned = match object.get("metadata") {
        Some(Value::Object(meta)) => meta.clone(),
        Some(other) => {
            return Err(invalid(format!(
                "invalid metadata of type {} in converted object",
                json_type(other)
            )));
        }
        None => return Err(invalid("missing metadata in converted object".to_string())),
    };
    let mut metadata = original["metadata"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for field in ["labels", "annotations"] {
        restore_map(index, field, &returned, &mut metadata)?;
    }
    object.insert("metadata".into(), Value::Object(metadata));
    Ok(converted)
}

/// `metadata.<field>` as the webhook returned it, validated when it differs from the
/// original's.
fn restore_map(
    index: usize,
    field: &str,
    returned: &Map<String, Value>,
    metadata: &mut Map<String, Value>,
) -> Result<(), ReviewError> {
    let invalid = |why: String| {
        ReviewError::Objects(format!(
            "returned invalid metadata in object at index {index}: {why}"
        ))
    };
    let map = match returned.get(field) {
        None | Some(Value::Null) => {
            metadata.remove(field);
            return Ok(());
        }
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(invalid(format!(
                "invalid metadata.{field} of type {} in converted object",
                json_type(other)
            )));
        }
    };
    for (key, value) in map {
        if !value.is_string() {
            return Err(invalid(format!(
                "metadata.{field}[{key}] must be a string, but is {} in converted object",
                json_type(value)
            )));
        }
    }
    if metadata.get(field).and_then(Value::as_object) != Some(map) {
        let mut errors = Vec::new();
        for (key, value) in map {
            let value = value.as_str().unwrap_or_default();
            let path = format!("metadata.{field}");
            errors.extend(
                is_qualified_name(&key.to_lowercase())
                    .into_iter()
                    .map(|m| format!("{path}: Invalid value: {key:?}: {m}")),
            );
            if field == "labels" {
                errors.extend(
                    is_label_value(value)
                        .into_iter()
                        .map(|m| format!("{path}: Invalid value: {value:?}: {m}")),
                );
            }
        }
        if !errors.is_empty() {
            return Err(invalid(errors.join(", ")));
        }
    }
    metadata.insert(field.to_string(), Value::Object(map.clone()));
    Ok(())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original() -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
               "metadata": {"name": "a", "uid": "u1", "resourceVersion": "5",
                            "labels": {"app": "a"}},
               "spec": {"size": 1}})
    }

    fn answer(uid: &str, objects: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": uid, "result": {"status": "Success"},
                         "convertedObjects": objects},
        }))
        .unwrap()
    }

    fn converted() -> Value {
        json!({"apiVersion": "example.com/v2", "kind": "Widget",
               "metadata": {"name": "a", "uid": "u1", "resourceVersion": "5",
                            "labels": {"app": "a"}},
               "spec": {"replicas": 1}})
    }

    fn check(body: &[u8]) -> Result<Vec<Value>, ReviewError> {
        review_response(
            ReviewVersion::V1,
            body,
            "r1",
            "example.com/v2",
            &[original()],
        )
    }

    #[test]
    fn the_review_version_is_the_first_supported() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ReviewVersion::choose(&names(&["v2", "v1beta1", "v1"])),
            Some(ReviewVersion::V1beta1)
        );
        assert_eq!(
            ReviewVersion::choose(&names(&["v1", "v1beta1"])),
            Some(ReviewVersion::V1)
        );
        assert_eq!(ReviewVersion::choose(&names(&["v2"])), None);
        let request = review_request(
            ReviewVersion::V1beta1,
            "r1",
            "example.com/v2",
            &[original()],
        );
        assert_eq!(request["apiVersion"], "apiextensions.k8s.io/v1beta1");
        assert_eq!(request["kind"], "ConversionReview");
        assert_eq!(request["request"]["uid"], "r1");
        assert_eq!(request["request"]["desiredAPIVersion"], "example.com/v2");
        assert_eq!(request["request"]["objects"][0]["spec"]["size"], 1);
    }

    #[test]
    fn a_good_answer_is_accepted() {
        let objects = check(&answer("r1", vec![converted()])).unwrap();
        assert_eq!(objects, vec![converted()]);
    }

    #[test]
    fn the_uid_and_the_result_are_checked() {
        let wrong_uid = check(&answer("other", vec![converted()])).unwrap_err();
        assert_eq!(
            wrong_uid.message("example.com/v1, Kind=Widget"),
            "conversion webhook for example.com/v1, Kind=Widget failed: expected response.uid=\"r1\", got \"other\""
        );
        let failed = serde_json::to_vec(&json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": "r1", "result": {"status": "Failure", "message": "no way"}}}))
        .unwrap();
        assert_eq!(
            check(&failed).unwrap_err(),
            ReviewError::Call("no way".into())
        );
        let silent = serde_json::to_vec(&json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": "r1", "result": {"status": "Failure"}}}))
        .unwrap();
        assert_eq!(
            check(&silent).unwrap_err(),
            ReviewError::Call("response.result.status was 'Failure', not 'Success'".into())
        );
        assert!(matches!(check(b"<html>"), Err(ReviewError::Call(_))));
        let no_response = br#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview"}"#;
        assert_eq!(
            check(no_response).unwrap_err(),
            ReviewError::Call("no response provided".into())
        );
        let wrong_kind = br#"{"apiVersion":"v1","kind":"Status","response":{}}"#;
        assert!(
            matches!(check(wrong_kind), Err(ReviewError::Call(m)) if m.starts_with("expected webhook response of"))
        );
    }

    #[test]
    fn v1beta1_answers_are_not_checked_for_uid() {
        let body = serde_json::to_vec(&json!({
            "apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "ConversionReview",
            "response": {"uid": "whatever", "result": {"status": "Success"},
                         "convertedObjects": [converted()]}}))
        .unwrap();
        let objects = review_response(
            ReviewVersion::V1beta1,
            &body,
            "r1",
            "example.com/v2",
            &[original()],
        );
        assert_eq!(objects.unwrap().len(), 1);
    }

    #[test]
    fn the_objects_are_checked() {
        let none = check(&answer("r1", vec![])).unwrap_err();
        assert_eq!(
            none.message("example.com/v1, Kind=Widget"),
            "conversion webhook for example.com/v1, Kind=Widget returned 0 objects, expected 1"
        );
        let mut stale = converted();
        stale["apiVersion"] = json!("example.com/v1");
        let error = check(&answer("r1", vec![stale])).unwrap_err();
        assert_eq!(
            error.message("example.com/v1, Kind=Widget"),
            "conversion for example.com/v1, Kind=Widget returned invalid converted object at index 0: invalid groupVersion (expected example.com/v2, received example.com/v1)"
        );
        let mut other_kind = converted();
        other_kind["kind"] = json!("Gadget");
        assert!(check(&answer("r1", vec![other_kind])).is_err());
        let mut no_meta = converted();
        no_meta.as_object_mut().unwrap().remove("metadata");
        assert!(check(&answer("r1", vec![no_meta])).is_err());
    }

    #[test]
    fn only_labels_and_annotations_may_change() {
        let mut changed = converted();
        changed["metadata"]["name"] = json!("renamed");
        changed["metadata"]["uid"] = json!("u2");
        changed["metadata"]["labels"] = json!({"app": "b"});
        changed["metadata"]["annotations"] = json!({"note": "x"});
        let objects = check(&answer("r1", vec![changed])).unwrap();
        let meta = &objects[0]["metadata"];
        assert_eq!(meta["name"], "a", "restored");
        assert_eq!(meta["uid"], "u1", "restored");
        assert_eq!(meta["resourceVersion"], "5");
        assert_eq!(meta["labels"], json!({"app": "b"}));
        assert_eq!(meta["annotations"], json!({"note": "x"}));
        let mut bad_label = converted();
        bad_label["metadata"]["labels"] = json!({"app": "not valid!"});
        assert!(check(&answer("r1", vec![bad_label])).is_err());
        let mut not_string = converted();
        not_string["metadata"]["annotations"] = json!({"n": 1});
        let error = check(&answer("r1", vec![not_string])).unwrap_err();
        assert!(
            error
                .message("g")
                .contains("metadata.annotations[n] must be a string"),
            "{error:?}"
        );
        let mut dropped = converted();
        dropped["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        let objects = check(&answer("r1", vec![dropped])).unwrap();
        assert!(objects[0]["metadata"].get("labels").is_none());
    }
}
