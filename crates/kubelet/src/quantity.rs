//! Kubernetes resource quantities ("250m", "1.5Gi", "2e3") as exact amounts, for the kubelet's cgroup, QoS and downward-API arithmetic.

use std::cmp::Ordering;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

/// Billionths per unit: nano is the finest suffix the API accepts, so every
/// quantity a user can write is exact at this scale.
const NANOS_PER_UNIT: i128 = 1_000_000_000;
const NANOS_PER_MILLI: i128 = 1_000_000;

/// An exact quantity, held in billionths of its unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    nanos: i128,
}

/// A quantity string outside the API's grammar; the text is upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)]
pub struct QuantityError {
    pub input: String,
}

/// How a suffix scales the number written before it.
enum Scale {
    PowerOfTen(i32),
    PowerOfTwo(u32),
}

impl Quantity {
    pub const ZERO: Quantity = Quantity { nanos: 0 };

    pub fn from_units(units: i64) -> Quantity {
        Quantity {
            nanos: i128::from(units) * NANOS_PER_UNIT,
        }
    }

    pub fn from_milli(milli: i64) -> Quantity {
        Quantity {
            nanos: i128::from(milli) * NANOS_PER_MILLI,
        }
    }

    /// Parses the API grammar: a signed decimal, then a binary suffix
    /// (Ki..Ei), a decimal suffix (n u m "" k M G T P E) or an exponent (e3).
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let refuse = || QuantityError {
            input: input.to_string(),
        };
        let (negative, unsigned) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        let number_len = unsigned
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = unsigned.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(refuse());
        }
        let scale = scale_of_suffix(suffix).ok_or_else(refuse)?;

        // Trailing fraction zeros carry no value; dropping them keeps long
        // but exact inputs inside the mantissa.
        let fraction = fraction.trim_end_matches('0');
        let mut mantissa: i128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(digit - b'0')))
                .unwrap_or(i128::MAX);
        }
        let decimal_places = i32::try_from(fraction.len()).map_err(|_| refuse())?;
        let nanos = match scale {
            Scale::PowerOfTen(exponent) => {
                scale_by_power_of_ten(mantissa, 9 + exponent - decimal_places)
            }
            Scale::PowerOfTwo(bits) => {
                let shifted = mantissa.checked_mul(1i128 << bits).unwrap_or(i128::MAX);
                scale_by_power_of_ten(shifted, 9 - decimal_places)
            }
        };
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    pub fn from_api(quantity: &ApiQuantity) -> Result<Quantity, QuantityError> {
        Quantity::parse(&quantity.0)
    }

    /// Thousandths of the unit, rounded up like upstream's `MilliValue()`.
    pub fn milli_value(self) -> i64 {
        saturate_to_i64(div_ceil(self.nanos, NANOS_PER_MILLI))
    }

    /// Whole units, rounded up like upstream's `Value()`.
    pub fn value(self) -> i64 {
        saturate_to_i64(div_ceil(self.nanos, NANOS_PER_UNIT))
    }

    pub fn is_zero(self) -> bool {
        self.nanos == 0
    }

    pub fn is_positive(self) -> bool {
        self.nanos > 0
    }

    pub fn saturating_add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
        }
    }

    pub fn compare(self, other: Quantity) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

fn scale_of_suffix(suffix: &str) -> Option<Scale> {
    let scale = match suffix {
        "" => Scale::PowerOfTen(0),
        "n" => Scale::PowerOfTen(-9),
        "u" => Scale::PowerOfTen(-6),
        "m" => Scale::PowerOfTen(-3),
        "k" => Scale::PowerOfTen(3),
        "M" => Scale::PowerOfTen(6),
        "G" => Scale::PowerOfTen(9),
        "T" => Scale::PowerOfTen(12),
        "P" => Scale::PowerOfTen(15),
        "E" => Scale::PowerOfTen(18),
        "Ki" => Scale::PowerOfTwo(10),
        "Mi" => Scale::PowerOfTwo(20),
        "Gi" => Scale::PowerOfTwo(30),
        "Ti" => Scale::PowerOfTwo(40),
        "Pi" => Scale::PowerOfTwo(50),
        "Ei" => Scale::PowerOfTwo(60),
        _ => {
            let exponent = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let digits = exponent
                .strip_prefix('-')
                .or_else(|| exponent.strip_prefix('+'))
                .unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Scale::PowerOfTen(exponent.parse().ok()?)
        }
    };
    Some(scale)
}

/// `value * 10^power`; a value finer than a nano rounds up, as upstream
/// rounds quantities it cannot hold exactly.
fn scale_by_power_of_ten(value: i128, power: i32) -> i128 {
    if power >= 0 {
        let factor = 10i128.checked_pow(power.unsigned_abs());
        factor
            .and_then(|f| value.checked_mul(f))
            .unwrap_or(i128::MAX)
    } else {
        match 10i128.checked_pow(power.unsigned_abs()) {
            Some(divisor) => div_ceil(value, divisor),
            None => i128::from(value > 0),
        }
    }
}

fn div_ceil(value: i128, divisor: i128) -> i128 {
    let quotient = value / divisor;
    if value % divisor > 0 {
        quotient + 1
    } else {
        quotient
    }
}

fn saturate_to_i64(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value > 0 { i64::MAX } else { i64::MIN })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_api_grammar() {
        // input, milli_value, value
        let cases: &[(&str, i64, i64)] = &[
            ("0", 0, 0),
            ("1", 1000, 1),
            ("250m", 250, 1),
            ("1.5", 1500, 2),
            ("0.1", 100, 1),
            ("100n", 1, 1),
            ("1Ki", 1_024_000, 1024),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736),
            ("128Mi", 134_217_728_000, 134_217_728),
            ("1k", 1_000_000, 1000),
            ("2e3", 2_000_000, 2000),
            ("5E-1", 500, 1),
            ("1E", i64::MAX, 1_000_000_000_000_000_000),
            ("-1", -1000, -1),
            ("+2", 2000, 2),
            ("1.", 1000, 1),
            (".5", 500, 1),
        ];
        for (input, milli, value) in cases {
            let quantity = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(quantity.milli_value(), *milli, "{input} milli");
            assert_eq!(quantity.value(), *value, "{input} value");
        }
    }

    #[test]
    fn refuses_text_outside_the_grammar() {
        for input in ["", "m", "1.2.3", "1x", "1Kib", "1e", "1e+", "abc", " 1"] {
            assert!(
                Quantity::parse(input).is_err(),
                "{input:?} should be refused"
            );
        }
    }

    #[test]
    fn sums_and_compares_exactly() {
        let a = Quantity::parse("100m").unwrap();
        let b = Quantity::parse("0.9").unwrap();
        assert_eq!(a.saturating_add(b), Quantity::from_units(1));
        assert_eq!(a.compare(b), Ordering::Less);
        assert!(Quantity::ZERO.is_zero());
        assert!(!Quantity::parse("-1").unwrap().is_positive());
    }
}
