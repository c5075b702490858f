//! Table cells of a custom resource's printer columns, as kube's CRD table convertor fills
//! them: the first value the column's JSONPath finds, typed by the column's `type`, and a
//! null cell when nothing is found or the value does not fit the type.

use chrono::{DateTime, Utc};
use serde_json::{Number, Value};

use crate::jsonpath::{self, JsonPath};

/// What kube describes the default `Age` column with (`ObjectMeta.creationTimestamp`'s doc).
const CREATION_TIMESTAMP_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub column_type: String,
    pub format: String,
    pub description: String,
    /// 0 for columns shown by default; higher ones only in wide output.
    pub priority: i64,
    pub json_path: String,
}

impl PrinterColumn {
    pub fn new(name: &str, column_type: &str, json_path: &str, description: &str) -> Self {
        PrinterColumn {
            name: name.to_string(),
            column_type: column_type.to_string(),
            json_path: json_path.to_string(),
            description: description.to_string(),
            ..PrinterColumn::default()
        }
    }

    /// The column kube shows for a version that declares none.
    pub fn age() -> Self {
        PrinterColumn::new(
            "Age",
            "date",
            ".metadata.creationTimestamp",
            CREATION_TIMESTAMP_DESCRIPTION,
        )
    }

    /// The Table column definition (`metav1.TableColumnDefinition`) kube sends for it.
    pub fn definition(&self) -> Value {
        let description = if self.description.is_empty() {
            format!(
                "Custom resource definition column (in JSONPath format): {}",
                self.json_path
            )
        } else {
            self.description.clone()
        };
        serde_json::json!({
            "name": self.name,
            "type": self.column_type,
            "format": self.format,
            "description": description,
            "priority": self.priority,
        })
    }

    /// Compiles the column's path; kube falls back to its default table when this fails.
    pub fn compile(&self) -> Result<JsonPath, String> {
        JsonPath::parse(&self.json_path)
            .map_err(|_| format!("unrecognized column definition {:?}", self.json_path))
    }

    /// The cell for `object` at time `now` (ages of `date` columns count from it). Compiles the
    /// path on every call: a table of many rows should [`compile`](Self::compile) once and use
    /// [`cell_with`](Self::cell_with).
    pub fn cell(&self, object: &Value, now: DateTime<Utc>) -> Value {
        match self.compile() {
            Ok(path) => self.cell_with(&path, object, now),
            Err(_) => Value::Null,
        }
    }

    /// The cell for `object` with the column's compiled path.
    pub fn cell_with(&self, path: &JsonPath, object: &Value, now: DateTime<Utc>) -> Value {
        let found = path.evaluate(object);
        let Some(value) = found.first() else {
            return Value::Null;
        };
        if self.column_type == "string" {
            return Value::String(jsonpath::print_value(value));
        }
        typed_cell(&self.column_type, value, now)
    }
}

/// kube's `cellForJSONValue`: the value as the column's type, null when it is not one.
fn typed_cell(column_type: &str, value: &Value, now: DateTime<Utc>) -> Value {
    match (column_type, value) {
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(int) => Value::from(int),
            // A float (or an integer too big for int64, which decodes as one) truncates.
            None => Value::from(n.as_f64().unwrap_or(0.0) as i64),
        },
        ("number", Value::Number(n)) => float_cell(n.as_f64().unwrap_or(f64::NAN)),
        ("boolean", Value::Bool(b)) => Value::Bool(*b),
        ("date", Value::String(text)) => Value::String(age_cell(text, now)),
        _ => Value::Null,
    }
}

