//! Label selectors as controllers evaluate them: `metav1.LabelSelector` (matchLabels and matchExpressions) and the plain map selectors of ReplicationControllers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let value = labels.and_then(|labels| labels.get(&self.key));
        match self.operator {
            Operator::In => value.is_some_and(|value| self.values.contains(value)),
            Operator::NotIn => value.is_none_or(|value| !self.values.contains(value)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A parsed selector. As upstream's `LabelSelectorAsSelector`, a missing
/// selector selects nothing and an empty one selects everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Nothing,
    /// All requirements must hold; none selects everything.
    All(Vec<Requirement>),
}

impl Selector {
    pub fn from_label_selector(selector: Option<&LabelSelector>) -> Result<Selector, String> {
        let Some(selector) = selector else {
            return Ok(Selector::Nothing);
        };
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement {
                key: key.clone(),
                operator: Operator::In,
                values: vec![value.clone()],
            });
        }
        for expression in selector.match_expressions.iter().flatten() {
            let values = expression.values.clone().unwrap_or_default();
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            let needs_values = matches!(operator, Operator::In | Operator::NotIn);
            if needs_values == values.is_empty() {
                return Err(if needs_values {
                    "for 'in', 'notin' operators, values set can't be empty".to_string()
                } else {
                    "values set must be empty for exists and does not exist".to_string()
                });
            }
            requirements.push(Requirement {
                key: expression.key.clone(),
                operator,
                values,
            });
        }
        Ok(Selector::All(requirements))
    }

    /// A ReplicationController's selector: every pair must match.
    pub fn from_map(selector: &BTreeMap<String, String>) -> Selector {
        Selector::All(
            selector
                .iter()
                .map(|(key, value)| Requirement {
                    key: key.clone(),
                    operator: Operator::In,
                    values: vec![value.clone()],
                })
                .collect(),
        )
    }

    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::All(requirements) => requirements.iter().all(|r| r.matches(labels)),
        }
    }
}

/// Whether a selector is present and has neither labels nor expressions,
/// which upstream refuses to act on for Deployments ("selecting all pods").
pub fn selects_everything(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions_must_all_hold() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let selector = Selector::from_label_selector(Some(&selector)).unwrap();
        assert!(selector.matches(Some(&labels(&[("app", "web")]))));
        assert!(selector.matches(Some(&labels(&[("app", "web"), ("tier", "fe")]))));
        assert!(!selector.matches(Some(&labels(&[("app", "web"), ("tier", "db")]))));
        assert!(!selector.matches(Some(&labels(&[("app", "api")]))));
        assert!(!selector.matches(None));
    }

    #[test]
    fn missing_selects_nothing_and_empty_selects_everything() {
        assert!(!Selector::from_label_selector(None).unwrap().matches(None));
        let empty = Selector::from_label_selector(Some(&LabelSelector::default())).unwrap();
        assert!(empty.matches(None));
        assert!(selects_everything(&LabelSelector::default()));
    }

    #[test]
    fn in_without_values_is_refused() {
        let selector = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "In".into(),
                values: None,
            }]),
            ..LabelSelector::default()
        };
        assert!(Selector::from_label_selector(Some(&selector)).is_err());
    }
}
