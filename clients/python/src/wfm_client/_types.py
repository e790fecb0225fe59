"""Plain-Python views of the API's messages.

Every class keeps the protobuf message it was made from in ``raw`` (excluded from
``repr`` and equality), so fields this version of the client does not map yet
remain reachable.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field, fields
from collections.abc import Iterator
from typing import Any, Generic, Literal, TypeVar

from ._convert import opt_duration, opt_struct, opt_time, opt_value
from ._definition import definition_to_dict
from ._gen.workflow.v1 import workflow_service_pb2 as pb

__all__ = [
    "ExecutionStatus",
    "StepStatus",
    "Workflow",
    "RegisterResult",
    "StepResult",
    "ExecutionResult",
    "Execution",
    "Event",
    "StartExecutionResult",
    "WorkflowType",
    "Tool",
    "ShutdownResult",
    "WorkflowStats",
    "Stats",
    "Page",
    "EventKind",
    "TERMINAL_EVENT_KINDS",
]

T = TypeVar("T")


class _OpenIntEnum(enum.IntEnum):
    """An IntEnum that accepts values added to the proto after this client was built."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member


class ExecutionStatus(_OpenIntEnum):
    """``workflow.v1.ExecutionStatus`` without its prefix."""

    UNSPECIFIED = 0
    QUEUED = 1
    RUNNING = 2
    COMPLETED = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def is_terminal(self) -> bool:
        return self in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)


class StepStatus(_OpenIntEnum):
    """``workflow.v1.StepStatus`` without its prefix."""

    UNSPECIFIED = 0
    PENDING = 1
    RUNNING = 2
    COMPLETED = 3
    FAILED = 4
    SKIPPED = 5
    CANCELLED = 6


#: ``Event.kind``: the name of the proto's ``kind`` oneof, or "unknown" for a kind newer
#: than this client.
EventKind = Literal[
    "accepted",
    "queued",
    "started",
    "step_started",
    "step_progress",
    "step_completed",
    "step_failed",
    "step_skipped",
    "step_cancelled",
    "completed",
    "failed",
    "cancelled",
    "unknown",
]

#: Event kinds after which an execution's stream ends.
TERMINAL_EVENT_KINDS: frozenset[EventKind] = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class Workflow:
    """A registered workflow version."""

    name: str
    version: int
    description: str
    labels: dict[str, str]
    max_concurrency: int
    create_time: _dt.datetime | None
    #: Which ``source`` the workflow has: "native" (``type`` and ``arguments`` are set),
    #: "definition" (``definition`` is set), or None for a source this client does not know.
    source: Literal["native", "definition"] | None
    #: For a native source: the workflow type and its arguments.
    type: str | None
    arguments: dict[str, Any] | None
    #: For a declarative source: the definition as a dict (``steps``, ``input_schema``,
    #: ``output``), in the shape ``register(definition=...)`` takes, without default values;
    #: durations as strings such as "200ms".
    definition: dict[str, Any] | None = None
    #: Every registered version of this name, ascending. Only filled in by ``get()``.
    versions: tuple[int, ...] = ()
    raw: pb.Workflow = field(default_factory=pb.Workflow, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: pb.Workflow, versions: tuple[int, ...] = ()) -> Workflow:
        source = m.WhichOneof("source")
        wf_type: str | None = None
        arguments: dict[str, Any] | None = None
        definition: dict[str, Any] | None = None
        if source == "native":
            wf_type = m.native.type
            arguments = opt_struct(m.native, "arguments") or {}
        elif source == "definition":
            definition = definition_to_dict(m.definition)
        return cls(
            name=m.name,
            version=m.version,
            description=m.description,
            labels=dict(m.labels),
            max_concurrency=m.max_concurrency,
            create_time=opt_time(m, "create_time"),
            source=source,
            type=wf_type,
            arguments=arguments,
            definition=definition,
            versions=versions,
            raw=m,
        )


@dataclass(frozen=True)
class RegisterResult:
    workflow: Workflow
    #: False when identical content was already registered and its version is returned.
    created: bool


@dataclass(frozen=True)
class StepResult:
    step_id: str
    status: StepStatus
    output: Any
    error: str
    duration: _dt.timedelta | None
    attempts: int
    raw: pb.StepResult = field(default_factory=pb.StepResult, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: pb.StepResult) -> StepResult:
        return cls(
            step_id=m.step_id,
            status=StepStatus(m.status),
            output=opt_value(m, "output"),
            error=m.error,
            duration=opt_duration(m, "duration"),
            attempts=m.attempts,
            raw=m,
        )