/// A float64 as Go's JSON encoder writes it: whole numbers without a fraction.
fn float_cell(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// A timestamp cell: its age (`5m`, `3d4h`), `<unknown>` for an empty or zero time, and
/// `<invalid>` for a string that is not RFC 3339.
fn age_cell(text: &str, now: DateTime<Utc>) -> String {
    if text.is_empty() || text == "null" {
        return "<unknown>".to_string();
    }
    match DateTime::parse_from_rfc3339(text) {
        Err(_) => "<invalid>".to_string(),
        Ok(time) if time.timestamp() == -62_135_596_800 && time.timestamp_subsec_nanos() == 0 => {
            // Go's zero time, 0001-01-01T00:00:00Z.
            "<unknown>".to_string()
        }
        Ok(time) => human_duration(now.signed_duration_since(time.to_utc())),
    }
}

/// kube's `duration.HumanDuration`: about two significant units (`90s`, `5m3s`, `3h20m`,
/// `2d5h`, `1y30d`), `0s` for up to a second into the future, `<invalid>` beyond that.
pub fn human_duration(duration: chrono::TimeDelta) -> String {
    let seconds = duration.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn column(column_type: &str, path: &str) -> PrinterColumn {
        PrinterColumn::new("C", column_type, path, "")
    }

    #[test]
    fn human_durations_match_kube() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (183, "3m3s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 20 * 60, "3h20m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (53 * 3600, "2d5h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (760 * 86400, "2y30d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(
                human_duration(TimeDelta::seconds(seconds)),
                want,
                "{seconds}s"
            );
        }
    }

    #[test]
    fn cells_are_typed_like_kubes() {
        let object = json!({
            "metadata": {"creationTimestamp": "2025-06-01T11:55:00Z"},
            "spec": {"replicas": 3, "ratio": 2.5, "whole": 4.0, "paused": true, "name": "x",
                     "list": [1, 2], "nothing": null, "bad": "yesterday"}
        });
        let cell = |t: &str, p: &str| column(t, p).cell(&object, now());
        assert_eq!(cell("integer", ".spec.replicas"), json!(3));
        assert_eq!(cell("integer", ".spec.ratio"), json!(2));
        assert_eq!(cell("number", ".spec.replicas"), json!(3));
        assert_eq!(cell("number", ".spec.ratio"), json!(2.5));
        assert_eq!(cell("number", ".spec.whole"), json!(4));
        assert_eq!(cell("boolean", ".spec.paused"), json!(true));
        assert_eq!(cell("boolean", ".spec.name"), Value::Null);
        assert_eq!(cell("integer", ".spec.name"), Value::Null);
        assert_eq!(cell("string", ".spec.name"), json!("x"));
        assert_eq!(cell("string", ".spec.replicas"), json!("3"));
        assert_eq!(cell("string", ".spec.list"), json!("[1,2]"));
        assert_eq!(cell("string", ".spec.nothing"), json!("<no value>"));
        assert_eq!(cell("integer", ".spec.nothing"), Value::Null);
        assert_eq!(cell("string", ".spec.missing"), Value::Null);
        assert_eq!(cell("date", ".metadata.creationTimestamp"), json!("5m"));
        assert_eq!(cell("date", ".spec.bad"), json!("<invalid>"));
        assert_eq!(cell("date", ".spec.replicas"), Value::Null);
        assert_eq!(cell("string", ".spec.list[*]"), json!("1"));
    }

    #[test]
    fn zero_and_empty_times_are_unknown() {
        let object = json!({"a": "", "b": "0001-01-01T00:00:00Z"});
        assert_eq!(
            column("date", ".a").cell(&object, now()),
            json!("<unknown>")
        );
        assert_eq!(
            column("date", ".b").cell(&object, now()),
            json!("<unknown>")
        );
    }

    #[test]
    fn definitions_describe_undescribed_columns_by_path() {
        let definition = column("integer", ".spec.replicas").definition();
        assert_eq!(
            definition["description"],
            "Custom resource definition column (in JSONPath format): .spec.replicas"
        );
        assert_eq!(definition["type"], "integer");
        assert!(
            PrinterColumn::age().definition()["description"]
                .as_str()
                .unwrap()
                .starts_with("CreationTimestamp is a timestamp")
        );
    }
}
