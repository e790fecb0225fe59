//! `wfm register -f FILE`: a declarative workflow in YAML or JSON, read straight into the
//! domain definition (the same field names as the protobuf message), then sent as proto.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::api::convert_definition::definition_to_proto;
use crate::engine::definition::{Definition, Step};
use crate::proto;

/// The file: the registration's metadata and the definition side by side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub max_concurrency: i32,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub input_schema: Option<Value>,
    #[serde(default)]
    pub output: Option<Value>,
}

impl DefinitionFile {
    /// Reads a `.json` file as JSON and anything else as YAML.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Self::parse(&text, is_json)
            .with_context(|| format!("{} is not a valid workflow definition", path.display()))
    }

    /// Parses a definition file's text, JSON or YAML; a repeated key in any object is refused,
    /// and so is a number that would not arrive as written.
    pub fn parse(text: &str, is_json: bool) -> anyhow::Result<Self> {
        let file: Self = if is_json {
            super::unique_keys::check_json(text)?;
            serde_json::from_str(text)?
        } else {
            super::unique_keys::check_yaml(text)?;
            serde_norway::from_str(text)?
        };
        // JSON text is YAML too: one walk finds what either would change on the way.
        let document: serde_norway::Value = serde_norway::from_str(text)?;
        if let Some((path, number)) = super::exact_numbers::first_unsendable_yaml(&document) {
            bail!(
                "{number} at {path} would not arrive as written: values travel as JSON numbers (doubles), which hold integers up to ±2^53 and no NaN or infinity; write it as a string"
            );
        }
        Ok(file)
    }

    /// The RegisterRequest of `wfm register -f`: each flag given replaces the file's value,
    /// even to clear or lower it (`--description ""`, `--max-concurrency 0`); `--label`s are
    /// added to the file's, replacing one of the same key.
    pub fn with_flags(
        mut self,
        name: Option<String>,
        description: Option<String>,
        labels: BTreeMap<String, String>,
        max_concurrency: Option<i32>,
    ) -> anyhow::Result<proto::RegisterRequest> {
        if let Some(description) = description {
            self.description = description;
        }
        if let Some(max_concurrency) = max_concurrency {
            self.max_concurrency = max_concurrency;
        }
        self.into_request(name, String::new(), labels, 0)
    }

    /// The RegisterRequest; `name` given wins over the file's, and so do a `description`
    /// that is not empty and a `max_concurrency` that is not 0 (see [`Self::with_flags`]
    /// for flags that may clear them).
    pub fn into_request(
        self,
        name: Option<String>,
        description: String,
        labels: BTreeMap<String, String>,
        max_concurrency: i32,
    ) -> anyhow::Result<proto::RegisterRequest> {
        let Some(name) = name.or(self.name) else {
            bail!("the workflow needs a name: give `name:` in the file or --name");
        };
        // The message holds one action per step: a step with both would lose one on the way.
        if let Some(step) = self
            .steps
            .iter()
            .find(|s| s.tool.is_some() && s.workflow.is_some())
        {
            bail!(
                "step '{}' has both `tool` and `workflow`; give exactly one",
                step.id
            );
        }
        // The message carries a schema as an object: another value would arrive wrapped as
        // {"value": ...}, a schema that accepts every input.
        if let Some(schema) = self.input_schema.as_ref().filter(|s| !s.is_object()) {
            bail!(
                "input_schema must be a JSON Schema object that accepts an object, like {{type: object}}; it is {schema}"
            );
        }
        for step in &self.steps {
            check_object(
                &step.id,
                "tool.arguments",
                step.tool.as_ref().map(|t| &t.arguments),
            )?;
            check_object(
                &step.id,
                "workflow.input",
                step.workflow.as_ref().map(|w| &w.input),
            )?;
        }
        let mut all_labels = self.labels;
        all_labels.extend(labels);
        let definition = Definition {
            steps: self.steps,
            input_schema: self.input_schema,
            output: self.output,
        };
        Ok(proto::RegisterRequest {
            name,
            description: if description.is_empty() {
                self.description
            } else {
                description
            },
            labels: all_labels.into_iter().collect(),
            max_concurrency: if max_concurrency == 0 {
                self.max_concurrency
            } else {
                max_concurrency
            },
            source: Some(proto::register_request::Source::Definition(
                definition_to_proto(&definition),
            )),
        })
    }
}

/// A step's arguments or child input travel as an object (google.protobuf.Struct): another
/// value would arrive wrapped as `{"value": ...}` and be checked and run as that.
fn check_object(step: &str, field: &str, value: Option<&Value>) -> anyhow::Result<()> {
    match value {
        None | Some(Value::Null | Value::Object(_)) => Ok(()),
        Some(other) => bail!(
            "step '{step}': {field} must be an object of names to values, each of which may be a template, like {{n: \"{{{{ input.n }}}}\"}}; it is {other}"
        ),
    }
}
