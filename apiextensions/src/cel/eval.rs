//! A tree-walking evaluator over the parsed (macro-expanded) CEL AST, with a cost meter
//! that every step charges, so that a rule's evaluation stops at its cost limit instead of
//! running on: kube's `cel.CostLimit` with cel-go's runtime cost tracking.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use super::library;
use super::value::{Key, Value};

/// Why an evaluation stopped without a value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EvalError {
    /// The per-call cost limit was reached: kube stops all further rules.
    CostLimit,
    /// Anything else: `no such key: x`, `no such overload`, `division by zero`, ...
    Failed(String),
}

pub(crate) type EvalResult = Result<Value, EvalError>;

pub(crate) fn fail<T>(message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::Failed(message.into()))
}

pub(crate) fn no_such_overload<T>() -> Result<T, EvalError> {
    fail("no such overload")
}

/// Counts the cost of an evaluation, as cel-go's tracker does: one a node, plus the
/// size-proportional charges of functions that walk strings and lists.
pub(crate) struct Meter {
    pub(crate) spent: u64,
    pub(crate) limit: u64,
}

impl Meter {
    pub(crate) fn charge(&mut self, cost: u64) -> Result<(), EvalError> {
        self.spent = self.spent.saturating_add(cost);
        if self.spent > self.limit {
            Err(EvalError::CostLimit)
        } else {
            Ok(())
        }
    }
}

