//! Expressions over JSON values through minijinja, keeping JSON types:
//! an expression yields a value (a list stays a list), not its string.
//!
//! Templates inside JSON values: a string that is exactly one `{{ expression }}` (or
//! `{{- expression -}}`) yields the expression's value with its JSON type; a string mixing text and `{{ }}` or `{% %}`
//! renders to a string; any other string stays as it is.

mod bounds;

use std::collections::BTreeSet;
use std::sync::LazyLock;

use minijinja::Environment;
use serde_json::Value;

pub use bounds::{TEMPLATE_MAX_FILTER_COUNT, TEMPLATE_MAX_FILTER_ITEMS, TEMPLATE_MAX_VALUE_BYTES};

/// Why an expression could not be evaluated.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("expression '{expression}': {reason}")]
pub struct TemplateError {
    pub expression: String,
    pub reason: String,
}

/// Work one evaluation may do (minijinja's fuel): one per instruction, plus the bytes and
/// items the engine builds and walks (about 64 bytes per fuel). A template that loops for
/// ever, nests loops over large ranges or builds huge values fails instead of holding a
/// worker thread or ~640 MB, as ten million would allow; two million is ~128 MB.
pub const TEMPLATE_FUEL: u64 = 2_000_000;

/// The one environment every evaluation shares: fuel is counted per evaluation, and
/// building it (some fifty filters) once keeps a step's templates cheap.
static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL));
    bounds::bound_filters(&mut env);
    // `{{ value }}` in text: measured first, since writing a lazily repeated sequence
    // walks every item however early the output stops taking them.
    env.set_formatter(|out, state, value| {
        bounds::measure(value)?;
        minijinja::escape_formatter(out, state, value)
    });
    env.add_filter("fromjson", fromjson);
    env
});

fn environment() -> &'static Environment<'static> {
    &ENVIRONMENT
}

/// `text | fromjson`: parses JSON text, e.g. an MCP tool's text content. A value that is
/// not a string (structured content already) passes through unchanged.
fn fromjson(value: minijinja::Value) -> Result<minijinja::Value, minijinja::Error> {
    let Some(text) = value.as_str() else {
        return Ok(value);
    };
    if text.len() > TEMPLATE_MAX_VALUE_BYTES {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("fromjson: the text is longer than {TEMPLATE_MAX_VALUE_BYTES} bytes"),
        ));
    }
    serde_json::from_str::<Value>(text)
        .map(|v| minijinja::Value::from(minijinja::value::Serde(&v)))
        .map_err(|e| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("fromjson: not JSON: {e}"),
            )
        })
}

/// Compiles a bare expression. minijinja's expression lexer panics ("empty lexer stack") on
/// an expression containing `}}` — found by the `template` fuzz target — so that is refused
/// first; and any other panic inside the template engine becomes an error, not a crash.
fn compile_expression<'s>(
    env: &'s Environment<'s>,
    expression: &'s str,
) -> Result<minijinja::Expression<'s, 's>, String> {
    if expression.contains("}}") {
        return Err("an expression cannot contain '}}' (in a string, write '}' ~ '}')".to_string());
    }
    guarded(|| {
        env.compile_expression(expression)
            .map_err(|e| e.to_string())
    })
}

/// Runs template-engine work, turning a panic inside it into an error.
fn guarded<T>(work: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|_| Err("the template engine failed on this template".to_string()))
}

/// Evaluates one expression (without `{{ }}`) against a JSON context object.
pub fn eval_expression(expression: &str, context: &Value) -> Result<Value, TemplateError> {
    let fail = |reason: String| TemplateError {
        expression: expression.to_string(),
        reason,
    };
    let compiled = compile_expression(environment(), expression).map_err(fail)?;
    guarded(|| {
        let value = compiled
            .eval(minijinja::Value::from(minijinja::value::Serde(context)))
            .map_err(|e| e.to_string())?;
        bounds::measure(&value).map_err(|e| e.to_string())?;
        serde_json::to_value(&value).map_err(|e| e.to_string())
    })
    .map_err(fail)
}

/// Renders a template with text around its tags to a string of at most
/// [`TEMPLATE_MAX_VALUE_BYTES`].
fn render_text(template: &str, context: &Value) -> Result<String, String> {
    guarded(|| {
        let compiled = environment()
            .template_from_str(template)
            .map_err(|e| e.to_string())?;
        let mut out = bounds::BoundedText::default();
        let rendered = compiled.render_captured_to(
            minijinja::Value::from(minijinja::value::Serde(context)),
            &mut out,
        );
        if out.overflowed {
            return Err(bounds::render_too_large());
        }
        rendered.map_err(|e| e.to_string())?;
        String::from_utf8(out.text).map_err(|e| e.to_string())
    })
}

