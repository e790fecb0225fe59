// Declarative workflow definitions from plain objects shaped like the YAML files of
// examples/ (what `wfm register -f` reads): snake_case field names, JSON values for
// arguments, input_schema and output, durations as "500ms" / "10s" / "1m30s".

import { fromJson, isMessage, toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { DurationSchema, ValueSchema, type Duration } from "@bufbuild/protobuf/wkt";
import type { RegisterInput } from "./client.js";
import { InvalidArgumentError } from "./errors.js";
import { checkJson, checkJsonObject } from "./json.js";
import {
  WorkflowDefinitionSchema,
  type RetryPolicy,
  type Step,
  type Workflow as PbWorkflow,
  type WorkflowDefinition,
} from "./gen/workflow/v1/workflow_service_pb.js";

/** A duration: milliseconds, or a string such as "500ms", "10s", "1m30s", "2h" (also "0.2s"). */
export type DurationInput = number | string;

/** How a failed step is retried (the fields of Temporal's RetryPolicy). */
export interface RetryInput {
  /** Delay before the first retry. Unset: 1s. */
  initial_interval?: DurationInput;
  /** Each delay is the previous one times this, between 1 and 100. Unset: 2. */
  backoff_coefficient?: number;
  /** Longest delay. Unset: 100 times initial_interval. */
  maximum_interval?: DurationInput;
  /** Attempts in all, the first included, at most 100. Unset: 3. */
  maximum_attempts?: number;
  /** Error types (InvalidArguments, Timeout, Unavailable, ToolFailed...) or message fragments not retried. */
  non_retryable_error_types?: string[];
}

/** One step of a definition: exactly one of `tool` and `workflow`. */
export interface StepInput {
  /** Unique in the definition: letters, digits and '_'. */
  id: string;
  depends_on?: string[];
  /** Call a tool (see `listTools()`); string values of `arguments` may be templates. */
  tool?: { name: string; arguments?: JsonObject };
  /** Run another registered workflow as a child execution (version 0 or unset: the latest). */
  workflow?: { name: string; version?: number; input?: JsonObject };
  /** Condition; false skips the step. */
  when?: string;
  /** Expression giving a list: the action runs once per item (`item`, `index`). */
  for_each?: string;
  /** Items of for_each running at once; unset: 8. */
  max_parallel?: number;
  retry?: RetryInput;
  /** Longest one attempt may take. Unset: no limit. */
  timeout?: DurationInput;
  /** A failure of this step does not fail the run. */
  continue_on_error?: boolean;
}

/** A declarative definition: the `WorkflowDefinition` message as plain JSON. */
export interface DefinitionInput {
  steps: StepInput[];
  /** JSON Schema every execution's input must satisfy. */
  input_schema?: JsonObject;
  /** Template of the output over `input` and `steps` (any JSON value). Unset: the outputs of the last steps. */
  output?: JsonValue;
}

/** A whole definition file as `wfm register -f` reads it: the registration's fields beside the definition. */
export interface DefinitionFile extends DefinitionInput {
  name?: string;
  description?: string;
  labels?: Record<string, string>;
  max_concurrency?: number;
}

/**
 * Builds the `definition` source of a RegisterInput from a plain object shaped like the
 * YAML of examples/:
 *
 *   await wfm.register({ name: "sum", source: definitionSource({
 *     steps: [{
 *       id: "total",
 *       tool: { name: "json_transform", arguments: { data: "{{ input.n }}", expression: "data | sum" } },
 *       timeout: "5s",
 *     }],
 *     output: { total: "{{ steps.total.output }}" },
 *   }) });
 *
 * Unknown fields and values of the wrong type throw an InvalidArgumentError here, before
 * any call; the server validates the rest (ids, dependencies, templates, tools).
 * The proto JSON names (`forEach`, `dependsOn`...) are accepted too.
 */
export function definitionSource(definition: DefinitionInput): { case: "definition"; value: WorkflowDefinition } {
  return { case: "definition", value: definitionFromJson(definition) };
}

/**
 * The RegisterInput of a whole definition file (`name`, `description`, `labels`,
 * `max_concurrency` and the definition), e.g. a parsed examples/fan-out.yaml:
 * `await wfm.register(definitionFile(YAML.parse(text)))`.
 */
export function definitionFile(file: DefinitionFile): RegisterInput {
  const { name, description, labels, max_concurrency, ...definition } = file;
  if (typeof name !== "string" || name === "") {
    throw new InvalidArgumentError("name: the workflow needs a name");
  }
  return {
    name,
    description: description ?? "",
    labels: labels ?? {},
    maxConcurrency: max_concurrency ?? 0,
    source: definitionSource(definition),
  };
}

/**
 * The definition of a registered declarative workflow as the plain object
 * `definitionSource()` takes (the shape of a definition file, without `name`,
 * `description`, `labels` and `max_concurrency`), or `undefined` for a native workflow.
 * Takes what `get()`, `list()` or `register()` return (their `definition` field is this
 * already), its `source`, or a `WorkflowDefinition` message (e.g. from `raw`).
 *
 * Fields left at their default are omitted; durations are strings with one unit
 * ("200ms", "5s", "90s"). `definitionSource(definitionOf(w)!)` registered under the same
 * name gives back the same version (`created: false`).
 */
export function definitionOf(
  workflow: { source: PbWorkflow["source"] } | PbWorkflow["source"] | WorkflowDefinition,
): DefinitionInput | undefined {
  if (isMessage(workflow, WorkflowDefinitionSchema)) {
    return definitionToJson(workflow);
  }
  const source = "source" in workflow ? workflow.source : workflow;
  return source.case === "definition" ? definitionToJson(source.value) : undefined;
}

/** A WorkflowDefinition as a DefinitionInput, without default values (as Python's definition_to_dict). */
export function definitionToJson(m: WorkflowDefinition): DefinitionInput {
  const out: DefinitionInput = { steps: m.steps.map(stepToJson) };
  if (m.inputSchema !== undefined) out.input_schema = structuredClone(m.inputSchema);
  if (m.output !== undefined) out.output = toJson(ValueSchema, m.output);
  return out;
}

function stepToJson(s: Step): StepInput {
  const out: StepInput = { id: s.id };
  if (s.dependsOn.length > 0) out.depends_on = [...s.dependsOn];
  const action = s.action;
  if (action.case === "tool") {
    out.tool = { name: action.value.name };
    if (action.value.arguments !== undefined) out.tool.arguments = structuredClone(action.value.arguments);
  } else if (action.case === "workflow") {
    out.workflow = { name: action.value.name };
    if (action.value.version) out.workflow.version = action.value.version;
    if (action.value.input !== undefined) out.workflow.input = structuredClone(action.value.input);
  }
  if (s.when) out.when = s.when;
  if (s.forEach) out.for_each = s.forEach;
  if (s.maxParallel) out.max_parallel = s.maxParallel;
  if (s.retry !== undefined) out.retry = retryToJson(s.retry);
  if (s.timeout !== undefined) out.timeout = formatDuration(s.timeout);
  if (s.continueOnError) out.continue_on_error = true;
  return out;
}

function retryToJson(r: RetryPolicy): RetryInput {
  const out: RetryInput = {};
  if (r.initialInterval !== undefined) out.initial_interval = formatDuration(r.initialInterval);
  if (r.backoffCoefficient) out.backoff_coefficient = r.backoffCoefficient;
  if (r.maximumInterval !== undefined) out.maximum_interval = formatDuration(r.maximumInterval);
  if (r.maximumAttempts) out.maximum_attempts = r.maximumAttempts;
  if (r.nonRetryableErrorTypes.length > 0) out.non_retryable_error_types = [...r.nonRetryableErrorTypes];
  return out;
}

const FORMAT_UNITS: [string, bigint][] = [
  ["h", 3_600_000_000_000n],
  ["m", 60_000_000_000n],
  ["s", 1_000_000_000n],
  ["ms", 1_000_000n],
  ["us", 1_000n],
];

/** A Duration as one whole number and the largest unit that keeps it whole: "200ms", "5s", "2m" ("0s" for zero). */
function formatDuration(d: Duration): string {
  const nanos = d.seconds * 1_000_000_000n + BigInt(d.nanos);
  if (nanos === 0n) return "0s";
  if (nanos < 0n) return toJson(DurationSchema, d) as string; // the proto JSON form ("-1.5s")
  for (const [unit, per] of FORMAT_UNITS) {
    if (nanos % per === 0n) return `${nanos / per}${unit}`;
  }
  return `${nanos}ns`;
}

function definitionFromJson(definition: DefinitionInput): WorkflowDefinition {
  if (typeof definition !== "object" || definition === null || !Array.isArray(definition.steps)) {
    throw new InvalidArgumentError("definition: needs `steps`, a list of steps");
  }
  for (const key of ["input_schema", "inputSchema"] as const) {
    const schema = (definition as unknown as Record<string, unknown>)[key];
    if (schema !== undefined) checkJsonObject(schema, key);
  }
  if (definition.output !== undefined) {
    checkJson(definition.output, "output");
  }
  const json = {
    ...definition,
    steps: definition.steps.map((step, i) => stepJson(step, `steps[${i}] (step '${String(step?.id ?? "")}')`)),
  };
  try {
    return fromJson(WorkflowDefinitionSchema, withoutUndefined(json) as JsonValue);
  } catch (e) {
    throw new InvalidArgumentError(`definition: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** A step with its durations in the proto JSON form ("1.5s"). */
function stepJson(step: StepInput, where: string): object {
  if (typeof step !== "object" || step === null) {
    throw new InvalidArgumentError(`${where}: a step must be an object`);
  }
  const out: Record<string, unknown> = { ...step };
  // What goes into Struct fields must be JSON (undefined there is refused, not left out).
  const tool: unknown = step.tool;
  if (typeof tool === "object" && tool !== null && (tool as { arguments?: unknown }).arguments !== undefined) {
    checkJsonObject((tool as { arguments?: unknown }).arguments, `${where}.tool.arguments`);
  }
  const workflow: unknown = step.workflow;
  if (typeof workflow === "object" && workflow !== null && (workflow as { input?: unknown }).input !== undefined) {
    checkJsonObject((workflow as { input?: unknown }).input, `${where}.workflow.input`);
  }
  convertDuration(out, "timeout", where);
  const retry = out.retry;
  if (typeof retry === "object" && retry !== null && !Array.isArray(retry)) {
    const r: Record<string, unknown> = { ...retry };
    for (const key of ["initial_interval", "initialInterval", "maximum_interval", "maximumInterval"]) {
      convertDuration(r, key, `${where}.retry`);
    }
    out.retry = r;
  }
  return out;
}

function convertDuration(obj: Record<string, unknown>, key: string, where: string): void {
  const v = obj[key];
  if (v !== undefined && v !== null) {
    obj[key] = protoDuration(nanosOf(v, `${where}.${key}`));
  }
}

const NANOS_PER_UNIT: Record<string, number> = Object.fromEntries(
  (
    [
      [1, ["ns", "nsec", "nanos", "nanosecond", "nanoseconds"]],
      [1e3, ["us", "µs", "usec", "micros", "microsecond", "microseconds"]],
      [1e6, ["ms", "msec", "millis", "millisecond", "milliseconds"]],
      [1e9, ["s", "sec", "secs", "second", "seconds"]],
      [60e9, ["m", "min", "mins", "minute", "minutes"]],
      [3600e9, ["h", "hr", "hrs", "hour", "hours"]],
      [86400e9, ["d", "day", "days"]],
      [7 * 86400e9, ["w", "week", "weeks"]],
    ] as const
  ).flatMap(([nanos, units]) => units.map((unit) => [unit, nanos])),
);

/** Nanoseconds of a DurationInput: milliseconds, or "500ms", "1m 30s", "0.2s" (units ns, us, ms, s, m, h, d, w). */
function nanosOf(v: unknown, where: string): number {
  let nanos: number | undefined;
  if (typeof v === "number") {
    nanos = Number.isFinite(v) && v >= 0 ? Math.round(v * 1e6) : undefined;
  } else if (typeof v === "string" && /^\s*(\d+(\.\d+)?\s*[a-zµ]+\s*)+$/i.test(v)) {
    nanos = 0;
    for (const [, amount, unit] of v.matchAll(/(\d+(?:\.\d+)?)\s*([a-zµ]+)/gi)) {
      const per = NANOS_PER_UNIT[unit!];
      if (per === undefined) {
        nanos = undefined;
        break;
      }
      nanos += Math.round(Number(amount) * per);
    }
  }
  if (nanos === undefined) {
    throw new InvalidArgumentError(
      `${where}: ${JSON.stringify(v)} is not a duration (milliseconds, or a string like "500ms", "10s", "1m30s")`,
    );
  }
  return nanos;
}

/** The proto JSON form of a duration: seconds with up to 9 decimals, then "s". */
function protoDuration(nanos: number): string {
  const total = BigInt(nanos);
  const seconds = total / 1_000_000_000n;
  const frac = total % 1_000_000_000n;
  return frac === 0n ? `${seconds}s` : `${seconds}.${frac.toString().padStart(9, "0")}s`;
}

/** A copy without `undefined` properties (optional fields left unset), which JSON has no room for. */
function withoutUndefined(v: unknown): unknown {
  if (Array.isArray(v)) {
    return v.map(withoutUndefined);
  }
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== undefined)
        .map(([k, x]) => [k, withoutUndefined(x)]),
    );
  }
  return v;
}