/// One evaluation: the variables in scope (innermost last) and the meter.
pub(crate) struct Evaluator<'a> {
    scope: Vec<(&'a str, Value)>,
    pub(crate) meter: Meter,
    regexes: &'a library::RegexCache,
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(
        variables: Vec<(&'a str, Value)>,
        limit: u64,
        regexes: &'a library::RegexCache,
    ) -> Self {
        Evaluator {
            scope: variables,
            meter: Meter { spent: 0, limit },
            regexes,
        }
    }

    fn lookup(&self, name: &str) -> Option<&Value> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    pub(crate) fn eval(&mut self, expr: &'a IdedExpr) -> EvalResult {
        match &expr.expr {
            Expr::Literal(literal) => Ok(literal_value(literal)),
            Expr::Ident(name) => {
                self.meter.charge(1)?;
                match self.lookup(name) {
                    Some(v) => Ok(v.clone()),
                    None => match super::value::TYPE_NAMES.iter().find(|t| **t == name) {
                        Some(t) => Ok(Value::Type(t)),
                        None => fail(format!("no such attribute(s): {name}")),
                    },
                }
            }
            Expr::Select(select) => {
                self.meter.charge(1)?;
                let operand = self.eval(&select.operand)?;
                if select.test {
                    has_field(&operand, &select.field)
                } else {
                    select_field(&operand, &select.field)
                }
            }
            Expr::List(list) => {
                self.meter.charge(10)?;
                let mut items = Vec::with_capacity(list.elements.len());
                for (i, element) in list.elements.iter().enumerate() {
                    let value = self.eval(element)?;
                    if list.optional_indices.contains(&i) {
                        match value {
                            Value::Optional(Some(v)) => items.push((*v).clone()),
                            Value::Optional(None) => {}
                            _ => return no_such_overload(),
                        }
                    } else {
                        items.push(value);
                    }
                }
                Ok(Value::List(Arc::new(items)))
            }
            Expr::Map(map) => {
                self.meter.charge(30)?;
                let mut entries = BTreeMap::new();
                for entry in &map.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        return fail("unsupported struct entry");
                    };
                    let key = self.eval(&entry.key)?;
                    let Some(key) = Key::from_value(&key) else {
                        return fail(format!("unsupported key type: {}", key.type_name()));
                    };
                    let value = self.eval(&entry.value)?;
                    let value = if entry.optional {
                        match value {
                            Value::Optional(Some(v)) => (*v).clone(),
                            Value::Optional(None) => continue,
                            _ => return no_such_overload(),
                        }
                    } else {
                        value
                    };
                    if entries.insert(key, value).is_some() {
                        return fail("Failed with repeated key");
                    }
                }
                Ok(Value::Map(Arc::new(entries)))
            }
            Expr::Call(call) => {
                self.meter.charge(1)?;
                self.call(&call.func_name, call.target.as_deref(), &call.args)
            }
            Expr::Comprehension(comprehension) => self.comprehension(comprehension),
            Expr::Struct(_) | Expr::Unspecified => fail("unsupported expression"),
        }
    }

    fn call(
        &mut self,
        name: &str,
        target: Option<&'a IdedExpr>,
        args: &'a [IdedExpr],
    ) -> EvalResult {
        // The operators that do not evaluate all their arguments first.
        match (name, args) {
            ("_&&_", [left, right]) => return self.logic(left, right, false),
            ("_||_", [left, right]) => return self.logic(left, right, true),
            ("_?_:_", [condition, then, otherwise]) => {
                return match self.eval(condition)? {
                    Value::Bool(true) => self.eval(then),
                    Value::Bool(false) => self.eval(otherwise),
                    _ => no_such_overload(),
                };
            }
            ("@not_strictly_false", [arg]) => {
                return Ok(Value::Bool(!matches!(
                    self.eval(arg),
                    Ok(Value::Bool(false))
                )));
            }
            _ => {}
        }
        // `optional.of(x)`, `math.greatest(...)`: a call on a namespace, not on a value.
        if let Some(target) = target
            && let Expr::Ident(namespace) = &target.expr
            && self.lookup(namespace).is_none()
        {
            let qualified = format!("{namespace}.{name}");
            let values = self.eval_all(args)?;
            return library::call(&qualified, None, values, &mut self.meter, self.regexes);
        }
        let receiver = match target {
            Some(target) => Some(self.eval(target)?),
            None => None,
        };
        let values = self.eval_all(args)?;
        library::call(name, receiver, values, &mut self.meter, self.regexes)
    }

    fn eval_all(&mut self, args: &'a [IdedExpr]) -> Result<Vec<Value>, EvalError> {
        args.iter().map(|a| self.eval(a)).collect()
    }

    /// `&&` and `||` are commutative over errors: `false && error` is false either way
    /// round, so an error on one side waits for the other.
    fn logic(&mut self, left: &'a IdedExpr, right: &'a IdedExpr, is_or: bool) -> EvalResult {
        let decisive = Value::Bool(is_or);
        let first = self.eval(left);
        if let Ok(Value::Bool(b)) = &first
            && *b == is_or
        {
            return Ok(decisive);
        }
        if let Err(EvalError::CostLimit) = first {
            return first;
        }
        let second = self.eval(right)?;
        match (&first, &second) {
            (_, Value::Bool(b)) if *b == is_or => Ok(decisive),
            (Ok(Value::Bool(_)), Value::Bool(_)) => Ok(Value::Bool(!is_or)),
            (Err(_), Value::Bool(_)) => first,
            _ => no_such_overload(),
        }
    }

    fn comprehension(&mut self, c: &'a cel::common::ast::ComprehensionExpr) -> EvalResult {
        let range = self.eval(&c.iter_range)?;
        let items: Vec<Value> = match &range {
            Value::List(list) => list.as_ref().clone(),
            Value::Map(map) => map.keys().map(Key::to_value).collect(),
            _ => return no_such_overload(),
        };
        let accumulator = self.eval(&c.accu_init)?;
        let append = appended_element(c);
        self.scope.push((c.accu_var.as_str(), accumulator));
        let accu_slot = self.scope.len() - 1;
        let result = (|| {
            for item in items {
                self.meter.charge(1)?;
                let condition = self.eval(&c.loop_cond)?;
                if matches!(condition, Value::Bool(false)) {
                    break;
                }
                self.scope.push((c.iter_var.as_str(), item));
                let step = match append {
                    // `map` and `filter` append to their accumulator: in place, not as a new
                    // list per element (which would be quadratic).
                    Some((guard, element)) => self.append_step(accu_slot, guard, element),
                    None => self.eval(&c.loop_step).map(|v| self.scope[accu_slot].1 = v),
                };
                self.scope.pop();
                step?;
            }
            self.eval(&c.result)
        })();
        self.scope.truncate(accu_slot);
        result
    }

    fn append_step(
        &mut self,
        accu_slot: usize,
        guard: Option<&'a IdedExpr>,
        element: &'a IdedExpr,
    ) -> Result<(), EvalError> {
        if let Some(guard) = guard {
            match self.eval(guard)? {
                Value::Bool(true) => {}
                Value::Bool(false) => return Ok(()),
                _ => return no_such_overload(),
            }
        }
        let value = self.eval(element)?;
        self.meter.charge(1)?;
        match &mut self.scope[accu_slot].1 {
            Value::List(list) => {
                Arc::make_mut(list).push(value);
                Ok(())
            }
            _ => no_such_overload(),
        }
    }
}

