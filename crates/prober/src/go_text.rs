//! Go's text forms that show up in upstream's probe and hook messages: `%q` quoting, `time.Duration` printing, errno texts and canonical header names.

use std::fmt::Write;
use std::io;
use std::time::Duration;

/// `strconv.Quote` (Go's `%q`): printable characters as they are, the rest
/// escaped; bytes that are not UTF-8 become `\xHH`.
pub fn quote(text: impl AsRef<[u8]>) -> String {
    let mut quoted = String::from("\"");
    for chunk in text.as_ref().utf8_chunks() {
        for character in chunk.valid().chars() {
            match character {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                '\u{7}' => quoted.push_str("\\a"),
                '\u{8}' => quoted.push_str("\\b"),
                '\u{c}' => quoted.push_str("\\f"),
                '\n' => quoted.push_str("\\n"),
                '\r' => quoted.push_str("\\r"),
                '\t' => quoted.push_str("\\t"),
                '\u{b}' => quoted.push_str("\\v"),
                printable if is_printable(printable) => quoted.push(printable),
                ascii if (ascii as u32) < 0x80 => {
                    let _ = write!(quoted, "\\x{:02x}", ascii as u32);
                }
                narrow if (narrow as u32) <= 0xffff => {
                    let _ = write!(quoted, "\\u{:04x}", narrow as u32);
                }
                wide => {
                    let _ = write!(quoted, "\\U{:08x}", wide as u32);
                }
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(quoted, "\\x{byte:02x}");
        }
    }
    quoted.push('"');
    quoted
}

/// Go's `unicode.IsPrint`, near enough: no controls, and the ASCII space
/// is the only space character.
fn is_printable(character: char) -> bool {
    !character.is_control()
        && (character == ' ' || !character.is_whitespace())
        && !matches!(character, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{feff}')
}

/// `time.Duration.String()`: "1s", "1.5s", "1m0s", "250ms".
pub fn duration(value: Duration) -> String {
    let nanos = value.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 1_000_000));
    }
    let total_seconds = nanos / 1_000_000_000;
    let hours = total_seconds / 3600;
    let minutes = (total_seconds % 3600) / 60;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / unit` with the fraction's trailing zeros dropped.
fn decimal(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let fraction = value % unit;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// An error's text as Go's `syscall.Errno` prints it ("connection
/// refused"): the C library's message, lower-cased at the start, without
/// Rust's "(os error N)" suffix.
pub fn errno_text(error: &io::Error) -> String {
    let text = error.to_string();
    let Some(code) = error.raw_os_error() else {
        return text;
    };
    let bare = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    let mut characters = bare.chars();
    match characters.next() {
        Some(first) => first.to_lowercase().chain(characters).collect(),
        None => bare.to_string(),
    }
}

/// `textproto.CanonicalMIMEHeaderKey`: "x-custom-header" becomes
/// "X-Custom-Header"; a name with characters outside the token set is left
/// as written, as Go leaves it.
pub fn canonical_header_key(name: &str) -> String {
    if !name.bytes().all(is_token_byte) {
        return name.to_string();
    }
    let mut canonical = String::with_capacity(name.len());
    let mut upper_next = true;
    for character in name.chars() {
        if upper_next {
            canonical.push(character.to_ascii_uppercase());
        } else {
            canonical.push(character.to_ascii_lowercase());
        }
        upper_next = character == '-';
    }
    canonical
}

/// RFC 7230's `tchar`.
pub fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_strconv_quote() {
        let cases: [(&[u8], &str); 7] = [
            (b"plain", r#""plain""#),
            (b"say \"hi\"\n", r#""say \"hi\"\n""#),
            (b"tab\there\\", r#""tab\there\\""#),
            (b"bell\x07nul\x00del\x7f", r#""bell\anul\x00del\x7f""#),
            ("caf\u{e9} \u{2028}".as_bytes(), "\"caf\u{e9} \\u2028\""),
            (b"bad\xffbyte", r#""bad\xffbyte""#),
            (b"", r#""""#),
        ];
        for (input, expected) in cases {
            assert_eq!(quote(input), expected, "{input:?}");
        }
    }

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3725), "1h2m5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(2500), "2.5µs"),
            (Duration::from_nanos(7), "7ns"),
        ];
        for (value, expected) in cases {
            assert_eq!(duration(value), expected, "{value:?}");
        }
    }

    #[test]
    fn errno_texts_are_go_like() {
        let refused = io::Error::from_raw_os_error(111);
        assert_eq!(errno_text(&refused), "connection refused");
        let unreachable = io::Error::from_raw_os_error(101);
        assert_eq!(errno_text(&unreachable), "network is unreachable");
        let custom = io::Error::other("Custom Text");
        assert_eq!(errno_text(&custom), "Custom Text");
    }

    #[test]
    fn header_names_are_canonicalised_like_go() {
        let cases = [
            ("x-custom-header", "X-Custom-Header"),
            ("ACCEPT", "Accept"),
            ("user-agent", "User-Agent"),
            ("x--y", "X--Y"),
            ("bad name", "bad name"),
        ];
        for (input, expected) in cases {
            assert_eq!(canonical_header_key(input), expected);
        }
    }
}
