// End-to-end tests of WfmClient against real `wfm serve` processes (no mocks).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ConnectError } from "@connectrpc/connect";
import {
  CancelledError,
  Code,
  DeadlineExceededError,
  ExecutionStatus,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  WfmClient,
  WfmError,
  definitionFile,
  definitionOf,
  definitionSource,
  hasCode,
  isCancelled,
  isInvalidArgument,
  isNotFound,
  isUnavailable,
  nativeSource,
  type DefinitionFile,
  type ExecutionEvent,
  type JsonObject,
  type JsonValue,
  type Workflow,
} from "../src/index.js";
import { startServer, type WfmServer } from "./server.js";

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) {
    out.push(x);
  }
  return out;
}

const kinds = (events: ExecutionEvent[]) => events.map((e) => e.kind);
const sequences = (events: ExecutionEvent[]) => events.map((e) => e.sequence);

/** Asserts `promise` rejects with a WfmError of this class and code, and returns it. */
async function rejectsWith(
  promise: Promise<unknown>,
  cls:
    | typeof NotFoundError
    | typeof InvalidArgumentError
    | typeof UnavailableError
    | typeof CancelledError
    | typeof DeadlineExceededError,
  code: Code,
): Promise<WfmError> {
  let caught: unknown;
  try {
    await promise;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof cls, `expected ${cls.name}, got ${String(caught)}`);
  assert.ok(caught instanceof WfmError);
  assert.ok(caught instanceof ConnectError, "a WfmError is a ConnectError");
  assert.equal(caught.code, code);
  return caught;
}

