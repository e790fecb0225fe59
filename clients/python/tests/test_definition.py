"""Declarative workflows (``register(definition=...)``) against a real `wfm serve` process."""

from __future__ import annotations

import copy
import datetime as dt
import typing
import uuid
from typing import Any

import grpc
import pytest
import yaml

import wfm_client
from wfm_client import (
    AsyncClient,
    Client,
    FailedPreconditionError,
    InvalidArgumentError,
    StepStatus,
    pb,
)

from .conftest import REPO_ROOT, WfmServer

FAN_OUT_INPUT = {"numbers": [3, 1, 4, 1, 5], "threshold": 10}
FAN_OUT_OUTPUT = {"squares": [9, 1, 16, 1, 25], "total": 52, "message": "sum of squares is 52", "celebrated": True}


def fan_out_file() -> dict[str, Any]:
    """examples/fan-out.yaml, as `wfm register -f` reads it."""
    with open(REPO_ROOT / "examples" / "fan-out.yaml") as f:
        spec: dict[str, Any] = yaml.safe_load(f)
    return spec


def without_file_keys(spec: dict[str, Any]) -> dict[str, Any]:
    """The definition part of a definition file: what ``Workflow.definition`` holds."""
    return {k: v for k, v in spec.items() if k not in ("name", "description", "labels", "max_concurrency")}


def test_register_example_file_and_run_it(client: Client, name: str) -> None:
    spec = fan_out_file()
    reg = client.register(name, definition=spec)  # the name given here wins over the file's
    assert reg.created is True
    wf = reg.workflow
    assert (wf.name, wf.version, wf.source) == (name, 1, "definition")
    assert (wf.type, wf.arguments) == (None, None)
    assert wf.description == spec["description"]
    assert wf.labels == {"example": "true"}

    events: list[wfm_client.Event] = []
    result = client.run(name, input=FAN_OUT_INPUT, on_event=events.append)
    assert result.success is True, result.error
    assert result.output == FAN_OUT_OUTPUT
    assert [(s.step_id, s.status) for s in result.steps] == [
        ("square", StepStatus.COMPLETED),
        ("total", StepStatus.COMPLETED),
        ("celebrate", StepStatus.COMPLETED),
    ]
    assert [e.output for e in events if e.kind == "step_completed" and e.step_id == "total"] == [52]

    # Under the threshold, `celebrate` is skipped, not failed.
    small = client.run(name, input={"numbers": [1, 2], "threshold": 10})
    assert small.success is True
    assert small.output == {"squares": [1, 4], "total": 5, "message": "sum of squares is 5", "celebrated": False}
    assert small.steps_skipped == 1


def test_definition_round_trips_through_get_and_list(client: Client, name: str) -> None:
    spec = fan_out_file()
    client.register(name, definition=spec)
    got = client.get(name)
    assert got.source == "definition"
    assert got.definition == without_file_keys(spec)
    assert got.versions == (1,)
    [listed] = [w for w in client.list(label_filter={"example": "true"}) if w.name == name]
    assert listed.definition == got.definition
    # What comes back registers as the same content: no new version.
    again = client.register(name, definition=got.definition, description=got.description, labels=got.labels)
    assert again.created is False and again.workflow.version == 1


def test_every_field_round_trips(client: Client, echo_wf: str, name: str) -> None:
    definition: dict[str, Any] = {
        "input_schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
        "steps": [
            {
                "id": "child",
                "workflow": {"name": echo_wf, "version": 1, "input": {"n": "{{ input.n }}", "fixed": [1, 2.5]}},
                "retry": {
                    "initial_interval": dt.timedelta(milliseconds=1500),
                    "backoff_coefficient": 1.5,
                    "maximum_interval": "1m",
                    "maximum_attempts": 4,
                    "non_retryable_error_types": ["InvalidArguments"],
                },
                "timeout": 30,
            },
            {
                "id": "each",
                "depends_on": ["child"],
                "for_each": "{{ steps.child.output.fixed }}",
                "max_parallel": 2,
                "when": "input.n > 0",
                "continue_on_error": True,
                "tool": {"name": "sleep", "arguments": {"duration_ms": 1}},
            },
        ],
        "output": {"n": "{{ steps.child.output.n }}", "each": "{{ steps.each.status }}"},
    }
    wf = client.register(name, definition=definition, max_concurrency=3).workflow
    assert wf.max_concurrency == 3
    # Durations come back as strings, in the largest unit that keeps them whole.
    expected = copy.deepcopy(definition)
    expected["steps"][0]["retry"]["initial_interval"] = "1500ms"
    expected["steps"][0]["timeout"] = "30s"
    assert client.get(name).definition == expected

    result = client.run(name, input={"n": 7})
    assert result.success is True, result.error
    assert result.output == {"n": 7, "each": "completed"}


