//! Checks a definition at registration and reports every problem at once, each naming its
//! step: the graph (ids, dependencies, cycles), the actions (tools and workflows must
//! exist), the templates (they must parse and read only what the step can see), the input
//! schema, composition cycles and the configured limits.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt,
    sync::Arc,
};

use serde_json::Value;

use super::model::{Action, Definition, Step};
use crate::template;
use crate::tools::ToolManager;

/// Most attempts a retry policy may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Most items of a `for_each` running at once.
pub const MAX_PARALLEL: u32 = 1000;
/// Longest step id.
pub const MAX_STEP_ID_LEN: usize = 64;

/// The configured limits a definition must stay within.
#[derive(Debug, Clone, Copy)]
pub struct DefinitionLimits {
    /// `limits.max_steps_per_workflow`.
    pub max_steps: usize,
    /// `limits.max_workflow_depth`: levels of executions a composition may nest, the
    /// root included.
    pub max_depth: usize,
}

/// A workflow a step may run, as the registry knows it.
#[derive(Debug, Clone)]
pub struct ResolvedWorkflow {
    pub version: u32,
    /// Its definition when it is declarative; native workflows start no children.
    pub definition: Option<Arc<Definition>>,
}

/// Looks up registered workflows; the manager implements it over its registry.
pub trait WorkflowResolver {
    /// The workflow `name` at `version` (0: the latest), if registered.
    fn resolve(&self, name: &str, version: u32) -> Option<ResolvedWorkflow>;
}

/// Whether a problem lies in the definition itself or in what it needs from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The definition is wrong (INVALID_ARGUMENT).
    Invalid,
    /// The definition needs a tool or workflow the server does not have (FAILED_PRECONDITION).
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// `step 'fetch'`, `input_schema`, `output` or `steps`.
    pub location: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// What is being registered, for self-references of compositions.
pub struct Subject<'a> {
    pub name: &'a str,
    /// The version this registration would create.
    pub version: u32,
    /// Restored from the store at start rather than registered now. Rules added after it
    /// may have been stored are not enforced then, so it still loads; what they catch
    /// fails at run time instead.
    pub restored: bool,
}

/// Checks everything; `Err` holds every problem found.
pub fn validate(
    definition: &Definition,
    subject: &Subject<'_>,
    tools: &ToolManager,
    workflows: &dyn WorkflowResolver,
    limits: &DefinitionLimits,
) -> Result<(), Vec<Problem>> {
    let mut v = Validator {
        problems: Vec::new(),
        registering: !subject.restored,
    };
    let n = definition.steps.len();
    if n == 0 {
        v.invalid("steps", "a definition needs at least one step");
    }
    if n > limits.max_steps {
        // Do not list thousands of problems of a definition that is refused anyway.
        v.invalid(
            "steps",
            format!(
                "{n} steps is over limits.max_steps_per_workflow, which is {}",
                limits.max_steps
            ),
        );
        return Err(v.problems);
    }
    let ids = v.check_ids(&definition.steps);
    for step in &definition.steps {
        v.check_step(step, &ids, tools, workflows, subject);
        v.check_for_each(step, definition.input_schema.as_ref());
    }
    let order = v.check_cycles(&definition.steps, &ids);
    v.check_references(definition, &ids, &order);
    v.check_schema(definition.input_schema.as_ref());
    v.check_composition(definition, subject, workflows, limits);
    if v.problems.is_empty() {
        Ok(())
    } else {
        Err(v.problems)
    }
}

struct Validator {
    problems: Vec<Problem>,
    /// Whether rules newer than some stored definitions apply (see [`Subject::restored`]).
    registering: bool,
}

fn at(step: &str) -> String {
    format!("step '{}'", crate::quote::shown(step))
}

