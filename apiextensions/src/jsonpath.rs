//! kubectl's JSONPath (`k8s.io/client-go/util/jsonpath`), the language of a CRD's
//! `additionalPrinterColumns[*].jsonPath`: kube wraps a column's path in `{…}` and evaluates it
//! with missing keys allowed, so a column can use fields (`.spec.replicas`), indexes and slices
//! (`[0]`, `[1:3]`, `[-1]`), wildcards (`[*]`, `.*`), unions (`[0,1]`), recursive descent
//! (`..name`), quoted keys (`['app']`) and filters (`[?(@.type=="Ready")]`).
//!
//! Quirks are kept because kube has them: a quoted key is re-read as a dotted path
//! (`['a.b']` means `.a.b`; `\.` escapes a dot), filters compare values only of the same kind
//! (an integer field against `1.0` is an error, which a table renders as an empty cell), and
//! `range`/`end` parse but do not evaluate.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

/// A parsed template: literal text and `{…}` actions, evaluated in order.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    /// `Node::Text` outside braces, `Node::List` for each `{…}` action.
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Field(String),
    Array([SliceParam; 3]),
    Filter {
        left: Vec<Node>,
        right: Vec<Node>,
        operator: String,
    },
    Int(i64),
    Float(f64),
    Bool(bool),
    Wildcard,
    Recursive,
    Union(Vec<Vec<Node>>),
    /// `range` and `end`; anything else fails at evaluation, as in kube.
    Identifier(String),
    List(Vec<Node>),
}

/// One bound of `[start:end:step]`; `derived` marks the implicit end of `[i]` (`i + 1`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct SliceParam {
    value: i64,
    known: bool,
    derived: bool,
}

impl JsonPath {
    /// Compiles a column path the way kube's table convertor does: as the single action
    /// `{path}`.
    pub fn parse(path: &str) -> Result<JsonPath, String> {
        JsonPath::parse_template(&format!("{{{path}}}"))
    }

    /// Compiles a full template (`name: {.metadata.name}`), as `kubectl -o jsonpath` takes it.
    pub fn parse_template(template: &str) -> Result<JsonPath, String> {
        let mut parser = Parser {
            input: template,
            pos: 0,
            start: 0,
            width: 0,
        };
        let nodes = parser.parse_text()?;
        Ok(JsonPath { nodes })
    }

    /// The values the first action selects (what a table cell shows the first of); empty when
    /// nothing matched or the evaluation failed.
    pub fn evaluate<'a>(&self, data: &'a Value) -> Vec<Cow<'a, Value>> {
        self.find_results(data)
            .ok()
            .and_then(|mut results| (!results.is_empty()).then(|| results.swap_remove(0)))
            .unwrap_or_default()
    }

    /// One list of values per template node (kube's `FindResults`), or the evaluation error.
    pub fn find_results<'a>(&self, data: &'a Value) -> Result<Vec<Vec<Cow<'a, Value>>>, String> {
        let mut all = Vec::new();
        for node in &self.nodes {
            let found = walk(vec![Cow::Borrowed(data)], node).map_err(|e| e.message)?;
            all.push(found);
        }
        Ok(all)
    }
}

// ---- parsing: a port of the client-go parser's grammar, byte positions and all ----

