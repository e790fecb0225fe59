"""Declarative workflow definitions: plain dicts <-> ``workflow.v1.WorkflowDefinition``.

The dict has the shape ``wfm register -f`` reads from YAML or JSON (see examples/):
``steps``, ``input_schema`` and ``output``. Each step has an ``id``, ``depends_on``, one
action (``tool: {name, arguments}`` or ``workflow: {name, version, input}``), ``when``,
``for_each``, ``max_parallel``, ``retry`` (``initial_interval``, ``backoff_coefficient``,
``maximum_interval``, ``maximum_attempts``, ``non_retryable_error_types``), ``timeout``
and ``continue_on_error``. Durations are strings as in the YAML files (``"200ms"``,
``"5s"``, ``"1m 30s"``; the proto JSON form ``"0.2s"`` works too), ``timedelta`` objects
or numbers of seconds; ``arguments``, ``input``, ``input_schema`` and ``output`` are JSON.
"""

from __future__ import annotations

import datetime as _dt
import numbers
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from google.protobuf import duration_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ._convert import fill_struct, fill_value, struct_to_dict, to_duration, value_to_py
from ._errors import InvalidValueError
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
def parse_duration(value: str | _dt.timedelta | float | int, path: str = "duration") -> duration_pb2.Duration:
    """``"200ms"``, ``"1m 30s"``, ``"0.2s"``, a timedelta or a number of seconds as a Duration."""
    if isinstance(value, _dt.timedelta):
        return to_duration(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return to_duration(float(value))
    if not isinstance(value, str):
        raise InvalidValueError(f"{path}: expected a duration such as \"5s\", got {type(value).__name__}")
    if not _DURATION_RE.fullmatch(value):
        raise InvalidValueError(f"{path}: {value!r} is not a duration such as \"200ms\", \"5s\" or \"1m 30s\"")
    nanos = Decimal(0)
    for number, unit in _DURATION_PART_RE.findall(value):
        if unit not in _NS_PER_UNIT:
            raise InvalidValueError(f"{path}: unknown unit {unit!r} in {value!r} (ns, us, ms, s, m, h, d, w)")
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


def to_definition(obj: Mapping[str, Any] | pb.WorkflowDefinition) -> pb.WorkflowDefinition:
    """A definition dict (see the module's documentation) as a ``WorkflowDefinition``.

    Unknown keys and values of the wrong type raise :class:`InvalidValueError` (an
    ``InvalidArgumentError``, also a ValueError and a TypeError) naming the field as the
    dict writes it (``definition.steps[0].retry: unknown field 'x' (fields: ...)``); the
    server checks the rest (ids, dependencies, templates, tools). A definition file's
    registration keys (:data:`FILE_KEYS`) are not part of the definition: ``register()``
    takes them off first. The proto JSON names (``forEach``...) are accepted too.
    """
    if isinstance(obj, pb.WorkflowDefinition):
        copy = pb.WorkflowDefinition()
        copy.CopyFrom(obj)
        return copy
    out = pb.WorkflowDefinition()
    _fill_message(out, obj, "definition")
    return out


# The message is filled field by field from its descriptor rather than by
# json_format.ParseDict, whose errors name the proto JSON fields (camelCase) and the
# message types, not what the dict says; and in place, as _convert does for Structs.

_INT32 = (-(2**31), 2**31 - 1)


def _fill_message(msg: Message, obj: Any, path: str) -> None:
    if not isinstance(obj, Mapping):
        raise InvalidValueError(f"{path}: expected a dict, got {type(obj).__name__}")
    desc = msg.DESCRIPTOR
    oneofs: dict[str, str] = {}
    for key, value in obj.items():
        field = desc.fields_by_name.get(key) or desc.fields_by_camelcase_name.get(key)
        if field is None:
            names = ", ".join(f.name for f in desc.fields)
            raise InvalidValueError(f"{path}: unknown field {key!r} (fields: {names})")
        oneof = field.containing_oneof
        if oneof is not None and value is not None:
            if oneof.name in oneofs:
                raise InvalidValueError(f"{path}: give one of {' and '.join(f.name for f in oneof.fields)}, not both")
            oneofs[oneof.name] = field.name
        _fill_field(msg, field, value, f"{path}.{field.name}")


def _fill_field(msg: Message, field: FieldDescriptor, value: Any, path: str) -> None:
    message_type = field.message_type.full_name if field.message_type else None
    if value is None and message_type != "google.protobuf.Value":
        return  # unset (JSON null), as ParseDict reads it
    if field.is_repeated:
        if not isinstance(value, (list, tuple)):
            raise InvalidValueError(f"{path}: expected a list, got {type(value).__name__}")
        target = getattr(msg, field.name)
        for i, item in enumerate(value):
            if field.message_type:
                _fill_message(target.add(), item, f"{path}[{i}]")
            else:
                target.append(_scalar(field, item, f"{path}[{i}]"))
    elif message_type == "google.protobuf.Struct":
        fill_struct(getattr(msg, field.name), value, path)
    elif message_type == "google.protobuf.Value":
        fill_value(getattr(msg, field.name), value, path)
    elif message_type == "google.protobuf.Duration":
        getattr(msg, field.name).CopyFrom(parse_duration(value, path))
    elif field.message_type:
        _fill_message(getattr(msg, field.name), value, path)
    else:
        setattr(msg, field.name, _scalar(field, value, path))


def _scalar(field: FieldDescriptor, value: Any, path: str) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        if isinstance(value, str):
            return value
        raise InvalidValueError(f"{path}: expected a string, got {type(value).__name__}")
    if t == FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool):
            return value
        raise InvalidValueError(f"{path}: expected true or false, got {type(value).__name__}")
    if t == FieldDescriptor.TYPE_INT32:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise InvalidValueError(f"{path}: expected an integer, got {type(value).__name__}")
        if not _INT32[0] <= value <= _INT32[1]:
            raise InvalidValueError(f"{path}: {value} is out of range (a 32-bit integer)")
        return int(value)
    if t == FieldDescriptor.TYPE_DOUBLE:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise InvalidValueError(f"{path}: expected a number, got {type(value).__name__}")
        return float(value)
    raise InvalidValueError(f"{path}: unsupported field type {t}")  # pragma: no cover - not in the proto


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
