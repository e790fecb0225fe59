//! Datasets the operator configured (CSV or JSON files), read by name, never by path:
//! a workflow cannot read arbitrary files of the server.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use crate::tools::{Tool, ToolError, ToolSpec, required_arg};

/// The datasets a server may read: names from the config plus every `*.csv` / `*.json`
/// file in the datasets directory (named by file stem).
pub struct DatasetCatalog {
    configured: BTreeMap<String, PathBuf>,
    dir: Option<PathBuf>,
    max_file_bytes: u64,
}

impl DatasetCatalog {
    pub fn new(
        configured: BTreeMap<String, PathBuf>,
        dir: Option<PathBuf>,
        max_file_bytes: u64,
    ) -> Self {
        DatasetCatalog {
            configured,
            dir,
            max_file_bytes,
        }
    }

    /// Every dataset name with its file, configured names first.
    pub fn all(&self) -> BTreeMap<String, PathBuf> {
        let mut all = BTreeMap::new();
        if let Some(dir) = &self.dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for entry in entries.flatten() {
                let path = entry.path();
                if let (Some(stem), Some(ext)) = (path.file_stem(), path.extension())
                    && (ext == "csv" || ext == "json")
                {
                    all.insert(stem.to_string_lossy().into_owned(), path.clone());
                }
            }
        }
        all.extend(self.configured.clone());
        all
    }

    pub fn path_of(&self, name: &str) -> Option<PathBuf> {
        self.all().remove(name)
    }

    /// Reads a dataset into `{name, columns, rows}`, rows being JSON objects.
    pub async fn read(&self, name: &str) -> Result<Value, ToolError> {
        const TOOL: &str = "read_dataset";
        let path = self.path_of(name).ok_or_else(|| {
            let known: Vec<String> = self.all().into_keys().collect();
            ToolError::invalid(
                TOOL,
                format!(
                    "dataset '{name}' is not configured (available: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| ToolError::failed(TOOL, format!("{}: {e}", path.display())))?;
        if meta.len() > self.max_file_bytes {
            return Err(ToolError::failed(
                TOOL,
                format!(
                    "dataset '{name}' is {} bytes; tools.max_dataset_bytes is {}",
                    meta.len(),
                    self.max_file_bytes
                ),
            ));
        }
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| ToolError::failed(TOOL, format!("{}: {e}", path.display())))?;
        let (columns, rows) = if is_json(&path) {
            parse_json(&bytes)
        } else {
            parse_csv(&bytes)
        }
        .map_err(|e| ToolError::failed(TOOL, format!("dataset '{name}': {e}")))?;
        Ok(json!({ "name": name, "columns": columns, "rows": rows }))
    }
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

/// CSV with a header row; cells that parse as numbers become numbers, empty cells null.
fn parse_csv(bytes: &[u8]) -> Result<(Vec<String>, Vec<Value>), String> {
    let mut reader = csv::Reader::from_reader(bytes);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let row: Map<String, Value> = columns
            .iter()
            .zip(record.iter())
            .map(|(c, cell)| (c.clone(), cell_value(cell)))
            .collect();
        rows.push(Value::Object(row));
    }
    Ok((columns, rows))
}

fn cell_value(cell: &str) -> Value {
    let trimmed = cell.trim();
    if trimmed.is_empty() {
        return Value::Null;
    }
    if let Ok(i) = trimmed.parse::<i64>() {
        return json!(i);
    }
    match trimmed.parse::<f64>() {
        Ok(f) if f.is_finite() => json!(f),
        _ => Value::String(cell.to_string()),
    }
}

/// A JSON array of objects; columns are the keys in order of first appearance.
fn parse_json(bytes: &[u8]) -> Result<(Vec<String>, Vec<Value>), String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let Value::Array(rows) = value else {
        return Err("a JSON dataset must be an array of objects".into());
    };
    let mut columns: Vec<String> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(obj) = row else {
            return Err(format!("row {i} is not an object"));
        };
        for key in obj.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    Ok((columns, rows))
}

/// `read_dataset {name}`: the rows of a configured dataset.
pub struct ReadDataset {
    spec: ToolSpec,
    catalog: Arc<DatasetCatalog>,
}

impl ReadDataset {
    pub fn new(catalog: Arc<DatasetCatalog>) -> Self {
        ReadDataset {
            spec: super::spec(
                "read_dataset",
                "Reads a dataset the operator configured (CSV or JSON) by name; returns {name, columns, rows}.",
                json!({"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}),
            ),
            catalog,
        }
    }
}

#[async_trait]
impl Tool for ReadDataset {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, arguments: Value) -> Result<Value, ToolError> {
        let name: String = required_arg("read_dataset", &arguments, "name")?;
        self.catalog.read(&name).await
    }
}

/// `list_datasets {}`: the names of the configured datasets.
pub struct ListDatasets {
    spec: ToolSpec,
    catalog: Arc<DatasetCatalog>,
}

impl ListDatasets {
    pub fn new(catalog: Arc<DatasetCatalog>) -> Self {
        ListDatasets {
            spec: super::spec(
                "list_datasets",
                "Lists the names of the datasets the operator configured.",
                json!({"type": "object", "properties": {}}),
            ),
            catalog,
        }
    }
}

#[async_trait]
impl Tool for ListDatasets {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, _arguments: Value) -> Result<Value, ToolError> {
        Ok(json!({ "datasets": self.catalog.all().into_keys().collect::<Vec<_>>() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_keep_numbers() {
        let (cols, rows) = parse_csv(b"region,amount,note\neu,12.5,\nus,7,x\n").unwrap();
        assert_eq!(cols, vec!["region", "amount", "note"]);
        assert_eq!(
            rows[0],
            json!({"region": "eu", "amount": 12.5, "note": null})
        );
        assert_eq!(rows[1]["amount"], json!(7));
    }

    #[test]
    fn json_must_be_rows() {
        assert!(parse_json(b"{\"a\":1}").is_err());
        assert!(parse_json(b"[1]").is_err());
        let (cols, _) = parse_json(b"[{\"a\":1},{\"b\":2}]").unwrap();
        assert_eq!(cols, vec!["a", "b"]);
    }
}
