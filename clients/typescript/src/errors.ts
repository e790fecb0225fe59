import { Code, ConnectError } from "@connectrpc/connect";

export { Code };

/**
 * The error every WfmClient method rejects (or, for streams, throws) with.
 *
 * It is a ConnectError (`err instanceof ConnectError` holds, `err.code` is
 * Connect's `Code`), and it is an instance of the subclass matching its code,
 * so both styles work:
 *
 *   if (err instanceof NotFoundError) ...
 *   if (isNotFound(err)) ...            // also true for a plain ConnectError
 *   if (err instanceof WfmError && err.code === Code.NotFound) ...
 */
export class WfmError extends ConnectError {
  constructor(message: string, code: Code = Code.Unknown, options: WfmErrorOptions = {}) {
    super(message, code, options.metadata, undefined, options.cause);
    // `name` stays "ConnectError": Connect recognises its errors by that name,
    // and ConnectError.from() would otherwise wrap ours into a new Unknown error.
  }

  // ConnectError overrides instanceof to recognise errors across realms, and
  // that static would be inherited, making every ConnectError an "instance"
  // of every subclass. Restore the prototype-chain check for our classes.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  /** Converts anything caught from a call into the WfmError subclass for its code. */
  static override from(reason: unknown): WfmError {
    if (reason instanceof WfmError) {
      return reason;
    }
    const ce = ConnectError.from(reason);
    const options = { metadata: ce.metadata, cause: reason };
    const Ctor = errorClasses[ce.code];
    const err = Ctor ? new Ctor(ce.rawMessage, options) : new WfmError(ce.rawMessage, ce.code, options);
    err.details = ce.details;
    return err;
  }
}

export interface WfmErrorOptions {
  /** Response headers and trailers of the failed call. */
  metadata?: ConstructorParameters<typeof ConnectError>[2];
  /** The original error. */
  cause?: unknown;
}

type CodeErrorClass = new (message: string, options?: WfmErrorOptions) => WfmError;

function codeClass(code: Code): CodeErrorClass {
  return class extends WfmError {
    constructor(message: string, options?: WfmErrorOptions) {
      super(message, code, options);
    }
  };
}

/** The call was cancelled, typically by the caller (AbortSignal). */
export class CancelledError extends codeClass(Code.Canceled) {}
export class UnknownError extends codeClass(Code.Unknown) {}
/** The request was rejected: invalid name, input too large, malformed field... */
export class InvalidArgumentError extends codeClass(Code.InvalidArgument) {}
export class DeadlineExceededError extends codeClass(Code.DeadlineExceeded) {}
/** The workflow or execution does not exist. */
export class NotFoundError extends codeClass(Code.NotFound) {}
export class AlreadyExistsError extends codeClass(Code.AlreadyExists) {}
export class PermissionDeniedError extends codeClass(Code.PermissionDenied) {}
export class ResourceExhaustedError extends codeClass(Code.ResourceExhausted) {}
export class FailedPreconditionError extends codeClass(Code.FailedPrecondition) {}
export class AbortedError extends codeClass(Code.Aborted) {}
export class OutOfRangeError extends codeClass(Code.OutOfRange) {}
export class UnimplementedError extends codeClass(Code.Unimplemented) {}
export class InternalError extends codeClass(Code.Internal) {}
/** The server could not be reached, or is shutting down. */
export class UnavailableError extends codeClass(Code.Unavailable) {}
export class DataLossError extends codeClass(Code.DataLoss) {}
/** Missing or invalid credentials. */
export class UnauthenticatedError extends codeClass(Code.Unauthenticated) {}

const errorClasses: Partial<Record<Code, CodeErrorClass>> = {
  [Code.Canceled]: CancelledError,
  [Code.Unknown]: UnknownError,
  [Code.InvalidArgument]: InvalidArgumentError,
  [Code.DeadlineExceeded]: DeadlineExceededError,
  [Code.NotFound]: NotFoundError,
  [Code.AlreadyExists]: AlreadyExistsError,
  [Code.PermissionDenied]: PermissionDeniedError,
  [Code.ResourceExhausted]: ResourceExhaustedError,
  [Code.FailedPrecondition]: FailedPreconditionError,
  [Code.Aborted]: AbortedError,
  [Code.OutOfRange]: OutOfRangeError,
  [Code.Unimplemented]: UnimplementedError,
  [Code.Internal]: InternalError,
  [Code.Unavailable]: UnavailableError,
  [Code.DataLoss]: DataLossError,
  [Code.Unauthenticated]: UnauthenticatedError,
};

/** True when `err` is a WfmError / ConnectError with this code. */
export function hasCode(err: unknown, code: Code): err is ConnectError {
  return err instanceof ConnectError && err.code === code;
}

export const isCancelled = (err: unknown): err is ConnectError => hasCode(err, Code.Canceled);
export const isInvalidArgument = (err: unknown): err is ConnectError => hasCode(err, Code.InvalidArgument);
export const isDeadlineExceeded = (err: unknown): err is ConnectError => hasCode(err, Code.DeadlineExceeded);
export const isNotFound = (err: unknown): err is ConnectError => hasCode(err, Code.NotFound);
export const isAlreadyExists = (err: unknown): err is ConnectError => hasCode(err, Code.AlreadyExists);
export const isPermissionDenied = (err: unknown): err is ConnectError => hasCode(err, Code.PermissionDenied);
export const isResourceExhausted = (err: unknown): err is ConnectError => hasCode(err, Code.ResourceExhausted);
export const isFailedPrecondition = (err: unknown): err is ConnectError => hasCode(err, Code.FailedPrecondition);
export const isUnavailable = (err: unknown): err is ConnectError => hasCode(err, Code.Unavailable);
export const isUnauthenticated = (err: unknown): err is ConnectError => hasCode(err, Code.Unauthenticated);
export const isInternal = (err: unknown): err is ConnectError => hasCode(err, Code.Internal);
