// TypeScript-client side of scripts/cross-language.sh (plain ESM on the built dist/).
//
//   node watch.mjs ADDR watch EXECUTION_ID   one JSON line per event from sequence 0,
//                                            exits after the terminal event
//   node watch.mjs ADDR get WORKFLOW         the workflow (name, version, labels, type) as JSON
//
// Event kinds are printed in the proto's snake_case ("step_started"), as the Go and
// Python clients name them; the TypeScript client's own name is in "tsKind". "live"
// tells whether the event happened after this watcher subscribed (else it was replayed).
//
// Every call has a 60 s deadline (`timeoutMs`); the client clears a stream's deadline
// timer when the loop is left, so breaking out does not keep Node running until then.
import { WfmClient, isTerminalEvent } from "../typescript/dist/src/index.js";

const [addr, command, arg] = process.argv.slice(2);
if (!addr || !command || !arg) {
  console.error("usage: node watch.mjs ADDR (watch EXECUTION_ID | get WORKFLOW)");
  process.exit(2);
}

const snake = (s) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const client = new WfmClient(`http://${addr}`);
const call = { timeoutMs: 60_000 };
try {
  if (command === "watch") {
    let terminal = false;
    const subscribed = Date.now();
    for await (const event of client.watch(arg, 0, call)) {
      const live = event.time !== undefined && event.time.getTime() >= subscribed;
      console.log(JSON.stringify({ sequence: event.sequence, kind: snake(event.kind), tsKind: event.kind, live }));
      if (isTerminalEvent(event)) {
        terminal = true;
        break;
      }
    }
    if (!terminal) {
      console.error("watch.mjs: the stream ended without a terminal event");
      process.exitCode = 1;
    }
  } else if (command === "get") {
    const { workflow, versions } = await client.get(arg, 0, call);
    const type = workflow.source?.case === "native" ? workflow.source.value.type : null;
    console.log(JSON.stringify({ name: workflow.name, version: workflow.version, versions, labels: workflow.labels, type }));
  } else {
    console.error(`watch.mjs: unknown command ${command}`);
    process.exitCode = 2;
  }
} catch (err) {
  console.error(`watch.mjs: ${err?.name ?? "Error"}: ${err?.message ?? err}`);
  process.exitCode = 1;
} finally {
  client.close();
}
