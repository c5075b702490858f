//! Label and field selectors, parsed and evaluated as kube-apiserver does
//! (`k8s.io/apimachinery/pkg/labels` and `k8s.io/apimachinery/pkg/fields`).
//!
//! - [`LabelSelector`]: the `labelSelector` query parameter (`k=v`, `k!=v`, `k in (a,b)`,
//!   `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`, comma-separated and ANDed) and the
//!   `metav1.LabelSelector` object (`matchLabels` / `matchExpressions`) of workloads.
//! - [`FieldSelector`]: the `fieldSelector` query parameter (`f=v`, `f==v`, `f!=v`,
//!   comma-separated and ANDed, with `\,` `\=` `\\` escapes in values).
//!
//! Parse failures are 400 BadRequest errors whose messages follow apimachinery's.

// `ApiError` is large; the crate returns it unboxed by design (see status.rs).

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::status::ApiError;
use crate::validation::{is_label_value, is_qualified_name};

// ============================================================================================
// Label selectors
// ============================================================================================

/// The operator of one label requirement (`selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelOperator {
    /// `k=v`
    Equals,
    /// `k==v` (same meaning as `=`, kept for printing)
    DoubleEquals,
    /// `k!=v`: also matches objects without `k`.
    NotEquals,
    /// `k in (a,b)`
    In,
    /// `k notin (a,b)`: also matches objects without `k`.
    NotIn,
    /// `k`
    Exists,
    /// `!k`
    DoesNotExist,
    /// `k>n`: the label value, read as an integer, is greater than `n`.
    GreaterThan,
    /// `k<n`: the label value, read as an integer, is less than `n`.
    LessThan,
}

/// One ANDed term of a [`LabelSelector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    key: String,
    operator: LabelOperator,
    values: Vec<String>,
}

/// Go's `%q` for messages: `"..."` with Go escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `[]string`, as `field.Invalid` prints a values list.
fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_string();
    }
    let items: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// `utilerrors.NewAggregate(...).Error()`: one message as is, several deduplicated in `[..]`.
fn aggregate(errs: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for err in errs {
        if !seen.contains(&err) {
            seen.push(err);
        }
    }
    if seen.len() == 1 {
        seen.remove(0)
    } else {
        format!("[{}]", seen.join(", "))
    }
}

impl LabelRequirement {
    /// `labels.NewRequirement`: validates the key, the values and their count for `operator`.
    pub fn new(
        key: impl Into<String>,
        operator: LabelOperator,
        values: Vec<String>,
    ) -> Result<Self, ApiError> {
        Self::build(key.into(), operator, values).map_err(ApiError::bad_request)
    }

