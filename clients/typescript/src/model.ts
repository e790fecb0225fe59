// Plain-object views of the wire messages, and the conversions to them.
//
// Struct fields are JsonObject (protobuf-es already maps google.protobuf.Struct
// that way), google.protobuf.Value becomes JsonValue, Timestamp becomes Date,
// Duration becomes milliseconds and int64 becomes number.

import { toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { durationMs, timestampDate, ValueSchema, type Duration, type Timestamp, type Value } from "@bufbuild/protobuf/wkt";
import {
  ExecutionStatus,
  StepStatus,
  type Execution as PbExecution,
  type ExecutionEvent as PbExecutionEvent,
  type ExecutionResult as PbExecutionResult,
  type GetStatsResponse as PbGetStatsResponse,
  type StepResult as PbStepResult,
  type Workflow as PbWorkflow,
  type WorkflowStats as PbWorkflowStats,
} from "./gen/workflow/v1/workflow_service_pb.js";
import { definitionOf, type DefinitionInput } from "./definition.js";

export { ExecutionStatus, StepStatus };

/** What a workflow runs: the `source` oneof of the contract (e.g. `{ case: "native", value: { type, arguments } }`). */
export type WorkflowSource = PbWorkflow["source"];

/** A registered workflow version. */
export interface Workflow {
  name: string;
  version: number;
  description: string;
  labels: Record<string, string>;
  /** 0 means only the global limit applies. */
  maxConcurrency: number;
  createTime: Date | undefined;
  source: WorkflowSource;
  /**
   * A declarative workflow's definition as the plain object `definitionSource()` takes
   * (see `definitionOf`), without default values; `undefined` for a native workflow.
   */
  definition: DefinitionInput | undefined;
}

/** The outcome of one step. */
export interface StepResult {
  stepId: string;
  status: StepStatus;
  output: JsonValue | undefined;
  error: string;
  durationMs: number | undefined;
  attempts: number;
}

/** The summary of an execution. */
export interface ExecutionResult {
  success: boolean;
  executionTimeMs: number | undefined;
  stepsCompleted: number;
  stepsFailed: number;
  stepsSkipped: number;
  steps: StepResult[];
  output: JsonValue | undefined;
  error: string;
}

/** One run of a workflow. */
export interface Execution {
  id: string;
  workflowName: string;
  workflowVersion: number;
  status: ExecutionStatus;
  input: JsonObject;
  metadata: JsonObject;
  createTime: Date | undefined;
  startTime: Date | undefined;
  endTime: Date | undefined;
  /** Present once the execution has started; final once it is terminal. */
  result: ExecutionResult | undefined;
  parentExecutionId: string;
  requestId: string;
  /** Sequence number of the last event. */
  lastSequence: number;
}

/** Execution numbers of one workflow (all its versions together). */
export interface WorkflowStats {
  workflowName: string;
  /** Executions accepted (or resumed after a restart) since `Stats.since`. */
  started: number;
  /** Executions that ended since `Stats.since`, by outcome. */
  succeeded: number;
  failed: number;
  cancelled: number;
  /** Accepted and not ended yet: running or waiting for a slot. */
  running: number;
  /**
   * Median time from acceptance to the end (queueing included) of the last `windowSize`
   * executions that ended; undefined when none has.
   */
  p50DurationMs: number | undefined;
  /** 99th percentile of the same. */
  p99DurationMs: number | undefined;
  /** How many executions the percentiles cover: the last 1000 at most. */
  windowSize: number;
}

/** What `getStats()` resolves to. The server keeps these in memory: they start from zero at each restart. */
export interface Stats {
  /** When counting started: the server's start. */
  since: Date | undefined;
  /** One per registered workflow (or the one asked for), by name. */
  workflows: WorkflowStats[];
}

interface EventBase {
  executionId: string;
  /** Starts at 1, no gaps. */
  sequence: number;
  time: Date | undefined;
}

/** A status event of an execution, discriminated by `kind`. */
export type ExecutionEvent = EventBase &
  (
    | { kind: "accepted"; workflowName: string; workflowVersion: number }
    | { kind: "queued"; reason: string }
    | { kind: "started"; attempt: number }
    | { kind: "stepStarted"; stepId: string; attempt: number }
    | { kind: "stepProgress"; stepId: string; message: string; fraction: number | undefined }
    | { kind: "stepCompleted"; stepId: string; output: JsonValue | undefined; durationMs: number | undefined }
    | { kind: "stepFailed"; stepId: string; error: string; attempt: number; willRetry: boolean }
    | { kind: "stepSkipped"; stepId: string; reason: string }
    /**
     * The step was cut short by a cancel, a shutdown or a step beside it failing: it did
     * not fail. (Servers before this event sent `stepFailed` with an error starting
     * "Cancelled:", and histories recorded then keep it.)
     */
    | { kind: "stepCancelled"; stepId: string; reason: string; attempt: number }
    | { kind: "completed"; result: ExecutionResult }
    | { kind: "failed"; error: string; result: ExecutionResult | undefined }
    | { kind: "cancelled"; reason: string; result: ExecutionResult | undefined }
    /** An event kind this client version does not know (the server is newer). */
    | { kind: "unknown" }
  );

export type ExecutionEventKind = ExecutionEvent["kind"];

/** The kinds that end an execution's event stream. */
export const TERMINAL_EVENT_KINDS: ReadonlySet<ExecutionEventKind> = new Set(["completed", "failed", "cancelled"]);

export function isTerminalEvent(
  event: ExecutionEvent,
): event is Extract<ExecutionEvent, { kind: "completed" | "failed" | "cancelled" }> {
  return TERMINAL_EVENT_KINDS.has(event.kind);
}

// --- conversions -----------------------------------------------------------

const date = (t: Timestamp | undefined): Date | undefined => (t ? timestampDate(t) : undefined);
const ms = (d: Duration | undefined): number | undefined => (d ? durationMs(d) : undefined);
const json = (v: Value | undefined): JsonValue | undefined => (v ? toJson(ValueSchema, v) : undefined);

export function workflowFromPb(w: PbWorkflow): Workflow {
  return {
    name: w.name,
    version: w.version,
    description: w.description,
    labels: { ...w.labels },
    maxConcurrency: w.maxConcurrency,
    createTime: date(w.createTime),
    source: w.source,
    definition: definitionOf(w.source),
  };
}

export function stepResultFromPb(s: PbStepResult): StepResult {
  return {
    stepId: s.stepId,
    status: s.status,
    output: json(s.output),
    error: s.error,
    durationMs: ms(s.duration),
    attempts: s.attempts,
  };
}

export function resultFromPb(r: PbExecutionResult): ExecutionResult {
  return {
    success: r.success,
    executionTimeMs: ms(r.executionTime),
    stepsCompleted: r.stepsCompleted,
    stepsFailed: r.stepsFailed,
    stepsSkipped: r.stepsSkipped,
    steps: r.steps.map(stepResultFromPb),
    output: json(r.output),
    error: r.error,
  };
}

const optResult = (r: PbExecutionResult | undefined): ExecutionResult | undefined => (r ? resultFromPb(r) : undefined);

export function executionFromPb(e: PbExecution): Execution {
  return {
    id: e.id,
    workflowName: e.workflowName,
    workflowVersion: e.workflowVersion,
    status: e.status,
    input: e.input ?? {},
    metadata: e.metadata ?? {},
    createTime: date(e.createTime),
    startTime: date(e.startTime),
    endTime: date(e.endTime),
    result: optResult(e.result),
    parentExecutionId: e.parentExecutionId,
    requestId: e.requestId,
    lastSequence: Number(e.lastSequence),
  };
}

export function workflowStatsFromPb(w: PbWorkflowStats): WorkflowStats {
  return {
    workflowName: w.workflowName,
    started: Number(w.started),
    succeeded: Number(w.succeeded),
    failed: Number(w.failed),
    cancelled: Number(w.cancelled),
    running: Number(w.running),
    p50DurationMs: ms(w.p50Duration),
    p99DurationMs: ms(w.p99Duration),
    windowSize: w.windowSize,
  };
}

export function statsFromPb(s: PbGetStatsResponse): Stats {
  return { since: date(s.since), workflows: s.workflows.map(workflowStatsFromPb) };
}

export function eventFromPb(e: PbExecutionEvent): ExecutionEvent {
  const base: EventBase = { executionId: e.executionId, sequence: Number(e.sequence), time: date(e.time) };
  const k = e.kind;
  switch (k.case) {
    case "accepted":
      return { ...base, kind: k.case, workflowName: k.value.workflowName, workflowVersion: k.value.workflowVersion };
    case "queued":
      return { ...base, kind: k.case, reason: k.value.reason };
    case "started":
      return { ...base, kind: k.case, attempt: k.value.attempt };
    case "stepStarted":
      return { ...base, kind: k.case, stepId: k.value.stepId, attempt: k.value.attempt };
    case "stepProgress":
      return { ...base, kind: k.case, stepId: k.value.stepId, message: k.value.message, fraction: k.value.fraction };
    case "stepCompleted":
      return {
        ...base,
        kind: k.case,
        stepId: k.value.stepId,
        output: json(k.value.output),
        durationMs: ms(k.value.duration),
      };
    case "stepFailed":
      return {
        ...base,
        kind: k.case,
        stepId: k.value.stepId,
        error: k.value.error,
        attempt: k.value.attempt,
        willRetry: k.value.willRetry,
      };
    case "stepSkipped":
      return { ...base, kind: k.case, stepId: k.value.stepId, reason: k.value.reason };
    case "stepCancelled":
      return { ...base, kind: k.case, stepId: k.value.stepId, reason: k.value.reason, attempt: k.value.attempt };
    case "completed":
      return { ...base, kind: k.case, result: optResult(k.value.result) ?? emptyResult(true) };
    case "failed":
      return { ...base, kind: k.case, error: k.value.error, result: optResult(k.value.result) };
    case "cancelled":
      return { ...base, kind: k.case, reason: k.value.reason, result: optResult(k.value.result) };
    default:
      return { ...base, kind: "unknown" };
  }
}

function emptyResult(success: boolean): ExecutionResult {
  return {
    success,
    executionTimeMs: undefined,
    stepsCompleted: 0,
    stepsFailed: 0,
    stepsSkipped: 0,
    steps: [],
    output: undefined,
    error: "",
  };
}
