//! Field errors worded as kube's `k8s.io/apimachinery/pkg/util/validation/field` words them,
//! so a 422 reads `Pod "x" is invalid: spec.containers[1].name: Duplicate value: "a"`.
//! Every validator (built-in kinds, CustomResourceDefinition schemas) builds its [`Cause`]s
//! here.

use serde_json::Value;

use crate::status::Cause;

/// A value as kube's `field.Error` prints it: strings quoted, numbers and booleans bare,
/// anything else as JSON.
pub fn render(value: &Value) -> String {
    match value {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

pub fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
    Cause::new(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {}: {detail}", render(value)),
    )
}

pub fn duplicate(field: &str, value: &Value) -> Cause {
    Cause::new(
        "FieldValueDuplicate",
        field,
        format!("Duplicate value: {}", render(value)),
    )
}

pub fn not_found(field: &str, value: &Value) -> Cause {
    Cause::new(
        "FieldValueNotFound",
        field,
        format!("Not found: {}", render(value)),
    )
}

pub fn not_supported(field: &str, value: &Value, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    Cause::new(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {}: supported values: {}",
            render(value),
            list.join(", ")
        ),
    )
}

pub fn required(field: &str) -> Cause {
    Cause::required(field)
}

/// `field.Required` with a detail: `Required value: detail`.
pub fn required_because(field: &str, detail: &str) -> Cause {
    Cause::new(
        "FieldValueRequired",
        field,
        format!("Required value: {detail}"),
    )
}

pub fn forbidden(field: &str, detail: &str) -> Cause {
    Cause::forbidden(field, detail)
}

/// `field.TooLong` of a string field, in bytes.
pub fn too_long(field: &str, max_bytes: usize) -> Cause {
    Cause::new(
        "FieldValueTooLong",
        field,
        format!("Too long: may not be more than {max_bytes} bytes"),
    )
}