impl Validator {
    fn invalid(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            kind: ProblemKind::Invalid,
            location: location.into(),
            message: message.into(),
        });
    }

    fn missing(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            kind: ProblemKind::Missing,
            location: location.into(),
            message: message.into(),
        });
    }

    /// Ids must be unique identifiers, so templates can say `steps.<id>.output`.
    fn check_ids(&mut self, steps: &[Step]) -> HashMap<String, usize> {
        let mut ids = HashMap::new();
        for (i, step) in steps.iter().enumerate() {
            let id = &step.id;
            let ok = !id.is_empty()
                && id.len() <= MAX_STEP_ID_LEN
                && id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                self.invalid(
                    format!("steps[{i}]"),
                    format!(
                        "id '{}' must be 1 to {MAX_STEP_ID_LEN} letters, digits and '_', starting with a letter or '_' (templates read it as steps.<id>)",
                        crate::quote::shown(id)
                    ),
                );
            }
            if ids.insert(id.clone(), i).is_some() {
                self.invalid(at(id), "duplicate step id");
            }
        }
        ids
    }

    fn check_step(
        &mut self,
        step: &Step,
        ids: &HashMap<String, usize>,
        tools: &ToolManager,
        workflows: &dyn WorkflowResolver,
        subject: &Subject<'_>,
    ) {
        let here = at(&step.id);
        // Each entry once, at its first place: a repeat is one problem, not another
        // report of what is wrong with the entry.
        let mut times: HashMap<&str, usize> = HashMap::new();
        for dep in &step.depends_on {
            *times.entry(dep).or_default() += 1;
        }
        for dep in &step.depends_on {
            let Some(n) = times.remove(dep.as_str()) else {
                continue;
            };
            if n > 1 {
                let n = if n == 2 {
                    "twice".to_string()
                } else {
                    format!("{n} times")
                };
                self.invalid(
                    &here,
                    format!("depends_on lists '{}' {n}", crate::quote::shown(dep)),
                );
            }
            if dep == &step.id {
                self.invalid(&here, "depends on itself");
            } else if !ids.contains_key(dep) {
                self.invalid(
                    &here,
                    format!(
                        "depends_on '{}' is not a step of this workflow",
                        crate::quote::shown(dep)
                    ),
                );
            }
        }
        match step.action() {
            None if step.tool.is_some() => {
                self.invalid(&here, "has both `tool` and `workflow`; give exactly one")
            }
            None => self.invalid(&here, "has no action: give `tool` or `workflow`"),
            Some(Action::Tool(tool)) => {
                if tool.name.is_empty() {
                    self.invalid(&here, "tool.name is required");
                } else if !tools.may_call(&tool.name) {
                    self.missing(
                        &here,
                        format!(
                            "unknown tool '{}' (see ListTools; MCP tools are named server.tool)",
                            crate::quote::shown(&tool.name)
                        ),
                    );
                }
                if !(tool.arguments.is_object() || tool.arguments.is_null()) {
                    self.invalid(&here, "tool.arguments must be an object");
                } else if self.registering
                    && let Some(schema) = tools.input_schema(&tool.name)
                {
                    self.check_arguments(&here, &tool.name, &schema, &tool.arguments);
                }
                self.check_templates(&here, "tool.arguments", &tool.arguments);
            }
            Some(Action::Workflow(w)) => {
                let itself =
                    w.name == subject.name && (w.version == 0 || w.version == subject.version);
                if w.name.is_empty() {
                    self.invalid(&here, "workflow.name is required");
                } else if !itself && workflows.resolve(&w.name, w.version).is_none() {
                    let which = if w.version == 0 {
                        String::new()
                    } else {
                        format!(" version {}", w.version)
                    };
                    self.missing(
                        &here,
                        format!(
                            "child workflow '{}'{which} is not registered",
                            crate::quote::shown(&w.name)
                        ),
                    );
                }
                if !(w.input.is_object() || w.input.is_null()) {
                    self.invalid(&here, "workflow.input must be an object");
                }
                self.check_templates(&here, "workflow.input", &w.input);
            }
        }
        // Text around `{{ }}`, or a `{% %}` block, would render to a string: a condition
        // always true, a list never a list.
        for (field, text, what, bare, like) in [
            (
                "when",
                &step.when,
                "condition",
                "input.count > 3",
                "{{ input.count > 3 }}",
            ),
            (
                "for_each",
                &step.for_each,
                "list expression",
                "input.items",
                "{{ input.items }}",
            ),
        ] {
            if text.is_empty() {
                continue;
            }
            if !template::has_text_around(text) {
                if let Err(e) = template::check_expression(text) {
                    self.invalid(&here, format!("{field} does not parse: {e}"));
                }
                continue;
            }
            if !self.registering {
                continue; // fails the step at run time
            }
            let shown = crate::quote::shown(text);
            let problem = if let Err(e) = template::check_value(&Value::String(text.clone())) {
                format!("{field} does not parse: {e}")
            } else if text.contains("{%") {
                let trimmed = text.trim();
                let is = if trimmed.starts_with("{%") && trimmed.ends_with("%}") {
                    "is"
                } else {
                    "uses"
                };
                format!(
                    "{field} '{shown}' {is} a {{% %}} block, which renders to a string rather than a value: a {field} is one expression, like `{bare}` or `{like}`"
                )
            } else {
                format!(
                    "{field} '{shown}' has text around its {{{{ }}}}, so it renders to a string rather than the expression's value: write the whole {what} inside one {{{{ }}}}, like \"{like}\", or as a bare expression"
                )
            };
            self.invalid(&here, problem);
        }
        if step.max_parallel > MAX_PARALLEL {
            self.invalid(
                &here,
                format!(
                    "max_parallel {} is over the maximum of {MAX_PARALLEL}",
                    step.max_parallel
                ),
            );
        }
        if step.max_parallel > 0 && step.for_each.is_empty() {
            self.invalid(&here, "max_parallel needs for_each");
        }
        if step.timeout.is_some_and(|t| t.is_zero()) {
            self.invalid(&here, "timeout must be positive; leave it out for none");
        }
        if let Some(retry) = &step.retry {
            if retry.maximum_attempts > MAX_ATTEMPTS {
                self.invalid(
                    &here,
                    format!(
                        "retry.maximum_attempts {} is over the maximum of {MAX_ATTEMPTS}",
                        retry.maximum_attempts
                    ),
                );
            }
            let c = retry.backoff_coefficient;
            if !(c == 0.0 || (c.is_finite() && (1.0..=100.0).contains(&c))) {
                self.invalid(
                    &here,
                    format!("retry.backoff_coefficient {c} must be between 1 and 100"),
                );
            }
            if let (Some(initial), Some(max)) = (retry.initial_interval, retry.maximum_interval)
                && max < initial
            {
                self.invalid(
                    &here,
                    "retry.maximum_interval must not be shorter than retry.initial_interval",
                );
            }
        }
    }

    /// A for_each that can be seen not to give a list is refused now rather than at run
    /// time: a constant expression, or a path into the input whose schema type is not an
    /// array.
    fn check_for_each(&mut self, step: &Step, schema: Option<&Value>) {
        if step.for_each.is_empty() {
            return;
        }
        let Ok(vars) = template::check_expression(&step.for_each) else {
            return; // reported as not parsing
        };
        if vars.is_empty() {
            if let Ok(value) = template::eval(&step.for_each, &Value::Null)
                && !value.is_array()
            {
                self.invalid(
                    at(&step.id),
                    format!("for_each '{}' gives {value}, not a list", step.for_each),
                );
            }
            return;
        }
        let Some(rest) =
            template::expression_of(&step.for_each).and_then(|path| path.strip_prefix("input."))
        else {
            return;
        };
        let mut node = schema;
        for key in rest.split('.') {
            node = node
                .and_then(|n| n.get("properties"))
                .and_then(|p| p.get(key));
        }
        let declared = node.and_then(|n| n.get("type"));
        let is_list = match declared {
            None => true, // unknown: checked at run time
            Some(Value::String(t)) => t == "array",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "array"),
            Some(_) => true,
        };
        if !is_list {
            self.invalid(
                at(&step.id),
                format!(
                    "for_each '{}' is not a list: input_schema declares it as {}",
                    step.for_each,
                    declared.map(Value::to_string).unwrap_or_default()
                ),
            );
        }
    }

    fn check_templates(&mut self, here: &str, field: &str, value: &Value) {
        if let Err(e) = template::check_value(value) {
            self.invalid(here, format!("{field}: template does not parse: {e}"));
        }
    }

    /// Kahn's algorithm; on a cycle, names one. Returns a topological order of the steps
    /// that are neither in a cycle nor after one: every step when there is none. A step
    /// depending on itself is reported as such (see `check_step`), not as a cycle.
    fn check_cycles(&mut self, steps: &[Step], ids: &HashMap<String, usize>) -> Vec<usize> {
        let n = steps.len();
        let deps: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| {
                let mut deps: Vec<usize> = s
                    .depends_on
                    .iter()
                    .filter(|d| **d != s.id)
                    .filter_map(|d| ids.get(d).copied())
                    .collect();
                deps.sort_unstable();
                deps.dedup();
                deps
            })
            .collect();
        let mut dependents = vec![Vec::new(); n];
        let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop() {
            order.push(i);
            for &j in &dependents[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.push(j);
                }
            }
        }
        if order.len() == n {
            return order;
        }
        // Walk dependencies from a step left over until one repeats: that is a cycle.
        let left: HashSet<usize> = (0..n).filter(|&i| waiting[i] > 0).collect();
        let start = *left.iter().min().expect("a step is left over");
        let mut path = vec![start];
        let mut position = HashMap::from([(start, 0)]);
        let mut current = start;
        while let Some(&next) = deps[current].iter().find(|d| left.contains(d)) {
            if let Some(&p) = position.get(&next) {
                let mut cycle: Vec<&str> =
                    path[p..].iter().map(|&i| steps[i].id.as_str()).collect();
                cycle.push(&steps[next].id);
                cycle.reverse();
                self.invalid(
                    at(&steps[next].id),
                    format!("depends_on forms a cycle: {}", cycle.join(" → ")),
                );
                break;
            }
            position.insert(next, path.len());
            path.push(next);
            current = next;
        }
        order
    }

    /// Templates may read `input`, `steps.<id>` of the steps they depend on (directly or
    /// not), and `item` / `index` inside a for_each; anything else is a mistake that would
    /// only show at run time, or a race. `order` is topological and leaves out the steps
    /// in or after a cycle: what they depend on is not checked.
    fn check_references(&mut self, d: &Definition, ids: &HashMap<String, usize>, order: &[usize]) {
        let steps = &d.steps;
        let mut ancestors: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); steps.len()];
        let mut ordered = vec![false; steps.len()];
        for &i in order {
            ordered[i] = true;
            let mut all = BTreeSet::new();
            for dep in &steps[i].depends_on {
                if let Some(&j) = ids.get(dep) {
                    all.insert(j);
                    all.extend(ancestors[j].iter().copied());
                }
            }
            ancestors[i] = all;
        }
        for (i, step) in steps.iter().enumerate() {
            let here = at(&step.id);
            let mut vars = BTreeSet::new();
            let (field, value) = match step.action() {
                Some(Action::Tool(t)) => ("tool.arguments", &t.arguments),
                Some(Action::Workflow(w)) => ("workflow.input", &w.input),
                None => continue,
            };
            // Parse errors were reported already; here only what parses counts.
            vars.extend(template::check_value(value).unwrap_or_default());
            for (field, text, when) in [
                ("when", &step.when, "once for the step, before its items"),
                (
                    "for_each",
                    &step.for_each,
                    "once for the step, to give its items",
                ),
            ] {
                if text.is_empty() {
                    continue;
                }
                let read = template::check_expression(text).unwrap_or_default();
                // item and index exist only in the action's templates, per item.
                if self.registering && !step.for_each.is_empty() {
                    for name in ["item", "index"] {
                        if read.iter().any(|var| root(var) == name) {
                            self.invalid(
                                &here,
                                format!("{field} is evaluated {when}; {name} is not defined there"),
                            );
                        }
                    }
                }
                vars.extend(read);
            }
            for var in vars {
                let mut parts = var.split('.');
                match parts.next().unwrap_or_default() {
                    "steps" => {
                        let Some(other) = parts.next() else {
                            // `steps['a']`, `steps[name]` or `steps` itself: the template
                            // engine tracks only dotted reads, so nothing says which steps.
                            if self.registering {
                                self.invalid(
                                    &here,
                                    "reads steps by subscript or as a whole (like steps['a'] or steps[name]), so which steps it needs cannot be checked: write steps.<id>, like steps.a.output, and add the step to depends_on",
                                );
                            }
                            continue;
                        };
                        match ids.get(other) {
                            None => self.invalid(
                                &here,
                                format!("{field}, when or for_each read steps.{other}, which is not a step"),
                            ),
                            Some(&j) if ordered[i] && !ancestors[i].contains(&j) => self.invalid(
                                &here,
                                format!("reads steps.{other} but does not depend on it: add '{other}' to depends_on"),
                            ),
                            _ => {}
                        }
                    }
                    "item" | "index" if step.for_each.is_empty() => self.invalid(
                        &here,
                        format!("reads '{var}', which only exists in a step with for_each"),
                    ),
                    _ => {}
                }
            }
        }
        if let Some(output) = &d.output {
            match template::check_value(output) {
                Err(e) => self.invalid("output", format!("template does not parse: {e}")),
                Ok(vars) => {
                    for var in &vars {
                        let mut parts = var.split('.');
                        if parts.next() == Some("steps")
                            && let Some(other) = parts.next()
                            && !ids.contains_key(other)
                        {
                            self.invalid(
                                "output",
                                format!("reads steps.{other}, which is not a step"),
                            );
                        }
                    }
                    for name in ["item", "index"] {
                        if self.registering && vars.iter().any(|var| root(var) == name) {
                            self.invalid(
                                "output",
                                format!("reads {name}, which is defined only in the action of a step with for_each"),
                            );
                        }
                    }
                }
            }
        }
    }

    /// A tool's arguments against the schema it publishes (ListTools), as far as they are
    /// known now: a value a template fills at run time is not judged, nor is anything about
    /// the object holding it but its keys (a required one missing, one not allowed).
    fn check_arguments(&mut self, here: &str, tool: &str, schema: &Value, arguments: &Value) {
        // A schema this library cannot compile is the tool's to enforce when it is called.
        let Ok(validator) = jsonschema::validator_for(schema) else {
            return;
        };
        let empty = Value::Object(Default::default());
        let arguments = if arguments.is_null() {
            &empty
        } else {
            arguments
        };
        let mut templated = Vec::new();
        templated_values(arguments, String::new(), &mut templated);
        for error in validator.iter_errors(arguments) {
            let at = error.instance_path().as_str();
            let about_keys = matches!(
                error.kind(),
                jsonschema::error::ValidationErrorKind::Required { .. }
                    | jsonschema::error::ValidationErrorKind::AdditionalProperties { .. }
            );
            let unknown_yet = templated.iter().any(|t| {
                let within = t == at || at.starts_with(&format!("{t}/"));
                let holds = t.starts_with(&format!("{at}/"));
                within || (holds && !about_keys)
            });
            if !unknown_yet {
                self.invalid(
                    here,
                    format!(
                        "tool.arguments{at} {error} (tool '{tool}' takes what its input_schema in ListTools allows)"
                    ),
                );
            }
        }
    }

    fn check_schema(&mut self, schema: Option<&Value>) {
        let Some(schema) = schema else { return };
        if !(schema.is_object() || schema.is_boolean()) {
            self.invalid("input_schema", "must be a JSON Schema object");
            return;
        }
        if let Err(e) = jsonschema::meta::validate(schema) {
            self.invalid(
                "input_schema",
                format!(
                    "is not a valid JSON Schema: {e} (at {})",
                    pointer(e.instance_path().as_str())
                ),
            );
            return;
        }
        if let Err(e) = jsonschema::validator_for(schema) {
            self.invalid("input_schema", format!("cannot be compiled: {e}"));
            return;
        }
        // Only what is certain: satisfiability in general is not decided here.
        let refuses_objects = match schema {
            Value::Bool(false) => Some("is false, which accepts nothing".to_string()),
            Value::Object(o) => match o.get("type") {
                Some(t @ Value::String(s)) if s != "object" => Some(format!("declares type {t}")),
                Some(t @ Value::Array(ts)) if !ts.iter().any(|t| t == "object") => {
                    Some(format!("declares type {t}"))
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(why) = refuses_objects
            && self.registering
        {
            self.invalid(
                "input_schema",
                format!("must accept an object (inputs are JSON objects); it {why}"),
            );
        }
    }

    /// Follows child workflows: a workflow must never run itself, and the nesting of
    /// executions must stay within limits.max_workflow_depth.
    fn check_composition(
        &mut self,
        definition: &Definition,
        subject: &Subject<'_>,
        workflows: &dyn WorkflowResolver,
        limits: &DefinitionLimits,
    ) {
        let mut walker = Composition {
            subject,
            root: definition,
            workflows,
            path: vec![(subject.name.to_string(), subject.version)],
            depth_memo: HashMap::new(),
            cycle: None,
            root_step: None,
        };
        let depth = walker.depth(definition);
        if let Some((step, cycle)) = walker.cycle {
            self.invalid(
                at(&step),
                format!(
                    "runs a workflow that runs this one again: {}",
                    cycle.join(" → ")
                ),
            );
        } else if depth > limits.max_depth {
            self.invalid(
                "steps",
                format!(
                    "child workflows nest {depth} levels deep; limits.max_workflow_depth is {}",
                    limits.max_depth
                ),
            );
        }
    }
}

struct Composition<'a> {
    subject: &'a Subject<'a>,
    root: &'a Definition,
    workflows: &'a dyn WorkflowResolver,
    path: Vec<(String, u32)>,
    depth_memo: HashMap<(String, u32), usize>,
    /// The first cycle found: the root's step that starts it, and the names along it.
    cycle: Option<(String, Vec<String>)>,
    /// The root's step being followed.
    root_step: Option<String>,
}

impl Composition<'_> {
    /// Levels of executions `definition` starts, itself included.
    fn depth(&mut self, definition: &Definition) -> usize {
        let mut deepest = 0;
        for step in &definition.steps {
            if self.cycle.is_some() {
                return 0;
            }
            let Some(Action::Workflow(w)) = step.action() else {
                continue;
            };
            let (version, child) = if w.name == self.subject.name
                && (w.version == 0 || w.version == self.subject.version)
            {
                (self.subject.version, Some(Arc::new(self.root.clone())))
            } else {
                match self.workflows.resolve(&w.name, w.version) {
                    Some(r) => (r.version, r.definition),
                    None => continue, // reported as missing at the top level
                }
            };
            let key = (w.name.clone(), version);
            if self.path.contains(&key) {
                let mut names: Vec<String> = self.path.iter().map(|(n, _)| n.clone()).collect();
                names.push(w.name.clone());
                let first_step = if self.path.len() == 1 {
                    step.id.clone()
                } else {
                    self.root_step.clone().unwrap_or_default()
                };
                self.cycle = Some((first_step, names));
                return 0;
            }
            let below = match (&child, self.depth_memo.get(&key).copied()) {
                (_, Some(d)) => d,
                (None, None) => 1,
                (Some(child), None) => {
                    if self.path.len() == 1 {
                        self.root_step = Some(step.id.clone());
                    }
                    self.path.push(key.clone());
                    let d = self.depth(child);
                    self.path.pop();
                    self.depth_memo.insert(key, d);
                    d
                }
            };
            deepest = deepest.max(below);
        }
        deepest + 1
    }
}