struct Parser<'s> {
    input: &'s str,
    pos: usize,
    start: usize,
    width: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn consume_text(&mut self) -> String {
        let text = self.input[self.start..self.pos].to_string();
        self.start = self.pos;
        text
    }

    /// The next character, or `None` at the end (kube's `eof`).
    fn next(&mut self) -> Option<char> {
        match self.rest().chars().next() {
            None => {
                self.width = 0;
                None
            }
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                Some(c)
            }
        }
    }

    fn peek(&mut self) -> Option<char> {
        let c = self.next();
        self.backup();
        c
    }

    fn backup(&mut self) {
        self.pos -= self.width;
    }

    fn parse_text(&mut self) -> Result<Vec<Node>, String> {
        let mut root = Vec::new();
        loop {
            if self.rest().starts_with('{') {
                if self.pos > self.start {
                    root.push(Node::Text(self.consume_text()));
                }
                self.pos += 1;
                self.consume_text();
                let mut action = Vec::new();
                self.parse_inside_action(&mut action)?;
                root.push(Node::List(action));
                continue;
            }
            if self.next().is_none() {
                break;
            }
        }
        if self.pos > self.start {
            root.push(Node::Text(self.consume_text()));
        }
        Ok(root)
    }

    /// Parses one action up to and including its closing `}`.
    fn parse_inside_action(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        loop {
            if self.rest().starts_with('}') {
                self.pos += 1;
                self.consume_text();
                return Ok(());
            }
            if self.rest().starts_with("[?(") {
                self.parse_filter(cur)?;
                continue;
            }
            if self.rest().starts_with("..") {
                if matches!(cur.last(), Some(Node::Recursive)) {
                    return Err("invalid multiple recursive descent".to_string());
                }
                self.pos += 2;
                self.consume_text();
                cur.push(Node::Recursive);
                if self.peek().is_some_and(is_alphanumeric) {
                    self.parse_field(cur);
                }
                continue;
            }
            match self.next() {
                None | Some('\r' | '\n') => return Err("unclosed action".to_string()),
                Some(' ' | '@' | '$') => {
                    self.consume_text();
                }
                Some('[') => self.parse_array(cur)?,
                Some(quote @ ('"' | '\'')) => self.parse_quote(cur, quote)?,
                Some('.') => self.parse_field(cur),
                Some(c) if c == '+' || c == '-' || c.is_ascii_digit() => {
                    self.backup();
                    self.parse_number(cur)?;
                }
                Some(c) if is_alphanumeric(c) => {
                    self.backup();
                    self.parse_identifier(cur);
                }
                Some(c) => {
                    return Err(format!(
                        "unrecognized character in action: U+{:04X} '{c}'",
                        c as u32
                    ));
                }
            }
        }
    }

    fn parse_identifier(&mut self, cur: &mut Vec<Node>) {
        loop {
            let c = self.next();
            if is_terminator(c) {
                self.backup();
                break;
            }
        }
        let value = self.consume_text();
        cur.push(match value.as_str() {
            "true" => Node::Bool(true),
            "false" => Node::Bool(false),
            _ => Node::Identifier(value),
        });
    }

    fn parse_number(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        if matches!(self.peek(), Some('+' | '-')) {
            self.next();
        }
        loop {
            match self.next() {
                Some(c) if c == '.' || c.is_ascii_digit() => {}
                _ => {
                    self.backup();
                    break;
                }
            }
        }
        let value = self.consume_text();
        if let Ok(int) = value.parse::<i64>() {
            cur.push(Node::Int(int));
        } else if let Some(float) = parse_go_float(&value) {
            cur.push(Node::Float(float));
        } else {
            return Err(format!("cannot parse number {value}"));
        }
        Ok(())
    }

    fn parse_array(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated array".to_string()),
                Some(']') => break,
                Some(_) => {}
            }
        }
        let consumed = self.consume_text();
        let mut text = &consumed[1..consumed.len() - 1];
        if text == "*" {
            text = ":";
        }

        let parts: Vec<&str> = text.split(',').collect();
        if parts.len() > 1 {
            let mut union = Vec::new();
            for part in parts {
                union.push(parse_action(&format!("[{}]", part.trim_matches(' ')))?);
            }
            cur.push(Node::Union(union));
            return Ok(());
        }

        if let Some(key) = dict_key(text) {
            cur.extend(parse_action(&format!(".{key}"))?);
            return Ok(());
        }

        let Some(bounds) = slice_bounds(text) else {
            return Err(format!("invalid array index {text}"));
        };
        let number = |digits: &str| {
            digits
                .parse::<i64>()
                .map_err(|_| format!("array index {digits} is not a number"))
        };
        let mut params = [SliceParam::default(); 3];
        if !bounds.0.is_empty() {
            params[0] = SliceParam {
                value: number(bounds.0)?,
                known: true,
                derived: false,
            };
        }
        match bounds.1 {
            // `[i]` selects `[i:i+1]`.
            None => {
                params[1] = SliceParam {
                    value: params[0].value + 1,
                    known: true,
                    derived: true,
                }
            }
            Some("") => {}
            Some(digits) => {
                params[1] = SliceParam {
                    value: number(digits)?,
                    known: true,
                    derived: false,
                }
            }
        }
        if let Some(digits) = bounds.2.filter(|d| !d.is_empty()) {
            params[2] = SliceParam {
                value: number(digits)?,
                known: true,
                derived: false,
            };
        }
        cur.push(Node::Array(params));
        Ok(())
    }

    fn parse_filter(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        self.pos += 3;
        self.consume_text();
        let (mut begin, mut end) = (false, false);
        let mut pair = None;
        loop {
            let c = self.next();
            match c {
                None | Some('\n') => return Err("unterminated filter".to_string()),
                Some(quote @ ('"' | '\'')) => {
                    if !begin {
                        begin = true;
                        pair = Some(quote);
                        continue;
                    }
                    if self.input.as_bytes()[self.pos - 2] != b'\\' && Some(quote) == pair {
                        end = true;
                    }
                }
                Some(')') if begin == end => break,
                Some(_) => {}
            }
        }
        if self.next() != Some(']') {
            return Err("unclosed array expect ]".to_string());
        }
        let consumed = self.consume_text();
        let text = &consumed[..consumed.len() - 2];
        match split_comparison(text) {
            None => cur.push(Node::Filter {
                left: parse_action(text)?,
                right: Vec::new(),
                operator: "exists".to_string(),
            }),
            Some((left, operator, right)) => cur.push(Node::Filter {
                left: parse_action(left)?,
                right: parse_action(right)?,
                operator: operator.to_string(),
            }),
        }
        Ok(())
    }

    fn parse_quote(&mut self, cur: &mut Vec<Node>, quote: char) -> Result<(), String> {
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated quoted string".to_string()),
                Some(c) if c == quote && self.input.as_bytes()[self.pos - 2] != b'\\' => break,
                Some(_) => {}
            }
        }
        let value = self.consume_text();
        let text =
            unquote_extend(&value).map_err(|err| format!("unquote string {value} error {err}"))?;
        cur.push(Node::Text(text));
        Ok(())
    }

    fn parse_field(&mut self, cur: &mut Vec<Node>) {
        self.consume_text();
        loop {
            match self.next() {
                Some('\\') => {
                    self.next();
                }
                c if is_terminator(c) => {
                    self.backup();
                    break;
                }
                _ => {}
            }
        }
        let value = self.consume_text();
        if value == "*" {
            cur.push(Node::Wildcard);
        } else {
            cur.push(Node::Field(value.replace('\\', "")));
        }
    }
}

