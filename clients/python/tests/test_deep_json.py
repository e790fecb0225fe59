"""Deeply nested JSON against a real `wfm serve` process.

protobuf's decoder stops at 100 levels of message nesting, and a JSON object level is
three of them (Value -> Struct -> map entry): an execution output nested ~32 levels, which
the server accepts and returns, used to make `run`/`execute`/`watch_execution` hang for
good (ignoring `timeout=`) in the sync client and fail with an AttributeError in the
asyncio one. Every call below runs under a deadline of its own, so a hang fails the test
instead of the suite.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import DecodeError

import wfm_client
from wfm_client import AsyncClient, Client, ExecutionStatus, InternalError, InvalidArgumentError, pb
from wfm_client import _wire

from .conftest import WfmServer

T = TypeVar("T")

#: The deepest input the server takes (its decoder's limit is 100 message levels too).
SERVER_MAX_DEPTH = 32
#: Generous: every call here answers in milliseconds when it works.
HANG = 20.0


def nested(depth: int, leaf: Any = "leaf") -> Any:
    value = leaf
    for i in range(depth):
        value = {"a": value, "n": i} if i % 2 else {"a": value}
    return value


def depth_of(value: Any) -> int:
    depth = 0
    while isinstance(value, dict):
        value = value["a"]
        depth += 1
    return depth


def within(seconds: float, fn: Callable[[], T]) -> T:
    """fn() in a daemon thread; fails the test (instead of hanging it) past ``seconds``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds}s: the client hangs")
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_output_nested_32_levels_round_trips(client: Client, echo_wf: str) -> None:
    payload = {"x": nested(SERVER_MAX_DEPTH)}
    assert depth_of(payload["x"]) == SERVER_MAX_DEPTH

    result = within(HANG, lambda: client.run(echo_wf, input=payload, timeout=10))
    assert result.success is True
    assert result.output == payload

    events = within(HANG, lambda: list(client.execute(echo_wf, input=payload, timeout=10)))
    assert [e.kind for e in events][-1] == "completed"
    step_completed = next(e for e in events if e.kind == "step_completed")
    assert step_completed.output == payload

    started = client.start_execution(echo_wf, input=payload)
    watched = within(HANG, lambda: list(client.watch_execution(started.execution_id, timeout=10)))
    assert watched[-1].kind == "completed" and watched[-1].result is not None
    assert watched[-1].result.output == payload
    assert within(HANG, lambda: client.wait(started.execution_id, timeout=10)).output == payload

    execution = within(HANG, lambda: client.get_execution(started.execution_id))
    assert execution.status is ExecutionStatus.COMPLETED
    assert execution.input == payload
    assert execution.result is not None and execution.result.output == payload
    listed = within(HANG, lambda: [e for e in client.list_executions(workflow_name=echo_wf)])
    assert payload in [e.input for e in listed]


@pytest.mark.asyncio
async def test_async_output_nested_32_levels_round_trips(server: WfmServer, echo_wf: str) -> None:
    payload = {"x": nested(SERVER_MAX_DEPTH)}
    async with AsyncClient(server.target, timeout=10) as client:
        result = await asyncio.wait_for(client.run(echo_wf, input=payload, timeout=10), HANG)
        assert result.success is True and result.output == payload

        started = await client.start_execution(echo_wf, input=payload)
        result = await asyncio.wait_for(client.wait(started.execution_id, timeout=10), HANG)
        assert result.output == payload
        execution = await client.get_execution(started.execution_id)
        assert execution.input == payload
        assert execution.result is not None and execution.result.output == payload


def test_input_nested_too_deeply_raises_invalid_argument(client: Client, echo_wf: str) -> None:
    # Deeper than the server takes: its own answer, not a protobuf DecodeError from the client.
    with pytest.raises(InvalidArgumentError) as info:
        within(HANG, lambda: client.run(echo_wf, input={"x": nested(40)}, timeout=10))
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "recursion limit" in info.value.message
    with pytest.raises(InvalidArgumentError):
        within(HANG, lambda: client.start_execution(echo_wf, input={"x": nested(40)}))

    # Too deep to convert at all: said so before anything is sent.
    with pytest.raises(InvalidArgumentError) as info:
        client.run(echo_wf, input={"x": nested(5000)})
    assert "input is nested too deeply" in info.value.message
    with pytest.raises(InvalidArgumentError) as info:
        client.start_execution(echo_wf, input={}, metadata={"x": nested(5000)})
    assert "metadata is nested too deeply" in info.value.message

    # The client goes on working.
    assert client.run(echo_wf, input={"x": nested(3)}).output == {"x": nested(3)}


