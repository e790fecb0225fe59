"""Declarative workflow definitions: plain dicts <-> ``workflow.v1.WorkflowDefinition``.

The dict has the shape ``wfm register -f`` reads from YAML or JSON (see examples/):
``steps``, ``input_schema`` and ``output``. Each step has an ``id``, ``depends_on``, one
action (``tool: {name, arguments}`` or ``workflow: {name, version, input}``), ``when``,
``for_each``, ``max_parallel``, ``retry`` (``initial_interval``, ``backoff_coefficient``,
``maximum_interval``, ``maximum_attempts``, ``non_retryable_error_types``), ``timeout``
and ``continue_on_error``. Durations are strings as in the YAML files (``"200ms"``,
``"5s"``, ``"1m 30s"``; the proto JSON form ``"0.2s"`` works too), ``timedelta`` objects
or numbers of seconds. Everything else follows the protobuf message's JSON mapping.
"""

from __future__ import annotations

import datetime as _dt
import numbers
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from google.protobuf import duration_pb2, json_format

from ._convert import struct_to_dict, to_duration, value_to_py
from ._gen.workflow.v1 import workflow_service_pb2 as pb

__all__ = ["FILE_KEYS", "to_definition", "definition_to_dict", "parse_duration", "format_duration"]

#: Keys of a definition file (``wfm register -f``) that are the registration's, not the definition's.
FILE_KEYS = ("name", "description", "labels", "max_concurrency")

_NS_PER_UNIT = {
    **dict.fromkeys(("ns", "nsec", "nanos", "nanosecond", "nanoseconds"), 1),
    **dict.fromkeys(("us", "µs", "usec", "micros", "microsecond", "microseconds"), 10**3),
    **dict.fromkeys(("ms", "msec", "millis", "millisecond", "milliseconds"), 10**6),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 10**9),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60 * 10**9),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600 * 10**9),
    **dict.fromkeys(("d", "day", "days"), 86400 * 10**9),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86400 * 10**9),
}
_DURATION_RE = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[A-Za-zµ]+)+\s*")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-zµ]+)")
# (snake_case, camelCase) names of the Duration fields, which ParseDict only takes as "1.5s".
_STEP_DURATIONS = (("timeout", "timeout"),)
_RETRY_DURATIONS = (("initial_interval", "initialInterval"), ("maximum_interval", "maximumInterval"))


def parse_duration(value: str | _dt.timedelta | float | int, path: str = "duration") -> duration_pb2.Duration:
    """``"200ms"``, ``"1m 30s"``, ``"0.2s"``, a timedelta or a number of seconds as a Duration."""
    if isinstance(value, _dt.timedelta):
        return to_duration(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return to_duration(float(value))
    if not isinstance(value, str):
        raise TypeError(f"{path}: expected a duration such as \"5s\", got {type(value).__name__}")
    if not _DURATION_RE.fullmatch(value):
        raise ValueError(f"{path}: {value!r} is not a duration such as \"200ms\", \"5s\" or \"1m 30s\"")
    nanos = Decimal(0)
    for number, unit in _DURATION_PART_RE.findall(value):
        if unit not in _NS_PER_UNIT:
            raise ValueError(f"{path}: unknown unit {unit!r} in {value!r} (ns, us, ms, s, m, h, d, w)")
        nanos += Decimal(number) * _NS_PER_UNIT[unit]
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(nanos))
    return out


def format_duration(d: duration_pb2.Duration) -> str:
    """A Duration as one number and the largest unit that keeps it whole: ``"200ms"``, ``"5s"``, ``"2m"``."""
    nanos = d.ToNanoseconds()
    if nanos < 0:
        return d.ToJsonString()
    for unit in ("h", "m", "s", "ms", "us"):
        if nanos % _NS_PER_UNIT[unit] == 0:
            return f"{nanos // _NS_PER_UNIT[unit]}{unit}"
    return f"{nanos}ns"


