// Starts a real `wfm serve` process for the tests.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WfmServer {
  /** http://127.0.0.1:PORT */
  url: string;
  process: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<Exit>;
  /** Everything the server wrote to stderr so far (its logs). */
  stderr(): string;
  /** Kills the process if it still runs and removes its data directory (unless the caller gave it). */
  stop(): Promise<Exit>;
}

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "Cargo.toml")) && existsSync(join(dir, "proto"))) {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error("cannot find the repository root (Cargo.toml + proto/) above the tests");
    }
    dir = parent;
  }
}

export function wfmBin(): string {
  const bin = process.env.WFM_BIN || resolve(repoRoot(), "target/release/wfm");
  if (!existsSync(bin)) {
    throw new Error(`wfm binary not found at ${bin}: build it (cargo build --release) or set WFM_BIN`);
  }
  return bin;
}

/**
 * Starts `wfm serve` on a free port. `dataDirOfCaller`: a data directory of the caller's,
 * which `stop()` leaves in place (for a second server to reuse); by default a fresh one,
 * removed by `stop()`.
 */
export async function startServer(
  env: Record<string, string> = {},
  startTimeoutMs = 20_000,
  args: string[] = [],
  dataDirOfCaller?: string,
): Promise<WfmServer> {
  const dataDir = dataDirOfCaller ?? mkdtempSync(join(tmpdir(), "wfm-ts-test-"));
  const removeDataDir = () => {
    if (dataDirOfCaller === undefined) rmSync(dataDir, { recursive: true, force: true });
  };
  // WFM_BIN is this harness's setting, not the server's: `wfm serve` reads every
  // WFM_* variable as configuration and refuses to start on an unknown key
  // ("unknown field: found `bin`"), so it must not reach the server.
  const { WFM_BIN: _bin, ...inherited } = process.env;
  const child = spawn(wfmBin(), ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...args], {
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let logs = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    logs += chunk;
  });
  const exited = new Promise<Exit>((resolveExit) => {
    child.once("exit", (code, signal) => resolveExit({ code, signal }));
  });

  const lines = createInterface({ input: child.stdout! });
  const firstLine = new Promise<string>((resolveLine, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`wfm did not announce its address within ${startTimeoutMs} ms; stderr:\n${logs}`)),
      startTimeoutMs,
    );
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolveLine(line);
    });
    void exited.then((exit) => {
      clearTimeout(timer);
      reject(new Error(`wfm exited (${exit.code ?? exit.signal}) before listening; stderr:\n${logs}`));
    });
  });

  let line: string;
  try {
    line = await firstLine;
  } catch (e) {
    child.kill("SIGKILL");
    removeDataDir();
    throw e;
  }
  // Keep draining stdout so the server never blocks on a full pipe.
  lines.on("line", () => {});
  const m = /^wfm listening on (\S+:\d+)\s*$/.exec(line);
  if (!m) {
    child.kill("SIGKILL");
    throw new Error(`unexpected first stdout line from wfm: ${JSON.stringify(line)}`);
  }

  return {
    url: `http://${m[1]}`,
    process: child,
    exited,
    stderr: () => logs,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
      }
      const exit = await exited;
      removeDataDir();
      return exit;
    },
  };
}