@dataclass(frozen=True)
class ExecutionResult:
    """The summary of an execution; ``output`` is a plain Python value (usually a dict)."""

    success: bool
    output: Any
    error: str
    execution_time: _dt.timedelta | None
    steps_completed: int
    steps_failed: int
    steps_skipped: int
    steps: tuple[StepResult, ...]
    raw: pb.ExecutionResult = field(default_factory=pb.ExecutionResult, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: pb.ExecutionResult) -> ExecutionResult:
        return cls(
            success=m.success,
            output=opt_value(m, "output"),
            error=m.error,
            execution_time=opt_duration(m, "execution_time"),
            steps_completed=m.steps_completed,
            steps_failed=m.steps_failed,
            steps_skipped=m.steps_skipped,
            steps=tuple(StepResult.from_proto(s) for s in m.steps),
            raw=m,
        )


@dataclass(frozen=True)
class Execution:
    """One run of a workflow."""

    id: str
    workflow_name: str
    workflow_version: int
    status: ExecutionStatus
    input: dict[str, Any] | None
    metadata: dict[str, Any] | None
    create_time: _dt.datetime | None
    start_time: _dt.datetime | None
    end_time: _dt.datetime | None
    #: Present once the execution has started; final once it is terminal.
    result: ExecutionResult | None
    parent_execution_id: str
    request_id: str
    #: Sequence number of the last event.
    last_sequence: int
    raw: pb.Execution = field(default_factory=pb.Execution, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: pb.Execution) -> Execution:
        return cls(
            id=m.id,
            workflow_name=m.workflow_name,
            workflow_version=m.workflow_version,
            status=ExecutionStatus(m.status),
            input=opt_struct(m, "input"),
            metadata=opt_struct(m, "metadata"),
            create_time=opt_time(m, "create_time"),
            start_time=opt_time(m, "start_time"),
            end_time=opt_time(m, "end_time"),
            result=ExecutionResult.from_proto(m.result) if m.HasField("result") else None,
            parent_execution_id=m.parent_execution_id,
            request_id=m.request_id,
            last_sequence=m.last_sequence,
            raw=m,
        )


@dataclass(frozen=True)
class Event:
    """A status event of an execution, flattened.

    ``kind`` (an :data:`EventKind`) is the name of the proto's ``kind`` oneof:
    "accepted", "queued", "started", "step_started", "step_progress", "step_completed",
    "step_failed", "step_skipped", "step_cancelled", "completed", "failed" or "cancelled"
    ("unknown" for a kind newer than this client). The other fields are filled in when that
    kind carries them and are None otherwise; ``raw.<kind>`` has the message itself.

    A step cut short by a cancel, a shutdown or a failing step beside it is a
    "step_cancelled" event (``step_id``, ``reason``, ``attempt``): the step did not fail.
    Servers before that event sent it as "step_failed" with an error starting
    "Cancelled:", and histories recorded then keep it.
    """

    execution_id: str
    sequence: int
    time: _dt.datetime | None
    kind: EventKind
    step_id: str | None = None
    attempt: int | None = None
    workflow_name: str | None = None
    workflow_version: int | None = None
    #: Queued, step_skipped, step_cancelled and cancelled: why.
    reason: str | None = None
    #: step_progress.
    message: str | None = None
    fraction: float | None = None
    #: step_completed: the step's output as a plain Python value.
    output: Any = None
    duration: _dt.timedelta | None = None
    #: step_failed and failed.
    error: str | None = None
    will_retry: bool | None = None
    #: Terminal events: the execution's result. Always set on a terminal event (when
    #: the server sends none, one with success=False and the error/reason is made).
    result: ExecutionResult | None = None
    raw: pb.ExecutionEvent = field(default_factory=pb.ExecutionEvent, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.kind in TERMINAL_EVENT_KINDS

    def __repr__(self) -> str:
        # Only the fields this kind carries: the rest are None.
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.repr and (f.name in ("execution_id", "sequence", "kind") or getattr(self, f.name) is not None)
        )
        return f"Event({shown})"

    @classmethod
    def from_proto(cls, m: pb.ExecutionEvent) -> Event:
        kind = m.WhichOneof("kind")
        common: dict[str, Any] = dict(
            execution_id=m.execution_id, sequence=m.sequence, time=opt_time(m, "time"), raw=m
        )
        if kind is None:
            return cls(kind="unknown", **common)
        if kind == "accepted":
            a = m.accepted
            return cls(kind=kind, workflow_name=a.workflow_name, workflow_version=a.workflow_version, **common)
        if kind == "queued":
            return cls(kind=kind, reason=m.queued.reason, **common)
        if kind == "started":
            return cls(kind=kind, attempt=m.started.attempt, **common)
        if kind == "step_started":
            s = m.step_started
            return cls(kind=kind, step_id=s.step_id, attempt=s.attempt, **common)
        if kind == "step_progress":
            p = m.step_progress
            fraction = p.fraction if p.HasField("fraction") else None
            return cls(kind=kind, step_id=p.step_id, message=p.message, fraction=fraction, **common)
        if kind == "step_completed":
            c = m.step_completed
            return cls(
                kind=kind,
                step_id=c.step_id,
                output=opt_value(c, "output"),
                duration=opt_duration(c, "duration"),
                **common,
            )
        if kind == "step_failed":
            f = m.step_failed
            return cls(
                kind=kind, step_id=f.step_id, error=f.error, attempt=f.attempt, will_retry=f.will_retry, **common
            )
        if kind == "step_skipped":
            k = m.step_skipped
            return cls(kind=kind, step_id=k.step_id, reason=k.reason, **common)
        if kind == "step_cancelled":
            x = m.step_cancelled
            return cls(kind=kind, step_id=x.step_id, reason=x.reason, attempt=x.attempt, **common)
        if kind == "completed":
            return cls(kind=kind, result=_result_or(m.completed, ""), **common)
        if kind == "failed":
            f2 = m.failed
            return cls(kind=kind, error=f2.error, result=_result_or(f2, f2.error), **common)
        if kind == "cancelled":
            c2 = m.cancelled
            return cls(kind=kind, reason=c2.reason, result=_result_or(c2, c2.reason or "cancelled"), **common)
        return cls(kind=kind, **common)  # pragma: no cover - a oneof member added to the proto later