/// Parses `text` as the body of one action (kube's `parseAction`).
fn parse_action(text: &str) -> Result<Vec<Node>, String> {
    let path = JsonPath::parse(text)?;
    match path.nodes.into_iter().next() {
        Some(Node::List(nodes)) => Ok(nodes),
        _ => Ok(Vec::new()),
    }
}

fn is_terminator(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => matches!(
            c,
            ' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}'
        ),
    }
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// `'key'` inside brackets (kube's `^'([^']*)'$`).
fn dict_key(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.contains('\'')).then_some(inner)
}

/// The parts of `start:end:step` (kube's `^(-?[\d]*)(:-?[\d]*)?(:-?[\d]*)?$`): the start,
/// then the end and step when their colon is there.
fn slice_bounds(text: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    fn signed_digits(s: &str) -> bool {
        let digits = s.strip_prefix('-').unwrap_or(s);
        digits.bytes().all(|b| b.is_ascii_digit())
    }
    let mut pieces = text.splitn(3, ':');
    let start = pieces.next().unwrap_or("");
    let (end, step) = (pieces.next(), pieces.next());
    let valid =
        signed_digits(start) && end.is_none_or(signed_digits) && step.is_none_or(signed_digits);
    valid.then_some((start, end, step))
}

/// `left op right` of a filter (kube's `^([^!<>=]+)([!<>=]+)(.+?)$`), backtracking the
/// operator by one character when nothing would be left for the right side.
fn split_comparison(text: &str) -> Option<(&str, &str, &str)> {
    let is_op = |c: char| matches!(c, '!' | '<' | '>' | '=');
    let op_start = text.find(is_op)?;
    if op_start == 0 {
        return None;
    }
    let op_len = text[op_start..]
        .find(|c: char| !is_op(c))
        .unwrap_or(text.len() - op_start);
    let (mut op_end, mut right_start) = (op_start + op_len, op_start + op_len);
    if right_start == text.len() {
        if op_len < 2 {
            return None;
        }
        op_end -= 1;
        right_start -= 1;
    }
    Some((
        &text[..op_start],
        &text[op_start..op_end],
        &text[right_start..],
    ))
}