def test_register_needs_exactly_one_of_type_and_definition(client: Client, name: str) -> None:
    definition = {"steps": [{"id": "a", "tool": {"name": "sleep", "arguments": {"duration_ms": 1}}}]}
    with pytest.raises(ValueError, match="exactly one of type= .* or definition="):
        client.register(name, type="echo", definition=definition)
    with pytest.raises(ValueError, match="exactly one of type= .* or definition="):
        client.register(name)
    with pytest.raises(ValueError, match="arguments= goes with type="):
        client.register(name, definition=definition, arguments={"x": 1})
    with pytest.raises(wfm_client.NotFoundError):
        client.get(name)  # nothing was sent


@pytest.mark.parametrize(
    ("steps", "in_message"),
    [
        pytest.param([{"id": "a", "depends_on": ["zz"], "tool": {"name": "sleep"}}], "'zz'", id="unknown-dependency"),
        pytest.param(
            [
                {"id": "a", "depends_on": ["b"], "tool": {"name": "sleep"}},
                {"id": "b", "depends_on": ["a"], "tool": {"name": "sleep"}},
            ],
            "cycle",
            id="cycle",
        ),
        pytest.param([{"id": "a"}], "has no action", id="no-action"),
        pytest.param([], "at least one step", id="no-steps"),
        pytest.param([{"id": "a", "max_parallel": -1, "tool": {"name": "sleep"}}], "max_parallel", id="negative"),
    ],
)
def test_bad_definition_raises_invalid_argument(
    client: Client, name: str, steps: list[dict[str, Any]], in_message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        client.register(name, definition={"steps": steps})
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert in_message in info.value.message


def test_definition_needing_what_the_server_lacks_raises_failed_precondition(client: Client, name: str) -> None:
    with pytest.raises(FailedPreconditionError) as info:
        client.register(name, definition={"steps": [{"id": "a", "tool": {"name": "no_such_tool"}}]})
    assert "no_such_tool" in info.value.message


def test_definition_without_name_raises_invalid_argument(client: Client) -> None:
    spec = without_file_keys(fan_out_file())
    with pytest.raises(InvalidArgumentError, match="name"):
        client.register(definition=spec)


def test_input_violating_the_schema_raises_invalid_argument(client: Client, name: str) -> None:
    client.register(name, definition=fan_out_file())
    with pytest.raises(InvalidArgumentError) as info:
        client.run(name, input={"numbers": ["x"], "threshold": "high"})
    assert "/numbers/0" in info.value.message and "/threshold" in info.value.message


@pytest.mark.parametrize(
    ("definition", "error", "in_message"),
    [
        pytest.param({"steps": [{"id": "a", "bogus": 1}]}, ValueError, "bogus", id="unknown-step-key"),
        pytest.param({"steps": [], "extra": 1}, ValueError, "extra", id="unknown-key"),
        pytest.param(
            {"steps": [{"id": "a", "timeout": "5 parsecs"}]}, ValueError, "definition.steps[0].timeout", id="duration"
        ),
        pytest.param(
            {"steps": [{"id": "a", "retry": {"initial_interval": "1M"}}]}, ValueError, "unknown unit 'M'", id="unit"
        ),
        pytest.param({"steps": [{"id": "a", "timeout": [1]}]}, TypeError, "timeout", id="duration-type"),
        pytest.param({"steps": "a"}, ValueError, "steps", id="steps-not-a-list"),
        pytest.param(["steps"], TypeError, "expected a dict", id="not-a-dict"),
    ],
)
def test_malformed_definition_is_refused_before_sending(
    client: Client, name: str, definition: Any, error: type[Exception], in_message: str
) -> None:
    with pytest.raises(error) as info:
        client.register(name, definition=definition)
    assert in_message in str(info.value)


def test_wait_after_sequence(client: Client, name: str) -> None:
    client.register(name, definition=fan_out_file())
    started = client.start_execution(name, input=FAN_OUT_INPUT)
    seen: list[int] = []
    result = client.wait(started.execution_id, after_sequence=2, on_event=lambda e: seen.append(e.sequence))
    assert result.success and result.output == FAN_OUT_OUTPUT
    last = client.get_execution(started.execution_id).last_sequence
    assert seen == list(range(3, last + 1))
    # After the last event there is nothing left to replay: the result comes from the record.
    assert client.wait(started.execution_id, after_sequence=last).output == FAN_OUT_OUTPUT


@pytest.mark.asyncio
async def test_async_register_definition_and_wait(server: WfmServer) -> None:
    wf = f"aio-def-{uuid.uuid4().hex[:8]}"
    async with AsyncClient(server.target, timeout=10) as client:
        with pytest.raises(ValueError):
            await client.register(wf)
        reg = await client.register(wf, definition=fan_out_file())
        assert reg.created and reg.workflow.definition == without_file_keys(fan_out_file())
        assert (await client.run(wf, input=FAN_OUT_INPUT)).output == FAN_OUT_OUTPUT
        started = await client.start_execution(wf, input=FAN_OUT_INPUT)
        result = await client.wait(started.execution_id, after_sequence=1)
        assert result.output == FAN_OUT_OUTPUT
        last = (await client.get_execution(started.execution_id)).last_sequence
        assert (await client.wait(started.execution_id, after_sequence=last)).success
        with pytest.raises(InvalidArgumentError):
            await client.register(wf, definition={"steps": []})


# -- offline -------------------------------------------------------------------------


def test_definition_message_converts_both_ways() -> None:
    spec = without_file_keys(fan_out_file())
    message = wfm_client.to_definition(spec)
    assert isinstance(message, pb.WorkflowDefinition)
    assert message.steps[0].retry.initial_interval.ToMilliseconds() == 200
    assert message.steps[0].timeout.seconds == 5
    assert wfm_client.definition_to_dict(message) == spec
    assert wfm_client.to_definition(message) == message  # a message is taken as it is
    assert spec == without_file_keys(fan_out_file())  # the dict given is not changed


@pytest.mark.parametrize(
    ("text", "nanos", "shown"),
    [
        ("200ms", 200_000_000, "200ms"),
        ("5s", 5 * 10**9, "5s"),
        ("1m 30s", 90 * 10**9, "90s"),
        ("1h30m", 5400 * 10**9, "90m"),
        ("0.2s", 200_000_000, "200ms"),
        ("1.5s", 1_500_000_000, "1500ms"),
        ("2 hours", 7200 * 10**9, "2h"),
        ("10us", 10_000, "10us"),
        ("7ns", 7, "7ns"),
    ],
)
def test_durations(text: str, nanos: int, shown: str) -> None:
    from wfm_client._definition import format_duration, parse_duration

    d = parse_duration(text)
    assert d.ToNanoseconds() == nanos
    assert format_duration(d) == shown
    assert parse_duration(shown).ToNanoseconds() == nanos


def test_event_kinds_match_proto() -> None:
    oneof = pb.ExecutionEvent.DESCRIPTOR.oneofs_by_name["kind"]
    assert set(typing.get_args(wfm_client.EventKind)) == {f.name for f in oneof.fields} | {"unknown"}
    assert wfm_client.TERMINAL_EVENT_KINDS <= set(typing.get_args(wfm_client.EventKind))