def _result_or(holder: Any, error: str) -> ExecutionResult:
    """The terminal event's result; if absent, a failed one carrying ``error``."""
    if holder.HasField("result"):
        return ExecutionResult.from_proto(holder.result)
    return ExecutionResult(
        success=False,
        output=None,
        error=error,
        execution_time=None,
        steps_completed=0,
        steps_failed=0,
        steps_skipped=0,
        steps=(),
    )


@dataclass(frozen=True)
class StartExecutionResult:
    execution_id: str
    #: False when the request_id matched an existing execution.
    created: bool


@dataclass(frozen=True)
class WorkflowType:
    """A workflow type compiled into the server (for ``register(type=...)``)."""

    name: str
    description: str
    #: JSON Schema of the arguments the type accepts.
    arguments_schema: dict[str, Any] | None
    raw: pb.WorkflowType = field(default_factory=pb.WorkflowType, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: pb.WorkflowType) -> WorkflowType:
        return cls(
            name=m.name, description=m.description, arguments_schema=opt_struct(m, "arguments_schema"), raw=m
        )


@dataclass(frozen=True)
class Tool:
    """A tool workflows can call."""

    name: str
    description: str
    input_schema: dict[str, Any] | None
    #: "builtin", or the name of the MCP server providing the tool.
    server: str
    raw: pb.Tool = field(default_factory=pb.Tool, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: pb.Tool) -> Tool:
        return cls(
            name=m.name,
            description=m.description,
            input_schema=opt_struct(m, "input_schema"),
            server=m.server,
            raw=m,
        )


@dataclass(frozen=True)
class ShutdownResult:
    """What became of the executions running when the server was asked to shut down."""

    #: Executions that finished during the grace period.
    finished_during_grace: int
    #: Executions cancelled when the grace period ran out.
    cancelled: int
    #: Executions stopped where they were (``resume_unfinished``), for the next server
    #: started on the same data directory to resume.
    left_to_resume: int = 0

    @classmethod
    def from_proto(cls, m: pb.ShutdownResponse) -> ShutdownResult:
        return cls(m.finished_during_grace, m.cancelled, m.left_to_resume)


@dataclass(frozen=True)
class WorkflowStats:
    """Execution counts of one workflow since the server started, and the p50/p99
    durations (acceptance to end) of its last ``window_size`` executions that ended."""

    workflow_name: str
    started: int
    succeeded: int
    failed: int
    cancelled: int
    #: Accepted and not ended: running or queued.
    running: int
    p50_duration: _dt.timedelta | None
    p99_duration: _dt.timedelta | None
    window_size: int
    raw: pb.WorkflowStats = field(default_factory=pb.WorkflowStats, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: pb.WorkflowStats) -> WorkflowStats:
        return cls(
            workflow_name=m.workflow_name,
            started=m.started,
            succeeded=m.succeeded,
            failed=m.failed,
            cancelled=m.cancelled,
            running=m.running,
            p50_duration=opt_duration(m, "p50_duration"),
            p99_duration=opt_duration(m, "p99_duration"),
            window_size=m.window_size,
            raw=m,
        )


@dataclass(frozen=True)
class Stats:
    """GetStats: one entry per registered workflow; counts run from ``since`` (the
    server's start) and are kept in memory only."""

    since: _dt.datetime | None
    workflows: list[WorkflowStats]

    @classmethod
    def from_proto(cls, m: pb.GetStatsResponse) -> Stats:
        return cls(
            since=opt_time(m, "since"),
            workflows=[WorkflowStats.from_proto(w) for w in m.workflows],
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_page_token`` is empty on the last page."""

    items: list[T]
    next_page_token: str

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

