import type * as http2 from "node:http2";
import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type CallOptions, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Code, DeadlineExceededError, InvalidArgumentError, UnavailableError, WfmError } from "./errors.js";
import {
  ExecutionResultSchema,
  NativeSourceSchema,
  RegisterRequestSchema,
  WorkflowService,
  type ExecutionEvent as PbExecutionEvent,
  type WorkflowType,
  type Tool,
} from "./gen/workflow/v1/workflow_service_pb.js";
import {
  eventFromPb,
  executionFromPb,
  isTerminalEvent,
  resultFromPb,
  statsFromPb,
  workflowFromPb,
  ExecutionStatus,
  type Execution,
  type ExecutionEvent,
  type ExecutionResult,
  type Stats,
  type Workflow,
} from "./model.js";
import { checkJsonObject } from "./json.js";
import {
  callSignalInterceptor,
  connectionError,
  isConnectionFailure,
  RECURSION_LIMIT,
  WfmSessionManager,
} from "./transport.js";

export interface WfmClientOptions {
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /**
   * TLS: `true` to use https for a base URL given without a scheme, or
   * Node's TLS options (ca, cert, key, servername, rejectUnauthorized...),
   * which also imply https. A base URL starting with https:// uses TLS anyway.
   */
  tls?: boolean | http2.SecureClientSessionOptions;
  /** Extra Connect interceptors, run after the authorization one. */
  interceptors?: Interceptor[];
  /**
   * Timeout applied to every call that does not set its own. Streams included: for them it
   * bounds the whole stream, and its timer is cleared as soon as the stream ends or is left.
   */
  defaultTimeoutMs?: number;
}

/** The `RegisterRequest` fields; `source` is the contract's oneof (see `nativeSource`). */
export type RegisterInput = MessageInitShape<typeof RegisterRequestSchema>;

/**
 * Builds the `native` source of a RegisterInput: a workflow type compiled into the server
 * (`definitionSource` builds a declarative one).
 */
export function nativeSource(type: string, args: JsonObject = {}): NonNullable<RegisterInput["source"]> {
  checkJsonObject(args, "arguments");
  return { case: "native", value: create(NativeSourceSchema, { type, arguments: args }) };
}

export interface ExecuteOptions {
  /** The workflow's input data. */
  input?: JsonObject;
  /** Caller's metadata, stored with the execution. */
  metadata?: JsonObject;
  /** 0 or unset: the latest version. */
  version?: number;
  /** Idempotency key: a retry with the same key attaches to the same execution. */
  requestId?: string;
}

export interface RunOptions extends ExecuteOptions {
  /** Called with every event as it arrives. */
  onEvent?: (event: ExecutionEvent) => void;
}

export interface WaitOptions {
  /** Called with every event, those replayed from the start included, as it arrives. */
  onEvent?: (event: ExecutionEvent) => void;
}

/** What `run()` resolves to once the execution reached a terminal event. */
export interface RunResult extends ExecutionResult {
  executionId: string;
  status: ExecutionStatus.COMPLETED | ExecutionStatus.FAILED | ExecutionStatus.CANCELLED;
  /** The cancellation reason, for a cancelled execution. */
  reason: string;
}

export interface ListOptions {
  /** Workflows per page fetched from the server (default 50, max 1000). */
  pageSize?: number;
  /** Only workflows carrying all of these labels with these values. */
  labelFilter?: Record<string, string>;
}

export interface ListExecutionsOptions {
  workflowName?: string;
  status?: ExecutionStatus;
  /** Created at or after. */
  createdAfter?: Date;
  /** Created before. */
  createdBefore?: Date;
  pageSize?: number;
}

export interface ShutdownOptions {
  /** How long running executions may take to finish; unset: the server's configured grace period. */
  gracePeriodMs?: number;
  /**
   * What happens to the executions still running when the grace period runs out: true stops
   * them where they are, as a crash would, for the next server on the same data directory to
   * resume (a completed step is never re-run); false cancels them. Unset: the server's
   * configured `shutdown_unfinished`. With the in-memory store they are cancelled.
   */
  resumeUnfinished?: boolean;
}

