//! The apimachinery types whose JSON form is not their message: times, durations, int-or-strings, quantities and embedded raw JSON.

use base64::Engine as _;
use serde_json::{Value, json};

use super::ProtobufError;
use super::wire::{Records, WireValue};

/// A message decoded by hand instead of field by field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WellKnown {
    /// `meta.v1.Time` {1 seconds, 2 nanos} → `2006-01-02T15:04:05Z`.
    Time,
    /// `meta.v1.MicroTime` → `2006-01-02T15:04:05.000000Z`.
    MicroTime,
    /// `meta.v1.Duration` {1 duration (ns)} → Go's `1h0m0s`.
    Duration,
    /// `util.intstr.IntOrString` {1 type, 2 intVal, 3 strVal} → number or string.
    IntOrString,
    /// `api.resource.Quantity` {1 string} → its string.
    Quantity,
    /// `runtime.RawExtension` and `meta.v1.FieldsV1` {1 raw} → the JSON they hold.
    RawJson,
    /// `meta.v1.Verbs` {1 items} → a list of strings.
    Verbs,
}

impl WellKnown {
    pub fn of(message_name: &str) -> Option<WellKnown> {
        Some(match message_name {
            "io.k8s.apimachinery.pkg.apis.meta.v1.Time" => WellKnown::Time,
            "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime" => WellKnown::MicroTime,
            "io.k8s.apimachinery.pkg.apis.meta.v1.Duration" => WellKnown::Duration,
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => WellKnown::IntOrString,
            "io.k8s.apimachinery.pkg.api.resource.Quantity"
            | "io.k8s.apimachinery.pkg.api.resource.QuantityValue" => WellKnown::Quantity,
            "io.k8s.apimachinery.pkg.runtime.RawExtension"
            | "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1" => WellKnown::RawJson,
            "io.k8s.apimachinery.pkg.apis.meta.v1.Verbs" => WellKnown::Verbs,
            _ => return None,
        })
    }

    /// The JSON value of one such message. A zero time and an empty raw
    /// extension are `null`, as Go writes them (client-go sends plain
    /// `creationTimestamp` fields as empty messages).
    pub fn decode(self, bytes: &[u8], depth: usize) -> Result<Value, ProtobufError> {
        let fields = SimpleFields::read(bytes)?;
        Ok(match self {
            // Go's unmarshaller reads an empty message as the zero time.
            WellKnown::Time | WellKnown::MicroTime if bytes.is_empty() => Value::Null,
            WellKnown::Time => json!(format_time(fields.int(1)?, fields.int(2)?, false)?),
            WellKnown::MicroTime => json!(format_time(fields.int(1)?, fields.int(2)?, true)?),
            WellKnown::Duration => json!(go_duration(fields.int(1)?)),
            WellKnown::IntOrString => match fields.int(1)? {
                0 => json!(fields.int(2)? as i32),
                1 => json!(fields.string(3)?),
                other => return Err(malformed(format!("IntOrString of unknown type {other}"))),
            },
            // A missing string is the zero quantity, as Go reads it.
            WellKnown::Quantity => json!(fields.optional_string(1)?.unwrap_or("0".into())),
            WellKnown::RawJson => match fields.bytes(1)? {
                [] => Value::Null,
                raw if raw.starts_with(super::MAGIC) => super::decode::object(raw, depth + 1)?,
                raw => serde_json::from_slice(raw)
                    .map_err(|error| malformed(format!("embedded object is not JSON: {error}")))?,
            },
            WellKnown::Verbs => json!(fields.strings(1)?),
        })
    }
}

fn malformed(reason: String) -> ProtobufError {
    ProtobufError::Malformed {
        path: String::new(),
        reason,
    }
}

/// The records of a small message, for reading a few scalar fields by tag.
struct SimpleFields<'a> {
    records: Vec<(u32, WireValue<'a>)>,
}

impl<'a> SimpleFields<'a> {
    fn read(bytes: &'a [u8]) -> Result<Self, ProtobufError> {
        let records = Records::new(bytes)
            .collect::<Result<_, _>>()
            .map_err(|error| malformed(error.to_string()))?;
        Ok(SimpleFields { records })
    }

