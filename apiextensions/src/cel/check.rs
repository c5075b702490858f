//! What kube's CEL compiler checks before a rule is accepted, done over the parsed AST with
//! the schema as the type of `self`: undeclared names, fields the schema does not have, a
//! result that is not a bool, and the estimated worst-case cost (cel-go's estimator in
//! spirit: sizes come from `maxLength`/`maxItems`/`maxProperties`, or from the 3 MiB request
//! limit where the schema sets none).

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, SourceInfo};
use serde_json::Value as Json;

use super::library;

/// kube's `MaxRequestSizeBytes`: what bounds a string or list the schema leaves unbounded.
pub(crate) const MAX_REQUEST_SIZE: f64 = 3_145_728.0;

/// The static type of an expression, as far as this check follows it.
#[derive(Clone, Debug)]
enum Ty<'s> {
    /// Anything: preserve-unknown-fields content, int-or-string, results we do not track.
    Dyn,
    /// A CEL primitive by name: `bool`, `int`, `string`, ...
    Prim(&'static str),
    /// A value typed by a schema node.
    Schema(&'s Json),
    List(Box<Ty<'s>>),
    Map(Box<Ty<'s>>),
    Optional(Box<Ty<'s>>),
}

/// An expression's type, worst-case cost, and worst-case size (bytes of a string,
/// elements of a list or map).
#[derive(Clone, Debug)]
struct Estimate<'s> {
    ty: Ty<'s>,
    cost: f64,
    size: f64,
}

impl<'s> Estimate<'s> {
    fn new(ty: Ty<'s>, cost: f64, size: f64) -> Self {
        Estimate { ty, cost, size }
    }
}

/// What compiling a rule learned about it.
pub(crate) struct Analysis {
    /// Worst-case cost of one evaluation.
    pub(crate) cost: f64,
    pub(crate) uses_old_self: bool,
}

/// Which result type a compiled expression must have.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Expect {
    Bool,
    String,
}

/// Checks `expr` with `self` (and `oldSelf`) typed by `schema`; the error is cel-go's issue
/// text (`ERROR: <input>:1:6: undefined field 'x'` and the source line with a caret), or
/// the bare kube detail for a wrong result type.
pub(crate) fn analyze(
    expr: &IdedExpr,
    source_info: &SourceInfo,
    schema: &Json,
    optional_old_self: bool,
    expect: Expect,
) -> Result<Analysis, CheckError> {
    let mut checker = Checker {
        schema,
        optional_old_self,
        scope: Vec::new(),
        uses_old_self: false,
    };
    let estimate = checker
        .visit(expr)
        .map_err(|(id, message)| CheckError::Issue(issue(source_info, id, &message)))?;
    let wrong_type = match (&estimate.ty, expect) {
        (Ty::Dyn, _) => false,
        (Ty::Prim(p), Expect::Bool) => *p != "bool",
        (Ty::Prim(p), Expect::String) => *p != "string",
        (Ty::Schema(s), Expect::Bool) => schema_type(s).is_some_and(|t| t != "boolean"),
        (Ty::Schema(s), Expect::String) => schema_type(s).is_some_and(|t| t != "string"),
        _ => true,
    };
    if wrong_type {
        return Err(CheckError::WrongType);
    }
    Ok(Analysis {
        cost: estimate.cost,
        uses_old_self: checker.uses_old_self,
    })
}

pub(crate) enum CheckError {
    /// A cel-go issue, already rendered.
    Issue(String),
    /// The expression does not have the expected result type.
    WrongType,
}

/// cel-go's rendering of one issue: position, message, the line and a caret under the
/// column.
pub(crate) fn issue(source_info: &SourceInfo, id: u64, message: &str) -> String {
    let source = &source_info.source;
    let offset = source_info
        .offset_for(id)
        .map_or(0, |(start, _)| start as usize);
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let text = source.lines().nth(line - 1).unwrap_or("");
    format!(
        "ERROR: <input>:{line}:{column}: {message}\n | {text}\n | {}^",
        ".".repeat(column - 1)
    )
}

fn schema_type(schema: &Json) -> Option<&str> {
    if schema.get("x-kubernetes-int-or-string") == Some(&Json::Bool(true)) {
        return None;
    }
    schema.get("type").and_then(Json::as_str)
}

/// Bytes of the smallest JSON value the schema allows: what bounds how many of them fit in
/// a request (kube's `MinSerializedSize`).
pub(crate) fn min_serialized_size(schema: &Json) -> f64 {
    match schema_type(schema) {
        Some("string") => 2.0,
        Some("boolean") => 4.0,
        Some("integer") | Some("number") => 1.0,
        Some("object") | Some("array") => 2.0,
        _ => 1.0,
    }
}

/// How many elements a list or map typed by `schema` can have at most, `None` when the
/// schema sets no bound.
pub(crate) fn declared_max_elements(schema: &Json) -> Option<f64> {
    match schema_type(schema) {
        Some("array") => schema.get("maxItems").and_then(Json::as_f64),
        Some("object") => {
            if schema
                .get("additionalProperties")
                .is_some_and(Json::is_object)
            {
                schema.get("maxProperties").and_then(Json::as_f64)
            } else {
                Some(1.0)
            }
        }
        _ => Some(1.0),
    }
}

/// The worst-case size of a value typed by `schema`.
fn schema_size(schema: &Json) -> f64 {
    match schema_type(schema) {
        Some("string") => schema
            .get("maxLength")
            .and_then(Json::as_f64)
            .unwrap_or(MAX_REQUEST_SIZE),
        Some("array") => schema
            .get("maxItems")
            .and_then(Json::as_f64)
            .unwrap_or_else(|| {
                let item = schema.get("items").map_or(1.0, min_serialized_size);
                (MAX_REQUEST_SIZE / (item + 1.0)).floor()
            }),
        Some("object") => {
            if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                schema
                    .get("maxProperties")
                    .and_then(Json::as_f64)
                    .unwrap_or_else(|| {
                        // a key ("":) and a value per entry
                        (MAX_REQUEST_SIZE / (min_serialized_size(additional) + 4.0)).floor()
                    })
            } else {
                schema
                    .get("properties")
                    .and_then(Json::as_object)
                    .map_or(0.0, |p| p.len() as f64)
            }
        }
        _ => 1.0,
    }
}

type Failure = (u64, String);

struct Checker<'s> {
    schema: &'s Json,
    optional_old_self: bool,
    /// Comprehension variables in scope, innermost last.
    scope: Vec<(String, Estimate<'s>)>,
    uses_old_self: bool,
}

impl<'s> Checker<'s> {
    fn visit(&mut self, expr: &IdedExpr) -> Result<Estimate<'s>, Failure> {
        match &expr.expr {
            Expr::Literal(literal) => Ok(match literal {
                LiteralValue::Boolean(_) => Estimate::new(Ty::Prim("bool"), 0.0, 1.0),
                LiteralValue::Int(_) => Estimate::new(Ty::Prim("int"), 0.0, 1.0),
                LiteralValue::UInt(_) => Estimate::new(Ty::Prim("uint"), 0.0, 1.0),
                LiteralValue::Double(_) => Estimate::new(Ty::Prim("double"), 0.0, 1.0),
                LiteralValue::Null => Estimate::new(Ty::Prim("null_type"), 0.0, 1.0),
                LiteralValue::String(s) => {
                    Estimate::new(Ty::Prim("string"), 0.0, s.inner().len() as f64)
                }
                LiteralValue::Bytes(b) => {
                    Estimate::new(Ty::Prim("bytes"), 0.0, b.inner().len() as f64)
                }
            }),
            Expr::Ident(name) => self.ident(expr.id, name),
            Expr::Select(select) => {
                let operand = self.visit(&select.operand)?;
                let cost = operand.cost + 1.0;
                if select.test {
                    self.field(expr.id, &operand.ty, &select.field)?;
                    return Ok(Estimate::new(Ty::Prim("bool"), cost, 1.0));
                }
                let ty = self.field(expr.id, &operand.ty, &select.field)?;
                Ok(sized(ty, cost))
            }
            Expr::List(list) => {
                let mut cost = 10.0;
                let mut element = Ty::Dyn;
                for (i, e) in list.elements.iter().enumerate() {
                    let estimate = self.visit(e)?;
                    cost += estimate.cost;
                    if i == 0 {
                        element = estimate.ty;
                    }
                }
                Ok(Estimate::new(
                    Ty::List(Box::new(element)),
                    cost,
                    list.elements.len() as f64,
                ))
            }
            Expr::Map(map) => {
                let mut cost = 30.0;
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        cost += self.visit(&entry.key)?.cost + self.visit(&entry.value)?.cost;
                    }
                }
                Ok(Estimate::new(
                    Ty::Map(Box::new(Ty::Dyn)),
                    cost,
                    map.entries.len() as f64,
                ))
            }
            Expr::Call(call) => self.call(expr.id, call),
            Expr::Comprehension(c) => self.comprehension(c),
            Expr::Struct(_) | Expr::Unspecified => {
                Err((expr.id, "unsupported expression".to_string()))
            }
        }
    }

    fn ident(&mut self, id: u64, name: &str) -> Result<Estimate<'s>, Failure> {
        if let Some((_, estimate)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            let mut estimate = estimate.clone();
            estimate.cost = 1.0;
            return Ok(estimate);
        }
        match name {
            "self" => Ok(sized(Ty::Schema(self.schema), 1.0)),
            "oldSelf" => {
                self.uses_old_self = true;
                let ty = Ty::Schema(self.schema);
                let ty = if self.optional_old_self {
                    Ty::Optional(Box::new(ty))
                } else {
                    ty
                };
                Ok(Estimate::new(ty, 1.0, schema_size(self.schema)))
            }
            _ if super::value::TYPE_NAMES.contains(&name) => {
                Ok(Estimate::new(Ty::Prim("type"), 1.0, 1.0))
            }
            _ => Err((
                id,
                format!("undeclared reference to '{name}' (in container '')"),
            )),
        }
    }

    /// The type of `operand.field`, or cel-go's `undefined field` for a schema without it.
    fn field(&self, id: u64, operand: &Ty<'s>, field: &str) -> Result<Ty<'s>, Failure> {
        match operand {
            Ty::Schema(schema) => {
                if let Some(child) = schema.get("properties").and_then(|p| p.get(field)) {
                    return Ok(Ty::Schema(child));
                }
                if let Some(additional) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    return Ok(Ty::Schema(additional));
                }
                let open = schema.get("x-kubernetes-preserve-unknown-fields")
                    == Some(&Json::Bool(true))
                    || schema_type(schema).is_none()
                    || schema.get("additionalProperties") == Some(&Json::Bool(true));
                if open {
                    Ok(Ty::Dyn)
                } else {
                    Err((id, format!("undefined field '{field}'")))
                }
            }
            Ty::Map(value) => Ok((**value).clone()),
            Ty::Optional(inner) => Ok(Ty::Optional(Box::new(self.field(id, inner, field)?))),
            _ => Ok(Ty::Dyn),
        }
    }

    fn call(
        &mut self,
        id: u64,
        call: &cel::common::ast::CallExpr,
    ) -> Result<Estimate<'s>, Failure> {
        // `optional.of(...)`: a namespace, not a receiver.
        let namespaced = match call.target.as_deref() {
            Some(IdedExpr {
                expr: Expr::Ident(namespace),
                ..
            }) if !self.scope.iter().any(|(n, _)| n == namespace)
                && namespace != "self"
                && namespace != "oldSelf" =>
            {
                Some(format!("{namespace}.{}", call.func_name))
            }
            _ => None,
        };
        let name = namespaced.as_deref().unwrap_or(&call.func_name);
        if !library::is_known(name) {
            return Err((
                id,
                format!("undeclared reference to '{name}' (in container '')"),
            ));
        }
        let receiver = match (&namespaced, call.target.as_deref()) {
            (None, Some(target)) => Some(self.visit(target)?),
            _ => None,
        };
        let mut args = Vec::with_capacity(call.args.len());
        for a in &call.args {
            args.push(self.visit(a)?);
        }
        let mut cost = 1.0
            + receiver.as_ref().map_or(0.0, |r| r.cost)
            + args.iter().map(|a| a.cost).sum::<f64>();
        let first = receiver.as_ref().or(args.first());
        let first_size = first.map_or(1.0, |f| f.size);
        let traversal = |size: f64| (size / 10.0).ceil();
        let result = match name {
            "_&&_"
            | "_||_"
            | "!_"
            | "@not_strictly_false"
            | "_<_"
            | "_<=_"
            | "_>_"
            | "_>=_"
            | "startsWith"
            | "endsWith"
            | "isURL"
            | "isQuantity"
            | "hasValue"
            | "isInteger"
            | "isGreaterThan"
            | "isLessThan" => Estimate::new(Ty::Prim("bool"), cost, 1.0),
            "_==_" | "_!=_" => {
                let smaller = args.iter().map(|a| a.size).fold(f64::MAX, f64::min);
                cost += traversal(smaller);
                Estimate::new(Ty::Prim("bool"), cost, 1.0)
            }
            "contains" => {
                cost += traversal(first_size);
                Estimate::new(Ty::Prim("bool"), cost, 1.0)
            }
            "matches" => {
                let pattern = args.last().map_or(1.0, |a| a.size);
                cost += traversal(first_size * pattern);
                Estimate::new(Ty::Prim("bool"), cost, 1.0)
            }
            "@in" => {
                cost += args.get(1).map_or(1.0, |a| a.size);
                Estimate::new(Ty::Prim("bool"), cost, 1.0)
            }
            "size" | "int" | "indexOf" | "lastIndexOf" | "sign" | "asInteger" | "compareTo" => {
                cost += match first.map(|f| &f.ty) {
                    Some(Ty::Prim("string")) => traversal(first_size),
                    Some(Ty::Schema(s)) if schema_type(s) == Some("string") => {
                        traversal(first_size)
                    }
                    _ if name == "indexOf" || name == "lastIndexOf" => first_size,
                    _ => 0.0,
                };
                Estimate::new(Ty::Prim("int"), cost, 1.0)
            }
            "lowerAscii" | "upperAscii" | "trim" | "string" | "charAt" | "substring"
            | "strings.quote" | "getScheme" | "getHost" | "getHostname" | "getPort"
            | "getEscapedPath" | "find" => {
                cost += traversal(first_size);
                Estimate::new(Ty::Prim("string"), cost, first_size)
            }
            "replace" => {
                let grows = args.get(1).map_or(1.0, |a| a.size).max(1.0);
                cost += traversal(first_size * grows);
                Estimate::new(Ty::Prim("string"), cost, first_size * grows)
            }
            "split" | "findAll" => {
                cost += first_size;
                Estimate::new(Ty::List(Box::new(Ty::Prim("string"))), cost, first_size)
            }
            "join" => {
                cost += first_size;
                Estimate::new(Ty::Prim("string"), cost, MAX_REQUEST_SIZE)
            }
            "_+_" => {
                let size: f64 = args.iter().map(|a| a.size).sum();
                cost += traversal(size);
                let ty = args.first().map_or(Ty::Dyn, |a| a.ty.clone());
                Estimate::new(ty, cost, size)
            }
            "_[_]" => {
                let ty = element(&args[0].ty);
                sized(ty, cost)
            }
            "_[?_]" | "_?._" => {
                let ty = match (&args[0].ty, name) {
                    (container, "_?._") => {
                        let field = match &call.args[1].expr {
                            Expr::Literal(LiteralValue::String(s)) => s.inner().to_string(),
                            _ => String::new(),
                        };
                        self.field(id, container, &field)?
                    }
                    (container, _) => element(container),
                };
                let inner = sized(ty, cost);
                Estimate::new(Ty::Optional(Box::new(inner.ty)), cost, inner.size)
            }
            "_?_:_" => {
                let then = &args[1];
                let otherwise = &args[2];
                Estimate::new(then.ty.clone(), cost, then.size.max(otherwise.size))
            }
            "isSorted" | "sum" | "min" | "max" => {
                cost += first_size;
                let ty = first.map_or(Ty::Dyn, |f| element(&f.ty));
                let ty = if name == "isSorted" {
                    Ty::Prim("bool")
                } else {
                    ty
                };
                Estimate::new(ty, cost, 1.0)
            }
            "value" | "orValue" => {
                let ty = match first.map(|f| &f.ty) {
                    Some(Ty::Optional(inner)) => (**inner).clone(),
                    _ => Ty::Dyn,
                };
                Estimate::new(ty, cost, first_size)
            }
            "optional.of" | "optional.ofNonZeroValue" => {
                let inner = first.map_or(Ty::Dyn, |f| f.ty.clone());
                Estimate::new(Ty::Optional(Box::new(inner)), cost, first_size)
            }
            "optional.none" | "or" => {
                Estimate::new(Ty::Optional(Box::new(Ty::Dyn)), cost, first_size)
            }
            "double" | "asApproximateFloat" => Estimate::new(Ty::Prim("double"), cost, 1.0),
            "uint" => Estimate::new(Ty::Prim("uint"), cost, 1.0),
            _ => Estimate::new(Ty::Dyn, cost, first_size),
        };
        Ok(result)
    }

    fn comprehension(
        &mut self,
        c: &cel::common::ast::ComprehensionExpr,
    ) -> Result<Estimate<'s>, Failure> {
        let range = self.visit(&c.iter_range)?;
        let iterations = range.size;
        let item = match &range.ty {
            Ty::Schema(s) if schema_type(s) == Some("object") => Ty::Prim("string"),
            Ty::Map(_) => Ty::Prim("string"),
            other => element(other),
        };
        let init = self.visit(&c.accu_init)?;
        let accumulates_list = matches!(init.ty, Ty::List(_));
        let mut accumulator = init.clone();
        if accumulates_list {
            accumulator.size = iterations;
        }
        self.scope.push((c.accu_var.clone(), accumulator));
        self.scope.push((c.iter_var.clone(), sized(item, 0.0)));
        let body = (|| {
            let condition = self.visit(&c.loop_cond)?;
            let step = self.visit(&c.loop_step)?;
            Ok::<_, Failure>((condition, step))
        })();
        self.scope.pop();
        let body = body.inspect_err(|_| {
            self.scope.pop();
        })?;
        let result = self.visit(&c.result);
        self.scope.pop();
        let result = result?;
        let (condition, step) = body;
        let cost =
            range.cost + init.cost + iterations * (condition.cost + step.cost + 1.0) + result.cost;
        if accumulates_list {
            let element_ty = match &step.ty {
                Ty::List(e) => (**e).clone(),
                _ => Ty::Dyn,
            };
            return Ok(Estimate::new(
                Ty::List(Box::new(element_ty)),
                cost,
                iterations,
            ));
        }
        Ok(Estimate::new(result.ty, cost, result.size))
    }
}

/// A type with the worst-case size its schema allows.
fn sized(ty: Ty<'_>, cost: f64) -> Estimate<'_> {
    let size = match &ty {
        Ty::Schema(s) => schema_size(s),
        Ty::Optional(inner) => match inner.as_ref() {
            Ty::Schema(s) => schema_size(s),
            _ => MAX_REQUEST_SIZE,
        },
        Ty::Prim("string") | Ty::Prim("bytes") | Ty::Dyn | Ty::List(_) | Ty::Map(_) => {
            MAX_REQUEST_SIZE
        }
        Ty::Prim(_) => 1.0,
    };
    Estimate::new(ty, cost, size)
}

/// The type of an element of a list (or a value of a map).
fn element<'s>(container: &Ty<'s>) -> Ty<'s> {
    match container {
        Ty::Schema(s) => match schema_type(s) {
            Some("array") => s.get("items").map_or(Ty::Dyn, Ty::Schema),
            Some("object") => s
                .get("additionalProperties")
                .filter(|a| a.is_object())
                .map_or(Ty::Dyn, Ty::Schema),
            _ => Ty::Dyn,
        },
        Ty::List(e) | Ty::Map(e) => (**e).clone(),
        _ => Ty::Dyn,
    }
}
