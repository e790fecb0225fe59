"""The synchronous client."""

from __future__ import annotations

import builtins
import datetime as _dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import grpc

from . import _requests as rq
from . import _wire
from ._errors import WfmError, error_from_rpc
from ._gen.workflow.v1 import workflow_service_pb2 as pb
from ._gen.workflow.v1 import workflow_service_pb2_grpc as pb_grpc
from ._types import (
    Event,
    Execution,
    ExecutionResult,
    ExecutionStatus,
    Page,
    RegisterResult,
    ShutdownResult,
    Stats,
    StartExecutionResult,
    Tool,
    Workflow,
    WorkflowType,
)

__all__ = ["Client", "EventStream"]

R = TypeVar("R")


def _ended_early() -> WfmError:
    return WfmError(grpc.StatusCode.UNKNOWN, "the event stream ended before a terminal event")


def _same_token(token: str) -> WfmError:
    return WfmError(grpc.StatusCode.INTERNAL, f"the server returned page token {token!r} twice in a row")


class EventStream(Iterator[Event]):
    """The events of one execution, as an iterator.

    Iteration stops after the terminal event (completed, failed or cancelled).
    A failed RPC raises :class:`~wfm_client.WfmError` from ``next()``. ``cancel()``
    (or leaving a ``with`` block) stops following the execution; it does not cancel
    the execution itself (use ``Client.cancel_execution`` for that).
    """

    def __init__(self, call: Any) -> None:
        self._call = call
        self._done = False
        #: The last event received, if any.
        self.last_event: Event | None = None

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        if self._done:
            raise StopIteration
        try:
            msg = next(self._call)
        except StopIteration:
            self._done = True
            raise
        except grpc.RpcError as e:
            self._stop()
            raise error_from_rpc(e) from e
        try:
            event = Event.from_proto(_wire.check(msg, "event").event)
        except WfmError:
            # Not decodable: end the call here, or it would go on (and its status never come).
            self._stop()
            raise
        self.last_event = event
        if event.is_terminal:
            self._done = True
        return event

    def _stop(self) -> None:
        self._done = True
        self._call.cancel()

    def result(self, on_event: Callable[[Event], None] | None = None) -> ExecutionResult:
        """Consumes the rest of the stream and returns the terminal event's result."""
        for event in self:
            if on_event is not None:
                on_event(event)
        if self.last_event is None or not self.last_event.is_terminal:
            raise _ended_early()
        assert self.last_event.result is not None
        return self.last_event.result

    def cancel(self) -> None:
        """Stops the stream (client side)."""
        self._done = True
        self._call.cancel()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Client:
    """Synchronous client of the wfm ``workflow.v1.WorkflowService``.

    ``target`` is ``host:port``, or a URL: ``http://host:port`` (plaintext) or
    ``https://host:port`` (TLS with the system's root certificates). Pass
    ``credentials`` (``grpc.ssl_channel_credentials(...)``) for a TLS channel with
    your own certificates, and ``token`` (a string, or a callable returning one) to
    send ``authorization: Bearer <token>`` with every call. ``metadata`` is added to
    every call too. ``timeout`` (seconds) is the default deadline of unary calls;
    streams have none unless one is given to the call.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        target: str = rq.DEFAULT_TARGET,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        token: rq.Token | None = None,
        metadata: rq.Metadata | None = None,
        timeout: float | None = None,
        options: Sequence[tuple[str, Any]] | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        self._settings = rq.ConnectionSettings(target, credentials, token, metadata, timeout)
        if channel is not None:
            self._channel = channel
        elif self._settings.credentials is not None:
            self._channel = grpc.secure_channel(self._settings.address, self._settings.credentials, options=rq.channel_options(options))
        else:
            self._channel = grpc.insecure_channel(self._settings.address, options=rq.channel_options(options))
        self._owns_channel = channel is None
        #: The generated stub, for anything the idiomatic layer does not cover.
        self.stub = pb_grpc.WorkflowServiceStub(self._channel)
        # What the methods below call: the same RPCs, with deserializers that decode JSON
        # nested past protobuf's depth limit and never raise (see _wire).
        self._rpc = _wire.make_callables(self._channel)

    # -- plumbing ---------------------------------------------------------------

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unary(self, method: Callable[..., R], request: Any, timeout: float | None) -> R:
        try:
            resp = method(
                request,
                timeout=self._settings.unary_timeout(timeout),
                metadata=self._settings.call_metadata(),
            )
        except grpc.RpcError as e:
            raise error_from_rpc(e) from e
        return _wire.check(resp, "response")  # type: ignore[no-any-return]

    def _stream(self, method: Callable[..., Any], request: Any, timeout: float | None) -> EventStream:
        call = method(request, timeout=timeout, metadata=self._settings.call_metadata())
        return EventStream(call)

    # -- workflows --------------------------------------------------------------

    def register(
        self,
        name: str | None = None,
        *,
        type: str | None = None,
        definition: rq.Definition | None = None,
        arguments: rq.JsonObject | None = None,
        description: str = "",
        labels: Mapping[str, str] | None = None,
        max_concurrency: int = 0,
        timeout: float | None = None,
    ) -> RegisterResult:
        """Registers a workflow: give exactly one of ``type`` and ``definition`` (else ValueError).

        ``type`` is a workflow type compiled into the server (see
        :meth:`list_workflow_types`), built with ``arguments``; ``name`` defaults to the
        type's name. ``definition`` is a declarative workflow: a dict shaped like the
        YAML of ``wfm register -f`` (``steps``, ``input_schema``, ``output``; durations
        such as ``"200ms"``). A whole definition file works too: its ``name``,
        ``description``, ``labels`` and ``max_concurrency`` apply unless given here.

        Registering a name again with different content makes a new version; identical
        content returns the existing one (``created`` False). A wrong definition raises
        :class:`~wfm_client.InvalidArgumentError` listing every problem; one that needs
        tools or workflows the server lacks, :class:`~wfm_client.FailedPreconditionError`.
        """
        req = rq.register(name, type, definition, arguments, description, labels, max_concurrency)
        resp = self._unary(self._rpc.Register, req, timeout)
        return RegisterResult(Workflow.from_proto(resp.workflow), resp.created)

    def unregister(self, name: str, *, timeout: float | None = None) -> int:
        """Removes every version of a workflow; returns how many versions were removed."""
        resp = self._unary(self._rpc.Unregister, pb.UnregisterRequest(name=name), timeout)
        return resp.versions_removed

    def get(self, name: str, version: int = 0, *, timeout: float | None = None) -> Workflow:
        """One workflow: the latest version, or ``version``. ``.versions`` lists all of them."""
        resp = self._unary(self._rpc.Get, pb.GetRequest(name=name, version=version), timeout)
        return Workflow.from_proto(resp.workflow, tuple(resp.versions))

    def list_page(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        label_filter: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Page[Workflow]:
        """One page of :meth:`list`."""
        resp = self._unary(self._rpc.List, rq.list_workflows(page_size, page_token, label_filter), timeout)
        return Page([Workflow.from_proto(w) for w in resp.workflows], resp.next_page_token)

    def list(
        self,
        *,
        page_size: int = 0,
        label_filter: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Workflow]:
        """The latest version of every workflow (having all of ``label_filter``), fetching pages lazily."""
        token = ""
        while True:
            page = self.list_page(page_size=page_size, page_token=token, label_filter=label_filter, timeout=timeout)
            yield from page.items
            if not page.next_page_token:
                return
            if page.next_page_token == token:
                raise _same_token(token)
            token = page.next_page_token

    # -- executions ---------------------------------------------------------------

    def execute(
        self,
        name: str,
        input: rq.JsonObject | None = None,
        *,
        version: int = 0,
        metadata: rq.JsonObject | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> EventStream:
        """Starts an execution and streams its events until the terminal one.

        ``input`` and ``metadata`` are dicts. ``request_id`` is an idempotency key: a
        retry with the same key attaches to the same execution.
        """
        req = rq.execute(name, input, version, metadata, request_id)
        return self._stream(self._rpc.Execute, req, timeout)

    def run(
        self,
        name: str,
        input: rq.JsonObject | None = None,
        *,
        version: int = 0,
        metadata: rq.JsonObject | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> ExecutionResult:
        """Executes a workflow and waits for its result (``.success``, ``.output``, ``.error``...).

        A failed or cancelled execution returns a result with ``success`` False; only
        RPC failures raise. ``on_event`` is called with every event on the way.
        """
        with self.execute(
            name, input, version=version, metadata=metadata, request_id=request_id, timeout=timeout
        ) as stream:
            return stream.result(on_event)

    def start_execution(
        self,
        name: str,
        input: rq.JsonObject | None = None,
        *,
        version: int = 0,
        metadata: rq.JsonObject | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> StartExecutionResult:
        """Starts an execution and returns its id at once."""
        req = rq.start_execution(name, input, version, metadata, request_id)
        resp = self._unary(self._rpc.StartExecution, req, timeout)
        return StartExecutionResult(resp.execution_id, resp.created)

    def get_execution(self, execution_id: str, *, timeout: float | None = None) -> Execution:
        """One execution with its status, timings and result so far."""
        resp = self._unary(self._rpc.GetExecution, pb.GetExecutionRequest(execution_id=execution_id), timeout)
        return Execution.from_proto(resp.execution)

    def list_executions_page(
        self,
        *,
        workflow_name: str | None = None,
        status: ExecutionStatus | int | None = None,
        create_time_start: _dt.datetime | None = None,
        create_time_end: _dt.datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Page[Execution]:
        """One page of :meth:`list_executions`."""
        req = rq.list_executions(workflow_name, status, create_time_start, create_time_end, page_size, page_token)
        resp = self._unary(self._rpc.ListExecutions, req, timeout)
        return Page([Execution.from_proto(e) for e in resp.executions], resp.next_page_token)

    def list_executions(
        self,
        *,
        workflow_name: str | None = None,
        status: ExecutionStatus | int | None = None,
        create_time_start: _dt.datetime | None = None,
        create_time_end: _dt.datetime | None = None,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[Execution]:
        """Executions, newest first, filtered, fetching pages lazily. Naive datetimes are UTC."""
        token = ""
        while True:
            page = self.list_executions_page(
                workflow_name=workflow_name,
                status=status,
                create_time_start=create_time_start,
                create_time_end=create_time_end,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
            )
            yield from page.items
            if not page.next_page_token:
                return
            if page.next_page_token == token:
                raise _same_token(token)
            token = page.next_page_token

    def watch_execution(
        self, execution_id: str, *, after_sequence: int = 0, timeout: float | None = None
    ) -> EventStream:
        """Replays the events after ``after_sequence`` (0: all), then follows live to the terminal one."""
        req = pb.WatchExecutionRequest(execution_id=execution_id, after_sequence=after_sequence)
        return self._stream(self._rpc.WatchExecution, req, timeout)

    def wait(
        self,
        execution_id: str,
        *,
        after_sequence: int = 0,
        timeout: float | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> ExecutionResult:
        """Waits for an execution started earlier to finish and returns its result.

        ``on_event`` is called with every event after ``after_sequence`` (0: all of them).
        """
        with self.watch_execution(execution_id, after_sequence=after_sequence, timeout=timeout) as stream:
            for event in stream:
                if on_event is not None:
                    on_event(event)
            if stream.last_event is None and after_sequence > 0:
                # Nothing after after_sequence: the execution had already ended there.
                execution = self.get_execution(execution_id, timeout=timeout)
                if execution.status.is_terminal and execution.result is not None:
                    return execution.result
            return stream.result()

    def cancel_execution(
        self, execution_id: str, reason: str = "", *, timeout: float | None = None
    ) -> ExecutionStatus:
        """Cancels an execution (and its children); idempotent.

        Returns the status after the request: CANCELLED, or the terminal status the
        execution had already reached.
        """
        req = pb.CancelExecutionRequest(execution_id=execution_id, reason=reason)
        resp = self._unary(self._rpc.CancelExecution, req, timeout)
        return ExecutionStatus(resp.status)

    # -- server -------------------------------------------------------------------

    def list_workflow_types(self, *, timeout: float | None = None) -> builtins.list[WorkflowType]:
        """The workflow types compiled into the server."""
        resp = self._unary(self._rpc.ListWorkflowTypes, pb.ListWorkflowTypesRequest(), timeout)
        return [WorkflowType.from_proto(t) for t in resp.workflow_types]

    def list_tools(self, *, timeout: float | None = None) -> builtins.list[Tool]:
        """The tools workflows can call: built-in ones and those of MCP servers."""
        resp = self._unary(self._rpc.ListTools, pb.ListToolsRequest(), timeout)
        return [Tool.from_proto(t) for t in resp.tools]

    def get_stats(self, workflow_name: str = "", *, timeout: float | None = None) -> Stats:
        """Per-workflow counts and p50/p99 durations (one workflow, or every registered one)."""
        req = pb.GetStatsRequest(workflow_name=workflow_name)
        return Stats.from_proto(self._unary(self._rpc.GetStats, req, timeout))

    def shutdown(
        self,
        grace_period: _dt.timedelta | float | None = None,
        *,
        resume_unfinished: bool | None = None,
        timeout: float | None = None,
    ) -> ShutdownResult:
        """Stops the server gracefully and returns what became of the executions still running.

        ``grace_period`` (a timedelta or seconds; None: the server's configured one) is how
        long running executions may take to finish. Those still running then are cancelled,
        or, with ``resume_unfinished=True``, stopped where they are for the next server
        started on the same data directory to resume (``left_to_resume``); None means the
        server's configured ``shutdown_unfinished``. A server with the in-memory store
        cancels them either way.
        """
        resp = self._unary(self._rpc.Shutdown, rq.shutdown(grace_period, resume_unfinished), timeout)
        return ShutdownResult.from_proto(resp)
