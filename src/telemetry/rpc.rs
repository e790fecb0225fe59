//! What one gRPC call is about, for its log line and its execution's trace: the handler
//! notes the workflow and execution it dealt with, and the caller's trace context is
//! there for the execution it starts. Held in a task-local around the handler, so no
//! signature between the API and the manager changes for it.

use std::{cell::RefCell, future::Future};

tokio::task_local! {
    static CALL: RefCell<Call>;
}

/// The facts of one call, filled in while its handler runs.
#[derive(Default)]
pub struct Call {
    /// The caller's trace context (W3C `traceparent`), when tracing is on.
    pub parent: Option<opentelemetry::Context>,
    pub workflow: Option<String>,
    /// As asked (0: the latest).
    pub version: Option<i32>,
    pub execution_id: Option<String>,
}

/// Runs a handler with `call` in scope; returns its output and the call as filled in.
pub async fn scope<F: Future>(call: Call, handler: F) -> (F::Output, Call) {
    let scoped = CALL.scope(RefCell::new(call), handler);
    tokio::pin!(scoped);
    let output = (&mut scoped).await;
    let call = scoped
        .as_mut()
        .take_value()
        .map(RefCell::into_inner)
        .unwrap_or_default();
    (output, call)
}

/// Notes the workflow a call names; does nothing outside a call.
pub fn note_workflow(name: &str, version: i32) {
    let _ = CALL.try_with(|c| {
        let mut c = c.borrow_mut();
        c.workflow = Some(name.to_string());
        c.version = Some(version);
    });
}

/// Notes the execution a call started or looked at; does nothing outside a call.
pub fn note_execution(id: &str) {
    let _ = CALL.try_with(|c| c.borrow_mut().execution_id = Some(id.to_string()));
}

/// The caller's trace context, inside a call that carried one.
pub(super) fn remote_parent() -> Option<opentelemetry::Context> {
    CALL.try_with(|c| c.borrow().parent.clone()).ok().flatten()
}
