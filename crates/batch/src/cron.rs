//! CronJob schedules as kube-controller-manager reads them (robfig/cron v3's standard parser): five fields, names, ranges, steps, lists, `@`-descriptors and a `TZ=`/`CRON_TZ=` prefix, and the next activation in a time zone, DST included.

use std::fmt;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

/// The high bit marks a field written as `*` or `?`: with it set on day of
/// month or day of week, both day fields must match instead of either.
const STAR_BIT: u64 = 1 << 63;

#[derive(Clone, Copy)]
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DAYS_OF_MONTH: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Why a schedule does not parse; the texts are robfig/cron's, which the
/// controller's `UnparseableSchedule` event carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn error(message: String) -> ParseError {
    ParseError(message)
}

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    Fields(FieldSchedule),
    /// `@every <duration>`: a constant delay in whole seconds.
    Every(SignedDuration),
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldSchedule {
    minute: u64,
    hour: u64,
    day_of_month: u64,
    month: u64,
    day_of_week: u64,
    time_zone: TimeZone,
}

/// Loads an IANA time zone as Go's `time.LoadLocation` does: "" and "UTC"
/// are UTC; "Local" is the controller's zone, UTC here.
pub fn load_time_zone(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" | "Local" => Ok(TimeZone::UTC),
        _ => jiff::tz::db()
            .get(name)
            .map_err(|_| format!("unknown time zone {name}")),
    }
}

/// Parses like robfig/cron's `ParseStandard`.
pub fn parse(spec: &str) -> Result<Schedule, ParseError> {
    if spec.is_empty() {
        return Err(error("empty spec string".into()));
    }
    let mut spec = spec;
    let mut time_zone = TimeZone::UTC;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let equals = spec.find('=').unwrap_or(0);
        let space = spec.find(' ').unwrap_or(spec.len());
        let name = spec.get(equals + 1..space).unwrap_or_default();
        time_zone = load_time_zone(name)
            .map_err(|e| error(format!("provided bad location {name}: {e}")))?;
        spec = spec[space..].trim();
    }
    if spec.starts_with('@') {
        return parse_descriptor(spec, time_zone);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(error(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        )));
    }
    Ok(Schedule::Fields(FieldSchedule {
        minute: parse_field(fields[0], MINUTES)?,
        hour: parse_field(fields[1], HOURS)?,
        day_of_month: parse_field(fields[2], DAYS_OF_MONTH)?,
        month: parse_field(fields[3], MONTHS)?,
        day_of_week: parse_field(fields[4], DAYS_OF_WEEK)?,
        time_zone,
    }))
}

fn all(bounds: Bounds) -> u64 {
    bits(bounds.min, bounds.max, 1) | STAR_BIT
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    let mut bits = 0u64;
    let mut i = min;
    while i <= max {
        bits |= 1 << i;
        let Some(next) = i.checked_add(step) else {
            break;
        };
        i = next;
    }
    bits
}

fn parse_descriptor(descriptor: &str, time_zone: TimeZone) -> Result<Schedule, ParseError> {
    let fields = |minute, hour, day_of_month, month, day_of_week| {
        Ok(Schedule::Fields(FieldSchedule {
            minute,
            hour,
            day_of_month,
            month,
            day_of_week,
            time_zone: time_zone.clone(),
        }))
    };
    match descriptor {
        "@yearly" | "@annually" => fields(1, 1, 1 << 1, 1 << 1, all(DAYS_OF_WEEK)),
        "@monthly" => fields(1, 1, 1 << 1, all(MONTHS), all(DAYS_OF_WEEK)),
        "@weekly" => fields(1, 1, all(DAYS_OF_MONTH), all(MONTHS), 1),
        "@daily" | "@midnight" => fields(1, 1, all(DAYS_OF_MONTH), all(MONTHS), all(DAYS_OF_WEEK)),
        "@hourly" => fields(
            1,
            all(HOURS),
            all(DAYS_OF_MONTH),
            all(MONTHS),
            all(DAYS_OF_WEEK),
        ),
        _ => {
            if let Some(text) = descriptor.strip_prefix("@every ") {
                let delay = parse_go_duration(text).ok_or_else(|| {
                    error(format!(
                        "failed to parse duration {descriptor}: time: invalid duration \"{text}\""
                    ))
                })?;
                let delay = delay.max(SignedDuration::from_secs(1));
                return Ok(Schedule::Every(SignedDuration::from_secs(delay.as_secs())));
            }
            Err(error(format!("unrecognized descriptor: {descriptor}")))
        }
    }
}

