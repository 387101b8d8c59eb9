//! Label and field selectors: parsing `?labelSelector=` / `?fieldSelector=` and metav1.LabelSelector objects, matching, and canonical rendering, as upstream apimachinery does.
//!
//! Selectors arrive in untrusted query strings, so every parser here returns
//! an error instead of panicking, and error texts are upstream's so clients
//! that match on them keep working.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::validation::{
    FieldError, aggregate_message, go_quote, is_qualified_name, is_valid_label_value,
};

/// Why a selector was rejected; its Display is the message of the 400
/// BadRequest Status the apiserver answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("{0}")]
    InvalidLabelSelector(String),
    #[error("{0}")]
    InvalidFieldSelector(String),
    /// A syntactically fine field selector naming a field the resource does
    /// not index.
    #[error("field label not supported: {0}")]
    FieldLabelNotSupported(String),
}

// ---------------------------------------------------------------------------
// Label selectors.

/// A label requirement operator; the string forms are upstream's selection.Operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelOperator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl LabelOperator {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelOperator::In => "in",
            LabelOperator::NotIn => "notin",
            LabelOperator::Equals => "=",
            LabelOperator::DoubleEquals => "==",
            LabelOperator::NotEquals => "!=",
            LabelOperator::Exists => "exists",
            LabelOperator::DoesNotExist => "!",
            LabelOperator::GreaterThan => "gt",
            LabelOperator::LessThan => "lt",
        }
    }
}

/// One `key op values` term of a label selector. Built only through the
/// parsers, so it always satisfies upstream's NewRequirement checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    key: String,
    operator: LabelOperator,
    values: Vec<String>,
}