/// Go's `strconv.ParseFloat` on what the number scanner accepts (digits, dots, a sign).
fn parse_go_float(text: &str) -> Option<f64> {
    let digits = text.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    text.parse().ok()
}

/// kube's `UnquoteExtend`: Go's `strconv.Unquote` rules for `"…"` and `'…'` strings.
fn unquote_extend(quoted: &str) -> Result<String, &'static str> {
    const SYNTAX: &str = "invalid syntax";
    let quote = quoted.chars().next().ok_or(SYNTAX)?;
    if quoted.len() < 2 || !quoted.ends_with(quote) || !matches!(quote, '"' | '\'') {
        return Err(SYNTAX);
    }
    let body = &quoted[1..quoted.len() - 1];
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return Err(SYNTAX);
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = chars.next().ok_or(SYNTAX)?;
        let simple = match escaped {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '\'' | '"' if escaped == quote => Some(escaped),
            _ => None,
        };
        if let Some(simple) = simple {
            out.push(simple);
            continue;
        }
        let hex_len = match escaped {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            '0'..='7' => {
                let octal: String = std::iter::once(escaped)
                    .chain(chars.by_ref().take(2))
                    .collect();
                let code = u32::from_str_radix(&octal, 8).map_err(|_| SYNTAX)?;
                if octal.len() != 3 || code > 255 {
                    return Err(SYNTAX);
                }
                out.push(char::from_u32(code).ok_or(SYNTAX)?);
                continue;
            }
            _ => return Err(SYNTAX),
        };
        let hex: String = chars.by_ref().take(hex_len).collect();
        if hex.len() != hex_len {
            return Err(SYNTAX);
        }
        let code = u32::from_str_radix(&hex, 16).map_err(|_| SYNTAX)?;
        out.push(char::from_u32(code).ok_or(SYNTAX)?);
    }
    Ok(out)
}

// ---- evaluation ----

/// An evaluation failure, with what kube's walker hands back alongside the error (an
/// existence filter counts those values as matches).
struct EvalError<'a> {
    partial: Vec<Cow<'a, Value>>,
    message: String,
}

type Eval<'a> = Result<Vec<Cow<'a, Value>>, EvalError<'a>>;

fn fail<'a>(partial: Vec<Cow<'a, Value>>, message: impl Into<String>) -> Eval<'a> {
    Err(EvalError {
        partial,
        message: message.into(),
    })
}