/// The shapes of the `map` and `filter` steps, `accu + [e]` and `p ? accu + [e] : accu`:
/// the optional guard and the appended element.
fn appended_element(
    c: &cel::common::ast::ComprehensionExpr,
) -> Option<(Option<&IdedExpr>, &IdedExpr)> {
    fn element_of(e: &IdedExpr) -> Option<&IdedExpr> {
        let Expr::Call(call) = &e.expr else {
            return None;
        };
        match &call.args.get(1)?.expr {
            Expr::List(list) if list.elements.len() == 1 && list.optional_indices.is_empty() => {
                Some(&list.elements[0])
            }
            _ => None,
        }
    }
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if *n == c.accu_var);
    let single_append = |e: &'_ IdedExpr| -> Option<()> {
        let Expr::Call(call) = &e.expr else {
            return None;
        };
        (call.func_name == "_+_" && call.args.len() == 2 && is_accu(&call.args[0])).then_some(())
    };
    if !matches!(&c.accu_init.expr, Expr::List(l) if l.elements.is_empty()) {
        return None;
    }
    let step = &c.loop_step;
    if single_append(step).is_some() {
        return element_of(step).map(|e| (None, e));
    }
    let Expr::Call(call) = &step.expr else {
        return None;
    };
    if call.func_name == "_?_:_"
        && call.args.len() == 3
        && single_append(&call.args[1]).is_some()
        && is_accu(&call.args[2])
    {
        return element_of(&call.args[1]).map(|e| (Some(&call.args[0]), e));
    }
    None
}

fn literal_value(literal: &LiteralValue) -> Value {
    match literal {
        LiteralValue::Boolean(b) => Value::Bool(*b.inner()),
        LiteralValue::Bytes(b) => Value::Bytes(Arc::from(b.inner())),
        LiteralValue::Double(d) => Value::Double(*d.inner()),
        LiteralValue::Int(i) => Value::Int(*i.inner()),
        LiteralValue::Null => Value::Null,
        LiteralValue::String(s) => Value::string(s.inner()),
        LiteralValue::UInt(u) => Value::Uint(*u.inner()),
    }
}

fn select_field(operand: &Value, field: &str) -> EvalResult {
    match operand {
        Value::Map(map) => match map.get(&Key::String(Arc::from(field))) {
            Some(v) => Ok(v.clone()),
            None => fail(format!("no such key: {field}")),
        },
        // `a.?b.c`: selecting on an optional keeps it optional.
        Value::Optional(None) => Ok(Value::Optional(None)),
        Value::Optional(Some(inner)) => match inner.as_ref() {
            Value::Map(map) => Ok(Value::Optional(
                map.get(&Key::String(Arc::from(field)))
                    .map(|v| Arc::new(v.clone())),
            )),
            _ => no_such_overload(),
        },
        _ => no_such_overload(),
    }
}

fn has_field(operand: &Value, field: &str) -> EvalResult {
    match operand {
        Value::Map(map) => Ok(Value::Bool(
            map.contains_key(&Key::String(Arc::from(field))),
        )),
        _ => no_such_overload(),
    }
}