describe("WfmClient against a real wfm server", () => {
  let server: WfmServer;
  let client: WfmClient;

  before(async () => {
    server = await startServer();
    client = new WfmClient(server.url);
  });

  after(async () => {
    client?.close();
    await server?.stop();
  });

  it("lists the built-in workflow types and the tools", async () => {
    const types = (await client.listWorkflowTypes()).map((t) => t.name);
    for (const t of ["echo", "noop", "sleep", "data_analysis"]) {
      assert.ok(types.includes(t), `missing type ${t} in ${types.join(", ")}`);
    }
    const tools = await client.listTools();
    assert.ok(Array.isArray(tools));
  });

  it("registers a workflow, idempotently for identical content", async () => {
    const first = await client.register({
      name: "greet",
      description: "says it back",
      labels: { team: "ts" },
      source: nativeSource("echo"),
    });
    assert.equal(first.created, true);
    assert.equal(first.workflow.name, "greet");
    assert.equal(first.workflow.version, 1);
    assert.equal(first.workflow.description, "says it back");
    assert.deepEqual(first.workflow.labels, { team: "ts" });
    assert.ok(first.workflow.createTime instanceof Date);
    assert.equal(first.workflow.source.case, "native");
    assert.equal(first.workflow.source.value?.type, "echo");
    assert.equal(first.workflow.definition, undefined);
    assert.equal(definitionOf(first.workflow), undefined);

    const again = await client.register({
      name: "greet",
      description: "says it back",
      labels: { team: "ts" },
      source: nativeSource("echo"),
    });
    assert.equal(again.created, false);
    assert.equal(again.workflow.version, 1);
  });

  it("registers a new version when the content changes, and gets any version", async () => {
    await client.register({ name: "changing", source: nativeSource("noop") });
    const v2 = await client.register({ name: "changing", source: nativeSource("echo") });
    assert.equal(v2.created, true);
    assert.equal(v2.workflow.version, 2);

    const latest = await client.get("changing");
    assert.equal(latest.workflow.version, 2);
    assert.deepEqual(latest.versions, [1, 2]);
    assert.equal(latest.workflow.source.case, "native");
    assert.equal(latest.workflow.source.case === "native" ? latest.workflow.source.value.type : undefined, "echo");

    const v1 = await client.get("changing", 1);
    assert.equal(v1.workflow.version, 1);
    assert.equal(v1.workflow.source.case === "native" ? v1.workflow.source.value.type : undefined, "noop");
  });

  it("rejects an invalid name with INVALID_ARGUMENT", async () => {
    const err = await rejectsWith(
      client.register({ name: "bad name!", source: nativeSource("echo") }),
      InvalidArgumentError,
      Code.InvalidArgument,
    );
    assert.ok(isInvalidArgument(err));
    assert.ok(!isNotFound(err));
  });

  it("lists every workflow across pages of 2", async () => {
    for (const name of ["page-a", "page-b", "page-c"]) {
      await client.register({ name, source: nativeSource("noop") });
    }
    // Page by hand: every page but the last is full and has a token.
    const pages: Workflow[][] = [];
    let token = "";
    do {
      const page = await client.listPage({ pageSize: 2, pageToken: token });
      pages.push(page.items);
      token = page.nextPageToken;
      if (token !== "") {
        assert.equal(page.items.length, 2);
      }
    } while (token !== "" && pages.length < 100);
    assert.ok(pages.length >= 3, `expected at least 3 pages of 2, got ${pages.length}`);

    const viaIterator = await collect(client.list({ pageSize: 2 }));
    const names = viaIterator.map((w) => w.name);
    assert.deepEqual(names, pages.flat().map((w) => w.name));
    assert.equal(new Set(names).size, names.length, "no workflow listed twice");
    for (const n of ["greet", "changing", "page-a", "page-b", "page-c"]) {
      assert.ok(names.includes(n), `missing ${n} in ${names.join(", ")}`);
    }
    // The latest version only.
    assert.equal(viaIterator.find((w) => w.name === "changing")?.version, 2);
  });

  it("filters the list by labels", async () => {
    const labelled = await collect(client.list({ labelFilter: { team: "ts" } }));
    assert.deepEqual(
      labelled.map((w) => w.name),
      ["greet"],
    );
  });

  it("gets a workflow; an unknown one is NOT_FOUND", async () => {
    const { workflow, versions } = await client.get("greet");
    assert.equal(workflow.name, "greet");
    assert.deepEqual(versions, [1]);

    const err = await rejectsWith(client.get("does-not-exist"), NotFoundError, Code.NotFound);
    assert.ok(isNotFound(err));
    assert.ok(hasCode(err, Code.NotFound));
    assert.ok(!(err instanceof InvalidArgumentError));
    assert.match(err.rawMessage, /does-not-exist/);
  });

  it("executes echo and streams its events in order", async () => {
    const input = { greeting: "hello", n: 42, nested: { list: [1, "two", true, null] } };
    const events = await collect(client.execute("greet", { input, metadata: { caller: "ts-test" } }));

    assert.deepEqual(kinds(events), ["accepted", "started", "stepStarted", "stepCompleted", "completed"]);
    assert.deepEqual(sequences(events), [1, 2, 3, 4, 5]);
    const executionId = events[0]!.executionId;
    assert.ok(executionId.length > 0);
    for (const e of events) {
      assert.equal(e.executionId, executionId);
      assert.ok(e.time instanceof Date);
    }

    const [accepted, started, stepStarted, stepCompleted, completed] = events;
    assert.ok(accepted?.kind === "accepted");
    assert.equal(accepted.workflowName, "greet");
    assert.equal(accepted.workflowVersion, 1);
    assert.ok(started?.kind === "started");
    assert.equal(started.attempt, 1);
    assert.ok(stepStarted?.kind === "stepStarted");
    assert.equal(stepStarted.stepId, "echo");
    assert.ok(stepCompleted?.kind === "stepCompleted");
    assert.equal(stepCompleted.stepId, "echo");
    assert.deepEqual(stepCompleted.output, input);
    assert.ok(completed?.kind === "completed");
    assert.equal(completed.result.success, true);
    assert.equal(completed.result.stepsCompleted, 1);
    assert.equal(completed.result.stepsFailed, 0);
    assert.deepEqual(completed.result.output, input);

    const execution = await client.getExecution(executionId);
    assert.equal(execution.status, ExecutionStatus.COMPLETED);
    assert.equal(execution.workflowName, "greet");
    assert.deepEqual(execution.input, input);
    assert.deepEqual(execution.metadata, { caller: "ts-test" });
    assert.equal(execution.lastSequence, 5);
    assert.deepEqual(execution.result?.output, input);
  });

  it("run() waits for the result", async () => {
    const seen: string[] = [];
    const result = await client.run("greet", { input: { x: 1 }, onEvent: (e) => seen.push(e.kind) });
    assert.equal(result.status, ExecutionStatus.COMPLETED);
    assert.equal(result.success, true);
    assert.deepEqual(result.output, { x: 1 });
    assert.equal(result.stepsCompleted, 1);
    assert.ok(result.executionId.length > 0);
    assert.deepEqual(seen, ["accepted", "started", "stepStarted", "stepCompleted", "completed"]);
  });

  it("wait() resolves with the result of an execution started earlier", async () => {
    const { executionId } = await client.startExecution("greet", { input: { w: 1 } });
    const seen: number[] = [];
    const result = await client.wait(executionId, { onEvent: (e) => seen.push(e.sequence) });
    assert.equal(result.executionId, executionId);
    assert.equal(result.status, ExecutionStatus.COMPLETED);
    assert.equal(result.success, true);
    assert.deepEqual(result.output, { w: 1 });
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    // Once it has ended, at once and the same.
    assert.deepEqual(await client.wait(executionId), result);
    await rejectsWith(client.wait("00000000-0000-4000-8000-000000000000"), NotFoundError, Code.NotFound);
  });

  it("getStats counts the executions of a workflow, as plain numbers, milliseconds and a Date", async () => {
    const [before] = (await client.getStats("greet")).workflows;
    assert.ok(before);
    await client.run("greet", { input: { s: 1 } });
    const stats = await client.getStats("greet");
    assert.ok(stats.since instanceof Date);
    assert.ok(stats.since.getTime() <= Date.now());
    assert.equal(stats.workflows.length, 1);
    const [after] = stats.workflows;
    assert.ok(after);
    assert.deepEqual(Object.keys(after).sort(), [
      "cancelled",
      "failed",
      "p50DurationMs",
      "p99DurationMs",
      "running",
      "started",
      "succeeded",
      "windowSize",
      "workflowName",
    ]);
    assert.equal(after.workflowName, "greet");
    for (const n of [after.started, after.succeeded, after.failed, after.cancelled, after.running, after.windowSize]) {
      assert.equal(typeof n, "number");
    }
    assert.equal(after.started, before.started + 1);
    assert.equal(after.succeeded, before.succeeded + 1);
    assert.equal(after.started, after.succeeded + after.failed + after.cancelled + after.running);
    assert.ok(after.windowSize >= 1 && after.windowSize <= after.succeeded + after.failed + after.cancelled);
    assert.equal(typeof after.p50DurationMs, "number");
    assert.equal(typeof after.p99DurationMs, "number");
    assert.ok(after.p50DurationMs! >= 0 && after.p50DurationMs! <= after.p99DurationMs!);
    assert.ok(after.p99DurationMs! < 60_000, `p99 of an echo is ${after.p99DurationMs} ms`);
    assert.ok((await client.getStats()).workflows.some((w) => w.workflowName === "greet"));
    await rejectsWith(client.getStats("does-not-exist"), NotFoundError, Code.NotFound);
  });

  it("reuses the execution for a repeated requestId", async () => {
    const first = await client.startExecution("greet", { input: { k: 1 }, requestId: "ts-idem-1" });
    assert.equal(first.created, true);
    const second = await client.startExecution("greet", { input: { k: 1 }, requestId: "ts-idem-1" });
    assert.equal(second.created, false);
    assert.equal(second.executionId, first.executionId);
    const run = await client.run("greet", { input: { k: 1 }, requestId: "ts-idem-1" });
    assert.equal(run.executionId, first.executionId);
  });

  it("an unknown workflow is NOT_FOUND, from execute, run and startExecution", async () => {
    await rejectsWith(collect(client.execute("no-such-workflow", { input: {} })), NotFoundError, Code.NotFound);
    await rejectsWith(client.run("no-such-workflow"), NotFoundError, Code.NotFound);
    await rejectsWith(client.startExecution("no-such-workflow"), NotFoundError, Code.NotFound);
    await rejectsWith(client.get("greet", 99), NotFoundError, Code.NotFound);
  });

  it("refuses values that are not JSON in input, metadata and arguments, naming where, before any call", async () => {
    const executionsOfGreet = async () => (await collect(client.listExecutions({ workflowName: "greet" }))).length;
    const before = await executionsOfGreet();
    for (const [bad, what] of [
      [undefined, /undefined is not JSON/],
      [10n, /the bigint 10n is not JSON/],
      [new Date(0), /a Date is not JSON/],
      [() => 1, /a function is not JSON/],
      [Symbol("s"), /a symbol is not JSON/],
      [new Map([["k", 1]]), /a Map is not JSON/],
      [NaN, /NaN is not JSON/],
    ] as const) {
      const input = { a: { "b c": [1, bad] } } as never;
      for (const attempt of [
        client.run("greet", { input }),
        collect(client.execute("greet", { input })),
        client.startExecution("greet", { input }),
      ]) {
        const err = await rejectsWith(attempt, InvalidArgumentError, Code.InvalidArgument);
        assert.ok(err.rawMessage.startsWith('input.a["b c"][1]: '), err.rawMessage);
        assert.match(err.rawMessage, what);
      }
    }
    const meta = await rejectsWith(
      client.startExecution("greet", { input: {}, metadata: { when: new Date(0) } as never }),
      InvalidArgumentError,
      Code.InvalidArgument,
    );
    assert.match(meta.rawMessage, /^metadata\.when: a Date is not JSON/);
    // Nothing reached the server: no execution was created.
    assert.equal(await executionsOfGreet(), before);

    // Workflow arguments, from nativeSource, a hand-made source and definitionSource.
    assert.throws(
      () => nativeSource("echo", { limit: 10n } as never),
      (e: unknown) => e instanceof InvalidArgumentError && /^arguments\.limit: the bigint 10n/.test(e.rawMessage),
    );
    const reg = await rejectsWith(
      client.register({
        name: "not-json-args",
        source: { case: "native", value: { type: "echo", arguments: { at: new Date(0) } as never } },
      }),
      InvalidArgumentError,
      Code.InvalidArgument,
    );
    assert.match(reg.rawMessage, /^arguments\.at: a Date is not JSON/);
    await rejectsWith(client.get("not-json-args"), NotFoundError, Code.NotFound);
    assert.throws(
      () =>
        definitionSource({
          steps: [{ id: "a", tool: { name: "sleep", arguments: { duration_ms: undefined } as never } }],
        }),
      (e: unknown) =>
        e instanceof InvalidArgumentError &&
        e.rawMessage.startsWith("steps[0] (step 'a').tool.arguments.duration_ms: undefined is not JSON"),
    );
    assert.throws(
      () => definitionSource({ steps: [{ id: "a", tool: { name: "sleep" } }], output: { n: 1n } as never }),
      (e: unknown) => e instanceof InvalidArgumentError && /^output\.n: the bigint 1n/.test(e.rawMessage),
    );

    // JSON of any shape still goes through, null and objects without a prototype included.
    const fine = { a: null, b: [true, 0.5, "x", [], {}], c: Object.assign(Object.create(null) as object, { d: 1 }) };
    assert.deepEqual((await client.run("greet", { input: fine, metadata: { m: [null] } })).output, {
      a: null,
      b: [true, 0.5, "x", [], {}],
      c: { d: 1 },
    });
  });

  it("watch() refuses an afterSequence that is not a non-negative integer, before any call", async () => {
    const { executionId } = await client.startExecution("greet", { input: { s: 1 } });
    for (const bad of [1.5, -1, NaN, Infinity, 2 ** 64, -1n, 2n ** 64n, "3" as never]) {
      const err = await rejectsWith(collect(client.watch(executionId, bad)), InvalidArgumentError, Code.InvalidArgument);
      assert.match(err.rawMessage, /^afterSequence must be a non-negative integer \(a number or a bigint\), got /);
    }
    assert.deepEqual(sequences(await collect(client.watch(executionId, 3))), [4, 5]);
    assert.deepEqual(sequences(await collect(client.watch(executionId, 3n))), [4, 5]);
  });

  it("startExecution + watch from afterSequence 2 sees only the later events", async () => {
    await client.register({ name: "nap", source: nativeSource("sleep") });
    const { executionId, created } = await client.startExecution("nap", { input: { duration_ms: 300 } });
    assert.equal(created, true);

    const live = await collect(client.watch(executionId, 2));
    assert.ok(live.length >= 2);
    assert.ok(
      live.every((e) => e.sequence > 2),
      `got sequences ${sequences(live).join(",")}`,
    );
    assert.deepEqual(
      sequences(live),
      live.map((_, i) => 3 + i),
      "contiguous from 3",
    );
    assert.equal(live[0]!.kind, "stepStarted");
    const last = live.at(-1)!;
    assert.equal(last.kind, "completed");

    // Replaying a finished execution gives the same events again.
    const replay = await collect(client.watch(executionId, 2n));
    assert.deepEqual(sequences(replay), sequences(live));
    assert.deepEqual(kinds(replay), kinds(live));
    const all = await collect(client.watch(executionId));
    assert.deepEqual(sequences(all), [1, 2, ...sequences(live)]);
    assert.equal((await client.getExecution(executionId)).lastSequence, last.sequence);
  });

  it("cancels a sleep execution: the stream ends with a cancelled event", async () => {
    const { executionId } = await client.startExecution("nap", { input: { duration_ms: 60_000 } });
    const events: ExecutionEvent[] = [];
    for await (const e of client.watch(executionId)) {
      events.push(e);
      if (e.kind === "stepStarted") {
        const status = await client.cancelExecution(executionId, "test says stop");
        assert.equal(status, ExecutionStatus.CANCELLED);
      }
    }
    const last = events.at(-1)!;
    assert.ok(last.kind === "cancelled", `last event was ${last.kind}`);
    assert.equal(last.reason, "test says stop");
    assert.equal(last.result?.success, false);
    assert.deepEqual(
      sequences(events),
      events.map((_, i) => i + 1),
    );

    const execution = await client.getExecution(executionId);
    assert.equal(execution.status, ExecutionStatus.CANCELLED);
    // Idempotent.
    assert.equal(await client.cancelExecution(executionId), ExecutionStatus.CANCELLED);
  });

  it("a step cut short by a cancel is a stepCancelled event, not stepFailed", async () => {
    await client.register({
      name: "cut-short",
      source: definitionSource({
        steps: [{ id: "nap", tool: { name: "sleep", arguments: { duration_ms: 60_000 } } }],
      }),
    });
    const events: ExecutionEvent[] = [];
    for await (const e of client.execute("cut-short")) {
      events.push(e);
      if (e.kind === "stepStarted" && e.stepId === "nap") {
        await client.cancelExecution(e.executionId, "test cuts it short");
      }
    }
    assert.equal(events.at(-1)?.kind, "cancelled", `kinds: ${kinds(events).join(",")}`);
    assert.ok(!events.some((e) => e.kind === "stepFailed"), `kinds: ${kinds(events).join(",")}`);
    const cut = events.find((e) => e.kind === "stepCancelled");
    assert.ok(cut?.kind === "stepCancelled", `kinds: ${kinds(events).join(",")}`);
    assert.deepEqual(
      { stepId: cut.stepId, attempt: cut.attempt, reason: cut.reason },
      { stepId: "nap", attempt: 1, reason: "the execution was cancelled while the step ran" },
    );
  });

  it("run() resolves a cancelled execution with its status", async () => {
    let resolveStarted!: (id: string) => void;
    const started = new Promise<string>((resolve) => (resolveStarted = resolve));
    const run = client.run("nap", {
      input: { duration_ms: 60_000 },
      onEvent: (e) => {
        if (e.kind === "stepStarted") {
          resolveStarted(e.executionId);
        }
      },
    });
    const id = await started;
    await client.cancelExecution(id, "enough");
    const result = await run;
    assert.equal(result.executionId, id);
    assert.equal(result.status, ExecutionStatus.CANCELLED);
    assert.equal(result.reason, "enough");
    assert.equal(result.success, false);
  });

  it("lists executions across pages, newest first, with filters", async () => {
    const all = await collect(client.listExecutions({ pageSize: 2 }));
    assert.ok(all.length >= 5, `only ${all.length} executions`);
    assert.equal(new Set(all.map((e) => e.id)).size, all.length);
    for (let i = 1; i < all.length; i++) {
      assert.ok(all[i - 1]!.createTime! >= all[i]!.createTime!, "newest first");
    }
    const naps = await collect(client.listExecutions({ workflowName: "nap", pageSize: 2 }));
    assert.ok(naps.length >= 3);
    assert.ok(naps.every((e) => e.workflowName === "nap"));
    const cancelled = await collect(client.listExecutions({ status: ExecutionStatus.CANCELLED }));
    assert.ok(cancelled.length >= 2);
    assert.ok(cancelled.every((e) => e.status === ExecutionStatus.CANCELLED));
    const none = await collect(client.listExecutions({ createdBefore: new Date(0) }));
    assert.deepEqual(none, []);
  });

  it("unregisters a workflow; its executions stay readable", async () => {
    // Ended first: a workflow with an unfinished execution is not unregistered.
    const { executionId } = await client.run("changing", { input: { a: 1 } });
    assert.equal(await client.unregister("changing"), 2);
    await rejectsWith(client.get("changing"), NotFoundError, Code.NotFound);
    const execution = await client.getExecution(executionId);
    assert.equal(execution.workflowName, "changing");
    await rejectsWith(client.unregister("changing"), NotFoundError, Code.NotFound);
  });

  it("sends the token as a Bearer authorization header", async () => {
    const seen: (string | null)[] = [];
    const authed = new WfmClient(server.url, {
      token: "s3cret",
      interceptors: [
        (next) => (req) => {
          seen.push(req.header.get("authorization"));
          return next(req);
        },
      ],
    });
    try {
      await authed.get("greet");
      await collect(authed.watch((await authed.startExecution("greet")).executionId));
    } finally {
      authed.close();
    }
    assert.deepEqual(seen, ["Bearer s3cret", "Bearer s3cret", "Bearer s3cret"]);
  });

  it("maps a caller abort and a deadline to typed errors", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    let err: unknown;
    try {
      await collect(client.execute("nap", { input: { duration_ms: 2_000 } }, { signal: ac.signal }));
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof WfmError && err.code === Code.Canceled, String(err));

    err = undefined;
    try {
      await collect(client.execute("nap", { input: { duration_ms: 2_000 } }, { timeoutMs: 100 }));
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof WfmError && err.code === Code.DeadlineExceeded, String(err));

    // The client's defaultTimeoutMs bounds streams too; a call's own timeoutMs wins over it.
    const bounded = new WfmClient(server.url, { defaultTimeoutMs: 100 });
    try {
      await rejectsWith(
        bounded.run("nap", { input: { duration_ms: 2_000 } }),
        DeadlineExceededError,
        Code.DeadlineExceeded,
      );
      const ok = await bounded.run("nap", { input: { duration_ms: 200 } }, { timeoutMs: 10_000 });
      assert.equal(ok.status, ExecutionStatus.COMPLETED);
    } finally {
      bounded.close();
    }
  });

  it("fails with UNAVAILABLE when nothing listens", async () => {
    const nowhere = new WfmClient("127.0.0.1:1");
    try {
      const err = await nowhere.get("greet").then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof WfmError && err.code === Code.Unavailable, String(err));
    } finally {
      nowhere.close();
    }
  });
});