fn walk<'a>(input: Vec<Cow<'a, Value>>, node: &Node) -> Eval<'a> {
    match node {
        Node::List(nodes) => eval_list(input, nodes),
        Node::Text(text) => Ok(vec![Cow::Owned(Value::String(text.clone()))]),
        Node::Int(int) => Ok(input
            .iter()
            .map(|_| Cow::Owned(Value::from(*int)))
            .collect()),
        Node::Float(float) => Ok(input
            .iter()
            .map(|_| Cow::Owned(Value::from(*float)))
            .collect()),
        Node::Bool(b) => Ok(input.iter().map(|_| Cow::Owned(Value::Bool(*b))).collect()),
        Node::Field(name) => Ok(eval_field(input, name)),
        Node::Array(params) => eval_array(input, params),
        Node::Filter {
            left,
            right,
            operator,
        } => eval_filter(input, left, right, operator),
        Node::Wildcard => Ok(input.into_iter().flat_map(children).collect()),
        Node::Recursive => Ok(eval_recursive(input)),
        Node::Union(lists) => {
            let mut out = Vec::new();
            for list in lists {
                match eval_list(input.clone(), list) {
                    Ok(found) => out.extend(found),
                    Err(err) => return fail(input, err.message),
                }
            }
            Ok(out)
        }
        Node::Identifier(name) => match name.as_str() {
            "range" | "end" => fail(Vec::new(), format!("{name} is not supported here")),
            _ => fail(input, format!("unrecognized identifier {name}")),
        },
    }
}

fn eval_list<'a>(input: Vec<Cow<'a, Value>>, nodes: &[Node]) -> Eval<'a> {
    let mut current = input;
    for node in nodes {
        current = walk(current, node)?;
    }
    Ok(current)
}

/// A map's value by key; JSON null inputs are skipped and anything else has no fields.
fn eval_field<'a>(input: Vec<Cow<'a, Value>>, name: &str) -> Vec<Cow<'a, Value>> {
    input
        .into_iter()
        .filter_map(|value| match value {
            Cow::Borrowed(v) => v.as_object()?.get(name).map(Cow::Borrowed),
            Cow::Owned(v) => v.as_object()?.get(name).cloned().map(Cow::Owned),
        })
        .collect()
}

/// Map values, array items, or a string's bytes: what `*` and `..` descend into.
fn children<'a>(value: Cow<'a, Value>) -> Vec<Cow<'a, Value>> {
    match value {
        Cow::Borrowed(Value::Object(map)) => map.values().map(Cow::Borrowed).collect(),
        Cow::Borrowed(Value::Array(items)) => items.iter().map(Cow::Borrowed).collect(),
        Cow::Owned(Value::Object(map)) => map.into_iter().map(|(_, v)| Cow::Owned(v)).collect(),
        Cow::Owned(Value::Array(items)) => items.into_iter().map(Cow::Owned).collect(),
        other => match other.as_ref() {
            Value::String(s) => s.bytes().map(|b| Cow::Owned(Value::from(b))).collect(),
            _ => Vec::new(),
        },
    }
}

fn eval_recursive<'a>(input: Vec<Cow<'a, Value>>) -> Vec<Cow<'a, Value>> {
    let mut out = Vec::new();
    for value in input {
        let kids = children(value.clone());
        if !kids.is_empty() {
            out.push(value);
            out.extend(eval_recursive(kids));
        }
    }
    out
}