/// The variable a dotted read starts from: `item` for `item.name`.
fn root(var: &str) -> &str {
    var.split('.').next().unwrap_or_default()
}

/// The JSON pointers of the strings in `value` that are templates, filled at run time.
fn templated_values(value: &Value, at: String, found: &mut Vec<String>) {
    match value {
        Value::String(text) if text.contains("{{") || text.contains("{%") => found.push(at),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                templated_values(item, format!("{at}/{i}"), found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                templated_values(item, format!("{at}/{key}"), found);
            }
        }
        _ => {}
    }
}

/// A JSON pointer for messages: the root shows as `/`.
fn pointer(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    struct NoWorkflows;

    impl WorkflowResolver for NoWorkflows {
        fn resolve(&self, _name: &str, _version: u32) -> Option<ResolvedWorkflow> {
            None
        }
    }

    /// The problems `validate` finds with `schema` as the input schema.
    fn schema_problems(schema: Value, restored: bool) -> Vec<String> {
        let definition = Definition {
            input_schema: Some(schema),
            ..Default::default()
        };
        let subject = Subject {
            name: "t",
            version: 1,
            restored,
        };
        let limits = DefinitionLimits {
            max_steps: 10,
            max_depth: 8,
        };
        let problems = validate(
            &definition,
            &subject,
            &ToolManager::new(),
            &NoWorkflows,
            &limits,
        )
        .expect_err("no steps");
        problems
            .iter()
            .filter(|p| p.location == "input_schema")
            .map(ToString::to_string)
            .collect()
    }

    /// `false` cannot come through the API, whose input_schema is a Struct: checked here.
    #[test]
    fn an_input_schema_accepting_nothing_is_refused_when_registered() {
        assert_eq!(
            schema_problems(json!(false), false),
            [
                "input_schema: must accept an object (inputs are JSON objects); it is false, which accepts nothing"
            ]
        );
        assert!(schema_problems(json!(false), true).is_empty());
        assert!(schema_problems(json!({"type": "array"}), true).is_empty());
        assert!(schema_problems(json!(true), false).is_empty());
        assert!(schema_problems(json!({"type": ["object", "null"]}), false).is_empty());
    }
}
