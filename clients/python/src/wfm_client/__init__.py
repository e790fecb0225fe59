"""Python client of wfm, the workflow manager served over gRPC.

    from wfm_client import Client, NotFoundError

    with Client("127.0.0.1:50051") as client:
        client.register("echo-wf", type="echo")  # or definition={"steps": [...]}
        for event in client.execute("echo-wf", input={"x": 1}):
            print(event.sequence, event.kind)
        result = client.run("echo-wf", input={"x": 1})
        assert result.success and result.output == {"x": 1}

The asyncio twin is :class:`wfm_client.aio.AsyncClient` (also exported here).
The generated protobuf/gRPC modules live in ``wfm_client._gen.workflow.v1`` and
are re-exported as ``wfm_client.pb`` and ``wfm_client.pb_grpc``.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._client import Client, EventStream
from ._convert import py_to_value, struct_to_dict, to_struct, value_to_py
from ._definition import definition_to_dict, to_definition
from ._errors import (
    AbortedError,
    AlreadyExistsError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    InvalidValueError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    WfmError,
    error_from_code,
    error_from_rpc,
)
from ._gen.workflow.v1 import workflow_service_pb2 as pb
from ._gen.workflow.v1 import workflow_service_pb2_grpc as pb_grpc
from ._types import (
    TERMINAL_EVENT_KINDS,
    Event,
    EventKind,
    Execution,
    ExecutionResult,
    ExecutionStatus,
    Page,
    RegisterResult,
    ShutdownResult,
    Stats,
    WorkflowStats,
    StartExecutionResult,
    StepResult,
    StepStatus,
    Tool,
    Workflow,
    WorkflowType,
)
from .aio import AsyncClient, AsyncEventStream

try:
    __version__ = _version("wfm-client")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Client",
    "AsyncClient",
    "EventStream",
    "AsyncEventStream",
    # results
    "Event",
    "EventKind",
    "Execution",
    "ExecutionResult",
    "ExecutionStatus",
    "Page",
    "RegisterResult",
    "ShutdownResult",
    "Stats",
    "WorkflowStats",
    "StartExecutionResult",
    "StepResult",
    "StepStatus",
    "Tool",
    "Workflow",
    "WorkflowType",
    "TERMINAL_EVENT_KINDS",
    # errors
    "WfmError",
    "AbortedError",
    "AlreadyExistsError",
    "CancelledError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidValueError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "error_from_code",
    "error_from_rpc",
    # conversions and generated code
    "definition_to_dict",
    "py_to_value",
    "struct_to_dict",
    "to_definition",
    "to_struct",
    "value_to_py",
    "pb",
    "pb_grpc",
]