fn eval_array<'a>(input: Vec<Cow<'a, Value>>, params: &[SliceParam; 3]) -> Eval<'a> {
    let mut out = Vec::new();
    for value in &input {
        if value.is_null() {
            continue;
        }
        let Some(items) = value.as_array() else {
            return fail(
                input.clone(),
                format!("{} is not array or slice", go_type(value)),
            );
        };
        let len = items.len() as i64;
        let mut params = *params;
        if !params[0].known {
            params[0].value = 0;
        }
        if params[0].value < 0 {
            params[0].value += len;
        }
        if !params[1].known {
            params[1].value = len;
        }
        if params[1].value < 0 || (params[1].value == 0 && params[1].derived) {
            params[1].value += len;
        }
        let (start, end) = (params[0].value, params[1].value);
        if start == end {
            return Ok(out);
        }
        if start >= len || start < 0 {
            let message = format!("array index out of bounds: index {start}, length {len}");
            return fail(input.clone(), message);
        }
        if end > len || end < 0 {
            let message = format!("array index out of bounds: index {}, length {len}", end - 1);
            return fail(input.clone(), message);
        }
        if start > end {
            let message = format!("starting index {start} is greater than ending index {end}");
            return fail(input.clone(), message);
        }
        let step = if params[2].known {
            if params[2].value <= 0 {
                return fail(input.clone(), "step must be > 0");
            }
            params[2].value as usize
        } else {
            1
        };
        let range = start as usize..end as usize;
        match value {
            Cow::Borrowed(Value::Array(items)) => {
                out.extend(items[range].iter().step_by(step).map(Cow::Borrowed));
            }
            owned => out.extend(owned.as_array().into_iter().flat_map(|items| {
                items[range.clone()]
                    .iter()
                    .step_by(step)
                    .cloned()
                    .map(Cow::Owned)
            })),
        }
    }
    Ok(out)
}

fn eval_filter<'a>(
    input: Vec<Cow<'a, Value>>,
    left: &[Node],
    right: &[Node],
    operator: &str,
) -> Eval<'a> {
    let mut out = Vec::new();
    for value in &input {
        let Some(items) = value.as_array() else {
            let message = format!("{} is not array or slice and cannot be filtered", value);
            return fail(input.clone(), message);
        };
        let items: Vec<Cow<'a, Value>> = match value {
            Cow::Borrowed(Value::Array(items)) => items.iter().map(Cow::Borrowed).collect(),
            _ => items.iter().cloned().map(Cow::Owned).collect(),
        };
        for item in items {
            let lefts = eval_list(vec![item.clone()], left);
            if operator == "exists" {
                let found = match lefts {
                    Ok(found) => !found.is_empty(),
                    Err(err) => !err.partial.is_empty(),
                };
                if found {
                    out.push(item);
                }
                continue;
            }
            let lefts = lefts.map_err(|e| EvalError {
                partial: input.clone(),
                message: e.message,
            })?;
            let left = match lefts.as_slice() {
                [] => continue,
                [one] => one,
                _ => return fail(input.clone(), "can only compare one element at a time"),
            };
            let rights = eval_list(vec![item.clone()], right).map_err(|e| EvalError {
                partial: input.clone(),
                message: e.message,
            })?;
            let right = match rights.as_slice() {
                [] => continue,
                [one] => one,
                _ => return fail(input.clone(), "can only compare one element at a time"),
            };
            match compare(left, right, operator) {
                Ok(true) => out.push(item),
                Ok(false) => {}
                Err(message) => return fail(out, message),
            }
        }
    }
    Ok(out)
}

/// The kinds Go's template comparisons accept.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Scalar<'v> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'v str),
}

fn scalar(value: &Value) -> Result<Scalar<'_>, &'static str> {
    match value {
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Number(n) => Ok(match n.as_i64() {
            Some(int) => Scalar::Int(int),
            // Decoded JSON holds a number as int64 when it fits, else float64.
            None => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Ok(Scalar::Str(s)),
        _ => Err("invalid type for comparison"),
    }
}

fn compare(left: &Value, right: &Value, operator: &str) -> Result<bool, String> {
    let (left, right) = (scalar(left)?, scalar(right)?);
    if std::mem::discriminant(&left) != std::mem::discriminant(&right) {
        return Err("incompatible types for comparison".to_string());
    }
    if operator == "==" || operator == "!=" {
        return Ok((left == right) == (operator == "=="));
    }
    if matches!(left, Scalar::Bool(_)) {
        return Err("invalid type for comparison".to_string());
    }
    let ordering = left.partial_cmp(&right);
    Ok(match operator {
        "<" => ordering == Some(Ordering::Less),
        ">" => ordering == Some(Ordering::Greater),
        "<=" => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        ">=" => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        other => return Err(format!("unrecognized filter operator {other}")),
    })
}

fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "map[string]interface {}",
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() => "int64",
        Value::Number(_) => "float64",
        Value::Array(_) => "[]interface {}",
        Value::Null => "<nil>",
    }
}

