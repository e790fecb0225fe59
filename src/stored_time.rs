//! Times and durations as integer nanoseconds in the JSON the store writes, instead of
//! serde's `{"secs_since_epoch":…,"nanos_since_epoch":…}` and `{"secs":…,"nanos":…}`
//! objects. A one-step execution's record and events held ten of them: ~30% of the bytes
//! each commit writes, syncs and checkpoints. Reading takes both forms, so rows written by
//! an earlier wfm still read. A time after 2554 or a span beyond 584 years (which fit no
//! `u64` of nanoseconds) is written in the object form.
//!
//! Use with `#[serde(with = "crate::stored_time::time")]` (or `option_time`, `duration`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn nanos(d: Duration) -> Option<u64> {
    u64::try_from(d.as_nanos()).ok()
}

/// Reads a number of nanoseconds, or the object serde writes for `T`.
struct NanosOrObject<T>(fn(u64) -> T);

impl<'de, T: Deserialize<'de>> Visitor<'de> for NanosOrObject<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number of nanoseconds")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Ok((self.0)(n))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// A `SystemTime` as nanoseconds since 1970.
pub mod time {
    use super::*;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        match t.duration_since(UNIX_EPOCH).ok().and_then(nanos) {
            Some(n) => s.serialize_u64(n),
            None => t.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        d.deserialize_any(NanosOrObject(|n| UNIX_EPOCH + Duration::from_nanos(n)))
    }
}

/// An `Option<SystemTime>`: `null` or as [`time`].
pub mod option_time {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Stored(#[serde(with = "super::time")] SystemTime);

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        t.map(Stored).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<Stored>::deserialize(d)?.map(|t| t.0))
    }
}

/// A `Duration` as nanoseconds.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        match nanos(*d) {
            Some(n) => s.serialize_u64(n),
            None => d.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(NanosOrObject(Duration::from_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(with = "time")]
        at: SystemTime,
        #[serde(with = "option_time")]
        ended: Option<SystemTime>,
        #[serde(with = "duration")]
        took: Duration,
    }

    fn sample(at: SystemTime, took: Duration) -> Sample {
        Sample {
            at,
            ended: Some(at + Duration::from_nanos(1)),
            took,
        }
    }

    #[test]
    fn times_and_durations_are_written_as_nanoseconds_and_read_back_exactly() {
        let at = UNIX_EPOCH + Duration::new(1_796_323_934, 205_694_010);
        let value = sample(at, Duration::new(3, 14_203));
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(
            text,
            r#"{"at":1796323934205694010,"ended":1796323934205694011,"took":3000014203}"#
        );
        assert_eq!(serde_json::from_str::<Sample>(&text).unwrap(), value);
        let none: Sample = serde_json::from_str(r#"{"at":0,"ended":null,"took":0}"#).unwrap();
        assert_eq!((none.at, none.ended), (UNIX_EPOCH, None));
    }

    #[test]
    fn the_object_form_an_earlier_wfm_wrote_still_reads() {
        let text = r#"{"at":{"secs_since_epoch":1796323934,"nanos_since_epoch":205694010},
            "ended":{"secs_since_epoch":1796323934,"nanos_since_epoch":205694011},
            "took":{"secs":3,"nanos":14203}}"#;
        let at = UNIX_EPOCH + Duration::new(1_796_323_934, 205_694_010);
        assert_eq!(
            serde_json::from_str::<Sample>(text).unwrap(),
            sample(at, Duration::new(3, 14_203))
        );
    }

    #[test]
    fn what_no_u64_of_nanoseconds_holds_keeps_the_object_form() {
        let long = Duration::from_secs(u64::MAX / 1_000);
        let value = sample(UNIX_EPOCH + long, long);
        let text = serde_json::to_string(&value).unwrap();
        assert!(text.contains("secs_since_epoch"), "{text}");
        assert_eq!(serde_json::from_str::<Sample>(&text).unwrap(), value);
    }

    #[test]
    fn a_string_is_refused_with_what_was_expected() {
        let e = serde_json::from_str::<Sample>(r#"{"at":"now","ended":null,"took":0}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a number of nanoseconds"), "{e}");
    }
}
