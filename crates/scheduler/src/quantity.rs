//! Kubernetes resource quantities ("100m", "1.5Gi", "1e3") parsed into exact billionths.

use std::fmt;

/// An exact quantity in billionths (10^-9) of its unit. Nano is the finest
/// suffix Kubernetes accepts, so every value a user writes is exact here and
/// sums of container requests round only once, as upstream's `inf.Dec` sums do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(i128);

/// Why a quantity string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantityError {
    input: String,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {:?}",
            self.input
        )
    }
}

impl std::error::Error for QuantityError {}

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// How a suffix scales the number in front of it.
enum Scale {
    /// Times 10^n.
    Decimal(i32),
    /// Times 2^n.
    Binary(u32),
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// An amount of whole units.
    pub fn from_units(units: i64) -> Amount {
        Amount(i128::from(units) * NANOS_PER_UNIT)
    }

    /// An amount of thousandths (millicores for cpu).
    pub fn from_milli(milli: i64) -> Amount {
        Amount(i128::from(milli) * 1_000_000)
    }

    /// Parses Kubernetes' quantity grammar: a signed decimal number, then a
    /// binary suffix (Ki..Ei), a decimal suffix (n, u, m, "", k, M..E) or a
    /// decimal exponent (e3, E-2).
    pub fn parse(input: &str) -> Result<Amount, QuantityError> {
        let refuse = || QuantityError {
            input: input.to_string(),
        };
        let s = input;
        let (negative, s) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_len = s
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = s.split_at(number_len);
        let (integer_part, fraction_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if (integer_part.is_empty() && fraction_part.is_empty()) || fraction_part.contains('.') {
            return Err(refuse());
        }
        let scale = parse_suffix(suffix).ok_or_else(refuse)?;

        // The number as an integer mantissa and a count of decimal places.
        // Leading zeros are dropped and trailing fraction zeros trimmed so
        // long but exact inputs do not overflow the mantissa.
        let fraction_part = fraction_part.trim_end_matches('0');
        let mut mantissa: i128 = 0;
        for b in integer_part.bytes().chain(fraction_part.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .unwrap_or(i128::MAX);
        }
        let places = i32::try_from(fraction_part.len()).map_err(|_| refuse())?;

        let nanos = match scale {
            Scale::Decimal(exponent) => scale_by_power_of_ten(mantissa, 9 + exponent - places),
            Scale::Binary(bits) => {
                let shifted = mantissa.checked_mul(1i128 << bits).unwrap_or(i128::MAX);
                scale_by_power_of_ten(shifted, 9 - places)
            }
        };
        Ok(Amount(if negative { -nanos } else { nanos }))
    }

    /// The value in thousandths, rounded up like `Quantity.MilliValue()`.
    pub fn milli_value(self) -> i64 {
        saturate(div_ceil(self.0, 1_000_000))
    }

    /// The value in whole units, rounded up like `Quantity.Value()`.
    pub fn value(self) -> i64 {
        saturate(div_ceil(self.0, NANOS_PER_UNIT))
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }
}

fn parse_suffix(suffix: &str) -> Option<Scale> {
    let scale = match suffix {
        "" => Scale::Decimal(0),
        "n" => Scale::Decimal(-9),
        "u" => Scale::Decimal(-6),
        "m" => Scale::Decimal(-3),
        "k" => Scale::Decimal(3),
        "M" => Scale::Decimal(6),
        "G" => Scale::Decimal(9),
        "T" => Scale::Decimal(12),
        "P" => Scale::Decimal(15),
        "E" => Scale::Decimal(18),
        "Ki" => Scale::Binary(10),
        "Mi" => Scale::Binary(20),
        "Gi" => Scale::Binary(30),
        "Ti" => Scale::Binary(40),
        "Pi" => Scale::Binary(50),
        "Ei" => Scale::Binary(60),
        _ => {
            // A decimal exponent: "e" or "E" and a signed integer.
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 4
            {
                return None;
            }
            Scale::Decimal(exponent.parse().ok()?)
        }
    };
    Some(scale)
}

/// `value * 10^power`, rounding a fractional result up (towards +inf) and
/// saturating instead of overflowing.
fn scale_by_power_of_ten(value: i128, power: i32) -> i128 {
    if power >= 0 {
        let mut result = value;
        for _ in 0..power {
            result = match result.checked_mul(10) {
                Some(r) => r,
                None => return i128::MAX,
            };
        }
        result
    } else {
        let mut divisor: i128 = 1;
        for _ in 0..(-power) {
            divisor = match divisor.checked_mul(10) {
                Some(d) => d,
                // Smaller than a nano: rounds up to one nano, or to zero.
                None => return i128::from(value > 0),
            };
        }
        div_ceil(value, divisor)
    }
}

fn div_ceil(value: i128, divisor: i128) -> i128 {
    let quotient = value.div_euclid(divisor);
    if value.rem_euclid(divisor) == 0 {
        quotient
    } else {
        quotient + 1
    }
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value > 0 { i64::MAX } else { i64::MIN })
}

#[cfg(test)]
mod tests {
    use super::Amount;

    #[test]
    fn parses_every_suffix() {
        let cases: &[(&str, i64, i64)] = &[
            // input, milli_value, value
            ("0", 0, 0),
            ("1", 1000, 1),
            ("100m", 100, 1),
            ("0.1", 100, 1),
            (".5", 500, 1),
            ("2.", 2000, 2),
            ("1500u", 2, 1),
            ("250n", 1, 1),
            ("1k", 1_000_000, 1000),
            ("1M", 1_000_000_000, 1_000_000),
            ("1G", 1_000_000_000_000, 1_000_000_000),
            ("1T", 1_000_000_000_000_000, 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000_000, 1_000_000_000_000_000),
            ("1E", i64::MAX, 1_000_000_000_000_000_000),
            ("1Ki", 1_024_000, 1024),
            ("128Mi", 134_217_728_000, 134_217_728),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736),
            ("1Ti", 1_099_511_627_776_000, 1_099_511_627_776),
            ("1Pi", 1_125_899_906_842_624_000, 1_125_899_906_842_624),
            ("1Ei", i64::MAX, 1_152_921_504_606_846_976),
            ("1e3", 1_000_000, 1000),
            ("1E3", 1_000_000, 1000),
            ("5e-1", 500, 1),
            ("1.2e+2", 120_000, 120),
            ("+3", 3000, 3),
            ("-1", -1000, -1),
            ("0.0001", 1, 1),
        ];
        for (input, milli, value) in cases {
            let amount = Amount::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(amount.milli_value(), *milli, "milli_value of {input}");
            assert_eq!(amount.value(), *value, "value of {input}");
        }
    }

    #[test]
    fn refuses_malformed_quantities() {
        for input in [
            "", "m", "1.2.3", "1x", "1KiB", "e3", "1e", "1e+", "abc", "1 Gi",
        ] {
            assert!(Amount::parse(input).is_err(), "{input} should be refused");
        }
    }

    #[test]
    fn sums_round_once() {
        let tiny = Amount::parse("0.0001").unwrap_or_default();
        assert_eq!(tiny.saturating_add(tiny).milli_value(), 1);
    }
}