    fn build(key: String, operator: LabelOperator, values: Vec<String>) -> Result<Self, String> {
        let mut errs = Vec::new();
        let key_errs = is_qualified_name(&key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "key: Invalid value: {}: {}",
                go_quote(&key),
                key_errs.join("; ")
            ));
        }
        let invalid_values = |detail: &str| {
            format!(
                "values: Invalid value: {}: {detail}",
                go_string_slice(&values)
            )
        };
        match operator {
            LabelOperator::In | LabelOperator::NotIn => {
                if values.is_empty() {
                    errs.push(invalid_values(
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::NotEquals => {
                if values.len() != 1 {
                    errs.push(invalid_values(
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            LabelOperator::Exists | LabelOperator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(invalid_values(
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid_values(
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, value) in values.iter().enumerate() {
                    if value.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            go_quote(value)
                        ));
                    }
                }
            }
        }
        for (i, value) in values.iter().enumerate() {
            let value_errs = is_label_value(value);
            if !value_errs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(value),
                    value_errs.join("; ")
                ));
            }
        }
        if errs.is_empty() {
            Ok(LabelRequirement {
                key,
                operator,
                values,
            })
        } else {
            Err(aggregate(errs))
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> LabelOperator {
        self.operator
    }

    /// The values: one for `=`/`==`/`!=`/`>`/`<`, at least one for `in`/`notin` (sorted and
    /// deduplicated when parsed from a string), none for exists/does-not-exist.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a label set whose value for this requirement's key is `value` (`None`: no such
    /// label) satisfies it (`Requirement.Matches`).
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            LabelOperator::In | LabelOperator::Equals | LabelOperator::DoubleEquals => {
                value.is_some_and(has)
            }
            LabelOperator::NotIn | LabelOperator::NotEquals => !value.is_some_and(has),
            LabelOperator::Exists => value.is_some(),
            LabelOperator::DoesNotExist => value.is_none(),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == LabelOperator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

impl fmt::Display for LabelRequirement {
    /// `Requirement.String()`: the canonical form (`!k`, `k`, `k=v`, `k in (a,b)`, ...).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == LabelOperator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            LabelOperator::Equals => "=",
            LabelOperator::DoubleEquals => "==",
            LabelOperator::NotEquals => "!=",
            LabelOperator::In => " in ",
            LabelOperator::NotIn => " notin ",
            LabelOperator::GreaterThan => ">",
            LabelOperator::LessThan => "<",
            LabelOperator::Exists | LabelOperator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let set = matches!(self.operator, LabelOperator::In | LabelOperator::NotIn);
        if set {
            f.write_str("(")?;
        }
        if self.values.len() == 1 {
            f.write_str(&self.values[0])?;
        } else {
            let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            f.write_str(&sorted.join(","))?;
        }
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: requirements ANDed together, sorted by key.
///
/// `LabelSelector::default()` is "everything" (matches every object); [`LabelSelector::nothing`]
/// (what a null `metav1.LabelSelector` means) matches no object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
    nothing: bool,
}

impl LabelSelector {
    /// Matches every object.
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// Matches no object (`labels.Nothing()`).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the `labelSelector` query parameter (`labels.Parse`). An empty or all-whitespace
    /// string selects everything.
    pub fn parse(selector: &str) -> Result<LabelSelector, ApiError> {
        let mut requirements = Parser::new(selector)
            .parse()
            .map_err(ApiError::bad_request)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` object (`metav1.LabelSelectorAsSelector`): `null`
    /// selects nothing, `{}` (no `matchLabels`, no `matchExpressions`) selects everything.
    /// Expression operators: `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub fn from_label_selector_json(selector: &Value) -> Result<LabelSelector, ApiError> {
        let object = match selector {
            Value::Null => return Ok(LabelSelector::nothing()),
            Value::Object(object) => object,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid label selector: must be an object",
                ));
            }
        };
        let empty = Map::new();
        let match_labels = match object.get("matchLabels") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(labels)) => labels,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid label selector: matchLabels must be an object",
                ));
            }
        };
        let no_expressions = Vec::new();
        let match_expressions = match object.get("matchExpressions") {
            None | Some(Value::Null) => &no_expressions,
            Some(Value::Array(expressions)) => expressions,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid label selector: matchExpressions must be an array",
                ));
            }
        };
        if match_labels.is_empty() && match_expressions.is_empty() {
            return Ok(LabelSelector::everything());
        }

        let mut requirements = Vec::with_capacity(match_labels.len() + match_expressions.len());
        for (key, value) in match_labels {
            let Some(value) = value.as_str() else {
                return Err(ApiError::bad_request(format!(
                    "invalid label selector: matchLabels[{key}] must be a string"
                )));
            };
            requirements.push(LabelRequirement::new(
                key.clone(),
                LabelOperator::Equals,
                vec![value.to_string()],
            )?);
        }
        for (i, expression) in match_expressions.iter().enumerate() {
            let malformed = |what: &str| {
                ApiError::bad_request(format!(
                    "invalid label selector: matchExpressions[{i}]{what}"
                ))
            };
            let Value::Object(expression) = expression else {
                return Err(malformed(" must be an object"));
            };
            let string_field = |name: &str| match expression.get(name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(malformed(&format!(".{name} must be a string"))),
            };
            let key = string_field("key")?;
            let operator = string_field("operator")?;
            let values = match expression.get("values") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(values)) => values
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| malformed(".values must be strings"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err(malformed(".values must be an array")),
            };
            let operator = match operator.as_str() {
                "In" => LabelOperator::In,
                "NotIn" => LabelOperator::NotIn,
                "Exists" => LabelOperator::Exists,
                "DoesNotExist" => LabelOperator::DoesNotExist,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "{} is not a valid label selector operator",
                        go_quote(other)
                    )));
                }
            };
            requirements.push(LabelRequirement::new(key, operator, values)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// The ANDed requirements, sorted by key.
    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// Selects everything (no requirements). False for [`LabelSelector::nothing`].
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether this is [`LabelSelector::nothing`].
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// Evaluates the selector against a label set given as a lookup from key to value
    /// (`None`: the object has no such label).
    pub fn matches_with<'v, F>(&self, lookup: F) -> bool
    where
        F: Fn(&str) -> Option<&'v str>,
    {
        !self.nothing
            && self
                .requirements
                .iter()
                .all(|r| r.matches_value(lookup(&r.key)))
    }

    /// Evaluates the selector against `metadata.labels` as stored (a JSON object of strings).
    /// A non-string value counts as an absent label.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.matches_with(|key| labels.get(key).and_then(Value::as_str))
    }

    /// Evaluates the selector against a whole object's `metadata.labels` (absent: no labels).
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.matches_with(|key| labels.and_then(|l| l.get(key)).and_then(Value::as_str))
    }

    /// `RequiresExactMatch`: the value `key` must have when the first requirement on `key` is
    /// `=`, `==` or a one-value `in` (for indexing); `None` otherwise.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::In, [value]) => {
                Some(value)
            }
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form: requirements sorted by key, joined by `,`. Both everything
    /// and nothing print as the empty string (as in apimachinery).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

