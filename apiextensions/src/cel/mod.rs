//! CEL validation rules of custom resources: the `x-kubernetes-validations` of a CRD's
//! `openAPIV3Schema`, compiled once per schema ([`Rules::compile`]) and run on every write
//! ([`Rules::validate`]), with kube-apiserver 1.33's semantics and wording.
//!
//! # The CEL crate, and what is ours
//!
//! Parsing is the `cel` crate's (cel-rust, 0.15, the successor of `cel-interpreter`, with
//! default features off): its ANTLR grammar is cel-go's, it expands the standard macros
//! (`has`, `all`, `exists`, `exists_one`, `map`, `filter`) into comprehensions as cel-go does,
//! parses the optional syntax (`self.?x`, `m[?k]`, `[?a]`) and renders syntax errors as
//! cel-go does. Evaluation is a small interpreter here ([`eval`]) over that AST, because the
//! crate's interpreter has no cost accounting and no way to interrupt an evaluation, which
//! kube relies on (a per-call cost limit and a per-request budget), and because kube's
//! libraries (quantities, URLs, lists, regex) and its schema-typed values are easier to get
//! exactly right on our own value type. docs/CEL.md has the measurements and the full list
//! of gaps.
//!
//! # Layout
//! - [`check`]: what kube's compiler rejects (undeclared names, fields the schema lacks, a
//!   non-bool rule) and the static cost estimate.
//! - [`eval`]: the interpreter and its cost meter.
//! - [`library`]: the functions: CEL's standard ones and kube's libraries.
//! - [`value`]: CEL values, and JSON turned into them with the schema's help.

mod check;
mod eval;
mod library;
mod value;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use cel::common::ast::{IdedExpr, SourceInfo};
use kubecache_core::field;
use kubecache_core::status::Cause;
use serde_json::Value as Json;

use check::{CheckError, Expect};
use eval::{EvalError, Evaluator};
use value::{Key, Value};

/// kube's `StaticEstimatedCostLimit`: the most one rule may cost, estimated, times the
/// number of times it can run (its schema node's cardinality).
pub const STATIC_ESTIMATED_COST_LIMIT: f64 = 10_000_000.0;

/// kube's `PerCallLimit`: the most one evaluation of one rule may cost at run time.
pub const PER_CALL_COST_LIMIT: u64 = 1_000_000;

/// kube's `RuntimeCELCostBudget`: the most all rules together may cost for one object.
pub const RUNTIME_COST_BUDGET: u64 = 10_000_000;

/// The reasons a rule may give its failure, kube's `supportedValidationReason`.
const SUPPORTED_REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// The compiled `x-kubernetes-validations` of one schema, ready to validate objects.
#[derive(Debug, Default)]
pub struct Rules {
    root: Node,
}