impl LabelRequirement {
    /// Validates as upstream's labels.NewRequirement, reporting every problem
    /// at once in its aggregate form.
    fn new(key: String, operator: LabelOperator, values: Vec<String>) -> Result<Self, String> {
        let mut errors = Vec::new();
        let key_problems = is_qualified_name(&key);
        if !key_problems.is_empty() {
            errors.push(FieldError::invalid(
                "key",
                key.as_str(),
                key_problems.join("; "),
            ));
        }
        // Go marshals the nil slice it builds from an empty list as null.
        let values_json = || {
            if values.is_empty() {
                Value::Null
            } else {
                Value::from(values.clone())
            }
        };
        match operator {
            LabelOperator::In | LabelOperator::NotIn if values.is_empty() => {
                errors.push(FieldError::invalid(
                    "values",
                    values_json(),
                    "for 'in', 'notin' operators, values set can't be empty",
                ));
            }
            LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::NotEquals
                if values.len() != 1 =>
            {
                errors.push(FieldError::invalid(
                    "values",
                    values_json(),
                    "exact-match compatibility requires one single value",
                ));
            }
            LabelOperator::Exists | LabelOperator::DoesNotExist if !values.is_empty() => {
                errors.push(FieldError::invalid(
                    "values",
                    values_json(),
                    "values set must be empty for exists and does not exist",
                ));
            }
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                if values.len() != 1 {
                    errors.push(FieldError::invalid(
                        "values",
                        values_json(),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (index, value) in values.iter().enumerate() {
                    if value.parse::<i64>().is_err() {
                        errors.push(FieldError::invalid(
                            format!("values[{index}]"),
                            value.as_str(),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
            _ => {}
        }
        for (index, value) in values.iter().enumerate() {
            let problems = is_valid_label_value(value);
            if !problems.is_empty() {
                errors.push(FieldError::invalid(
                    format!("values[{index}][{key}]"),
                    value.as_str(),
                    problems.join("; "),
                ));
            }
        }
        if errors.is_empty() {
            Ok(LabelRequirement {
                key,
                operator,
                values,
            })
        } else {
            Err(aggregate_message(&errors))
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> LabelOperator {
        self.operator
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether the labels satisfy this term. A label holding a non-string
    /// (which upstream could never decode) equals no value: it fails `=`,
    /// `in`, `>` and `<`, satisfies `!=` and `notin`, and still exists.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let label = labels.and_then(|labels| labels.get(&self.key));
        let text = label.and_then(Value::as_str);
        let has_value = |candidate: &str| self.values.iter().any(|value| value == candidate);
        match self.operator {
            LabelOperator::In | LabelOperator::Equals | LabelOperator::DoubleEquals => {
                text.is_some_and(has_value)
            }
            LabelOperator::NotIn | LabelOperator::NotEquals => !text.is_some_and(has_value),
            LabelOperator::Exists => label.is_some(),
            LabelOperator::DoesNotExist => label.is_none(),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let Some(actual) = text.and_then(|t| t.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(bound) = self.values.first().and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                if self.operator == LabelOperator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }
}

impl fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let separator = match self.operator {
            LabelOperator::DoesNotExist => return write!(f, "!{}", self.key),
            LabelOperator::Exists => return f.write_str(&self.key),
            LabelOperator::In => " in ",
            LabelOperator::NotIn => " notin ",
            LabelOperator::GreaterThan => ">",
            LabelOperator::LessThan => "<",
            other => other.as_str(),
        };
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        let joined = values.join(",");
        if matches!(self.operator, LabelOperator::In | LabelOperator::NotIn) {
            write!(f, "{}{separator}({joined})", self.key)
        } else {
            write!(f, "{}{separator}{joined}", self.key)
        }
    }
}

/// A parsed label selector: the AND of its requirements, sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
    /// Upstream's labels.Nothing(): what a nil metav1.LabelSelector means.
    selects_nothing: bool,
}

impl LabelSelector {
    /// Selects every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Selects no object; renders as "" like upstream's labels.Nothing().
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            selects_nothing: true,
        }
    }

    fn from_requirements(mut requirements: Vec<LabelRequirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            selects_nothing: false,
        }
    }

    /// Converts a metav1.LabelSelector object (`matchLabels`,
    /// `matchExpressions`) as upstream's LabelSelectorAsSelector.
    ///
    /// `{}` and empty lists select everything. A JSON null selects nothing,
    /// as a nil selector does upstream; callers for fields where upstream
    /// reads a missing selector as "everything" must check for absence
    /// themselves before calling this.
    pub fn from_label_selector_json(selector: &Value) -> Result<LabelSelector, SelectorError> {
        let invalid = SelectorError::InvalidLabelSelector;
        let fields = match selector {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(fields) => fields,
            _ => return Err(invalid("label selector must be an object".to_string())),
        };
        let mut requirements = Vec::new();
        match fields.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let Some(value) = value.as_str() else {
                        return Err(invalid(format!("matchLabels[{key}] must be a string")));
                    };
                    let requirement = LabelRequirement::new(
                        key.clone(),
                        LabelOperator::Equals,
                        vec![value.to_string()],
                    );
                    requirements.push(requirement.map_err(invalid)?);
                }
            }
            Some(_) => return Err(invalid("matchLabels must be an object".to_string())),
        }
        match fields.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for (index, expression) in expressions.iter().enumerate() {
                    requirements
                        .push(requirement_from_expression(expression, index).map_err(invalid)?);
                }
            }
            Some(_) => return Err(invalid("matchExpressions must be a list".to_string())),
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// True when the selector does not restrict anything (upstream's Empty()).
    pub fn is_everything(&self) -> bool {
        !self.selects_nothing && self.requirements.is_empty()
    }

    pub fn is_nothing(&self) -> bool {
        self.selects_nothing
    }

    /// Whether an object with these labels (as found at `metadata.labels`;
    /// `None` when it has none) is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.selects_nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The single value the selector demands for `key`, if it pins one
    /// (upstream's RequiresExactMatch), letting storage narrow a scan.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let requirement = self.requirements.iter().find(|r| r.key == key)?;
        match (requirement.operator, requirement.values.as_slice()) {
            (LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::In, [only]) => {
                Some(only)
            }
            _ => None,
        }
    }
}

fn requirement_from_expression(
    expression: &Value,
    index: usize,
) -> Result<LabelRequirement, String> {
    let Value::Object(fields) = expression else {
        return Err(format!("matchExpressions[{index}] must be an object"));
    };
    let text = |member: &str| -> Result<String, String> {
        match fields.get(member) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!(
                "matchExpressions[{index}].{member} must be a string"
            )),
        }
    };
    let key = text("key")?;
    let operator_name = text("operator")?;
    let operator = match operator_name.as_str() {
        "In" => LabelOperator::In,
        "NotIn" => LabelOperator::NotIn,
        "Exists" => LabelOperator::Exists,
        "DoesNotExist" => LabelOperator::DoesNotExist,
        other => {
            return Err(format!(
                "{} is not a valid label selector operator",
                go_quote(other)
            ));
        }
    };
    let values = match fields.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("matchExpressions[{index}].values must be a list of strings"))?,
        Some(_) => {
            return Err(format!(
                "matchExpressions[{index}].values must be a list of strings"
            ));
        }
    };
    LabelRequirement::new(key, operator, values)
}