/// Go's `time.ParseDuration` for the forms people write ("90s", "1h30m",
/// "1.5h"); negative or unit-less values are refused.
fn parse_go_duration(text: &str) -> Option<SignedDuration> {
    if text.is_empty() || text == "0" {
        return (text == "0").then_some(SignedDuration::ZERO);
    }
    let mut rest = text;
    let mut total_nanos: i128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_nanos: f64 = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_nanos += (number * unit_nanos) as i128;
    }
    i64::try_from(total_nanos)
        .ok()
        .map(SignedDuration::from_nanos)
}

fn parse_field(field: &str, bounds: Bounds) -> Result<u64, ParseError> {
    let mut bits = 0;
    for expression in field.split(',') {
        bits |= parse_range(expression, bounds)?;
    }
    Ok(bits)
}

fn parse_range(expression: &str, bounds: Bounds) -> Result<u64, ParseError> {
    let range_and_step: Vec<&str> = expression.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let mut extra = 0;
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        extra = STAR_BIT;
        (bounds.min, bounds.max)
    } else {
        let start = parse_int_or_name(low_and_high[0], bounds)?;
        match low_and_high.len() {
            1 => (start, start),
            2 => (start, parse_int_or_name(low_and_high[1], bounds)?),
            _ => return Err(error(format!("too many hyphens: {expression}"))),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = bounds.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(error(format!("too many slashes: {expression}"))),
    };
    if start < bounds.min {
        return Err(error(format!(
            "beginning of range ({start}) below minimum ({}): {expression}",
            bounds.min
        )));
    }
    if end > bounds.max {
        return Err(error(format!(
            "end of range ({end}) above maximum ({}): {expression}",
            bounds.max
        )));
    }
    if start > end {
        return Err(error(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expression}"
        )));
    }
    if step == 0 {
        return Err(error(format!(
            "step of range should be a positive number: {expression}"
        )));
    }
    Ok(bits(start, end, step) | extra)
}

fn parse_int_or_name(text: &str, bounds: Bounds) -> Result<u32, ParseError> {
    let lower = text.to_ascii_lowercase();
    if let Some((_, value)) = bounds.names.iter().find(|(name, _)| *name == lower) {
        return Ok(*value);
    }
    parse_int(text)
}

fn parse_int(text: &str) -> Result<u32, ParseError> {
    let value: i64 = text.parse().map_err(|_| {
        error(format!(
            "failed to parse int from {text}: strconv.Atoi: parsing \"{text}\": invalid syntax"
        ))
    })?;
    if value < 0 {
        return Err(error(format!(
            "negative number ({value}) not allowed: {text}"
        )));
    }
    u32::try_from(value).map_err(|_| error(format!("failed to parse int from {text}")))
}

impl Schedule {
    /// The first activation strictly after `after`, or `None` when the
    /// fields never match within five years (e.g. "0 0 30 2 *").
    pub fn next(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Every(delay) => {
                let whole_second = SignedDuration::new(after.as_second(), 0);
                Timestamp::from_duration(whole_second)
                    .ok()?
                    .checked_add(*delay)
                    .ok()
            }
            Schedule::Fields(fields) => fields.next_zoned(after).map(|t| t.timestamp()),
        }
    }
}

impl FieldSchedule {
    fn day_matches(&self, t: &Zoned) -> bool {
        let day_of_month = self.day_of_month & (1 << t.day()) != 0;
        let weekday = t.weekday().to_sunday_zero_offset();
        let day_of_week = self.day_of_week & (1 << weekday) != 0;
        if self.day_of_month & STAR_BIT != 0 || self.day_of_week & STAR_BIT != 0 {
            day_of_month && day_of_week
        } else {
            day_of_month || day_of_week
        }
    }

    fn civil(&self, year: i16, month: i8, day: i8, hour: i8, minute: i8) -> Option<Zoned> {
        jiff::civil::DateTime::new(year, month, day, hour, minute, 0, 0)
            .ok()?
            .to_zoned(self.time_zone.clone())
            .ok()
    }