/** What `shutdown()` resolves to. */
export interface ShutdownResult {
  /** Executions that finished during the grace period. */
  finishedDuringGrace: number;
  /** Executions cancelled when the grace period ran out. */
  cancelled: number;
  /** Executions stopped where they were, for the next server to resume. */
  leftToResume: number;
}

export interface Page<T> {
  items: T[];
  /** Empty on the last page. */
  nextPageToken: string;
}

/**
 * Idiomatic client for the wfm WorkflowService (Connect, gRPC protocol, HTTP/2).
 *
 * Every method rejects with a `WfmError` (a ConnectError) whose class matches
 * its code; streams throw it from the iteration. Each method takes Connect's
 * `CallOptions` (signal, timeoutMs, headers) as its last, optional argument.
 */
export class WfmClient {
  /** The generated Connect client, for anything the idiomatic layer does not cover. */
  readonly raw: Client<typeof WorkflowService>;
  private readonly sessionManager: WfmSessionManager;
  private readonly defaultTimeoutMs: number | undefined;
  /** How many times close() was called: a call that sees it change was cancelled by its caller. */
  private closes = 0;

  constructor(baseUrl: string, options: WfmClientOptions = {}) {
    const { tls, token } = options;
    const secure = tls !== undefined && tls !== false;
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(baseUrl)) {
      baseUrl = `${secure ? "https" : "http"}://${baseUrl}`;
    } else if (secure && baseUrl.startsWith("http://")) {
      throw new WfmError(`tls was requested but the base URL is plaintext: ${baseUrl}`, Code.InvalidArgument);
    }
    const nodeOptions = typeof tls === "object" ? tls : {};
    this.sessionManager = new WfmSessionManager(baseUrl, {}, nodeOptions);
    this.defaultTimeoutMs = options.defaultTimeoutMs;
    const interceptors: Interceptor[] = [];
    if (token !== undefined && token !== "") {
      interceptors.push((next) => (req) => {
        req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      });
    }
    interceptors.push(...(options.interceptors ?? []));
    // Innermost: it hands the call's signal to the session manager (see transport.ts).
    interceptors.push(callSignalInterceptor);
    const transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.sessionManager,
      interceptors,
      defaultTimeoutMs: options.defaultTimeoutMs,
      // Results may nest deeper than protobuf-es's default of 100 messages (see RECURSION_LIMIT).
      binaryOptions: { recursionLimit: RECURSION_LIMIT },
    });
    this.raw = createClient(WorkflowService, transport);
  }

  /** Closes the HTTP/2 connection; calls and streams still open fail. */
  close(): void {
    this.closes++;
    this.sessionManager.abort();
  }

  // --- registry --------------------------------------------------------------

  /** Registers a workflow; identical content returns the existing version with `created: false`. */
  async register(input: RegisterInput, call?: CallOptions): Promise<{ workflow: Workflow; created: boolean }> {
    if (input.source?.case === "native" && input.source.value.arguments !== undefined) {
      checkJsonObject(input.source.value.arguments, "arguments");
    }
    const res = await this.unary(call, () => this.raw.register(input, call));
    return { workflow: workflowFromPb(required(res.workflow, "workflow")), created: res.created };
  }

  /** Removes every version of a workflow; returns how many versions were removed. */
  async unregister(name: string, call?: CallOptions): Promise<number> {
    const res = await this.unary(call, () => this.raw.unregister({ name }, call));
    return res.versionsRemoved;
  }

  /** Gets the latest version of a workflow (or `version`), with every registered version number. */
  async get(name: string, version = 0, call?: CallOptions): Promise<{ workflow: Workflow; versions: number[] }> {
    const res = await this.unary(call, () => this.raw.get({ name, version }, call));
    return { workflow: workflowFromPb(required(res.workflow, "workflow")), versions: [...res.versions] };
  }

  /** Every registered workflow (latest versions), fetching pages as the iteration goes. */
  list(options: ListOptions = {}, call?: CallOptions): AsyncIterable<Workflow> {
    return paginate((pageToken) => this.listPage({ ...options, pageToken }, call));
  }

  /** One page of `list()`. */
  async listPage(options: ListOptions & { pageToken?: string } = {}, call?: CallOptions): Promise<Page<Workflow>> {
    const res = await this.unary(call, () =>
      this.raw.list(
        { pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? "", labelFilter: options.labelFilter ?? {} },
        call,
      ),
    );
    return { items: res.workflows.map(workflowFromPb), nextPageToken: res.nextPageToken };
  }

  /** The workflow types compiled into the server (for `nativeSource`). */
  async listWorkflowTypes(call?: CallOptions): Promise<WorkflowType[]> {
    const res = await this.unary(call, () => this.raw.listWorkflowTypes({}, call));
    return res.workflowTypes;
  }

  /** The tools workflows can call. */
  async listTools(call?: CallOptions): Promise<Tool[]> {
    const res = await this.unary(call, () => this.raw.listTools({}, call));
    return res.tools;
  }

  /**
   * Per-workflow execution counts since the server started and p50/p99 durations of
   * recent executions: for one workflow, or every registered one when empty.
   */
  async getStats(workflowName = "", call?: CallOptions): Promise<Stats> {
    const res = await this.unary(call, () => this.raw.getStats({ workflowName }, call));
    return statsFromPb(res);
  }

  // --- executions ------------------------------------------------------------

  /**
   * Starts an execution and yields its events until the terminal one
   * (completed, failed or cancelled). The call is made when iteration starts;
   * breaking out of the loop cancels the stream (not the execution).
   */
  execute(name: string, options: ExecuteOptions = {}, call?: CallOptions): AsyncIterable<ExecutionEvent> {
    return this.events((callOptions) => this.raw.execute(executeRequest(name, options), callOptions), call);
  }

  /**
   * Executes a workflow and resolves with its result once it is terminal.
   * A failed or cancelled execution resolves too (`success: false`, see `status`);
   * only RPC errors reject.
   */
  async run(name: string, options: RunOptions = {}, call?: CallOptions): Promise<RunResult> {
    const { onEvent, ...rest } = options;
    return untilTerminal(this.execute(name, rest, call), onEvent, `"${name}"`);
  }

  /** Starts an execution and returns its id at once; `created` is false when `requestId` matched. */
  async startExecution(
    name: string,
    options: ExecuteOptions = {},
    call?: CallOptions,
  ): Promise<{ executionId: string; created: boolean }> {
    const res = await this.unary(call, () => this.raw.startExecution(executeRequest(name, options), call));
    return { executionId: res.executionId, created: res.created };
  }

  /** Gets one execution with its status, timings and result so far. */
  async getExecution(executionId: string, call?: CallOptions): Promise<Execution> {
    const res = await this.unary(call, () => this.raw.getExecution({ executionId }, call));
    return executionFromPb(required(res.execution, "execution"));
  }

  /** Executions, newest first, fetching pages as the iteration goes. */
  listExecutions(options: ListExecutionsOptions = {}, call?: CallOptions): AsyncIterable<Execution> {
    return paginate((pageToken) => this.listExecutionsPage({ ...options, pageToken }, call));
  }

  /** One page of `listExecutions()`. */
  async listExecutionsPage(
    options: ListExecutionsOptions & { pageToken?: string } = {},
    call?: CallOptions,
  ): Promise<Page<Execution>> {
    const res = await this.unary(call, () =>
      this.raw.listExecutions(
        {
          workflowName: options.workflowName ?? "",
          status: options.status ?? ExecutionStatus.UNSPECIFIED,
          createTimeStart: options.createdAfter ? timestampFromDate(options.createdAfter) : undefined,
          createTimeEnd: options.createdBefore ? timestampFromDate(options.createdBefore) : undefined,
          pageSize: options.pageSize ?? 0,
          pageToken: options.pageToken ?? "",
        },
        call,
      ),
    );
    return { items: res.executions.map(executionFromPb), nextPageToken: res.nextPageToken };
  }

  /**
   * Replays the events with a sequence number greater than `afterSequence`
   * (0 replays all), then follows the execution live until its terminal event.
   * `afterSequence` is a non-negative integer (number or bigint); anything else throws an
   * InvalidArgumentError from the iteration, before any call.
   */
  watch(executionId: string, afterSequence: number | bigint = 0, call?: CallOptions): AsyncIterable<ExecutionEvent> {
    return this.events(
      (callOptions) =>
        this.raw.watchExecution(
          { executionId, afterSequence: sequenceNumber(afterSequence, "afterSequence") },
          callOptions,
        ),
      call,
    );
  }

  /**
   * Waits for an execution started earlier (`startExecution`, or by anyone) to reach its
   * terminal event and resolves with its result, like `run()`; an execution that has
   * already ended resolves at once.
   */
  async wait(executionId: string, options: WaitOptions = {}, call?: CallOptions): Promise<RunResult> {
    return untilTerminal(this.watch(executionId, 0, call), options.onEvent, `execution ${executionId}`);
  }

  /** Cancels an execution and its children (idempotent); returns the status after the request. */
  async cancelExecution(executionId: string, reason = "", call?: CallOptions): Promise<ExecutionStatus> {
    const res = await this.unary(call, () => this.raw.cancelExecution({ executionId, reason }, call));
    return res.status;
  }

  // --- service ---------------------------------------------------------------

  /**
   * Stops the server gracefully. Running executions get `gracePeriodMs`
   * (default: the server's configured grace period) to finish; those still running then
   * are cancelled, or, with `resumeUnfinished: true`, stopped where they are for the next
   * server started on the same data directory to resume (unset: the server's configured
   * `shutdown_unfinished`; the in-memory store always cancels).
   */
  async shutdown(options: ShutdownOptions = {}, call?: CallOptions): Promise<ShutdownResult> {
    const gracePeriod = options.gracePeriodMs === undefined ? undefined : durationFromMs(options.gracePeriodMs);
    const res = await this.unary(call, () =>
      this.raw.shutdown({ gracePeriod, resumeUnfinished: options.resumeUnfinished }, call),
    );
    return { finishedDuringGrace: res.finishedDuringGrace, cancelled: res.cancelled, leftToResume: res.leftToResume };
  }

  // --- calls -----------------------------------------------------------------

  private async unary<T>(call: CallOptions | undefined, send: () => Promise<T>): Promise<T> {
    const closes = this.closes;
    try {
      return await send();
    } catch (e) {
      throw callError(e, call?.signal?.aborted === true || this.closes !== closes, this.sessionManager.authority);
    }
  }

  /**
   * The events of a stream opened with a signal of its own. Leaving the loop early (`break`,
   * `return`, a throw in its body) ends the generator in `finally`, which aborts the call:
   * the server closes the stream at once instead of keeping it until the execution ends
   * (and a stream the server had already ended, its last events unread, is destroyed:
   * see WfmSessionManager in transport.ts).
   * The caller's own `signal`, when given, still aborts it too.
   *
   * The deadline (`timeoutMs`, else the client's `defaultTimeoutMs`) is a timer of ours,
   * cleared in `finally` too, and sent to the server as `grpc-timeout`. Connect's own timer
   * would stay armed when the loop is left before the stream's end (its response iterator
   * has no `return()`), keeping Node running until the deadline.
   */
  private async *events(
    open: (callOptions: CallOptions) => AsyncIterable<{ event?: PbExecutionEvent }>,
    call?: CallOptions,
  ): AsyncGenerator<ExecutionEvent, void, undefined> {
    const closes = this.closes;
    const stop = new AbortController();
    const callerAborted = () => stop.abort(call?.signal?.reason);
    if (call?.signal?.aborted) {
      callerAborted();
    } else {
      call?.signal?.addEventListener("abort", callerAborted, { once: true });
    }
    // Connect's convention: an unset timeoutMs means the default one, 0 or less none.
    const timeoutMs =
      call?.timeoutMs === undefined ? this.defaultTimeoutMs : call.timeoutMs > 0 ? call.timeoutMs : undefined;
    const headers = new Headers(call?.headers);
    let deadline: ReturnType<typeof setTimeout> | undefined;
    if (timeoutMs !== undefined && timeoutMs > 0) {
      headers.set("grpc-timeout", grpcTimeout(timeoutMs));
      deadline = setTimeout(
        () => stop.abort(new DeadlineExceededError(`the stream did not end within ${timeoutMs} ms (timeoutMs)`)),
        timeoutMs,
      );
    }
    try {
      // timeoutMs 0: no deadline of Connect's, ours stands in for it.
      for await (const res of open({ ...call, signal: stop.signal, timeoutMs: 0, headers })) {
        if (res.event) {
          yield eventFromPb(res.event);
        }
      }
    } catch (e) {
      throw callError(e, call?.signal?.aborted === true || this.closes !== closes, this.sessionManager.authority);
    } finally {
      clearTimeout(deadline);
      call?.signal?.removeEventListener("abort", callerAborted);
      stop.abort();
    }
  }
}

