//! Field validation as kube-apiserver does it: upstream's field errors, the string format validators, ObjectMeta rules and the 422 Invalid Status, with upstream's exact message texts.
//!
//! Messages follow current upstream (Kubernetes 1.35+): label keys and
//! values report lengths in "bytes" (k8s.io/apimachinery/pkg/api/validate/content)
//! while DNS names and port names still say "characters"
//! (k8s.io/apimachinery/pkg/util/validation). Clients match on these
//! strings, so they are reproduced byte for byte, quirks included.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use serde_json::{Map, Value, json};

pub mod kinds;

pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
pub const PORT_NAME_MAX_LENGTH: usize = 15;
/// Upstream caps the sum of all annotation key and value lengths at 256 KiB.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES: usize = 256 * 1024;
pub const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";
pub const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";
/// metav1.FinalizerOrphanDependents.
pub const FINALIZER_ORPHAN_DEPENDENTS: &str = "orphan";
/// metav1.FinalizerDeleteDependents.
pub const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const INVALID_IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// The kind of a field error; mirrors upstream's field.ErrorType.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    Required,
    Invalid,
    Duplicate,
    NotFound,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    InternalError,
}

impl FieldErrorKind {
    /// The machine-readable reason put in a Status cause (metav1.CauseType).
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::InternalError => "InternalError",
        }
    }

    /// The human-readable lead of the message ("Required value", "Invalid value", ...).
    pub fn summary(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::InternalError => "Internal error",
        }
    }

    /// Upstream never echoes the value for these kinds: either there is none
    /// (required, forbidden) or it may be huge or secret (too long, internal).
    fn shows_value(self) -> bool {
        !matches!(
            self,
            FieldErrorKind::Required
                | FieldErrorKind::Forbidden
                | FieldErrorKind::TooLong
                | FieldErrorKind::InternalError
        )
    }
}

/// One field-level validation failure, as upstream's field.Error.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// The JSON path of the field: `metadata.name`, `spec.containers[0].image`.
    pub field: String,
    /// The offending value; `None` leaves it out of the message entirely.
    pub bad_value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, None, detail)
    }

    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(FieldErrorKind::Invalid, field, Some(value.into()), detail)
    }

    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorKind::Duplicate, field, Some(value.into()), "")
    }

    pub fn not_found(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorKind::NotFound, field, Some(value.into()), "")
    }

    /// An enumerated field holding a value outside `supported`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        supported: &[&str],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            FieldErrorKind::NotSupported,
            field,
            Some(value.into()),
            detail,
        )
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, None, detail)
    }

    /// A value longer than `max_bytes`; `None` when the limit is not worth stating.
    pub fn too_long(field: impl Into<String>, max_bytes: Option<usize>) -> Self {
        let detail = match max_bytes {
            Some(1) => "may not be more than 1 byte".to_string(),
            Some(max) => format!("may not be more than {max} bytes"),
            None => "value is too long".to_string(),
        };
        Self::new(FieldErrorKind::TooLong, field, None, detail)
    }

    /// A list with too many items; either number may be unknown.
    pub fn too_many(field: impl Into<String>, actual: Option<usize>, max: Option<usize>) -> Self {
        let detail = match max {
            Some(1) => "must have at most 1 item".to_string(),
            Some(max) => format!("must have at most {max} items"),
            None => "has too many items".to_string(),
        };
        Self::new(
            FieldErrorKind::TooMany,
            field,
            actual.map(Value::from),
            detail,
        )
    }

    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::InternalError, field, None, detail)
    }

    fn new(
        kind: FieldErrorKind,
        field: impl Into<String>,
        bad_value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            kind,
            field: field.into(),
            bad_value,
            detail: detail.into(),
        }
    }

    /// The message without the field path (upstream's ErrorBody), e.g.
    /// `Invalid value: "Foo": a lowercase RFC 1123 subdomain ...`.
    pub fn message(&self) -> String {
        let mut body = self.kind.summary().to_string();
        if self.kind.shows_value()
            && let Some(value) = &self.bad_value
        {
            body.push_str(": ");
            body.push_str(&render_bad_value(value));
        }
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }

    /// One entry of metav1.Status `details.causes`; empty members are
    /// omitted as upstream's `omitempty` does.
    pub fn cause_json(&self) -> Value {
        let mut cause = Map::new();
        cause.insert("reason".into(), Value::from(self.kind.reason()));
        cause.insert("message".into(), Value::from(self.message()));
        if !self.field.is_empty() {
            cause.insert("field".into(), Value::from(self.field.clone()));
        }
        Value::Object(cause)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message())
    }
}

impl std::error::Error for FieldError {}

/// Renders a bad value the way upstream's ErrorBody does: strings Go-quoted,
/// scalars bare, anything else as Go's encoding/json would print it.
fn render_bad_value(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => go_json(value),
    }
}

/// Compact JSON with encoding/json's default HTML-safe escaping, so values
/// containing `<`, `>` or `&` read the same as in upstream messages.
fn go_json(value: &Value) -> String {
    let plain = value.to_string();
    let mut escaped = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Quotes a string as Go's `%q` / strconv.Quote does, which is how upstream
/// embeds names and values in messages.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_go_printable(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Approximates Go's unicode.IsPrint without Unicode tables: controls,
/// separators other than ASCII space, the common format characters and
/// private-use/non-characters are escaped. Unassigned code points are the
/// one known divergence (Go escapes them, this keeps them).
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(
        c as u32,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0xE000..=0xF8FF
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xFFFE..=0xFFFF
            | 0x110BD
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
            | 0xF0000..
    )
}