    /// robfig/cron's search: month, then day, then hour, then minute, each
    /// stepping forward and starting over when it wraps. Hours and minutes
    /// step in absolute time, so a wall time skipped by DST never fires and
    /// one repeated by DST fires twice, like upstream.
    fn next_zoned(&self, after: Timestamp) -> Option<Zoned> {
        let mut t = after.to_zoned(self.time_zone.clone());
        let nanos = i64::from(t.subsec_nanosecond());
        t = t
            .checked_add(SignedDuration::from_nanos(1_000_000_000 - nanos))
            .ok()?;
        let year_limit = t.year() + 5;
        let mut added = false;
        'wrap: loop {
            if t.year() > year_limit {
                return None;
            }
            while self.month & (1 << t.month()) == 0 {
                if !added {
                    added = true;
                    t = self.civil(t.year(), t.month(), 1, 0, 0)?;
                }
                let (year, month) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = self.civil(year, month, t.day(), t.hour(), t.minute())?;
                if t.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(&t) {
                if !added {
                    added = true;
                    t = self.civil(t.year(), t.month(), t.day(), 0, 0)?;
                }
                let tomorrow = t.date().tomorrow().ok()?;
                t = self.civil(
                    tomorrow.year(),
                    tomorrow.month(),
                    tomorrow.day(),
                    t.hour(),
                    t.minute(),
                )?;
                // Midnight may not exist, or exist twice, on a DST day.
                if t.hour() != 0 {
                    let hours = if t.hour() > 12 {
                        24 - i64::from(t.hour())
                    } else {
                        -i64::from(t.hour())
                    };
                    t = t.checked_add(SignedDuration::from_hours(hours)).ok()?;
                }
                if t.day() == 1 {
                    continue 'wrap;
                }
            }
            while self.hour & (1 << t.hour()) == 0 {
                if !added {
                    added = true;
                    t = self.civil(t.year(), t.month(), t.day(), t.hour(), 0)?;
                }
                t = t.checked_add(SignedDuration::from_hours(1)).ok()?;
                if t.hour() == 0 {
                    continue 'wrap;
                }
            }
            while self.minute & (1 << t.minute()) == 0 {
                if !added {
                    added = true;
                    t = truncate(&t, 60)?;
                }
                t = t.checked_add(SignedDuration::from_mins(1)).ok()?;
                if t.minute() == 0 {
                    continue 'wrap;
                }
            }
            // Standard schedules fire at second 0.
            while t.second() != 0 {
                if !added {
                    added = true;
                    t = truncate(&t, 1)?;
                }
                t = t.checked_add(SignedDuration::from_secs(1)).ok()?;
                if t.second() == 0 {
                    continue 'wrap;
                }
            }
            return Some(t);
        }
    }
}