/// A schema node with rules at or below it; nodes without any are left out.
#[derive(Debug, Default)]
struct Node {
    /// The node's schema, to type `self` (only kept where the node has rules).
    schema: Option<Arc<Json>>,
    /// `object`, `array`, ...: kube omits the value of objects and arrays in messages.
    schema_type: String,
    rules: Vec<Rule>,
    properties: Vec<(String, Node)>,
    additional_properties: Option<Box<Node>>,
    items: Option<Box<Node>>,
    /// `x-kubernetes-list-type`, with the keys of a `map` list: only those correlate items
    /// with the old list for transition rules.
    list_type: Option<String>,
    list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`: `granular` and `atomic` maps correlate old values by key.
    map_type: Option<String>,
    /// The schema root: `self.metadata` there only has `name` and `generateName`.
    is_root: bool,
}

#[derive(Debug)]
struct Rule {
    source: String,
    program: Program,
    message: Option<String>,
    message_expression: Option<Program>,
    message_expression_source: String,
    reason: Option<String>,
    /// `fieldPath`, as kube normalizes it (`.spec.x['y']` → `spec.x[y]`).
    field_path: Option<String>,
    optional_old_self: bool,
    uses_old_self: bool,
}

#[derive(Debug)]
struct Program {
    expr: IdedExpr,
    regexes: library::RegexCache,
}

impl Rules {
    /// Compiles every rule under `schema` (an `openAPIV3Schema`); `path` is where the schema
    /// sits in its CRD (`spec.validation.openAPIV3Schema`, or
    /// `spec.versions[0].schema.openAPIV3Schema`), for the causes of rules that do not
    /// compile.
    pub fn compile(schema: &Json, path: &str) -> Result<Rules, Vec<Cause>> {
        let mut causes = Vec::new();
        let schema = with_type_and_object_meta(schema);
        let mut root = compile_node(&schema, path, &mut Context::root(), &mut causes);
        root.is_root = true;
        if causes.is_empty() {
            Ok(Rules { root })
        } else {
            Err(causes)
        }
    }

    /// Whether there is any rule at all: a schema without one needs no validation pass.
    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    /// Runs the rules against `new` (the whole object), with `old` the stored object on an
    /// update (transition rules, those using `oldSelf`, only run then). Field paths start at
    /// the object root (`spec.x`).
    pub fn validate(&self, new: &Json, old: Option<&Json>) -> Vec<Cause> {
        self.run(new, old, false)
    }

    /// Only the transition rules (those using `oldSelf`) of an update: what
    /// [`Rules::validate`] with `old` adds to the same call without it, for a caller that has
    /// already run the others.
    pub fn validate_transitions(&self, new: &Json, old: &Json) -> Vec<Cause> {
        self.run(new, Some(old), true)
    }

    fn run(&self, new: &Json, old: Option<&Json>, transitions_only: bool) -> Vec<Cause> {
        let mut run = Run {
            causes: Vec::new(),
            budget: RUNTIME_COST_BUDGET,
            exhausted: false,
            transitions_only,
        };
        run.node(&self.root, "", new, old);
        run.causes
    }
}

impl Node {
    fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.properties.is_empty()
            && self.additional_properties.is_none()
            && self.items.is_none()
    }
}

/// Where the compile walk is: how many times a rule here may run, and whether `oldSelf`
/// can correlate here.
#[derive(Clone)]
struct Context {
    /// Product of the `maxItems`/`maxProperties` above; `None` once one is unbounded.
    cardinality: Option<f64>,
    /// The path of the nearest list above whose items cannot be correlated with old ones.
    uncorrelatable: Option<String>,
}

impl Context {
    fn root() -> Self {
        Context {
            cardinality: Some(1.0),
            uncorrelatable: None,
        }
    }

    fn child(&self, parent: &Json) -> Context {
        let cardinality = match (self.cardinality, check::declared_max_elements(parent)) {
            (Some(c), Some(m)) => Some(c * m),
            _ => None,
        };
        Context {
            cardinality,
            uncorrelatable: self.uncorrelatable.clone(),
        }
    }
}

fn compile_node(schema: &Json, path: &str, context: &mut Context, causes: &mut Vec<Cause>) -> Node {
    let mut node = Node {
        schema_type: schema
            .get("type")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string(),
        list_type: schema
            .get("x-kubernetes-list-type")
            .and_then(Json::as_str)
            .map(str::to_string),
        list_map_keys: schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Json::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        map_type: schema
            .get("x-kubernetes-map-type")
            .and_then(Json::as_str)
            .map(str::to_string),
        ..Node::default()
    };
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Json::as_array)
    {
        for (i, rule) in rules.iter().enumerate() {
            let rule_path = format!("{path}.x-kubernetes-validations[{i}]");
            if let Some(rule) = compile_rule(schema, rule, &rule_path, context, causes) {
                node.rules.push(rule);
            }
        }
        if !node.rules.is_empty() {
            node.schema = Some(Arc::new(schema.clone()));
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Json::as_object) {
        for (name, child) in properties {
            let child_path = format!("{path}.properties[{name}]");
            let mut child_context = context.child(schema);
            let child = compile_node(child, &child_path, &mut child_context, causes);
            if !child.is_empty() {
                node.properties.push((name.clone(), child));
            }
        }
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        let mut child_context = context.child(schema);
        let child = compile_node(
            additional,
            &format!("{path}.additionalProperties"),
            &mut child_context,
            causes,
        );
        if !child.is_empty() {
            node.additional_properties = Some(Box::new(child));
        }
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        let mut child_context = context.child(schema);
        if node.list_type.as_deref() != Some("map") {
            child_context.uncorrelatable = Some(path.to_string());
        }
        let child = compile_node(items, &format!("{path}.items"), &mut child_context, causes);
        if !child.is_empty() {
            node.items = Some(Box::new(child));
        }
    }
    node
}

fn compile_rule(
    schema: &Json,
    rule: &Json,
    path: &str,
    context: &Context,
    causes: &mut Vec<Cause>,
) -> Option<Rule> {
    let text = |key: &str| rule.get(key).and_then(Json::as_str);
    let source = text("rule").unwrap_or_default();
    let message = text("message");
    let message_expression = text("messageExpression");
    let reason = text("reason");
    let field_path = text("fieldPath");
    let optional_old_self = rule.get("optionalOldSelf").and_then(Json::as_bool);
    let shown = show_rule(rule);
    let before = causes.len();

    if source.trim().is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            &format!("{path}.rule"),
            "Required value: rule is not specified",
        ));
    } else if let Some(m) = message
        && !m.is_empty()
        && m.trim().is_empty()
    {
        causes.push(field::invalid(
            &format!("{path}.message"),
            &Json::from(m),
            "must be non-empty if specified",
        ));
    } else if message.is_some_and(|m| m.trim().contains('\n')) {
        causes.push(field::invalid(
            &format!("{path}.message"),
            &Json::from(message.unwrap_or_default()),
            "must not contain line breaks",
        ));
    } else if source.trim().contains('\n') && message.is_none_or(|m| m.trim().is_empty()) {
        causes.push(Cause::new(
            "FieldValueRequired",
            &format!("{path}.message"),
            "Required value: message must be specified if rule contains line breaks",
        ));
    }
    if let Some(m) = message_expression
        && !m.is_empty()
        && m.trim().is_empty()
    {
        causes.push(Cause::new(
            "FieldValueRequired",
            &format!("{path}.messageExpression"),
            "Required value: messageExpression must be non-empty if specified",
        ));
    }
    if let Some(r) = reason
        && !SUPPORTED_REASONS.contains(&r)
    {
        causes.push(field::not_supported(
            &format!("{path}.reason"),
            &Json::from(r),
            &SUPPORTED_REASONS,
        ));
    }
    let normalized_field_path = match field_path {
        Some(fp) if fp.trim().is_empty() => {
            causes.push(field::invalid(
                &format!("{path}.fieldPath"),
                &Json::from(fp),
                "must be non-empty if specified",
            ));
            None
        }
        Some(fp) if fp.contains('\n') => {
            causes.push(field::invalid(
                &format!("{path}.fieldPath"),
                &Json::from(fp),
                "must not contain line breaks",
            ));
            None
        }
        Some(fp) => match normalize_field_path(fp, schema) {
            Some(p) => Some(p),
            None => {
                causes.push(field::invalid(
                    &format!("{path}.fieldPath"),
                    &Json::from(fp),
                    "must be a valid path",
                ));
                None
            }
        },
        None => None,
    };
    if causes.len() > before {
        return None;
    }

    let optional = optional_old_self == Some(true);
    let (program, analysis) = match compile_expression(source, schema, optional, Expect::Bool) {
        Ok(compiled) => compiled,
        Err(CompileFailure::Syntax(issue)) | Err(CompileFailure::Check(issue)) => {
            causes.push(invalid_rule(
                &format!("{path}.rule"),
                &shown,
                &format!("compilation failed: {issue}"),
            ));
            return None;
        }
        Err(CompileFailure::WrongType) => {
            causes.push(invalid_rule(
                &format!("{path}.rule"),
                &shown,
                "cel expression must evaluate to a bool",
            ));
            return None;
        }
    };
    let cardinality = context.cardinality.unwrap_or_else(|| {
        (check::MAX_REQUEST_SIZE / (check::min_serialized_size(schema) + 1.0)).floor()
    });
    let cost = analysis.cost * cardinality;
    if cost > STATIC_ESTIMATED_COST_LIMIT {
        causes.push(field::forbidden(
            &format!("{path}.rule"),
            &cost_error("estimated rule cost", cost),
        ));
    }
    if analysis.uses_old_self {
        if let Some(list) = &context.uncorrelatable {
            causes.push(field::invalid(
                &format!("{path}.rule"),
                &Json::from(source),
                &format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {list}"),
            ));
        }
    } else if let Some(flag) = optional_old_self {
        causes.push(field::invalid(
            &format!("{path}.optionalOldSelf"),
            &Json::Bool(flag),
            "may not be set if oldSelf is not used in rule",
        ));
    }
    let message_program = match message_expression.filter(|m| !m.trim().is_empty()) {
        None => None,
        Some(m) => match compile_expression(m, schema, optional, Expect::String) {
            Ok((program, analysis)) => {
                let cost = analysis.cost * cardinality;
                if cost > STATIC_ESTIMATED_COST_LIMIT {
                    causes.push(field::forbidden(
                        &format!("{path}.messageExpression"),
                        &cost_error("estimated messageExpression cost", cost),
                    ));
                }
                Some(program)
            }
            Err(CompileFailure::Syntax(issue)) | Err(CompileFailure::Check(issue)) => {
                causes.push(invalid_rule(
                    &format!("{path}.messageExpression"),
                    &shown,
                    &format!("messageExpression compilation failed: {issue}"),
                ));
                None
            }
            Err(CompileFailure::WrongType) => {
                causes.push(invalid_rule(
                    &format!("{path}.messageExpression"),
                    &shown,
                    "messageExpression must evaluate to a string",
                ));
                None
            }
        },
    };
    if causes.len() > before {
        return None;
    }
    Some(Rule {
        source: source.to_string(),
        program,
        message: message.map(str::to_string),
        message_expression: message_program,
        message_expression_source: message_expression.unwrap_or_default().to_string(),
        reason: reason.map(str::to_string),
        field_path: normalized_field_path,
        optional_old_self: optional,
        uses_old_self: analysis.uses_old_self,
    })
}

enum CompileFailure {
    Syntax(String),
    Check(String),
    WrongType,
}

/// The syntax error of `source` as cel-go words it (`ERROR: <input>:1:5: Syntax error: …`), or
/// `None` when it parses. For expressions whose variables have no schema here (admission
/// policies' `object`, `request`, `params`): only the syntax is checked.
pub fn syntax_error(source: &str) -> Option<String> {
    cel::parser::Parser::new()
        .enable_optional_syntax(true)
        .parse_with_source_info(source)
        .err()
        .map(|e| e.to_string().replace("\n| ", "\n | "))
}

/// An expression over named JSON variables without a schema (admission's `matchConditions`
/// and, later, a ValidatingAdmissionPolicy's expressions): parsed once, evaluated against
/// untyped values under kube's per-call cost limit. What it cannot type (a field a variable
/// lacks) fails when evaluated, not when compiled.
#[derive(Debug)]
pub struct Expression {
    program: Program,
}

impl Expression {
    /// Parses `source`; the error is cel-go's syntax error.
    pub fn compile(source: &str) -> Result<Expression, String> {
        let (expr, _): (IdedExpr, SourceInfo) = cel::parser::Parser::new()
            .enable_optional_syntax(true)
            .parse_with_source_info(source)
            .map_err(|e| e.to_string().replace("\n| ", "\n | "))?;
        let mut regexes = library::RegexCache::new();
        collect_literal_regexes(&expr, &mut regexes);
        Ok(Expression {
            program: Program { expr, regexes },
        })
    }

    /// Evaluates to a bool with `variables` bound (JSON `null` is CEL `null`).
    pub fn eval_bool(&self, variables: &[(&str, &Json)]) -> Result<bool, String> {
        let bound = variables
            .iter()
            .map(|(name, value)| (*name, value::from_json(value, None)))
            .collect();
        let mut evaluator = Evaluator::new(bound, PER_CALL_COST_LIMIT, &self.program.regexes);
        match evaluator.eval(&self.program.expr) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("expected a bool, got {}", other.type_name())),
            Err(EvalError::CostLimit) => {
                Err("operation cancelled: actual cost limit exceeded".to_string())
            }
            Err(EvalError::Failed(message)) => Err(message),
        }
    }
}

fn compile_expression(
    source: &str,
    schema: &Json,
    optional_old_self: bool,
    expect: Expect,
) -> Result<(Program, check::Analysis), CompileFailure> {
    let (expr, source_info): (IdedExpr, SourceInfo) = cel::parser::Parser::new()
        .enable_optional_syntax(true)
        .parse_with_source_info(source)
        // cel-go indents the source line and caret of an issue by one space.
        .map_err(|e| CompileFailure::Syntax(e.to_string().replace("\n| ", "\n | ")))?;
    let analysis = check::analyze(&expr, &source_info, schema, optional_old_self, expect).map_err(
        |e| match e {
            CheckError::Issue(issue) => CompileFailure::Check(issue),
            CheckError::WrongType => CompileFailure::WrongType,
        },
    )?;
    let mut regexes = library::RegexCache::new();
    collect_literal_regexes(&expr, &mut regexes);
    Ok((Program { expr, regexes }, analysis))
}

/// Compiles the literal patterns of `matches`, `find` and `findAll` once, with the rule.
fn collect_literal_regexes(expr: &IdedExpr, regexes: &mut library::RegexCache) {
    use cel::common::ast::{EntryExpr, Expr, LiteralValue};
    match &expr.expr {
        Expr::Call(call) => {
            if matches!(call.func_name.as_str(), "matches" | "find" | "findAll")
                && let Some(IdedExpr {
                    expr: Expr::Literal(LiteralValue::String(pattern)),
                    ..
                }) = call.args.last()
                && let Ok(regex) = regex::Regex::new(pattern.inner())
            {
                regexes.insert(pattern.inner().to_string(), regex);
            }
            call.target
                .iter()
                .for_each(|t| collect_literal_regexes(t, regexes));
            call.args
                .iter()
                .for_each(|a| collect_literal_regexes(a, regexes));
        }
        Expr::Select(s) => collect_literal_regexes(&s.operand, regexes),
        Expr::List(l) => l
            .elements
            .iter()
            .for_each(|e| collect_literal_regexes(e, regexes)),
        Expr::Map(m) => m.entries.iter().for_each(|e| {
            if let EntryExpr::MapEntry(e) = &e.expr {
                collect_literal_regexes(&e.key, regexes);
                collect_literal_regexes(&e.value, regexes);
            }
        }),
        Expr::Comprehension(c) => {
            for e in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                collect_literal_regexes(e, regexes);
            }
        }
        _ => {}
    }
}

/// kube's `getCostErrorMessage`.
fn cost_error(what: &str, cost: f64) -> String {
    let factor = cost / STATIC_ESTIMATED_COST_LIMIT;
    let factor = if factor > 100.0 {
        "more than 100x".to_string()
    } else if factor < 1.5 {
        format!("{factor:.6}x")
    } else {
        format!("{factor:.1}x")
    };
    format!(
        "{what} exceeds budget by factor of {factor} (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)"
    )
}

/// A rule as Go's `%#v` prints kube's internal `ValidationRule`, the value kube shows in a
/// rule's compile error. A set pointer prints as an address in Go; we print what it points
/// to instead, since an address means nothing to a reader.
fn show_rule(rule: &Json) -> String {
    let text = |key: &str| quote_go(rule.get(key).and_then(Json::as_str).unwrap_or_default());
    let reason = match rule.get("reason").and_then(Json::as_str) {
        Some(r) => format!("(*apiextensions.FieldValueErrorReason)({})", quote_go(r)),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".to_string(),
    };
    let optional_old_self = match rule.get("optionalOldSelf").and_then(Json::as_bool) {
        Some(b) => format!("(*bool)({b})"),
        None => "(*bool)(nil)".to_string(),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional_old_self}}}",
        text("rule"),
        text("message"),
        text("messageExpression"),
        text("fieldPath"),
    )
}

