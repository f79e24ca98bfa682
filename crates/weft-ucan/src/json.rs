//! Canonical JSON: object keys sorted by bytes, no whitespace.
//!
//! Token payloads are signed as bytes, so building must be deterministic whatever features
//! `serde_json` is compiled with (`preserve_order` would change key order). The fixtures' tokens are
//! written this way too.

use serde_json::Value;

/// Appends the canonical encoding of `value` to `out`.
pub(crate) fn write(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            write_object(entries.into_iter().map(|(k, v)| (k.as_str(), v)), out);
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        // Strings, numbers, booleans and null have one encoding in serde_json.
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Writes an object whose entries the caller yields already sorted.
pub(crate) fn write_object<'a>(
    entries: impl Iterator<Item = (&'a str, &'a Value)>,
    out: &mut String,
) {
    out.push('{');
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(key).to_string());
        out.push(':');
        write(value, out);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_at_every_depth() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":[{"y":"\u00e9","x":null}],"c":true}}"#)
                .unwrap();
        let mut out = String::new();
        write(&v, &mut out);
        assert_eq!(out, r#"{"a":{"c":true,"z":[{"x":null,"y":"é"}]},"b":1}"#);
    }
}
