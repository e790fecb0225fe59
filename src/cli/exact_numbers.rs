//! JSON numbers travel as doubles (google.protobuf.Struct): an integer beyond ±2^53 would
//! arrive changed, silently, and YAML's `.nan` and `.inf` as null. The CLI refuses them
//! before sending and says what to do instead.

use serde_json::Value;

/// The largest integer a double holds exactly, and every one below it.
const MAX_EXACT: u64 = 1 << 53;

/// Whether an integer (as a number gives it: signed, else unsigned) is beyond ±2^53.
fn beyond_exact(signed: Option<i64>, unsigned: Option<u64>) -> bool {
    signed
        .map(|i| i.unsigned_abs() > MAX_EXACT)
        .or_else(|| unsigned.map(|u| u > MAX_EXACT))
        .unwrap_or(false)
}

/// Runs `inner` with `key` appended to the JSON pointer `path`, then takes it off again.
fn under<T>(path: &mut String, key: &str, inner: impl FnOnce(&mut String) -> T) -> T {
    let len = path.len();
    path.push('/');
    path.push_str(&key.replace('~', "~0").replace('/', "~1"));
    let found = inner(path);
    path.truncate(len);
    found
}

/// The first integer in `value` that a double cannot hold, with its JSON pointer.
pub fn first_inexact(value: &Value) -> Option<(String, String)> {
    fn walk(value: &Value, path: &mut String) -> Option<(String, String)> {
        match value {
            Value::Number(n) => {
                beyond_exact(n.as_i64(), n.as_u64()).then(|| (path.clone(), n.to_string()))
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| under(path, &i.to_string(), |path| walk(item, path))),
            Value::Object(map) => map
                .iter()
                .find_map(|(key, item)| under(path, key, |path| walk(item, path))),
            _ => None,
        }
    }
    walk(value, &mut String::new())
}

/// The first number in a YAML (or JSON) document that would not arrive as written: an
/// integer beyond ±2^53, or `.nan` / `.inf`, which JSON has no place for (they would arrive
/// as null). With its JSON pointer and the number as written.
pub fn first_unsendable_yaml(value: &serde_norway::Value) -> Option<(String, String)> {
    use serde_norway::Value as Y;
    fn walk(value: &Y, path: &mut String) -> Option<(String, String)> {
        let mut nested = |key: &str, item: &Y| under(path, key, |path| walk(item, path));
        match value {
            Y::Number(n) => (beyond_exact(n.as_i64(), n.as_u64()) || n.is_nan() || n.is_infinite())
                .then(|| (path.clone(), n.to_string())),
            Y::Sequence(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| nested(&i.to_string(), item)),
            Y::Mapping(map) => map.iter().find_map(|(key, item)| {
                let key = match key {
                    Y::String(s) => s.clone(),
                    other => serde_norway::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                nested(&key, item)
            }),
            Y::Tagged(tagged) => walk(&tagged.value, path),
            Y::Null | Y::Bool(_) | Y::String(_) => None,
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

    #[test]
    fn finds_what_yaml_writes_and_json_cannot_carry() {
        let yaml = |text: &str| first_unsendable_yaml(&serde_norway::from_str(text).unwrap());
        assert_eq!(yaml("a: [1, 2.5, 9007199254740992]\nb: x"), None);
        assert_eq!(
            yaml("a: {b: [0, 9007199254740993]}"),
            Some(("/a/b/1".into(), "9007199254740993".into()))
        );
        assert_eq!(yaml("n: .nan").map(|(p, _)| p), Some("/n".into()));
        assert_eq!(yaml("n: [-.inf]").map(|(p, _)| p), Some("/n/0".into()));
    }
}
