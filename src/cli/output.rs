//! Machine-readable command output: `key=value` lines, or one JSON object with `--json`.

use std::io::Write;

pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints the pairs in order and flushes, so a supervising process sees them at once.
    pub fn emit(&self, pairs: &[(&str, String)]) {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let object: serde_json::Map<String, serde_json::Value> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
                .collect();
            let _ = writeln!(stdout, "{}", serde_json::Value::Object(object));
        } else {
            for (k, v) in pairs {
                let _ = writeln!(stdout, "{k}={v}");
            }
        }
        let _ = stdout.flush();
    }

    /// As `emit`, followed by a report: under `key` in the JSON object, or as its text
    /// after the `key=value` lines.
    pub fn emit_report(
        &self,
        pairs: &[(&str, String)],
        key: &str,
        value: serde_json::Value,
        text: &str,
    ) {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let mut object: serde_json::Map<String, serde_json::Value> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
                .collect();
            object.insert(key.to_string(), value);
            let _ = writeln!(stdout, "{}", serde_json::Value::Object(object));
        } else {
            for (k, v) in pairs {
                let _ = writeln!(stdout, "{k}={v}");
            }
            let _ = write!(stdout, "\n{text}");
        }
        let _ = stdout.flush();
    }
}
