//! Built-in tools: datasets, HTTP requests, sleep and JSON transforms.

mod dataset;
mod http;
mod sleep;
mod transform;

use std::sync::Arc;

pub use dataset::{DatasetCatalog, ListDatasets, ReadDataset};
pub use http::HttpRequest;
pub use sleep::Sleep;
pub use transform::JsonTransform;

use super::ToolManager;

/// Registers every built-in tool.
pub fn register_all(
    tools: &ToolManager,
    datasets: Arc<DatasetCatalog>,
    http_timeout: std::time::Duration,
) {
    tools.add(Arc::new(ReadDataset::new(datasets.clone())));
    tools.add(Arc::new(ListDatasets::new(datasets)));
    tools.add(Arc::new(HttpRequest::new(http_timeout)));
    tools.add(Arc::new(Sleep::new()));
    tools.add(Arc::new(JsonTransform::new()));
}

fn spec(name: &str, description: &str, input_schema: serde_json::Value) -> super::ToolSpec {
    super::ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        input_schema,
        server: "builtin".to_string(),
    }
}
