//! JSON numbers travel as doubles (google.protobuf.Struct): an integer beyond ±2^53 would
//! arrive changed, silently. The CLI refuses it before sending and says what to do instead.

use serde_json::Value;

/// The largest integer a double holds exactly, and every one below it.
const MAX_EXACT: u64 = 1 << 53;

/// The first integer in `value` that a double cannot hold, with its JSON pointer.
pub fn first_inexact(value: &Value) -> Option<(String, String)> {
    fn walk(value: &Value, path: &mut String) -> Option<(String, String)> {
        match value {
            Value::Number(n) => {
                let beyond = n
                    .as_i64()
                    .map(|i| i.unsigned_abs() > MAX_EXACT)
                    .or_else(|| n.as_u64().map(|u| u > MAX_EXACT))
                    .unwrap_or(false);
                beyond.then(|| (path.clone(), n.to_string()))
            }
            Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                let found = walk(item, path);
                path.truncate(len);
                found
            }),
            Value::Object(map) => map.iter().find_map(|(key, item)| {
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                let found = walk(item, path);
                path.truncate(len);
                found
            }),
            _ => None,
        }
    }
    walk(value, &mut String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_integers_a_double_cannot_hold() {
        assert_eq!(
            first_inexact(&json!({"a": [1, 9007199254740992_u64]})),
            None
        );
        assert_eq!(
            first_inexact(&json!({"a": {"b/c": [0, 9007199254740993_u64]}})),
            Some(("/a/b~1c/1".into(), "9007199254740993".into()))
        );
        assert_eq!(
            first_inexact(&json!({"n": -9007199254740993_i64})),
            Some(("/n".into(), "-9007199254740993".into()))
        );
        assert_eq!(first_inexact(&json!({"x": 1.5e300})), None);
    }
}