    /// The last value of field `tag` (later records win, as in protobuf).
    fn last(&self, tag: u32) -> Option<&WireValue<'a>> {
        self.records
            .iter()
            .rev()
            .find(|(number, _)| *number == tag)
            .map(|(_, value)| value)
    }

    fn int(&self, tag: u32) -> Result<i64, ProtobufError> {
        match self.last(tag) {
            None => Ok(0),
            Some(WireValue::Varint(value)) => Ok(*value as i64),
            Some(other) => Err(wrong_wire_type(tag, other, "a varint")),
        }
    }

    fn bytes(&self, tag: u32) -> Result<&'a [u8], ProtobufError> {
        match self.last(tag) {
            None => Ok(&[]),
            Some(WireValue::LengthDelimited(bytes)) => Ok(bytes),
            Some(other) => Err(wrong_wire_type(tag, other, "length-delimited bytes")),
        }
    }

    fn optional_string(&self, tag: u32) -> Result<Option<String>, ProtobufError> {
        match self.last(tag) {
            None => Ok(None),
            Some(_) => self.string(tag).map(Some),
        }
    }

    fn string(&self, tag: u32) -> Result<String, ProtobufError> {
        Ok(String::from_utf8_lossy(self.bytes(tag)?).into_owned())
    }

    fn strings(&self, tag: u32) -> Result<Vec<String>, ProtobufError> {
        self.records
            .iter()
            .filter(|(number, _)| *number == tag)
            .map(|(_, value)| match value {
                WireValue::LengthDelimited(bytes) => {
                    Ok(String::from_utf8_lossy(bytes).into_owned())
                }
                other => Err(wrong_wire_type(tag, other, "length-delimited bytes")),
            })
            .collect()
    }
}

fn wrong_wire_type(tag: u32, found: &WireValue<'_>, expected: &str) -> ProtobufError {
    malformed(format!(
        "field {tag} holds {}, expected {expected}",
        found.describe()
    ))
}

/// The first and last seconds Go formats as a four-digit RFC 3339 year:
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
const FORMATTABLE_SECONDS: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

/// A `Time` (whole seconds) or `MicroTime` in UTC, as Go's JSON writes them.
/// Nanoseconds outside 0..1e9 carry into the seconds, as `time.Unix` does.
fn format_time(seconds: i64, nanos: i64, micro: bool) -> Result<String, ProtobufError> {
    let nanos = i128::from(nanos as i32);
    let total = i128::from(seconds) * 1_000_000_000 + nanos;
    let whole_seconds = i64::try_from(total.div_euclid(1_000_000_000)).unwrap_or(i64::MAX);
    let fraction = total.rem_euclid(1_000_000_000);
    if !FORMATTABLE_SECONDS.contains(&whole_seconds) {
        return Err(malformed(format!("time {seconds}s is out of range")));
    }
    let formatted = crate::table::rfc3339(whole_seconds);
    if !micro {
        return Ok(formatted);
    }
    let without_zone = formatted.trim_end_matches('Z');
    Ok(format!("{without_zone}.{:06}Z", fraction / 1000))
}

/// Go's `time.Duration.String()`: `1h0m0s`, `1m30s`, `1.5s`, `500ms`,
/// `2µs`, `0s`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    if magnitude < 1_000_000_000 {
        let (unit, precision) = match magnitude {
            0..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        let scale = 10u64.pow(precision);
        return format!(
            "{sign}{}{}{unit}",
            magnitude / scale,
            fraction(magnitude % scale, precision)
        );
    }
    let fractional = fraction(magnitude % 1_000_000_000, 9);
    let total_seconds = magnitude / 1_000_000_000;
    let (seconds, total_minutes) = (total_seconds % 60, total_seconds / 60);
    let (minutes, hours) = (total_minutes % 60, total_minutes / 60);
    match (hours, total_minutes) {
        (0, 0) => format!("{sign}{seconds}{fractional}s"),
        (0, _) => format!("{sign}{minutes}m{seconds}{fractional}s"),
        _ => format!("{sign}{hours}h{minutes}m{seconds}{fractional}s"),
    }
}

/// `.5` for 500 of 3 digits: the fraction without trailing zeros, or
/// nothing when it is zero.
fn fraction(value: u64, digits: u32) -> String {
    if digits == 0 || value == 0 {
        return String::new();
    }
    let padded = format!("{value:0width$}", width = digits as usize);
    format!(".{}", padded.trim_end_matches('0'))
}

/// `bytes` fields as Go's JSON writes `[]byte`: standard, padded base64.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (30_000_000_000, "30s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (-3_601_000_000_000, "-1h0m1s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, expected) in cases {
            assert_eq!(go_duration(nanos), expected, "{nanos}");
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(
            format_time(1_700_000_000, 123_456_789, false).unwrap(),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            format_time(1_700_000_000, 123_456_789, true).unwrap(),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            format_time(0, -1, true).unwrap(),
            "1969-12-31T23:59:59.999999Z"
        );
        assert!(format_time(i64::MAX, 0, false).is_err());
        assert!(format_time(i64::MIN, -1, true).is_err());
    }
}