fn quote_go(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `Invalid value: <rule as Go prints it>: detail`.
fn invalid_rule(path: &str, shown: &str, detail: &str) -> Cause {
    Cause::new(
        "FieldValueInvalid",
        path,
        format!("Invalid value: {shown}: {detail}"),
    )
}

/// kube's `ValidFieldPath`: `.a.b`, `['a.b']`, through properties (by name) and
/// additionalProperties (by key); returns the path as a field path prints it.
fn normalize_field_path(path: &str, schema: &Json) -> Option<String> {
    let mut out = String::new();
    let mut schema = schema;
    let mut rest = path;
    while !rest.is_empty() {
        let name: String;
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            name = after[..end].to_string();
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']")?;
            name = after[..end].replace("\\'", "'");
            rest = &after[end + 2..];
        } else {
            return None;
        }
        if name.is_empty() {
            return None;
        }
        if let Some(properties) = schema.get("properties").and_then(Json::as_object) {
            schema = properties.get(&name)?;
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&name);
        } else if let Some(additional) =
            schema.get("additionalProperties").filter(|a| a.is_object())
        {
            schema = additional;
            out.push_str(&format!("[{name}]"));
        } else {
            return None;
        }
    }
    Some(out)
}

/// The root schema as rules see it (kube's `WithTypeAndObjectMeta`): `apiVersion` and
/// `kind` strings, and a `metadata` with only `name` and `generateName`.
fn with_type_and_object_meta(schema: &Json) -> Json {
    let mut schema = schema.clone();
    if let Some(properties) = schema.get_mut("properties").and_then(Json::as_object_mut) {
        let string = serde_json::json!({"type": "string"});
        properties.insert("apiVersion".into(), string.clone());
        properties.insert("kind".into(), string.clone());
        properties.insert(
            "metadata".into(),
            serde_json::json!({"type": "object", "properties": {"name": string, "generateName": string}}),
        );
    }
    schema
}