// ---- printing, as kube's `PrintResults` writes one value ----

/// A found value as text: strings bare, numbers and booleans as Go's `fmt.Print` writes them,
/// maps and lists as Go's `json.Marshal` does, and JSON null as `<no value>` (what Go's
/// template printer writes for a nil interface).
pub fn print_value(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(int) => int.to_string(),
            None => go_print_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(_) | Value::Object(_) => go_json(value),
    }
}

/// Go's `%v` of a float64: shortest digits, in exponent form below 1e-4 and from 1e6 on
/// (`strconv`'s shortest `%g` decides with precision 6).
fn go_print_float(f: f64) -> String {
    go_float(f, -4, 6)
}

/// Go's `encoding/json` float64: exponent form below 1e-6 and from 1e21.
fn go_json_float(f: f64) -> String {
    if f == 0.0 {
        return "0".to_string();
    }
    let text = go_float(f, -6, 21);
    // Go's encoder writes `1e-7`, not `1e-07`.
    match text.split_once("e-0") {
        Some((mantissa, digit)) => format!("{mantissa}e-{digit}"),
        None => text,
    }
}

/// Shortest round-trip digits of `f`, in exponent form when its decimal exponent is below
/// `low` or at least `high`, with Go's `e+06` exponent spelling.
fn go_float(f: f64, low: i32, high: i32) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f != 0.0 && (exponent < low || exponent >= high) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let plain = format!("{f}");
        plain.strip_suffix(".0").unwrap_or(&plain).to_string()
    }
}

/// Go's `json.Marshal` of decoded JSON: keys sorted, HTML characters escaped.
pub fn go_json(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(value, &mut out);
    out
}

fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_i64() {
            Some(int) => out.push_str(&int.to_string()),
            None => out.push_str(&go_json_float(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => write_go_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json_string(key, out);
                out.push(':');
                write_go_json(&map[key], out);
            }
            out.push('}');
        }
    }
}

