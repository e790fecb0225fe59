"""The synchronous client against a real `wfm serve` process."""

from __future__ import annotations

import datetime as dt
import pickle
import threading
import uuid
from typing import Any

import grpc
import pytest

import wfm_client
from wfm_client import (
    Client,
    ExecutionStatus,
    InvalidArgumentError,
    NotFoundError,
    StepStatus,
    WfmError,
    pb,
)

from .conftest import WfmServer, start_server

ECHO_KINDS = ["accepted", "started", "step_started", "step_completed", "completed"]


class _Recorder(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Records the method and metadata of every call made through a channel."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []

    def _record(self, details: Any) -> None:
        self.calls.append((details.method, dict(details.metadata or ())))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._record(details)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._record(details)
        return continuation(details, request)

    def count(self, rpc: str) -> int:
        return sum(1 for method, _ in self.calls if method == f"/workflow.v1.WorkflowService/{rpc}")


# -- workflows ---------------------------------------------------------------------


def test_register_and_get(client: Client, name: str) -> None:
    reg = client.register(name, type="echo", arguments={}, description="says it back", labels={"team": "a"})
    assert reg.created is True
    wf = reg.workflow
    assert (wf.name, wf.version, wf.type, wf.source) == (name, 1, "echo", "native")
    assert wf.labels == {"team": "a"}
    assert wf.arguments == {}
    assert wf.description == "says it back"
    assert isinstance(wf.create_time, dt.datetime) and wf.create_time.tzinfo is not None

    again = client.register(name, type="echo", arguments={}, description="says it back", labels={"team": "a"})
    assert again.created is False
    assert again.workflow.version == 1

    got = client.get(name)
    assert (got.name, got.version, got.type, got.labels) == (name, 1, "echo", {"team": "a"})
    assert got.versions == (1,)
    assert got.raw.native.type == "echo"


def test_register_new_version_and_get_by_version(client: Client, name: str) -> None:
    client.register(name, type="sleep", arguments={"default_duration_ms": 5})
    v2 = client.register(name, type="sleep", arguments={"default_duration_ms": 6})
    assert v2.created is True and v2.workflow.version == 2
    assert client.get(name).versions == (1, 2)
    assert client.get(name).arguments == {"default_duration_ms": 6}
    assert client.get(name, version=1).arguments == {"default_duration_ms": 5}
    with pytest.raises(NotFoundError):
        client.get(name, version=3)


def test_list_iterates_pages(server: WfmServer, name: str) -> None:
    label = {"suite": name}
    names = [f"{name}-{i}" for i in range(5)]
    recorder = _Recorder()
    channel = grpc.intercept_channel(grpc.insecure_channel(server.target), recorder)
    with Client(channel=channel, timeout=10) as c:
        for n in names:
            c.register(n, type="noop", labels=label)

        # By hand: pages of 2, 2 and 1, the last one without a token.
        sizes, token, seen = [], "", []
        while True:
            page = c.list_page(page_size=2, page_token=token, label_filter=label)
            sizes.append(len(page))
            seen += [w.name for w in page]
            token = page.next_page_token
            if not token:
                break
        assert sizes == [2, 2, 1]
        assert sorted(seen) == names

        # The iterator walks the same pages itself.
        before = recorder.count("List")
        listed = list(c.list(page_size=2, label_filter=label))
        assert recorder.count("List") - before == 3
        assert sorted(w.name for w in listed) == names
        assert all(w.labels == label and w.type == "noop" for w in listed)
    channel.close()


def test_list_without_filter_includes_registered(client: Client, name: str) -> None:
    client.register(name, type="noop")
    assert name in {w.name for w in client.list(page_size=2)}


def test_unregister(client: Client, name: str) -> None:
    client.register(name, type="noop")
    client.register(name, type="noop", labels={"v": "2"})
    assert client.unregister(name) == 2
    with pytest.raises(NotFoundError):
        client.get(name)
    with pytest.raises(NotFoundError):
        client.unregister(name)


# -- execute -------------------------------------------------------------------------


def test_execute_streams_events_in_order(client: Client, echo_wf: str) -> None:
    payload = {"x": 1, "text": "hi", "nested": {"list": [1, 2.5, None, True]}}
    events = list(client.execute(echo_wf, input=payload, metadata={"who": "test"}))

    assert [e.kind for e in events] == ECHO_KINDS
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert len({e.execution_id for e in events}) == 1
    accepted, started, step_started, step_completed, completed = events
    assert (accepted.workflow_name, accepted.workflow_version) == (echo_wf, 1)
    assert started.attempt == 1
    assert step_started.step_id == "echo"
    assert step_completed.step_id == "echo"
    assert step_completed.output == payload
    assert completed.is_terminal and not step_completed.is_terminal
    result = completed.result
    assert result is not None
    assert result.success is True
    assert result.steps_completed == 1
    assert result.output == payload
    assert [(s.step_id, s.status) for s in result.steps] == [("echo", StepStatus.COMPLETED)]
    assert all(e.time is not None for e in events)

    execution = client.get_execution(accepted.execution_id)
    assert execution.status is ExecutionStatus.COMPLETED
    assert execution.input == payload
    assert execution.metadata == {"who": "test"}
    assert execution.last_sequence == 5
    assert execution.result is not None and execution.result.output == payload


def test_server_ends_execute_stream_after_terminal_event(client: Client, echo_wf: str) -> None:
    # The raw generated stub: the server itself must close the stream after `completed`.
    responses = list(client.stub.Execute(pb.ExecuteRequest(name=echo_wf), timeout=10))
    assert [r.event.WhichOneof("kind") for r in responses] == ECHO_KINDS


def test_run_waits_for_result(client: Client, echo_wf: str) -> None:
    seen: list[str] = []
    result = client.run(echo_wf, input={"x": 1}, on_event=lambda e: seen.append(e.kind))
    assert result.success is True
    assert result.output == {"x": 1}
    assert result.error == ""
    assert seen == ECHO_KINDS


def test_run_failed_execution_returns_unsuccessful_result(client: Client) -> None:
    wf = f"analysis-{uuid.uuid4().hex[:8]}"
    client.register(wf, type="data_analysis")
    result = client.run(wf, input={"dataset": "no-such-dataset"})
    assert result.success is False
    assert "dataset 'no-such-dataset' is not configured" in result.error


def test_input_the_workflow_cannot_take_raises_invalid_argument(client: Client, sleep_wf: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        client.run(sleep_wf, input={"duration_ms": "not a number"})
    assert "duration_ms" in info.value.message or "u64" in info.value.message


def test_unknown_workflow_raises_not_found(client: Client) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(NotFoundError) as info:
        client.get(missing)
    assert info.value.code is grpc.StatusCode.NOT_FOUND
    assert isinstance(info.value, WfmError)
    assert missing in info.value.message
    with pytest.raises(NotFoundError):
        list(client.execute(missing, input={}))
    with pytest.raises(NotFoundError):
        client.run(missing)
    with pytest.raises(NotFoundError):
        client.start_execution(missing)
    with pytest.raises(NotFoundError):
        client.get_execution(str(uuid.uuid4()))


def test_too_large_input_raises_invalid_argument(limited_server: WfmServer) -> None:
    with Client(limited_server.target, timeout=10) as c:
        wf = f"echo-{uuid.uuid4().hex[:8]}"
        c.register(wf, type="echo")
        big = {"blob": "x" * 2000}
        with pytest.raises(InvalidArgumentError) as info:
            c.run(wf, input=big)
        assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(InvalidArgumentError):
            c.start_execution(wf, input=big)
        # Under the limit it runs.
        assert c.run(wf, input={"blob": "x" * 100}).success


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"name": "bad name!", "type": "echo"}, id="bad-name"),
        pytest.param({"name": "fine-name", "type": "no-such-type"}, id="unknown-type"),
        pytest.param({"name": "fine-name", "type": "echo", "arguments": {"unexpected": 1}}, id="bad-arguments"),
    ],
)
def test_invalid_register_raises_invalid_argument(client: Client, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        client.register(**kwargs)


# -- start / watch / cancel ------------------------------------------------------------


def test_start_then_watch_after_sequence(client: Client, sleep_wf: str) -> None:
    started = client.start_execution(sleep_wf, input={"duration_ms": 300})
    assert started.created is True
    # Watched while it runs: only events after sequence 2, followed live to the end.
    events = list(client.watch_execution(started.execution_id, after_sequence=2))
    assert events, "no events after sequence 2"
    assert all(e.sequence > 2 for e in events)
    assert [e.sequence for e in events] == list(range(3, 3 + len(events)))
    assert events[0].kind == "step_started" and events[0].step_id == "sleep"
    assert events[-1].kind == "completed"
    assert events[-1].result is not None and events[-1].result.success

    # Replayed once it is over: the same events.
    replay = list(client.watch_execution(started.execution_id, after_sequence=2))
    assert [(e.sequence, e.kind) for e in replay] == [(e.sequence, e.kind) for e in events]
    assert [e.sequence for e in client.watch_execution(started.execution_id)][:2] == [1, 2]
    assert client.get_execution(started.execution_id).last_sequence == events[-1].sequence


def test_wait_returns_result_of_started_execution(client: Client, echo_wf: str) -> None:
    started = client.start_execution(echo_wf, input={"k": "v"})
    result = client.wait(started.execution_id)
    assert result.success and result.output == {"k": "v"}


def test_cancel_sleep_execution(client: Client, sleep_wf: str) -> None:
    started = client.start_execution(sleep_wf, input={"duration_ms": 30_000})
    seen: list[str] = []
    with client.watch_execution(started.execution_id, timeout=20) as stream:
        for event in stream:
            seen.append(event.kind)
            if event.kind == "step_started":
                status = client.cancel_execution(started.execution_id, reason="test says stop")
                assert status is ExecutionStatus.CANCELLED
        last = stream.last_event
    assert last is not None and last.kind == "cancelled"
    assert seen[-1] == "cancelled" and "step_started" in seen
    assert last.reason == "test says stop"
    assert last.result is not None and last.result.success is False

    execution = client.get_execution(started.execution_id)
    assert execution.status is ExecutionStatus.CANCELLED
    assert execution.end_time is not None
    # Idempotent: cancelling again reports the same terminal status.
    assert client.cancel_execution(started.execution_id) is ExecutionStatus.CANCELLED


def test_step_cut_short_by_cancel_is_step_cancelled(client: Client) -> None:
    name = f"cut-short-{uuid.uuid4().hex[:8]}"
    client.register(
        name, definition={"steps": [{"id": "nap", "tool": {"name": "sleep", "arguments": {"duration_ms": 60_000}}}]}
    )
    events: list[wfm_client.Event] = []
    with client.execute(name, timeout=20) as stream:
        for event in stream:
            events.append(event)
            if event.kind == "step_started" and event.step_id == "nap":
                client.cancel_execution(event.execution_id, reason="test cuts it short")
    kinds = [e.kind for e in events]
    assert kinds[-1] == "cancelled", kinds
    assert "step_failed" not in kinds, kinds
    [cut] = [e for e in events if e.kind == "step_cancelled"]
    assert (cut.step_id, cut.attempt, cut.reason) == (
        "nap",
        1,
        "the execution was cancelled while the step ran",
    )
    assert cut.error is None and cut.will_retry is None


def test_cancel_finished_execution_reports_its_status(client: Client, echo_wf: str) -> None:
    started = client.start_execution(echo_wf, input={})
    client.wait(started.execution_id)
    assert client.cancel_execution(started.execution_id) is ExecutionStatus.COMPLETED


def test_request_id_is_idempotent(client: Client, echo_wf: str) -> None:
    key = uuid.uuid4().hex
    first = client.start_execution(echo_wf, input={"n": 1}, request_id=key)
    second = client.start_execution(echo_wf, input={"n": 1}, request_id=key)
    assert first.created is True and second.created is False
    assert first.execution_id == second.execution_id
    assert client.get_execution(first.execution_id).request_id == key


def test_list_executions_pages_and_filters(client: Client, name: str) -> None:
    client.register(name, type="echo")
    ids = [client.start_execution(name, input={"i": i}).execution_id for i in range(5)]
    for i in ids:
        client.wait(i)
    page = client.list_executions_page(workflow_name=name, page_size=2)
    assert len(page) == 2 and page.next_page_token

    listed = list(client.list_executions(workflow_name=name, page_size=2))
    assert sorted(e.id for e in listed) == sorted(ids)
    assert all(e.workflow_name == name for e in listed)
    times = [e.create_time for e in listed if e.create_time is not None]
    assert len(times) == 5 and times == sorted(times, reverse=True)  # newest first

    done = list(client.list_executions(workflow_name=name, status=ExecutionStatus.COMPLETED))
    assert len(done) == 5
    assert list(client.list_executions(workflow_name=name, status=ExecutionStatus.FAILED)) == []
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    assert list(client.list_executions(workflow_name=name, create_time_start=future)) == []
    assert len(list(client.list_executions(workflow_name=name, create_time_end=future))) == 5


def test_data_analysis_workflow(client: Client, server: WfmServer, name: str) -> None:
    datasets = server.data_dir / "datasets"
    datasets.mkdir(exist_ok=True)
    (datasets / "sales.csv").write_text("region,amount\nnorth,10\nsouth,20\neast,30\n")
    client.register(name, type="data_analysis", arguments={"required_datasets": ["sales"]})
    steps = [e.step_id for e in client.execute(name, input={"dataset": "sales"}) if e.kind == "step_completed"]
    assert steps == ["load", "validate", "analyze", "report"]
    result = client.run(name, input={"dataset": "sales"})
    assert result.success is True
    assert result.output["columns"]["amount"]["mean"] == 20


# -- server ----------------------------------------------------------------------------


def test_list_workflow_types_and_tools(client: Client) -> None:
    types = {t.name: t for t in client.list_workflow_types()}
    assert {"echo", "noop", "sleep", "data_analysis"} <= set(types)
    schema = types["data_analysis"].arguments_schema
    assert schema is not None and "max_dataset_size" in schema["properties"]
    tools = client.list_tools()
    assert tools and any(t.server == "builtin" for t in tools)


def test_stats_count_executions(client: Client, echo_wf: str) -> None:
    before = client.get_stats(echo_wf).workflows[0]
    assert client.run(echo_wf, input={"a": 1}).success
    stats = client.get_stats(echo_wf)
    assert stats.since is not None
    [after] = stats.workflows
    assert after.workflow_name == echo_wf
    assert after.started == before.started + 1
    assert after.succeeded == before.succeeded + 1
    assert after.p50_duration is not None and after.p99_duration is not None
    assert after.p50_duration <= after.p99_duration
    assert echo_wf in {w.workflow_name for w in client.get_stats().workflows}


def test_token_and_metadata_are_sent(server: WfmServer, echo_wf: str) -> None:
    recorder = _Recorder()
    channel = grpc.intercept_channel(grpc.insecure_channel(server.target), recorder)
    with Client(channel=channel, token="s3cret", metadata=[("x-trace", "abc")], timeout=10) as c:
        c.get(echo_wf)
        assert c.run(echo_wf, input={"a": 1}).success
    channel.close()
    assert {m for m, _ in recorder.calls} == {
        "/workflow.v1.WorkflowService/Get",
        "/workflow.v1.WorkflowService/Execute",
    }
    for _, md in recorder.calls:
        assert md["authorization"] == "Bearer s3cret"
        assert md["x-trace"] == "abc"


def test_url_targets(server: WfmServer) -> None:
    with Client(f"http://{server.target}", timeout=10) as c:
        assert c.list_workflow_types()


def test_unreachable_server_raises_unavailable() -> None:
    with Client("127.0.0.1:1", timeout=5) as c:
        with pytest.raises(wfm_client.UnavailableError):
            c.list_workflow_types()


def test_shutdown_exits_zero(tmp_path: Any) -> None:
    srv = start_server(tmp_path)
    try:
        with Client(srv.target, timeout=10) as c:
            c.register("napper", type="sleep")
            c.start_execution("napper", input={"duration_ms": 60_000})
            result = c.shutdown(grace_period=dt.timedelta(milliseconds=200))
        assert (result.finished_during_grace, result.cancelled) == (0, 1)
        assert srv.proc.wait(timeout=15) == 0, srv.log()
    finally:
        srv.stop()


def test_shutdown_resume_unfinished_leaves_execution_to_next_server(tmp_path: Any) -> None:
    srv = start_server(tmp_path)
    try:
        with Client(srv.target, timeout=10) as c:
            c.register("napper", type="sleep")
            execution_id = c.start_execution("napper", input={"duration_ms": 3_000}).execution_id
            result = c.shutdown(grace_period=dt.timedelta(milliseconds=200), resume_unfinished=True)
        assert result == wfm_client.ShutdownResult(finished_during_grace=0, cancelled=0, left_to_resume=1)
        assert srv.proc.wait(timeout=15) == 0, srv.log()
    finally:
        srv.stop()

    # The next server on the same data directory picks the execution up and finishes it.
    srv = start_server(tmp_path)
    try:
        with Client(srv.target, timeout=10) as c:
            result = c.wait(execution_id, timeout=30)
            assert result.success is True, result.error
            assert result.output == {"slept_ms": 3_000}
            assert c.get_execution(execution_id).status is ExecutionStatus.COMPLETED
            # Explicitly False: cancelled, whatever the server's configured default.
            c.start_execution("napper", input={"duration_ms": 60_000})
            result = c.shutdown(grace_period=0.2, resume_unfinished=False)
        assert (result.finished_during_grace, result.cancelled, result.left_to_resume) == (0, 1, 0)
        assert srv.proc.wait(timeout=15) == 0, srv.log()
    finally:
        srv.stop()


def test_shutdown_request_leaves_resume_unfinished_unset_by_default() -> None:
    # None: the server's configured `shutdown_unfinished` decides (the field is optional).
    assert not wfm_client._requests.shutdown(None, None).HasField("resume_unfinished")
    assert not wfm_client._requests.shutdown(1.5, None).HasField("resume_unfinished")
    assert wfm_client._requests.shutdown(None, False).HasField("resume_unfinished")
    assert wfm_client._requests.shutdown(None, True).resume_unfinished is True


# -- offline: conversions, errors, enums -------------------------------------------------


def test_struct_round_trip() -> None:
    value = {"i": 3, "f": 2.5, "s": "x", "b": False, "n": None, "l": [1, {"a": []}], "d": {}}
    assert wfm_client.struct_to_dict(wfm_client.to_struct(value)) == value
    assert wfm_client.value_to_py(wfm_client.py_to_value((1, 2))) == [1, 2]
    with pytest.raises(TypeError):
        wfm_client.to_struct({"when": dt.datetime.now()})
    with pytest.raises(TypeError):
        wfm_client.to_struct({1: "non-str key"})  # type: ignore[dict-item]


def test_errors_map_codes_and_pickle() -> None:
    for code, cls in [
        (grpc.StatusCode.NOT_FOUND, wfm_client.NotFoundError),
        (grpc.StatusCode.INVALID_ARGUMENT, wfm_client.InvalidArgumentError),
        (grpc.StatusCode.ALREADY_EXISTS, wfm_client.AlreadyExistsError),
        (grpc.StatusCode.FAILED_PRECONDITION, wfm_client.FailedPreconditionError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, wfm_client.ResourceExhaustedError),
        (grpc.StatusCode.UNAVAILABLE, wfm_client.UnavailableError),
        (grpc.StatusCode.PERMISSION_DENIED, wfm_client.PermissionDeniedError),
        (grpc.StatusCode.UNAUTHENTICATED, wfm_client.UnauthenticatedError),
    ]:
        err = wfm_client.error_from_code(code, "boom")
        assert type(err) is cls and err.code is code and err.message == "boom"
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is cls and again.code is code and again.message == "boom"
    other = wfm_client.error_from_code(grpc.StatusCode.DATA_LOSS, "lost")
    assert type(other) is WfmError and str(other) == "DATA_LOSS: lost"


def test_enums_match_proto() -> None:
    for enum_cls, proto_enum, prefix in [
        (ExecutionStatus, pb.ExecutionStatus, "EXECUTION_STATUS_"),
        (StepStatus, pb.StepStatus, "STEP_STATUS_"),
    ]:
        proto = {name.removeprefix(prefix): number for name, number in proto_enum.items()}
        assert {m.name: m.value for m in enum_cls} == proto
    assert ExecutionStatus(42).name == "UNKNOWN_42"


def test_event_stream_cancel_stops_iteration(client: Client, sleep_wf: str) -> None:
    stream = client.execute(sleep_wf, input={"duration_ms": 30_000})
    first = next(stream)
    assert first.kind == "accepted"
    stream.cancel()
    assert list(stream) == []
    client.cancel_execution(first.execution_id)


def test_stream_deadline_raises_and_execution_goes_on(client: Client, sleep_wf: str) -> None:
    events = []
    with pytest.raises(wfm_client.DeadlineExceededError):
        for event in client.execute(sleep_wf, input={"duration_ms": 30_000}, timeout=0.5):
            events.append(event)
    assert events and events[0].kind == "accepted"
    # Only the client's stream ended: the execution itself still runs until cancelled.
    execution_id = events[0].execution_id
    assert client.get_execution(execution_id).status is ExecutionStatus.RUNNING
    assert client.cancel_execution(execution_id) is ExecutionStatus.CANCELLED


def test_client_shared_between_threads(client: Client, echo_wf: str) -> None:
    results: list[bool] = []

    def work(i: int) -> None:
        results.append(client.run(echo_wf, input={"i": i}).output == {"i": i})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [True] * 8


def test_messages_over_4_mib(tmp_path: Any) -> None:
    """A server whose limits.max_message_bytes is above gRPC's default 4 MiB receive limit."""
    srv = start_server(
        tmp_path,
        {
            "WFM_LIMITS__MAX_MESSAGE_BYTES": str(32 << 20),
            "WFM_LIMITS__MAX_INPUT_BYTES": str(6 << 20),
            "WFM_LIMITS__MAX_OUTPUT_BYTES": str(16 << 20),  # the result: output and step output
        },
    )
    try:
        blob = "x" * (5 << 20)
        with Client(srv.target, timeout=30) as c:
            c.register("big", type="echo")
            started = c.start_execution("big", input={"blob": blob})
            assert c.wait(started.execution_id).output == {"blob": blob}
            assert c.get_execution(started.execution_id).input == {"blob": blob}
        # A limit of the caller's own still applies.
        with Client(srv.target, timeout=30, options=[("grpc.max_receive_message_length", 1 << 20)]) as c:
            with pytest.raises(wfm_client.ResourceExhaustedError):
                c.run("big", input={"blob": blob})
    finally:
        srv.stop()
