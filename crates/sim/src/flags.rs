//! Parsing what a simulator is configured with: `key=value` labels and `key=value:Effect` taints as kubelet's `--node-labels` and `--register-with-taints` read them, and capacity quantities.

use k8s_openapi::api::core::v1::Taint;

/// Why a `--label` or `--taint` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagError {
    /// A label without `=`.
    #[error("label {0:?} is not key=value")]
    LabelWithoutValue(String),
    /// A taint without `:Effect`.
    #[error("taint {0:?} is not key[=value]:Effect")]
    TaintWithoutEffect(String),
    /// A taint effect other than the three Kubernetes knows.
    #[error(
        "taint {taint:?} has effect {effect:?}; expected NoSchedule, PreferNoSchedule or NoExecute"
    )]
    UnknownTaintEffect { taint: String, effect: String },
    /// A label or taint with an empty key.
    #[error("{0:?} has an empty key")]
    EmptyKey(String),
    /// A capacity that is not a Kubernetes quantity such as `32`, `500m` or `256Gi`.
    #[error("{0:?} is not a quantity (such as 32, 500m or 256Gi)")]
    NotAQuantity(String),
}

/// `key=value` (the value may be empty).
pub fn parse_label(text: &str) -> Result<(String, String), FlagError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| FlagError::LabelWithoutValue(text.to_string()))?;
    if key.is_empty() {
        return Err(FlagError::EmptyKey(text.to_string()));
    }
    Ok((key.to_string(), value.to_string()))
}

/// `key=value:Effect` or `key:Effect`.
pub fn parse_taint(text: &str) -> Result<Taint, FlagError> {
    let (key_value, effect) = text
        .rsplit_once(':')
        .ok_or_else(|| FlagError::TaintWithoutEffect(text.to_string()))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(FlagError::UnknownTaintEffect {
            taint: text.to_string(),
            effect: effect.to_string(),
        });
    }
    let (key, value) = match key_value.split_once('=') {
        Some((key, value)) => (key, Some(value.to_string())),
        None => (key_value, None),
    };
    if key.is_empty() {
        return Err(FlagError::EmptyKey(text.to_string()));
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

/// Checks a Kubernetes quantity (`32`, `1.5`, `500m`, `256Gi`, `1e3`) and
/// hands it back; the API server would otherwise refuse every node.
pub fn parse_quantity(text: &str) -> Result<String, FlagError> {
    let refused = || FlagError::NotAQuantity(text.to_string());
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_len = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    if digits == 0 || number.matches('.').count() > 1 {
        return Err(refused());
    }
    let known_suffix = matches!(
        suffix,
        "" | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
    );
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|rest| rest.strip_prefix(['+', '-']).unwrap_or(rest))
        .is_some_and(|digits| !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()));
    if known_suffix || exponent {
        Ok(text.to_string())
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(parse_label("team=a"), Ok(("team".into(), "a".into())));
        assert_eq!(
            parse_label("example.com/empty="),
            Ok(("example.com/empty".into(), String::new()))
        );
        assert_eq!(
            parse_label("team"),
            Err(FlagError::LabelWithoutValue("team".into()))
        );
        assert_eq!(parse_label("=a"), Err(FlagError::EmptyKey("=a".into())));
    }

    #[test]
    fn quantities() {
        for valid in [
            "32", "1.5", "500m", "256Gi", "1Ti", "1e3", "2E-2", "+4k", "0",
        ] {
            assert_eq!(parse_quantity(valid), Ok(valid.to_string()), "{valid}");
        }
        for invalid in ["", "lots", "Gi", "1.2.3", "4gb", "1e", "12 Gi"] {
            assert_eq!(
                parse_quantity(invalid),
                Err(FlagError::NotAQuantity(invalid.to_string())),
                "{invalid}"
            );
        }
    }

    #[test]
    fn taints() {
        let taint = parse_taint("dedicated=gpu:NoSchedule").expect("valid");
        assert_eq!(
            (
                taint.key.as_str(),
                taint.value.as_deref(),
                taint.effect.as_str()
            ),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        let taint = parse_taint("example.com/drain:NoExecute").expect("valid");
        assert_eq!(
            (taint.key.as_str(), taint.value, taint.effect.as_str()),
            ("example.com/drain", None, "NoExecute")
        );
        assert_eq!(
            parse_taint("a=b"),
            Err(FlagError::TaintWithoutEffect("a=b".into()))
        );
        assert!(matches!(
            parse_taint("a=b:Sometimes"),
            Err(FlagError::UnknownTaintEffect { .. })
        ));
        assert_eq!(
            parse_taint(":NoSchedule"),
            Err(FlagError::EmptyKey(":NoSchedule".into()))
        );
    }
}
