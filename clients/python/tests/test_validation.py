"""What the client refuses before sending: InvalidArgumentError naming where the value is."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

import wfm_client
from wfm_client import AsyncClient, Client, InvalidArgumentError, WfmError

from .conftest import WfmServer

BEYOND = "is beyond ±2^53: JSON numbers travel as doubles and it would arrive changed; send it as a string"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"input": {"user": {"n": 2**53 + 1}}}, f"input.user.n: 9007199254740993 {BEYOND}", id="2^53+1"),
        pytest.param({"input": {"n": -(2**53) - 1}}, f"input.n: -9007199254740993 {BEYOND}", id="negative"),
        pytest.param(
            {"input": {}, "metadata": {"ids": [1, 2**64]}}, f"metadata.ids[1]: 18446744073709551616 {BEYOND}", id="2^64"
        ),
        pytest.param({"input": {"big": 10**400}}, f"input.big: 1{'0' * 400} {BEYOND}", id="10^400"),
        pytest.param({"input": {"a b": {"x": 2**60}}}, f'input["a b"].x: {2**60} {BEYOND}', id="quoted-key"),
        pytest.param(
            {"input": {}, "metadata": {"d": dt.datetime(2026, 1, 2)}},
            "metadata.d: datetime is not JSON",
            id="datetime",
        ),
        pytest.param({"input": {"x": [math.nan]}}, "input.x[0]: nan is not JSON", id="nan"),
        pytest.param({"input": {1: "non-str key"}}, "input: keys must be str, got int", id="int-key"),
    ],
)
def test_values_that_would_not_arrive_as_given_are_refused(
    client: Client, echo_wf: str, kwargs: dict[str, Any], message: str
) -> None:
    for call in (client.run, client.start_execution, lambda *a, **k: list(client.execute(*a, **k))):
        with pytest.raises(InvalidArgumentError) as info:
            call(echo_wf, **kwargs)
        assert isinstance(info.value, WfmError)
        assert info.value.message.startswith(message), info.value.message
    with pytest.raises(InvalidArgumentError, match="^INVALID_ARGUMENT: arguments.n: "):
        client.register("never-registered", type="echo", arguments={"n": 2**53 + 1})


def test_integers_up_to_2_53_and_floats_arrive_as_given(client: Client, echo_wf: str) -> None:
    value = {"max": 2**53, "min": -(2**53), "f": 1e300, "g": float(2**60), "frac": 0.5}
    assert client.run(echo_wf, input=value, metadata=value).output == value


@pytest.mark.asyncio
async def test_async_client_refuses_them_too(server: WfmServer) -> None:
    async with AsyncClient(server.target, timeout=10) as c:
        with pytest.raises(InvalidArgumentError, match=r"input\.n: 9007199254740993 is beyond"):
            await c.start_execution("any", input={"n": 2**53 + 1})


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        pytest.param(
            {"steps": [{"id": "a", "tol": {"name": "sleep"}}]},
            "definition.steps[0]: unknown field 'tol' (fields: id, depends_on, tool, workflow, when, for_each, "
            "max_parallel, retry, timeout, continue_on_error)",
            id="unknown-field",
        ),
        pytest.param(
            {"steps": [{"id": "a", "tool": {"name": "sleep"}, "retry": {"maximum_atempts": 3}}]},
            "definition.steps[0].retry: unknown field 'maximum_atempts' (fields: initial_interval, ",
            id="unknown-retry-field",
        ),
        pytest.param(
            {"steps": [{"id": "a", "tool": {"name": "sleep"}, "max_parallel": "3"}]},
            "definition.steps[0].max_parallel: expected an integer, got str",
            id="wrong-type",
        ),
        pytest.param(
            {"steps": [{"id": "a", "tool": {"name": "sleep", "arguments": {"n": 2**53 + 1}}}]},
            f"definition.steps[0].tool.arguments.n: 9007199254740993 {BEYOND}",
            id="big-argument",
        ),
        pytest.param(
            {"steps": [{"id": "a", "tool": {"name": "sleep"}}], "output": {"at": dt.date(2026, 1, 1)}},
            "definition.output.at: date is not JSON",
            id="output-not-json",
        ),
        pytest.param(
            {"steps": [{"id": "a", "tool": {"name": "sleep"}, "workflow": {"name": "b"}}]},
            "definition.steps[0]: give one of tool and workflow, not both",
            id="two-actions",
        ),
    ],
)
def test_malformed_definition_is_an_invalid_argument_error(
    client: Client, name: str, definition: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        client.register(name, definition=definition)
    assert info.value.message.startswith(message), info.value.message
    # As before this error class existed, it is also a ValueError (and a TypeError).
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    with pytest.raises(InvalidArgumentError):
        wfm_client.to_definition(definition)
