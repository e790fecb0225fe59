"""Exceptions raised by the client: every failed RPC becomes a :class:`WfmError`."""

from __future__ import annotations

from typing import Any

import grpc

__all__ = [
    "WfmError",
    "CancelledError",
    "InvalidArgumentError",
    "InvalidValueError",
    "DeadlineExceededError",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "FailedPreconditionError",
    "AbortedError",
    "OutOfRangeError",
    "UnimplementedError",
    "InternalError",
    "UnavailableError",
    "UnauthenticatedError",
    "error_from_code",
    "error_from_rpc",
]


class WfmError(Exception):
    """A failed call to the wfm server.

    ``code`` is the :class:`grpc.StatusCode` the server (or the gRPC library, for
    transport failures) answered with, and ``message`` its details text. The
    subclasses below exist for the common codes, so callers can write
    ``except NotFoundError:``; any other code raises a plain ``WfmError``.
    """

    code: grpc.StatusCode
    message: str

    def __init__(self, code: grpc.StatusCode, message: str = "") -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        #: gRPC's debug string, when the error came from an RPC (not for display).
        self.debug_error_string: str | None = None

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}" if self.message else self.code.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (error_from_code, (self.code, self.message))


class _CodedError(WfmError):
    """A WfmError subclass bound to one status code: constructed with the message alone."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str = "") -> None:
        super().__init__(self.grpc_code, message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class CancelledError(_CodedError):
    """CANCELLED: the call was cancelled (usually by the caller). Not asyncio's CancelledError."""

    grpc_code = grpc.StatusCode.CANCELLED


class InvalidArgumentError(_CodedError):
    """INVALID_ARGUMENT: a malformed request, e.g. a bad name, unknown type or oversized input."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidValueError(InvalidArgumentError, ValueError, TypeError):
    """INVALID_ARGUMENT found by the client itself, before sending: a value that is not JSON
    or would not arrive as given (an integer beyond ±2^53), or a malformed definition.

    Its message starts with where the value is (``input.user.n: ...``,
    ``definition.steps[0].retry: ...``). It is also a ``ValueError`` and a ``TypeError``,
    which the client raised for these before.
    """


class DeadlineExceededError(_CodedError):
    """DEADLINE_EXCEEDED: the call's timeout ran out."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(_CodedError):
    """NOT_FOUND: no such workflow, version or execution."""

    grpc_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(_CodedError):
    """ALREADY_EXISTS."""

    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(_CodedError):
    """PERMISSION_DENIED: authenticated, but not allowed to do this."""

    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(_CodedError):
    """RESOURCE_EXHAUSTED: a limit or quota was reached."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(_CodedError):
    """FAILED_PRECONDITION: the system is not in a state that allows this call."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(_CodedError):
    """ABORTED."""

    grpc_code = grpc.StatusCode.ABORTED


class OutOfRangeError(_CodedError):
    """OUT_OF_RANGE."""

    grpc_code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(_CodedError):
    """UNIMPLEMENTED: the server does not implement this RPC."""

    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(_CodedError):
    """INTERNAL: a server-side bug."""

    grpc_code = grpc.StatusCode.INTERNAL


class UnavailableError(_CodedError):
    """UNAVAILABLE: the server cannot be reached or is shutting down."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


class UnauthenticatedError(_CodedError):
    """UNAUTHENTICATED: missing or invalid credentials (bearer token)."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[_CodedError]] = {
    cls.grpc_code: cls
    for cls in (
        CancelledError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        UnauthenticatedError,
    )
}


def error_from_code(code: grpc.StatusCode, message: str = "") -> WfmError:
    """The most specific exception for ``code``."""
    cls = _BY_CODE.get(code)
    return cls(message) if cls is not None else WfmError(code, message)


def error_from_rpc(err: grpc.RpcError) -> WfmError:
    """Converts a ``grpc.RpcError`` (sync or ``grpc.aio``) into a :class:`WfmError`."""
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else None
    message = details_fn() if callable(details_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    out = error_from_code(code, message or "")
    out.debug_error_string = _debug_error_string(err)
    return out


def _debug_error_string(err: grpc.RpcError) -> str | None:
    # The sync stream call object's debug_error_string() waits for the call's final status,
    # which never comes when the client ended the call itself (a response it could not
    # decode, say): read what it has instead of waiting.
    state = getattr(err, "_state", None)
    if state is not None and hasattr(state, "debug_error_string"):
        value = state.debug_error_string
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value if isinstance(value, str) else None
    debug_fn = getattr(err, "debug_error_string", None)
    if callable(debug_fn):
        try:
            value = debug_fn()
        except Exception:  # pragma: no cover - depends on grpc internals
            return None
        return value if isinstance(value, str) else None
    return None