/// Joins errors as upstream's errors.Aggregate prints them: duplicates
/// dropped, a lone error bare, several as `[a, b]`.
pub fn aggregate_message(errors: &[FieldError]) -> String {
    let mut seen = HashSet::new();
    let mut messages: Vec<String> = Vec::new();
    for error in errors {
        let text = error.to_string();
        if seen.insert(text.clone()) {
            messages.push(text);
        }
    }
    match messages.as_slice() {
        [] => String::new(),
        [only] => only.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The complete metav1.Status kube-apiserver answers a 422 with
/// (apimachinery's errors.NewInvalid). `group` is "" for the core group.
pub fn invalid_status(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Value {
    let qualified_kind = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let message = if errors.is_empty() {
        format!("{qualified_kind} {} is invalid", go_quote(name))
    } else {
        format!(
            "{qualified_kind} {} is invalid: {}",
            go_quote(name),
            aggregate_message(errors)
        )
    };
    let mut details = Map::new();
    for (key, value) in [("name", name), ("group", group), ("kind", kind)] {
        if !value.is_empty() {
            details.insert(key.into(), Value::from(value));
        }
    }
    if !errors.is_empty() {
        details.insert(
            "causes".into(),
            Value::Array(errors.iter().map(FieldError::cause_json).collect()),
        );
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": details,
        "code": 422,
    })
}

// ---------------------------------------------------------------------------
// String format validators. Each returns upstream's messages; empty = valid.

fn max_len_characters(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn max_len_bytes(max: usize) -> String {
    format!("must be no more than {max} bytes")
}

/// Upstream's RegexError, including its odd `'a',  or 'b', ` punctuation
/// which kubectl users know by heart.
fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{message} (regex used for validation is '{format}')");
    }
    let mut out = format!("{message} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(format);
    out.push_str("')");
    out
}

fn is_lower_alphanumeric(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `first` and `last` constrain the ends, `inner` every byte.
fn has_shape(
    value: &str,
    first: fn(u8) -> bool,
    last: fn(u8) -> bool,
    inner: fn(u8) -> bool,
) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&head), Some(&tail)) => first(head) && last(tail) && bytes.iter().all(|&b| inner(b)),
        _ => false,
    }
}

fn matches_dns1123_label(value: &str) -> bool {
    has_shape(value, is_lower_alphanumeric, is_lower_alphanumeric, |b| {
        is_lower_alphanumeric(b) || b == b'-'
    })
}

fn matches_dns1123_subdomain(value: &str) -> bool {
    value.split('.').all(matches_dns1123_label)
}

fn matches_dns1035_label(value: &str) -> bool {
    has_shape(
        value,
        |b| b.is_ascii_lowercase(),
        is_lower_alphanumeric,
        |b| is_lower_alphanumeric(b) || b == b'-',
    )
}

fn matches_label_name(value: &str) -> bool {
    has_shape(
        value,
        |b| b.is_ascii_alphanumeric(),
        |b| b.is_ascii_alphanumeric(),
        |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'),
    )
}

/// An RFC 1123 label: lowercase alphanumerics and '-', at most 63 characters.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errors.push(max_len_characters(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            errors.push("must not contain dots".to_string());
        } else {
            errors.push(regex_error(
                DNS1123_LABEL_ERR_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errors
}

/// An RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    dns1123_subdomain_errors(value, max_len_characters)
}

/// The same rule as [`is_dns1123_subdomain`], but worded as the newer
/// content package words it, which qualified-name prefixes go through.
fn dns1123_subdomain_errors(value: &str, max_len: fn(usize) -> String) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errors.push(max_len(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errors.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errors
}

/// An RFC 1035 label: like an RFC 1123 label but starting with a letter.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        errors.push(max_len_characters(DNS1035_LABEL_MAX_LENGTH));
    }
    if !matches_dns1035_label(value) {
        errors.push(regex_error(
            DNS1035_LABEL_ERR_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errors
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain and
/// the name at most 63 alphanumerics, '-', '_' or '.'.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                for message in dns1123_subdomain_errors(prefix, max_len_bytes) {
                    errors.push(format!("prefix part {message}"));
                }
            }
            *name
        }
        _ => {
            return vec![format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    LABEL_KEY_ERR_MSG,
                    LABEL_KEY_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            )];
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errors.push(format!(
            "name part {}",
            max_len_bytes(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !matches_label_name(name) {
        errors.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_ERR_MSG,
                LABEL_KEY_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errors
}

/// A label value: empty, or up to 63 alphanumerics, '-', '_' or '.'
/// starting and ending with an alphanumeric.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errors.push(max_len_bytes(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_label_name(value) {
        errors.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

pub fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec!["must be between 1 and 65535, inclusive".to_string()]
    }
}

/// An IANA_SVC_NAME: at most 15 of [-a-z0-9], at least one letter, no
/// leading, trailing or doubled hyphen.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if port.len() > PORT_NAME_MAX_LENGTH {
        errors.push(max_len_characters(PORT_NAME_MAX_LENGTH));
    }
    if port.is_empty() || !port.bytes().all(|b| is_lower_alphanumeric(b) || b == b'-') {
        errors.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !port.bytes().any(|b| b.is_ascii_lowercase()) {
        errors.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errors.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errors.push("must not begin or end with a hyphen".to_string());
    }
    errors
}

/// An IP address in strict, canonical form, as upstream's IsValidIP for new
/// fields: no leading zeros, no IPv4-mapped IPv6, IPv6 in RFC 5952 form.
pub fn is_valid_ip(value: &str) -> Vec<String> {
    let Some(sloppy) = parse_ip_sloppy(value) else {
        return vec![INVALID_IP_MSG.to_string()];
    };
    let mut errors = Vec::new();
    // Go's ParseIPSloppy tolerates leading zeros in IPv4 octets while
    // netip.ParseAddr (and Rust's parser) reject them, so a disagreement
    // between the two parsers means exactly that.
    // Upstream asks the strict parse about IPv4 mapping, and a failed
    // strict parse answers "no", so at most one of these two is reported.
    match value.parse::<IpAddr>() {
        Err(_) => errors.push("must not have leading 0s".to_string()),
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            errors.push("must not be an IPv4-mapped IPv6 address".to_string());
        }
        Ok(_) => {}
    }
    if errors.is_empty() {
        let canonical = sloppy.to_string();
        if canonical != value {
            errors.push(format!(
                "must be in canonical form ({})",
                go_quote(&canonical)
            ));
        }
    }
    errors
}