// --- helpers -----------------------------------------------------------------

/** The request of Execute / StartExecution; throws an InvalidArgumentError for an input or metadata that is not JSON. */
function executeRequest(name: string, o: ExecuteOptions) {
  if (o.input !== undefined) checkJsonObject(o.input, "input");
  if (o.metadata !== undefined) checkJsonObject(o.metadata, "metadata");
  return {
    name,
    version: o.version ?? 0,
    input: o.input,
    metadata: o.metadata,
    requestId: o.requestId ?? "",
  };
}

/**
 * The WfmError for what a call threw. A CANCELLED that neither the caller (its signal,
 * `close()`) nor the server (a grpc-status) asked for is the connection breaking, for
 * instance the server crashing mid-stream (HTTP/2 reports it as a CANCEL reset): it is
 * UNAVAILABLE, as the Go and Python clients see it, so that retry logic keyed on
 * `isUnavailable` covers it.
 */
function callError(e: unknown, cancelledByCaller: boolean, authority: string): WfmError {
  if (isConnectionFailure(e)) {
    // A TLS or socket failure surfacing on the call's stream (Connect reports it as INTERNAL).
    return WfmError.from(connectionError(e, authority));
  }
  const err = WfmError.from(e);
  if (err.code === Code.Canceled && !cancelledByCaller && !err.metadata.has("grpc-status")) {
    return new UnavailableError(`the connection to the server was lost: ${err.rawMessage}`, {
      metadata: err.metadata,
      cause: e,
    });
  }
  return err;
}