fn write_go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(path: &str, data: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .evaluate(data)
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "nginx", "app.kubernetes.io/name": "web"}},
            "spec": {
                "replicas": 3,
                "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}, {"name": "c"}]
            },
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "count": 2},
                    {"type": "Synced", "status": "False", "count": 5}
                ],
                "ratio": 0.5,
                "nothing": null
            }
        })
    }

    #[test]
    fn fields_indexes_and_wildcards() {
        let data = pod();
        assert_eq!(eval(".spec.replicas", &data), vec![json!(3)]);
        assert_eq!(eval(".metadata.labels.app", &data), vec![json!("nginx")]);
        assert_eq!(
            eval(".status.conditions[0].type", &data),
            vec![json!("Ready")]
        );
        assert_eq!(
            eval(".status.conditions[-1].type", &data),
            vec![json!("Synced")]
        );
        assert_eq!(
            eval(".spec.containers[*].name", &data),
            vec![json!("a"), json!("b"), json!("c")]
        );
        assert_eq!(
            eval(".spec.containers[*].image", &data),
            vec![json!("x"), json!("y")]
        );
        assert_eq!(
            eval(".spec.containers[0:2].name", &data),
            vec![json!("a"), json!("b")]
        );
        assert_eq!(
            eval(".spec.containers[::2].name", &data),
            vec![json!("a"), json!("c")]
        );
        assert_eq!(
            eval(".spec.containers[0,2].name", &data),
            vec![json!("a"), json!("c")]
        );
        assert_eq!(eval("$.spec.replicas", &data), vec![json!(3)]);
    }

    #[test]
    fn missing_keys_and_errors_select_nothing() {
        let data = pod();
        assert!(eval(".spec.missing", &data).is_empty());
        assert!(eval(".spec.containers[7].name", &data).is_empty());
        assert!(eval(".spec.replicas[0]", &data).is_empty());
        assert!(eval(".status.nothing.deeper", &data).is_empty());
        assert_eq!(eval(".status.nothing", &data), vec![Value::Null]);
    }

    #[test]
    fn quoted_keys_are_dotted_paths_and_escaped_dots_are_not() {
        let data = pod();
        assert_eq!(eval(".metadata.labels['app']", &data), vec![json!("nginx")]);
        // kube re-reads ['a.b'] as .a.b, so a dotted label key needs `\.`.
        assert!(eval(".metadata.labels['app.kubernetes.io/name']", &data).is_empty());
        assert_eq!(
            eval(r".metadata.labels.app\.kubernetes\.io/name", &data),
            vec![json!("web")]
        );
    }

    #[test]
    fn filters_compare_like_go_templates() {
        let data = pod();
        assert_eq!(
            eval(r#".status.conditions[?(@.type=="Ready")].status"#, &data),
            vec![json!("True")]
        );
        assert_eq!(
            eval(".status.conditions[?(@.type == 'Synced')].status", &data),
            vec![json!("False")]
        );
        assert_eq!(
            eval(".status.conditions[?(@.count>3)].type", &data),
            vec![json!("Synced")]
        );
        assert_eq!(
            eval(".status.conditions[?(@.count!=2)].type", &data),
            vec![json!("Synced")]
        );
        assert_eq!(
            eval(".spec.containers[?(@.image)].name", &data),
            vec![json!("a"), json!("b")]
        );
        // An integer field against a float literal is a comparison error: nothing.
        assert!(eval(".status.conditions[?(@.count>1.5)].type", &data).is_empty());
    }

    #[test]
    fn recursive_descent_finds_nested_fields() {
        let data = pod();
        let names = eval("..name", &data);
        assert_eq!(
            names,
            vec![json!("web"), json!("a"), json!("b"), json!("c")]
        );
    }

    #[test]
    fn templates_keep_text_between_actions() {
        let path = JsonPath::parse_template("name={.metadata.name} n={.spec.replicas}").unwrap();
        let data = pod();
        let results = path.find_results(&data).unwrap();
        let flat: Vec<String> = results
            .iter()
            .flat_map(|r| r.iter().map(|v| print_value(v)))
            .collect();
        assert_eq!(flat.concat(), "name=web n=3");
    }

    #[test]
    fn parse_errors_are_kubes() {
        assert_eq!(JsonPath::parse(".a[").unwrap_err(), "unterminated array");
        assert_eq!(
            JsonPath::parse(".a[x]").unwrap_err(),
            "invalid array index x"
        );
        assert_eq!(
            JsonPath::parse("#a").unwrap_err(),
            "unrecognized character in action: U+0023 '#'"
        );
        assert_eq!(
            JsonPath::parse_template("{.a").unwrap_err(),
            "unclosed action"
        );
        assert_eq!(
            JsonPath::parse("....a").unwrap_err(),
            "invalid multiple recursive descent"
        );
    }

    #[test]
    fn values_print_as_go_prints_them() {
        assert_eq!(print_value(&json!("x")), "x");
        assert_eq!(print_value(&json!(5)), "5");
        assert_eq!(print_value(&json!(1.5)), "1.5");
        assert_eq!(print_value(&json!(1234567.5)), "1.2345675e+06");
        assert_eq!(print_value(&json!(0.00001)), "1e-05");
        assert_eq!(print_value(&json!(true)), "true");
        assert_eq!(print_value(&Value::Null), "<no value>");
        assert_eq!(
            print_value(&json!({"b": 1, "a": "<x>"})),
            r#"{"a":"\u003cx\u003e","b":1}"#
        );
        assert_eq!(print_value(&json!([1.5, 1e21])), "[1.5,1e+21]");
    }
}
