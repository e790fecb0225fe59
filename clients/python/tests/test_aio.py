"""The asyncio client (grpc.aio) against a real `wfm serve` process."""

from __future__ import annotations

import pathlib
import uuid

import grpc
import pytest

from wfm_client import AsyncClient, ExecutionStatus, InvalidArgumentError, NotFoundError

from .conftest import WfmServer, start_server

ECHO_KINDS = ["accepted", "started", "step_started", "step_completed", "completed"]


@pytest.mark.asyncio
async def test_async_execute_streams_events(server: WfmServer, echo_wf: str) -> None:
    async with AsyncClient(server.target, timeout=10) as client:
        events = [e async for e in client.execute(echo_wf, input={"x": 1})]
        assert [e.kind for e in events] == ECHO_KINDS
        assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
        assert events[3].output == {"x": 1}
        result = events[-1].result
        assert result is not None and result.success and result.steps_completed == 1
        assert result.output == {"x": 1}

        seen: list[int] = []

        async def on_event(event):  # type: ignore[no-untyped-def]
            seen.append(event.sequence)

        result = await client.run(echo_wf, input={"y": [1, 2]}, on_event=on_event)
        assert result.success and result.output == {"y": [1, 2]}
        assert seen == [1, 2, 3, 4, 5]


@pytest.mark.asyncio
async def test_async_register_list_get(server: WfmServer) -> None:
    prefix = f"aio-{uuid.uuid4().hex[:8]}"
    label = {"suite": prefix}
    async with AsyncClient(server.target, timeout=10) as client:
        for i in range(3):
            reg = await client.register(f"{prefix}-{i}", type="noop", labels=label)
            assert reg.created
        names = [w.name async for w in client.list(page_size=2, label_filter=label)]
        assert sorted(names) == [f"{prefix}-{i}" for i in range(3)]
        wf = await client.get(f"{prefix}-0")
        assert wf.type == "noop" and wf.versions == (1,)
        assert {t.name for t in await client.list_workflow_types()} >= {"echo", "sleep"}
        assert await client.list_tools()
        assert await client.unregister(f"{prefix}-2") == 1


@pytest.mark.asyncio
async def test_async_errors(server: WfmServer) -> None:
    async with AsyncClient(server.target, timeout=10) as client:
        with pytest.raises(NotFoundError) as info:
            await client.get("no-such-workflow-here")
        assert info.value.code is grpc.StatusCode.NOT_FOUND
        with pytest.raises(NotFoundError):
            async for _ in client.execute("no-such-workflow-here"):
                pass
        with pytest.raises(InvalidArgumentError):
            await client.register("bad name!", type="echo")


@pytest.mark.asyncio
async def test_async_start_watch_cancel(server: WfmServer, sleep_wf: str, echo_wf: str) -> None:
    async with AsyncClient(server.target, timeout=10) as client:
        started = await client.start_execution(echo_wf, input={"a": 1})
        result = await client.wait(started.execution_id)
        assert result.success
        after = [e.sequence async for e in client.watch_execution(started.execution_id, after_sequence=2)]
        assert after == [3, 4, 5]
        execution = await client.get_execution(started.execution_id)
        assert execution.status is ExecutionStatus.COMPLETED
        ids = [e.id async for e in client.list_executions(workflow_name=echo_wf, page_size=1)]
        assert started.execution_id in ids

        long = await client.start_execution(sleep_wf, input={"duration_ms": 30_000})
        kinds = []
        async with client.watch_execution(long.execution_id) as stream:
            async for event in stream:
                kinds.append(event.kind)
                if event.kind == "step_started":
                    assert await client.cancel_execution(long.execution_id, "enough") is ExecutionStatus.CANCELLED
        assert kinds[-1] == "cancelled"


@pytest.mark.asyncio
async def test_async_shutdown_resume_unfinished(tmp_path: pathlib.Path) -> None:
    srv = start_server(tmp_path)
    try:
        async with AsyncClient(srv.target, timeout=10) as client:
            await client.register("napper", type="sleep")
            started = await client.start_execution("napper", input={"duration_ms": 60_000})
            result = await client.shutdown(grace_period=0.2, resume_unfinished=True)
        assert (result.finished_during_grace, result.cancelled, result.left_to_resume) == (0, 0, 1)
        assert srv.proc.wait(timeout=15) == 0, srv.log()
    finally:
        srv.stop()

    srv = start_server(tmp_path)
    try:
        async with AsyncClient(srv.target, timeout=10) as client:
            # Resumed, not cancelled: it sleeps on until cancelled here.
            execution = await client.get_execution(started.execution_id)
            assert not execution.status.is_terminal, execution.status
            assert await client.cancel_execution(started.execution_id) is ExecutionStatus.CANCELLED
    finally:
        srv.stop()