/** A sequence number (uint64) given as a number or a bigint; throws an InvalidArgumentError for anything else. */
function sequenceNumber(value: number | bigint, what: string): bigint {
  if (typeof value === "bigint" && value >= 0n && value <= 0xffff_ffff_ffff_ffffn) {
    return value;
  }
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
    return BigInt(value);
  }
  throw new InvalidArgumentError(
    `${what} must be a non-negative integer (a number or a bigint), got ${typeof value === "bigint" ? `${value}n` : String(value)}`,
  );
}

/** The grpc-timeout header's value: at most 8 digits, then the unit. */
function grpcTimeout(ms: number): string {
  const millis = Math.ceil(ms);
  return millis <= 99_999_999 ? `${millis}m` : `${Math.min(Math.ceil(millis / 1000), 99_999_999)}S`;
}

/** Reads events until the terminal one and resolves with the result it carries. */
async function untilTerminal(
  stream: AsyncIterable<ExecutionEvent>,
  onEvent: ((event: ExecutionEvent) => void) | undefined,
  what: string,
): Promise<RunResult> {
  for await (const event of stream) {
    onEvent?.(event);
    if (isTerminalEvent(event)) {
      return runResult(event);
    }
  }
  throw new WfmError(`the event stream of ${what} ended before a terminal event`, Code.DataLoss);
}

async function* paginate<T>(fetch: (pageToken: string) => Promise<Page<T>>): AsyncGenerator<T, void, undefined> {
  let token = "";
  do {
    const page = await fetch(token);
    yield* page.items;
    token = page.nextPageToken;
  } while (token !== "");
}

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) {
    throw new WfmError(`the server's response lacks its ${field}`, Code.Internal);
  }
  return value;
}

function runResult(event: Extract<ExecutionEvent, { kind: "completed" | "failed" | "cancelled" }>): RunResult {
  const base = { executionId: event.executionId, reason: "" };
  switch (event.kind) {
    case "completed":
      return { ...event.result, ...base, status: ExecutionStatus.COMPLETED };
    case "failed":
      return {
        ...(event.result ?? emptyFailure(event.error)),
        ...base,
        error: event.result?.error || event.error,
        status: ExecutionStatus.FAILED,
      };
    case "cancelled":
      return {
        ...(event.result ?? emptyFailure("")),
        ...base,
        reason: event.reason,
        status: ExecutionStatus.CANCELLED,
      };
  }
}

function emptyFailure(error: string): ExecutionResult {
  return resultFromPb(create(ExecutionResultSchema, { success: false, error }));
}
