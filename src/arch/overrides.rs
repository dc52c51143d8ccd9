//! Overrides of architecture fields by dotted JSON path (`formats.weights`, `memory.1.size_bytes`),
//! as a workload's `arch_overrides` and `lpsim run --set arch.<path>=<value>` give them. They are
//! applied to the JSON before validation, so an override is checked exactly like the file itself.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::arch::{ArchError, Architecture};

/// Set `path` (dot-separated object keys or array indices) in `root` to `value`, creating
/// missing object keys (validation then rejects keys the schema does not know).
fn set_path(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let mut node = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        node = match node {
            Value::Object(map) => {
                if last {
                    map.insert((*part).to_string(), value);
                    return Ok(());
                }
                map.entry((*part).to_string())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            Value::Array(items) => {
                let len = items.len();
                let slot = part
                    .parse::<usize>()
                    .ok()
                    .and_then(|k| items.get_mut(k))
                    .ok_or_else(|| format!("`{part}` is not an index 0..{len}"))?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => {
                return Err(format!(
                    "`{}` is not an object or a list",
                    parts[..i].join(".")
                ))
            }
        };
    }
    Err("empty path".into())
}

/// An override value written on the command line: JSON where it parses as JSON (numbers,
/// booleans, objects), else the text itself as a string (format and rounding specs).
pub fn override_value(text: &str) -> Value {
    crate::json::parse_strict(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

impl Architecture {
    /// Read an architecture file and apply `overrides` (dotted path -> value) before validating.
    pub fn load_with_overrides(
        path: &Path,
        overrides: &BTreeMap<String, Value>,
    ) -> Result<Self, ArchError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ArchError::Io {
            file: file.clone(),
            error,
        })?;
        let mut value = crate::json::parse_strict(&text).map_err(|error| ArchError::Json {
            file: file.clone(),
            error,
        })?;
        for (p, v) in overrides {
            set_path(&mut value, p, v.clone()).map_err(|reason| ArchError::Invalid {
                file: file.clone(),
                detail: format!("override {p}: {reason}"),
            })?;
        }
        let label = if overrides.is_empty() {
            file
        } else {
            let list: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{file} (with {})", list.join(", "))
        };
        Self::from_value(&label, &value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nested_keys_and_indices() {
        let mut v: Value = serde_json::json!({"a": {"b": 1}, "m": [{"x": 1}, {"x": 2}]});
        set_path(&mut v, "a.b", Value::from(5)).unwrap();
        set_path(&mut v, "m.1.x", Value::from(7)).unwrap();
        set_path(&mut v, "a.c", Value::from("e4m3fn")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": {"b": 5, "c": "e4m3fn"}, "m": [{"x": 1}, {"x": 7}]})
        );
        assert!(set_path(&mut v, "m.9.x", Value::from(1)).is_err());
        assert!(set_path(&mut v, "a.b.c", Value::from(1)).is_err());
    }

    #[test]
    fn command_line_values() {
        assert_eq!(override_value("32"), Value::from(32));
        assert_eq!(override_value("true"), Value::from(true));
        assert_eq!(override_value("e4m3fn"), Value::from("e4m3fn"));
        assert_eq!(
            override_value("fixed:wl=8,fl=3"),
            Value::from("fixed:wl=8,fl=3")
        );
    }
}