/// Parses like Go's net.ParseIP did before it rejected leading zeros.
fn parse_ip_sloppy(value: &str) -> Option<IpAddr> {
    if !value.contains(':') {
        return normalize_ipv4(value).and_then(|v4| v4.parse().ok());
    }
    match value.rsplit_once(':') {
        Some((head, tail)) if tail.contains('.') => {
            let v4 = normalize_ipv4(tail)?;
            format!("{head}:{v4}")
                .parse::<Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        }
        _ => value.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
    }
}

/// Rewrites dotted-quad octets without leading zeros, or `None` if it is not one.
fn normalize_ipv4(value: &str) -> Option<String> {
    let octets: Vec<&str> = value.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let mut normalized = Vec::with_capacity(4);
    for octet in octets {
        if octet.is_empty() || !octet.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = octet.trim_start_matches('0');
        if digits.len() > 3 {
            return None;
        }
        let number: u16 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        if number > 255 {
            return None;
        }
        normalized.push(number.to_string());
    }
    Some(normalized.join("."))
}

/// A name usable as one URL path segment.
pub fn is_valid_path_segment_name(name: &str) -> Vec<String> {
    for forbidden in [".", ".."] {
        if name == forbidden {
            return vec![format!("may not be '{forbidden}'")];
        }
    }
    is_valid_path_segment_prefix(name)
}

/// A generateName prefix for path-segment names: "." and ".." are fine as
/// prefixes since a suffix is always appended.
pub fn is_valid_path_segment_prefix(name: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|forbidden| name.contains(**forbidden))
        .map(|forbidden| format!("may not contain '{forbidden}'"))
        .collect()
}

/// Stands in for the random suffix a generateName prefix will get, so a
/// prefix ending in '-' is not rejected for that. Upstream drops two bytes
/// before appending "a", and that exact quirk is kept so lengths agree.
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let keep = name.len() - 2;
        match name.get(..keep) {
            Some(head) => format!("{head}a"),
            // The byte before the dash starts a multi-byte character, so
            // the name is invalid anyway; keep it unmasked to say so.
            None => name.to_string(),
        }
    } else {
        name.to_string()
    }
}

pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_subdomain(&mask_trailing_dash(name))
    } else {
        is_dns1123_subdomain(name)
    }
}

pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_label(&mask_trailing_dash(name))
    } else {
        is_dns1123_label(name)
    }
}

pub fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1035_label(&mask_trailing_dash(name))
    } else {
        is_dns1035_label(name)
    }
}

pub fn validate_path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_valid_path_segment_prefix(name)
    } else {
        is_valid_path_segment_name(name)
    }
}

/// How an object's name is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most kinds.
    DnsSubdomain,
    /// RFC 1123 label: namespaces.
    DnsLabel,
    /// RFC 1035 label: services.
    Dns1035Label,
    /// Anything usable as one URL path segment: RBAC kinds and a few others.
    PathSegment,
}

impl NameRule {
    /// Messages for `name`; `prefix` is true when checking a generateName.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        match self {
            NameRule::DnsSubdomain => name_is_dns_subdomain(name, prefix),
            NameRule::DnsLabel => name_is_dns_label(name, prefix),
            NameRule::Dns1035Label => name_is_dns1035_label(name, prefix),
            NameRule::PathSegment => validate_path_segment_name(name, prefix),
        }
    }
}

// ---------------------------------------------------------------------------
// ObjectMeta.

/// The string entries of a map[string]string field, sorted by key. Typed
/// upstream code would have failed to decode anything else; here that is
/// reported as an Invalid field error instead.
fn string_entries<'a>(
    value: &'a Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Vec<(&'a str, &'a str)> {
    match value {
        Value::Null => Vec::new(),
        Value::Object(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (key, entry) in map {
                match entry {
                    Value::String(s) => entries.push((key.as_str(), s.as_str())),
                    other => errors.push(FieldError::invalid(
                        format!("{path}[{key}]"),
                        other.clone(),
                        "must be a string",
                    )),
                }
            }
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            entries
        }
        other => {
            errors.push(FieldError::invalid(
                path,
                other.clone(),
                "must be an object with string values",
            ));
            Vec::new()
        }
    }
}

/// Label keys must be qualified names and values label values. `labels` is
/// the map as found at `metadata.labels`; null means none.
pub fn validate_labels(labels: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (key, value) in string_entries(labels, path, &mut errors) {
        for message in is_qualified_name(key) {
            errors.push(FieldError::invalid(path, key, message));
        }
        for message in is_valid_label_value(value) {
            errors.push(FieldError::invalid(path, value, message));
        }
    }
    errors
}

/// Annotation keys must be qualified names ignoring case, and all keys and
/// values together at most 256 KiB.
pub fn validate_annotations(annotations: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let entries = string_entries(annotations, path, &mut errors);
    for (key, _) in &entries {
        for message in is_qualified_name(&key.to_lowercase()) {
            errors.push(FieldError::invalid(path, *key, message));
        }
    }
    let total: usize = entries
        .iter()
        .map(|(key, value)| key.len() + value.len())
        .sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES {
        errors.push(FieldError::too_long(
            path,
            Some(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES),
        ));
    }
    errors
}

/// Reads an optional string member, reporting a non-string as Invalid.
fn string_member<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> &'a str {
    match object.get(key) {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s,
        Some(other) => {
            errors.push(FieldError::invalid(
                format!("{path}.{key}"),
                other.clone(),
                "must be a string",
            ));
            ""
        }
    }
}

/// Splits an apiVersion as upstream's schema.ParseGroupVersion, `None` when
/// it has more than one '/'.
fn parse_group_version(api_version: &str) -> Option<(&str, &str)> {
    if api_version.is_empty() || api_version == "/" {
        return Some(("", ""));
    }
    match api_version.matches('/').count() {
        0 => Some(("", api_version)),
        1 => api_version.split_once('/'),
        _ => None,
    }
}