/// One validation: the causes found so far and the cost budget left.
struct Run {
    causes: Vec<Cause>,
    budget: u64,
    /// Set once the budget or a call's limit ran out: kube runs no further rule.
    exhausted: bool,
    /// Runs only the rules that use `oldSelf` ([`Rules::validate_transitions`]).
    transitions_only: bool,
}

fn child_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

impl Run {
    fn node(&mut self, node: &Node, path: &str, new: &Json, old: Option<&Json>) {
        if self.exhausted || new.is_null() {
            return;
        }
        let old = old.filter(|o| !o.is_null());
        if !node.rules.is_empty() {
            self.rules(node, path, new, old);
        }
        match new {
            Json::Object(fields) => {
                let correlates =
                    matches!(node.map_type.as_deref(), None | Some("granular" | "atomic"));
                let old_field = |k: &str| old.filter(|_| correlates).and_then(|o| o.get(k));
                if let Some(additional) = &node.additional_properties {
                    for (key, value) in fields {
                        self.node(additional, &format!("{path}[{key}]"), value, old_field(key));
                    }
                }
                for (name, child) in &node.properties {
                    if let Some(value) = fields.get(name) {
                        self.node(child, &child_path(path, name), value, old_field(name));
                    }
                }
            }
            Json::Array(items) => {
                if let Some(item_node) = &node.items {
                    let old_items = old.and_then(Json::as_array);
                    for (i, item) in items.iter().enumerate() {
                        let old_item = if node.list_type.as_deref() == Some("map") {
                            old_items.and_then(|olds| {
                                olds.iter().find(|o| {
                                    node.list_map_keys.iter().all(|k| o.get(k) == item.get(k))
                                })
                            })
                        } else {
                            None
                        };
                        self.node(item_node, &format!("{path}[{i}]"), item, old_item);
                    }
                }
            }
            _ => {}
        }
    }