describe("input limits", () => {
  let server: WfmServer;
  let client: WfmClient;

  before(async () => {
    server = await startServer({ WFM_LIMITS__MAX_INPUT_BYTES: "1000" });
    client = new WfmClient(server.url);
    await client.register({ name: "greet", source: nativeSource("echo") });
  });

  after(async () => {
    client?.close();
    await server?.stop();
  });

  it("rejects a too-large input with INVALID_ARGUMENT", async () => {
    const input = { blob: "x".repeat(2_000) };
    const err = await rejectsWith(collect(client.execute("greet", { input })), InvalidArgumentError, Code.InvalidArgument);
    assert.ok(isInvalidArgument(err));
    await rejectsWith(client.startExecution("greet", { input }), InvalidArgumentError, Code.InvalidArgument);
    await rejectsWith(client.run("greet", { input }), InvalidArgumentError, Code.InvalidArgument);
    // Just under the limit still runs.
    const ok = await client.run("greet", { input: { blob: "x".repeat(500) } });
    assert.equal(ok.success, true);
  });
});

describe("leaving a stream early", () => {
  let server: WfmServer;
  let client: WfmClient;
  let metricsUrl: string;

  before(async () => {
    server = await startServer({}, 20_000, ["--metrics-listen", "127.0.0.1:0"]);
    client = new WfmClient(server.url);
    const m = /metrics=(\S+:\d+)/.exec(server.stderr());
    assert.ok(m, `no metrics address in the server's log:\n${server.stderr()}`);
    metricsUrl = `http://${m[1]}/metrics`;
    await client.register({ name: "nap", source: nativeSource("sleep") });
  });

  after(async () => {
    client?.close();
    await server?.stop();
  });

  /** The server's count of open streams of one RPC, from its Prometheus endpoint. */
  async function openStreams(method: string): Promise<number> {
    const text = await (await fetch(metricsUrl)).text();
    const line = text.split("\n").find((l) => l.startsWith("wfm_grpc_streams_open{") && l.includes(`method="${method}"`));
    return line ? Number(line.split(" ").at(-1)) : 0;
  }

  async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(what);
  }

  for (const [rpc, open] of [
    ["WatchExecution", async () => client.watch((await client.startExecution("nap", { input: { duration_ms: 60_000 } })).executionId)],
    ["Execute", async () => client.execute("nap", { input: { duration_ms: 60_000 } })],
  ] as const) {
    it(`break out of a ${rpc} loop closes its stream on the server, and the execution runs on`, async () => {
      let executionId = "";
      for await (const e of await open()) {
        executionId = e.executionId;
        await eventually(`the ${rpc} stream is open while it is read`, async () => (await openStreams(rpc)) === 1);
        break;
      }
      await eventually(`the ${rpc} stream stays open after break`, async () => (await openStreams(rpc)) === 0);
      assert.equal((await client.getExecution(executionId)).status, ExecutionStatus.RUNNING);
      await client.cancelExecution(executionId, "test done");
    });
  }
});