/// Writes requirements separated by ',' (both selectors' canonical form).
fn write_joined(f: &mut fmt::Formatter<'_>, requirements: &[impl fmt::Display]) -> fmt::Result {
    for (index, requirement) in requirements.iter().enumerate() {
        if index > 0 {
            f.write_str(",")?;
        }
        write!(f, "{requirement}")?;
    }
    Ok(())
}

impl fmt::Display for LabelSelector {
    /// The canonical form (upstream's String()): requirements by key, set
    /// values sorted, joined by ','.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, &self.requirements)
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_label_selector(s)
    }
}

/// Parses the `?labelSelector=` syntax; "" selects everything.
pub fn parse_label_selector(s: &str) -> Result<LabelSelector, SelectorError> {
    let mut parser = Parser {
        tokens: lex(s),
        position: 0,
    };
    parser
        .parse()
        .map(LabelSelector::from_requirements)
        .map_err(SelectorError::InvalidLabelSelector)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword_token(literal: &[u8]) -> Option<Token> {
    Some(match literal {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Tokenizes like upstream's byte-wise lexer: identifiers are any run of
/// other bytes, so `a/b.c` or even `ü` are single identifiers left for
/// key/value validation to judge. Upstream reads a NUL byte as its
/// end-of-input marker: a NUL right after a token is swallowed, and one
/// where a token should start ends the input. That is mirrored so both
/// servers accept the same strings.
fn lex(input: &str) -> Vec<(Token, String)> {
    let bytes = input.as_bytes();
    let at = |position: usize| bytes.get(position).copied().unwrap_or(0);
    let text = |start: usize, end: usize| String::from_utf8_lossy(&bytes[start..end]).into_owned();
    let mut tokens = Vec::new();
    let mut position = 0;
    loop {
        while is_whitespace(at(position)) {
            position += 1;
        }
        let first = at(position);
        if first == 0 {
            tokens.push((Token::EndOfString, String::new()));
            return tokens;
        }
        let start = position;
        if is_special_symbol(first) {
            // Longest run of symbols that still spells an operator, so "!="
            // is one token but "=(" is two.
            let mut best = (Token::Identifier, start);
            while is_special_symbol(at(position)) {
                match keyword_token(&bytes[start..=position]) {
                    Some(token) => best = (token, position + 1),
                    None => break,
                }
                position += 1;
            }
            // Every single symbol is a token, so `best` always advanced.
            position = best.1.max(start + 1);
            tokens.push((best.0, text(start, position)));
        } else {
            while at(position) != 0
                && !is_special_symbol(at(position))
                && !is_whitespace(at(position))
            {
                position += 1;
            }
            let literal = &bytes[start..position];
            let token = match keyword_token(literal) {
                Some(keyword @ (Token::In | Token::NotIn)) => keyword,
                _ => Token::Identifier,
            };
            tokens.push((token, text(start, position)));
        }
        if bytes.get(position) == Some(&0) {
            position += 1;
        }
    }
}

/// Whether `in`/`notin` are operators (after a key) or plain words (where
/// values or keys are expected, so `in in (in)` parses).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    tokens: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn lookahead(&self, context: Context) -> (Token, String) {
        let (token, literal) = self
            .tokens
            .get(self.position)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        let token = match token {
            Token::In | Token::NotIn if context == Context::Values => Token::Identifier,
            other => other,
        };
        (token, literal)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.lookahead(context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<LabelRequirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    let (after, after_literal) = self.consume(Context::Values);
                    match after {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, next_literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{next_literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{after_literal}', expected: ',' or 'end of string'"
                            ));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<LabelRequirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(unary) = inferred {
            return LabelRequirement::new(key, unary, Vec::new());
        }
        let operator = self.parse_operator()?;
        let mut values = match operator {
            LabelOperator::In | LabelOperator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        // Upstream collects values in a set and lists it sorted.
        values.sort_unstable();
        values.dedup();
        LabelRequirement::new(key, operator, values)
    }

    /// Reads `[!]key`; a key followed by ',' or the end means Exists.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<LabelOperator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(LabelOperator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let problems = is_qualified_name(&literal);
        if !problems.is_empty() {
            // Upstream validates the key here against a nil field path,
            // which Go prints as "<nil>".
            return Err(
                FieldError::invalid("<nil>", literal.as_str(), problems.join("; ")).to_string(),
            );
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma) && operator.is_none() {
            operator = Some(LabelOperator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<LabelOperator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        match token {
            Token::In => Ok(LabelOperator::In),
            Token::Equals => Ok(LabelOperator::Equals),
            Token::DoubleEquals => Ok(LabelOperator::DoubleEquals),
            Token::GreaterThan => Ok(LabelOperator::GreaterThan),
            Token::LessThan => Ok(LabelOperator::LessThan),
            Token::NotIn => Ok(LabelOperator::NotIn),
            Token::NotEquals => Ok(LabelOperator::NotEquals),
            _ => Err(format!(
                "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
            )),
        }
    }

    /// Reads `( v1, v2, ... )`; empty slots stand for the empty value.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (closing, _) = self.consume(Context::Values);
                if closing != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.push(literal);
                    let (next, next_literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{next_literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    // Leading, doubled and trailing commas each stand for "".
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        self.consume(Context::Values);
                        values.push(String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(vec![literal])
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

// ---------------------------------------------------------------------------
// Field selectors.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `=` or `==`; upstream does not distinguish them once parsed.
    Equals,
    NotEquals,
}

impl FieldOperator {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    /// The unescaped value.
    pub value: String,
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.field,
            self.operator.as_str(),
            escape_field_value(&self.value)
        )
    }
}

/// A parsed field selector: the AND of its terms, in upstream's order
/// (terms sorted as raw text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object is selected; `field` gives a field's value, and a
    /// field it does not know reads as "" as in upstream's fields.Set.
    pub fn matches(&self, field: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|requirement| {
            let actual = field(&requirement.field).unwrap_or_default();
            match requirement.operator {
                FieldOperator::Equals => actual == requirement.value,
                FieldOperator::NotEquals => actual != requirement.value,
            }
        })
    }

    /// Rejects the first term naming a field outside `allowed`, with the
    /// message upstream's field label conversion gives.
    pub fn check_supported(&self, allowed: &[&str]) -> Result<(), SelectorError> {
        match self
            .requirements
            .iter()
            .find(|r| !allowed.contains(&r.field.as_str()))
        {
            Some(unsupported) => Err(SelectorError::FieldLabelNotSupported(
                unsupported.field.clone(),
            )),
            None => Ok(()),
        }
    }

    /// The value an `=` term pins `field` to, if any.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_joined(f, &self.requirements)
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_field_selector(s)
    }
}

/// Escapes a field selector value so `,`, `=` and `\` survive a round trip.
pub fn escape_field_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn unescape_field_value(value: &str) -> Result<String, SelectorError> {
    let invalid = SelectorError::InvalidFieldSelector;
    let mut unescaped = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => unescaped.push(escaped),
                Some(other) => {
                    return Err(invalid(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    )));
                }
                None => {
                    return Err(invalid(
                        "invalid field selector: invalid escape sequence: \\".to_string(),
                    ));
                }
            },
            // Upstream prints the rune with %v, i.e. as its code point number.
            ',' | '=' => {
                return Err(invalid(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            other => unescaped.push(other),
        }
    }
    Ok(unescaped)
}

/// Splits on commas not preceded by an escaping backslash.
fn split_field_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaping = false;
    for (index, c) in selector.char_indices() {
        if escaping {
            escaping = false;
        } else if c == '\\' {
            escaping = true;
        } else if c == ',' {
            terms.push(&selector[start..index]);
            start = index + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at its first operator; "!=" and "==" win over "=" at the
/// same position.
fn split_field_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::Equals),
        ("=", FieldOperator::Equals),
    ];
    for (index, _) in term.char_indices() {
        let remaining = &term[index..];
        for (symbol, operator) in OPERATORS {
            if let Some(value) = remaining.strip_prefix(symbol) {
                return Some((&term[..index], operator, value));
            }
        }
    }
    None
}

/// Parses the `?fieldSelector=` syntax; "" selects everything. Field names
/// and values are taken verbatim (no whitespace trimming), as upstream.
pub fn parse_field_selector(s: &str) -> Result<FieldSelector, SelectorError> {
    if s.is_empty() {
        return Ok(FieldSelector::everything());
    }
    let mut terms = split_field_terms(s);
    terms.sort_unstable();
    let mut requirements = Vec::new();
    for term in terms.into_iter().filter(|term| !term.is_empty()) {
        let Some((field, operator, raw_value)) = split_field_term(term) else {
            return Err(SelectorError::InvalidFieldSelector(format!(
                "invalid selector: '{s}'; can't understand '{term}'"
            )));
        };
        let value = unescape_field_value(raw_value)?;
        // Upstream's identity transform turns a bare "=" into "everything".
        if field.is_empty() && value.is_empty() {
            continue;
        }
        requirements.push(FieldRequirement {
            field: field.to_string(),
            operator,
            value,
        });
    }
    Ok(FieldSelector { requirements })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    fn labels(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn label_error(s: &str) -> String {
        match parse_label_selector(s) {
            Ok(selector) => format!("unexpectedly parsed as {selector:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn label_selector_operators_match() {
        let set = labels(json!({"app": "web", "tier": "front", "replicas": "3", "odd": 7}));
        let table: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (db,web)", true),
            ("app in (db)", false),
            ("missing in (x)", false),
            ("app notin (db)", true),
            ("app notin (web,db)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("replicas>2", true),
            ("replicas>3", false),
            ("replicas<4", true),
            ("replicas<3", false),
            ("app>1", false),
            ("missing<10", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("missing=", false),
            ("app notin ()", true),
            // Non-string label values equal nothing but still exist.
            ("odd=7", false),
            ("odd!=7", true),
            ("odd", true),
            ("!odd", false),
            ("odd>1", false),
        ];
        for (input, expected) in table {
            let selector = parse_label_selector(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(selector.matches(Some(&set)), *expected, "{input}");
        }
    }

    #[test]
    fn label_selector_without_labels() {
        let table = [
            ("", true),
            ("a", false),
            ("!a", true),
            ("a!=b", true),
            ("a=b", false),
            ("a notin (b)", true),
        ];
        for (input, expected) in table {
            let selector = parse_label_selector(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(selector.matches(None), expected, "{input}");
            assert_eq!(selector.matches(Some(&Map::new())), expected, "{input}");
        }
    }

    #[test]
    fn label_selector_canonical_strings() {
        let table = [
            ("", ""),
            ("  ", ""),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x != a", "x!=a"),
            (" x\tin\n( c , a,b ) ", "x in (a,b,c)"),
            ("x notin (b,a,a)", "x notin (a,b)"),
            ("z,y,!x", "!x,y,z"),
            ("x>1,a<2", "a<2,x>1"),
            ("x in (,b)", "x in (,b)"),
            ("x in (a,,b)", "x in (,a,b)"),
            ("x in (a,)", "x in (,a)"),
            ("x in ()", "x in ()"),
            ("x=", "x="),
            ("x=,y", "x=,y"),
            ("in in (in,notin)", "in in (in,notin)"),
            ("example.com/app=web", "example.com/app=web"),
        ];
        for (input, expected) in table {
            let selector = parse_label_selector(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(selector.to_string(), expected, "{input}");
            let reparsed =
                parse_label_selector(expected).unwrap_or_else(|e| panic!("{expected}: {e}"));
            assert_eq!(reparsed, selector, "round trip of {input}");
        }
    }

    #[test]
    fn label_selector_structure() {
        let selector = parse_label_selector("b in (y,x),a").unwrap_or_default();
        let keys: Vec<&str> = selector
            .requirements()
            .iter()
            .map(LabelRequirement::key)
            .collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(selector.requirements()[0].operator(), LabelOperator::Exists);
        assert_eq!(selector.requirements()[1].operator(), LabelOperator::In);
        assert_eq!(selector.requirements()[1].values(), ["x", "y"]);
        assert!(parse_label_selector("").is_ok_and(|s| s.is_everything()));
        assert!(!selector.is_everything());
        assert_eq!(
            parse_label_selector("a=b,c in (d)")
                .ok()
                .and_then(|s| s.requires_exact_match("a").map(String::from)),
            Some("b".into())
        );
        assert_eq!(
            parse_label_selector("c in (d,e)")
                .ok()
                .and_then(|s| s.requires_exact_match("c").map(String::from)),
            None
        );
        assert_eq!(
            "a=b".parse::<LabelSelector>().map(|s| s.to_string()),
            Ok("a=b".to_string())
        );
    }

    #[test]
    fn label_selector_syntax_errors() {
        let table = [
            ("x=a b", "found 'b', expected: ',' or 'end of string'"),
            (
                ",a",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            ("a,", "found '', expected: identifier after ','"),
            ("a,,b", "found ',', expected: identifier after ','"),
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "a in b",
                "unable to parse requirement: found 'b' expected: '('",
            ),
            (
                "a in (b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "a in (b c)",
                "unable to parse requirement: found 'c', expected: ',' or ')'",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "a in (b,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            (
                "a in",
                "unable to parse requirement: found '' expected: '('",
            ),
            (
                "a==(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "a!!b",
                "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "a>b",
                "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            (
                "a>",
                "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (input, expected) in table {
            assert_eq!(label_error(input), expected, "{input}");
        }
    }

    #[test]
    fn label_selector_validation_errors() {
        let long_value = "v".repeat(64);
        let table = [
            ("-bad=x".to_string(), format!("unable to parse requirement: <nil>: Invalid value: \"-bad\": {NAME_PART_MSG}")),
            (
                "a/b/c".to_string(),
                "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string(),
            ),
            (
                "/x".to_string(),
                "unable to parse requirement: <nil>: Invalid value: \"/x\": prefix part must be non-empty".to_string(),
            ),
            ("app=b@d".to_string(), format!("unable to parse requirement: values[0][app]: Invalid value: \"b@d\": {LABEL_VALUE_MSG}")),
            (
                format!("app={long_value}"),
                format!("unable to parse requirement: values[0][app]: Invalid value: \"{long_value}\": must be no more than 63 bytes"),
            ),
            (
                "app in (ok,-x)".to_string(),
                format!("unable to parse requirement: values[0][app]: Invalid value: \"-x\": {LABEL_VALUE_MSG}"),
            ),
            (
                "a<-1".to_string(),
                format!("unable to parse requirement: values[0][a]: Invalid value: \"-1\": {LABEL_VALUE_MSG}"),
            ),
            (
                "a=\"q\"".to_string(),
                format!("unable to parse requirement: values[0][a]: Invalid value: \"\\\"q\\\"\": {LABEL_VALUE_MSG}"),
            ),
        ];
        for (input, expected) in table {
            assert_eq!(label_error(&input), expected, "{input}");
        }
    }

    #[test]
    fn label_selector_never_panics_on_odd_input() {
        let inputs = [
            "(",
            ")",
            "!!",
            "!=",
            "a in ((",
            "a notin ,",
            "ü=ö",
            "a=\u{0}b",
            "\u{0}",
            ",,,",
            "a in (,,)",
            "a<=1",
            "a>=1",
            "a=b=c",
            "!(",
            "a ! b",
            "a in (b))",
            "a=(b)",
            "😀",
            "a\\,b",
        ];
        for input in inputs {
            let _ = parse_label_selector(input).map(|s| s.to_string());
        }
        // NUL handling follows upstream's lexer byte for byte.
        assert_eq!(
            parse_label_selector("a=b \u{0}junk ((").map(|s| s.to_string()),
            Ok("a=b".to_string())
        );
        assert_eq!(
            parse_label_selector("a=\u{0}b").map(|s| s.to_string()),
            Ok("a=b".to_string())
        );
        assert_eq!(
            label_error("a=b\u{0}junk"),
            "found 'junk', expected: ',' or 'end of string'"
        );
        // Two empty slots in a row then ')' is an error upstream too.
        assert_eq!(
            label_error("a in (,,)"),
            "unable to parse requirement: found ')', expected: ',', or identifier"
        );
    }

    #[test]
    fn label_selector_from_json() {
        let selector = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "api"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
            ],
        }));
        let selector = selector.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            selector.to_string(),
            "app=web,!canary,env notin (prod),tier in (api,front),zone"
        );
        assert!(selector.matches(Some(&labels(
            json!({"app": "web", "tier": "api", "zone": "a"})
        ))));
        assert!(!selector.matches(Some(&labels(
            json!({"app": "web", "tier": "api", "zone": "a", "canary": "1"})
        ))));
        assert!(!selector.matches(Some(&labels(
            json!({"app": "web", "tier": "api", "zone": "a", "env": "prod"})
        ))));
        assert!(!selector.matches(Some(&labels(
            json!({"app": "web", "tier": "db", "zone": "a"})
        ))));

        for empty in [
            json!({}),
            json!({"matchLabels": {}, "matchExpressions": []}),
            json!({"matchLabels": null}),
        ] {
            let selector =
                LabelSelector::from_label_selector_json(&empty).unwrap_or_else(|e| panic!("{e}"));
            assert!(selector.is_everything(), "{empty}");
            assert!(selector.matches(None));
        }

        let nothing = LabelSelector::from_label_selector_json(&Value::Null).unwrap_or_default();
        assert!(nothing.is_nothing());
        assert!(!nothing.is_everything());
        assert!(!nothing.matches(Some(&labels(json!({"a": "b"})))));
        assert!(!nothing.matches(None));
        assert_eq!(nothing.to_string(), "");
    }

    #[test]
    fn label_selector_json_errors() {
        let table = [
            (json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}), "\"Foo\" is not a valid label selector operator".to_string()),
            (json!({"matchExpressions": [{"key": "a"}]}), "\"\" is not a valid label selector operator".to_string()),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty".to_string(),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist".to_string(),
            ),
            (json!({"matchLabels": {"-a": "b"}}), format!("key: Invalid value: \"-a\": {NAME_PART_MSG}")),
            (json!({"matchLabels": {"a": "b c"}}), format!("values[0][a]: Invalid value: \"b c\": {LABEL_VALUE_MSG}")),
            (
                json!({"matchExpressions": [{"key": "-a", "operator": "NotIn", "values": ["b c"]}]}),
                format!("[key: Invalid value: \"-a\": {NAME_PART_MSG}, values[0][-a]: Invalid value: \"b c\": {LABEL_VALUE_MSG}]"),
            ),
            (json!({"matchLabels": {"a": 1}}), "matchLabels[a] must be a string".to_string()),
            (json!({"matchLabels": []}), "matchLabels must be an object".to_string()),
            (json!({"matchExpressions": {}}), "matchExpressions must be a list".to_string()),
            (json!({"matchExpressions": [1]}), "matchExpressions[0] must be an object".to_string()),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
                "matchExpressions[0].values must be a list of strings".to_string(),
            ),
            (json!("a=b"), "label selector must be an object".to_string()),
        ];
        for (input, expected) in table {
            let result = LabelSelector::from_label_selector_json(&input);
            assert_eq!(
                result,
                Err(SelectorError::InvalidLabelSelector(expected)),
                "{input}"
            );
        }
    }

    #[test]
    fn new_requirement_rejects_bad_arity() {
        let table = [
            (
                LabelOperator::Equals,
                vec![],
                "values: Invalid value: null: exact-match compatibility requires one single value",
            ),
            (
                LabelOperator::GreaterThan,
                vec!["1".to_string(), "2".to_string()],
                "values: Invalid value: [\"1\",\"2\"]: for 'Gt', 'Lt' operators, exactly one value is required",
            ),
        ];
        for (operator, values, expected) in table {
            assert_eq!(
                LabelRequirement::new("a".into(), operator, values),
                Err(expected.to_string()),
                "{operator:?}"
            );
        }
    }

    fn field_source(name: &str) -> Option<String> {
        match name {
            "metadata.name" => Some("web-1".into()),
            "metadata.namespace" => Some("default".into()),
            "spec.nodeName" => Some(String::new()),
            "status.phase" => Some("a,b=c\\d".into()),
            _ => None,
        }
    }

    #[test]
    fn field_selector_matching() {
        let table = [
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name==web-1", true),
            ("metadata.name=web-2", false),
            ("metadata.name!=web-2", true),
            ("metadata.name!=web-1", false),
            ("metadata.name=web-1,metadata.namespace=default", true),
            ("metadata.name=web-1,metadata.namespace!=default", false),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("unknown.field=", true),
            ("unknown.field!=", false),
            ("status.phase=a\\,b\\=c\\\\d", true),
            ("=", true),
        ];
        for (input, expected) in table {
            let selector = parse_field_selector(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(selector.matches(field_source), expected, "{input}");
        }
    }

    #[test]
    fn field_selector_structure_and_round_trip() {
        let selector =
            parse_field_selector("z=1,metadata.name==a\\,b,spec.x!=y").unwrap_or_default();
        let listed: Vec<(&str, &str, &str)> = selector
            .requirements()
            .iter()
            .map(|r| (r.field.as_str(), r.operator.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("metadata.name", "=", "a,b"),
                ("spec.x", "!=", "y"),
                ("z", "=", "1")
            ]
        );
        assert_eq!(selector.to_string(), "metadata.name=a\\,b,spec.x!=y,z=1");
        assert_eq!(
            parse_field_selector(&selector.to_string()),
            Ok(selector.clone())
        );
        assert_eq!(selector.requires_exact_match("metadata.name"), Some("a,b"));
        assert_eq!(selector.requires_exact_match("spec.x"), None);
        assert!(!selector.is_everything());
        for everything in ["", ",", "=", ",,="] {
            assert!(
                parse_field_selector(everything).is_ok_and(|s| s.is_everything()),
                "{everything:?}"
            );
        }
        // Names and values are not trimmed.
        let spaced = parse_field_selector(" a = b ").unwrap_or_default();
        assert_eq!(spaced.requirements()[0].field, " a ");
        assert_eq!(spaced.requirements()[0].value, " b ");
        assert_eq!(escape_field_value("a\\b,c=d"), "a\\\\b\\,c\\=d");
        assert_eq!(
            "a=b".parse::<FieldSelector>().map(|s| s.to_string()),
            Ok("a=b".to_string())
        );
    }

    #[test]
    fn field_selector_errors() {
        let table = [
            (
                "metadata.name",
                "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
            ),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a=b\\x",
                "invalid field selector: invalid escape sequence: \\x",
            ),
            (
                "a=b\\",
                "invalid field selector: invalid escape sequence: \\",
            ),
            (
                "a=\\ü",
                "invalid field selector: invalid escape sequence: \\ü",
            ),
        ];
        for (input, expected) in table {
            let result = parse_field_selector(input).map(|s| s.to_string());
            assert_eq!(
                result,
                Err(SelectorError::InvalidFieldSelector(expected.to_string())),
                "{input}"
            );
            assert_eq!(
                parse_field_selector(input).err().map(|e| e.to_string()),
                Some(expected.to_string())
            );
        }
    }

    #[test]
    fn field_selector_supported_fields() {
        let allowed = ["metadata.name", "metadata.namespace"];
        let ok = parse_field_selector("metadata.name=a,metadata.namespace!=b").unwrap_or_default();
        assert_eq!(ok.check_supported(&allowed), Ok(()));
        let bad = parse_field_selector("metadata.name=a,spec.nodeName=n").unwrap_or_default();
        let error = bad.check_supported(&allowed);
        assert_eq!(
            error,
            Err(SelectorError::FieldLabelNotSupported(
                "spec.nodeName".into()
            ))
        );
        assert_eq!(
            error.err().map(|e| e.to_string()),
            Some("field label not supported: spec.nodeName".to_string())
        );
        assert_eq!(FieldSelector::everything().check_supported(&[]), Ok(()));
    }
}