    fn rules(&mut self, node: &Node, path: &str, new: &Json, old: Option<&Json>) {
        let schema = node.schema.as_deref();
        let this = self_value(node, schema, new);
        let previous = old.map(|o| self_value(node, schema, o));
        let omit_value = node.schema_type == "object" || node.schema_type == "array";
        let type_value = Json::from(node.schema_type.as_str());
        for rule in &node.rules {
            if self.budget == 0 {
                self.causes.push(field::invalid(
                    path,
                    &type_value,
                    "validation failed due to running out of cost budget, no further validation rules will be run",
                ));
                self.exhausted = true;
                return;
            }
            if rule.uses_old_self && previous.is_none() && !rule.optional_old_self
                || self.transitions_only && !rule.uses_old_self
            {
                continue;
            }
            let mut variables = vec![("self", this.clone())];
            if rule.optional_old_self {
                variables.push(("oldSelf", Value::Optional(previous.clone().map(Arc::new))));
            } else if let Some(previous) = &previous {
                variables.push(("oldSelf", previous.clone()));
            }
            let limit = PER_CALL_COST_LIMIT.min(self.budget);
            let mut evaluator = Evaluator::new(variables.clone(), limit, &rule.program.regexes);
            let result = evaluator.eval(&rule.program.expr);
            let spent = evaluator.meter.spent;
            let shown = rule
                .message
                .as_deref()
                .map_or(rule.source.trim(), str::trim);
            match result {
                Err(EvalError::CostLimit) if limit < PER_CALL_COST_LIMIT => {
                    self.causes.push(field::invalid(
                        path,
                        &type_value,
                        "validation failed due to running out of cost budget, no further validation rules will be run",
                    ));
                    self.exhausted = true;
                    return;
                }
                Err(EvalError::CostLimit) => {
                    self.causes.push(field::invalid(
                        path,
                        &type_value,
                        &format!("'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: {shown}"),
                    ));
                    self.exhausted = true;
                    return;
                }
                Err(EvalError::Failed(error)) => {
                    self.budget = self.budget.saturating_sub(spent);
                    let detail = if error.starts_with("no such overload") {
                        format!(
                            "'{error}': call arguments did not match a supported operator, function or macro signature for rule: {shown}"
                        )
                    } else {
                        format!("{error} evaluating rule: {shown}")
                    };
                    self.causes.push(field::invalid(path, &type_value, &detail));
                    continue;
                }
                Ok(Value::Bool(true)) => {
                    self.budget = self.budget.saturating_sub(spent);
                    continue;
                }
                Ok(_) => self.budget = self.budget.saturating_sub(spent),
            }
            let failed_path = match &rule.field_path {
                Some(extra) => child_path(path, extra),
                None => path.to_string(),
            };
            let detail = match &rule.message_expression {
                Some(program) => {
                    match self.message(program, variables, rule, &failed_path, &type_value) {
                        Ok(Some(message)) => message,
                        Ok(None) => default_message(rule),
                        Err(()) => return,
                    }
                }
                None => default_message(rule),
            };
            self.causes
                .push(failure(rule, &failed_path, new, omit_value, &detail));
        }
    }

