//! Client subcommands: each is one or a few RPCs through the generated client.

use anyhow::{Context, bail};
use serde_json::Value;

use super::{Command, display, json};
use crate::api::convert;
use crate::proto;

use super::Target;
use super::exit::{self, Refused};
use crate::client::Client;

/// The `--label` flags as a map; a key given twice is refused (one of its values would be
/// dropped without a word).
fn unique_labels(
    labels: Vec<(String, String)>,
) -> Result<std::collections::BTreeMap<String, String>, Refused> {
    let mut map = std::collections::BTreeMap::new();
    for (key, value) in labels {
        if let Some(first) = map.insert(key.clone(), value.clone()) {
            return Err(Refused::new(format!(
                "--label {key} is given twice ({key}={first} and {key}={value}); give it once"
            )));
        }
    }
    Ok(map)
}

pub fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' is not key=value"))
}

fn connect_options(server: &Target) -> Result<crate::client::ConnectOptions, Refused> {
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path)
            .with_context(|| format!("{flag} {}", path.display()))
            .map_err(Refused)
    };
    let ca_pem = match &server.tls_ca {
        Some(path) => Some(read("--tls-ca", path)?),
        None => None,
    };
    let identity = match &server.tls_identity {
        Some((cert, key)) => Some((read("--tls-cert", cert)?, read("--tls-key", key)?)),
        None => None,
    };
    Ok(crate::client::ConnectOptions {
        token: server.token.clone(),
        ca_pem,
        identity,
    })
}

async fn connect(server: &Target) -> anyhow::Result<Client> {
    crate::client::connect(&server.url, connect_options(server)?)
        .await
        .map_err(exit::connect_error)
}

/// A JSON object given inline, or as `@FILE` (`@-`: standard input) when it is too large
/// for a command line.
fn json_object(flag: &str, text: &str) -> Result<prost_types::Struct, Refused> {
    read_json_object(flag, text).map_err(Refused)
}