describe("shutdown", () => {
  it("stops a server the test started, which exits 0", async () => {
    const server = await startServer();
    const client = new WfmClient(server.url);
    try {
      await client.register({ name: "nap", source: nativeSource("sleep") });
      await client.startExecution("nap", { input: { duration_ms: 60_000 } });
      const res = await client.shutdown({ gracePeriodMs: 200 });
      assert.equal(res.finishedDuringGrace, 0);
      assert.equal(res.cancelled, 1);
      assert.equal(res.leftToResume, 0);
      let timer: NodeJS.Timeout | undefined;
      const exit = await Promise.race([
        server.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("wfm did not exit within 10 s")), 10_000);
        }),
      ]).finally(() => clearTimeout(timer));
      assert.deepEqual(exit, { code: 0, signal: null }, server.stderr());
    } finally {
      client.close();
      await server.stop();
    }
  });
});

describe("shutdown leaving executions to resume", () => {
  /** Resolves with the server's exit, failing after 10 s. */
  async function exitOf(server: WfmServer) {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      server.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("wfm did not exit within 10 s")), 10_000);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Starts a server on `dataDir` with a sleep of 1.5 s running in it. */
  async function serverWithSleep(dataDir: string, env: Record<string, string> = {}) {
    const server = await startServer(env, 20_000, [], dataDir);
    const client = new WfmClient(server.url);
    await client.register({ name: "nap", source: nativeSource("sleep") });
    const { executionId } = await client.startExecution("nap", { input: { duration_ms: 1_500 } });
    for await (const e of client.watch(executionId)) if (e.kind === "stepStarted") break;
    return { server, client, executionId };
  }

  for (const [what, env, options] of [
    ["resumeUnfinished: true", {}, { gracePeriodMs: 100, resumeUnfinished: true }],
    [
      "resumeUnfinished unset, on a server configured to resume",
      { WFM_SHUTDOWN_UNFINISHED: "resume" },
      { gracePeriodMs: 100 },
    ],
  ] as const) {
    it(`${what}: leftToResume 1, and the next server on the data directory finishes it`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "wfm-ts-resume-"));
      const opened: { server: WfmServer; client: WfmClient }[] = [];
      try {
        const first = await serverWithSleep(dataDir, env);
        opened.push(first);
        const res = await first.client.shutdown(options);
        assert.deepEqual(res, { finishedDuringGrace: 0, cancelled: 0, leftToResume: 1 });
        assert.deepEqual(await exitOf(first.server), { code: 0, signal: null }, first.server.stderr());

        const server = await startServer({}, 20_000, [], dataDir);
        const client = new WfmClient(server.url);
        opened.push({ server, client });
        const result = await client.wait(first.executionId, {}, { timeoutMs: 20_000 });
        assert.equal(result.status, ExecutionStatus.COMPLETED, result.error);
      } finally {
        for (const { client, server } of opened) {
          client.close();
          await server.stop();
        }
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }

  it("resumeUnfinished: false cancels, even on a server configured to resume", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "wfm-ts-resume-"));
    const { server, client } = await serverWithSleep(dataDir, { WFM_SHUTDOWN_UNFINISHED: "resume" });
    try {
      const res = await client.shutdown({ gracePeriodMs: 100, resumeUnfinished: false });
      assert.deepEqual(res, { finishedDuringGrace: 0, cancelled: 1, leftToResume: 0 });
      assert.deepEqual(await exitOf(server), { code: 0, signal: null }, server.stderr());
    } finally {
      client.close();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("declarative workflows from plain objects", () => {
  let server: WfmServer;
  let client: WfmClient;

  before(async () => {
    server = await startServer();
    client = new WfmClient(server.url);
  });

  after(async () => {
    client?.close();
    await server?.stop();
  });

  // examples/fan-out.yaml, as the object a YAML or JSON parser gives for it.
  const fanOut: DefinitionFile = {
    name: "fan-out",
    description: "Squares numbers in parallel, sums them, and reports when the sum is large.",
    labels: { example: "true" },
    input_schema: {
      type: "object",
      required: ["numbers"],
      properties: {
        numbers: { type: "array", items: { type: "number" }, maxItems: 100 },
        threshold: { type: "number", default: 10 },
      },
    },
    steps: [
      {
        id: "square",
        for_each: "{{ input.numbers }}",
        max_parallel: 3,
        tool: { name: "json_transform", arguments: { data: "{{ item }}", expression: "data * data" } },
        retry: { maximum_attempts: 3, initial_interval: "200ms" },
        timeout: "5s",
      },
      {
        id: "total",
        depends_on: ["square"],
        tool: { name: "json_transform", arguments: { data: "{{ steps.square.output }}", expression: "data | sum" } },
      },
      {
        id: "celebrate",
        depends_on: ["total"],
        when: "steps.total.output > (input.threshold | default(10))",
        tool: { name: "sleep", arguments: { duration_ms: 100 } },
      },
    ],
    output: {
      squares: "{{ steps.square.output }}",
      total: "{{ steps.total.output }}",
      message: "sum of squares is {{ steps.total.output }}",
      celebrated: "{{ steps.celebrate.status == 'completed' }}",
    },
  };

  it("reads a result nested deeper than protobuf-es's default recursion limit (100 messages)", async () => {
    // `levels` objects around `leaf`: {w: {w: ... leaf}}.
    const nest = (levels: number, leaf: JsonValue): JsonObject => {
      let v: JsonValue = leaf;
      for (let i = 0; i < levels; i++) v = { w: v };
      return v as JsonObject;
    };
    // The server's limits: 33 levels of input (32 here), 32 in a definition; the output
    // wraps the input in 31 more objects, 63 levels of JSON, about 190 protobuf messages.
    const input = nest(32, 1);
    await client.register({
      name: "deep-output",
      source: definitionSource({
        steps: [{ id: "nap", tool: { name: "sleep", arguments: { duration_ms: 0 } } }],
        output: nest(31, "{{ input }}"),
      }),
    });
    const expected = nest(31, input);
    const result = await client.run("deep-output", { input });
    assert.equal(result.success, true, JSON.stringify(result.error));
    assert.deepEqual(result.output, expected);
    const execution = await client.getExecution(result.executionId);
    assert.deepEqual(execution.result?.output, expected);
    const listed = await collect(client.listExecutions({ workflowName: "deep-output" }));
    assert.deepEqual(
      listed.map((e) => e.result?.output),
      [expected],
    );
  });

  it("registers examples/fan-out.yaml with definitionFile and runs it", async () => {
    const { workflow, created } = await client.register(definitionFile(fanOut));
    assert.equal(created, true);
    assert.equal(workflow.name, "fan-out");
    assert.deepEqual(workflow.labels, { example: "true" });
    assert.equal(workflow.source.case, "definition");
    const definition = workflow.source.case === "definition" ? workflow.source.value : undefined;
    assert.deepEqual(
      definition?.steps.map((s) => s.id),
      ["square", "total", "celebrate"],
    );
    assert.equal(definition?.steps[0]?.timeout?.seconds, 5n);
    assert.equal(definition?.steps[0]?.retry?.initialInterval?.nanos, 200_000_000);

    const result = await client.run("fan-out", { input: { numbers: [3, 1, 4, 1, 5], threshold: 10 } });
    assert.equal(result.status, ExecutionStatus.COMPLETED, result.error);
    assert.deepEqual(result.output, {
      squares: [9, 1, 16, 1, 25],
      total: 52,
      message: "sum of squares is 52",
      celebrated: true,
    });
    const small = await client.run("fan-out", { input: { numbers: [1, 2] } });
    assert.deepEqual(small.output, { squares: [1, 4], total: 5, message: "sum of squares is 5", celebrated: false });

    // Identical content: the same version.
    assert.equal((await client.register(definitionFile(fanOut))).created, false);
  });

  it("reads fan-out's definition back as the plain object definitionSource takes, and re-registers it as the same version", async () => {
    const registered = await client.register(definitionFile(fanOut));
    const { name, description, labels, max_concurrency, ...expected } = fanOut;
    assert.equal(max_concurrency, undefined);
    // The file's definition has no default values, so it comes back exactly, durations as strings.
    assert.deepEqual(registered.workflow.definition, expected);

    const { workflow } = await client.get("fan-out");
    assert.equal(workflow.version, registered.workflow.version);
    const definition = workflow.definition;
    assert.ok(definition !== undefined);
    assert.deepEqual(definition, expected);
    assert.deepEqual(definitionOf(workflow), definition);
    assert.deepEqual(definitionOf(workflow.source), definition);
    if (workflow.source.case === "definition") assert.deepEqual(definitionOf(workflow.source.value), definition);
    // Field by field: snake_case keys, plain values, no defaults.
    const [square, total, celebrate] = definition.steps;
    assert.equal(square?.for_each, "{{ input.numbers }}");
    assert.equal(square?.max_parallel, 3);
    assert.deepEqual(square?.retry, { maximum_attempts: 3, initial_interval: "200ms" });
    assert.equal(square?.timeout, "5s");
    assert.deepEqual(square?.tool, { name: "json_transform", arguments: { data: "{{ item }}", expression: "data * data" } });
    assert.ok(!("depends_on" in square!) && !("when" in square!) && !("continue_on_error" in square!));
    assert.deepEqual(total?.depends_on, ["square"]);
    assert.ok(!("retry" in total!) && !("timeout" in total!) && !("for_each" in total!) && !("max_parallel" in total!));
    assert.deepEqual(celebrate?.depends_on, ["total"]);
    assert.equal(celebrate?.when, "steps.total.output > (input.threshold | default(10))");
    assert.deepEqual(definition.input_schema, fanOut.input_schema);
    assert.deepEqual(definition.output, fanOut.output);
    // JSON-serialisable as it is (what a YAML/JSON file would hold).
    assert.deepEqual(JSON.parse(JSON.stringify(definition)), definition);

    // Round trip: the same content under the same name is the same version.
    const again = await client.register({
      name: workflow.name,
      description: workflow.description,
      labels: workflow.labels,
      maxConcurrency: workflow.maxConcurrency,
      source: definitionSource(definition),
    });
    assert.equal(again.created, false);
    assert.equal(again.workflow.version, workflow.version);

    // list() gives the same view.
    let listed: Workflow | undefined;
    for await (const w of client.list()) if (w.name === "fan-out") listed = w;
    assert.deepEqual(listed?.definition, expected);
  });

  it("definitionOf gives back every field, durations in their largest whole unit, a child workflow and a scalar output", () => {
    const source = definitionSource({
      steps: [
        {
          id: "a",
          tool: { name: "sleep" },
          timeout: 90_000,
          retry: {
            initial_interval: "0.25s",
            backoff_coefficient: 1.5,
            maximum_interval: "1m 30s",
            maximum_attempts: 5,
            non_retryable_error_types: ["InvalidArguments"],
          },
          continue_on_error: true,
        },
        {
          id: "b",
          depends_on: ["a"],
          workflow: { name: "child", version: 2, input: { x: "{{ steps.a.output }}", n: [1, null, true] } },
          for_each: "{{ input.items }}",
          max_parallel: 2,
          when: "input.go",
          timeout: "1500us",
        },
        { id: "c", workflow: { name: "latest" }, timeout: "2h", retry: {} },
      ],
      output: "{{ steps.b.output }}",
    });
    assert.deepEqual(definitionOf(source), {
      steps: [
        {
          id: "a",
          tool: { name: "sleep" },
          timeout: "90s",
          retry: {
            initial_interval: "250ms",
            backoff_coefficient: 1.5,
            maximum_interval: "90s",
            maximum_attempts: 5,
            non_retryable_error_types: ["InvalidArguments"],
          },
          continue_on_error: true,
        },
        {
          id: "b",
          depends_on: ["a"],
          workflow: { name: "child", version: 2, input: { x: "{{ steps.a.output }}", n: [1, null, true] } },
          for_each: "{{ input.items }}",
          max_parallel: 2,
          when: "input.go",
          timeout: "1500us",
        },
        { id: "c", workflow: { name: "latest" }, timeout: "2h", retry: {} },
      ],
      output: "{{ steps.b.output }}",
    });
    // What it gives is accepted by definitionSource as it is, to the same message.
    const again = definitionSource(definitionOf(source)!);
    assert.deepEqual(definitionOf(again), definitionOf(source));
    assert.equal(definitionOf({ case: undefined }), undefined);
  });

  it("registers a definitionSource whose output is a plain string template", async () => {
    const { workflow } = await client.register({
      name: "sum-of",
      source: definitionSource({
        input_schema: { type: "object", required: ["n"] },
        steps: [
          {
            id: "total",
            tool: { name: "json_transform", arguments: { data: "{{ input.n }}", expression: "data | sum" } },
            timeout: 5_000,
            retry: { maximum_attempts: 2, initial_interval: "0.25s", maximum_interval: "1m 30s" },
          },
        ],
        output: "{{ steps.total.output }}",
      }),
    });
    assert.equal(workflow.source.case, "definition");
    const [step] = workflow.source.case === "definition" ? workflow.source.value.steps : [];
    assert.equal(step?.timeout?.seconds, 5n);
    assert.equal(step?.retry?.initialInterval?.nanos, 250_000_000);
    assert.equal(step?.retry?.maximumInterval?.seconds, 90n);

    const result = await client.run("sum-of", { input: { n: [1, 2, 3.5] } });
    assert.equal(result.status, ExecutionStatus.COMPLETED, result.error);
    assert.equal(result.output, 6.5);
    // The input_schema is enforced by the server.
    await rejectsWith(client.run("sum-of", { input: {} }), InvalidArgumentError, Code.InvalidArgument);
  });

  it("refuses a malformed definition before calling, and the server names a wrong one", async () => {
    const step = { id: "a", tool: { name: "sleep", arguments: { duration_ms: 1 } } };
    assert.throws(() => definitionSource({ steps: [{ ...step, timeout: "5 parsecs" }] }), (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError);
      assert.match(e.rawMessage, /steps\[0\] \(step 'a'\)\.timeout: "5 parsecs" is not a duration/);
      return true;
    });
    assert.throws(
      () => definitionSource({ steps: [{ ...step, forEachh: "{{ input.x }}" } as never] }),
      (e: unknown) => e instanceof InvalidArgumentError && /forEachh/.test(e.rawMessage),
    );
    assert.throws(
      () => definitionFile({ steps: [step] }),
      (e: unknown) => e instanceof InvalidArgumentError && /name/.test(e.rawMessage),
    );
    const err = await rejectsWith(
      client.register({
        name: "cyclic",
        source: definitionSource({
          steps: [
            { ...step, id: "a", depends_on: ["b"] },
            { ...step, id: "b", depends_on: ["a"] },
          ],
        }),
      }),
      InvalidArgumentError,
      Code.InvalidArgument,
    );
    assert.match(err.rawMessage, /cycle/i);
  });
});

