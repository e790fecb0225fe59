"""The asyncio client (``grpc.aio``): the same methods as :class:`wfm_client.Client`, awaitable.

Create it inside a running event loop, preferably with ``async with``::

    async with AsyncClient("127.0.0.1:50051") as client:
        async for event in client.execute("echo-wf", input={"x": 1}):
            print(event.sequence, event.kind)
        result = await client.run("echo-wf", input={"x": 1})
"""

from __future__ import annotations

import builtins
import datetime as _dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
import grpc.aio

from . import _requests as rq
from . import _wire
from ._client import _ended_early, _same_token
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

__all__ = ["AsyncClient", "AsyncEventStream"]

R = TypeVar("R")


class AsyncEventStream(AsyncIterator[Event]):
    """The events of one execution, as an async iterator; see :class:`wfm_client.EventStream`."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._done = False
        #: The last event received, if any.
        self.last_event: Event | None = None

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> Event:
        if self._done:
            raise StopAsyncIteration
        try:
            msg = await self._call.read()
        except grpc.RpcError as e:
            self._stop()
            raise error_from_rpc(e) from e
        if msg is grpc.aio.EOF:
            self._done = True
            raise StopAsyncIteration
        try:
            event = Event.from_proto(_wire.check(msg, "event").event)
        except WfmError:
            # Not decodable: end the call here rather than leave it running.
            self._stop()
            raise
        self.last_event = event
        if event.is_terminal:
            self._done = True
        return event

    def _stop(self) -> None:
        self._done = True
        self._call.cancel()

    async def result(
        self, on_event: Callable[[Event], Awaitable[None] | None] | None = None
    ) -> ExecutionResult:
        """Consumes the rest of the stream and returns the terminal event's result.

        ``on_event`` may be a plain function or a coroutine function.
        """
        async for event in self:
            if on_event is not None:
                ret = on_event(event)
                if ret is not None:
                    await ret
        if self.last_event is None or not self.last_event.is_terminal:
            raise _ended_early()
        assert self.last_event.result is not None
        return self.last_event.result

    def cancel(self) -> None:
        """Stops the stream (client side); the execution itself goes on."""
        self._done = True
        self._call.cancel()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()


class AsyncClient:
    """Asyncio client of the wfm ``workflow.v1.WorkflowService``.

    Takes the same arguments as :class:`wfm_client.Client` (``channel`` must be a
    ``grpc.aio.Channel``). Use ``async with``, or ``await client.close()``.
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
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._settings = rq.ConnectionSettings(target, credentials, token, metadata, timeout)
        if channel is not None:
            self._channel = channel
        elif self._settings.credentials is not None:
            self._channel = grpc.aio.secure_channel(
                self._settings.address, self._settings.credentials, options=rq.channel_options(options)
            )
        else:
            self._channel = grpc.aio.insecure_channel(self._settings.address, options=rq.channel_options(options))
        self._owns_channel = channel is None
        #: The generated stub (its methods return grpc.aio calls).
        self.stub = pb_grpc.WorkflowServiceStub(self._channel)
        # What the methods below call (see Client._rpc).
        self._rpc = _wire.make_callables(self._channel)

    # -- plumbing ---------------------------------------------------------------

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        try:
            resp = await method(
                request,
                timeout=self._settings.unary_timeout(timeout),
                metadata=self._settings.call_metadata(),
            )
        except grpc.RpcError as e:
            raise error_from_rpc(e) from e
        return _wire.check(resp, "response")

    def _stream(self, method: Callable[..., Any], request: Any, timeout: float | None) -> AsyncEventStream:
        call = method(request, timeout=timeout, metadata=self._settings.call_metadata())
        return AsyncEventStream(call)

    # -- workflows --------------------------------------------------------------

    async def register(
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
        """A native ``type`` or a declarative ``definition`` (exactly one); see :meth:`wfm_client.Client.register`."""
        req = rq.register(name, type, definition, arguments, description, labels, max_concurrency)
        resp = await self._unary(self._rpc.Register, req, timeout)
        return RegisterResult(Workflow.from_proto(resp.workflow), resp.created)

    async def unregister(self, name: str, *, timeout: float | None = None) -> int:
        resp = await self._unary(self._rpc.Unregister, pb.UnregisterRequest(name=name), timeout)
        return int(resp.versions_removed)

    async def get(self, name: str, version: int = 0, *, timeout: float | None = None) -> Workflow:
        resp = await self._unary(self._rpc.Get, pb.GetRequest(name=name, version=version), timeout)
        return Workflow.from_proto(resp.workflow, tuple(resp.versions))

    async def list_page(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        label_filter: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Page[Workflow]:
        resp = await self._unary(self._rpc.List, rq.list_workflows(page_size, page_token, label_filter), timeout)
        return Page([Workflow.from_proto(w) for w in resp.workflows], resp.next_page_token)

    async def list(
        self,
        *,
        page_size: int = 0,
        label_filter: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Workflow]:
        """``async for workflow in client.list(): ...`` — fetches pages lazily."""
        token = ""
        while True:
            page = await self.list_page(
                page_size=page_size, page_token=token, label_filter=label_filter, timeout=timeout
            )
            for w in page.items:
                yield w
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
    ) -> AsyncEventStream:
        """``async for event in client.execute(...)`` (not awaited)."""
        req = rq.execute(name, input, version, metadata, request_id)
        return self._stream(self._rpc.Execute, req, timeout)

    async def run(
        self,
        name: str,
        input: rq.JsonObject | None = None,
        *,
        version: int = 0,
        metadata: rq.JsonObject | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
        on_event: Callable[[Event], Awaitable[None] | None] | None = None,
    ) -> ExecutionResult:
        """Executes a workflow and waits for its result; see :meth:`wfm_client.Client.run`."""
        async with self.execute(
            name, input, version=version, metadata=metadata, request_id=request_id, timeout=timeout
        ) as stream:
            return await stream.result(on_event)

    async def start_execution(
        self,
        name: str,
        input: rq.JsonObject | None = None,
        *,
        version: int = 0,
        metadata: rq.JsonObject | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> StartExecutionResult:
        req = rq.start_execution(name, input, version, metadata, request_id)
        resp = await self._unary(self._rpc.StartExecution, req, timeout)
        return StartExecutionResult(resp.execution_id, resp.created)

    async def get_execution(self, execution_id: str, *, timeout: float | None = None) -> Execution:
        resp = await self._unary(
            self._rpc.GetExecution, pb.GetExecutionRequest(execution_id=execution_id), timeout
        )
        return Execution.from_proto(resp.execution)

    async def list_executions_page(
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
        req = rq.list_executions(workflow_name, status, create_time_start, create_time_end, page_size, page_token)
        resp = await self._unary(self._rpc.ListExecutions, req, timeout)
        return Page([Execution.from_proto(e) for e in resp.executions], resp.next_page_token)

    async def list_executions(
        self,
        *,
        workflow_name: str | None = None,
        status: ExecutionStatus | int | None = None,
        create_time_start: _dt.datetime | None = None,
        create_time_end: _dt.datetime | None = None,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[Execution]:
        token = ""
        while True:
            page = await self.list_executions_page(
                workflow_name=workflow_name,
                status=status,
                create_time_start=create_time_start,
                create_time_end=create_time_end,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
            )
            for e in page.items:
                yield e
            if not page.next_page_token:
                return
            if page.next_page_token == token:
                raise _same_token(token)
            token = page.next_page_token

    def watch_execution(
        self, execution_id: str, *, after_sequence: int = 0, timeout: float | None = None
    ) -> AsyncEventStream:
        """``async for event in client.watch_execution(id, after_sequence=n)`` (not awaited)."""
        req = pb.WatchExecutionRequest(execution_id=execution_id, after_sequence=after_sequence)
        return self._stream(self._rpc.WatchExecution, req, timeout)

    async def wait(
        self,
        execution_id: str,
        *,
        after_sequence: int = 0,
        timeout: float | None = None,
        on_event: Callable[[Event], Awaitable[None] | None] | None = None,
    ) -> ExecutionResult:
        """See :meth:`wfm_client.Client.wait`."""
        async with self.watch_execution(execution_id, after_sequence=after_sequence, timeout=timeout) as stream:
            async for event in stream:
                if on_event is not None:
                    ret = on_event(event)
                    if ret is not None:
                        await ret
            if stream.last_event is None and after_sequence > 0:
                # Nothing after after_sequence: the execution had already ended there.
                execution = await self.get_execution(execution_id, timeout=timeout)
                if execution.status.is_terminal and execution.result is not None:
                    return execution.result
            return await stream.result()

    async def cancel_execution(
        self, execution_id: str, reason: str = "", *, timeout: float | None = None
    ) -> ExecutionStatus:
        req = pb.CancelExecutionRequest(execution_id=execution_id, reason=reason)
        resp = await self._unary(self._rpc.CancelExecution, req, timeout)
        return ExecutionStatus(resp.status)

    # -- server -------------------------------------------------------------------

    async def list_workflow_types(self, *, timeout: float | None = None) -> builtins.list[WorkflowType]:
        resp = await self._unary(self._rpc.ListWorkflowTypes, pb.ListWorkflowTypesRequest(), timeout)
        return [WorkflowType.from_proto(t) for t in resp.workflow_types]

    async def list_tools(self, *, timeout: float | None = None) -> builtins.list[Tool]:
        resp = await self._unary(self._rpc.ListTools, pb.ListToolsRequest(), timeout)
        return [Tool.from_proto(t) for t in resp.tools]

    async def get_stats(self, workflow_name: str = "", *, timeout: float | None = None) -> Stats:
        """Per-workflow counts and p50/p99 durations (one workflow, or every registered one)."""
        req = pb.GetStatsRequest(workflow_name=workflow_name)
        return Stats.from_proto(await self._unary(self._rpc.GetStats, req, timeout))

    async def shutdown(
        self,
        grace_period: _dt.timedelta | float | None = None,
        *,
        resume_unfinished: bool | None = None,
        timeout: float | None = None,
    ) -> ShutdownResult:
        """Stops the server gracefully; see :meth:`wfm_client.Client.shutdown`."""
        resp = await self._unary(self._rpc.Shutdown, rq.shutdown(grace_period, resume_unfinished), timeout)
        return ShutdownResult.from_proto(resp)
