use async_trait::async_trait;
use serde_json::{Value, json};

use crate::template;
use crate::tools::{Tool, ToolError, ToolSpec, required_arg};

/// Evaluates an expression over JSON data, keeping JSON types: `data.rows | length`.
pub struct JsonTransform {
    spec: ToolSpec,
}

impl JsonTransform {
    pub fn new() -> Self {
        JsonTransform {
            spec: super::spec(
                "json_transform",
                "Evaluates a minijinja expression over `data` and returns its value with its JSON type, e.g. {\"data\": {\"a\": [1,2]}, \"expression\": \"data.a | length\"}.",
                json!({"type": "object", "required": ["expression"],
                       "properties": {"expression": {"type": "string"}, "data": {}}}),
            ),
        }
    }
}

impl Default for JsonTransform {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Tool for JsonTransform {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, arguments: Value) -> Result<Value, ToolError> {
        let expression: String = required_arg("json_transform", &arguments, "expression")?;
        let data = arguments.get("data").cloned().unwrap_or(Value::Null);
        template::eval_expression(&expression, &json!({ "data": data }))
            .map_err(|e| ToolError::invalid("json_transform", e))
    }
}
