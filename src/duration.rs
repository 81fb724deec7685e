//! Human durations (`500ms`, `30s`, `15m`, `1h30m`, `1d`) and byte sizes
//! (`512`, `64KiB`, `10MiB`) as they appear in the YAML.
//!
//! Only strings with units are accepted for durations: a bare `30` is
//! ambiguous (seconds? milliseconds?) and is rejected with a hint.

use std::fmt;
use std::time::Duration;

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A duration written with units in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// Parses `1h30m`, `15m`, `500ms`, `1d`. Units: ms, s, m, h, d.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let hint = || format!("invalid duration {text:?}: expected a number with a unit, like 500ms, 30s, 15m, 2h or 1d");
    let text = text.trim();
    if text.is_empty() {
        return Err(hint());
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(hint());
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(hint()),
        };
        let n: u64 = number.parse().map_err(|_| hint())?;
        total_ms = n.checked_mul(millis_per_unit).and_then(|v| total_ms.checked_add(v)).ok_or_else(hint)?;
        rest = tail;
    }
    Ok(Duration::from_millis(total_ms))
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration with a unit, like 30s, 15m or 1d")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Err(E::custom(format!("a bare number ({v}) is ambiguous: write it with a unit, like {v}s")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                self.visit_u64(v.unsigned_abs())
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A size in bytes: a plain integer, or a number with KiB/MiB/GiB (or KB/MB/GB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// Parses `1048576`, `64KiB`, `10MiB`, `1GiB`, `5MB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let hint = || format!("invalid size {text:?}: expected bytes, like 1048576, 64KiB or 10MiB");
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(hint());
    }
    let (number, unit) = text.split_at(digits);
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(hint()),
    };
    number.parse::<u64>().ok().and_then(|n| n.checked_mul(factor)).ok_or_else(hint)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in bytes, like 1048576 or 10MiB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                parse_size(v).map(ByteSize).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// What `parse_duration` accepts: one or more `<digits><unit>` pairs, no
/// spaces between them; a bare number is refused (ambiguous unit).
pub const DURATION_PATTERN: &str = r"^\s*([0-9]{1,12}(ms|s|m|h|d))+\s*$";

/// What `parse_size` accepts as text (a YAML integer is also a size).
pub const SIZE_PATTERN: &str = r"^\s*[0-9]+\s*(B|KiB|MiB|GiB|KB|kB|MB|GB)?\s*$";

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration with a unit: ms, s, m, h or d, e.g. 500ms, 30s, 15m, 1h30m, 1d. \
                            A bare number is refused (seconds or milliseconds would be a guess).",
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: bytes as an integer, or text with a unit (B, KiB, MiB, GiB, KB, MB, GB), \
                            e.g. 1048576, 64KiB, 10MiB.",
            "type": ["integer", "string"],
            "minimum": 0,
            "pattern": SIZE_PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_without_units_or_garbage_are_errors() {
        for bad in ["", "15", "m", "15x", "1.5h", "-1s", "1h 30m", "9999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("").is_err());
    }
}

/// Seconds as a person reads them: `45s`, `15m`, `2h30m`, `3d4h`, or
/// `512 years` past a year (durations in explanations, never parsed back).
pub fn human(secs: u64) -> String {
    const YEAR: u64 = 365 * 86_400;
    if secs >= YEAR {
        return format!("{} years", secs / YEAR);
    }
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts = [(d, "d"), (h, "h"), (m, "m"), (s, "s")];
    let text: String = parts.iter().filter(|(n, _)| *n > 0).take(2).map(|(n, unit)| format!("{n}{unit}")).collect();
    if text.is_empty() { "0s".to_owned() } else { text }
}

#[cfg(test)]
mod human_tests {
    use super::human;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(45), "45s");
        assert_eq!(human(900), "15m");
        assert_eq!(human(9000), "2h30m");
        assert_eq!(human(7200), "2h");
        assert_eq!(human(3 * 86_400 + 4 * 3600 + 5), "3d4h");
        assert_eq!(human(16_168_127_938), "512 years");
    }
}
