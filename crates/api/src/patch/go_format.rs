//! Renders JSON values the way Go's `fmt` and `reflect` print decoded JSON, so error texts read like kube-apiserver's.

use serde_json::Value;

/// Go's `%v` of a value decoded into `interface{}`: `map[k:v]` with sorted
/// keys, `[a b]` for slices, `<nil>` for null.
pub(crate) fn value(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 0);
    out
}

/// Go's `%v` of a list of lists, as printed by `fmt.Sprint([][]interface{})`.
pub(crate) fn lists(lists: &[&[Value]]) -> String {
    let mut out = String::from("[");
    for (i, list) in lists.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_list(&mut out, list, 0);
    }
    out.push(']');
    out
}

/// `reflect.TypeOf(v)` printed with `%s`, for upstream's `ErrBadArgType`.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The JSON type word encoding/json uses in `cannot unmarshal X into …`.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// Error messages only need a readable rendering; past this depth the rest is
// elided instead of recursing further.
const MAX_RENDER_DEPTH: usize = 64;

fn write_value(out: &mut String, v: &Value, depth: usize) {
    if depth > MAX_RENDER_DEPTH {
        out.push_str("...");
        return;
    }
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => write_list(out, items, depth),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                if let Some(child) = map.get(key) {
                    write_value(out, child, depth + 1);
                }
            }
            out.push(']');
        }
    }
}

fn write_list(out: &mut String, items: &[Value], depth: usize) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(out, item, depth + 1);
    }
    out.push(']');
}