fn read_json_object(flag: &str, text: &str) -> anyhow::Result<prost_types::Struct> {
    static STDIN_READ: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let read;
    let text = match text.strip_prefix('@') {
        Some("-") => {
            if STDIN_READ.swap(true, std::sync::atomic::Ordering::Relaxed) {
                bail!(
                    "{flag} @-: standard input is read once, by another flag already; give one of them as @FILE"
                );
            }
            read = std::io::read_to_string(std::io::stdin())
                .with_context(|| format!("{flag} @-: cannot read standard input"))?;
            read.as_str()
        }
        Some(path) => {
            read = std::fs::read_to_string(path)
                .with_context(|| format!("{flag} @{path}: cannot read the file"))?;
            read.as_str()
        }
        None => text,
    };
    super::unique_keys::check_json(text).with_context(|| format!("{flag} is not valid JSON"))?;
    let value: Value =
        serde_json::from_str(text).with_context(|| format!("{flag} is not valid JSON"))?;
    if !value.is_object() {
        bail!("{flag} must be a JSON object, like '{{\"key\": 1}}'");
    }
    if let Some((path, number)) = super::exact_numbers::first_inexact(&value) {
        bail!(
            "{flag}: {number} at {path} is beyond ±2^53: JSON numbers travel as doubles and it would arrive changed; send it as a string"
        );
    }
    Ok(convert::json_to_struct(&value))
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub async fn run(server: &Target, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Serve { .. } | Command::Token { .. } => unreachable!("not a client command"),
        Command::Bench(args) => {
            return crate::bench::run(&server.url, connect_options(server)?, args).await;
        }
        Command::Register {
            type_name,
            file,
            name,
            description,
            labels,
            arguments,
            max_concurrency,
        } => {
            let request = match (file, type_name) {
                (Some(file), _) => super::definition_file::DefinitionFile::read(&file)
                    .and_then(|definition| {
                        definition.with_flags(
                            name,
                            description,
                            unique_labels(labels)?,
                            max_concurrency,
                        )
                    })
                    .map_err(Refused)?,
                (None, type_name) => proto::RegisterRequest {
                    name: name.unwrap_or_default(),
                    description: description.unwrap_or_default(),
                    labels: unique_labels(labels)?.into_iter().collect(),
                    max_concurrency: max_concurrency.unwrap_or(0),
                    source: Some(proto::register_request::Source::Native(
                        proto::NativeSource {
                            r#type: type_name.unwrap_or_default(),
                            arguments: Some(json_object(
                                "--arguments",
                                arguments.as_deref().unwrap_or("{}"),
                            )?),
                        },
                    )),
                },
            };
            let mut client = connect(server).await?;
            let response = client.register(request).await?.into_inner();
            let w = response.workflow.unwrap_or_default();
            let verb = if response.created {
                "registered"
            } else {
                "already registered"
            };
            println!("{verb} {} version {}", w.name, w.version);
        }
        Command::Unregister { name } => {
            let r = connect(server)
                .await?
                .unregister(proto::UnregisterRequest { name: name.clone() })
                .await?;
            println!(
                "unregistered {name} ({} versions)",
                r.into_inner().versions_removed
            );
        }
        Command::List {
            labels,
            json: as_json,
        } => {
            let filter = unique_labels(labels)?;
            let mut client = connect(server).await?;
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list(proto::ListRequest {
                        page_size: 0,
                        page_token,
                        label_filter: filter.clone().into_iter().collect(),
                    })
                    .await?
                    .into_inner();
                all.extend(page.workflows);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if as_json {
                print_json(&Value::Array(all.iter().map(json::workflow).collect()));
            } else {
                display::workflow_table(&all, !filter.is_empty());
            }
        }
        Command::Stats {
            name,
            json: as_json,
        } => {
            let r = connect(server)
                .await?
                .get_stats(proto::GetStatsRequest {
                    workflow_name: name.unwrap_or_default(),
                })
                .await?
                .into_inner();
            if as_json {
                print_json(&json::stats(&r));
            } else {
                display::stats_table(&r);
            }
        }
        Command::Get {
            name,
            version,
            json: as_json,
        } => {
            let r = connect(server)
                .await?
                .get(proto::GetRequest { name, version })
                .await?
                .into_inner();
            let mut value = json::workflow(&r.workflow.unwrap_or_default());
            value["versions"] = r.versions.into();
            if as_json {
                print_json(&value);
            } else {
                display::yaml_like(&value, 0);
            }
        }
        Command::Run {
            name,
            input,
            metadata,
            version,
            request_id,
            json: as_json,
        } => {
            let request = proto::ExecuteRequest {
                name,
                version,
                input: Some(json_object("--input", &input)?),
                metadata: Some(json_object("--metadata", &metadata)?),
                request_id,
            };
            let mut client = connect(server).await?;
            let stream = client.execute(request).await?.into_inner();
            let code =
                display::follow(stream, |r: proto::ExecuteResponse| r.event, as_json).await?;
            return Ok(code.unwrap_or(1));
        }
        Command::Start {
            name,
            input,
            metadata,
            version,
            request_id,
        } => {
            let request = proto::StartExecutionRequest {
                name,
                version,
                input: Some(json_object("--input", &input)?),
                metadata: Some(json_object("--metadata", &metadata)?),
                request_id,
            };
            let r = connect(server)
                .await?
                .start_execution(request)
                .await?
                .into_inner();
            println!("{}", r.execution_id);
        }
        Command::Executions {
            workflow,
            status,
            limit,
            json: as_json,
        } => {
            let status = match status {
                None => proto::ExecutionStatus::Unspecified,
                Some(s) => proto::ExecutionStatus::from_str_name(&format!(
                    "EXECUTION_STATUS_{}",
                    s.to_uppercase()
                ))
                .filter(|status| *status != proto::ExecutionStatus::Unspecified)
                .ok_or_else(|| {
                    Refused::new(format!(
                        "unknown status '{s}': use queued, running, completed, failed or cancelled"
                    ))
                })?,
            };
            let mut client = connect(server).await?;
            let mut all = Vec::new();
            let mut page_token = String::new();
            while all.len() < limit {
                let page = client
                    .list_executions(proto::ListExecutionsRequest {
                        workflow_name: workflow.clone().unwrap_or_default(),
                        status: status as i32,
                        page_size: (limit - all.len()).min(1000) as i32,
                        page_token,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                all.extend(page.executions);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if as_json {
                print_json(&Value::Array(all.iter().map(json::execution).collect()));
            } else {
                display::execution_table(&all);
            }
        }
        Command::Execution { id, json: as_json } => {
            let r = connect(server)
                .await?
                .get_execution(proto::GetExecutionRequest { execution_id: id })
                .await?
                .into_inner();
            let value = json::execution(&r.execution.unwrap_or_default());
            if as_json {
                print_json(&value);
            } else {
                display::yaml_like(&value, 0);
            }
        }
        Command::Watch {
            id,
            after,
            json: as_json,
        } => {
            let mut client = connect(server).await?;
            let stream = client
                .watch_execution(proto::WatchExecutionRequest {
                    execution_id: id.clone(),
                    after_sequence: after,
                })
                .await?
                .into_inner();
            let code = display::follow(stream, |r: proto::WatchExecutionResponse| r.event, as_json)
                .await?;
            if let Some(code) = code {
                return Ok(code);
            }
            // The end came before `--after`: say how the execution ended, and exit as if its
            // terminal event had been shown.
            let execution = client
                .get_execution(proto::GetExecutionRequest { execution_id: id })
                .await?
                .into_inner()
                .execution
                .unwrap_or_default();
            let status = execution.status();
            eprintln!(
                "execution {} has ended ({}); its last event is sequence {}, so none follows --after {after}",
                execution.id,
                status
                    .as_str_name()
                    .trim_start_matches("EXECUTION_STATUS_")
                    .to_lowercase(),
                execution.last_sequence
            );
            return Ok(if status == proto::ExecutionStatus::Completed {
                0
            } else {
                1
            });
        }
        Command::Cancel { id, reason } => {
            let r = connect(server)
                .await?
                .cancel_execution(proto::CancelExecutionRequest {
                    execution_id: id.clone(),
                    reason,
                })
                .await?
                .into_inner();
            println!("{id}: {}", json::status_name(r.status));
        }
        Command::Types => {
            let r = connect(server)
                .await?
                .list_workflow_types(proto::ListWorkflowTypesRequest {})
                .await?;
            let types = r.into_inner().workflow_types;
            let width = types.iter().map(|t| t.name.len()).max().unwrap_or(0);
            for t in types {
                println!("{:<width$}  {}", t.name, t.description);
            }
        }
        Command::Tools => {
            let r = connect(server)
                .await?
                .list_tools(proto::ListToolsRequest {})
                .await?;
            let tools = r.into_inner().tools;
            // Columns as wide as their longest entry: MCP tool names run long.
            let name_width = tools.iter().map(|t| t.name.len()).max().unwrap_or(0);
            let server_width = tools.iter().map(|t| t.server.len()).max().unwrap_or(0);
            for t in tools {
                println!(
                    "{:<name_width$}  {:<server_width$}  {}",
                    t.name, t.server, t.description
                );
            }
        }
        Command::Shutdown {
            grace,
            resume_unfinished,
            cancel_unfinished,
        } => {
            let request = proto::ShutdownRequest {
                grace_period: grace.map(convert::duration),
                resume_unfinished: match (resume_unfinished, cancel_unfinished) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
            };
            let r = connect(server).await?.shutdown(request).await?.into_inner();
            println!(
                "wfm stopped: {} executions finished during the grace period, {} cancelled, {} left for the next server to resume",
                r.finished_during_grace, r.cancelled, r.left_to_resume
            );
        }
    }
    Ok(0)
}