def _with_durations(obj: Any, names: tuple[tuple[str, str], ...], path: str) -> Any:
    """A copy of the mapping ``obj`` with its duration fields in the proto JSON form."""
    if not isinstance(obj, Mapping):
        return obj  # ParseDict reports it
    out = dict(obj)
    for snake, camel in names:
        for key in {snake, camel}:
            if key in out:
                out[key] = parse_duration(out[key], f"{path}.{snake}").ToJsonString()
    return out


def to_definition(obj: Mapping[str, Any] | pb.WorkflowDefinition) -> pb.WorkflowDefinition:
    """A definition dict (see the module's documentation) as a ``WorkflowDefinition``.

    Unknown keys and values of the wrong type raise ValueError (or TypeError) naming
    the field; the server checks the rest (ids, dependencies, templates, tools). A
    definition file's registration keys (:data:`FILE_KEYS`) are not part of the
    definition: ``register()`` takes them off first.
    """
    if isinstance(obj, pb.WorkflowDefinition):
        copy = pb.WorkflowDefinition()
        copy.CopyFrom(obj)
        return copy
    if not isinstance(obj, Mapping):
        raise TypeError(f"definition: expected a dict, got {type(obj).__name__}")
    data = dict(obj)
    steps = data.get("steps")
    if isinstance(steps, (list, tuple)):
        data["steps"] = [_step_with_durations(step, f"definition.steps[{i}]") for i, step in enumerate(steps)]
    try:
        return json_format.ParseDict(data, pb.WorkflowDefinition())
    except json_format.ParseError as e:
        raise ValueError(f"definition: {e}") from None


def _step_with_durations(step: Any, path: str) -> Any:
    step = _with_durations(step, _STEP_DURATIONS, path)
    if isinstance(step, dict) and "retry" in step:
        step["retry"] = _with_durations(step["retry"], _RETRY_DURATIONS, f"{path}.retry")
    return step


def definition_to_dict(m: pb.WorkflowDefinition) -> dict[str, Any]:
    """A ``WorkflowDefinition`` as the dict :func:`to_definition` takes, without default values.

    Durations come back as strings (``"200ms"``) and whole numbers as ``int``.
    """
    out: dict[str, Any] = {"steps": [_step_to_dict(s) for s in m.steps]}
    if m.HasField("input_schema"):
        out["input_schema"] = struct_to_dict(m.input_schema)
    if m.HasField("output"):
        out["output"] = value_to_py(m.output)
    return out


def _step_to_dict(s: pb.Step) -> dict[str, Any]:
    d: dict[str, Any] = {"id": s.id}
    if s.depends_on:
        d["depends_on"] = list(s.depends_on)
    action = s.WhichOneof("action")
    if action == "tool":
        d["tool"] = {"name": s.tool.name}
        if s.tool.HasField("arguments"):
            d["tool"]["arguments"] = struct_to_dict(s.tool.arguments)
    elif action == "workflow":
        d["workflow"] = {"name": s.workflow.name}
        if s.workflow.version:
            d["workflow"]["version"] = s.workflow.version
        if s.workflow.HasField("input"):
            d["workflow"]["input"] = struct_to_dict(s.workflow.input)
    if s.when:
        d["when"] = s.when
    if s.for_each:
        d["for_each"] = s.for_each
    if s.max_parallel:
        d["max_parallel"] = s.max_parallel
    if s.HasField("retry"):
        d["retry"] = _retry_to_dict(s.retry)
    if s.HasField("timeout"):
        d["timeout"] = format_duration(s.timeout)
    if s.continue_on_error:
        d["continue_on_error"] = True
    return d


def _retry_to_dict(r: pb.RetryPolicy) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if r.HasField("initial_interval"):
        d["initial_interval"] = format_duration(r.initial_interval)
    if r.backoff_coefficient:
        d["backoff_coefficient"] = r.backoff_coefficient
    if r.HasField("maximum_interval"):
        d["maximum_interval"] = format_duration(r.maximum_interval)
    if r.maximum_attempts:
        d["maximum_attempts"] = r.maximum_attempts
    if r.non_retryable_error_types:
        d["non_retryable_error_types"] = list(r.non_retryable_error_types)
    return d
