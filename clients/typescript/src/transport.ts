// The HTTP/2 connection of a WfmClient: connect-node's Http2SessionManager, with the
// fixes this client needs around streams left early and connection failures.

import { AsyncLocalStorage } from "node:async_hooks";
import * as http2 from "node:http2";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";

/**
 * How deep a response may nest, in protobuf messages (protobuf-es's default is 100).
 *
 * JSON in a google.protobuf.Struct costs three messages per object (Struct, map entry,
 * Value), two per array. The server takes inputs of up to 33 levels of JSON (about 100
 * messages) and definitions of up to 32, and a result can wrap one in the other: a
 * declarative workflow's `output` template around `{{ input }}`, again in a parent's
 * output for each level of child workflows (`limits.max_workflow_depth`, 8 by default):
 * 33 + 8 × 32 = 289 levels of JSON, about 870 messages, plus the response's own few.
 * 1000 covers that and is far from exhausting Node's stack (protobuf-es recurses per level).
 */
export const RECURSION_LIMIT = 1000;

/** The AbortSignal of the call being made, from `callSignalInterceptor` to `WfmSessionManager.request`. */
const callSignal = new AsyncLocalStorage<AbortSignal>();

/**
 * Must be the innermost interceptor: makes the call's signal (the one Connect hands to the
 * HTTP client) known to `WfmSessionManager.request`, which opens the call's HTTP/2 stream.
 */
export const callSignalInterceptor: Interceptor = (next) => (req) => callSignal.run(req.signal, () => next(req));

/**
 * connect-node's session manager, with three changes:
 *
 * - Aborting a call destroys its HTTP/2 stream even when the server had already ended it.
 *   Connect only resets streams that are still open: a stream whose last messages and
 *   trailers arrived while nobody was reading (the loop body was awaiting something, then
 *   `break`) stays undestroyed with its unread data, is never counted as closed, and keeps
 *   the connection referenced, hence Node running, indefinitely.
 *
 * - The connection keeps Node running only while a stream waits for the server. A stream
 *   the server has finished (its trailers are in) needs nothing more from the socket, even
 *   if its messages are not all read yet: this covers the raw Connect client too, whose
 *   response iterators cannot tell that a loop was left early.
 *
 * - A failure to establish the connection (refused, TLS handshake, certificate not trusted...)
 *   is UNAVAILABLE, as the Go and Python clients report it, not INTERNAL. That holds whatever
 *   state the session is in when the failure arrives: with TLS 1.3 the client's side of the
 *   handshake completes first, and a server that wants a client certificate says so
 *   ("certificate required" alert) once the connection already counts as open.
 */
export class WfmSessionManager extends Http2SessionManager {
  /** Per connection, the streams still waiting for the server to end them. */
  private readonly waiting = new Map<http2.Http2Session, number>();

  override async request(
    method: string,
    path: string,
    headers: http2.OutgoingHttpHeaders,
    options: Omit<http2.ClientSessionRequestOptions, "signal">,
  ): Promise<http2.ClientHttp2Stream> {
    const signal = callSignal.getStore();
    let stream: http2.ClientHttp2Stream;
    try {
      stream = await super.request(method, path, headers, options);
    } catch (e) {
      throw this.state() === "error" || isConnectionFailure(e) ? connectionError(e, this.authority) : e;
    }
    this.keepAliveWhileWaiting(stream);
    if (signal) {
      destroyOnAbort(stream, signal);
    }
    return stream;
  }

  private keepAliveWhileWaiting(stream: http2.ClientHttp2Stream): void {
    const session = stream.session;
    if (!session) {
      return;
    }
    this.waiting.set(session, (this.waiting.get(session) ?? 0) + 1);
    session.ref();
    let ended = false;
    const serverEnded = () => {
      if (ended) return;
      ended = true;
      const left = (this.waiting.get(session) ?? 1) - 1;
      if (left > 0) {
        this.waiting.set(session, left);
      } else {
        this.waiting.delete(session);
        if (!session.destroyed) session.unref();
      }
    };
    // gRPC ends a response with trailers; a trailers-only response (an error at once)
    // ends with its headers.
    stream.once("trailers", serverEnded);
    stream.once("response", (_headers: http2.IncomingHttpHeaders, flags: number) => {
      if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) serverEnded();
    });
    stream.once("close", serverEnded);
  }
}

/**
 * When the call is aborted (after Connect's own handler, which resets a stream still open),
 * destroys a stream the server had already ended without error: Node keeps such a stream,
 * and its unread data, until someone reads it to the end.
 */
function destroyOnAbort(stream: http2.ClientHttp2Stream, signal: AbortSignal): void {
  const onAbort = () => {
    if (stream.closed && !stream.destroyed && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) {
      stream.destroy();
    }
  };
  if (signal.aborted) {
    onAbort();
    return;
  }
  signal.addEventListener("abort", onAbort, { once: true });
  stream.once("close", () => signal.removeEventListener("abort", onAbort));
}

/**
 * The UNAVAILABLE error for a connection that could not be made (or was refused right after
 * the handshake); UNAVAILABLE and CANCELLED errors are returned as they are.
 */
export function connectionError(e: unknown, authority: string): unknown {
  const ce = ConnectError.from(e);
  if (ce.code === Code.Unavailable || ce.code === Code.Canceled) {
    return e;
  }
  return new ConnectError(`cannot connect to ${authority}: ${describeFailure(e) ?? ce.rawMessage}`, Code.Unavailable, ce.metadata, undefined, e);
}

/** Node's codes of the socket errors that mean the server cannot be reached. */
const SOCKET_FAILURES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
  "EADDRNOTAVAIL",
]);

/**
 * The Node error inside `e` (Connect wraps it, as its `cause`) when it is a failure of the
 * connection itself: a socket error, a TLS error from OpenSSL or Node (an alert such as
 * "certificate required", a certificate that does not verify, a name mismatch), as opposed
 * to an error of the call.
 */
function connectionFailureOf(e: unknown): { code: string; reason?: string; message: string } | undefined {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 8; cur = cur.cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    if (
      SOCKET_FAILURES.has(code) ||
      code.startsWith("ERR_SSL_") ||
      code.startsWith("ERR_TLS_") ||
      // Certificate verification (UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_HAS_EXPIRED, ...).
      /CERT|SIGNATURE|ISSUER/.test(code)
    ) {
      const reason = (cur as { reason?: unknown }).reason;
      return { code, reason: typeof reason === "string" ? reason : undefined, message: cur.message };
    }
  }
  return undefined;
}

/** Whether `e`, thrown by a call or its stream, is the connection failing rather than the call. */
export function isConnectionFailure(e: unknown): boolean {
  return connectionFailureOf(e) !== undefined;
}

/**
 * A readable account of a connection failure: OpenSSL's reason rather than its raw error
 * string, and what to do about a server asking for a client certificate.
 */
function describeFailure(e: unknown): string | undefined {
  const f = connectionFailureOf(e);
  if (f === undefined) return undefined;
  if (f.reason === undefined) return f.message.trim();
  const hint =
    f.code === "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED"
      ? " (the server requires a client certificate: give `cert` and `key` in the `tls` option)"
      : "";
  return `TLS: ${f.reason}${hint}`;
}