// ---- the label selector lexer and parser (a transcription of labels/selector.go) ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
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

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn symbol_token(symbol: &str) -> Option<Token> {
    Some(match symbol {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn lex(input: &str) -> Vec<(Token, String)> {
    let bytes = input.as_bytes();
    let mut pos = 0;
    let mut items = Vec::new();
    loop {
        while pos < bytes.len() && is_whitespace(bytes[pos]) {
            pos += 1;
        }
        if pos >= bytes.len() {
            items.push((Token::EndOfString, String::new()));
            return items;
        }
        if is_special_symbol(bytes[pos]) {
            // Longest special symbol that is a token.
            let start = pos;
            let mut last: Option<(Token, usize)> = None;
            while pos < bytes.len() && is_special_symbol(bytes[pos]) {
                pos += 1;
                if let Some(token) = symbol_token(&input[start..pos]) {
                    last = Some((token, pos));
                } else if last.is_some() {
                    pos -= 1;
                    break;
                }
            }
            match last {
                Some((token, end)) => {
                    pos = end;
                    items.push((token, input[start..end].to_string()));
                }
                None => {
                    items.push((
                        Token::Error,
                        format!("error expected: keyword found '{}'", &input[start..pos]),
                    ));
                    return items;
                }
            }
        } else {
            let start = pos;
            while pos < bytes.len() && !is_whitespace(bytes[pos]) && !is_special_symbol(bytes[pos])
            {
                pos += 1;
            }
            let literal = &input[start..pos];
            let token = match literal {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier,
            };
            items.push((token, literal.to_string()));
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// `in` and `notin` are operators.
    KeyAndOperator,
    /// `in` and `notin` are ordinary identifiers (keys and values).
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn new(input: &str) -> Self {
        Parser {
            items: lex(input),
            position: 0,
        }
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        let (token, literal) = &self.items[self.position.min(self.items.len() - 1)];
        let token = match (context, token) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => *token,
        };
        (token, literal.clone())
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
                    let (token, literal) = self.consume(Context::Values);
                    match token {
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
                                "found '{literal}', expected: ',' or 'end of string'"
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
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(operator) = operator {
            return LabelRequirement::build(key, operator, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            LabelOperator::In | LabelOperator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        LabelRequirement::build(key, operator, values.into_iter().collect())
    }

    /// The key, and the operator when it is unary (`!k`, or `k` followed by `,` or the end).
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
        let errs = is_qualified_name(&literal);
        if !errs.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_quote(&literal),
                errs.join("; ")
            ));
        }
        let (next, _) = self.lookahead(Context::Values);
        if (next == Token::EndOfString || next == Token::Comma) && operator.is_none() {
            operator = Some(LabelOperator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<LabelOperator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => LabelOperator::In,
            Token::Equals => LabelOperator::Equals,
            Token::DoubleEquals => LabelOperator::DoubleEquals,
            Token::GreaterThan => LabelOperator::GreaterThan,
            Token::LessThan => LabelOperator::LessThan,
            Token::NotIn => LabelOperator::NotIn,
            Token::NotEquals => LabelOperator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    /// `(a,b,...)`; `()` is the set holding the empty string.
    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (token, _) = self.consume(Context::Values);
                if token != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    /// The comma-separated list inside `( )`; an empty item (`(,a)`, `(a,)`, `(a,,b)`) is the
    /// empty string.
    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.insert(literal);
                    let (next, next_literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => {
                            return Err(format!("found '{next_literal}', expected: ',' or ')'"));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.insert(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        self.consume(Context::Values);
                        values.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>`, `<`; nothing (`k=`) is the empty string.
    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, _) = self.lookahead(Context::Values);
        if token == Token::EndOfString || token == Token::Comma {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(BTreeSet::from([literal]))
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

// ============================================================================================
// Field selectors
// ============================================================================================

/// The operator of one field requirement. `==` parses as [`FieldOperator::Equals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    Equals,
    NotEquals,
}

/// One ANDed term of a [`FieldSelector`]; `value` is unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub op: FieldOperator,
    pub value: String,
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// `fields.EscapeValue`: escapes `\`, `,` and `=` so the value can be put in a selector.
pub fn escape_field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `fields.UnescapeValue`: undoes `\\`, `\,` and `\=`; any other escape, a trailing `\`, or an
/// unescaped `,` or `=` is an error.
pub fn unescape_field_value(value: &str) -> Result<String, ApiError> {
    let mut out = String::with_capacity(value.len());
    let mut in_slash = false;
    for c in value.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    )));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector: unescaped character in value: {c}"
                )));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(ApiError::bad_request(
            "invalid field selector: invalid escape sequence: \\",
        ));
    }
    Ok(out)
}

/// A parsed field selector: `=`/`!=` requirements ANDed together. Which fields a resource
/// supports is checked separately, by [`FieldSelector::validate_fields`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// `splitTerms`: split on commas not preceded by a backslash escape.
fn split_field_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// `splitTerm`: at the first position where `!=`, `==` or `=` begins.
fn split_field_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (symbol, op) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(symbol) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

impl FieldSelector {
    /// Matches every object.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses the `fieldSelector` query parameter (`fields.ParseSelector`). Terms are sorted
    /// (as kube sorts them) and empty terms skipped; whitespace is not trimmed.
    pub fn parse(selector: &str) -> Result<FieldSelector, ApiError> {
        let mut terms = split_field_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, op, value)) = split_field_term(term) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{selector}'; can't understand '{term}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                op,
                value: unescape_field_value(value)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// The ANDed requirements, in kube's (sorted-term) order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Evaluates the selector; `lookup` gives an object's value for a field, and a field it
    /// does not know compares as the empty string (as `fields.Set.Get` does).
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = lookup(&r.field).unwrap_or_default();
            match r.op {
                FieldOperator::Equals => actual == r.value,
                FieldOperator::NotEquals => actual != r.value,
            }
        })
    }

    /// [`FieldSelector::matches`] for a `lookup` that lends its values (no copy per field).
    pub fn matches_with<'v>(&self, lookup: impl Fn(&str) -> Option<&'v str>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = lookup(&r.field).unwrap_or_default();
            match r.op {
                FieldOperator::Equals => actual == r.value,
                FieldOperator::NotEquals => actual != r.value,
            }
        })
    }

    /// 400 `field label not supported: <field>` for the first requirement on a field that is
    /// not in `supported`, as kube-apiserver's field label conversion answers.
    pub fn validate_fields(&self, supported: &[&str]) -> Result<(), ApiError> {
        match self
            .requirements
            .iter()
            .find(|r| !supported.contains(&r.field.as_str()))
        {
            Some(r) => Err(ApiError::bad_request(format!(
                "field label not supported: {}",
                r.field
            ))),
            None => Ok(()),
        }
    }

    /// `RequiresExactMatch`: the value of the first `=` requirement on `field`, if any (for
    /// indexing, e.g. watchers by `metadata.name` or `spec.nodeName`).
    pub fn single_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.op == FieldOperator::Equals && r.field == field)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical form: `f=v` / `f!=v` terms with escaped values, joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Reason;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    fn parse(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn parse_err(s: &str) -> String {
        let err = LabelSelector::parse(s).expect_err(s);
        assert_eq!(err.code, 400, "{s}");
        assert_eq!(err.reason, Reason::BadRequest, "{s}");
        err.message
    }

    // ---- label selector parsing ----

    #[test]
    fn parses_good_selectors_to_canonical_form() {
        for (input, canonical) in [
            ("", ""),
            ("   ", ""),
            ("x=a,y=b,z=c", "x=a,y=b,z=c"),
            ("z=c,x=a,y=b", "x=a,y=b,z=c"),
            ("x!=y", "x!=y"),
            ("x=,z= ", "x=,z="),
            ("x= ,z= ", "x=,z="),
            ("x==a", "x==a"),
            ("!x", "!x"),
            ("! x", "!x"),
            ("x", "x"),
            ("x>1", "x>1"),
            ("x>1,z<5", "x>1,z<5"),
            ("x in (a)", "x in (a)"),
            ("x in (b,a)", "x in (a,b)"),
            ("x in(b, a ,a)", "x in (a,b)"),
            ("x notin (a,b)", "x notin (a,b)"),
            ("x in ()", "x in ()"),
            ("x in (,a)", "x in (,a)"),
            ("x in (a,)", "x in (,a)"),
            ("x in (a,,b)", "x in (,a,b)"),
            (
                "  app = web ,  tier  in  ( fe , be )  , !canary , env ",
                "app=web,!canary,env,tier in (be,fe)",
            ),
            ("in=notin", "in=notin"),
            ("notin in (in,notin)", "notin in (in,notin)"),
            ("app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
            ("\tx\n=\r\ny", "x=y"),
        ] {
            assert_eq!(parse(input).to_string(), canonical, "{input:?}");
        }
    }

    #[test]
    fn parsed_requirements_expose_key_operator_values() {
        let s = parse("b in (y,x),a!=1,!c,d");
        let r = s.requirements();
        assert_eq!(r.len(), 4);
        // Sorted by key: a, b, c, d.
        let keys: Vec<&str> = r.iter().map(LabelRequirement::key).collect();
        assert_eq!(keys, ["a", "b", "c", "d"]);
        assert_eq!(r[0].operator(), LabelOperator::NotEquals);
        assert_eq!(r[0].values(), ["1"]);
        assert_eq!(r[1].operator(), LabelOperator::In);
        assert_eq!(r[1].values(), ["x", "y"]);
        assert_eq!(r[2].operator(), LabelOperator::DoesNotExist);
        assert!(r[2].values().is_empty());
        assert_eq!(r[3].operator(), LabelOperator::Exists);
        assert!(!s.is_empty());
        assert!(parse("").is_empty());
        assert!(parse(" ").requirements().is_empty());
    }

    #[test]
    fn rejects_bad_selectors_with_apimachinery_messages() {
        // `|` is not special: `a||y` lexes as one (invalid) value.
        assert!(
            parse_err("x=a||y=b")
                .starts_with("unable to parse requirement: values[0][x]: Invalid value: \"a||y\"")
        );
        assert_eq!(
            parse_err("x=a b"),
            "found 'b', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("x==a==b"),
            "found '==', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("!x=a"),
            "found '=', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("x=a,"),
            "found '', expected: identifier after ','"
        );
        assert_eq!(
            parse_err("x=a,,y=b"),
            "found ',', expected: identifier after ','"
        );
        assert_eq!(
            parse_err(",x=a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            parse_err("x in a"),
            "unable to parse requirement: found 'a' expected: '('"
        );
        assert_eq!(
            parse_err("x in (a"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("x in (a b)"),
            "unable to parse requirement: found 'b', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("x in (="),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            parse_err("x in (a,="),
            "unable to parse requirement: found '=', expected: ',', or identifier"
        );
        assert_eq!(
            parse_err("x=(a)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            parse_err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            parse_err("!!x"),
            "unable to parse requirement: found '!', expected: identifier"
        );
        assert_eq!(
            parse_err("x<a"),
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert_eq!(
            parse_err("a\tb"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
    }

    #[test]
    fn validates_keys_and_values() {
        assert_eq!(
            parse_err("a/b/c=x"),
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        );
        assert!(parse_err("-a=x").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of"
        ));
        assert!(
            parse_err(&format!("{}=x", "k".repeat(64)))
                .contains("name part must be no more than 63 characters")
        );
        assert!(parse_err("Bad.Prefix/a").contains("prefix part a lowercase RFC 1123 subdomain"));
        assert_eq!(
            parse_err("app=-web"),
            "unable to parse requirement: values[0][app]: Invalid value: \"-web\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert!(
            parse_err(&format!("app={}", "v".repeat(64)))
                .contains("must be no more than 63 characters")
        );
        // The index is into the sorted value set.
        assert!(
            parse_err("app in (b,a_)")
                .starts_with("unable to parse requirement: values[0][app]: Invalid value: \"a_\"")
        );
        // Several problems with one requirement are aggregated.
        assert_eq!(
            parse_err("x>-y"),
            "unable to parse requirement: [values[0]: Invalid value: \"-y\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][x]: Invalid value: \"-y\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')]"
        );
        // Non-ASCII is valid to lex but not as a key.
        assert!(parse_err("é=x").contains("Invalid value: \"é\""));
        // Valid edge cases.
        parse(&format!("{}={}", "k".repeat(63), "v".repeat(63)));
        parse("example.com/MyKey=My_Value.1");
    }

    // ---- label selector matching ----

    #[test]
    fn matches_like_apimachinery() {
        for (selector, set) in [
            ("", vec![("x", "y")]),
            ("x=y", vec![("x", "y")]),
            ("x==y", vec![("x", "y")]),
            ("x=y,z=w", vec![("x", "y"), ("z", "w")]),
            ("x!=y,z!=w", vec![("x", "z"), ("z", "a")]),
            ("notin=in", vec![("notin", "in")]),
            ("x", vec![("x", "z")]),
            ("!x", vec![("y", "z")]),
            ("x>1", vec![("x", "2")]),
            ("x<1", vec![("x", "0")]),
            ("x<1", vec![("x", "-5")]),
            ("x in (a,b)", vec![("x", "b")]),
            ("x notin (a,b)", vec![("x", "c")]),
            ("x=", vec![("x", "")]),
            ("x in ()", vec![("x", "")]),
            ("x", vec![("x", "")]),
        ] {
            assert!(parse(selector).matches(&labels(&set)), "{selector} {set:?}");
        }
        for (selector, set) in [
            ("x=z", vec![]),
            ("x=y", vec![("x", "z")]),
            ("x=y,z=w", vec![("x", "w"), ("z", "w")]),
            ("x!=y,z!=w", vec![("x", "z"), ("z", "w")]),
            ("x", vec![("y", "z")]),
            ("!x", vec![("x", "z")]),
            ("!x", vec![("x", "")]),
            ("x>1", vec![("x", "0")]),
            ("x>1", vec![("x", "1")]),
            ("x>1", vec![("x", "a")]),
            ("x>1", vec![]),
            ("x<1", vec![("x", "2")]),
            ("x in (a,b)", vec![("x", "c")]),
            ("x in (a,b)", vec![]),
            ("x notin (a,b)", vec![("x", "a")]),
            ("x=", vec![]),
        ] {
            assert!(
                !parse(selector).matches(&labels(&set)),
                "{selector} {set:?}"
            );
        }
    }

    #[test]
    fn negative_operators_match_objects_without_the_key() {
        let none = labels(&[]);
        assert!(parse("x!=y").matches(&none));
        assert!(parse("x notin (a,b)").matches(&none));
        assert!(parse("!x").matches(&none));
        assert!(!parse("x").matches(&none));
        assert!(!parse("x in (a)").matches(&none));
    }

    #[test]
    fn matches_objects_and_lookups() {
        let s = parse("app=web,!canary");
        assert!(s.matches_object(&json!({"metadata": {"labels": {"app": "web"}}})));
        assert!(!s.matches_object(&json!({"metadata": {"labels": {"app": "web", "canary": "1"}}})));
        assert!(!s.matches_object(&json!({"metadata": {}})));
        assert!(parse("!canary").matches_object(&json!({"metadata": {"name": "a"}})));
        assert!(parse("").matches_object(&json!({})));
        // A non-string label value counts as absent.
        assert!(!parse("app").matches_object(&json!({"metadata": {"labels": {"app": 1}}})));
        let map = std::collections::HashMap::from([("app".to_string(), "web".to_string())]);
        assert!(s.matches_with(|k| map.get(k).map(String::as_str)));
    }

    #[test]
    fn everything_and_nothing() {
        let all = LabelSelector::everything();
        assert!(all.is_empty() && !all.is_nothing());
        assert!(all.matches(&labels(&[])));
        let none = LabelSelector::nothing();
        assert!(!none.is_empty() && none.is_nothing());
        assert!(!none.matches(&labels(&[])));
        assert!(!none.matches(&labels(&[("a", "b")])));
        assert_eq!(none.to_string(), "");
        assert_eq!(LabelSelector::default(), all);
    }

    #[test]
    fn requires_exact_match() {
        let s = parse("a=1,b==2,c in (3),d in (4,5),e!=6,f");
        assert_eq!(s.requires_exact_match("a"), Some("1"));
        assert_eq!(s.requires_exact_match("b"), Some("2"));
        assert_eq!(s.requires_exact_match("c"), Some("3"));
        assert_eq!(s.requires_exact_match("d"), None);
        assert_eq!(s.requires_exact_match("e"), None);
        assert_eq!(s.requires_exact_match("f"), None);
        assert_eq!(s.requires_exact_match("z"), None);
    }

    #[test]
    fn requirement_constructor_validates() {
        let r =
            LabelRequirement::new("app", LabelOperator::In, vec!["b".into(), "a".into()]).unwrap();
        assert_eq!(r.to_string(), "app in (a,b)");
        assert!(r.matches_value(Some("a")));
        assert!(!r.matches_value(None));
        let err = LabelRequirement::new("app", LabelOperator::Equals, vec![]).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "values: Invalid value: []string(nil): exact-match compatibility requires one single value"
        );
        let err = LabelRequirement::new(
            "app",
            LabelOperator::GreaterThan,
            vec!["1".into(), "2".into()],
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "values: Invalid value: []string{\"1\", \"2\"}: for 'Gt', 'Lt' operators, exactly one value is required"
        );
    }

    // ---- metav1.LabelSelector ----

    #[test]
    fn from_json_null_is_nothing_and_empty_is_everything() {
        assert!(
            LabelSelector::from_label_selector_json(&Value::Null)
                .unwrap()
                .is_nothing()
        );
        for v in [
            json!({}),
            json!({"matchLabels": {}}),
            json!({"matchLabels": null, "matchExpressions": []}),
        ] {
            let s = LabelSelector::from_label_selector_json(&v).unwrap();
            assert!(s.is_empty(), "{v}");
            assert!(s.matches(&labels(&[("a", "b")])));
        }
    }

    #[test]
    fn from_json_builds_requirements() {
        let s = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"tier": "fe", "app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "track", "operator": "NotIn", "values": ["canary"]},
                {"key": "zone", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []},
            ],
        }))
        .unwrap();
        assert_eq!(
            s.to_string(),
            "app=web,env in (prod,staging),!legacy,tier=fe,track notin (canary),zone"
        );
        assert!(s.matches(&labels(&[
            ("app", "web"),
            ("tier", "fe"),
            ("env", "prod"),
            ("zone", "a"),
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "fe"),
            ("env", "prod"),
            ("zone", "a"),
            ("track", "canary"),
        ])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("zone", "a")])));
        assert_eq!(s.requires_exact_match("app"), Some("web"));
    }

    #[test]
    fn from_json_rejects_invalid() {
        let err = |v: Value| {
            let e = LabelSelector::from_label_selector_json(&v).unwrap_err();
            assert_eq!(e.code, 400);
            e.message
        };
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a"}]})),
            "\"\" is not a valid label selector operator"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "In"}]})),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})),
            "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"
        );
        assert!(
            err(json!({"matchLabels": {"a/b/c": "x"}}))
                .starts_with("key: Invalid value: \"a/b/c\": a qualified name")
        );
        assert!(
            err(json!({"matchLabels": {"app": "-x"}}))
                .starts_with("values[0][app]: Invalid value: \"-x\": a valid label")
        );
        assert!(
            err(json!({"matchExpressions": [{"key": "", "operator": "Exists"}]}))
                .starts_with("key: Invalid value: \"\": name part must be non-empty")
        );
        assert!(err(json!("app=web")).contains("must be an object"));
        assert!(err(json!({"matchLabels": ["a"]})).contains("matchLabels must be an object"));
        assert!(err(json!({"matchLabels": {"a": 1}})).contains("matchLabels[a] must be a string"));
        assert!(err(json!({"matchExpressions": {}})).contains("must be an array"));
        assert!(
            err(json!({"matchExpressions": ["a"]}))
                .contains("matchExpressions[0] must be an object")
        );
        assert!(
            err(json!({"matchExpressions": [{"key": 1, "operator": "Exists"}]}))
                .contains("matchExpressions[0].key must be a string")
        );
        assert!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}))
                .contains("matchExpressions[0].values must be strings")
        );
    }

    // ---- field selectors ----

    fn fields(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn field_err(s: &str) -> String {
        let err = FieldSelector::parse(s).expect_err(s);
        assert_eq!(err.code, 400);
        assert_eq!(err.reason, Reason::BadRequest);
        err.message
    }

    #[test]
    fn parses_field_selectors() {
        for (input, canonical) in [
            ("", ""),
            ("x=a", "x=a"),
            ("x==a", "x=a"),
            ("x!=a", "x!=a"),
            ("y=b,x=a", "x=a,y=b"),
            ("x=a,", "x=a"),
            (",,x=a", "x=a"),
            ("x=", "x="),
            (
                "metadata.name=web,spec.nodeName!=n1",
                "metadata.name=web,spec.nodeName!=n1",
            ),
            ("x=a\\,b", "x=a\\,b"),
            ("x=a\\=b\\\\c", "x=a\\=b\\\\c"),
            ("x=!a", "x=!a"),
        ] {
            assert_eq!(fields(input).to_string(), canonical, "{input:?}");
        }
        let s = fields("spec.nodeName!=n1,metadata.name==a\\,b");
        assert_eq!(
            s.requirements(),
            [
                FieldRequirement {
                    field: "metadata.name".into(),
                    op: FieldOperator::Equals,
                    value: "a,b".into()
                },
                FieldRequirement {
                    field: "spec.nodeName".into(),
                    op: FieldOperator::NotEquals,
                    value: "n1".into()
                },
            ]
        );
        assert!(fields("").is_empty());
        assert!(fields(",").is_empty());
        assert!(!s.is_empty());
        // Whitespace is kept, as kube keeps it.
        assert_eq!(fields("a = b").requirements()[0].field, "a ");
        assert_eq!(fields("a = b").requirements()[0].value, " b");
        // The first operator wins; `!` alone is part of the field.
        let s = fields("a!b=c");
        let r = &s.requirements()[0];
        assert_eq!((r.field.as_str(), r.value.as_str()), ("a!b", "c"));
    }

    #[test]
    fn rejects_bad_field_selectors() {
        assert_eq!(
            field_err("x"),
            "invalid selector: 'x'; can't understand 'x'"
        );
        assert_eq!(
            field_err("a=b,c"),
            "invalid selector: 'a=b,c'; can't understand 'c'"
        );
        assert_eq!(
            field_err("x=a=b"),
            "invalid field selector: unescaped character in value: ="
        );
        assert_eq!(
            field_err("x==a==b"),
            "invalid field selector: unescaped character in value: ="
        );
        assert_eq!(
            field_err("x=a\\b"),
            "invalid field selector: invalid escape sequence: \\b"
        );
        assert_eq!(
            field_err("x=a\\"),
            "invalid field selector: invalid escape sequence: \\"
        );
    }

    #[test]
    fn escaping_round_trips() {
        for value in ["", "plain", "a,b", "a=b", "a\\b", "\\,=", "é,"] {
            let escaped = escape_field_value(value);
            assert_eq!(unescape_field_value(&escaped).unwrap(), value);
            let s = fields(&format!("f={escaped}"));
            assert_eq!(s.single_value("f"), Some(value));
            assert_eq!(FieldSelector::parse(&s.to_string()).unwrap(), s);
        }
    }

    #[test]
    fn field_matching() {
        let obj = |field: &str| match field {
            "metadata.name" => Some("web".to_string()),
            "spec.nodeName" => Some("n1".to_string()),
            _ => None,
        };
        assert!(fields("").matches(obj));
        assert!(fields("metadata.name=web").matches(obj));
        assert!(fields("metadata.name==web,spec.nodeName=n1").matches(obj));
        assert!(fields("spec.nodeName!=n2").matches(obj));
        assert!(!fields("spec.nodeName!=n1").matches(obj));
        assert!(!fields("metadata.name=web,spec.nodeName=n2").matches(obj));
        // Unknown fields compare as the empty string.
        assert!(fields("status.phase=").matches(obj));
        assert!(!fields("status.phase=Running").matches(obj));
        assert!(fields("status.phase!=Running").matches(obj));
    }

    #[test]
    fn validates_supported_fields() {
        let supported = ["metadata.name", "metadata.namespace", "spec.nodeName"];
        assert!(fields("").validate_fields(&supported).is_ok());
        assert!(
            fields("metadata.name=a,spec.nodeName!=b")
                .validate_fields(&supported)
                .is_ok()
        );
        let err = fields("metadata.name=a,status.phase=Running")
            .validate_fields(&supported)
            .unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.reason, Reason::BadRequest);
        assert_eq!(err.message, "field label not supported: status.phase");
        let err = fields("a = b").validate_fields(&supported).unwrap_err();
        assert_eq!(err.message, "field label not supported: a ");
    }

    #[test]
    fn single_value_for_indexing() {
        // Terms are sorted, so `metadata.name=other` comes first.
        let s = fields("spec.nodeName!=x,metadata.name=web,metadata.name=other");
        assert_eq!(s.single_value("metadata.name"), Some("other"));
        assert_eq!(s.single_value("spec.nodeName"), None);
        assert_eq!(s.single_value("metadata.namespace"), None);
        assert_eq!(
            fields("spec.nodeName==n1").single_value("spec.nodeName"),
            Some("n1")
        );
        assert_eq!(
            fields("spec.nodeName=").single_value("spec.nodeName"),
            Some("")
        );
    }
}
