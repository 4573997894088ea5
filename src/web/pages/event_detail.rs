//! An event's detail (stored as JSON) as label/value pairs a person reads on the events
//! page: `{"expires_in_days": 30, "export_controlled": false}` becomes "Expires in days: 30",
//! "Export controlled: no". The CSV export and the API keep the JSON.

use serde_json::Value;

/// "expires_in_days" → "Expires in days".
pub fn label(key: &str) -> String {
    let words = key.replace(['_', '-'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A value in words: yes/no for booleans, "none" for null, lists joined with commas and
/// nested objects as "key: value" pairs.
pub fn value(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.is_empty() => "(empty)".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "none".into(),
        Value::Array(items) => items.iter().map(value).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{}: {}", label(k), value(v)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The detail's fields in key order; a detail that is not a JSON object is one field.
pub fn fields(detail: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<Value>(detail) {
        Ok(Value::Object(map)) => map.iter().map(|(k, v)| (label(k), value(v))).collect(),
        Ok(Value::Null) => vec![],
        Ok(other) => vec![("Detail".into(), value(&other))],
        Err(_) if detail.trim().is_empty() => vec![],
        Err(_) => vec![("Detail".into(), detail.to_string())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_read_as_label_and_value() {
        assert_eq!(
            fields(r#"{"expires_in_days": 30, "export_controlled": false, "max_uses": null}"#),
            vec![
                ("Expires in days".to_string(), "30".to_string()),
                ("Export controlled".to_string(), "no".to_string()),
                ("Max uses".to_string(), "none".to_string()),
            ]
        );
        assert_eq!(
            fields(r#"{"licenses": [{"tag": "ess", "count": 2}], "from": "a"}"#),
            vec![
                ("From".to_string(), "a".to_string()),
                ("Licenses".to_string(), "Count: 2; Tag: ess".to_string()),
            ]
        );
        assert!(fields("{}").is_empty());
        assert_eq!(fields("plain words")[0].1, "plain words");
    }
}