/// How a string is read as a template.
enum Form<'a> {
    /// Exactly one `{{ expression }}`: its value keeps its type.
    Expression(&'a str),
    /// Text with template tags: renders to a string.
    Template(&'a str),
    /// No template at all.
    Literal,
}

fn form(text: &str) -> Form<'_> {
    let trimmed = text.trim();
    if let Some(inner) = trimmed
        .strip_prefix("{{")
        .and_then(|rest| rest.strip_suffix("}}"))
        && !inner.contains("{{")
        && !inner.contains("}}")
    {
        // `{{-` / `-}}` (and `+`) only say what happens to the text around the tag, and
        // there is none: the value is the expression's, as without them.
        let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
        let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
        return Form::Expression(inner.trim());
    }
    if text.contains("{{") || text.contains("{%") {
        Form::Template(text)
    } else {
        Form::Literal
    }
}

/// Renders every template string inside `value` (object keys are left alone).
pub fn render_value(value: &Value, context: &Value) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => render_string(s, context)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, context)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// Renders one string: one expression keeps its type, mixed text becomes a string.
pub fn render_string(text: &str, context: &Value) -> Result<Value, TemplateError> {
    match form(text) {
        Form::Expression(e) => eval_expression(e, context),
        Form::Template(t) => render_text(t, context)
            .map(Value::String)
            .map_err(|reason| TemplateError {
                expression: t.to_string(),
                reason,
            }),
        Form::Literal => Ok(Value::String(text.to_string())),
    }
}

/// Why a condition or list expression with text around its `{{ }}` is refused: it would
/// render to a string, so a condition would always be true and a list never a list.
const TEXT_AROUND_EXPRESSION: &str = "text around {{ }} renders to a string, not the expression's value: write the whole expression inside one {{ }}, like \"{{ input.count > 3 }}\", or as a bare expression";

/// Whether a condition or list expression has text around its `{{ }}` (or uses `{% %}`),
/// which [`eval`] and [`check_expression`] refuse.
pub fn has_text_around(text: &str) -> bool {
    matches!(form(text), Form::Template(_))
}

/// The expression of a condition or list expression: itself when bare, the inside of its
/// one `{{ }}` otherwise; `None` for text around `{{ }}`.
pub fn expression_of(text: &str) -> Option<&str> {
    match form(text) {
        Form::Literal => Some(text.trim()),
        Form::Expression(e) => Some(e),
        Form::Template(_) => None,
    }
}

/// Evaluates a condition or list expression, written bare (`input.n > 2`) or as one
/// `{{ expression }}`. Text around `{{ }}` is an error, not a string: definitions stored
/// before registration refused it still load, and fail the step here instead.
pub fn eval(text: &str, context: &Value) -> Result<Value, TemplateError> {
    match form(text) {
        Form::Literal => eval_expression(text, context),
        Form::Expression(e) => eval_expression(e, context),
        Form::Template(_) => Err(text_around(text)),
    }
}

fn text_around(text: &str) -> TemplateError {
    TemplateError {
        expression: text.to_string(),
        reason: TEXT_AROUND_EXPRESSION.to_string(),
    }
}

/// Truthiness of a JSON value as a condition: null, false, 0, "", "false", [] and {} are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !(s.is_empty() || s.eq_ignore_ascii_case("false")),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Compiles every template inside `value` without running it; returns the variables they
/// read (dotted, e.g. `steps.fetch.output`), or the first that does not parse.
pub fn check_value(value: &Value) -> Result<BTreeSet<String>, TemplateError> {
    let mut vars = BTreeSet::new();
    check_into(value, &mut vars)?;
    Ok(vars)
}

/// Like [`check_value`] for a condition or list expression (see [`eval`]).
pub fn check_expression(text: &str) -> Result<BTreeSet<String>, TemplateError> {
    match form(text) {
        Form::Literal => check_one(&Form::Expression(text), text),
        Form::Template(_) => Err(text_around(text)),
        f => check_one(&f, text),
    }
}