    /// Evaluates a messageExpression; `Ok(None)` falls back to the message, `Err` means
    /// the budget ran out (the cause is already recorded).
    fn message(
        &mut self,
        program: &Program,
        variables: Vec<(&str, Value)>,
        rule: &Rule,
        path: &str,
        type_value: &Json,
    ) -> Result<Option<String>, ()> {
        let limit = PER_CALL_COST_LIMIT.min(self.budget);
        let mut evaluator = Evaluator::new(variables, limit, &program.regexes);
        let result = evaluator.eval(&program.expr);
        self.budget = self.budget.saturating_sub(evaluator.meter.spent);
        match result {
            Ok(Value::String(s)) => {
                let trimmed = s.trim();
                if trimmed.is_empty() || trimmed.contains('\n') || trimmed.len() > 5 * 1024 {
                    Ok(None)
                } else {
                    Ok(Some(trimmed.to_string()))
                }
            }
            Err(EvalError::CostLimit) => {
                let detail = if limit < PER_CALL_COST_LIMIT {
                    "messageExpression evaluation failed due to running out of cost budget, no further validation rules will be run".to_string()
                } else {
                    format!(
                        "no further validation rules will be run due to call cost exceeds limit for messageExpression: {}",
                        quote_go(&rule.message_expression_source)
                    )
                };
                self.causes.push(field::invalid(path, type_value, &detail));
                self.exhausted = true;
                Err(())
            }
            _ => Ok(None),
        }
    }
}

