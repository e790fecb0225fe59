//! Refuses JSON and YAML text that repeats a key in one object. serde (and so
//! `serde_json::Value`) keeps the last value of a repeated key silently, and a definition or
//! input whose author wrote a key twice would then run with half of what they meant.

use std::{collections::HashSet, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Walks a whole document; fails on the first object that repeats a key.
pub fn check<'de, D: Deserializer<'de>>(document: D) -> Result<(), D::Error> {
    Walk.deserialize(document)
}

/// Every value: objects are checked, lists walked, scalars accepted.
struct Walk;

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A key as text, to compare; a key that is not a scalar is never a duplicate.
struct Key(Option<String>);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(Key(Some(v.to_string())))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
        Ok(Key(Some(v.to_string())))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
        Ok(Key(Some(v.to_string())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
        Ok(Key(Some(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
        Ok(Key(Some(v.to_string())))
    }
    fn visit_unit<E>(self) -> Result<Key, E> {
        Ok(Key(Some("null".into())))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Key, A::Error> {
        Walk.visit_map(map).map(|()| Key(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Key, A::Error> {
        Walk.visit_seq(seq).map(|()| Key(None))
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(Key(key)) = map.next_key::<Key>()? {
            if let Some(key) = key
                && !seen.insert(key.clone())
            {
                return Err(de::Error::custom(format!(
                    "the key '{}' appears twice in one object",
                    key.escape_debug()
                )));
            }
            map.next_value_seed(Walk)?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk)?.is_some() {}
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A YAML tag (`!name value`): walk its value.
        let (_, variant) = data.variant::<de::IgnoredAny>()?;
        de::VariantAccess::newtype_variant_seed(variant, Walk)
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// JSON text: refused when an object repeats a key.
pub fn check_json(text: &str) -> Result<(), serde_json::Error> {
    check(&mut serde_json::Deserializer::from_str(text))
}

/// YAML text: refused when a mapping repeats a key.
pub fn check_yaml(text: &str) -> Result<(), serde_norway::Error> {
    // Every document of the stream.
    for document in serde_norway::Deserializer::from_str(text) {
        check(document)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        assert!(check_json(r#"{"a": 1, "b": [{"c": 1, "d": 2}]}"#).is_ok());
        let err = check_json(r#"{"a": 1, "b": [{"c": 1, "c": 2}]}"#).unwrap_err();
        assert!(
            err.to_string().contains("the key 'c' appears twice"),
            "{err}"
        );
        assert!(check_yaml("steps:\n  - id: a\n    tool: {name: x}\n").is_ok());
        let err = check_yaml("steps:\n  - id: a\n    id: b\n").unwrap_err();
        assert!(
            err.to_string().contains("the key 'id' appears twice"),
            "{err}"
        );
        let err = check_yaml("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(
            err.to_string().contains("the key 'a' appears twice"),
            "{err}"
        );
    }
}