fn check_into(value: &Value, vars: &mut BTreeSet<String>) -> Result<(), TemplateError> {
    match value {
        Value::String(s) => vars.extend(check_one(&form(s), s)?),
        Value::Array(items) => {
            for v in items {
                check_into(v, vars)?;
            }
        }
        Value::Object(map) => {
            for v in map.values() {
                check_into(v, vars)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_one(form: &Form<'_>, text: &str) -> Result<BTreeSet<String>, TemplateError> {
    let fail = |reason: String| TemplateError {
        expression: text.to_string(),
        reason,
    };
    let env = environment();
    Ok(match form {
        Form::Expression(e) => {
            let compiled = compile_expression(env, e).map_err(fail)?;
            guarded(|| Ok(compiled.undeclared_variables(true)))
                .map_err(fail)?
                .into_iter()
                .collect()
        }
        Form::Template(t) => guarded(|| {
            env.template_from_str(t)
                .map(|t| t.undeclared_variables(true))
                .map_err(|e| e.to_string())
        })
        .map_err(fail)?
        .into_iter()
        .collect(),
        Form::Literal => BTreeSet::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_values_keeping_types() {
        let ctx = json!({"input": {"id": 7, "rows": [1, 2]}});
        let v = json!({"a": "{{ input.rows }}", "b": "id={{ input.id }}", "c": ["{{ input.id + 1 }}", 5], "d": "plain"});
        assert_eq!(
            render_value(&v, &ctx).unwrap(),
            json!({"a": [1, 2], "b": "id=7", "c": [8, 5], "d": "plain"})
        );
        assert_eq!(eval("input.id > 3", &ctx).unwrap(), json!(true));
        assert_eq!(eval("{{ input.rows | length }}", &ctx).unwrap(), json!(2));
        assert!(!truthy(&json!("false")) && truthy(&json!([0])));
        let ctx = json!({"text": "{\"a\": [1]}"});
        assert_eq!(eval("(text | fromjson).a", &ctx).unwrap(), json!([1]));
        let ctx = json!({"obj": {"a": 2}});
        assert_eq!(eval("(obj | fromjson).a", &ctx).unwrap(), json!(2));
    }

    #[test]
    fn a_condition_with_text_around_its_braces_is_refused_not_truthy() {
        // It used to render to the string "1 > 3", which is true as a condition.
        let ctx = json!({"input": {"count": 1}});
        for text in [
            "{{ input.count }} > 3",
            "n={{ input.count }}",
            "{% if true %}1{% endif %}",
        ] {
            assert!(has_text_around(text), "{text}");
            let err = check_expression(text).unwrap_err();
            assert!(err.reason.contains("inside one {{ }}"), "{}", err.reason);
            let err = eval(text, &ctx).unwrap_err();
            assert_eq!(err.expression, text);
            assert!(err.reason.contains("renders to a string"), "{}", err.reason);
        }
        assert_eq!(eval("{{ input.count > 3 }}", &ctx).unwrap(), json!(false));
        assert_eq!(eval("input.count > 3", &ctx).unwrap(), json!(false));
    }

    #[test]
    fn whitespace_control_keeps_a_whole_value() {
        let ctx = json!({"steps": {"a": {"output": {"f": [1, 2]}}}});
        for text in [
            "{{- steps.a.output.f -}}",
            "{{- steps.a.output.f }}",
            "{{ steps.a.output.f -}}",
            "{{+ steps.a.output.f +}}",
        ] {
            assert_eq!(render_string(text, &ctx).unwrap(), json!([1, 2]), "{text}");
            assert_eq!(eval(text, &ctx).unwrap(), json!([1, 2]), "{text}");
            assert_eq!(expression_of(text), Some("steps.a.output.f"));
            let vars = check_value(&json!(text)).unwrap();
            assert!(vars.contains("steps.a.output.f"), "{text}: {vars:?}");
        }
        // Inside text the markers trim as minijinja does.
        assert_eq!(
            render_string("a  {{- 1 -}}  b", &json!({})).unwrap(),
            json!("a1b")
        );
        // A minus that is part of the expression is kept.
        assert_eq!(eval("{{ 5 - 2 }}", &json!({})).unwrap(), json!(3));
    }

    #[test]
    fn checks_without_running() {
        let vars = check_value(&json!({"x": "{{ steps.fetch.output.rows | length }}", "y": "{% if input.a %}1{% endif %}"})).unwrap();
        assert!(vars.contains("steps.fetch.output.rows"), "{vars:?}");
        assert!(vars.contains("input.a"), "{vars:?}");
        assert!(check_value(&json!("{{ steps.( }}")).is_err());
        assert!(check_expression("input.n >").is_err());
    }

    #[test]
    fn keeps_json_types() {
        let ctx = json!({"data": {"rows": [1, 2, 3], "name": "x"}});
        assert_eq!(
            eval_expression("data.rows | length", &ctx).unwrap(),
            json!(3)
        );
        assert_eq!(
            eval_expression("data.rows", &ctx).unwrap(),
            json!([1, 2, 3])
        );
        assert_eq!(
            eval_expression("data.name ~ '!'", &ctx).unwrap(),
            json!("x!")
        );
    }

    #[test]
    fn an_expression_with_a_closing_brace_pair_is_an_error_not_a_panic() {
        // Found by the `template` fuzz target: minijinja's expression lexer panicked.
        for text in ["ig.status }}", "a }} b", "}}"] {
            assert!(check_expression(text).is_err(), "{text}");
            let err = eval(text, &json!({"ig": {"status": 1}})).unwrap_err();
            assert!(err.reason.contains("cannot contain '}}'"), "{}", err.reason);
        }
        assert_eq!(
            eval_expression("'}' ~ '}'", &json!({})).unwrap(),
            json!("}}")
        );
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let started = std::time::Instant::now();
        let err = render_string(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            &json!({}),
        )
        .unwrap_err();
        assert!(err.reason.contains("out of fuel"), "{}", err.reason);
        let err = eval_expression("range(100000) | map('string') | join | length", &json!({}));
        assert!(
            err.is_ok(),
            "an ordinary large expression still runs: {err:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn names_the_problem() {
        let err = eval_expression("data.(", &json!({})).unwrap_err();
        assert_eq!(err.expression, "data.(");
        assert!(!err.reason.is_empty());
        assert!(eval_expression("missing.field", &json!({})).is_err());
    }
}