/// `self` as a rule sees it: typed by the schema; at the root, `metadata` only has `name`
/// and `generateName`, as kube declares it.
fn self_value(node: &Node, schema: Option<&Json>, json: &Json) -> Value {
    let value = value::from_json(json, schema);
    if !node.is_root {
        return value;
    }
    let Value::Map(mut fields) = value else {
        return value;
    };
    let metadata_key = Key::String(Arc::from("metadata"));
    if let Some(Value::Map(metadata)) = fields.get(&metadata_key) {
        let kept = metadata
            .iter()
            .filter(
                |(k, _)| matches!(k, Key::String(s) if &**s == "name" || &**s == "generateName"),
            )
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Arc::make_mut(&mut fields).insert(metadata_key, Value::Map(Arc::new(kept)));
    }
    Value::Map(fields)
}

/// kube's `ruleMessageOrDefault`.
fn default_message(rule: &Rule) -> String {
    match rule.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => format!("failed rule: {}", rule.source.trim()),
    }
}

/// kube's `fieldErrorForReason`: the cause of a rule that evaluated to false. The value of
/// an object or array is left out of the message.
fn failure(rule: &Rule, path: &str, value: &Json, omit_value: bool, detail: &str) -> Cause {
    match rule.reason.as_deref() {
        Some("FieldValueForbidden") => field::forbidden(path, detail),
        Some("FieldValueRequired") => Cause::new(
            "FieldValueRequired",
            path,
            format!("Required value: {detail}"),
        ),
        Some("FieldValueDuplicate") if omit_value => {
            Cause::new("FieldValueDuplicate", path, "Duplicate value")
        }
        Some("FieldValueDuplicate") => field::duplicate(path, value),
        _ if omit_value => Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {detail}"),
        ),
        _ => field::invalid(path, value, detail),
    }
}