/// Go's `Time.Truncate`: rounds down in absolute time.
fn truncate(t: &Zoned, seconds: i64) -> Option<Zoned> {
    let second = t.timestamp().as_second().div_euclid(seconds) * seconds;
    Some(
        Timestamp::from_second(second)
            .ok()?
            .to_zoned(t.time_zone().clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn next_times(spec: &str, from: &str, count: usize) -> Vec<String> {
        let schedule = parse(spec).unwrap();
        let mut t = at(from);
        let mut out = Vec::new();
        for _ in 0..count {
            t = schedule.next(t).unwrap();
            out.push(t.to_string());
        }
        out
    }

    #[test]
    fn five_fields_with_lists_ranges_steps_and_names() {
        assert_eq!(
            next_times("*/15 * * * *", "2024-03-01T10:07:30Z", 3),
            [
                "2024-03-01T10:15:00Z",
                "2024-03-01T10:30:00Z",
                "2024-03-01T10:45:00Z"
            ]
        );
        assert_eq!(
            next_times("0 9-17/4 * * MON-fri", "2024-03-01T10:00:00Z", 3),
            [
                "2024-03-01T13:00:00Z",
                "2024-03-01T17:00:00Z",
                "2024-03-04T09:00:00Z"
            ]
        );
        assert_eq!(
            next_times("5,10 0 1 JAN,jul *", "2024-03-01T00:00:00Z", 3),
            [
                "2024-07-01T00:05:00Z",
                "2024-07-01T00:10:00Z",
                "2025-01-01T00:05:00Z"
            ]
        );
        // "N/step" runs from N to the end of the range.
        assert_eq!(
            next_times("50/5 * * * *", "2024-03-01T10:00:00Z", 3),
            [
                "2024-03-01T10:50:00Z",
                "2024-03-01T10:55:00Z",
                "2024-03-01T11:50:00Z"
            ]
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_match_either_unless_one_is_a_star() {
        // The 13th or any Friday.
        assert_eq!(
            next_times("0 0 13 * 5", "2024-09-01T00:00:00Z", 3),
            [
                "2024-09-06T00:00:00Z",
                "2024-09-13T00:00:00Z",
                "2024-09-20T00:00:00Z"
            ]
        );
        // Only Fridays: the star day of month makes both required.
        assert_eq!(
            next_times("0 0 * * 5", "2024-09-07T00:00:00Z", 1),
            ["2024-09-13T00:00:00Z"]
        );
    }

    #[test]
    fn descriptors() {
        for (spec, expected) in [
            ("@yearly", "2025-01-01T00:00:00Z"),
            ("@annually", "2025-01-01T00:00:00Z"),
            ("@monthly", "2024-04-01T00:00:00Z"),
            ("@weekly", "2024-03-17T00:00:00Z"),
            ("@daily", "2024-03-16T00:00:00Z"),
            ("@midnight", "2024-03-16T00:00:00Z"),
            ("@hourly", "2024-03-15T11:00:00Z"),
            ("@every 90s", "2024-03-15T10:31:30Z"),
        ] {
            assert_eq!(
                next_times(spec, "2024-03-15T10:30:00Z", 1),
                [expected],
                "{spec}"
            );
        }
    }

    #[test]
    fn malformed_schedules_are_refused_with_robfig_messages() {
        for (spec, message) in [
            ("", "empty spec string"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            (
                "* * * * * *",
                "expected exactly 5 fields, found 6: [* * * * * *]",
            ),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            (
                "* 5-2 * * *",
                "beginning of range (5) beyond end of range (2): 5-2",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
        ] {
            assert_eq!(parse(spec).unwrap_err().to_string(), message, "{spec}");
        }
        assert!(parse("x * * * *").is_err());
        assert!(
            parse("1/4294967295 * * * *").is_ok(),
            "a huge step is one value"
        );
        assert!(parse("TZ=Mars/Olympus * * * * *").is_err());
    }

    #[test]
    fn impossible_dates_have_no_next_time() {
        let schedule = parse("0 0 30 2 *").unwrap();
        assert_eq!(schedule.next(at("2024-01-01T00:00:00Z")), None);
    }

    #[test]
    fn a_time_zone_prefix_moves_the_schedule_and_dst_is_followed() {
        // 09:00 in New York: 14:00Z in winter, 13:00Z after the March change.
        assert_eq!(
            next_times("TZ=America/New_York 0 9 * * *", "2024-03-09T15:00:00Z", 2),
            ["2024-03-10T13:00:00Z", "2024-03-11T13:00:00Z"]
        );
        assert_eq!(
            next_times(
                "CRON_TZ=Europe/Berlin 30 6 * * *",
                "2024-10-26T12:00:00Z",
                2
            ),
            ["2024-10-27T05:30:00Z", "2024-10-28T05:30:00Z"]
        );
    }

    #[test]
    fn a_wall_time_skipped_by_dst_does_not_fire_and_a_repeated_one_fires_twice() {
        // 02:30 does not exist in New York on 2024-03-10.
        assert_eq!(
            next_times("TZ=America/New_York 30 2 * * *", "2024-03-09T12:00:00Z", 2),
            ["2024-03-11T06:30:00Z", "2024-03-12T06:30:00Z"]
        );
        // 01:30 happens twice on 2024-11-03 (EDT, then EST).
        assert_eq!(
            next_times("TZ=America/New_York 30 1 * * *", "2024-11-03T00:00:00Z", 3),
            [
                "2024-11-03T05:30:00Z",
                "2024-11-03T06:30:00Z",
                "2024-11-04T06:30:00Z"
            ]
        );
    }

    #[test]
    fn time_zones_load_like_go() {
        assert!(load_time_zone("Europe/Paris").is_ok());
        assert_eq!(load_time_zone("").unwrap(), TimeZone::UTC);
        assert_eq!(
            load_time_zone("Nowhere/Land").unwrap_err(),
            "unknown time zone Nowhere/Land"
        );
    }
}
