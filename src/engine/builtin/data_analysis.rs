//! `data_analysis`, the seed's example: reads a dataset the operator configured through
//! the shared `read_dataset` tool and reports per-column statistics, one step per phase.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::stats::{ColumnStats, column_stats};
use crate::engine::{ExecutionContext, Workflow, WorkflowError, WorkflowType};
use crate::tools::ToolManager;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arguments {
    /// Most rows a dataset may have; a larger one fails the `validate` step.
    #[serde(default = "default_max_rows")]
    max_dataset_size: u64,
    /// Adds std dev and percentiles to every column.
    #[serde(default)]
    include_advanced_metrics: bool,
    /// Datasets that must exist for the workflow to be registered.
    #[serde(default)]
    required_datasets: Vec<String>,
}

fn default_max_rows() -> u64 {
    100_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    dataset: String,
    /// Only these columns; all numeric columns when absent.
    columns: Option<Vec<String>>,
}

struct DataAnalysis {
    tools: Arc<ToolManager>,
    args: Arguments,
}

#[async_trait]
impl Workflow for DataAnalysis {
    async fn initialize(&self) -> Result<(), WorkflowError> {
        for tool in ["read_dataset", "list_datasets"] {
            if !self.tools.contains(tool) {
                return Err(WorkflowError::Initialize(format!(
                    "the '{tool}' tool is not available"
                )));
            }
        }
        if self.args.required_datasets.is_empty() {
            return Ok(());
        }
        let listed = self
            .tools
            .call("list_datasets", json!({}))
            .await
            .map_err(|e| WorkflowError::Initialize(e.to_string()))?;
        let available: Vec<String> =
            serde_json::from_value(listed["datasets"].clone()).unwrap_or_default();
        let missing: Vec<&String> = self
            .args
            .required_datasets
            .iter()
            .filter(|d| !available.contains(d))
            .collect();
        if !missing.is_empty() {
            return Err(WorkflowError::Initialize(format!(
                "required datasets not configured: {} (available: {})",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                }
            )));
        }
        Ok(())
    }

    fn validate_input(&self, input: &Value) -> Result<(), WorkflowError> {
        super::parse_input::<Input>(input.clone()).map(|_| ())
    }

    async fn execute(&self, ctx: &ExecutionContext, input: Value) -> Result<Value, WorkflowError> {
        let input: Input = super::parse_input(input)?;
        let dataset = ctx
            .run_step("load", async {
                ctx.progress("load", format!("reading dataset '{}'", input.dataset), None)
                    .await?;
                ctx.call_tool("load", "read_dataset", json!({ "name": input.dataset }))
                    .await
            })
            .await?;
        let rows = dataset["rows"].as_array().cloned().unwrap_or_default();
        let all_columns: Vec<String> =
            serde_json::from_value(dataset["columns"].clone()).unwrap_or_default();

        let columns = ctx
            .run_step("validate", async {
                if rows.len() as u64 > self.args.max_dataset_size {
                    return Err(WorkflowError::Failed(format!(
                        "dataset '{}' has {} rows; max_dataset_size is {}",
                        input.dataset,
                        rows.len(),
                        self.args.max_dataset_size
                    )));
                }
                let wanted = input.columns.clone().unwrap_or_else(|| all_columns.clone());
                if let Some(unknown) = wanted.iter().find(|c| !all_columns.contains(c)) {
                    return Err(WorkflowError::InvalidInput(format!(
                        "column '{unknown}' is not in dataset '{}' (columns: {})",
                        input.dataset,
                        all_columns.join(", ")
                    )));
                }
                Ok(json!({ "rows": rows.len(), "columns": wanted }))
            })
            .await?;
        let columns: Vec<String> =
            serde_json::from_value(columns["columns"].clone()).unwrap_or_default();

        let stats = ctx
            .run_step("analyze", async {
                let mut stats: BTreeMap<String, ColumnStats> = BTreeMap::new();
                let mut non_numeric = Vec::new();
                for (i, column) in columns.iter().enumerate() {
                    let values: Vec<f64> = rows
                        .iter()
                        .filter_map(|r| r.get(column)?.as_f64())
                        .collect();
                    match column_stats(&values, self.args.include_advanced_metrics) {
                        Some(s) => {
                            stats.insert(column.clone(), s);
                        }
                        None => non_numeric.push(column.clone()),
                    }
                    let fraction = (i + 1) as f64 / columns.len() as f64;
                    ctx.progress("analyze", format!("column '{column}'"), Some(fraction))
                        .await?;
                }
                Ok(json!({ "columns": stats, "non_numeric_columns": non_numeric }))
            })
            .await?;

        ctx.run_step("report", async {
            Ok(json!({
                "dataset": input.dataset,
                "rows": rows.len(),
                "advanced_metrics": self.args.include_advanced_metrics,
                "columns": stats["columns"],
                "non_numeric_columns": stats["non_numeric_columns"],
            }))
        })
        .await
    }
}

pub fn workflow_type() -> WorkflowType {
    WorkflowType {
        name: "data_analysis",
        description: "Per-column count/mean/min/max (plus std dev and percentiles when include_advanced_metrics) of a configured dataset. Input: {dataset, columns?}. Steps: load, validate, analyze, report.",
        arguments_schema: json!({"type": "object", "additionalProperties": false, "properties": {
            "max_dataset_size": {"type": "integer", "minimum": 1, "default": 100000},
            "include_advanced_metrics": {"type": "boolean", "default": false},
            "required_datasets": {"type": "array", "items": {"type": "string"}}}}),
        factory: |tools: Arc<ToolManager>, args: &Value| {
            let args: Arguments = super::parse_arguments(args)?;
            if args.max_dataset_size == 0 {
                return Err(WorkflowError::InvalidArguments(
                    "max_dataset_size must be at least 1".into(),
                ));
            }
            Ok(Arc::new(DataAnalysis { tools, args }))
        },
    }
}
