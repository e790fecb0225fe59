//! Expressions over JSON values through minijinja, keeping JSON types:
//! an expression yields a value (a list stays a list), not its string.

use minijinja::Environment;
use serde_json::Value;

/// Why an expression could not be evaluated.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("expression '{expression}': {reason}")]
pub struct TemplateError {
    pub expression: String,
    pub reason: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
}

/// Evaluates one expression (without `{{ }}`) against a JSON context object.
pub fn eval_expression(expression: &str, context: &Value) -> Result<Value, TemplateError> {
    let fail = |e: &dyn std::fmt::Display| TemplateError {
        expression: expression.to_string(),
        reason: e.to_string(),
    };
    let env = environment();
    let compiled = env.compile_expression(expression).map_err(|e| fail(&e))?;
    let value = compiled
        .eval(minijinja::Value::from_serialize(context))
        .map_err(|e| fail(&e))?;
    serde_json::to_value(&value).map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    fn names_the_problem() {
        let err = eval_expression("data.(", &json!({})).unwrap_err();
        assert_eq!(err.expression, "data.(");
        assert!(!err.reason.is_empty());
        assert!(eval_expression("missing.field", &json!({})).is_err());
    }
}
