//! Makes a plausible JSON value that satisfies a JSON schema, for scripted tool arguments and
//! structured output. Covers the subset models are asked for: objects, arrays, enums, consts,
//! primitives, `anyOf`/`oneOf`, nullable type lists.

use serde_json::{Map, Value, json};

pub fn sample(schema: &Value) -> Value {
    sample_depth(schema, 0)
}

fn sample_depth(schema: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    let Some(obj) = schema.as_object() else {
        return json!("mock");
    };
    if let Some(c) = obj.get("const") {
        return c.clone();
    }
    if let Some(first) = obj
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = obj
            .get(key)
            .and_then(Value::as_array)
            .and_then(|v| v.first())
        {
            return sample_depth(first, depth + 1);
        }
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    out.insert(name.clone(), sample_depth(prop, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => match obj.get("items") {
            Some(items) => Value::Array(vec![sample_depth(items, depth + 1)]),
            None => Value::Array(vec![]),
        },
        "integer" => json!(obj.get("minimum").and_then(Value::as_i64).unwrap_or(1)),
        "number" => json!(obj.get("minimum").and_then(Value::as_f64).unwrap_or(1.5)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!("mock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_nested_schemas() {
        let schema = json!({
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 3},
                "tags": {"type": "array", "items": {"type": "string"}},
                "maybe": {"type": ["null", "number"]},
                "nested": {"properties": {"ok": {"type": "boolean"}}}
            },
            "required": ["location"]
        });
        assert_eq!(
            sample(&schema),
            json!({"location":"mock","unit":"celsius","days":3,"tags":["mock"],"maybe":1.5,"nested":{"ok":true}})
        );
    }
}
