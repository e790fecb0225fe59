//! Entry points of the cargo-fuzz targets (`fuzz/`), here so the Rust tests can replay any
//! input the fuzzer found as a regression test. Each takes arbitrary bytes and must never
//! panic, hang or exhaust memory, whatever they hold.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use crate::api::convert_definition::{definition_from_proto, definition_to_proto};
use crate::cli::definition_file::DefinitionFile;
use crate::engine::declarative::DeclarativeWorkflow;
use crate::engine::definition::{
    DefinitionLimits, ResolvedWorkflow, Subject, WorkflowResolver, validate,
};
use crate::proto::register_request::Source;
use crate::template;
use crate::tools::{ToolManager, builtin};

/// A server with the built-in tools and no registered workflow.
fn tools() -> &'static ToolManager {
    static TOOLS: OnceLock<ToolManager> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let tools = ToolManager::new();
        let datasets = builtin::DatasetCatalog::new(Default::default(), None, 1 << 20);
        builtin::register_all(
            &tools,
            Arc::new(datasets),
            std::time::Duration::from_secs(1),
        );
        tools
    })
}

struct NoWorkflows;

impl WorkflowResolver for NoWorkflows {
    fn resolve(&self, _name: &str, _version: u32) -> Option<ResolvedWorkflow> {
        None
    }
}

/// A definition file's text (JSON when it starts with `{`, else YAML) through every step of
/// `wfm register -f` and the server's registration: parse, to protobuf, back to the domain,
/// validate, build. A definition the server accepts must survive the protobuf round trip
/// unchanged, as it does when it is stored and listed.
pub fn definition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let is_json = text.trim_start().starts_with('{');
    let Ok(file) = DefinitionFile::parse(text, is_json) else {
        return;
    };
    let Ok(request) = file.into_request(Some("fuzz".into()), String::new(), Default::default(), 0)
    else {
        return;
    };
    let Some(Source::Definition(proto)) = request.source else {
        return;
    };
    let Ok(definition) = definition_from_proto(proto) else {
        return;
    };
    let limits = DefinitionLimits {
        max_steps: 1000,
        max_depth: 8,
    };
    let subject = Subject {
        name: "fuzz",
        version: 1,
        restored: false,
    };
    if validate(&definition, &subject, tools(), &NoWorkflows, &limits).is_err() {
        return;
    }
    let back = definition_from_proto(definition_to_proto(&definition))
        .expect("an accepted definition converts back");
    assert_eq!(
        back, definition,
        "the protobuf round trip changed the definition"
    );
    let _ = DeclarativeWorkflow::new(Arc::new(definition));
}

/// A template, optionally followed by a NUL byte and a JSON context, through the checks
/// done at registration and the evaluations done at run time.
pub fn template(data: &[u8]) {
    let (text, context) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let context = serde_json::from_slice::<Value>(context)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| {
            json!({
                "input": {"n": 3, "rows": [1, 2, 3], "name": "x", "text": "{\"a\": [1]}"},
                "steps": {"fetch": {"output": {"rows": [{"a": 1}]}, "status": "completed"}},
                "item": 2,
                "index": 1,
            })
        });
    let _ = template::check_value(&Value::String(text.to_string()));
    let _ = template::check_expression(text);
    if let Ok(v) = template::render_string(text, &context) {
        let _ = template::truthy(&v);
    }
    if let Ok(v) = template::eval(text, &context) {
        let _ = template::truthy(&v);
    }
}
