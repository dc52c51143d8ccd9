//! A walker over `serde_json::Value` that knows where it is: every error names the file, the
//! JSON path and what is allowed, and an unknown key gets the nearest known one as a suggestion.

use std::str::FromStr;

use serde_json::{Map, Value};

use crate::arch::ArchError;
use crate::suggest::suggestion;

/// The largest whole number an architecture field takes (array rows and columns, vector lanes,
/// random bits per cycle, memory sizes): 2^53, the last integer exact in `f64`. The cycle model
/// also computes with checked arithmetic, so a large but allowed size is an error at pricing
/// time rather than a wrapped figure.
pub(crate) const MAX_COUNT: u64 = 1 << 53;

/// A JSON value with its location (file and path), for precise errors.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    file: &'a str,
    path: &'a str,
    value: &'a Value,
}

/// A JSON object whose keys have been checked against the allowed ones.
pub(crate) struct Obj<'a> {
    node: Node<'a>,
    map: &'a Map<String, Value>,
}

/// One short description of a JSON value's type, for "found ..." messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Node<'a> {
    /// The document root of `file`.
    pub(crate) fn root(file: &'a str, value: &'a Value) -> Self {
        Node {
            file,
            path: "",
            value,
        }
    }

    /// The JSON path of this node (`compute.array.rows`, `memory[1].name`; `(root)` at the top).
    pub(crate) fn path(&self) -> &str {
        if self.path.is_empty() {
            "(root)"
        } else {
            self.path
        }
    }

    /// An error at this node: `file: path: reason`.
    pub(crate) fn err(&self, reason: impl std::fmt::Display) -> ArchError {
        ArchError::Invalid {
            file: self.file.to_string(),
            detail: format!("{}: {reason}", self.path()),
        }
    }

    /// An error about this node's value: `file: path = value: reason`.
    pub(crate) fn bad_value(&self, reason: impl std::fmt::Display) -> ArchError {
        ArchError::Invalid {
            file: self.file.to_string(),
            detail: format!("{} = {}: {reason}", self.path(), self.value),
        }
    }

    /// The path of field `key` of this node.
    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn wrong_type(&self, expected: &str) -> ArchError {
        self.err(format!(
            "expected {expected}, found {} {}",
            type_name(self.value),
            self.value
        ))
    }

    /// This node as an object with any keys (a map such as `energy.overrides`).
    pub(crate) fn object_any(&self) -> Result<Obj<'a>, ArchError> {
        let map = self
            .value
            .as_object()
            .ok_or_else(|| self.wrong_type("an object"))?;
        Ok(Obj { node: *self, map })
    }

    /// This node as an object whose keys must all be in `allowed`.
    pub(crate) fn object(&self, allowed: &[&str]) -> Result<Obj<'a>, ArchError> {
        let obj = self.object_any()?;
        if let Some(key) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            let path = self.child_path(key);
            let at = Node {
                path: &path,
                ..*self
            };
            return Err(at.err(format!(
                "unknown field{}; allowed: {}",
                suggestion(key, allowed),
                allowed.join(", ")
            )));
        }
        Ok(obj)
    }

    /// This node as an array of nodes (paths `path[i]`), passed to `f` one by one.
    pub(crate) fn array<T>(
        &self,
        mut f: impl FnMut(Node<'_>) -> Result<T, ArchError>,
    ) -> Result<Vec<T>, ArchError> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.wrong_type("an array"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let path = format!("{}[{i}]", self.path);
                f(Node {
                    file: self.file,
                    path: &path,
                    value: v,
                })
            })
            .collect()
    }

    /// This node as a string.
    pub(crate) fn str(&self) -> Result<&'a str, ArchError> {
        self.value
            .as_str()
            .ok_or_else(|| self.wrong_type("a string"))
    }

    /// This node as a scalar written as text: a string as is, a number or a boolean as JSON
    /// writes it (the values of a sweep's `set` grid).
    pub(crate) fn scalar(&self) -> Result<String, ArchError> {
        match self.value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(self.wrong_type("a string, number or boolean")),
        }
    }

    /// This node as a boolean.
    pub(crate) fn bool(&self) -> Result<bool, ArchError> {
        self.value
            .as_bool()
            .ok_or_else(|| self.wrong_type("true or false"))
    }

    /// This node as a whole number of at least `min` and at most [`MAX_COUNT`].
    pub(crate) fn uint(&self, min: u64) -> Result<u64, ArchError> {
        let n = self
            .value
            .as_u64()
            .ok_or_else(|| self.wrong_type(&format!("a whole number >= {min}")))?;
        if n < min {
            return Err(self.bad_value(format!("must be at least {min}")));
        }
        if n > MAX_COUNT {
            return Err(self.bad_value(format!(
                "must be at most 2^53 = {MAX_COUNT} (counts are exact in the f64 arithmetic of \
                 the area and energy model)"
            )));
        }
        Ok(n)
    }

    /// This node as a finite number strictly greater than zero.
    pub(crate) fn positive(&self) -> Result<f64, ArchError> {
        let x = self.number()?;
        if x <= 0.0 {
            return Err(self.bad_value("must be greater than 0"));
        }
        Ok(x)
    }

    /// This node as a finite number of at least zero.
    pub(crate) fn non_negative(&self) -> Result<f64, ArchError> {
        let x = self.number()?;
        if x < 0.0 {
            return Err(self.bad_value("must be at least 0"));
        }
        Ok(x)
    }

    fn number(&self) -> Result<f64, ArchError> {
        self.value
            .as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.wrong_type("a number"))
    }

    /// This node as a string parsed by `FromStr` (format and rounding specs); the parser's
    /// message, which lists what is allowed, is kept.
    pub(crate) fn parsed<T: FromStr>(&self) -> Result<T, ArchError>
    where
        T::Err: std::fmt::Display,
    {
        self.str()?.parse().map_err(|e| self.bad_value(e))
    }

    /// This node as one of the names in `allowed`.
    pub(crate) fn choice<'s>(&self, allowed: &[&'s str]) -> Result<&'s str, ArchError> {
        let s = self.str()?;
        allowed.iter().find(|a| **a == s).copied().ok_or_else(|| {
            self.bad_value(format!(
                "must be one of {}{}",
                allowed.join(", "),
                suggestion(s, allowed)
            ))
        })
    }
}

impl<'a> Obj<'a> {
    /// Run `f` on field `key` if it is present.
    pub(crate) fn opt<T>(
        &self,
        key: &str,
        f: impl FnOnce(Node<'_>) -> Result<T, ArchError>,
    ) -> Result<Option<T>, ArchError> {
        self.map
            .get(key)
            .map(|v| {
                let path = self.node.child_path(key);
                f(Node {
                    file: self.node.file,
                    path: &path,
                    value: v,
                })
            })
            .transpose()
    }

    /// Run `f` on field `key`, which must be present (`what` describes it for the error).
    pub(crate) fn req<T>(
        &self,
        key: &str,
        what: &str,
        f: impl FnOnce(Node<'_>) -> Result<T, ArchError>,
    ) -> Result<T, ArchError> {
        self.opt(key, f)?
            .ok_or_else(|| self.node.err(format!("missing field `{key}` ({what})")))
    }

    /// The object's own node.
    pub(crate) fn node(&self) -> Node<'a> {
        self.node
    }

    /// The keys present, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'a String> {
        self.map.keys()
    }
}