describe("streams and the process's lifetime", () => {
  let server: WfmServer;

  before(async () => {
    server = await startServer();
    const client = new WfmClient(server.url);
    try {
      await client.register({ name: "sl", source: nativeSource("sleep") });
    } finally {
      client.close();
    }
  });

  after(async () => {
    await server?.stop();
  });

  /**
   * Runs `body` as an ES module in a child Node process, with `WfmClient` imported and the
   * server's URL in `process.argv[1]`; resolves with its exit code, output and lifetime.
   */
  async function inChild(
    body: string,
    killAfterMs = 60_000,
  ): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
    const index = new URL("../src/index.js", import.meta.url).href;
    const script = `import { WfmClient } from ${JSON.stringify(index)};\n${body}`;
    const started = Date.now();
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, server.url], {
      stdio: ["ignore", "pipe", "pipe"],
      timeout: killAfterMs,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    return { code, stdout, stderr, ms: Date.now() - started };
  }

  // A deadline far beyond the work: the process must exit once the work is done, not at the deadline.
  const LONG = 30_000;

  for (const [what, body] of [
    [
      "run() under the client's defaultTimeoutMs, then close()",
      `const client = new WfmClient(process.argv[1], { defaultTimeoutMs: ${LONG} });
       const r = await client.run("sl", { input: { duration_ms: 100 } });
       console.log(r.status);
       client.close();`,
    ],
    [
      "break out of execute() and watch() loops with a per-call timeoutMs, without close()",
      `const client = new WfmClient(process.argv[1]);
       for await (const e of client.execute("sl", { input: { duration_ms: 100 } }, { timeoutMs: ${LONG} })) break;
       const { executionId } = await client.startExecution("sl", { input: { duration_ms: 100 } });
       for await (const e of client.watch(executionId, 0, { timeoutMs: ${LONG} })) if (e.kind === "started") break;
       const r = await client.wait(executionId, {}, { timeoutMs: ${LONG} });
       console.log(r.status);`,
    ],
  ] as const) {
    it(`${what}: Node exits when the stream is done, not at the deadline`, async () => {
      const { code, stdout, stderr, ms } = await inChild(body);
      assert.equal(code, 0, stderr);
      assert.equal(stdout.trim(), String(ExecutionStatus.COMPLETED));
      assert.ok(ms < 10_000, `the child process exited after ${ms} ms (the deadline was ${LONG} ms)`);
    });
  }

  // The execution ends while the loop body awaits something; the loop is left after that,
  // with the stream's last events and trailers received but never read.
  const napThenBreak = `await new Promise((r) => setTimeout(r, 1000)); break;`;
  const statusAfter = `console.log((await client.getExecution(id)).status);`;
  for (const [what, body] of [
    [
      "execute()",
      `const client = new WfmClient(process.argv[1]);
       let id = "";
       for await (const e of client.execute("sl", { input: { duration_ms: 100 } })) {
         id = e.executionId;
         if (e.kind === "started") { ${napThenBreak} }
       }
       ${statusAfter}`,
    ],
    [
      "watch()",
      `const client = new WfmClient(process.argv[1]);
       const { executionId: id } = await client.startExecution("sl", { input: { duration_ms: 100 } });
       for await (const e of client.watch(id)) if (e.kind === "started") { ${napThenBreak} }
       ${statusAfter}`,
    ],
    [
      "the raw Connect client's execute()",
      `const client = new WfmClient(process.argv[1]);
       let id = "";
       for await (const res of client.raw.execute({ name: "sl", input: { duration_ms: 100 } })) {
         id = res.event?.executionId ?? id;
         if (res.event?.kind.case === "started") { ${napThenBreak} }
       }
       ${statusAfter}`,
    ],
  ] as const) {
    it(`break out of ${what} after the execution ended during an await in the loop: Node exits at once`, async () => {
      const { code, stdout, stderr, ms } = await inChild(body, 20_000);
      assert.equal(code, 0, `the child process did not exit by itself within 20 s (killed); stderr: ${stderr}`);
      assert.equal(stdout.trim(), String(ExecutionStatus.COMPLETED), "the execution ended before the break");
      assert.ok(ms < 5_000, `the child process exited after ${ms} ms`);
    });
  }
});

