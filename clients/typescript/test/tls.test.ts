// The client over TLS with bearer tokens, against a real `wfm serve` with auth and TLS on.
// The certificate (a throwaway CA and a server certificate for 127.0.0.1) and the tokens
// come from scripts/tls-test-setup.sh (openssl and `wfm token create`).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  Code,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  WfmClient,
  WfmError,
  isUnavailable,
  nativeSource,
} from "../src/index.js";
import { repoRoot, startServer, wfmBin, type WfmServer } from "./server.js";

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail("expected the call to fail");
}

async function names(client: WfmClient): Promise<string[]> {
  const out: string[] = [];
  for await (const w of client.list()) {
    out.push(w.name);
  }
  return out;
}

describe("TLS and tokens", () => {
  let pki: string;
  let server: WfmServer;
  let address: string;
  const opened: WfmClient[] = [];

  const connect = (token?: string): WfmClient => {
    const client = new WfmClient(`https://${address}`, {
      tls: { ca: readFileSync(join(pki, "ca.pem")) },
      token,
      defaultTimeoutMs: 20_000,
    });
    opened.push(client);
    return client;
  };
  const token = (role: string) => readFileSync(join(pki, `${role}.token`), "utf8").trim();

  before(async () => {
    pki = mkdtempSync(join(tmpdir(), "wfm-ts-tls-"));
    execFileSync("bash", [join(repoRoot(), "scripts/tls-test-setup.sh"), pki], {
      env: { ...process.env, WFM_BIN: wfmBin() },
      stdio: ["ignore", "ignore", "inherit"],
    });
    server = await startServer({}, 20_000, ["--config", join(pki, "wfm.toml")]);
    address = server.url.replace(/^http:\/\//, "");
  });

  after(async () => {
    for (const c of opened) c.close();
    await server?.stop();
    rmSync(pki, { recursive: true, force: true });
  });

  it("without a token: UNAUTHENTICATED", async () => {
    const err = await rejection(names(connect()));
    assert.ok(err instanceof UnauthenticatedError, String(err));
    assert.equal((err as WfmError).code, Code.Unauthenticated);
    assert.match((err as WfmError).rawMessage, /missing bearer token/);
  });

  it("with a wrong token: UNAUTHENTICATED", async () => {
    const err = await rejection(names(connect("wfm_not-a-real-token")));
    assert.ok(err instanceof UnauthenticatedError, String(err));
  });

  it("a reader lists, but Register is PERMISSION_DENIED", async () => {
    const reader = connect(token("reader"));
    assert.ok(Array.isArray(await names(reader)));
    const err = await rejection(reader.register({ name: "ts-tls-denied", source: nativeSource("echo") }));
    assert.ok(err instanceof PermissionDeniedError, String(err));
    assert.match((err as WfmError).rawMessage, /Register needs the admin role/);
  });

  it("a server certificate the client does not trust: UNAVAILABLE, as in Go and Python", async () => {
    // tls: true trusts Node's default CAs only, not the throwaway CA of the test.
    const untrusting = new WfmClient(`https://${address}`, { tls: true, token: token("admin") });
    opened.push(untrusting);
    for (const attempt of [untrusting.listTools(), names(untrusting)]) {
      const err = await rejection(attempt);
      assert.ok(err instanceof UnavailableError, String(err));
      assert.ok(isUnavailable(err));
      assert.equal(err.code, Code.Unavailable);
      assert.match(err.rawMessage, /certificate/i);
    }
    let streamErr: unknown;
    try {
      for await (const _ of untrusting.execute("ts-tls-echo")) {
        // nothing arrives
      }
    } catch (e) {
      streamErr = e;
    }
    assert.ok(streamErr instanceof UnavailableError, String(streamErr));
  });

  it("a mutual-TLS server and no client certificate: UNAVAILABLE, not INTERNAL", async () => {
    // The same server configuration, requiring client certificates signed by the test CA.
    // TLS 1.3 reports the missing certificate after the handshake, as an alert
    // ("certificate required") on the first read: a connection that cannot be made all the same.
    const config = join(pki, "wfm-mtls.toml");
    writeFileSync(config, `${readFileSync(join(pki, "wfm.toml"), "utf8")}client_ca = "${join(pki, "ca.pem")}"\n`);
    const mtls = await startServer({}, 20_000, ["--config", config]);
    try {
      const client = new WfmClient(`https://${mtls.url.replace(/^http:\/\//, "")}`, {
        tls: { ca: readFileSync(join(pki, "ca.pem")) },
        token: token("admin"),
        defaultTimeoutMs: 20_000,
      });
      opened.push(client);
      for (const attempt of [client.listTools(), names(client), client.listTools()]) {
        const err = await rejection(attempt);
        assert.ok(err instanceof UnavailableError, String(err));
        assert.equal(err.code, Code.Unavailable);
        assert.match(err.rawMessage, /certificate required/i);
        assert.match(err.rawMessage, /client certificate/);
        assert.doesNotMatch(err.rawMessage, /SSL routines|openssl/); // OpenSSL's reason, not its raw string
      }
      let streamErr: unknown;
      try {
        for await (const _ of client.execute("ts-tls-echo")) {
          // nothing arrives
        }
      } catch (e) {
        streamErr = e;
      }
      assert.ok(streamErr instanceof UnavailableError, String(streamErr));
    } finally {
      await mtls.stop();
    }
  });

  it("an admin registers and executes over TLS", async () => {
    const admin = connect(token("admin"));
    const { workflow } = await admin.register({ name: "ts-tls-echo", source: nativeSource("echo") });
    assert.equal(workflow.name, "ts-tls-echo");
    const result = await admin.run("ts-tls-echo", { input: { over: "tls" } });
    assert.equal(result.success, true);
    assert.deepEqual(result.output, { over: "tls" });
    assert.ok((await names(connect(token("reader")))).includes("ts-tls-echo"));
  });
});
