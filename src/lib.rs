//! wfm: a workflow manager served over gRPC.
//!
//! Layers, top to bottom (dependencies point down only): `api` (gRPC) → `manager`
//! (registry, executions, lifecycle) → `engine` (runs one execution) → `tools` and `store`.

pub mod api;
pub mod bench;
pub mod cli;
pub mod client;
pub mod coalesce;
pub mod config;
pub mod engine;
pub mod fuzzing;
pub mod manager;
pub mod quote;
pub mod store;
pub mod stored_time;
pub mod telemetry;
pub mod template;
pub mod tools;

/// The generated protobuf types, server and client of `workflow.v1`.
pub mod proto {
    tonic::include_proto!("workflow.v1");
}