describe("a server that dies during a stream", () => {
  let server: WfmServer;
  let client: WfmClient;

  before(async () => {
    server = await startServer();
    client = new WfmClient(server.url);
    await client.register({ name: "nap", source: nativeSource("sleep") });
  });

  after(async () => {
    client?.close();
    await server?.stop();
  });

  it("close() during a stream is the caller's cancellation: CANCELLED", async () => {
    const other = new WfmClient(server.url);
    const { executionId } = await other.startExecution("nap", { input: { duration_ms: 60_000 } });
    const err = await rejectsWith(
      (async () => {
        for await (const e of other.watch(executionId)) {
          if (e.kind === "stepStarted") other.close();
        }
      })(),
      CancelledError,
      Code.Canceled,
    );
    assert.ok(isCancelled(err));
    await client.cancelExecution(executionId);
  });

  it("kill -9 of the server during watch() and execute() is UNAVAILABLE", async () => {
    const { executionId } = await client.startExecution("nap", { input: { duration_ms: 60_000 } });
    const seen: string[] = [];
    const watching = (async () => {
      for await (const e of client.watch(executionId)) {
        seen.push(e.kind);
      }
    })();
    const executing = (async () => {
      for await (const e of client.execute("nap", { input: { duration_ms: 60_000 } })) {
        if (e.kind === "stepStarted") {
          // Both streams are open and waiting: crash the server.
          while (!seen.includes("stepStarted")) await new Promise((r) => setTimeout(r, 10));
          server.process.kill("SIGKILL");
        }
      }
    })();
    for (const stream of [watching, executing]) {
      const err = await rejectsWith(stream, UnavailableError, Code.Unavailable);
      assert.ok(isUnavailable(err));
      assert.ok(!isCancelled(err));
    }
    assert.deepEqual((await server.exited).signal, "SIGKILL");
    // And the next call, with nothing listening, too.
    await rejectsWith(client.get("nap"), UnavailableError, Code.Unavailable);
  });
});