def test_converting_error_of_raw_stub_stream_does_not_hang(client: Client, echo_wf: str) -> None:
    # The generated stub's deserializer gives up on this response, and grpc reports that on
    # a call whose debug_error_string() never returns: error_from_rpc must not wait for it.
    req = pb.ExecuteRequest(name=echo_wf)
    req.input.CopyFrom(wfm_client.to_struct({"x": nested(SERVER_MAX_DEPTH)}))
    call = client.stub.Execute(req, timeout=10)
    try:
        with pytest.raises(grpc.RpcError) as info:
            within(HANG, lambda: list(call))
        err = within(5, lambda: wfm_client.error_from_rpc(info.value))
    finally:
        call.cancel()
    assert isinstance(err, InternalError)
    assert err.code is grpc.StatusCode.INTERNAL


def _failing_parse(cls: Any, data: bytes) -> Any:
    if cls is pb.ExecuteResponse and len(data) > 200:  # the events carrying the output
        raise DecodeError("simulated: undecodable response")
    return _REAL_PARSE(cls, data)


_REAL_PARSE = _wire.parse


def test_undecodable_event_raises_internal_error_promptly(
    client: Client, server: WfmServer, echo_wf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_wire, "parse", _failing_parse)
    with Client(server.target, timeout=10) as c:
        kinds: list[str] = []
        start = time.monotonic()
        with pytest.raises(InternalError) as info:
            within(HANG, lambda: c.run(echo_wf, input={"blob": "x" * 300}, on_event=lambda e: kinds.append(e.kind)))
        assert time.monotonic() - start < 5
        assert kinds == ["accepted", "started", "step_started"]
        assert "could not decode the server's workflow.v1.ExecuteResponse" in info.value.message
        assert "simulated: undecodable response" in info.value.message
        # Only that stream failed: the client still works.
        assert within(HANG, lambda: c.run(echo_wf, input={"y": 1})).output == {"y": 1}


@pytest.mark.asyncio
async def test_async_undecodable_event_raises_internal_error(
    server: WfmServer, echo_wf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_wire, "parse", _failing_parse)
    async with AsyncClient(server.target, timeout=10) as client:
        with pytest.raises(InternalError) as info:
            await asyncio.wait_for(client.run(echo_wf, input={"blob": "x" * 300}, timeout=10), HANG)
        assert "could not decode the server's workflow.v1.ExecuteResponse" in info.value.message
        result = await asyncio.wait_for(client.run(echo_wf, input={"y": 1}, timeout=10), HANG)
        assert result.output == {"y": 1}


# -- offline: the decoder ----------------------------------------------------------------


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    out = bytearray([number << 3 | 2])
    n = len(payload)
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out) + payload


def _step_completed_response(depth: int) -> bytes:
    """ExecuteResponse{event{execution_id: "e1", step_completed{output: {"a": {"a": ... "leaf"}}}}}."""
    value = _field(3, b"leaf")  # Value.string_value
    for _ in range(depth):
        value = _field(5, _field(1, _field(1, b"a") + _field(2, value)))  # Value.struct_value
    step_completed = _field(1, b"echo") + _field(2, value)
    return _field(1, _field(1, b"e1") + _field(15, step_completed))


def test_decoder_reads_past_protobufs_depth_limit_and_names_what_it_cannot() -> None:
    deserialize = _wire.deserializer(pb.ExecuteResponse)
    for depth in (1, 40, 200):
        data = _step_completed_response(depth)
        if depth >= 40:
            with pytest.raises(DecodeError):
                pb.ExecuteResponse.FromString(data)  # what the generated stub does
        msg = deserialize(data)
        assert isinstance(msg, pb.ExecuteResponse)
        event = wfm_client.Event.from_proto(msg.event)
        assert (event.execution_id, event.kind, event.step_id) == ("e1", "step_completed", "echo")
        assert depth_of(event.output) == depth
        assert msg.SerializeToString() == data

    too_deep = deserialize(_step_completed_response(2000))
    assert isinstance(too_deep, _wire.Undecodable)
    err = too_deep.to_error()
    assert isinstance(err, InternalError)
    assert "nested too deeply" in err.message and "levels of nested JSON objects" in err.message

    garbage = deserialize(b"\x0a\xff")
    assert isinstance(garbage, _wire.Undecodable)
