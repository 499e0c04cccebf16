//! JSON written the way Tails' server writes it (Python's `json.dumps`
//! with its defaults), so a reply from this server is byte for byte the
//! reply Tails' would send: `", "` between array items and `": "` after a
//! key, and every character outside printable ASCII escaped as `\uXXXX`
//! (lowercase hex, surrogate pairs beyond the Basic Multilingual Plane).

use serde_json::Value;

/// `value` as Python's `json.dumps(value)` writes it.
pub fn dumps(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn like_python() {
        // Each expectation is what CPython 3 prints for json.dumps(...).
        assert_eq!(
            dumps(&json!([1, "success", 0, "hi\n", ""])),
            r#"[1, "success", 0, "hi\n", ""]"#
        );
        assert_eq!(dumps(&json!([2, "success"])), r#"[2, "success"]"#);
        assert_eq!(dumps(&json!(["café"])), r#"["caf\u00e9"]"#);
        assert_eq!(dumps(&json!("🧅")), r#""\ud83e\uddc5""#);
        assert_eq!(
            dumps(&json!("\u{1}\u{7f}\t\"\\/")),
            r#""\u0001\u007f\t\"\\/""#
        );
        assert_eq!(
            dumps(&json!([null, -9, {"a": [true]}])),
            r#"[null, -9, {"a": [true]}]"#
        );
    }

    #[test]
    fn what_it_writes_reads_back() {
        let value = json!([7, "success", "\u{0}\u{1f}é𝄞\r\n", -15]);
        let back: Value = serde_json::from_str(&dumps(&value)).unwrap();
        assert_eq!(back, value);
    }
}