/// Each reference needs apiVersion, kind, name and uid; Events may not own
/// anything; at most one reference may be the controller.
pub fn validate_owner_references(owner_references: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let references = match owner_references {
        Value::Null => return errors,
        Value::Array(items) => items,
        other => {
            errors.push(FieldError::invalid(path, other.clone(), "must be a list"));
            return errors;
        }
    };
    let mut first_controller: Option<String> = None;
    for (index, reference) in references.iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        let Value::Object(fields) = reference else {
            errors.push(FieldError::invalid(
                item_path,
                reference.clone(),
                "must be an object",
            ));
            continue;
        };
        let api_version = string_member(fields, "apiVersion", &item_path, &mut errors);
        let kind = string_member(fields, "kind", &item_path, &mut errors);
        let name = string_member(fields, "name", &item_path, &mut errors);
        let uid = string_member(fields, "uid", &item_path, &mut errors);
        let group_version = parse_group_version(api_version);
        if api_version.is_empty() {
            errors.push(FieldError::required(
                format!("{item_path}.apiVersion"),
                "must not be empty",
            ));
        } else if !matches!(group_version, Some((_, version)) if !version.is_empty()) {
            errors.push(FieldError::invalid(
                format!("{item_path}.apiVersion"),
                api_version,
                "must be <group>/<version> or <version>",
            ));
        }
        for (member, value) in [("kind", kind), ("name", name), ("uid", uid)] {
            if value.is_empty() {
                errors.push(FieldError::required(
                    format!("{item_path}.{member}"),
                    "must not be empty",
                ));
            }
        }
        if group_version == Some(("", "v1")) && kind == "Event" {
            errors.push(FieldError::invalid(
                item_path.clone(),
                reference.clone(),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if fields.get("controller") == Some(&Value::Bool(true)) {
            let current = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errors.push(FieldError::invalid(
                    path,
                    owner_references.clone(),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errors
}

/// Finalizer names are qualified names, and `orphan` excludes `foregroundDeletion`.
pub fn validate_finalizers(finalizers: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let items = match finalizers {
        Value::Null => return errors,
        Value::Array(items) => items,
        other => {
            errors.push(FieldError::invalid(path, other.clone(), "must be a list"));
            return errors;
        }
    };
    let mut has_orphan = false;
    let mut has_foreground = false;
    for item in items {
        let Value::String(finalizer) = item else {
            errors.push(FieldError::invalid(path, item.clone(), "must be a string"));
            continue;
        };
        for message in is_qualified_name(finalizer) {
            errors.push(FieldError::invalid(path, finalizer.as_str(), message));
        }
        has_orphan |= finalizer == FINALIZER_ORPHAN_DEPENDENTS;
        has_foreground |= finalizer == FINALIZER_DELETE_DEPENDENTS;
    }
    if has_orphan && has_foreground {
        errors.push(FieldError::invalid(
            path,
            finalizers.clone(),
            format!("finalizer {FINALIZER_ORPHAN_DEPENDENTS} and {FINALIZER_DELETE_DEPENDENTS} cannot be both set"),
        ));
    }
    errors
}

/// Validates `metadata` of an object being created, as upstream's
/// ValidateObjectMeta: generateName, name, namespace, generation, labels,
/// annotations, ownerReferences and finalizers, in upstream's order.
///
/// Upstream generates the name before validating; this also accepts an
/// empty name while generateName is set, so callers may validate first.
pub fn validate_object_meta(
    meta: Option<&Value>,
    namespaced: bool,
    name_rule: NameRule,
) -> Vec<FieldError> {
    let empty = Map::new();
    let mut errors = Vec::new();
    let fields = match meta {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(fields)) => fields,
        Some(other) => {
            return vec![FieldError::invalid(
                "metadata",
                other.clone(),
                "must be an object",
            )];
        }
    };
    let generate_name = string_member(fields, "generateName", "metadata", &mut errors);
    let name = string_member(fields, "name", "metadata", &mut errors);
    let namespace = string_member(fields, "namespace", "metadata", &mut errors);

    if !generate_name.is_empty() {
        for message in name_rule.check(generate_name, true) {
            errors.push(FieldError::invalid(
                "metadata.generateName",
                generate_name,
                message,
            ));
        }
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            errors.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for message in name_rule.check(name, false) {
            errors.push(FieldError::invalid("metadata.name", name, message));
        }
    }

    if namespaced {
        if namespace.is_empty() {
            errors.push(FieldError::required("metadata.namespace", ""));
        } else {
            for message in name_is_dns_label(namespace, false) {
                errors.push(FieldError::invalid(
                    "metadata.namespace",
                    namespace,
                    message,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errors.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }

    if let Some(generation) = fields.get("generation")
        && generation.as_f64().is_some_and(|g| g < 0.0)
    {
        errors.push(FieldError::invalid(
            "metadata.generation",
            generation.clone(),
            IS_NEGATIVE_ERROR_MSG,
        ));
    }

    let member = |key: &str| fields.get(key).unwrap_or(&Value::Null);
    errors.extend(validate_labels(member("labels"), "metadata.labels"));
    errors.extend(validate_annotations(
        member("annotations"),
        "metadata.annotations",
    ));
    errors.extend(validate_owner_references(
        member("ownerReferences"),
        "metadata.ownerReferences",
    ));
    errors.extend(validate_finalizers(
        member("finalizers"),
        "metadata.finalizers",
    ));
    errors
}

/// Upstream's ValidateImmutableField: any change is an Invalid error carrying
/// the new value.
pub fn validate_immutable(old: &Value, new: &Value, path: &str) -> Option<FieldError> {
    (old != new).then(|| FieldError::invalid(path, new.clone(), FIELD_IMMUTABLE_ERROR_MSG))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kinds_have_upstream_reasons_and_summaries() {
        let table = [
            (
                FieldErrorKind::Required,
                "FieldValueRequired",
                "Required value",
            ),
            (
                FieldErrorKind::Invalid,
                "FieldValueInvalid",
                "Invalid value",
            ),
            (
                FieldErrorKind::Duplicate,
                "FieldValueDuplicate",
                "Duplicate value",
            ),
            (FieldErrorKind::NotFound, "FieldValueNotFound", "Not found"),
            (
                FieldErrorKind::NotSupported,
                "FieldValueNotSupported",
                "Unsupported value",
            ),
            (
                FieldErrorKind::Forbidden,
                "FieldValueForbidden",
                "Forbidden",
            ),
            (FieldErrorKind::TooLong, "FieldValueTooLong", "Too long"),
            (FieldErrorKind::TooMany, "FieldValueTooMany", "Too many"),
            (
                FieldErrorKind::InternalError,
                "InternalError",
                "Internal error",
            ),
        ];
        for (kind, reason, summary) in table {
            assert_eq!(kind.reason(), reason);
            assert_eq!(kind.summary(), summary);
        }
    }

    #[test]
    fn messages_match_upstream_error_body() {
        let table: Vec<(FieldError, &str)> = vec![
            (FieldError::required("metadata.name", ""), "Required value"),
            (
                FieldError::required("metadata.name", "name or generateName is required"),
                "Required value: name or generateName is required",
            ),
            (
                FieldError::invalid("metadata.name", "Foo", "bad"),
                "Invalid value: \"Foo\": bad",
            ),
            (
                FieldError::invalid("spec.replicas", -1, "must be greater than or equal to 0"),
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                FieldError::invalid("spec.paused", true, "nope"),
                "Invalid value: true: nope",
            ),
            (
                FieldError::invalid("spec", json!({"b": 1, "a": "<x>"}), "odd"),
                "Invalid value: {\"a\":\"\\u003cx\\u003e\",\"b\":1}: odd",
            ),
            (
                FieldError::invalid("spec", Value::Null, "odd"),
                "Invalid value: null: odd",
            ),
            (
                FieldError::invalid("spec.x", json!(["a"]), ""),
                "Invalid value: [\"a\"]",
            ),
            (
                FieldError::duplicate("spec.ports[1].name", "http"),
                "Duplicate value: \"http\"",
            ),
            (
                FieldError::not_found("spec.volume", "data"),
                "Not found: \"data\"",
            ),
            (
                FieldError::not_supported("spec.restartPolicy", "x", &["a", "b"]),
                "Unsupported value: \"x\": supported values: \"a\", \"b\"",
            ),
            (
                FieldError::not_supported("spec.x", "x", &[]),
                "Unsupported value: \"x\"",
            ),
            (
                FieldError::forbidden("metadata.namespace", "not allowed on this type"),
                "Forbidden: not allowed on this type",
            ),
            (
                FieldError::too_long("metadata.annotations", Some(262144)),
                "Too long: may not be more than 262144 bytes",
            ),
            (
                FieldError::too_long("x", Some(1)),
                "Too long: may not be more than 1 byte",
            ),
            (
                FieldError::too_long("x", None),
                "Too long: value is too long",
            ),
            (
                FieldError::too_many("spec.items", Some(5), Some(3)),
                "Too many: 5: must have at most 3 items",
            ),
            (
                FieldError::too_many("spec.items", None, Some(1)),
                "Too many: must have at most 1 item",
            ),
            (
                FieldError::too_many("spec.items", Some(2), None),
                "Too many: 2: has too many items",
            ),
            (FieldError::internal("spec", "boom"), "Internal error: boom"),
        ];
        for (error, expected) in table {
            assert_eq!(error.message(), expected, "{error:?}");
        }
    }

    #[test]
    fn display_prefixes_the_field_path() {
        let error = FieldError::invalid("spec.containers[0].image", "", "must be set");
        assert_eq!(
            error.to_string(),
            "spec.containers[0].image: Invalid value: \"\": must be set"
        );
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        let table = [
            ("plain", "\"plain\""),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("tab\tnl\ncr\r", "\"tab\\tnl\\ncr\\r\""),
            ("\u{7}\u{8}\u{c}\u{b}", "\"\\a\\b\\f\\v\""),
            ("\u{1}\u{7f}", "\"\\x01\\x7f\""),
            (
                "\u{85}\u{a0}\u{200b}\u{feff}",
                "\"\\u0085\\u00a0\\u200b\\ufeff\"",
            ),
            ("\u{f0000}", "\"\\U000f0000\""),
            ("héllo ✓ 日本", "\"héllo ✓ 日本\""),
        ];
        for (input, expected) in table {
            assert_eq!(go_quote(input), expected, "{input:?}");
        }
    }

    #[test]
    fn cause_json_omits_empty_field() {
        let error = FieldError::required("metadata.name", "");
        assert_eq!(
            error.cause_json(),
            json!({"reason": "FieldValueRequired", "message": "Required value", "field": "metadata.name"})
        );
        let fieldless = FieldError::internal("", "boom");
        assert_eq!(
            fieldless.cause_json(),
            json!({"reason": "InternalError", "message": "Internal error: boom"})
        );
    }

    #[test]
    fn aggregate_joins_several_and_drops_duplicates() {
        let a = FieldError::required("a", "");
        let b = FieldError::required("b", "");
        assert_eq!(aggregate_message(&[]), "");
        assert_eq!(
            aggregate_message(std::slice::from_ref(&a)),
            "a: Required value"
        );
        assert_eq!(
            aggregate_message(&[a.clone(), a.clone()]),
            "a: Required value"
        );
        assert_eq!(
            aggregate_message(&[a.clone(), b, a]),
            "[a: Required value, b: Required value]"
        );
    }

    #[test]
    fn invalid_status_has_upstream_shape() {
        let errors = is_dns1123_subdomain("Foo")
            .into_iter()
            .map(|m| FieldError::invalid("metadata.name", "Foo", m))
            .collect::<Vec<_>>();
        let status = invalid_status("Pod", "", "Foo", &errors);
        let message = format!(
            "Pod \"Foo\" is invalid: metadata.name: Invalid value: \"Foo\": {SUBDOMAIN_MSG}"
        );
        assert_eq!(
            status,
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "Invalid",
                "details": {
                    "name": "Foo",
                    "kind": "Pod",
                    "causes": [{
                        "reason": "FieldValueInvalid",
                        "message": format!("Invalid value: \"Foo\": {SUBDOMAIN_MSG}"),
                        "field": "metadata.name",
                    }],
                },
                "code": 422,
            })
        );
    }

    #[test]
    fn invalid_status_qualifies_kind_and_brackets_several_errors() {
        let errors = [
            FieldError::required("spec.selector", ""),
            FieldError::required("spec.template.metadata.labels", ""),
        ];
        let status = invalid_status("Deployment", "apps", "web", &errors);
        assert_eq!(
            status["message"],
            "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Required value]"
        );
        assert_eq!(status["details"]["group"], "apps");
        assert_eq!(
            status["details"]["causes"].as_array().map(Vec::len),
            Some(2)
        );

        let bare = invalid_status("Pod", "", "", &[]);
        assert_eq!(bare["message"], "Pod \"\" is invalid");
        assert_eq!(bare["details"], json!({"kind": "Pod"}));
    }

    #[test]
    fn dns1123_subdomain() {
        let long = "a".repeat(254);
        let table: Vec<(&str, Vec<String>)> = vec![
            ("example.com", vec![]),
            ("a", vec![]),
            ("1-2.x-y", vec![]),
            (&long[..253], vec![]),
            ("Foo", strings(&[SUBDOMAIN_MSG])),
            ("", strings(&[SUBDOMAIN_MSG])),
            ("a..b", strings(&[SUBDOMAIN_MSG])),
            ("-a", strings(&[SUBDOMAIN_MSG])),
            ("a_b", strings(&[SUBDOMAIN_MSG])),
            ("a.", strings(&[SUBDOMAIN_MSG])),
            (&long, strings(&["must be no more than 253 characters"])),
        ];
        for (input, expected) in table {
            assert_eq!(is_dns1123_subdomain(input), expected, "{input:?}");
        }
    }

    #[test]
    fn dns1123_label() {
        let long = "a".repeat(64);
        let table: Vec<(&str, Vec<String>)> = vec![
            ("my-name", vec![]),
            ("123-abc", vec![]),
            (&long[..63], vec![]),
            ("a.b", strings(&["must not contain dots"])),
            ("A", strings(&[LABEL_MSG])),
            ("", strings(&[LABEL_MSG])),
            ("a-", strings(&[LABEL_MSG])),
            (&long, strings(&["must be no more than 63 characters"])),
        ];
        for (input, expected) in table {
            assert_eq!(is_dns1123_label(input), expected, "{input:?}");
        }
    }

    #[test]
    fn dns1035_label() {
        let table: Vec<(&str, Vec<String>)> = vec![
            ("my-name", vec![]),
            ("abc-123", vec![]),
            ("z", vec![]),
            ("1abc", strings(&[DNS1035_MSG])),
            ("abc-", strings(&[DNS1035_MSG])),
            ("a.b", strings(&[DNS1035_MSG])),
            ("", strings(&[DNS1035_MSG])),
        ];
        for (input, expected) in table {
            assert_eq!(is_dns1035_label(input), expected, "{input:?}");
        }
        assert_eq!(
            is_dns1035_label(&"a".repeat(64)),
            strings(&["must be no more than 63 characters"])
        );
    }

    #[test]
    fn qualified_names() {
        let long_name = "a".repeat(64);
        let long_prefix = format!("{}/a", "a".repeat(254));
        let too_many_slashes = "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
        let table: Vec<(&str, Vec<String>)> = vec![
            ("app", vec![]),
            ("MyName", vec![]),
            ("my.name_x-1", vec![]),
            ("example.com/MyName", vec![]),
            ("kubernetes.io/os", vec![]),
            ("a/b/c", strings(&[too_many_slashes])),
            ("/a", strings(&["prefix part must be non-empty"])),
            (
                "Example.com/a",
                vec![format!("prefix part {SUBDOMAIN_MSG}")],
            ),
            (
                &long_prefix,
                strings(&["prefix part must be no more than 253 bytes"]),
            ),
            (
                "a/",
                strings(&["name part must be non-empty", NAME_PART_MSG]),
            ),
            ("", strings(&["name part must be non-empty", NAME_PART_MSG])),
            ("-a", strings(&[NAME_PART_MSG])),
            ("a b", strings(&[NAME_PART_MSG])),
            (
                &long_name,
                strings(&["name part must be no more than 63 bytes"]),
            ),
        ];
        for (input, expected) in table {
            assert_eq!(is_qualified_name(input), expected, "{input:?}");
        }
    }

    #[test]
    fn label_values() {
        let table: Vec<(String, Vec<String>)> = vec![
            (String::new(), vec![]),
            ("MyValue".into(), vec![]),
            ("my_value.1-x".into(), vec![]),
            ("a".repeat(63), vec![]),
            ("a".repeat(64), strings(&["must be no more than 63 bytes"])),
            ("-a".into(), strings(&[LABEL_VALUE_MSG])),
            ("a b".into(), strings(&[LABEL_VALUE_MSG])),
            ("a/b".into(), strings(&[LABEL_VALUE_MSG])),
            (
                format!("-{}", "a".repeat(63)),
                strings(&["must be no more than 63 bytes", LABEL_VALUE_MSG]),
            ),
        ];
        for (input, expected) in table {
            assert_eq!(is_valid_label_value(&input), expected, "{input:?}");
        }
    }

    #[test]
    fn port_numbers() {
        for good in [1, 80, 65535] {
            assert!(is_valid_port_num(good).is_empty(), "{good}");
        }
        for bad in [0, -1, 65536] {
            assert_eq!(
                is_valid_port_num(bad),
                strings(&["must be between 1 and 65535, inclusive"]),
                "{bad}"
            );
        }
    }

    #[test]
    fn port_names() {
        let charset = "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)";
        let letter = "must contain at least one letter (a-z)";
        let table: Vec<(&str, Vec<String>)> = vec![
            ("http", vec![]),
            ("h2c-1", vec![]),
            ("a23456789012345", vec![]),
            (
                "a234567890123456",
                strings(&["must be no more than 15 characters"]),
            ),
            ("HTTP", strings(&[charset, letter])),
            ("123", strings(&[letter])),
            ("", strings(&[charset, letter])),
            ("a--b", strings(&["must not contain consecutive hyphens"])),
            ("-ab", strings(&["must not begin or end with a hyphen"])),
            ("ab-", strings(&["must not begin or end with a hyphen"])),
        ];
        for (input, expected) in table {
            assert_eq!(is_valid_port_name(input), expected, "{input:?}");
        }
    }

    #[test]
    fn ip_addresses() {
        let table: Vec<(&str, Vec<String>)> = vec![
            ("10.9.8.7", vec![]),
            ("0.0.0.0", vec![]),
            ("2001:db8::ffff", vec![]),
            ("::1", vec![]),
            ("", strings(&[INVALID_IP_MSG])),
            ("1.2.3", strings(&[INVALID_IP_MSG])),
            ("256.1.1.1", strings(&[INVALID_IP_MSG])),
            ("a.b.c.d", strings(&[INVALID_IP_MSG])),
            ("fe80::1%eth0", strings(&[INVALID_IP_MSG])),
            ("010.002.003.004", strings(&["must not have leading 0s"])),
            (
                "::ffff:1.2.3.4",
                strings(&["must not be an IPv4-mapped IPv6 address"]),
            ),
            (
                "2001:DB8::FFFF",
                strings(&["must be in canonical form (\"2001:db8::ffff\")"]),
            ),
            (
                "2001:db8:0:0:0:0:0:1",
                strings(&["must be in canonical form (\"2001:db8::1\")"]),
            ),
            (
                "2001:db8:0:0:1:0:0:1",
                strings(&["must be in canonical form (\"2001:db8::1:0:0:1\")"]),
            ),
            (
                "::1.2.3.4",
                strings(&["must be in canonical form (\"::102:304\")"]),
            ),
            ("::ffff:01.2.3.4", strings(&["must not have leading 0s"])),
            ("1.2.3.0004", strings(&["must not have leading 0s"])),
        ];
        for (input, expected) in table {
            assert_eq!(is_valid_ip(input), expected, "{input:?}");
        }
    }

    #[test]
    fn object_name_helpers() {
        assert!(name_is_dns_subdomain("web-1", false).is_empty());
        assert!(!name_is_dns_subdomain("web-", false).is_empty());
        // A generateName may end in '-' since a suffix follows.
        assert!(name_is_dns_subdomain("web-", true).is_empty());
        assert!(name_is_dns_label("web-", true).is_empty());
        assert!(name_is_dns1035_label("web-", true).is_empty());
        assert_eq!(
            name_is_dns_label("a.b-", true),
            strings(&["must not contain dots"])
        );
        assert!(!name_is_dns1035_label("1web-", true).is_empty());
        assert_eq!(mask_trailing_dash("ab-"), "aa");
        assert_eq!(mask_trailing_dash("-"), "-");
        assert_eq!(mask_trailing_dash("é-"), "é-");
    }

    #[test]
    fn path_segment_names() {
        let table: Vec<(&str, bool, Vec<String>)> = vec![
            ("system:admin", false, vec![]),
            ("Any Thing", false, vec![]),
            (".", false, strings(&["may not be '.'"])),
            ("..", false, strings(&["may not be '..'"])),
            (".", true, vec![]),
            ("a/b", false, strings(&["may not contain '/'"])),
            (
                "a%b/",
                false,
                strings(&["may not contain '/'", "may not contain '%'"]),
            ),
            ("a%", true, strings(&["may not contain '%'"])),
        ];
        for (input, prefix, expected) in table {
            assert_eq!(
                validate_path_segment_name(input, prefix),
                expected,
                "{input:?} {prefix}"
            );
            assert_eq!(
                NameRule::PathSegment.check(input, prefix),
                expected,
                "{input:?} {prefix}"
            );
        }
    }

    #[test]
    fn labels_validation() {
        assert!(
            validate_labels(
                &json!({"app": "web", "example.com/tier": ""}),
                "metadata.labels"
            )
            .is_empty()
        );
        assert!(validate_labels(&Value::Null, "metadata.labels").is_empty());
        let errors = validate_labels(
            &json!({"-bad": "ok", "good": "bad value", "n": 1}),
            "metadata.labels",
        );
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            vec![
                "metadata.labels[n]: Invalid value: 1: must be a string".to_string(),
                format!("metadata.labels: Invalid value: \"-bad\": {NAME_PART_MSG}"),
                format!("metadata.labels: Invalid value: \"bad value\": {LABEL_VALUE_MSG}"),
            ]
        );
        assert_eq!(validate_labels(&json!(["x"]), "metadata.labels").len(), 1);
    }

    #[test]
    fn annotations_validation() {
        assert!(
            validate_annotations(
                &json!({"Example.com/Some-Key": "any value at all ☃"}),
                "metadata.annotations"
            )
            .is_empty()
        );
        let errors = validate_annotations(&json!({"a b": "x"}), "metadata.annotations");
        assert_eq!(
            errors,
            vec![FieldError::invalid(
                "metadata.annotations",
                "a b",
                NAME_PART_MSG
            )]
        );

        let at_limit = json!({"k": "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES - 1)});
        assert!(validate_annotations(&at_limit, "metadata.annotations").is_empty());
        let over = json!({"k": "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES)});
        let errors = validate_annotations(&over, "metadata.annotations");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(errors[0].kind.reason(), "FieldValueTooLong");
    }

    fn rendered(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn object_meta_names_and_namespaces() {
        let valid = json!({"name": "web", "namespace": "default"});
        assert!(validate_object_meta(Some(&valid), true, NameRule::DnsSubdomain).is_empty());

        let table: Vec<(Value, bool, NameRule, Vec<String>)> = vec![
            (
                json!({"namespace": "default"}),
                true,
                NameRule::DnsSubdomain,
                strings(&["metadata.name: Required value: name or generateName is required"]),
            ),
            (
                json!({"generateName": "web-", "namespace": "default"}),
                true,
                NameRule::DnsSubdomain,
                vec![],
            ),
            (
                json!({"generateName": "Web-", "namespace": "default"}),
                true,
                NameRule::DnsSubdomain,
                vec![format!(
                    "metadata.generateName: Invalid value: \"Web-\": {SUBDOMAIN_MSG}"
                )],
            ),
            (
                json!({"name": "Foo", "namespace": "default"}),
                true,
                NameRule::DnsSubdomain,
                vec![format!(
                    "metadata.name: Invalid value: \"Foo\": {SUBDOMAIN_MSG}"
                )],
            ),
            (
                json!({"name": "web"}),
                true,
                NameRule::DnsSubdomain,
                strings(&["metadata.namespace: Required value"]),
            ),
            (
                json!({"name": "web", "namespace": "Bad"}),
                true,
                NameRule::DnsSubdomain,
                vec![format!(
                    "metadata.namespace: Invalid value: \"Bad\": {LABEL_MSG}"
                )],
            ),
            (
                json!({"name": "node-1", "namespace": "default"}),
                false,
                NameRule::DnsSubdomain,
                strings(&["metadata.namespace: Forbidden: not allowed on this type"]),
            ),
            (
                json!({"name": "a.b"}),
                false,
                NameRule::DnsLabel,
                strings(&["metadata.name: Invalid value: \"a.b\": must not contain dots"]),
            ),
            (
                json!({"name": "1svc", "namespace": "default"}),
                true,
                NameRule::Dns1035Label,
                vec![format!(
                    "metadata.name: Invalid value: \"1svc\": {DNS1035_MSG}"
                )],
            ),
            (
                json!({"name": "system:admin"}),
                false,
                NameRule::PathSegment,
                vec![],
            ),
            (
                json!({"name": ".."}),
                false,
                NameRule::PathSegment,
                strings(&["metadata.name: Invalid value: \"..\": may not be '..'"]),
            ),
            (
                json!({"name": "web", "namespace": "default", "generation": -1}),
                true,
                NameRule::DnsSubdomain,
                strings(&[
                    "metadata.generation: Invalid value: -1: must be greater than or equal to 0",
                ]),
            ),
            (
                json!({"name": 5}),
                false,
                NameRule::DnsSubdomain,
                strings(&[
                    "metadata.name: Invalid value: 5: must be a string",
                    "metadata.name: Required value: name or generateName is required",
                ]),
            ),
        ];
        for (meta, namespaced, rule, expected) in table {
            assert_eq!(
                rendered(&validate_object_meta(Some(&meta), namespaced, rule)),
                expected,
                "{meta}"
            );
        }
        assert_eq!(
            rendered(&validate_object_meta(None, false, NameRule::DnsSubdomain)),
            strings(&["metadata.name: Required value: name or generateName is required"])
        );
        assert_eq!(
            validate_object_meta(Some(&json!("x")), false, NameRule::DnsSubdomain).len(),
            1
        );
    }

    #[test]
    fn object_meta_labels_annotations_finalizers() {
        let meta = json!({
            "name": "web",
            "labels": {"app": "a b"},
            "annotations": {"/x": ""},
            "finalizers": ["example.com/cleanup", "bad finalizer", "orphan", "foregroundDeletion"],
        });
        let errors = validate_object_meta(Some(&meta), false, NameRule::DnsSubdomain);
        assert_eq!(
            rendered(&errors),
            vec![
                format!("metadata.labels: Invalid value: \"a b\": {LABEL_VALUE_MSG}"),
                "metadata.annotations: Invalid value: \"/x\": prefix part must be non-empty".to_string(),
                format!("metadata.finalizers: Invalid value: \"bad finalizer\": {NAME_PART_MSG}"),
                "metadata.finalizers: Invalid value: [\"example.com/cleanup\",\"bad finalizer\",\"orphan\",\"foregroundDeletion\"]: finalizer orphan and foregroundDeletion cannot be both set".to_string(),
            ]
        );
    }

    #[test]
    fn owner_references() {
        let good = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}]);
        assert!(validate_owner_references(&good, "metadata.ownerReferences").is_empty());

        let missing = json!([{}]);
        assert_eq!(
            rendered(&validate_owner_references(
                &missing,
                "metadata.ownerReferences"
            )),
            strings(&[
                "metadata.ownerReferences[0].apiVersion: Required value: must not be empty",
                "metadata.ownerReferences[0].kind: Required value: must not be empty",
                "metadata.ownerReferences[0].name: Required value: must not be empty",
                "metadata.ownerReferences[0].uid: Required value: must not be empty",
            ])
        );

        for bad_version in ["a/b/c", "apps/", "/"] {
            let refs = json!([{"apiVersion": bad_version, "kind": "K", "name": "n", "uid": "u"}]);
            assert_eq!(
                rendered(&validate_owner_references(
                    &refs,
                    "metadata.ownerReferences"
                )),
                vec![format!(
                    "metadata.ownerReferences[0].apiVersion: Invalid value: {}: must be <group>/<version> or <version>",
                    go_quote(bad_version)
                )],
                "{bad_version}"
            );
        }

        let event = json!([{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"}]);
        let errors = validate_owner_references(&event, "metadata.ownerReferences");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "metadata.ownerReferences[0]");
        assert_eq!(
            errors[0].detail,
            "/v1, Kind=Event is disallowed from being an owner"
        );

        let two_controllers = json!([
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "b", "uid": "2", "controller": false},
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "c", "uid": "3", "controller": true},
        ]);
        let errors = validate_owner_references(&two_controllers, "metadata.ownerReferences");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "metadata.ownerReferences");
        assert_eq!(
            errors[0].detail,
            "Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and DaemonSet/c"
        );
        assert_eq!(errors[0].bad_value.as_ref(), Some(&two_controllers));
    }

    #[test]
    fn immutable_fields() {
        assert_eq!(
            validate_immutable(&json!("a"), &json!("a"), "spec.selector"),
            None
        );
        assert_eq!(
            validate_immutable(&json!({"x": [1]}), &json!({"x": [1]}), "spec.selector"),
            None
        );
        let error = validate_immutable(&json!("a"), &json!("b"), "spec.clusterIP");
        assert_eq!(
            error.map(|e| e.to_string()),
            Some("spec.clusterIP: Invalid value: \"b\": field is immutable".to_string())
        );
        let error = validate_immutable(&json!({"app": "a"}), &json!({"app": "b"}), "spec.selector");
        assert_eq!(
            error.map(|e| e.to_string()),
            Some("spec.selector: Invalid value: {\"app\":\"b\"}: field is immutable".to_string())
        );
    }
}
