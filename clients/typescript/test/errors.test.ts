// Unit tests of the error classes (no server needed).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConnectError } from "@connectrpc/connect";
import {
  Code,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  WfmError,
  hasCode,
  isNotFound,
  isUnavailable,
} from "../src/index.js";

describe("WfmError", () => {
  it("converts a ConnectError into the subclass for its code", () => {
    const ce = new ConnectError("workflow 'x' is not registered", Code.NotFound, { "x-trace": "1" });
    const err = WfmError.from(ce);
    assert.ok(err instanceof NotFoundError);
    assert.ok(err instanceof WfmError);
    assert.ok(err instanceof ConnectError);
    assert.ok(!(err instanceof InvalidArgumentError));
    assert.equal(err.code, Code.NotFound);
    assert.equal(err.rawMessage, "workflow 'x' is not registered");
    assert.equal(err.message, "[not_found] workflow 'x' is not registered");
    assert.equal(err.metadata.get("x-trace"), "1");
    assert.equal(err.cause, ce);
  });

  it("does not treat a plain ConnectError as one of its subclasses", () => {
    const ce = new ConnectError("nope", Code.NotFound);
    assert.ok(!(ce instanceof WfmError));
    assert.ok(!(ce instanceof NotFoundError));
    // ...but the helpers accept it.
    assert.ok(isNotFound(ce));
    assert.ok(hasCode(ce, Code.NotFound));
  });

  it("is kept as is by ConnectError.from and WfmError.from", () => {
    const err = new UnavailableError("down");
    assert.equal(err.code, Code.Unavailable);
    assert.equal(ConnectError.from(err), err);
    assert.equal(WfmError.from(err), err);
    assert.ok(isUnavailable(err));
  });

  it("wraps arbitrary values as UNKNOWN", () => {
    const err = WfmError.from(new Error("boom"));
    assert.equal(err.code, Code.Unknown);
    assert.equal(err.rawMessage, "boom");
    assert.ok(!isNotFound("not an error"));
  });
});
